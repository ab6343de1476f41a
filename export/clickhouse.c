/* clickhouse.c -- the ClickHouse sink: a batch of segments becomes
 * INSERT ... FORMAT RowBinary requests (flows, then segments, then the
 * sensor's progress) POSTed to the HTTP interface with libcurl. The tables
 * are those of schema.c; column lists are named in each INSERT. */
#include "export/ex_int.h"

#include "common/curl_dl.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define FLUSH_BYTES (16u << 20) /* a request is sent once its rows reach this */

struct ch {
    const struct rw_curl *cu;
    char *url;            /* as given, with database= added when missing */
    char user[128], pass[256];
    int auth;
};

/* ---- options ---- */

int ex_ch_check(const char *url, const char *auth, char *err)
{
    const char *p;
    if (!strncmp(url, "http://", 7))
        p = url + 7;
    else if (!strncmp(url, "https://", 8))
        p = url + 8;
    else
        return rw_err(err, RW_EINPUT, "--export-flows: the ClickHouse URL must start with http:// "
                      "or https:// (e.g. http://127.0.0.1:8123/?database=rewind), not '%s'", url);
    if (!*p || *p == '/' || *p == '?' || *p == ':')
        return rw_err(err, RW_EINPUT, "--export-flows: the ClickHouse URL '%s' has no host", url);
    for (const char *c = url; *c; c++)
        if (*c == '#' || *c == ' ' || (unsigned char)*c < 0x20)
            return rw_err(err, RW_EINPUT, "--export-flows: the ClickHouse URL '%s' holds a "
                          "fragment, a space or a control character", url);
    if (strstr(url, "query="))
        return rw_err(err, RW_EINPUT, "--export-flows: the ClickHouse URL names a query= of "
                      "its own; give the server and ?database= only");
    if (auth) {
        int rc = 0;
        FILE *f = fopen(auth, "r");
        if (!f)
            return rw_err(err, RW_EINPUT, "--export-auth %s: %s", auth, strerror(errno));
        char line[512];
        if (!fgets(line, sizeof line, f) || line[0] == '\n' || line[0] == ':')
            rc = rw_err(err, RW_EINPUT, "--export-auth %s: the first line must be USER:PASSWORD "
                        "(or USER alone)", auth);
        fclose(f);
        memset(line, 0, sizeof line);
        return rc;
    }
    return 0;
}

static int read_auth(struct ch *c, const char *path, char *err)
{
    char line[512];
    FILE *f = fopen(path, "r");
    if (!f)
        return rw_err(err, RW_EINPUT, "--export-auth %s: %s", path, strerror(errno));
    int ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    if (!ok)
        return rw_err(err, RW_EINPUT, "--export-auth %s: empty", path);
    line[strcspn(line, "\r\n")] = 0;
    char *colon = strchr(line, ':');
    if (colon)
        *colon = 0;
    if (!line[0] || strlen(line) >= sizeof c->user || (colon && strlen(colon + 1) >= sizeof c->pass))
        return rw_err(err, RW_EINPUT, "--export-auth %s: the first line must be USER:PASSWORD",
                      path);
    memcpy(c->user, line, strlen(line) + 1); /* lengths checked above */
    memcpy(c->pass, colon ? colon + 1 : "", colon ? strlen(colon + 1) + 1 : 1);
    memset(line, 0, sizeof line);
    c->auth = 1;
    return 0;
}

/* ---- RowBinary ---- */

struct buf {
    uint8_t *p;
    size_t n, cap;
    int oom;
};

static void put(struct buf *b, const void *v, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 65536;
        while (nc < b->n + n)
            nc *= 2;
        uint8_t *p = realloc(b->p, nc);
        if (!p) {
            b->oom = 1;
            return;
        }
        b->p = p;
        b->cap = nc;
    }
    memcpy(b->p + b->n, v, n);
    b->n += n;
}
static void put_u8(struct buf *b, uint8_t v) { put(b, &v, 1); }
static void put_le(struct buf *b, uint64_t v, int n)
{
    uint8_t t[8];
    for (int i = 0; i < n; i++)
        t[i] = (uint8_t)(v >> (8 * i));
    put(b, t, (size_t)n);
}
static void put_str(struct buf *b, const char *s)
{
    size_t n = strlen(s);
    uint64_t v = n;
    do {
        uint8_t c = v & 0x7f;
        v >>= 7;
        put_u8(b, (uint8_t)(c | (v ? 0x80 : 0)));
    } while (v);
    put(b, s, n);
}
static uint16_t day_of(int64_t ns)
{
    int64_t d = ns / (86400 * RW_NS_PER_SEC);
    if (ns < 0 && ns % (86400 * RW_NS_PER_SEC))
        d--;
    return d < 0 ? 0 : d > 65535 ? 65535 : (uint16_t)d;
}

/* ---- HTTP ---- */

struct resp {
    char body[1024];
    size_t n;
    volatile int *cancel;
    struct buf *answer; /* the whole answer, when wanted */
};

static void put(struct buf *b, const void *v, size_t n);

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct resp *r = arg;
    size_t n = size * nmemb, room = sizeof r->body - 1 - r->n;
    if (r->answer)
        put(r->answer, ptr, n);
    memcpy(r->body + r->n, ptr, n < room ? n : room);
    r->n += n < room ? n : room;
    r->body[r->n] = 0;
    return n;
}

static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c, curl_off_t d)
{
    struct resp *r = arg;
    (void)a, (void)b, (void)c, (void)d;
    return *r->cancel ? 1 : 0;
}

static int post_x(struct ch *c, const char *query, const struct buf *body, struct buf *answer,
                  volatile int *cancel, char *err);

/* POST body to the URL with query= the statement. */
static int post(struct ch *c, const char *query, const struct buf *body, volatile int *cancel,
                char *err)
{
    return post_x(c, query, body, NULL, cancel, err);
}

/* POST the statement query with no body; its answer into answer. */
static int post_answer(struct ch *c, const char *query, struct buf *answer, volatile int *cancel,
                       char *err)
{
    struct buf none = {0};
    return post_x(c, query, &none, answer, cancel, err);
}

static int post_x(struct ch *c, const char *query, const struct buf *body, struct buf *answer,
                  volatile int *cancel, char *err)
{
    const struct rw_curl *cu = c->cu;
    CURL *h = cu->easy_init();
    if (!h)
        return rw_err(err, RW_ENOMEM, "cannot start libcurl");
    char *q = cu->easy_escape(h, query, 0);
    size_t ul = q ? strlen(c->url) + strlen(q) + 16 : 0;
    char *url = q ? malloc(ul) : NULL;
    if (!q || !url) {
        cu->free(q);
        free(url);
        cu->easy_cleanup(h);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    snprintf(url, ul, "%s%squery=%s", c->url, strchr(c->url, '?') ? "&" : "?", q);
    cu->free(q);
    struct resp r = {.cancel = cancel, .answer = answer};
    cu->easy_setopt(h, CURLOPT_URL, url);
    cu->easy_setopt(h, CURLOPT_POST, 1L);
    cu->easy_setopt(h, CURLOPT_POSTFIELDS, body->n ? (const char *)body->p : "");
    cu->easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->n);
    cu->easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    cu->easy_setopt(h, CURLOPT_WRITEDATA, &r);
    cu->easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
    cu->easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
    cu->easy_setopt(h, CURLOPT_XFERINFODATA, &r);
    cu->easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
    cu->easy_setopt(h, CURLOPT_TIMEOUT, 300L);
    cu->easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (c->auth) {
        cu->easy_setopt(h, CURLOPT_USERNAME, c->user);
        cu->easy_setopt(h, CURLOPT_PASSWORD, c->pass);
    }
    CURLcode cc = cu->easy_perform(h);
    long code = 0;
    cu->easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    cu->easy_cleanup(h);
    free(url);
    if (cc != CURLE_OK)
        return rw_err(err, RW_EIO, "ClickHouse %s: %s", c->url, cu->easy_strerror(cc));
    if (code != 200) {
        r.body[strcspn(r.body, "\n")] = 0;
        return rw_err(err, RW_EIO, "ClickHouse %s: HTTP %ld: %.400s", c->url, code, r.body);
    }
    return 0;
}

/* ---- the sink ---- */

struct rows {
    struct buf b;
    const struct ex_batch *batch;
    const struct ex_seg *seg;
    uint64_t rows, flow_packets;
    struct ch *c;
    volatile int *cancel;
    int rc;
    char *err;
};

static const char flows_insert[] =
    "INSERT INTO flows (day, sensor, point, segment, flow_hash, vlan, family, proto, src, dst, "
    "sport, dport, first_ns, last_ns, packets_fwd, bytes_fwd, packets_rev, bytes_rev, tcp_flags, "
    "community_id) FORMAT RowBinary";

static int on_flow(void *arg, const struct idx_flowrec *r)
{
    struct rows *w = arg;
    struct buf *b = &w->b;
    uint8_t a[16];
    put_le(b, day_of(r->first_ts), 2);
    put_str(b, w->batch->sensor);
    put_str(b, w->seg->point);
    put_le(b, w->seg->s.id, 8);
    put_le(b, r->hash, 8);
    put_le(b, r->vlan, 2);
    put_u8(b, r->family);
    put_u8(b, r->proto);
    ex_addr16(r->family, r->src, a);
    put(b, a, 16);
    ex_addr16(r->family, r->dst, a);
    put(b, a, 16);
    put_le(b, r->sport, 2);
    put_le(b, r->dport, 2);
    put_le(b, (uint64_t)r->first_ts, 8);
    put_le(b, (uint64_t)r->last_ts, 8);
    put_le(b, r->pkts_fwd, 8);
    put_le(b, r->bytes_fwd, 8);
    put_le(b, r->pkts_rev, 8);
    put_le(b, r->bytes_rev, 8);
    put_u8(b, r->tcp_flags);
    put_str(b, r->community_id);
    w->rows++;
    w->flow_packets += r->pkts_fwd + r->pkts_rev;
    if (b->oom) {
        w->rc = rw_err(w->err, RW_ENOMEM, "out of memory");
        return 1;
    }
    if (b->n >= FLUSH_BYTES) {
        if ((w->rc = post(w->c, flows_insert, b, w->cancel, w->err)) < 0)
            return 1;
        b->n = 0;
    }
    return 0;
}

static int ch_send(void *ctx, idx_t *ix, const struct ex_batch *batch, uint64_t *flows,
                   volatile int *cancel, char *err)
{
    struct ch *c = ctx;
    struct rows w = {.batch = batch, .c = c, .cancel = cancel, .err = err};
    struct buf segs = {0};
    uint64_t *fp = calloc(batch->n ? batch->n : 1, sizeof *fp);
    int rc = 0;
    if (!fp)
        return rw_err(err, RW_ENOMEM, "out of memory");
    for (size_t i = 0; i < batch->n; i++) {
        w.seg = &batch->segs[i];
        w.flow_packets = 0;
        w.rc = 0;
        rc = idx_flows(ix, w.seg->s.id, on_flow, &w, err);
        if (rc == 0)
            rc = w.rc;
        if (rc < 0) {
            rw_errctx(err, rc, "flows of segment %llu", (unsigned long long)w.seg->s.id);
            goto out;
        }
        fp[i] = w.flow_packets;
    }
    if (w.b.n && (rc = post(c, flows_insert, &w.b, cancel, err)) < 0)
        goto out;
    for (size_t i = 0; i < batch->n; i++) {
        const struct ex_seg *s = &batch->segs[i];
        put_le(&segs, day_of(s->s.min_ts), 2);
        put_str(&segs, batch->sensor);
        put_str(&segs, s->point);
        put_le(&segs, s->s.id, 8);
        put_le(&segs, (uint64_t)s->s.min_ts, 8);
        put_le(&segs, (uint64_t)s->s.max_ts, 8);
        put_le(&segs, s->s.packets, 8);
        put_le(&segs, fp[i], 8);
    }
    if (segs.oom) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    if ((rc = post(c, "INSERT INTO segments (day, sensor, point, segment, first_ns, last_ns, "
                      "packets, flow_packets) FORMAT RowBinary", &segs, cancel, err)) < 0)
        goto out;
    segs.n = 0;
    put_str(&segs, batch->sensor);
    put_le(&segs, (uint64_t)batch->complete_ns, 8);
    put_le(&segs, (uint64_t)rw_now_ns(), 8);
    if (segs.oom) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    rc = post(c, "INSERT INTO exports (sensor, complete_ns, updated_ns) FORMAT RowBinary", &segs,
              cancel, err);
    *flows = w.rows;
out:
    free(w.b.p);
    free(segs.p);
    free(fp);
    return rc;
}

/* Drop the partitions of this sensor's days before oldest_ns (flows and
 * segments are partitioned by (day, sensor): another sensor's rows of the
 * same days stay). */
static int ch_retire(void *ctx, const char *sensor, int64_t oldest_ns, volatile int *cancel,
                     char *err)
{
    struct ch *c = ctx;
    static const char *const tables[] = {"flows", "segments"};
    char q[512];
    int rc = 0;
    for (const char *s = sensor; *s; s++)
        if (*s == '\'' || *s == '\\')
            return 0; /* --sensor names are plain: nothing to drop safely */
    uint16_t day = day_of(oldest_ns);
    for (int t = 0; t < 2 && rc == 0; t++) {
        struct buf b = {0};
        snprintf(q, sizeof q, "SELECT DISTINCT day FROM %s WHERE sensor = '%s' AND day < "
                 "toDate(%u * 86400) FORMAT TabSeparated", tables[t], sensor, day);
        /* The days, one per line, into b (a POST of the query: its answer). */
        if ((rc = post_answer(c, q, &b, cancel, err)) < 0) {
            free(b.p);
            break;
        }
        put_u8(&b, 0);
        for (char *line = (char *)b.p, *nl; !b.oom && line && *line; line = nl) {
            nl = strchr(line, '\n');
            if (nl)
                *nl++ = 0;
            if (strlen(line) != 10)
                continue;
            snprintf(q, sizeof q, "ALTER TABLE %s DROP PARTITION ('%s', '%s')", tables[t], line,
                     sensor);
            struct buf none = {0};
            if ((rc = post(c, q, &none, cancel, err)) < 0)
                break;
        }
        free(b.p);
    }
    return rc;
}

static void ch_free(void *ctx)
{
    struct ch *c = ctx;
    if (!c)
        return;
    memset(c->pass, 0, sizeof c->pass);
    free(c->url);
    free(c);
}

int ex_ch_sink(const struct ex_opts *o, struct ex_sink *out, char *err)
{
    int rc;
    const struct rw_curl *cu = rw_curl(err);
    if (!cu)
        return rw_errctx(err, RW_EIO, "--export-flows");
    struct ch *c = calloc(1, sizeof *c);
    if (!c)
        return rw_err(err, RW_ENOMEM, "out of memory");
    c->cu = cu;
    size_t n = strlen(o->clickhouse) + 32;
    c->url = malloc(n);
    if (!c->url) {
        free(c);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    if (strstr(o->clickhouse, "database="))
        snprintf(c->url, n, "%s", o->clickhouse);
    else
        snprintf(c->url, n, "%s%sdatabase=%s", o->clickhouse,
                 strchr(o->clickhouse, '?') ? "&" : (strchr(o->clickhouse + 8, '/') ? "?" : "/?"),
                 EX_CH_DATABASE);
    if (o->ch_auth && (rc = read_auth(c, o->ch_auth, err)) < 0) {
        ch_free(c);
        return rc;
    }
    *out = (struct ex_sink){.name = "clickhouse", .ctx = c, .send = ch_send, .retire = ch_retire,
                            .free = ch_free};
    return 0;
}

/* ---- GET, for a daemon's query across sensors (federate.c) ---- */

struct getx {
    const struct rw_curl *cu;
    int (*sink)(void *arg, const void *buf, size_t n);
    void *arg;
    CURL *h;
    long status;
    char ebody[2048];
    size_t elen;
    int sink_failed;
};

static size_t on_get(char *p, size_t sz, size_t n, void *arg)
{
    struct getx *g = arg;
    size_t len = sz * n;
    if (!g->status)
        g->cu->easy_getinfo(g->h, CURLINFO_RESPONSE_CODE, &g->status);
    if (g->status >= 300) {
        size_t room = sizeof g->ebody - 1 - g->elen, k = len < room ? len : room;
        memcpy(g->ebody + g->elen, p, k);
        g->elen += k;
        g->ebody[g->elen] = 0;
        return len;
    }
    if (g->sink(g->arg, p, len) < 0) {
        g->sink_failed = 1;
        return 0;
    }
    return len;
}

int ex_http_get(const char *base, const char *path, const char *token, const char *ca,
                int (*sink)(void *arg, const void *buf, size_t n), void *arg, long *status,
                char *err)
{
    char url[8192], auth[200];
    struct getx g = {.sink = sink, .arg = arg};
    int rc = 0;
    if (status)
        *status = 0;
    const struct rw_curl *cu = g.cu = rw_curl(err);
    if (!cu)
        return RW_EIO;
    size_t bl = strlen(base);
    while (bl > 0 && base[bl - 1] == '/' && path[0])
        bl--;
    if ((size_t)snprintf(url, sizeof url, "%.*s%s", (int)bl, base, path) >= sizeof url)
        return rw_err(err, RW_EINPUT, "request too long");
    if (token && (strlen(token) > 160 || strpbrk(token, "\r\n \t")))
        return rw_err(err, RW_EINPUT, "malformed token");
    if (!(g.h = cu->easy_init()))
        return rw_err(err, RW_ENOMEM, "cannot start libcurl");
    struct curl_slist *hdrs = NULL;
    if (token && *token) {
        snprintf(auth, sizeof auth, "Authorization: Bearer %s", token);
        hdrs = cu->slist_append(NULL, auth);
        cu->easy_setopt(g.h, CURLOPT_HTTPHEADER, hdrs);
    }
    cu->easy_setopt(g.h, CURLOPT_URL, url);
    cu->easy_setopt(g.h, CURLOPT_WRITEFUNCTION, on_get);
    cu->easy_setopt(g.h, CURLOPT_WRITEDATA, &g);
    cu->easy_setopt(g.h, CURLOPT_NOSIGNAL, 1L);
    cu->easy_setopt(g.h, CURLOPT_CONNECTTIMEOUT, 10L);
    cu->easy_setopt(g.h, CURLOPT_USERAGENT, "rewindd");
    cu->easy_setopt(g.h, CURLOPT_PROTOCOLS_STR, "http,https");
    if (ca)
        cu->easy_setopt(g.h, CURLOPT_CAINFO, ca);
    CURLcode cc = cu->easy_perform(g.h);
    if (!g.status)
        cu->easy_getinfo(g.h, CURLINFO_RESPONSE_CODE, &g.status);
    if (status)
        *status = g.status;
    if (g.status >= 300) {
        /* the API's {"error":{"code":...,"message":"..."}}: the message */
        const char *m = strstr(g.ebody, "\"message\"");
        char msg[1024];
        if (m && (m = strchr(m + 9, '"'))) {
            size_t k = 0;
            for (m++; *m && *m != '"' && k < sizeof msg - 1; m++)
                msg[k++] = *m == '\\' && m[1] ? *++m : *m;
            msg[k] = 0;
        } else {
            snprintf(msg, sizeof msg, "%.*s", (int)strcspn(g.ebody, "\n"), g.ebody);
        }
        rc = rw_err(err, g.status < 500 ? RW_EINPUT : RW_EIO, "%s (HTTP %ld)", msg, g.status);
    } else if (g.sink_failed) {
        rc = rw_err(err, RW_EIO, "writing the answer failed");
    } else if (cc != CURLE_OK) {
        rc = rw_err(err, RW_EIO, "%s: %s", url, cu->easy_strerror(cc));
    }
    cu->slist_free_all(hdrs);
    cu->easy_cleanup(g.h);
    return rc;
}
