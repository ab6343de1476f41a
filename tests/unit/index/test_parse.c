/* test_parse.c -- unit tests for index/parse.c on hand-built packets of every supported layer. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rw.h"
#include "index/parse.h"

enum { DLT_EN10MB = 1, DLT_NULL = 0, DLT_RAW12 = 12, DLT_RAW = 101, DLT_LOOP = 108,
       DLT_SLL = 113, DLT_IPV4 = 228, DLT_IPV6 = 229, DLT_SLL2 = 276 };

/* ---- packet builder ---- */

struct pkt {
    uint8_t b[2048];
    uint32_t n;
    int dlt;
    uint32_t hend; /* end of the last header the parser must read */
};

static void u8(struct pkt *k, unsigned v) { k->b[k->n++] = (uint8_t)v; }
static void u16(struct pkt *k, unsigned v) { rw_put_be16(k->b + k->n, (uint16_t)v); k->n += 2; }
static void u32(struct pkt *k, uint32_t v) { rw_put_be32(k->b + k->n, v); k->n += 4; }
static void zeros(struct pkt *k, unsigned n) { memset(k->b + k->n, 0, n); k->n += n; }

static void ip4a(struct pkt *k, const char *s)
{
    assert_int_equal(inet_pton(AF_INET, s, k->b + k->n), 1);
    k->n += 4;
}

static void ip6a(struct pkt *k, const char *s)
{
    assert_int_equal(inet_pton(AF_INET6, s, k->b + k->n), 1);
    k->n += 16;
}

static void eth(struct pkt *k, unsigned type)
{
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    memcpy(k->b + k->n, macs, 12);
    k->n += 12;
    u16(k, type);
}

static void vlan(struct pkt *k, unsigned tpid_next, unsigned tci) { u16(k, tci); u16(k, tpid_next); }

/* IPv4 header; returns its offset for ip4_fix(). frag is the flags+offset word. */
static uint32_t ip4(struct pkt *k, unsigned proto, const char *src, const char *dst, unsigned frag)
{
    uint32_t off = k->n;
    u8(k, 0x45);
    u8(k, 0);
    u16(k, 0); /* total length, fixed later */
    u16(k, 0x1234);
    u16(k, frag);
    u8(k, 64);
    u8(k, proto);
    u16(k, 0);
    ip4a(k, src);
    ip4a(k, dst);
    return off;
}

static void ip4_fix(struct pkt *k, uint32_t off) { rw_put_be16(k->b + off + 2, (uint16_t)(k->n - off)); }

static uint32_t ip6(struct pkt *k, unsigned nh, const char *src, const char *dst)
{
    uint32_t off = k->n;
    u32(k, 0x60000000);
    u16(k, 0); /* payload length, fixed later */
    u8(k, nh);
    u8(k, 64);
    ip6a(k, src);
    ip6a(k, dst);
    return off;
}

static void ip6_fix(struct pkt *k, uint32_t off) { rw_put_be16(k->b + off + 4, (uint16_t)(k->n - off - 40)); }

static void tcp(struct pkt *k, unsigned sport, unsigned dport, unsigned flags)
{
    u16(k, sport);
    u16(k, dport);
    u32(k, 1000);
    u32(k, 0);
    u8(k, 0x50);
    u8(k, flags);
    u16(k, 65535);
    u32(k, 0);
}

static uint32_t udp(struct pkt *k, unsigned sport, unsigned dport)
{
    uint32_t off = k->n;
    u16(k, sport);
    u16(k, dport);
    u16(k, 0);
    u16(k, 0);
    return off;
}

static void udp_fix(struct pkt *k, uint32_t off) { rw_put_be16(k->b + off + 4, (uint16_t)(k->n - off)); }

static void payload(struct pkt *k, unsigned n)
{
    for (unsigned i = 0; i < n; i++)
        u8(k, 'a' + i % 26);
}

/* ---- term checking ---- */

/* Parse one expected term "kind=value" into kind and value bytes. */
static void parse_tok(const char *tok, int *kind, uint8_t val[16])
{
    char name[16], v[64];
    memset(val, 0, 16);
    if (strcmp(tok, "flow") == 0) {
        *kind = IDX_T_FLOW;
        return;
    }
    assert_int_equal(sscanf(tok, "%15[^=]=%63s", name, v), 2);
    unsigned long n = strtoul(v, NULL, 0);
    if (strcmp(name, "ip4") == 0) {
        *kind = IDX_T_IP4;
        assert_int_equal(inet_pton(AF_INET, v, val), 1);
    } else if (strcmp(name, "ip6") == 0) {
        *kind = IDX_T_IP6;
        assert_int_equal(inet_pton(AF_INET6, v, val), 1);
    } else if (strcmp(name, "port") == 0 || strcmp(name, "l3") == 0 || strcmp(name, "vlan") == 0) {
        *kind = name[0] == 'p' ? IDX_T_PORT : name[0] == 'l' ? IDX_T_L3 : IDX_T_VLAN;
        rw_put_be16(val, (uint16_t)n);
    } else if (strcmp(name, "proto4") == 0 || strcmp(name, "proto6") == 0) {
        *kind = name[5] == '4' ? IDX_T_PROTO4 : IDX_T_PROTO6;
        val[0] = (uint8_t)n;
    } else {
        fail_msg("bad token %s", tok);
    }
}

static void dump_terms(const struct idx_parsed *p)
{
    print_message("flags %d, %d terms:\n", p->flags, p->nterms);
    for (int i = 0; i < p->nterms; i++) {
        print_message("  kind %d:", p->terms[i].kind);
        for (int j = 0; j < p->terms[i].len; j++)
            print_message(" %02x", p->terms[i].val[j]);
        print_message("\n");
    }
}

/* Assert the flags and that the terms are exactly the space-separated list
 * spec (any order). "flow" stands for the flow hash of p->flow. */
static void check(const struct idx_parsed *p, int flags, const char *spec)
{
    char buf[1024], *save = NULL;
    int used[IDX_MAX_TERMS] = {0}, n = 0;

    if (p->flags != flags)
        dump_terms(p);
    assert_int_equal(p->flags, flags);
    snprintf(buf, sizeof buf, "%s", spec);
    for (char *tok = strtok_r(buf, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
        int kind = 0, found = 0;
        uint8_t val[16];
        parse_tok(tok, &kind, val);
        if (kind == IDX_T_FLOW)
            rw_put_be64(val, idx_flow_hash(&p->flow));
        for (int i = 0; i < p->nterms && !found; i++) {
            const struct idx_term *t = &p->terms[i];
            if (!used[i] && t->kind == kind && t->len == idx_term_len(kind) &&
                memcmp(t->val, val, t->len) == 0)
                used[i] = found = 1;
        }
        if (!found) {
            dump_terms(p);
            fail_msg("missing term %s", tok);
        }
        n++;
    }
    if (n != p->nterms) {
        dump_terms(p);
        fail_msg("expected %d terms, got %d", n, p->nterms);
    }
}

static void parse(const struct pkt *k, struct idx_parsed *out)
{
    idx_parse_packet(k->dlt, k->b, k->n, out);
}

static void flow_addrs(const struct idx_flow *f, const char *src, const char *dst)
{
    uint8_t a[16] = {0}, b[16] = {0};
    int af = f->family == 4 ? AF_INET : AF_INET6;
    assert_int_equal(inet_pton(af, src, a), 1);
    assert_int_equal(inet_pton(af, dst, b), 1);
    assert_memory_equal(f->src, a, 16);
    assert_memory_equal(f->dst, b, 16);
}

/* ---- packet recipes (shared by the layer tests and the truncation test) ---- */

static void mk_ip4_tcp(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0800);
    uint32_t o = ip4(k, 6, "10.0.0.1", "10.0.0.2", 0x4000);
    tcp(k, 1234, 80, 0x02);
    k->hend = k->n;
    ip4_fix(k, o);
}

static void mk_ip4_udp(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0800);
    uint32_t o = ip4(k, 17, "192.168.1.10", "8.8.8.8", 0);
    uint32_t u = udp(k, 40000, 53);
    k->hend = k->n;
    payload(k, 12);
    udp_fix(k, u);
    ip4_fix(k, o);
}

static void mk_ip6_tcp(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x86dd);
    uint32_t o = ip6(k, 6, "2001:db8::1", "2001:db8::2");
    tcp(k, 443, 50000, 0x12);
    k->hend = k->n;
    ip6_fix(k, o);
}

/* IPv6, hop-by-hop (PadN), fragment header with offset frag_off, TCP. */
static void mk_ip6_hbh_frag(struct pkt *k, unsigned frag_off)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x86dd);
    uint32_t o = ip6(k, 0, "2001:db8::1", "2001:db8::2");
    u8(k, 44); /* hop-by-hop: next header fragment, 8 bytes */
    u8(k, 0);
    u8(k, 1); /* PadN, 4 bytes of padding */
    u8(k, 4);
    zeros(k, 4);
    u8(k, 6); /* fragment: next header TCP */
    u8(k, 0);
    u16(k, frag_off << 3 | 1);
    u32(k, 0xabcd);
    if (frag_off == 0)
        tcp(k, 1111, 2222, 0x10);
    else
        payload(k, 16);
    k->hend = frag_off == 0 ? k->n : o + 56;
    ip6_fix(k, o);
}

static void mk_ip6_hbh_frag0(struct pkt *k) { mk_ip6_hbh_frag(k, 0); }

static void mk_arp(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0806);
    u16(k, 1);
    u16(k, 0x0800);
    u8(k, 6);
    u8(k, 4);
    u16(k, 1); /* request */
    zeros(k, 6);
    ip4a(k, "10.0.0.1");
    zeros(k, 6);
    ip4a(k, "10.0.0.254");
    k->hend = k->n;
}

static void mk_vlan(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x8100);
    vlan(k, 0x0800, 0x2000 | 100);
    uint32_t o = ip4(k, 6, "10.0.0.1", "10.0.0.2", 0);
    tcp(k, 1234, 80, 0x02);
    k->hend = k->n;
    ip4_fix(k, o);
}

static void mk_qinq(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x88a8);
    vlan(k, 0x8100, 10);
    vlan(k, 0x0800, 20);
    uint32_t o = ip4(k, 17, "10.0.0.1", "10.0.0.2", 0);
    uint32_t u = udp(k, 5000, 5001);
    k->hend = k->n;
    udp_fix(k, u);
    ip4_fix(k, o);
}

static void mk_mpls(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x8847);
    u32(k, 1000 << 12 | 0 << 8 | 64); /* label 1000, not bottom */
    u32(k, 2000 << 12 | 1 << 8 | 64); /* label 2000, bottom of stack */
    uint32_t o = ip4(k, 6, "172.16.0.1", "172.16.0.2", 0);
    tcp(k, 179, 33000, 0x18);
    k->hend = k->n;
    ip4_fix(k, o);
}

static void mk_pppoe_ip6(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x8864);
    u8(k, 0x11);
    u8(k, 0);
    u16(k, 0x0042); /* session id */
    uint32_t lenoff = k->n;
    u16(k, 0);
    u16(k, 0x0057);
    uint32_t o = ip6(k, 17, "2001:db8:1::1", "2001:db8:2::2");
    uint32_t u = udp(k, 546, 547);
    k->hend = k->n;
    payload(k, 4);
    udp_fix(k, u);
    ip6_fix(k, o);
    rw_put_be16(k->b + lenoff, (uint16_t)(k->n - lenoff - 2));
}

static void mk_gre0(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0800);
    uint32_t o = ip4(k, 47, "192.168.0.1", "192.168.0.2", 0);
    u16(k, 0x2000); /* K */
    u16(k, 0x0800);
    u32(k, 0xdeadbeef);
    uint32_t i = ip4(k, 6, "10.1.1.1", "10.2.2.2", 0);
    tcp(k, 22, 60000, 0x10);
    k->hend = k->n;
    ip4_fix(k, i);
    ip4_fix(k, o);
}

static void mk_pptp(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0800);
    uint32_t o = ip4(k, 47, "192.168.0.1", "192.168.0.2", 0);
    u16(k, 0x3081); /* K S A, version 1 */
    u16(k, 0x880b);
    uint32_t lenoff = k->n;
    u16(k, 0);      /* payload length */
    u16(k, 0x0007); /* call id */
    u32(k, 5);      /* sequence */
    u32(k, 4);      /* ack */
    uint32_t pstart = k->n;
    u8(k, 0xff);
    u8(k, 0x03);
    u16(k, 0x0021);
    uint32_t i = ip4(k, 1, "10.10.0.1", "10.10.0.2", 0);
    u8(k, 8); /* echo request */
    u8(k, 0);
    u16(k, 0);
    k->hend = k->n;
    u32(k, 0x00010001);
    ip4_fix(k, i);
    ip4_fix(k, o);
    rw_put_be16(k->b + lenoff, (uint16_t)(k->n - pstart));
}

static void mk_vxlan(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0800);
    uint32_t o = ip4(k, 17, "192.0.2.1", "192.0.2.2", 0);
    uint32_t u = udp(k, 54321, 4789);
    u32(k, 0x08000000);
    u32(k, 42 << 8);
    eth(k, 0x0800);
    uint32_t i = ip4(k, 6, "10.0.0.5", "10.0.0.6", 0);
    tcp(k, 8080, 40404, 0x02);
    k->hend = k->n;
    ip4_fix(k, i);
    udp_fix(k, u);
    ip4_fix(k, o);
}

static void mk_geneve(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0800);
    uint32_t o = ip4(k, 17, "192.0.2.1", "192.0.2.2", 0);
    uint32_t u = udp(k, 12345, 6081);
    u8(k, 2); /* version 0, 2 words of options */
    u8(k, 0);
    u16(k, 0x6558);
    u32(k, 7 << 8);
    u32(k, 0x01020304); /* one option: class, type, length */
    u32(k, 0);
    eth(k, 0x86dd);
    uint32_t i = ip6(k, 17, "fd00::1", "fd00::2");
    uint32_t iu = udp(k, 1000, 2000);
    k->hend = k->n;
    udp_fix(k, iu);
    ip6_fix(k, i);
    udp_fix(k, u);
    ip4_fix(k, o);
}

static void mk_raw4(struct pkt *k)
{
    k->dlt = DLT_RAW;
    uint32_t o = ip4(k, 17, "10.0.0.1", "10.0.0.2", 0);
    uint32_t u = udp(k, 123, 123);
    k->hend = k->n;
    udp_fix(k, u);
    ip4_fix(k, o);
}

static void mk_sll(struct pkt *k)
{
    k->dlt = DLT_SLL;
    u16(k, 0);     /* packet type: to us */
    u16(k, 1);     /* ARPHRD_ETHER */
    u16(k, 6);     /* address length */
    zeros(k, 8);   /* address */
    u16(k, 0x0800);
    uint32_t o = ip4(k, 6, "10.0.0.1", "10.0.0.2", 0);
    tcp(k, 1234, 80, 0x02);
    k->hend = k->n;
    ip4_fix(k, o);
}

static void mk_null_ip6(struct pkt *k)
{
    k->dlt = DLT_NULL;
    u8(k, 30); /* AF_INET6 on Darwin, little-endian host */
    zeros(k, 3);
    uint32_t o = ip6(k, 6, "::1", "::1");
    tcp(k, 5000, 6000, 0x02);
    k->hend = k->n;
    ip6_fix(k, o);
}

static void mk_sctp(struct pkt *k)
{
    k->dlt = DLT_EN10MB;
    eth(k, 0x0800);
    uint32_t o = ip4(k, 132, "10.0.0.1", "10.0.0.2", 0);
    u16(k, 2905);
    u16(k, 2906);
    u32(k, 0x11223344);
    u32(k, 0);
    k->hend = k->n;
    ip4_fix(k, o);
}

/* ---- layer tests ---- */

static void test_term_len(void **state)
{
    (void)state;
    assert_int_equal(idx_term_len(IDX_T_IP4), 4);
    assert_int_equal(idx_term_len(IDX_T_IP6), 16);
    assert_int_equal(idx_term_len(IDX_T_PORT), 2);
    assert_int_equal(idx_term_len(IDX_T_PROTO4), 1);
    assert_int_equal(idx_term_len(IDX_T_PROTO6), 1);
    assert_int_equal(idx_term_len(IDX_T_L3), 2);
    assert_int_equal(idx_term_len(IDX_T_VLAN), 2);
    assert_int_equal(idx_term_len(IDX_T_FLOW), 8);
    assert_int_equal(idx_term_len(0), 0);
    assert_int_equal(idx_term_len(IDX_T_MAX), 0);
}

static void test_ip4_tcp(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip4_tcp(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=6 port=1234 port=80 flow");
    assert_int_equal(p.flow.present, 1);
    assert_int_equal(p.flow.family, 4);
    assert_int_equal(p.flow.proto, 6);
    assert_int_equal(p.flow.has_ports, 1);
    assert_int_equal(p.flow.sport, 1234);
    assert_int_equal(p.flow.dport, 80);
    assert_int_equal(p.flow.tcp_flags, 0x02);
    assert_int_equal(p.flow.l3_len, 40);
    assert_int_equal(p.flow.vlan, 0);
    flow_addrs(&p.flow, "10.0.0.1", "10.0.0.2");
}

static void test_ip4_udp(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip4_udp(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=192.168.1.10 ip4=8.8.8.8 proto4=17 port=40000 port=53 flow");
    assert_int_equal(p.flow.proto, 17);
    assert_int_equal(p.flow.l3_len, 40);
}

/* Ethernet padding after a short datagram is not a second set of ports, and
 * a host talking to itself yields one address term. */
static void test_ip4_padding_and_dup(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 17, "10.0.0.9", "10.0.0.9", 0);
    uint32_t u = udp(&k, 7, 7);
    udp_fix(&k, u);
    ip4_fix(&k, o);
    zeros(&k, 60 - k.n);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.9 proto4=17 port=7 flow");
    assert_int_equal(p.flow.l3_len, 28);
}

static void test_ip6_tcp(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip6_tcp(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x86dd ip6=2001:db8::1 ip6=2001:db8::2 proto6=6 port=443 port=50000 flow");
    assert_int_equal(p.flow.family, 6);
    assert_int_equal(p.flow.l3_len, 60);
    assert_int_equal(p.flow.tcp_flags, 0x12);
    flow_addrs(&p.flow, "2001:db8::1", "2001:db8::2");
}

static void test_ip6_ext_headers(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip6_hbh_frag(&k, 0);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x86dd ip6=2001:db8::1 ip6=2001:db8::2 proto6=0 proto6=44 proto6=6 "
                          "port=1111 port=2222 flow");
    assert_int_equal(p.flow.proto, 6);
    assert_int_equal(p.flow.has_ports, 1);
    assert_int_equal(p.flow.l3_len, 40 + 16 + 20);
}

static void test_ip6_later_fragment(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip6_hbh_frag(&k, 100);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x86dd ip6=2001:db8::1 ip6=2001:db8::2 proto6=0 proto6=44 proto6=6 flow");
    assert_int_equal(p.flow.proto, 6);
    assert_int_equal(p.flow.has_ports, 0);
}

static void test_ip6_jumbogram(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_IPV6;
    ip6(&k, 0, "2001:db8::1", "2001:db8::2"); /* payload length 0 */
    u8(&k, 17);
    u8(&k, 0);
    u8(&k, 0xc2); /* jumbo payload option */
    u8(&k, 4);
    u32(&k, 70000);
    udp(&k, 9, 9);
    payload(&k, 32);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x86dd ip6=2001:db8::1 ip6=2001:db8::2 proto6=0 proto6=17 port=9 flow");
    assert_int_equal(p.flow.l3_len, 70040);
}

static void test_ip4_later_fragment(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 17, "10.0.0.1", "10.0.0.2", 185); /* offset 1480, last fragment */
    payload(&k, 40);
    ip4_fix(&k, o);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 flow");
    assert_int_equal(p.flow.has_ports, 0);
    assert_int_equal(p.flow.sport, 0);
}

static void test_ip4_first_fragment(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 17, "10.0.0.1", "10.0.0.2", 0x2000); /* MF, offset 0 */
    uint32_t u = udp(&k, 4000, 5000);
    payload(&k, 100);
    rw_put_be16(k.b + u + 4, 3000); /* the datagram continues in later fragments */
    ip4_fix(&k, o);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 port=4000 port=5000 flow");
    assert_int_equal(p.flow.has_ports, 1);
}

static void test_ip4_options(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 6, "10.0.0.1", "10.0.0.2", 0);
    k.b[o] = 0x46;          /* ihl 6: one word of options */
    u32(&k, 0x94040000);    /* router alert */
    tcp(&k, 9, 10, 0x01);
    ip4_fix(&k, o);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=6 port=9 port=10 flow");
    assert_int_equal(p.flow.tcp_flags, 0x01);
}

static void test_ip4_bad_header(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip4_tcp(&k);
    k.b[14] = 0x65; /* version 6 in an IPv4 EtherType */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "l3=0x0800");
    k.b[14] = 0x44; /* ihl 4 */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "l3=0x0800");
    assert_int_equal(p.flow.present, 0);
    k.b[14] = 0x4f; /* ihl 15: 60 bytes, more than the 40 captured */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=6 flow");
}

static void test_arp(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_arp(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x0806 ip4=10.0.0.1 ip4=10.0.0.254");
    assert_int_equal(p.flow.present, 0);
    rw_put_be16(k.b + 12, 0x8035); /* the same body as RARP */
    parse(&k, &p);
    check(&p, 0, "l3=0x8035 ip4=10.0.0.1 ip4=10.0.0.254");
}

/* Other sizes: BPF still compares offsets 14 and 24, so those are indexed. */
static void test_arp_other_sizes(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0806);
    u16(&k, 6);
    u16(&k, 0x0800);
    u8(&k, 2); /* 2-byte hardware addresses */
    u8(&k, 4);
    u16(&k, 1);
    u16(&k, 0xaaaa);
    ip4a(&k, "1.2.3.4");
    u16(&k, 0xbbbb);
    ip4a(&k, "5.6.7.8");
    parse(&k, &p); /* only 20 bytes: BPF's loads at 14 and 24 fail */
    check(&p, 0, "l3=0x0806");
    zeros(&k, 10);
    parse(&k, &p);
    check(&p, 0, "l3=0x0806 ip4=187.187.5.6 ip4=0.0.0.0"); /* THA tail + TPA head, then padding */
    k.n -= 10;
    k.n -= 1; /* cut inside the addresses */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "l3=0x0806");
}

static void test_vlan(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_vlan(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "vlan=100 l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=6 port=1234 port=80 flow");
    assert_int_equal(p.flow.vlan, 100);
}

static void test_qinq(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_qinq(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "vlan=10 vlan=20 l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 "
                          "port=5000 port=5001 flow");
    assert_int_equal(p.flow.vlan, 10);
}

static void test_mpls(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_mpls(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x0800 ip4=172.16.0.1 ip4=172.16.0.2 proto4=6 port=179 port=33000 flow");
    k.b[14 + 8] = 0x00; /* not an IP version nibble after the stack */
    parse(&k, &p);
    check(&p, IDX_F_DEEP | IDX_F_UNPARSED, "");
}

static void test_pppoe_ip6(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_pppoe_ip6(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x86dd ip6=2001:db8:1::1 ip6=2001:db8:2::2 proto6=17 port=546 "
                          "port=547 flow");
    k.b[14 + 6] = 0xc0; /* LCP */
    k.b[14 + 7] = 0x21;
    parse(&k, &p);
    check(&p, IDX_F_DEEP | IDX_F_UNPARSED, "");
}

static void test_gre0(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_gre0(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x0800 ip4=192.168.0.1 ip4=192.168.0.2 proto4=47 ip4=10.1.1.1 "
                          "ip4=10.2.2.2 proto4=6 port=22 port=60000 flow");
    flow_addrs(&p.flow, "10.1.1.1", "10.2.2.2");
    assert_int_equal(p.flow.proto, 6);
    assert_int_equal(p.flow.l3_len, 40);
}

static void test_pptp(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_pptp(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x0800 ip4=192.168.0.1 ip4=192.168.0.2 proto4=47 ip4=10.10.0.1 "
                          "ip4=10.10.0.2 proto4=1 flow");
    assert_int_equal(p.flow.proto, 1);
    assert_int_equal(p.flow.has_ports, 0);
    assert_int_equal(p.flow.sport, 8);
    assert_int_equal(p.flow.dport, 0);
}

/* PPP with address/control elided and a 1-byte protocol field. */
static void test_pptp_compressed_ppp(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 47, "192.168.0.1", "192.168.0.2", 0);
    u16(&k, 0x3001); /* K S, version 1 */
    u16(&k, 0x880b);
    u16(&k, 41);
    u16(&k, 7);
    u32(&k, 9);
    u8(&k, 0x21);
    uint32_t i = ip4(&k, 17, "10.10.0.1", "10.10.0.2", 0);
    uint32_t u = udp(&k, 1, 2);
    udp_fix(&k, u);
    ip4_fix(&k, i);
    ip4_fix(&k, o);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x0800 ip4=192.168.0.1 ip4=192.168.0.2 proto4=47 ip4=10.10.0.1 "
                          "ip4=10.10.0.2 proto4=17 port=1 port=2 flow");
}

/* An acknowledgement-only PPTP packet carries nothing inside: still plain. */
static void test_pptp_ack_only(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 47, "192.168.0.1", "192.168.0.2", 0);
    u16(&k, 0x2081); /* K A, version 1 */
    u16(&k, 0x880b);
    u16(&k, 0);
    u16(&k, 7);
    u32(&k, 3);
    ip4_fix(&k, o);
    zeros(&k, 60 - k.n);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=192.168.0.1 ip4=192.168.0.2 proto4=47 flow");
}

static void test_vxlan(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_vxlan(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x0800 ip4=192.0.2.1 ip4=192.0.2.2 proto4=17 port=54321 port=4789 "
                          "ip4=10.0.0.5 ip4=10.0.0.6 proto4=6 port=8080 port=40404 flow");
    flow_addrs(&p.flow, "10.0.0.5", "10.0.0.6");
    assert_int_equal(p.flow.sport, 8080);
}

static void test_geneve(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_geneve(&k);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x0800 ip4=192.0.2.1 ip4=192.0.2.2 proto4=17 port=12345 port=6081 "
                          "l3=0x86dd ip6=fd00::1 ip6=fd00::2 proto6=17 port=1000 port=2000 flow");
    assert_int_equal(p.flow.family, 6);
}

static void test_ip_in_ip(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 41, "198.51.100.1", "198.51.100.2", 0);
    uint32_t i = ip6(&k, 58, "2001:db8::a", "2001:db8::b");
    u8(&k, 128); /* echo request */
    u8(&k, 0);
    u16(&k, 0);
    u32(&k, 0);
    ip6_fix(&k, i);
    ip4_fix(&k, o);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x0800 ip4=198.51.100.1 ip4=198.51.100.2 proto4=41 l3=0x86dd "
                          "ip6=2001:db8::a ip6=2001:db8::b proto6=58 flow");
    assert_int_equal(p.flow.sport, 128);
    assert_int_equal(p.flow.family, 6);
}

/* IPv6 with AH carrying IPv4-in-IP: AH is walked, the inner header indexed. */
static void test_ip6_ah_ipip(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_RAW;
    uint32_t o = ip6(&k, 51, "2001:db8::1", "2001:db8::2");
    u8(&k, 4); /* AH: next header IPv4, 4 words + 2 = 24 bytes */
    u8(&k, 4);
    u16(&k, 0);
    u32(&k, 0x100); /* SPI */
    u32(&k, 1);     /* sequence */
    zeros(&k, 12);  /* ICV */
    uint32_t i = ip4(&k, 17, "10.0.0.1", "10.0.0.2", 0);
    uint32_t u = udp(&k, 500, 4500);
    udp_fix(&k, u);
    ip4_fix(&k, i);
    ip6_fix(&k, o);
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x86dd ip6=2001:db8::1 ip6=2001:db8::2 proto6=51 proto6=4 l3=0x0800 "
                          "ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 port=500 port=4500 flow");
    assert_int_equal(p.flow.family, 4);
}

/* No ports to read (OSPF), and UDP to the VXLAN port without the I flag:
 * both stay plain. */
static void test_plain_without_ports(void **state)
{
    struct pkt k = {0}, v = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 89, "10.0.0.1", "224.0.0.5", 0);
    payload(&k, 24);
    ip4_fix(&k, o);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=224.0.0.5 proto4=89 flow");
    assert_int_equal(p.flow.has_ports, 0);

    v.dlt = DLT_EN10MB;
    eth(&v, 0x0800);
    o = ip4(&v, 17, "10.0.0.1", "10.0.0.2", 0);
    uint32_t u = udp(&v, 1000, 4789);
    zeros(&v, 16);
    udp_fix(&v, u);
    ip4_fix(&v, o);
    parse(&v, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 port=1000 port=4789 flow");
}

static void test_raw_and_ip_links(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_raw4(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 port=123 flow");
    idx_parse_packet(DLT_RAW12, k.b, k.n, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 port=123 flow");
    idx_parse_packet(DLT_IPV4, k.b, k.n, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=17 port=123 flow");
    idx_parse_packet(DLT_IPV6, k.b, k.n, &p); /* an IPv4 header where IPv6 is promised */
    check(&p, IDX_F_UNPARSED, "l3=0x86dd");

    struct pkt k6 = {0};
    mk_ip6_tcp(&k6);
    idx_parse_packet(DLT_RAW, k6.b + 14, k6.n - 14, &p);
    check(&p, 0, "l3=0x86dd ip6=2001:db8::1 ip6=2001:db8::2 proto6=6 port=443 port=50000 flow");
    idx_parse_packet(DLT_IPV6, k6.b + 14, k6.n - 14, &p);
    check(&p, 0, "l3=0x86dd ip6=2001:db8::1 ip6=2001:db8::2 proto6=6 port=443 port=50000 flow");
    k6.b[14] = 0x50; /* version 5 */
    idx_parse_packet(DLT_RAW, k6.b + 14, k6.n - 14, &p);
    check(&p, IDX_F_UNPARSED, "");
}

static void test_sll(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_sll(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=6 port=1234 port=80 flow");
    rw_put_be16(k.b + 14, 0x0004); /* 802.2 LLC */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "");
}

static void test_sll2(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_SLL2;
    u16(&k, 0x86dd);
    u16(&k, 0);
    u32(&k, 2); /* interface index */
    u16(&k, 1); /* ARPHRD_ETHER */
    u8(&k, 4);  /* outgoing */
    u8(&k, 6);
    zeros(&k, 8);
    uint32_t o = ip6(&k, 17, "fe80::1", "ff02::1");
    uint32_t u = udp(&k, 521, 521);
    udp_fix(&k, u);
    ip6_fix(&k, o);
    parse(&k, &p);
    check(&p, 0, "l3=0x86dd ip6=fe80::1 ip6=ff02::1 proto6=17 port=521 flow");
}

static void test_null_loop(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_null_ip6(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x86dd ip6=::1 proto6=6 port=5000 port=6000 flow");
    rw_put_be32(k.b, 24); /* big-endian BSD AF_INET6 */
    parse(&k, &p);
    check(&p, 0, "l3=0x86dd ip6=::1 proto6=6 port=5000 port=6000 flow");
    rw_put_be32(k.b, 10); /* Linux AF_INET6: BPF's ip6 does not test it */
    parse(&k, &p);
    check(&p, IDX_F_DEEP, "l3=0x86dd ip6=::1 proto6=6 port=5000 port=6000 flow");
    rw_put_be32(k.b, 2); /* AF_INET over an IPv6 header */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "l3=0x0800");
    rw_put_be32(k.b, 99);
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "");

    struct pkt l = {0};
    l.dlt = DLT_LOOP;
    u32(&l, 2);
    uint32_t o = ip4(&l, 6, "127.0.0.1", "127.0.0.2", 0);
    tcp(&l, 1, 2, 0);
    ip4_fix(&l, o);
    parse(&l, &p);
    check(&p, 0, "l3=0x0800 ip4=127.0.0.1 ip4=127.0.0.2 proto4=6 port=1 port=2 flow");
    l.b[0] = 2; /* little-endian AF: DLT_LOOP is always big-endian */
    l.b[3] = 0;
    parse(&l, &p);
    check(&p, IDX_F_UNPARSED, "");
}

static void test_unknown(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip4_tcp(&k);
    rw_put_be16(k.b + 12, 0x88cc); /* LLDP */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "");
    rw_put_be16(k.b + 12, 46); /* 802.3 length field */
    parse(&k, &p);
    check(&p, IDX_F_UNPARSED, "");
    idx_parse_packet(147, k.b, k.n, &p); /* DLT_USER0 */
    check(&p, IDX_F_UNPARSED, "");
    idx_parse_packet(DLT_EN10MB, NULL, 0, &p);
    check(&p, IDX_F_UNPARSED, "");
}

static void test_sctp(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_sctp(&k);
    parse(&k, &p);
    check(&p, 0, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=132 port=2905 port=2906 flow");
    assert_int_equal(p.flow.has_ports, 1);
}

/* A transport header cut after the ports: the ports stay, UNPARSED is set. */
static void test_short_transport(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    mk_ip4_tcp(&k);
    idx_parse_packet(DLT_EN10MB, k.b, 14 + 20 + 4, &p);
    check(&p, IDX_F_UNPARSED, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=6 port=1234 port=80 flow");
}

static void test_term_overflow(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x8100);
    for (unsigned i = 1; i < 80; i++)
        vlan(&k, 0x8100, i);
    vlan(&k, 0x0800, 80);
    uint32_t o = ip4(&k, 6, "10.0.0.1", "10.0.0.2", 0);
    tcp(&k, 1, 2, 0);
    ip4_fix(&k, o);
    parse(&k, &p);
    assert_int_equal(p.flags, IDX_F_DEEP | IDX_F_UNPARSED);
    assert_int_equal(p.nterms, IDX_MAX_TERMS);
    assert_int_equal(p.terms[IDX_MAX_TERMS - 1].kind, IDX_T_FLOW); /* the flow keeps its slot */
    assert_int_equal(p.flow.vlan, 1);
}

/* GRE inside GRE inside ...: the nesting bound stops the walk. */
static void test_deep_nesting(void **state)
{
    struct pkt k = {0};
    struct idx_parsed p;
    (void)state;
    k.dlt = DLT_RAW;
    for (int i = 0; i < 40; i++) {
        ip4(&k, 47, "10.0.0.1", "10.0.0.2", 0);
        u16(&k, 0);
        u16(&k, 0x0800);
    }
    ip4(&k, 6, "10.9.9.9", "10.9.9.8", 0);
    tcp(&k, 1, 2, 0);
    parse(&k, &p);
    assert_int_equal(p.flags, IDX_F_DEEP | IDX_F_UNPARSED);
    check(&p, IDX_F_DEEP | IDX_F_UNPARSED, "l3=0x0800 ip4=10.0.0.1 ip4=10.0.0.2 proto4=47 flow");
}

/* ---- truncation ---- */

typedef void (*mk_fn)(struct pkt *);

/* Cut a valid packet at every length: no crash, bounded terms, UNPARSED
 * whenever the cut falls inside a header the parser reads. */
static void test_truncation(void **state)
{
    static const mk_fn makers[] = {mk_ip4_tcp, mk_ip4_udp, mk_ip6_tcp, mk_ip6_hbh_frag0, mk_arp,
                                   mk_vlan, mk_qinq, mk_mpls, mk_pppoe_ip6, mk_gre0, mk_pptp,
                                   mk_vxlan, mk_geneve, mk_raw4, mk_sll, mk_null_ip6, mk_sctp};
    (void)state;
    for (size_t m = 0; m < sizeof makers / sizeof makers[0]; m++) {
        struct pkt k = {0};
        struct idx_parsed p;
        makers[m](&k);
        assert_true(k.hend > 0 && k.hend <= k.n);
        parse(&k, &p);
        assert_false(p.flags & IDX_F_UNPARSED);
        for (uint32_t cut = 0; cut < k.n; cut++) {
            /* A heap copy of exactly cut bytes lets ASan catch any overread. */
            uint8_t *copy = malloc(cut ? cut : 1);
            assert_non_null(copy);
            memcpy(copy, k.b, cut);
            idx_parse_packet(k.dlt, copy, cut, &p);
            free(copy);
            assert_true(p.nterms <= IDX_MAX_TERMS);
            if (cut < k.hend && !(p.flags & IDX_F_UNPARSED))
                fail_msg("maker %zu cut at %u of %u: not UNPARSED", m, cut, k.hend);
        }
    }
}

/* Where the headers end: exactly where each recipe's last header ends,
 * whatever payload follows (the noc role's answers are cut there). */
static void test_hdr_end(void **state)
{
    /* hend is what the parser must read; an ICMP header is 8 bytes, of
     * which it reads 4 (type, code), so its end lies 4 bytes further */
    static const struct {
        mk_fn mk;
        uint32_t more;
    } makers[] = {{mk_ip4_tcp, 0}, {mk_ip4_udp, 0},   {mk_ip6_tcp, 0},   {mk_ip6_hbh_frag0, 0},
                  {mk_arp, 0},     {mk_vlan, 0},      {mk_qinq, 0},      {mk_mpls, 0},
                  {mk_pppoe_ip6, 0}, {mk_gre0, 0},    {mk_pptp, 4},      {mk_vxlan, 0},
                  {mk_geneve, 0},  {mk_raw4, 0},      {mk_sll, 0},       {mk_null_ip6, 0},
                  {mk_sctp, 0}};
    (void)state;
    for (size_t m = 0; m < sizeof makers / sizeof makers[0]; m++) {
        struct pkt k = {0};
        struct idx_parsed p;
        makers[m].mk(&k);
        uint32_t n = k.n;
        payload(&k, 40); /* bytes after the datagram: never headers */
        parse(&k, &p);
        if (p.hdr_end != k.hend + makers[m].more)
            fail_msg("maker %zu: headers end at %u, want %u (packet %u bytes)", m, p.hdr_end,
                     k.hend + makers[m].more, n);
    }
    /* TCP options belong to the header; the payload does not */
    struct pkt k = {0};
    struct idx_parsed p;
    k.dlt = DLT_EN10MB;
    eth(&k, 0x0800);
    uint32_t o = ip4(&k, 6, "10.0.0.1", "10.0.0.2", 0);
    tcp(&k, 1234, 25, 0x18);
    k.b[k.n - 8] = 0x80; /* data offset 8 words: 12 bytes of options */
    zeros(&k, 12);
    uint32_t hend = k.n;
    payload(&k, 100);
    ip4_fix(&k, o);
    parse(&k, &p);
    assert_int_equal(p.hdr_end, hend);
    /* an unknown EtherType: the link header only */
    struct pkt u = {0};
    u.dlt = DLT_EN10MB;
    eth(&u, 0x88b5);
    payload(&u, 60);
    parse(&u, &p);
    assert_int_equal(p.hdr_end, 14);
    /* an IP protocol without ports (ESP): the IP header only */
    struct pkt e = {0};
    e.dlt = DLT_EN10MB;
    eth(&e, 0x0800);
    o = ip4(&e, 50, "10.0.0.1", "10.0.0.2", 0);
    payload(&e, 64);
    ip4_fix(&e, o);
    parse(&e, &p);
    assert_int_equal(p.hdr_end, 34);
}

/* ---- flow hash ---- */

static void mk_flow(struct idx_flow *f, const char *src, const char *dst, uint16_t sport,
                    uint16_t dport, uint8_t proto)
{
    memset(f, 0, sizeof *f);
    f->present = 1;
    f->family = strchr(src, ':') ? 6 : 4;
    int af = f->family == 4 ? AF_INET : AF_INET6;
    assert_int_equal(inet_pton(af, src, f->src), 1);
    assert_int_equal(inet_pton(af, dst, f->dst), 1);
    f->sport = sport;
    f->dport = dport;
    f->proto = proto;
    f->has_ports = 1;
}

static void test_flow_hash(void **state)
{
    struct idx_flow a, b;
    (void)state;
    mk_flow(&a, "10.0.0.1", "10.0.0.2", 1234, 80, 6);
    mk_flow(&b, "10.0.0.2", "10.0.0.1", 80, 1234, 6);
    assert_int_equal(idx_flow_hash(&a), idx_flow_hash(&b));

    mk_flow(&b, "10.0.0.1", "10.0.0.2", 1235, 80, 6);
    assert_int_not_equal(idx_flow_hash(&a), idx_flow_hash(&b));
    mk_flow(&b, "10.0.0.1", "10.0.0.2", 1234, 80, 17);
    assert_int_not_equal(idx_flow_hash(&a), idx_flow_hash(&b));
    mk_flow(&b, "10.0.0.1", "10.0.0.3", 1234, 80, 6);
    assert_int_not_equal(idx_flow_hash(&a), idx_flow_hash(&b));
    /* Swapping only the ports is another flow, not the reverse direction. */
    mk_flow(&b, "10.0.0.1", "10.0.0.2", 80, 1234, 6);
    assert_int_not_equal(idx_flow_hash(&a), idx_flow_hash(&b));
    mk_flow(&b, "10.0.0.1", "10.0.0.2", 1234, 80, 6);
    b.vlan = 5;
    assert_int_not_equal(idx_flow_hash(&a), idx_flow_hash(&b));

    /* Same address on both sides: the ports decide the order. */
    mk_flow(&a, "10.0.0.9", "10.0.0.9", 5, 6, 17);
    mk_flow(&b, "10.0.0.9", "10.0.0.9", 6, 5, 17);
    assert_int_equal(idx_flow_hash(&a), idx_flow_hash(&b));

    mk_flow(&a, "2001:db8::1", "2001:db8::2", 443, 50000, 6);
    mk_flow(&b, "2001:db8::2", "2001:db8::1", 50000, 443, 6);
    assert_int_equal(idx_flow_hash(&a), idx_flow_hash(&b));

    /* ICMP: request and reply are one flow. */
    mk_flow(&a, "10.0.0.1", "10.0.0.2", 8, 0, 1);
    mk_flow(&b, "10.0.0.2", "10.0.0.1", 0, 0, 1);
    a.has_ports = b.has_ports = 0;
    assert_int_equal(idx_flow_hash(&a), idx_flow_hash(&b));
}

/* The flow term of a parsed packet equals the hash of the reverse packet's. */
static void test_flow_term_symmetric(void **state)
{
    struct pkt k = {0}, r = {0};
    struct idx_parsed p, q;
    (void)state;
    mk_ip4_tcp(&k);
    r.dlt = DLT_EN10MB;
    eth(&r, 0x0800);
    uint32_t o = ip4(&r, 6, "10.0.0.2", "10.0.0.1", 0);
    tcp(&r, 80, 1234, 0x12);
    ip4_fix(&r, o);
    parse(&k, &p);
    parse(&r, &q);
    assert_memory_equal(p.terms[p.nterms - 1].val, q.terms[q.nterms - 1].val, 8);
    assert_int_equal(p.terms[p.nterms - 1].kind, IDX_T_FLOW);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_term_len),
        cmocka_unit_test(test_ip4_tcp),
        cmocka_unit_test(test_ip4_udp),
        cmocka_unit_test(test_ip4_padding_and_dup),
        cmocka_unit_test(test_ip6_tcp),
        cmocka_unit_test(test_ip6_ext_headers),
        cmocka_unit_test(test_ip6_later_fragment),
        cmocka_unit_test(test_ip6_jumbogram),
        cmocka_unit_test(test_ip4_later_fragment),
        cmocka_unit_test(test_ip4_first_fragment),
        cmocka_unit_test(test_ip4_options),
        cmocka_unit_test(test_ip4_bad_header),
        cmocka_unit_test(test_arp),
        cmocka_unit_test(test_arp_other_sizes),
        cmocka_unit_test(test_vlan),
        cmocka_unit_test(test_qinq),
        cmocka_unit_test(test_mpls),
        cmocka_unit_test(test_pppoe_ip6),
        cmocka_unit_test(test_gre0),
        cmocka_unit_test(test_pptp),
        cmocka_unit_test(test_pptp_compressed_ppp),
        cmocka_unit_test(test_pptp_ack_only),
        cmocka_unit_test(test_vxlan),
        cmocka_unit_test(test_geneve),
        cmocka_unit_test(test_ip_in_ip),
        cmocka_unit_test(test_ip6_ah_ipip),
        cmocka_unit_test(test_plain_without_ports),
        cmocka_unit_test(test_raw_and_ip_links),
        cmocka_unit_test(test_sll),
        cmocka_unit_test(test_sll2),
        cmocka_unit_test(test_null_loop),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_sctp),
        cmocka_unit_test(test_short_transport),
        cmocka_unit_test(test_term_overflow),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_truncation),
        cmocka_unit_test(test_hdr_end),
        cmocka_unit_test(test_flow_hash),
        cmocka_unit_test(test_flow_term_symmetric),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
