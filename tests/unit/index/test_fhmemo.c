/* test_fhmemo.c -- unit tests for idx_parse_packet_memo (index/parse.c): with
 * a flow-hash memo the parser gives exactly what idx_parse_packet gives, for
 * every packet of the shared real captures read twice over (the second time
 * from the memo), and for flows that differ only in a field the memo keys
 * on (direction, VLAN, ports present). */
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

static void same(const struct idx_parsed *a, const struct idx_parsed *b, const char *what)
{
    if (a->flags != b->flags || a->nterms != b->nterms || a->hdr_end != b->hdr_end ||
        memcmp(&a->flow, &b->flow, sizeof a->flow) != 0)
        fail_msg("%s: parse differs with the memo", what);
    for (int i = 0; i < a->nterms; i++)
        if (a->terms[i].kind != b->terms[i].kind || a->terms[i].len != b->terms[i].len ||
            memcmp(a->terms[i].val, b->terms[i].val, a->terms[i].len) != 0)
            fail_msg("%s: term %d differs with the memo", what, i);
}

static size_t check_file(const char *path, idx_fhmemo_t *m)
{
    char eb[PCAP_ERRBUF_SIZE];
    size_t n = 0;
    for (int round = 0; round < 2; round++) {
        pcap_t *p = pcap_open_offline(path, eb);
        if (!p)
            return n;
        struct pcap_pkthdr *h;
        const u_char *d;
        while (pcap_next_ex(p, &h, &d) == 1) {
            static struct idx_parsed x, y;
            idx_parse_packet(pcap_datalink(p), d, h->caplen, &x);
            idx_parse_packet_memo(pcap_datalink(p), d, h->caplen, &y, m);
            same(&x, &y, path);
            if (x.flow.present && idx_flow_hash(&y.flow) != idx_flow_hash(&x.flow))
                fail_msg("%s: flow hash differs", path);
            n++;
        }
        pcap_close(p);
    }
    return n;
}

static void test_real_captures(void **state)
{
    (void)state;
    idx_fhmemo_t *m = idx_fhmemo_new();
    assert_non_null(m);
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
            n += check_file(path, m);
        }
        closedir(d);
    }
    idx_fhmemo_free(m);
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
    idx_fhmemo_t *m = idx_fhmemo_new();
    assert_non_null(m);
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
    for (int round = 0; round < 3; round++)
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            static struct idx_parsed x, y;
            uint32_t n = frame(f, cases[i].vlan, cases[i].s, cases[i].d, cases[i].sp,
                               cases[i].dp, cases[i].caplen);
            idx_parse_packet(1, f, n, &x);
            idx_parse_packet_memo(1, f, n, &y, m);
            same(&x, &y, "neighbour flows");
        }
    idx_fhmemo_free(m);
    idx_fhmemo_free(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_real_captures),
        cmocka_unit_test(test_neighbours),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
