/* identities.c -- /api/v1/identities: subscriber identities (who held
 * which address when) posted as JSON lines, for DHCP lease logs or a
 * RADIUS server's detail file, and a user's intervals read back
 * (intercept/intercept.h; man/rewindd.8, LAWFUL INTERCEPT). Admin only. */
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "httpd/httpd_int.h"
#include "index/index.h"
#include "intercept/intercept.h"

#define IDENT_PATH "/api/v1/identities"

/* An interval as the API writes it. */
json_t *hd_ident_json(const struct idx_ident *r)
{
    char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN + 8];
    inet_ntop(r->family == 4 ? AF_INET : AF_INET6, r->addr, a, sizeof a);
    json_t *o = json_pack("{s:s}", "user", r->user);
    if (r->plen == (r->family == 4 ? 32 : 128)) {
        json_object_set_new(o, "ip", json_string(a));
    } else {
        snprintf(b, sizeof b, "%s/%u", a, r->plen);
        json_object_set_new(o, "prefix", json_string(b));
    }
    json_object_set_new(o, "start", hd_jtime(r->start));
    if (r->end != RW_TIME_MAX)
        json_object_set_new(o, "end", hd_jtime(r->end));
    if (r->port_lo || r->port_hi) {
        snprintf(b, sizeof b, "%u-%u", r->port_lo, r->port_hi);
        json_object_set_new(o, "ports", json_string(b));
    }
    if (r->session[0])
        json_object_set_new(o, "session", json_string(r->session));
    if (r->station[0])
        json_object_set_new(o, "station", json_string(r->station));
    json_object_set_new(o, "source", json_string(r->source));
    return o;
}

static void audit_post(struct httpd *h, const struct params *p, int status, uint64_t added,
                       const char *why)
{
    struct audit_rec r;
    char err[RW_ERRSZ], detail[RW_ERRSZ + 64];
    if (!h->audit)
        return;
    if (status == 200)
        snprintf(detail, sizeof detail, "%llu identity intervals opened",
                 (unsigned long long)added);
    else
        snprintf(detail, sizeof detail, "refused: %s", why);
    audit_rec_init(&r);
    r.principal = p->who.name;
    r.role = auth_role_name(p->who.role);
    r.method = p->who.method;
    r.client = p->client;
    r.route = "POST " IDENT_PATH;
    r.status = status;
    r.detail = detail;
    if (audit_append(h->audit, &r, err) < 0)
        rw_error("audit trail: %s", err);
}

enum MHD_Result hd_route_identities(struct httpd *h, struct MHD_Connection *c,
                                    const struct params *p)
{
    char err[RW_ERRSZ];
    if (!strcmp(p->method, "POST")) {
        static const char *const none[] = {NULL};
        const char *bad = hd_unknown_param(p, none);
        uint64_t added = 0;
        if (bad)
            return hd_send_unknown_param(h, c, "POST " IDENT_PATH, bad, none);
        if (p->body_too_big)
            return hd_send_error(h, c, 413, "too_large", "body: at most %u bytes", HD_BODY_MAX);
        int rc = ic_ident_lines(h->ix, p->body, p->body_len, &added, err);
        audit_post(h, p, rc == 0 ? 200 : rc == RW_EINPUT ? 400 : 500, added, err);
        if (rc < 0)
            return hd_send_error(h, c, rc == RW_EINPUT ? 400 : 500,
                                 rc == RW_EINPUT ? "bad_identity" : "internal", "%s", err);
        return hd_send_json(c, 200, json_pack("{s:I}", "added", (json_int_t)added));
    }
    static const char *const allowed[] = {"user", "from", "to", NULL};
    const char *bad = hd_unknown_param(p, allowed), *user = hd_param(p, "user");
    int64_t from, to;
    if (bad)
        return hd_send_unknown_param(h, c, IDENT_PATH, bad, allowed);
    if (!user || !*user)
        return hd_send_error(h, c, 400, "bad_parameter", "parameter 'user': required (the "
                             "subscriber's user name)");
    if (hd_parse_window(p, &from, &to, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    struct idx_ident *v = NULL;
    size_t n = 0;
    if (ic_ident_resolve(h->ix, user, from, to, &v, &n, err) < 0)
        return hd_send_error(h, c, 500, "internal", "%s", err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, hd_ident_json(&v[i]));
    free(v);
    return hd_send_json(c, 200, json_pack("{s:s,s:o}", "user", user, "identities", arr));
}

void hd_ident_metrics(struct httpd *h, FILE *f)
{
    struct ic_ident_tap *t = h->idtap;
    if (!t)
        return;
    fprintf(f, "# HELP rewind_radius_accounting_total RADIUS accounting packets seen (UDP to "
               "port 1813 or 1646) by result: used (identities read), malformed (nothing "
               "used).\n# TYPE rewind_radius_accounting_total counter\n"
               "rewind_radius_accounting_total{result=\"used\"} %llu\n"
               "rewind_radius_accounting_total{result=\"malformed\"} %llu\n",
            (unsigned long long)(atomic_load(&t->radius) - atomic_load(&t->malformed)),
            (unsigned long long)atomic_load(&t->malformed));
    fprintf(f, "# HELP rewind_identity_intervals_total Subscriber identity intervals opened "
               "from RADIUS accounting.\n# TYPE rewind_identity_intervals_total counter\n"
               "rewind_identity_intervals_total %llu\n",
            (unsigned long long)atomic_load(&t->identities));
}
