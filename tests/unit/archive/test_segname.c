/* test_segname.c -- unit tests for archive/segname.c: segment file names made, parsed back and listed in write order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/rw.h"

#define S RW_NS_PER_SEC
#define T0 (1714572000LL * S)          /* 2024-05-01T14:00:00Z */
#define MIDNIGHT (1709251200LL * S)    /* 2024-03-01T00:00:00Z, the day after a leap day */
#define DAY (86400LL * S)

#define P64 "p234567890123456789012345678901234567890123456789012345678901234" /* 64 chars */
#define P65 P64 "5"

/* ---- made names parse back to the same fields ---- */

static void test_make_parse_roundtrip(void **state)
{
    (void)state;
    static const struct {
        const char *point;
        int64_t start;
        int suffix;
        const char *rel; /* what arc_segname_make writes */
        const char *day_dir;
    } cases[] = {
        {"alpha", T0, 0, "segments/alpha/2024-05-01/1714572000000000000.pcap",
         "segments/alpha/2024-05-01"},
        {"alpha", T0 + 123456789, 0, "segments/alpha/2024-05-01/1714572000123456789.pcap",
         "segments/alpha/2024-05-01"},
        {"a.b_c-D9", T0, 3, "segments/a.b_c-D9/2024-05-01/1714572000000000000-3.pcap",
         "segments/a.b_c-D9/2024-05-01"},
        {"x", T0, 1000, "segments/x/2024-05-01/1714572000000000000-1000.pcap",
         "segments/x/2024-05-01"},
        {P64, T0, 7, "segments/" P64 "/2024-05-01/1714572000000000000-7.pcap",
         "segments/" P64 "/2024-05-01"},
        /* the day is the UTC day of the first packet, to the nanosecond */
        {"mid", MIDNIGHT - 1, 0, "segments/mid/2024-02-29/1709251199999999999.pcap",
         "segments/mid/2024-02-29"},
        {"mid", MIDNIGHT, 0, "segments/mid/2024-03-01/1709251200000000000.pcap",
         "segments/mid/2024-03-01"},
        {"mid", MIDNIGHT + 1, 2, "segments/mid/2024-03-01/1709251200000000001-2.pcap",
         "segments/mid/2024-03-01"},
        {"y2040", 2208988800LL * S - 1, 0, "segments/y2040/2039-12-31/2208988799999999999.pcap",
         "segments/y2040/2039-12-31"},
        /* zero and negative times: 1 ns before the epoch is still 1969-12-31 */
        {"zero", 0, 0, "segments/zero/1970-01-01/0.pcap", "segments/zero/1970-01-01"},
        {"neg", -1, 0, "segments/neg/1969-12-31/-1.pcap", "segments/neg/1969-12-31"},
        {"neg", -S, 2, "segments/neg/1969-12-31/-1000000000-2.pcap", "segments/neg/1969-12-31"},
        {"neg", -DAY, 0, "segments/neg/1969-12-31/-86400000000000.pcap",
         "segments/neg/1969-12-31"},
        {"neg", -DAY - 1, 0, "segments/neg/1969-12-30/-86400000000001.pcap",
         "segments/neg/1969-12-30"},
        {"max", INT64_MAX, 0, "segments/max/2262-04-11/9223372036854775807.pcap",
         "segments/max/2262-04-11"},
        {"min", INT64_MIN, 1, "segments/min/1677-09-21/-9223372036854775808-1.pcap",
         "segments/min/1677-09-21"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char rel[ARC_SEG_REL_MAX], day[ARC_SEG_REL_MAX];
        struct arc_segname sn;
        print_message("case %zu: %s %lld -%d\n", i, cases[i].point, (long long)cases[i].start,
                      cases[i].suffix);
        assert_int_equal(arc_segname_make(cases[i].point, cases[i].start, cases[i].suffix, rel,
                                          sizeof rel, day, sizeof day),
                         0);
        assert_string_equal(rel, cases[i].rel);
        assert_string_equal(day, cases[i].day_dir);
        assert_int_equal(arc_segname_parse(rel, &sn), 0);
        assert_string_equal(sn.rel, rel);
        assert_string_equal(sn.point, cases[i].point);
        assert_true(sn.start == cases[i].start);
        assert_int_equal(sn.suffix, cases[i].suffix);
        assert_int_equal(sn.compressed, 0);
        assert_int_equal(sn.partial, 0);
        /* day_dir may be NULL */
        assert_int_equal(arc_segname_make(cases[i].point, cases[i].start, cases[i].suffix, rel,
                                          sizeof rel, NULL, 0),
                         0);
        assert_string_equal(rel, cases[i].rel);
    }
}

/* A name or day directory that does not fit its buffer is refused, not cut. */
static void test_make_too_long(void **state)
{
    (void)state;
    char rel[ARC_SEG_REL_MAX], day[32];
    const char *want = "segments/alpha/2024-05-01/1714572000000000000.pcap"; /* 50 bytes */
    assert_int_equal(arc_segname_make("alpha", T0, 0, rel, strlen(want) + 1, NULL, 0), 0);
    assert_string_equal(rel, want);
    assert_int_equal(arc_segname_make("alpha", T0, 0, rel, strlen(want), NULL, 0), RW_EINPUT);
    assert_int_equal(arc_segname_make("alpha", T0, 12, rel, strlen(want) + 1, NULL, 0),
                     RW_EINPUT);
    /* "segments/alpha/2024-05-01" is 25 bytes */
    assert_int_equal(arc_segname_make("alpha", T0, 0, rel, sizeof rel, day, 26), 0);
    assert_string_equal(day, "segments/alpha/2024-05-01");
    assert_int_equal(arc_segname_make("alpha", T0, 0, rel, sizeof rel, day, 25), RW_EINPUT);
}

/* ---- parsing what is on disk ---- */

static void test_parse_extensions(void **state)
{
    (void)state;
    static const struct {
        const char *rel;
        int64_t start;
        int suffix, compressed, partial;
    } cases[] = {
        {"segments/alpha/2024-05-01/1714572000000000000.pcap", T0, 0, 0, 0},
        {"segments/alpha/2024-05-01/1714572000000000000.pcap.lz4", T0, 0, 1, 0},
        {"segments/alpha/2024-05-01/1714572000000000000.pcap.lz4.tmp", T0, 0, 0, 1},
        {"segments/alpha/2024-05-01/1714572000000000000-4.pcap", T0, 4, 0, 0},
        {"segments/alpha/2024-05-01/1714572000000000000-4.pcap.lz4", T0, 4, 1, 0},
        {"segments/alpha/2024-05-01/1714572000000000000-4.pcap.lz4.tmp", T0, 4, 0, 1},
        {"segments/neg/1969-12-31/-5-2.pcap.lz4", -5, 2, 1, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct arc_segname sn;
        print_message("case %zu: %s\n", i, cases[i].rel);
        assert_int_equal(arc_segname_parse(cases[i].rel, &sn), 0);
        assert_string_equal(sn.rel, cases[i].rel);
        assert_true(sn.start == cases[i].start);
        assert_int_equal(sn.suffix, cases[i].suffix);
        assert_int_equal(sn.compressed, cases[i].compressed);
        assert_int_equal(sn.partial, cases[i].partial);
    }
}

static void test_parse_rejects(void **state)
{
    (void)state;
    char long_rel[300];
    /* ARC_SEG_REL_MAX bytes and more: longer than any name the writer makes */
    snprintf(long_rel, sizeof long_rel, "segments/alpha/2024-05-01/%0*d.pcap", 170, 1);
    const char *bad[] = {
        /* wrong or missing extension */
        "segments/alpha/2024-05-01/1714572000000000000",
        /* names the writer never makes: the same fields give another name */
        "segments/alpha/2024-05-01/01714572000000000000.pcap",
        "segments/alpha/2024-05-01/+1714572000000000000.pcap",
        "segments/alpha/2024-05-01/1714572000000000000-0.pcap",
        "segments/alpha/2024-05-01/1714572000000000000--1.pcap",
        "segments/alpha/2024-05-02/1714572000000000000.pcap",
        "segments/alpha/2024-05-01/99999999999999999999.pcap",
        "segments/alpha/2024-05-01/1714572000000000000.",
        "segments/alpha/2024-05-01/1714572000000000000.pcapng",
        "segments/alpha/2024-05-01/1714572000000000000.PCAP",
        "segments/alpha/2024-05-01/1714572000000000000.txt",
        "segments/alpha/2024-05-01/1714572000000000000.pcap.gz",
        "segments/alpha/2024-05-01/1714572000000000000.lz4",
        "segments/alpha/2024-05-01/1714572000000000000.pcap.tmp",
        /* not a number */
        "segments/alpha/2024-05-01/.pcap",
        "segments/alpha/2024-05-01/abc.pcap",
        "segments/alpha/2024-05-01/x1714572000000000000.pcap",
        "segments/alpha/2024-05-01/12x.pcap",
        "segments/alpha/2024-05-01/12-x.pcap",
        "segments/alpha/2024-05-01/12-.pcap",
        "segments/alpha/2024-05-01/-.pcap",
        /* trailing garbage */
        "segments/alpha/2024-05-01/1714572000000000000.pcapx",
        "segments/alpha/2024-05-01/1714572000000000000.pcap.lz4x",
        "segments/alpha/2024-05-01/1714572000000000000.pcap.lz4.tmp.old",
        "segments/alpha/2024-05-01/1714572000000000000.pcap~",
        "segments/alpha/2024-05-01/1714572000000000000.pcap ",
        "segments/alpha/2024-05-01/1714572000000000000.pcap x",
        "segments/alpha/2024-05-01/1714572000000000000.pcap\n",
        "segments/alpha/2024-05-01/1714572000000000000-1-2.pcap",
        /* bad point names */
        "segments//2024-05-01/1714572000000000000.pcap",
        "segments/.alpha/2024-05-01/1714572000000000000.pcap",
        "segments/../2024-05-01/1714572000000000000.pcap",
        "segments/al pha/2024-05-01/1714572000000000000.pcap",
        "segments/al$pha/2024-05-01/1714572000000000000.pcap",
        "segments/alph\xc3\xa4/2024-05-01/1714572000000000000.pcap",
        "segments/" P65 "/2024-05-01/1714572000000000000.pcap",
        /* too many or too few path parts, another root */
        "segments/alpha/2024-05-01/x/1714572000000000000.pcap",
        "segments/alpha/2024-05-01/5/1714572000000000000.pcap",
        "segments/alpha/2024-05-01/1714572000000000000.pcap/1.pcap",
        "segments/alpha/2024-05-01/1714572000000000000.pcap/",
        "segments/alpha/1714572000000000000.pcap",
        "segments/1714572000000000000.pcap",
        "segments/alpha/2024-05-01/",
        "segments/alpha//1714572000000000000.pcap",
        "/segments/alpha/2024-05-01/1714572000000000000.pcap",
        "./segments/alpha/2024-05-01/1714572000000000000.pcap",
        "segment/alpha/2024-05-01/1714572000000000000.pcap",
        "index/alpha/2024-05-01/1714572000000000000.pcap",
        "",
        long_rel,
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct arc_segname sn;
        memset(&sn, 0x55, sizeof sn);
        if (arc_segname_parse(bad[i], &sn) != -1)
            fail_msg("case %zu: '%s' parsed as a segment (point '%s', start %lld)", i, bad[i],
                     sn.point, (long long)sn.start);
    }
    assert_true(strlen(long_rel) >= ARC_SEG_REL_MAX);
}

/* ---- listing a tree ---- */

struct fx {
    char tmp[64];
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->tmp, sizeof f->tmp, "/tmp/test_segname-XXXXXX");
    if (!f || !mkdtemp(f->tmp))
        return -1;
    *state = f;
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static int teardown(void **state)
{
    struct fx *f = *state;
    nftw(f->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static void mkdirs(const char *base, const char *rel)
{
    char path[512];
    snprintf(path, sizeof path, "%s/%s", base, rel);
    for (char *p = path + strlen(base) + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = 0;
        if (mkdir(path, 0755) < 0 && errno != EEXIST)
            fail_msg("mkdir %s: %s", path, strerror(errno));
        *p = '/';
    }
}

/* A file at base/rel (directories made) last written at sec.nsec. */
static void touch(const char *base, const char *rel, time_t sec, long nsec)
{
    char path[512];
    mkdirs(base, rel);
    snprintf(path, sizeof path, "%s/%s", base, rel);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        fail_msg("creating %s: %s", path, strerror(errno));
    assert_int_equal(write(fd, "x", 1), 1);
    close(fd);
    struct timespec ts[2] = {{sec, nsec}, {sec, nsec}};
    assert_int_equal(utimensat(AT_FDCWD, path, ts, 0), 0);
}

#define M0 1700000000 /* mtimes: write order differs from name order */

/* Segments of three points over two days, written in this order per point. */
static const struct {
    const char *rel;
    time_t sec;
    long nsec;
} segs[] = {
    {"segments/alpha/2024-05-01/1714521600000000300.pcap", M0 + 1, 0},
    {"segments/alpha/2024-05-01/1714521600000000300-1.pcap.lz4", M0 + 1, 0}, /* same mtime: by start, suffix */
    {"segments/alpha/2024-05-02/1714608000000000050.pcap", M0 + 1, 500},      /* nanoseconds count */
    {"segments/alpha/2024-05-01/1714521600000000100.pcap.lz4", M0 + 1, 900},
    {"segments/alpha/2024-05-01/1714521600000000200.pcap", M0 + 3, 0},
    {"segments/beta/2024-05-02/1714608000000000020.pcap.lz4.tmp", M0, 0},
    {"segments/beta/2024-05-01/1714521600000000010.pcap", M0 + 2, 0},
    {"segments/beta/2024-05-01/1714521600000000005.pcap", M0 + 9, 0},
    {"segments/g-1/2024-05-01/1714521600000000007-2.pcap", M0 + 5, 0},
};
#define NSEGS (sizeof segs / sizeof segs[0])

/* Files and directories that are not segments. */
static void make_noise(const char *dir)
{
    static const char *files[] = {
        "segments/alpha/2024-05-01/notes.txt",
        "segments/alpha/2024-05-01/.hidden.pcap",
        "segments/alpha/2024-05-01/1714521600000000400.pcap.bak",
        "segments/alpha/2024-05-01/1714521600000000400.pcapng",
        "segments/alpha/README",                /* a file where day directories are */
        "segments/.trash/2024-05-01/1714521600000000001.pcap",    /* not a point */
        "segments/bad name/2024-05-01/1714521600000000001.pcap",  /* not a point name */
        "segments/alpha/2024-05-01/sub/9.pcap", /* too deep */
        "segments/1.pcap",
        "1.pcap",
    };
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
        touch(dir, files[i], M0 + 100, 0);
    mkdirs(dir, "segments/empty/2024-05-01/");
}

static size_t index_of(const char *rel)
{
    for (size_t i = 0; i < NSEGS; i++)
        if (!strcmp(segs[i].rel, rel))
            return i;
    fail_msg("listed %s, which is not a segment of the tree", rel);
    return 0;
}

static void test_list_write_order(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    struct arc_segname *v;
    size_t n;
    for (size_t i = NSEGS; i-- > 0;) /* created in reverse: directory order says nothing */
        touch(f->tmp, segs[i].rel, segs[i].sec, segs[i].nsec);
    make_noise(f->tmp);

    /* every point: grouped by point, each in write order */
    int rc = arc_segname_list(f->tmp, NULL, &v, &n, err);
    if (rc != 0)
        fail_msg("arc_segname_list = %d: %s", rc, err);
    assert_int_equal(n, NSEGS);
    for (size_t i = 0; i < n; i++) {
        print_message("%zu: %s\n", i, v[i].rel);
        assert_int_equal(index_of(v[i].rel), i);
        struct arc_segname want;
        assert_int_equal(arc_segname_parse(segs[i].rel, &want), 0);
        assert_string_equal(v[i].point, want.point);
        assert_true(v[i].start == want.start);
        assert_int_equal(v[i].suffix, want.suffix);
        assert_int_equal(v[i].compressed, want.compressed);
        assert_int_equal(v[i].partial, want.partial);
        assert_int_equal(v[i].mtime.tv_sec, segs[i].sec);
        assert_int_equal(v[i].mtime.tv_nsec, segs[i].nsec);
    }
    free(v);

    /* one point */
    assert_int_equal(arc_segname_list(f->tmp, "beta", &v, &n, err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(v[0].rel, "segments/beta/2024-05-02/1714608000000000020.pcap.lz4.tmp");
    assert_string_equal(v[1].rel, "segments/beta/2024-05-01/1714521600000000010.pcap");
    assert_string_equal(v[2].rel, "segments/beta/2024-05-01/1714521600000000005.pcap");
    free(v);

    /* a point without segments, or without a directory: nothing */
    assert_int_equal(arc_segname_list(f->tmp, "empty", &v, &n, err), 0);
    assert_int_equal(n, 0);
    free(v);
    assert_int_equal(arc_segname_list(f->tmp, "nope", &v, &n, err), 0);
    assert_int_equal(n, 0);
    free(v);
}

static void test_list_empty_and_missing(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "", dir[128];
    struct arc_segname *v = (void *)1;
    size_t n = 99;

    /* no segments directory: an error naming it */
    assert_int_equal(arc_segname_list(f->tmp, NULL, &v, &n, err), RW_EIO);
    assert_null(v);
    assert_int_equal(n, 0);
    snprintf(dir, sizeof dir, "%s/segments", f->tmp);
    if (!strstr(err, dir) || !strstr(err, strerror(ENOENT)))
        fail_msg("message '%s' does not name %s and why", err, dir);

    /* an empty one: no segments, no error */
    assert_int_equal(mkdir(dir, 0755), 0);
    assert_int_equal(arc_segname_list(f->tmp, NULL, &v, &n, err), 0);
    assert_int_equal(n, 0);
    free(v);
}

int main(void)
{
    /* Far from UTC, so that a local-time day would show. */
    setenv("TZ", "UTC-14", 1);
    tzset();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_make_parse_roundtrip),
        cmocka_unit_test(test_make_too_long),
        cmocka_unit_test(test_parse_extensions),
        cmocka_unit_test(test_parse_rejects),
        cmocka_unit_test_setup_teardown(test_list_write_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_list_empty_and_missing, setup, teardown),
    };
    return cmocka_run_group_tests_name("archive/segname", tests, NULL, NULL);
}
