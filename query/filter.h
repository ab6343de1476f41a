/* filter.h -- turn a BPF filter expression into an index plan.
 *
 * libpcap's compiled filter is the judge of every packet; this parser only
 * finds the part of the expression the index can narrow. It follows
 * pcap-filter(7) grammar: `and`/`&&` and `or`/`||` have EQUAL precedence and
 * associate to the left (`a or b and c` is `(a or b) and c`); `not`/`!` binds
 * tighter; a bare id inherits the qualifiers of the previous primitive
 * (`host 1.2.3.4 or 5.6.7.8`, `port 80 or 443`).
 *
 * Every node of the result stands for a set of packets; the planner computes
 * for each node an upper bound (a superset of what BPF matches) and a lower
 * bound (a subset), from the postings of index/parse.h:
 *   QF_ANY   upper = all packets, lower = none (the index cannot help)
 *   QF_TERM  posting range [lo, hi] of a term kind; `exact` says whether, for
 *            plain packets, the posting equals BPF's primitive (host, net,
 *            port, portrange, ip/ip6/arp/rarp, proto: exact; src/dst-only
 *            primitives: not exact, the postings are either-direction)
 *   QF_AND, QF_OR, QF_NOT  the usual, with bounds combined accordingly.
 * Anything the parser does not understand becomes QF_ANY, never an error:
 * the filter is validated by pcap_compile(), not here. If the whole
 * expression cannot be parsed, the result is a single QF_ANY node.
 */
#ifndef QRY_FILTER_H
#define QRY_FILTER_H

#include <stdint.h>

enum qf_op { QF_ANY = 0, QF_TERM, QF_AND, QF_OR, QF_NOT };

struct qf_node {
    enum qf_op op;
    struct qf_node *a, *b; /* AND/OR: both; NOT: a */
    /* QF_TERM: */
    uint8_t kind;   /* enum idx_term_kind from index/parse.h */
    uint8_t len;    /* value length for the kind */
    uint8_t exact;  /* 1 if exact for plain packets */
    uint8_t lo[16]; /* inclusive range, network byte order */
    uint8_t hi[16];
};

/* Parse expr (may be NULL or empty: returns a QF_ANY node). Returns a tree
 * the caller frees with qf_free(), or NULL only when out of memory. */
struct qf_node *qf_parse(const char *expr);
void qf_free(struct qf_node *n);

/* Render a tree for tests and debugging, e.g.
 * "(and (term ip4 10.0.0.0-10.255.255.255 exact) (not any))". Grammar:
 *   any | (not X) | (and X Y) | (or X Y)
 *   (term KIND LO[-HI] exact|inexact)   -HI only when hi != lo
 * KIND is ip4 (dotted), ip6 (RFC 5952 text), port, vlan, proto4, proto6
 * (decimal), l3 (0x%04x EtherType) or flow (hex). Deterministic: the same
 * tree always renders the same string. Always NUL-terminates when
 * bufsz > 0; returns the number of bytes the full rendering needs (without
 * the NUL), like snprintf, so buf may be NULL when bufsz is 0. */
int qf_format(const struct qf_node *n, char *buf, int bufsz);

#endif
