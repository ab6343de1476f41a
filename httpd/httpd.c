/* httpd.c -- REST API over libmicrohttpd: streamed query results and JSON.
 *
 * One thread per connection (libmicrohttpd's), so a slow client only slows
 * its own thread; capture runs on threads of its own and never waits for a
 * response. A packet response is produced by a content reader that pulls
 * packets from the query as the client reads, through a small buffer: memory
 * per request stays bounded whatever the result size, and when the client
 * goes away libmicrohttpd calls our cleanup, which frees the query. How
 * many connections, for how long, and how slow a client may be are the
 * limits of guard.c; every request passes check_request() before its route. */
#include "httpd/httpd.h"

#include <arpa/inet.h>
#include <assert.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd/httpd_int.h"
#include "httpd/tls.h"
#include "query/query.h"
#include "query/read.h"
#include "auth/audit.h"

#define PEND_LOW (64u << 10) /* refill the response buffer below this */

static const double bucket_le[NBUCKETS] = {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300};



/* ---------- who the client is ---------- */

/* For the access-control layer (permitted(): a subject maps to a
 * principal). The subject DN of the client's certificate, RFC 4514 as
 * GnuTLS writes it ("CN=alice,O=Example" for a certificate made with
 * -subj '/O=Example/CN=alice'), into out (size n). Returns 1 when the
 * client presented a certificate that --tls-client-ca signed (verified
 * again here, whatever the handshake did); 0 when there is none: plain
 * HTTP, TLS without --tls-client-ca, no certificate, or one not trusted;
 * RW_EINPUT when the DN does not fit n (never truncated). */
static int client_cert_subject(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    return ci ? httpd_tls_client_subject(ci->tls_session, out, n) : 0;
}

/* The CN of an RFC 4514 subject ("O=Example,CN=alice" -> "alice"); -1 if
 * there is none, it is escaped or it does not fit. */
static int subject_cn(const char *subj, char *cn, size_t n)
{
    for (const char *p = subj; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL) {
        if (strncmp(p, "CN=", 3))
            continue;
        size_t l = strcspn(p + 3, ",+\\");
        if (l == 0 || l >= n || (p[3 + l] && p[3 + l] != ','))
            return -1;
        memcpy(cn, p + 3, l);
        cn[l] = 0;
        return 0;
    }
    return -1;
}

/* "ADDR:PORT" of the client, for the audit trail. */
void hd_client_addr(struct MHD_Connection *c, char *out, size_t n)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    char host[64] = "?";
    int port = 0;
    out[0] = 0;
    if (!ci || !ci->client_addr)
        return;
    if (ci->client_addr->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)ci->client_addr;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, n, "%s:%d", host, port);
    } else if (ci->client_addr->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)ci->client_addr;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, n, "[%s]:%d", host, port);
    }
}

/* ---------- small helpers ---------- */

static enum MHD_Result header_bytes(void *cls, enum MHD_ValueKind kind, const char *k,
                                    const char *v)
{
    (void)kind;
    *(size_t *)cls += strlen(k) + (v ? strlen(v) : 0) + 4;
    return MHD_YES;
}

static enum MHD_Result count_hosts(void *cls, enum MHD_ValueKind kind, const char *k,
                                   const char *v)
{
    (void)kind;
    (void)v;
    *(int *)cls += !strcasecmp(k, MHD_HTTP_HEADER_HOST);
    return MHD_YES;
}

static enum MHD_Result collect(void *cls, enum MHD_ValueKind kind, const char *k, const char *v)
{
    struct params *p = cls;
    (void)kind;
    if (p->n == MAX_PARAMS) {
        p->overflow = 1;
        return MHD_NO;
    }
    p->k[p->n] = k;
    p->v[p->n++] = v ? v : "";
    return MHD_YES;
}

const char *hd_param(const struct params *p, const char *k)
{
    const char *v = NULL;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->k[i], k))
            v = p->v[i];
    return v;
}

/* First parameter not in the NULL-terminated allowed list, or NULL. */
const char *hd_unknown_param(const struct params *p, const char *const *allowed)
{
    for (int i = 0; i < p->n; i++) {
        const char *const *a;
        for (a = allowed; *a && strcmp(*a, p->k[i]); a++)
            ;
        if (!*a)
            return p->k[i];
    }
    return NULL;
}

/* The first parameter given more than once whose name is not in the
 * NULL-terminated list repeatable, or NULL. */
const char *hd_repeated_param(const struct params *p, const char *const *repeatable)
{
    for (int i = 0; i < p->n; i++) {
        const char *const *r;
        for (r = repeatable; *r && strcmp(*r, p->k[i]); r++)
            ;
        if (*r)
            continue;
        for (int j = 0; j < i; j++)
            if (!strcmp(p->k[j], p->k[i]))
                return p->k[i];
    }
    return NULL;
}

/* Queue body (copied) with the headers every text and JSON answer carries,
 * plus the header xname: xval when xname is not NULL. */
enum MHD_Result hd_send_body(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 const char *body, const char *xname, const char *xval)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *)body,
                                                             MHD_RESPMEM_MUST_COPY);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", ctype);
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (xname)
        MHD_add_response_header(r, xname, xval);
    enum MHD_Result ret = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return ret;
}

enum MHD_Result hd_send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 const char *body)
{
    return hd_send_body(c, status, ctype, body, NULL, NULL);
}

/* Takes ownership of j. */
enum MHD_Result hd_send_json_x(struct MHD_Connection *c, unsigned status, json_t *j,
                                   const char *xname, const char *xval)
{
    char *s = j ? json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
    if (!s) {
        /* json_pack() refuses a string that is not UTF-8 (a name or a
         * reason stored from bytes nobody checked): an answer all the same,
         * never a connection closed without one. */
        rw_error("http: an answer could not be encoded as JSON (a string that is not UTF-8?)");
        return hd_send_body(c, 500, "application/json",
                            "{\"error\": {\"code\": \"internal\", \"message\": \"the answer "
                            "could not be encoded as JSON (a stored string is not UTF-8)\"}}\n",
                            NULL, NULL);
    }
    size_t n = strlen(s);
    char *t = realloc(s, n + 2);
    if (!t) {
        free(s);
        return MHD_NO;
    }
    t[n] = '\n';
    t[n + 1] = 0;
    enum MHD_Result ret = hd_send_body(c, status, "application/json", t, xname, xval);
    free(t);
    return ret;
}

enum MHD_Result hd_send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    return hd_send_json_x(c, status, j, NULL, NULL);
}

/* An error answer {"error":{"code":…,"message":…}}, with one extra header
 * when xname is not NULL (Allow for 405, Retry-After for 503). */
enum MHD_Result hd_send_error_x(struct httpd *h, struct MHD_Connection *c, unsigned status,
                                    const char *code, const char *xname, const char *xval,
                                    const char *fmt, ...)
{
    char msg[RW_ERRSZ + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* A message quotes what the client sent, and may be cut inside a
     * character: JSON needs UTF-8 (jansson refuses the rest, and the client
     * would get no answer at all). */
    hd_utf8_clean(msg);
    atomic_fetch_add(&h->errors, 1);
    return hd_send_json_x(c, status,
                       json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg), xname,
                       xval);
}


/* 400 unknown_parameter naming the parameters the route takes (allowed,
 * NULL-terminated), so the message cannot drift from what is accepted. */
enum MHD_Result hd_send_unknown_param(struct httpd *h, struct MHD_Connection *c,
                                          const char *route, const char *bad,
                                          const char *const *allowed)
{
    char list[256] = "";
    size_t n = 0;
    for (const char *const *a = allowed; *a && n < sizeof list; a++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", a == allowed ? "" : ", ", *a);
    return hd_send_error(h, c, 400, "unknown_parameter", "unknown parameter '%s'; %s takes %s", bad,
                      route, allowed[0] ? list : "none");
}

json_t *hd_jtime(int64_t ns)
{
    char b[48];
    return json_string(rw_time_fmt(ns, b, sizeof b));
}

/* Parse from/to; 0 or the HTTP status already queued is signalled by *bad. */
int hd_parse_window(const struct params *p, int64_t *from, int64_t *to, char *err)
{
    int64_t now = rw_now_ns();
    const char *f = hd_param(p, "from"), *t = hd_param(p, "to");
    *from = RW_TIME_MIN;
    *to = RW_TIME_MAX;
    if (f && rw_time_parse(f, now, from, err) < 0)
        return rw_errctx(err, RW_EINPUT, "parameter 'from'");
    if (t && rw_time_parse(t, now, to, err) < 0)
        return rw_errctx(err, RW_EINPUT, "parameter 'to'");
    if (*from >= *to)
        return rw_err(err, RW_EINPUT, "parameters 'from' and 'to': empty window, 'from' must be "
                      "before 'to'");
    return 0;
}

int hd_parse_count(const char *name, const char *v, int sizes, uint64_t *out, char *err)
{
    char *end;
    if (!v)
        return 0;
    if (sizes) {
        if (rw_size_parse(v, out, err) < 0)
            return rw_errctx(err, RW_EINPUT, "parameter '%s'", name);
        return 0;
    }
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno || !*v || *end || v[0] == '-')
        return rw_err(err, RW_EINPUT, "parameter '%s': expected a whole number, not '%s'", name, v);
    *out = x;
    return 0;
}

/* ---------- /api/v1/packets ---------- */

struct stream {
    struct httpd *h;
    struct MHD_Response *resp; /* ours while libmicrohttpd sends it: damage trailers */
    qry_t *q;
    qry_out_t *out;
    uint8_t *pend;
    size_t plen, poff, pcap;
    int ended, failed;
    int head; /* HEAD: libmicrohttpd sends the headers and never reads */
    struct hd_conn *conn; /* its connection's record (until after stream_free) */
    struct hd_slot slot;  /* its hold on one of --max-queries (guard.c) */
    int pooled;           /* follow=1: a place in the streams' pool instead (streams.c) */
    int audited; /* the request's audit record is written */
    audit_hash_t *hash; /* of the body bytes sent */
    struct auth_principal who;
    char client[80];
    char *filter;       /* copies for the audit record */
    int64_t from, to;
    int64_t start;      /* monotonic, for durations */
    int64_t start_real; /* wall clock at the request */
    uint64_t bytes, packets;
    char what[256];
    struct hd_follow *follow; /* follow=1: new packets after the archive's (follow.c) */
    int archived;             /* the archive's part is out */
};

static int pend_write(void *arg, const void *buf, size_t n)
{
    struct stream *s = arg;
    if (s->plen + n > s->pcap) {
        size_t nc = (s->plen + n) * 2;
        uint8_t *np = realloc(s->pend, nc);
        if (!np)
            return -1;
        s->pend = np;
        s->pcap = nc;
    }
    memcpy(s->pend + s->plen, buf, n);
    s->plen += n;
    return 0;
}

static int stopping(void *arg) { return atomic_load(&((struct httpd *)arg)->stopping); }

/* Each damaged range the answer lacks, as a header X-Rewind-Damage (named
 * by a Trailer header up front): in the trailer of the chunked answer once
 * the last packet is out, or, for ranges known before the first one (those
 * that reindex recorded), in the header as well; each one logged once. */
static void add_losses(struct stream *s, struct MHD_Response *r, int trailer)
{
    char text[RW_ERRSZ];
    size_t n, more;
    const struct qry_loss *l = qry_losses(s->q, &n, &more);
    for (size_t i = 0; i < n; i++) {
        qry_loss_desc(&l[i], text, sizeof text);
        if (trailer) {
            rw_warn("%s: %s", s->what, text);
            MHD_add_response_footer(r, "X-Rewind-Damage", text);
        } else {
            MHD_add_response_header(r, "X-Rewind-Damage", text);
        }
    }
    if (more && trailer) {
        snprintf(text, sizeof text, "and %zu more damaged ranges", more);
        rw_warn("%s: %s", s->what, text);
        MHD_add_response_footer(r, "X-Rewind-Damage", text);
    }
}

/* Each capture point the answer leaves out (qry_skipped()): a header
 * X-Rewind-Warning and a line in the log. */
static void add_skipped(struct stream *s, struct MHD_Response *r)
{
    size_t n, more;
    char v[RW_ERRSZ + 128];
    const char *const *l = qry_skipped(s->q, &n, &more);
    for (size_t i = 0; i < n; i++) {
        rw_warn("%s: %s", s->what, l[i]);
        hd_bounded_value(l[i], RW_ERRSZ, v, sizeof v);
        MHD_add_response_header(r, "X-Rewind-Warning", v);
    }
    if (more) {
        snprintf(v, sizeof v, "and %zu more capture points left out", more);
        MHD_add_response_header(r, "X-Rewind-Warning", v);
    }
}

/* The audit record of a packet answer, written once: when its body is
 * complete and before its last chunk leaves (status 200), or when it ends
 * otherwise (a client gone, a cut). 0, or <0 when the trail cannot be
 * written (the answer must then not complete). */
static int audit_stream(struct stream *s, int status, const char *detail)
{
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ] = "";
    struct audit_rec r;
    if (s->audited || !s->h->audit)
        return 0;
    s->audited = 1;
    if (s->hash && audit_hash_final(s->hash, hex, err) < 0)
        hex[0] = 0;
    s->hash = NULL;
    audit_rec_init(&r);
    r.time_ns = s->start_real;
    r.principal = s->who.name;
    r.role = auth_role_name(s->who.role);
    r.method = s->who.method;
    r.client = s->client;
    r.route = s->head ? "HEAD /api/v1/packets" : "GET /api/v1/packets";
    r.from_ns = s->from;
    r.to_ns = s->to;
    r.filter = s->filter;
    r.status = status;
    r.packets = s->packets;
    r.bytes = s->bytes;
    r.sha256 = hex[0] ? hex : NULL;
    r.duration_ns = rw_mono_ns() - s->start;
    r.detail = detail;
    if (audit_append(s->h->audit, &r, err) < 0) {
        rw_error("%s: audit trail: %s; the answer is cut", s->what, err);
        return -1;
    }
    return 0;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    char err[RW_ERRSZ];
    (void)pos;
    /* Asked for more: the client is reading again. A slot the watchdog took
     * back while it stalled is held again (the answer was admitted: it
     * goes on even when that puts the count above --max-queries). */
    atomic_fetch_add(&s->slot.reads, 1);
    if (!s->pooled && atomic_exchange(&s->slot.held, 1) == 0)
        atomic_fetch_add(&s->h->active, 1);
    if (atomic_load(&s->h->stopping)) {
        rw_warn("%s: cut by shutdown after %llu bytes", s->what, (unsigned long long)s->bytes);
        s->failed = 1;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    /* The watchdog cut the connection (its client hung up, say): a quiet
     * follow stream is asked again every second and ends here, instead of
     * holding its place until a packet comes to fail on the socket. */
    if (s->conn && atomic_load(&s->conn->cut)) {
        s->failed = 1;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (s->poff == s->plen) {
        s->poff = s->plen = 0;
        while (!s->ended && s->plen < PEND_LOW) {
            struct qry_pkt pkt;
            int rc = s->archived ? 0 : qry_next(s->q, &pkt, err);
            if (rc == 0 && s->follow) { /* then what is stored from now on */
                s->archived = 1;
                rc = hd_follow_next(s->follow, &pkt, err);
                if (rc == 0 && !hd_follow_done(s->follow)) {
                    /* Nothing new yet: what the writer holds goes out now,
                     * not when its buffer fills. */
                    if (qry_out_flush(s->out) < 0)
                        return MHD_CONTENT_READER_END_WITH_ERROR;
                    if (s->plen)
                        break;
                    return 0; /* asked again */
                }
            }
            if (rc < 0) {
                /* A short pcap would pass for a complete answer: end the
                 * transfer with an error instead. */
                if (rc == RW_ESTOP)
                    rw_warn("%s: cut by shutdown after %llu bytes", s->what,
                            (unsigned long long)s->bytes);
                else
                    rw_error("%s: failed after %llu bytes: %s", s->what,
                             (unsigned long long)s->bytes, err);
                s->failed = 1;
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            if (rc == 0) {
                s->ended = 1;
                int r = qry_out_losses(s->out, s->q);
                r = qry_out_close(s->out) < 0 ? RW_EIO : r;
                s->out = NULL;
                add_losses(s, s->resp, 1);
                if (r < 0)
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                break;
            }
            s->packets++;
            if (qry_out_packet(s->out, &pkt) < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (s->plen == 0 && s->ended) {
            /* Every body byte is out; the last chunk is not: the record
             * (with the hash of those bytes) is on disk first. */
            if (audit_stream(s, 200, NULL) < 0) {
                s->failed = 1;
                return MHD_CONTENT_READER_END_WITH_ERROR;
            }
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
    }
    size_t n = s->plen - s->poff < max ? s->plen - s->poff : max;
    memcpy(buf, s->pend + s->poff, n);
    if (s->hash)
        audit_hash_update(s->hash, buf, n);
    s->poff += n;
    s->bytes += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    struct httpd *h = s->h;
    double secs = (double)(rw_mono_ns() - s->start) / 1e9;
    int cut = s->conn ? atomic_load(&s->conn->cut) : 0;
    int b;
    for (b = 0; b < NBUCKETS && secs > bucket_le[b]; b++)
        ;
    atomic_fetch_add(&h->buckets[b], 1);
    atomic_fetch_add(&h->dur_us_sum, (uint64_t)(secs * 1e6));
    atomic_fetch_add(&h->exported, s->bytes);
    char dmg[RW_ERRSZ];
    if (qry_damage_desc(s->q, dmg, sizeof dmg))
        rw_warn("%s: %s", s->what, dmg);
    /* libmicrohttpd ends an answer in flight without asking stream_read()
     * when the daemon stops (the thread may be blocked sending): the
     * stopping flag, set before MHD_stop_daemon(), tells the two apart. */
    if (s->head)
        rw_info("%s: HEAD answered with the headers only", s->what);
    else if (!s->ended && !s->failed && atomic_load(&h->stopping))
        rw_warn("%s: cut by shutdown after %llu bytes", s->what, (unsigned long long)s->bytes);
    else if (!s->ended && !s->failed && cut)
        rw_warn("%s: cut after %llu bytes: %s", s->what, (unsigned long long)s->bytes,
                hd_cut_reason(cut));
    else if (!s->ended && !s->failed)
        rw_info("%s: client went away after %llu bytes", s->what, (unsigned long long)s->bytes);
    else if (s->ended)
        rw_info("%s: %llu packets, %llu bytes in %.3f s", s->what, (unsigned long long)s->packets,
                (unsigned long long)s->bytes, secs);
    if (s->head)
        (void)audit_stream(s, 200, "headers only");
    else if (!s->ended && !s->failed && atomic_load(&h->stopping))
        (void)audit_stream(s, 499, "cut by shutdown");
    else if (!s->ended && !s->failed && cut)
        (void)audit_stream(s, 499, hd_cut_reason(cut));
    else if (!s->ended && !s->failed)
        (void)audit_stream(s, 499, "client went away");
    else if (s->failed)
        (void)audit_stream(s, 500, "answer failed or was cut");
    audit_hash_free(s->hash);
    free(s->filter);
    if (s->out)
        (void)!qry_out_close(s->out);
    hd_follow_free(s->follow);
    qry_free(s->q);
    free(s->pend);
    hd_conn_slot(h, s->conn, NULL);
    if (s->pooled)
        hd_stream_give(h, s->who.name);
    else if (atomic_exchange(&s->slot.held, 0) == 1)
        atomic_fetch_sub(&h->active, 1);
    free(s);
}

static void fname_time(int64_t ns, const char *dflt, char *buf, size_t n)
{
    char t[48];
    if (ns == RW_TIME_MIN || ns == RW_TIME_MAX) {
        snprintf(buf, n, "%s", dflt);
        return;
    }
    rw_time_fmt(ns, t, sizeof t);
    /* 2026-11-22T14:00:00.000000000Z -> 20261122T140000Z */
    snprintf(buf, n, "%.4s%.2s%.2sT%.2s%.2s%.2sZ", t, t + 5, t + 8, t + 11, t + 14, t + 17);
}

void hd_audit(struct httpd *h, const struct params *p, const char *path, struct audit_rec *ar)
{
    char err[RW_ERRSZ], route[96];
    if (!h->audit)
        return;
    snprintf(route, sizeof route, "%s %s", p->head ? "HEAD" : "GET", path);
    ar->principal = p->who.name;
    ar->role = auth_role_name(p->who.role);
    ar->method = p->who.method;
    ar->client = p->client;
    ar->route = route;
    if (audit_append(h->audit, ar, err) < 0)
        rw_error("audit trail: %s", err);
}

/* A refused request for packets, on the record: who asked, from where. */
static void audit_refusal(struct httpd *h, const struct params *p, const char *path, int status)
{
    struct audit_rec ar;
    audit_rec_init(&ar);
    ar.filter = hd_param(p, "filter");
    ar.status = status;
    ar.detail = "refused";
    hd_audit(h, p, path, &ar);
}

static enum MHD_Result packets_answer(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p, struct qry_spec *spec, int format);

static enum MHD_Result route_packets(struct httpd *h, struct MHD_Connection *c,
                                     const struct params *p)
{
    static const char *const allowed[] = {"from",   "to",          "filter",      "point",
                                          "limit",  "limit_packets", "limit_bytes", "format",
                                          "payload", "community_id", "follow", NULL};
    char err[RW_ERRSZ];
    if (h->federate) /* rewindd --federate: httpd/federate.c */
        return hd_route_fed_packets(h, c, p);
    const char *bad = hd_unknown_param(p, allowed), *points[MAX_PARAMS + 1];
    struct qry_spec spec = {0};
    int npoints = 0, format = QRY_PCAP;
    static const char *const repeatable[] = {"point", NULL};
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/packets", bad, allowed);
    if ((bad = hd_repeated_param(p, repeatable)))
        return hd_send_error(h, c, 400, "bad_parameter",
                             "parameter '%s' given more than once (only point may repeat)", bad);
    if (hd_parse_window(p, &spec.from, &spec.to, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    const char *fmt = hd_param(p, "format");
    if (fmt && !strcmp(fmt, "pcapng"))
        format = QRY_PCAPNG;
    else if (fmt && strcmp(fmt, "pcap"))
        return hd_send_error(h, c, 400, "bad_parameter",
                          "parameter 'format': must be pcap or pcapng, not '%s'", fmt);
    /* Payload for the roles that may read it; the others (noc) get every
     * packet cut after its headers, and asking for more is a 403. */
    const char *pl = hd_param(p, "payload");
    if (pl && strcmp(pl, "full") && strcmp(pl, "headers"))
        return hd_send_error(h, c, 400, "bad_parameter",
                          "parameter 'payload': must be full or headers, not '%s'", pl);
    int may_payload = auth_allows(p->who.role, AUTH_PERM_PAYLOAD);
    if (pl && !strcmp(pl, "full") && !may_payload) {
        audit_refusal(h, p, "/api/v1/packets", 403);
        return hd_send_error(h, c, 403, "forbidden",
                          "packet payload needs the role %s; %s has the role %s (ask for "
                          "payload=headers)", auth_roles_for(AUTH_PERM_PAYLOAD), p->who.name,
                          auth_role_name(p->who.role));
    }
    spec.headers_only = !may_payload || (pl && !strcmp(pl, "headers"));
    if (hd_parse_count("limit", hd_param(p, "limit"), 0, &spec.limit_packets, err) < 0 ||
        hd_parse_count("limit_packets", hd_param(p, "limit_packets"), 0, &spec.limit_packets, err) < 0 ||
        hd_parse_count("limit_bytes", hd_param(p, "limit_bytes"), 1, &spec.limit_bytes, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->k[i], "point"))
            points[npoints++] = p->v[i];
    points[npoints] = NULL;
    spec.points = npoints ? points : NULL;
    spec.filter = hd_param(p, "filter");
    char *cidf = NULL; /* community_id: its flows' filter (and filter), freed below */
    if (hd_param(p, "community_id")) {
        int crc = hd_cid_filter(h, hd_param(p, "community_id"), &spec, &cidf, err);
        if (crc < 0)
            return hd_send_error(h, c, crc == RW_EINPUT ? 400 : crc == RW_ENOTFOUND ? 404 : 500,
                                 crc == RW_EINPUT ? "bad_parameter"
                                 : crc == RW_ENOTFOUND ? "not_found" : "internal", "%s", err);
        spec.filter = cidf;
    }
    enum MHD_Result ret = packets_answer(h, c, p, &spec, format);
    free(cidf);
    return ret;
}

/* The rest of /api/v1/packets once its parameters are known. */
static enum MHD_Result packets_answer(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p, struct qry_spec *specp, int format)
{
    char err[RW_ERRSZ];
    struct qry_spec spec = *specp;
    /* A follow=1 answer is long-lived: a place in the streams' pool, not a
     * query slot (streams.c). */
    const char *fw0 = hd_param(p, "follow");
    int pooled = fw0 && !strcmp(fw0, "1") && !p->head;
    if (pooled && hd_stream_take(h, p->who.name, err) < 0)
        return hd_send_error_x(h, c, 503, "busy", "Retry-After", "5", "%s", err);
    if (!pooled && atomic_fetch_add(&h->active, 1) >= h->max_queries) {
        atomic_fetch_sub(&h->active, 1);
        return hd_send_error_x(h, c, 503, "busy", "Retry-After", "2",
                            "%d queries already in progress (rewindd --max-queries); retry shortly",
                            h->max_queries);
    }
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        if (pooled)
            hd_stream_give(h, p->who.name);
        else
            atomic_fetch_sub(&h->active, 1);
        return hd_send_error(h, c, 500, "internal", "out of memory");
    }
    s->h = h;
    s->pooled = pooled;
    atomic_store(&s->slot.held, pooled ? 0 : 1);
    s->head = p->head;
    s->start = rw_mono_ns();
    s->start_real = rw_now_ns();
    s->who = p->who;
    snprintf(s->client, sizeof s->client, "%s", p->client);
    s->from = spec.from;
    s->to = spec.to;
    s->filter = spec.filter ? strdup(spec.filter) : NULL;
    s->hash = h->audit ? audit_hash_new() : NULL;
    snprintf(s->what, sizeof s->what, "%s /api/v1/packets by %s filter '%s'%s",
             p->head ? "HEAD" : "GET", p->who.name, spec.filter ? spec.filter : "",
             spec.headers_only ? " (headers only)" : "");
    enum qry_step step = QRY_STEP_SPEC;
    const char *fw = hd_param(p, "follow");
    int rc = fw && strcmp(fw, "0") && strcmp(fw, "1")
                 ? rw_err(err, RW_EINPUT, "parameter 'follow': 0 or 1, not '%s'", fw)
             : fw && !strcmp(fw, "1") ? hd_follow_start(h, &spec, &s->follow, err) : 0;
    if (rc == 0)
        rc = qry_new_ex(h->ix, &spec, &s->q, &step, err);
    int npts = 0;
    const struct qry_point *pts = rc == 0 ? qry_points(s->q, &npts) : NULL;
    if (rc == 0 && s->follow) /* the live points the archive's part lacks */
        pts = hd_follow_points(h, s->follow, pts, &npts);
    if (rc == 0)
        rc = qry_out_new(format, pts, npts, pend_write, s, &s->out, err); /* step stays SPEC */
    if (rc < 0) {
        hd_follow_free(s->follow);
        qry_free(s->q);
        audit_hash_free(s->hash);
        free(s->filter);
        if (s->pooled)
            hd_stream_give(h, s->who.name);
        else
            atomic_fetch_sub(&h->active, 1);
        free(s);
        if (rc == RW_EINPUT)
            return hd_send_error(h, c, 400, step == QRY_STEP_FILTER ? "bad_filter" : "bad_parameter",
                              "%s", err);
        return hd_send_error(h, c, 500, "internal", "%s", err);
    }
    atomic_fetch_add(&h->queries, 1);
    qry_set_cancel(s->q, stopping, h); /* a long scan must not hold up a stop */
    s->conn = hd_conn_of(c);
    if (s->conn && s->pooled)
        atomic_store(&s->conn->longlived, 1);
    if (!p->head)
        hd_conn_slot(h, s->conn, &s->slot);
    /* HEAD: the headers a GET would have, no body. libmicrohttpd sends a
     * callback's chunks even for HEAD; an empty buffer it does not. */
    struct MHD_Response *r =
        p->head ? MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT)
                : MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256 << 10, stream_read, s,
                                                    stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    char f1[32], f2[32], cd[160], fh[HD_ECHO_MAX + 96];
    fname_time(spec.from, "start", f1, sizeof f1);
    fname_time(spec.to, "now", f2, sizeof f2);
    snprintf(cd, sizeof cd, "attachment; filename=\"rewind-%s-%s.%s\"", f1, f2,
             format == QRY_PCAP ? "pcap" : "pcapng");
    MHD_add_response_header(r, "Content-Type", format == QRY_PCAP ? "application/vnd.tcpdump.pcap"
                                                                   : "application/x-pcapng");
    MHD_add_response_header(r, "Content-Disposition", cd);
    MHD_add_response_header(r, "Cache-Control", "no-store"); /* as every answer */
    /* The filter as the server read it, bounded: a header line of the
     * whole of a 27 KB filter is more than clients and proxies take. */
    hd_bounded_value(spec.filter ? spec.filter : "", HD_ECHO_MAX, fh, sizeof fh);
    MHD_add_response_header(r, "X-Rewind-Filter", fh);
    MHD_add_response_header(r, "X-Rewind-Sensor", h->sensor);
    MHD_add_response_header(r, "X-Rewind-Plan", qry_plan_desc(s->q));
    MHD_add_response_header(r, "X-Rewind-Payload", spec.headers_only ? "headers" : "full");
    add_skipped(s, r);
    if (!p->head)
        MHD_add_response_header(r, "Trailer", "X-Rewind-Damage");
    add_losses(s, r, 0);
    s->resp = r;
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    if (p->head)
        stream_free(s); /* logs and audits the HEAD, frees its slot */
    return ret;
}

/* ---------- JSON routes ---------- */

static enum MHD_Result route_segments(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p)
{
    static const char *const allowed[] = {"from", "to", "point", NULL};
    char err[RW_ERRSZ];
    int64_t from, to;
    struct qry_segment *segs = NULL;
    size_t nsegs = 0;
    const char *bad = hd_unknown_param(p, allowed), *points[MAX_PARAMS + 1];
    int npoints = 0, rc;
    static const char *const repeatable[] = {"point", NULL};
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/segments", bad, allowed);
    if ((bad = hd_repeated_param(p, repeatable)))
        return hd_send_error(h, c, 400, "bad_parameter",
                             "parameter '%s' given more than once (only point may repeat)", bad);
    if (hd_parse_window(p, &from, &to, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->k[i], "point"))
            points[npoints++] = p->v[i];
    points[npoints] = NULL;
    if ((rc = qry_segments(h->ix, from, to, npoints ? points : NULL, &segs, &nsegs, err)) < 0)
        return hd_send_error(h, c, rc == RW_EINPUT ? 400 : 500,
                          rc == RW_EINPUT ? "bad_parameter" : "internal", "%s", err);
    json_t *arr = json_array();
    for (size_t i = 0; i < nsegs; i++) {
        const struct qry_segment *s = &segs[i];
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:o,s:o,s:I,s:I,s:I,s:I,s:I,s:b,s:s}", "id",
                           (json_int_t)s->id, "point", s->point, "state",
                           s->open ? "open" : "sealed", "first", hd_jtime(s->first), "last",
                           hd_jtime(s->last), "packets", (json_int_t)s->packets, "bytes",
                           (json_int_t)s->captured_bytes, "wire_bytes", (json_int_t)s->wire_bytes,
                           "file_bytes", (json_int_t)s->pcap_bytes, "stored_bytes",
                           (json_int_t)s->stored_bytes, "compressed", s->compressed, "path",
                           s->path));
    }
    free(segs);
    return hd_send_json(c, 200, json_pack("{s:o}", "segments", arr));
}

/* The audit trail, as JSON lines (the records as written: each carries its
 * hash and its predecessor's). from, to and principal narrow it; at most
 * limit records (default 10000) are sent, the oldest first. */
struct audit_out {
    FILE *f;
    uint64_t n, limit;
};

static int audit_line(void *arg, const struct audit_rec *r, const char *line, size_t len)
{
    struct audit_out *o = arg;
    (void)r;
    if (o->n >= o->limit)
        return 1;
    fwrite(line, 1, len, o->f);
    fputc('\n', o->f);
    o->n++;
    return 0;
}

static enum MHD_Result route_audit(struct httpd *h, struct MHD_Connection *c,
                                   const struct params *p)
{
    static const char *const allowed[] = {"from", "to", "principal", "limit", NULL};
    char err[RW_ERRSZ];
    int64_t from, to;
    uint64_t limit = 10000;
    static const char *const repeatable[] = {NULL};
    const char *bad = hd_unknown_param(p, allowed);
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/audit", bad, allowed);
    if ((bad = hd_repeated_param(p, repeatable)))
        return hd_send_error(h, c, 400, "bad_parameter", "parameter '%s' given more than once",
                             bad);
    if (hd_parse_window(p, &from, &to, err) < 0 ||
        hd_parse_count("limit", hd_param(p, "limit"), 0, &limit, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    if (!limit)
        limit = 10000;
    char *buf = NULL;
    size_t len = 0;
    struct audit_out o = {open_memstream(&buf, &len), 0, limit};
    if (!o.f)
        return hd_send_error(h, c, 500, "internal", "out of memory");
    int rc = audit_list(qry_archive_dir(h->ix), from, to, hd_param(p, "principal"), audit_line, &o,
                        err);
    fclose(o.f);
    if (rc < 0) {
        free(buf);
        return hd_send_error(h, c, 500, "internal", "%s", err);
    }
    enum MHD_Result ret = hd_send_text(c, 200, "application/x-ndjson", buf);
    free(buf);
    return ret;
}

static enum MHD_Result route_holds(struct httpd *h, struct MHD_Connection *c,
                                   const struct params *p)
{
    static const char *const allowed[] = {NULL};
    char err[RW_ERRSZ];
    struct qry_hold *hs = NULL;
    size_t n = 0;
    const char *bad = hd_unknown_param(p, allowed);
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/holds", bad, allowed);
    if (qry_holds(h->ix, &hs, &n, err) < 0)
        return hd_send_error(h, c, 500, "internal", "%s", err);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++) {
        /* Stored as a client wrote them (over the control socket): JSON
         * takes UTF-8 only, and a hold must not vanish from the list. */
        hd_utf8_clean(hs[i].filter);
        hd_utf8_clean(hs[i].reason);
        hd_utf8_clean(hs[i].author);
        json_array_append_new(arr, json_pack("{s:I,s:o,s:o,s:o,s:s,s:s,s:s?}", "id",
                                             (json_int_t)hs[i].id, "from", hd_jtime(hs[i].from),
                                             "to", hd_jtime(hs[i].to), "created",
                                             hd_jtime(hs[i].created), "filter", hs[i].filter,
                                             "reason", hs[i].reason, "author",
                                             hs[i].author[0] ? hs[i].author : NULL));
    }
    free(hs);
    return hd_send_json(c, 200, json_pack("{s:o}", "holds", arr));
}

/* A point's (or the total's) sums as JSON: the names of struct
 * qry_point_status, documented in rewindd(8). */
static json_t *point_json(const struct qry_point_status *p)
{
    json_t *o = json_pack("{s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "name", p->name,
                          "segments", (json_int_t)p->segments, "open_segments",
                          (json_int_t)p->open_segments, "compressed_segments",
                          (json_int_t)p->compressed_segments, "packets", (json_int_t)p->packets,
                          "captured_bytes", (json_int_t)p->captured_bytes, "wire_bytes",
                          (json_int_t)p->wire_bytes, "stored_bytes", (json_int_t)p->stored_bytes,
                          "kernel_drops", (json_int_t)p->kernel_drops, "queue_drops",
                          (json_int_t)p->queue_drops);
    if (p->linktype[0])
        json_object_set_new(o, "linktype", json_string(p->linktype));
    if (p->segments) {
        json_object_set_new(o, "first", hd_jtime(p->first));
        json_object_set_new(o, "last", hd_jtime(p->last));
    }
    if (p->live) {
        json_t *cap = json_pack("{s:b,s:I}", "paused", p->paused, "paused_drops",
                                (json_int_t)p->paused_drops);
        if (p->paused)
            json_object_set_new(cap, "reason", json_string(p->reason));
        json_object_set_new(o, "capture", cap);
    }
    return o;
}

static enum MHD_Result route_status(struct httpd *h, struct MHD_Connection *c,
                                    const struct params *p)
{
    static const char *const allowed[] = {NULL};
    char err[RW_ERRSZ];
    struct qry_status st;
    const char *bad = hd_unknown_param(p, allowed);
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/status", bad, allowed);
    if (qry_status_get(h->ix, h->live, h->live_arg, &st, err) < 0)
        return hd_send_error(h, c, 500, "internal", "%s", err);
    json_t *arr = json_array();
    for (size_t i = 0; i < st.npoints; i++)
        json_array_append_new(arr, point_json(&st.points[i]));
    json_t *j = json_pack("{s:s,s:s,s:o,s:o,s:{s:I,s:I},s:{s:I,s:I,s:I,s:I,s:b},s:I}",
                          "sensor", h->sensor, "archive", st.archive, "points", arr, "total",
                          point_json(&st.total), "disk", "segment_bytes",
                          (json_int_t)st.total.stored_bytes, "index_bytes",
                          (json_int_t)st.index_bytes, "retention", "quota_bytes",
                          (json_int_t)st.quota_bytes, "quota_pct", (json_int_t)st.quota_pct,
                          "max_age_seconds", (json_int_t)(st.max_age_ns / RW_NS_PER_SEC),
                          "min_horizon_seconds", (json_int_t)(st.min_horizon_ns / RW_NS_PER_SEC),
                          "below_min_horizon", st.below_horizon, "holds", (json_int_t)st.holds);
    if (st.disk_available)
        json_object_set_new(json_object_get(j, "disk"), "available_bytes",
                            json_integer((json_int_t)st.disk_available));
    if (st.total.segments) {
        json_object_set_new(j, "oldest", hd_jtime(st.total.first));
        json_object_set_new(j, "newest", hd_jtime(st.total.last));
    }
    qry_status_free(&st);
    hd_cases_status(h, j);
    return hd_send_json(c, 200, j);
}

static void esc_label(const char *in, char *out, size_t n)
{
    size_t o = 0;
    for (; *in && o + 3 < n; in++) {
        if (*in == '"' || *in == '\\')
            out[o++] = '\\';
        out[o++] = *in;
    }
    out[o] = 0;
}

static enum MHD_Result route_metrics(struct httpd *h, struct MHD_Connection *c,
                                     const struct params *p)
{
    char err[RW_ERRSZ], lab[160];
    struct qry_status st;
    (void)p;
    if (qry_status_get(h->ix, h->live, h->live_arg, &st, err) < 0)
        return hd_send_error(h, c, 500, "internal", "%s", err);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        qry_status_free(&st);
        return hd_send_error(h, c, 500, "internal", "out of memory");
    }
    static const char *const fams[][3] = {
        {"rewind_captured_packets_total", "counter", "Packets stored per capture point."},
        {"rewind_captured_bytes_total", "counter",
         "Captured bytes stored per capture point (sum of captured lengths)."},
        {"rewind_wire_bytes_total", "counter",
         "Bytes on the wire of the packets stored per capture point (sum of original lengths)."},
        {"rewind_kernel_drops_total", "counter", "Packets the kernel dropped (pcap_stats)."},
        {"rewind_queue_drops_total", "counter", "Packets rewind could not queue for writing."}};
    for (int m = 0; m < 5; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fams[m][0], fams[m][2], fams[m][0], fams[m][1]);
        for (size_t i = 0; i < st.npoints; i++) {
            const struct qry_point_status *q = &st.points[i];
            uint64_t v = m == 0 ? q->packets : m == 1 ? q->captured_bytes : m == 2 ? q->wire_bytes
                         : m == 3 ? q->kernel_drops : q->queue_drops;
            esc_label(q->name, lab, sizeof lab);
            fprintf(f, "%s{point=\"%s\"} %llu\n", fams[m][0], lab, (unsigned long long)v);
        }
    }
    fprintf(f, "# HELP rewind_disk_bytes Bytes on disk by kind.\n# TYPE rewind_disk_bytes gauge\n");
    fprintf(f, "rewind_disk_bytes{kind=\"segments\"} %llu\n",
            (unsigned long long)st.total.stored_bytes);
    fprintf(f, "rewind_disk_bytes{kind=\"index\"} %llu\n", (unsigned long long)st.index_bytes);
    if (st.disk_available)
        fprintf(f, "# HELP rewind_disk_available_bytes Bytes available on the archive's file "
                   "system (df's Avail).\n# TYPE rewind_disk_available_bytes gauge\n"
                   "rewind_disk_available_bytes %llu\n",
                (unsigned long long)st.disk_available);
    if (h->audit) {
        uint64_t seq;
        char hex[AUDIT_HEXSZ];
        audit_last(h->audit, &seq, hex);
        fprintf(f, "# HELP rewind_audit_head The audit trail's last record: its sequence number, "
                   "and its hash as a label, to be recorded off the machine (rewind audit verify "
                   "--head).\n# TYPE rewind_audit_head gauge\nrewind_audit_head{hash=\"%s\"} %llu\n",
                hex, (unsigned long long)seq);
    }
    if (st.min_horizon_ns)
        fprintf(f, "# HELP rewind_retention_below_min_horizon 1 while retention has deleted "
                   "packets within --min-horizon of the newest and the archive reaches back "
                   "less than it, else 0.\n# TYPE rewind_retention_below_min_horizon gauge\n"
                   "rewind_retention_below_min_horizon %d\n", st.below_horizon);
    size_t nlive = 0;
    for (size_t i = 0; i < st.npoints; i++)
        nlive += st.points[i].live;
    if (nlive) {
        fprintf(f, "# HELP rewind_capture_paused 1 while live capture on the point is paused "
                   "(disk full or I/O error), else 0.\n# TYPE rewind_capture_paused gauge\n");
        for (size_t i = 0; i < st.npoints; i++) {
            if (!st.points[i].live)
                continue;
            esc_label(st.points[i].name, lab, sizeof lab);
            fprintf(f, "rewind_capture_paused{point=\"%s\"} %d\n", lab, st.points[i].paused ? 1 : 0);
        }
        fprintf(f, "# HELP rewind_capture_paused_drops_total Packets dropped because capture on "
                   "the point was paused, since the daemon started.\n"
                   "# TYPE rewind_capture_paused_drops_total counter\n");
        for (size_t i = 0; i < st.npoints; i++) {
            if (!st.points[i].live)
                continue;
            esc_label(st.points[i].name, lab, sizeof lab);
            fprintf(f, "rewind_capture_paused_drops_total{point=\"%s\"} %llu\n", lab,
                    (unsigned long long)st.points[i].paused_drops);
        }
    }
    hd_ident_metrics(h, f);
    hd_cases_metrics(h, f);
    fprintf(f, "# HELP rewind_http_requests_total HTTP requests received.\n"
               "# TYPE rewind_http_requests_total counter\nrewind_http_requests_total %llu\n",
            (unsigned long long)atomic_load(&h->requests));
    fprintf(f, "# HELP rewind_http_errors_total HTTP requests answered with an error.\n"
               "# TYPE rewind_http_errors_total counter\nrewind_http_errors_total %llu\n",
            (unsigned long long)atomic_load(&h->errors));
    fprintf(f, "# HELP rewind_queries_total Packet queries served.\n"
               "# TYPE rewind_queries_total counter\nrewind_queries_total %llu\n",
            (unsigned long long)atomic_load(&h->queries));
    fprintf(f, "# HELP rewind_exported_bytes_total Bytes of capture files sent.\n"
               "# TYPE rewind_exported_bytes_total counter\nrewind_exported_bytes_total %llu\n",
            (unsigned long long)atomic_load(&h->exported));
    uint64_t lost[3];
    qry_loss_totals(lost);
    fprintf(f, "# HELP rewind_damaged_blocks_total 64 KiB blocks of segment files that answers "
               "lacked because they are damaged: unreadable (met while reading), recorded (by "
               "'rewind reindex'), accepted (recorded, and the loss accepted).\n"
               "# TYPE rewind_damaged_blocks_total counter\n"
               "rewind_damaged_blocks_total{state=\"unreadable\"} %llu\n"
               "rewind_damaged_blocks_total{state=\"recorded\"} %llu\n"
               "rewind_damaged_blocks_total{state=\"accepted\"} %llu\n",
            (unsigned long long)lost[0], (unsigned long long)lost[1], (unsigned long long)lost[2]);
    fprintf(f, "# HELP rewind_http_streams Long-lived answers open (follow=1, pull intercept).\n"
               "# TYPE rewind_http_streams gauge\nrewind_http_streams %d\n", hd_streams_open(h));
    fprintf(f, "# HELP rewind_queries_active Packet queries in progress.\n"
               "# TYPE rewind_queries_active gauge\nrewind_queries_active %d\n",
            atomic_load(&h->active));
    pthread_mutex_lock(&h->g.lock);
    int nconn = h->g.n;
    pthread_mutex_unlock(&h->g.lock);
    fprintf(f, "# HELP rewind_http_connections HTTP connections open.\n"
               "# TYPE rewind_http_connections gauge\nrewind_http_connections %d\n", nconn);
    fprintf(f, "# HELP rewind_http_refused_total Requests answered 503 because their connection "
               "was over --max-connections or --max-client-connections.\n"
               "# TYPE rewind_http_refused_total counter\nrewind_http_refused_total %llu\n",
            (unsigned long long)atomic_load(&h->g.refused));
    fprintf(f, "# HELP rewind_http_cut_total Connections the server cut: idle (no request "
               "within --idle-timeout), slow (an answer read slower than --min-rate over "
               "--send-timeout) or gone (the client hung up while its answer waited).\n"
               "# TYPE rewind_http_cut_total counter\n"
               "rewind_http_cut_total{reason=\"idle\"} %llu\n"
               "rewind_http_cut_total{reason=\"slow\"} %llu\n"
               "rewind_http_cut_total{reason=\"gone\"} %llu\n",
            (unsigned long long)atomic_load(&h->g.cut_idle),
            (unsigned long long)atomic_load(&h->g.cut_slow),
            (unsigned long long)atomic_load(&h->g.cut_gone));
    if (h->metrics)
        h->metrics(h->metrics_arg, f);
    fprintf(f, "# HELP rewind_query_duration_seconds Packet query duration, first byte to last.\n"
               "# TYPE rewind_query_duration_seconds histogram\n");
    uint64_t cum = 0;
    for (int b = 0; b <= NBUCKETS; b++) {
        cum += atomic_load(&h->buckets[b]);
        if (b < NBUCKETS)
            fprintf(f, "rewind_query_duration_seconds_bucket{le=\"%g\"} %llu\n", bucket_le[b],
                    (unsigned long long)cum);
        else
            fprintf(f, "rewind_query_duration_seconds_bucket{le=\"+Inf\"} %llu\n",
                    (unsigned long long)cum);
    }
    fprintf(f, "rewind_query_duration_seconds_sum %.6f\n",
            (double)atomic_load(&h->dur_us_sum) / 1e6);
    fprintf(f, "rewind_query_duration_seconds_count %llu\n", (unsigned long long)cum);
    fclose(f);
    qry_status_free(&st);
    enum MHD_Result ret = hd_send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf);
    free(buf);
    return ret;
}

/* ---------- the route table ---------- */

static enum MHD_Result route_healthz(struct httpd *h, struct MHD_Connection *c,
                                     const struct params *p)
{
    (void)h;
    (void)p;
    return hd_send_text(c, 200, "text/plain", "ok\n");
}

/* Every route the API answers, with the methods it takes and the
 * permission a client needs (httpd.h). This table is the one place a
 * request is let through: a path not here is a 404, a method not listed a
 * 405, a permission not held (once principals exist) a 403. */
struct route {
    struct httpd_route r; /* first: httpd_route_find() returns it */
    hd_handler_fn *handler;
};
static const struct route routes[] = {
    {{"/api/v1/packets", "GET, HEAD", AUTH_PERM_PACKETS}, route_packets},
    {{"/api/v1/segments", "GET, HEAD", AUTH_PERM_STATUS}, route_segments},
    {{"/api/v1/status", "GET, HEAD", AUTH_PERM_STATUS}, route_status},
    {{"/api/v1/holds", "GET, HEAD", AUTH_PERM_HOLDS}, route_holds},
    {{"/api/v1/flows", "GET, HEAD", AUTH_PERM_FLOWS}, hd_route_flows},
    {{"/api/v1/top", "GET, HEAD", AUTH_PERM_FLOWS}, hd_route_top},
    {{"/api/v1/timeline", "GET, HEAD", AUTH_PERM_FLOWS}, hd_route_timeline},
    {{"/api/v1/audit", "GET, HEAD", AUTH_PERM_ADMIN}, route_audit},
    {{"/api/v1/cases", "GET, HEAD, POST", AUTH_PERM_CASES}, hd_route_cases},
    {{"/api/v1/cases/{id}", "GET, HEAD, PATCH, DELETE", AUTH_PERM_CASES}, hd_route_case},
    {{"/api/v1/cases/{id}/intercept", "GET, HEAD", AUTH_PERM_CASES}, hd_route_case_intercept},
    {{"/api/v1/cases/{id}/exports", "GET, HEAD, POST", AUTH_PERM_CASES}, hd_route_case_exports},
    {{"/api/v1/identities", "GET, HEAD, POST", AUTH_PERM_ADMIN}, hd_route_identities},
    {{"/metrics", "GET, HEAD", AUTH_PERM_METRICS}, route_metrics},
    {{"/healthz", "GET, HEAD", AUTH_PERM_NONE}, route_healthz},
    {{"/api/v1/smtp", "GET, HEAD", AUTH_PERM_PAYLOAD}, hd_route_smtp},
    {{"/api/v1/smtp/messages/{id}", "GET, HEAD", AUTH_PERM_PAYLOAD}, hd_route_smtp_message},
    {{"/api/v1/voip/calls", "GET, HEAD", AUTH_PERM_PAYLOAD}, hd_route_calls},
    {{"/api/v1/voip/calls/{id}/pcap", "GET, HEAD", AUTH_PERM_PAYLOAD}, hd_route_call},
    {{"/", "GET, HEAD", AUTH_PERM_NONE}, hd_route_web},
    {{"/ui/*", "GET, HEAD", AUTH_PERM_NONE}, hd_route_web},
};
#define NROUTES (sizeof routes / sizeof routes[0])

const struct httpd_route *httpd_route_at(size_t i) { return i < NROUTES ? &routes[i].r : NULL; }

/* path against a route's pattern: equal, but for a segment "{id}" of the
 * pattern, which takes any one non-empty segment of the path. */
static int path_matches(const char *pat, const char *path)
{
    while (*pat) {
        if (!strncmp(pat, "{id}", 4) && (pat[4] == '/' || !pat[4])) {
            size_t l = strcspn(path, "/");
            if (l == 0)
                return 0;
            pat += 4;
            path += l;
        } else if (*pat++ != *path++) {
            return 0;
        }
    }
    return !*path;
}

const struct httpd_route *httpd_route_find(const char *path)
{
    for (size_t i = 0; i < NROUTES; i++)
        if (path_matches(routes[i].r.path, path))
            return &routes[i].r;
    for (size_t i = 0; i < NROUTES; i++) { /* "/a/b/" then a star: "/a/b/" and more */
        size_t l = strlen(routes[i].r.path);
        if (l >= 2 && !strcmp(routes[i].r.path + l - 2, "/*") &&
            !strncmp(path, routes[i].r.path, l - 1) && path[l - 1])
            return &routes[i].r;
    }
    return NULL;
}

int httpd_route_allows(const struct httpd_route *r, const char *method)
{
    size_t ml = strlen(method);
    for (const char *m = r->methods; *m; m += strspn(m, ", ")) {
        size_t l = strcspn(m, ", ");
        if (l == ml && !strncmp(m, method, l))
            return 1;
        m += l;
    }
    return 0;
}

/* Whether tokens are defined, looked up at most once a second: with none,
 * the API is open (the daemon then listens on loopback only, see
 * rewindd(8) SECURITY); with one, every route but /healthz needs one. */
static int tokens_defined(struct httpd *h)
{
    int64_t now = rw_mono_ns();
    uint64_t gen = auth_token_generation();
    if (now - atomic_load(&h->tokens_at) > RW_NS_PER_SEC || gen != atomic_load(&h->tokens_gen)) {
        atomic_store(&h->tokens_gen, gen);
        char err[RW_ERRSZ];
        int rc = auth_tokens_defined(h->ix, rw_now_ns(), err);
        /* An index that cannot be read counts as "tokens defined": closed,
         * never open by accident. */
        atomic_store(&h->tokens, rc != 0);
        atomic_store(&h->tokens_at, now);
    }
    /* Beyond loopback the API is never open: once the last token is revoked
     * or has expired, a request needs a token that nobody holds. */
    return h->exposed || atomic_load(&h->tokens);
}

/* The one gate: who the client is, and whether its role allows route r.
 * MHD_YES with *who filled when it may go on; otherwise the 401 or 403 was
 * sent and *sent is set. Tokens are never logged or echoed. */
static enum MHD_Result permitted(struct httpd *h, struct MHD_Connection *c,
                                 const struct httpd_route *r, struct auth_principal *who,
                                 int *sent)
{
    char err[RW_ERRSZ];
    const char *tok;
    size_t n;
    memset(who, 0, sizeof *who);
    *sent = 1;
    if (!tokens_defined(h)) {
        snprintf(who->name, sizeof who->name, "anyone");
        who->role = AUTH_ADMIN;
        who->method = "open";
        *sent = 0;
        return MHD_YES;
    }
    const char *hv = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    who->method = "none";
    snprintf(who->name, sizeof who->name, "nobody");
    if (r->perm == AUTH_PERM_NONE) {
        *sent = 0;
        return MHD_YES;
    }
    /* Mutual TLS without a bearer token: the verified certificate's common
     * name is the principal, with the role of that name's live token
     * (rewind token add --name CN): a certificate stands in for the token,
     * and revoking the token closes the certificate out too. */
    char subj[512], cn[65];
    if (!hv && h->mtls && client_cert_subject(c, subj, sizeof subj) == 1) {
        int rc = subject_cn(subj, cn, sizeof cn) < 0 ? 0
                 : auth_name_check(h->ix, cn, rw_now_ns(), who, err);
        if (rc < 0)
            return hd_send_error(h, c, 500, "internal", "%s", err);
        if (rc == 0)
            return hd_send_error(h, c, 403, "forbidden",
                              "no principal for the client certificate %s: its CN needs a live "
                              "token of that name (rewind token add --name CN --role ROLE)",
                              subj);
        who->method = "tls";
        if (!auth_allows(who->role, r->perm))
            return hd_send_error(h, c, 403, "forbidden", "%s needs the role %s; %s has the role %s",
                              r->path, auth_roles_for(r->perm), who->name,
                              auth_role_name(who->role));
        *sent = 0;
        return MHD_YES;
    }
    if (auth_bearer_parse(hv, &tok, &n, err) < 0)
        return hd_send_error_x(h, c, 401, "unauthorized", "WWW-Authenticate", "Bearer realm=\"rewind\"",
                            "%s", err);
    int rc = auth_token_check(h->ix, tok, n, rw_now_ns(), who, err);
    if (rc == 0)
        rc = rw_err(err, RW_EINPUT, "unknown token");
    if (rc < 0)
        return rc == RW_EINPUT
                   ? hd_send_error_x(h, c, 401, "unauthorized", "WWW-Authenticate",
                                  "Bearer realm=\"rewind\", error=\"invalid_token\"", "%s", err)
                   : hd_send_error(h, c, 500, "internal", "%s", err);
    if (!auth_allows(who->role, r->perm))
        return hd_send_error(h, c, 403, "forbidden", "%s needs the role %s; %s has the role %s",
                          r->path, auth_roles_for(r->perm), who->name, auth_role_name(who->role));
    *sent = 0;
    return MHD_YES;
}

/* The checks every request passes before its route sees it: the limits on
 * connections, the raw bytes of its URI, its size, HTTP/1.1's Host. A
 * response queued, or MHD_YES with *sent 0. */
static enum MHD_Result check_request(struct httpd *h, struct MHD_Connection *c,
                                     const char *version, int *sent)
{
    struct hd_conn *k = hd_conn_of(c);
    const struct hd_limits *L = &h->g.lim;
    *sent = 1;
    if (k && k->over) {
        /* Answered, and the connection closed: it stays over the limit. */
        char msg[160];
        atomic_fetch_add(&h->g.refused, 1);
        atomic_fetch_add(&h->errors, 1);
        snprintf(msg, sizeof msg, k->over == 2 ?
                 "too many connections from your address (at most %d; rewindd "
                 "--max-client-connections); retry shortly" :
                 "too many connections (at most %d; rewindd --max-connections); retry shortly",
                 k->over == 2 ? L->max_client_conns : L->max_conns);
        json_t *j = json_pack("{s:{s:s,s:s}}", "error", "code", "busy", "message", msg);
        char *body = j ? json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(j);
        struct MHD_Response *r = body ? MHD_create_response_from_buffer(strlen(body), body,
                                                                        MHD_RESPMEM_MUST_FREE)
                                      : NULL;
        if (!r) {
            free(body);
            return MHD_NO;
        }
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "Cache-Control", "no-store");
        MHD_add_response_header(r, "Retry-After", "1");
        MHD_add_response_header(r, "Connection", "close");
        enum MHD_Result ret = MHD_queue_response(c, 503, r);
        MHD_destroy_response(r);
        return ret;
    }
    if (k && k->uri_len > (size_t)L->max_uri)
        return hd_send_error(h, c, 414, "uri_too_long",
                             "the request URI has %zu bytes; at most %d (rewindd --max-uri)",
                             k->uri_len, L->max_uri);
    if (k && k->bad_uri[0])
        return hd_send_error(h, c, 400, "bad_parameter", "%s", k->bad_uri);
    size_t hb = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, header_bytes, &hb);
    if (hb > (size_t)L->max_headers)
        return hd_send_error(h, c, 431, "headers_too_large",
                             "the request headers have %zu bytes; at most %d (rewindd "
                             "--max-headers)", hb, L->max_headers);
    /* RFC 9112 3.2: a server MUST answer 400 to an HTTP/1.1 request
     * without Host, and to any request with more than one. */
    int hosts = 0;
    MHD_get_connection_values(c, MHD_HEADER_KIND, count_hosts, &hosts);
    if (!strcmp(version, MHD_HTTP_VERSION_1_1) && hosts == 0)
        return hd_send_error(h, c, 400, "bad_request", "an HTTP/1.1 request needs a Host header");
    if (hosts > 1)
        return hd_send_error(h, c, 400, "bad_request", "a request may have one Host header, not %d",
                             hosts);
    *sent = 0;
    return MHD_YES;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct httpd *h = cls;
    struct params p = {0};
    if (*con_cls == NULL) {
        /* First call: headers only. Answer on the next call, once the
         * request is complete: a response queued earlier makes
         * libmicrohttpd close the connection instead of keeping it alive. */
        if (!(*con_cls = hd_body_new(method)))
            return MHD_NO;
        atomic_fetch_add(&h->requests, 1);
        return MHD_YES;
    }
    if (*upload_size) { /* a body: kept, up to HD_BODY_MAX, by methods that take one */
        hd_conn_received(h, hd_conn_of(c), *upload_size);
        hd_body_add(*con_cls, upload, *upload_size);
        *upload_size = 0;
        return MHD_YES;
    }
    /* The request is complete (its body too, which a slow client could
     * drip for ever): from now on the answer's progress rule applies
     * instead of the idle timeout (guard.c). */
    hd_conn_state(h, hd_conn_of(c), 1);
    int sent;
    enum MHD_Result checked = check_request(h, c, version, &sent);
    if (sent)
        return checked;
    hd_body_params(*con_cls, &p);
    p.url = url;
    p.method = method;
    const struct httpd_route *r = httpd_route_find(url);
    if (!r) {
        char list[512] = "";
        for (size_t i = 0, l = 0; i < NROUTES; i++)
            l += (size_t)snprintf(list + l, sizeof list - l, "%s%s", i ? ", " : "",
                                  routes[i].r.path);
        return hd_send_error(h, c, 404, "not_found", "no route %.200s; routes: %s", url, list);
    }
    if (!httpd_route_allows(r, method))
        return hd_send_error_x(h, c, 405, "method_not_allowed", "Allow", r->methods,
                            "%s answers %s only, not %.32s", url, r->methods, method);
    hd_client_addr(c, p.client, sizeof p.client);
    enum MHD_Result gate = permitted(h, c, r, &p.who, &sent);
    if (sent) {
        /* Who was refused packets is part of the trail too. */
        if (r->perm >= AUTH_PERM_PACKETS)
            audit_refusal(h, &p, r->path, p.who.method && !strcmp(p.who.method, "none") ? 401 : 403);
        return gate;
    }
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect, &p);
    p.head = !strcmp(method, "HEAD");
    if (p.overflow)
        return hd_send_error(h, c, 400, "bad_parameter", "too many parameters (at most %d)",
                          MAX_PARAMS);
    return ((const struct route *)r)->handler(h, c, &p);
}

static void tls_require_client_cert(struct MHD_Connection *c);

/* libmicrohttpd's view of a connection's life, for the limits (guard.c)
 * and, over mutual TLS, the client certificate's requirement. */
static void notify_connection(void *cls, struct MHD_Connection *c, void **socket_context,
                              enum MHD_ConnectionNotificationCode toe)
{
    struct httpd *h = cls;
    if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
        hd_conn_close(h, socket_context);
        return;
    }
    hd_conn_open(h, c, socket_context);
    if (h->mtls)
        tls_require_client_cert(c);
}

/* A request is over (answered, or its connection gone): the connection
 * waits for the next one, under the idle timeout. */
static void notify_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                             enum MHD_RequestTerminationCode toe)
{
    hd_conn_state(cls, hd_conn_of(c), 0);
    hd_body_free(NULL, c, con_cls, toe);
}

/* The request line's URI as the client sent it, before libmicrohttpd
 * unescapes it (and cuts a value at an escaped NUL): judged here, the
 * verdict answered by check_request() once the request is complete.
 * Returns the request's initial context: none. */
static void *uri_seen(void *cls, const char *uri, struct MHD_Connection *c)
{
    struct hd_conn *k = hd_conn_of(c);
    (void)cls;
    if (k) {
        atomic_fetch_add(&k->lines, 1);
        k->uri_len = strlen(uri);
        if (!hd_raw_uri_check(uri, k->bad_uri, sizeof k->bad_uri))
            k->bad_uri[0] = 0;
    }
    return NULL;
}

/* ---------- start / stop ---------- */

int httpd_parse_listen(const char *s, struct sockaddr_storage *ss, char *err)
{
    char host[128];
    const char *colon;
    memset(ss, 0, sizeof *ss);
    if (s[0] == '[') {
        const char *end = strchr(s, ']');
        if (!end || end[1] != ':' || (size_t)(end - s - 1) >= sizeof host)
            goto bad;
        memcpy(host, s + 1, (size_t)(end - s - 1));
        host[end - s - 1] = 0;
        colon = end + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || (size_t)(colon - s) >= sizeof host)
            goto bad;
        memcpy(host, s, (size_t)(colon - s));
        host[colon - s] = 0;
    }
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (colon[1] < '0' || colon[1] > '9' || *end || port < 1 || port > 65535)
        goto bad;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (s[0] == '[' && inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) { /* in brackets only */
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
bad:
    return rw_err(err, RW_EINPUT,
                  "listen address '%s': expected ADDR:PORT, e.g. 127.0.0.1:8800 or [::1]:8800", s);
}

/* A malformed request or a client that talks TLS to this plain-HTTP
 * port is the client's error, and a flood of them must not become a flood
 * of log lines: the same line is logged at most once a minute, with how
 * many times it came since. */
void hd_warn_limited(const char *msg)
{
    static pthread_mutex_t lk = PTHREAD_MUTEX_INITIALIZER;
    static char last[64];
    static int64_t last_at;
    static unsigned long repeats;
    int64_t now = rw_mono_ns();
    pthread_mutex_lock(&lk);
    if (!strncmp(last, msg, sizeof last - 1) && now - last_at < 60 * RW_NS_PER_SEC) {
        repeats++;
        pthread_mutex_unlock(&lk);
        return;
    }
    unsigned long was = repeats;
    memcpy(last, msg, sizeof last - 1); /* a prefix: enough to tell lines apart */
    last_at = now;
    repeats = 0;
    pthread_mutex_unlock(&lk);
    if (was)
        rw_warn("http: %s (and %lu times more in the last minute)", msg, was);
    else
        rw_warn("http: %s", msg);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    int code = 0;
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    /* libmicrohttpd quotes the HTML page it answered a malformed request
     * with: one line with the status says as much. The commonest cause is
     * a TLS client on this plain-HTTP port. (A TLS client whose first
     * bytes hold no space before a line end gets no answer and no line
     * from libmicrohttpd: hd_conn_close says so then.) */
    if (sscanf(msg, "Error processing request (HTTP response code is %d", &code) == 1)
        snprintf(msg, sizeof msg, "a malformed request was answered %d and its connection closed%s",
                 code, code == 400 ? " (a TLS client? " HD_PLAIN_HINT ")" : "");
    hd_warn_limited(msg);
}

/* ---------- TLS ---------- */

/* libmicrohttpd tells of each new connection (notify_connection) before
 * the connection's thread does the handshake. On its own it only asks for
 * a client certificate (GNUTLS_CERT_REQUEST) and lets in a client that
 * sends none or one nobody signed: the request would reach the routes.
 * Here the certificate becomes required and checked during the handshake. */
static void tls_require_client_cert(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    /* libmicrohttpd makes the session of a TLS connection before this call. */
    assert(ci && ci->tls_session);
    httpd_tls_require_client_cert(ci->tls_session);
}

/* The logger of a TLS server. libmicrohttpd logs "received handshake
 * message out of context" of every failed handshake, whatever failed. */
static void mhd_log_tls(void *cls, const char *fmt, va_list ap)
{
    struct httpd *h = cls;
    va_list aq;
    char msg[512];
    va_copy(aq, ap);
    vsnprintf(msg, sizeof msg, fmt, aq);
    va_end(aq);
    if (!strstr(msg, "handshake message out of context")) {
        mhd_log(cls, fmt, ap);
        return;
    }
    if (httpd_tls_refusal_logged()) /* the client certificate check said why */
        return;
    rw_warn("https: a TLS handshake failed and its connection was closed (%s, or plain "
            "http:// on this https:// port?)",
            h->mtls ? "a client without a certificate: --tls-client-ca requires one"
                    : "a client that does not trust the server's certificate");
}

/* ---------- who may listen where ---------- */

/* Only this host reaches the address: 127.0.0.0/8, ::1, or 127/8 mapped
 * into IPv6. Names are not resolved (httpd_parse_listen takes numbers
 * only), so "localhost" never comes here. */
static int is_loopback(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ntohl(((const struct sockaddr_in *)ss)->sin_addr.s_addr) >> 24 == 127;
    const struct in6_addr *a = &((const struct sockaddr_in6 *)ss)->sin6_addr;
    return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
}

/* Packets leave this host only encrypted and to a client holding a token:
 * a listener beyond loopback needs both TLS and tokens. */
static int check_exposure(const char *addr, const struct sockaddr_storage *ss,
                          const struct httpd_opts *o, char *err)
{
    if (is_loopback(ss))
        return 0;
    int tls = o->tls_cert && o->tls_key;
    /* Tokens plug in here: have_tokens asks the token store (rewind token
     * add). rewindd passes none until the store exists, so every listener
     * beyond loopback is refused until then. */
    int tokens = o->have_tokens && o->have_tokens(o->tokens_arg);
    if (!tls)
        return rw_err(err, RW_EINPUT, "--listen %s is not loopback: serving packets beyond this "
                      "host needs TLS (--tls-cert, --tls-key) and tokens (rewind token add)", addr);
    if (!tokens)
        return rw_err(err, RW_EINPUT, "--listen %s is not loopback: serving packets beyond this "
                      "host needs tokens (rewind token add) as well as TLS, and none is defined",
                      addr);
    return 0;
}

void httpd_limits_defaults(struct hd_limits *l)
{
    if (l->max_conns <= 0)
        l->max_conns = HD_DEFAULT_MAX_CONNS;
    if (l->max_client_conns <= 0)
        l->max_client_conns = HD_DEFAULT_MAX_CLIENT_CONNS;
    if (l->idle_timeout_s <= 0)
        l->idle_timeout_s = HD_DEFAULT_IDLE_TIMEOUT;
    if (l->send_timeout_s <= 0)
        l->send_timeout_s = HD_DEFAULT_SEND_TIMEOUT;
    if (l->min_rate <= 0)
        l->min_rate = HD_DEFAULT_MIN_RATE;
    if (l->max_uri <= 0)
        l->max_uri = HD_DEFAULT_MAX_URI;
    if (l->max_headers <= 0)
        l->max_headers = HD_DEFAULT_MAX_HEADERS;
}

int httpd_check_opts(const struct httpd_opts *o, char *err)
{
    const char *addr = o->listen ? o->listen : "127.0.0.1:8800";
    struct sockaddr_storage ss;
    struct httpd_tls t;
    int rc;
    if ((rc = httpd_parse_listen(addr, &ss, err)) < 0 ||
        (rc = check_exposure(addr, &ss, o, err)) < 0 ||
        (rc = httpd_tls_load(o->tls_cert, o->tls_key, o->tls_client_ca, &t, err)) < 0)
        return rc;
    httpd_tls_free(&t);
    if (o->web_root && o->web_root_given) {
        struct httpd *probe = calloc(1, sizeof *probe); /* only its web root is used */
        if (!probe)
            return rw_err(err, RW_ENOMEM, "out of memory");
        rc = hd_web_open(probe, o->web_root, 1, err);
        hd_web_close(probe);
        free(probe);
        if (rc < 0)
            return rc;
    }
    return 0;
}

int httpd_start(idx_t *ix, const struct httpd_opts *o, httpd_t **out, char *err)
{
    const char *addr = o->listen ? o->listen : "127.0.0.1:8800";
    struct sockaddr_storage ss;
    struct httpd_tls pem;
    int rc;
    if ((rc = httpd_parse_listen(addr, &ss, err)) < 0 ||
        (rc = check_exposure(addr, &ss, o, err)) < 0 ||
        (rc = httpd_tls_load(o->tls_cert, o->tls_key, o->tls_client_ca, &pem, err)) < 0)
        return rc;
    struct httpd *h = calloc(1, sizeof *h);
    if (!h) {
        httpd_tls_free(&pem);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    h->pem = pem;
    if ((rc = hd_web_open(h, o->web_root, o->web_root_given, err)) < 0) {
        httpd_tls_free(&h->pem);
        free(h);
        return rc;
    }
    h->tls = pem.cert != NULL;
    h->mtls = pem.ca != NULL;
    h->exposed = !is_loopback(&ss);
    h->ix = ix;
    h->max_queries = o->max_queries > 0 ? o->max_queries : 8;
    pthread_mutex_init(&h->streams_mu, NULL);
    h->max_streams = o->max_streams > 0 ? o->max_streams : 32;
    h->max_streams_each = o->max_streams_each > 0 ? o->max_streams_each : 4;
    h->live = o->live;
    h->audit = o->audit;
    h->cases = o->cases;
    h->idtap = o->idtap;
    h->metrics = o->metrics;
    h->metrics_arg = o->metrics_arg;
    h->federate = o->federate;
    h->live_arg = o->live_arg;
    if (o->sensor)
        snprintf(h->sensor, sizeof h->sensor, "%s", o->sensor);
    else if (gethostname(h->sensor, sizeof h->sensor - 1) < 0)
        snprintf(h->sensor, sizeof h->sensor, "rewind");
    /* The listening socket is made here rather than by libmicrohttpd, so
     * that a port in use is reported with the address and the reason
     * (libmicrohttpd says "Failed to bind to port 0"). It owns the socket
     * from then on and closes it when it stops. */
    socklen_t sl = ss.ss_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    int one = 1, lfd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(lfd, (struct sockaddr *)&ss, sl) < 0 || listen(lfd, 64) < 0) {
        rc = rw_err(err, errno == EADDRINUSE || errno == EACCES || errno == EADDRNOTAVAIL ?
                             RW_EINPUT : RW_EIO,
                    "cannot listen on %s: %s%s", addr, strerror(errno),
                    errno == EADDRINUSE ? " (another rewindd? choose another --listen)" : "");
        if (lfd >= 0)
            close(lfd);
        hd_web_close(h);
        httpd_tls_free(&h->pem);
        free(h);
        return rc;
    }
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0) |
                     (h->tls ? MHD_USE_TLS : 0);
    /* The TLS options, read up to the first MHD_OPTION_END: none for plain
     * HTTP, the client certificate's trust only with --tls-client-ca. */
    struct MHD_OptionItem tls[] = {
        {h->tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, 0, h->pem.cert},
        {MHD_OPTION_HTTPS_MEM_KEY, 0, h->pem.key},
        {MHD_OPTION_HTTPS_PRIORITIES, 0, (void *)HTTPD_TLS_PRIORITIES},
        {h->mtls ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, 0, h->pem.ca},
        {MHD_OPTION_END, 0, NULL}};
    struct hd_limits lim = o->limits;
    httpd_limits_defaults(&lim);
    if ((rc = hd_guard_start(h, &lim, err)) < 0) {
        close(lfd);
        httpd_tls_free(&h->pem);
        free(h);
        return rc;
    }
    /* Connections over the limits are let in and answered 503 (guard.c);
     * libmicrohttpd's own limits, twice those, only bound the threads of
     * clients that connect and never ask. Its timeout is off: the
     * watchdog's idle and progress rules replace it (a quiet follow stream
     * is not idle). */
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER,
                            h->tls ? mhd_log_tls : mhd_log, h, MHD_OPTION_LISTEN_SOCKET, lfd,
                            MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)0,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)(2 * lim.max_conns),
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, (unsigned)(2 * lim.max_client_conns),
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)HD_CONN_MEMORY,
                            MHD_OPTION_NOTIFY_CONNECTION, notify_connection, h,
                            MHD_OPTION_NOTIFY_COMPLETED, notify_completed, h,
                            MHD_OPTION_URI_LOG_CALLBACK, uri_seen, h,
                            MHD_OPTION_UNESCAPE_CALLBACK, hd_unescape, NULL,
                            MHD_OPTION_ARRAY, tls, MHD_OPTION_END);
    if (!h->d) {
        rc = rw_err(err, RW_EIO, "cannot start the %s server on %s", h->tls ? "HTTPS" : "HTTP",
                    addr);
        hd_guard_stop(h);
        close(lfd);
        hd_web_close(h);
        httpd_tls_free(&h->pem);
        free(h);
        return rc;
    }
    if (h->pem.warn[0])
        rw_warn("%s", h->pem.warn);
    *out = h;
    return 0;
}

void httpd_stop(httpd_t *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    MHD_stop_daemon(h->d);
    hd_guard_stop(h);
    hd_web_close(h);
    httpd_tls_free(&h->pem);
    free(h);
}
