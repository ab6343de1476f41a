/* index_int.h -- private helpers shared by the files of index/. */
#ifndef IDX_INDEX_INT_H
#define IDX_INDEX_INT_H

#include <rocksdb/c.h>

#include "index/index.h"

/* Get key into buf (up to bufsz bytes; *vlen gets the full length).
 * Returns 1 if found, 0 if not, negative on error. */
int idx_get_raw(idx_t *ix, const uint8_t *key, size_t klen, uint8_t *buf, size_t bufsz,
                size_t *vlen, char *err);
int idx_write_batch(idx_t *ix, rocksdb_writebatch_t *b, int sync, char *err);
rocksdb_iterator_t *idx_iter(idx_t *ix);
int idx_iter_status(rocksdb_iterator_t *it, char *err);
/* Encoders; v must have room for 64 + path bytes / 29 + 10 * IDX_CHUNK bytes. */
size_t idx_seg_encode(const struct idx_seg *s, uint8_t *v);
size_t idx_chunk_encode(const struct idx_chunk *c, uint8_t *v);
uint64_t idx_next_seg_id(idx_t *ix);
/* A posting of n ascending distinct ordinals in CRoaring's portable format
 * (no run containers), without building a bitmap: its size, and the
 * encoding into out (that many bytes). */
size_t idx_posting_size(const uint32_t *v, size_t n);
size_t idx_posting_encode(const uint32_t *v, size_t n, uint8_t *out);

#endif
