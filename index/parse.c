/* parse.c -- walk one packet's link, network and transport headers and emit its index terms. */
#include "index/parse.h"

#include <stdlib.h>
#include <string.h>

#include "common/rw.h"

enum {
    ET_IP4 = 0x0800,
    ET_ARP = 0x0806,
    ET_TEB = 0x6558, /* transparent Ethernet bridging (GRE, Geneve) */
    ET_RARP = 0x8035,
    ET_VLAN = 0x8100,
    ET_IP6 = 0x86dd,
    ET_MPLS = 0x8847,
    ET_MPLS_MC = 0x8848,
    ET_PPPOE_SESS = 0x8864,
    ET_QINQ = 0x88a8,
    ET_PPP = 0x880b,
    ET_QINQ_OLD = 0x9100,
};

enum { PPP_IP4 = 0x0021, PPP_IP6 = 0x0057 };
enum { VXLAN_PORT = 4789, GENEVE_PORT = 6081 };

/* Every encapsulation step (GRE, IP-in-IP, VXLAN, Geneve, Ethernet or PPP
 * inside an EtherType) counts; the bound keeps the recursion shallow however
 * the bytes nest. */
#define MAX_ENCAPS 16

struct pctx {
    struct idx_parsed *out;
    const uint8_t *base; /* the packet's first byte, for hdr_end */
    int encaps;
    int vlan_seen;
    uint16_t vlan; /* outermost VLAN id */
    uint32_t kinds; /* bit k: a term of kind k is in out->terms */
};

static void parse_ethertype(struct pctx *c, uint16_t type, const uint8_t *p, uint32_t len);
static void parse_ether(struct pctx *c, const uint8_t *p, uint32_t len);
static void parse_ip4(struct pctx *c, const uint8_t *p, uint32_t len);
static void parse_ip6(struct pctx *c, const uint8_t *p, uint32_t len);

size_t idx_term_len(int kind)
{
    switch (kind) {
    case IDX_T_IP4: return 4;
    case IDX_T_IP6: return 16;
    case IDX_T_PORT: return 2;
    case IDX_T_PROTO4: return 1;
    case IDX_T_PROTO6: return 1;
    case IDX_T_L3: return 2;
    case IDX_T_VLAN: return 2;
    case IDX_T_FLOW: return 8;
    default: return 0;
    }
}

static void unparsed(struct pctx *c) { c->out->flags |= IDX_F_UNPARSED; }

/* A header of n bytes was recognised at p: the headers reach at least its
 * end (idx_parsed.hdr_end). Inner headers lie after outer ones, so the
 * largest end is the innermost header's. */
static void hdr(struct pctx *c, const uint8_t *p, uint32_t n)
{
    uint32_t end = (uint32_t)(p - c->base) + n;
    if (end > c->out->hdr_end)
        c->out->hdr_end = end;
}
static void deep(struct pctx *c) { c->out->flags |= IDX_F_DEEP; }

/* Append a term unless the same one is already there. limit is the number of
 * slots regular terms may fill: one is kept for the flow term. Values are
 * compared as two 64-bit words of the zero-padded value: always inlined, so
 * that the length folds to a constant at each call. */
static inline __attribute__((always_inline)) void add_term_upto(struct pctx *c, int kind,
                                                                const uint8_t *val, int limit)
{
    struct idx_parsed *o = c->out;
    size_t len = idx_term_len(kind);
    uint8_t v[16] = {0};
    uint64_t v0, v1;

    memcpy(v, val, len);
    memcpy(&v0, v, 8);
    memcpy(&v1, v + 8, 8);
    /* only a kind already there can be a duplicate: most terms are the
     * first of their kind */
    for (int i = c->kinds & (1u << kind) ? 0 : o->nterms; i < o->nterms; i++) {
        uint64_t t0, t1;
        memcpy(&t0, o->terms[i].val, 8);
        memcpy(&t1, o->terms[i].val + 8, 8);
        if (o->terms[i].kind == kind && t0 == v0 && t1 == v1)
            return;
    }
    if (o->nterms >= limit) {
        unparsed(c); /* the planner cannot trust a packet whose terms were dropped */
        return;
    }
    struct idx_term *t = &o->terms[o->nterms++];
    c->kinds |= 1u << kind;
    t->kind = (uint8_t)kind;
    t->len = (uint8_t)len;
    memcpy(t->val, v, 16);
}

static inline __attribute__((always_inline)) void add_term(struct pctx *c, int kind,
                                                           const uint8_t *val)
{
    add_term_upto(c, kind, val, IDX_MAX_TERMS - 1);
}

static inline __attribute__((always_inline)) void add_u16(struct pctx *c, int kind, uint16_t v)
{
    uint8_t b[2];
    rw_put_be16(b, v);
    add_term(c, kind, b);
}

static inline __attribute__((always_inline)) void add_u8(struct pctx *c, int kind, uint8_t v)
{
    add_term(c, kind, &v);
}

/* Enter one more encapsulation: the packet is no longer plain. Returns 0 when
 * the nesting is too deep to follow. */
static int encap_enter(struct pctx *c)
{
    deep(c);
    if (++c->encaps > MAX_ENCAPS) {
        unparsed(c);
        return 0;
    }
    return 1;
}

/* A new IP header replaces the flow: the flow is always the innermost one. */
static void flow_set(struct pctx *c, int family, const uint8_t *src, const uint8_t *dst,
                     uint8_t proto, uint32_t l3_len)
{
    struct idx_flow *f = &c->out->flow;
    size_t alen = family == 4 ? 4 : 16;

    memset(f, 0, sizeof *f);
    f->present = 1;
    f->family = (uint8_t)family;
    f->proto = proto;
    memcpy(f->src, src, alen);
    memcpy(f->dst, dst, alen);
    f->l3_len = l3_len;
}

/* Both ports, then a check that the whole fixed header (minhl) was captured.
 * Returns 1 if it was. */
static int parse_ports(struct pctx *c, const uint8_t *p, uint32_t cap, uint32_t minhl)
{
    if (cap < 4) {
        unparsed(c);
        return 0;
    }
    add_term(c, IDX_T_PORT, p);
    add_term(c, IDX_T_PORT, p + 2);
    c->out->flow.sport = rw_get_be16(p);
    c->out->flow.dport = rw_get_be16(p + 2);
    c->out->flow.has_ports = 1;
    if (cap < minhl) {
        unparsed(c);
        return 0;
    }
    return 1;
}

/* VXLAN: 8-byte header whose I flag says the VNI is valid, then Ethernet. A
 * datagram to the port without the flag is left as plain UDP. */
static void parse_vxlan(struct pctx *c, const uint8_t *p, uint32_t len)
{
    if (len < 8) {
        unparsed(c);
        return;
    }
    if (!(p[0] & 0x08))
        return;
    hdr(c, p, 8);
    if (encap_enter(c))
        parse_ether(c, p + 8, len - 8);
}

/* Geneve: 8 bytes plus options (length in 4-byte words), then the payload
 * named by an EtherType. */
static void parse_geneve(struct pctx *c, const uint8_t *p, uint32_t len)
{
    if (len < 8 || p[0] >> 6 != 0) {
        unparsed(c);
        return;
    }
    uint32_t hl = 8 + (uint32_t)(p[0] & 0x3f) * 4;
    if (hl > len) {
        unparsed(c);
        return;
    }
    hdr(c, p, hl);
    if (encap_enter(c))
        parse_ethertype(c, rw_get_be16(p + 2), p + hl, len - hl);
}

/* UDP: ports, then the tunnels recognised by destination port. dlen is the
 * datagram length the IP header allows, which excludes Ethernet padding. */
static void parse_udp(struct pctx *c, const uint8_t *p, uint32_t cap, uint32_t dlen)
{
    if (!parse_ports(c, p, cap, 8))
        return;
    hdr(c, p, 8);
    uint16_t ulen = rw_get_be16(p + 4);
    if (ulen >= 8 && ulen < dlen)
        dlen = ulen;
    uint32_t plen = dlen >= 8 ? dlen - 8 : 0;
    uint16_t dport = rw_get_be16(p + 2);
    if (dport == VXLAN_PORT)
        parse_vxlan(c, p + 8, plen);
    else if (dport == GENEVE_PORT)
        parse_geneve(c, p + 8, plen);
}

/* Length of a GRE header from its flags, 0 if this parser cannot walk it. */
static uint32_t gre_hdr_len(uint16_t flags)
{
    uint32_t hl = 4;
    int ver = flags & 7;

    if (flags & 0x4000)
        return 0; /* RFC 1701 source routing: variable entries, not walked */
    if (ver == 0) {
        hl += (flags & 0x8000) ? 4 : 0; /* checksum + reserved */
        hl += (flags & 0x2000) ? 4 : 0; /* key */
        hl += (flags & 0x1000) ? 4 : 0; /* sequence */
        return hl;
    }
    if (ver == 1 && (flags & 0x2000) && !(flags & 0x8000)) {
        hl += 4;                        /* payload length + call id (key) */
        hl += (flags & 0x1000) ? 4 : 0; /* sequence */
        hl += (flags & 0x0080) ? 4 : 0; /* acknowledgement */
        return hl;
    }
    return 0;
}

/* GRE version 0 (RFC 2784/2890) and version 1 (PPTP, RFC 2637). */
static void parse_gre(struct pctx *c, const uint8_t *p, uint32_t len)
{
    if (len < 4) {
        unparsed(c);
        return;
    }
    uint16_t flags = rw_get_be16(p);
    uint32_t hl = gre_hdr_len(flags);
    if (hl == 0 || hl > len) {
        unparsed(c);
        return;
    }
    /* A PPTP packet without a sequence number is a bare acknowledgement: it
     * carries no payload, so there is nothing inside to index. */
    hdr(c, p, hl);
    if ((flags & 7) == 1 && !(flags & 0x1000))
        return;
    if (encap_enter(c))
        parse_ethertype(c, rw_get_be16(p + 2), p + hl, len - hl);
}

/* ICMP and ICMPv6: no ports, but type and code go in the flow for
 * Community ID. */
static void parse_icmp(struct pctx *c, const uint8_t *p, uint32_t cap)
{
    if (cap < 4) {
        unparsed(c);
        return;
    }
    c->out->flow.sport = p[0];
    c->out->flow.dport = p[1];
    hdr(c, p, 8); /* type, code, checksum and the 4-byte rest of header */
}

/* The payload of an IP header. cap is what was captured from p on (BPF reads
 * ports from there, padding or not); dlen <= cap is what the IP header says
 * belongs to the datagram, used for anything nested inside. */
static void parse_transport(struct pctx *c, uint8_t proto, const uint8_t *p, uint32_t cap,
                            uint32_t dlen)
{
    switch (proto) {
    case 6:
        if (parse_ports(c, p, cap, 20)) {
            c->out->flow.tcp_flags = p[13];
            uint32_t thl = (uint32_t)(p[12] >> 4) * 4;
            hdr(c, p, thl > 20 ? thl : 20); /* with its options */
        }
        return;
    case 17: parse_udp(c, p, cap, dlen); return;
    case 132:
        if (parse_ports(c, p, cap, 12))
            hdr(c, p, 12); /* the common header; chunks are payload */
        return;
    case 1:
    case 58: parse_icmp(c, p, cap); return;
    case 47:
        parse_gre(c, p, dlen);
        return;
    case 4:
        if (encap_enter(c))
            parse_ip4(c, p, dlen);
        return;
    case 41:
        if (encap_enter(c))
            parse_ip6(c, p, dlen);
        return;
    default: return; /* a protocol without ports: the IP terms are all there is */
    }
}

static void parse_ip4(struct pctx *c, const uint8_t *p, uint32_t len)
{
    /* BPF's `ip` only looks at the link layer, so the L3 term comes first,
     * whatever the header turns out to hold. */
    add_u16(c, IDX_T_L3, ET_IP4);
    if (len < 20 || p[0] >> 4 != 4 || (p[0] & 0x0f) < 5) {
        unparsed(c);
        return;
    }
    uint32_t hl = (uint32_t)(p[0] & 0x0f) * 4;
    uint16_t tot = rw_get_be16(p + 2);
    add_term(c, IDX_T_IP4, p + 12);
    add_term(c, IDX_T_IP4, p + 16);
    add_u8(c, IDX_T_PROTO4, p[9]);
    flow_set(c, 4, p + 12, p + 16, p[9], tot);
    if (hl > len) {
        unparsed(c);
        return;
    }
    hdr(c, p, hl);
    /* A later fragment has no transport header; BPF's port test skips it too. */
    if (rw_get_be16(p + 6) & 0x1fff)
        return;
    uint32_t dlen = (tot >= hl && tot <= len) ? tot - hl : len - hl;
    parse_transport(c, p[9], p + hl, len - hl, dlen);
}

/* Length of the IPv6 extension header of type nh (one ip6_is_ext accepts)
 * starting at h, of which 8 bytes are captured. */
static uint32_t ip6_ext_len(uint8_t nh, const uint8_t *h)
{
    switch (nh) {
    case 0:   /* hop-by-hop */
    case 43:  /* routing */
    case 60:  /* destination options */
    case 135: /* mobility */
    case 139: /* HIP */
    case 140: /* shim6 */
        return ((uint32_t)h[1] + 1) * 8;
    case 51: return ((uint32_t)h[1] + 2) * 4; /* AH counts 4-byte words */
    default: return 8;                        /* fragment */
    }
}

static int ip6_is_ext(uint8_t nh)
{
    switch (nh) {
    case 0:
    case 43:
    case 44:
    case 51:
    case 60:
    case 135:
    case 139:
    case 140: return 1;
    default: return 0;
    }
}

/* A jumbogram (RFC 2675) has payload length 0 and its real length in a
 * hop-by-hop option; the flow's byte count wants the real one. */
static void ip6_jumbo(struct pctx *c, const uint8_t *h, uint32_t hl)
{
    uint32_t i = 2;
    while (i < hl) {
        if (h[i] == 0) { /* Pad1 has no length byte */
            i++;
            continue;
        }
        if (i + 2 > hl || i + 2 + h[i + 1] > hl)
            return;
        /* l3_len is still 40 exactly when the payload length was 0 */
        uint32_t jumbo = h[i] == 0xc2 && h[i + 1] == 4 ? rw_get_be32(h + i + 2) : 0;
        if (jumbo && jumbo <= UINT32_MAX - 40 && c->out->flow.l3_len == 40)
            c->out->flow.l3_len = 40 + jumbo;
        i += 2 + (uint32_t)h[i + 1];
    }
}

/* Walk the extension headers from *off, emitting every next-header value.
 * Returns 1 with *off and *nh at the upper-layer header, 0 if the walk ends
 * early (truncated, or a later fragment with no upper-layer header). */
static int ip6_walk_ext(struct pctx *c, const uint8_t *p, uint32_t len, uint32_t *off, uint8_t *nh)
{
    while (ip6_is_ext(*nh)) {
        deep(c);
        if (len - *off < 8) {
            unparsed(c);
            return 0;
        }
        const uint8_t *h = p + *off;
        uint32_t hl = ip6_ext_len(*nh, h);
        if (hl > len - *off) {
            unparsed(c);
            return 0;
        }
        if (*nh == 0)
            ip6_jumbo(c, h, hl);
        int later_frag = *nh == 44 && (rw_get_be16(h + 2) & 0xfff8);
        *nh = h[0];
        add_u8(c, IDX_T_PROTO6, *nh);
        c->out->flow.proto = *nh;
        *off += hl;
        if (later_frag)
            return 0;
    }
    return 1;
}

static void parse_ip6(struct pctx *c, const uint8_t *p, uint32_t len)
{
    add_u16(c, IDX_T_L3, ET_IP6);
    if (len < 40 || p[0] >> 4 != 6) {
        unparsed(c);
        return;
    }
    uint8_t nh = p[6];
    uint16_t plen = rw_get_be16(p + 4);
    add_term(c, IDX_T_IP6, p + 8);
    add_term(c, IDX_T_IP6, p + 24);
    add_u8(c, IDX_T_PROTO6, nh);
    flow_set(c, 6, p + 8, p + 24, nh, (uint32_t)plen + 40);
    hdr(c, p, 40);

    uint32_t off = 40;
    if (!ip6_walk_ext(c, p, len, &off, &nh))
        return;
    hdr(c, p, off); /* with its extension headers */
    /* Payload length 0 is a jumbogram (or TSO): trust the capture instead. */
    uint32_t dlen = (plen != 0 && plen <= len - 40) ? plen : len - 40;
    dlen = dlen > off - 40 ? dlen - (off - 40) : 0;
    parse_transport(c, nh, p + off, len - off, dlen);
}

/* ARP and RARP. libpcap's `arp host`/`rarp host` compare the fixed offsets 14
 * (sender) and 24 (target) whatever the size fields say, so those are the
 * bytes indexed: that keeps the postings exact for other sizes too. */
static void parse_arp(struct pctx *c, uint16_t type, const uint8_t *p, uint32_t len)
{
    add_u16(c, IDX_T_L3, type);
    if (len < 8 || len < 8 + 2 * ((uint32_t)p[4] + p[5])) {
        unparsed(c);
        return;
    }
    hdr(c, p, 8 + 2 * ((uint32_t)p[4] + p[5])); /* ARP is all header */
    if (len >= 28) {
        add_term(c, IDX_T_IP4, p + 14);
        add_term(c, IDX_T_IP4, p + 24);
    }
}

/* MPLS: skip labels up to bottom-of-stack, then guess the payload from the
 * IP version nibble, as there is no type field. */
static void parse_mpls(struct pctx *c, const uint8_t *p, uint32_t len)
{
    deep(c);
    for (;;) {
        if (len < 4) {
            unparsed(c);
            return;
        }
        int bottom = p[2] & 0x01;
        hdr(c, p, 4);
        p += 4;
        len -= 4;
        if (bottom)
            break;
    }
    if (len >= 1 && p[0] >> 4 == 4)
        parse_ip4(c, p, len);
    else if (len >= 1 && p[0] >> 4 == 6)
        parse_ip6(c, p, len);
    else
        unparsed(c); /* pseudowire, control word or truncated */
}

/* A PPP protocol number to the IP parser it names. */
static void parse_ppp_proto(struct pctx *c, uint16_t proto, const uint8_t *p, uint32_t len)
{
    if (proto == PPP_IP4)
        parse_ip4(c, p, len);
    else if (proto == PPP_IP6)
        parse_ip6(c, p, len);
    else
        unparsed(c); /* LCP, CCP, compressed data: nothing the index reads */
}

/* PPPoE session stage (RFC 2516): 6-byte header, then a 2-byte PPP protocol. */
static void parse_pppoe(struct pctx *c, const uint8_t *p, uint32_t len)
{
    deep(c);
    if (len < 8 || p[0] != 0x11 || p[1] != 0) {
        unparsed(c);
        return;
    }
    uint16_t plen = rw_get_be16(p + 4);
    hdr(c, p, 8);
    uint32_t inner = len - 8;
    if (plen >= 2 && (uint32_t)plen - 2 < inner)
        inner = (uint32_t)plen - 2;
    parse_ppp_proto(c, rw_get_be16(p + 6), p + 8, inner);
}

/* PPP in GRE (PPTP): the ff03 address/control pair may be elided (ACFC) and
 * the protocol may be one byte (PFC: an odd first byte). */
static void parse_ppp(struct pctx *c, const uint8_t *p, uint32_t len)
{
    if (len >= 2 && p[0] == 0xff && p[1] == 0x03) {
        p += 2;
        len -= 2;
    }
    if (len >= 1 && (p[0] & 1)) {
        hdr(c, p, 1);
        parse_ppp_proto(c, p[0], p + 1, len - 1);
        return;
    }
    if (len < 2) {
        unparsed(c);
        return;
    }
    hdr(c, p, 2);
    parse_ppp_proto(c, rw_get_be16(p), p + 2, len - 2);
}

/* One 802.1Q/802.1ad tag: record the VLAN id and step over it. Returns 0 if
 * truncated. */
static int vlan_tag(struct pctx *c, const uint8_t **p, uint32_t *len, uint16_t *type)
{
    deep(c);
    if (*len < 4) {
        unparsed(c);
        return 0;
    }
    uint16_t vid = rw_get_be16(*p) & 0x0fff;
    add_u16(c, IDX_T_VLAN, vid);
    if (!c->vlan_seen) {
        c->vlan_seen = 1;
        c->vlan = vid;
    }
    *type = rw_get_be16(*p + 2);
    hdr(c, *p, 4);
    *p += 4;
    *len -= 4;
    return 1;
}

/* The payload named by an EtherType. VLAN tags are stepped over in a loop,
 * so any number of them costs no stack. */
static void parse_ethertype(struct pctx *c, uint16_t type, const uint8_t *p, uint32_t len)
{
    for (;;) {
        switch (type) {
        case ET_IP4: parse_ip4(c, p, len); return;
        case ET_IP6: parse_ip6(c, p, len); return;
        case ET_ARP:
        case ET_RARP: parse_arp(c, type, p, len); return;
        case ET_VLAN:
        case ET_QINQ:
        case ET_QINQ_OLD:
            if (!vlan_tag(c, &p, &len, &type))
                return;
            continue;
        case ET_MPLS:
        case ET_MPLS_MC: parse_mpls(c, p, len); return;
        case ET_PPPOE_SESS: parse_pppoe(c, p, len); return;
        case ET_TEB:
            if (encap_enter(c))
                parse_ether(c, p, len);
            return;
        case ET_PPP:
            if (encap_enter(c))
                parse_ppp(c, p, len);
            return;
        default: unparsed(c); return;
        }
    }
}

static void parse_ether(struct pctx *c, const uint8_t *p, uint32_t len)
{
    if (len < 14) {
        unparsed(c);
        return;
    }
    uint16_t type = rw_get_be16(p + 12);
    hdr(c, p, 14);
    if (type < 0x0600) {
        unparsed(c); /* 802.3 length field: LLC/SNAP, which the index does not read */
        return;
    }
    parse_ethertype(c, type, p + 14, len - 14);
}

/* Linux cooked capture: the protocol field is an EtherType when >= 0x0600;
 * smaller values (802.2, 802.3, CAN...) are not read. */
static void parse_sll_proto(struct pctx *c, uint16_t proto, const uint8_t *p, uint32_t len)
{
    if (proto < 0x0600) {
        unparsed(c);
        return;
    }
    parse_ethertype(c, proto, p, len);
}

/* Raw IP: the version nibble says which. */
static void parse_raw(struct pctx *c, const uint8_t *p, uint32_t len)
{
    if (len >= 1 && p[0] >> 4 == 4)
        parse_ip4(c, p, len);
    else if (len >= 1 && p[0] >> 4 == 6)
        parse_ip6(c, p, len);
    else
        unparsed(c);
}

/* BSD loopback: a 4-byte address family. DLT_NULL writes it in the capturing
 * host's byte order; a small AF value read in the wrong order is >= 2^24, so
 * the smaller reading is the right one. DLT_LOOP is always big-endian. */
static void parse_loopback(struct pctx *c, const uint8_t *p, uint32_t len, int host_order)
{
    if (len < 4) {
        unparsed(c);
        return;
    }
    uint32_t af = rw_get_be32(p);
    hdr(c, p, 4);
    uint32_t le = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    if (host_order && le < af)
        af = le;
    switch (af) {
    case 2: parse_ip4(c, p + 4, len - 4); return;
    case 24:
    case 28:
    case 30: parse_ip6(c, p + 4, len - 4); return;
    case 10:
        /* Linux's AF_INET6: libpcap's `ip6` on a savefile only tests the BSD
         * values, so BPF would not match what we index. */
        deep(c);
        parse_ip6(c, p + 4, len - 4);
        return;
    default: unparsed(c); return;
    }
}

static void parse_link(struct pctx *c, int linktype, const uint8_t *p, uint32_t len)
{
    switch (linktype) {
    case 1: parse_ether(c, p, len); return;
    case 113:
        if (len < 16)
            unparsed(c);
        else {
            hdr(c, p, 16);
            parse_sll_proto(c, rw_get_be16(p + 14), p + 16, len - 16);
        }
        return;
    case 276:
        if (len < 20)
            unparsed(c);
        else {
            hdr(c, p, 20);
            parse_sll_proto(c, rw_get_be16(p), p + 20, len - 20);
        }
        return;
    case 12:
    case 101: parse_raw(c, p, len); return;
    case 228: parse_ip4(c, p, len); return;
    case 229: parse_ip6(c, p, len); return;
    case 0: parse_loopback(c, p, len, 1); return;
    case 108: parse_loopback(c, p, len, 0); return;
    default: unparsed(c); return;
    }
}

/* The packet's terms but the flow's hash. */
static void parse_packet(int linktype, const uint8_t *data, uint32_t caplen,
                         struct idx_parsed *out, struct pctx *c)
{
    *c = (struct pctx){.out = out, .base = data};
    out->flags = 0;
    out->hdr_end = 0;
    out->nterms = 0;
    memset(&out->flow, 0, sizeof out->flow);
    if (data == NULL)
        caplen = 0;
    parse_link(c, linktype, data, caplen);
    out->flow.vlan = c->vlan;
    out->key_swap = out->flow.present ? (uint8_t)idx_flow_key(&out->flow, &out->key) : 0;
}

void idx_parse_packet(int linktype, const uint8_t *data, uint32_t caplen, struct idx_parsed *out)
{
    struct pctx c;
    parse_packet(linktype, data, caplen, out, &c);
    if (out->flow.present) {
        uint8_t h[8];
        rw_put_be64(h, idx_flowkey_hash(&out->key));
        add_term_upto(&c, IDX_T_FLOW, h, IDX_MAX_TERMS);
    }
}

void idx_parse_packet_nohash(int linktype, const uint8_t *data, uint32_t caplen,
                             struct idx_parsed *out)
{
    struct pctx c;
    parse_packet(linktype, data, caplen, out, &c);
}

static uint64_t splitmix64_final(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ULL;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebULL;
    x ^= x >> 31;
    return x;
}

/* ICMP types that have a reply counterpart (Community ID's table): the pair
 * then orders like ports. */
int idx_icmp_counterpart(int v6, int type, int *other)
{
    static const int map4[][2] = {{8, 0}, {0, 8}, {13, 14}, {14, 13}, {15, 16}, {16, 15},
                                  {10, 9}, {9, 10}, {17, 18}, {18, 17}};
    static const int map6[][2] = {{128, 129}, {129, 128}, {133, 134}, {134, 133}, {135, 136},
                                  {136, 135}, {130, 131}, {131, 130}, {144, 145}, {145, 144},
                                  {146, 147}, {147, 146}, {139, 140}, {140, 139}};
    const int(*m)[2] = v6 ? map6 : map4;
    size_t n = v6 ? sizeof map6 / sizeof map6[0] : sizeof map4 / sizeof map4[0];
    for (size_t i = 0; i < n; i++) {
        if (m[i][0] == type) {
            *other = m[i][1];
            return 1;
        }
    }
    return 0;
}

/* The endpoints are ordered so both directions of a flow have one key.
 * ICMP and ICMPv6 key as Community ID sees them: the type in place of the
 * source port and, in place of the destination port, the type's
 * counterpart (an echo request and its reply are one flow) or, for a type
 * without one, the code; so each flow has one Community ID. */
int idx_flow_key(const struct idx_flow *f, struct idx_flowkey *k)
{
    uint8_t buf[40] = {0};
    size_t alen = f->family == 4 ? 4 : 16;
    uint16_t sport = f->has_ports ? f->sport : 0;
    uint16_t dport = f->has_ports ? f->dport : 0;
    int other;
    if (f->proto == (f->family == 4 ? 1 : 58)) {
        sport = f->sport;
        dport = idx_icmp_counterpart(f->family == 6, f->sport, &other) ? (uint16_t)other : f->dport;
    }
    /* An endpoint's bytes (the address zero-padded to 16, the port) in
     * byte order are the address's two big-endian words, then the port:
     * compared as integers, not bytes (this runs once a packet). */
    uint64_t s0 = rw_get_be32(f->src), s1 = 0, d0 = rw_get_be32(f->dst), d1 = 0;
    if (alen == 16) {
        s0 = rw_get_be64(f->src), s1 = rw_get_be64(f->src + 8);
        d0 = rw_get_be64(f->dst), d1 = rw_get_be64(f->dst + 8);
    } else {
        s0 <<= 32, d0 <<= 32;
    }
    int swap = s0 != d0 ? s0 > d0 : s1 != d1 ? s1 > d1 : sport > dport;
    buf[IDX_FK_FAMILY] = f->family;
    buf[IDX_FK_PROTO] = f->proto;
    rw_put_be16(buf + IDX_FK_VLAN, f->vlan);
    memcpy(buf + IDX_FK_END1, swap ? f->dst : f->src, alen);
    rw_put_be16(buf + IDX_FK_END1 + 16, swap ? dport : sport);
    memcpy(buf + IDX_FK_END2, swap ? f->src : f->dst, alen);
    rw_put_be16(buf + IDX_FK_END2 + 16, swap ? sport : dport);
    memcpy(k->w, buf, sizeof buf);
    return swap;
}

/* FNV-1a 64 over the key's bytes, then splitmix's finalizer: fixed by the
 * archive format (flow terms, K8). A byte at a time: writers compute it
 * once a flow, not once a packet. */
uint64_t idx_flowkey_hash(const struct idx_flowkey *k)
{
    uint8_t buf[40];
    memcpy(buf, k->w, sizeof buf);
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < sizeof buf; i++) {
        h ^= buf[i];
        h *= 0x100000001b3ULL;
    }
    return splitmix64_final(h);
}

int idx_flowkey_terms(const struct idx_flowkey *k, int has_ports, struct idx_term *out)
{
    const uint8_t *b = (const uint8_t *)k->w;
    int v4 = b[IDX_FK_FAMILY] == 4, n = 0;
    uint8_t alen = v4 ? 4 : 16;
    memset(out, 0, IDX_FLOW_TERMS * sizeof *out);
    out[n].kind = IDX_T_L3;
    out[n].len = 2;
    out[n].val[0] = v4 ? 0x08 : 0x86;
    out[n++].val[1] = v4 ? 0x00 : 0xdd;
    for (int e = 0; e < 2; e++) {
        const uint8_t *end = b + (e ? IDX_FK_END2 : IDX_FK_END1);
        if (e && !memcmp(end, b + IDX_FK_END1, 16))
            continue;
        out[n].kind = v4 ? IDX_T_IP4 : IDX_T_IP6;
        out[n].len = alen;
        memcpy(out[n++].val, end, alen);
    }
    out[n].kind = v4 ? IDX_T_PROTO4 : IDX_T_PROTO6;
    out[n].len = 1;
    out[n++].val[0] = b[IDX_FK_PROTO];
    for (int e = 0; has_ports && e < 2; e++) {
        const uint8_t *port = b + (e ? IDX_FK_END2 : IDX_FK_END1) + 16;
        if (e && !memcmp(port, b + IDX_FK_END1 + 16, 2))
            continue;
        out[n].kind = IDX_T_PORT;
        out[n].len = 2;
        memcpy(out[n++].val, port, 2);
    }
    return n;
}

uint64_t idx_flow_hash(const struct idx_flow *f)
{
    struct idx_flowkey k;
    idx_flow_key(f, &k);
    return idx_flowkey_hash(&k);
}
