/* intercept.c -- GET /api/v1/cases/ID/intercept?after=SEQ: pull delivery of
 * a case's live intercept. A pcapng stream of the case's spooled packets
 * from SEQ + 1 on, each with its sequence number, that keeps following
 * while the case is active and ends (complete) once it has ended and every
 * packet is out. An agency resumes after a broken connection with the last
 * number it holds: nothing is lost, nothing comes twice (man/rewindd.8,
 * LAWFUL INTERCEPT). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "httpd/httpd_int.h"
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#define PULL_LOW (64u << 10)
#define PULL_BUF (PULL_LOW + 2 * IC_NG_MAX_BLOCK)

struct pull {
    struct httpd *h;
    char id[IC_ID_MAX + 1];
    ic_spool_reader_t *rd;
    uint8_t *buf;
    size_t blen, boff;
    int shb;
    char ifname[IC_NG_MAX_IFS][65];
    int ifdlt[IC_NG_MAX_IFS];
    uint32_t nifs;
    uint64_t dropped_told;
    uint64_t after, last, packets, bytes;
    int ended, failed, head;
    audit_hash_t *hash;
    struct auth_principal who;
    char client[80];
    int64_t start, start_real;
    int pooled; /* holds a place in the streams' pool */
    struct hd_conn *conn; /* its connection's record, for the watchdog's cuts */
};

/* The interface of a point, made (an IDB into the buffer) on first use. */
static int iface(struct pull *s, const struct ic_spool_rec *r, uint32_t *id)
{
    for (uint32_t i = 0; i < s->nifs; i++)
        if (s->ifdlt[i] == r->dlt && !strcmp(s->ifname[i], r->point)) {
            *id = i;
            return 0;
        }
    if (s->nifs == IC_NG_MAX_IFS)
        return -1;
    snprintf(s->ifname[s->nifs], sizeof s->ifname[0], "%s", r->point);
    s->ifdlt[s->nifs] = r->dlt;
    s->blen += ic_ng_idb(s->buf + s->blen, r->dlt, r->snaplen ? r->snaplen : 262144, r->point);
    *id = s->nifs++;
    return 0;
}

static void audit_pull(struct pull *s, int status, const char *detail)
{
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ] = "", route[128], after[24], last[24];
    struct audit_rec r;
    if (!s->h->audit)
        return;
    if (s->hash && audit_hash_final(s->hash, hex, err) < 0)
        hex[0] = 0;
    s->hash = NULL;
    snprintf(route, sizeof route, "%s /api/v1/cases/%s/intercept", s->head ? "HEAD" : "GET",
             s->id);
    snprintf(after, sizeof after, "%llu", (unsigned long long)s->after);
    snprintf(last, sizeof last, "%llu", (unsigned long long)s->last);
    struct audit_param ps[] = {{"case", s->id}, {"after", after}, {"last", last}};
    audit_rec_init(&r);
    r.time_ns = s->start_real;
    r.principal = s->who.name;
    r.role = auth_role_name(s->who.role);
    r.method = s->who.method;
    r.client = s->client;
    r.route = route;
    r.params = ps;
    r.nparams = 3;
    r.status = status;
    r.packets = s->packets;
    r.bytes = s->bytes;
    r.sha256 = hex[0] ? hex : NULL;
    r.duration_ns = rw_mono_ns() - s->start;
    r.detail = detail;
    if (audit_append(s->h->audit, &r, err) < 0)
        rw_error("intercept of case %s: audit trail: %s", s->id, err);
}

/* Fill the buffer with what is there; wait (up to a second) when nothing
 * is. 1 when the stream is complete, 0 to go on, <0 on failure. */
static int fill(struct pull *s)
{
    char err[RW_ERRSZ];
    ic_t *ic = s->h->cases;
    if (!s->shb) {
        s->blen += ic_ng_shb(s->buf);
        s->shb = 1;
    }
    for (int waited = 0;;) {
        uint64_t durable;
        int active, rc;
        if ((rc = ic_live_durable(ic, s->id, &durable, &active, err)) < 0)
            goto fail;
        while (s->blen < PULL_LOW) {
            struct ic_spool_rec r;
            uint32_t ifid;
            if ((rc = ic_spool_next(s->rd, durable, &r, err)) < 0)
                goto fail;
            if (rc == 0)
                break;
            if (iface(s, &r, &ifid) < 0) {
                rc = rw_err(err, RW_EIO, "more than %d capture points", IC_NG_MAX_IFS);
                goto fail;
            }
            s->blen += ic_ng_epb(s->buf + s->blen, ifid, r.ts, r.data, r.caplen, r.len, r.seq);
            s->last = r.seq;
            s->packets++;
        }
        if (s->packets)
            ic_live_pulled(ic, s->id, s->last, 0);
        /* Packets the spool could not take: the agency is told, in the
         * stream, as soon as it has an interface to hang the note on. */
        struct ic_live_stat st[64];
        size_t n = ic_live_stats(ic, st, 64);
        for (size_t i = 0; i < n && s->nifs; i++) {
            if (strcmp(st[i].id, s->id) || st[i].dropped == s->dropped_told)
                continue;
            char note[320];
            snprintf(note, sizeof note, "rewind: %llu packets of case %s dropped so far "
                     "(spool full): they have no sequence number and are not delivered",
                     (unsigned long long)st[i].dropped, s->id);
            s->blen += ic_ng_note(s->buf + s->blen, 0, rw_now_ns(), note);
            s->dropped_told = st[i].dropped;
        }
        if (s->blen)
            return 0;
        if (!active) {
            /* Ended (or never live): what the spool holds is all there is. */
            struct ic_case k;
            int got = ic_get(ic, s->id, &k, err);
            if (got < 0) {
                rc = got;
                goto fail;
            }
            if (!got || ic_case_end_ns(&k) <= rw_now_ns() || atomic_load(&s->h->stopping))
                return 1;
        }
        if (atomic_load(&s->h->stopping) || waited)
            return atomic_load(&s->h->stopping) ? -1 : 0;
        ic_live_wait(ic, s->last ? s->last : s->after, s->id, 1000);
        waited = 1;
    }
fail:
    rw_error("intercept of case %s: %s", s->id, err);
    return -1;
}

static ssize_t pull_read(void *cls, uint64_t pos, char *out, size_t max)
{
    struct pull *s = cls;
    (void)pos;
    /* Stopping, or the watchdog cut the connection (the agency's client hung
     * up while the case was quiet): end, giving the stream's place back. */
    if (atomic_load(&s->h->stopping) || (s->conn && atomic_load(&s->conn->cut))) {
        s->failed = 1;
        return MHD_CONTENT_READER_END_WITH_ERROR;
    }
    if (s->boff == s->blen) {
        s->boff = s->blen = 0;
        int rc = fill(s);
        if (rc < 0) {
            s->failed = 1;
            audit_pull(s, 500, "stream failed");
            return MHD_CONTENT_READER_END_WITH_ERROR;
        }
        if (rc == 1 && !s->blen) {
            s->ended = 1;
            audit_pull(s, 200, "case ended: every packet delivered");
            return MHD_CONTENT_READER_END_OF_STREAM;
        }
        if (!s->blen)
            return 0; /* nothing yet: asked again */
    }
    size_t n = s->blen - s->boff < max ? s->blen - s->boff : max;
    memcpy(out, s->buf + s->boff, n);
    if (s->hash)
        audit_hash_update(s->hash, out, n);
    s->boff += n;
    s->bytes += n;
    return (ssize_t)n;
}

static void pull_free(void *cls)
{
    struct pull *s = cls;
    if (!s->ended && !s->failed) {
        rw_info("intercept of case %s: %s left after sequence number %llu (%llu packets)",
                s->id, s->who.name, (unsigned long long)s->last,
                (unsigned long long)s->packets);
        audit_pull(s, s->head ? 200 : 499, s->head ? "headers only" : "client went away");
    }
    audit_hash_free(s->hash);
    ic_spool_reader_close(s->rd);
    if (s->pooled)
        hd_stream_give(s->h, s->who.name);
    free(s->buf);
    free(s);
}

enum MHD_Result hd_route_case_intercept(struct httpd *h, struct MHD_Connection *c,
                                        const struct params *p)
{
    static const char *const allowed[] = {"after", NULL};
    char err[RW_ERRSZ], id[IC_ID_MAX + 1], sdir[4400];
    const char *bad = hd_unknown_param(p, allowed);
    const char *rest = p->url + strlen("/api/v1/cases/");
    size_t il = strcspn(rest, "/");
    uint64_t after = 0;
    struct ic_case k;
    if (bad)
        return hd_send_unknown_param(h, c, "/api/v1/cases/ID/intercept", bad, allowed);
    if (!h->cases)
        return hd_send_error(h, c, 503, "unavailable", "this rewindd keeps no cases");
    snprintf(id, sizeof id, "%.*s", (int)(il < sizeof id ? il : 0), rest);
    if (!ic_id_ok(id))
        return hd_send_error(h, c, 404, "not_found", "no such case");
    if (p->who.role == AUTH_AGENCY && strcmp(id, p->who.case_id))
        return hd_send_error(h, c, 403, "forbidden", "%s may see its own case only (%s)",
                             p->who.name, p->who.case_id[0] ? p->who.case_id : "none");
    if (hd_parse_count("after", hd_param(p, "after"), 0, &after, err) < 0)
        return hd_send_error(h, c, 400, "bad_parameter", "%s", err);
    int got = ic_get(h->cases, id, &k, err);
    if (got < 0)
        return hd_send_error(h, c, 500, "internal", "%s", err);
    if (!got)
        return hd_send_error(h, c, 404, "not_found", "no case %s", id);
    if (k.type == IC_IRI)
        return hd_send_error(h, c, 409, "conflict", "case %s is iri: intercept-related "
                             "information only, no packets to deliver", id);
    snprintf(sdir, sizeof sdir, "%s/cases/%s/spool", qry_archive_dir(h->ix), id);
    {
        /* Packets the agency said it held are deleted from the spool: asking
         * for them again is a 410 that says from where to ask. */
        uint64_t *f = NULL;
        size_t nf = 0;
        if (ic_spool_files(sdir, &f, &nf, err) == 0 && nf && f[0] > after + 1) {
            uint64_t first = f[0];
            free(f);
            return hd_send_error(h, c, 410, "gone", "packets 1 to %llu of case %s were "
                                 "deleted once the agency held them: ask with after=%llu or "
                                 "more", (unsigned long long)first - 1, id,
                                 (unsigned long long)first - 1);
        }
        free(f);
    }
    /* Long-lived: a place in the streams' pool (streams.c). */
    int pooled = !p->head;
    if (pooled && hd_stream_take(h, p->who.name, err) < 0)
        return hd_send_error_x(h, c, 503, "busy", "Retry-After", "5", "%s", err);
    struct pull *s = calloc(1, sizeof *s);
    if (!s || !(s->buf = malloc(PULL_BUF))) {
        free(s);
        if (pooled)
            hd_stream_give(h, p->who.name);
        return hd_send_error(h, c, 500, "internal", "out of memory");
    }
    s->h = h;
    s->pooled = pooled;
    s->conn = hd_conn_of(c);
    if (s->conn && pooled)
        atomic_store(&s->conn->longlived, 1);
    snprintf(s->id, sizeof s->id, "%s", id);
    s->after = s->last = after;
    s->head = p->head;
    s->who = p->who;
    snprintf(s->client, sizeof s->client, "%s", p->client);
    s->start = rw_mono_ns();
    s->start_real = rw_now_ns();
    s->hash = h->audit ? audit_hash_new() : NULL;
    if (ic_spool_reader_open(sdir, after, &s->rd, err) < 0) {
        free(s->buf);
        free(s);
        if (pooled)
            hd_stream_give(h, p->who.name);
        return hd_send_error(h, c, 500, "internal", "%s", err);
    }
    struct MHD_Response *r =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 << 10, pull_read, s, pull_free);
    if (!r) {
        pull_free(s);
        return MHD_NO;
    }
    char v[32];
    snprintf(v, sizeof v, "%llu", (unsigned long long)after);
    MHD_add_response_header(r, "Content-Type", "application/x-pcapng");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    MHD_add_response_header(r, "X-Rewind-Case", id);
    MHD_add_response_header(r, "X-Rewind-After", v);
    rw_info("intercept of case %s: %s follows from sequence number %llu", id, p->who.name,
            (unsigned long long)after + 1);
    ic_live_pulled(h->cases, id, after, 1);
    enum MHD_Result ret = MHD_queue_response(c, 200, r);
    MHD_destroy_response(r);
    return ret;
}
