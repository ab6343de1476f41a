/* test_index.c -- unit tests for index/: archive open/lock, points, segment catalogue, postings, locators, flows, reader refresh. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#define _XOPEN_SOURCE_EXTENDED 1
#include <dirent.h>
#include <ftw.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/rw.h"
#include "index/index.h"
#include "index/index_int.h" /* raw writes of damaged postings */
#include "index/parse.h"

#define S RW_NS_PER_SEC
/* Value pointer for the empty-valued IDX_K_* kinds. Not NULL: see
 * test_postings_null_value for why. */
static const uint8_t noval[1];
#define NOVAL noval
#define T0 (1714572000LL * S)
enum { DLT_EN10MB = 1, DLT_RAW = 101 };

/* ---- fixture: a fresh temporary directory per test ---- */

struct fx {
    char tmp[64];
    char dir[128]; /* the archive: tmp/arch (created by idx_open) */
};

static int setup(void **state)
{
    struct fx *f = calloc(1, sizeof *f);
    snprintf(f->tmp, sizeof f->tmp, "/tmp/test_index-XXXXXX");
    if (!mkdtemp(f->tmp))
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
    nftw(f->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(f);
    return 0;
}

static idx_t *open_ok(const char *dir, int mode)
{
    char err[RW_ERRSZ] = "";
    idx_t *ix = NULL;
    int rc = idx_open(dir, mode, &ix, err);
    if (rc != 0)
        fail_msg("idx_open(%s, %d) = %d: %s", dir, mode, rc, err);
    assert_non_null(ix);
    return ix;
}

/* ---- packets: Ethernet / IPv4 / TCP or UDP ---- */

struct pkt {
    uint8_t b[256];
    uint32_t n;
};

static void ip4a(uint8_t *p, const char *s) { assert_int_equal(inet_pton(AF_INET, s, p), 1); }

/* proto 6 (TCP, flags) or 17 (UDP); payload bytes of zeros. */
static struct pkt mkpkt(int proto, const char *src, unsigned sport, const char *dst, unsigned dport,
                        unsigned flags, unsigned payload)
{
    struct pkt k;
    memset(&k, 0, sizeof k);
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    memcpy(k.b, macs, 12);
    rw_put_be16(k.b + 12, 0x0800);
    uint8_t *ip = k.b + 14;
    unsigned l4 = proto == 6 ? 20 : 8;
    ip[0] = 0x45;
    rw_put_be16(ip + 2, (uint16_t)(20 + l4 + payload));
    rw_put_be16(ip + 4, 0x1234);
    ip[8] = 64;
    ip[9] = (uint8_t)proto;
    ip4a(ip + 12, src);
    ip4a(ip + 16, dst);
    uint8_t *t = ip + 20;
    rw_put_be16(t, (uint16_t)sport);
    rw_put_be16(t + 2, (uint16_t)dport);
    if (proto == 6) {
        t[12] = 0x50;
        t[13] = (uint8_t)flags;
    } else {
        rw_put_be16(t + 4, (uint16_t)(8 + payload));
    }
    k.n = 14 + 20 + l4 + payload;
    return k;
}

static void add(idx_segw_t *w, int64_t ts, uint64_t off, const struct pkt *k)
{
    struct idx_parsed p;
    idx_parse_packet(DLT_EN10MB, k->b, k->n, &p);
    idx_segw_add(w, ts, off, k->n, k->n, &p);
}

static idx_segw_t *begin(idx_t *ix, uint32_t point, const char *path, uint64_t *id)
{
    char err[RW_ERRSZ] = "";
    idx_segw_t *w = NULL;
    int rc = idx_segw_begin(ix, point, DLT_EN10MB, 65535, path, &w, id, err);
    if (rc != 0)
        fail_msg("idx_segw_begin: %d %s", rc, err);
    return w;
}

static void seal(idx_segw_t *w, uint64_t size)
{
    char err[RW_ERRSZ] = "";
    int rc = idx_segw_seal(w, size, err);
    if (rc != 0)
        fail_msg("idx_segw_seal: %d %s", rc, err);
}

static uint32_t point(idx_t *ix, const char *name)
{
    char err[RW_ERRSZ] = "";
    struct idx_point p;
    int rc = idx_point_get(ix, name, DLT_EN10MB, 65535, &p, err);
    if (rc != 0)
        fail_msg("idx_point_get(%s): %d %s", name, rc, err);
    return p.id;
}

/* Postings of one IPv4 / port range over segs. */
static void post4(idx_t *ix, const char *lo, const char *hi, const uint64_t *segs, size_t n,
                  roaring_bitmap_t **out)
{
    uint8_t l[4], h[4];
    char err[RW_ERRSZ] = "";
    ip4a(l, lo);
    ip4a(h, hi);
    int rc = idx_postings(ix, IDX_T_IP4, l, h, 4, segs, n, out, NULL, err);
    if (rc != 0)
        fail_msg("idx_postings: %d %s", rc, err);
}

static void postport(idx_t *ix, unsigned lo, unsigned hi, const uint64_t *segs, size_t n,
                     roaring_bitmap_t **out)
{
    uint8_t l[2], h[2];
    char err[RW_ERRSZ] = "";
    rw_put_be16(l, (uint16_t)lo);
    rw_put_be16(h, (uint16_t)hi);
    int rc = idx_postings(ix, IDX_T_PORT, l, h, 2, segs, n, out, NULL, err);
    if (rc != 0)
        fail_msg("idx_postings: %d %s", rc, err);
}

/* Bitmap equals the given ordinals (terminated by -1); NULL counts as empty. */
static void bm_is(const roaring_bitmap_t *b, const int *ords)
{
    size_t n = 0;
    while (ords[n] >= 0)
        n++;
    uint64_t card = b ? roaring_bitmap_get_cardinality(b) : 0;
    if (card != n)
        fail_msg("bitmap has %llu members, expected %zu", (unsigned long long)card, n);
    for (size_t i = 0; i < n; i++)
        if (!roaring_bitmap_contains(b, (uint32_t)ords[i]))
            fail_msg("bitmap lacks ordinal %d", ords[i]);
}

static void free_all(roaring_bitmap_t **b, size_t n)
{
    for (size_t i = 0; i < n; i++)
        idx_bitmap_free(b[i]);
}

/* ---- tests ---- */

static void test_open_create_and_lock(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "", path[256];
    struct stat st;
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    assert_string_equal(idx_dir(ix), f->dir);
    snprintf(path, sizeof path, "%s/index/CURRENT", f->dir);
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(idx_refresh(ix, err), 0); /* no-op for the writer */

    /* a second writer on the same archive is refused */
    idx_t *ix2 = (idx_t *)0x1;
    int rc = idx_open(f->dir, IDX_WRITE, &ix2, err);
    assert_int_equal(rc, RW_EBUSY);
    assert_null(ix2);
    assert_non_null(strstr(err, f->dir));

    /* a reader may open alongside */
    idx_t *rd = open_ok(f->dir, IDX_READ);
    idx_close(rd);
    idx_close(ix);

    /* and the lock goes with the writer */
    ix = open_ok(f->dir, IDX_WRITE);
    idx_close(ix);
}

static void test_read_not_archive(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = (idx_t *)0x1;
    /* the temporary directory exists but holds no archive */
    assert_int_equal(idx_open(f->tmp, IDX_READ, &ix, err), RW_EINPUT);
    assert_null(ix);
    assert_non_null(strstr(err, f->tmp));
    assert_non_null(strstr(err, "not a rewind archive"));
    assert_non_null(strstr(err, "rewind import")); /* says how to make one */
    /* a directory that does not exist at all */
    assert_int_equal(idx_open(f->dir, IDX_READ, &ix, err), RW_EINPUT);
    assert_non_null(strstr(err, f->dir));
    /* reading never creates the archive */
    struct stat st;
    assert_int_equal(stat(f->dir, &st), -1);
}

static void test_points(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    struct idx_point p, q;
    idx_t *ix = open_ok(f->dir, IDX_WRITE);

    assert_int_equal(idx_point_get(ix, "eth0", DLT_EN10MB, 1500, &p, err), 0);
    assert_string_equal(p.name, "eth0");
    assert_int_equal(p.linktype, DLT_EN10MB);
    assert_int_equal(p.snaplen, 1500);
    assert_int_equal(idx_point_get(ix, "wan", DLT_RAW, 65535, &q, err), 0);
    assert_int_not_equal(p.id, q.id);
    /* found again, same id; a larger snaplen is remembered, a smaller is not */
    struct idx_point p2;
    assert_int_equal(idx_point_get(ix, "eth0", DLT_EN10MB, 9000, &p2, err), 0);
    assert_int_equal(p2.id, p.id);
    assert_int_equal(p2.snaplen, 9000);
    assert_int_equal(idx_point_get(ix, "eth0", DLT_EN10MB, 100, &p2, err), 0);
    assert_int_equal(p2.snaplen, 9000);

    /* a different link type is refused, with both numbers in the message */
    err[0] = 0;
    assert_int_equal(idx_point_get(ix, "eth0", DLT_RAW, 1500, &p2, err), RW_EINPUT);
    assert_non_null(strstr(err, "eth0"));
    assert_non_null(strstr(err, "link type 1"));
    assert_non_null(strstr(err, "link type 101"));
    /* bad names */
    assert_int_equal(idx_point_get(ix, "../x", DLT_EN10MB, 1500, &p2, err), RW_EINPUT);
    assert_non_null(strstr(err, "../x"));
    assert_int_equal(idx_point_get(ix, "", DLT_EN10MB, 1500, &p2, err), RW_EINPUT);

    /* drop counters */
    assert_int_equal(idx_point_set_drops(ix, p.id, 7, 3, err), 0);
    assert_int_equal(idx_point_get(ix, "eth0", DLT_EN10MB, 0, &p2, err), 0);
    assert_int_equal(p2.kernel_drops, 7);
    assert_int_equal(p2.queue_drops, 3);

    /* list, sorted by name */
    struct idx_point *list = NULL;
    size_t n = 0;
    assert_int_equal(idx_point_get(ix, "a-first", DLT_EN10MB, 64, &p2, err), 0);
    assert_int_equal(idx_point_list(ix, &list, &n, err), 0);
    assert_int_equal(n, 3);
    assert_string_equal(list[0].name, "a-first");
    assert_string_equal(list[1].name, "eth0");
    assert_string_equal(list[2].name, "wan");
    assert_int_equal(list[1].id, p.id);
    assert_int_equal(list[1].kernel_drops, 7);
    assert_int_equal(list[2].linktype, DLT_RAW);
    free(list);
    idx_close(ix);

    /* persisted: ids survive a reopen, new points get fresh ids */
    ix = open_ok(f->dir, IDX_WRITE);
    assert_int_equal(idx_point_get(ix, "wan", DLT_RAW, 0, &p2, err), 0);
    assert_int_equal(p2.id, q.id);
    assert_int_equal(idx_point_get(ix, "new", DLT_RAW, 0, &p2, err), 0);
    assert_int_not_equal(p2.id, p.id);
    assert_int_not_equal(p2.id, q.id);
    idx_close(ix);

    /* a reader finds points but never creates one */
    ix = open_ok(f->dir, IDX_READ);
    assert_int_equal(idx_point_get(ix, "eth0", DLT_EN10MB, 0, &p2, err), 0);
    assert_int_equal(p2.id, p.id);
    assert_int_equal(idx_point_get(ix, "nosuch", DLT_EN10MB, 0, &p2, err), RW_EINPUT);
    assert_non_null(strstr(err, "nosuch"));
    idx_close(ix);
}

/* One segment: catalogue, postings, flows. */
static void test_segment_roundtrip(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint32_t pt = point(ix, "eth0");
    uint64_t id = 0;
    idx_segw_t *w = begin(ix, pt, "segments/eth0/x.pcap", &id);
    assert_true(id > 0);

    /* ordinals: 0 a->b:80 SYN, 1 b->a SYN/ACK, 2 a->b ACK, 3 c->d udp 53,
     * 4 a->b:443, 5 e->a:8080 */
    struct pkt k[6] = {
        mkpkt(6, "10.0.0.1", 40000, "10.0.0.2", 80, 0x02, 0),
        mkpkt(6, "10.0.0.2", 80, "10.0.0.1", 40000, 0x12, 0),
        mkpkt(6, "10.0.0.1", 40000, "10.0.0.2", 80, 0x10, 100),
        mkpkt(17, "192.168.1.1", 5353, "192.168.1.2", 53, 0, 20),
        mkpkt(6, "10.0.0.1", 40001, "10.0.0.2", 443, 0x02, 0),
        mkpkt(6, "172.16.0.9", 1234, "10.0.0.1", 8080, 0x02, 0),
    };
    const int64_t ts[6] = {T0 + 5, T0 + 3, T0 + 9, T0 + 1, T0 + 7, T0 + 8}; /* not sorted */
    uint64_t off = 24, bytes = 0;
    for (int i = 0; i < 6; i++) {
        add(w, ts[i], off, &k[i]);
        off += 16 + k[i].n;
        bytes += k[i].n;
    }
    assert_int_equal(idx_segw_packets(w), 6);
    seal(w, off);

    struct idx_seg *segs = NULL;
    size_t n = 0;
    assert_int_equal(idx_seg_all(ix, &segs, &n, err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(segs[0].id, id);
    assert_int_equal(segs[0].point, pt);
    assert_int_equal(segs[0].linktype, DLT_EN10MB);
    assert_int_equal(segs[0].snaplen, 65535);
    assert_int_equal(segs[0].state, IDX_SEG_SEALED);
    assert_int_equal(segs[0].packets, 6);
    assert_int_equal(segs[0].min_ts, T0 + 1);
    assert_int_equal(segs[0].max_ts, T0 + 9);
    assert_int_equal(segs[0].bytes, bytes);
    assert_int_equal(segs[0].wire_bytes, bytes);
    assert_int_equal(segs[0].file_size, off);
    assert_string_equal(segs[0].path, "segments/eth0/x.pcap");
    free(segs);

    /* seg_list: [from, to) against min/max */
    assert_int_equal(idx_seg_list(ix, RW_TIME_MIN, RW_TIME_MAX, &segs, &n, err), 0);
    assert_int_equal(n, 1);
    free(segs);
    assert_int_equal(idx_seg_list(ix, T0 + 9, T0 + 10, &segs, &n, err), 0);
    assert_int_equal(n, 1); /* max_ts is inside */
    free(segs);
    assert_int_equal(idx_seg_list(ix, T0 + 10, RW_TIME_MAX, &segs, &n, err), 0);
    assert_int_equal(n, 0);
    free(segs);
    assert_int_equal(idx_seg_list(ix, RW_TIME_MIN, T0 + 1, &segs, &n, err), 0);
    assert_int_equal(n, 0); /* to is exclusive */
    free(segs);
    assert_int_equal(idx_seg_list(ix, RW_TIME_MIN, T0 + 2, &segs, &n, err), 0);
    assert_int_equal(n, 1);
    free(segs);

    /* postings: exact host, net, port, port range, proto, l3 */
    roaring_bitmap_t *b[1];
    post4(ix, "10.0.0.1", "10.0.0.1", &id, 1, b);
    bm_is(b[0], (int[]){0, 1, 2, 4, 5, -1});
    free_all(b, 1);
    post4(ix, "10.0.0.2", "10.0.0.2", &id, 1, b);
    bm_is(b[0], (int[]){0, 1, 2, 4, -1});
    free_all(b, 1);
    post4(ix, "192.168.0.0", "192.168.255.255", &id, 1, b);
    bm_is(b[0], (int[]){3, -1});
    free_all(b, 1);
    post4(ix, "0.0.0.0", "255.255.255.255", &id, 1, b);
    bm_is(b[0], (int[]){0, 1, 2, 3, 4, 5, -1});
    free_all(b, 1);
    post4(ix, "10.0.0.3", "10.255.255.255", &id, 1, b);
    assert_null(b[0]); /* nothing in range: NULL */
    post4(ix, "172.16.0.0", "172.31.255.255", &id, 1, b);
    bm_is(b[0], (int[]){5, -1});
    free_all(b, 1);
    postport(ix, 80, 80, &id, 1, b);
    bm_is(b[0], (int[]){0, 1, 2, -1});
    free_all(b, 1);
    postport(ix, 53, 53, &id, 1, b);
    bm_is(b[0], (int[]){3, -1});
    free_all(b, 1);
    postport(ix, 81, 1023, &id, 1, b);
    bm_is(b[0], (int[]){4, -1});
    free_all(b, 1);
    postport(ix, 0, 1023, &id, 1, b);
    bm_is(b[0], (int[]){0, 1, 2, 3, 4, -1});
    free_all(b, 1);
    postport(ix, 8080, 65535, &id, 1, b);
    bm_is(b[0], (int[]){0, 1, 2, 4, 5, -1}); /* 40000/40001 count too, 5353 does not */
    free_all(b, 1);
    postport(ix, 65535, 65535, &id, 1, b);
    assert_null(b[0]);
    uint8_t p17 = 17, l3[2];
    assert_int_equal(idx_postings(ix, IDX_T_PROTO4, &p17, &p17, 1, &id, 1, b, NULL, err), 0);
    bm_is(b[0], (int[]){3, -1});
    free_all(b, 1);
    rw_put_be16(l3, 0x0800);
    assert_int_equal(idx_postings(ix, IDX_T_L3, l3, l3, 2, &id, 1, b, NULL, err), 0);
    bm_is(b[0], (int[]){0, 1, 2, 3, 4, 5, -1});
    free_all(b, 1);
    /* nothing unparsed in this segment */
    assert_int_equal(idx_postings(ix, IDX_K_UNPARSED, NOVAL, NOVAL, 0, &id, 1, b, NULL, err), 0);
    assert_null(b[0]);
    /* no segments: nothing to do */
    assert_int_equal(idx_postings(ix, IDX_K_UNPARSED, NULL, NULL, 0, NULL, 0, b, NULL, err), 0);

    /* locators */
    struct idx_chunk c;
    assert_int_equal(idx_chunk_get(ix, id, 0, &c, err), 0);
    assert_int_equal(c.count, 6);
    assert_int_equal(c.min_ts, T0 + 1);
    assert_int_equal(c.max_ts, T0 + 9);
    uint64_t o = 24;
    for (int i = 0; i < 6; i++) {
        assert_int_equal(c.off[i], o);
        o += 16 + k[i].n;
    }
    assert_int_equal(idx_chunk_get(ix, id, 1, &c, err), RW_ECORRUPT);
    assert_int_equal(idx_chunk_get(ix, id + 100, 0, &c, err), RW_ECORRUPT);
    assert_int_equal(idx_seg_exists(ix, id, err), 1);
    assert_int_equal(idx_seg_exists(ix, id + 100, err), 0);
    idx_close(ix);
}

/* Unparsed packets land in the IDX_K_UNPARSED posting.
 * Regression (SAN build): idx_segw_add() hands term_add() v == NULL with len 0 for
 * the IDX_K_UNPARSED / IDX_K_DEEP pseudo terms, and term_add() does
 * memcpy(e->val, NULL, 0): UBSan aborts with "index/segw.c: null pointer
 * passed as argument 2". The whole test runs in a child (checks without
 * cmocka, exit status = first failed check) so that the abort fails only
 * this test. */
static int unparsed_child(const char *dir)
{
    char err[RW_ERRSZ] = "";
    idx_t *ix = NULL;
    idx_segw_t *w = NULL;
    struct idx_point pt;
    uint64_t id;
    roaring_bitmap_t *b[1];
    if (idx_open(dir, IDX_WRITE, &ix, err) != 0)
        return 10;
    if (idx_point_get(ix, "eth0", DLT_EN10MB, 65535, &pt, err) != 0)
        return 11;
    if (idx_segw_begin(ix, pt.id, DLT_EN10MB, 65535, "s.pcap", &w, &id, err) != 0)
        return 12;
    struct pkt good = mkpkt(6, "10.0.0.1", 1, "10.0.0.2", 2, 0x02, 0), bad = good;
    bad.n = 14 + 10; /* IPv4 header cut short */
    struct idx_parsed p;
    idx_parse_packet(DLT_EN10MB, good.b, good.n, &p);
    idx_segw_add(w, T0, 24, good.n, good.n, &p);
    idx_parse_packet(DLT_EN10MB, bad.b, bad.n, &p);
    if (!(p.flags & IDX_F_UNPARSED))
        return 13;
    idx_segw_add(w, T0 + 1, 100, bad.n, bad.n, &p);
    idx_parse_packet(DLT_EN10MB, good.b, good.n, &p);
    idx_segw_add(w, T0 + 2, 200, good.n, good.n, &p);
    if (idx_segw_seal(w, 300, err) != 0)
        return 14;
    if (idx_postings(ix, IDX_K_UNPARSED, NOVAL, NOVAL, 0, &id, 1, b, NULL, err) != 0)
        return 15;
    if (!b[0] || roaring_bitmap_get_cardinality(b[0]) != 1 || !roaring_bitmap_contains(b[0], 1))
        return 16;
    idx_bitmap_free(b[0]);
    if (idx_postings(ix, IDX_K_DEEP, NOVAL, NOVAL, 0, &id, 1, b, NULL, err) != 0 || b[0])
        return 17;
    return 0; /* no idx_close: the child _exits (no RocksDB threads after fork) */
}

static void test_unparsed_posting(void **state)
{
    struct fx *f = *state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(unparsed_child(f->dir));
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (WIFSIGNALED(st))
        fail_msg("indexing an unparsed packet died with signal %d", WTERMSIG(st));
    if (WEXITSTATUS(st) != 0)
        fail_msg("child exited with %d (%s)", WEXITSTATUS(st),
                 WEXITSTATUS(st) < 10 ? "sanitizer report above" : "that check failed");
}

/* Several segments of two points: postings per asked segment, in the order
 * of the ids given; segments not asked for are skipped. */
static void test_postings_across_segments(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint32_t pa = point(ix, "a"), pb = point(ix, "b");
    uint64_t id[5];
    /* segment i holds i+1 packets from 10.0.0.<i> to 10.0.1.1:<80+i>;
     * segments 1 and 3 also have one packet of host 10.9.9.9 at the end */
    for (int i = 0; i < 5; i++) {
        char path[32], src[32];
        snprintf(path, sizeof path, "s%d.pcap", i);
        snprintf(src, sizeof src, "10.0.0.%d", i);
        idx_segw_t *w = begin(ix, i % 2 ? pb : pa, path, &id[i]);
        uint64_t off = 24;
        for (int j = 0; j <= i; j++) {
            struct pkt k = mkpkt(6, src, 1000, "10.0.1.1", 80 + (unsigned)i, 0x10, 0);
            add(w, T0 + i * S + j, off, &k);
            off += 16 + k.n;
        }
        if (i == 1 || i == 3) {
            struct pkt k = mkpkt(17, "10.9.9.9", 9, "10.0.1.1", 9, 0, 0);
            add(w, T0 + i * S + 100, off, &k);
            off += 16 + k.n;
        }
        seal(w, off);
    }
    for (int i = 1; i < 5; i++)
        assert_true(id[i] > id[i - 1]);

    roaring_bitmap_t *b[5];
    /* host 10.9.9.9 over every segment */
    post4(ix, "10.9.9.9", "10.9.9.9", id, 5, b);
    assert_null(b[0]);
    bm_is(b[1], (int[]){2, -1});
    assert_null(b[2]);
    bm_is(b[3], (int[]){4, -1});
    assert_null(b[4]);
    free_all(b, 5);
    /* the same, asking for segments 0, 3, 4 only (1 has the host but is skipped) */
    uint64_t some[3] = {id[0], id[3], id[4]};
    post4(ix, "10.9.9.9", "10.9.9.9", some, 3, b);
    assert_null(b[0]);
    bm_is(b[1], (int[]){4, -1});
    assert_null(b[2]);
    free_all(b, 3);
    /* a net spanning the sources of segments 2..4 */
    post4(ix, "10.0.0.2", "10.0.0.4", id, 5, b);
    assert_null(b[0]);
    assert_null(b[1]);
    bm_is(b[2], (int[]){0, 1, 2, -1});
    bm_is(b[3], (int[]){0, 1, 2, 3, -1});
    bm_is(b[4], (int[]){0, 1, 2, 3, 4, -1});
    free_all(b, 5);
    /* the common destination is in every packet */
    post4(ix, "10.0.1.1", "10.0.1.1", id, 5, b);
    for (int i = 0; i < 5; i++)
        assert_int_equal(roaring_bitmap_get_cardinality(b[i]), (uint64_t)i + 1 + (i == 1 || i == 3));
    free_all(b, 5);
    /* port range 81..83 hits segments 1..3; asked only 2 and 4 */
    postport(ix, 81, 83, id, 5, b);
    assert_null(b[0]);
    bm_is(b[1], (int[]){0, 1, -1});
    bm_is(b[2], (int[]){0, 1, 2, -1});
    bm_is(b[3], (int[]){0, 1, 2, 3, -1});
    assert_null(b[4]);
    free_all(b, 5);
    uint64_t two[2] = {id[2], id[4]};
    postport(ix, 81, 83, two, 2, b);
    bm_is(b[0], (int[]){0, 1, 2, -1});
    assert_null(b[1]);
    free_all(b, 2);
    /* the last segment alone */
    postport(ix, 84, 84, &id[4], 1, b);
    bm_is(b[0], (int[]){0, 1, 2, 3, 4, -1});
    free_all(b, 1);
    /* a segment id that does not exist */
    uint64_t none = id[4] + 1000;
    postport(ix, 0, 65535, &none, 1, b);
    assert_null(b[0]);

    /* catalogue order and time window across points */
    struct idx_seg *segs;
    size_t n;
    assert_int_equal(idx_seg_list(ix, RW_TIME_MIN, RW_TIME_MAX, &segs, &n, err), 0);
    assert_int_equal(n, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(segs[i].id, id[i]);
        assert_int_equal(segs[i].point, i % 2 ? pb : pa);
    }
    free(segs);
    assert_int_equal(idx_seg_list(ix, T0 + 2 * S, T0 + 3 * S, &segs, &n, err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(segs[0].id, id[2]);
    free(segs);
    idx_close(ix);
}

/* More than IDX_CHUNK packets: locator chunks 0, 1, 2. */
static void test_chunks(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint64_t id;
    idx_segw_t *w = begin(ix, point(ix, "eth0"), "big.pcap", &id);
    enum { N = 2500 };
    static uint64_t offs[N];
    uint64_t off = 24;
    for (int i = 0; i < N; i++) {
        struct pkt k = mkpkt(17, "10.0.0.1", 1000 + (unsigned)(i % 7), "10.0.0.2", 53, 0,
                             (unsigned)(i % 50));
        offs[i] = off;
        add(w, T0 + (int64_t)i * 1000, off, &k);
        off += 16 + k.n;
        if (i == 1500) { /* a flush in the middle of chunk 1 */
            assert_int_equal(idx_segw_flush(w, off, 0, err), 0);
        }
    }
    seal(w, off);
    struct idx_chunk *c = malloc(sizeof *c);
    const uint32_t counts[3] = {IDX_CHUNK, IDX_CHUNK, N - 2 * IDX_CHUNK};
    for (uint32_t no = 0; no < 3; no++) {
        assert_int_equal(idx_chunk_get(ix, id, no, c, err), 0);
        assert_int_equal(c->count, counts[no]);
        assert_int_equal(c->min_ts, T0 + (int64_t)no * IDX_CHUNK * 1000);
        assert_int_equal(c->max_ts, T0 + ((int64_t)no * IDX_CHUNK + counts[no] - 1) * 1000);
        for (uint32_t i = 0; i < c->count; i++)
            if (c->off[i] != offs[no * IDX_CHUNK + i])
                fail_msg("chunk %u entry %u: %llu != %llu", no, i, (unsigned long long)c->off[i],
                         (unsigned long long)offs[no * IDX_CHUNK + i]);
    }
    assert_int_equal(c->count, 452);
    assert_int_equal(idx_chunk_get(ix, id, 3, c, err), RW_ECORRUPT);
    free(c);
    /* postings reach past the first chunk */
    roaring_bitmap_t *b[1];
    postport(ix, 1006, 1006, &id, 1, b);
    assert_int_equal(roaring_bitmap_get_cardinality(b[0]), 357); /* i % 7 == 6 */
    assert_true(roaring_bitmap_contains(b[0], 6));
    assert_true(roaring_bitmap_contains(b[0], 1035));
    assert_true(roaring_bitmap_contains(b[0], 2498));
    assert_false(roaring_bitmap_contains(b[0], 2497));
    free_all(b, 1);
    struct idx_seg *segs;
    size_t n;
    assert_int_equal(idx_seg_all(ix, &segs, &n, err), 0);
    assert_int_equal(segs[0].packets, N);
    free(segs);
    idx_close(ix);
}

/* ---- flows ---- */

struct flows {
    struct idx_flowrec r[16];
    int n;
};

static int flow_cb(void *arg, const struct idx_flowrec *r)
{
    struct flows *fl = arg;
    if (fl->n < 16)
        fl->r[fl->n++] = *r;
    return 0;
}

static const struct idx_flowrec *find_flow(const struct flows *fl, const char *src, unsigned sport)
{
    uint8_t a[4];
    ip4a(a, src);
    for (int i = 0; i < fl->n; i++)
        if (!memcmp(fl->r[i].src, a, 4) && fl->r[i].sport == sport)
            return &fl->r[i];
    return NULL;
}

static void test_flows(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint64_t id;
    idx_segw_t *w = begin(ix, point(ix, "eth0"), "f.pcap", &id);
    /* The Community ID spec's test vector (zeek/pyCommunityId baseline, also
     * recomputed with python3 hashlib: sha1(seed 0 | 66.35.250.204 |
     * 128.232.110.120 | proto 6 | pad | 80 | 34855), base64). */
    struct pkt c2s = mkpkt(6, "128.232.110.120", 34855, "66.35.250.204", 80, 0x02, 0);
    struct pkt s2c = mkpkt(6, "66.35.250.204", 80, "128.232.110.120", 34855, 0x12, 10);
    struct pkt c2s2 = mkpkt(6, "128.232.110.120", 34855, "66.35.250.204", 80, 0x18, 100);
    struct pkt dns = mkpkt(17, "10.0.0.1", 5353, "10.0.0.2", 53, 0, 20);
    uint64_t off = 24;
    add(w, T0 + 10, off, &c2s);
    add(w, T0 + 20, off += 100, &s2c);
    add(w, T0 + 30, off += 100, &c2s2);
    add(w, T0 + 25, off += 200, &c2s2); /* time steps back */
    add(w, T0 + 40, off += 200, &dns);
    add(w, T0 + 50, off += 100, &s2c);
    seal(w, off + 100);

    struct flows fl = {.n = 0};
    assert_int_equal(idx_flows(ix, id, flow_cb, &fl, err), 0);
    assert_int_equal(fl.n, 2);
    const struct idx_flowrec *r = find_flow(&fl, "128.232.110.120", 34855);
    assert_non_null(r);
    uint8_t a[4];
    assert_int_equal(r->family, 4);
    assert_int_equal(r->proto, 6);
    ip4a(a, "66.35.250.204");
    assert_memory_equal(r->dst, a, 4);
    assert_int_equal(r->dport, 80);
    assert_int_equal(r->pkts_fwd, 3);
    assert_int_equal(r->pkts_rev, 2);
    assert_int_equal(r->bytes_fwd, c2s.n + 2 * c2s2.n);
    assert_int_equal(r->bytes_rev, 2 * s2c.n);
    assert_int_equal(r->first_ts, T0 + 10);
    assert_int_equal(r->last_ts, T0 + 50);
    assert_int_equal(r->tcp_flags, 0x02 | 0x12 | 0x18);
    assert_string_equal(r->community_id, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");

    r = find_flow(&fl, "10.0.0.1", 5353);
    assert_non_null(r);
    assert_int_equal(r->proto, 17);
    assert_int_equal(r->pkts_fwd, 1);
    assert_int_equal(r->pkts_rev, 0);
    assert_int_equal(strncmp(r->community_id, "1:", 2), 0);
    /* python3: base64(sha1(00 00 | 10.0.0.1 | 10.0.0.2 | 11 00 | 14e9 0035)) */
    assert_string_equal(r->community_id, "1:6ShADtBMSf9PCJmUQKnw1SEPH+c=");

    /* the direct computation agrees either way round */
    struct idx_parsed p;
    char cid[40];
    idx_parse_packet(DLT_EN10MB, s2c.b, s2c.n, &p);
    assert_true(p.flow.present);
    idx_community_id(&p.flow, cid);
    assert_string_equal(cid, "1:LQU9qZlK+B5F3KDmev6m5PMibrg=");

    /* flows of an unknown segment: none */
    fl.n = 0;
    assert_int_equal(idx_flows(ix, id + 1, flow_cb, &fl, err), 0);
    assert_int_equal(fl.n, 0);
    idx_close(ix);
}

static int stop_cb(void *arg, const struct idx_flowrec *r)
{
    (void)r;
    (*(int *)arg)++;
    return 1;
}

static void test_flows_stop(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint64_t id;
    idx_segw_t *w = begin(ix, point(ix, "eth0"), "f.pcap", &id);
    for (unsigned i = 0; i < 5; i++) {
        struct pkt k = mkpkt(17, "10.0.0.1", 1000 + i, "10.0.0.2", 53, 0, 0);
        add(w, T0 + i, 24 + 100 * i, &k);
    }
    seal(w, 600);
    int calls = 0;
    assert_int_equal(idx_flows(ix, id, stop_cb, &calls, err), 0);
    assert_int_equal(calls, 1);
    idx_close(ix);
}

/* Ranges of the hash space split a segment's flows: each flow in exactly
 * one part, in hash order, and the two parts are all of them. */
static void test_flows_range(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint64_t id;
    idx_segw_t *w = begin(ix, point(ix, "eth0"), "f.pcap", &id);
    for (unsigned i = 0; i < 12; i++) {
        struct pkt k = mkpkt(17, "10.0.0.1", 2000 + i, "10.0.0.2", 53, 0, 0);
        add(w, T0 + i, 24 + 100 * i, &k);
    }
    seal(w, 1300);
    struct flows all = {.n = 0}, lo = {.n = 0}, hi = {.n = 0};
    assert_int_equal(idx_flows(ix, id, flow_cb, &all, err), 0);
    assert_int_equal(all.n, 12);
    uint64_t mid = all.r[5].hash; /* hash order: the first six are at or below it */
    assert_int_equal(idx_flows_range(ix, id, 0, mid, flow_cb, &lo, err), 0);
    assert_int_equal(idx_flows_range(ix, id, mid + 1, UINT64_MAX, flow_cb, &hi, err), 0);
    assert_int_equal(lo.n, 6);
    assert_int_equal(hi.n, 6);
    for (int i = 0; i < 6; i++) {
        assert_int_equal(lo.r[i].hash, all.r[i].hash);
        assert_int_equal(lo.r[i].sport, all.r[i].sport);
        assert_int_equal(hi.r[i].hash, all.r[6 + i].hash);
        assert_int_equal(hi.r[i].pkts_fwd, 1);
    }
    /* an empty range, and one of a single hash */
    lo.n = 0;
    assert_int_equal(idx_flows_range(ix, id, all.r[3].hash + 1, all.r[4].hash - 1, flow_cb, &lo, err), 0);
    assert_int_equal(lo.n, 0);
    assert_int_equal(idx_flows_range(ix, id, all.r[4].hash, all.r[4].hash, flow_cb, &lo, err), 0);
    assert_int_equal(lo.n, 1);
    assert_int_equal(lo.r[0].sport, all.r[4].sport);
    idx_close(ix);
}

/* A reader follows the writer's flushes after idx_refresh, and only those. */
static void test_reader_follows_writer(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint64_t id;
    idx_segw_t *w = begin(ix, point(ix, "eth0"), "live.pcap", &id);
    idx_t *rd = open_ok(f->dir, IDX_READ);
    struct idx_seg *segs;
    size_t n;

    /* the reader sees the open, empty segment */
    assert_int_equal(idx_seg_all(rd, &segs, &n, err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(segs[0].state, IDX_SEG_OPEN);
    assert_int_equal(segs[0].packets, 0);
    free(segs);
    assert_int_equal(idx_seg_list(rd, RW_TIME_MIN, RW_TIME_MAX, &segs, &n, err), 0);
    assert_int_equal(n, 0); /* no packets: not listed */
    free(segs);

    uint64_t off = 24;
    for (int i = 0; i < 10; i++) {
        struct pkt k = mkpkt(6, "10.0.0.1", 1000, "10.0.0.2", 80, 0x10, 0);
        add(w, T0 + i, off, &k);
        off += 16 + k.n;
    }
    assert_int_equal(idx_segw_flush(w, off, 0, err), 0);
    /* not yet refreshed: the reader still has the old view */
    assert_int_equal(idx_seg_all(rd, &segs, &n, err), 0);
    assert_int_equal(segs[0].packets, 0);
    free(segs);
    assert_int_equal(idx_refresh(rd, err), 0);
    assert_int_equal(idx_seg_all(rd, &segs, &n, err), 0);
    assert_int_equal(segs[0].packets, 10);
    assert_int_equal(segs[0].file_size, off);
    assert_int_equal(segs[0].state, IDX_SEG_OPEN);
    free(segs);
    roaring_bitmap_t *b[1];
    postport(rd, 80, 80, &id, 1, b);
    assert_int_equal(roaring_bitmap_get_cardinality(b[0]), 10);
    free_all(b, 1);

    /* added but not flushed: invisible after a refresh */
    for (int i = 10; i < 15; i++) {
        struct pkt k = mkpkt(6, "10.0.0.1", 1000, "10.0.0.3", 81, 0x10, 0);
        add(w, T0 + i, off, &k);
        off += 16 + k.n;
    }
    assert_int_equal(idx_refresh(rd, err), 0);
    assert_int_equal(idx_seg_all(rd, &segs, &n, err), 0);
    assert_int_equal(segs[0].packets, 10);
    free(segs);
    postport(rd, 81, 81, &id, 1, b);
    assert_null(b[0]);
    struct idx_chunk c;
    assert_int_equal(idx_chunk_get(rd, id, 0, &c, err), 0);
    assert_int_equal(c.count, 10);

    /* sealed: everything visible */
    seal(w, off);
    assert_int_equal(idx_refresh(rd, err), 0);
    assert_int_equal(idx_seg_all(rd, &segs, &n, err), 0);
    assert_int_equal(segs[0].packets, 15);
    assert_int_equal(segs[0].state, IDX_SEG_SEALED);
    assert_int_equal(segs[0].max_ts, T0 + 14);
    free(segs);
    postport(rd, 81, 81, &id, 1, b);
    bm_is(b[0], (int[]){10, 11, 12, 13, 14, -1});
    free_all(b, 1);
    assert_int_equal(idx_chunk_get(rd, id, 0, &c, err), 0);
    assert_int_equal(c.count, 15);
    idx_close(rd);
    idx_close(ix);
}

/* An empty segment sealed: returns 1 and leaves the catalogue. */
static void test_empty_segment(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint32_t pt = point(ix, "eth0");
    uint64_t id, id2;
    idx_segw_t *w = begin(ix, pt, "empty.pcap", &id);
    struct idx_seg *segs;
    size_t n;
    assert_int_equal(idx_seg_all(ix, &segs, &n, err), 0);
    assert_int_equal(n, 1);
    free(segs);
    assert_int_equal(idx_segw_seal(w, 24, err), 1);
    assert_int_equal(idx_seg_all(ix, &segs, &n, err), 0);
    assert_int_equal(n, 0);
    free(segs);
    assert_int_equal(idx_seg_exists(ix, id, err), 0);
    /* ids are not reused */
    w = begin(ix, pt, "next.pcap", &id2);
    assert_true(id2 > id);
    idx_segw_abandon(w);
    idx_close(ix);
    /* nor after a reopen */
    ix = open_ok(f->dir, IDX_WRITE);
    w = begin(ix, pt, "again.pcap", &id);
    assert_true(id > id2);
    struct pkt k = mkpkt(6, "10.0.0.1", 1, "10.0.0.2", 2, 0x02, 0);
    add(w, T0, 24, &k);
    seal(w, 24 + 16 + k.n);
    assert_int_equal(idx_seg_all(ix, &segs, &n, err), 0);
    /* the abandoned segment stays open in the catalogue, the sealed one is there */
    assert_int_equal(n, 2);
    assert_int_equal(segs[0].id, id2);
    assert_int_equal(segs[0].state, IDX_SEG_OPEN);
    assert_int_equal(segs[1].id, id);
    assert_int_equal(segs[1].state, IDX_SEG_SEALED);
    free(segs);
    idx_close(ix);
}

/* Damaged ranges (K14): written by the writer, listed per segment and for
 * every segment in key order, rewritten in place (accepted), refused to a
 * reader, deleted with their segment; a malformed record is damage, not a
 * crash. */
static void test_segdamage(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint32_t pt = point(ix, "eth0");
    uint64_t a, b;
    struct pkt k = mkpkt(6, "10.0.0.1", 1, "10.0.0.2", 2, 0x02, 0);
    idx_segw_t *w = begin(ix, pt, "a.pcap", &a);
    add(w, T0, 24, &k);
    seal(w, 24 + 16 + k.n);
    w = begin(ix, pt, "b.pcap", &b);
    add(w, T0, 24, &k);
    seal(w, 24 + 16 + k.n);
    struct idx_segdamage d = {.seg = b, .lo = 65536, .hi = 131072, .state = IDX_DMG_FOUND,
                              .ts_before = T0, .ts_after = INT64_MAX, .found = T0 + S,
                              .why = "block 1 fails its checksum"};
    assert_int_equal(idx_segdamage_put(ix, &d, err), 0);
    d.lo = 24;
    d.hi = 100;
    d.ts_before = INT64_MIN;
    assert_int_equal(idx_segdamage_put(ix, &d, err), 0);
    d.seg = a;
    assert_int_equal(idx_segdamage_put(ix, &d, err), 0);
    struct idx_segdamage *l;
    size_t n;
    assert_int_equal(idx_segdamage_list(ix, b, &l, &n, err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(l[0].lo, 24); /* by offset */
    assert_int_equal(l[0].ts_before, INT64_MIN);
    assert_int_equal(l[1].lo, 65536);
    assert_int_equal(l[1].hi, 131072);
    assert_int_equal(l[1].ts_before, T0);
    assert_int_equal(l[1].ts_after, INT64_MAX);
    assert_int_equal(l[1].found, T0 + S);
    assert_string_equal(l[1].why, "block 1 fails its checksum");
    assert_string_equal(l[1].note, "");
    assert_int_equal(l[1].state, IDX_DMG_FOUND);
    /* accepted: the same key, rewritten */
    l[1].state = IDX_DMG_ACCEPTED;
    l[1].accepted = T0 + 2 * S;
    snprintf(l[1].note, sizeof l[1].note, "by root: disk replaced");
    assert_int_equal(idx_segdamage_put(ix, &l[1], err), 0);
    free(l);
    assert_int_equal(idx_segdamage_list(ix, UINT64_MAX, &l, &n, err), 0);
    assert_int_equal(n, 3);
    assert_int_equal(l[0].seg, a); /* segment, then offset */
    assert_int_equal(l[2].seg, b);
    assert_int_equal(l[2].state, IDX_DMG_ACCEPTED);
    assert_int_equal(l[2].accepted, T0 + 2 * S);
    assert_string_equal(l[2].note, "by root: disk replaced");
    free(l);
    /* retention deletes them with the segment */
    struct idx_seg seg;
    assert_int_equal(idx_seg_get(ix, b, &seg, err), 1);
    assert_int_equal(idx_seg_delete(ix, &seg, err), 0);
    assert_int_equal(idx_segdamage_list(ix, UINT64_MAX, &l, &n, err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(l[0].seg, a);
    free(l);
    /* a record that is not one is damage (RW_ECORRUPT), named */
    uint8_t key[17] = {'D'};
    rw_put_be64(key + 1, a);
    rw_put_be64(key + 9, 500);
    rocksdb_writebatch_t *bt = rocksdb_writebatch_create();
    rocksdb_writebatch_put(bt, (const char *)key, 17, "\x01\x07garbage", 9);
    assert_int_equal(idx_write_batch(ix, bt, 1, err), 0);
    rocksdb_writebatch_destroy(bt);
    assert_int_equal(idx_segdamage_list(ix, a, &l, &n, err), RW_ECORRUPT);
    assert_non_null(strstr(err, "damaged-range record"));
    idx_close(ix);
    /* a reader lists but does not write */
    ix = open_ok(f->dir, IDX_READ);
    assert_int_equal(idx_segdamage_put(ix, &d, err), RW_ESTATE);
    idx_close(ix);
}

/* Regression: idx_postings() does memcpy(val, lo, len) even when len is 0; with
 * lo == NULL -- which is how query.c's plan_batch() asks for the IDX_K_UNPARSED
 * and IDX_K_DEEP postings -- that is undefined behaviour (memcpy's pointers
 * are declared nonnull) and the SAN build aborts with "index/index.c: null
 * pointer passed as argument 2". Run in a child so that the abort fails only
 * this test. */
static void test_postings_null_value(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint64_t id;
    idx_segw_t *w = begin(ix, point(ix, "eth0"), "s.pcap", &id);
    struct pkt k = mkpkt(6, "10.0.0.1", 1, "10.0.0.2", 2, 0x02, 0);
    add(w, T0, 24, &k);
    seal(w, 100);
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        roaring_bitmap_t *b[1];
        int rc = idx_postings(ix, IDX_K_UNPARSED, NULL, NULL, 0, &id, 1, b, NULL, err);
        _exit(rc == 0 && b[0] == NULL ? 0 : 20);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    idx_close(ix);
    if (WIFSIGNALED(st) || WEXITSTATUS(st) != 0)
        fail_msg("idx_postings(kind IDX_K_UNPARSED, lo = NULL, len 0) in a child: %s %d (a "
                 "sanitizer report above, if any, has the detail)",
                 WIFSIGNALED(st) ? "signal" : "exit status",
                 WIFSIGNALED(st) ? WTERMSIG(st) : WEXITSTATUS(st));
}

static void test_segw_path_too_long(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "", path[300];
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    memset(path, 'p', sizeof path - 1);
    path[sizeof path - 1] = 0;
    idx_segw_t *w = NULL;
    uint64_t id;
    assert_int_equal(idx_segw_begin(ix, point(ix, "eth0"), DLT_EN10MB, 100, path, &w, &id, err),
                     RW_EINPUT);
    idx_close(ix);
}

/* ---- damaged postings ---- */

/* Bytes that are no portable Roaring bitmap (the cookie is wrong). */
static const char garbage[] = "\x01\x02 not a roaring bitmap";

/* A posting key (man/rewind-archive.5, K6): 'P', kind, value, segment. */
static size_t pkey(uint8_t *k, int kind, const uint8_t *val, size_t len, uint64_t seg)
{
    k[0] = 'P';
    k[1] = (uint8_t)kind;
    if (len) /* val may be NULL for the empty-valued kinds */
        memcpy(k + 2, val, len);
    rw_put_be64(k + 2 + len, seg);
    return 2 + len + 8;
}

/* A serialized bitmap of the given ordinals (terminated by -1): malloc'ed. */
static char *bm_bytes(const int *ords, size_t *n)
{
    roaring_bitmap_t *b = roaring_bitmap_create();
    for (; *ords >= 0; ords++)
        roaring_bitmap_add(b, (uint32_t)*ords);
    *n = roaring_bitmap_portable_size_in_bytes(b);
    char *v = malloc(*n);
    roaring_bitmap_portable_serialize(b, v);
    roaring_bitmap_free(b);
    return v;
}

/* Write a posting key as the damage of a real archive would leave it, with
 * the index's own merge operator folding the operands (a raw RocksDB open
 * would need a stand-in for it): an optional base value (put), then an
 * optional merge operand, in one batch. */
static void raw_posting(idx_t *ix, const uint8_t *k, size_t kl, const char *put, size_t putlen,
                        const char *merge, size_t mlen)
{
    char err[RW_ERRSZ] = "";
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    if (put)
        rocksdb_writebatch_put(b, (const char *)k, kl, put, putlen);
    if (merge)
        rocksdb_writebatch_merge(b, (const char *)k, kl, merge, mlen);
    int rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    if (rc != 0)
        fail_msg("idx_write_batch: %d %s", rc, err);
}

/* The value of a key as a reader sees it (operands merged): malloc'ed. */
static char *raw_value(idx_t *ix, const uint8_t *k, size_t kl, size_t *vl)
{
    char err[RW_ERRSZ] = "";
    static uint8_t buf[1 << 16];
    int rc = idx_get_raw(ix, k, kl, buf, sizeof buf, vl, err);
    if (rc != 1)
        fail_msg("idx_get_raw: %d %s", rc, err);
    assert_true(*vl <= sizeof buf);
    char *v = malloc(*vl + 1);
    memcpy(v, buf, *vl);
    return v;
}

struct found {
    struct idx_damage d[8];
    int n;
};
static int found_cb(void *arg, const struct idx_damage *d)
{
    struct found *f = arg;
    if (f->n < 8)
        f->d[f->n] = *d;
    f->n++;
    return 0;
}

/* Five segments of one point, segment i with packets 0..4 from 10.0.0.<i>
 * to 10.0.1.1 port 25 (ordinals 0-2) or 80 (3-4). Then each of the ways a
 * posting key ends up with bytes that do not decode: idx_postings() must
 * say so for that segment alone (never hand back fewer packets than carry
 * the term), idx_postings_check() must find each, and a strict caller gets
 * an error naming segment and kind. */
static void test_damaged_postings(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint32_t pa = point(ix, "a");
    uint64_t id[5];
    for (int i = 0; i < 5; i++) {
        char path[32], src[32];
        snprintf(path, sizeof path, "s%d.pcap", i);
        snprintf(src, sizeof src, "10.0.0.%d", i);
        idx_segw_t *w = begin(ix, pa, path, &id[i]);
        uint64_t off = 24;
        for (int j = 0; j < 5; j++) {
            struct pkt k = mkpkt(6, src, 1000, "10.0.1.1", j < 3 ? 25 : 80, 0x10, 0);
            add(w, T0 + i * S + j, off, &k);
            off += 16 + k.n;
            if (j == 2) /* two commits: a base value and a merge operand */
                assert_int_equal(idx_segw_flush(w, off, 0, err), 0);
        }
        seal(w, off);
    }
    struct found fd = {0};
    assert_int_equal(idx_postings_check(ix, found_cb, &fd, err), 0);
    assert_int_equal(fd.n, 0);

    uint8_t p25[2] = {0, 25}, k[32];
    size_t kl, n1;
    char *one = bm_bytes((int[]){1, -1}, &n1);
    /* segment 0: the stored value is garbage */
    kl = pkey(k, IDX_T_PORT, p25, 2, id[0]);
    raw_posting(ix, k, kl, garbage, sizeof garbage, NULL, 0);
    /* segment 1: garbage value, then a good operand of a later commit */
    kl = pkey(k, IDX_T_PORT, p25, 2, id[1]);
    raw_posting(ix, k, kl, garbage, sizeof garbage, one, n1);
    /* segment 2: a good value holding part of the packets, then a garbage
     * operand standing for the rest */
    kl = pkey(k, IDX_T_PORT, p25, 2, id[2]);
    raw_posting(ix, k, kl, one, n1, garbage, sizeof garbage);
    /* the merge operator wrote the marker; it stays through later merges */
    size_t vl;
    char *v = raw_value(ix, k, kl, &vl);
    assert_int_equal(vl, strlen(IDX_DAMAGED_MARK));
    assert_memory_equal(v, IDX_DAMAGED_MARK, vl);
    free(v);
    raw_posting(ix, k, kl, NULL, 0, one, n1);
    v = raw_value(ix, k, kl, &vl);
    assert_int_equal(vl, strlen(IDX_DAMAGED_MARK));
    assert_memory_equal(v, IDX_DAMAGED_MARK, vl);
    free(v);
    assert_int_equal(roaring_bitmap_portable_deserialize_size(IDX_DAMAGED_MARK,
                                                              strlen(IDX_DAMAGED_MARK)), 0);
    /* segment 3: a garbage operand on the unparsed set, a key it had not */
    kl = pkey(k, IDX_K_UNPARSED, NULL, 0, id[3]);
    raw_posting(ix, k, kl, NULL, 0, garbage, sizeof garbage);
    /* segment 4 untouched */

    roaring_bitmap_t *b[5];
    uint8_t dmg[5];
    /* port 25, and a range holding it, over every segment */
    for (int range = 0; range < 2; range++) {
        uint8_t lo[2] = {0, range ? 20 : 25}, hi[2] = {0, range ? 30 : 25};
        memset(dmg, 7, sizeof dmg);
        assert_int_equal(idx_postings(ix, IDX_T_PORT, lo, hi, 2, id, 5, b, dmg, err), 0);
        for (int i = 0; i < 3; i++) {
            if (!dmg[i])
                fail_msg("port posting of segment %d (range %d): damage not reported", i, range);
            assert_null(b[i]);
        }
        assert_int_equal(dmg[3], 0);
        assert_int_equal(dmg[4], 0);
        bm_is(b[3], (int[]){0, 1, 2, -1});
        bm_is(b[4], (int[]){0, 1, 2, -1});
        free_all(b, 5);
    }
    /* port 80 is sound everywhere */
    postport(ix, 80, 80, id, 5, b);
    for (int i = 0; i < 5; i++)
        bm_is(b[i], (int[]){3, 4, -1});
    free_all(b, 5);
    assert_int_equal(idx_postings(ix, IDX_K_UNPARSED, NOVAL, NOVAL, 0, id, 5, b, dmg, err), 0);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(dmg[i], i == 3);
        assert_null(b[i]);
    }
    /* a strict caller: an error naming the segment and the kind */
    memset(b, 0, sizeof b);
    assert_int_equal(idx_postings(ix, IDX_T_PORT, p25, p25, 2, &id[1], 1, b, NULL, err),
                     RW_ECORRUPT);
    assert_null(b[0]);
    char want[64];
    snprintf(want, sizeof want, "segment %llu", (unsigned long long)id[1]);
    if (!strstr(err, want) || !strstr(err, "port"))
        fail_msg("error does not name segment and kind: %s", err);

    /* verify's scan finds all four, in key order (kind 3 before 0x40) */
    assert_int_equal(idx_postings_check(ix, found_cb, &fd, err), 0);
    assert_int_equal(fd.n, 4);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(fd.d[i].seg, id[i]);
        assert_int_equal(fd.d[i].kind, i < 3 ? IDX_T_PORT : IDX_K_UNPARSED);
        assert_int_equal(fd.d[i].len, i < 3 ? 2 : 0);
        if (i < 3)
            assert_memory_equal(fd.d[i].val, p25, 2);
    }
    assert_false(fd.d[0].marked); /* garbage as stored */
    assert_true(fd.d[1].marked);  /* merged: the marker */
    assert_true(fd.d[2].marked);
    assert_true(fd.d[3].marked);
    char d[64];
    assert_string_equal(idx_term_desc(IDX_T_PORT, p25, 2, d, sizeof d), "port 25 (kind 3)");
    assert_string_equal(idx_term_desc(IDX_T_PORT, NULL, 0, d, sizeof d), "port (kind 3)");
    uint8_t a4[4] = {192, 0, 2, 7};
    assert_string_equal(idx_term_desc(IDX_T_IP4, a4, 4, d, sizeof d), "host 192.0.2.7 (kind 1)");
    assert_string_equal(idx_term_desc(IDX_K_UNPARSED, NULL, 0, d, sizeof d),
                        "unparsed packets (kind 0x40)");
    assert_string_equal(idx_term_desc(99, NULL, 0, d, sizeof d), "kind 0x63");
    idx_close(ix);

    /* the same through a reader, once the writer has flushed and closed */
    ix = open_ok(f->dir, IDX_READ);
    assert_int_equal(idx_postings(ix, IDX_T_PORT, p25, p25, 2, id, 5, b, dmg, err), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(dmg[i], i < 3);
    free_all(b, 5);
    fd.n = 0;
    assert_int_equal(idx_postings_check(ix, found_cb, &fd, err), 0);
    assert_int_equal(fd.n, 4);
    idx_close(ix);
    free(one);
}

/* Many packets and flows between two flushes (plain packets: noted by
 * flow, in several 64 Ki-packet blocks, their terms derived from 200 000
 * flows' keys) and across flushes: each posting holds exactly its packets.
 * Packet i: 10.1.<i/256%256>.<i%256>:<1000 + i % 3000> to 10.2.0.<i %
 * 7>:<i % 5 ? 80 : 443>, UDP. (test_postings_exact spills the term log.) */
static void test_postings_spill(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint32_t pa = point(ix, "a");
    uint64_t id;
    idx_segw_t *w = begin(ix, pa, "spill.pcap", &id);
    const uint32_t n = 260000;
    uint64_t off = 24;
    for (uint32_t i = 0; i < n; i++) {
        char src[32], dst[32];
        snprintf(src, sizeof src, "10.1.%u.%u", (i >> 8) & 255, i & 255);
        snprintf(dst, sizeof dst, "10.2.0.%u", i % 7);
        struct pkt k = mkpkt(17, src, 1000 + i % 3000, dst, i % 5 ? 80 : 443, 0, 0);
        add(w, T0 + (int64_t)i * 1000, off, &k);
        off += 16 + k.n;
        if (i == 200000 && idx_segw_flush(w, off, 0, err) != 0)
            fail_msg("idx_segw_flush: %s", err);
    }
    seal(w, off);
    roaring_bitmap_t *b[1];
    /* 10.2.0.3: every 7th packet from 3 */
    post4(ix, "10.2.0.3", "10.2.0.3", &id, 1, b);
    assert_int_equal(roaring_bitmap_get_cardinality(b[0]), (n - 3 + 6) / 7);
    for (uint32_t i = 3; i < n; i += 7)
        assert_true(roaring_bitmap_contains(b[0], i));
    free_all(b, 1);
    /* 10.1.1.2: packets 258 + 65536 k */
    post4(ix, "10.1.1.2", "10.1.1.2", &id, 1, b);
    assert_int_equal(roaring_bitmap_get_cardinality(b[0]), 4);
    for (uint32_t i = 258; i < n; i += 65536)
        assert_true(roaring_bitmap_contains(b[0], i));
    free_all(b, 1);
    /* port 443: every 5th; port 1000 + 17: every 3000th from 17 */
    postport(ix, 443, 443, &id, 1, b);
    assert_int_equal(roaring_bitmap_get_cardinality(b[0]), n / 5);
    for (uint32_t i = 0; i < n; i += 5)
        assert_true(roaring_bitmap_contains(b[0], i));
    free_all(b, 1);
    postport(ix, 1017, 1017, &id, 1, b);
    assert_int_equal(roaring_bitmap_get_cardinality(b[0]), (n - 17 + 2999) / 3000);
    for (uint32_t i = 17; i < n; i += 3000)
        assert_true(roaring_bitmap_contains(b[0], i));
    free_all(b, 1);
    idx_close(ix);
}

/* ---- every posting exact, on a random mix ---- */

struct rflow {
    int v6, proto;
    uint8_t a[16], b[16];
    unsigned sp, dp;
};

/* A frame of flow f into buf, from a to b or back (dir); shape 0 plain,
 * 1 VLAN-tagged (not plain), 2 cut inside the IP header (unparsed), 3 a
 * later IPv4 fragment (no ports: the key of a flow with ports 0 and 0).
 * Returns its length. */
static uint32_t rframe(uint8_t *buf, const struct rflow *f, int dir, int shape)
{
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    const uint8_t *src = dir ? f->b : f->a, *dst = dir ? f->a : f->b;
    unsigned sp = dir ? f->dp : f->sp, dp = dir ? f->sp : f->dp;
    uint32_t n = 12;
    memset(buf, 0, 128);
    memcpy(buf, macs, 12);
    if (shape == 1) {
        rw_put_be16(buf + n, 0x8100);
        rw_put_be16(buf + n + 2, 42);
        n += 4;
    }
    rw_put_be16(buf + n, f->v6 ? 0x86dd : 0x0800);
    n += 2;
    uint8_t *ip = buf + n;
    unsigned l4 = f->proto == 6 ? 20 : 8, hl = f->v6 ? 40 : 20;
    if (f->v6) {
        ip[0] = 0x60;
        rw_put_be16(ip + 4, (uint16_t)l4);
        ip[6] = (uint8_t)f->proto;
        ip[7] = 64;
        memcpy(ip + 8, src, 16);
        memcpy(ip + 24, dst, 16);
    } else {
        ip[0] = 0x45;
        rw_put_be16(ip + 2, (uint16_t)(20 + l4));
        if (shape == 3)
            rw_put_be16(ip + 6, 16); /* offset 128, no more fragments */
        ip[8] = 64;
        ip[9] = (uint8_t)f->proto;
        memcpy(ip + 12, src, 4);
        memcpy(ip + 16, dst, 4);
    }
    uint8_t *t = ip + hl;
    rw_put_be16(t, (uint16_t)sp);
    rw_put_be16(t + 2, (uint16_t)dp);
    if (f->proto == 6)
        t[12] = 0x50;
    else if (f->proto == 17)
        rw_put_be16(t + 4, (uint16_t)l4);
    n += hl + l4;
    return shape == 2 ? 14 + 10 : n;
}

struct rterm {
    uint8_t kind, len, val[16];
    uint32_t ord;
};

static int rterm_cmp(const void *x, const void *y)
{
    const struct rterm *a = x, *b = y;
    if (a->kind != b->kind)
        return a->kind < b->kind ? -1 : 1;
    int c = memcmp(a->val, b->val, 16);
    if (c)
        return c;
    return a->ord < b->ord ? -1 : a->ord > b->ord;
}

/* Every posting holds exactly its term's packets, as the parser gives a
 * packet's terms, over flushes of a mix that takes each of the writer's
 * ways (index/segw.c): plain packets of many flows (noted by their flow,
 * their terms derived from its key at flush), IPv4 and IPv6, ICMP, a flow
 * to itself, equal ports; and packets that log their terms one by one:
 * VLAN-tagged, unparsed, a fragment whose key is a port-0 flow's; one
 * flush large enough to spill the term log. */
static void test_postings_exact(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "";
    idx_t *ix = open_ok(f->dir, IDX_WRITE);
    uint32_t pa = point(ix, "a");
    uint64_t id;
    idx_segw_t *w = begin(ix, pa, "exact.pcap", &id);
    enum { NF = 600, NP = 90000 };
    struct rflow *fl = calloc(NF, sizeof *fl);
    uint64_t rs = 0x9e3779b97f4a7c15ULL;
#define RND() (rs ^= rs << 13, rs ^= rs >> 7, rs ^= rs << 17, rs)
    for (int i = 0; i < NF; i++) {
        struct rflow *r = &fl[i];
        unsigned c = (unsigned)(RND() % 20);
        r->v6 = c < 4;
        r->proto = c == 3 || c == 4 ? (r->v6 ? 58 : 1) : c % 2 ? 17 : 6;
        if (r->v6) {
            r->a[0] = 0x20, r->a[1] = 0x01, r->a[15] = (uint8_t)(RND() % 40);
            r->b[0] = 0x20, r->b[1] = 0x01, r->b[8] = 1, r->b[15] = (uint8_t)(RND() % 40);
        } else {
            r->a[0] = 10, r->a[3] = (uint8_t)(RND() % 60);
            r->b[0] = 192, r->b[1] = 168, r->b[3] = (uint8_t)(RND() % 60);
        }
        r->sp = 1024 + (unsigned)(RND() % 500);
        r->dp = (unsigned[]){53, 80, 443, 25}[RND() % 4];
        if (c == 13)
            memcpy(r->b, r->a, 16); /* to itself */
        if (c == 15)
            r->dp = r->sp;
        if (c == 14)
            r->sp = r->dp = 0; /* TCP: the fragments' key */
    }
    /* a packet's terms (9 at most here: a VLAN-tagged TCP packet's 8 and the
     * DEEP mark) */
    enum { PER = 10 };
    struct rterm *exp = malloc((size_t)NP * PER * sizeof *exp);
    size_t ne = 0;
    uint64_t off = 24;
    /* flushes: every 1 000-5 000 packets, but 40 000 packets in one, of
     * which most are VLAN-tagged (about 7 log entries each: the log spills) */
    uint32_t next_flush = 3000;
    for (uint32_t i = 0; i < NP; i++) {
        int big = i >= 30000 && i < 70000;
        const struct rflow *r = &fl[RND() % 8 ? RND() % 50 : RND() % NF];
        unsigned z = (unsigned)(RND() % 100);
        int shape = big ? (z < 70 ? 1 : 0) : z < 6 ? 1 : z < 9 ? 2 : z < 20 ? 3 : 0;
        if (shape == 3 && (r->v6 || r->proto != 6 || r->sp))
            shape = 0;
        uint8_t buf[128];
        uint32_t n = rframe(buf, r, (int)(RND() & 1), shape);
        struct idx_parsed p, q;
        idx_parse_packet(DLT_EN10MB, buf, n, &p);
        assert_true(p.nterms + 2 <= PER);
        for (int t = 0; t < p.nterms; t++) {
            struct rterm *e = &exp[ne++];
            memset(e, 0, sizeof *e);
            e->kind = p.terms[t].kind;
            e->len = p.terms[t].len;
            memcpy(e->val, p.terms[t].val, p.terms[t].len);
            e->ord = i;
        }
        if (p.flags & IDX_F_UNPARSED)
            exp[ne++] = (struct rterm){.kind = IDX_K_UNPARSED, .ord = i};
        if (p.flags & IDX_F_DEEP)
            exp[ne++] = (struct rterm){.kind = IDX_K_DEEP, .ord = i};
        idx_parse_packet_nohash(DLT_EN10MB, buf, n, &q); /* as archive/writer.c does */
        idx_segw_add(w, T0 + (int64_t)i * 1000, off, n, n, &q);
        off += 16 + n;
        if (i + 1 == next_flush && !(big && i + 1 < 70000)) {
            if (idx_segw_flush(w, off, 0, err) != 0)
                fail_msg("idx_segw_flush: %s", err);
            next_flush += 1000 + (uint32_t)(RND() % 4000);
        } else if (i + 1 == next_flush) {
            next_flush = 70000;
        }
    }
#undef RND
    seal(w, off);
    qsort(exp, ne, sizeof *exp, rterm_cmp);
    size_t terms = 0, kinds[256] = {0};
    for (size_t i = 0; i < ne;) {
        size_t j = i + 1;
        while (j < ne && exp[j].kind == exp[i].kind && !memcmp(exp[j].val, exp[i].val, 16))
            j++;
        roaring_bitmap_t *b[1];
        const uint8_t *v = exp[i].len ? exp[i].val : NOVAL;
        if (idx_postings(ix, exp[i].kind, v, v, exp[i].len, &id, 1, b, NULL, err) != 0)
            fail_msg("idx_postings: %s", err);
        uint64_t card = b[0] ? roaring_bitmap_get_cardinality(b[0]) : 0;
        if (card != j - i)
            fail_msg("term kind %d (%02x%02x%02x%02x...): %llu packets, expected %zu",
                     exp[i].kind, exp[i].val[0], exp[i].val[1], exp[i].val[2], exp[i].val[3],
                     (unsigned long long)card, j - i);
        for (size_t k = i; k < j; k++)
            if (!roaring_bitmap_contains(b[0], exp[k].ord))
                fail_msg("term kind %d lacks packet %u", exp[i].kind, exp[k].ord);
        free_all(b, 1);
        terms++;
        kinds[exp[i].kind]++;
        i = j;
    }
    /* the mix had each kind of term it was meant to */
    assert_true(kinds[IDX_T_IP4] > 50 && kinds[IDX_T_IP6] > 20 && kinds[IDX_T_PORT] > 300);
    assert_true(kinds[IDX_T_FLOW] > 500 && kinds[IDX_T_VLAN] == 1 && kinds[IDX_T_L3] == 2);
    assert_true(kinds[IDX_T_PROTO4] == 3 && kinds[IDX_T_PROTO6] == 3);
    assert_true(kinds[IDX_K_UNPARSED] == 1 && kinds[IDX_K_DEEP] == 1);
    assert_true(terms > 1500);
    /* and a term no packet has, none */
    roaring_bitmap_t *b[1];
    uint8_t none[4] = {10, 0, 0, 200};
    if (idx_postings(ix, IDX_T_IP4, none, none, 4, &id, 1, b, NULL, err) != 0)
        fail_msg("idx_postings: %s", err);
    assert_true(!b[0] || roaring_bitmap_get_cardinality(b[0]) == 0);
    free_all(b, 1);
    free(exp);
    free(fl);
    idx_close(ix);
}

/* The packets of add_flows(): 30 000 UDP flows, 4 packets each. */
static void add_flows(idx_segw_t *w, uint32_t from, uint32_t to, uint64_t *off)
{
    for (uint32_t i = from; i < to; i++) {
        char src[32];
        uint32_t fl = i % 30000;
        snprintf(src, sizeof src, "10.%u.%u.%u", 3 + fl / 65536, (fl >> 8) & 255, fl & 255);
        struct pkt k = i & 1 ? mkpkt(17, "10.9.0.1", 53, src, 1024 + fl % 20000, 0, 0)
                             : mkpkt(17, src, 1024 + fl % 20000, "10.9.0.1", 53, 0, 0);
        add(w, T0 + (int64_t)i * 1000, *off, &k);
        *off += 16 + k.n;
    }
}

/* Every key and value of an index, in order, into a digest-like list. */
static void index_digest(const char *dir, uint8_t **out, size_t *len)
{
    idx_t *ix = open_ok(dir, IDX_READ);
    rocksdb_iterator_t *it = idx_iter(ix);
    size_t cap = 1 << 20, n = 0;
    uint8_t *buf = malloc(cap);
    assert_non_null(buf);
    for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *k = rocksdb_iter_key(it, &kl), *v = rocksdb_iter_value(it, &vl);
        while (n + kl + vl + 16 > cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            assert_non_null(buf);
        }
        memcpy(buf + n, &kl, 8);
        memcpy(buf + n + 8, k, kl);
        memcpy(buf + n + 8 + kl, &vl, 8);
        memcpy(buf + n + 16 + kl, v, vl);
        n += 16 + kl + vl;
    }
    char err[RW_ERRSZ] = "";
    assert_int_equal(idx_iter_status(it, err), 0);
    rocksdb_iter_destroy(it);
    idx_close(ix);
    *out = buf;
    *len = n;
}

static uint64_t wal_bytes(const char *dir)
{
    char path[256];
    snprintf(path, sizeof path, "%s/index", dir);
    DIR *d = opendir(path);
    struct dirent *de;
    uint64_t sum = 0;
    assert_non_null(d);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name);
        struct stat st;
        char f[600];
        snprintf(f, sizeof f, "%s/%s", path, de->d_name);
        if (l > 4 && !strcmp(de->d_name + l - 4, ".log") && stat(f, &st) == 0)
            sum += (uint64_t)st.st_size;
        /* no table file left behind by the writer */
        assert_true(strncmp(de->d_name, IDX_SST_PREFIX, sizeof IDX_SST_PREFIX - 1) != 0);
    }
    closedir(d);
    return sum;
}

/* A flush too large for a memtable goes into the index as a table file of its own (index/segw.c, struct sink): a reader
 * that replayed the segment's earlier records from the log sees it at once,
 * it survives kill -9 right after the flush, and the index holds exactly
 * what the same packets committed in small write batches give. */
static void test_large_flush_ingested(void **state)
{
    struct fx *f = *state;
    char err[RW_ERRSZ] = "", dir2[160];
    const uint32_t n = 120000;
    snprintf(dir2, sizeof dir2, "%s/arch2", f->tmp);
    /* a reader of A follows a large flush */
    {
        idx_t *ix = open_ok(f->dir, IDX_WRITE);
        uint64_t id, off = 24;
        idx_segw_t *w = begin(ix, point(ix, "a"), "a.pcap", &id);
        idx_t *rd = open_ok(f->dir, IDX_READ);
        /* a first batch through the log */
        add_flows(w, 0, 1000, &off);
        if (idx_segw_flush(w, off, 1, err) != 0)
            fail_msg("idx_segw_flush: %s", err);
        assert_int_equal(idx_refresh(rd, err), 0);
        add_flows(w, 1000, n, &off);
        if (idx_segw_flush(w, off, 1, err) != 0)
            fail_msg("idx_segw_flush: %s", err);
        assert_int_equal(idx_refresh(rd, err), 0);
        roaring_bitmap_t *b[1];
        post4(rd, "10.3.1.2", "10.3.1.2", &id, 1, b); /* flow 258: packets 258 + 30000 k */
        assert_non_null(b[0]);
        assert_int_equal(roaring_bitmap_get_cardinality(b[0]), 4);
        for (uint32_t i = 258; i < n; i += 30000)
            assert_true(roaring_bitmap_contains(b[0], i));
        free_all(b, 1);
        struct idx_seg sg;
        assert_int_equal(idx_seg_get(rd, id, &sg, err), 1);
        assert_int_equal(sg.packets, n);
        idx_close(rd);
        idx_segw_abandon(w);
        idx_close(ix);
        nftw(f->dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    }
    /* A: one large flush, then kill -9 (in a program of its own: RocksDB's
     * background threads, which this process has started, are not in a
     * forked child) */
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        execl("/proc/self/exe", "test_index", "--large-flush-child", f->dir, (char *)NULL);
        _exit(23);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFSIGNALED(st) || WTERMSIG(st) != SIGKILL)
        fail_msg("writer child: exit status %d", WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    /* the large batch (megabytes) did not go through the write-ahead log */
    assert_true(wal_bytes(f->dir) < (1u << 20));
    /* B: the same packets in write batches of 1000 */
    {
        idx_t *ix = open_ok(dir2, IDX_WRITE);
        uint64_t id, off = 24;
        idx_segw_t *w = NULL;
        assert_int_equal(idx_segw_begin(ix, 1, DLT_EN10MB, 65535, "s.pcap", &w, &id, err), 0);
        for (uint32_t i = 0; i < n; i += 1000) {
            add_flows(w, i, i + 1000, &off);
            if (idx_segw_flush(w, off, 0, err) != 0)
                fail_msg("idx_segw_flush: %s", err);
        }
        idx_segw_abandon(w);
        idx_close(ix);
        assert_true(wal_bytes(dir2) < (256u << 10)); /* flushed at close */
    }
    /* the points: B has none of A's record 'N' */
    idx_t *ix = open_ok(f->dir, IDX_WRITE); /* recovery */
    idx_close(ix);
    uint8_t *da, *db;
    size_t la, lb;
    index_digest(f->dir, &da, &la);
    index_digest(dir2, &db, &lb);
    assert_true(la > (1u << 20));
    assert_int_equal(la, lb);
    assert_memory_equal(da, db, la);
    free(da);
    free(db);
}

/* idx_posting_encode() writes what CRoaring writes for the same set (built
 * without run_optimize), and what CRoaring reads back: sets of every shape
 * (empty, one value, arrays, 4096 and 4097 values in a container, bitsets,
 * values across container boundaries and near 2^32). */
static void check_posting(const uint32_t *v, size_t n)
{
    roaring_bitmap_t *r = roaring_bitmap_create();
    roaring_bitmap_add_many(r, n, v);
    size_t want = roaring_bitmap_portable_size_in_bytes(r);
    char *ref = malloc(want + 1);
    assert_non_null(ref);
    roaring_bitmap_portable_serialize(r, ref);
    assert_int_equal(idx_posting_size(v, n), want);
    uint8_t *got = malloc(want + 1);
    assert_non_null(got);
    assert_int_equal(idx_posting_encode(v, n, got), want);
    assert_memory_equal(got, ref, want);
    roaring_bitmap_t *back = roaring_bitmap_portable_deserialize_safe((const char *)got, want);
    assert_non_null(back);
    assert_true(roaring_bitmap_equals(back, r));
    roaring_bitmap_free(back);
    roaring_bitmap_free(r);
    free(ref);
    free(got);
}

static void test_posting_encode(void **state)
{
    (void)state;
    size_t cap = 200000;
    uint32_t *v = malloc(cap * sizeof *v);
    assert_non_null(v);
    check_posting(v, 0);
    v[0] = 7;
    check_posting(v, 1);
    v[0] = 0xffffffffu;
    check_posting(v, 1);
    for (size_t n = 4095; n <= 4098; n++) { /* array, then bitset, in one container */
        for (size_t i = 0; i < n; i++)
            v[i] = (uint32_t)(i * 3);
        check_posting(v, n);
    }
    uint32_t seed = 17;
    for (int round = 0; round < 40; round++) {
        size_t n = 0;
        uint32_t x = (uint32_t)round * 1000;
        /* gaps of 1 to 64 (dense, bitsets), sometimes a jump of many containers */
        while (n < cap) {
            seed = seed * 1103515245u + 12345u;
            uint32_t gap = 1 + (seed >> 16) % (round % 4 == 0 ? 4 : 64);
            if ((seed >> 8) % 997 == 0)
                gap += 65536u * (1 + (seed >> 20) % 5);
            if (x > 0xffffffffu - gap)
                break;
            x += gap;
            v[n++] = x;
            if ((seed >> 4) % 50000 == 0)
                break;
        }
        check_posting(v, n);
    }
    free(v);
}

/* test_large_flush_ingested's writer: one large flush, then kill -9. */
static int large_flush_child(const char *dir)
{
    char err[RW_ERRSZ] = "";
    idx_t *ix;
    idx_segw_t *w;
    uint64_t id, off = 24;
    if (idx_open(dir, IDX_WRITE, &ix, err) < 0 ||
        idx_segw_begin(ix, 1, DLT_EN10MB, 65535, "s.pcap", &w, &id, err) < 0)
        return 20;
    add_flows(w, 0, 1000, &off);
    if (idx_segw_flush(w, off, 1, err) < 0)
        return 21;
    add_flows(w, 1000, 120000, &off);
    if (idx_segw_flush(w, off, 1, err) < 0)
        return 21;
    raise(SIGKILL);
    return 22;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--large-flush-child"))
        return large_flush_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_open_create_and_lock, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_not_archive, setup, teardown),
        cmocka_unit_test_setup_teardown(test_points, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segment_roundtrip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unparsed_posting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postings_across_segments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flows, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flows_stop, setup, teardown),
        cmocka_unit_test_setup_teardown(test_flows_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reader_follows_writer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_segment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postings_null_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segw_path_too_long, setup, teardown),
        cmocka_unit_test_setup_teardown(test_damaged_postings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_segdamage, setup, teardown),
        cmocka_unit_test(test_posting_encode),
        cmocka_unit_test_setup_teardown(test_postings_spill, setup, teardown),
        cmocka_unit_test_setup_teardown(test_postings_exact, setup, teardown),
        cmocka_unit_test_setup_teardown(test_large_flush_ingested, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
