/* fedflows.c -- flows and top talkers across sensors, from ClickHouse
 * alone (rewindd --federate: /api/v1/flows and /api/v1/top). The rows of a
 * window (FINAL: a resent row counts once) are read, judged by the flow
 * filter, and added up here into the answers of analytics/analytics.h, so
 * that they are written as a sensor writes its own. Points are named
 * SENSOR:POINT. Unlike a sensor's own /flows, a 5-tuple's rows are one
 * flow however long the pauses between them (ClickHouse keeps no packet
 * times within a segment), and top talkers count the packets that flows
 * name (IP), never those no flow names. */
#include "export/ex_int.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/analytics.h"

static int unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

static int point_named(const char **points, const char *name)
{
    if (!points)
        return 1;
    for (int i = 0; points[i]; i++)
        if (!strcmp(points[i], name))
            return 1;
    return 0;
}

/* The id of point name in the table *pts (added when new: ids from 1). */
static int point_id(struct an_point_name **pts, size_t *npts, const char *name, uint32_t *id)
{
    for (size_t i = 0; i < *npts; i++)
        if (!strcmp((*pts)[i].name, name)) {
            *id = (*pts)[i].id;
            return 0;
        }
    struct an_point_name *p = realloc(*pts, (*npts + 2) * sizeof *p);
    if (!p)
        return -1;
    *pts = p;
    memset(&p[*npts], 0, sizeof *p);
    p[*npts].id = (uint32_t)(*npts + 1);
    snprintf(p[*npts].name, sizeof p[*npts].name, "%s", name);
    *id = p[*npts].id;
    (*npts)++;
    memset(&p[*npts], 0, sizeof *p); /* a terminator, whoever looks for one */
    return 0;
}

static const char *point_of(const struct an_point_name *pts, size_t npts, uint32_t id)
{
    for (size_t i = 0; i < npts; i++)
        if (pts[i].id == id)
            return pts[i].name;
    return "?";
}

/* The rows of [from, to) that match filter (a flow filter) on points;
 * their points SENSOR:POINT named in *pts. */
static int rows_get(const struct ex_sensors *ss, ex_get_fn get, int64_t from, int64_t to,
                    const char *filter, const char *cid, const char **points,
                    struct an_flow **out, size_t *nout, struct an_point_name **pts,
                    size_t *npts, char *err)
{
    an_ffilter_t *ff = NULL;
    struct ex_mem m = {.max = 1u << 30};
    struct an_flow *rows = NULL;
    size_t n = 0, cap = 0;
    char sql[1024];
    int rc;
    *out = NULL;
    *nout = 0;
    if (!ss->clickhouse[0])
        return rw_err(err, RW_EINPUT, "the sensors file names no ClickHouse: flows across "
                      "sensors are answered from it alone");
    if (cid && !an_cid_valid(cid))
        return rw_err(err, RW_EINPUT, "parameter 'community_id': '%s' is not a Community ID v1",
                      cid);
    if (filter && filter[0] && (rc = an_ffilter_new(filter, &ff, err)) < 0)
        return rw_errctx(err, rc, "parameter 'filter' (across sensors, a flow filter)");
    int k = snprintf(sql, sizeof sql, "SELECT sensor, point, family, proto, hex(src), hex(dst), "
                     "sport, dport, vlan, first_ns, last_ns, packets_fwd, bytes_fwd, packets_rev, "
                     "bytes_rev, tcp_flags, community_id FROM flows FINAL WHERE last_ns >= %lld "
                     "AND first_ns < %lld", (long long)from, (long long)to);
    if (cid)
        k += snprintf(sql + k, sizeof sql - (size_t)k, " AND community_id = '%s'", cid);
    snprintf(sql + k, sizeof sql - (size_t)k, " FORMAT TabSeparated");
    if ((rc = ex_ch_select(ss, get, sql, ex_mem_sink, &m, err)) < 0)
        goto out;
    for (char *line = m.p, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        char sensor[65], point[65], src[40], dst[40], cidv[48];
        unsigned fam, proto, sp, dp, vlan, flags;
        long long first, last;
        unsigned long long pf, bf, pr, br;
        if (sscanf(line, "%64[^\t]\t%64[^\t]\t%u\t%u\t%32s\t%32s\t%u\t%u\t%u\t%lld\t%lld\t%llu\t%llu"
                         "\t%llu\t%llu\t%u\t%47s", sensor, point, &fam, &proto, src, dst, &sp, &dp,
                   &vlan, &first, &last, &pf, &bf, &pr, &br, &flags, cidv) != 17 ||
            (fam != 4 && fam != 6)) {
            rc = rw_err(err, RW_EIO, "ClickHouse %s: an unexpected row '%.80s'", ss->clickhouse,
                        line);
            goto out;
        }
        struct an_flow f;
        uint8_t a[16], b[16];
        memset(&f, 0, sizeof f);
        if (unhex(src, a, 16) < 0 || unhex(dst, b, 16) < 0) {
            rc = rw_err(err, RW_EIO, "ClickHouse %s: an unexpected address", ss->clickhouse);
            goto out;
        }
        char pname[65];
        snprintf(pname, sizeof pname, "%.32s:%.31s", sensor, point);
        if (!point_named(points, pname))
            continue;
        if (point_id(pts, npts, pname, &f.point_id) < 0) {
            rc = rw_err(err, RW_ENOMEM, "out of memory");
            goto out;
        }
        f.family = (uint8_t)fam;
        f.proto = (uint8_t)proto;
        memcpy(f.src, fam == 4 ? a + 12 : a, fam == 4 ? 4 : 16);
        memcpy(f.dst, fam == 4 ? b + 12 : b, fam == 4 ? 4 : 16);
        f.sport = (uint16_t)sp;
        f.dport = (uint16_t)dp;
        f.vlan = (uint16_t)vlan;
        f.first = first;
        f.last = last;
        f.pkts_fwd = pf;
        f.bytes_fwd = bf;
        f.pkts_rev = pr;
        f.bytes_rev = br;
        f.tcp_flags = (uint8_t)flags;
        snprintf(f.community_id, sizeof f.community_id, "%.39s", cidv);
        if (ff && !an_ffilter_match(ff, &f))
            continue;
        if (n == cap) {
            size_t nc = cap ? cap * 2 : 1024;
            struct an_flow *r = realloc(rows, nc * sizeof *r);
            if (!r) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                goto out;
            }
            rows = r;
            cap = nc;
        }
        rows[n++] = f;
    }
    *out = rows;
    *nout = n;
    rows = NULL;
    rc = 0;
out:
    an_ffilter_free(ff);
    free(rows);
    free(m.p);
    return rc;
}

/* ---- flows ---- */

static int by_identity(const void *x, const void *y)
{
    const struct an_flow *a = x, *b = y;
    int c = a->point_id < b->point_id ? -1 : a->point_id > b->point_id;
    if (!c)
        c = strcmp(a->community_id, b->community_id);
    if (!c)
        c = (int)a->vlan - (int)b->vlan;
    if (!c)
        c = a->first < b->first ? -1 : a->first > b->first;
    return c;
}

static int by_sort(const void *x, const void *y, void *arg)
{
    const struct an_flow *a = x, *b = y;
    uint64_t va, vb;
    switch (*(const enum an_sort *)arg) {
    case AN_SORT_START: return a->first < b->first ? -1 : a->first > b->first;
    case AN_SORT_PACKETS: va = a->pkts_fwd + a->pkts_rev, vb = b->pkts_fwd + b->pkts_rev; break;
    case AN_SORT_DURATION:
        va = (uint64_t)(a->last - a->first), vb = (uint64_t)(b->last - b->first);
        break;
    default: va = a->bytes_fwd + a->bytes_rev, vb = b->bytes_fwd + b->bytes_rev; break;
    }
    return va > vb ? -1 : va < vb;
}

int ex_fed_flows(const struct ex_sensors *ss, ex_get_fn get, const struct an_flow_query *q,
                 struct an_flows *out, char *err)
{
    struct an_flow *rows;
    size_t n, w = 0;
    memset(out, 0, sizeof *out);
    int64_t to = q->to == RW_TIME_MAX ? INT64_MAX : q->to;
    struct an_point_name *pts = NULL;
    size_t npts = 0;
    int rc = rows_get(ss, get, q->from, to, q->filter, q->community_id, q->points, &rows, &n,
                      &pts, &npts, err);
    if (rc < 0) {
        free(pts);
        return rc;
    }
    if (n) /* rows is NULL for none */
        qsort(rows, n, sizeof *rows, by_identity);
    for (size_t i = 0; i < n; i++) {
        struct an_flow *r = &rows[i], *f = w ? &rows[w - 1] : NULL;
        if (f && f->point_id == r->point_id && !strcmp(f->community_id, r->community_id) &&
            f->vlan == r->vlan) {
            size_t al = f->family == 4 ? 4 : 16;
            int same = !memcmp(f->src, r->src, al) &&
                       (f->proto == 1 || f->proto == 58 || f->sport == r->sport);
            f->pkts_fwd += same ? r->pkts_fwd : r->pkts_rev;
            f->bytes_fwd += same ? r->bytes_fwd : r->bytes_rev;
            f->pkts_rev += same ? r->pkts_rev : r->pkts_fwd;
            f->bytes_rev += same ? r->bytes_rev : r->bytes_fwd;
            if (r->last > f->last)
                f->last = r->last;
            f->tcp_flags |= r->tcp_flags;
            continue;
        }
        rows[w++] = *r;
    }
    if (w)
        qsort_r(rows, w, sizeof *rows, by_sort, (void *)&q->sort);
    uint64_t lim = q->limit ? q->limit : AN_FLOWS_LIMIT_DEFAULT;
    out->flows = rows;
    out->points = pts;
    out->npoints = npts;
    out->matched = w;
    out->records = n;
    out->n = w < lim ? w : (size_t)lim;
    return 0;
}

/* ---- top talkers ---- */

static int by_key(const void *x, const void *y)
{
    const struct an_talker *a = x, *b = y;
    int c = memcmp(a, b, offsetof(struct an_talker, packets));
    return c;
}
static int by_metric(const void *x, const void *y, void *arg)
{
    const struct an_talker *a = x, *b = y;
    enum an_metric m = *(const enum an_metric *)arg;
    uint64_t va = m == AN_METRIC_PACKETS ? a->packets : a->bytes;
    uint64_t vb = m == AN_METRIC_PACKETS ? b->packets : b->bytes;
    return va > vb ? -1 : va < vb;
}

int ex_fed_top(const struct ex_sensors *ss, ex_get_fn get, const struct an_top_query *q,
               struct an_top *out, char *err)
{
    struct an_flow *rows;
    size_t n, nt = 0;
    memset(out, 0, sizeof *out);
    int64_t to = q->to == RW_TIME_MAX ? INT64_MAX : q->to;
    struct an_point_name *pts = NULL;
    size_t npts = 0;
    int rc = rows_get(ss, get, q->from, to, q->filter, NULL, q->points, &rows, &n, &pts, &npts,
                      err);
    if (rc < 0) {
        free(pts);
        return rc;
    }
    struct an_talker *t = calloc(n * 2 + 1, sizeof *t);
    if (!t) {
        free(rows);
        free(pts);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < n; i++) {
        const struct an_flow *r = &rows[i];
        uint64_t pk = r->pkts_fwd + r->pkts_rev, by = r->bytes_fwd + r->bytes_rev;
        size_t al = r->family == 4 ? 4 : 16;
        out->packets += pk;
        out->bytes += by;
#define ADD(fill, P, B)                                   \
    do {                                                  \
        struct an_talker *x = &t[nt++];                   \
        memset(x, 0, sizeof *x);                          \
        x->family = r->family;                            \
        fill;                                             \
        x->packets = (P);                                 \
        x->bytes = (B);                                   \
    } while (0)
        switch (q->by) {
        case AN_BY_SRC:
        case AN_BY_DST: {
            int src = q->by == AN_BY_SRC;
            ADD(memcpy(x->a, r->src, al), src ? r->pkts_fwd : r->pkts_rev,
                src ? r->bytes_fwd : r->bytes_rev);
            ADD(memcpy(x->a, r->dst, al), src ? r->pkts_rev : r->pkts_fwd,
                src ? r->bytes_rev : r->bytes_fwd);
            break;
        }
        case AN_BY_PAIR: {
            int lo = memcmp(r->src, r->dst, al) <= 0;
            ADD((memcpy(x->a, lo ? r->src : r->dst, al), memcpy(x->b, lo ? r->dst : r->src, al)),
                pk, by);
            break;
        }
        case AN_BY_PORT:
            if (r->proto == 6 || r->proto == 17 || r->proto == 132) {
                ADD((x->family = 0, x->port = r->sport), pk, by);
                if (r->dport != r->sport)
                    ADD((x->family = 0, x->port = r->dport), pk, by);
            }
            break;
        case AN_BY_PROTO: ADD((x->family = 0, x->proto = r->proto), pk, by); break;
        case AN_BY_POINT: ADD((x->family = 0, snprintf(x->point, sizeof x->point, "%s",
                                                        point_of(pts, npts, r->point_id))),
                              pk, by); break;
        }
#undef ADD
    }
    free(rows);
    free(pts);
    qsort(t, nt, sizeof *t, by_key);
    size_t w = 0;
    for (size_t i = 0; i < nt; i++) {
        if (w && !by_key(&t[w - 1], &t[i])) {
            t[w - 1].packets += t[i].packets;
            t[w - 1].bytes += t[i].bytes;
            continue;
        }
        t[w++] = t[i];
    }
    size_t k = 0;
    for (size_t i = 0; i < w; i++) /* talkers that sent or received nothing: none */
        if (t[i].packets)
            t[k++] = t[i];
    qsort_r(t, k, sizeof *t, by_metric, (void *)&q->metric);
    uint64_t lim = q->limit ? q->limit : AN_TOP_LIMIT_DEFAULT;
    out->rows = t;
    out->keys = k;
    out->n = k < lim ? k : (size_t)lim;
    return 0;
}
