/* top.c -- top talkers by source, destination, pair, port, protocol or
 * capture point: from flow records where a segment lies wholly inside the
 * window and no filter asks more of the packets, else from the packets. */
#include "analytics/an_int.h"

#include <stdlib.h>
#include <string.h>

#include "index/index.h"
#include "index/parse.h"

static const char *const by_names[] = {"src", "dst", "pair", "port", "proto", "point"};

int an_by_parse(const char *s, enum an_by *out, char *err)
{
    for (int i = 0; i < 6; i++)
        if (!strcmp(s, by_names[i])) {
            *out = (enum an_by)i;
            return 0;
        }
    return rw_err(err, RW_EINPUT, "by '%.64s': expected src, dst, pair, port, proto or point", s);
}

const char *an_by_name(enum an_by by) { return by_names[by]; }

int an_metric_parse(const char *s, enum an_metric *out, char *err)
{
    if (!strcmp(s, "bytes"))
        *out = AN_METRIC_BYTES;
    else if (!strcmp(s, "packets"))
        *out = AN_METRIC_PACKETS;
    else
        return rw_err(err, RW_EINPUT, "metric '%.64s': expected bytes or packets", s);
    return 0;
}

/* ------------------------------------------------------------ the table */

struct tslot {
    int used;
    uint64_t h;
    struct an_talker t;
};

struct agg {
    const struct an_top_query *q;
    struct tslot *s;
    size_t cap, n;
    uint64_t packets, bytes;
    int oom;
};

/* The key part of a talker: everything but the counts. */
#define KEYLEN offsetof(struct an_talker, packets)

static uint64_t key_hash(const struct an_talker *t)
{
    const uint8_t *p = (const uint8_t *)t;
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < KEYLEN; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h ^ (h >> 29);
}

static int agg_grow(struct agg *g)
{
    size_t nc = g->cap ? g->cap * 2 : 256;
    struct tslot *ns = calloc(nc, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < g->cap; i++) {
        if (!g->s[i].used)
            continue;
        size_t j = g->s[i].h & (nc - 1);
        while (ns[j].used)
            j = (j + 1) & (nc - 1);
        ns[j] = g->s[i];
    }
    free(g->s);
    g->s = ns;
    g->cap = nc;
    return 0;
}

/* Add packets/bytes to the talker whose key k holds (k's counts ignored). */
static void agg_add(struct agg *g, struct an_talker *k, uint64_t packets, uint64_t bytes)
{
    if (!packets)
        return;
    if ((g->n + 1) * 2 > g->cap && agg_grow(g) < 0) {
        g->oom = 1;
        return;
    }
    uint64_t h = key_hash(k);
    size_t j = h & (g->cap - 1);
    while (g->s[j].used && (g->s[j].h != h || memcmp(&g->s[j].t, k, KEYLEN)))
        j = (j + 1) & (g->cap - 1);
    if (!g->s[j].used) {
        g->s[j].used = 1;
        g->s[j].h = h;
        g->s[j].t = *k;
        g->s[j].t.packets = g->s[j].t.bytes = 0;
        g->n++;
    }
    g->s[j].t.packets += packets;
    g->s[j].t.bytes += bytes;
}

static void key_addr(struct an_talker *k, int family, const uint8_t *a)
{
    memset(k, 0, sizeof *k);
    k->family = (uint8_t)family;
    memcpy(k->a, a, family == 4 ? 4 : 16);
}

static void key_pair(struct an_talker *k, int family, const uint8_t *a, const uint8_t *b)
{
    size_t alen = family == 4 ? 4 : 16;
    memset(k, 0, sizeof *k);
    k->family = (uint8_t)family;
    if (memcmp(a, b, alen) > 0) {
        const uint8_t *t = a;
        a = b;
        b = t;
    }
    memcpy(k->a, a, alen);
    memcpy(k->b, b, alen);
}

static void key_port(struct an_talker *k, uint16_t port)
{
    memset(k, 0, sizeof *k);
    k->port = port;
}

static int has_ports(int proto) { return proto == 6 || proto == 17 || proto == 132; }

/* One direction of traffic: n packets, b bytes from src to dst. */
static void add_dir(struct agg *g, int family, int proto, const uint8_t *src, const uint8_t *dst,
                    int ports, uint16_t sp, uint16_t dp, uint64_t n, uint64_t b)
{
    struct an_talker k;
    switch (g->q->by) {
    case AN_BY_SRC:
        key_addr(&k, family, src);
        break;
    case AN_BY_DST:
        key_addr(&k, family, dst);
        break;
    case AN_BY_PAIR:
        key_pair(&k, family, src, dst);
        break;
    case AN_BY_PORT:
        if (!ports)
            return;
        key_port(&k, sp);
        agg_add(g, &k, n, b);
        if (dp == sp)
            return;
        key_port(&k, dp);
        break;
    case AN_BY_PROTO:
        memset(&k, 0, sizeof k);
        k.proto = (uint8_t)proto;
        break;
    case AN_BY_POINT:
        return; /* counted per segment or per packet, IP or not */
    }
    agg_add(g, &k, n, b);
}

static int take_packet(void *arg, const struct qry_point *pt, const struct qry_pkt *p)
{
    struct agg *g = arg;
    g->packets++;
    g->bytes += p->len;
    if (g->q->by == AN_BY_POINT) {
        struct an_talker k;
        memset(&k, 0, sizeof k);
        snprintf(k.point, sizeof k.point, "%s", pt->name);
        agg_add(g, &k, 1, p->len);
        return g->oom;
    }
    struct idx_parsed ps;
    idx_parse_packet(pt->dlt, p->data, p->caplen, &ps);
    const struct idx_flow *f = &ps.flow;
    if (f->present)
        add_dir(g, f->family, f->proto, f->src, f->dst, f->has_ports, f->sport, f->dport, 1,
                p->len);
    return g->oom;
}

static int take_record(void *arg, const struct idx_flowrec *r)
{
    struct agg *g = arg;
    int ports = has_ports(r->proto) && (r->sport || r->dport);
    add_dir(g, r->family, r->proto, r->src, r->dst, ports, r->sport, r->dport, r->pkts_fwd,
            r->bytes_fwd);
    add_dir(g, r->family, r->proto, r->dst, r->src, ports, r->dport, r->sport, r->pkts_rev,
            r->bytes_rev);
    return g->oom;
}

static int better(const struct an_talker *a, const struct an_talker *b, enum an_metric m)
{
    uint64_t x = m == AN_METRIC_BYTES ? a->bytes : a->packets;
    uint64_t y = m == AN_METRIC_BYTES ? b->bytes : b->packets;
    if (x != y)
        return x > y ? -1 : 1;
    x = m == AN_METRIC_BYTES ? a->packets : a->bytes;
    y = m == AN_METRIC_BYTES ? b->packets : b->bytes;
    if (x != y)
        return x > y ? -1 : 1;
    return memcmp(a, b, KEYLEN);
}

static int cmp_talkers(const void *a, const void *b, void *arg)
{
    return better(a, b, *(const enum an_metric *)arg);
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int an_top_get(idx_t *ix, const struct an_top_query *q, struct an_top *out, char *err)
{
    struct agg g = {.q = q};
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0, nedge = 0;
    uint64_t *edge = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (q->from >= q->to)
        return rw_err(err, RW_EINPUT, "empty time window: 'from' must be before 'to'");
    if (q->limit > AN_TOP_LIMIT_MAX)
        return rw_err(err, RW_EINPUT, "limit %llu: at most %d talkers per answer",
                      (unsigned long long)q->limit, AN_TOP_LIMIT_MAX);
    if ((rc = an_points_selected(ix, q->points, &pts, &npts, err)) < 0)
        return rc;
    if (q->filter && q->filter[0]) {
        /* Only the packets can say what a filter matches. */
        out->from_packets = 1;
        rc = an_scan(ix, q->from, q->to, q->filter, q->points, NULL, 0, take_packet, &g, err);
        goto end;
    }
    if ((rc = idx_seg_list(ix, q->from, q->to, &segs, &nsegs, err)) < 0)
        goto end;
    edge = malloc((nsegs + 1) * sizeof *edge);
    if (!edge) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto end;
    }
    for (size_t i = 0; i < nsegs && rc == 0 && !g.oom; i++) {
        const struct idx_seg *s = &segs[i];
        size_t p;
        for (p = 0; p < npts && pts[p].id != s->point; p++)
            ;
        if (p == npts || s->packets == 0)
            continue;
        if (s->min_ts < q->from || s->max_ts >= q->to) {
            edge[nedge++] = s->id;
            continue;
        }
        g.packets += s->packets;
        g.bytes += s->wire_bytes;
        if (q->by == AN_BY_POINT) {
            struct an_talker k;
            memset(&k, 0, sizeof k);
            snprintf(k.point, sizeof k.point, "%s", pts[p].name);
            agg_add(&g, &k, s->packets, s->wire_bytes);
        } else {
            rc = idx_flows(ix, s->id, take_record, &g, err);
        }
    }
    if (rc == 0 && nedge && !g.oom) {
        out->from_packets = 1;
        qsort(edge, nedge, sizeof *edge, cmp_u64);
        rc = an_scan(ix, q->from, q->to, NULL, q->points, edge, nedge, take_packet, &g, err);
    }
end:
    if (rc == 0 && g.oom)
        rc = rw_err(err, RW_ENOMEM, "out of memory");
    if (rc == 0) {
        size_t k = 0, limit = q->limit ? q->limit : AN_TOP_LIMIT_DEFAULT;
        struct an_talker *rows = malloc((g.n ? g.n : 1) * sizeof *rows);
        if (!rows) {
            rc = rw_err(err, RW_ENOMEM, "out of memory");
        } else {
            for (size_t i = 0; i < g.cap; i++)
                if (g.s[i].used)
                    rows[k++] = g.s[i].t;
            qsort_r(rows, k, sizeof *rows, cmp_talkers, (void *)&q->metric);
            out->rows = rows;
            out->n = k < limit ? k : limit;
            out->keys = k;
            out->packets = g.packets;
            out->bytes = g.bytes;
        }
    }
    free(g.s);
    free(pts);
    free(segs);
    free(edge);
    return rc;
}

void an_top_free(struct an_top *t)
{
    free(t->rows);
    memset(t, 0, sizeof *t);
}
