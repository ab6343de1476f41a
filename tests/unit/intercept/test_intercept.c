/* test_intercept.c -- unit tests for intercept/intercept.h: RADIUS
 * accounting parsed from crafted packets (good ones, and every way a length
 * can lie), case documents refused naming their field, a case's BPF, the
 * pull stream's encoder read back by its parser piece by piece, and a spool
 * read back by sequence number. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/rw.h"
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

/* ---- RADIUS ---- */

static size_t attr(uint8_t *p, int type, const void *v, size_t n)
{
    p[0] = (uint8_t)type;
    p[1] = (uint8_t)(n + 2);
    memcpy(p + 2, v, n);
    return n + 2;
}

/* An Accounting-Request with the attributes given (status 0: none). */
static size_t mkacct(uint8_t *p, int code, int status, const char *user)
{
    size_t n = 20;
    uint8_t st[4] = {0, 0, 0, (uint8_t)status}, ip[4] = {10, 0, 0, 7};
    uint8_t v6[10] = {0, 64, 0x20, 0x01, 0x0d, 0xb8, 0, 7, 0, 0};
    memset(p, 0, 20);
    p[0] = (uint8_t)code;
    if (status)
        n += attr(p + n, 40, st, 4);
    if (user)
        n += attr(p + n, 1, user, strlen(user));
    n += attr(p + n, 8, ip, 4);
    n += attr(p + n, 44, "S-1", 3);
    n += attr(p + n, 31, "00-11-22-33-44-55", 17);
    n += attr(p + n, 97, v6, sizeof v6);
    p[2] = (uint8_t)(n >> 8);
    p[3] = (uint8_t)n;
    return n;
}

static void test_radius_good(void **state)
{
    (void)state;
    uint8_t p[512];
    char err[RW_ERRSZ];
    struct ic_radius_acct a;
    size_t n = mkacct(p, 4, IC_ACCT_START, "alice");
    assert_int_equal(ic_radius_parse(p, n, &a, err), 1);
    assert_int_equal(a.status, IC_ACCT_START);
    assert_string_equal(a.user, "alice");
    assert_string_equal(a.session, "S-1");
    assert_string_equal(a.station, "00-11-22-33-44-55");
    assert_true(a.has_ip4 && a.ip4[0] == 10 && a.ip4[3] == 7);
    assert_int_equal(a.nprefix, 1);
    assert_int_equal(a.prefix[0].plen, 64);
    assert_int_equal(a.prefix[0].addr[0], 0x20);
    /* trailing bytes after the length field are ignored (Ethernet padding) */
    assert_int_equal(ic_radius_parse(p, n + 6, &a, err), 1);
    /* other codes and statuses: well formed, nothing to use */
    n = mkacct(p, 1, IC_ACCT_START, "alice");
    assert_int_equal(ic_radius_parse(p, n, &a, err), 0);
    n = mkacct(p, 4, 7, "alice"); /* Accounting-On */
    assert_int_equal(ic_radius_parse(p, n, &a, err), 0);
}

static void test_radius_bad(void **state)
{
    (void)state;
    uint8_t p[512], q[512];
    char err[RW_ERRSZ];
    struct ic_radius_acct a;
    size_t n = mkacct(p, 4, IC_ACCT_STOP, "alice");
    /* every cut short of the whole: refused, never half used */
    for (size_t k = 0; k < n; k++) {
        memcpy(q, p, n);
        int rc = ic_radius_parse(q, k, &a, err);
        assert_true(rc == RW_EINPUT);
    }
    /* a length field beyond the bytes, below the header, over 4096 */
    static const unsigned lens[] = {19, 0, 4097, 65535};
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        memcpy(q, p, n);
        q[2] = (uint8_t)(lens[i] >> 8);
        q[3] = (uint8_t)lens[i];
        assert_int_equal(ic_radius_parse(q, n, &a, err), RW_EINPUT);
    }
    /* an attribute length of 0, 1, or past the end */
    static const uint8_t alens[] = {0, 1, 200};
    for (size_t i = 0; i < sizeof alens; i++) {
        memcpy(q, p, n);
        q[21] = alens[i];
        assert_int_equal(ic_radius_parse(q, n, &a, err), RW_EINPUT);
    }
    /* a user name with a control character, no status, no user */
    n = mkacct(q, 4, IC_ACCT_START, "al\x01ice");
    assert_int_equal(ic_radius_parse(q, n, &a, err), RW_EINPUT);
    assert_non_null(strstr(err, "User-Name"));
    n = mkacct(q, 4, 0, "alice");
    assert_int_equal(ic_radius_parse(q, n, &a, err), RW_EINPUT);
    n = mkacct(q, 4, IC_ACCT_START, NULL);
    assert_int_equal(ic_radius_parse(q, n, &a, err), RW_EINPUT);
}

/* ---- case documents ---- */

static void test_case_fields(void **state)
{
    (void)state;
    static const struct {
        const char *doc, *field;
    } bad[] = {
        {"{", "body:"},
        {"[]", "body:"},
        {"{\"id\":\"a b\"}", "id:"},
        {"{\"id\":\".x\"}", "id:"},
        {"{\"id\":\"x\",\"targets\":[{\"ip\":\"1.2.3\"}]}", "targets[0].ip:"},
        {"{\"id\":\"x\",\"targets\":[{\"prefix\":\"10.0.0.1/8\"}]}", "targets[0].prefix:"},
        {"{\"id\":\"x\",\"targets\":[{\"prefix\":\"::/129\"}]}", "targets[0].prefix:"},
        {"{\"id\":\"x\",\"targets\":[{\"mac\":\"00:11:22:33:44:5\"}]}", "targets[0].mac:"},
        {"{\"id\":\"x\",\"targets\":[{\"mac\":\"00:11-22:33:44:55\"}]}", "targets[0].mac:"},
        {"{\"id\":\"x\",\"targets\":[{\"imsi\":\"1\"}]}", "targets[0]:"},
        {"{\"id\":\"x\",\"targets\":[]}", "targets:"},
        {"{\"id\":\"x\",\"delivery\":{\"type\":\"fax\"}}", "delivery.type:"},
        {"{\"id\":\"x\",\"delivery\":{\"type\":\"etsi\",\"address\":\"h:1\"}}", "delivery.country:"},
        {"{\"id\":\"x\",\"filter\":\"port port\"}", "filter:"},
        {"{\"id\":\"x\",\"from\":\"2026-01-02T00:00:00Z\",\"to\":\"2026-01-01T00:00:00Z\","
         "\"authority\":\"a\",\"warrant\":\"w\",\"targets\":[{\"ip\":\"1.2.3.4\"}]}", "to:"},
        {"{\"id\":\"x\",\"color\":1}", "color:"},
#define ETSI_TLS(t) "{\"id\":\"x\",\"delivery\":{\"type\":\"etsi\",\"address\":\"h:1\"," \
                    "\"country\":\"XX\",\"tls\":" t "}}"
        {ETSI_TLS("\"yes\""), "delivery.tls:"},
        {ETSI_TLS("{\"ca\":\"ca.pem\"}"), "delivery.tls.ca:"},
        {ETSI_TLS("{\"cert\":\"/c.pem\"}"), "delivery.tls.key:"},
        {ETSI_TLS("{\"key\":\"/k.pem\"}"), "delivery.tls.cert:"},
        {ETSI_TLS("{\"server_name\":\"a b\"}"), "delivery.tls.server_name:"},
        {ETSI_TLS("{\"pin\":1}"), "delivery.tls.pin:"},
        {"{\"id\":\"x\",\"delivery\":{\"type\":\"pull\",\"tls\":{}}}", "delivery.tls:"},
        /* a whole case whose CA file is missing: the files are checked last */
        {"{\"id\":\"x\",\"authority\":\"a\",\"warrant\":\"w\",\"from\":0,\"to\":"
         "\"2030-01-01T00:00:00Z\",\"targets\":[{\"ip\":\"1.2.3.4\"}],\"delivery\":{\"type\":"
         "\"etsi\",\"address\":\"h:1\",\"country\":\"XX\",\"tls\":{\"ca\":"
         "\"/nonexistent/ca.pem\"}}}", "delivery.tls.ca: /nonexistent/ca.pem:"},
#undef ETSI_TLS
    };
    struct ic_case *c = malloc(sizeof *c);
    char err[RW_ERRSZ];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ic_case_parse(bad[i].doc, strlen(bad[i].doc), 0, c, err);
        if (rc != RW_EINPUT || strncmp(err, bad[i].field, strlen(bad[i].field)))
            fail_msg("%s: %d '%s', want a message starting with '%s'", bad[i].doc, rc, err,
                     bad[i].field);
    }
    const char *good = "{\"id\":\"LI-1\",\"authority\":\"a\",\"warrant\":\"w\",\"from\":0,"
                       "\"to\":\"2030-01-01T00:00:00Z\",\"targets\":[{\"ip\":\"192.0.2.7\"},"
                       "{\"prefix\":\"2001:db8:7::/48\"},{\"mac\":\"00:11:22:33:44:55\"},"
                       "{\"user\":\"alice\"}],\"filter\":\"tcp\"}";
    assert_int_equal(ic_case_parse(good, strlen(good), 0, c, err), 0);
    char bpf[512];
    assert_int_equal(ic_case_bpf(c, bpf, sizeof bpf, err), 0);
    assert_string_equal(bpf, "(host 192.0.2.7 or net 2001:db8:7::/48 or ether host "
                             "00:11:22:33:44:55) and (tcp)");
    /* the record reads back as written */
    char *s = ic_case_json(c, 0);
    struct ic_case *d = malloc(sizeof *d);
    assert_int_equal(ic_case_load(s, strlen(s), d, err), 0);
    assert_int_equal(d->ntargets, 4);
    assert_string_equal(d->targets[3].user, "alice");
    free(s);
    /* a stored record names its TLS files as given, without reading them */
    const char *stored = "{\"id\":\"LI-2\",\"authority\":\"a\",\"warrant\":\"w\",\"from\":"
                         "\"2026-01-01T00:00:00Z\",\"to\":\"2030-01-01T00:00:00Z\",\"targets\":"
                         "[{\"ip\":\"192.0.2.7\"}],\"delivery\":{\"type\":\"etsi\",\"address\":"
                         "\"agency.example:5000\",\"country\":\"XX\",\"tls\":{\"ca\":"
                         "\"/gone/ca.pem\",\"cert\":\"/gone/c.pem\",\"key\":\"/gone/c.key\","
                         "\"server_name\":\"li.agency.example\"}},\"created\":"
                         "\"2026-01-01T00:00:00Z\",\"created_by\":\"x\"}";
    assert_int_equal(ic_case_load(stored, strlen(stored), d, err), 0);
    assert_true(d->tls);
    assert_string_equal(d->tls_ca, "/gone/ca.pem");
    assert_string_equal(d->tls_key, "/gone/c.key");
    assert_string_equal(d->tls_server_name, "li.agency.example");
    s = ic_case_json(d, 0);
    assert_non_null(strstr(s, "\"tls\":{\"ca\":\"/gone/ca.pem\",\"cert\":\"/gone/c.pem\","
                              "\"key\":\"/gone/c.key\",\"server_name\":\"li.agency.example\"}"));
    free(s);
    free(d);
    free(c);
}

/* ---- the pull stream ---- */

static void test_pull_roundtrip(void **state)
{
    (void)state;
    uint8_t *buf = malloc(1 << 20), data[300];
    size_t n = ic_ng_shb(buf);
    n += ic_ng_idb(buf + n, 1, 65535, "live");
    for (int i = 0; i < 300; i++)
        data[i] = (uint8_t)i;
    for (uint64_t s = 1; s <= 50; s++)
        n += ic_ng_epb(buf + n, 0, (int64_t)s * 1000, data, (uint32_t)(s * 5), 300, s);
    n += ic_ng_note(buf + n, 0, 1, "dropped 3");
    /* fed in pieces of every size from 1 to 64 bytes: the same events */
    for (size_t step = 1; step <= 64; step += 7) {
        ic_ng_parser_t *p = ic_ng_parser_new();
        char err[RW_ERRSZ];
        uint64_t seq = 0;
        int notes = 0;
        for (size_t at = 0; at < n; at += step) {
            assert_int_equal(ic_ng_feed(p, buf + at, n - at < step ? n - at : step, err), 0);
            struct ic_ng_event ev;
            size_t used;
            while (ic_ng_next(p, &ev, &used, err) == 1) {
                if (ev.kind == IC_NG_PACKET) {
                    assert_int_equal(ev.seq, seq + 1);
                    assert_int_equal(ev.caplen, ev.seq * 5);
                    assert_int_equal(ev.ts, (int64_t)ev.seq * 1000);
                    assert_memory_equal(ev.data, data, ev.caplen);
                    seq = ev.seq;
                }
                if (ev.kind == IC_NG_NOTE) {
                    assert_string_equal(ev.note, "dropped 3");
                    notes++;
                }
                ic_ng_consume(p, used);
            }
        }
        assert_int_equal(seq, 50);
        assert_int_equal(notes, 1);
        assert_string_equal(ic_ng_iface(p, 0)->name, "live");
        ic_ng_parser_free(p);
    }
    free(buf);
}

/* ---- a spool ---- */

static void test_spool(void **state)
{
    (void)state;
    char dir[] = "/tmp/rw-spool-XXXXXX", err[RW_ERRSZ], path[128];
    assert_non_null(mkdtemp(dir));
    uint8_t rec[1024], data[100];
    memset(data, 0xab, sizeof data);
    /* two files, 1..30 and 31..60, and a torn record after them */
    for (int f = 0; f < 2; f++) {
        snprintf(path, sizeof path, "%s/%020d.rws", dir, f * 30 + 1);
        FILE *fp = fopen(path, "wb");
        for (int s = f * 30 + 1; s <= f * 30 + 30; s++) {
            size_t n = ic_spool_rec_put(rec, (uint64_t)s, s, 1, 65535, "p", data, 60, 100);
            fwrite(rec, 1, n, fp);
        }
        if (f == 1)
            fwrite(rec, 1, 20, fp);
        fclose(fp);
    }
    uint64_t next, bytes;
    assert_int_equal(ic_spool_count(dir, &next, &bytes, err), 0);
    assert_int_equal(next, 61);
    ic_spool_reader_t *r;
    struct ic_spool_rec x;
    assert_int_equal(ic_spool_reader_open(dir, 25, &r, err), 0);
    for (uint64_t s = 26; s <= 60; s++) {
        assert_int_equal(ic_spool_next(r, 60, &x, err), 1);
        assert_int_equal(x.seq, s);
        assert_string_equal(x.point, "p");
        assert_int_equal(x.caplen, 60);
    }
    assert_int_equal(ic_spool_next(r, 60, &x, err), 0);
    ic_spool_reader_close(r);
    /* recovery cuts the torn record */
    assert_int_equal(ic_spool_recover(dir, &next, &bytes, err), 0);
    assert_int_equal(next, 61);
    /* only up to what is synced */
    assert_int_equal(ic_spool_reader_open(dir, 0, &r, err), 0);
    for (int s = 1; s <= 10; s++)
        assert_int_equal(ic_spool_next(r, 10, &x, err), 1);
    assert_int_equal(ic_spool_next(r, 10, &x, err), 0);
    ic_spool_reader_close(r);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_radius_good),   cmocka_unit_test(test_radius_bad),
        cmocka_unit_test(test_case_fields),   cmocka_unit_test(test_pull_roundtrip),
        cmocka_unit_test(test_spool),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
