/* flows.c -- whole flows from the per-segment flow records of the index:
 * merged across segments, filtered on their keys, the best of them kept. */
#include "analytics/analytics.h"
#include "analytics/an_int.h"

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"

int an_sort_parse(const char *s, enum an_sort *out, char *err)
{
    static const char *const names[] = {"bytes", "packets", "start", "duration"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (enum an_sort)i;
            return 0;
        }
    return rw_err(err, RW_EINPUT, "sort '%s': expected bytes, packets, start or duration", s);
}

int an_format_parse(const char *s, enum an_format *out, char *err)
{
    if (!s || !strcmp(s, "json"))
        *out = AN_JSON;
    else if (!strcmp(s, "csv"))
        *out = AN_CSV;
    else
        return rw_err(err, RW_EINPUT, "format '%s': expected json or csv", s);
    return 0;
}

/* ------------------------------------------------------- the merge table */

/* Open addressing on (point, flow hash); a slot's flow is live while used. */
struct slot {
    int used;
    struct an_flow f;
};

struct table {
    struct slot *s;
    size_t cap, n;
};

static uint64_t slot_hash(uint32_t point, uint64_t h) { return h ^ ((uint64_t)point * 0x9e3779b97f4a7c15ULL); }

static int table_grow(struct table *t)
{
    size_t nc = t->cap ? t->cap * 2 : 1024;
    struct slot *ns = calloc(nc, sizeof *ns);
    if (!ns)
        return -1;
    for (size_t i = 0; i < t->cap; i++) {
        if (!t->s[i].used)
            continue;
        size_t j = slot_hash(t->s[i].f.point_id, t->s[i].f.hash) & (nc - 1);
        while (ns[j].used)
            j = (j + 1) & (nc - 1);
        ns[j] = t->s[i];
    }
    free(t->s);
    t->s = ns;
    t->cap = nc;
    return 0;
}

static struct slot *table_get(struct table *t, uint32_t point, uint64_t h, int *isnew)
{
    if ((t->n + 1) * 2 > t->cap && table_grow(t) < 0)
        return NULL;
    size_t j = slot_hash(point, h) & (t->cap - 1);
    while (t->s[j].used) {
        if (t->s[j].f.hash == h && t->s[j].f.point_id == point) {
            *isnew = 0;
            return &t->s[j];
        }
        j = (j + 1) & (t->cap - 1);
    }
    *isnew = 1;
    t->n++;
    return &t->s[j];
}

/* Remove slot j, keeping every other key reachable (backward shift). */
static void table_del(struct table *t, size_t j)
{
    size_t m = t->cap - 1, i = j;
    t->s[j].used = 0;
    t->n--;
    for (;;) {
        i = (i + 1) & m;
        if (!t->s[i].used)
            return;
        size_t home = slot_hash(t->s[i].f.point_id, t->s[i].f.hash) & m;
        /* Can the entry at i move to the hole at j? Only if its home is not
         * cyclically in (j, i]. */
        if ((j < i && (home <= j || home > i)) || (j > i && home <= j && home > i)) {
            t->s[j] = t->s[i];
            t->s[i].used = 0;
            j = i;
        }
    }
}

/* ------------------------------------------------------- the best flows */

static uint64_t total_bytes(const struct an_flow *f) { return f->bytes_fwd + f->bytes_rev; }
static uint64_t total_pkts(const struct an_flow *f) { return f->pkts_fwd + f->pkts_rev; }

/* Is a better than b for the sort (ties broken by start, then key, so that
 * answers are deterministic)? */
static int better(enum an_sort s, const struct an_flow *a, const struct an_flow *b)
{
    uint64_t x = 0, y = 0;
    switch (s) {
    case AN_SORT_BYTES:
        x = total_bytes(a), y = total_bytes(b);
        break;
    case AN_SORT_PACKETS:
        x = total_pkts(a), y = total_pkts(b);
        break;
    case AN_SORT_DURATION:
        x = (uint64_t)(a->last - a->first), y = (uint64_t)(b->last - b->first);
        break;
    case AN_SORT_START:
        break;
    }
    if (x != y)
        return x > y;
    if (a->first != b->first)
        return a->first < b->first;
    if (a->point_id != b->point_id)
        return a->point_id < b->point_id;
    return a->hash < b->hash;
}

/* A heap of at most limit flows whose root is the worst kept. */
struct best {
    struct an_flow *h;
    size_t n, cap, limit;
    int oom;
    enum an_sort sort;
    uint64_t offered;
};

static void sift_down(struct best *b, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < b->n && better(b->sort, &b->h[w], &b->h[l]))
            w = l;
        if (r < b->n && better(b->sort, &b->h[w], &b->h[r]))
            w = r;
        if (w == i)
            return;
        struct an_flow t = b->h[i];
        b->h[i] = b->h[w];
        b->h[w] = t;
        i = w;
    }
}

static void best_offer(struct best *b, const struct an_flow *f)
{
    b->offered++;
    if (b->n < b->limit && b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        if (nc > b->limit)
            nc = b->limit;
        struct an_flow *nh = realloc(b->h, nc * sizeof *nh);
        if (!nh) {
            b->oom = 1;
            return;
        }
        b->h = nh;
        b->cap = nc;
    }
    if (b->n < b->limit) {
        size_t i = b->n++;
        b->h[i] = *f;
        while (i > 0) {
            size_t p = (i - 1) / 2;
            if (!better(b->sort, &b->h[p], &b->h[i]))
                break;
            struct an_flow t = b->h[i];
            b->h[i] = b->h[p];
            b->h[p] = t;
            i = p;
        }
    } else if (b->limit && better(b->sort, f, &b->h[0])) {
        b->h[0] = *f;
        sift_down(b, 0);
    }
}

static int cmp_flows(const void *a, const void *b, void *arg)
{
    enum an_sort s = *(const enum an_sort *)arg;
    return better(s, a, b) ? -1 : better(s, b, a) ? 1 : 0;
}

/* ------------------------------------------------------------ gathering */

struct gather {
    const struct an_flow_query *q;
    an_ffilter_t *ff;
    struct table t;
    struct best best;
    uint32_t point;
    const char *point_name;
    uint64_t records;
    int oom;
};

static int same_src(const struct an_flow *f, const struct idx_flowrec *r)
{
    size_t alen = f->family == 4 ? 4 : 16;
    return !memcmp(f->src, r->src, alen) && f->sport == r->sport;
}

static int take_record(void *arg, const struct idx_flowrec *r)
{
    struct gather *g = arg;
    g->records++;
    if (r->last_ts < g->q->from || r->first_ts >= g->q->to)
        return 0;
    if (g->q->community_id && strcmp(r->community_id, g->q->community_id))
        return 0;
    int isnew;
    struct slot *s = table_get(&g->t, g->point, r->hash, &isnew);
    if (!s) {
        g->oom = 1;
        return 1;
    }
    struct an_flow *f = &s->f;
    if (isnew) {
        memset(s, 0, sizeof *s);
        s->used = 1;
        snprintf(f->point, sizeof f->point, "%s", g->point_name);
        f->point_id = g->point;
        f->hash = r->hash;
        f->family = r->family;
        f->proto = r->proto;
        memcpy(f->src, r->src, 16);
        memcpy(f->dst, r->dst, 16);
        f->sport = r->sport;
        f->dport = r->dport;
        f->vlan = r->vlan;
        f->first = r->first_ts;
        f->last = r->last_ts;
        memcpy(f->community_id, r->community_id, sizeof f->community_id);
    }
    if (r->first_ts < f->first)
        f->first = r->first_ts;
    if (r->last_ts > f->last)
        f->last = r->last_ts;
    /* A later segment's record names as src whichever side it saw first. */
    if (isnew || same_src(f, r)) {
        f->pkts_fwd += r->pkts_fwd, f->bytes_fwd += r->bytes_fwd;
        f->pkts_rev += r->pkts_rev, f->bytes_rev += r->bytes_rev;
    } else {
        f->pkts_fwd += r->pkts_rev, f->bytes_fwd += r->bytes_rev;
        f->pkts_rev += r->pkts_fwd, f->bytes_rev += r->bytes_fwd;
    }
    f->tcp_flags |= r->tcp_flags;
    return 0;
}

/* Offer the flows that have ended: of point, with no packet since before
 * (all of them when all). */
static void flush(struct gather *g, uint32_t point, int64_t before, int all)
{
    for (size_t j = 0; j < g->t.cap;) {
        struct slot *s = &g->t.s[j];
        if (s->used && (all || (s->f.point_id == point && s->f.last < before))) {
            if (!g->ff || an_ffilter_match(g->ff, &s->f))
                best_offer(&g->best, &s->f);
            table_del(&g->t, j);
            continue; /* j now holds a shifted entry, or is empty */
        }
        j++;
    }
}

int an_flows_get(idx_t *ix, const struct an_flow_query *q, struct an_flows *out, char *err)
{
    struct gather g = {.q = q};
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0;
    uint32_t *ords = NULL;
    int rc;
    memset(out, 0, sizeof *out);
    if (q->from >= q->to)
        return rw_err(err, RW_EINPUT, "empty time window: 'from' must be before 'to'");
    if (q->limit > AN_FLOWS_LIMIT_MAX)
        return rw_err(err, RW_EINPUT, "limit %llu: at most %d flows per answer",
                      (unsigned long long)q->limit, AN_FLOWS_LIMIT_MAX);
    if (q->community_id && !an_cid_valid(q->community_id))
        return rw_err(err, RW_EINPUT,
                      "community_id '%.64s': expected '1:' and 28 base64 characters", q->community_id);
    if (q->filter && q->filter[0] && (rc = an_ffilter_new(q->filter, &g.ff, err)) < 0)
        return rc;
    g.best.sort = q->sort;
    g.best.limit = q->limit ? q->limit : AN_FLOWS_LIMIT_DEFAULT;
    if ((rc = an_points_selected(ix, q->points, &pts, &npts, err)) < 0)
        goto done;
    if ((rc = idx_seg_list(ix, q->from, q->to, &segs, &nsegs, err)) < 0)
        goto done;
    ords = calloc(npts + 1, sizeof *ords);
    if (!ords) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nsegs; i++) {
        size_t p;
        for (p = 0; p < npts && pts[p].id != segs[i].point; p++)
            ;
        if (p == npts)
            continue;
        g.point = pts[p].id;
        g.point_name = pts[p].name;
        /* Flows of this point idle for AN_FLOW_IDLE before this segment
         * have ended: the table holds the flows of the last minutes, not
         * of the whole window. */
        if (++ords[p] > 1 && segs[i].packets && segs[i].min_ts > RW_TIME_MIN + AN_FLOW_IDLE)
            flush(&g, g.point, segs[i].min_ts - AN_FLOW_IDLE, 0);
        if ((rc = idx_flows(ix, segs[i].id, take_record, &g, err)) < 0)
            goto done;
        if (g.oom || g.best.oom) {
            rc = rw_err(err, RW_ENOMEM, "out of memory");
            goto done;
        }
    }
    flush(&g, 0, 0, 1);
    if (g.best.oom) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    if (g.best.n) /* qsort_r's base must not be NULL, even for no element */
        qsort_r(g.best.h, g.best.n, sizeof *g.best.h, cmp_flows, (void *)&q->sort);
    out->flows = g.best.h;
    out->n = g.best.n;
    out->matched = g.best.offered;
    out->records = g.records;
    g.best.h = NULL;
    rc = 0;
done:
    free(g.best.h);
    free(g.t.s);
    free(pts);
    free(segs);
    free(ords);
    an_ffilter_free(g.ff);
    return rc;
}

void an_flows_free(struct an_flows *f)
{
    free(f->flows);
    memset(f, 0, sizeof *f);
}
