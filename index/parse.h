/* parse.h -- extract index terms from one captured packet.
 *
 * The parser never judges a packet; it only says which index terms the
 * packet carries, so that the query planner can narrow the candidates before
 * libpcap's filter judges them. Its contract with the planner (see
 * query/filter.h and DESIGN.md invariant 1):
 *
 *  - For a packet without IDX_F_UNPARSED, every term BPF could match at any
 *    layer is emitted (outer and inner: through 802.1Q/QinQ, MPLS, PPPoE,
 *    GRE, VXLAN, Geneve, IP-in-IP; ARP/RARP addresses count as IPv4
 *    addresses; SCTP ports count as ports). Postings are therefore a
 *    superset of what BPF matches.
 *  - A packet without IDX_F_DEEP and without IDX_F_UNPARSED is "plain": one
 *    link header, one network header without IPv6 extension headers, at most
 *    one transport header. For plain packets each posting is exact: the
 *    packet carries the term iff BPF's primitive (host, net, port, portrange,
 *    ip/ip6/arp/rarp, ip proto, ip6 proto) matches it.
 *  - A plain packet with a flow carries exactly the terms its flow implies:
 *    the L3 type, both addresses, the IP protocol, both ports when
 *    flow.has_ports, and the flow hash; fuzz_parse checks it. All of them
 *    follow from the flow's key (idx_flow_key) and has_ports, so two plain
 *    packets with the same key, has_ports and number of terms have the same
 *    terms: the writer reuses a flow's term ids on that ground
 *    (index/segw.c).
 *  - IDX_F_UNPARSED: something could not be parsed (unknown link type or
 *    EtherType, truncated header, bad version/length). The packet may lack
 *    terms BPF would match; the planner keeps it as a candidate everywhere.
 */
#ifndef IDX_PARSE_H
#define IDX_PARSE_H

#include <stddef.h>
#include <stdint.h>

#define IDX_F_UNPARSED 0x01
#define IDX_F_DEEP 0x02

/* Term kinds. The value bytes are in network byte order, fixed length. */
enum idx_term_kind {
    IDX_T_IP4 = 1,    /* 4 bytes: IPv4 src/dst at any layer, ARP/RARP SPA/TPA */
    IDX_T_IP6 = 2,    /* 16 bytes: IPv6 src/dst at any layer */
    IDX_T_PORT = 3,   /* 2 bytes: TCP/UDP/SCTP src/dst port, first fragment only */
    IDX_T_PROTO4 = 4, /* 1 byte: IPv4 protocol field, any layer */
    IDX_T_PROTO6 = 5, /* 1 byte: every IPv6 next-header value in the chain, any layer */
    IDX_T_L3 = 6,     /* 2 bytes: 0x0800 ip, 0x86dd ip6, 0x0806 arp, 0x8035 rarp, any layer */
    IDX_T_VLAN = 7,   /* 2 bytes: 802.1Q/802.1ad VLAN id (12 bits), every tag */
    IDX_T_FLOW = 8,   /* 8 bytes: idx_flow_hash() of the innermost flow */
    IDX_T_MAX = 9,
};

/* Length of a term value for a kind, 0 for an unknown kind. */
size_t idx_term_len(int kind);

#define IDX_MAX_TERMS 64

struct idx_term {
    uint8_t kind;
    uint8_t len;
    uint8_t val[16];
};

/* The innermost IP flow, for flow records and Community ID. */
struct idx_flow {
    uint8_t present; /* 1 if an IPv4/IPv6 header was found */
    uint8_t family;  /* 4 or 6 */
    uint8_t proto;   /* transport protocol (after IPv6 extension headers) */
    uint8_t has_ports; /* 1 for TCP/UDP/SCTP with ports read; ICMP type/code go in sport/dport */
    uint8_t src[16], dst[16]; /* IPv4 uses the first 4 bytes */
    uint16_t sport, dport;    /* host byte order */
    uint16_t vlan;            /* outermost VLAN id, 0 if none */
    uint8_t tcp_flags;        /* TCP flags byte if TCP */
    uint32_t l3_len;          /* IP total length as on the wire (for byte counts) */
};

/* What idx_flow_hash() hashes, the same for both directions of a flow:
 * family, protocol, VLAN id, then both endpoints (the address zero-padded
 * to 16 bytes, the port; ICMP's type and its counterpart or code as ports)
 * in byte order: 40 bytes. Flows with equal keys are one flow (one hash);
 * idx_flowkey_hash(key of f) == idx_flow_hash(f). Where each part is
 * among the key's bytes (w in memory order), for the writer that keeps a
 * flow's record in its key: */
#define IDX_FK_FAMILY 0
#define IDX_FK_PROTO 1
#define IDX_FK_VLAN 2 /* big-endian */
#define IDX_FK_END1 4 /* an endpoint: the address (16 bytes), the port (2, big-endian) */
#define IDX_FK_END2 22
struct idx_flowkey {
    uint64_t w[5];
};

struct idx_parsed {
    int flags;     /* IDX_F_* */
    uint32_t hdr_end; /* bytes from the packet's start to the end of the innermost header
                         recognised (transport, else network, else link); what follows is
                         payload, or bytes the parser could not read. May exceed caplen
                         when a header is cut short. */
    int nterms;    /* at most IDX_MAX_TERMS; duplicates allowed, extra terms dropped
                      (and IDX_F_UNPARSED set) when full */
    struct idx_term terms[IDX_MAX_TERMS];
    struct idx_flow flow;
    struct idx_flowkey key; /* the flow's key, if flow.present */
    uint8_t key_swap;       /* 1 if flow.src's endpoint is the key's second (idx_flow_key) */
};

/* Parse one packet of the given DLT_ link type. data has caplen bytes.
 * Never fails and never reads past caplen: what cannot be parsed sets
 * IDX_F_UNPARSED. Supported link types: EN10MB, LINUX_SLL, LINUX_SLL2, RAW
 * (12 and 101), IPV4 (228), IPV6 (229), NULL, LOOP; anything else is
 * UNPARSED with no terms. */
void idx_parse_packet(int linktype, const uint8_t *data, uint32_t caplen, struct idx_parsed *out);

/* As idx_parse_packet, without the flow's hash term: for a writer that
 * keeps its flows by idx_flow_key and computes the hash once a flow
 * (index/segw.c adds the term). */
void idx_parse_packet_nohash(int linktype, const uint8_t *data, uint32_t caplen,
                             struct idx_parsed *out);

/* 1 and *other set when ICMP (v6: ICMPv6) type has a counterpart (echo
 * request and reply, ...), as Community ID pairs them; else 0. */
int idx_icmp_counterpart(int v6, int type, int *other);
/* Canonical (direction-independent) 64-bit hash of a flow's 5-tuple + vlan. */
uint64_t idx_flow_hash(const struct idx_flow *f);

/* The key of a flow (see struct idx_flowkey). Returns 1 if f's source
 * endpoint is the key's second one, 0 if it is the first (or both are
 * the same): two packets of a flow went the same way if these agree. */
int idx_flow_key(const struct idx_flow *f, struct idx_flowkey *k);
uint64_t idx_flowkey_hash(const struct idx_flowkey *k);
/* The terms a plain packet of the flow with key k carries but the flow
 * hash (see above): the L3 type, both addresses, the IP protocol, and both
 * ports when has_ports, each once, into out (IDX_FLOW_TERMS at most).
 * Returns how many. A writer derives a flow's terms from its key with this
 * rather than keeping them (index/segw.c); fuzz_parse checks that they are
 * the parser's. */
#define IDX_FLOW_TERMS 6
int idx_flowkey_terms(const struct idx_flowkey *k, int has_ports, struct idx_term *out);

#endif
