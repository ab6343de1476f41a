/* ses_int.h -- what the files of the sessions read API share (sessions.c,
 * ses_smtp.c, ses_voip.c): the run, decoded packets, a flow map, output. */
#ifndef SES_INT_H
#define SES_INT_H

#include "analytics/sessions.h"
#include "analytics/reasm.h"

#define SES_POOL_MAX (16u << 20) /* out-of-order TCP bytes across a run */
#define SES_KEEP_MAX (64u << 20) /* results kept for the listing */

/* A packet as the sessions see it: the innermost IP header's addresses and
 * TCP/UDP ports, the payload as captured (cut to the IP length). */
struct ses_pkt {
    int fam;                  /* 4 or 6 */
    uint8_t src[16], dst[16];
    uint8_t proto;            /* 6 TCP, 17 UDP */
    uint16_t sport, dport;
    uint32_t seq;             /* TCP */
    uint8_t flags;            /* TCP flags byte */
    const uint8_t *pl;        /* payload */
    size_t pln;
    int64_t ts;
    int tagged;               /* 1 if an 802.1Q/802.1ad tag came before the IP header */
    const struct qry_pkt *raw;
};

/* One end of a flow. */
struct ses_ep {
    int fam;
    uint8_t addr[16];
    uint16_t port;
};

/* A flow's two ends in a fixed order (the lower one first), and its protocol. */
struct ses_key {
    uint8_t fam, proto;
    uint16_t pa, pb;
    uint8_t a[16], b[16];
};

typedef struct ses_map ses_map_t;
ses_map_t *ses_map_new(void);
/* Frees the map; each value is handed to fn (may be NULL) first. */
void ses_map_free(ses_map_t *m, void (*fn)(void *v));
void *ses_map_get(ses_map_t *m, const struct ses_key *k);
int ses_map_put(ses_map_t *m, const struct ses_key *k, void *v); /* <0 out of memory */
void *ses_map_del(ses_map_t *m, const struct ses_key *k);
size_t ses_map_count(const ses_map_t *m);
/* Calls fn for each value (the map must not change meanwhile). */
void ses_map_each(ses_map_t *m, void (*fn)(void *arg, void *v), void *arg);

/* The key of p's flow; *fwd 1 when p goes from a to b. */
void ses_key_of(const struct ses_pkt *p, struct ses_key *k, int *fwd);
void ses_key_ep(const struct ses_ep *x, const struct ses_ep *y, uint8_t proto, struct ses_key *k);

/* Decode a packet of link type dlt: 1 for IPv4/IPv6 TCP or UDP (first
 * fragment), 0 otherwise. */
int ses_decode(int dlt, const struct qry_pkt *raw, struct ses_pkt *out);

/* Addresses as text, and as the hex of IDs. */
void ses_addr_str(int fam, const uint8_t *a, char *out, size_t n);
void ses_addr_hex(int fam, const uint8_t *a, char *out, size_t n);
/* Parse hex (8 or 32 digits) back; 0 or -1. */
int ses_addr_unhex(const char *s, size_t len, int *fam, uint8_t *a);
/* Parse a text address; 0 or -1. */
int ses_addr_parse(const char *s, int *fam, uint8_t *a);

/* ---- the run ---- */

struct ses_ops {
    int (*packet)(ses_t *s, const struct ses_pkt *p); /* <0 fails; 1 stop the query */
    int (*finish)(ses_t *s, char *err);               /* the query ended: write the rest */
    void (*free)(ses_t *s);
};

struct ses {
    idx_t *ix;
    struct ses_spec spec;
    char host[64], user[256], id[160];
    qry_t *q;
    const struct qry_point *pts;
    int npts;
    qry_write_fn w;
    void *warg;
    int (*cancel)(void *);
    void *cancel_arg;
    char filter[4096];
    const char *ctype;
    int ended, failed, found;
    uint64_t packets;
    struct ses_ops ops;
    void *k; /* the kind's own state */
    /* buffered output */
    uint8_t *ob;
    size_t on, ocap;
    int oerr;
    struct rsm_pool pool;
};

/* Output, buffered; errors are remembered (s->oerr) and reported by pump. */
void ses_out(ses_t *s, const void *p, size_t n);
void ses_outs(ses_t *s, const char *str);
void ses_outf(ses_t *s, const char *fmt, ...) RW_PRINTF(2, 3);
int ses_flush(ses_t *s);
/* A JSON string (with quotes), escaped; NULL as null. */
void ses_json_str(ses_t *s, const char *str);
void ses_json_time(ses_t *s, int64_t ns); /* RFC 3339 string; null for 0/INT64_MIN */
/* A CSV field (quoted when it needs to be). */
void ses_csv_str(ses_t *s, const char *str);
/* Plan the query of the run: window, filter F (asked as "(F) or (vlan and
 * (F))", kept in s->filter). */
int ses_query(ses_t *s, int64_t from, int64_t to, const char *filter, char *err);
/* ... asked as F alone when vlan is 0: for a caller that knows the packets
 * it wants carry no VLAN tag (libpcap's vlan shifts the offsets of what
 * follows it, so the index cannot narrow the "(vlan and (F))" half: it
 * reads every tagged packet of the window). */
int ses_query_vlan(ses_t *s, int64_t from, int64_t to, const char *filter, int vlan, char *err);

/* The kinds. */
int ses_smtp_init(ses_t *s, char *err);
int ses_voip_init(ses_t *s, char *err);

/* FNV-1a 64 */
uint64_t ses_hash(const void *p, size_t n);

#endif
