/* test_rw.c -- unit tests for common/rw.c: time, duration and size parsing, formatting, point names, varints, error buffers. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/rw.h"

#define S RW_NS_PER_SEC
#define NOW (1700000000LL * S + 123456789) /* fixed "now" for relative times */
#define T0 1714572000LL                    /* 2024-05-01T14:00:00Z (python calendar.timegm) */

/* ---- helpers ---- */

static int64_t tp_ok(const char *s)
{
    char err[RW_ERRSZ] = "";
    int64_t ns = -42;
    int rc = rw_time_parse(s, NOW, &ns, err);
    if (rc != 0)
        fail_msg("rw_time_parse('%s') = %d (%s), expected success", s, rc, err);
    return ns;
}

static void tp_bad(const char *s)
{
    char err[RW_ERRSZ] = "";
    int64_t ns = -42;
    int rc = rw_time_parse(s, NOW, &ns, err);
    if (rc != RW_EINPUT)
        fail_msg("rw_time_parse('%s') = %d (ns %lld), expected RW_EINPUT", s, rc, (long long)ns);
    /* The message names the input (as far as the buffer allows). */
    size_t n = strlen(s) < 64 ? strlen(s) : 64;
    char prefix[65];
    memcpy(prefix, s, n);
    prefix[n] = 0;
    if (!strstr(err, prefix))
        fail_msg("message for '%s' does not contain the input: %s", s, err);
}

/* Run rw_time_parse in a child: inputs whose evaluation overflows int64 are
 * undefined behaviour (UBSan aborts), so a crash must fail one test, not the
 * whole binary. Returns 0 if the child saw RW_EINPUT with the input named. */
static int tp_bad_isolated(const char *s)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char err[RW_ERRSZ] = "";
        int64_t ns = 0;
        int rc = rw_time_parse(s, NOW, &ns, err);
        if (rc != RW_EINPUT) {
            fprintf(stderr, "    rw_time_parse('%s') = %d, ns = %lld (expected RW_EINPUT)\n", s, rc,
                    (long long)ns);
            _exit(1);
        }
        _exit(strstr(err, s) ? 0 : 2);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st)) {
        fprintf(stderr, "    rw_time_parse('%s') died with signal %d\n", s, WTERMSIG(st));
        return -1;
    }
    return WEXITSTATUS(st);
}

static int64_t dur_ok(const char *s)
{
    char err[RW_ERRSZ] = "";
    int64_t ns = -42;
    int rc = rw_duration_parse(s, &ns, err);
    if (rc != 0)
        fail_msg("rw_duration_parse('%s') = %d (%s)", s, rc, err);
    return ns;
}

static void dur_bad(const char *s)
{
    char err[RW_ERRSZ] = "";
    int64_t ns = -42;
    int rc = rw_duration_parse(s, &ns, err);
    if (rc != RW_EINPUT)
        fail_msg("rw_duration_parse('%s') = %d (ns %lld), expected RW_EINPUT", s, rc, (long long)ns);
    if (!strstr(err, s))
        fail_msg("message for '%s' does not contain the input: %s", s, err);
}

static uint64_t size_ok(const char *s)
{
    char err[RW_ERRSZ] = "";
    uint64_t v = 42;
    int rc = rw_size_parse(s, &v, err);
    if (rc != 0)
        fail_msg("rw_size_parse('%s') = %d (%s)", s, rc, err);
    return v;
}

static void size_bad(const char *s)
{
    char err[RW_ERRSZ] = "";
    uint64_t v = 42;
    int rc = rw_size_parse(s, &v, err);
    if (rc != RW_EINPUT)
        fail_msg("rw_size_parse('%s') = %d (%llu), expected RW_EINPUT", s, rc, (unsigned long long)v);
    if (!strstr(err, s))
        fail_msg("message for '%s' does not contain the input: %s", s, err);
}

/* ---- rw_time_parse ---- */

static void test_time_rfc3339(void **state)
{
    (void)state;
    assert_int_equal(tp_ok("2024-05-01T14:00:00Z"), T0 * S);
    assert_int_equal(tp_ok("2024-05-01t14:00:00z"), T0 * S);
    assert_int_equal(tp_ok("2024-05-01 14:00:00Z"), T0 * S);
    assert_int_equal(tp_ok("2024-05-01T14:00:00"), T0 * S); /* no zone: UTC */
    assert_int_equal(tp_ok("2024-05-01T14:00Z"), T0 * S);   /* seconds optional */
    assert_int_equal(tp_ok("2024-05-01T14:00:00+02:00"), (T0 - 7200) * S);
    assert_int_equal(tp_ok("2024-05-01T14:00:00+0200"), (T0 - 7200) * S);
    assert_int_equal(tp_ok("2024-05-01T14:00:00-05:30"), (T0 + 19800) * S);
    assert_int_equal(tp_ok("2024-05-01T14:00:00-0530"), (T0 + 19800) * S);
    assert_int_equal(tp_ok("2024-05-01T14:00:00+00:00"), T0 * S);
    /* date only: midnight UTC */
    assert_int_equal(tp_ok("2024-05-01"), (T0 - 14 * 3600) * S);
    assert_int_equal(tp_ok("2000-02-29"), 951782400LL * S); /* leap year */
    assert_int_equal(tp_ok("1970-01-01T00:00:00Z"), 0);
    assert_int_equal(tp_ok("1969-12-31T23:59:59Z"), -1 * S);
    assert_int_equal(tp_ok("1900-01-01T00:00:00Z"), -2208988800LL * S);
    /* leap second 60 is accepted and counts as the next second */
    assert_int_equal(tp_ok("2024-12-31T23:59:60Z"), 1735689600LL * S);
}

static void test_time_fraction(void **state)
{
    (void)state;
    assert_int_equal(tp_ok("2024-05-01T14:00:00.5Z"), T0 * S + 500000000);
    assert_int_equal(tp_ok("2024-05-01T14:00:00.000000001Z"), T0 * S + 1);
    assert_int_equal(tp_ok("2024-05-01T14:00:00.123456789Z"), T0 * S + 123456789);
    /* more than nine digits: truncated, not rounded */
    assert_int_equal(tp_ok("2024-05-01T14:00:00.1234567899999Z"), T0 * S + 123456789);
    assert_int_equal(tp_ok("2024-05-01T14:00:00.9999999999+01:00"), (T0 - 3600) * S + 999999999);
    assert_int_equal(tp_ok("2024-05-01 14:00:00.25"), T0 * S + 250000000);
    tp_bad("2024-05-01T14:00:00.Z"); /* a '.' needs digits */
    tp_bad("2024-05-01T14:00.5Z");   /* fraction only after seconds */
}

static void test_time_unix(void **state)
{
    (void)state;
    assert_int_equal(tp_ok("1700000000"), 1700000000LL * S);
    assert_int_equal(tp_ok("1700000000.25"), 1700000000LL * S + 250000000);
    assert_int_equal(tp_ok("1700000000.000000001"), 1700000000LL * S + 1);
    assert_int_equal(tp_ok("1700000000.1234567891"), 1700000000LL * S + 123456789);
    assert_int_equal(tp_ok("0"), 0);
    assert_int_equal(tp_ok("0.5"), 500000000);
    assert_int_equal(tp_ok("9223372035"), 9223372035LL * S); /* largest that fits */
    tp_bad("1700000000.");
    tp_bad("1700000000.x");
    tp_bad("17000000x");
}

static void test_time_now_relative(void **state)
{
    (void)state;
    assert_int_equal(tp_ok("now"), NOW);
    assert_int_equal(tp_ok("-15m"), NOW - 15 * 60 * S);
    assert_int_equal(tp_ok("-2h30m"), NOW - (2 * 3600 + 30 * 60) * S);
    assert_int_equal(tp_ok("-1d"), NOW - 86400 * S);
    assert_int_equal(tp_ok("-90s"), NOW - 90 * S);
    assert_int_equal(tp_ok("-90"), NOW - 90 * S);
    assert_int_equal(tp_ok("-500ms"), NOW - 500000000);
    assert_int_equal(tp_ok("+1h"), NOW + 3600 * S);
    assert_int_equal(tp_ok("-1.5h"), NOW - 5400 * S);
    assert_int_equal(tp_ok("-1w"), NOW - 7 * 86400 * S);
}

static void test_time_malformed(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    int64_t ns;
    assert_int_equal(rw_time_parse("", NOW, &ns, err), RW_EINPUT);
    assert_true(strlen(err) > 0);
    assert_int_equal(rw_time_parse(NULL, NOW, &ns, err), RW_EINPUT);
    const char *bad[] = {
        "abc", "2024-13-01T00:00:00Z", "2024-00-01", "2024-02-30", "2024-04-31", "2024-05-00",
        "2024-05-01T24:00:00Z", "2024-05-01T12:60:00Z", "2024-05-01T12:00:61Z", "12:00", "-", "+",
        "-15x", "1.2.3", "2024-05-01T", "2024-05-01X12:00", "2024-5-1", "24-05-01",
        "2024-05-01T14:00:00+2", "2024-05-01T14:00:00+24:00", "2024-05-01T14:00:00ZZ",
        "2024-05-01T14:00:00 Z", " now", "now ", "NOW", "--15m", "-15m-", "-m",
        "1700000000 ", "0x10", "1e9", "-inf", "nan",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        tp_bad(bad[i]);
}

static void test_time_long_input(void **state)
{
    (void)state;
    char big[4096];
    memset(big, '7', sizeof big - 1); /* 4095 digits */
    big[sizeof big - 1] = 0;
    tp_bad(big);
    memset(big, 'x', sizeof big - 1);
    tp_bad(big);
    memcpy(big, "2024-05-01T14:00:00.", 20);
    memset(big + 20, '1', sizeof big - 22);
    big[sizeof big - 2] = 'Z';
    /* a very long fraction is fine and truncated to nanoseconds */
    assert_int_equal(tp_ok(big), T0 * S + 111111111);
    big[0] = '-';
    memset(big + 1, '9', sizeof big - 2);
    tp_bad(big); /* relative with a number far too large */
    /* the message stays within the buffer */
    char err[RW_ERRSZ];
    int64_t ns;
    memset(big, 'y', sizeof big - 1);
    assert_int_equal(rw_time_parse(big, NOW, &ns, err), RW_EINPUT);
    assert_true(strlen(err) < RW_ERRSZ);
}

/* Regression: Feb 29 was accepted in every year: days_from_civil() then silently
 * gave March 1st. */
static void test_time_feb29_non_leap(void **state)
{
    (void)state;
    tp_bad("2023-02-29");
    tp_bad("1900-02-29T00:00:00Z");
}

/* Regression: Unix seconds of up to 11 digits were multiplied by 1e9 without a range
 * check: "9999999999" overflows int64 (undefined behaviour; in practice a
 * negative time, 1686-ish, returned as success). Likewise "+9000000000s" adds
 * to now without a check. Run isolated: under UBSan each aborts. */
static void test_time_huge_numbers(void **state)
{
    (void)state;
    const char *huge[] = {"9223372037", "9999999999", "99999999999", "+9000000000s",
                          "-5000000000s5000000000s", "9999-12-31T23:59:59Z",
                          "2262-04-12T00:00:00Z", "1677-09-20T00:00:00Z"};
    int failed = 0;
    for (size_t i = 0; i < sizeof huge / sizeof huge[0]; i++)
        if (tp_bad_isolated(huge[i]) != 0)
            failed++;
    /* these must be rejected cleanly (no overflow in the parser either) */
    tp_bad("999999999999999999999999");
    tp_bad("-99999999999999999999d");
    /* the edges of int64 nanoseconds are representable */
    assert_int_equal(tp_ok("2262-04-11T00:00:00Z"), 9223286400LL * S);
    /* now - 9e18 ns is representable (year 1738): not an error */
    assert_int_equal(tp_ok("-9000000000s"), NOW - 9000000000LL * S);
    assert_int_equal(failed, 0);
}

/* ---- rw_time_fmt ---- */

static void test_time_fmt(void **state)
{
    (void)state;
    char buf[40];
    assert_string_equal(rw_time_fmt(T0 * S, buf, sizeof buf), "2024-05-01T14:00:00.000000000Z");
    assert_string_equal(rw_time_fmt(0, buf, sizeof buf), "1970-01-01T00:00:00.000000000Z");
    assert_string_equal(rw_time_fmt(-1, buf, sizeof buf), "1969-12-31T23:59:59.999999999Z");
    assert_string_equal(rw_time_fmt(T0 * S + 5, buf, sizeof buf), "2024-05-01T14:00:00.000000005Z");
    const int64_t vals[] = {0, 1, -1, T0 * S + 123456789, 951782400LL * S, -2208988800LL * S + 7,
                            4102444800LL * S - 1, NOW, 1LL << 62};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        rw_time_fmt(vals[i], buf, sizeof buf);
        assert_true(strlen(buf) < 40);
        assert_int_equal(tp_ok(buf), vals[i]);
    }
    /* a short buffer is truncated, NUL-terminated */
    char small[11];
    rw_time_fmt(T0 * S, small, sizeof small);
    assert_string_equal(small, "2024-05-01");
}

/* ---- rw_duration_parse ---- */

static void test_duration(void **state)
{
    (void)state;
    assert_int_equal(dur_ok("60"), 60 * S);
    assert_int_equal(dur_ok("60s"), 60 * S);
    assert_int_equal(dur_ok("10m"), 600 * S);
    assert_int_equal(dur_ok("2h"), 7200 * S);
    assert_int_equal(dur_ok("7d"), 7 * 86400 * S);
    assert_int_equal(dur_ok("1w"), 7 * 86400 * S);
    assert_int_equal(dur_ok("500ms"), 500000000);
    assert_int_equal(dur_ok("250us"), 250000);
    assert_int_equal(dur_ok("17ns"), 17);
    assert_int_equal(dur_ok("1.5s"), 1500000000);
    assert_int_equal(dur_ok(".5s"), 500000000);
    assert_int_equal(dur_ok("2h30m"), 9000 * S);
    assert_int_equal(dur_ok("1h1m1s1ms"), 3661 * S + 1000000);
    assert_int_equal(dur_ok("0"), 0);
    const char *bad[] = {"", "s", "-5s", "+5s", "5x", "5 s", " 5s", "5s ", "5S", "1.2.3", "m5",
                         "inf", "nan", "99999999999999999999d", "1e400s", "10mm", "5sms"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        dur_bad(bad[i]);
    char err[RW_ERRSZ];
    int64_t ns;
    assert_int_equal(rw_duration_parse(NULL, &ns, err), RW_EINPUT);
}

/* ---- rw_size_parse / rw_size_fmt ---- */

static void test_size_parse(void **state)
{
    (void)state;
    assert_int_equal(size_ok("4096"), 4096);
    assert_int_equal(size_ok("0"), 0);
    assert_int_equal(size_ok("64k"), 64 << 10);
    assert_int_equal(size_ok("64K"), 64 << 10);
    assert_int_equal(size_ok("256M"), 256ULL << 20);
    assert_int_equal(size_ok("256m"), 256ULL << 20);
    assert_int_equal(size_ok("1.5G"), 3ULL << 29);
    assert_int_equal(size_ok("2T"), 2ULL << 40);
    assert_int_equal(size_ok("2t"), 2ULL << 40);
    /* suffix forms the code accepts: KiB, KB, Ki, kb -- all binary */
    assert_int_equal(size_ok("1KiB"), 1024);
    assert_int_equal(size_ok("1KB"), 1024);
    assert_int_equal(size_ok("1Ki"), 1024);
    assert_int_equal(size_ok("1kb"), 1024);
    assert_int_equal(size_ok("3MB"), 3ULL << 20);
    assert_int_equal(size_ok("3MiB"), 3ULL << 20);
    assert_int_equal(size_ok("1.25GiB"), 5ULL << 28);
    assert_int_equal(size_ok(".5k"), 512);
    assert_int_equal(size_ok("16T"), 16ULL << 40);
    const char *bad[] = {"", "k", "M", "-1", "-1M", "+1M", "1P", "1E", "1X", "1 M", " 1M", "1M ",
                         "1MiBs", "1iB", "1.2.3", "abc", "inf", "nan", "1e400", "20000000T",
                         "99999999999999999999999"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        size_bad(bad[i]);
    char err[RW_ERRSZ];
    uint64_t v;
    assert_int_equal(rw_size_parse(NULL, &v, err), RW_EINPUT);
}

static void test_size_fmt(void **state)
{
    (void)state;
    char buf[32];
    assert_string_equal(rw_size_fmt(0, buf, sizeof buf), "0 B");
    assert_string_equal(rw_size_fmt(1023, buf, sizeof buf), "1023 B");
    assert_string_equal(rw_size_fmt(1024, buf, sizeof buf), "1.0 KiB");
    assert_string_equal(rw_size_fmt(1536, buf, sizeof buf), "1.5 KiB");
    assert_string_equal(rw_size_fmt(256ULL << 20, buf, sizeof buf), "256.0 MiB");
    assert_string_equal(rw_size_fmt((uint64_t)(1.2 * (1 << 30)), buf, sizeof buf), "1.2 GiB");
    assert_string_equal(rw_size_fmt(3ULL << 40, buf, sizeof buf), "3.0 TiB");
    assert_string_equal(rw_size_fmt(5ULL << 50, buf, sizeof buf), "5.0 PiB");
    assert_string_equal(rw_size_fmt(UINT64_MAX, buf, sizeof buf), "16384.0 PiB");
    char small[4];
    rw_size_fmt(1536, small, sizeof small);
    assert_string_equal(small, "1.5");
}

/* ---- rw_point_name_ok ---- */

static void test_point_name(void **state)
{
    (void)state;
    char name[80];
    assert_true(rw_point_name_ok("eth0"));
    assert_true(rw_point_name_ok("a"));
    assert_true(rw_point_name_ok("tap-1.dmz_B"));
    assert_true(rw_point_name_ok("0"));
    assert_true(rw_point_name_ok("-x")); /* only a leading '.' is refused */
    memset(name, 'a', 64);
    name[64] = 0;
    assert_true(rw_point_name_ok(name));
    name[64] = 'a';
    name[65] = 0;
    assert_false(rw_point_name_ok(name));
    const char *bad[] = {"", ".", "..", ".hidden", "a/b", "../x", "a b", "a:b", "eth0\n", "é",
                         "a*", "a\\b", "a%", "ifN\t"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (rw_point_name_ok(bad[i]))
            fail_msg("point name '%s' accepted", bad[i]);
}

/* ---- varints ---- */

static void test_varint_roundtrip(void **state)
{
    (void)state;
    const uint64_t vals[] = {0, 1, 127, 128, 255, 300, 16383, 16384, 1ULL << 32, (1ULL << 56) - 1,
                             1ULL << 56, (1ULL << 63) - 1, 1ULL << 63, UINT64_MAX};
    const size_t lens[] = {1, 1, 1, 2, 2, 2, 2, 3, 5, 8, 9, 9, 10, 10};
    uint8_t buf[16];
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        uint64_t v = 0;
        memset(buf, 0xee, sizeof buf);
        size_t n = rw_varint_put(buf, vals[i]);
        assert_int_equal(n, lens[i]);
        assert_int_equal(buf[n], 0xee); /* wrote nothing past n */
        assert_int_equal(rw_varint_get(buf, n, &v), n);
        assert_int_equal(v, vals[i]);
        /* trailing bytes are not consumed */
        assert_int_equal(rw_varint_get(buf, sizeof buf, &v), n);
        assert_int_equal(v, vals[i]);
        /* every truncation is refused */
        for (size_t t = 0; t < n; t++)
            assert_int_equal(rw_varint_get(buf, t, &v), 0);
    }
    /* known encodings */
    assert_int_equal(rw_varint_put(buf, 300), 2);
    assert_int_equal(buf[0], 0xac);
    assert_int_equal(buf[1], 0x02);
    /* a run of values back to back */
    uint8_t run[1000];
    size_t pos = 0;
    for (uint64_t v = 0; v < 100; v++)
        pos += rw_varint_put(run + pos, v * v * v * 977);
    size_t rp = 0;
    for (uint64_t v = 0; v < 100; v++) {
        uint64_t got;
        size_t n = rw_varint_get(run + rp, pos - rp, &got);
        assert_true(n > 0);
        assert_int_equal(got, v * v * v * 977);
        rp += n;
    }
    assert_int_equal(rp, pos);
}

static void test_varint_overlong(void **state)
{
    (void)state;
    uint8_t b[16];
    uint64_t v = 7;
    /* eleven bytes (continuation bits throughout) */
    memset(b, 0x80, sizeof b);
    assert_int_equal(rw_varint_get(b, sizeof b, &v), 0);
    memset(b, 0xff, sizeof b);
    assert_int_equal(rw_varint_get(b, sizeof b, &v), 0);
    /* ten continuation bytes then a terminator: still over-long */
    memset(b, 0x80, 10);
    b[10] = 0;
    assert_int_equal(rw_varint_get(b, 11, &v), 0);
    assert_int_equal(v, 7); /* untouched on failure */
}

/* Regression: a 10-byte varint whose last byte is > 1 carries bits beyond 64: the
 * decoder drops them silently and returns success (UINT64_MAX for ff*9 7f).
 * The contract says over-long input returns 0 (Go's encoding/binary.Uvarint,
 * for one, reports overflow here). */
static void test_varint_overflow_10th_byte(void **state)
{
    (void)state;
    uint8_t b[10];
    uint64_t v = 7;
    memset(b, 0xff, 9);
    b[9] = 0x7f;
    assert_int_equal(rw_varint_get(b, 10, &v), 0);
    memset(b, 0x80, 9);
    b[9] = 0x02; /* 2 << 63: the value 2^64 */
    assert_int_equal(rw_varint_get(b, 10, &v), 0);
}

/* ---- error buffers ---- */

static void test_err(void **state)
{
    (void)state;
    char err[RW_ERRSZ];
    assert_int_equal(rw_err(err, RW_EIO, "open %s: %d", "x", 5), RW_EIO);
    assert_string_equal(err, "open x: 5");
    assert_int_equal(rw_err(NULL, RW_EINPUT, "no buffer"), RW_EINPUT);
    assert_int_equal(rw_errctx(err, RW_EIO, "segment %s", "s1"), RW_EIO);
    assert_string_equal(err, "segment s1: open x: 5");
    assert_int_equal(rw_errctx(err, RW_ECORRUPT, "archive"), RW_ECORRUPT);
    assert_string_equal(err, "archive: segment s1: open x: 5");
    assert_int_equal(rw_errctx(NULL, RW_EDB, "ctx"), RW_EDB);
    rw_err(err, RW_OK, "%s", "");
    rw_errctx(err, RW_EIO, "ctx");
    assert_string_equal(err, "ctx: ");
}

static void test_err_truncation(void **state)
{
    (void)state;
    char err[RW_ERRSZ + 16], big[2000];
    memset(err, 'Z', sizeof err);
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = 0;
    rw_err(err, RW_EIO, "%s", big);
    assert_int_equal(strlen(err), RW_ERRSZ - 1);
    assert_int_equal(err[RW_ERRSZ], 'Z'); /* nothing written past RW_ERRSZ */
    /* context in front of a full message: the context survives, the tail goes */
    rw_errctx(err, RW_EIO, "ctx %d", 1);
    assert_int_equal(strlen(err), RW_ERRSZ - 1);
    assert_memory_equal(err, "ctx 1: aaa", 10);
    assert_int_equal(err[RW_ERRSZ], 'Z');
    /* an over-long context is itself truncated */
    rw_err(err, RW_EIO, "tail");
    rw_errctx(err, RW_EIO, "%s", big);
    assert_int_equal(strlen(err), RW_ERRSZ - 1);
    assert_int_equal(err[0], 'a');
    assert_int_equal(err[RW_ERRSZ - 2], 'a');
    assert_int_equal(err[RW_ERRSZ], 'Z');
    /* just fits */
    memset(big, 'b', RW_ERRSZ - 1);
    big[RW_ERRSZ - 1] = 0;
    rw_err(err, RW_EIO, "%s", big);
    assert_string_equal(err, big);
}

/* ---- big-endian helpers ---- */

static void test_be(void **state)
{
    (void)state;
    uint8_t b[8];
    rw_put_be16(b, 0x1234);
    assert_int_equal(b[0], 0x12);
    assert_int_equal(rw_get_be16(b), 0x1234);
    rw_put_be32(b, 0xdeadbeef);
    assert_int_equal(b[0], 0xde);
    assert_int_equal(b[3], 0xef);
    assert_int_equal(rw_get_be32(b), 0xdeadbeef);
    rw_put_be64(b, 0x0102030405060708ULL);
    for (int i = 0; i < 8; i++)
        assert_int_equal(b[i], i + 1);
    assert_int_equal(rw_get_be64(b), 0x0102030405060708ULL);
    uint16_t ver[2];
    uint32_t w = RW_PCAP_VERSION;
    memcpy(ver, &w, 4);
    assert_int_equal(ver[0], 2);
    assert_int_equal(ver[1], 4);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_time_rfc3339),
        cmocka_unit_test(test_time_fraction),
        cmocka_unit_test(test_time_unix),
        cmocka_unit_test(test_time_now_relative),
        cmocka_unit_test(test_time_malformed),
        cmocka_unit_test(test_time_long_input),
        cmocka_unit_test(test_time_feb29_non_leap),
        cmocka_unit_test(test_time_huge_numbers),
        cmocka_unit_test(test_time_fmt),
        cmocka_unit_test(test_duration),
        cmocka_unit_test(test_size_parse),
        cmocka_unit_test(test_size_fmt),
        cmocka_unit_test(test_point_name),
        cmocka_unit_test(test_varint_roundtrip),
        cmocka_unit_test(test_varint_overlong),
        cmocka_unit_test(test_varint_overflow_10th_byte),
        cmocka_unit_test(test_err),
        cmocka_unit_test(test_err_truncation),
        cmocka_unit_test(test_be),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
