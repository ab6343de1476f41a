/* httpd.c -- REST API over libmicrohttpd: streamed query results and JSON.
 *
 * One thread per connection (libmicrohttpd's), so a slow client only slows
 * its own thread; capture runs on threads of its own and never waits for a
 * response. A packet response is produced by a content reader that pulls
 * packets from the query as the client reads, through a small buffer: memory
 * per request stays bounded whatever the result size, and when the client
 * goes away libmicrohttpd calls our cleanup, which frees the query. */
#include "httpd/httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <pcap/pcap.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "query/query.h"

#define MAX_PARAMS 32
#define MAX_CAPTURES 16
#define PEND_LOW (64u << 10) /* refill the response buffer below this */
#define NBUCKETS 9

static const double bucket_le[NBUCKETS] = {0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30, 300};

struct httpd {
    struct MHD_Daemon *d;
    idx_t *ix;
    int max_queries;
    char sensor[128];
    atomic_int active;
    atomic_int stopping;
    atomic_uint_fast64_t requests, queries, exported, errors;
    atomic_uint_fast64_t buckets[NBUCKETS + 1];
    atomic_uint_fast64_t dur_us_sum;
    httpd_capture_fn capture;
    void *capture_arg;
};

struct params {
    int n;
    const char *k[MAX_PARAMS], *v[MAX_PARAMS];
    int overflow;
};

/* ---------- small helpers ---------- */

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

static const char *param(const struct params *p, const char *k)
{
    const char *v = NULL;
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->k[i], k))
            v = p->v[i];
    return v;
}

/* First parameter not in the NULL-terminated allowed list, or NULL. */
static const char *unknown_param(const struct params *p, const char *const *allowed)
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

/* Queue body (copied) with the headers every text and JSON answer carries,
 * plus the header xname: xval when xname is not NULL. */
static enum MHD_Result send_body(struct MHD_Connection *c, unsigned status, const char *ctype,
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

static enum MHD_Result send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                                 const char *body)
{
    return send_body(c, status, ctype, body, NULL, NULL);
}

/* Takes ownership of j. */
static enum MHD_Result send_json_x(struct MHD_Connection *c, unsigned status, json_t *j,
                                   const char *xname, const char *xval)
{
    char *s = j ? json_dumps(j, JSON_INDENT(1) | JSON_PRESERVE_ORDER) : NULL;
    json_decref(j);
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
    enum MHD_Result ret = send_body(c, status, "application/json", t, xname, xval);
    free(t);
    return ret;
}

static enum MHD_Result send_json(struct MHD_Connection *c, unsigned status, json_t *j)
{
    return send_json_x(c, status, j, NULL, NULL);
}

/* An error answer {"error":{"code":…,"message":…}}, with one extra header
 * when xname is not NULL (Allow for 405, Retry-After for 503). */
static enum MHD_Result send_error_x(struct httpd *h, struct MHD_Connection *c, unsigned status,
                                    const char *code, const char *xname, const char *xval,
                                    const char *fmt, ...) RW_PRINTF(7, 8);
static enum MHD_Result send_error_x(struct httpd *h, struct MHD_Connection *c, unsigned status,
                                    const char *code, const char *xname, const char *xval,
                                    const char *fmt, ...)
{
    char msg[RW_ERRSZ + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    atomic_fetch_add(&h->errors, 1);
    return send_json_x(c, status,
                       json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg), xname,
                       xval);
}

#define send_error(h, c, status, code, ...)                                                 \
    send_error_x(h, c, status, code, NULL, NULL, __VA_ARGS__)

/* 400 unknown_parameter naming the parameters the route takes (allowed,
 * NULL-terminated), so the message cannot drift from what is accepted. */
static enum MHD_Result send_unknown_param(struct httpd *h, struct MHD_Connection *c,
                                          const char *route, const char *bad,
                                          const char *const *allowed)
{
    char list[256] = "";
    size_t n = 0;
    for (const char *const *a = allowed; *a && n < sizeof list; a++)
        n += (size_t)snprintf(list + n, sizeof list - n, "%s%s", a == allowed ? "" : ", ", *a);
    return send_error(h, c, 400, "unknown_parameter", "unknown parameter '%s'; %s takes %s", bad,
                      route, allowed[0] ? list : "none");
}

static json_t *jtime(int64_t ns)
{
    char b[48];
    return json_string(rw_time_fmt(ns, b, sizeof b));
}

/* Parse from/to; 0 or the HTTP status already queued is signalled by *bad. */
static int parse_window(const struct params *p, int64_t *from, int64_t *to, char *err)
{
    int64_t now = rw_now_ns();
    const char *f = param(p, "from"), *t = param(p, "to");
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

static int parse_count(const char *name, const char *v, int sizes, uint64_t *out, char *err)
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
    qry_t *q;
    qry_out_t *out;
    uint8_t *pend;
    size_t plen, poff, pcap;
    int ended, failed;
    int64_t start;
    uint64_t bytes, packets;
    char what[256];
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

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *s = cls;
    char err[RW_ERRSZ];
    (void)pos;
    if (atomic_load(&s->h->stopping)) {
        rw_warn("%s: cut by shutdown after %llu bytes", s->what, (unsigned long long)s->bytes);
        s->failed = 1;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (s->poff == s->plen) {
        s->poff = s->plen = 0;
        while (!s->ended && s->plen < PEND_LOW) {
            struct qry_pkt pkt;
            int rc = qry_next(s->q, &pkt, err);
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
                int r = qry_out_close(s->out);
                s->out = NULL;
                if (r < 0)
                    return MHD_CONTENT_READER_END_WITH_ERROR;
                break;
            }
            s->packets++;
            if (qry_out_packet(s->out, &pkt) < 0)
                return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (s->plen == 0 && s->ended)
            return MHD_CONTENT_READER_END_OF_STREAM;
    }
    size_t n = s->plen - s->poff < max ? s->plen - s->poff : max;
    memcpy(buf, s->pend + s->poff, n);
    s->poff += n;
    s->bytes += n;
    return (ssize_t)n;
}

static void stream_free(void *cls)
{
    struct stream *s = cls;
    struct httpd *h = s->h;
    double secs = (double)(rw_mono_ns() - s->start) / 1e9;
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
    if (!s->ended && !s->failed && atomic_load(&h->stopping))
        rw_warn("%s: cut by shutdown after %llu bytes", s->what, (unsigned long long)s->bytes);
    else if (!s->ended && !s->failed)
        rw_info("%s: client went away after %llu bytes", s->what, (unsigned long long)s->bytes);
    else if (s->ended)
        rw_info("%s: %llu packets, %llu bytes in %.3f s", s->what, (unsigned long long)s->packets,
                (unsigned long long)s->bytes, secs);
    if (s->out)
        (void)!qry_out_close(s->out);
    qry_free(s->q);
    free(s->pend);
    free(s);
    atomic_fetch_sub(&h->active, 1);
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

static enum MHD_Result route_packets(struct httpd *h, struct MHD_Connection *c,
                                     const struct params *p)
{
    static const char *const allowed[] = {"from",  "to",           "filter",      "point",
                                          "limit", "limit_packets", "limit_bytes", "format",
                                          NULL};
    char err[RW_ERRSZ];
    const char *bad = unknown_param(p, allowed), *points[MAX_PARAMS + 1];
    struct qry_spec spec = {0};
    int npoints = 0, format = QRY_PCAP;
    if (bad)
        return send_unknown_param(h, c, "/api/v1/packets", bad, allowed);
    if (parse_window(p, &spec.from, &spec.to, err) < 0)
        return send_error(h, c, 400, "bad_parameter", "%s", err);
    const char *fmt = param(p, "format");
    if (fmt && !strcmp(fmt, "pcapng"))
        format = QRY_PCAPNG;
    else if (fmt && strcmp(fmt, "pcap"))
        return send_error(h, c, 400, "bad_parameter",
                          "parameter 'format': must be pcap or pcapng, not '%s'", fmt);
    if (parse_count("limit", param(p, "limit"), 0, &spec.limit_packets, err) < 0 ||
        parse_count("limit_packets", param(p, "limit_packets"), 0, &spec.limit_packets, err) < 0 ||
        parse_count("limit_bytes", param(p, "limit_bytes"), 1, &spec.limit_bytes, err) < 0)
        return send_error(h, c, 400, "bad_parameter", "%s", err);
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->k[i], "point"))
            points[npoints++] = p->v[i];
    points[npoints] = NULL;
    spec.points = npoints ? points : NULL;
    spec.filter = param(p, "filter");
    if (atomic_fetch_add(&h->active, 1) >= h->max_queries) {
        atomic_fetch_sub(&h->active, 1);
        return send_error_x(h, c, 503, "busy", "Retry-After", "2",
                            "%d queries already in progress (rewindd --max-queries); retry shortly",
                            h->max_queries);
    }
    struct stream *s = calloc(1, sizeof *s);
    if (!s) {
        atomic_fetch_sub(&h->active, 1);
        return send_error(h, c, 500, "internal", "out of memory");
    }
    s->h = h;
    s->start = rw_mono_ns();
    snprintf(s->what, sizeof s->what, "GET /api/v1/packets filter '%s'",
             spec.filter ? spec.filter : "");
    enum qry_step step;
    int rc = qry_new_ex(h->ix, &spec, &s->q, &step, err);
    int npts = 0;
    const struct qry_point *pts = rc == 0 ? qry_points(s->q, &npts) : NULL;
    if (rc == 0)
        rc = qry_out_new(format, pts, npts, pend_write, s, &s->out, err); /* step stays SPEC */
    if (rc < 0) {
        qry_free(s->q);
        free(s);
        atomic_fetch_sub(&h->active, 1);
        if (rc == RW_EINPUT)
            return send_error(h, c, 400, step == QRY_STEP_FILTER ? "bad_filter" : "bad_parameter",
                              "%s", err);
        return send_error(h, c, 500, "internal", "%s", err);
    }
    atomic_fetch_add(&h->queries, 1);
    qry_set_cancel(s->q, stopping, h); /* a long scan must not hold up a stop */
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 256 << 10, stream_read, s, stream_free);
    if (!r) {
        stream_free(s);
        return MHD_NO;
    }
    char f1[32], f2[32], cd[160];
    fname_time(spec.from, "start", f1, sizeof f1);
    fname_time(spec.to, "now", f2, sizeof f2);
    snprintf(cd, sizeof cd, "attachment; filename=\"rewind-%s-%s.%s\"", f1, f2,
             format == QRY_PCAP ? "pcap" : "pcapng");
    MHD_add_response_header(r, "Content-Type", format == QRY_PCAP ? "application/vnd.tcpdump.pcap"
                                                                   : "application/x-pcapng");
    MHD_add_response_header(r, "Content-Disposition", cd);
    MHD_add_response_header(r, "Cache-Control", "no-store"); /* as every answer */
    MHD_add_response_header(r, "X-Rewind-Filter", spec.filter ? spec.filter : "");
    MHD_add_response_header(r, "X-Rewind-Sensor", h->sensor);
    MHD_add_response_header(r, "X-Rewind-Plan", qry_plan_desc(s->q));
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}

/* ---------- JSON routes ---------- */

static enum MHD_Result route_segments(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p)
{
    static const char *const allowed[] = {"from", "to", NULL};
    char err[RW_ERRSZ];
    int64_t from, to;
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0;
    const char *bad = unknown_param(p, allowed);
    if (bad)
        return send_unknown_param(h, c, "/api/v1/segments", bad, allowed);
    if (parse_window(p, &from, &to, err) < 0)
        return send_error(h, c, 400, "bad_parameter", "%s", err);
    if (idx_point_list(h->ix, &pts, &npts, err) < 0 ||
        idx_seg_list(h->ix, from, to, &segs, &nsegs, err) < 0) {
        free(pts);
        return send_error(h, c, 500, "internal", "%s", err);
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < nsegs; i++) {
        const char *pname = "?";
        for (size_t j = 0; j < npts; j++)
            if (pts[j].id == segs[i].point)
                pname = pts[j].name;
        json_array_append_new(
            arr, json_pack("{s:I,s:s,s:s,s:o,s:o,s:I,s:I,s:I,s:I,s:b,s:s}", "id", (json_int_t)segs[i].id,
                           "point", pname, "state",
                           segs[i].state == IDX_SEG_OPEN ? "open" : "sealed", "first",
                           jtime(segs[i].min_ts), "last", jtime(segs[i].max_ts), "packets",
                           (json_int_t)segs[i].packets, "bytes", (json_int_t)segs[i].bytes,
                           "file_bytes", (json_int_t)segs[i].file_size, "stored_bytes",
                           (json_int_t)segs[i].stored_size, "compressed", segs[i].compressed,
                           "path", segs[i].path));
    }
    free(pts);
    free(segs);
    return send_json(c, 200, json_pack("{s:o}", "segments", arr));
}

struct summary {
    struct idx_point *pts;
    size_t npts;
    uint64_t *pkts, *bytes, *nsegs;
    int64_t *first, *last;
    uint64_t seg_bytes;
};

static void summary_free(struct summary *s)
{
    free(s->pts);
    free(s->pkts);
    free(s->bytes);
    free(s->nsegs);
    free(s->first);
    free(s->last);
}

static int summarize(idx_t *ix, struct summary *s, char *err)
{
    struct idx_seg *segs = NULL;
    size_t nsegs = 0;
    int rc;
    memset(s, 0, sizeof *s);
    if ((rc = idx_point_list(ix, &s->pts, &s->npts, err)) < 0 ||
        (rc = idx_seg_all(ix, &segs, &nsegs, err)) < 0)
        return rc;
    size_t n = s->npts + 1;
    s->pkts = calloc(n, 8);
    s->bytes = calloc(n, 8);
    s->nsegs = calloc(n, 8);
    s->first = calloc(n, 8);
    s->last = calloc(n, 8);
    if (!s->pkts || !s->bytes || !s->nsegs || !s->first || !s->last) {
        free(segs);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < s->npts; i++) {
        s->first[i] = INT64_MAX;
        s->last[i] = INT64_MIN;
    }
    for (size_t j = 0; j < nsegs; j++) {
        s->seg_bytes += segs[j].stored_size;
        for (size_t i = 0; i < s->npts; i++) {
            if (s->pts[i].id != segs[j].point || segs[j].packets == 0)
                continue;
            s->pkts[i] += segs[j].packets;
            s->bytes[i] += segs[j].wire_bytes;
            s->nsegs[i]++;
            if (segs[j].min_ts < s->first[i])
                s->first[i] = segs[j].min_ts;
            if (segs[j].max_ts > s->last[i])
                s->last[i] = segs[j].max_ts;
        }
    }
    free(segs);
    return 0;
}

/* The daemon's live capture state, or none. */
static size_t captures(struct httpd *h, struct httpd_capture *cs)
{
    return h->capture ? h->capture(h->capture_arg, cs, MAX_CAPTURES) : 0;
}

static enum MHD_Result route_status(struct httpd *h, struct MHD_Connection *c,
                                    const struct params *p)
{
    static const char *const allowed[] = {NULL};
    char err[RW_ERRSZ];
    struct summary s;
    struct httpd_capture cs[MAX_CAPTURES];
    size_t ncs = captures(h, cs);
    const char *bad = unknown_param(p, allowed);
    if (bad)
        return send_unknown_param(h, c, "/api/v1/status", bad, allowed);
    if (summarize(h->ix, &s, err) < 0) {
        summary_free(&s);
        return send_error(h, c, 500, "internal", "%s", err);
    }
    json_t *arr = json_array();
    int64_t oldest = INT64_MAX, newest = INT64_MIN;
    for (size_t i = 0; i < s.npts; i++) {
        const char *lt = pcap_datalink_val_to_name(s.pts[i].linktype);
        json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I}", "name", s.pts[i].name, "linktype",
                              lt ? lt : "unknown", "segments", (json_int_t)s.nsegs[i], "packets",
                              (json_int_t)s.pkts[i], "bytes", (json_int_t)s.bytes[i],
                              "kernel_drops", (json_int_t)s.pts[i].kernel_drops, "queue_drops",
                              (json_int_t)s.pts[i].queue_drops);
        for (size_t k = 0; k < ncs; k++) {
            if (strcmp(cs[k].point, s.pts[i].name))
                continue;
            json_object_set_new(o, "capture",
                                json_pack("{s:b,s:I}", "paused", cs[k].paused, "paused_drops",
                                          (json_int_t)cs[k].paused_drops));
            if (cs[k].paused)
                json_object_set_new(json_object_get(o, "capture"), "reason",
                                    json_string(cs[k].reason));
        }
        if (s.nsegs[i]) {
            json_object_set_new(o, "first", jtime(s.first[i]));
            json_object_set_new(o, "last", jtime(s.last[i]));
            if (s.first[i] < oldest)
                oldest = s.first[i];
            if (s.last[i] > newest)
                newest = s.last[i];
        }
        json_array_append_new(arr, o);
    }
    uint64_t ib = idx_disk_bytes(h->ix);
    json_t *j = json_pack("{s:s,s:s,s:o,s:{s:I,s:I}}", "sensor", h->sensor, "archive",
                          idx_dir(h->ix), "points", arr, "disk", "segment_bytes",
                          (json_int_t)s.seg_bytes, "index_bytes", (json_int_t)ib);
    struct statvfs fs;
    if (statvfs(idx_dir(h->ix), &fs) == 0)
        json_object_set_new(json_object_get(j, "disk"), "available_bytes",
                            json_integer((json_int_t)((uint64_t)fs.f_bavail * fs.f_frsize)));
    if (oldest != INT64_MAX) {
        json_object_set_new(j, "oldest", jtime(oldest));
        json_object_set_new(j, "newest", jtime(newest));
    }
    summary_free(&s);
    return send_json(c, 200, j);
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

static enum MHD_Result route_metrics(struct httpd *h, struct MHD_Connection *c)
{
    char err[RW_ERRSZ], lab[160];
    struct summary s;
    if (summarize(h->ix, &s, err) < 0) {
        summary_free(&s);
        return send_error(h, c, 500, "internal", "%s", err);
    }
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) {
        summary_free(&s);
        return send_error(h, c, 500, "internal", "out of memory");
    }
    static const char *const fams[][3] = {
        {"rewind_captured_packets_total", "counter", "Packets stored per capture point."},
        {"rewind_captured_bytes_total", "counter", "Wire bytes stored per capture point."},
        {"rewind_kernel_drops_total", "counter", "Packets the kernel dropped (pcap_stats)."},
        {"rewind_queue_drops_total", "counter", "Packets rewind could not queue for writing."}};
    for (int m = 0; m < 4; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fams[m][0], fams[m][2], fams[m][0], fams[m][1]);
        for (size_t i = 0; i < s.npts; i++) {
            uint64_t v = m == 0 ? s.pkts[i] : m == 1 ? s.bytes[i] : m == 2 ? s.pts[i].kernel_drops
                                                                           : s.pts[i].queue_drops;
            esc_label(s.pts[i].name, lab, sizeof lab);
            fprintf(f, "%s{point=\"%s\"} %llu\n", fams[m][0], lab, (unsigned long long)v);
        }
    }
    fprintf(f, "# HELP rewind_disk_bytes Bytes on disk by kind.\n# TYPE rewind_disk_bytes gauge\n");
    fprintf(f, "rewind_disk_bytes{kind=\"segments\"} %llu\n", (unsigned long long)s.seg_bytes);
    fprintf(f, "rewind_disk_bytes{kind=\"index\"} %llu\n",
            (unsigned long long)idx_disk_bytes(h->ix));
    struct statvfs fs;
    if (statvfs(idx_dir(h->ix), &fs) == 0)
        fprintf(f, "# HELP rewind_disk_available_bytes Bytes available on the archive's file "
                   "system (df's Avail).\n# TYPE rewind_disk_available_bytes gauge\n"
                   "rewind_disk_available_bytes %llu\n",
                (unsigned long long)fs.f_bavail * fs.f_frsize);
    struct httpd_capture cs[MAX_CAPTURES];
    size_t ncs = captures(h, cs);
    if (ncs) {
        fprintf(f, "# HELP rewind_capture_paused 1 while live capture on the point is paused "
                   "(disk full or I/O error), else 0.\n# TYPE rewind_capture_paused gauge\n");
        for (size_t k = 0; k < ncs; k++) {
            esc_label(cs[k].point, lab, sizeof lab);
            fprintf(f, "rewind_capture_paused{point=\"%s\"} %d\n", lab, cs[k].paused ? 1 : 0);
        }
        fprintf(f, "# HELP rewind_capture_paused_drops_total Packets dropped because capture on "
                   "the point was paused, since the daemon started.\n"
                   "# TYPE rewind_capture_paused_drops_total counter\n");
        for (size_t k = 0; k < ncs; k++) {
            esc_label(cs[k].point, lab, sizeof lab);
            fprintf(f, "rewind_capture_paused_drops_total{point=\"%s\"} %llu\n", lab,
                    (unsigned long long)cs[k].paused_drops);
        }
    }
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
    fprintf(f, "# HELP rewind_queries_active Packet queries in progress.\n"
               "# TYPE rewind_queries_active gauge\nrewind_queries_active %d\n",
            atomic_load(&h->active));
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
    summary_free(&s);
    enum MHD_Result ret = send_text(c, 200, "text/plain; version=0.0.4; charset=utf-8", buf);
    free(buf);
    return ret;
}

/* ---------- dispatch ---------- */

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **con_cls)
{
    struct httpd *h = cls;
    struct params p = {0};
    (void)version;
    (void)upload;
    if (*con_cls == NULL) {
        /* First call: headers only. Answer on the next call, once the
         * request is complete: a response queued earlier makes
         * libmicrohttpd close the connection instead of keeping it alive. */
        static int marker;
        *con_cls = &marker;
        atomic_fetch_add(&h->requests, 1);
        return MHD_YES;
    }
    if (*upload_size) { /* bodies are not part of this API: discard */
        *upload_size = 0;
        return MHD_YES;
    }
    int known = !strcmp(url, "/api/v1/packets") || !strcmp(url, "/api/v1/segments") ||
                !strcmp(url, "/api/v1/status") || !strcmp(url, "/metrics") ||
                !strcmp(url, "/healthz");
    if (!known)
        return send_error(h, c, 404, "not_found",
                          "no route %s; routes: /api/v1/packets, /api/v1/segments, /api/v1/status, "
                          "/metrics, /healthz",
                          url);
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return send_error_x(h, c, 405, "method_not_allowed", "Allow", "GET, HEAD",
                            "%s answers GET and HEAD only, not %s", url, method);
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, collect, &p);
    if (p.overflow)
        return send_error(h, c, 400, "bad_parameter", "too many parameters (at most %d)",
                          MAX_PARAMS);
    if (!strcmp(url, "/healthz"))
        return send_text(c, 200, "text/plain", "ok\n");
    if (!strcmp(url, "/metrics"))
        return route_metrics(h, c);
    if (!strcmp(url, "/api/v1/packets"))
        return route_packets(h, c, &p);
    if (!strcmp(url, "/api/v1/segments"))
        return route_segments(h, c, &p);
    return route_status(h, c, &p);
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
    if (!colon[1] || *end || port < 0 || port > 65535)
        goto bad;
    struct sockaddr_in *v4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host[0] ? host : "127.0.0.1", &v4->sin_addr) == 1) {
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        return 0;
    }
    if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        return 0;
    }
bad:
    return rw_err(err, RW_EINPUT,
                  "listen address '%s': expected ADDR:PORT, e.g. 127.0.0.1:8800 or [::1]:8800", s);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];
    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = 0;
    rw_warn("http: %s", msg);
}

int httpd_start(idx_t *ix, const struct httpd_opts *o, httpd_t **out, char *err)
{
    struct sockaddr_storage ss;
    int rc;
    if ((rc = httpd_parse_listen(o->listen ? o->listen : "127.0.0.1:8800", &ss, err)) < 0)
        return rc;
    struct httpd *h = calloc(1, sizeof *h);
    if (!h)
        return rw_err(err, RW_ENOMEM, "out of memory");
    h->ix = ix;
    h->max_queries = o->max_queries > 0 ? o->max_queries : 8;
    h->capture = o->capture;
    h->capture_arg = o->capture_arg;
    if (o->sensor)
        snprintf(h->sensor, sizeof h->sensor, "%s", o->sensor);
    else if (gethostname(h->sensor, sizeof h->sensor - 1) < 0)
        snprintf(h->sensor, sizeof h->sensor, "rewind");
    unsigned flags = MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
                     MHD_USE_ERROR_LOG | (ss.ss_family == AF_INET6 ? MHD_USE_IPv6 : 0);
    h->d = MHD_start_daemon(flags, 0, NULL, NULL, handle, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log,
                            NULL, MHD_OPTION_SOCK_ADDR, &ss, MHD_OPTION_CONNECTION_TIMEOUT,
                            (unsigned)120, MHD_OPTION_CONNECTION_LIMIT, (unsigned)256,
                            MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return rw_err(err, RW_EIO, "cannot listen on %s (in use? permission?)",
                      o->listen ? o->listen : "127.0.0.1:8800");
    }
    *out = h;
    return 0;
}

void httpd_stop(httpd_t *h)
{
    if (!h)
        return;
    atomic_store(&h->stopping, 1);
    MHD_stop_daemon(h->d);
    free(h);
}
