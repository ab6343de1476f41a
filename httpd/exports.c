/* exports.c -- POST /api/v1/cases/ID/exports?from=T&to=T&filter=F: a case's
 * evidence bundle (evidence/evidence.h), kept in DIR/cases/ID/exports/ and
 * sent as the answer (a tar file). Admin, or the case's agency. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "evidence/evidence.h"
#include "httpd/httpd_int.h"
#include "intercept/intercept.h"

enum MHD_Result hd_route_case_exports(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p)
{
    static const char *const allowed[] = {"from", "to", "filter", NULL};
    char err[RW_ERRSZ], id[IC_ID_MAX + 1], path[4400], dir[4300];
    const char *bad = hd_unknown_param(p, allowed);
    const char *rest = p->url + strlen("/api/v1/cases/");
    size_t il = strcspn(rest, "/");
    int64_t start = rw_mono_ns();
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/cases/ID/exports", bad, allowed);
    if (!h->cases)
        return hd_send_error(h, c, 503, "unavailable", "this rewindd keeps no cases");
    snprintf(id, sizeof id, "%.*s", (int)(il < sizeof id ? il : 0), rest);
    if (!ic_id_ok(id))
        return hd_send_error(h, c, 404, "not_found", "no such case");
    if (p->who.role == AUTH_AGENCY && strcmp(id, p->who.case_id))
        return hd_send_error(h, c, 403, "forbidden", "%s may see its own case only (%s)",
                             p->who.name, p->who.case_id[0] ? p->who.case_id : "none");
    if (strcmp(p->method, "POST")) { /* the bundles made so far */
        char d[4300];
        snprintf(d, sizeof d, "%s/cases/%s/exports", qry_archive_dir(h->ix), id);
        json_t *arr = json_array();
        DIR *dp = opendir(d);
        struct dirent *de;
        while (dp && (de = readdir(dp))) {
            struct stat st;
            char fp[4600];
            size_t nl = strlen(de->d_name);
            snprintf(fp, sizeof fp, "%s/%s", d, de->d_name);
            if (nl > 4 && !strcmp(de->d_name + nl - 4, ".tar") && stat(fp, &st) == 0)
                json_array_append_new(arr, json_pack("{s:s,s:I}", "name", de->d_name, "bytes",
                                                     (json_int_t)st.st_size));
        }
        if (dp)
            closedir(dp);
        return hd_send_json(c, 200, json_pack("{s:s,s:o}", "case", id, "exports", arr));
    }
    struct ic_case *k = malloc(sizeof *k);
    if (!k)
        return hd_send_error(h, c, 500, "internal", "out of memory");
    int got = ic_get(h->cases, id, k, err);
    if (got <= 0) {
        free(k);
        return got < 0 ? hd_send_error(h, c, 500, "internal", "%s", err)
                       : hd_send_error(h, c, 404, "not_found", "no case %s", id);
    }
    int64_t now = rw_now_ns(), end = ic_case_end_ns(k);
    struct ev_request rq = {.dir = qry_archive_dir(h->ix), .ix = h->ix, .c = k,
                            .from = k->from, .to = end < now ? end : now,
                            .filter = hd_param(p, "filter")};
    const char *f = hd_param(p, "from"), *t = hd_param(p, "to");
    if ((f && rw_time_parse(f, now, &rq.from, err) < 0) ||
        (t && rw_time_parse(t, now, &rq.to, err) < 0)) {
        free(k);
        return hd_send_error(h, c, 400, "bad_parameter", "parameter '%s': %s",
                             f && rw_time_parse(f, now, &rq.from, err) < 0 ? "from" : "to", err);
    }
    snprintf(dir, sizeof dir, "%s/cases/%s/exports", qry_archive_dir(h->ix), id);
    if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
        free(k);
        return hd_send_error(h, c, 500, "internal", "%s: %s", dir, strerror(errno));
    }
    char ts[48];
    rw_time_fmt(now, ts, sizeof ts);
    snprintf(path, sizeof path, "%s/%s-%.4s%.2s%.2sT%.2s%.2s%.2s.%.9sZ.tar", dir, id, ts, ts + 5,
             ts + 8, ts + 11, ts + 14, ts + 17, ts + 20);
    struct ev_result res;
    int rc = ev_bundle(&rq, path, &res, err);
    free(k);
    struct audit_rec ar;
    struct audit_param ap = {"case", id};
    char aerr[RW_ERRSZ], route[128], detail[RW_ERRSZ + 64];
    snprintf(route, sizeof route, "POST /api/v1/cases/%s/exports", id);
    snprintf(detail, sizeof detail, rc == 0 ? "evidence bundle %s" : "failed: %s",
             rc == 0 ? res.name : err);
    audit_rec_init(&ar);
    ar.principal = p->who.name;
    ar.role = auth_role_name(p->who.role);
    ar.method = p->who.method;
    ar.client = p->client;
    ar.route = route;
    ar.from_ns = rq.from;
    ar.to_ns = rq.to;
    ar.filter = rq.filter;
    ar.params = &ap;
    ar.nparams = 1;
    ar.status = rc == 0 ? 200 : rc == RW_EINPUT ? 400 : 500;
    ar.packets = rc == 0 ? res.packets : 0;
    ar.bytes = rc == 0 ? res.bytes : 0;
    ar.sha256 = rc == 0 ? res.tar_sha256 : NULL;
    ar.duration_ns = rw_mono_ns() - start;
    ar.detail = detail;
    if (h->audit && audit_append(h->audit, &ar, aerr) < 0) {
        rw_error("export of case %s: audit trail: %s; not sent", id, aerr);
        return hd_send_error(h, c, 500, "internal", "the audit trail cannot be written");
    }
    if (rc < 0)
        return hd_send_error(h, c, rc == RW_EINPUT ? 400 : 500,
                             rc == RW_EINPUT ? "bad_parameter" : "internal", "%s", err);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) < 0) {
        if (fd >= 0)
            close(fd);
        return hd_send_error(h, c, 500, "internal", "%s: %s", path, strerror(errno));
    }
    struct MHD_Response *r = MHD_create_response_from_fd((uint64_t)st.st_size, fd);
    if (!r) {
        close(fd);
        return MHD_NO;
    }
    char cd[256];
    snprintf(cd, sizeof cd, "attachment; filename=\"%s.tar\"", res.name);
    MHD_add_response_header(r, "Content-Type", "application/x-tar");
    MHD_add_response_header(r, "Content-Disposition", cd);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Rewind-Bundle-SHA256", res.tar_sha256);
    rw_info("evidence bundle of case %s for %s: %llu packets, %s", id, p->who.name,
            (unsigned long long)res.packets, path);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}
