/* flow.c -- Community ID v1 for flow records (the "1:" hash of Zeek and
 * Suricata), so IDS alerts can be joined to the archive's flows. */
#include "index/index.h"

#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

void idx_community_id(const struct idx_flow *f, char out[40])
{
    uint8_t buf[2 + 16 + 16 + 4 + 4], md[SHA_DIGEST_LENGTH];
    size_t alen = f->family == 4 ? 4 : 16, n = 0;
    const uint8_t *sa = f->src, *da = f->dst;
    uint16_t sp = f->sport, dp = f->dport;
    int one_way = 0, ports = f->has_ports;
    if (f->proto == 1 || f->proto == 58) {
        int other;
        ports = 1;
        if (idx_icmp_counterpart(f->proto == 58, f->sport, &other))
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
    SHA1(buf, n, md);
    memcpy(out, "1:", 2);
    EVP_EncodeBlock((unsigned char *)out + 2, md, SHA_DIGEST_LENGTH);
}
