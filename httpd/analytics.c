/* analytics.c -- /api/v1/flows, /api/v1/top and /api/v1/timeline: the
 * answers of analytics/analytics.h as JSON or CSV, each on the audit trail
 * (flows say who talked to whom: DESIGN.md invariant 8). */
#include <stdlib.h>
#include <string.h>

#include "analytics/analytics.h"
#include "export/export.h"
#include "httpd/httpd_int.h"

int hd_cid_filter(struct httpd *h, const char *cid, const struct qry_spec *spec, char **out,
                  char *err)
{
    char *cf = NULL;
    int rc = an_cid_filter(h->ix, cid, spec->from, spec->to, spec->points, &cf, err);
    *out = NULL;
    if (rc < 0)
        return rw_errctx(err, rc, "parameter 'community_id'");
    if (!spec->filter || !spec->filter[0]) {
        *out = cf;
        return 0;
    }
    size_t n = strlen(cf) + strlen(spec->filter) + 16;
    if (!(*out = malloc(n))) {
        free(cf);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    snprintf(*out, n, "(%s) and (%s)", cf, spec->filter);
    free(cf);
    return 0;
}

/* The record of an analytics answer (or of its refusal: status >= 400). */
static void audit_answer(struct httpd *h, const struct params *p, const char *path, int64_t from,
                         int64_t to, const char *filter, const char **points, int status,
                         int64_t start, const char *detail)
{
    struct audit_rec ar;
    audit_rec_init(&ar);
    ar.time_ns = start;
    ar.from_ns = from;
    ar.to_ns = to;
    ar.filter = filter;
    ar.points = points;
    ar.status = status;
    ar.duration_ns = rw_now_ns() - start;
    ar.detail = detail;
    hd_audit(h, p, path, &ar);
}

/* The points named by the request into points (NULL-terminated); NULL when
 * none was named. */
static const char **points_of(const struct params *p, const char **points)
{
    int n = 0;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->k[i], "point"))
            points[n++] = p->v[i];
    points[n] = NULL;
    return n ? points : NULL;
}

enum kind { FLOWS, TOP, TIMELINE };

/* A flows answer, formatted a few hundred rows at a time as the client
 * reads: up to a million flows never sit in memory as text. */
struct fstream {
    struct an_flows r;
    struct an_flow_query q;
    char *filter, *cid; /* the query's strings, ours */
    enum an_format fmt;
    size_t next;        /* next row */
    int stage;          /* 0 head, 1 rows, 2 tail, 3 done */
    char *pend;
    size_t plen, poff;
};

static ssize_t fs_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct fstream *s = cls;
    (void)pos;
    while (s->poff == s->plen) {
        free(s->pend);
        s->pend = NULL;
        s->plen = s->poff = 0;
        if (s->stage == 3)
            return MHD_CONTENT_READER_END_OF_STREAM;
        FILE *f = open_memstream(&s->pend, &s->plen);
        if (!f)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (s->stage == 0) {
            an_flows_write_head(f, &s->q, &s->r, s->fmt);
            s->stage = 1;
        } else if (s->stage == 1) {
            an_flows_write_rows(f, &s->r, s->next, s->next + 256, s->fmt);
            s->next += 256;
            if (s->next >= s->r.n)
                s->stage = 2;
        } else {
            an_flows_write_tail(f, s->fmt);
            s->stage = 3;
        }
        if (fclose(f) != 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    size_t n = s->plen - s->poff < max ? s->plen - s->poff : max;
    memcpy(buf, s->pend + s->poff, n);
    s->poff += n;
    return (ssize_t)n;
}

static void fs_free(void *cls)
{
    struct fstream *s = cls;
    an_flows_free(&s->r);
    free(s->filter);
    free(s->cid);
    free(s->pend);
    free(s);
}

/* Queue the answer of a flows query whose result r is ready (taken). */
static enum MHD_Result send_flows(struct MHD_Connection *c, const struct an_flow_query *q,
                                  struct an_flows *r, enum an_format fmt)
{
    struct fstream *s = calloc(1, sizeof *s);
    if (!s) {
        an_flows_free(r);
        return MHD_NO;
    }
    s->r = *r;
    s->q = *q;
    s->fmt = fmt;
    s->filter = q->filter ? strdup(q->filter) : NULL;
    s->cid = q->community_id ? strdup(q->community_id) : NULL;
    s->q.filter = s->filter;
    s->q.community_id = s->cid;
    s->q.points = NULL; /* not written */
    if ((q->filter && !s->filter) || (q->community_id && !s->cid)) {
        fs_free(s);
        return MHD_NO;
    }
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 << 10, fs_read, s, fs_free);
    if (!resp) {
        fs_free(s);
        return MHD_NO;
    }
    MHD_add_response_header(resp, "Content-Type",
                            fmt == AN_CSV ? "text/csv; charset=utf-8" : "application/json");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    enum MHD_Result ret = MHD_queue_response(c, 200, resp);
    MHD_destroy_response(resp);
    return ret;
}

static enum MHD_Result answer(struct httpd *h, struct MHD_Connection *c, const struct params *p,
                              enum kind kind)
{
    static const char *const allowed[][12] = {
        {"from", "to", "filter", "point", "sort", "limit", "format", "community_id", NULL},
        {"from", "to", "filter", "point", "by", "metric", "limit", "format", NULL},
        {"from", "to", "filter", "point", "step", "format", NULL}};
    static const char *const paths[] = {"/api/v1/flows", "/api/v1/top", "/api/v1/timeline"};
    char err[RW_ERRSZ];
    const char *points[MAX_PARAMS + 1], **pts = points_of(p, points);
    const char *bad = hd_unknown_param(p, allowed[kind]), *v;
    const char *filter = hd_param(p, "filter");
    int64_t from = RW_TIME_MIN, to = RW_TIME_MAX, start = rw_now_ns();
    enum an_format fmt;
    int rc = 0;
    if (bad)
        return hd_send_unknown_param(h, c, paths[kind], bad, allowed[kind]);
    if (hd_parse_window(p, &from, &to, err) < 0 ||
        an_format_parse(hd_param(p, "format"), &fmt, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return hd_send_error(h, c, 500, "internal", "out of memory");
    const char *param_bad = NULL; /* the parameter a bad input is in, if known */
    if (kind == FLOWS) {
        struct an_flow_query q = {.from = from, .to = to, .filter = filter, .points = pts,
                                  .community_id = hd_param(p, "community_id")};
        struct an_flows r;
        if ((v = hd_param(p, "sort")) && (rc = an_sort_parse(v, &q.sort, err)) < 0)
            param_bad = "sort";
        else if ((rc = hd_parse_count("limit", hd_param(p, "limit"), 0, &q.limit, err)) < 0)
            param_bad = "";
        else if ((rc = h->federate ? ex_fed_flows(h->federate, ex_http_get, &q, &r, err)
                                   : an_flows_get(h->ix, &q, &r, err)) == 0) {
            fclose(f);
            free(buf);
            audit_answer(h, p, paths[kind], from, to, filter, pts, 200, start, NULL);
            return send_flows(c, &q, &r, fmt);
        }
    } else if (kind == TOP) {
        struct an_top_query q = {.from = from, .to = to, .filter = filter, .points = pts};
        struct an_top t;
        if ((v = hd_param(p, "by")) && (rc = an_by_parse(v, &q.by, err)) < 0)
            param_bad = "by";
        else if ((v = hd_param(p, "metric")) && (rc = an_metric_parse(v, &q.metric, err)) < 0)
            param_bad = "metric";
        else if ((rc = hd_parse_count("limit", hd_param(p, "limit"), 0, &q.limit, err)) < 0)
            param_bad = "";
        else if ((rc = h->federate ? ex_fed_top(h->federate, ex_http_get, &q, &t, err)
                                   : an_top_get(h->ix, &q, &t, err)) == 0) {
            rc = an_top_write(f, &q, &t, fmt) < 0 ? rw_err(err, RW_ENOMEM, "out of memory") : 0;
            an_top_free(&t);
        }
    } else {
        struct an_tl_query q = {.from = from, .to = to, .filter = filter, .points = pts,
                                .step = RW_NS_PER_SEC};
        struct an_timeline t;
        if ((v = hd_param(p, "step")) && (rc = rw_duration_parse(v, &q.step, err)) < 0)
            param_bad = "step";
        else if ((rc = an_timeline_get(h->ix, &q, &t, err)) == 0) {
            rc = an_timeline_write(f, &t, fmt) < 0 ? rw_err(err, RW_ENOMEM, "out of memory") : 0;
            an_timeline_free(&t);
        }
    }
    fclose(f);
    if (rc < 0) {
        free(buf);
        int status = rc == RW_EINPUT ? 400 : rc == RW_ENOTFOUND ? 404 : 500;
        audit_answer(h, p, paths[kind], from, to, filter, pts, status, start, err);
        if (param_bad && param_bad[0])
            rw_errctx(err, rc, "parameter '%s'", param_bad);
        return hd_send_error(h, c, (unsigned)status,
                             status == 400 ? "bad_parameter"
                             : status == 404 ? "not_found" : "internal", "%s", err);
    }
    audit_answer(h, p, paths[kind], from, to, filter, pts, 200, start, NULL);
    enum MHD_Result ret = hd_send_text(
        c, 200, fmt == AN_CSV ? "text/csv; charset=utf-8" : "application/json", buf);
    free(buf);
    return ret;
}

enum MHD_Result hd_route_flows(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    return answer(h, c, p, FLOWS);
}

enum MHD_Result hd_route_top(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    return answer(h, c, p, TOP);
}

enum MHD_Result hd_route_timeline(struct httpd *h, struct MHD_Connection *c,
                                  const struct params *p)
{
    return answer(h, c, p, TIMELINE);
}
