/* ses_voip.c -- VoIP calls from the archive: SIP over UDP and TCP grouped by
 * Call-ID, the media SDP announced followed as RTP/RTCP streams; the calls
 * listed, or one call's packets as a capture file (sessions.h). */
#include "analytics/ses_int.h"
#include "analytics/sip.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define CALL_STREAMS 16  /* RTP/RTCP streams kept per call */
#define CALL_FLOWS 8     /* SIP flows (5-tuples) remembered per call */
#define CALL_MAP 16      /* payload types SDP named */
#define TCP_BUF (64 << 10) /* a SIP message over TCP is cut from this much */
#define TCP_CONNS 1024     /* SIP connections followed at once: with their buffers made
                              when data comes, at most 128 MiB */

struct stream {
    struct ses_ep src, dst;
    uint32_t ssrc;
    int rtcp;
    int pt;
    uint64_t rtcp_packets;
    struct rtp_stats st;
    int64_t first, last;
};

struct call {
    uint64_t hash;
    char call_id[SIP_STR], caller[SIP_STR], callee[SIP_STR];
    int64_t first, last, invite, ringing, answer, bye;
    int final_code, answered;
    char final_reason[64];
    uint32_t msgs;
    struct ses_ep sip_client, sip_server;
    int sip_tcp;
    struct ses_key flows[CALL_FLOWS];
    int flow_tcp[CALL_FLOWS];
    int nflows, flows_more; /* flows_more: more than CALL_FLOWS carried its SIP */
    struct stream streams[CALL_STREAMS];
    int nstreams;
    uint32_t streams_more;
    struct {
        int pt;
        char name[32];
        uint32_t rate;
    } map[CALL_MAP];
    int nmap;
    uint32_t announced; /* media lines followed */
};

/* Media announced: RTP or RTCP to this address and port belongs to c. */
struct ann {
    struct call *c;
    int rtcp;
    struct ses_ep ep;
};

/* A TCP connection that carries SIP: its two directions reassembled and
 * cut into messages. */
struct tconn {
    struct ses_key key;
    ses_t *s;
    rsm_dir_t *d[2];
    struct ses_ep ep[2]; /* ep[0] sent what d[0] reassembles */
    uint8_t *buf[2];
    size_t n[2];
    int64_t ts;
};

struct vk {
    ses_map_t *calls;  /* by Call-ID hash */
    ses_map_t *eps;    /* announced endpoints -> struct ann */
    ses_map_t *tcp;    /* SIP over TCP */
    struct call **list;
    size_t ncalls, cap;
    size_t kept;
    int truncated;
    struct call *hit;  /* the call the packet being read belongs to */
    uint64_t sip_msgs; /* SIP messages read, of every dialog */
    uint64_t tcp_skipped; /* SIP connections not followed (TCP_CONNS at once) */
    /* SES_CALL_PCAP */
    int pcap;
    uint64_t want;
    int64_t want_first, want_last;
    struct ses_key want_tcp[CALL_FLOWS];
    int nwant_tcp;
    qry_out_t *out;
};

static void hash_key(uint64_t h, struct ses_key *k)
{
    memset(k, 0, sizeof *k);
    memcpy(k->a, &h, sizeof h);
}

static void ep_key(const struct ses_ep *e, struct ses_key *k)
{
    memset(k, 0, sizeof *k);
    k->fam = (uint8_t)e->fam;
    k->proto = 17;
    memcpy(k->a, e->addr, 16);
    k->pa = e->port;
}

static void pkt_eps(const struct ses_pkt *p, struct ses_ep *src, struct ses_ep *dst)
{
    src->fam = dst->fam = p->fam;
    memcpy(src->addr, p->src, 16);
    memcpy(dst->addr, p->dst, 16);
    src->port = p->sport;
    dst->port = p->dport;
}

static int ep_eq(const struct ses_ep *a, const struct ses_ep *b)
{
    return a->fam == b->fam && a->port == b->port && !memcmp(a->addr, b->addr, 16);
}

static int host_is(const ses_t *s, const struct ses_ep *e)
{
    int fam;
    uint8_t a[16];
    if (ses_addr_parse(s->spec.host, &fam, a) < 0)
        return 0;
    return fam == e->fam && !memcmp(a, e->addr, 16);
}

/* ---- SIP messages into calls ---- */

static struct call *call_for(ses_t *s, const struct sip_msg *m, const struct ses_ep *src,
                             const struct ses_ep *dst, int64_t ts)
{
    struct vk *k = s->k;
    uint64_t h = ses_hash(m->call_id, strlen(m->call_id));
    struct ses_key key;
    hash_key(h, &key);
    struct call *c = ses_map_get(k->calls, &key);
    if (c)
        return c;
    /* a call is a dialog that INVITEs (a capture begun later sees its answers) */
    if (strcmp(m->request ? m->method : m->cseq_method, "INVITE"))
        return NULL;
    if (k->pcap) {
        if (h != k->want)
            return NULL;
    } else {
        if (k->ncalls >= s->spec.limit || k->truncated)
            return NULL;
        if (s->spec.host && !host_is(s, src) && !host_is(s, dst))
            return NULL;
        if (s->spec.user && !strcasestr(m->from, s->spec.user) && !strcasestr(m->to, s->spec.user))
            return NULL;
    }
    if (k->ncalls == k->cap) {
        size_t nc = k->cap ? k->cap * 2 : 16;
        struct call **nl = realloc(k->list, nc * sizeof *nl);
        if (!nl)
            return NULL;
        k->list = nl;
        k->cap = nc;
    }
    if (!(c = calloc(1, sizeof *c)))
        return NULL;
    if (ses_map_put(k->calls, &key, c) < 0) {
        free(c);
        return NULL;
    }
    k->list[k->ncalls++] = c;
    k->kept += sizeof *c;
    if (k->kept > SES_KEEP_MAX)
        k->truncated = 1;
    c->hash = h;
    snprintf(c->call_id, sizeof c->call_id, "%s", m->call_id);
    snprintf(c->caller, sizeof c->caller, "%s", m->from);
    snprintf(c->callee, sizeof c->callee, "%s", m->to);
    c->first = ts;
    c->sip_client = m->request ? *src : *dst;
    c->sip_server = m->request ? *dst : *src;
    return c;
}

static void announce(ses_t *s, struct call *c, const struct sdp_info *sd)
{
    struct vk *k = s->k;
    for (int i = 0; i < sd->nm; i++) {
        const struct sdp_media *md = &sd->m[i];
        for (int j = 0; j < md->nmap; j++) {
            int have = 0;
            for (int x = 0; x < c->nmap; x++)
                if (c->map[x].pt == md->map[j].pt) {
                    have = 1;
                    c->map[x].rate = md->map[j].rate;
                    snprintf(c->map[x].name, sizeof c->map[x].name, "%s", md->map[j].name);
                }
            if (!have && c->nmap < CALL_MAP) {
                c->map[c->nmap].pt = md->map[j].pt;
                c->map[c->nmap].rate = md->map[j].rate;
                snprintf(c->map[c->nmap].name, sizeof c->map[0].name, "%s", md->map[j].name);
                c->nmap++;
            }
        }
        if (!md->port)
            continue;
        c->announced++;
        for (int r = 0; r < 2; r++) {
            if (r && md->rtcp_mux)
                break;
            struct ses_ep e = {md->fam, {0}, r ? md->rtcp_port : md->port};
            memcpy(e.addr, md->addr, 16);
            struct ses_key ek;
            ep_key(&e, &ek);
            struct ann *a = ses_map_get(k->eps, &ek);
            if (!a) {
                if (!(a = calloc(1, sizeof *a)))
                    return;
                if (ses_map_put(k->eps, &ek, a) < 0) {
                    free(a);
                    return;
                }
            }
            a->c = c; /* the latest announcement owns the address (re-INVITEs, new calls) */
            a->rtcp = r;
            a->ep = e;
        }
    }
}

static void note_flow(struct call *c, const struct ses_key *fk, int tcp)
{
    for (int i = 0; i < c->nflows; i++)
        if (!memcmp(&c->flows[i], fk, sizeof *fk))
            return;
    if (c->nflows < CALL_FLOWS) {
        c->flow_tcp[c->nflows] = tcp;
        c->flows[c->nflows++] = *fk;
    } else {
        c->flows_more = 1;
    }
}

static struct call *on_sip(ses_t *s, const struct sip_msg *m, const struct ses_ep *src,
                           const struct ses_ep *dst, const struct ses_key *fk, int tcp, int64_t ts)
{
    ((struct vk *)s->k)->sip_msgs++;
    struct call *c = call_for(s, m, src, dst, ts);
    if (!c)
        return NULL;
    c->msgs++;
    if (ts > c->last)
        c->last = ts;
    note_flow(c, fk, tcp);
    if (tcp)
        c->sip_tcp = 1;
    const char *meth = m->request ? m->method : m->cseq_method;
    if (m->request && !strcmp(meth, "INVITE")) {
        if (!c->invite) {
            c->invite = ts;
            snprintf(c->caller, sizeof c->caller, "%s", m->from);
            snprintf(c->callee, sizeof c->callee, "%s", m->to);
            c->sip_client = *src;
            c->sip_server = *dst;
        }
    } else if (m->request && !strcmp(meth, "BYE")) {
        if (!c->bye)
            c->bye = ts;
    } else if (!m->request && !strcmp(meth, "INVITE")) {
        if ((m->status == 180 || m->status == 183) && !c->ringing)
            c->ringing = ts;
        if (m->status >= 200 && !c->answered) {
            /* the first 2xx answers the call; until one comes, the last
             * final response (a challenge, a refusal) stands */
            c->final_code = m->status;
            snprintf(c->final_reason, sizeof c->final_reason, "%s", m->reason);
            if (m->status < 300) {
                c->answered = 1;
                c->answer = ts;
            }
        }
    }
    if (m->sdp && m->body_len) {
        struct sdp_info sd;
        if (sdp_parse(m->body, m->body_len, &sd) == 0)
            announce(s, c, &sd);
    }
    return c;
}

/* ---- RTP and RTCP ---- */

static uint32_t rate_of(const struct call *c, int pt)
{
    for (int i = 0; i < c->nmap; i++)
        if (c->map[i].pt == pt) {
            if (!strncasecmp(c->map[i].name, "telephone-event", 15))
                return 0; /* RFC 4733: its timestamps do not advance */
            if (c->map[i].rate)
                return c->map[i].rate;
        }
    return pt < 96 ? rtp_clock_rate(pt) : 0;
}

static struct stream *stream_of(struct call *c, const struct ses_ep *src, const struct ses_ep *dst,
                                uint32_t ssrc, int rtcp)
{
    for (int i = 0; i < c->nstreams; i++) {
        struct stream *st = &c->streams[i];
        if (st->rtcp == rtcp && st->ssrc == ssrc && ep_eq(&st->src, src) && ep_eq(&st->dst, dst))
            return st;
    }
    if (c->nstreams >= CALL_STREAMS) {
        c->streams_more++;
        return NULL;
    }
    struct stream *st = &c->streams[c->nstreams++];
    memset(st, 0, sizeof *st);
    st->src = *src;
    st->dst = *dst;
    st->ssrc = ssrc;
    st->rtcp = rtcp;
    return st;
}

static void on_media(struct call *c, struct ann *a, const struct ses_pkt *p)
{
    struct ses_ep src, dst;
    struct rtp_hdr h;
    pkt_eps(p, &src, &dst);
    if (p->ts > c->last)
        c->last = p->ts;
    if (a->rtcp || rtcp_looks(p->pl, p->pln)) {
        uint32_t ssrc = p->pln >= 8 ? rw_get_be32(p->pl + 4) : 0;
        struct stream *st = stream_of(c, &src, &dst, ssrc, 1);
        if (st) {
            st->rtcp_packets++;
            if (!st->first)
                st->first = p->ts;
            st->last = p->ts;
        }
        return;
    }
    if (!rtp_header(p->pl, p->pln, &h))
        return;
    struct stream *st = stream_of(c, &src, &dst, h.ssrc, 0);
    if (!st)
        return;
    if (!st->first)
        st->first = p->ts;
    st->last = p->ts;
    st->pt = h.pt;
    rtp_stats_add(&st->st, &h, p->ts, rate_of(c, h.pt));
}

/* ---- SIP over TCP ---- */

static int tcp_data(struct tconn *t, int dir, const uint8_t *p, size_t n, int64_t ts)
{
    ses_t *s = t->s;
    struct vk *k = s->k;
    if (!t->buf[dir] && !(t->buf[dir] = malloc(TCP_BUF)))
        return 1; /* out of memory: this direction is given up */
    while (n) {
        size_t room = TCP_BUF - t->n[dir], take = n < room ? n : room;
        memcpy(t->buf[dir] + t->n[dir], p, take);
        t->n[dir] += take;
        p += take;
        n -= take;
        size_t off = 0;
        for (;;) {
            struct sip_msg m;
            int rc = sip_parse(t->buf[dir] + off, t->n[dir] - off, 1, &m);
            if (rc > 0) {
                struct call *c = on_sip(s, &m, &t->ep[dir], &t->ep[!dir], &t->key, 1, ts);
                if (c && !k->hit)
                    k->hit = c;
                off += (size_t)rc;
                continue;
            }
            if (rc == 0 && t->n[dir] - off < TCP_BUF)
                break;
            /* not SIP here (a capture begun mid-message, a keep-alive CRLF):
             * resume at the next line that starts a message */
            const uint8_t *q = t->buf[dir] + off;
            size_t left = t->n[dir] - off, i;
            for (i = 1; i < left; i++)
                if (q[i - 1] == '\n' && sip_looks(q + i, left - i))
                    break;
            if (i >= left) {
                /* keep a partial last line: it may start a message */
                const uint8_t *nl = NULL;
                for (size_t j = left; j > 0; j--)
                    if (q[j - 1] == '\n') {
                        nl = q + j;
                        break;
                    }
                off += nl ? (size_t)(nl - q) : (left < TCP_BUF ? 0 : left);
                break;
            }
            off += i;
        }
        memmove(t->buf[dir], t->buf[dir] + off, t->n[dir] - off);
        t->n[dir] -= off;
    }
    return 0;
}

static int tcp_data0(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    return tcp_data(arg, 0, p, n, ts);
}
static int tcp_data1(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    return tcp_data(arg, 1, p, n, ts);
}
static int tcp_gap(struct tconn *t, int dir)
{
    t->n[dir] = 0; /* a message cut by a gap is lost: resynchronise after it */
    return 0;
}
static int tcp_gap0(void *arg, uint64_t len, int64_t ts)
{
    (void)len, (void)ts;
    return tcp_gap(arg, 0);
}
static int tcp_gap1(void *arg, uint64_t len, int64_t ts)
{
    (void)len, (void)ts;
    return tcp_gap(arg, 1);
}

static void tconn_free(void *v)
{
    struct tconn *t = v;
    if (!t)
        return;
    rsm_dir_free(t->d[0]);
    rsm_dir_free(t->d[1]);
    free(t->buf[0]);
    free(t->buf[1]);
    free(t);
}

static struct tconn *tconn_new(ses_t *s, const struct ses_pkt *p, const struct ses_key *key)
{
    struct vk *k = s->k;
    struct tconn *t = calloc(1, sizeof *t);
    if (!t)
        return NULL;
    t->key = *key;
    t->s = s;
    pkt_eps(p, &t->ep[0], &t->ep[1]);
    struct rsm_sink s0 = {tcp_data0, tcp_gap0, NULL, t}, s1 = {tcp_data1, tcp_gap1, NULL, t};
    t->d[0] = rsm_dir_new(&s0, &s->pool, 256 << 10);
    t->d[1] = rsm_dir_new(&s1, &s->pool, 256 << 10);
    if (!t->d[0] || !t->d[1] || ses_map_put(k->tcp, key, t) < 0) {
        tconn_free(t);
        return NULL;
    }
    return t;
}

/* ---- packets ---- */

static int want_tcp(const struct vk *k, const struct ses_key *key)
{
    for (int i = 0; i < k->nwant_tcp; i++)
        if (!memcmp(&k->want_tcp[i], key, sizeof *key))
            return 1;
    return 0;
}

/* The call p belongs to (SIP or media), or NULL; k->hit for TCP. */
static struct call *voip_read(ses_t *s, const struct ses_pkt *p)
{
    struct vk *k = s->k;
    struct ses_key key;
    struct ses_ep src, dst;
    k->hit = NULL;
    ses_key_of(p, &key, NULL);
    pkt_eps(p, &src, &dst);
    if (p->proto == 17) {
        struct sip_msg m;
        if (p->pln && sip_looks(p->pl, p->pln)) {
            if (sip_parse(p->pl, p->pln, 0, &m) > 0)
                return on_sip(s, &m, &src, &dst, &key, 0, p->ts);
            return NULL;
        }
        struct ses_key ek;
        struct ann *a;
        ep_key(&dst, &ek);
        if (!(a = ses_map_get(k->eps, &ek))) {
            ep_key(&src, &ek);
            a = ses_map_get(k->eps, &ek);
        }
        if (a && a->c) {
            on_media(a->c, a, p);
            return a->c;
        }
        return NULL;
    }
    struct tconn *t = ses_map_get(k->tcp, &key);
    if (!t) {
        if (!p->pln || !(sip_looks(p->pl, p->pln) || p->sport == 5060 || p->dport == 5060))
            return NULL;
        if (ses_map_count(k->tcp) >= TCP_CONNS) {
            k->tcp_skipped++;
            return NULL;
        }
        if (!(t = tconn_new(s, p, &key)))
            return NULL;
    }
    int dir = ep_eq(&t->ep[0], &src) ? 0 : 1;
    rsm_segment(t->d[dir], p->seq, p->flags & (RSM_SYN | RSM_FIN | RSM_RST), p->pl, p->pln, p->ts);
    if (rsm_stopped(t->d[0]) && rsm_stopped(t->d[1]))
        tconn_free(ses_map_del(k->tcp, &key));
    return k->hit;
}

static int voip_packet(ses_t *s, const struct ses_pkt *p)
{
    struct vk *k = s->k;
    struct call *c = voip_read(s, p);
    if (!k->out)
        return 0;
    struct ses_key key;
    ses_key_of(p, &key, NULL);
    int emit = (c && c->hash == k->want) || (p->proto == 6 && want_tcp(k, &key));
    if (emit && qry_out_packet(k->out, p->raw) < 0)
        s->oerr = 1;
    return 0;
}

/* ---- the listing ---- */

static int by_first(const void *a, const void *b)
{
    const struct call *x = *(struct call *const *)a, *y = *(struct call *const *)b;
    return x->first < y->first ? -1 : x->first > y->first ? 1 : 0;
}

static void call_id_str(const struct call *c, char *out, size_t n)
{
    snprintf(out, n, "C%" PRId64 "-%" PRId64 "-%016" PRIx64, c->first, c->last, c->hash);
}

static double duration(const struct call *c)
{
    if (!c->answered)
        return 0;
    int64_t end = c->bye ? c->bye : c->last;
    return end > c->answer ? (double)(end - c->answer) / 1e9 : 0;
}

static const char *codec(const struct call *c, int pt, char *buf, size_t n)
{
    for (int i = 0; i < c->nmap; i++)
        if (c->map[i].pt == pt) {
            snprintf(buf, n, "%s", c->map[i].name);
            return buf;
        }
    const char *nm = rtp_pt_name(pt);
    snprintf(buf, n, "%s", nm ? nm : "");
    return buf;
}

static void json_ep(ses_t *s, const char *name, const struct ses_ep *e)
{
    char a[64];
    ses_addr_str(e->fam, e->addr, a, sizeof a);
    ses_outf(s, "\"%s\":", name);
    ses_json_str(s, a);
    ses_outf(s, ",\"%s_port\":%u", name, e->port);
}

static void json_call(ses_t *s, const struct call *c)
{
    char id[80], cd[40];
    call_id_str(c, id, sizeof id);
    ses_outs(s, "{\"id\":");
    ses_json_str(s, id);
    ses_outs(s, ",\"call_id\":");
    ses_json_str(s, c->call_id);
    ses_outs(s, ",\"caller\":");
    ses_json_str(s, c->caller);
    ses_outs(s, ",\"callee\":");
    ses_json_str(s, c->callee);
    ses_outs(s, ",");
    json_ep(s, "sip_client", &c->sip_client);
    ses_outs(s, ",");
    json_ep(s, "sip_server", &c->sip_server);
    ses_outf(s, ",\"transport\":\"%s\",\"start\":", c->sip_tcp ? "tcp" : "udp");
    ses_json_time(s, c->first);
    ses_outs(s, ",\"invite\":");
    ses_json_time(s, c->invite);
    ses_outs(s, ",\"ringing\":");
    ses_json_time(s, c->ringing);
    ses_outs(s, ",\"answer\":");
    ses_json_time(s, c->answer);
    ses_outs(s, ",\"bye\":");
    ses_json_time(s, c->bye);
    ses_outs(s, ",\"end\":");
    ses_json_time(s, c->last);
    ses_outf(s, ",\"final_code\":%d,\"final_reason\":", c->final_code);
    ses_json_str(s, c->final_reason);
    ses_outf(s, ",\"answered\":%s,\"duration\":%.6f,\"sip_messages\":%u,\"streams\":[",
             c->answered ? "true" : "false", duration(c), c->msgs);
    for (int i = 0; i < c->nstreams; i++) {
        const struct stream *st = &c->streams[i];
        ses_outs(s, i ? ",{" : "{");
        ses_outf(s, "\"kind\":\"%s\",", st->rtcp ? "rtcp" : "rtp");
        json_ep(s, "src", &st->src);
        ses_outs(s, ",");
        json_ep(s, "dst", &st->dst);
        ses_outf(s, ",\"ssrc\":\"0x%08X\",\"first\":", st->ssrc);
        ses_json_time(s, st->first);
        ses_outs(s, ",\"last\":");
        ses_json_time(s, st->last);
        if (st->rtcp) {
            ses_outf(s, ",\"packets\":%" PRIu64 "}", st->rtcp_packets);
            continue;
        }
        ses_outf(s, ",\"payload_type\":%d,\"codec\":", st->pt);
        ses_json_str(s, codec(c, st->pt, cd, sizeof cd));
        ses_outf(s, ",\"clock_rate\":%u,\"packets\":%" PRIu64 ",\"lost\":%" PRId64
                    ",\"max_jitter_ms\":%.3f,\"mean_jitter_ms\":%.3f,\"max_delta_ms\":%.3f}",
                 st->st.clock_rate, st->st.packets, rtp_stats_lost(&st->st), st->st.max_jitter,
                 st->st.mean_jitter, st->st.max_delta);
    }
    ses_outf(s, "],\"streams_not_shown\":%u}", c->streams_more);
}

static void csv_call(ses_t *s, const struct call *c)
{
    char id[80], a[64], b[64], t[48];
    call_id_str(c, id, sizeof id);
    ses_outf(s, "%s,", id);
    ses_csv_str(s, c->call_id);
    ses_outs(s, ",");
    ses_csv_str(s, c->caller);
    ses_outs(s, ",");
    ses_csv_str(s, c->callee);
    ses_addr_str(c->sip_client.fam, c->sip_client.addr, a, sizeof a);
    ses_addr_str(c->sip_server.fam, c->sip_server.addr, b, sizeof b);
    ses_outf(s, ",%s,%u,%s,%u,%s", a, c->sip_client.port, b, c->sip_server.port,
             c->sip_tcp ? "tcp" : "udp");
    const int64_t ts[] = {c->first, c->invite, c->ringing, c->answer, c->bye, c->last};
    for (size_t i = 0; i < sizeof ts / sizeof ts[0]; i++) {
        t[0] = 0;
        if (ts[i])
            rw_time_fmt(ts[i], t, sizeof t);
        ses_outf(s, ",%s", t);
    }
    uint64_t pk = 0;
    int64_t lost = 0;
    double mj = 0;
    int nrtp = 0;
    for (int i = 0; i < c->nstreams; i++)
        if (!c->streams[i].rtcp) {
            nrtp++;
            pk += c->streams[i].st.packets;
            lost += rtp_stats_lost(&c->streams[i].st);
            if (c->streams[i].st.max_jitter > mj)
                mj = c->streams[i].st.max_jitter;
        }
    ses_outf(s, ",%d,", c->final_code);
    ses_csv_str(s, c->final_reason);
    ses_outf(s, ",%.3f,%u,%d,%" PRIu64 ",%" PRId64 ",%.3f\r\n", duration(c), c->msgs, nrtp, pk,
             lost, mj);
}

static void text_call(ses_t *s, const struct call *c)
{
    char t[48], a[64], b[64], cd[40];
    rw_time_fmt(c->first, t, sizeof t);
    ses_outf(s, "%s  %.80s -> %.80s  %d %s  %.1f s  (%s)\n", t, c->caller, c->callee,
             c->final_code, c->final_reason, duration(c), c->call_id);
    for (int i = 0; i < c->nstreams; i++) {
        const struct stream *st = &c->streams[i];
        ses_addr_str(st->src.fam, st->src.addr, a, sizeof a);
        ses_addr_str(st->dst.fam, st->dst.addr, b, sizeof b);
        if (st->rtcp)
            ses_outf(s, "  RTCP %s:%u -> %s:%u  %" PRIu64 " packets\n", a, st->src.port, b,
                     st->dst.port, st->rtcp_packets);
        else
            ses_outf(s, "  RTP  %s:%u -> %s:%u  SSRC 0x%08X %s  %" PRIu64 " packets, %" PRId64
                        " lost, max jitter %.3f ms\n", a, st->src.port, b, st->dst.port, st->ssrc,
                     codec(c, st->pt, cd, sizeof cd), st->st.packets, rtp_stats_lost(&st->st),
                     st->st.max_jitter);
    }
}

static int voip_finish(ses_t *s, char *err)
{
    struct vk *k = s->k;
    if (k->out) {
        int rc = qry_out_close(k->out);
        k->out = NULL;
        return rc < 0 ? rw_err(err, RW_EIO, "writing the capture file failed") : 0;
    }
    if (k->ncalls)
        qsort(k->list, k->ncalls, sizeof *k->list, by_first);
    switch (s->spec.format) {
    case SES_JSON:
        ses_outs(s, "{\"calls\":[");
        for (size_t i = 0; i < k->ncalls; i++) {
            if (i)
                ses_outs(s, ",");
            json_call(s, k->list[i]);
        }
        ses_outf(s, "],\"truncated\":%s,\"limit\":%" PRIu64 ",\"packets\":%" PRIu64
                    ",\"sip_messages\":%" PRIu64 ",\"sip_tcp_not_followed\":%" PRIu64 "}\n",
                 k->truncated || k->ncalls >= s->spec.limit ? "true" : "false", s->spec.limit,
                 s->packets, k->sip_msgs, k->tcp_skipped);
        break;
    case SES_CSV:
        ses_outs(s, "id,call_id,caller,callee,sip_client,sip_client_port,sip_server,"
                    "sip_server_port,transport,start,invite,ringing,answer,bye,end,final_code,"
                    "final_reason,duration,sip_messages,rtp_streams,rtp_packets,rtp_lost,"
                    "max_jitter_ms\r\n");
        for (size_t i = 0; i < k->ncalls; i++)
            csv_call(s, k->list[i]);
        break;
    default:
        for (size_t i = 0; i < k->ncalls; i++)
            text_call(s, k->list[i]);
        ses_outf(s, "%zu calls%s\n", k->ncalls,
                 k->ncalls >= s->spec.limit ? " (the limit: there may be more)" : "");
        break;
    }
    return 0;
}

static void vk_clear(struct vk *k)
{
    ses_map_free(k->calls, free);
    ses_map_free(k->eps, free);
    ses_map_free(k->tcp, tconn_free);
    k->calls = k->eps = k->tcp = NULL;
    free(k->list);
    k->list = NULL;
    k->ncalls = k->cap = k->kept = 0;
}

static int vk_init(struct vk *k)
{
    k->calls = ses_map_new();
    k->eps = ses_map_new();
    k->tcp = ses_map_new();
    return k->calls && k->eps && k->tcp ? 0 : -1;
}

static void voip_free(ses_t *s)
{
    struct vk *k = s->k;
    if (!k)
        return;
    if (k->out)
        (void)!qry_out_close(k->out);
    vk_clear(k);
    free(k);
    s->k = NULL;
}

#define VOIP_FILTER "(udp or tcp)"

/* The second pass's filter: the flows that carried the call's SIP and the
 * addresses and ports its SDP announced (grouped by address), in the call's
 * window. A superset of the call's packets that voip_read judges as the
 * first pass did: what it decides depends only on the call's own SIP (no
 * other call is followed), and all of it passes. 0, or -1 when the call used
 * more than such a filter should hold (the second pass then reads what the
 * first did). */
#define CALL_FILTER_EPS 32   /* announced addresses and ports */
#define CALL_FILTER_MAX 1800 /* characters; ses_query doubles it for VLANs */
#define CALL_FILTER_PRIMS 60 /* primitives: doubled, under QRY_MAX_PRIMITIVES */

struct eps_acc {
    const struct call *c;
    struct ses_ep e[CALL_FILTER_EPS];
    int n, over;
};

static void eps_collect(void *arg, void *v)
{
    struct eps_acc *acc = arg;
    const struct ann *a = v;
    if (a->c != acc->c)
        return;
    if (acc->n == CALL_FILTER_EPS)
        acc->over = 1;
    else
        acc->e[acc->n++] = a->ep;
}

static int ep_order(const void *x, const void *y)
{
    const struct ses_ep *a = x, *b = y;
    int c = a->fam - b->fam;
    if (!c)
        c = memcmp(a->addr, b->addr, 16);
    return c ? c : (int)a->port - (int)b->port;
}

static int call_filter(struct vk *k, const struct call *c, char *out, size_t n)
{
    struct eps_acc acc = {.c = c};
    size_t o = 0;
    int prims = 0;
    char a[64], b[64];
    if (c->flows_more)
        return -1;
    ses_map_each(k->eps, eps_collect, &acc);
    if (acc.over)
        return -1;
    qsort(acc.e, (size_t)acc.n, sizeof acc.e[0], ep_order); /* the same filter every time */
#define PUT(...)                                                                                   \
    do {                                                                                           \
        int w_ = snprintf(out + o, n - o, __VA_ARGS__);                                            \
        if (w_ < 0 || (size_t)w_ >= n - o)                                                         \
            return -1;                                                                             \
        o += (size_t)w_;                                                                           \
    } while (0)
    /* and/or are of one precedence in pcap-filter(7): every group is in
     * parentheses */
    for (int i = 0; i < c->nflows; i++) {
        const struct ses_key *f = &c->flows[i];
        ses_addr_str(f->fam, f->a, a, sizeof a);
        ses_addr_str(f->fam, f->b, b, sizeof b);
        PUT("%s(%s and host %s and port %u and host %s and port %u)", o ? " or " : "",
            f->proto == 6 ? "tcp" : "udp", a, f->pa, b, f->pb);
        prims += 5;
    }
    for (int i = 0; i < acc.n;) {
        int j = i;
        ses_addr_str(acc.e[i].fam, acc.e[i].addr, a, sizeof a);
        PUT("%s(udp and host %s and (", o ? " or " : "", a);
        for (; j < acc.n && acc.e[j].fam == acc.e[i].fam &&
               !memcmp(acc.e[j].addr, acc.e[i].addr, 16);
             j++)
            PUT("%sport %u", j > i ? " or " : "", acc.e[j].port);
        PUT("))");
        prims += 2 + (j - i);
        i = j;
    }
#undef PUT
    return o && o < CALL_FILTER_MAX && prims <= CALL_FILTER_PRIMS ? 0 : -1;
}

/* SES_CALL_PCAP: a first pass over the call's window finds it, the flows
 * its SIP used and the media its SDP announced; the second (ses_pump)
 * writes its packets, reading only those flows and addresses. */
static int find_call(ses_t *s, char *err)
{
    struct vk *k = s->k;
    long long f, l;
    unsigned long long h;
    int used = 0;
    if (sscanf(s->spec.id, "C%lld-%lld-%16llx%n", &f, &l, &h, &used) != 3 ||
        s->spec.id[used] || l < f || strlen(s->spec.id) != (size_t)used)
        return rw_err(err, RW_EINPUT,
                      "id: '%.100s' is not a call ID (C<start>-<end>-<hash>, as "
                      "/api/v1/voip/calls lists them)", s->spec.id);
    k->want = h;
    k->want_first = f;
    k->want_last = l;
    /* The call's first packet, at f, says which TCP ports its SIP may use
     * beside 5060 (SIP over UDP is looked for on every port). */
    char tports[160] = "port 5060", first[240];
    uint16_t seen[8];
    int nseen = 0, rc;
    struct qry_pkt pk;
    if ((rc = ses_query(s, f, f + 1, VOIP_FILTER, err)) < 0)
        return rc;
    while ((rc = qry_next(s->q, &pk, err)) > 0) {
        struct ses_pkt p;
        if (!ses_decode(s->pts[pk.point].dlt, &pk, &p) || p.proto != 6)
            continue;
        for (int e = 0; e < 2; e++) {
            uint16_t port = e ? p.dport : p.sport;
            int have = port == 5060;
            for (int i = 0; i < nseen && !have; i++)
                have = seen[i] == port;
            if (!have && nseen < 8) {
                seen[nseen++] = port;
                size_t o = strlen(tports);
                snprintf(tports + o, sizeof tports - o, " or port %u", port);
            }
        }
    }
    qry_free(s->q);
    s->q = NULL;
    if (rc < 0)
        return rc;
    snprintf(first, sizeof first, "udp or (tcp and (%s))", tports);
    struct call *c = NULL;
    int tagged = 0; /* a packet of the call came with a VLAN tag */
    for (int pass = 0; pass < 2; pass++) {
        /* First the SIP over UDP and over those TCP ports and all UDP
         * media: the call as the listing saw it, unless its SIP also went
         * over TCP elsewhere. If the call's first and last packet are not
         * what the ID says, everything of the window is read instead. */
        if (pass && (vk_clear(k), vk_init(k) < 0))
            return rw_err(err, RW_ENOMEM, "out of memory");
        if ((rc = ses_query(s, f, l + 1, pass ? VOIP_FILTER : first, err)) < 0)
            return rc;
        tagged = 0;
        while ((rc = qry_next(s->q, &pk, err)) > 0) {
            struct ses_pkt p;
            if (ses_decode(s->pts[pk.point].dlt, &pk, &p)) {
                struct call *hc = voip_read(s, &p);
                if (hc && hc->hash == h && p.tagged)
                    tagged = 1;
            }
        }
        qry_free(s->q);
        s->q = NULL;
        if (rc < 0)
            return rc;
        struct ses_key key;
        hash_key(h, &key);
        c = ses_map_get(k->calls, &key);
        if (c && c->first == f && c->last == l)
            break;
    }
    if (!c)
        return 0; /* no such call: s->q stays NULL */
    for (int i = 0; i < c->nflows; i++)
        if (c->flow_tcp[i]) {
            k->want_tcp[k->nwant_tcp++] = c->flows[i];
            tagged = 1; /* its every segment is the call's: not judged one by one above */
        }
    char narrow[CALL_FILTER_MAX + 200];
    int narrowed = call_filter(k, c, narrow, sizeof narrow) == 0;
    vk_clear(k);
    if (vk_init(k) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    /* The call's packets are what the first pass gave it: when none was
     * tagged, the second asks for untagged packets only (the index narrows
     * that to the call's flows; a VLAN half would read every tagged packet
     * of the window). */
    if ((rc = ses_query_vlan(s, f, l + 1, narrowed ? narrow : VOIP_FILTER, !narrowed || tagged,
                             err)) < 0)
        return rc;
    rc = qry_out_new(s->spec.pcap_format, s->pts, s->npts, s->w, s->warg, &k->out, err);
    if (rc < 0)
        return rc;
    s->ctype = s->spec.pcap_format == QRY_PCAP ? "application/vnd.tcpdump.pcap"
                                               : "application/x-pcapng";
    return 0;
}

int ses_voip_init(ses_t *s, char *err)
{
    struct vk *k = calloc(1, sizeof *k);
    char filter[200];
    if (!k)
        return rw_err(err, RW_ENOMEM, "out of memory");
    s->k = k;
    s->ops.packet = voip_packet;
    s->ops.finish = voip_finish;
    s->ops.free = voip_free;
    if (vk_init(k) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if (s->spec.kind == SES_CALL_PCAP) {
        k->pcap = 1;
        return find_call(s, err);
    }
    /* With a host, only its packets are read: its SIP and the media that
     * reaches it (media relayed elsewhere is not seen). */
    if (s->spec.host)
        snprintf(filter, sizeof filter, "%s and host %s", VOIP_FILTER, s->spec.host);
    else
        snprintf(filter, sizeof filter, "%s", VOIP_FILTER);
    return ses_query(s, s->spec.from, s->spec.to, filter, err);
}
