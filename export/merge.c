/* merge.c -- several sensors' pcapng answers into one, by timestamp, with
 * one interface per sensor:point. The streams come from the network: every
 * length is checked before it is used. */
#include "export/export.h"

#include <stdlib.h>
#include <string.h>

#define MAX_BLOCK (64u << 20)
#define MAX_IFS 256

struct in {
    const struct ex_merge_in *src;
    uint8_t *blk;      /* the block read last */
    uint32_t type, len;
    int nifs;
    int map[MAX_IFS];    /* its interface -> output interface */
    int64_t res[MAX_IFS]; /* ns per tick, or 0 for finer than 1 ns */
    int64_t resdiv[MAX_IFS];
    int eof;
    int held;   /* blk holds a block not handled yet */
    int64_t ts; /* of the head EPB */
};

struct oif {
    char name[65 + 65 + 2];
    uint16_t linktype;
    uint32_t snaplen;
};

static uint32_t le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint16_t le16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }

/* Read the next block into x->blk: 1, or 0 at a clean end. */
static int next_block(struct in *x, char *err)
{
    uint8_t h[8];
    size_t got = fread(h, 1, 8, x->src->f);
    if (got == 0) {
        x->eof = 1;
        return 0;
    }
    if (got != 8)
        return rw_err(err, RW_EINPUT, "sensor %s: the answer ends inside a block header",
                      x->src->sensor);
    x->type = le32(h);
    x->len = le32(h + 4);
    if (x->type == 0x0A0D0D0A && x->len == 0x0A0D0D0A)
        return rw_err(err, RW_EINPUT, "sensor %s: the answer is not little-endian pcapng",
                      x->src->sensor);
    if (x->len < 12 || x->len % 4 || x->len > MAX_BLOCK)
        return rw_err(err, RW_EINPUT, "sensor %s: a pcapng block of length %u", x->src->sensor,
                      x->len);
    uint8_t *b = realloc(x->blk, x->len);
    if (!b)
        return rw_err(err, RW_ENOMEM, "out of memory");
    x->blk = b;
    memcpy(b, h, 8);
    if (fread(b + 8, 1, x->len - 8, x->src->f) != x->len - 8)
        return rw_err(err, RW_EINPUT, "sensor %s: the answer ends inside a block",
                      x->src->sensor);
    if (le32(b + x->len - 4) != x->len)
        return rw_err(err, RW_EINPUT, "sensor %s: a pcapng block's trailing length differs",
                      x->src->sensor);
    return 1;
}

/* The options of an IDB: name and time resolution. */
static int idb_parse(struct in *x, char *name, size_t nn, int64_t *res, int64_t *div, char *err)
{
    const uint8_t *p = x->blk + 16, *end = x->blk + x->len - 4;
    *res = 1000; /* pcapng's default: microseconds */
    *div = 1;
    name[0] = 0;
    while (p + 4 <= end) {
        uint16_t code = le16(p), l = le16(p + 2);
        uint32_t padded = (uint32_t)((l + 3u) & ~3u);
        if (code == 0)
            break;
        if ((size_t)(end - p - 4) < padded)
            return rw_err(err, RW_EINPUT, "sensor %s: an interface option overruns its block",
                          x->src->sensor);
        if (code == 2) {
            size_t k = l < nn - 1 ? l : nn - 1;
            memcpy(name, p + 4, k);
            name[k] = 0;
            name[strcspn(name, ":")] = 0; /* "sensor:point" stays two parts */
        } else if (code == 9 && l == 1) {
            uint8_t v = p[4];
            if (v & 0x80 || v > 18)
                return rw_err(err, RW_EINPUT, "sensor %s: interface time resolution %u is not "
                              "supported", x->src->sensor, v);
            int64_t r = 1;
            if (v <= 9) {
                for (int i = v; i < 9; i++)
                    r *= 10;
                *res = r;
                *div = 1;
            } else {
                for (int i = 9; i < v; i++)
                    r *= 10;
                *res = 1;
                *div = r;
            }
        }
        p += 4 + padded;
    }
    return 0;
}

static int put(FILE *out, const void *p, size_t n) { return fwrite(p, 1, n, out) == n ? 0 : -1; }
static int put32(FILE *out, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    return put(out, b, 4);
}
static int put_opt(FILE *out, uint16_t code, const void *v, uint16_t l)
{
    static const uint8_t zero[4];
    uint8_t h[4] = {(uint8_t)code, (uint8_t)(code >> 8), (uint8_t)l, (uint8_t)(l >> 8)};
    return put(out, h, 4) | put(out, v, l) | put(out, zero, (4 - l % 4) % 4);
}

/* Read ahead to the next EPB (handing ISBs on to out), setting x->ts. */
static int advance(struct in *x, FILE *out, int started, char *err)
{
    int rc;
    for (;;) {
        if (x->held)
            x->held = 0;
        else if ((rc = next_block(x, err)) <= 0)
            return rc;
        if (x->type == 6) {
            if (x->len < 32)
                return rw_err(err, RW_EINPUT, "sensor %s: a short packet block", x->src->sensor);
            uint32_t ifid = le32(x->blk + 8), cap = le32(x->blk + 20);
            if (ifid >= (uint32_t)x->nifs)
                return rw_err(err, RW_EINPUT, "sensor %s: a packet of interface %u, which was "
                              "not described", x->src->sensor, ifid);
            if (cap > x->len - 32)
                return rw_err(err, RW_EINPUT, "sensor %s: a packet longer than its block",
                              x->src->sensor);
            uint64_t t = (uint64_t)le32(x->blk + 12) << 32 | le32(x->blk + 16);
            x->ts = (int64_t)(t * (uint64_t)x->res[ifid] / (uint64_t)x->resdiv[ifid]);
            return 1;
        }
        if (x->type == 1 || x->type == 0x0A0D0D0A)
            return rw_err(err, RW_EINPUT, "sensor %s: %s after its packets: one section with its "
                          "interfaces first is expected", x->src->sensor,
                          x->type == 1 ? "an interface" : "a second section");
        if (x->type == 5 && started && x->len >= 20) { /* a note: its interface mapped */
            uint32_t ifid = le32(x->blk + 8);
            if (ifid < (uint32_t)x->nifs) {
                uint32_t m = (uint32_t)x->map[ifid];
                memcpy(x->blk + 8, &m, 4); /* little-endian host */
                if (put(out, x->blk, x->len) < 0)
                    return rw_err(err, RW_EIO, "writing the answer failed");
            }
        }
    }
}

int ex_pcapng_merge(const struct ex_merge_in *src, size_t n, const char *note, FILE *out,
                    uint64_t *packets, char *err)
{
    struct in *xs = calloc(n ? n : 1, sizeof *xs);
    struct oif *oifs = calloc(MAX_IFS, sizeof *oifs);
    int noif = 0, rc = 0;
    *packets = 0;
    if (!xs || !oifs) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    /* Each stream: its section header, then its interfaces. */
    for (size_t i = 0; i < n; i++) {
        struct in *x = &xs[i];
        x->src = &src[i];
        if ((rc = next_block(x, err)) < 0)
            goto out;
        if (rc == 0 || x->type != 0x0A0D0D0A || x->len < 28 || le32(x->blk + 8) != 0x1A2B3C4D) {
            rc = rw_err(err, RW_EINPUT, "sensor %s: the answer is not little-endian pcapng",
                        x->src->sensor);
            goto out;
        }
        for (;;) {
            if ((rc = next_block(x, err)) < 0)
                goto out;
            if (rc == 0 || x->type != 1)
                break;
            if (x->len < 20 || x->nifs == MAX_IFS || noif == MAX_IFS) {
                rc = rw_err(err, RW_EINPUT, "sensor %s: a malformed interface, or too many",
                            x->src->sensor);
                goto out;
            }
            char pname[65];
            int64_t res, div;
            if ((rc = idb_parse(x, pname, sizeof pname, &res, &div, err)) < 0)
                goto out;
            struct oif *o = &oifs[noif];
            if (!pname[0])
                snprintf(pname, sizeof pname, "if%d", x->nifs);
            snprintf(o->name, sizeof o->name, "%s:%s", x->src->sensor, pname);
            o->linktype = le16(x->blk + 8);
            o->snaplen = le32(x->blk + 12);
            x->res[x->nifs] = res;
            x->resdiv[x->nifs] = div;
            x->map[x->nifs++] = noif++;
        }
        rc = 0;
        x->held = !x->eof; /* the first block after the interfaces */
    }
    if (note && *note && noif == 0) { /* the note needs an interface to hang on */
        snprintf(oifs[0].name, sizeof oifs[0].name, "rewind:none");
        oifs[0].linktype = 1;
        oifs[0].snaplen = 262144;
        noif = 1;
    }
    /* The output's section and interfaces. */
    uint32_t shb[7] = {0x0A0D0D0A, 28, 0x1A2B3C4D, 1, 0xffffffff, 0xffffffff, 28};
    int bad = put(out, shb, sizeof shb);
    for (int k = 0; k < noif; k++) {
        uint16_t nl = (uint16_t)strlen(oifs[k].name);
        uint32_t blen = 16 + 4 + ((nl + 3u) & ~3u) + 8 + 4 + 4;
        uint8_t res = 9;
        bad |= put32(out, 1) | put32(out, blen) |
               put32(out, oifs[k].linktype) | put32(out, oifs[k].snaplen) |
               put_opt(out, 2, oifs[k].name, nl) | put_opt(out, 9, &res, 1) | put32(out, 0) |
               put32(out, blen);
    }
    if (bad) {
        rc = rw_err(err, RW_EIO, "writing the answer failed");
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (!xs[i].eof && (rc = advance(&xs[i], out, 1, err)) < 0)
            goto out;
    for (;;) {
        struct in *best = NULL;
        for (size_t i = 0; i < n; i++)
            if (!xs[i].eof && (!best || xs[i].ts <= best->ts)) /* ties: the later, as mergecap */
                best = &xs[i];
        if (!best)
            break;
        /* The packet block, its interface and time rewritten. */
        uint8_t *b = best->blk;
        uint32_t ifid = le32(b + 8), m = (uint32_t)best->map[ifid];
        uint64_t t = (uint64_t)best->ts;
        uint32_t hdr[3] = {m, (uint32_t)(t >> 32), (uint32_t)t};
        memcpy(b + 8, hdr, 12); /* little-endian host */
        if (put(out, b, best->len) < 0) {
            rc = rw_err(err, RW_EIO, "writing the answer failed");
            goto out;
        }
        (*packets)++;
        rc = advance(best, out, 1, err);
        if (rc < 0)
            goto out;
        rc = 0;
    }
    if (note && *note) {
        uint16_t tl = (uint16_t)strnlen(note, 60000);
        uint64_t now = (uint64_t)rw_now_ns();
        uint32_t blen = 20 + 4 + ((tl + 3u) & ~3u) + 4 + 4;
        uint32_t h[5] = {5, blen, 0, (uint32_t)(now >> 32), (uint32_t)now};
        if (put(out, h, sizeof h) | put_opt(out, 1, note, tl) | put32(out, 0) | put32(out, blen)) {
            rc = rw_err(err, RW_EIO, "writing the answer failed");
            goto out;
        }
    }
    if (fflush(out) != 0)
        rc = rw_err(err, RW_EIO, "writing the answer failed");
out:
    for (size_t i = 0; xs && i < n; i++)
        free(xs[i].blk);
    free(xs);
    free(oifs);
    return rc;
}
