/* ident.c -- subscriber identities in the index (man/rewind-archive.5,
 * K17 and K18): who held which address or prefix over [start, end), by
 * user (I keys) and by address (J keys), written by the archive's writer
 * from RADIUS accounting and the identities API (intercept/ident.c). */
#include <stdlib.h>
#include <string.h>

#include "index/index_int.h"

#define BIAS 0x8000000000000000ull /* i64 times as u64 that sort as numbers */

static size_t put_str(uint8_t *v, const char *s)
{
    size_t n = strlen(s);
    rw_put_be16(v, (uint16_t)n);
    memcpy(v + 2, s, n);
    return 2 + n;
}

static int get_str(const uint8_t *v, size_t vl, size_t *at, char *out, size_t cap)
{
    if (*at + 2 > vl)
        return -1;
    size_t n = rw_get_be16(v + *at);
    if (*at + 2 + n > vl || n >= cap)
        return -1;
    memcpy(out, v + *at + 2, n);
    out[n] = 0;
    *at += 2 + n;
    return 0;
}

/* 'I' user 0x00 start(8) family(1) addr(16) plen(1) */
static size_t ikey(const struct idx_ident *r, uint8_t *k)
{
    size_t ul = strlen(r->user), n = 0;
    k[n++] = 'I';
    memcpy(k + n, r->user, ul);
    n += ul;
    k[n++] = 0;
    rw_put_be64(k + n, (uint64_t)r->start ^ BIAS);
    n += 8;
    k[n++] = r->family;
    memcpy(k + n, r->addr, 16);
    n += 16;
    k[n++] = r->plen;
    return n;
}

/* 'J' family(1) addr(16) plen(1) start(8) user */
static size_t jkey(const struct idx_ident *r, uint8_t *k)
{
    size_t n = 0, ul = strlen(r->user);
    k[n++] = 'J';
    k[n++] = r->family;
    memcpy(k + n, r->addr, 16);
    n += 16;
    k[n++] = r->plen;
    rw_put_be64(k + n, (uint64_t)r->start ^ BIAS);
    n += 8;
    memcpy(k + n, r->user, ul);
    return n + ul;
}

int idx_ident_put(idx_t *ix, const struct idx_ident *r, int sync, char *err)
{
    uint8_t k[200], j[200], v[512];
    size_t n = 0;
    if (!r->user[0] || strlen(r->user) >= sizeof r->user || memchr(r->user, 0, strlen(r->user)) ||
        (r->family != 4 && r->family != 6) || r->plen > (r->family == 4 ? 32 : 128))
        return rw_err(err, RW_EINPUT, "identity record: bad user, family or prefix length");
    v[n++] = 1;
    rw_put_be64(v + n, (uint64_t)r->end);
    n += 8;
    rw_put_be16(v + n, r->port_lo);
    rw_put_be16(v + n + 2, r->port_hi);
    n += 4;
    n += put_str(v + n, r->session);
    n += put_str(v + n, r->station);
    n += put_str(v + n, r->source);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)k, ikey(r, k), (const char *)v, n);
    rocksdb_writebatch_put(b, (const char *)j, jkey(r, j), "", 0);
    int rc = idx_write_batch(ix, b, sync, err);
    rocksdb_writebatch_destroy(b);
    return rc < 0 ? rw_errctx(err, rc, "writing the identity of %s", r->user) : 0;
}

static int decode(const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                  struct idx_ident *r)
{
    const uint8_t *z = memchr(k + 1, 0, kl - 1);
    size_t at = 13;
    memset(r, 0, sizeof *r);
    if (!z || (size_t)(z - k - 1) >= sizeof r->user || kl != (size_t)(z - k) + 1 + 8 + 1 + 16 + 1)
        return -1;
    memcpy(r->user, k + 1, (size_t)(z - k - 1));
    r->start = (int64_t)(rw_get_be64(z + 1) ^ BIAS);
    r->family = z[9];
    memcpy(r->addr, z + 10, 16);
    r->plen = z[26];
    if (vl < 13 || v[0] != 1 || (r->family != 4 && r->family != 6))
        return -1;
    r->end = (int64_t)rw_get_be64(v + 1);
    r->port_lo = rw_get_be16(v + 9);
    r->port_hi = rw_get_be16(v + 11);
    if (get_str(v, vl, &at, r->session, sizeof r->session) < 0 ||
        get_str(v, vl, &at, r->station, sizeof r->station) < 0 ||
        get_str(v, vl, &at, r->source, sizeof r->source) < 0)
        return -1;
    return 0;
}

int idx_ident_list(idx_t *ix, const char *user, struct idx_ident **out, size_t *n, char *err)
{
    uint8_t pre[200];
    size_t pl = user ? strlen(user) : 0, cnt = 0, cap = 0;
    struct idx_ident *arr = NULL;
    int rc = 0;
    *out = NULL;
    *n = 0;
    if (pl + 2 > sizeof pre)
        return rw_err(err, RW_EINPUT, "user name too long");
    pre[0] = 'I';
    memcpy(pre + 1, user ? user : "", pl);
    pre[pl + 1] = 0;
    pl = user ? pl + 2 : 1; /* every user: the kind byte alone */
    rocksdb_iterator_t *it = idx_iter(ix);
    for (rocksdb_iter_seek(it, (const char *)pre, pl); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl < pl || memcmp(k, pre, pl))
            break;
        if (cnt == cap) {
            struct idx_ident *na = realloc(arr, (cap = cap ? cap * 2 : 16) * sizeof *arr);
            if (!na) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                break;
            }
            arr = na;
        }
        if (decode(k, kl, v, vl, &arr[cnt]) < 0) {
            rc = rw_err(err, RW_ECORRUPT, "index: malformed identity record%s%s",
                        user ? " of " : "", user ? user : "");
            break;
        }
        cnt++;
    }
    if (rc == 0)
        rc = idx_iter_status(it, err);
    rocksdb_iter_destroy(it);
    if (rc < 0) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

int idx_ident_holders(idx_t *ix, int family, const uint8_t addr[16], int plen,
                      struct idx_ident **out, size_t *n, char *err)
{
    uint8_t pre[19], k[200], v[600];
    size_t cnt = 0, cap = 0;
    struct idx_ident *arr = NULL;
    int rc = 0;
    *out = NULL;
    *n = 0;
    pre[0] = 'J';
    pre[1] = (uint8_t)family;
    memcpy(pre + 2, addr, 16);
    pre[18] = (uint8_t)plen;
    rocksdb_iterator_t *it = idx_iter(ix);
    for (rocksdb_iter_seek(it, (const char *)pre, sizeof pre); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t jl, vl;
        const uint8_t *j = (const uint8_t *)rocksdb_iter_key(it, &jl);
        if (jl < sizeof pre || memcmp(j, pre, sizeof pre))
            break;
        if (jl < 27 || jl - 27 >= sizeof arr->user) {
            rc = rw_err(err, RW_ECORRUPT, "index: malformed identity address record");
            break;
        }
        /* The I key of the same record: user, start, family, addr, plen. */
        size_t ul = jl - 27, kl = 0;
        k[kl++] = 'I';
        memcpy(k + kl, j + 27, ul);
        kl += ul;
        k[kl++] = 0;
        memcpy(k + kl, j + 19, 8);
        kl += 8;
        memcpy(k + kl, j + 1, 18);
        kl += 18;
        if (cnt == cap) {
            struct idx_ident *na = realloc(arr, (cap = cap ? cap * 2 : 8) * sizeof *arr);
            if (!na) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                break;
            }
            arr = na;
        }
        int got = idx_get_raw(ix, k, kl, v, sizeof v, &vl, err);
        if (got < 0) {
            rc = got;
            break;
        }
        if (got == 0 || vl > sizeof v || decode(k, kl, v, vl, &arr[cnt]) < 0) {
            rc = rw_err(err, RW_ECORRUPT, "index: identity address record without its record");
            break;
        }
        cnt++;
    }
    if (rc == 0)
        rc = idx_iter_status(it, err);
    rocksdb_iter_destroy(it);
    if (rc < 0) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}
