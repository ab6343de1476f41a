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
    char err[RW_ERRSZ], route[96];
    if (!h->audit)
        return;
    snprintf(route, sizeof route, "%s %s", p->head ? "HEAD" : "GET", path);
    audit_rec_init(&ar);
    ar.time_ns = start;
    ar.principal = p->who.name;
    ar.role = auth_role_name(p->who.role);
    ar.method = p->who.method;
    ar.client = p->client;
    ar.route = route;
    ar.from_ns = from;
    ar.to_ns = to;
    ar.filter = filter;
    ar.points = points;
    ar.status = status;
    ar.duration_ns = rw_now_ns() - start;
    ar.detail = detail;
    if (audit_append(h->audit, &ar, err) < 0)
        rw_error("audit trail: %s", err);
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
            rc = an_flows_write(f, &q, &r, fmt) < 0 ? rw_err(err, RW_ENOMEM, "out of memory") : 0;
            an_flows_free(&r);
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
