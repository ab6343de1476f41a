/* ident.c -- subscriber identities: who held which address when, kept in
 * the index (K17, K18) from RADIUS accounting seen by the archive's writer
 * (ic_tap) and from records posted as JSON lines (ic_ident_lines); and a
 * user resolved to the (address, interval) pairs it held (intercept.h).
 *
 * One rule keeps an interval from ever covering someone else's traffic:
 * when an address is given to a session, every interval still open on that
 * address for another session ends there, whether or not its Stop was
 * seen. */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "archive/archive.h"
#include "index/index.h"
#include "index/parse.h"

/* Open an interval of user on addr/plen at ts, ending every other open
 * interval of that address there; nothing when the same session holds it
 * already (an Interim-Update, a repeated Start). */
static int ident_start(idx_t *ix, const struct idx_ident *n, int sync, uint64_t *added,
                       char *err)
{
    struct idx_ident *h = NULL;
    size_t nh = 0;
    int rc = idx_ident_holders(ix, n->family, n->addr, n->plen, &h, &nh, err);
    for (size_t i = 0; rc == 0 && i < nh; i++) {
        if (h[i].end != RW_TIME_MAX || h[i].start > n->start)
            continue;
        int blocks = (h[i].port_lo || h[i].port_hi) && (n->port_lo || n->port_hi);
        if (blocks && (h[i].port_hi < n->port_lo || n->port_hi < h[i].port_lo))
            continue; /* another port block of an address shared behind NAT */
        if (!strcmp(h[i].user, n->user) && !strcmp(h[i].session, n->session) &&
            h[i].port_lo == n->port_lo && h[i].port_hi == n->port_hi)
            goto done; /* held already: an Interim-Update, a repeated Start */
        h[i].end = n->start;
        rc = idx_ident_put(ix, &h[i], sync, err);
    }
    if (rc == 0 && (rc = idx_ident_put(ix, n, sync, err)) == 0)
        (*added)++;
done:
    free(h);
    return rc;
}

/* End the open intervals of user on addr/plen (of session, when given). */
static int ident_stop(idx_t *ix, const struct idx_ident *n, int sync, char *err)
{
    struct idx_ident *h = NULL;
    size_t nh = 0;
    int rc = idx_ident_holders(ix, n->family, n->addr, n->plen, &h, &nh, err);
    for (size_t i = 0; rc == 0 && i < nh; i++) {
        if (h[i].end != RW_TIME_MAX || h[i].start >= n->end || strcmp(h[i].user, n->user) ||
            (n->session[0] && strcmp(h[i].session, n->session)))
            continue;
        h[i].end = n->end;
        rc = idx_ident_put(ix, &h[i], sync, err);
    }
    free(h);
    return rc;
}

int ic_ident_radius(idx_t *ix, const struct ic_radius_acct *a, int64_t ts, uint64_t *added,
                    char *err)
{
    struct idx_ident r;
    int rc = 0, naddr = 0;
    memset(&r, 0, sizeof r);
    snprintf(r.user, sizeof r.user, "%s", a->user);
    snprintf(r.session, sizeof r.session, "%s", a->session);
    snprintf(r.station, sizeof r.station, "%s", a->station);
    snprintf(r.source, sizeof r.source, "radius");
    for (int i = -1; rc == 0 && i < a->nprefix; i++) {
        if (i < 0 && !a->has_ip4)
            continue;
        memset(r.addr, 0, sizeof r.addr);
        if (i < 0) {
            r.family = 4;
            memcpy(r.addr, a->ip4, 4);
            r.plen = 32;
        } else {
            r.family = 6;
            memcpy(r.addr, a->prefix[i].addr, 16);
            r.plen = (uint8_t)a->prefix[i].plen;
        }
        naddr++;
        if (a->status == IC_ACCT_STOP) {
            r.start = RW_TIME_MIN;
            r.end = ts;
            rc = ident_stop(ix, &r, 0, err);
        } else {
            r.start = ts;
            r.end = RW_TIME_MAX;
            rc = ident_start(ix, &r, 0, added, err);
        }
    }
    if (rc == 0 && !naddr && a->status == IC_ACCT_STOP && a->session[0]) {
        /* A Stop that names the session only: its intervals end. */
        struct idx_ident *v = NULL;
        size_t nv = 0;
        rc = idx_ident_list(ix, a->user, &v, &nv, err);
        for (size_t i = 0; rc == 0 && i < nv; i++)
            if (v[i].end == RW_TIME_MAX && v[i].start < ts && !strcmp(v[i].session, a->session)) {
                v[i].end = ts;
                rc = idx_ident_put(ix, &v[i], 0, err);
            }
        free(v);
    }
    return rc;
}

/* ---------- the archive's tap ---------- */

/* A RADIUS accounting packet (ic_tap): the identities it tells. Apart,
 * so that the tap every packet goes through keeps a small frame. */
static __attribute__((noinline)) void tap_radius(ic_t *ic, const struct arc_tap *t)
{
    struct ic_ident_tap *it = ic_ident_counters(ic);
    struct ic_radius_acct a;
    char err[RW_ERRSZ];
    atomic_fetch_add(&it->radius, 1);
    int rc = ic_radius_parse(t->data + t->parsed->hdr_end, t->caplen - t->parsed->hdr_end, &a,
                             err);
    if (rc < 0) {
        atomic_fetch_add(&it->malformed, 1);
        return;
    }
    uint64_t added = 0;
    if (rc == 1 && ic_ident_radius(ic_index(ic), &a, t->ts, &added, err) < 0)
        atomic_fetch_add(&it->failed, 1);
    atomic_fetch_add(&it->identities, added);
    /* A user an active case targets may have a new address: follow it from
     * the next packet on. */
    if (rc == 1 && ic_live_users(ic) && ic_live_rebuild(ic, err) < 0)
        atomic_fetch_add(&it->failed, 1);
}

void ic_tap(void *arg, const struct arc_tap *t)
{
    ic_t *ic = arg;
    const struct idx_flow *f = &t->parsed->flow;
    ic_live_tee(ic, t);
    ic_follow_tee(t);
    if (f->present && f->proto == 17 && f->has_ports && (f->dport == 1813 || f->dport == 1646) &&
        t->parsed->hdr_end < t->caplen)
        tap_radius(ic, t);
}

/* ---------- JSON lines ---------- */

static int addr_field(json_t *o, struct idx_ident *r, char *err)
{
    json_t *ip = json_object_get(o, "ip"), *pf = json_object_get(o, "prefix");
    char buf[80], *slash;
    int max;
    if (!ip == !pf)
        return rw_err(err, RW_EINPUT, "ip: one of ip or prefix is required");
    if (!json_is_string(ip ? ip : pf) || json_string_length(ip ? ip : pf) >= sizeof buf)
        return rw_err(err, RW_EINPUT, "%s: expected an address as a string", ip ? "ip" : "prefix");
    snprintf(buf, sizeof buf, "%s", json_string_value(ip ? ip : pf));
    slash = strchr(buf, '/');
    if (pf && !slash)
        return rw_err(err, RW_EINPUT, "prefix: '%s' is not ADDRESS/LENGTH", buf);
    if (ip && slash)
        return rw_err(err, RW_EINPUT, "ip: '%s' is a prefix (use prefix)", buf);
    if (slash)
        *slash = 0;
    if (inet_pton(AF_INET, buf, r->addr) == 1)
        r->family = 4, max = 32;
    else if (inet_pton(AF_INET6, buf, r->addr) == 1)
        r->family = 6, max = 128;
    else
        return rw_err(err, RW_EINPUT, "%s: '%s' is not an IPv4 or IPv6 address",
                      ip ? "ip" : "prefix", buf);
    r->plen = (uint8_t)max;
    if (slash) {
        char *end;
        long l = strtol(slash + 1, &end, 10);
        if (slash[1] < '0' || slash[1] > '9' || *end || l < 0 || l > max)
            return rw_err(err, RW_EINPUT, "prefix: length '%s' is not 0 to %d", slash + 1, max);
        r->plen = (uint8_t)l;
        for (int b = r->plen; b < max; b++)
            if (r->addr[b / 8] & (0x80 >> (b % 8)))
                return rw_err(err, RW_EINPUT, "prefix: bits set beyond /%d", r->plen);
    }
    return 0;
}

static int text(json_t *o, const char *k, char *out, size_t cap, int required, char *err)
{
    json_t *v = json_object_get(o, k);
    if (!v) {
        out[0] = 0;
        return required ? rw_err(err, RW_EINPUT, "%s: missing", k) : 0;
    }
    if (!json_is_string(v) || json_string_length(v) >= cap || json_string_length(v) == 0)
        return rw_err(err, RW_EINPUT, "%s: expected a string of 1 to %zu bytes", k, cap - 1);
    const char *s = json_string_value(v);
    for (size_t i = 0; i < json_string_length(v); i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return rw_err(err, RW_EINPUT, "%s: control characters are not allowed", k);
    memcpy(out, s, json_string_length(v) + 1);
    return 0;
}

static int when(json_t *o, const char *k, int64_t now, int64_t *out, char *err)
{
    json_t *v = json_object_get(o, k);
    char e2[RW_ERRSZ];
    if (json_is_integer(v) && json_integer_value(v) >= 0 &&
        json_integer_value(v) < INT64_MAX / RW_NS_PER_SEC) {
        *out = (int64_t)json_integer_value(v) * RW_NS_PER_SEC;
        return 0;
    }
    if (!json_is_string(v) || rw_time_parse(json_string_value(v), now, out, e2) < 0)
        return rw_err(err, RW_EINPUT, "%s: expected a time (RFC 3339, Unix seconds)", k);
    return 0;
}

/* One line into r. */
static int ident_line(const char *s, size_t n, int64_t now, struct idx_ident *r, char *err)
{
    json_error_t je;
    const char *k;
    json_t *v;
    int rc = RW_EINPUT;
    memset(r, 0, sizeof *r);
    json_t *o = json_loadb(s, n, JSON_REJECT_DUPLICATES, &je);
    if (!o)
        return rw_err(err, RW_EINPUT, "not JSON: %s", je.text);
    if (!json_is_object(o)) {
        rw_err(err, RW_EINPUT, "expected a JSON object");
        goto out;
    }
    json_object_foreach(o, k, v) {
        if (strcmp(k, "user") && strcmp(k, "ip") && strcmp(k, "prefix") && strcmp(k, "start") &&
            strcmp(k, "end") && strcmp(k, "session") && strcmp(k, "station") &&
            strcmp(k, "ports")) {
            rw_err(err, RW_EINPUT, "%.32s: unknown field: an identity has user, ip or prefix, "
                   "start, end, session, station, ports", k);
            goto out;
        }
    }
    if (text(o, "user", r->user, sizeof r->user, 1, err) < 0 || addr_field(o, r, err) < 0 ||
        text(o, "session", r->session, sizeof r->session, 0, err) < 0 ||
        text(o, "station", r->station, sizeof r->station, 0, err) < 0 ||
        when(o, "start", now, &r->start, err) < 0)
        goto out;
    r->end = RW_TIME_MAX;
    if (json_object_get(o, "end") && when(o, "end", now, &r->end, err) < 0)
        goto out;
    if (r->end <= r->start) {
        rw_err(err, RW_EINPUT, "end: the interval is reversed or empty: 'end' must be after "
               "'start'");
        goto out;
    }
    json_t *p = json_object_get(o, "ports");
    if (p) {
        unsigned lo, hi;
        char tail;
        if (!json_is_string(p) ||
            sscanf(json_string_value(p), "%u-%u%c", &lo, &hi, &tail) != 2 || lo < 1 ||
            hi > 65535 || lo > hi) {
            rw_err(err, RW_EINPUT, "ports: expected a port block LO-HI within 1-65535");
            goto out;
        }
        r->port_lo = (uint16_t)lo;
        r->port_hi = (uint16_t)hi;
    }
    snprintf(r->source, sizeof r->source, "api");
    rc = 0;
out:
    json_decref(o);
    return rc;
}

int ic_ident_lines(idx_t *ix, const char *text_, size_t n, uint64_t *added, char *err)
{
    int64_t now = rw_now_ns();
    struct idx_ident *v = NULL;
    size_t cnt = 0, cap = 0, line = 0;
    int rc = 0;
    *added = 0;
    /* Every line checked first: a batch goes in whole or not at all. */
    for (size_t at = 0; at < n;) {
        const char *nl = memchr(text_ + at, '\n', n - at);
        size_t l = nl ? (size_t)(nl - text_ - at) : n - at;
        line++;
        size_t s = at;
        at += l + (nl ? 1 : 0);
        while (l && (text_[s + l - 1] == '\r' || text_[s + l - 1] == ' '))
            l--;
        if (!l)
            continue;
        if (cnt == cap) {
            struct idx_ident *nv = realloc(v, (cap = cap ? cap * 2 : 64) * sizeof *v);
            if (!nv) {
                free(v);
                return rw_err(err, RW_ENOMEM, "out of memory");
            }
            v = nv;
        }
        if ((rc = ident_line(text_ + s, l, now, &v[cnt], err)) < 0) {
            free(v);
            return rw_errctx(err, rc, "line %zu", line);
        }
        cnt++;
    }
    if (!cnt) {
        free(v);
        return rw_err(err, RW_EINPUT, "body: no identity records (JSON lines)");
    }
    for (size_t i = 0; rc == 0 && i < cnt; i++) {
        int64_t end = v[i].end;
        v[i].end = RW_TIME_MAX;
        rc = ident_start(ix, &v[i], 0, added, err);
        if (rc == 0 && end != RW_TIME_MAX) {
            v[i].end = end;
            rc = ident_stop(ix, &v[i], i + 1 == cnt, err);
        }
    }
    free(v);
    return rc;
}

int ic_ident_resolve(idx_t *ix, const char *user, int64_t from, int64_t to,
                     struct idx_ident **out, size_t *n, char *err)
{
    struct idx_ident *v = NULL;
    size_t nv = 0, k = 0;
    int rc = idx_ident_list(ix, user, &v, &nv, err);
    *out = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < nv; i++)
        if (v[i].start < to && v[i].end > from && v[i].start < v[i].end)
            v[k++] = v[i];
    *out = v;
    *n = k;
    return 0;
}
