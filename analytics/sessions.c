/* sessions.c -- the sessions read API's core: runs over a query, packet
 * decoding, a flow map and the answer's output (sessions.h). */
#include "analytics/ses_int.h"

#include <arpa/inet.h>
#include <pcap/dlt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- flow map: chained hash table that doubles ---- */

struct ent {
    struct ent *next;
    struct ses_key k;
    void *v;
};

struct ses_map {
    struct ent **b;
    size_t nb, n;
};

uint64_t ses_hash(const void *p, size_t n)
{
    const uint8_t *c = p;
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= c[i];
        h *= 1099511628211ull;
    }
    return h;
}

ses_map_t *ses_map_new(void)
{
    ses_map_t *m = calloc(1, sizeof *m);
    if (!m)
        return NULL;
    m->nb = 64;
    if (!(m->b = calloc(m->nb, sizeof *m->b))) {
        free(m);
        return NULL;
    }
    return m;
}

void ses_map_free(ses_map_t *m, void (*fn)(void *v))
{
    if (!m)
        return;
    for (size_t i = 0; i < m->nb; i++)
        for (struct ent *e = m->b[i], *nx; e; e = nx) {
            nx = e->next;
            if (fn)
                fn(e->v);
            free(e);
        }
    free(m->b);
    free(m);
}

/* The slot of a key: its bytes mixed as 64-bit words (every packet of a
 * run looks its flow up, so this is on the hot path; ses_hash, byte by
 * byte, names calls in IDs and stays as it is). */
_Static_assert(sizeof(struct ses_key) <= 40, "ses_key fits five 64-bit words");
static size_t slot(const ses_map_t *m, const struct ses_key *k)
{
    uint64_t w[5] = {0}, h = 0x9e3779b97f4a7c15ull;
    memcpy(w, k, sizeof *k);
    for (int i = 0; i < 5; i++) {
        h ^= w[i];
        h *= 0xff51afd7ed558ccdull;
        h ^= h >> 32;
    }
    return (size_t)h & (m->nb - 1);
}

void *ses_map_get(ses_map_t *m, const struct ses_key *k)
{
    for (struct ent *e = m->b[slot(m, k)]; e; e = e->next)
        if (!memcmp(&e->k, k, sizeof *k))
            return e->v;
    return NULL;
}

int ses_map_put(ses_map_t *m, const struct ses_key *k, void *v)
{
    if (m->n >= m->nb) {
        size_t nb = m->nb * 2;
        struct ent **b = calloc(nb, sizeof *b);
        if (b) {
            struct ent **old = m->b;
            size_t onb = m->nb;
            m->b = b;
            m->nb = nb;
            for (size_t i = 0; i < onb; i++)
                for (struct ent *e = old[i], *nx; e; e = nx) {
                    nx = e->next;
                    size_t s = slot(m, &e->k);
                    e->next = m->b[s];
                    m->b[s] = e;
                }
            free(old);
        }
    }
    struct ent *e = malloc(sizeof *e);
    if (!e)
        return -1;
    e->k = *k;
    e->v = v;
    size_t s = slot(m, k);
    e->next = m->b[s];
    m->b[s] = e;
    m->n++;
    return 0;
}

void *ses_map_del(ses_map_t *m, const struct ses_key *k)
{
    for (struct ent **pp = &m->b[slot(m, k)]; *pp; pp = &(*pp)->next)
        if (!memcmp(&(*pp)->k, k, sizeof *k)) {
            struct ent *e = *pp;
            void *v = e->v;
            *pp = e->next;
            free(e);
            m->n--;
            return v;
        }
    return NULL;
}

size_t ses_map_count(const ses_map_t *m) { return m->n; }

void ses_map_each(ses_map_t *m, void (*fn)(void *arg, void *v), void *arg)
{
    for (size_t i = 0; i < m->nb; i++)
        for (struct ent *e = m->b[i]; e; e = e->next)
            fn(arg, e->v);
}

void ses_key_ep(const struct ses_ep *x, const struct ses_ep *y, uint8_t proto, struct ses_key *k)
{
    size_t al = x->fam == 4 ? 4 : 16;
    int c = memcmp(x->addr, y->addr, al);
    int swap = c > 0 || (c == 0 && x->port > y->port);
    const struct ses_ep *a = swap ? y : x, *b = swap ? x : y;
    memset(k, 0, sizeof *k);
    k->fam = (uint8_t)x->fam;
    k->proto = proto;
    memcpy(k->a, a->addr, al);
    memcpy(k->b, b->addr, al);
    k->pa = a->port;
    k->pb = b->port;
}

void ses_key_of(const struct ses_pkt *p, struct ses_key *k, int *fwd)
{
    struct ses_ep x = {p->fam, {0}, p->sport}, y = {p->fam, {0}, p->dport};
    memcpy(x.addr, p->src, 16);
    memcpy(y.addr, p->dst, 16);
    ses_key_ep(&x, &y, p->proto, k);
    if (fwd)
        *fwd = k->pa == p->sport && !memcmp(k->a, p->src, p->fam == 4 ? 4 : 16);
}

/* ---- decoding ---- */

static int decode_ip(const uint8_t *d, size_t n, struct ses_pkt *o)
{
    size_t hl, plen;
    uint8_t proto;
    if (n < 1)
        return 0;
    if ((d[0] >> 4) == 4) {
        if (n < 20 || (hl = (size_t)(d[0] & 15) * 4) < 20 || hl > n)
            return 0;
        size_t tot = rw_get_be16(d + 2);
        if (tot >= hl && tot < n)
            n = tot; /* Ethernet padding is not payload */
        if ((rw_get_be16(d + 6) & 0x1fff) != 0)
            return 0; /* a later fragment: no ports */
        o->fam = 4;
        memset(o->src, 0, 16);
        memset(o->dst, 0, 16);
        memcpy(o->src, d + 12, 4);
        memcpy(o->dst, d + 16, 4);
        proto = d[9];
    } else if ((d[0] >> 4) == 6) {
        if (n < 40)
            return 0;
        size_t pl = rw_get_be16(d + 4);
        if (pl && 40 + pl < n)
            n = 40 + pl;
        o->fam = 6;
        memcpy(o->src, d + 8, 16);
        memcpy(o->dst, d + 24, 16);
        proto = d[6];
        hl = 40;
        /* hop-by-hop, routing, destination options */
        while ((proto == 0 || proto == 43 || proto == 60) && hl + 8 <= n) {
            proto = d[hl];
            hl += ((size_t)d[hl + 1] + 1) * 8;
        }
        if (proto == 44 || hl > n)
            return 0;
    } else {
        return 0;
    }
    d += hl;
    n -= hl;
    o->proto = proto;
    if (proto == 6) {
        if (n < 20 || (plen = (size_t)(d[12] >> 4) * 4) < 20 || plen > n)
            return 0;
        o->sport = rw_get_be16(d);
        o->dport = rw_get_be16(d + 2);
        o->seq = rw_get_be32(d + 4);
        o->flags = d[13];
    } else if (proto == 17) {
        if (n < 8)
            return 0;
        o->sport = rw_get_be16(d);
        o->dport = rw_get_be16(d + 2);
        o->flags = 0;
        plen = 8;
        size_t ul = rw_get_be16(d + 4);
        if (ul >= 8 && ul < n)
            n = ul;
    } else {
        return 0;
    }
    o->pl = d + plen;
    o->pln = n - plen;
    return 1;
}

int ses_decode(int dlt, const struct qry_pkt *raw, struct ses_pkt *o)
{
    const uint8_t *d = raw->data;
    size_t n = raw->caplen, off = 0;
    unsigned et = 0;
    memset(o, 0, sizeof *o);
    o->raw = raw;
    o->ts = (int64_t)raw->sec * RW_NS_PER_SEC + raw->frac;
    switch (dlt) {
    case DLT_EN10MB:
        if (n < 14)
            return 0;
        et = rw_get_be16(d + 12);
        off = 14;
        break;
    case DLT_LINUX_SLL:
        if (n < 16)
            return 0;
        et = rw_get_be16(d + 14);
        off = 16;
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        if (n < 20)
            return 0;
        et = rw_get_be16(d);
        off = 20;
        break;
#endif
    case DLT_NULL:
    case DLT_LOOP:
        if (n < 4)
            return 0;
        off = 4;
        et = 0; /* by the version nibble */
        break;
    case DLT_RAW:
    case 101: /* LINKTYPE_RAW */
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        break;
    default:
        return 0;
    }
    while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && off + 4 <= n) {
        et = rw_get_be16(d + off + 2);
        off += 4;
        o->tagged = 1;
    }
    if (et == 0x8847 || et == 0x8848) { /* MPLS: the labels down to the bottom one */
        while (off + 4 <= n) {
            int bottom = d[off + 2] & 1;
            off += 4;
            if (bottom)
                break;
        }
        et = 0; /* by the version nibble */
    }
    if (et && et != 0x0800 && et != 0x86dd)
        return 0;
    if (off > n)
        return 0;
    return decode_ip(d + off, n - off, o);
}

/* ---- addresses ---- */

void ses_addr_str(int fam, const uint8_t *a, char *out, size_t n)
{
    char b[INET6_ADDRSTRLEN];
    if (!inet_ntop(fam == 4 ? AF_INET : AF_INET6, a, b, sizeof b))
        b[0] = 0;
    snprintf(out, n, "%s", b);
}

void ses_addr_hex(int fam, const uint8_t *a, char *out, size_t n)
{
    size_t al = fam == 4 ? 4 : 16, o = 0;
    for (size_t i = 0; i < al && o + 3 <= n; i++)
        o += (size_t)snprintf(out + o, n - o, "%02x", a[i]);
}

int ses_addr_unhex(const char *s, size_t len, int *fam, uint8_t *a)
{
    if (len != 8 && len != 32)
        return -1;
    memset(a, 0, 16);
    for (size_t i = 0; i < len; i += 2) {
        unsigned v;
        char t[3] = {s[i], s[i + 1], 0};
        char *e;
        v = (unsigned)strtoul(t, &e, 16);
        if (*e || !((t[0] >= '0' && t[0] <= '9') || (t[0] >= 'a' && t[0] <= 'f')))
            return -1;
        a[i / 2] = (uint8_t)v;
    }
    *fam = len == 8 ? 4 : 6;
    return 0;
}

int ses_addr_parse(const char *s, int *fam, uint8_t *a)
{
    memset(a, 0, 16);
    if (inet_pton(AF_INET, s, a) == 1) {
        *fam = 4;
        return 0;
    }
    if (inet_pton(AF_INET6, s, a) == 1) {
        *fam = 6;
        return 0;
    }
    return -1;
}

/* ---- output ---- */

void ses_out(ses_t *s, const void *p, size_t n)
{
    if (s->oerr)
        return;
    if (s->on + n > s->ocap) {
        if (ses_flush(s) < 0)
            return;
        if (n > s->ocap) {
            if (s->w(s->warg, p, n) < 0)
                s->oerr = 1;
            return;
        }
    }
    memcpy(s->ob + s->on, p, n);
    s->on += n;
}

void ses_outs(ses_t *s, const char *str) { ses_out(s, str, strlen(str)); }

void ses_outf(ses_t *s, const char *fmt, ...)
{
    char b[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    ses_out(s, b, (size_t)n < sizeof b ? (size_t)n : sizeof b - 1);
}

int ses_flush(ses_t *s)
{
    if (s->oerr)
        return -1;
    if (s->on && s->w(s->warg, s->ob, s->on) < 0) {
        s->oerr = 1;
        return -1;
    }
    s->on = 0;
    return 0;
}

void ses_json_str(ses_t *s, const char *str)
{
    if (!str) {
        ses_outs(s, "null");
        return;
    }
    char b[16];
    ses_out(s, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)str; *p; p++) {
        if (*p == '"' || *p == '\\') {
            b[0] = '\\';
            b[1] = (char)*p;
            ses_out(s, b, 2);
        } else if (*p < 0x20 || *p == 0x7f) {
            snprintf(b, sizeof b, "\\u%04x", *p);
            ses_outs(s, b);
        } else if (*p < 0x80) {
            ses_out(s, p, 1);
        } else {
            /* bytes of the wire: valid UTF-8 stays, anything else is shown
             * as U+FFFD so that the answer stays valid JSON */
            int len = (*p & 0xe0) == 0xc0   ? 2
                      : (*p & 0xf0) == 0xe0 ? 3
                      : (*p & 0xf8) == 0xf0 ? 4
                                            : 0;
            int ok = len > 0;
            for (int i = 1; ok && i < len; i++)
                ok = (p[i] & 0xc0) == 0x80;
            if (ok) {
                ses_out(s, p, (size_t)len);
                p += len - 1;
            } else {
                ses_outs(s, "\\ufffd");
            }
        }
    }
    ses_out(s, "\"", 1);
}

void ses_json_time(ses_t *s, int64_t ns)
{
    char t[48];
    if (!ns || ns == INT64_MIN) {
        ses_outs(s, "null");
        return;
    }
    rw_time_fmt(ns, t, sizeof t);
    ses_json_str(s, t);
}

void ses_csv_str(ses_t *s, const char *str)
{
    if (!str)
        return;
    if (!strpbrk(str, ",\"\r\n")) {
        ses_outs(s, str);
        return;
    }
    ses_out(s, "\"", 1);
    for (const char *p = str; *p; p++) {
        if (*p == '"')
            ses_out(s, "\"", 1);
        ses_out(s, p, 1);
    }
    ses_out(s, "\"", 1);
}

/* ---- the run ---- */

int ses_format_parse(const char *v, const char *param, enum ses_format *out, char *err)
{
    static const char *const names[] = {"json", "csv", "text", "report"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(v, names[i])) {
            *out = (enum ses_format)i;
            return 0;
        }
    return rw_err(err, RW_EINPUT, "%s: must be json, csv, text or report, not '%s'", param, v);
}

int ses_check(const struct ses_spec *sp, char *err)
{
    int fam;
    uint8_t a[16];
    if (sp->host && ses_addr_parse(sp->host, &fam, a) < 0)
        return rw_err(err, RW_EINPUT, "host: '%.100s' is not an IPv4 or IPv6 address", sp->host);
    if (sp->limit > SES_LIMIT_MAX)
        return rw_err(err, RW_EINPUT, "limit: at most %d, not %llu", SES_LIMIT_MAX,
                      (unsigned long long)sp->limit);
    if (sp->user && (!sp->user[0] || strlen(sp->user) > 255))
        return rw_err(err, RW_EINPUT, "user: must be 1 to 255 characters");
    if (sp->from != RW_TIME_MIN && sp->to != RW_TIME_MAX && sp->from >= sp->to)
        return rw_err(err, RW_EINPUT, "from: must be before to");
    if (sp->format == SES_REPORT && sp->kind != SES_SMTP)
        return rw_err(err, RW_EINPUT, "format: report is for SMTP sessions only");
    if ((sp->kind == SES_SMTP_EML || sp->kind == SES_CALL_PCAP) && !sp->id)
        return rw_err(err, RW_EINPUT, "id: missing");
    if (sp->id && strlen(sp->id) >= 160)
        return rw_err(err, RW_EINPUT, "id: too long");
    return 0;
}

int ses_query(ses_t *s, int64_t from, int64_t to, const char *filter, char *err)
{
    return ses_query_vlan(s, from, to, filter, 1, err);
}

int ses_query_vlan(ses_t *s, int64_t from, int64_t to, const char *filter, int vlan, char *err)
{
    struct qry_spec q = {0};
    q.from = from;
    q.to = to;
    /* BPF reads past one 802.1Q tag only when told (vlan): tagged frames
     * are asked for too. (vlan shifts the rest of the expression: it comes
     * last, and one tag is all it sees.) */
    if ((size_t)(vlan ? snprintf(s->filter, sizeof s->filter, "(%s) or (vlan and (%s))", filter,
                                 filter)
                      : snprintf(s->filter, sizeof s->filter, "%s", filter)) >= sizeof s->filter)
        return rw_err(err, RW_EINPUT, "query '%.100s...': the filter is too long", filter);
    q.filter = s->filter;
    int rc = qry_new(s->ix, &q, &s->q, err);
    if (rc < 0)
        return rw_errctx(err, rc, "query '%s'", filter);
    s->pts = qry_points(s->q, &s->npts);
    if (s->cancel)
        qry_set_cancel(s->q, s->cancel, s->cancel_arg);
    return 0;
}

int ses_new(idx_t *ix, const struct ses_spec *spec, qry_write_fn w, void *arg, ses_t **out,
            char *err)
{
    int rc;
    *out = NULL;
    if ((rc = ses_check(spec, err)) < 0)
        return rc;
    ses_t *s = calloc(1, sizeof *s);
    if (!s || !(s->ob = malloc(64 << 10))) {
        free(s);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    s->ocap = 64 << 10;
    s->ix = ix;
    s->spec = *spec;
    if (spec->host)
        snprintf(s->host, sizeof s->host, "%s", spec->host), s->spec.host = s->host;
    if (spec->user)
        snprintf(s->user, sizeof s->user, "%s", spec->user), s->spec.user = s->user;
    if (spec->id)
        snprintf(s->id, sizeof s->id, "%s", spec->id), s->spec.id = s->id;
    if (!s->spec.limit)
        s->spec.limit = SES_LIMIT_DEFAULT;
    s->w = w;
    s->warg = arg;
    s->found = 1;
    s->pool.max = SES_POOL_MAX;
    static const char *const ctypes[] = {"application/json", "text/csv", "text/plain",
                                         "text/plain"};
    s->ctype = ctypes[s->spec.format];
    if (spec->kind == SES_SMTP || spec->kind == SES_SMTP_EML)
        rc = ses_smtp_init(s, err);
    else
        rc = ses_voip_init(s, err);
    if (rc < 0 || !s->q) {
        ses_free(s);
        return rc;
    }
    *out = s;
    return 0;
}

int ses_pump(ses_t *s, char *err)
{
    if (s->ended)
        return 0;
    if (s->failed)
        return rw_err(err, RW_EIO, "the run failed before");
    for (int i = 0; i < 2048; i++) {
        struct qry_pkt pk;
        int rc = qry_next(s->q, &pk, err);
        if (rc < 0) {
            s->failed = 1;
            return rc;
        }
        if (rc == 0)
            goto finish;
        s->packets++;
        struct ses_pkt p;
        if (!ses_decode(s->pts[pk.point].dlt, &pk, &p))
            continue;
        rc = s->ops.packet(s, &p);
        if (s->oerr) {
            s->failed = 1;
            return rw_err(err, RW_EIO, "writing the answer failed");
        }
        if (rc < 0) {
            s->failed = 1;
            return rw_err(err, RW_ENOMEM, "out of memory");
        }
        if (rc > 0)
            goto finish; /* the kind has what it needs */
    }
    if (ses_flush(s) < 0) {
        s->failed = 1;
        return rw_err(err, RW_EIO, "writing the answer failed");
    }
    return 1;
finish:
    if (s->ops.finish && s->ops.finish(s, err) < 0) {
        s->failed = 1;
        return RW_EIO;
    }
    if (ses_flush(s) < 0) {
        s->failed = 1;
        return rw_err(err, RW_EIO, "writing the answer failed");
    }
    s->ended = 1;
    return 0;
}

int ses_found(const ses_t *s) { return s->found; }

void ses_set_cancel(ses_t *s, int (*fn)(void *arg), void *arg)
{
    s->cancel = fn;
    s->cancel_arg = arg;
    if (s->q)
        qry_set_cancel(s->q, fn, arg);
}

uint64_t ses_packets(const ses_t *s) { return s->packets; }
const char *ses_content_type(const ses_t *s) { return s->ctype; }
const char *ses_filter(const ses_t *s) { return s->filter; }

void ses_free(ses_t *s)
{
    if (!s)
        return;
    if (s->ops.free)
        s->ops.free(s);
    qry_free(s->q);
    free(s->ob);
    free(s);
}
