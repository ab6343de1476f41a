/* federate.c -- GET /api/v1/packets of a rewindd --federate FILE: the
 * query across the sensors FILE names (export/export.h, ex_fed_*), merged
 * into one pcapng. Every sensor asked has answered in full before the first
 * byte is sent: one that fails makes the answer a 502 naming it, unless
 * partial=1 asks for the others' packets with a closing comment naming
 * what is missing. The answer (or its refusal) is on the audit trail. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analytics/analytics.h"
#include "export/export.h"
#include "httpd/httpd_int.h"

static void audit_fed(struct httpd *h, const struct params *p, int64_t from, int64_t to,
                      const char *filter, int status, int64_t start, const char *detail)
{
    struct audit_rec ar;
    char err[RW_ERRSZ], route[96];
    if (!h->audit)
        return;
    snprintf(route, sizeof route, "%s /api/v1/packets (federated)", p->head ? "HEAD" : "GET");
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
    ar.status = status;
    ar.duration_ns = rw_now_ns() - start;
    ar.detail = detail;
    if (audit_append(h->audit, &ar, err) < 0)
        rw_error("audit trail: %s", err);
}

enum MHD_Result hd_route_fed_packets(struct httpd *h, struct MHD_Connection *c,
                                     const struct params *p)
{
    static const char *const allowed[] = {"from", "to", "filter", "community_id", "partial",
                                          "format", NULL};
    char err[RW_ERRSZ];
    int64_t start = rw_now_ns(), from, to;
    const char *bad = hd_unknown_param(p, allowed);
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/packets (federated)", bad, allowed);
    if (hd_parse_window(p, &from, &to, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    if (to == RW_TIME_MAX)
        to = start;
    const char *fmt = hd_param(p, "format"), *cid = hd_param(p, "community_id");
    const char *filter = hd_param(p, "filter"), *part = hd_param(p, "partial");
    if (fmt && strcmp(fmt, "pcapng"))
        return hd_send_error(h, c, 400, "bad_parameter", "parameter 'format': a federated "
                             "answer is pcapng (one interface per sensor:point), not '%s'", fmt);
    if (cid && !an_cid_valid(cid))
        return hd_send_error(h, c, 400, "bad_parameter", "parameter 'community_id': '%s' is not "
                             "a Community ID v1", cid);
    if (part && strcmp(part, "0") && strcmp(part, "1"))
        return hd_send_error(h, c, 400, "bad_parameter", "parameter 'partial': must be 0 or 1, "
                             "not '%s'", part);
    if (!auth_allows(p->who.role, AUTH_PERM_PAYLOAD)) {
        audit_fed(h, p, from, to, filter, 403, start, "federated answers carry payload");
        return hd_send_error(h, c, 403, "forbidden", "a federated answer carries payload, which "
                             "needs the role %s; %s has the role %s",
                             auth_roles_for(AUTH_PERM_PAYLOAD), p->who.name,
                             auth_role_name(p->who.role));
    }
    struct ex_fed_query q = {.from = from, .to = to, .filter = filter ? filter : "", .cid = cid};
    ex_fed_t *fed = NULL;
    int rc = ex_fed_fetch(h->federate, &q, ex_http_get, &fed, err);
    if (rc < 0) {
        audit_fed(h, p, from, to, filter, 500, start, err);
        return hd_send_error(h, c, 500, "internal", "%s", err);
    }
    if (ex_fed_warning(fed))
        rw_warn("federated query: %s", ex_fed_warning(fed));
    rw_info("federated query: %s", ex_fed_asked(fed));
    size_t asked;
    const char *what;
    int input;
    size_t failed = ex_fed_failed(fed, &asked, &what, &input);
    if (failed && (!part || !strcmp(part, "0") || failed == asked)) {
        int st = input ? 400 : 502;
        audit_fed(h, p, from, to, filter, st, start, what);
        enum MHD_Result r = hd_send_error(h, c, st, input ? "bad_parameter" : "sensor_failed",
                                          "%zu of %zu sensors failed: %s", failed, asked, what);
        ex_fed_free(fed);
        return r;
    }
    FILE *tmp = tmpfile();
    uint64_t pk = 0;
    if (!tmp || (rc = ex_fed_write(fed, tmp, &pk, err)) < 0 || fflush(tmp) != 0) {
        if (!tmp)
            snprintf(err, sizeof err, "temporary file: %s", strerror(errno));
        audit_fed(h, p, from, to, filter, 500, start, err);
        ex_fed_free(fed);
        if (tmp)
            fclose(tmp);
        return hd_send_error(h, c, 500, "internal", "%s", err);
    }
    ex_fed_free(fed);
    struct stat st;
    int fd = dup(fileno(tmp));
    fclose(tmp);
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return hd_send_error(h, c, 500, "internal", "temporary file: %s", strerror(errno));
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return hd_send_error(h, c, 500, "internal", "out of memory");
    }
    char detail[160];
    snprintf(detail, sizeof detail, "%llu packets from %zu sensors%s", (unsigned long long)pk,
             asked - failed, failed ? " (partial)" : "");
    audit_fed(h, p, from, to, filter, 200, start, detail);
    MHD_add_response_header(r, "Content-Type", "application/x-pcapng");
    MHD_add_response_header(r, "Content-Disposition", "attachment; filename=\"federated.pcapng\"");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Rewind-Sensor", h->sensor);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}
