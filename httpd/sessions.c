/* sessions.c -- the HTTP routes of application evidence: /api/v1/smtp,
 * /api/v1/smtp/messages/ID.eml, /api/v1/voip/calls and
 * /api/v1/voip/calls/ID/pcap, answered from analytics/sessions.h. Every
 * answer is streamed and audited like /api/v1/packets: one record, written
 * before the last chunk leaves, with the SHA-256 of the bytes sent. */
#include "httpd/httpd_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/sessions.h"

#define SPEND_LOW (128 << 10)

struct sstream {
    struct httpd *h;
    ses_t *s;
    uint8_t *pend;
    size_t plen, poff, pcap;
    int ended, failed, head, audited;
    audit_hash_t *hash;
    struct auth_principal who;
    char client[80];
    char route[96];
    char idp[160]; /* the id asked for, for the record */
    char host[64], user[64];
    int64_t from, to;
    int64_t start, start_real;
    uint64_t bytes;
    char what[256];
};

static int spend_write(void *arg, const void *buf, size_t n)
{
    struct sstream *st = arg;
    if (st->plen + n > st->pcap) {
        size_t nc = (st->plen + n) * 2;
        uint8_t *np = realloc(st->pend, nc);
        if (!np)
            return -1;
        st->pend = np;
        st->pcap = nc;
    }
    memcpy(st->pend + st->plen, buf, n);
    st->plen += n;
    return 0;
}

static int sstopping(void *arg) { return atomic_load(&((struct httpd *)arg)->stopping); }

/* The answer's audit record, written once (as audit_stream in httpd.c). */
static int saudit(struct sstream *st, int status, const char *detail)
{
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ] = "";
    struct audit_rec r;
    struct audit_param ps[3];
    size_t np = 0;
    if (st->audited || !st->h->audit)
        return 0;
    st->audited = 1;
    if (st->hash && audit_hash_final(st->hash, hex, err) < 0)
        hex[0] = 0;
    st->hash = NULL;
    if (st->idp[0])
        ps[np++] = (struct audit_param){"id", st->idp};
    if (st->host[0])
        ps[np++] = (struct audit_param){"host", st->host};
    if (st->user[0])
        ps[np++] = (struct audit_param){"user", st->user};
    audit_rec_init(&r);
    r.time_ns = st->start_real;
    r.principal = st->who.name;
    r.role = auth_role_name(st->who.role);
    r.method = st->who.method;
    r.client = st->client;
    r.route = st->route;
    r.from_ns = st->from;
    r.to_ns = st->to;
    r.filter = st->s ? ses_filter(st->s) : NULL;
    r.params = ps;
    r.nparams = np;
    r.status = status;
    r.packets = st->s ? ses_packets(st->s) : 0;
    r.bytes = st->bytes;
    r.sha256 = hex[0] && st->bytes ? hex : NULL;
    r.duration_ns = rw_mono_ns() - st->start;
    r.detail = detail;
    if (audit_append(st->h->audit, &r, err) < 0) {
        rw_error("%s: audit trail: %s; the answer is cut", st->what, err);
        return -1;
    }
    return 0;
}

/* Work until some bytes are ready or the run is over. */
static int sfill(struct sstream *st)
{
    char err[RW_ERRSZ];
    while (!st->ended && st->plen - st->poff < SPEND_LOW) {
        int rc = ses_pump(st->s, err);
        if (rc < 0) {
            if (rc == RW_ESTOP)
                rw_warn("%s: cut by shutdown after %llu bytes", st->what,
                        (unsigned long long)st->bytes);
            else
                rw_error("%s: failed after %llu bytes: %s", st->what,
                         (unsigned long long)st->bytes, err);
            st->failed = 1;
            return -1;
        }
        if (rc == 0)
            st->ended = 1;
    }
    return 0;
}

static ssize_t sread(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct sstream *st = cls;
    (void)pos;
    if (atomic_load(&st->h->stopping)) {
        st->failed = 1;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (st->poff == st->plen) {
        st->poff = st->plen = 0;
        if (sfill(st) < 0)
            return MHD_CONTENT_READER_END_WITH_ERROR;
        if (st->plen == 0 && st->ended) {
            if (saudit(st, 200, NULL) < 0) {
                st->failed = 1;
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    size_t n = st->plen - st->poff < max ? st->plen - st->poff : max;
    memcpy(buf, st->pend + st->poff, n);
    if (st->hash)
        audit_hash_update(st->hash, buf, n);
    st->poff += n;
    st->bytes += n;
    return (ssize_t)n;
}

static void sfree(void *cls)
{
    struct sstream *st = cls;
    struct httpd *h = st->h;
    if (st->head)
        (void)saudit(st, 200, "headers only");
    else if (!st->ended && !st->failed && atomic_load(&h->stopping))
        (void)saudit(st, 499, "cut by shutdown");
    else if (!st->ended && !st->failed)
        (void)saudit(st, 499, "client went away");
    else if (st->failed)
        (void)saudit(st, 500, "answer failed or was cut");
    else
        rw_info("%s: %llu bytes from %llu packets", st->what, (unsigned long long)st->bytes,
                (unsigned long long)(st->s ? ses_packets(st->s) : 0));
    atomic_fetch_add(&h->exported, st->bytes);
    audit_hash_free(st->hash);
    ses_free(st->s);
    free(st->pend);
    free(st);
    atomic_fetch_sub(&h->active, 1);
}

static struct sstream *snew(struct httpd *h, const struct params *p, const char *path,
                            const struct ses_spec *spec)
{
    struct sstream *st = calloc(1, sizeof *st);
    if (!st)
        return NULL;
    st->h = h;
    st->head = p->head;
    st->start = rw_mono_ns();
    st->start_real = rw_now_ns();
    st->who = p->who;
    snprintf(st->client, sizeof st->client, "%s", p->client);
    snprintf(st->route, sizeof st->route, "%s %s", p->head ? "HEAD" : "GET", path);
    snprintf(st->idp, sizeof st->idp, "%s", spec->id ? spec->id : "");
    snprintf(st->host, sizeof st->host, "%s", spec->host ? spec->host : "");
    snprintf(st->user, sizeof st->user, "%.63s", spec->user ? spec->user : "");
    st->from = spec->from;
    st->to = spec->to;
    st->hash = h->audit ? audit_hash_new() : NULL;
    snprintf(st->what, sizeof st->what, "%s by %s%s%s", st->route, p->who.name,
             spec->id ? " id " : "", spec->id ? spec->id : "");
    return st;
}

/* Start the run and answer: errors before the first byte get their status;
 * for an ID not found, 404 (the record says so too). */
static enum MHD_Result sanswer(struct httpd *h, struct MHD_Connection *c, const struct params *p,
                               const char *path, const struct ses_spec *spec, const char *fname)
{
    char err[RW_ERRSZ];
    if (atomic_fetch_add(&h->active, 1) >= h->max_queries) {
        atomic_fetch_sub(&h->active, 1);
        return hd_send_error_x(h, c, 503, "busy", "Retry-After", "2",
                               "%d queries already in progress (rewindd --max-queries); retry "
                               "shortly", h->max_queries);
    }
    struct sstream *st = snew(h, p, path, spec);
    if (!st) {
        atomic_fetch_sub(&h->active, 1);
        return hd_send_error(h, c, 500, "internal", "out of memory");
    }
    int rc = ses_new(h->ix, spec, spend_write, st, &st->s, err);
    if (rc == 0 && st->s) {
        ses_set_cancel(st->s, sstopping, h);
        /* a message is known to be there (or not) once its run reaches it */
        while (ses_found(st->s) < 0 && !st->ended && rc == 0)
            rc = sfill(st) < 0 ? RW_EIO : 0;
        if (rc < 0)
            snprintf(err, sizeof err, "the run failed before the answer began (see the log)");
    }
    int missing = rc == 0 && (!st->s || ses_found(st->s) == 0);
    if (rc < 0 || missing) {
        int status = missing ? 404 : rc == RW_EINPUT ? 400 : 500;
        (void)saudit(st, status, missing ? "not found" : "refused");
        st->ended = 1;
        audit_hash_free(st->hash);
        st->hash = NULL;
        ses_free(st->s);
        free(st->pend);
        free(st);
        atomic_fetch_sub(&h->active, 1);
        if (missing)
            return hd_send_error(h, c, 404, "not_found",
                                 "%s: no %s with id '%s' in the archive (ids come from the "
                                 "listing, and name a window the archive still holds)",
                                 path, spec->kind == SES_SMTP_EML ? "message" : "call", spec->id);
        if (rc == RW_EINPUT)
            return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
        return hd_send_error(h, c, 500, "internal", "%s", err);
    }
    atomic_fetch_add(&h->queries, 1);
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256 << 10, sread, st, sfree);
    if (!r) {
        sfree(st);
        return MHD_NO;
    }
    MHD_add_response_header(r, "Content-Type", ses_content_type(st->s));
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Rewind-Sensor", h->sensor);
    MHD_add_response_header(r, "X-Rewind-Filter", ses_filter(st->s));
    if (fname) {
        char cd[256];
        snprintf(cd, sizeof cd, "attachment; filename=\"%s\"", fname);
        MHD_add_response_header(r, "Content-Disposition", cd);
    }
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* from, to, host, limit and format, shared by the listings. */
static int list_params(const struct params *p, struct ses_spec *spec, char *err)
{
    const char *v;
    if (hd_parse_window(p, &spec->from, &spec->to, err) < 0)
        return RW_EINPUT;
    spec->host = hd_param(p, "host");
    if (hd_parse_count("limit", hd_param(p, "limit"), 0, &spec->limit, err) < 0)
        return RW_EINPUT;
    if (hd_param(p, "limit") && spec->limit == 0)
        return rw_err(err, RW_EINPUT, "parameter 'limit': must be 1 to %d", SES_LIMIT_MAX);
    if ((v = hd_param(p, "format")) && ses_format_parse(v, "parameter 'format'", &spec->format,
                                                        err) < 0)
        return RW_EINPUT;
    if (ses_check(spec, err) < 0) { /* "host: ..." -> "parameter 'host': ..." */
        char m[RW_ERRSZ];
        size_t k = strcspn(err, ":");
        snprintf(m, sizeof m, "parameter '%.*s'%s", (int)k, err, err + k);
        return rw_err(err, RW_EINPUT, "%s", m);
    }
    return 0;
}

enum MHD_Result hd_route_smtp(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    static const char *const allowed[] = {"from", "to", "host", "limit", "format", NULL};
    char err[RW_ERRSZ];
    const char *bad = hd_unknown_param(p, allowed);
    struct ses_spec spec = {0};
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/smtp", bad, allowed);
    spec.kind = SES_SMTP;
    if (list_params(p, &spec, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    return sanswer(h, c, p, "/api/v1/smtp", &spec, NULL);
}

/* The ID in a path such as /api/v1/smtp/messages/ID.eml: [A-Za-z0-9-] only. */
static int path_id(const char *url, const char *prefix, const char *suffix, char *id, size_t n)
{
    size_t pl = strlen(prefix), sl = strlen(suffix), ul = strlen(url);
    if (ul <= pl + sl || strncmp(url, prefix, pl) || strcmp(url + ul - sl, suffix))
        return -1;
    size_t il = ul - pl - sl;
    if (il >= n)
        return -1;
    memcpy(id, url + pl, il);
    id[il] = 0;
    for (size_t i = 0; i < il; i++)
        if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'z') ||
              (id[i] >= 'A' && id[i] <= 'Z') || id[i] == '-'))
            return -1;
    return 0;
}

enum MHD_Result hd_route_smtp_message(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p)
{
    static const char *const allowed[] = {"to", NULL};
    char err[RW_ERRSZ], id[160], fname[200];
    const char *bad = hd_unknown_param(p, allowed);
    struct ses_spec spec = {0};
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/smtp/messages/ID.eml", bad, allowed);
    if (path_id(p->url, "/api/v1/smtp/messages/", ".eml", id, sizeof id) < 0)
        return hd_send_error(h, c, 404, "not_found",
                             "no route %s: a message is /api/v1/smtp/messages/ID.eml, with an "
                             "ID from /api/v1/smtp", p->url);
    spec.kind = SES_SMTP_EML;
    spec.id = id;
    if (hd_parse_window(p, &spec.from, &spec.to, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    spec.from = RW_TIME_MIN;
    snprintf(fname, sizeof fname, "%s.eml", id);
    return sanswer(h, c, p, "/api/v1/smtp/messages/ID.eml", &spec, fname);
}

enum MHD_Result hd_route_calls(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    static const char *const allowed[] = {"from", "to", "host", "user", "limit", "format", NULL};
    char err[RW_ERRSZ];
    const char *bad = hd_unknown_param(p, allowed);
    struct ses_spec spec = {0};
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/voip/calls", bad, allowed);
    spec.kind = SES_CALLS;
    spec.user = hd_param(p, "user");
    if (list_params(p, &spec, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    return sanswer(h, c, p, "/api/v1/voip/calls", &spec, NULL);
}

enum MHD_Result hd_route_call(struct httpd *h, struct MHD_Connection *c, const struct params *p)
{
    static const char *const allowed[] = {"format", NULL};
    char id[160], fname[200];
    const char *bad = hd_unknown_param(p, allowed), *fmt = hd_param(p, "format");
    struct ses_spec spec = {0};
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/voip/calls/ID/pcap", bad, allowed);
    if (path_id(p->url, "/api/v1/voip/calls/", "/pcap", id, sizeof id) < 0)
        return hd_send_error(h, c, 404, "not_found",
                             "no route %s: a call's packets are /api/v1/voip/calls/ID/pcap, with "
                             "an ID from /api/v1/voip/calls", p->url);
    spec.kind = SES_CALL_PCAP;
    spec.id = id;
    spec.from = RW_TIME_MIN;
    spec.to = RW_TIME_MAX;
    spec.pcap_format = QRY_PCAP;
    if (fmt && !strcmp(fmt, "pcapng"))
        spec.pcap_format = QRY_PCAPNG;
    else if (fmt && strcmp(fmt, "pcap"))
        return hd_send_error(h, c, 400, "bad_parameter",
                             "parameter 'format': must be pcap or pcapng, not '%.40s'", fmt);
    snprintf(fname, sizeof fname, "call-%s.%s", id,
             spec.pcap_format == QRY_PCAP ? "pcap" : "pcapng");
    return sanswer(h, c, p, "/api/v1/voip/calls/ID/pcap", &spec, fname);
}
