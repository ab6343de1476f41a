/* ses_smtp.c -- SMTP sessions and messages from the archive: the connections
 * of the window reassembled, parsed, listed (JSON, CSV, text, the
 * spam-complaint report), or one message's bytes (sessions.h). */
#include "analytics/ses_int.h"
#include "analytics/smtp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SMTP_FILTER "(tcp port 25 or tcp port 587)"

/* A finished session as the listing shows it. */
struct done {
    struct ses_ep cli, srv;
    int64_t first, last;
    uint64_t packets;
    int midstream;
    struct smtp_session sess; /* owns sess.txn */
};

struct sconn {
    struct ses_key key;
    struct ses_ep cli, srv;
    rsm_dir_t *d[2];
    smtp_conn_t *sm;
    int64_t first, last;
    uint64_t packets;
    int ended[2];
    struct sk *k;
    ses_t *s;
    int msg_on;  /* eml: the wanted message is being written */
};

struct sk {
    ses_map_t *conns;
    struct done *done;
    size_t ndone, cap;
    uint64_t started;
    size_t kept;
    int truncated;
    /* SES_SMTP_EML: what to find */
    struct ses_ep want_cli, want_srv;
    int64_t want_start;
    int want_no;
    int msg_over; /* the wanted message ended */
    int cb_fail;  /* a msg_* callback of the spec failed */
};

static void sess_id(const struct ses_ep *cli, const struct ses_ep *srv, int64_t first, char *out,
                    size_t n)
{
    char a[40], b[40];
    ses_addr_hex(cli->fam, cli->addr, a, sizeof a);
    ses_addr_hex(srv->fam, srv->addr, b, sizeof b);
    snprintf(out, n, "S%" PRId64 "-%s-%u-%s-%u", first, a, cli->port, b, srv->port);
}

/* ---- message bytes: the eml answer, or the CLI's --eml DIR ---- */

static void on_msg_begin(void *arg, const struct smtp_session *ss, const struct smtp_txn *t)
{
    struct sconn *c = arg;
    struct sk *k = c->k;
    ses_t *s = c->s;
    (void)ss;
    if (s->spec.kind == SES_SMTP_EML) {
        if (t->msg.no == k->want_no) {
            c->msg_on = 1;
            s->found = 1;
        }
        return;
    }
    if (s->spec.msg_begin) {
        char id[160];
        sess_id(&c->cli, &c->srv, c->first, id, sizeof id);
        snprintf(id + strlen(id), sizeof id - strlen(id), "-%d", t->msg.no);
        if (s->spec.msg_begin(s->spec.msg_arg, id))
            k->cb_fail = 1;
        c->msg_on = 1;
    }
}

static int on_msg_data(void *arg, const struct smtp_txn *t, const uint8_t *p, size_t n)
{
    struct sconn *c = arg;
    ses_t *s = c->s;
    (void)t;
    if (!c->msg_on)
        return 0;
    if (s->spec.kind == SES_SMTP_EML) {
        ses_out(s, p, n);
        return 0;
    }
    if (s->spec.msg_data && s->spec.msg_data(s->spec.msg_arg, p, n))
        c->k->cb_fail = 1;
    return 0;
}

static void on_msg_end(void *arg, const struct smtp_session *ss, const struct smtp_txn *t)
{
    struct sconn *c = arg;
    ses_t *s = c->s;
    (void)ss;
    if (!c->msg_on)
        return;
    c->msg_on = 0;
    if (s->spec.kind == SES_SMTP_EML) {
        c->k->msg_over = 1;
        return;
    }
    if (s->spec.msg_end && s->spec.msg_end(s->spec.msg_arg, t->msg.complete))
        c->k->cb_fail = 1;
}

/* ---- reassembled bytes into the parser ---- */

static int on_data0(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    smtp_bytes(((struct sconn *)arg)->sm, SMTP_CLIENT, p, n, ts);
    return 0;
}
static int on_data1(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    smtp_bytes(((struct sconn *)arg)->sm, SMTP_SERVER, p, n, ts);
    return 0;
}
static int on_gap0(void *arg, uint64_t len, int64_t ts)
{
    smtp_gap(((struct sconn *)arg)->sm, SMTP_CLIENT, len, ts);
    return 0;
}
static int on_gap1(void *arg, uint64_t len, int64_t ts)
{
    smtp_gap(((struct sconn *)arg)->sm, SMTP_SERVER, len, ts);
    return 0;
}
static void on_end0(void *arg, int rst, int64_t ts)
{
    (void)rst, (void)ts;
    ((struct sconn *)arg)->ended[0] = 1;
}
static void on_end1(void *arg, int rst, int64_t ts)
{
    (void)rst, (void)ts;
    ((struct sconn *)arg)->ended[1] = 1;
}

static void conn_free(void *v)
{
    struct sconn *c = v;
    if (!c)
        return;
    rsm_dir_free(c->d[0]);
    rsm_dir_free(c->d[1]);
    smtp_conn_free(c->sm);
    free(c);
}

static struct sconn *conn_new(ses_t *s, const struct ses_pkt *p, const struct ses_key *key)
{
    struct sk *k = s->k;
    struct sconn *c = calloc(1, sizeof *c);
    if (!c)
        return NULL;
    /* The client: who sent the SYN; else whoever talks to port 25/587. */
    int src_client;
    if ((p->flags & 0x12) == 0x02)
        src_client = 1;
    else if ((p->flags & 0x12) == 0x12)
        src_client = 0;
    else if (p->dport == 25 || p->dport == 587)
        src_client = 1;
    else if (p->sport == 25 || p->sport == 587)
        src_client = 0;
    else
        src_client = p->dport < p->sport;
    struct ses_ep src = {p->fam, {0}, p->sport}, dst = {p->fam, {0}, p->dport};
    memcpy(src.addr, p->src, 16);
    memcpy(dst.addr, p->dst, 16);
    c->cli = src_client ? src : dst;
    c->srv = src_client ? dst : src;
    c->key = *key;
    c->k = k;
    c->s = s;
    c->first = p->ts;
    struct rsm_sink s0 = {on_data0, on_gap0, on_end0, c}, s1 = {on_data1, on_gap1, on_end1, c};
    struct smtp_msg_sink ms = {on_msg_begin, on_msg_data, on_msg_end, c};
    c->d[0] = rsm_dir_new(&s0, &s->pool, 0);
    c->d[1] = rsm_dir_new(&s1, &s->pool, 0);
    c->sm = smtp_conn_new(&ms);
    if (!c->d[0] || !c->d[1] || !c->sm || ses_map_put(k->conns, key, c) < 0) {
        conn_free(c);
        return NULL;
    }
    k->started++;
    return c;
}

/* The connection is over (or the run is): its session joins the list. */
static int conn_done(ses_t *s, struct sconn *c, int64_t ts)
{
    struct sk *k = s->k;
    struct rsm_stats a, b;
    rsm_end(c->d[0], ts);
    rsm_end(c->d[1], ts);
    smtp_end(c->sm, ts);
    rsm_stats(c->d[0], &a);
    rsm_stats(c->d[1], &b);
    ses_map_del(k->conns, &c->key);
    int rc = 0;
    if (s->spec.kind == SES_SMTP) {
        if (k->ndone == k->cap) {
            size_t nc = k->cap ? k->cap * 2 : 16;
            struct done *nd = realloc(k->done, nc * sizeof *nd);
            if (!nd) {
                conn_free(c);
                return -1;
            }
            k->done = nd;
            k->cap = nc;
        }
        struct done *d = &k->done[k->ndone++];
        d->cli = c->cli;
        d->srv = c->srv;
        d->first = c->first;
        d->last = c->last;
        d->packets = c->packets;
        d->midstream = a.midstream || b.midstream;
        smtp_session_take(c->sm, &d->sess);
        k->kept += sizeof *d + (size_t)d->sess.ntxn * sizeof *d->sess.txn;
        if (k->kept > SES_KEEP_MAX)
            k->truncated = 1;
    }
    conn_free(c);
    return rc;
}

static int same_ep(const struct ses_ep *e, int fam, const uint8_t *a, uint16_t port)
{
    return e->fam == fam && e->port == port && !memcmp(e->addr, a, fam == 4 ? 4 : 16);
}

static int smtp_packet(ses_t *s, const struct ses_pkt *p)
{
    struct sk *k = s->k;
    if (p->proto != 6)
        return 0;
    struct ses_key key;
    ses_key_of(p, &key, NULL);
    struct sconn *c = ses_map_get(k->conns, &key);
    if (!c) {
        if (s->spec.kind == SES_SMTP_EML) {
            int fwd = same_ep(&k->want_cli, p->fam, p->src, p->sport) &&
                      same_ep(&k->want_srv, p->fam, p->dst, p->dport);
            int rev = same_ep(&k->want_cli, p->fam, p->dst, p->dport) &&
                      same_ep(&k->want_srv, p->fam, p->src, p->sport);
            if ((!fwd && !rev) || p->ts < k->want_start)
                return 0;
        }
        /* a connection begins with a SYN or, begun before the capture, with
         * data: a last ACK or FIN after the end is no new session */
        if (!p->pln && !(p->flags & 0x02))
            return 0;
        if (s->spec.kind == SES_SMTP && (k->started >= s->spec.limit || k->truncated))
            return ses_map_count(k->conns) ? 0 : 1; /* every session followed is over */
        if (!(c = conn_new(s, p, &key)))
            return -1;
        if (s->spec.kind == SES_SMTP_EML) { /* the session as the listing saw it */
            c->cli = k->want_cli;
            c->srv = k->want_srv;
        }
    }
    int dir = same_ep(&c->cli, p->fam, p->src, p->sport) ? 0 : 1;
    c->last = p->ts;
    c->packets++;
    rsm_segment(c->d[dir], p->seq, p->flags & (RSM_SYN | RSM_FIN | RSM_RST), p->pl, p->pln, p->ts);
    if (k->cb_fail)
        return -1;
    if (s->spec.kind == SES_SMTP_EML && k->msg_over)
        return 1;
    if (c->ended[0] && c->ended[1]) {
        if (conn_done(s, c, p->ts) < 0)
            return -1;
        if (s->spec.kind == SES_SMTP_EML)
            return 1; /* its session ended without it */
    }
    return 0;
}

/* ---- the listing ---- */

static int by_start(const void *a, const void *b)
{
    const struct done *x = a, *y = b;
    if (x->first != y->first)
        return x->first < y->first ? -1 : 1;
    return memcmp(&x->cli, &y->cli, sizeof x->cli);
}

static const char *data_name(enum smtp_data_kind d)
{
    return d == SMTP_DATA ? "DATA" : d == SMTP_BDAT ? "BDAT" : NULL;
}

static void json_msg(ses_t *s, const struct done *d, const struct smtp_txn *t)
{
    const struct smtp_msg *m = &t->msg;
    char id[160];
    sess_id(&d->cli, &d->srv, d->first, id, sizeof id);
    snprintf(id + strlen(id), sizeof id - strlen(id), "-%d", m->no);
    ses_outs(s, "{\"id\":");
    ses_json_str(s, id);
    ses_outf(s, ",\"size\":%" PRIu64 ",\"complete\":%s,\"missing_bytes\":%" PRIu64, m->size,
             m->complete ? "true" : "false", m->missing);
    ses_outs(s, ",\"subject\":");
    ses_json_str(s, m->subject);
    ses_outs(s, ",\"from\":");
    ses_json_str(s, m->from);
    ses_outs(s, ",\"to\":");
    ses_json_str(s, m->to);
    ses_outs(s, ",\"date\":");
    ses_json_str(s, m->date);
    ses_outs(s, ",\"message_id\":");
    ses_json_str(s, m->message_id);
    ses_outs(s, ",\"attachments\":[");
    for (int i = 0; i < m->natt; i++) {
        ses_outs(s, i ? ",{\"name\":" : "{\"name\":");
        ses_json_str(s, m->att[i].name);
        ses_outf(s, ",\"size\":%" PRIu64 "}", m->att[i].size);
    }
    ses_outf(s, "],\"attachments_not_shown\":%d}", m->att_more);
}

static int accepted(const struct smtp_txn *t)
{
    return t->final_reply >= 200 && t->final_reply < 300;
}

static void json_session(ses_t *s, const struct done *d)
{
    const struct smtp_session *ss = &d->sess;
    char id[160], a[64];
    sess_id(&d->cli, &d->srv, d->first, id, sizeof id);
    ses_outs(s, "{\"id\":");
    ses_json_str(s, id);
    ses_addr_str(d->cli.fam, d->cli.addr, a, sizeof a);
    ses_outs(s, ",\"client\":");
    ses_json_str(s, a);
    ses_outf(s, ",\"client_port\":%u", d->cli.port);
    ses_addr_str(d->srv.fam, d->srv.addr, a, sizeof a);
    ses_outs(s, ",\"server\":");
    ses_json_str(s, a);
    ses_outf(s, ",\"server_port\":%u,\"start\":", d->srv.port);
    ses_json_time(s, d->first);
    ses_outs(s, ",\"end\":");
    ses_json_time(s, d->last);
    ses_outf(s, ",\"packets\":%" PRIu64 ",\"midstream\":%s,\"banner_reply\":%d,\"banner\":",
             d->packets, d->midstream ? "true" : "false", ss->banner_reply);
    ses_json_str(s, ss->banner);
    ses_outs(s, ",\"helo\":");
    ses_json_str(s, ss->helo[0] ? ss->helo : NULL);
    ses_outf(s, ",\"ehlo\":%s,\"auth\":%s,\"starttls\":%s,\"encrypted_from\":",
             ss->ehlo ? "true" : "false", ss->auth ? "true" : "false",
             ss->starttls ? "true" : "false");
    ses_json_time(s, ss->starttls ? ss->tls_at : 0);
    ses_outf(s, ",\"missing_bytes\":{\"client\":%" PRIu64 ",\"server\":%" PRIu64 "}",
             ss->missing[0], ss->missing[1]);
    ses_outf(s, ",\"commands\":%u,\"replies\":%u,\"messages\":%u,\"transactions\":[",
             ss->commands, ss->replies, ss->nmsg);
    for (int i = 0; i < ss->ntxn; i++) {
        const struct smtp_txn *t = &ss->txn[i];
        ses_outs(s, i ? ",{\"start\":" : "{\"start\":");
        ses_json_time(s, t->start);
        ses_outs(s, ",\"end\":");
        ses_json_time(s, t->end);
        ses_outs(s, ",\"mail_from\":");
        ses_json_str(s, t->mail_from);
        ses_outf(s, ",\"mail_reply\":%d,\"recipients\":[", t->mail_reply);
        for (int r = 0; r < t->nrcpt; r++) {
            ses_outs(s, r ? ",{\"to\":" : "{\"to\":");
            ses_json_str(s, t->rcpt[r].addr);
            ses_outf(s, ",\"reply\":%d}", t->rcpt[r].reply);
        }
        ses_outf(s, "],\"recipient_count\":%u,\"recipients_accepted\":%u,\"data\":",
                 t->rcpt_total, t->rcpt_accepted);
        ses_json_str(s, data_name(t->data));
        ses_outf(s, ",\"data_reply\":%d,\"final_reply\":%d,\"final_text\":", t->data_reply,
                 t->final_reply);
        ses_json_str(s, t->final_text);
        ses_outf(s, ",\"accepted\":%s,\"message\":", accepted(t) ? "true" : "false");
        if (t->has_msg)
            json_msg(s, d, t);
        else
            ses_outs(s, "null");
        ses_outs(s, "}");
    }
    ses_outf(s, "],\"transactions_not_shown\":%u}", ss->txn_more);
}

static void csv_rcpts(ses_t *s, const struct smtp_txn *t)
{
    char b[4096];
    size_t o = 0;
    b[0] = 0;
    for (int r = 0; r < t->nrcpt && o < sizeof b - 200; r++)
        o += (size_t)snprintf(b + o, sizeof b - o, "%s%s=%d", r ? ";" : "", t->rcpt[r].addr,
                              t->rcpt[r].reply);
    ses_csv_str(s, b);
}

static void csv_atts(ses_t *s, const struct smtp_msg *m)
{
    char b[4096];
    size_t o = 0;
    b[0] = 0;
    for (int i = 0; i < m->natt && o < sizeof b - 200; i++)
        o += (size_t)snprintf(b + o, sizeof b - o, "%s%s:%" PRIu64, i ? ";" : "", m->att[i].name,
                              m->att[i].size);
    ses_csv_str(s, b);
}

static void csv_session(ses_t *s, const struct done *d)
{
    const struct smtp_session *ss = &d->sess;
    char id[160], a[64], b[64], t0[48];
    sess_id(&d->cli, &d->srv, d->first, id, sizeof id);
    ses_addr_str(d->cli.fam, d->cli.addr, a, sizeof a);
    ses_addr_str(d->srv.fam, d->srv.addr, b, sizeof b);
    rw_time_fmt(d->first, t0, sizeof t0);
    for (int i = 0; i < (ss->ntxn ? ss->ntxn : 1); i++) {
        const struct smtp_txn *t = ss->ntxn ? &ss->txn[i] : NULL;
        if (t && t->has_msg)
            ses_outf(s, "%s-%d", id, t->msg.no);
        ses_outf(s, ",%s,%s,%s,%u,%s,%u,", id, t0, a, d->cli.port, b, d->srv.port);
        ses_csv_str(s, ss->helo);
        ses_outf(s, ",%s,", ss->starttls ? "yes" : "no");
        if (t) {
            ses_csv_str(s, t->mail_from);
            ses_outf(s, ",%d,%u,%u,", t->mail_reply, t->rcpt_total, t->rcpt_accepted);
            csv_rcpts(s, t);
            ses_outf(s, ",%s,%d,%d,", data_name(t->data) ? data_name(t->data) : "", t->data_reply,
                     t->final_reply);
            ses_csv_str(s, t->final_text);
            if (t->has_msg) {
                const struct smtp_msg *m = &t->msg;
                ses_outf(s, ",%" PRIu64 ",", m->size);
                ses_csv_str(s, m->subject);
                ses_outs(s, ",");
                ses_csv_str(s, m->from);
                ses_outs(s, ",");
                ses_csv_str(s, m->to);
                ses_outs(s, ",");
                ses_csv_str(s, m->date);
                ses_outs(s, ",");
                ses_csv_str(s, m->message_id);
                ses_outs(s, ",");
                csv_atts(s, m);
                ses_outs(s, "\r\n");
            } else {
                ses_outs(s, ",,,,,,,\r\n");
            }
        } else {
            ses_outs(s, ",,,,,,,,,,,,,,,,\r\n");
        }
    }
}

static void text_session(ses_t *s, const struct done *d)
{
    const struct smtp_session *ss = &d->sess;
    char a[64], b[64], t0[48];
    ses_addr_str(d->cli.fam, d->cli.addr, a, sizeof a);
    ses_addr_str(d->srv.fam, d->srv.addr, b, sizeof b);
    rw_time_fmt(d->first, t0, sizeof t0);
    ses_outf(s, "%s  %s:%u -> %s:%u  %s %s%s%s\n", t0, a, d->cli.port, b, d->srv.port,
             ss->ehlo ? "EHLO" : "HELO", ss->helo[0] ? ss->helo : "-",
             ss->starttls ? "  STARTTLS (encrypted after)" : "",
             d->midstream ? "  (began before the capture)" : "");
    for (int i = 0; i < ss->ntxn; i++) {
        const struct smtp_txn *t = &ss->txn[i];
        ses_outf(s, "  MAIL FROM:<%s> %d  rcpt %u/%u accepted  %s %d  final %d", t->mail_from,
                 t->mail_reply, t->rcpt_accepted, t->rcpt_total,
                 data_name(t->data) ? data_name(t->data) : "-", t->data_reply, t->final_reply);
        if (t->has_msg)
            ses_outf(s, "  %" PRIu64 " bytes  \"%.120s\"", t->msg.size, t->msg.subject);
        ses_outs(s, "\n");
    }
}

/* The spam-complaint report: every message in the window with what the
 * server said, and the totals. */
static void report(ses_t *s, struct sk *k)
{
    char f[48], t[48];
    uint64_t msgs = 0, rc = 0, ra = 0, acc = 0;
    if (s->spec.from != RW_TIME_MIN)
        rw_time_fmt(s->spec.from, f, sizeof f);
    else
        snprintf(f, sizeof f, "the oldest packet");
    if (s->spec.to != RW_TIME_MAX)
        rw_time_fmt(s->spec.to, t, sizeof t);
    else
        snprintf(t, sizeof t, "now");
    ses_outf(s, "SMTP report for %s, %s to %s\n\n", s->spec.host ? s->spec.host : "every host",
             f, t);
    ses_outs(s, "time                            client -> server                         MAIL "
                "FROM                 rcpts acc  codes                final  size     "
                "subject\n");
    for (size_t i = 0; i < k->ndone; i++) {
        const struct done *d = &k->done[i];
        char a[64], b[64], ep[140];
        ses_addr_str(d->cli.fam, d->cli.addr, a, sizeof a);
        ses_addr_str(d->srv.fam, d->srv.addr, b, sizeof b);
        snprintf(ep, sizeof ep, "%s -> %s:%u", a, b, d->srv.port);
        for (int j = 0; j < d->sess.ntxn; j++) {
            const struct smtp_txn *x = &d->sess.txn[j];
            char codes[128];
            size_t o = 0;
            codes[0] = 0;
            for (int r = 0; r < x->nrcpt && o < 100; r++)
                o += (size_t)snprintf(codes + o, sizeof codes - o, "%s%d", r ? "," : "",
                                      x->rcpt[r].reply);
            if (x->rcpt_total > (uint32_t)x->nrcpt)
                snprintf(codes + o, sizeof codes - o, ",...");
            char t0[48];
            rw_time_fmt(x->start ? x->start : d->first, t0, sizeof t0);
            ses_outf(s, "%-31.31s %-40.40s %-25.25s %5u %4u %-20.20s %5d  %-8" PRIu64 " %.80s\n",
                     t0, ep, x->mail_from, x->rcpt_total, x->rcpt_accepted, codes,
                     x->final_reply, x->has_msg ? x->msg.size : 0,
                     x->has_msg ? x->msg.subject : "");
            msgs += x->has_msg;
            rc += x->rcpt_total;
            ra += x->rcpt_accepted;
            acc += accepted(x);
        }
        if (d->sess.starttls)
            ses_outf(s, "%-31.31s %-40.40s (STARTTLS: the rest of this session is encrypted)\n",
                     "", ep);
    }
    ses_outf(s, "\n%zu sessions, %" PRIu64 " messages (%" PRIu64 " accepted by the server), %"
             PRIu64 " recipients (%" PRIu64 " accepted)%s\n", k->ndone, msgs, acc, rc, ra,
             k->truncated ? "; more sessions than --limit: the list is cut" : "");
}

struct open_list {
    struct sconn **c;
    size_t n;
};

static void collect_open(void *arg, void *v)
{
    struct open_list *l = arg;
    l->c[l->n++] = v;
}

static int smtp_finish(ses_t *s, char *err)
{
    struct sk *k = s->k;
    size_t n = ses_map_count(k->conns);
    struct sconn **open = calloc(n + 1, sizeof *open);
    if (!open)
        return rw_err(err, RW_ENOMEM, "out of memory");
    struct open_list ol = {open, 0};
    ses_map_each(k->conns, collect_open, &ol); /* collected first: conn_done changes the map */
    for (size_t i = 0; i < n; i++)
        if (conn_done(s, open[i], open[i]->last) < 0) {
            for (size_t j = i + 1; j < n; j++)
                (void)conn_done(s, open[j], open[j]->last);
            free(open);
            return rw_err(err, RW_ENOMEM, "out of memory");
        }
    free(open);
    if (k->cb_fail)
        return rw_err(err, RW_EIO, "writing a message failed");
    if (s->spec.kind == SES_SMTP_EML) {
        if (s->found < 0)
            s->found = 0;
        return 0;
    }
    if (k->ndone)
        qsort(k->done, k->ndone, sizeof *k->done, by_start);
    switch (s->spec.format) {
    case SES_JSON:
        ses_outs(s, "{\"sessions\":[");
        for (size_t i = 0; i < k->ndone; i++) {
            if (i)
                ses_outs(s, ",");
            json_session(s, &k->done[i]);
        }
        ses_outf(s, "],\"truncated\":%s,\"limit\":%" PRIu64 ",\"packets\":%" PRIu64 "}\n",
                 k->truncated || k->started >= s->spec.limit ? "true" : "false", s->spec.limit,
                 s->packets);
        break;
    case SES_CSV:
        ses_outs(s, "message_id,session_id,start,client,client_port,server,server_port,helo,"
                    "starttls,mail_from,mail_reply,recipients,recipients_accepted,rcpt_replies,"
                    "data,data_reply,final_reply,final_text,size,subject,from,to,date,"
                    "message_header_id,attachments\r\n");
        for (size_t i = 0; i < k->ndone; i++)
            csv_session(s, &k->done[i]);
        break;
    case SES_TEXT:
        for (size_t i = 0; i < k->ndone; i++)
            text_session(s, &k->done[i]);
        ses_outf(s, "%zu SMTP sessions%s\n", k->ndone,
                 k->started >= s->spec.limit ? " (the limit: there may be more)" : "");
        break;
    case SES_REPORT:
        report(s, k);
        break;
    }
    return 0;
}

static void smtp_free(ses_t *s)
{
    struct sk *k = s->k;
    if (!k)
        return;
    ses_map_free(k->conns, conn_free);
    for (size_t i = 0; i < k->ndone; i++)
        free(k->done[i].sess.txn);
    free(k->done);
    free(k);
    s->k = NULL;
}

/* "S<start>-<cli>-<cport>-<srv>-<sport>-<n>" */
static int parse_id(const char *id, struct sk *k, char *err)
{
    char cli[40], srv[40];
    long long start;
    unsigned cp, sp;
    int no, used = 0;
    if (sscanf(id, "S%lld-%39[0-9a-f]-%u-%39[0-9a-f]-%u-%d%n", &start, cli, &cp, srv, &sp, &no,
               &used) != 6 || id[used] || cp > 65535 || sp > 65535 || no < 1 ||
        ses_addr_unhex(cli, strlen(cli), &k->want_cli.fam, k->want_cli.addr) < 0 ||
        ses_addr_unhex(srv, strlen(srv), &k->want_srv.fam, k->want_srv.addr) < 0 ||
        k->want_cli.fam != k->want_srv.fam)
        return rw_err(err, RW_EINPUT,
                      "id: '%.100s' is not a message ID (S<start>-<client>-<port>-<server>-"
                      "<port>-<n>, as /api/v1/smtp lists them)", id);
    k->want_cli.port = (uint16_t)cp;
    k->want_srv.port = (uint16_t)sp;
    k->want_start = start;
    k->want_no = no;
    return 0;
}

int ses_smtp_init(ses_t *s, char *err)
{
    struct sk *k = calloc(1, sizeof *k);
    char filter[400], a[64], b[64];
    if (!k || !(k->conns = ses_map_new())) {
        free(k);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    s->k = k;
    s->ops.packet = smtp_packet;
    s->ops.finish = smtp_finish;
    s->ops.free = smtp_free;
    if (s->spec.kind == SES_SMTP_EML) {
        int rc = parse_id(s->spec.id, k, err);
        if (rc < 0)
            return rc;
        s->found = -1;
        s->ctype = "message/rfc822";
        ses_addr_str(k->want_cli.fam, k->want_cli.addr, a, sizeof a);
        ses_addr_str(k->want_srv.fam, k->want_srv.addr, b, sizeof b);
        snprintf(filter, sizeof filter, "tcp and host %s and host %s and port %u and port %u", a,
                 b, k->want_cli.port, k->want_srv.port);
        int64_t to = s->spec.to;
        if (to != RW_TIME_MAX && to <= k->want_start)
            to = RW_TIME_MAX; /* a window that misses the session: look after its start */
        return ses_query(s, k->want_start, to, filter, err);
    }
    if (s->spec.host)
        snprintf(filter, sizeof filter, "%s and host %s", SMTP_FILTER, s->spec.host);
    else
        snprintf(filter, sizeof filter, "%s", SMTP_FILTER);
    return ses_query(s, s->spec.from, s->spec.to, filter, err);
}
