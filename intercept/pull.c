/* pull.c -- the wire format of pull delivery (GET /api/v1/cases/ID/intercept,
 * rewind intercept): a pcapng stream of one section whose Enhanced Packet
 * Blocks each carry the packet's sequence number in an opt_comment
 * "rewind-seq N" (man/rewindd.8, LAWFUL INTERCEPT). The server's encoder
 * and the client's parser live here together. The parser reads bytes from
 * the network: every length is checked before it is used. */
#include "intercept/intercept.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "archive/segfile.h"

#define SEQ_PREFIX "rewind-seq "

static size_t put32(uint8_t *p, uint32_t v)
{
    memcpy(p, &v, 4);
    return 4;
}

static size_t put16(uint8_t *p, uint16_t v)
{
    memcpy(p, &v, 2);
    return 2;
}

static size_t option(uint8_t *p, uint16_t code, const void *v, uint16_t len)
{
    size_t n = put16(p, code);
    n += put16(p + n, len);
    memcpy(p + n, v, len);
    memset(p + n + len, 0, (size_t)((4 - len % 4) % 4));
    return n + (len + 3u) / 4 * 4;
}

size_t ic_ng_shb(uint8_t *p)
{
    size_t n = put32(p, 0x0A0D0D0A);
    n += put32(p + n, 28);
    n += put32(p + n, 0x1A2B3C4D);
    n += put16(p + n, 1);
    n += put16(p + n, 0);
    n += put32(p + n, 0xffffffff);
    n += put32(p + n, 0xffffffff);
    n += put32(p + n, 28);
    return n;
}

size_t ic_ng_idb(uint8_t *p, int dlt, uint32_t snaplen, const char *name)
{
    uint16_t nl = (uint16_t)strnlen(name, 64);
    uint8_t tsresol = 9;
    size_t n = 8;
    n += put16(p + n, (uint16_t)segf_linktype_of_dlt(dlt));
    n += put16(p + n, 0);
    n += put32(p + n, snaplen);
    n += option(p + n, 2, name, nl);      /* if_name */
    n += option(p + n, 9, &tsresol, 1);   /* if_tsresol: nanoseconds */
    n += put32(p + n, 0);                 /* opt_endofopt */
    put32(p, 1);
    put32(p + 4, (uint32_t)n + 4);
    n += put32(p + n, (uint32_t)n + 4);
    return n;
}

size_t ic_ng_epb(uint8_t *p, uint32_t ifid, int64_t ts, const uint8_t *data, uint32_t caplen,
                 uint32_t len, uint64_t seq)
{
    char c[40];
    uint16_t cl = (uint16_t)snprintf(c, sizeof c, SEQ_PREFIX "%llu", (unsigned long long)seq);
    size_t n = 8;
    n += put32(p + n, ifid);
    n += put32(p + n, (uint32_t)((uint64_t)ts >> 32));
    n += put32(p + n, (uint32_t)ts);
    n += put32(p + n, caplen);
    n += put32(p + n, len);
    memcpy(p + n, data, caplen);
    memset(p + n + caplen, 0, (4 - caplen % 4) % 4);
    n += (caplen + 3u) / 4 * 4;
    n += option(p + n, 1, c, cl);          /* opt_comment */
    n += put32(p + n, 0);
    put32(p, 6);
    put32(p + 4, (uint32_t)n + 4);
    n += put32(p + n, (uint32_t)n + 4);
    return n;
}

size_t ic_ng_note(uint8_t *p, uint32_t ifid, int64_t now, const char *text)
{
    uint16_t tl = (uint16_t)strnlen(text, 512);
    size_t n = 8;
    n += put32(p + n, ifid);
    n += put32(p + n, (uint32_t)((uint64_t)now >> 32));
    n += put32(p + n, (uint32_t)now);
    n += option(p + n, 1, text, tl);
    n += put32(p + n, 0);
    put32(p, 5);
    put32(p + 4, (uint32_t)n + 4);
    n += put32(p + n, (uint32_t)n + 4);
    return n;
}

/* ---------- the client's parser ---------- */

struct ic_ng_parser {
    uint8_t *buf;
    size_t n, cap;
    int swap;          /* the section is of the other byte order */
    int have_shb;
    struct ic_ng_if ifs[IC_NG_MAX_IFS];
    uint32_t nifs;
};

ic_ng_parser_t *ic_ng_parser_new(void)
{
    struct ic_ng_parser *p = calloc(1, sizeof *p);
    if (p && !(p->buf = malloc(p->cap = 1 << 16))) {
        free(p);
        return NULL;
    }
    return p;
}

void ic_ng_parser_free(ic_ng_parser_t *p)
{
    if (!p)
        return;
    free(p->buf);
    free(p);
}

const struct ic_ng_if *ic_ng_iface(const ic_ng_parser_t *p, uint32_t id)
{
    return id < p->nifs ? &p->ifs[id] : NULL;
}

static uint32_t g32(const struct ic_ng_parser *p, const uint8_t *b)
{
    uint32_t v;
    memcpy(&v, b, 4);
    return p->swap ? __builtin_bswap32(v) : v;
}

static uint16_t g16(const struct ic_ng_parser *p, const uint8_t *b)
{
    uint16_t v;
    memcpy(&v, b, 2);
    return p->swap ? __builtin_bswap16(v) : v;
}

/* The options of a block from b (n bytes): calls back per option. */
static int options(const struct ic_ng_parser *p, const uint8_t *b, size_t n,
                   int (*fn)(void *arg, uint16_t code, const uint8_t *v, uint16_t len),
                   void *arg)
{
    size_t at = 0;
    while (at + 4 <= n) {
        uint16_t code = g16(p, b + at), len = g16(p, b + at + 2);
        if (code == 0)
            return 0;
        if (at + 4 + len > n)
            return -1;
        if (fn(arg, code, b + at + 4, len) < 0)
            return -1;
        at += 4 + (len + 3u) / 4 * 4;
    }
    return 0;
}

static int idb_opt(void *arg, uint16_t code, const uint8_t *v, uint16_t len)
{
    struct ic_ng_if *f = arg;
    if (code == 2 && len < sizeof f->name) {
        memcpy(f->name, v, len);
        f->name[len] = 0;
    } else if (code == 9 && len == 1) {
        f->tsresol = v[0];
    }
    return 0;
}

struct epb_opt {
    uint64_t seq;
    int have;
};

static int epb_opt(void *arg, uint16_t code, const uint8_t *v, uint16_t len)
{
    struct epb_opt *e = arg;
    char c[40];
    size_t pl = strlen(SEQ_PREFIX);
    if (code != 1 || len <= pl || len >= sizeof c || memcmp(v, SEQ_PREFIX, pl))
        return 0;
    memcpy(c, v, len);
    c[len] = 0;
    char *end;
    unsigned long long s = strtoull(c + pl, &end, 10);
    if (*end || c[pl] < '0' || c[pl] > '9' || s == 0)
        return -1;
    e->seq = s;
    e->have = 1;
    return 0;
}

int ic_ng_feed(ic_ng_parser_t *p, const void *data, size_t len, char *err)
{
    if (p->n + len > p->cap) {
        size_t nc = p->cap;
        while (nc < p->n + len)
            nc *= 2;
        uint8_t *nb = realloc(p->buf, nc);
        if (!nb)
            return rw_err(err, RW_ENOMEM, "out of memory");
        p->buf = nb;
        p->cap = nc;
    }
    memcpy(p->buf + p->n, data, len);
    p->n += len;
    return 0;
}

int ic_ng_next(ic_ng_parser_t *p, struct ic_ng_event *ev, size_t *consumed, char *err)
{
    *consumed = 0;
    memset(ev, 0, sizeof *ev);
    if (p->n < 12)
        return 0;
    uint32_t type;
    memcpy(&type, p->buf, 4);
    if (type == 0x0A0D0D0A) { /* byte-order independent */
        uint32_t magic;
        memcpy(&magic, p->buf + 8, 4);
        if (magic == 0x1A2B3C4D)
            p->swap = 0;
        else if (magic == 0x4D3C2B1A)
            p->swap = 1;
        else
            return rw_err(err, RW_EINPUT, "pcapng: section header with byte-order magic %08x",
                          magic);
        if (p->have_shb)
            return rw_err(err, RW_EINPUT, "pcapng: a second section in one answer");
    } else if (!p->have_shb) {
        return rw_err(err, RW_EINPUT, "pcapng: the answer does not start with a section header");
    }
    uint32_t blen = g32(p, p->buf + 4);
    if (blen < 12 || blen % 4 || blen > IC_NG_MAX_BLOCK)
        return rw_err(err, RW_EINPUT, "pcapng: block length %u", blen);
    if (p->n < blen)
        return 0;
    const uint8_t *b = p->buf;
    if (g32(p, b + blen - 4) != blen)
        return rw_err(err, RW_EINPUT, "pcapng: block lengths disagree (%u)", blen);
    type = g32(p, b);
    switch (type) {
    case 0x0A0D0D0A:
        if (blen < 28 || g16(p, b + 12) != 1)
            return rw_err(err, RW_EINPUT, "pcapng: section header of version %u", g16(p, b + 12));
        p->have_shb = 1;
        ev->kind = IC_NG_SECTION;
        break;
    case 1: { /* IDB */
        if (blen < 20 || p->nifs == IC_NG_MAX_IFS)
            return rw_err(err, RW_EINPUT, "pcapng: interface block %s",
                          blen < 20 ? "too short" : "beyond the interfaces expected");
        struct ic_ng_if *f = &p->ifs[p->nifs];
        memset(f, 0, sizeof *f);
        f->linktype = g16(p, b + 8);
        f->snaplen = g32(p, b + 12);
        f->tsresol = 6;
        if (options(p, b + 16, blen - 20, idb_opt, f) < 0)
            return rw_err(err, RW_EINPUT, "pcapng: interface block options overrun");
        if (f->tsresol != 9)
            return rw_err(err, RW_EINPUT, "pcapng: interface %u is not in nanoseconds", p->nifs);
        ev->kind = IC_NG_IFACE;
        ev->ifid = p->nifs++;
        break;
    }
    case 6: { /* EPB */
        if (blen < 32)
            return rw_err(err, RW_EINPUT, "pcapng: packet block too short");
        uint32_t caplen = g32(p, b + 20), pad = (caplen + 3u) / 4 * 4;
        if (caplen > blen - 32 || pad > blen - 32)
            return rw_err(err, RW_EINPUT, "pcapng: packet of %u bytes in a block of %u", caplen,
                          blen);
        struct epb_opt e = {0};
        if (options(p, b + 28 + pad, blen - 32 - pad, epb_opt, &e) < 0)
            return rw_err(err, RW_EINPUT, "pcapng: packet block options malformed");
        ev->ifid = g32(p, b + 8);
        if (ev->ifid >= p->nifs)
            return rw_err(err, RW_EINPUT, "pcapng: packet of interface %u, before its block",
                          ev->ifid);
        if (!e.have)
            return rw_err(err, RW_EINPUT, "pcapng: packet without its sequence number");
        ev->kind = IC_NG_PACKET;
        ev->ts = (int64_t)((uint64_t)g32(p, b + 12) << 32 | g32(p, b + 16));
        ev->caplen = caplen;
        ev->len = g32(p, b + 24);
        ev->data = b + 28;
        ev->seq = e.seq;
        break;
    }
    case 5: { /* ISB: notes of the server (drops) */
        ev->kind = IC_NG_NOTE;
        size_t at = 20;
        while (at + 4 <= blen - 4) {
            uint16_t code = g16(p, b + at), l = g16(p, b + at + 2);
            if (!code || at + 4 + l > blen - 4)
                break;
            if (code == 1 && l < sizeof ev->note) {
                memcpy(ev->note, b + at + 4, l);
                ev->note[l] = 0;
                break;
            }
            at += 4 + (l + 3u) / 4 * 4;
        }
        break;
    }
    default:
        ev->kind = IC_NG_OTHER;
        break;
    }
    *consumed = blen;
    return 1;
}

void ic_ng_consume(ic_ng_parser_t *p, size_t n)
{
    memmove(p->buf, p->buf + n, p->n - n);
    p->n -= n;
}
