/* output.c -- write query answers as pcap (nanosecond) or pcapng. */
#include "query/query.h"

#include <pcap/pcap.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h> /* snprintf */

#define OBUF (256u << 10)

struct qry_out {
    int format;
    qry_write_fn fn;
    void *arg;
    uint8_t *buf;
    size_t len;
    int failed;
};

static void out_flush(qry_out_t *o)
{
    if (o->len && !o->failed && o->fn(o->arg, o->buf, o->len) < 0)
        o->failed = 1;
    o->len = 0;
}

static void out_put(qry_out_t *o, const void *p, size_t n)
{
    if (o->len + n > OBUF)
        out_flush(o);
    if (n > OBUF) {
        if (!o->failed && o->fn(o->arg, p, n) < 0)
            o->failed = 1;
        return;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
}

/* libpcap's name of a link type, as tcpdump shows it ("EN10MB"). */
static const char *dlt_name(int dlt)
{
    const char *n = pcap_datalink_val_to_name(dlt);
    return n ? n : "unknown link type";
}

static void put32(qry_out_t *o, uint32_t v) { out_put(o, &v, 4); }
static void put16(qry_out_t *o, uint16_t v) { out_put(o, &v, 2); }

static void ng_option(qry_out_t *o, uint16_t code, const void *v, uint16_t len)
{
    static const uint8_t zero[4];
    put16(o, code);
    put16(o, len);
    out_put(o, v, len);
    out_put(o, zero, (4 - len % 4) % 4);
}

int qry_out_new(int format, const struct qry_point *pts, int npts, qry_write_fn fn, void *arg,
                qry_out_t **out, char *err)
{
    qry_out_t *o;
    uint32_t snap = 0;
    int lt = npts ? pts[0].linktype : 1;
    for (int i = 0; i < npts; i++) {
        if (pts[i].snaplen > snap)
            snap = pts[i].snaplen;
        if (format == QRY_PCAP && pts[i].linktype != lt)
            return rw_err(err, RW_EINPUT,
                          "points '%s' (%s) and '%s' (%s) differ in link type, and a pcap file "
                          "holds one: ask for pcapng (--format pcapng; over HTTP format=pcapng) "
                          "or for one point (--point NAME; point=NAME)",
                          pts[0].name, dlt_name(pts[0].dlt), pts[i].name, dlt_name(pts[i].dlt));
    }
    if (!snap)
        snap = 262144;
    if (!(o = calloc(1, sizeof *o)) || !(o->buf = malloc(OBUF))) {
        free(o);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    o->format = format;
    o->fn = fn;
    o->arg = arg;
    if (format == QRY_PCAP) {
        uint32_t h[6] = {0xa1b23c4d, RW_PCAP_VERSION, 0, 0, snap, (uint32_t)lt};
        out_put(o, h, 24);
    } else {
        /* Section header: byte-order magic, version 1.0, unknown length. */
        uint32_t shb[7] = {0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0xffffffff, 0xffffffff, 28};
        out_put(o, shb, 28);
        for (int i = 0; i < npts; i++) {
            size_t nl = strlen(pts[i].name);
            uint32_t blen = 16 + 4 + (uint32_t)((nl + 3) / 4 * 4) + 4 + 4 + 4 + 4;
            uint8_t tsresol = 9;
            put32(o, 1);
            put32(o, blen);
            put16(o, (uint16_t)pts[i].linktype);
            put16(o, 0);
            /* libpcap refuses a section whose interfaces differ in
             * snapshot length, so every IDB carries the largest. */
            put32(o, snap);
            ng_option(o, 2, pts[i].name, (uint16_t)nl); /* if_name */
            ng_option(o, 9, &tsresol, 1);               /* if_tsresol: nanoseconds */
            put32(o, 0);                                 /* opt_endofopt */
            put32(o, blen);
        }
    }
    *out = o;
    return 0;
}

int qry_out_packet(qry_out_t *o, const struct qry_pkt *p)
{
    static const uint8_t zero[4];
    if (o->format == QRY_PCAP) {
        uint32_t h[4] = {p->sec, p->frac, p->caplen, p->len};
        out_put(o, h, 16);
        out_put(o, p->data, p->caplen);
    } else {
        uint64_t ts = (uint64_t)p->sec * 1000000000ULL + p->frac;
        uint32_t pad = (4 - p->caplen % 4) % 4;
        uint32_t blen = 32 + p->caplen + pad;
        uint32_t h[7] = {6, blen, (uint32_t)p->point, (uint32_t)(ts >> 32), (uint32_t)ts, p->caplen,
                         p->len};
        out_put(o, h, 28);
        out_put(o, p->data, p->caplen);
        out_put(o, zero, pad);
        put32(o, blen);
    }
    return o->failed ? RW_EIO : 0;
}

int qry_out_flush(qry_out_t *o)
{
    out_flush(o);
    return o->failed ? RW_EIO : 0;
}

int qry_out_close(qry_out_t *o)
{
    int rc;
    if (!o)
        return 0;
    out_flush(o);
    rc = o->failed ? RW_EIO : 0;
    free(o->buf);
    free(o);
    return rc;
}

int qry_out_losses(qry_out_t *o, const qry_t *q)
{
    size_t n, more;
    const struct qry_loss *l = qry_losses(q, &n, &more);
    char text[RW_ERRSZ];
    if (o->format != QRY_PCAPNG)
        return o->failed ? RW_EIO : 0;
    /* An Interface Statistics Block carries nothing but its comment: every
     * pcapng reader knows the block type, and those that do not show
     * comments skip it. Its time is when the answer was written. */
    for (size_t i = 0; i < n; i++) {
        qry_loss_desc(&l[i], text, sizeof text);
        if (i + 1 == n && more) {
            size_t len = strlen(text);
            snprintf(text + len, sizeof text - len, "; and %zu more damaged ranges", more);
        }
        uint16_t tl = (uint16_t)strlen(text);
        uint64_t now = (uint64_t)rw_now_ns();
        uint32_t blen = 20 + 4 + (uint32_t)((tl + 3) / 4 * 4) + 4 + 4;
        uint32_t h[5] = {5, blen, (uint32_t)l[i].point, (uint32_t)(now >> 32), (uint32_t)now};
        out_put(o, h, sizeof h);
        ng_option(o, 1, text, tl); /* opt_comment */
        put32(o, 0);               /* opt_endofopt */
        put32(o, blen);
    }
    return o->failed ? RW_EIO : 0;
}
