/* test_flowkey.c -- unit tests for idx_parse_packet_nohash and idx_flow_key
 * (index/parse.c), which a writer uses to find a packet's flow without its
 * hash: for every packet of the shared real captures, the parse is
 * idx_parse_packet's but the flow term; the key's hash is that term; the
 * reversed flow has the same key. For flows that differ in one field
 * (direction, VLAN, ports, ports present), keys differ exactly when hashes
 * do. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <string.h>

#include "index/parse.h"

#define PCAPS "/work/shared/pcaps"

/* a is idx_parse_packet's, b idx_parse_packet_nohash's of one packet */
static void same(const struct idx_parsed *a, const struct idx_parsed *b, const char *what)
{
    int flow = a->flow.present;
    if (flow && (a->nterms == 0 || a->terms[a->nterms - 1].kind != IDX_T_FLOW))
        fail_msg("%s: the flow term is not the last", what);
    if (a->flags != b->flags || a->nterms - flow != b->nterms || a->hdr_end != b->hdr_end ||
        memcmp(&a->flow, &b->flow, sizeof a->flow) != 0)
        fail_msg("%s: the parse differs without the hash", what);
    for (int i = 0; i < b->nterms; i++)
        if (a->terms[i].kind != b->terms[i].kind || a->terms[i].len != b->terms[i].len ||
            memcmp(a->terms[i].val, b->terms[i].val, a->terms[i].len) != 0)
            fail_msg("%s: term %d differs without the hash", what, i);
    if (!flow)
        return;
    struct idx_flowkey k, kr;
    int swap = idx_flow_key(&b->flow, &k);
    if (memcmp(&k, &a->key, sizeof k) != 0 || memcmp(&k, &b->key, sizeof k) != 0)
        fail_msg("%s: the parse's key is not the flow's", what);
    if (swap != a->key_swap || swap != b->key_swap)
        fail_msg("%s: the parse's key_swap is not the key's", what);
    /* key_swap names the key's endpoint that is the source */
    const uint8_t *kb = (const uint8_t *)k.w;
    size_t alen = b->flow.family == 4 ? 4 : 16;
    if (memcmp(kb + (swap ? IDX_FK_END2 : IDX_FK_END1), b->flow.src, alen) != 0)
        fail_msg("%s: key_swap %d does not name the source's endpoint", what, swap);
    uint8_t h[8];
    uint64_t v = idx_flowkey_hash(&k);
    for (int i = 7; i >= 0; i--, v >>= 8)
        h[i] = (uint8_t)v;
    if (memcmp(h, a->terms[a->nterms - 1].val, 8) != 0)
        fail_msg("%s: the key's hash is not the flow term", what);
    struct idx_flow r = b->flow;
    memcpy(r.src, b->flow.dst, 16);
    memcpy(r.dst, b->flow.src, 16);
    r.sport = b->flow.dport;
    r.dport = b->flow.sport;
    int rswap = idx_flow_key(&r, &kr);
    int icmp = r.proto == (r.family == 4 ? 1 : 58); /* type and code do not swap */
    if (!icmp && memcmp(&k, &kr, sizeof k) != 0)
        fail_msg("%s: the reversed flow has another key", what);
    /* the other way is the other endpoint, unless both are the same */
    int same_ends = !memcmp(kb + IDX_FK_END1, kb + IDX_FK_END2, 18);
    if (!icmp && rswap != (same_ends ? swap : !swap))
        fail_msg("%s: the reversed flow's key_swap is %d, the flow's %d", what, rswap, swap);
}

static size_t check_file(const char *path)
{
    char eb[PCAP_ERRBUF_SIZE];
    size_t n = 0;
    pcap_t *p = pcap_open_offline(path, eb);
    if (!p)
        return n;
    struct pcap_pkthdr *h;
    const u_char *d;
    while (pcap_next_ex(p, &h, &d) == 1) {
        static struct idx_parsed x, y;
        idx_parse_packet(pcap_datalink(p), d, h->caplen, &x);
        idx_parse_packet_nohash(pcap_datalink(p), d, h->caplen, &y);
        same(&x, &y, path);
        n++;
    }
    pcap_close(p);
    return n;
}

static void test_real_captures(void **state)
{
    (void)state;
    size_t n = 0;
    static const char *dirs[] = {PCAPS "/good", PCAPS "/edge", PCAPS "/app"};
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        DIR *d = opendir(dirs[i]);
        if (!d)
            continue;
        struct dirent *e;
        while ((e = readdir(d))) {
            char path[1024];
            if (e->d_name[0] == '.')
                continue;
            snprintf(path, sizeof path, "%s/%s", dirs[i], e->d_name);
            n += check_file(path);
        }
        closedir(d);
    }
    if (n == 0)
        skip(); /* no shared captures on this machine */
}

/* An Ethernet frame, optionally 802.1Q-tagged, IPv4 with a UDP header. */
static uint32_t frame(uint8_t *f, int vlan, const uint8_t src[4], const uint8_t dst[4],
                      uint16_t sp, uint16_t dp, uint32_t caplen)
{
    memset(f, 0, 64);
    uint32_t o = 12;
    if (vlan) {
        f[o] = 0x81, f[o + 1] = 0x00, f[o + 2] = 0, f[o + 3] = (uint8_t)vlan;
        o += 4;
    }
    f[o] = 0x08, f[o + 1] = 0x00;
    o += 2;
    f[o] = 0x45, f[o + 3] = 28, f[o + 8] = 64, f[o + 9] = 17;
    memcpy(f + o + 12, src, 4);
    memcpy(f + o + 16, dst, 4);
    f[o + 20] = (uint8_t)(sp >> 8), f[o + 21] = (uint8_t)sp;
    f[o + 22] = (uint8_t)(dp >> 8), f[o + 23] = (uint8_t)dp;
    return caplen ? caplen : o + 28;
}

static void test_neighbours(void **state)
{
    (void)state;
    static const uint8_t a[4] = {10, 0, 0, 1}, b[4] = {10, 0, 0, 2};
    uint8_t f[64];
    struct {
        int vlan;
        const uint8_t *s, *d;
        uint16_t sp, dp;
        uint32_t caplen; /* 0: whole; short: no ports */
    } cases[] = {
        {0, a, b, 1000, 53, 0}, {0, b, a, 53, 1000, 0}, {5, a, b, 1000, 53, 0},
        {6, a, b, 1000, 53, 0}, {0, a, b, 1000, 54, 0}, {0, a, b, 1000, 53, 34},
        {0, a, b, 1000, 53, 0}, {0, a, b, 32768, 0, 0}, {0, a, b, 0, 0, 0},
        {0, a, b, 65535, 53, 0}, {0, a, b, 32767, 53, 0}, {7, a, b, 32768, 32768, 0},
        {7, a, b, 0, 0, 0},
    };
    enum { N = sizeof cases / sizeof cases[0] };
    struct idx_flowkey k[N];
    uint64_t h[N];
    for (size_t i = 0; i < N; i++) {
        static struct idx_parsed x, y;
        uint32_t n = frame(f, cases[i].vlan, cases[i].s, cases[i].d, cases[i].sp, cases[i].dp,
                           cases[i].caplen);
        idx_parse_packet(1, f, n, &x);
        idx_parse_packet_nohash(1, f, n, &y);
        same(&x, &y, "neighbour flows");
        assert_true(y.flow.present);
        idx_flow_key(&y.flow, &k[i]);
        h[i] = idx_flow_hash(&y.flow);
    }
    /* keys are equal exactly when hashes are: 0, 1 and 6 are one flow
     * (both ways), and so are 5 and 8 (no ports, and ports 0 and 0) */
    for (size_t i = 0; i < N; i++)
        for (size_t j = 0; j < N; j++) {
            int one = i == j || ((i == 0 || i == 1 || i == 6) && (j == 0 || j == 1 || j == 6)) ||
                      ((i == 5 || i == 8) && (j == 5 || j == 8));
            assert_int_equal(memcmp(&k[i], &k[j], sizeof k[i]) == 0, one);
            assert_int_equal(h[i] == h[j], one);
        }
}

/* The flow hash is part of the archive format (flow terms, K8): these
 * values are what the byte-at-a-time implementation before idx_flow_key
 * gave, so that a key computed faster still hashes alike. */
static void test_golden_hashes(void **state)
{
    (void)state;
    static const struct {
        int fam, proto, hp;
        const char *s, *d;
        int sp, dp, vlan;
        uint64_t want;
    } c[] = {
        {4, 6, 1, "\x0a\x00\x00\x01", "\x0a\x00\x00\x02", 1000, 80, 0, 0x1cc8aa72c1132212ULL},
        {4, 6, 1, "\x0a\x00\x00\x02", "\x0a\x00\x00\x01", 80, 1000, 0, 0x1cc8aa72c1132212ULL},
        {4, 17, 1, "\xc0\xa8\x01\x01", "\x08\x08\x08\x08", 53000, 53, 7, 0x72e49db54c3180b3ULL},
        {4, 1, 0, "\x0a\x00\x00\x01", "\x0a\x00\x00\x02", 8, 0, 0, 0x7be65cecf3b8539cULL},
        {4, 1, 0, "\x0a\x00\x00\x02", "\x0a\x00\x00\x01", 0, 0, 0, 0x7be65cecf3b8539cULL},
        {6, 6, 1, "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x01",
         "\x20\x01\x0d\xb8\0\0\0\0\0\0\0\0\0\0\0\x02", 443, 50000, 0, 0xf843bfeaa434a9feULL},
        {6, 58, 0, "\xfe\x80\0\0\0\0\0\0\0\0\0\0\0\0\0\x01",
         "\xff\x02\0\0\0\0\0\0\0\0\0\0\0\0\0\x01", 135, 0, 0, 0x99ac3683ee5f91f5ULL},
        {4, 47, 0, "\x0a\x00\x00\x01", "\x0a\x00\x00\x01", 0, 0, 0, 0xa9af8f5c1190dd10ULL},
    };
    for (size_t i = 0; i < sizeof c / sizeof c[0]; i++) {
        struct idx_flow f;
        struct idx_flowkey k;
        memset(&f, 0, sizeof f);
        f.present = 1;
        f.family = (uint8_t)c[i].fam;
        f.proto = (uint8_t)c[i].proto;
        f.has_ports = (uint8_t)c[i].hp;
        memcpy(f.src, c[i].s, c[i].fam == 4 ? 4 : 16);
        memcpy(f.dst, c[i].d, c[i].fam == 4 ? 4 : 16);
        f.sport = (uint16_t)c[i].sp;
        f.dport = (uint16_t)c[i].dp;
        f.vlan = (uint16_t)c[i].vlan;
        idx_flow_key(&f, &k);
        assert_true(idx_flow_hash(&f) == c[i].want);
        assert_true(idx_flowkey_hash(&k) == c[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_captures),
        cmocka_unit_test(test_neighbours),
        cmocka_unit_test(test_golden_hashes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
