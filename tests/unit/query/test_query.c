/* test_query.c -- unit tests for query/query.c over a small archive built with archive/archive.h, judged by pcap_offline_filter. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <ftw.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "capture/cap.h"
#include "common/rw.h"
#include "index/index.h"
#include "index/index_int.h" /* raw writes of damaged postings */
#include "query/query.h"

#define S RW_NS_PER_SEC
#define SEC0 1714572000u
#define NPKT 400 /* per point */

/* ---- the archive: two Ethernet points, several segments each ---- */

struct rec {
    int point; /* 0 = "alpha", 1 = "beta" */
    uint32_t sec, frac, caplen, len;
    uint8_t data[128];
};

static struct rec recs[2][NPKT]; /* capture order per point */
static char tmpdir[64], archdir[128];
static arc_t *arch;
static idx_t *ix;

static const char *hosts[] = {"10.0.0.1", "10.0.0.2", "10.0.1.7", "192.168.5.5", "172.16.0.1"};
static const unsigned ports[] = {80, 443, 53, 22, 8080, 40000, 123};

static uint32_t rng = 12345;
static uint32_t rnd(void)
{
    rng = rng * 1103515245u + 12345u;
    return rng >> 8;
}

/* Ethernet / IPv4 / TCP, UDP or ICMP with pseudo-random addresses and ports. */
static void mkpkt(struct rec *r)
{
    uint8_t *b = r->data;
    memset(b, 0, sizeof r->data);
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    memcpy(b, macs, 12);
    rw_put_be16(b + 12, 0x0800);
    uint8_t *ip = b + 14;
    unsigned kind = rnd() % 3, proto = kind == 0 ? 6 : kind == 1 ? 17 : 1;
    unsigned l4 = proto == 6 ? 20 : 8, payload = rnd() % 40;
    ip[0] = 0x45;
    rw_put_be16(ip + 2, (uint16_t)(20 + l4 + payload));
    ip[8] = 64;
    ip[9] = (uint8_t)proto;
    const char *s = hosts[rnd() % 5], *d = hosts[rnd() % 5];
    inet_pton(AF_INET, s, ip + 12);
    inet_pton(AF_INET, d, ip + 16);
    uint8_t *t = ip + 20;
    if (proto == 1) {
        t[0] = 8; /* echo request */
    } else {
        rw_put_be16(t, (uint16_t)ports[rnd() % 7]);
        rw_put_be16(t + 2, (uint16_t)ports[rnd() % 7]);
        if (proto == 6) {
            t[12] = 0x50;
            t[13] = 0x18;
        } else {
            rw_put_be16(t + 4, (uint16_t)(8 + payload));
        }
    }
    r->caplen = r->len = 14 + 20 + l4 + payload;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_query-XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(archdir, sizeof archdir, "%s/arch", tmpdir);
    struct arc_opts o;
    arc_opts_default(&o);
    o.segment_ns = 2 * S; /* roll every 2 s of capture time */
    o.sync = 0;
    if (arc_open(archdir, &o, &arch, err) != 0) {
        fprintf(stderr, "arc_open: %s\n", err);
        return -1;
    }
    arc_pw_t *pw[2];
    if (arc_pw_open(arch, "alpha", DLT_EN10MB, 65535, &pw[0], err) != 0 ||
        arc_pw_open(arch, "beta", DLT_EN10MB, 65535, &pw[1], err) != 0) {
        fprintf(stderr, "arc_pw_open: %s\n", err);
        return -1;
    }
    /* alpha: every 25 ms from SEC0, stepping back 300 ms every 37th packet;
     * beta: every 30 ms from SEC0 + 0.01 s, with some ties to alpha. The two
     * are interleaved in capture. */
    int64_t t[2] = {(int64_t)SEC0 * S, (int64_t)SEC0 * S + S / 100};
    for (int i = 0; i < NPKT; i++) {
        for (int p = 0; p < 2; p++) {
            struct rec *r = &recs[p][i];
            r->point = p;
            if (p == 0)
                t[0] += i % 37 == 36 ? -300 * 1000000LL : 25 * 1000000LL;
            else
                t[1] += i % 50 == 49 ? 0 : 30 * 1000000LL; /* a repeated timestamp */
            if (p == 1 && i == 200)
                t[1] = t[0]; /* a tie across points */
            r->sec = (uint32_t)(t[p] / S);
            r->frac = (uint32_t)(t[p] % S);
            mkpkt(r);
            if (arc_pw_add(pw[p], r->sec, r->frac, r->caplen, r->len, r->data, err) != 0) {
                fprintf(stderr, "arc_pw_add: %s\n", err);
                return -1;
            }
        }
    }
    if (arc_pw_close(pw[0], err) != 0 || arc_pw_close(pw[1], err) != 0) {
        fprintf(stderr, "arc_pw_close: %s\n", err);
        return -1;
    }
    ix = arc_index(arch);
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    arc_close(arch);
    nftw(tmpdir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    return 0;
}

static int64_t ts_of(const struct rec *r) { return (int64_t)r->sec * S + r->frac; }

/* ---- the judge: libpcap's filter over our own copy of the packets ---- */

struct expect {
    const struct rec *r[2 * NPKT];
    int n;
};

/* Expected answer: each point's matching packets in capture order, merged
 * by timestamp, ties to the point listed first (order[] maps our point
 * number to qry_points() index). */
static void judge(const char *filter, int64_t from, int64_t to, const int *want_point,
                  const int order[2], struct expect *e)
{
    pcap_t *dead = pcap_open_dead_with_tstamp_precision(DLT_EN10MB, 262144,
                                                        PCAP_TSTAMP_PRECISION_NANO);
    struct bpf_program prog;
    assert_int_equal(pcap_compile(dead, &prog, filter, 1, PCAP_NETMASK_UNKNOWN), 0);
    const struct rec *m[2][NPKT];
    int mn[2] = {0, 0};
    for (int p = 0; p < 2; p++) {
        if (want_point && !want_point[p])
            continue;
        for (int i = 0; i < NPKT; i++) {
            const struct rec *r = &recs[p][i];
            struct pcap_pkthdr h = {.caplen = r->caplen, .len = r->len};
            h.ts.tv_sec = r->sec;
            h.ts.tv_usec = r->frac;
            if (ts_of(r) >= from && ts_of(r) < to && pcap_offline_filter(&prog, &h, r->data))
                m[p][mn[p]++] = r;
        }
    }
    pcap_freecode(&prog);
    pcap_close(dead);
    int at[2] = {0, 0};
    e->n = 0;
    for (;;) {
        int best = -1;
        for (int qi = 0; qi < 2; qi++) {
            int p = order[0] == qi ? 0 : order[1] == qi ? 1 : -1;
            if (p < 0 || at[p] >= mn[p])
                continue;
            if (best < 0 || ts_of(m[p][at[p]]) < ts_of(m[best][at[best]]))
                best = p;
        }
        if (best < 0)
            break;
        e->r[e->n++] = m[best][at[best]++];
    }
}

/* What the last run() reported of damaged postings (qry_damage()). */
static size_t last_ndamage;
static struct qry_damage last_damage;
static char last_damage_desc[RW_ERRSZ];

/* Run a query; compare with the judge packet by packet. Returns the count. */
static int run(const char *filter, int64_t from, int64_t to, const char **points,
               uint64_t limit)
{
    char err[RW_ERRSZ] = "";
    struct qry_spec sp = {.from = from, .to = to, .filter = filter, .points = points,
                          .limit_packets = limit};
    qry_t *q = NULL;
    int rc = qry_new(ix, &sp, &q, err);
    if (rc != 0)
        fail_msg("qry_new('%s'): %d %s", filter, rc, err);
    int npts;
    const struct qry_point *pts = qry_points(q, &npts);
    int order[2] = {-1, -1}, want[2] = {points == NULL, points == NULL};
    for (int i = 0; i < npts; i++) {
        assert_int_equal(pts[i].dlt, DLT_EN10MB);
        assert_int_equal(pts[i].linktype, 1);
        if (!strcmp(pts[i].name, "alpha"))
            order[0] = i;
        else if (!strcmp(pts[i].name, "beta"))
            order[1] = i;
        else
            fail_msg("unexpected point %s", pts[i].name);
    }
    for (const char **p = points; p && *p; p++)
        want[!strcmp(*p, "beta")] = 1;
    struct expect *e = malloc(sizeof *e);
    judge(filter && *filter ? filter : "", from, to, want, order, e);
    if (limit && (uint64_t)e->n > limit)
        e->n = (int)limit;
    struct qry_pkt pk;
    int n = 0;
    while ((rc = qry_next(q, &pk, err)) == 1) {
        if (n >= e->n)
            fail_msg("'%s': extra packet %d (point %d, %u.%09u)", filter, n, pk.point, pk.sec,
                     pk.frac);
        const struct rec *r = e->r[n];
        if (pk.point != order[r->point] || pk.sec != r->sec || pk.frac != r->frac ||
            pk.caplen != r->caplen || pk.len != r->len || memcmp(pk.data, r->data, r->caplen))
            fail_msg("'%s': packet %d is point %d %u.%09u, expected point %d %u.%09u", filter, n,
                     pk.point, pk.sec, pk.frac, order[r->point], r->sec, r->frac);
        n++;
    }
    if (rc < 0)
        fail_msg("qry_next('%s'): %d %s", filter, rc, err);
    if (n != e->n)
        fail_msg("'%s': %d packets, libpcap judges %d", filter, n, e->n);
    assert_int_equal(qry_next(q, &pk, err), 0); /* stays at the end */
    const struct qry_damage *d = qry_damage(q, &last_ndamage, NULL);
    if (last_ndamage)
        last_damage = d[0];
    qry_damage_desc(q, last_damage_desc, sizeof last_damage_desc);
    free(e);
    qry_free(q);
    return n;
}

/* ---- tests ---- */

static void test_archive_shape(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    struct idx_seg *segs;
    size_t n;
    assert_int_equal(idx_seg_list(ix, RW_TIME_MIN, RW_TIME_MAX, &segs, &n, err), 0);
    assert_true(n >= 6); /* both points rolled several times */
    uint64_t total = 0;
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(segs[i].state, IDX_SEG_SEALED);
        total += segs[i].packets;
    }
    assert_int_equal(total, 2 * NPKT);
    free(segs);
}

static void test_filters(void **state)
{
    (void)state;
    const char *filters[] = {
        "", "host 10.0.0.1", "not host 10.0.0.1", "port 80", "tcp and not port 80",
        "udp or icmp", "net 10.0.0.0/16 and port 443", "src host 192.168.5.5",
        "dst port 53 or src port 22", "portrange 20-80", "ip", "ip6", "arp",
        "not (host 10.0.0.2 or host 172.16.0.1) and tcp", "icmp[icmptype] == icmp-echo",
        "host 10.0.0.1 and host 10.0.0.2", "ip proto 17", "len > 80", "host 8.8.8.8",
    };
    int total_all = -1;
    for (size_t i = 0; i < sizeof filters / sizeof filters[0]; i++) {
        int n = run(filters[i], RW_TIME_MIN, RW_TIME_MAX, NULL, 0);
        if (i == 0)
            total_all = n;
    }
    assert_int_equal(total_all, 2 * NPKT);
    /* NULL filter is "all" too */
    assert_int_equal(run(NULL, RW_TIME_MIN, RW_TIME_MAX, NULL, 0), 2 * NPKT);
}

static void test_windows(void **state)
{
    (void)state;
    int64_t t0 = (int64_t)SEC0 * S;
    assert_int_equal(run("", t0, t0 + 1, NULL, 0), 0);
    int mid = run("", t0 + 3 * S + 123456789, t0 + 7 * S, NULL, 0);
    assert_true(mid > 0 && mid < 2 * NPKT);
    run("tcp", t0 + 3 * S + 123456789, t0 + 7 * S, NULL, 0);
    run("not port 53", t0 + 5 * S, RW_TIME_MAX, NULL, 0);
    run("", RW_TIME_MIN, t0 + 2 * S, NULL, 0);
    /* the exact timestamp of a packet: from is inclusive, to exclusive */
    const struct rec *r = &recs[0][100];
    int one = run("", ts_of(r), ts_of(r) + 1, (const char *[]){"alpha", NULL}, 0);
    assert_true(one >= 1);
    assert_int_equal(run("", ts_of(r) - 1, ts_of(r), (const char *[]){"alpha", NULL}, 0) >= 0, 1);
    /* after everything */
    assert_int_equal(run("", t0 + 3600 * S, RW_TIME_MAX, NULL, 0), 0);

    /* empty or inverted window: refused */
    char err[RW_ERRSZ] = "";
    qry_t *q = (qry_t *)0x1;
    struct qry_spec sp = {.from = t0, .to = t0, .filter = ""};
    assert_int_equal(qry_new(ix, &sp, &q, err), RW_EINPUT);
    assert_null(q);
    assert_non_null(strstr(err, "window"));
    sp.from = t0 + 1;
    assert_int_equal(qry_new(ix, &sp, &q, err), RW_EINPUT);
}

static void test_points_and_limit(void **state)
{
    (void)state;
    assert_int_equal(run("", RW_TIME_MIN, RW_TIME_MAX, (const char *[]){"alpha", NULL}, 0), NPKT);
    assert_int_equal(run("", RW_TIME_MIN, RW_TIME_MAX, (const char *[]){"beta", NULL}, 0), NPKT);
    run("udp", RW_TIME_MIN, RW_TIME_MAX, (const char *[]){"beta", "alpha", NULL}, 0);
    run("host 10.0.0.1", RW_TIME_MIN, RW_TIME_MAX, (const char *[]){"beta", NULL}, 0);
    assert_int_equal(run("", RW_TIME_MIN, RW_TIME_MAX, NULL, 3), 3);
    assert_int_equal(run("tcp", RW_TIME_MIN, RW_TIME_MAX, NULL, 17), 17);
    assert_int_equal(run("host 8.8.8.8", RW_TIME_MIN, RW_TIME_MAX, NULL, 5), 0);

    char err[RW_ERRSZ] = "";
    qry_t *q = (qry_t *)0x1;
    struct qry_spec sp = {.from = RW_TIME_MIN, .to = RW_TIME_MAX,
                          .points = (const char *[]){"alpha", "gamma", NULL}};
    assert_int_equal(qry_new(ix, &sp, &q, err), RW_EINPUT);
    assert_null(q);
    assert_non_null(strstr(err, "gamma"));
    assert_non_null(strstr(err, "alpha")); /* lists what the archive has */
    assert_non_null(strstr(err, "beta"));
}

/* Within a point, capture order wins over timestamps; across points, the
 * merge is by timestamp. Checked on the raw answer, independent of judge(). */
static void test_order(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    struct qry_spec sp = {.from = RW_TIME_MIN, .to = RW_TIME_MAX, .filter = ""};
    qry_t *q;
    assert_int_equal(qry_new(ix, &sp, &q, err), 0);
    int npts;
    const struct qry_point *pts = qry_points(q, &npts);
    assert_int_equal(npts, 2);
    int next[2] = {0, 0}, backsteps = 0;
    int64_t last = RW_TIME_MIN;
    struct qry_pkt pk;
    while (qry_next(q, &pk, err) == 1) {
        int p = !strcmp(pts[pk.point].name, "beta");
        const struct rec *r = &recs[p][next[p]++];
        assert_int_equal(pk.sec, r->sec);
        assert_int_equal(pk.frac, r->frac);
        int64_t ts = (int64_t)pk.sec * S + pk.frac;
        if (ts < last)
            backsteps++; /* only where a point itself steps back */
        last = ts;
    }
    assert_int_equal(next[0], NPKT);
    assert_int_equal(next[1], NPKT);
    assert_true(backsteps > 0);
    qry_free(q);
}

struct cancel_ctx {
    int calls, at; /* cancel on call number `at` (0: never) */
};

static int cancel_cb(void *arg)
{
    struct cancel_ctx *c = arg;
    return ++c->calls == c->at;
}

/* qry_set_cancel(): asked at each segment and every 1024 packets even when
 * nothing matches, and a yes ends the query with RW_ESTOP. */
static void test_cancel(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    /* 'greater 100000' matches nothing and the index cannot narrow it: a
     * full scan with no match to return between the checks. */
    struct qry_spec sp = {.from = RW_TIME_MIN, .to = RW_TIME_MAX, .filter = "greater 100000"};
    struct qry_pkt pk;
    qry_t *q;
    struct cancel_ctx never = {0, 0}, second = {0, 2};
    assert_int_equal(qry_new(ix, &sp, &q, err), 0);
    qry_set_cancel(q, cancel_cb, &never);
    assert_int_equal(qry_next(q, &pk, err), 0);
    qry_free(q);
    assert_true(never.calls >= 4); /* both points have several segments */
    assert_int_equal(qry_new(ix, &sp, &q, err), 0);
    qry_set_cancel(q, cancel_cb, &second);
    assert_int_equal(qry_next(q, &pk, err), RW_ESTOP);
    assert_string_equal(err, "query cancelled");
    assert_int_equal(second.calls, 2);
    qry_free(q);
    /* a query nobody cancels answers as before */
    struct cancel_ctx late = {0, 1000000};
    sp.filter = "";
    assert_int_equal(qry_new(ix, &sp, &q, err), 0);
    qry_set_cancel(q, cancel_cb, &late);
    int n = 0;
    while (qry_next(q, &pk, err) == 1)
        n++;
    assert_int_equal(n, 2 * NPKT);
    qry_free(q);
}

static void test_bad_filter(void **state)
{
    (void)state;
    const char *bad[] = {"port 99999", "host", "tcp and", "frobnicate 3", "ether host zz"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        /* libpcap's own message, for the judge */
        pcap_t *dead = pcap_open_dead(DLT_EN10MB, 262144);
        struct bpf_program prog;
        assert_int_equal(pcap_compile(dead, &prog, bad[i], 1, PCAP_NETMASK_UNKNOWN), -1);
        char want[PCAP_ERRBUF_SIZE];
        snprintf(want, sizeof want, "%s", pcap_geterr(dead));
        pcap_close(dead);

        char err[RW_ERRSZ] = "";
        qry_t *q = (qry_t *)0x1;
        struct qry_spec sp = {.from = RW_TIME_MIN, .to = RW_TIME_MAX, .filter = bad[i]};
        assert_int_equal(qry_new(ix, &sp, &q, err), RW_EINPUT);
        assert_null(q);
        if (!strstr(err, want))
            fail_msg("filter '%s': message '%s' lacks libpcap's '%s'", bad[i], err, want);
        assert_non_null(strstr(err, bad[i]));
        enum qry_step step = QRY_STEP_SPEC;
        assert_int_equal(qry_new_ex(ix, &sp, &q, &step, err), RW_EINPUT);
        assert_int_equal(step, QRY_STEP_FILTER);
    }
}

/* qry_new_ex() names the step that failed from where it failed, whatever
 * the message says: an unknown point called "filter" is a bad spec. */
static void test_failed_step(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    qry_t *q = (qry_t *)0x1;
    enum qry_step step = QRY_STEP_FILTER;
    struct qry_spec sp = {.from = RW_TIME_MIN, .to = RW_TIME_MAX, .filter = "tcp",
                          .points = (const char *[]){"filter", NULL}};
    assert_int_equal(qry_new_ex(ix, &sp, &q, &step, err), RW_EINPUT);
    assert_null(q);
    assert_non_null(strstr(err, "filter"));
    assert_int_equal(step, QRY_STEP_SPEC);
    /* a bad point wins over a bad filter: points are checked first */
    sp.filter = "host and";
    step = QRY_STEP_FILTER;
    assert_int_equal(qry_new_ex(ix, &sp, &q, &step, err), RW_EINPUT);
    assert_int_equal(step, QRY_STEP_SPEC);
    sp.points = NULL;
    assert_int_equal(qry_new_ex(ix, &sp, &q, &step, err), RW_EINPUT);
    assert_int_equal(step, QRY_STEP_FILTER);
    /* an empty window; and success leaves QRY_STEP_SPEC */
    sp = (struct qry_spec){.from = 5, .to = 5, .filter = "filter"};
    step = QRY_STEP_FILTER;
    assert_int_equal(qry_new_ex(ix, &sp, &q, &step, err), RW_EINPUT);
    assert_int_equal(step, QRY_STEP_SPEC);
    sp = (struct qry_spec){.from = RW_TIME_MIN, .to = RW_TIME_MAX, .filter = "tcp"};
    step = QRY_STEP_FILTER;
    assert_int_equal(qry_new_ex(ix, &sp, &q, &step, err), 0);
    assert_int_equal(step, QRY_STEP_SPEC);
    qry_free(q);
}

/* A reader opened after the writer closed gives the same answers. */
static void test_reader(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    idx_t *rd;
    assert_int_equal(idx_open(archdir, IDX_READ, &rd, err), 0);
    idx_t *w = ix;
    ix = rd;
    run("", RW_TIME_MIN, RW_TIME_MAX, NULL, 0);
    run("tcp and not port 80", RW_TIME_MIN, RW_TIME_MAX, NULL, 0);
    ix = w;
    idx_close(rd);
}

/* ---- damaged postings ---- */

static const char garbage[] = "\x01\x02 not a roaring bitmap";

struct saved {
    uint8_t k[32];
    size_t kl, vl;
    int had;
    uint8_t v[1 << 14];
};

/* Remember a posting key's value, then damage it with the index's own merge
 * operator folding the operands: put (optional) then merge (optional). */
static void damage(struct saved *sv, int kind, const uint8_t *val, size_t len, uint64_t seg,
                   const char *put, size_t putlen, const char *merge, size_t mlen)
{
    char err[RW_ERRSZ] = "";
    sv->k[0] = 'P';
    sv->k[1] = (uint8_t)kind;
    if (len) /* val may be NULL for the empty-valued kinds */
        memcpy(sv->k + 2, val, len);
    rw_put_be64(sv->k + 2 + len, seg);
    sv->kl = 2 + len + 8;
    sv->had = idx_get_raw(ix, sv->k, sv->kl, sv->v, sizeof sv->v, &sv->vl, err);
    assert_true(sv->had >= 0 && sv->vl <= sizeof sv->v);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (put)
        rocksdb_writebatch_put(b, (const char *)sv->k, sv->kl, put, putlen);
    if (merge)
        rocksdb_writebatch_merge(b, (const char *)sv->k, sv->kl, merge, mlen);
    assert_int_equal(idx_write_batch(ix, b, 0, err), 0);
    rocksdb_writebatch_destroy(b);
}

static void restore(const struct saved *sv)
{
    char err[RW_ERRSZ] = "";
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (sv->had)
        rocksdb_writebatch_put(b, (const char *)sv->k, sv->kl, (const char *)sv->v, sv->vl);
    else
        rocksdb_writebatch_delete(b, (const char *)sv->k, sv->kl);
    assert_int_equal(idx_write_batch(ix, b, 0, err), 0);
    rocksdb_writebatch_destroy(b);
}

/* Run filters (compared with libpcap's judgement by run()) and check that
 * the query reported the damaged posting of segment seg, kind, or none. */
static void run_damaged(const char *const *filters, uint64_t seg, int kind)
{
    char want[64];
    snprintf(want, sizeof want, "segment %llu ", (unsigned long long)seg);
    for (const char *const *f = filters; *f; f++) {
        run(*f, RW_TIME_MIN, RW_TIME_MAX, NULL, 0);
        if (kind < 0) {
            if (last_ndamage != 0)
                fail_msg("'%s': damage reported where none was met: %s", *f, last_damage_desc);
            continue;
        }
        if (last_ndamage != 1 || last_damage.seg != seg || last_damage.kind != kind)
            fail_msg("'%s': %zu damaged postings reported (first: segment %llu kind %d), "
                     "expected segment %llu kind %d", *f, last_ndamage,
                     (unsigned long long)last_damage.seg, last_damage.kind,
                     (unsigned long long)seg, kind);
        if (!strstr(last_damage_desc, want) || !strstr(last_damage_desc, last_damage.path))
            fail_msg("'%s': the damage line does not name the segment: %s", *f,
                     last_damage_desc);
    }
}

/* A posting that does not decode, whichever way it got so and whatever the
 * filter makes of it (and, or, not; an unparsed or deep set), must not cost
 * a packet: the segment is read in full and the filter judges every packet
 * (run() compares with libpcap), and the query reports the segment. */
static void test_damaged_postings(void **state)
{
    (void)state;
    char err[RW_ERRSZ] = "";
    struct idx_seg *segs;
    size_t n;
    assert_int_equal(idx_seg_list(ix, RW_TIME_MIN, RW_TIME_MAX, &segs, &n, err), 0);
    assert_true(n >= 4);
    uint64_t s0 = segs[0].id, s1 = segs[1].id, s2 = segs[2].id, s3 = segs[n - 1].id;
    free(segs);
    struct saved *sv = calloc(1, sizeof *sv);
    uint8_t p80[2] = {0, 80}, h1[4] = {10, 0, 0, 1};
    size_t n1;
    roaring_bitmap_t *bm = roaring_bitmap_create();
    roaring_bitmap_add(bm, 0);
    n1 = roaring_bitmap_portable_size_in_bytes(bm);
    char *one = malloc(n1);
    roaring_bitmap_portable_serialize(bm, one);
    roaring_bitmap_free(bm);

    /* a garbage value, then a good operand of a later commit */
    damage(sv, IDX_T_PORT, p80, 2, s0, garbage, sizeof garbage, one, n1);
    run_damaged((const char *const[]){"port 80", "not port 80", "tcp and port 80",
                                      "port 80 or host 10.0.0.2", "not (port 80 and udp)",
                                      "portrange 70-90 and not host 10.0.0.1", NULL},
                s0, IDX_T_PORT);
    run_damaged((const char *const[]){"host 10.0.0.1", "port 443", NULL}, 0, -1);
    restore(sv);
    /* a good value holding one packet, then a garbage operand for the rest */
    damage(sv, IDX_T_IP4, h1, 4, s1, one, n1, garbage, sizeof garbage);
    run_damaged((const char *const[]){"host 10.0.0.1", "not host 10.0.0.1",
                                      "net 10.0.0.0/24 and tcp", "udp or host 10.0.0.1", NULL},
                s1, IDX_T_IP4);
    restore(sv);
    /* the stored value is garbage, nothing merged onto it */
    damage(sv, IDX_T_IP4, h1, 4, s2, garbage, sizeof garbage, NULL, 0);
    run_damaged((const char *const[]){"host 10.0.0.1 and not port 53", NULL}, s2, IDX_T_IP4);
    restore(sv);
    /* the unparsed set, which every indexed plan reads */
    damage(sv, IDX_K_UNPARSED, NULL, 0, s3, NULL, 0, garbage, sizeof garbage);
    run_damaged((const char *const[]){"host 10.0.0.2", "not udp", NULL}, s3, IDX_K_UNPARSED);
    run_damaged((const char *const[]){"", "len > 80", NULL}, 0, -1); /* scans read no postings */
    restore(sv);
    /* the deep set, read only under a 'not' */
    damage(sv, IDX_K_DEEP, NULL, 0, s3, NULL, 0, garbage, sizeof garbage);
    run_damaged((const char *const[]){"not host 10.0.0.2", "tcp and not port 80", NULL}, s3,
                IDX_K_DEEP);
    run_damaged((const char *const[]){"host 10.0.0.2", NULL}, 0, -1);
    restore(sv);
    run_damaged((const char *const[]){"port 80", "not host 10.0.0.2", NULL}, 0, -1);
    free(one);
    free(sv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_archive_shape),
        cmocka_unit_test(test_filters),
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_points_and_limit),
        cmocka_unit_test(test_order),
        cmocka_unit_test(test_cancel),
        cmocka_unit_test(test_bad_filter),
        cmocka_unit_test(test_failed_step),
        cmocka_unit_test(test_reader),
        cmocka_unit_test(test_damaged_postings),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
