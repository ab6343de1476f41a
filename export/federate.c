/* federate.c -- one query across sensors (rewind query --sensors, and
 * rewindd --federate): ClickHouse (the flows rewindd --export-flows sent
 * it) says which sensors hold flows that match the filter in the window;
 * those are asked, and so is every sensor whose export has not reached the
 * window's end or that holds packets no flow record names (not IP), so that
 * no match is skipped. With no ClickHouse, no filter a flow can be judged
 * by, or a ClickHouse that does not answer, every sensor is asked. The
 * answers are fetched in parallel, each into a temporary file, and merged
 * by timestamp (merge.c) only once all have arrived: a failure is known
 * before the first byte of the answer is written. HTTP goes through the
 * caller's ex_get_fn, so that the CLI keeps libcurl out of its link. */
#include "export/ex_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/analytics.h"

struct fetch {
    const struct ex_sensor *s;
    ex_get_fn get;
    const char *path;
    FILE *f;
    int rc, empty, started, cid;
    char err[RW_ERRSZ];
    pthread_t th;
};

struct ex_fed {
    const struct ex_sensors *ss;
    uint8_t *ask;
    struct fetch *fx;
    char asked[4096], warning[RW_ERRSZ + 64], failures[4096];
    size_t nasked, nfailed;
    int input;
};

static int file_sink(void *arg, const void *buf, size_t n)
{
    return fwrite(buf, 1, n, arg) == n ? 0 : -1;
}

/* URL-encode s (RFC 3986 unreserved kept); malloc'ed. */
static char *esc(const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    char *out = malloc(strlen(s) * 3 + 1), *w = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            *w++ = (char)*p;
        } else {
            *w++ = '%';
            *w++ = hex[*p >> 4];
            *w++ = hex[*p & 15];
        }
    }
    *w = 0;
    return out;
}

/* Remove the user information (user:password@) of every URL in msg. */
static void scrub(char *msg)
{
    for (char *p = strstr(msg, "://"); p; p = strstr(p + 3, "://")) {
        char *h = p + 3, *at = h + strcspn(h, "@/ ");
        if (*at == '@')
            memmove(h, at + 1, strlen(at + 1) + 1);
    }
}

int ex_mem_sink(void *arg, const void *buf, size_t n)
{
    struct ex_mem *m = arg;
    if (m->n + n + 1 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 65536;
        while (nc < m->n + n + 1)
            nc *= 2;
        if (nc > m->max)
            return -1;
        char *p = realloc(m->p, nc);
        if (!p)
            return -1;
        m->p = p;
        m->cap = nc;
    }
    memcpy(m->p + m->n, buf, n);
    m->n += n;
    m->p[m->n] = 0;
    return 0;
}

int ex_ch_select(const struct ex_sensors *ss, ex_get_fn get, const char *sql,
                 int (*sink)(void *arg, const void *buf, size_t n), void *arg, char *err)
{
    char *q = esc(sql), *u = esc(ss->ch_user), *pw = esc(ss->ch_pass);
    size_t n = strlen(ss->clickhouse) + (q ? strlen(q) : 0) + (u ? strlen(u) : 0) +
               (pw ? strlen(pw) : 0) + 64;
    char *url = malloc(n);
    int rc;
    if (!q || !u || !pw || !url) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    /* The login as the URL's user information: curl sends it as HTTP basic
     * authentication, never in the query string (nor in ClickHouse's logs). */
    const char *rest = strstr(ss->clickhouse, "://");
    rest = rest ? rest + 3 : ss->clickhouse;
    int k = snprintf(url, n, "%.*s", (int)(rest - ss->clickhouse), ss->clickhouse);
    if (ss->ch_user[0])
        k += snprintf(url + k, n - (size_t)k, "%s:%s@", u, pw);
    const char *sep = strchr(rest, '?') ? "&" : strchr(rest, '/') ? "?" : "/?";
    snprintf(url + k, n - (size_t)k, "%s%s%squery=%s", rest, sep,
             strstr(rest, "database=") ? "" : "database=" EX_CH_DATABASE "&", q);
    char e2[RW_ERRSZ];
    rc = get(url, "", "", NULL, sink, arg, NULL, e2);
    if (rc < 0) {
        scrub(e2); /* never the password in a message */
        rw_err(err, rc, "ClickHouse %s: %s", ss->clickhouse, e2);
    }
out:
    free(q);
    free(u);
    free(pw);
    free(url);
    return rc;
}

/* Run a SELECT on ClickHouse; the TabSeparated answer in m. */
static int ch_select(const struct ex_sensors *ss, ex_get_fn get, const char *sql, struct ex_mem *m,
                     char *err)
{
    m->n = 0;
    if (m->p)
        m->p[0] = 0;
    return ex_ch_select(ss, get, sql, ex_mem_sink, m, err);
}

static int sensor_index(const struct ex_sensors *ss, const char *name, size_t len)
{
    for (size_t i = 0; i < ss->n; i++)
        if (strlen(ss->s[i].name) == len && !strncmp(ss->s[i].name, name, len))
            return (int)i;
    return -1;
}

static int unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* ---- a flow filter as a ClickHouse condition ----
 * A superset: every flow the filter matches meets the condition, so that
 * ClickHouse returns fewer rows and the filter itself (an_ffilter_match)
 * still judges each. What it cannot say (not, vlan, portrange, a word it
 * does not know) becomes 1, which keeps that property. */

struct px {
    const char *p;
    char *out;
    size_t n, len;
    int bad;
};

static void emit(struct px *x, const char *s)
{
    size_t l = strlen(s);
    if (x->len + l + 1 > x->n) {
        x->bad = 1;
        return;
    }
    memcpy(x->out + x->len, s, l + 1);
    x->len += l;
}

/* The next word ("(", ")", "!" alone) into w; 0 at the end. */
static int word(struct px *x, char *w, size_t n, int peek)
{
    const char *p = x->p;
    while (*p == ' ' || *p == '\t')
        p++;
    if (!*p)
        return 0;
    size_t k = 0;
    if (*p == '(' || *p == ')' || *p == '!') {
        w[k++] = *p++;
    } else {
        while (*p && !strchr(" \t()!", *p) && k < n - 1)
            w[k++] = *p++;
    }
    w[k] = 0;
    if (!peek)
        x->p = p;
    return 1;
}

static int addr_hex(const char *s, char *hex, uint8_t *fam)
{
    uint8_t a[16];
    struct in_addr v4;
    if (inet_pton(AF_INET, s, &v4) == 1) {
        memset(a, 0, 10);
        a[10] = a[11] = 0xff;
        memcpy(a + 12, &v4, 4);
        *fam = 4;
    } else if (inet_pton(AF_INET6, s, a) == 1) {
        *fam = 6;
    } else {
        return -1;
    }
    for (int i = 0; i < 16; i++)
        sprintf(hex + 2 * i, "%02X", a[i]);
    return 0;
}

static void p_or(struct px *x);

/* One primitive, or a parenthesised expression, or not. */
static void p_prim(struct px *x)
{
    char w[128], v[128];
    if (!word(x, w, sizeof w, 0)) {
        x->bad = 1;
        return;
    }
    if (!strcmp(w, "(")) {
        emit(x, "(");
        p_or(x);
        if (!word(x, w, sizeof w, 0) || strcmp(w, ")"))
            x->bad = 1;
        emit(x, ")");
        return;
    }
    if (!strcmp(w, "not") || !strcmp(w, "!")) { /* a superset of a negation: anything */
        size_t keep = x->len;
        p_prim(x);
        x->len = keep;
        x->out[keep] = 0;
        emit(x, "1");
        return;
    }
    if (!strcmp(w, "src") || !strcmp(w, "dst")) { /* either side: a superset */
        if (!word(x, w, sizeof w, 0)) {
            x->bad = 1;
            return;
        }
        if (!strcmp(w, "or") || !strcmp(w, "and")) { /* "src or dst host" */
            if (!word(x, w, sizeof w, 0) || !word(x, w, sizeof w, 0)) {
                x->bad = 1;
                return;
            }
        }
    }
    if (!strcmp(w, "host") || !strcmp(w, "port")) {
        int host = w[0] == 'h';
        if (!word(x, v, sizeof v, 0)) {
            x->bad = 1;
            return;
        }
        char c[200], hex[33];
        uint8_t fam;
        char *end;
        long port = strtol(v, &end, 10);
        if (host && addr_hex(v, hex, &fam) == 0)
            snprintf(c, sizeof c, "(src = unhex('%s') OR dst = unhex('%s'))", hex, hex);
        else if (!host && !*end && port >= 0 && port <= 65535)
            snprintf(c, sizeof c, "(sport = %ld OR dport = %ld)", port, port);
        else
            snprintf(c, sizeof c, "1"); /* a name, a service: judged by the filter alone */
        emit(x, c);
        return;
    }
    static const struct { const char *w; const char *c; } kw[] = {
        {"tcp", "proto = 6"}, {"udp", "proto = 17"}, {"icmp", "proto = 1"},
        {"icmp6", "proto = 58"}, {"sctp", "proto = 132"}, {"ip", "family = 4"},
        {"ip6", "family = 6"}};
    for (size_t i = 0; i < sizeof kw / sizeof kw[0]; i++) {
        if (!strcmp(w, kw[i].w)) {
            char nx[128];
            /* "ip proto N", "ip6 proto N", "ip host X": the next words go their way */
            if (word(x, nx, sizeof nx, 1) && !strcmp(nx, "proto")) {
                word(x, nx, sizeof nx, 0);
                if (!word(x, nx, sizeof nx, 0)) {
                    x->bad = 1;
                    return;
                }
                emit(x, "1");
                return;
            }
            emit(x, kw[i].c);
            return;
        }
    }
    /* net, portrange, vlan, proto N, a bare value...: words up to the next
     * operator or parenthesis are this primitive's; the filter judges it. */
    for (;;) {
        char nx[128];
        if (!word(x, nx, sizeof nx, 1) || !strcmp(nx, "and") || !strcmp(nx, "or") ||
            !strcmp(nx, "&&") || !strcmp(nx, "||") || !strcmp(nx, ")"))
            break;
        word(x, nx, sizeof nx, 0);
    }
    emit(x, "1");
}

static void p_and(struct px *x)
{
    char w[16];
    emit(x, "(");
    p_prim(x);
    while (!x->bad && word(x, w, sizeof w, 1) && (!strcmp(w, "and") || !strcmp(w, "&&"))) {
        word(x, w, sizeof w, 0);
        emit(x, " AND ");
        p_prim(x);
    }
    emit(x, ")");
}

static void p_or(struct px *x)
{
    char w[16];
    emit(x, "(");
    p_and(x);
    while (!x->bad && word(x, w, sizeof w, 1) && (!strcmp(w, "or") || !strcmp(w, "||"))) {
        word(x, w, sizeof w, 0);
        emit(x, " OR ");
        p_and(x);
    }
    emit(x, ")");
}

void ex_fed_filter_sql(const char *filter, char *out, size_t n)
{
    struct px x = {.p = filter, .out = out, .n = n};
    char w[8];
    out[0] = 0;
    p_or(&x);
    if (x.bad || word(&x, w, sizeof w, 1))
        snprintf(out, n, "1");
}

static void add_why(char *why, size_t wn, const char *name, const char *reason)
{
    size_t l = strlen(why);
    snprintf(why + l, wn - l, "%s%s: %s", l ? "; " : "", name, reason);
}

/* A SELECT run on a thread of its own. */
struct chq {
    const struct ex_sensors *ss;
    ex_get_fn get;
    char sql[512];
    struct ex_mem m;
    int rc, started;
    char err[RW_ERRSZ];
    pthread_t th;
};

static void *chq_run(void *arg)
{
    struct chq *c = arg;
    c->rc = ch_select(c->ss, c->get, c->sql, &c->m, c->err);
    return NULL;
}

/* ask[i] for every sensor to ask; <0 when ClickHouse could not say. */
static int select_sensors(const struct ex_sensors *ss, ex_get_fn get,
                          const struct ex_fed_query *q, an_ffilter_t *ff, uint8_t *ask, char *why,
                          size_t wn, char *err)
{
    char sql[8192], w[256], cond[6000];
    struct ex_mem m = {.max = 256u << 20};
    uint8_t *complete = NULL;
    int rc;
    snprintf(w, sizeof w, "last_ns >= %lld AND first_ns < %lld", (long long)q->from,
             (long long)q->to);
    /* How far each export has got, and packets no flow names: asked at the
     * same time as the flows. */
    struct chq side[2] = {{.ss = ss, .get = get, .m = {.max = 256u << 20}},
                          {.ss = ss, .get = get, .m = {.max = 256u << 20}}};
    snprintf(side[0].sql, sizeof side[0].sql, "SELECT sensor, max(complete_ns) FROM exports "
             "GROUP BY sensor FORMAT TabSeparated");
    snprintf(side[1].sql, sizeof side[1].sql, "SELECT DISTINCT sensor FROM segments FINAL WHERE "
             "%s AND packets > flow_packets FORMAT TabSeparated", w);
    for (int k = 0; k < 2; k++)
        side[k].started = pthread_create(&side[k].th, NULL, chq_run, &side[k]) == 0;
    if (q->cid)
        snprintf(sql, sizeof sql, "SELECT DISTINCT sensor FROM flows WHERE community_id = '%s' "
                 "AND %s FORMAT TabSeparated", q->cid, w);
    else
    {
        ex_fed_filter_sql(q->filter, cond, sizeof cond);
        snprintf(sql, sizeof sql, "SELECT sensor, family, proto, hex(src), hex(dst), sport, dport, "
                 "vlan FROM flows WHERE %s AND %s GROUP BY sensor, family, proto, src, dst, sport, "
                 "dport, vlan FORMAT TabSeparated", w, cond);
    }
    if ((rc = ch_select(ss, get, sql, &m, err)) < 0)
        goto out;
    for (char *line = m.p, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        size_t sl = strcspn(line, "\t");
        int i = sensor_index(ss, line, sl);
        if (i < 0 || ask[i])
            continue;
        if (q->cid) {
            ask[i] = 1;
            continue;
        }
        struct an_flow f;
        unsigned fam, proto, sp, dp, vlan;
        char src[40], dst[40];
        memset(&f, 0, sizeof f);
        if (sscanf(line + sl, "\t%u\t%u\t%32s\t%32s\t%u\t%u\t%u", &fam, &proto, src, dst, &sp, &dp,
                   &vlan) != 7 || (fam != 4 && fam != 6)) {
            rc = rw_err(err, RW_EIO, "ClickHouse %s: an unexpected row '%.80s'", ss->clickhouse,
                        line);
            goto out;
        }
        uint8_t a[16], b[16];
        if (unhex(src, a, 16) < 0 || unhex(dst, b, 16) < 0) {
            rc = rw_err(err, RW_EIO, "ClickHouse %s: an unexpected address in '%.80s'",
                        ss->clickhouse, line);
            goto out;
        }
        f.family = (uint8_t)fam;
        f.proto = (uint8_t)proto;
        memcpy(f.src, fam == 4 ? a + 12 : a, fam == 4 ? 4 : 16);
        memcpy(f.dst, fam == 4 ? b + 12 : b, fam == 4 ? 4 : 16);
        f.sport = (uint16_t)sp;
        f.dport = (uint16_t)dp;
        f.vlan = (uint16_t)vlan;
        if (an_ffilter_match(ff, &f))
            ask[i] = 1;
    }
    /* Exports that have not reached the window's end. */
    if (!(complete = calloc(ss->n ? ss->n : 1, 1))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    for (int k = 0; k < 2; k++) {
        if (side[k].started)
            pthread_join(side[k].th, NULL);
        else
            chq_run(&side[k]); /* no thread: here */
        side[k].started = 0;
    }
    for (int k = 0; k < 2; k++)
        if (side[k].rc < 0) {
            rc = rw_err(err, side[k].rc, "%s", side[k].err);
            goto out;
        }
    for (char *line = side[0].m.p, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        size_t sl = strcspn(line, "\t");
        int i = sensor_index(ss, line, sl);
        long long c;
        if (i >= 0 && line[sl] && sscanf(line + sl + 1, "%lld", &c) == 1 && c >= q->to)
            complete[i] = 1;
    }
    for (size_t i = 0; i < ss->n; i++)
        if (!complete[i] && !ask[i]) {
            ask[i] = 2;
            add_why(why, wn, ss->s[i].name, "its export lags behind the window's end");
        }
    /* Packets that no flow names. */
    for (char *line = side[1].m.p, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        int i = sensor_index(ss, line, strlen(line));
        if (i >= 0 && !ask[i]) {
            ask[i] = 3;
            add_why(why, wn, ss->s[i].name, "holds packets no flow names");
        }
    }
out:
    for (int k = 0; k < 2; k++) {
        if (side[k].started)
            pthread_join(side[k].th, NULL);
        free(side[k].m.p);
    }
    free(complete);
    free(m.p);
    return rc;
}

static void *fetch_run(void *arg)
{
    struct fetch *x = arg;
    long status = 0;
    x->rc = x->get(x->s->url, x->path, x->s->token, x->s->ca[0] ? x->s->ca : NULL, file_sink, x->f,
                   &status, x->err);
    if (x->rc < 0 && x->cid && status == 404 && strstr(x->err, "no flow with Community ID")) {
        x->rc = 0; /* asked because its export lags: it has none */
        x->empty = 1;
    }
    if (x->rc == 0 && (fflush(x->f) != 0 || fseek(x->f, 0, SEEK_SET) != 0))
        x->rc = rw_err(x->err, RW_EIO, "temporary file: %s", strerror(errno));
    return NULL;
}

static int append(char *q, size_t n, const char *k, const char *v)
{
    char *e = esc(v);
    size_t l = strlen(q);
    if (!e)
        return -1;
    int w = snprintf(q + l, n - l, "%s%s=%s", l ? "&" : "?", k, e);
    free(e);
    return w < 0 || (size_t)w >= n - l ? -1 : 0;
}

int ex_fed_fetch(const struct ex_sensors *ss, const struct ex_fed_query *q, ex_get_fn get,
                 ex_fed_t **out, char *err)
{
    char qs[8000] = "", tb[64], why[1024] = "", e2[RW_ERRSZ];
    an_ffilter_t *ff = NULL;
    struct ex_fed *f = calloc(1, sizeof *f);
    *out = NULL;
    if (!f)
        return rw_err(err, RW_ENOMEM, "out of memory");
    f->ss = ss;
    f->ask = calloc(ss->n ? ss->n : 1, 1);
    f->fx = calloc(ss->n ? ss->n : 1, sizeof *f->fx);
    if (!f->ask || !f->fx) {
        ex_fed_free(f);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    const char *flt = q->filter ? q->filter : "";
    int narrow = ss->clickhouse[0] && (q->cid || (flt[0] && an_ffilter_new(flt, &ff, e2) == 0));
    if (narrow && select_sensors(ss, get, q, ff, f->ask, why, sizeof why, e2) < 0) {
        snprintf(f->warning, sizeof f->warning, "%s; asking every sensor", e2);
        narrow = 0;
    }
    an_ffilter_free(ff);
    if (!narrow)
        memset(f->ask, 1, ss->n);
    char list[1024] = "", skipped[1024] = "";
    for (size_t i = 0; i < ss->n; i++) {
        char *l = f->ask[i] ? list : skipped;
        size_t k = strlen(l);
        snprintf(l + k, sizeof list - k, "%s%s", k ? ", " : "", ss->s[i].name);
    }
    snprintf(f->asked, sizeof f->asked, "asking %s%s%s%s%s%s", list[0] ? list : "no sensor",
             skipped[0] ? " (no matching flow in ClickHouse on " : "", skipped,
             skipped[0] ? ")" : "", why[0] ? "; also asked: " : "", why);
    /* The request each sensor gets: the same absolute window. */
    if ((q->from != RW_TIME_MIN && append(qs, sizeof qs, "from", rw_time_fmt(q->from, tb, sizeof tb))) ||
        append(qs, sizeof qs, "to", rw_time_fmt(q->to, tb, sizeof tb)) ||
        (flt[0] && append(qs, sizeof qs, "filter", flt)) ||
        (q->cid && append(qs, sizeof qs, "community_id", q->cid)) ||
        append(qs, sizeof qs, "format", "pcapng")) {
        ex_fed_free(f);
        return rw_err(err, RW_EINPUT, "the request is too long");
    }
    char *p = malloc(strlen(qs) + 32);
    if (!p) {
        ex_fed_free(f);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    snprintf(p, strlen(qs) + 32, "/api/v1/packets%s", qs);
    for (size_t i = 0; i < ss->n; i++) {
        struct fetch *x = &f->fx[i];
        if (!f->ask[i])
            continue;
        f->nasked++;
        x->s = &ss->s[i];
        x->get = get;
        x->path = p;
        x->cid = q->cid != NULL;
        if (!(x->f = tmpfile())) {
            x->rc = rw_err(x->err, RW_EIO, "cannot create a temporary file: %s", strerror(errno));
            continue;
        }
        if (pthread_create(&x->th, NULL, fetch_run, x) != 0) {
            x->rc = rw_err(x->err, RW_EIO, "cannot start a thread");
            continue;
        }
        x->started = 1;
    }
    for (size_t i = 0; i < ss->n; i++)
        if (f->fx[i].started)
            pthread_join(f->fx[i].th, NULL);
    free(p);
    f->input = 1;
    for (size_t i = 0; i < ss->n; i++) {
        struct fetch *x = &f->fx[i];
        if (!f->ask[i] || x->rc == 0)
            continue;
        f->nfailed++;
        if (x->rc != RW_EINPUT)
            f->input = 0;
        size_t l = strlen(f->failures);
        snprintf(f->failures + l, sizeof f->failures - l, "%ssensor %s (%s): %s", l ? "; " : "",
                 x->s->name, x->s->url, x->err);
    }
    *out = f;
    return 0;
}

const char *ex_fed_asked(const ex_fed_t *f) { return f->asked; }
const char *ex_fed_warning(const ex_fed_t *f) { return f->warning[0] ? f->warning : NULL; }
int ex_fed_was_asked(const ex_fed_t *f, size_t i) { return i < f->ss->n && f->ask[i]; }

size_t ex_fed_failed(const ex_fed_t *f, size_t *asked, const char **what, int *input)
{
    *asked = f->nasked;
    *what = f->failures;
    *input = f->nfailed && f->input;
    return f->nfailed;
}

int ex_fed_write(ex_fed_t *f, FILE *out, uint64_t *packets, char *err)
{
    struct ex_merge_in *in = calloc(f->ss->n ? f->ss->n : 1, sizeof *in);
    char note[4200] = "";
    size_t n = 0;
    if (!in)
        return rw_err(err, RW_ENOMEM, "out of memory");
    for (size_t i = 0; i < f->ss->n; i++) {
        struct fetch *x = &f->fx[i];
        if (!f->ask[i] || x->rc || x->empty || !x->f)
            continue;
        in[n].sensor = x->s->name;
        in[n++].f = x->f;
    }
    if (f->nfailed)
        snprintf(note, sizeof note, "rewind: this answer lacks the packets of %s", f->failures);
    int rc = ex_pcapng_merge(in, n, note, out, packets, err);
    free(in);
    return rc;
}

void ex_fed_free(ex_fed_t *f)
{
    if (!f)
        return;
    for (size_t i = 0; f->fx && i < f->ss->n; i++)
        if (f->fx[i].f)
            fclose(f->fx[i].f);
    free(f->fx);
    free(f->ask);
    free(f);
}
