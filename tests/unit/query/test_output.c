/* test_output.c -- unit tests for query/output.c: pcap and pcapng bytes, checked by hand and read back with libpcap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rw.h"
#include "query/query.h"

/* ---- a growing memory buffer as the write callback ---- */

struct membuf {
    uint8_t *p;
    size_t n, cap;
    int calls;
    int fail_after; /* fail every call after this many (-1: never) */
};

static int mem_write(void *arg, const void *buf, size_t n)
{
    struct membuf *m = arg;
    if (m->fail_after >= 0 && m->calls >= m->fail_after)
        return -1;
    m->calls++;
    if (m->n + n > m->cap) {
        m->cap = (m->n + n) * 2;
        m->p = realloc(m->p, m->cap);
        assert_non_null(m->p);
    }
    memcpy(m->p + m->n, buf, n);
    m->n += n;
    return 0;
}

static uint32_t rd32(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return v;
}

static uint16_t rd16(const uint8_t *p)
{
    uint16_t v;
    memcpy(&v, p, 2);
    return v;
}

static struct qry_point mkpoint(const char *name, int linktype, uint32_t snaplen)
{
    struct qry_point p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    p.dlt = linktype;
    p.linktype = linktype;
    p.snaplen = snaplen;
    return p;
}

static uint8_t data1[60], data2[61], big[300000];

static void fill(void)
{
    for (size_t i = 0; i < sizeof data1; i++)
        data1[i] = (uint8_t)(i + 1);
    for (size_t i = 0; i < sizeof data2; i++)
        data2[i] = (uint8_t)(0xa0 + i);
    for (size_t i = 0; i < sizeof big; i++)
        big[i] = (uint8_t)(i * 7);
}

static void write_all(int format, const struct qry_point *pts, int npts, const struct qry_pkt *pk,
                      int n, struct membuf *m)
{
    char err[RW_ERRSZ] = "";
    qry_out_t *o = NULL;
    int rc = qry_out_new(format, pts, npts, mem_write, m, &o, err);
    if (rc != 0)
        fail_msg("qry_out_new: %d %s", rc, err);
    for (int i = 0; i < n; i++)
        assert_int_equal(qry_out_packet(o, &pk[i]), 0);
    assert_int_equal(qry_out_close(o), 0);
}

/* ---- pcap ---- */

static void test_pcap_bytes(void **state)
{
    (void)state;
    fill();
    struct qry_point pts[2] = {mkpoint("eth0", 1, 1500), mkpoint("eth1", 1, 9000)};
    struct qry_pkt pk[2] = {
        {.point = 0, .sec = 1714572000, .frac = 123456789, .caplen = 60, .len = 60, .data = data1},
        {.point = 1, .sec = 1714572001, .frac = 5, .caplen = 61, .len = 1514, .data = data2},
    };
    struct membuf m = {.fail_after = -1};
    write_all(QRY_PCAP, pts, 2, pk, 2, &m);
    assert_int_equal(m.n, 24 + 16 + 60 + 16 + 61);
    /* file header: nanosecond magic, 2.4, zone 0, sigfigs 0, max snaplen, linktype */
    assert_int_equal(rd32(m.p), 0xa1b23c4d);
    assert_int_equal(rd16(m.p + 4), 2);
    assert_int_equal(rd16(m.p + 6), 4);
    assert_int_equal(rd32(m.p + 8), 0);
    assert_int_equal(rd32(m.p + 12), 0);
    assert_int_equal(rd32(m.p + 16), 9000);
    assert_int_equal(rd32(m.p + 20), 1);
    /* records */
    const uint8_t *r = m.p + 24;
    assert_int_equal(rd32(r), 1714572000);
    assert_int_equal(rd32(r + 4), 123456789);
    assert_int_equal(rd32(r + 8), 60);
    assert_int_equal(rd32(r + 12), 60);
    assert_memory_equal(r + 16, data1, 60);
    r += 16 + 60;
    assert_int_equal(rd32(r), 1714572001);
    assert_int_equal(rd32(r + 4), 5);
    assert_int_equal(rd32(r + 8), 61);
    assert_int_equal(rd32(r + 12), 1514);
    assert_memory_equal(r + 16, data2, 61);

    /* libpcap reads it back with nanosecond timestamps */
    char ebuf[PCAP_ERRBUF_SIZE];
    FILE *f = fmemopen(m.p, m.n, "rb");
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!pc)
        fail_msg("libpcap: %s", ebuf);
    assert_int_equal(pcap_datalink(pc), 1);
    assert_int_equal(pcap_snapshot(pc), 9000);
    struct pcap_pkthdr *h;
    const u_char *d;
    for (int i = 0; i < 2; i++) {
        assert_int_equal(pcap_next_ex(pc, &h, &d), 1);
        assert_int_equal(h->ts.tv_sec, pk[i].sec);
        assert_int_equal(h->ts.tv_usec, pk[i].frac);
        assert_int_equal(h->caplen, pk[i].caplen);
        assert_int_equal(h->len, pk[i].len);
        assert_memory_equal(d, pk[i].data, pk[i].caplen);
    }
    assert_int_equal(pcap_next_ex(pc, &h, &d), PCAP_ERROR_BREAK);
    pcap_close(pc);
    free(m.p);
}

static void test_pcap_empty_and_defaults(void **state)
{
    (void)state;
    /* no points: Ethernet, snaplen 262144; header only */
    struct membuf m = {.fail_after = -1};
    write_all(QRY_PCAP, NULL, 0, NULL, 0, &m);
    assert_int_equal(m.n, 24);
    assert_int_equal(rd32(m.p + 16), 262144);
    assert_int_equal(rd32(m.p + 20), 1);
    free(m.p);
    /* points with snaplen 0: the default snaplen */
    struct qry_point p = mkpoint("raw", 101, 0);
    m = (struct membuf){.fail_after = -1};
    write_all(QRY_PCAP, &p, 1, NULL, 0, &m);
    assert_int_equal(rd32(m.p + 16), 262144);
    assert_int_equal(rd32(m.p + 20), 101);
    free(m.p);
}

static void test_pcap_mixed_linktypes(void **state)
{
    (void)state;
    struct qry_point pts[3] = {mkpoint("eth0", 1, 1500), mkpoint("eth1", 1, 1500),
                               mkpoint("tun0", 101, 1500)};
    struct membuf m = {.fail_after = -1};
    char err[RW_ERRSZ] = "";
    qry_out_t *o = NULL;
    assert_int_equal(qry_out_new(QRY_PCAP, pts, 3, mem_write, &m, &o, err), RW_EINPUT);
    assert_null(o);
    assert_int_equal(m.n, 0);
    assert_non_null(strstr(err, "pcapng"));
    assert_non_null(strstr(err, "eth0"));
    assert_non_null(strstr(err, "tun0"));
    /* pcapng takes them */
    assert_int_equal(qry_out_new(QRY_PCAPNG, pts, 3, mem_write, &m, &o, err), 0);
    assert_int_equal(qry_out_close(o), 0);
    free(m.p);
}

static void test_write_failure(void **state)
{
    (void)state;
    fill();
    struct qry_point p = mkpoint("eth0", 1, 1500);
    struct qry_pkt pk = {.point = 0, .sec = 1, .frac = 2, .caplen = 60, .len = 60, .data = data1};
    for (int format = QRY_PCAP; format <= QRY_PCAPNG; format++) {
        /* every write fails: reported at close */
        struct membuf m = {.fail_after = 0};
        char err[RW_ERRSZ];
        qry_out_t *o = NULL;
        assert_int_equal(qry_out_new(format, &p, 1, mem_write, &m, &o, err), 0);
        assert_int_equal(qry_out_packet(o, &pk), 0); /* buffered: not yet known */
        assert_int_equal(qry_out_close(o), RW_EIO);
        free(m.p);
        /* the first write succeeds, a later one fails: the failure sticks */
        m = (struct membuf){.fail_after = 1};
        assert_int_equal(qry_out_new(format, &p, 1, mem_write, &m, &o, err), 0);
        int rc = 0;
        for (int i = 0; i < 20000 && rc == 0; i++) /* > 2 buffers' worth */
            rc = qry_out_packet(o, &pk);
        assert_int_equal(rc, RW_EIO);
        assert_int_equal(qry_out_close(o), RW_EIO);
        assert_int_equal(m.calls, 1);
        free(m.p);
    }
    assert_int_equal(qry_out_close(NULL), 0);
}

/* ---- pcapng ---- */

/* Walk the blocks: each has matching leading and trailing lengths, a
 * multiple of 4, and fits the buffer. Returns the number of blocks. */
static int ng_blocks(const uint8_t *p, size_t n, const uint8_t **blk, int max)
{
    size_t pos = 0;
    int cnt = 0;
    while (pos < n) {
        assert_true(pos + 12 <= n);
        uint32_t len = rd32(p + pos + 4);
        assert_int_equal(len % 4, 0);
        assert_true(len >= 12);
        assert_true(pos + len <= n);
        assert_int_equal(rd32(p + pos + len - 4), len);
        if (cnt < max)
            blk[cnt] = p + pos;
        cnt++;
        pos += len;
    }
    assert_int_equal(pos, n);
    return cnt;
}

/* Options of an IDB starting at off within the block; checks if_name and if_tsresol. */
static void check_idb(const uint8_t *b, int linktype, uint32_t snaplen, const char *name)
{
    uint32_t len = rd32(b + 4);
    assert_int_equal(rd32(b), 1);
    assert_int_equal(rd16(b + 8), linktype);
    assert_int_equal(rd16(b + 10), 0);
    assert_int_equal(rd32(b + 12), snaplen);
    size_t pos = 16;
    int have_name = 0, have_res = 0, have_end = 0;
    while (pos + 4 <= len - 4) {
        uint16_t code = rd16(b + pos), olen = rd16(b + pos + 2);
        const uint8_t *v = b + pos + 4;
        size_t padded = (olen + 3u) / 4 * 4;
        assert_true(pos + 4 + padded <= len - 4);
        for (size_t i = olen; i < padded; i++)
            assert_int_equal(v[i], 0);
        if (code == 0) {
            assert_int_equal(olen, 0);
            have_end = 1;
            pos += 4;
            break;
        }
        if (code == 2) {
            assert_int_equal(olen, strlen(name));
            assert_memory_equal(v, name, olen);
            have_name = 1;
        } else if (code == 9) {
            assert_int_equal(olen, 1);
            assert_int_equal(v[0], 9);
            have_res = 1;
        }
        pos += 4 + padded;
    }
    assert_true(have_name && have_res && have_end);
    assert_int_equal(pos + 4, len);
}

static void check_epb(const uint8_t *b, uint32_t ifid, uint64_t ts, const struct qry_pkt *p)
{
    uint32_t len = rd32(b + 4);
    uint32_t pad = (4 - p->caplen % 4) % 4;
    assert_int_equal(rd32(b), 6);
    assert_int_equal(len, 32 + p->caplen + pad);
    assert_int_equal(rd32(b + 8), ifid);
    assert_int_equal(((uint64_t)rd32(b + 12) << 32) | rd32(b + 16), ts);
    assert_int_equal(rd32(b + 20), p->caplen);
    assert_int_equal(rd32(b + 24), p->len);
    assert_memory_equal(b + 28, p->data, p->caplen);
    for (uint32_t i = 0; i < pad; i++)
        assert_int_equal(b[28 + p->caplen + i], 0);
}

static void test_pcapng_bytes(void **state)
{
    (void)state;
    fill();
    /* names of lengths 4, 3 and 8 exercise option padding */
    struct qry_point pts[3] = {mkpoint("eth0", 1, 1500), mkpoint("wan", 101, 9000),
                               mkpoint("tap-dmz1", 1, 262144)};
    struct qry_pkt pk[3] = {
        {.point = 1, .sec = 1714572000, .frac = 999999999, .caplen = 61, .len = 61, .data = data2},
        {.point = 0, .sec = 1714572001, .frac = 0, .caplen = 60, .len = 1514, .data = data1},
        {.point = 2, .sec = 4000000000u, .frac = 1, .caplen = 0, .len = 0, .data = data1},
    };
    struct membuf m = {.fail_after = -1};
    write_all(QRY_PCAPNG, pts, 3, pk, 3, &m);
    const uint8_t *blk[8];
    assert_int_equal(ng_blocks(m.p, m.n, blk, 8), 7);
    /* SHB: magic, BOM, version 1.0, unknown section length */
    const uint8_t *shb = blk[0];
    assert_int_equal(rd32(shb), 0x0A0D0D0A);
    assert_int_equal(rd32(shb + 4), 28);
    assert_int_equal(rd32(shb + 8), 0x1A2B3C4D);
    assert_int_equal(rd16(shb + 12), 1);
    assert_int_equal(rd16(shb + 14), 0);
    assert_int_equal(rd32(shb + 16), 0xffffffff);
    assert_int_equal(rd32(shb + 20), 0xffffffff);
    /* one IDB per point, in order, each with the largest snaplen (libpcap
     * refuses a section whose interfaces differ in snaplen) */
    check_idb(blk[1], 1, 262144, "eth0");
    check_idb(blk[2], 101, 262144, "wan");
    check_idb(blk[3], 1, 262144, "tap-dmz1");
    /* EPBs: interface = point index, 64-bit ns timestamps */
    check_epb(blk[4], 1, 1714572000ULL * 1000000000ULL + 999999999, &pk[0]);
    check_epb(blk[5], 0, 1714572001ULL * 1000000000ULL, &pk[1]);
    check_epb(blk[6], 2, 4000000000ULL * 1000000000ULL + 1, &pk[2]);
    free(m.p);
}

/* A record larger than the output buffer (256 KiB) is written straight
 * through and keeps its place in the stream. (Checked by hand: libpcap
 * refuses records over 262144 bytes.) */
static void test_large_record(void **state)
{
    (void)state;
    fill();
    struct qry_point p = mkpoint("eth0", 1, 400000);
    struct qry_pkt pk[3] = {
        {.point = 0, .sec = 10, .frac = 1, .caplen = 60, .len = 60, .data = data1},
        {.point = 0, .sec = 11, .frac = 2, .caplen = sizeof big, .len = sizeof big, .data = big},
        {.point = 0, .sec = 12, .frac = 3, .caplen = 61, .len = 61, .data = data2},
    };
    /* pcap */
    struct membuf m = {.fail_after = -1};
    write_all(QRY_PCAP, &p, 1, pk, 3, &m);
    assert_int_equal(m.n, 24 + 3 * 16 + 60 + sizeof big + 61);
    const uint8_t *r = m.p + 24;
    for (int i = 0; i < 3; i++) {
        assert_int_equal(rd32(r), pk[i].sec);
        assert_int_equal(rd32(r + 4), pk[i].frac);
        assert_int_equal(rd32(r + 8), pk[i].caplen);
        assert_memory_equal(r + 16, pk[i].data, pk[i].caplen);
        r += 16 + pk[i].caplen;
    }
    free(m.p);
    /* pcapng */
    m = (struct membuf){.fail_after = -1};
    write_all(QRY_PCAPNG, &p, 1, pk, 3, &m);
    const uint8_t *blk[8];
    assert_int_equal(ng_blocks(m.p, m.n, blk, 8), 5);
    for (int i = 0; i < 3; i++)
        check_epb(blk[2 + i], 0, (uint64_t)pk[i].sec * 1000000000ULL + pk[i].frac, &pk[i]);
    free(m.p);
}

/* libpcap reads our pcapng: interfaces of one link type (libpcap refuses
 * files whose interfaces differ in link type). */
static void test_pcapng_libpcap(void **state)
{
    (void)state;
    fill();
    struct qry_point pts[2] = {mkpoint("a", 1, 65535), mkpoint("second-point", 1, 65535)};
    enum { N = 50 };
    struct qry_pkt pk[N];
    for (int i = 0; i < N; i++) {
        pk[i] = (struct qry_pkt){.point = i % 2, .sec = 1700000000u + (uint32_t)i,
                                 .frac = (uint32_t)i * 12345679u % 1000000000u,
                                 .caplen = (uint32_t)(i % 2 ? 61 - i % 5 : 60 - i % 3),
                                 .len = 1000 + (uint32_t)i, .data = i % 2 ? data2 : data1};
    }
    struct membuf m = {.fail_after = -1};
    write_all(QRY_PCAPNG, pts, 2, pk, N, &m);
    const uint8_t *blk[1];
    assert_int_equal(ng_blocks(m.p, m.n, blk, 1), 3 + N);

    char ebuf[PCAP_ERRBUF_SIZE];
    FILE *f = fmemopen(m.p, m.n, "rb");
    assert_non_null(f);
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!pc)
        fail_msg("libpcap rejects our pcapng: %s", ebuf);
    assert_int_equal(pcap_datalink(pc), DLT_EN10MB);
    struct pcap_pkthdr *h;
    const u_char *d;
    for (int i = 0; i < N; i++) {
        int rc = pcap_next_ex(pc, &h, &d);
        if (rc != 1)
            fail_msg("packet %d: %d %s", i, rc, pcap_geterr(pc));
        assert_int_equal(h->ts.tv_sec, pk[i].sec);
        assert_int_equal(h->ts.tv_usec, pk[i].frac); /* nanoseconds: if_tsresol honoured */
        assert_int_equal(h->caplen, pk[i].caplen);
        assert_int_equal(h->len, pk[i].len);
        assert_memory_equal(d, pk[i].data, pk[i].caplen);
    }
    assert_int_equal(pcap_next_ex(pc, &h, &d), PCAP_ERROR_BREAK);
    pcap_close(pc);

    /* microsecond precision: libpcap scales our nanoseconds down */
    f = fmemopen(m.p, m.n, "rb");
    pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_MICRO, ebuf);
    assert_non_null(pc);
    assert_int_equal(pcap_next_ex(pc, &h, &d), 1);
    assert_int_equal(h->ts.tv_usec, pk[0].frac / 1000);
    assert_int_equal(pcap_next_ex(pc, &h, &d), 1);
    assert_int_equal(h->ts.tv_usec, pk[1].frac / 1000);
    pcap_close(pc);
    free(m.p);
}

/* Regression (interoperability): each IDB used to carry its own point's snaplen, and
 * libpcap (so tcpdump, and rewind's own importer) refuses a pcapng whose
 * interfaces differ in snaplen: "an interface has a snapshot length 65535
 * different from the snapshot length of the first interface". A query over
 * two Ethernet points captured with different snaplens thus produces a file
 * tcpdump -r cannot read. Every IDB now carries the largest snaplen, as the
 * pcap header does. */
static void test_pcapng_libpcap_mixed_snaplen(void **state)
{
    (void)state;
    fill();
    struct qry_point pts[2] = {mkpoint("a", 1, 1500), mkpoint("b", 1, 65535)};
    struct qry_pkt pk[2] = {
        {.point = 0, .sec = 1, .frac = 1, .caplen = 60, .len = 60, .data = data1},
        {.point = 1, .sec = 2, .frac = 2, .caplen = 61, .len = 61, .data = data2},
    };
    struct membuf m = {.fail_after = -1};
    write_all(QRY_PCAPNG, pts, 2, pk, 2, &m);
    char ebuf[PCAP_ERRBUF_SIZE], msg[PCAP_ERRBUF_SIZE + 64] = "";
    FILE *f = fmemopen(m.p, m.n, "rb");
    pcap_t *pc = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    int got = 0;
    if (!pc) {
        snprintf(msg, sizeof msg, "open: %s", ebuf);
    } else {
        struct pcap_pkthdr *h;
        const u_char *d;
        int rc;
        while ((rc = pcap_next_ex(pc, &h, &d)) == 1)
            got++;
        if (rc != PCAP_ERROR_BREAK)
            snprintf(msg, sizeof msg, "after %d packets: %s", got, pcap_geterr(pc));
        pcap_close(pc);
    }
    free(m.p);
    if (msg[0])
        fail_msg("libpcap cannot read the pcapng: %s", msg);
    assert_int_equal(got, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pcap_bytes),
        cmocka_unit_test(test_pcap_empty_and_defaults),
        cmocka_unit_test(test_pcap_mixed_linktypes),
        cmocka_unit_test(test_write_failure),
        cmocka_unit_test(test_large_record),
        cmocka_unit_test(test_pcapng_bytes),
        cmocka_unit_test(test_pcapng_libpcap),
        cmocka_unit_test(test_pcapng_libpcap_mixed_snaplen),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
