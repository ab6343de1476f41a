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
/* A writer's large batch as a table file of its own, ingested into the
 * index instead of written through the write-ahead log and a memtable:
 * keys must be added in ascending order, each once. idx_sst_open creates
 * DIR/index/IDX_SST_PREFIX<tag> (path gets its name; one file in flight per
 * tag) and returns NULL with err on failure. idx_sst_ingest finishes and
 * syncs the file and adds it to the index atomically and durably (its
 * records are then newer than every earlier write), and removes the file;
 * idx_sst_discard drops it. Both free sw. after_log: records of the same keys
 * may have been written through the log since the last ingest (see
 * index.c, sst_prepare). */
#define IDX_SST_PREFIX "rewind-batch-"
rocksdb_sstfilewriter_t *idx_sst_open(idx_t *ix, uint64_t tag, char *path, size_t pathsz,
                                      char *err);
int idx_sst_ingest(idx_t *ix, rocksdb_sstfilewriter_t *sw, const char *path, int after_log,
                   char *err);
void idx_sst_discard(rocksdb_sstfilewriter_t *sw, const char *path);
/* idx_sst_discard after adding a record failed with RocksDB's error rerr
 * (freed): that error, as RW_ENOSPC, RW_EIO... in err. */
int idx_sst_failed(rocksdb_sstfilewriter_t *sw, const char *path, char *rerr, char *err);
int idx_iter_status(rocksdb_iterator_t *it, char *err);
/* Encoders; v must have room for 64 + path bytes / 29 + 10 * IDX_CHUNK bytes. */
size_t idx_seg_encode(const struct idx_seg *s, uint8_t *v);
size_t idx_chunk_encode(const struct idx_chunk *c, uint8_t *v);
uint64_t idx_next_seg_id(idx_t *ix);
/* idx_community_id in two steps: the SHA-1 of the flow's tuple, which a
 * writer keeps with the flow (20 bytes rather than 40), and its text. */
void idx_community_sha1(const struct idx_flow *f, uint8_t md[20]);
void idx_community_fmt(const uint8_t md[20], char out[40]);
/* A posting of n ascending distinct ordinals in CRoaring's portable format
 * (no run containers), without building a bitmap: its size, and the
 * encoding into out (that many bytes). */
size_t idx_posting_size(const uint32_t *v, size_t n);
size_t idx_posting_encode(const uint32_t *v, size_t n, uint8_t *out);

#endif
