/* client.c -- the client half of the control socket (ctl.h): the query
 * request codec and the questions `rewind` asks the daemon owning an
 * archive. libc only, so that the small `rewind` front end links it without
 * the query engine and RocksDB. */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* ---------------------------------------------------------------- codec */

int ctl_query_parse(char *line, struct ctl_query *r, char *err)
{
    int npoints = 0, have_from = 0, have_to = 0;
    memset(r, 0, sizeof *r);
    r->format = QRY_PCAP;
    if (strncmp(line, "query", 5) != 0 || (line[5] && line[5] != '\t'))
        return rw_err(err, RW_EINPUT, "not a query request");
    char *save = NULL;
    for (char *f = strtok_r(line + 5, "\t", &save); f; f = strtok_r(NULL, "\t", &save)) {
        char *v = strchr(f, '=');
        if (!v)
            return rw_err(err, RW_EINPUT, "query request field without '=': %.40s", f);
        *v++ = 0;
        if (ctl_unescape(v) < 0)
            return rw_err(err, RW_EINPUT, "query request field %.20s: bad %%-escape", f);
        int64_t x = 0;
        uint64_t u = 0;
        int sign = !strcmp(f, "from") || !strcmp(f, "to");
        if (sign || !strcmp(f, "limit") || !strcmp(f, "count")) {
            if (ctl_parse_num(v, sign, &x, &u) < 0)
                return rw_err(err, RW_EINPUT, "query request field %s: not a number: %.40s", f, v);
            if (!strcmp(f, "from"))
                r->spec.from = x, have_from = 1;
            else if (!strcmp(f, "to"))
                r->spec.to = x, have_to = 1;
            else if (!strcmp(f, "limit"))
                r->spec.limit_packets = u;
            else
                r->count = u != 0;
        } else if (!strcmp(f, "format")) {
            if (!strcmp(v, "pcap"))
                r->format = QRY_PCAP;
            else if (!strcmp(v, "pcapng"))
                r->format = QRY_PCAPNG;
            else
                return rw_err(err, RW_EINPUT, "query request: format must be pcap or pcapng");
        } else if (!strcmp(f, "point")) {
            if (npoints == CTL_MAX_POINTS)
                return rw_err(err, RW_EINPUT, "query request: more than %d points",
                              CTL_MAX_POINTS);
            r->points[npoints++] = v;
        } else if (!strcmp(f, "filter")) {
            r->spec.filter = v;
        } else {
            return rw_err(err, RW_EINPUT, "query request: unknown field %.40s", f);
        }
    }
    if (!have_from || !have_to)
        return rw_err(err, RW_EINPUT, "query request without from= and to=");
    if (r->spec.from >= r->spec.to)
        return rw_err(err, RW_EINPUT, "query request: from must be before to");
    r->points[npoints] = NULL;
    r->spec.points = npoints ? r->points : NULL;
    return 0;
}

char *ctl_query_format(const struct ctl_query *r, size_t *len)
{
    /* Sized to the request: a first touch of fresh heap can cost a (huge)
     * page fault, a good part of a short query's time. */
    size_t cap = 160, fl = r->spec.filter ? strlen(r->spec.filter) : 0;
    for (int i = 0; r->spec.points && r->spec.points[i]; i++)
        cap += 8 + ctl_escaped_len(r->spec.points[i]);
    if (fl)
        cap += 9 + ctl_escaped_len(r->spec.filter);
    char *req = cap <= CTL_MAX_REQ ? malloc(cap) : NULL;
    if (!req)
        return NULL;
    *len = (size_t)snprintf(req, cap,
                            "query\tfrom=%" PRId64 "\tto=%" PRId64 "\tlimit=%" PRIu64
                            "\tformat=%s\tcount=%d",
                            r->spec.from, r->spec.to, r->spec.limit_packets,
                            r->format == QRY_PCAPNG ? "pcapng" : "pcap", r->count);
    int bad = 0;
    for (int i = 0; r->spec.points && r->spec.points[i]; i++)
        bad |= ctl_put_field(req, cap - 1, len, "point", r->spec.points[i]);
    if (fl)
        bad |= ctl_put_field(req, cap - 1, len, "filter", r->spec.filter);
    if (bad) { /* cannot happen with cap as computed */
        free(req);
        return NULL;
    }
    req[(*len)++] = '\n'; /* the last field left room for this and a NUL */
    req[*len] = 0;
    return req;
}

/* ---------------------------------------------------------------- client */

/* Hand each "damage" line of an answer to damage (when not NULL) and read
 * on: 0 with the line after them in line, -1 when the daemon closed. */
static int damage_lines(int s, char *line, size_t n, ctl_damage_fn damage, void *darg)
{
    while (!strncmp(line, "damage ", 7)) {
        if (damage)
            damage(darg, line + 7);
        if (ctl_read_line(s, line, n) < 0)
            return -1;
    }
    return 0;
}

int ctl_ask_query(const char *dir, const struct ctl_query *r, ctl_open_fn open_out, void *arg,
                  ctl_damage_fn damage, void *darg, uint64_t *packets, char *err)
{
    char line[RW_ERRSZ + 64];
    int s, rc, outfd = -1;
    size_t len;
    char *req;
    if (!(req = ctl_query_format(r, &len)))
        return CTL_LOCAL; /* too long to ask (locally there is no such limit) */
    /* Any failure to reach a daemon, for example no daemon, a stale socket
     * or no permission on it, means reading the archive directly. */
    if ((s = ctl_connect(dir)) < 0) {
        free(req);
        return CTL_LOCAL;
    }
    /* send(), not write(): a daemon gone since connect() must not kill us
     * with SIGPIPE. A daemon that does not reply in 10 s (stopped, wedged)
     * is given up for the local path; planning takes milliseconds. */
    rc = ctl_send_all(s, req, len);
    free(req);
    struct timeval tv = {10, 0}, none = {0, 0};
    if (rc < 0 || setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        ctl_read_line(s, line, sizeof line) < 0 ||
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none) < 0) {
        close(s);
        return CTL_LOCAL; /* a daemon stopping, or not answering: read directly */
    }
    if (!strcmp(line, "busy")) {
        close(s);
        return CTL_LOCAL;
    }
    /* A count is answered at once; anything else first waits for the output. */
    if (r->count && damage_lines(s, line, sizeof line, damage, darg) < 0) {
        close(s);
        return rw_err(err, RW_EIO, "rewindd closed the connection while answering; see its log");
    }
    if (r->count ? strncmp(line, "ok ", 3) != 0 : strcmp(line, "ready") != 0) {
        rc = ctl_answer_error(line, "the query", err);
        close(s);
        return rc;
    }
    if (!r->count) {
        if ((outfd = open_out(arg, err)) < 0) {
            close(s);
            return outfd;
        }
        if (ctl_send_fd(s, "out\n", 4, outfd) != 4 || ctl_read_line(s, line, sizeof line) < 0 ||
            damage_lines(s, line, sizeof line, damage, darg) < 0) {
            close(s);
            return rw_err(err, RW_EIO,
                          "rewindd closed the connection while answering; see its log");
        }
    }
    close(s);
    unsigned long long pk, by;
    if (sscanf(line, "ok %llu %llu", &pk, &by) == 2) {
        *packets = pk;
        return 0;
    }
    if (!strcmp(line, "epipe"))
        return CTL_EPIPE;
    return ctl_answer_error(line, "the query", err);
}

/* Send a request line (with fd attached when >= 0) to the daemon owning
 * dir and open the answer as a stream. NULL with RW_EBUSY in err when no
 * daemon answers, RW_EIO when the send fails. */
static FILE *ask(const char *dir, const char *req, size_t len, int fd, int *rc, char *err)
{
    int s = ctl_connect(dir);
    FILE *f;
    if (s < 0) {
        *rc = rw_err(err, RW_EBUSY, "no rewindd answers on %s/rewindd.sock", dir);
        return NULL;
    }
    if ((fd >= 0 ? ctl_send_fd(s, req, len, fd) != (ssize_t)len : ctl_send_all(s, req, len) < 0)) {
        *rc = rw_err(err, RW_EIO, "asking the rewindd of %s: %s", dir, strerror(errno));
        close(s);
        return NULL;
    }
    if (!(f = fdopen(s, "r"))) {
        *rc = rw_err(err, RW_ENOMEM, "out of memory");
        close(s);
    }
    return f;
}

/* The next answer line without its '\n'; -1 once the daemon closed. */
static int next_line(FILE *f, char *line, size_t n)
{
    if (!fgets(line, (int)n, f))
        return -1;
    line[strcspn(line, "\n")] = 0;
    return 0;
}

int ctl_import(const char *dir, const char *path, const char *point, ctl_progress_fn progress,
               void *parg, struct ctl_import_result *res, char *err)
{
    char req[4096], line[RW_ERRSZ + 64];
    size_t len = 6;
    int rc, filefd;
    FILE *f;
    memset(res, 0, sizeof *res);
    memcpy(req, "import", 7);
    if (ctl_put_field(req, sizeof req - 1, &len, "point", point) < 0 ||
        ctl_put_field(req, sizeof req - 1, &len, "label", path) < 0)
        return rw_err(err, RW_EINPUT, "%s: name too long", path);
    req[len++] = '\n';
    /* The daemon reads the descriptor this process opened: only what the
     * user running `rewind import` may read. */
    filefd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (filefd < 0)
        return rw_err(err, RW_EINPUT, "%s: %s", path, strerror(errno));
    if (!(f = ask(dir, req, len, filefd, &rc, err))) {
        if (rc == RW_EBUSY)
            rw_err(err, RW_EBUSY,
                   "archive %s is written by another process that takes no imports (no "
                   "%s/rewindd.sock); stop it or import into another --dir",
                   dir, dir);
        goto done;
    }
    rc = rw_err(err, RW_EIO, "the daemon closed the connection while importing %s; see its log",
                path);
    while (next_line(f, line, sizeof line) == 0) {
        unsigned long long a1, a2, a3, rm = 0;
        int pts;
        if (sscanf(line, "progress %llu %llu %llu", &a1, &a2, &a3) == 3) {
            if (progress)
                progress(parg, path, a1, a2, a3);
        } else if (sscanf(line, "ok %llu %llu %d %llu", &a1, &a2, &pts, &rm) >= 3) {
            res->packets = a1;
            res->bytes = a2;
            res->points = pts;
            res->removed = rm;
            rc = 0;
            break;
        } else {
            rc = ctl_answer_error(line, "the import", err);
            break;
        }
    }
    fclose(f);
done:
    if (filefd > 0)
        close(filefd);
    return rc;
}

/* Ask a one-line question whose answer is "ok N": *n. */
static int ask_ok(const char *dir, const char *req, size_t len, const char *what, uint64_t *n,
                  char *err)
{
    char line[RW_ERRSZ + 64];
    int rc;
    unsigned long long v;
    FILE *f = ask(dir, req, len, -1, &rc, err);
    if (!f)
        return rc;
    if (next_line(f, line, sizeof line) < 0)
        rc = rw_err(err, RW_EIO, "the daemon closed the connection during %s; see its log", what);
    else if (sscanf(line, "ok %llu", &v) == 1)
        *n = v, rc = 0;
    else
        rc = ctl_answer_error(line, what, err);
    fclose(f);
    return rc;
}

int ctl_hold_add(const char *dir, int64_t from, int64_t to, const char *filter,
                 const char *reason, uint64_t *id, char *err)
{
    char req[2048];
    size_t len = (size_t)snprintf(req, sizeof req, "hold\top=add\tfrom=%" PRId64 "\tto=%" PRId64,
                                  from, to);
    if (ctl_put_field(req, sizeof req - 1, &len, "filter", filter ? filter : "") < 0 ||
        ctl_put_field(req, sizeof req - 1, &len, "reason", reason ? reason : "") < 0)
        return rw_err(err, RW_EINPUT, "hold: filter and reason too long");
    req[len++] = '\n';
    return ask_ok(dir, req, len, "the hold", id, err);
}

int ctl_hold_release(const char *dir, uint64_t id, char *err)
{
    char req[64];
    uint64_t n = 0;
    int len = snprintf(req, sizeof req, "hold\top=release\tid=%" PRIu64 "\n", id);
    int rc = ask_ok(dir, req, (size_t)len, "the hold release", &n, err);
    return rc < 0 ? rc : n != 0;
}

int ctl_token_add(const char *dir, const char *name, const char *role, const char *case_id,
                  int64_t expires, char *tok, size_t toksz, char *err)
{
    char req[1024], line[RW_ERRSZ + 64];
    size_t len = (size_t)snprintf(req, sizeof req, "token\top=add\texpires=%" PRId64, expires);
    int rc;
    if (ctl_put_field(req, sizeof req - 1, &len, "name", name) < 0 ||
        ctl_put_field(req, sizeof req - 1, &len, "role", role) < 0 ||
        ctl_put_field(req, sizeof req - 1, &len, "case", case_id ? case_id : "") < 0)
        return rw_err(err, RW_EINPUT, "token: name, role or case too long");
    req[len++] = '\n';
    FILE *f = ask(dir, req, len, -1, &rc, err);
    if (!f)
        return rc;
    if (next_line(f, line, sizeof line) < 0)
        rc = rw_err(err, RW_EIO, "the daemon closed the connection while adding the token");
    else if (!strncmp(line, "ok ", 3) && strlen(line + 3) < toksz)
        snprintf(tok, toksz, "%s", line + 3), rc = 0;
    else
        rc = ctl_answer_error(line, "the token", err);
    memset(line, 0, sizeof line);
    fclose(f);
    return rc;
}

int ctl_token_revoke(const char *dir, const char *name, char *err)
{
    char req[256];
    size_t len = (size_t)snprintf(req, sizeof req, "token\top=revoke");
    uint64_t n = 0;
    if (ctl_put_field(req, sizeof req - 1, &len, "name", name) < 0)
        return rw_err(err, RW_EINPUT, "token: name too long");
    req[len++] = '\n';
    int rc = ask_ok(dir, req, len, "the token revocation", &n, err);
    return rc < 0 ? rc : (int)n;
}

int ctl_audit(const char *dir, const char *route, const struct qry_spec *spec, uint64_t packets,
              uint64_t bytes, const char *sha256, int64_t duration_ns, int status, char *err)
{
    char *req = malloc(CTL_MAX_REQ);
    size_t len;
    uint64_t n;
    int rc;
    if (!req)
        return rw_err(err, RW_ENOMEM, "out of memory");
    len = (size_t)snprintf(req, CTL_MAX_REQ,
                           "audit\tfrom=%" PRId64 "\tto=%" PRId64 "\tpackets=%" PRIu64
                           "\tbytes=%" PRIu64 "\tduration=%" PRId64 "\tstatus=%d",
                           spec->from, spec->to, packets, bytes, duration_ns, status);
    rc = ctl_put_field(req, CTL_MAX_REQ - 1, &len, "route", route);
    if (rc == 0 && sha256)
        rc = ctl_put_field(req, CTL_MAX_REQ - 1, &len, "sha256", sha256);
    if (rc == 0 && spec->filter && spec->filter[0])
        rc = ctl_put_field(req, CTL_MAX_REQ - 1, &len, "filter", spec->filter);
    for (int i = 0; rc == 0 && spec->points && spec->points[i]; i++)
        rc = ctl_put_field(req, CTL_MAX_REQ - 1, &len, "point", spec->points[i]);
    if (rc < 0) {
        free(req);
        return rw_err(err, RW_EINPUT, "audit record too long");
    }
    req[len++] = '\n';
    rc = ask_ok(dir, req, len, "the audit record", &n, err);
    free(req);
    return rc;
}

int ctl_status(const char *dir, struct qry_status *st, char *err)
{
    char *line = malloc(CTL_MAX_REQ);
    int rc;
    FILE *f;
    memset(st, 0, sizeof *st);
    if (!line)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if (!(f = ask(dir, "status\n", 7, -1, &rc, err))) {
        free(line);
        return rc;
    }
    size_t cap = 0;
    rc = rw_err(err, RW_EIO, "the daemon closed the connection during status; see its log");
    while (next_line(f, line, CTL_MAX_REQ) == 0) {
        char *save = NULL, *kind = strtok_r(line, "\t", &save), *k, *v;
        struct qry_point_status *p = NULL;
        int more;
        if (kind && !strcmp(kind, "ok")) {
            rc = 0;
            break;
        }
        if (kind && !strcmp(kind, "busy") && st->npoints == 0) {
            rc = rw_err(err, RW_EBUSY, "the rewindd of %s is busy", dir);
            break;
        }
        if (kind && !strcmp(kind, "point")) {
            if (st->npoints == cap) {
                size_t nc = cap ? cap * 2 : 8;
                struct qry_point_status *np = realloc(st->points, nc * sizeof *np);
                if (!np) {
                    rc = rw_err(err, RW_ENOMEM, "out of memory");
                    break;
                }
                st->points = np;
                cap = nc;
            }
            p = &st->points[st->npoints++];
            memset(p, 0, sizeof *p);
        } else if (kind && !strcmp(kind, "total")) {
            p = &st->total;
        } else if (!kind || strcmp(kind, "archive")) {
            rc = ctl_answer_error(kind ? kind : "", "status", err);
            break;
        }
        while ((more = ctl_next_field(&save, "status answer", &k, &v, err)) == 1) {
            int bad = 0;
            int64_t x = 0;
            uint64_t u = 0;
            if (p)
                bad = ctl_get_point_field(p, k, v) < 0;
            else if (!strcmp(k, "archive"))
                snprintf(st->archive, sizeof st->archive, "%s", v);
            else if (!strcmp(k, "max_age_ns"))
                bad = ctl_parse_num(v, 1, &x, &u) < 0, st->max_age_ns = x;
            else if (!strcmp(k, "min_horizon_ns"))
                bad = ctl_parse_num(v, 1, &x, &u) < 0, st->min_horizon_ns = x;
            else if ((bad = ctl_parse_num(v, 0, &x, &u) < 0))
                ;
            else if (!strcmp(k, "index_bytes"))
                st->index_bytes = u;
            else if (!strcmp(k, "disk_available"))
                st->disk_available = u;
            else if (!strcmp(k, "quota_bytes"))
                st->quota_bytes = u;
            else if (!strcmp(k, "quota_pct"))
                st->quota_pct = (uint32_t)u;
            else if (!strcmp(k, "holds"))
                st->holds = u;
            else if (!strcmp(k, "below_horizon"))
                st->below_horizon = u != 0;
            if (bad) {
                more = rw_err(err, RW_EIO, "status answer: field %s: malformed value", k);
                break;
            }
        }
        if (more < 0) {
            rc = more;
            break;
        }
    }
    fclose(f);
    free(line);
    if (rc < 0) { /* not qry_status_free(): the front end links no query/ code */
        free(st->points);
        st->points = NULL;
        st->npoints = 0;
    }
    return rc;
}

int ctl_case(const char *dir, const char *op, const char *id, const char *json, char **answer,
             char *err)
{
    char *req = malloc(CTL_MAX_REQ), *line = NULL;
    size_t len, cap = 0, alen = 0;
    char *ans = NULL;
    int rc;
    *answer = NULL;
    if (!req)
        return rw_err(err, RW_ENOMEM, "out of memory");
    len = (size_t)snprintf(req, CTL_MAX_REQ, "case");
    if (ctl_put_field(req, CTL_MAX_REQ - 1, &len, "op", op) < 0 ||
        (id && ctl_put_field(req, CTL_MAX_REQ - 1, &len, "id", id) < 0) ||
        (json && ctl_put_field(req, CTL_MAX_REQ - 1, &len, "json", json) < 0)) {
        free(req);
        return rw_err(err, RW_EINPUT, "case: the document is too long for the control socket");
    }
    req[len++] = '\n';
    FILE *f = ask(dir, req, len, -1, &rc, err);
    free(req);
    if (!f)
        return rc;
    rc = rw_err(err, RW_EIO, "the daemon closed the connection before answering the case request");
    ssize_t n;
    while ((n = getline(&line, &cap, f)) > 0) {
        line[strcspn(line, "\n")] = 0;
        if (!strncmp(line, "case ", 5)) {
            size_t l = strlen(line + 5);
            char *na = realloc(ans, alen + l + 2);
            if (!na) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                break;
            }
            ans = na;
            memcpy(ans + alen, line + 5, l);
            alen += l;
            ans[alen++] = '\n';
            ans[alen] = 0;
            continue;
        }
        rc = !strncmp(line, "ok ", 3) ? 0 : ctl_answer_error(line, "the case request", err);
        break;
    }
    free(line);
    fclose(f);
    if (rc < 0) {
        free(ans);
        return rc;
    }
    *answer = ans;
    return 0;
}
