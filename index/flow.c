/* flow.c -- Community ID v1 for flow records (the "1:" hash of Zeek and
 * Suricata), so IDS alerts can be joined to the archive's flows. */
#include "index/index.h"

#include <string.h>

/* SHA-1 (FIPS 180-4) of one short message, and base64 of the digest. Kept
 * here rather than taken from libcrypto: that library's four thousand
 * symbol relocations were a large part of every command's start-up, and
 * Community ID needs only this. */
static uint32_t rol32(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1_block(uint32_t h[5], const uint8_t *p)
{
    uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
    for (int i = 0; i < 16; i++)
        w[i] = rw_get_be32(p + 4 * i);
    for (int i = 16; i < 80; i++)
        w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    for (int i = 0; i < 80; i++) {
        uint32_t f, k;
        if (i < 20) {
            f = (b & c) | (~b & d);
            k = 0x5a827999;
        } else if (i < 40) {
            f = b ^ c ^ d;
            k = 0x6ed9eba1;
        } else if (i < 60) {
            f = (b & c) | (b & d) | (c & d);
            k = 0x8f1bbcdc;
        } else {
            f = b ^ c ^ d;
            k = 0xca62c1d6;
        }
        uint32_t t = rol32(a, 5) + f + e + k + w[i];
        e = d;
        d = c;
        c = rol32(b, 30);
        b = a;
        a = t;
    }
    h[0] += a;
    h[1] += b;
    h[2] += c;
    h[3] += d;
    h[4] += e;
}

static void sha1(const uint8_t *msg, size_t n, uint8_t md[20])
{
    uint32_t h[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
    uint8_t blk[64];
    size_t i = 0;
    for (; n - i >= 64; i += 64)
        sha1_block(h, msg + i);
    size_t r = n - i;
    memset(blk, 0, sizeof blk);
    memcpy(blk, msg + i, r);
    blk[r] = 0x80;
    if (r >= 56) {
        sha1_block(h, blk);
        memset(blk, 0, sizeof blk);
    }
    rw_put_be64(blk + 56, (uint64_t)n * 8);
    sha1_block(h, blk);
    for (int j = 0; j < 5; j++)
        rw_put_be32(md + 4 * j, h[j]);
}

/* Standard base64 with padding; writes 4 * ceil(n / 3) characters and a NUL. */
static void base64(const uint8_t *in, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)in[i + 1] << 8;
        if (i + 2 < n)
            v |= in[i + 2];
        out[o++] = tab[v >> 18 & 63];
        out[o++] = tab[v >> 12 & 63];
        out[o++] = i + 1 < n ? tab[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? tab[v & 63] : '=';
    }
    out[o] = 0;
}

/* ICMP types that have a reply counterpart: the pair then orders like ports. */
static int icmp_counterpart(int v6, int type, int *other)
{
    static const int map4[][2] = {{8, 0}, {0, 8}, {13, 14}, {14, 13}, {15, 16}, {16, 15},
                                  {10, 9}, {9, 10}, {17, 18}, {18, 17}};
    static const int map6[][2] = {{128, 129}, {129, 128}, {133, 134}, {134, 133}, {135, 136},
                                  {136, 135}, {130, 131}, {131, 130}, {144, 145}, {145, 144},
                                  {146, 147}, {147, 146}, {139, 140}, {140, 139}};
    const int(*m)[2] = v6 ? map6 : map4;
    size_t n = v6 ? sizeof map6 / sizeof map6[0] : sizeof map4 / sizeof map4[0];
    for (size_t i = 0; i < n; i++) {
        if (m[i][0] == type) {
            *other = m[i][1];
            return 1;
        }
    }
    return 0;
}

void idx_community_id(const struct idx_flow *f, char out[40])
{
    uint8_t buf[2 + 16 + 16 + 4 + 4], md[20];
    size_t alen = f->family == 4 ? 4 : 16, n = 0;
    const uint8_t *sa = f->src, *da = f->dst;
    uint16_t sp = f->sport, dp = f->dport;
    int one_way = 0, ports = f->has_ports;
    if (f->proto == 1 || f->proto == 58) {
        int other;
        ports = 1;
        if (icmp_counterpart(f->proto == 58, f->sport, &other))
            dp = (uint16_t)other;
        else
            one_way = 1;
    }
    int c = memcmp(sa, da, alen);
    if (!one_way && (c > 0 || (c == 0 && sp > dp))) {
        const uint8_t *t = sa;
        uint16_t tp = sp;
        sa = da;
        da = t;
        sp = dp;
        dp = tp;
    }
    buf[n++] = 0; /* seed 0, big-endian */
    buf[n++] = 0;
    memcpy(buf + n, sa, alen);
    n += alen;
    memcpy(buf + n, da, alen);
    n += alen;
    buf[n++] = f->proto;
    buf[n++] = 0;
    if (ports) {
        rw_put_be16(buf + n, sp);
        rw_put_be16(buf + n + 2, dp);
        n += 4;
    }
    sha1(buf, n, md);
    memcpy(out, "1:", 2);
    base64(md, sizeof md, out + 2); /* 28 characters and a NUL */
}
