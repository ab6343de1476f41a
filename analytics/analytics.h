/* analytics.h -- flows, top talkers, the traffic timeline and Community ID
 * look-ups over an archive's index (flow records K8, counters K9) and, where
 * the index alone cannot be exact, its packets (query/query.h).
 *
 * What each answer means (man/rewindd.8, ANALYTICS, says it for users):
 *  - Flows come from the flow records alone. A record holds a flow's totals
 *    within one segment; the records of one flow (capture point, 5-tuple,
 *    VLAN) in the segments of its point are merged into one flow. A flow
 *    without a packet for AN_FLOW_IDLE has ended: a later packet of the
 *    same 5-tuple starts another flow. A flow is in a window when one
 *    of its records has a packet in it; its counts are those of the records
 *    whose segments meet the window.
 *  - Top talkers and timelines count packets exactly as tcpdump would over
 *    the same window and filter: from flow records and counters where a
 *    segment lies wholly inside the window and there is no filter, else from
 *    the packets themselves, judged by libpcap.
 *  - A timeline's buckets are whole steps aligned to the Unix epoch; its
 *    window is widened to whole steps and the answer says which.
 *
 * Every function returns 0 or a negative RW_E* code with err filled
 * (RW_EINPUT: bad input, the message names what was wrong). Results are
 * malloc'ed and freed with the matching _free. */
#ifndef AN_ANALYTICS_H
#define AN_ANALYTICS_H
#include <stdint.h>
#include <stdio.h>

#include "common/rw.h"

typedef struct idx idx_t;

/* ---------------------------------------------------------------- flows */

/* One flow as answered: src is the side that sent its first packet. For
 * ICMP and ICMPv6, sport is the type and dport the code. */
struct an_flow {
    uint32_t point_id;   /* its capture point: an_flows.points names it */
    uint8_t family, proto;
    uint8_t src[16], dst[16];
    uint16_t sport, dport, vlan;
    int64_t first, last;
    uint64_t pkts_fwd, bytes_fwd, pkts_rev, bytes_rev;
    uint8_t tcp_flags;
    char community_id[40];
    uint64_t hash;       /* the flow hash of its key (rewind-archive(5), K8) */
};

#define AN_FLOW_IDLE (600 * RW_NS_PER_SEC) /* 10 minutes */

enum an_sort { AN_SORT_BYTES = 0, AN_SORT_PACKETS, AN_SORT_START, AN_SORT_DURATION };

/* "bytes", "packets", "start" or "duration"; RW_EINPUT naming them. */
int an_sort_parse(const char *s, enum an_sort *out, char *err) RW_WUR;

#define AN_FLOWS_LIMIT_DEFAULT 1000
#define AN_FLOWS_LIMIT_MAX 1000000

struct an_flow_query {
    int64_t from, to;         /* RW_TIME_MIN / RW_TIME_MAX for open ends */
    const char *filter;       /* flow filter (an_ffilter_new), NULL or "" for all */
    const char **points;      /* NULL-terminated names, or NULL for all */
    const char *community_id; /* "1:..." or NULL */
    enum an_sort sort;
    uint64_t limit;           /* 0: AN_FLOWS_LIMIT_DEFAULT; at most AN_FLOWS_LIMIT_MAX */
};

struct an_flows {
    struct an_flow *flows; /* in the query's order if order is NULL, else */
    uint32_t *order;       /* flows[order[i]] is the i-th in the query's order */
    size_t flows_mapped;   /* flows is a mapping of this many bytes (0: malloc'ed) */
    size_t n;
    struct an_point_name { uint32_t id; char name[65]; } *points; /* of the archive */
    size_t npoints;
    uint64_t matched;      /* flows that matched, before the limit */
    uint64_t records;      /* flow records read */
};

/* The merged flows of a window. Memory: the flows of the last
 * AN_FLOW_IDLE of each point plus the limit's best, whatever the window. */
int an_flows_get(idx_t *ix, const struct an_flow_query *q, struct an_flows *out,
                 char *err) RW_WUR;
void an_flows_free(struct an_flows *f);

enum an_format { AN_JSON = 0, AN_CSV = 1 };
/* "json" or "csv" (NULL: json); RW_EINPUT otherwise. */
int an_format_parse(const char *s, enum an_format *out, char *err) RW_WUR;
/* Write flows as JSON ({"from":…,"flows":[…]}) or CSV with a header line.
 * Returns 0 or -1 when a write failed. */
int an_flows_write(FILE *f, const struct an_flow_query *q, const struct an_flows *r,
                   enum an_format fmt);
/* The same in pieces, for answers streamed a few rows at a time: the head,
 * rows [i, j), the tail. The name of flow i's point: an_flow_point(). */
void an_flows_write_head(FILE *f, const struct an_flow_query *q, const struct an_flows *r,
                         enum an_format fmt);
void an_flows_write_rows(FILE *f, const struct an_flows *r, size_t i, size_t j,
                         enum an_format fmt);
void an_flows_write_tail(FILE *f, enum an_format fmt);
const char *an_flow_point(const struct an_flows *r, const struct an_flow *f);

/* A flow filter: the words of pcap-filter(7) that apply to a flow's key —
 * host, net (CIDR or mask), port, portrange, src, dst, proto, ip, ip6, tcp,
 * udp, sctp, icmp, icmp6, vlan — with and, or, not and parentheses.
 * Anything else (byte offsets, len, ether, ...) is RW_EINPUT naming it. A
 * flow matches when a packet of it, in either direction it has packets,
 * would match the filter (src/dst are then the packet's, as in BPF). */
typedef struct an_ffilter an_ffilter_t;
int an_ffilter_new(const char *expr, an_ffilter_t **out, char *err) RW_WUR;
int an_ffilter_match(an_ffilter_t *ff, const struct an_flow *f);
void an_ffilter_free(an_ffilter_t *ff);

/* ---------------------------------------------------------- Community ID */

/* The BPF filter that selects exactly the packets of the flows with
 * Community ID cid seen in [from, to) on points: their 5-tuples in both
 * directions, with their VLAN tags. RW_EINPUT if cid is not of the form
 * "1:" + 28 base64 characters; RW_ENOTFOUND (message: "no flow with
 * Community ID ...") if no flow has it. *out is malloc'ed. */
int an_cid_filter(idx_t *ix, const char *cid, int64_t from, int64_t to, const char **points,
                  char **out, char *err) RW_WUR;
/* 1 if s looks like a Community ID v1 ("1:" and 28 base64 characters). */
int an_cid_valid(const char *s);

/* ----------------------------------------------------------- top talkers */

enum an_by { AN_BY_SRC = 0, AN_BY_DST, AN_BY_PAIR, AN_BY_PORT, AN_BY_PROTO, AN_BY_POINT };
enum an_metric { AN_METRIC_BYTES = 0, AN_METRIC_PACKETS };
int an_by_parse(const char *s, enum an_by *out, char *err) RW_WUR;
int an_metric_parse(const char *s, enum an_metric *out, char *err) RW_WUR;
const char *an_by_name(enum an_by by);

#define AN_TOP_LIMIT_DEFAULT 10
#define AN_TOP_LIMIT_MAX 100000

struct an_top_query {
    int64_t from, to;
    const char *filter;  /* BPF, judged by libpcap on each packet; NULL or "" for all */
    const char **points;
    enum an_by by;
    enum an_metric metric;
    uint64_t limit;      /* 0: AN_TOP_LIMIT_DEFAULT */
};

/* One talker. src/dst: the address in a (b unused); pair: a < b; port:
 * port; proto: proto; point: point. Packets and bytes (sum of original
 * lengths) of the IP packets it sent (src), received (dst), exchanged
 * (pair), or that carry the port (either side), or the protocol; for by
 * point, every packet of the point. */
struct an_talker {
    uint8_t family;
    uint8_t a[16], b[16];
    uint16_t port;
    uint8_t proto;
    char point[65];
    uint64_t packets, bytes;
};

struct an_top {
    struct an_talker *rows;
    size_t n;
    uint64_t keys;      /* distinct talkers before the limit */
    uint64_t packets, bytes; /* total counted */
    int from_packets;   /* 1 if some of it was counted from packets (else index only) */
};

int an_top_get(idx_t *ix, const struct an_top_query *q, struct an_top *out, char *err) RW_WUR;
void an_top_free(struct an_top *t);
int an_top_write(FILE *f, const struct an_top_query *q, const struct an_top *t,
                 enum an_format fmt);

/* -------------------------------------------------------------- timeline */

#define AN_STEP_MIN RW_NS_PER_SEC
#define AN_STEP_MAX (86400 * RW_NS_PER_SEC)
#define AN_BUCKETS_MAX 1000000 /* steps times points */

struct an_tl_query {
    int64_t from, to;    /* open ends: the archive's first and last packet */
    int64_t step;        /* ns, a whole number of seconds in [AN_STEP_MIN, AN_STEP_MAX] */
    const char *filter;  /* BPF; NULL or "": the counters alone */
    const char **points;
};

struct an_timeline {
    int64_t from, to, step; /* the window, widened to whole steps */
    size_t nbuckets;
    int npoints;
    char (*points)[65];
    uint64_t *packets, *bytes; /* [point * nbuckets + bucket] */
    int from_packets;          /* 1 if counted from packets (a filter) */
};

int an_timeline_get(idx_t *ix, const struct an_tl_query *q, struct an_timeline *out,
                    char *err) RW_WUR;
void an_timeline_free(struct an_timeline *t);
int an_timeline_write(FILE *f, const struct an_timeline *t, enum an_format fmt);

#endif
