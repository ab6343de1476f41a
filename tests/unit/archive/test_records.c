/* test_records.c -- unit tests for arc_pw_add_records (archive/writer.c): a
 * batch of pcap records written from the caller's memory gives the same
 * archive as arc_pw_add one packet at a time: the same segments (rolled by
 * time and by size), byte for byte, the same flows and counters; and a
 * batch that is not whole records is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/rw.h"
#include "index/index.h"

#define NPKT 3000
#define SNAP 1400 /* some records are longer: they are cut, as arc_pw_add cuts them */
#define SEC0 1714572000u

static int rm_entry(const char *p, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(p);
}

/* NPKT records: IPv4 UDP and TCP among a few dozen flows, 60 to 1500
 * bytes, 1 ms apart (a 1 s segment rolls every 1000 packets). */
static uint8_t *make_records(size_t *len)
{
    uint8_t *buf = malloc((size_t)NPKT * (16 + 1500));
    size_t n = 0;
    uint64_t r = 12345;
    assert_non_null(buf);
    for (uint32_t i = 0; i < NPKT; i++) {
        r = r * 6364136223846793005ULL + 1442695040888963407ULL;
        uint32_t caplen = 60 + (uint32_t)(r >> 33) % 1441;
        uint32_t rec[4] = {SEC0 + i / 1000, (i % 1000) * 1000000u, caplen, caplen};
        uint8_t *p = buf + n + 16;
        memcpy(buf + n, rec, 16);
        memset(p, 0, caplen);
        memcpy(p, "\x02\0\0\0\0\x02\x02\0\0\0\0\x01\x08\x00", 14);
        uint8_t proto = (r >> 20) & 1 ? 6 : 17;
        uint8_t ip[20] = {0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 10, 0, 0,
                          (uint8_t)(1 + (r >> 40) % 7), 192, 168, 0, (uint8_t)(1 + (r >> 44) % 5)};
        rw_put_be16(ip + 2, (uint16_t)(caplen - 14));
        memcpy(p + 14, ip, 20);
        rw_put_be16(p + 34, (uint16_t)(1024 + (r >> 48) % 9));
        rw_put_be16(p + 36, proto == 6 ? 443 : 53);
        if (proto == 6)
            p[47] = 0x18; /* TCP flags, header length left 0: parsed as far as it goes */
        n += 16 + caplen;
    }
    *len = n;
    return buf;
}

static arc_t *open_archive(const char *dir)
{
    char err[RW_ERRSZ];
    struct arc_opts o;
    arc_t *a = NULL;
    arc_opts_default(&o);
    o.sync = 0;
    o.segment_ns = RW_NS_PER_SEC;
    o.segment_bytes = 300 << 10; /* rolls by size too, inside a batch */
    if (arc_open(dir, &o, &a, err) < 0)
        fail_msg("arc_open: %s", err);
    return a;
}

struct tot {
    uint64_t flows, pkts, bytes;
};

static int flow_cb(void *arg, const struct idx_flowrec *f)
{
    struct tot *t = arg;
    t->flows++;
    t->pkts += f->pkts_fwd + f->pkts_rev;
    t->bytes += f->bytes_fwd + f->bytes_rev;
    return 0;
}

static int count_cb(void *arg, int64_t sec, uint64_t packets, uint64_t bytes)
{
    struct tot *t = arg;
    (void)sec;
    t->pkts += packets;
    t->bytes += bytes;
    return 0;
}

static char *slurp(const char *path, size_t *n)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long sz = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *b = malloc((size_t)sz + 1);
    assert_int_equal(fread(b, 1, (size_t)sz, f), (size_t)sz);
    fclose(f);
    *n = (size_t)sz;
    return b;
}

static void test_batch_equals_one_by_one(void **state)
{
    (void)state;
    char tmp[] = "/tmp/rw-records-XXXXXX", d1[128], d2[128], err[RW_ERRSZ];
    size_t len;
    uint8_t *recs = make_records(&len);
    assert_non_null(mkdtemp(tmp));
    snprintf(d1, sizeof d1, "%s/one", tmp);
    snprintf(d2, sizeof d2, "%s/batch", tmp);
    arc_t *a1 = open_archive(d1), *a2 = open_archive(d2);
    arc_pw_t *w1, *w2;
    assert_int_equal(arc_pw_open(a1, "p", 1, SNAP, &w1, err), 0);
    assert_int_equal(arc_pw_open(a2, "p", 1, SNAP, &w2, err), 0);
    /* one by one */
    for (size_t off = 0; off < len;) {
        uint32_t rec[4];
        memcpy(rec, recs + off, 16);
        assert_int_equal(arc_pw_add(w1, rec[0], rec[1], rec[2], rec[3], recs + off + 16, err), 0);
        off += 16 + rec[2];
    }
    /* in batches of 1 to 97 records */
    uint64_t total = 0;
    for (size_t off = 0, k = 1; off < len; k = k % 97 + 7) {
        size_t end = off;
        for (size_t j = 0; j < k && end < len; j++) {
            uint32_t rec[4];
            memcpy(rec, recs + end, 16);
            end += 16 + rec[2];
        }
        uint64_t done = 0;
        assert_int_equal(arc_pw_add_records(w2, recs + off, end - off, &done, err), 0);
        total += done;
        off = end;
    }
    assert_int_equal(total, NPKT);
    assert_int_equal(arc_pw_packets(w1), NPKT);
    assert_int_equal(arc_pw_packets(w2), NPKT);
    assert_int_equal(arc_pw_close(w1, err), 0);
    assert_int_equal(arc_pw_close(w2, err), 0);

    struct idx_seg *s1, *s2;
    size_t n1, n2;
    assert_int_equal(idx_seg_all(arc_index(a1), &s1, &n1, err), 0);
    assert_int_equal(idx_seg_all(arc_index(a2), &s2, &n2, err), 0);
    assert_true(n1 > 6); /* rolled by time (3 s) and by size */
    assert_int_equal(n1, n2);
    for (size_t i = 0; i < n1; i++) {
        char p1[400], p2[400];
        size_t l1, l2;
        assert_int_equal(s1[i].packets, s2[i].packets);
        assert_int_equal(s1[i].file_size, s2[i].file_size);
        assert_int_equal(s1[i].min_ts, s2[i].min_ts);
        assert_int_equal(s1[i].max_ts, s2[i].max_ts);
        snprintf(p1, sizeof p1, "%s/%s", d1, s1[i].path);
        snprintf(p2, sizeof p2, "%s/%s", d2, s2[i].path);
        char *b1 = slurp(p1, &l1), *b2 = slurp(p2, &l2);
        assert_int_equal(l1, l2);
        assert_int_equal(l1, s1[i].file_size);
        assert_memory_equal(b1, b2, l1);
        free(b1);
        free(b2);
        struct tot f1 = {0}, f2 = {0};
        assert_int_equal(idx_flows(arc_index(a1), s1[i].id, flow_cb, &f1, err), 0);
        assert_int_equal(idx_flows(arc_index(a2), s2[i].id, flow_cb, &f2, err), 0);
        assert_true(f1.flows > 0);
        assert_int_equal(f1.flows, f2.flows);
        assert_int_equal(f1.pkts, s1[i].packets);
        assert_int_equal(f1.pkts, f2.pkts);
        assert_int_equal(f1.bytes, f2.bytes);
    }
    struct tot c1 = {0}, c2 = {0};
    assert_int_equal(idx_counters(arc_index(a1), s1[0].point, SEC0, SEC0 + 10, count_cb, &c1, err),
                     0);
    assert_int_equal(idx_counters(arc_index(a2), s2[0].point, SEC0, SEC0 + 10, count_cb, &c2, err),
                     0);
    assert_int_equal(c1.pkts, NPKT);
    assert_int_equal(c2.pkts, NPKT);
    assert_int_equal(c1.bytes, c2.bytes);
    free(s1);
    free(s2);
    arc_close(a1);
    arc_close(a2);
    free(recs);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static void test_partial_record_refused(void **state)
{
    (void)state;
    char tmp[] = "/tmp/rw-records-XXXXXX", err[RW_ERRSZ] = "";
    size_t len;
    uint8_t *recs = make_records(&len);
    assert_non_null(mkdtemp(tmp));
    arc_t *a = open_archive(tmp);
    arc_pw_t *w;
    assert_int_equal(arc_pw_open(a, "p", 1, SNAP, &w, err), 0);
    uint32_t rec[4];
    memcpy(rec, recs, 16);
    uint64_t done = 99;
    /* the first record whole, the second cut short */
    int rc = arc_pw_add_records(w, recs, 16 + rec[2] + 20, &done, err);
    assert_int_equal(rc, RW_EINPUT);
    assert_non_null(strstr(err, "past the end"));
    assert_int_equal(done, 1);
    /* whole records, then a few bytes of a header */
    assert_int_equal(arc_pw_add_records(w, recs, 16 + rec[2] + 7, &done, err), RW_EINPUT);
    assert_non_null(strstr(err, "less than a record header"));
    assert_int_equal(done, 1);
    assert_int_equal(arc_pw_close(w, err), 0);
    arc_close(a);
    free(recs);
    nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_equals_one_by_one),
        cmocka_unit_test(test_partial_record_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
