/* flow.c -- Community ID v1 for flow records (the "1:" hash of Zeek and
 * Suricata), so IDS alerts can be joined to the archive's flows. */
#include "index/index.h"

#include <pthread.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/sha.h>

/* OpenSSL 3's one-shot SHA1() looks the algorithm up on every call (about
 * 1.4 us here, against 0.3 us for the hash itself), and a capture computes
 * a Community ID for every flow of every segment: the algorithm is fetched
 * once, and each thread keeps a digest context of its own. */
static EVP_MD *sha1_md;
static pthread_once_t sha1_once = PTHREAD_ONCE_INIT;
static pthread_key_t sha1_key;

static void ctx_free(void *ctx) { EVP_MD_CTX_free(ctx); }

static void sha1_init(void)
{
    sha1_md = EVP_MD_fetch(NULL, "SHA1", NULL);
    if (pthread_key_create(&sha1_key, ctx_free) != 0)
        sha1_md = NULL; /* then SHA1() below, as before */
}

static void sha1(const uint8_t *buf, size_t n, uint8_t md[SHA_DIGEST_LENGTH])
{
    unsigned int len;
    pthread_once(&sha1_once, sha1_init);
    EVP_MD_CTX *ctx = sha1_md ? pthread_getspecific(sha1_key) : NULL;
    if (sha1_md && !ctx && (ctx = EVP_MD_CTX_new()) && pthread_setspecific(sha1_key, ctx) != 0) {
        EVP_MD_CTX_free(ctx);
        ctx = NULL;
    }
    if (!ctx || !EVP_DigestInit_ex(ctx, sha1_md, NULL) || !EVP_DigestUpdate(ctx, buf, n) ||
        !EVP_DigestFinal_ex(ctx, md, &len))
        SHA1(buf, n, md);
}

void idx_community_sha1(const struct idx_flow *f, uint8_t md[20])
{
    uint8_t buf[2 + 16 + 16 + 4 + 4];
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
    sha1(buf, n, md);
}

void idx_community_fmt(const uint8_t md[20], char out[40])
{
    memcpy(out, "1:", 2);
    EVP_EncodeBlock((unsigned char *)out + 2, md, SHA_DIGEST_LENGTH);
}

void idx_community_id(const struct idx_flow *f, char out[40])
{
    uint8_t md[SHA_DIGEST_LENGTH];
    idx_community_sha1(f, md);
    idx_community_fmt(md, out);
}
