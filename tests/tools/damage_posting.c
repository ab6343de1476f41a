/* damage_posting.c -- test tool: damage one posting of an archive's index,
 * as the end-to-end tests need (tests/e2e/test_damaged_index.py).
 *
 * usage: damage_posting [--merge] [--last] DIR KIND [VALUEHEX]
 *
 * Finds the first (--last: the last) posting key of term kind KIND (decimal
 * or 0x..; man/rewind-archive.5, K6), with value VALUEHEX when given, and
 * replaces its value with bytes that are no Roaring bitmap; with --merge it
 * adds those bytes as a merge operand instead, which the index's merge
 * operator folds into the damage marker. Prints "SEG KIND VALUEHEX" of the
 * key. The archive must not be open by a writer (rewindd, import). It goes
 * through the index's own open and merge operator (index_int.h) so that the
 * damage is what a real archive would hold. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rw.h"
#include "index/index.h"
#include "index/index_int.h"

static const char garbage[] = "\x01\x02 damaged by damage_posting";

static int usage(void)
{
    fprintf(stderr, "usage: damage_posting [--merge] [--last] DIR KIND [VALUEHEX]\n");
    return 2;
}

int main(int argc, char **argv)
{
    int merge = 0, last = 0, i = 1, rc;
    char err[RW_ERRSZ];
    uint8_t want[16], key[32];
    size_t wantlen = 0, kl = 0;
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (!strcmp(argv[i], "--merge"))
            merge = 1;
        else if (!strcmp(argv[i], "--last"))
            last = 1;
        else
            return usage();
    }
    if (argc - i < 2 || argc - i > 3)
        return usage();
    const char *dir = argv[i];
    int kind = (int)strtol(argv[i + 1], NULL, 0);
    if (argc - i == 3) {
        const char *h = argv[i + 2];
        for (; h[0] && h[1] && wantlen < sizeof want; h += 2) {
            if (rw_hexval(h[0]) < 0 || rw_hexval(h[1]) < 0)
                return usage();
            want[wantlen++] = (uint8_t)(rw_hexval(h[0]) << 4 | rw_hexval(h[1]));
        }
        if (h[0])
            return usage();
    }
    idx_t *ix;
    if ((rc = idx_open(dir, IDX_WRITE, &ix, err)) < 0) {
        fprintf(stderr, "damage_posting: %s\n", err);
        return 1;
    }
    rocksdb_iterator_t *it = idx_iter(ix);
    uint8_t prefix[2] = {'P', (uint8_t)kind};
    for (rocksdb_iter_seek(it, (const char *)prefix, 2); rocksdb_iter_valid(it);
         rocksdb_iter_next(it)) {
        size_t n;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &n);
        if (n < 10 || memcmp(k, prefix, 2) != 0)
            break;
        if (wantlen && (n != 10 + wantlen || memcmp(k + 2, want, wantlen) != 0))
            continue;
        memcpy(key, k, n < sizeof key ? n : sizeof key);
        kl = n;
        if (!last)
            break;
    }
    rc = idx_iter_status(it, err);
    rocksdb_iter_destroy(it);
    if (rc == 0 && kl == 0)
        rc = rw_err(err, RW_EINPUT, "no posting of kind %d with that value", kind);
    if (rc == 0 && kl > sizeof key)
        rc = rw_err(err, RW_EINPUT, "posting key of %zu bytes", kl);
    if (rc == 0) {
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        if (merge)
            rocksdb_writebatch_merge(b, (const char *)key, kl, garbage, sizeof garbage - 1);
        else
            rocksdb_writebatch_put(b, (const char *)key, kl, garbage, sizeof garbage - 1);
        rc = idx_write_batch(ix, b, 1, err);
        rocksdb_writebatch_destroy(b);
    }
    idx_close(ix);
    if (rc < 0) {
        fprintf(stderr, "damage_posting: %s\n", err);
        return 1;
    }
    printf("%llu %d ", (unsigned long long)rw_get_be64(key + kl - 8), kind);
    for (size_t j = 2; j < kl - 8; j++)
        printf("%02x", key[j]);
    printf("\n");
    return 0;
}
