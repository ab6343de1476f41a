/* ffilter.c -- BPF words on flow keys, and Community ID look-ups.
 *
 * A flow filter is judged by libpcap itself, so that its words mean exactly
 * what they mean to tcpdump: for each direction in which a flow has
 * packets, a minimal packet with the flow's headers (Ethernet, its VLAN
 * tag, IPv4 or IPv6, the transport ports or ICMP type and code) is built
 * and run through the compiled filter. Only words that a flow's key decides
 * are let through; the rest (byte offsets, lengths, MAC addresses, ...)
 * would judge the made-up packet, not the flow, and are refused. */
#include "analytics/an_int.h"

#include <ctype.h>
#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>

#include "index/index.h"
#include "index/parse.h"

struct an_ffilter {
    struct bpf_program prog;
};

static const char *const words[] = {"host", "net",  "mask", "port", "portrange", "src",
                                    "dst",  "proto", "ip",  "ip6",  "tcp",       "udp",
                                    "sctp", "icmp", "icmp6", "vlan", "and",      "or",
                                    "not",  NULL};

/* Check that expr uses only the words that a flow's key decides. */
static int check_words(const char *expr, char *err)
{
    const char *p = expr;
    while (*p) {
        if (isspace((unsigned char)*p) || *p == '(' || *p == ')' || *p == '!' || *p == '&' ||
            *p == '|') {
            p++;
            continue;
        }
        if (strchr("[]<>=+*/%^", *p))
            return rw_err(err, RW_EINPUT,
                          "filter: '%c' (byte offsets and arithmetic) does not apply to flows; "
                          "flows take host, net, port, portrange, src, dst, proto, ip, ip6, tcp, "
                          "udp, sctp, icmp, icmp6 and vlan with and, or, not", *p);
        const char *s = p;
        while (*p && !isspace((unsigned char)*p) && !strchr("()!&|", *p))
            p++;
        size_t l = (size_t)(p - s);
        char tok[80];
        snprintf(tok, sizeof tok, "%.*s", (int)(l < sizeof tok ? l : sizeof tok - 1), s);
        /* Numbers, addresses (v4, v6, CIDR) and portranges. */
        if (isdigit((unsigned char)tok[0]) || strchr(tok, ':'))
            continue;
        if (tok[0] == '\\') /* proto \tcp */
            memmove(tok, tok + 1, strlen(tok));
        const char *const *w;
        for (w = words; *w && strcmp(*w, tok); w++)
            ;
        if (!*w)
            return rw_err(err, RW_EINPUT,
                          "filter word '%s' does not apply to flows; flows take host, net, port, "
                          "portrange, src, dst, proto, ip, ip6, tcp, udp, sctp, icmp, icmp6 and "
                          "vlan with and, or, not (addresses as numbers, not names)", tok);
    }
    return 0;
}

int an_ffilter_new(const char *expr, an_ffilter_t **out, char *err)
{
    *out = NULL;
    int rc = check_words(expr, err);
    if (rc < 0)
        return rc;
    pcap_t *p = pcap_open_dead(DLT_EN10MB, 65535);
    if (!p)
        return rw_err(err, RW_ENOMEM, "out of memory");
    an_ffilter_t *ff = calloc(1, sizeof *ff);
    if (!ff) {
        pcap_close(p);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    if (pcap_compile(p, &ff->prog, expr, 1, PCAP_NETMASK_UNKNOWN) < 0) {
        rc = rw_err(err, RW_EINPUT, "filter: %s", pcap_geterr(p));
        free(ff);
        pcap_close(p);
        return rc;
    }
    pcap_close(p);
    *out = ff;
    return 0;
}

void an_ffilter_free(an_ffilter_t *ff)
{
    if (!ff)
        return;
    pcap_freecode(&ff->prog);
    free(ff);
}

/* A packet from a to b of flow f (ports or ICMP type/code sp, dp) into
 * buf; returns its length. */
static size_t make_packet(const struct an_flow *f, const uint8_t *a, const uint8_t *b,
                          uint16_t sp, uint16_t dp, uint8_t *buf)
{
    size_t n = 12, alen = f->family == 4 ? 4 : 16;
    memset(buf, 0, 128);
    buf[0] = 0x02; /* a locally administered unicast MAC: never broadcast */
    buf[6] = 0x02;
    if (f->vlan) {
        rw_put_be16(buf + n, 0x8100);
        rw_put_be16(buf + n + 2, f->vlan & 0x0fff);
        n += 4;
    }
    rw_put_be16(buf + n, f->family == 4 ? 0x0800 : 0x86dd);
    n += 2;
    uint8_t *ip = buf + n;
    size_t l4 = 0;
    uint8_t *t = ip + (f->family == 4 ? 20 : 40);
    switch (f->proto) {
    case 6:
        rw_put_be16(t, sp);
        rw_put_be16(t + 2, dp);
        t[12] = 5 << 4;
        t[13] = 0x10;
        l4 = 20;
        break;
    case 17:
    case 132:
        rw_put_be16(t, sp);
        rw_put_be16(t + 2, dp);
        if (f->proto == 17)
            rw_put_be16(t + 4, 8);
        l4 = f->proto == 17 ? 8 : 12;
        break;
    case 1:
    case 58:
        t[0] = (uint8_t)sp;
        t[1] = (uint8_t)dp;
        l4 = 8;
        break;
    }
    if (f->family == 4) {
        ip[0] = 0x45;
        rw_put_be16(ip + 2, (uint16_t)(20 + l4));
        ip[8] = 64;
        ip[9] = f->proto;
        memcpy(ip + 12, a, alen);
        memcpy(ip + 16, b, alen);
        n += 20;
    } else {
        ip[0] = 0x60;
        rw_put_be16(ip + 4, (uint16_t)l4);
        ip[6] = f->proto;
        ip[7] = 64;
        memcpy(ip + 8, a, alen);
        memcpy(ip + 24, b, alen);
        n += 40;
    }
    return n + l4;
}

static int judge(an_ffilter_t *ff, const uint8_t *pkt, size_t len)
{
    struct pcap_pkthdr h = {.caplen = (bpf_u_int32)len, .len = (bpf_u_int32)len};
    return pcap_offline_filter(&ff->prog, &h, pkt) != 0;
}

int an_ffilter_match(an_ffilter_t *ff, const struct an_flow *f)
{
    uint8_t buf[128];
    if (f->pkts_fwd || !f->pkts_rev) {
        size_t n = make_packet(f, f->src, f->dst, f->sport, f->dport, buf);
        if (judge(ff, buf, n))
            return 1;
    }
    if (f->pkts_rev) {
        uint16_t sp = f->dport, dp = f->sport;
        int other;
        if (f->proto == 1 || f->proto == 58) {
            /* The reverse of an ICMP flow is the counterpart type. */
            sp = idx_icmp_counterpart(f->proto == 58, f->sport, &other) ? (uint16_t)other
                                                                         : f->sport;
            dp = 0;
        }
        size_t n = make_packet(f, f->dst, f->src, sp, dp, buf);
        if (judge(ff, buf, n))
            return 1;
    }
    return 0;
}

/* ---------------------------------------------------------- Community ID */

int an_cid_valid(const char *s)
{
    if (strncmp(s, "1:", 2) || strlen(s) != 30)
        return 0;
    for (const char *p = s + 2; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '+' && *p != '/' && *p != '=')
            return 0;
    return s[29] == '=';
}

struct cidq {
    const char *cid;
    int64_t from, to;
    int n;
    struct idx_flowrec recs[64]; /* distinct 5-tuples with VLAN (by flow hash) */
};

static int cid_record(void *arg, const struct idx_flowrec *r)
{
    struct cidq *c = arg;
    if (strcmp(r->community_id, c->cid) || r->last_ts < c->from || r->first_ts >= c->to)
        return 0;
    for (int i = 0; i < c->n; i++)
        if (c->recs[i].hash == r->hash)
            return 0;
    if (c->n < 64)
        c->recs[c->n++] = *r;
    return 0;
}

static void bpf_dir(FILE *f, const struct idx_flowrec *r, const uint8_t *a, const uint8_t *b,
                    int sp, int dp)
{
    char x[64], y[64];
    an_addr(r->family, a, x, sizeof x);
    an_addr(r->family, b, y, sizeof y);
    fprintf(f, "(src host %s and dst host %s", x, y);
    if (r->proto == 6 || r->proto == 17 || r->proto == 132)
        fprintf(f, " and %s and src port %d and dst port %d",
                r->proto == 6 ? "tcp" : r->proto == 17 ? "udp" : "sctp", sp, dp);
    else
        fprintf(f, " and %s proto %d", r->family == 6 ? "ip6" : "ip", r->proto);
    fputc(')', f);
}

/* Both directions of one flow; an ICMP flow's reverse is its counterpart
 * type, a type without one is its type and code, one way. */
static void bpf_flow(FILE *f, const struct idx_flowrec *r)
{
    if (r->proto == 1 || r->proto == 58) {
        int v6 = r->proto == 58, other;
        const char *icmp = v6 ? "icmp6" : "icmp";
        char x[64], y[64];
        an_addr(r->family, r->src, x, sizeof x);
        an_addr(r->family, r->dst, y, sizeof y);
        if (idx_icmp_counterpart(v6, r->sport, &other))
            fprintf(f,
                    "(src host %s and dst host %s and %s and %s[0] = %d) or "
                    "(src host %s and dst host %s and %s and %s[0] = %d)",
                    x, y, icmp, icmp, r->sport, y, x, icmp, icmp, other);
        else
            fprintf(f, "(src host %s and dst host %s and %s and %s[0] = %d and %s[1] = %d)", x, y,
                    icmp, icmp, r->sport, icmp, r->dport);
    } else {
        bpf_dir(f, r, r->src, r->dst, r->sport, r->dport);
        fputs(" or ", f);
        bpf_dir(f, r, r->dst, r->src, r->dport, r->sport);
    }
}

/* The filter for the flows found. BPF's 'vlan' moves every later offset of
 * the expression, across 'or' too: the untagged flows come first, then one
 * 'vlan' under which each tagged flow is told apart by the tag's id in the
 * frame (ether[14:2], which 'vlan' does not move). */
static void bpf_all(FILE *f, const struct cidq *c)
{
    int n = 0, tagged = 0;
    for (int i = 0; i < c->n; i++) {
        if (c->recs[i].vlan) {
            tagged++;
            continue;
        }
        fputs(n++ ? " or " : "", f);
        bpf_flow(f, &c->recs[i]);
    }
    if (!tagged)
        return;
    fputs(n ? " or (vlan and (" : "(vlan and (", f);
    for (int i = 0, k = 0; i < c->n; i++) {
        if (!c->recs[i].vlan)
            continue;
        fprintf(f, "%s(ether[14:2] & 0xfff = %d and (", k++ ? " or " : "", c->recs[i].vlan);
        bpf_flow(f, &c->recs[i]);
        fputs("))", f);
    }
    fputs("))", f);
}

int an_cid_filter(idx_t *ix, const char *cid, int64_t from, int64_t to, const char **points,
                  char **out, char *err)
{
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0, len = 0;
    char *buf = NULL;
    int rc;
    *out = NULL;
    if (!an_cid_valid(cid))
        return rw_err(err, RW_EINPUT,
                      "community_id '%.64s': expected '1:' and 28 base64 characters ending in '='",
                      cid);
    if ((rc = an_points_selected(ix, points, &pts, &npts, err)) < 0)
        return rc;
    if ((rc = idx_seg_list(ix, from, to, &segs, &nsegs, err)) < 0)
        goto done;
    struct cidq *c = calloc(1, sizeof *c);
    if (!c) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    c->cid = cid;
    c->from = from;
    c->to = to;
    for (size_t i = 0; i < nsegs && rc == 0; i++) {
        size_t p;
        for (p = 0; p < npts && pts[p].id != segs[i].point; p++)
            ;
        if (p < npts)
            rc = idx_flows(ix, segs[i].id, cid_record, c, err);
    }
    if (rc == 0 && c->n == 0)
        rc = rw_err(err, RW_ENOTFOUND, "no flow with Community ID %s in the window", cid);
    if (rc == 0) {
        FILE *f = open_memstream(&buf, &len);
        if (!f) {
            rc = rw_err(err, RW_ENOMEM, "out of memory");
        } else {
            bpf_all(f, c);
            fclose(f);
            *out = buf;
            buf = NULL;
        }
    }
    free(c);
done:
    free(buf);
    free(pts);
    free(segs);
    return rc;
}
