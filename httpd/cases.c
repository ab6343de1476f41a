/* cases.c -- the lawful intercept routes: /api/v1/cases (list, create) and
 * /api/v1/cases/ID (show, change, end). Admin changes cases; an agency
 * token sees its own case and nothing else (man/rewindd.8, LAWFUL
 * INTERCEPT). The case store (intercept/intercept.h) checks, stores,
 * preserves and audits; this file maps its answers to HTTP. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd/httpd_int.h"
#include "intercept/intercept.h"

#define CASES_PATH "/api/v1/cases"

/* A refused change or look, on the record. */
static void audit_refused(struct httpd *h, const struct params *p, const char *id, int status,
                          const char *why)
{
    struct audit_rec r;
    struct audit_param ap = {"case", id};
    char err[RW_ERRSZ], route[96];
    if (!h->audit)
        return;
    snprintf(route, sizeof route, "%s %s%s%s", p->method, CASES_PATH, id ? "/" : "",
             id ? id : "");
    audit_rec_init(&r);
    r.principal = p->who.name;
    r.role = auth_role_name(p->who.role);
    r.method = p->who.method;
    r.client = p->client;
    r.route = route;
    r.params = id && ic_id_ok(id) ? &ap : NULL;
    r.nparams = r.params ? 1 : 0;
    r.status = status;
    r.detail = why;
    if (audit_append(h->audit, &r, err) < 0)
        rw_error("audit trail: %s", err);
}

/* A case as the answer's body (status), with Location when made. */
static enum MHD_Result send_case(struct MHD_Connection *c, unsigned status,
                                 const struct ic_case *k)
{
    char *s = ic_case_json(k, rw_now_ns()), loc[128];
    if (!s)
        return MHD_NO;
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return MHD_NO;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    snprintf(loc, sizeof loc, CASES_PATH "/%s", k->id);
    enum MHD_Result r = hd_send_body(c, status, "application/json", t,
                                     status == 201 ? "Location" : NULL, loc);
    free(t);
    return r;
}

static enum MHD_Result no_store(struct httpd *h, struct MHD_Connection *c)
{
    return hd_send_error(h, c, 503, "unavailable", "this rewindd keeps no cases");
}

/* Changes need the role admin; an agency may only look. */
static enum MHD_Result need_admin(struct httpd *h, struct MHD_Connection *c,
                                  const struct params *p, const char *id)
{
    audit_refused(h, p, id, 403, "refused: changing cases needs the role admin");
    return hd_send_error(h, c, 403, "forbidden", "%s %s needs the role admin; %s has the role %s",
                         p->method, p->url, p->who.name, auth_role_name(p->who.role));
}

static struct ic_who who_of(const struct params *p, char *route, size_t n)
{
    snprintf(route, n, "%s %s", p->method, p->url);
    return (struct ic_who){p->who.name, auth_role_name(p->who.role), p->who.method, p->client,
                           route};
}

/* The status and code of a failed change. */
static enum MHD_Result change_failed(struct httpd *h, struct MHD_Connection *c, int rc,
                                     const char *err)
{
    if (rc == RW_EINPUT)
        return hd_send_error(h, c, 400, "bad_case", "%s", err);
    if (rc == RW_ESTATE)
        return hd_send_error(h, c, 409, "conflict", "%s", err);
    return hd_send_error(h, c, 500, "internal", "%s", err);
}

enum MHD_Result hd_route_cases(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    static const char *const allowed[] = {NULL};
    char err[RW_ERRSZ], route[128];
    const char *bad = hd_unknown_param(p, allowed);
    if (bad)
        return hd_send_unknown_param(h, c, CASES_PATH, bad, allowed);
    if (!h->cases)
        return no_store(h, c);
    if (!strcmp(p->method, "POST")) {
        struct ic_case *k;
        if (p->who.role != AUTH_ADMIN)
            return need_admin(h, c, p, NULL);
        if (p->body_too_big)
            return hd_send_error(h, c, 413, "too_large", "body: a case is at most %u bytes",
                                 IC_BODY_MAX);
        if (!(k = malloc(sizeof *k)))
            return hd_send_error(h, c, 500, "internal", "out of memory");
        struct ic_who w = who_of(p, route, sizeof route);
        int rc = ic_create(h->cases, p->body, p->body_len, &w, k, err);
        if (rc == 0)
            rw_info("case %s created by %s: %llu packets preserved", k->id, p->who.name,
                    (unsigned long long)k->retro_packets);
        enum MHD_Result r = rc < 0 ? change_failed(h, c, rc, err) : send_case(c, 201, k);
        free(k);
        return r;
    }
    struct ic_case *v = NULL;
    size_t n = 0;
    if (ic_list(h->cases, &v, &n, err) < 0)
        return hd_send_error(h, c, 500, "internal", "%s", err);
    /* One JSON document of the cases' own documents, an agency's only. */
    size_t cap = 64, len = 0;
    char *out = malloc(cap);
    int first = 1;
    if (out)
        len = (size_t)snprintf(out, cap, "{\"cases\":[");
    for (size_t i = 0; out && i < n; i++) {
        if (p->who.role == AUTH_AGENCY && strcmp(v[i].id, p->who.case_id))
            continue;
        char *s = ic_case_json(&v[i], rw_now_ns());
        size_t sl = s ? strlen(s) : 0;
        char *no = s ? realloc(out, len + sl + 8) : NULL;
        if (!no) {
            free(s);
            free(out);
            out = NULL;
            break;
        }
        out = no;
        len += (size_t)sprintf(out + len, "%s%s", first ? "" : ",", s);
        first = 0;
        free(s);
    }
    free(v);
    char *no = out ? realloc(out, len + 4) : NULL;
    if (!no) {
        free(out);
        return hd_send_error(h, c, 500, "internal", "out of memory");
    }
    strcpy(no + len, "]}\n");
    enum MHD_Result r = hd_send_text(c, 200, "application/json", no);
    free(no);
    return r;
}

enum MHD_Result hd_route_case(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    static const char *const allowed[] = {NULL};
    char err[RW_ERRSZ], route[160];
    const char *id = p->url + strlen(CASES_PATH "/");
    const char *bad = hd_unknown_param(p, allowed);
    struct ic_case *k;
    int rc, found = 1;
    if (bad)
        return hd_send_unknown_param(h, c, CASES_PATH "/ID", bad, allowed);
    if (!h->cases)
        return no_store(h, c);
    if (!ic_id_ok(id))
        return hd_send_error(h, c, 404, "not_found", "no case '%.64s': a case id is 1 to %d of "
                             "letters, digits, '.', '_', '-'", id, IC_ID_MAX);
    if (p->who.role == AUTH_AGENCY && strcmp(id, p->who.case_id)) {
        audit_refused(h, p, id, 403, "refused: an agency sees its own case only");
        return hd_send_error(h, c, 403, "forbidden", "%s may see its own case only (%s)",
                             p->who.name, p->who.case_id[0] ? p->who.case_id : "none");
    }
    int change = strcmp(p->method, "GET") && strcmp(p->method, "HEAD");
    if (change && p->who.role != AUTH_ADMIN)
        return need_admin(h, c, p, id);
    if (p->body_too_big)
        return hd_send_error(h, c, 413, "too_large", "body: at most %u bytes", IC_BODY_MAX);
    if (!(k = malloc(sizeof *k)))
        return hd_send_error(h, c, 500, "internal", "out of memory");
    struct ic_who w = who_of(p, route, sizeof route);
    if (!strcmp(p->method, "PATCH"))
        rc = ic_patch(h->cases, id, p->body, p->body_len, &w, k, &found, err);
    else if (!strcmp(p->method, "DELETE"))
        rc = ic_end(h->cases, id, &w, k, &found, err);
    else
        found = rc = ic_get(h->cases, id, k, err);
    enum MHD_Result r;
    if (rc < 0)
        r = change_failed(h, c, rc == RW_EINPUT || rc == RW_ESTATE ? rc : RW_EIO, err);
    else if (!found)
        r = hd_send_error(h, c, 404, "not_found", "no case %s (GET " CASES_PATH " lists them)",
                          id);
    else
        r = send_case(c, 200, k);
    if (rc >= 0 && found && change)
        rw_info("case %s %s by %s", id, strcmp(p->method, "DELETE") ? "changed" : "ended",
                p->who.name);
    free(k);
    return r;
}

/* Live intercept in /metrics: per case, packets spooled and dropped, the
 * last synced sequence number, spool use against its quota and the alarm. */
void hd_cases_metrics(struct httpd *h, FILE *f)
{
    struct ic_live_stat st[256];
    size_t n = h->cases ? ic_live_stats(h->cases, st, 256) : 0;
    static const char *const fam[][3] = {
        {"rewind_intercept_packets_total", "counter", "Packets spooled for the case (this run)."},
        {"rewind_intercept_dropped_total", "counter",
         "Packets the case took but its spool could not (quota or buffer full; this run)."},
        {"rewind_intercept_sequence", "gauge", "The case's last spooled and synced sequence "
                                               "number."},
        {"rewind_intercept_spool_bytes", "gauge", "Bytes of the case's spool."},
        {"rewind_intercept_spool_quota_bytes", "gauge", "The case's spool quota."},
        {"rewind_intercept_spool_alarm", "gauge",
         "1 while the case's spool is above 80% of its quota."},
        {"rewind_intercept_active", "gauge", "1 while the case is intercepted."},
        {"rewind_intercept_delivered_sequence", "gauge",
         "The highest sequence number pull delivery has sent (the lag: "
         "rewind_intercept_sequence minus this)."},
        {"rewind_intercept_pull_connections_total", "counter",
         "Pull delivery connections made (this run): reconnects show here."},
        {"rewind_intercept_push_sequence", "gauge",
         "etsi push: the highest sequence number written to the agency's link."},
        {"rewind_intercept_push_reconnects_total", "counter",
         "etsi push: reconnections to the agency (this run)."},
        {"rewind_intercept_push_connected", "gauge",
         "etsi push: 1 while connected to the agency."},
        {"rewind_intercept_push_failures_total", "counter",
         "etsi push: connection attempts that failed, TLS handshakes included (this run; why: "
         "/api/v1/status)."}};
    if (!n)
        return;
    for (int m = 0; m < 13; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fam[m][0], fam[m][2], fam[m][0], fam[m][1]);
        for (size_t i = 0; i < n; i++) {
            if (m >= 9 && !st[i].push)
                continue;
            uint64_t v = m == 12 ? st[i].push_failures : m == 9 ? st[i].push_sent : m == 10 ? st[i].push_reconnects
                         : m == 11 ? (uint64_t)st[i].push_connected : m == 0 ? st[i].teed : m == 1 ? st[i].dropped : m == 2 ? st[i].durable
                         : m == 3 ? st[i].spool_bytes : m == 4 ? st[i].quota
                         : m == 5 ? (uint64_t)st[i].alarm : m == 6 ? (uint64_t)st[i].active
                         : m == 7 ? st[i].delivered : st[i].connections;
            fprintf(f, "%s{case=\"%s\"} %llu\n", fam[m][0], st[i].id, (unsigned long long)v);
        }
    }
}

/* The same in /api/v1/status: "intercept": [{...}] (nothing without cases). */
void hd_cases_status(struct httpd *h, json_t *j)
{
    struct ic_live_stat st[256];
    size_t n = h->cases ? ic_live_stats(h->cases, st, 256) : 0;
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            arr, json_pack("{s:s,s:b,s:I,s:I,s:I,s:I,s:I,s:b,s:I,s:I}", "case", st[i].id,
                           "active", st[i].active, "packets", (json_int_t)st[i].teed, "dropped",
                           (json_int_t)st[i].dropped, "sequence", (json_int_t)st[i].durable,
                           "spool_bytes", (json_int_t)st[i].spool_bytes, "spool_quota_bytes",
                           (json_int_t)st[i].quota, "alarm", st[i].alarm, "delivered",
                           (json_int_t)st[i].delivered, "pull_connections",
                           (json_int_t)st[i].connections));
    for (size_t i = 0; i < n; i++)
        if (st[i].push)
            json_object_set_new(json_array_get(arr, i), "push",
                                json_pack("{s:I,s:I,s:b,s:I,s:I,s:s}", "sequence",
                                          (json_int_t)st[i].push_sent, "reconnects",
                                          (json_int_t)st[i].push_reconnects, "connected",
                                          st[i].push_connected, "not_ip",
                                          (json_int_t)st[i].push_skipped, "failures",
                                          (json_int_t)st[i].push_failures, "error",
                                          st[i].push_error));
    json_object_set_new(j, "intercept", arr);
}
