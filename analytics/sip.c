/* sip.c -- SIP message, SDP and RTP parsers, and RTP stream figures (sip.h). */
#include "analytics/sip.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define SIP_HDR_MAX (64 << 10) /* a header section longer than this is not SIP we read */

static void copy_str(char *dst, size_t n, const char *src, size_t len)
{
    if (len >= n)
        len = n - 1;
    memcpy(dst, src, len);
    dst[len] = 0;
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)dst[i] < 0x20)
            dst[i] = ' ';
}

static const uint8_t *find(const uint8_t *p, size_t n, const char *s)
{
    size_t l = strlen(s);
    if (n < l)
        return NULL;
    for (size_t i = 0; i + l <= n; i++)
        if (p[i] == (uint8_t)s[0] && !memcmp(p + i, s, l))
            return p + i;
    return NULL;
}

/* Length of the first line (without its end), or n if none ends. */
static size_t line_len(const uint8_t *p, size_t n)
{
    const uint8_t *e = memchr(p, '\n', n);
    size_t l = e ? (size_t)(e - p) : n;
    if (l && p[l - 1] == '\r')
        l--;
    return l;
}

static int is_token(uint8_t c) { return isupper(c) || c == '-' || c == '_'; }

int sip_looks(const uint8_t *p, size_t n)
{
    size_t l = line_len(p, n < 512 ? n : 512);
    if (l >= 12 && !memcmp(p, "SIP/2.0 ", 8))
        return isdigit(p[8]) && isdigit(p[9]) && isdigit(p[10]);
    size_t i = 0;
    while (i < l && i < 24 && is_token(p[i]))
        i++;
    if (i < 3 || i >= l || p[i] != ' ')
        return 0;
    return l >= i + 9 && !memcmp(p + l - 8, " SIP/2.0", 8);
}

/* The URI of a From/To value: "Bob <sip:bob@x>;tag=1" -> "sip:bob@x". */
static void uri_of(const char *v, size_t vl, char *out, size_t n)
{
    const char *lt = memchr(v, '<', vl);
    if (lt) {
        const char *gt = memchr(lt, '>', vl - (size_t)(lt - v));
        size_t l = gt ? (size_t)(gt - lt - 1) : vl - (size_t)(lt - v) - 1;
        copy_str(out, n, lt + 1, l);
        return;
    }
    size_t l = 0;
    while (l < vl && v[l] != ';')
        l++;
    while (l && v[l - 1] == ' ')
        l--;
    copy_str(out, n, v, l);
}

static int name_is(const char *h, size_t hl, const char *full, const char *compact)
{
    return (hl == strlen(full) && !strncasecmp(h, full, hl)) ||
           (compact && hl == 1 && tolower((unsigned char)h[0]) == compact[0]);
}

int sip_parse(const uint8_t *p, size_t n, int stream, struct sip_msg *m)
{
    memset(m, 0, sizeof *m);
    if (!sip_looks(p, n))
        return n < 16 && stream ? 0 : -1;
    const uint8_t *end = find(p, n < SIP_HDR_MAX ? n : SIP_HDR_MAX, "\r\n\r\n");
    size_t hlen, sep = 4;
    if (!end) {
        const uint8_t *e2 = find(p, n < SIP_HDR_MAX ? n : SIP_HDR_MAX, "\n\n");
        if (!e2) {
            if (stream)
                return n >= SIP_HDR_MAX ? -1 : 0;
            end = p + n; /* a datagram without its empty line: headers to the end */
            sep = 0;
        } else {
            end = e2;
            sep = 2;
        }
    }
    hlen = (size_t)(end - p);
    size_t l = line_len(p, hlen);
    if (!memcmp(p, "SIP/2.0 ", 8)) {
        m->request = 0;
        m->status = (p[8] - '0') * 100 + (p[9] - '0') * 10 + (p[10] - '0');
        if (l > 12)
            copy_str(m->reason, sizeof m->reason, (const char *)p + 12, l - 12);
    } else {
        m->request = 1;
        size_t i = 0;
        while (i < l && p[i] != ' ')
            i++;
        copy_str(m->method, sizeof m->method, (const char *)p, i);
    }
    long clen = -1;
    /* header lines (folded lines join the one before: only their start matters here) */
    for (size_t off = l; off < hlen;) {
        while (off < hlen && (p[off] == '\r' || p[off] == '\n'))
            off++;
        size_t ll = line_len(p + off, hlen - off);
        const char *h = (const char *)p + off;
        off += ll;
        const char *colon = memchr(h, ':', ll);
        if (!colon || h[0] == ' ' || h[0] == '\t')
            continue;
        size_t hl = (size_t)(colon - h);
        while (hl && (h[hl - 1] == ' ' || h[hl - 1] == '\t'))
            hl--;
        const char *v = colon + 1;
        size_t vl = ll - (size_t)(v - h);
        while (vl && (*v == ' ' || *v == '\t'))
            v++, vl--;
        while (vl && (v[vl - 1] == ' ' || v[vl - 1] == '\t'))
            vl--;
        if (name_is(h, hl, "Call-ID", "i")) {
            copy_str(m->call_id, sizeof m->call_id, v, vl);
        } else if (name_is(h, hl, "From", "f")) {
            uri_of(v, vl, m->from, sizeof m->from);
        } else if (name_is(h, hl, "To", "t")) {
            uri_of(v, vl, m->to, sizeof m->to);
        } else if (name_is(h, hl, "CSeq", NULL)) {
            char tmp[64];
            copy_str(tmp, sizeof tmp, v, vl);
            char meth[24] = "";
            unsigned long cs = 0;
            if (sscanf(tmp, "%lu %23s", &cs, meth) >= 1) {
                m->cseq = (uint32_t)cs;
                snprintf(m->cseq_method, sizeof m->cseq_method, "%s", meth);
            }
        } else if (name_is(h, hl, "Content-Length", "l")) {
            char tmp[24];
            copy_str(tmp, sizeof tmp, v, vl);
            char *e;
            long x = strtol(tmp, &e, 10);
            if (e == tmp || *e || x < 0 || x > (16 << 20))
                return -1;
            clen = x;
        } else if (name_is(h, hl, "Content-Type", "c")) {
            m->sdp = vl >= 15 && !strncasecmp(v, "application/sdp", 15);
        }
    }
    if (!m->call_id[0])
        return -1;
    if (!m->request)
        snprintf(m->method, sizeof m->method, "%s", m->cseq_method);
    size_t bstart = hlen + sep;
    if (bstart > n)
        bstart = n;
    size_t avail = n - bstart;
    if (stream) {
        size_t want = clen < 0 ? 0 : (size_t)clen;
        if (avail < want)
            return 0;
        m->body = p + bstart;
        m->body_len = want;
        m->len = bstart + want;
    } else {
        m->body = p + bstart;
        m->body_len = clen >= 0 && (size_t)clen < avail ? (size_t)clen : avail;
        m->len = n;
    }
    return (int)m->len;
}

/* ---- SDP ---- */

static int parse_c(const char *v, int *fam, uint8_t *addr)
{
    char t[3][64];
    if (sscanf(v, "%63s %63s %63s", t[0], t[1], t[2]) != 3 || strcmp(t[0], "IN"))
        return -1;
    char *slash = strchr(t[2], '/'); /* multicast TTL */
    if (slash)
        *slash = 0;
    memset(addr, 0, 16);
    if (!strcmp(t[1], "IP4") && inet_pton(AF_INET, t[2], addr) == 1)
        *fam = 4;
    else if (!strcmp(t[1], "IP6") && inet_pton(AF_INET6, t[2], addr) == 1)
        *fam = 6;
    else
        return -1;
    return 0;
}

int sdp_parse(const uint8_t *p, size_t n, struct sdp_info *out)
{
    int sfam = 0;
    uint8_t saddr[16] = {0};
    struct sdp_media *cur = NULL;
    memset(out, 0, sizeof *out);
    for (size_t off = 0; off < n;) {
        size_t ll = line_len(p + off, n - off);
        char line[256];
        copy_str(line, sizeof line, (const char *)p + off, ll);
        off += ll;
        while (off < n && (p[off] == '\r' || p[off] == '\n'))
            off++;
        if (strlen(line) < 2 || line[1] != '=')
            continue;
        const char *v = line + 2;
        switch (line[0]) {
        case 'c':
            if (cur)
                (void)parse_c(v, &cur->fam, cur->addr);
            else
                (void)parse_c(v, &sfam, saddr);
            break;
        case 'm': {
            char media[16];
            unsigned port;
            cur = NULL;
            if (out->nm >= SDP_MAX_MEDIA || sscanf(v, "%15s %u", media, &port) != 2 ||
                port > 65535)
                break;
            cur = &out->m[out->nm++];
            memset(cur, 0, sizeof *cur);
            snprintf(cur->media, sizeof cur->media, "%s", media);
            cur->port = (uint16_t)port;
            cur->rtcp_port = port ? (uint16_t)(port + 1) : 0;
            cur->fam = sfam;
            memcpy(cur->addr, saddr, 16);
            break;
        }
        case 'a':
            if (!cur)
                break;
            if (!strncmp(v, "rtpmap:", 7) && cur->nmap < SDP_MAX_MAP) {
                int pt;
                char name[32];
                unsigned rate = 0;
                if (sscanf(v + 7, "%d %31[^/]/%u", &pt, name, &rate) >= 2 && pt >= 0 && pt < 128) {
                    cur->map[cur->nmap].pt = pt;
                    snprintf(cur->map[cur->nmap].name, sizeof cur->map[0].name, "%s", name);
                    cur->map[cur->nmap].rate = rate;
                    cur->nmap++;
                }
            } else if (!strncmp(v, "rtcp:", 5)) {
                unsigned rp;
                if (sscanf(v + 5, "%u", &rp) == 1 && rp && rp <= 65535)
                    cur->rtcp_port = (uint16_t)rp;
            } else if (!strcmp(v, "rtcp-mux")) {
                cur->rtcp_mux = 1;
            }
            break;
        default:
            break;
        }
    }
    for (int i = 0; i < out->nm; i++) /* media without an address cannot be followed */
        if (!out->m[i].fam)
            out->m[i].port = 0;
    return out->nm ? 0 : -1;
}

/* ---- RTP ---- */

int rtp_header(const uint8_t *p, size_t n, struct rtp_hdr *h)
{
    if (n < 12 || (p[0] >> 6) != 2)
        return 0;
    size_t need = 12 + (size_t)(p[0] & 15) * 4;
    if (n < need)
        return 0;
    int pt = p[1] & 0x7f;
    if (pt >= 72 && pt <= 76) /* RTCP's types seen through the RTP bits */
        return 0;
    h->pt = pt;
    h->marker = p[1] >> 7;
    h->seq = (uint16_t)(p[2] << 8 | p[3]);
    h->ts = (uint32_t)p[4] << 24 | (uint32_t)p[5] << 16 | (uint32_t)p[6] << 8 | p[7];
    h->ssrc = (uint32_t)p[8] << 24 | (uint32_t)p[9] << 16 | (uint32_t)p[10] << 8 | p[11];
    return 1;
}

int rtcp_looks(const uint8_t *p, size_t n)
{
    return n >= 8 && (p[0] >> 6) == 2 && p[1] >= 200 && p[1] <= 207;
}

static const struct {
    int pt;
    const char *name;
    uint32_t rate;
} pts[] = {
    {0, "g711U", 8000},  {3, "GSM", 8000},    {4, "G723", 8000},   {5, "DVI4 8k", 8000},
    {6, "DVI4 16k", 16000}, {7, "LPC", 8000}, {8, "g711A", 8000},  {9, "g722", 8000},
    {10, "L16", 44100},  {11, "L16", 44100},  {12, "QCELP", 8000}, {13, "CN", 8000},
    {14, "MPA", 90000},  {15, "G728", 8000},  {16, "DVI4 11k", 11025}, {17, "DVI4 22k", 22050},
    {18, "g729", 8000},  {25, "CelB", 90000}, {26, "JPEG", 90000}, {28, "nv", 90000},
    {31, "h261", 90000}, {32, "MPV", 90000},  {33, "MP2T", 90000}, {34, "h263", 90000},
};

uint32_t rtp_clock_rate(int pt)
{
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++)
        if (pts[i].pt == pt)
            return pts[i].rate;
    return 0;
}

const char *rtp_pt_name(int pt)
{
    for (size_t i = 0; i < sizeof pts / sizeof pts[0]; i++)
        if (pts[i].pt == pt)
            return pts[i].name;
    return NULL;
}

static int is_cn(int pt) { return pt == 13 || pt == 19; }

void rtp_stats_add(struct rtp_stats *s, const struct rtp_hdr *h, int64_t ns, uint32_t rate)
{
    double t = (double)ns / 1e6;
    if (!s->started) {
        s->started = 1;
        s->first_seq = s->last_seq = h->seq;
        s->first_ns = s->last_ns = ns;
        s->time_ms = t;
        s->prev_ts32 = h->ts;
        s->ext_ts = s->seq_ts = (int64_t)h->ts;
        s->pt = h->pt;
        s->packets = 1;
        s->clock_rate = rate;
        return;
    }
    /* the timestamp extended across wraps, from the packet before */
    s->ext_ts += (int32_t)(h->ts - s->prev_ts32);
    s->prev_ts32 = h->ts;
    int in_seq = s->seq_ts <= s->ext_ts;
    if (h->seq < s->first_seq && in_seq && !s->under) {
        s->cycles++;
        s->under = 1;
    } else if (h->seq == 0 && s->last_seq == 65535 && in_seq && !s->under) {
        s->cycles++;
        s->under = 1;
    } else if (h->seq > s->first_seq && in_seq && s->under) {
        s->under = 0;
    }
    int follows_cn = is_cn(s->pt);
    s->pt = h->pt;
    double delta = t - s->time_ms, cur = s->jitter;
    if (rate) {
        s->clock_rate = rate;
        /* transit difference D of RFC 3550 6.4.1, in ms (the clock in kHz,
         * whole, as Wireshark divides) */
        double nominal = (double)(s->ext_ts - s->seq_ts) / (double)(rate / 1000 ? rate / 1000 : 1);
        double d = fabs(t - (s->time_ms + nominal));
        cur = (15 * s->jitter + d) / 16;
        s->jitter = cur;
    }
    if (!h->marker && !is_cn(h->pt) && !follows_cn && in_seq) {
        if (delta > s->max_delta)
            s->max_delta = delta;
        if (rate) {
            if (s->jitter > s->max_jitter)
                s->max_jitter = s->jitter;
            s->mean_jitter = (s->mean_jitter * (double)(s->packets - 1) + cur) / (double)s->packets;
        }
    }
    if (in_seq) {
        s->time_ms = t;
        s->seq_ts = s->ext_ts;
    }
    s->last_seq = h->seq;
    s->last_ns = ns;
    s->packets++;
}

int64_t rtp_stats_lost(const struct rtp_stats *s)
{
    if (!s->packets)
        return 0;
    int64_t expected = (int64_t)s->last_seq + (int64_t)s->cycles * 65536 - s->first_seq + 1;
    return expected - (int64_t)s->packets;
}
