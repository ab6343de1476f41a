/* test_hold.c -- unit tests for archive/hold.c and archive/retention.c: legal holds placed and released; retention keeps held segments. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/rw.h"
#include "index/index.h"
#include "query/query.h"
#include "query/read.h"

#define S RW_NS_PER_SEC
#define MS 1000000LL
#define SEC0 1714572000u /* 2024-05-01T14:00:00Z */
#define T0 ((int64_t)SEC0 * S)

/* The archive written by write_archive(): two points, a packet every
 * STEP_MS per point for NSEC seconds (beta 5 ms after alpha), one segment
 * per point and second of capture time. */
#define NSEC 8
#define STEP_MS 10
#define PER_SEG (1000 / STEP_MS)
#define CAPLEN 1000
static const char *points[2] = {"alpha", "beta"};

/* ---- fixture: a fresh archive directory per test ---- */

struct fx {
    char tmp[64];
    char dir[128];
    arc_t *a;
};

static arc_t *open_ok(const char *dir, uint64_t quota)
{
    char err[RW_ERRSZ] = "";
    struct arc_opts o;
    arc_t *a = NULL;
    arc_opts_default(&o);
    o.segment_ns = S;
    o.sync = 0;
    o.quota_bytes = quota;
    int rc = arc_open(dir, &o, &a, err);
    if (rc != 0)
        fail_msg("arc_open(%s): %d %s", dir, rc, err);
    return a;
}

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->tmp, sizeof f->tmp, "/tmp/test_hold-XXXXXX");
    if (!f || !mkdtemp(f->tmp))
        return -1;
    snprintf(f->dir, sizeof f->dir, "%s/arch", f->tmp);
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
    arc_close(f->a);
    nftw(f->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

/* ---- packets ---- */

/* Ethernet / IPv4 / UDP 10.0.0.1:53 -> 10.0.0.2:5353, CAPLEN bytes. */
static void mkpkt(uint8_t *b)
{
    memset(b, 0, CAPLEN);
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    memcpy(b, macs, 12);
    rw_put_be16(b + 12, 0x0800);
    uint8_t *ip = b + 14;
    ip[0] = 0x45;
    rw_put_be16(ip + 2, CAPLEN - 14);
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, (uint8_t[]){10, 0, 0, 1, 10, 0, 0, 2}, 8);
    rw_put_be16(ip + 20, 53);
    rw_put_be16(ip + 22, 5353);
    rw_put_be16(ip + 24, CAPLEN - 34);
}

static int64_t pkt_ts(int point, int sec, int k)
{
    return T0 + (int64_t)sec * S + (int64_t)k * STEP_MS * MS + point * 5 * MS;
}

/* Both points, interleaved as a capture would write them. */
static void write_archive(arc_t *a)
{
    char err[RW_ERRSZ] = "";
    arc_pw_t *pw[2];
    uint8_t pkt[CAPLEN];
    mkpkt(pkt);
    for (int p = 0; p < 2; p++)
        if (arc_pw_open(a, points[p], DLT_EN10MB, 65535, &pw[p], err) != 0)
            fail_msg("arc_pw_open: %s", err);
    for (int sec = 0; sec < NSEC; sec++)
        for (int k = 0; k < PER_SEG; k++)
            for (int p = 0; p < 2; p++) {
                int64_t ts = pkt_ts(p, sec, k);
                if (arc_pw_add(pw[p], (uint32_t)(ts / S), (uint32_t)(ts % S), CAPLEN, CAPLEN, pkt,
                               err) != 0)
                    fail_msg("arc_pw_add: %s", err);
            }
    for (int p = 0; p < 2; p++) {
        assert_int_equal(arc_pw_packets(pw[p]), NSEC * PER_SEG);
        if (arc_pw_close(pw[p], err) != 0)
            fail_msg("arc_pw_close: %s", err);
    }
}

/* The file of point p's segment for second sec of capture time. */
static void seg_path(const struct fx *f, int p, int sec, char *out, size_t n)
{
    char rel[ARC_SEG_REL_MAX];
    assert_int_equal(arc_segname_make(points[p], pkt_ts(p, sec, 0), 0, rel, sizeof rel, NULL, 0),
                     0);
    snprintf(out, n, "%s/%s", f->dir, rel);
}

static int seg_exists(const struct fx *f, int p, int sec)
{
    char path[512];
    struct stat st;
    seg_path(f, p, sec, path, sizeof path);
    if (stat(path, &st) == 0)
        return 1;
    assert_int_equal(errno, ENOENT);
    return 0;
}

/* Does the catalogue still list point p's segment for second sec? */
static int seg_listed(const struct qry_segment *v, size_t n, int p, int sec)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(v[i].point, points[p]) && v[i].first == pkt_ts(p, sec, 0))
            return 1;
    return 0;
}

/* Packets the archive answers in [from, to). */
static int count_packets(arc_t *a, int64_t from, int64_t to)
{
    char err[RW_ERRSZ] = "";
    struct qry_spec sp = {.from = from, .to = to};
    struct qry_pkt pk;
    qry_t *q = NULL;
    int n = 0, rc;
    if ((rc = qry_new(arc_index(a), &sp, &q, err)) != 0)
        fail_msg("qry_new: %d %s", rc, err);
    while ((rc = qry_next(q, &pk, err)) == 1)
        n++;
    if (rc < 0)
        fail_msg("qry_next: %d %s", rc, err);
    qry_free(q);
    return n;
}

/* ---- holds ---- */

static void test_hold_ids(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    struct qry_hold *v;
    size_t n;
    f->a = open_ok(f->dir, 0);
    static const struct {
        int64_t from, to;
        const char *filter, *reason;
    } in[] = {
        {T0, T0 + 1, "", "one nanosecond"},
        {INT64_MIN, INT64_MAX, "host 10.0.0.1", "everything"},
        {-5 * S, T0, "port 25\tand not tcp", "case 2026-17: 100% \"quoted\"\n"},
    };
    uint64_t ids[3];
    for (int i = 0; i < 3; i++) {
        struct idx_hold h = {.from = in[i].from, .to = in[i].to, .created = T0 + i};
        snprintf(h.filter, sizeof h.filter, "%s", in[i].filter);
        snprintf(h.reason, sizeof h.reason, "%s", in[i].reason);
        if (arc_hold_add(f->a, &h, err) != 0)
            fail_msg("arc_hold_add %d: %s", i, err);
        assert_true(h.id > 0);
        if (i > 0)
            assert_true(h.id > ids[i - 1]);
        ids[i] = h.id;
    }
    assert_int_equal(qry_holds(arc_index(f->a), &v, &n, err), 0);
    assert_int_equal(n, 3);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(v[i].id, ids[i]);
        assert_true(v[i].from == in[i].from && v[i].to == in[i].to);
        assert_true(v[i].created == T0 + i);
        assert_string_equal(v[i].filter, in[i].filter);
        assert_string_equal(v[i].reason, in[i].reason);
    }
    free(v);

    /* a backwards or empty window is refused, and nothing is added */
    static const int64_t bad[][2] = {{T0 + 1, T0}, {T0, T0}, {INT64_MAX, INT64_MIN}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct idx_hold h = {.from = bad[i][0], .to = bad[i][1]};
        err[0] = 0;
        assert_int_equal(arc_hold_add(f->a, &h, err), RW_EINPUT);
        assert_non_null(strstr(err, "from"));
    }

    /* release: 1, then 0 for the same id; 0 for one never placed */
    assert_int_equal(arc_hold_release(f->a, ids[2], err), 1);
    assert_int_equal(arc_hold_release(f->a, ids[2], err), 0);
    assert_int_equal(arc_hold_release(f->a, ids[2] + 100, err), 0);
    assert_int_equal(arc_hold_release(f->a, 0, err), 0);
    assert_int_equal(qry_holds(arc_index(f->a), &v, &n, err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, ids[0]);
    assert_int_equal(v[1].id, ids[1]);
    free(v);

    /* a released id is never given again, not even after a restart */
    struct idx_hold h = {.from = T0, .to = T0 + S};
    assert_int_equal(arc_hold_add(f->a, &h, err), 0);
    assert_true(h.id > ids[2]);
    uint64_t last = h.id;
    arc_close(f->a);
    f->a = open_ok(f->dir, 0);
    assert_int_equal(arc_hold_add(f->a, &h, err), 0);
    assert_true(h.id > last);
    assert_int_equal(qry_holds(arc_index(f->a), &v, &n, err), 0);
    assert_int_equal(n, 4);
    free(v);
}

/* ---- retention ---- */

/* Everything over a one-byte quota goes, except the segments with packets
 * in a held window; those go once the hold is released. */
static void test_retention_tiny_quota(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    struct qry_segment *v;
    size_t n;
    f->a = open_ok(f->dir, 0);
    write_archive(f->a);
    assert_int_equal(qry_segments(arc_index(f->a), RW_TIME_MIN, RW_TIME_MAX, NULL, &v, &n, err), 0);
    assert_int_equal(n, 2 * NSEC);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(v[i].open, 0);
        assert_int_equal(v[i].packets, PER_SEG);
    }
    free(v);
    /* no quota: retention deletes nothing */
    assert_int_equal(arc_retention_run(f->a, err), 0);

    /* seconds 2 and 3 of both points hold packets in [2.5 s, 3.2 s); the
     * filter does not narrow a hold */
    int64_t hfrom = T0 + 2 * S + 500 * MS, hto = T0 + 3 * S + 200 * MS;
    struct idx_hold h = {.from = hfrom, .to = hto};
    snprintf(h.filter, sizeof h.filter, "host 192.0.2.99");
    snprintf(h.reason, sizeof h.reason, "case 1");
    assert_int_equal(arc_hold_add(f->a, &h, err), 0);
    int held_pkts = count_packets(f->a, hfrom, hto);
    assert_int_equal(held_pkts, 2 * 70);

    /* a restart with a tiny quota (remembered by the archive) */
    arc_close(f->a);
    f->a = open_ok(f->dir, 1);
    assert_int_equal(arc_get_opts(f->a)->quota_bytes, 1);
    int rc = arc_retention_run(f->a, err);
    if (rc < 0)
        fail_msg("arc_retention_run: %d %s", rc, err);
    assert_int_equal(rc, 2 * NSEC - 4);
    assert_int_equal(qry_segments(arc_index(f->a), RW_TIME_MIN, RW_TIME_MAX, NULL, &v, &n, err), 0);
    assert_int_equal(n, 4);
    for (int p = 0; p < 2; p++)
        for (int sec = 0; sec < NSEC; sec++) {
            int held = sec == 2 || sec == 3;
            print_message("%s second %d: held %d, file %d\n", points[p], sec, held,
                          seg_exists(f, p, sec));
            assert_int_equal(seg_exists(f, p, sec), held);
            assert_int_equal(seg_listed(v, n, p, sec), held);
        }
    free(v);
    /* the held window answers every packet */
    assert_int_equal(count_packets(f->a, hfrom, hto), held_pkts);
    assert_int_equal(count_packets(f->a, RW_TIME_MIN, RW_TIME_MAX), 4 * PER_SEG);
    /* nothing more to delete while the hold stands */
    assert_int_equal(arc_retention_run(f->a, err), 0);

    /* released: the next pass deletes them, and their day directory */
    assert_int_equal(arc_hold_release(f->a, h.id, err), 1);
    assert_int_equal(arc_retention_run(f->a, err), 4);
    assert_int_equal(qry_segments(arc_index(f->a), RW_TIME_MIN, RW_TIME_MAX, NULL, &v, &n, err), 0);
    assert_int_equal(n, 0);
    free(v);
    for (int p = 0; p < 2; p++)
        for (int sec = 0; sec < NSEC; sec++)
            assert_int_equal(seg_exists(f, p, sec), 0);
    char day[512];
    struct stat st;
    snprintf(day, sizeof day, "%s/segments/alpha/2024-05-01", f->dir);
    assert_int_equal(stat(day, &st), -1);
    assert_int_equal(count_packets(f->a, RW_TIME_MIN, RW_TIME_MAX), 0);
    assert_int_equal(arc_hold_release(f->a, h.id, err), 0);
}

/* With a quota in force while writing, retention runs at every seal: the
 * oldest unheld segments go first, the held ones stay whatever their age,
 * and disk use ends within a segment of the quota. */
static void test_retention_while_writing(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    struct qry_status st;
    /* about 100 KiB a segment; the index takes some 20 KiB: room for it
     * and six segments, two of them held */
    const uint64_t seg_bytes = 24 + PER_SEG * (16 + CAPLEN), quota = (64u << 10) + 6 * seg_bytes;
    f->a = open_ok(f->dir, quota);
    struct idx_hold h = {.from = T0 + 1 * S + 300 * MS, .to = T0 + 1 * S + 301 * MS};
    assert_int_equal(arc_hold_add(f->a, &h, err), 0);
    write_archive(f->a);
    int rc = arc_retention_run(f->a, err);
    if (rc < 0)
        fail_msg("arc_retention_run: %d %s", rc, err);

    /* the held second survives; of the rest, only the newest */
    int kept[2][NSEC], nkept = 0, oldest_kept = NSEC;
    for (int p = 0; p < 2; p++)
        for (int sec = 0; sec < NSEC; sec++) {
            kept[p][sec] = seg_exists(f, p, sec);
            print_message("%s second %d: file %d\n", points[p], sec, kept[p][sec]);
            if (sec == 1) {
                assert_int_equal(kept[p][sec], 1);
                continue;
            }
            nkept += kept[p][sec];
            if (kept[p][sec] && sec < oldest_kept)
                oldest_kept = sec;
        }
    assert_true(nkept >= 1);
    assert_true(nkept <= 2 * NSEC - 6); /* several went */
    for (int sec = oldest_kept + 1; sec < NSEC; sec++) /* no hole among the newest */
        for (int p = 0; p < 2; p++)
            if (sec != 1 && !kept[p][sec])
                fail_msg("%s second %d deleted though second %d is kept", points[p], sec,
                         oldest_kept);
    assert_int_equal(count_packets(f->a, h.from, h.to), 1);

    assert_int_equal(qry_status_get(arc_index(f->a), NULL, NULL, &st, err), 0);
    assert_int_equal(st.total.segments, (uint64_t)nkept + 2);
    assert_int_equal(st.total.packets, ((uint64_t)nkept + 2) * PER_SEG);
    assert_int_equal(st.holds, 1);
    uint64_t used = st.index_bytes + st.total.stored_bytes;
    print_message("quota %llu, used %llu (index %llu)\n", (unsigned long long)quota,
                  (unsigned long long)used, (unsigned long long)st.index_bytes);
    assert_true(used <= quota + seg_bytes);
    qry_status_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hold_ids, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_tiny_quota, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retention_while_writing, setup, teardown),
    };
    return cmocka_run_group_tests_name("archive/hold", tests, NULL, NULL);
}
