/* index.c -- RocksDB-backed archive index: catalogue, postings, locators.
 *
 * Key layout (man/rewind-archive.5 is the authoritative description; all
 * integers big-endian so that key order is numeric order):
 *   'M' name                        meta: "next_seg" u64, "next_point" u32, "format" u32
 *   'N' point-name                  point record
 *   'K' point u32                   drop counters of a point
 *   'S' seg u64                     segment record
 *   'P' kind u8 value seg u64       roaring bitmap (portable format) of ordinals; merge = OR
 *   'L' seg u64 chunk u32           locator chunk: offsets of IDX_CHUNK packets
 *   'F' seg u64 flowhash u64        flow record
 *   'C' point u32 second i64        packets u64, bytes u64 in that second; merge = add
 *   'D' seg u64 lo u64              a damaged range of the segment file: its end, times, state
 */
#include "index/index.h"
#include "index/index_int.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <rocksdb/c.h>

#define FORMAT_VERSION 1

struct idx {
    rocksdb_t *db;
    rocksdb_options_t *opts;
    rocksdb_readoptions_t *ropts;
    rocksdb_writeoptions_t *wopts, *wopts_sync;
    rocksdb_mergeoperator_t *merge;
    rocksdb_block_based_table_options_t *topts;
    rocksdb_cache_t *cache;
    /* table files a writer builds itself (idx_sst_*): no compression (they
     * land in level 0, see per_level), the same table format otherwise */
    rocksdb_options_t *sst_opts;
    rocksdb_envoptions_t *envopts;
    rocksdb_ingestexternalfileoptions_t *ingopts;
    int mode;
    char dir[1024];
    char secdir[256];
    pthread_mutex_t mu; /* id allocation and point creation (writer threads) */
    pthread_rwlock_t tomb_lock;
    roaring_bitmap_t *tombs; /* deleted segment ids, for the compaction filter */
    rocksdb_compactionfilter_t *cfilter;
    uint64_t next_seg;
    uint32_t next_point;
};


/* The size of a memtable, and the space RocksDB preallocates for a new
 * log and a new manifest (see idx_open). */
#define IDX_MEMTABLE (4u << 20)
#define IDX_LOG_PREALLOC (1u << 20)
#define IDX_MANIFEST_PREALLOC (64u << 10)
/* Level 1's size and a table file's (see idx_open) */
#define IDX_LEVEL1_BYTES (64ULL << 20)
#define IDX_FILE_BYTES (16ULL << 20)
/* ---------- merge operator: OR for postings, add for counters ---------- */

/* A posting value or operand as a bitmap, or NULL unless its bytes are
 * exactly one portable bitmap (rule 8: untrusted bytes, bounded reads). The
 * one test of "damaged" that the merge operator, the readers and verify
 * share. The size walk comes first because this CRoaring's deserializer
 * prints to stderr about every malformed input, and library code must not
 * print (nor fill the daemon's log); the walk reads the same headers with
 * the same bounds, silently. */
static roaring_bitmap_t *posting_decode(const char *v, size_t n)
{
    if (roaring_bitmap_portable_deserialize_size(v, n) != n || n == 0)
        return NULL;
    return roaring_bitmap_portable_deserialize_safe(v, n);
}

/* OR of the base value and the operands. A value or operand that does not
 * decode stood for packets that are now unknown: dropping it would leave a
 * posting that answers with fewer packets than carry the term, which a
 * query must never do. The result is then the damage marker instead, and
 * stays so through every later merge, until 'rewind reindex' rebuilds the
 * key; readers take the marker's segment as wholly a candidate. */
static char *merge_bitmaps(const char *existing, size_t elen, const char *const *ops,
                           const size_t *oplens, int nops, size_t *outlen, unsigned char *ok)
{
    roaring_bitmap_t *acc = NULL; /* the first value decoded, the others ORed in */
    int damaged = 0;
    char *out = NULL;
    for (int i = existing ? -1 : 0; i < nops; i++) {
        roaring_bitmap_t *b = i < 0 ? posting_decode(existing, elen)
                                    : posting_decode(ops[i], oplens[i]);
        if (!b) {
            damaged = 1;
            break;
        }
        if (!acc) {
            acc = b;
            continue;
        }
        roaring_bitmap_or_inplace(acc, b);
        roaring_bitmap_free(b);
    }
    if (!acc && !damaged)
        acc = roaring_bitmap_create();
    if (damaged) {
        *outlen = sizeof IDX_DAMAGED_MARK - 1;
        out = malloc(*outlen);
        if (out)
            memcpy(out, IDX_DAMAGED_MARK, *outlen);
    } else {
        roaring_bitmap_run_optimize(acc);
        *outlen = roaring_bitmap_portable_size_in_bytes(acc);
        out = malloc(*outlen ? *outlen : 1);
        if (out)
            roaring_bitmap_portable_serialize(acc, out);
    }
    *ok = out != NULL;
    idx_bitmap_free(acc);
    return out;
}

static char *merge_counters(const char *existing, size_t elen, const char *const *ops,
                            const size_t *oplens, int nops, size_t *outlen, unsigned char *ok)
{
    uint64_t p = 0, b = 0;
    char *out = malloc(16);
    if (existing && elen == 16) {
        p = rw_get_be64((const uint8_t *)existing);
        b = rw_get_be64((const uint8_t *)existing + 8);
    }
    for (int i = 0; i < nops; i++) {
        if (oplens[i] != 16)
            continue;
        p += rw_get_be64((const uint8_t *)ops[i]);
        b += rw_get_be64((const uint8_t *)ops[i] + 8);
    }
    if (!out) {
        *ok = 0;
        return NULL;
    }
    rw_put_be64((uint8_t *)out, p);
    rw_put_be64((uint8_t *)out + 8, b);
    *outlen = 16;
    *ok = 1;
    return out;
}

static char *merge_full(void *st, const char *key, size_t klen, const char *existing, size_t elen,
                        const char *const *ops, const size_t *oplens, int nops, unsigned char *ok,
                        size_t *outlen)
{
    (void)st;
    if (klen > 0 && key[0] == 'C')
        return merge_counters(existing, elen, ops, oplens, nops, outlen, ok);
    return merge_bitmaps(existing, elen, ops, oplens, nops, outlen, ok);
}

static char *merge_partial(void *st, const char *key, size_t klen, const char *const *ops,
                           const size_t *oplens, int nops, unsigned char *ok, size_t *outlen)
{
    return merge_full(st, key, klen, NULL, 0, ops, oplens, nops, ok, outlen);
}

static void merge_delete(void *st, const char *v, size_t n)
{
    (void)st;
    (void)n;
    free((void *)v);
}

static void merge_destroy(void *st) { (void)st; }

static const char *merge_name(void *st)
{
    (void)st;
    return "rewind.merge.v1";
}

/* ---------- compaction filter: drop postings of deleted segments ---------- */

static unsigned char cfilter_fn(void *st, int level, const char *key, size_t klen,
                                const char *val, size_t vlen, char **nv, size_t *nvlen,
                                unsigned char *changed)
{
    idx_t *ix = st;
    (void)level;
    (void)val;
    (void)vlen;
    (void)nv;
    (void)nvlen;
    *changed = 0;
    if (klen < 10 || key[0] != 'P')
        return 0;
    uint64_t seg = rw_get_be64((const uint8_t *)key + klen - 8);
    if (seg > UINT32_MAX)
        return 0;
    pthread_rwlock_rdlock(&ix->tomb_lock);
    int dead = roaring_bitmap_contains(ix->tombs, (uint32_t)seg);
    pthread_rwlock_unlock(&ix->tomb_lock);
    return (unsigned char)dead;
}

static void cfilter_destroy(void *st) { (void)st; }
static const char *cfilter_name(void *st)
{
    (void)st;
    return "rewind.tombstones.v1";
}

static int load_tombs(idx_t *ix, char *err)
{
    rocksdb_iterator_t *it = idx_iter(ix);
    for (rocksdb_iter_seek(it, "X", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl != 9 || k[0] != 'X')
            break;
        uint64_t seg = rw_get_be64(k + 1);
        if (seg <= UINT32_MAX)
            roaring_bitmap_add(ix->tombs, (uint32_t)seg);
    }
    int rc = idx_iter_status(it, err);
    rocksdb_iter_destroy(it);
    return rc;
}

/* ---------- open / close ---------- */

static int db_err(char *err, char *rerr, const char *what)
{
    int code = RW_EDB;
    if (strstr(rerr, "lock") || strstr(rerr, "Resource temporarily unavailable"))
        code = RW_EBUSY;
    else if (strstr(rerr, "No space left") || strstr(rerr, "NoSpace"))
        code = RW_ENOSPC;
    else if (!strncmp(rerr, "IO error", 8))
        code = RW_EIO;
    else if (strstr(rerr, "Corruption"))
        code = RW_ECORRUPT;
    if (code == RW_ECORRUPT)
        rw_err(err, code, "%s: %s; rebuild the index with 'rewind reindex'", what, rerr);
    else
        rw_err(err, code, "%s: %s", what, rerr);
    free(rerr);
    return code;
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static int load_meta(idx_t *ix, char *err)
{
    uint8_t v[8];
    int rc;
    ix->next_seg = 1;
    ix->next_point = 1;
    if ((rc = idx_get_raw(ix, (const uint8_t *)"Mnext_seg", 9, v, 8, NULL, err)) < 0)
        return rc;
    if (rc == 1)
        ix->next_seg = rw_get_be64(v);
    if ((rc = idx_get_raw(ix, (const uint8_t *)"Mnext_point", 11, v, 4, NULL, err)) < 0)
        return rc;
    if (rc == 1)
        ix->next_point = rw_get_be32(v);
    /* Concurrent writers may commit "next_seg" out of order: the largest
     * segment id in the catalogue is the authority. */
    rocksdb_iterator_t *it = idx_iter(ix);
    rocksdb_iter_seek_for_prev(it, "S\xff\xff\xff\xff\xff\xff\xff\xff", 9);
    if (rocksdb_iter_valid(it)) {
        size_t kl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl == 9 && k[0] == 'S' && rw_get_be64(k + 1) >= ix->next_seg)
            ix->next_seg = rw_get_be64(k + 1) + 1;
    }
    rc = idx_iter_status(it, err);
    rocksdb_iter_destroy(it);
    return rc;
}

/* A secondary instance that cannot load a table file the manifest names
 * (say, a truncated one) opens without complaint and reads as an empty
 * database: the archive would silently look empty. Every writer open stores
 * "Mformat" with a synced write, so an index without it is damaged. */
static int check_readable(idx_t *ix, char *err)
{
    uint8_t v[4];
    int rc = idx_get_raw(ix, (const uint8_t *)"Mformat", 7, v, sizeof v, NULL, err);
    if (rc == 0)
        rc = rw_err(err, RW_ECORRUPT,
                    "the index of %s cannot be read (a table file is damaged or missing); "
                    "rebuild it from the segments with 'rewind reindex --dir %s'",
                    ix->dir, ix->dir);
    return rc < 0 ? rc : 0;
}

/* Table files a writer was building when it stopped (idx_sst_open()):
 * never ingested, so nothing refers to them. */
static void ingest_leftovers(idx_t *ix)
{
    char path[1100];
    snprintf(path, sizeof path, "%s/index", ix->dir);
    DIR *d = opendir(path);
    struct dirent *de;
    if (!d)
        return;
    while ((de = readdir(d)))
        if (!strncmp(de->d_name, IDX_SST_PREFIX, sizeof IDX_SST_PREFIX - 1)) {
            char f[1400];
            snprintf(f, sizeof f, "%s/%s", path, de->d_name);
            unlink(f);
        }
    closedir(d);
}

int idx_open(const char *dir, int mode, idx_t **out, char *err)
{
    char path[1100], cur[1200];
    char *rerr = NULL;
    struct stat st;
    idx_t *ix = calloc(1, sizeof *ix);
    int rc;
    *out = NULL;
    if (!ix)
        return rw_err(err, RW_ENOMEM, "out of memory");
    snprintf(ix->dir, sizeof ix->dir, "%s", dir);
    ix->mode = mode;
    pthread_mutex_init(&ix->mu, NULL);
    pthread_rwlock_init(&ix->tomb_lock, NULL);
    ix->tombs = roaring_bitmap_create();
    snprintf(path, sizeof path, "%s/index", dir);
    snprintf(cur, sizeof cur, "%s/CURRENT", path);
    if (mode == IDX_WRITE) {
        if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
            rc = rw_err(err, RW_EIO, "cannot create archive directory %s: %s", dir, strerror(errno));
            goto fail;
        }
    } else if (stat(cur, &st) < 0) {
        rc = rw_err(err, RW_EINPUT,
                    "%s is not a rewind archive (no index); create one with 'rewind import --dir %s "
                    "FILE' or 'rewindd --dir %s -i IFACE'",
                    dir, dir, dir);
        goto fail;
    }
    ix->opts = rocksdb_options_create();
    rocksdb_options_set_create_if_missing(ix->opts, mode == IDX_WRITE);
    rocksdb_options_set_compression(ix->opts, rocksdb_lz4_compression);
    /* Level 0 (the memtables written out, every 4 MiB) is not compressed:
     * its files are compacted into level 1 soon, which compresses them
     * once, rather than a flush compressing what the compaction then
     * decompresses and compresses again (LZ4 was a third of the flushes'
     * CPU on small packets at top speed). Levels 1 and 2 (64 and 640 MiB,
     * see below) take LZ4: they are rewritten again and again while data
     * passes through them, and zstd there was 45 % of the compactions'
     * CPU, a sixth of a sustained capture's. Levels 3 and below, where an
     * archive's index ends up and stays, take zstd level 1 (not 3: 1 M
     * small packets' index compacted whole 1.52 -> 1.36 s CPU, 13.8 -> 14.0
     * MB; LZ4 1.05 s but 17.7 MB). */
    rocksdb_options_set_compression_options(ix->opts, -14, 1, 0, 0);
    int per_level[7] = {rocksdb_no_compression,   rocksdb_lz4_compression,
                        rocksdb_lz4_compression,  rocksdb_zstd_compression,
                        rocksdb_zstd_compression, rocksdb_zstd_compression,
                        rocksdb_zstd_compression};
    rocksdb_options_set_compression_per_level(ix->opts, per_level, 7);
    rocksdb_options_set_max_open_files(ix->opts, -1); /* required by secondaries */
    /* Level 1 holds 64 MiB in files of 16 MiB, not RocksDB's 256 MiB in
     * files of 64 MiB. Postings are keyed by term, then segment: every
     * level-0 file spans the whole key range, so each compaction into level
     * 1 rewrites level 1 whole, and with RocksDB's sizes level 1 grew to
     * hundreds of MiB, rewritten every few seconds (with zstd, while it was
     * the last level). A small level 1 hands its data down a file at a
     * time, each rewriting only its share of the level below. Live at
     * 1 Gbit/s for 3 minutes (26 M packets): 3966 against 8430 ticks of
     * CPU, the index 297 against 303 MB in 26 files against 4; for 60 s,
     * 1433 against 1314-1721. */
    rocksdb_options_set_max_bytes_for_level_base(ix->opts, IDX_LEVEL1_BYTES);
    rocksdb_options_set_target_file_size_base(ix->opts, IDX_FILE_BYTES);
    /* Fatal errors only: RocksDB (7.8, built with assertions) aborts the
     * process when it logs again after a write to its LOG file failed, which
     * a full disk causes; rewind reports RocksDB's errors itself. */
    rocksdb_options_set_info_log_level(ix->opts, 4);
    rocksdb_options_set_keep_log_file_num(ix->opts, 3);
    /* 8 MiB memtables: a flush's batch is in key order (index/segw.c), and
     * inserting keys in order is cheap only where the memtable holds no
     * older operands of the same keys between them (else each insert
     * searches the skiplist from its top). A small memtable is switched
     * and written out after about a batch at full rate, so the next batch
     * goes into an empty one: 1 M small packets of 50 000 flows (a flush
     * per 430 k) cost 36 % fewer instructions than with 32 MiB (memtable
     * inserts -61 %, memtable flushes -30 %; live at top speed 1.6 against
     * 2.4-2.8 us CPU per packet). 4 MiB rather than 8 since a packet
     * of a known flow logs one entry instead of seven (segw.c; now none),
     * which made flushes smaller: the same CPU on 1 M small packets, and two
     * memtables hold 8 MiB at most (live capture's RSS, issue 17). */
    rocksdb_options_set_write_buffer_size(ix->opts, IDX_MEMTABLE);
    /* A file's write buffer (the log's, a table's being built) grows to
     * 1 MiB by default, and several live at once: 256 KiB takes 2-3 MiB
     * less while capturing, for a few more write calls. */
    rocksdb_options_set_writable_file_max_buffer_size(ix->opts, 256u << 10);
    /* RocksDB preallocates a log's and a manifest's space when it makes
     * them (1.1 memtables, and 4 MiB): space the disk reserve cannot see
     * coming (idx_disk_bytes counts bytes written), and that a small file
     * system runs out of (a 32 MiB one did, with 8 MiB free). A log is
     * preallocated at most max_total_wal_size, which only bounds the
     * logs' total for several column families: the index has one. */
    rocksdb_options_set_max_total_wal_size(ix->opts, IDX_LOG_PREALLOC);
    rocksdb_options_set_manifest_preallocation_size(ix->opts, IDX_MANIFEST_PREALLOC);
    /* Level 0 is compacted at 5 files, not 4: a segment adds one small file
     * to the large batches ingested (index/segw.c, INGEST_BYTES), and each
     * compaction into level 1 rewrites it whole (every level-0 file spans
     * the whole key range, see above). At 8 files a minute at 1 Gbit/s cost
     * a tenth less CPU, but level 0 is not compressed: its larger size on
     * disk left a 1 MiB --quota nothing to keep (test_papercuts). */
    rocksdb_options_set_level0_file_num_compaction_trigger(ix->opts, 5);
    rocksdb_options_set_skip_stats_update_on_db_open(ix->opts, 1);
    if (mode == IDX_WRITE) {
        rocksdb_options_increase_parallelism(ix->opts, 2);
    } else {
        /* A reader opens every table file at start (max_open_files -1):
         * in this thread, rather than on 16 threads created for it, and
         * with no statistics thread; a query is mostly start-up. */
        rocksdb_options_set_max_file_opening_threads(ix->opts, 1);
        rocksdb_options_set_stats_dump_period_sec(ix->opts, 0);
        rocksdb_options_set_stats_persist_period_sec(ix->opts, 0);
    }
    ix->merge = rocksdb_mergeoperator_create(NULL, merge_destroy, merge_full, merge_partial, merge_delete,
                                             merge_name);
    rocksdb_options_set_merge_operator(ix->opts, ix->merge);
    if (mode == IDX_WRITE) {
        ix->cfilter = rocksdb_compactionfilter_create(ix, cfilter_destroy, cfilter_fn, cfilter_name);
        rocksdb_options_set_compaction_filter(ix->opts, ix->cfilter);
    }
    ix->topts = rocksdb_block_based_options_create();
    ix->cache = rocksdb_cache_create_lru(16 << 20);
    rocksdb_block_based_options_set_block_cache(ix->topts, ix->cache);
    /* No bloom filters: the lookups of a query are prefix scans (postings,
     * flows, locators), which a whole-key filter cannot answer, and the
     * few Gets are of catalogue and metadata keys that mostly exist (a
     * miss costs one block read). A reader would load a filter block per
     * table file at open for next to nothing, and the writer would build
     * them. Tables written with filters by older versions are read as they
     * are. */
    rocksdb_block_based_options_set_block_size(ix->topts, 16 << 10);
    rocksdb_options_set_block_based_table_factory(ix->opts, ix->topts);
    ix->ropts = rocksdb_readoptions_create();
    ix->wopts = rocksdb_writeoptions_create();
    ix->wopts_sync = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(ix->wopts_sync, 1);

    if (mode == IDX_WRITE) {
        ix->db = rocksdb_open(ix->opts, path, &rerr);
        if (rerr) {
            rc = db_err(err, rerr, "opening index");
            if (rc == RW_EBUSY)
                rw_err(err, RW_EBUSY,
                       "archive %s is being written by another process (rewindd?); stop it, or use "
                       "'rewind query --url' to go through the daemon",
                       dir);
            goto fail;
        }
    } else {
        snprintf(ix->secdir, sizeof ix->secdir, "/tmp/rewind-reader-XXXXXX");
        if (!mkdtemp(ix->secdir)) {
            rc = rw_err(err, RW_EIO, "cannot create reader directory in /tmp: %s", strerror(errno));
            ix->secdir[0] = 0;
            goto fail;
        }
        ix->db = rocksdb_open_as_secondary(ix->opts, path, ix->secdir, &rerr);
        if (rerr) {
            rc = db_err(err, rerr, "opening index for reading");
            goto fail;
        }
    }
    if ((mode == IDX_READ && (rc = check_readable(ix, err)) < 0) || (rc = load_meta(ix, err)) < 0 ||
        (mode == IDX_WRITE && (rc = load_tombs(ix, err)) < 0))
        goto fail;
    if (mode == IDX_WRITE) {
        uint8_t v[4];
        ingest_leftovers(ix);
        ix->sst_opts = rocksdb_options_create();
        rocksdb_options_set_compression(ix->sst_opts, rocksdb_no_compression);
        rocksdb_options_set_block_based_table_factory(ix->sst_opts, ix->topts);
        ix->envopts = rocksdb_envoptions_create();
        ix->ingopts = rocksdb_ingestexternalfileoptions_create();
        rocksdb_ingestexternalfileoptions_set_move_files(ix->ingopts, 1);
        rw_put_be32(v, FORMAT_VERSION);
        rocksdb_put(ix->db, ix->wopts_sync, "Mformat", 7, (const char *)v, 4, &rerr);
        if (rerr) {
            rc = db_err(err, rerr, "writing index");
            goto fail;
        }
    }
    *out = ix;
    return 0;
fail:
    idx_close(ix);
    return rc;
}

void idx_close(idx_t *ix)
{
    if (!ix)
        return;
    if (ix->db && ix->mode == IDX_WRITE)
        idx_flush(ix, 1); /* readers then open without replaying a long WAL */
    if (ix->db)
        rocksdb_close(ix->db);
    if (ix->cfilter)
        rocksdb_compactionfilter_destroy(ix->cfilter);
    if (ix->opts)
        rocksdb_options_destroy(ix->opts);
    if (ix->sst_opts)
        rocksdb_options_destroy(ix->sst_opts);
    if (ix->envopts)
        rocksdb_envoptions_destroy(ix->envopts);
    if (ix->ingopts)
        rocksdb_ingestexternalfileoptions_destroy(ix->ingopts);
    if (ix->topts)
        rocksdb_block_based_options_destroy(ix->topts);
    if (ix->cache)
        rocksdb_cache_destroy(ix->cache);
    if (ix->ropts)
        rocksdb_readoptions_destroy(ix->ropts);
    if (ix->wopts)
        rocksdb_writeoptions_destroy(ix->wopts);
    if (ix->wopts_sync)
        rocksdb_writeoptions_destroy(ix->wopts_sync);
    /* The options own the merge operator once set. */
    if (ix->secdir[0])
        nftw(ix->secdir, rm_cb, 8, FTW_DEPTH | FTW_PHYS);
    pthread_mutex_destroy(&ix->mu);
    pthread_rwlock_destroy(&ix->tomb_lock);
    roaring_bitmap_free(ix->tombs);
    free(ix);
}

int idx_refresh(idx_t *ix, char *err)
{
    char *rerr = NULL;
    if (ix->mode == IDX_WRITE)
        return 0;
    rocksdb_try_catch_up_with_primary(ix->db, &rerr);
    if (rerr)
        return db_err(err, rerr, "following the archive writer");
    return 0;
}

const char *idx_dir(const idx_t *ix) { return ix->dir; }

void idx_flush(idx_t *ix, int wait)
{
    char *rerr = NULL;
    uint64_t n;
    /* A memtable of a few records is a log readers replay at once; written
     * out, it would be one more level-0 file (and a compaction sooner):
     * after a segment whose batches were ingested, all it holds is the
     * next segment's record and the key A (sst_prepare). */
    if (!wait && rocksdb_property_int(ix->db, "rocksdb.num-entries-active-mem-table", &n) == 0 &&
        n < 64)
        return;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, (unsigned char)wait);
    rocksdb_flush(ix->db, fo, &rerr);
    rocksdb_flushoptions_destroy(fo);
    free(rerr); /* best effort: the WAL still has everything */
}

/* ---------- raw helpers shared with the other index files ---------- */

int idx_get_raw(idx_t *ix, const uint8_t *key, size_t klen, uint8_t *buf, size_t bufsz,
                size_t *vlen, char *err)
{
    char *rerr = NULL;
    size_t n = 0;
    char *v = rocksdb_get(ix->db, ix->ropts, (const char *)key, klen, &n, &rerr);
    if (rerr)
        return db_err(err, rerr, "reading index");
    if (!v)
        return 0;
    memcpy(buf, v, n < bufsz ? n : bufsz);
    if (vlen)
        *vlen = n;
    rocksdb_free(v);
    return 1;
}

int idx_write_batch(idx_t *ix, rocksdb_writebatch_t *b, int sync, char *err)
{
    char *rerr = NULL;
    rocksdb_write(ix->db, sync ? ix->wopts_sync : ix->wopts, b, &rerr);
    if (rerr)
        return db_err(err, rerr, "writing index");
    return 0;
}

rocksdb_sstfilewriter_t *idx_sst_open(idx_t *ix, uint64_t tag, char *path, size_t pathsz,
                                      char *err)
{
    char *rerr = NULL;
    snprintf(path, pathsz, "%s/index/" IDX_SST_PREFIX "%llu", ix->dir, (unsigned long long)tag);
    unlink(path); /* one in flight per tag: this is a failed one's */
    rocksdb_sstfilewriter_t *sw = rocksdb_sstfilewriter_create(ix->envopts, ix->sst_opts);
    rocksdb_sstfilewriter_open(sw, path, &rerr);
    if (rerr) {
        db_err(err, rerr, "creating an index table file");
        rocksdb_sstfilewriter_destroy(sw);
        unlink(path);
        return NULL;
    }
    return sw;
}

/* A reader (a RocksDB secondary) replays the write-ahead log into a
 * memtable of its own, which it drops only once the log holds a record
 * from a newer log file than the ones it replayed (and the writer has
 * flushed those). Until then the records it replayed hide newer values of
 * the same keys in an ingested file: a segment record rewritten by an
 * ingested batch would read as it was. So before a batch is ingested over
 * records of the log, those are flushed, and the delete of the key "A"
 * (K0: never a record) starts the new log for the readers to notice. The
 * key lies before every key an ingested file holds ('C' to 'S'), so the
 * memtable it sits in does not overlap the file (which would make RocksDB
 * flush it before ingesting). */
static int sst_prepare(idx_t *ix, char *err)
{
    char *rerr = NULL;
    rocksdb_flushoptions_t *fo = rocksdb_flushoptions_create();
    rocksdb_flushoptions_set_wait(fo, 1);
    rocksdb_flush(ix->db, fo, &rerr);
    rocksdb_flushoptions_destroy(fo);
    if (rerr)
        return db_err(err, rerr, "writing index");
    rocksdb_delete(ix->db, ix->wopts_sync, "A", 1, &rerr);
    if (rerr)
        return db_err(err, rerr, "writing index");
    return 0;
}

int idx_sst_ingest(idx_t *ix, rocksdb_sstfilewriter_t *sw, const char *path, int after_log,
                   char *err)
{
    char *rerr = NULL;
    int rc = 0;
    rocksdb_sstfilewriter_finish(sw, &rerr); /* and syncs it */
    if (rerr)
        rc = db_err(err, rerr, "writing an index table file");
    rocksdb_sstfilewriter_destroy(sw);
    if (rc == 0 && after_log)
        rc = sst_prepare(ix, err);
    if (rc == 0) {
        const char *files[1] = {path};
        rocksdb_ingest_external_file(ix->db, files, 1, ix->ingopts, &rerr);
        if (rerr)
            rc = db_err(err, rerr, "writing index");
    }
    unlink(path); /* moved (linked) into the index when ingested */
    return rc;
}

void idx_sst_discard(rocksdb_sstfilewriter_t *sw, const char *path)
{
    rocksdb_sstfilewriter_destroy(sw);
    unlink(path);
}

int idx_sst_failed(rocksdb_sstfilewriter_t *sw, const char *path, char *rerr, char *err)
{
    idx_sst_discard(sw, path);
    return db_err(err, rerr, "writing an index table file");
}

rocksdb_iterator_t *idx_iter(idx_t *ix) { return rocksdb_create_iterator(ix->db, ix->ropts); }

int idx_iter_status(rocksdb_iterator_t *it, char *err)
{
    char *rerr = NULL;
    rocksdb_iter_get_error(it, &rerr);
    if (rerr)
        return db_err(err, rerr, "reading index");
    return 0;
}

/* ---------- points ---------- */

static void point_decode(const uint8_t *v, size_t n, const char *name, struct idx_point *p)
{
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    if (n >= 12) {
        p->id = rw_get_be32(v);
        p->linktype = (int)rw_get_be32(v + 4);
        p->snaplen = rw_get_be32(v + 8);
    }
}

static int point_drops(idx_t *ix, struct idx_point *p, char *err)
{
    uint8_t k[5], v[16];
    int rc;
    k[0] = 'K';
    rw_put_be32(k + 1, p->id);
    if ((rc = idx_get_raw(ix, k, 5, v, 16, NULL, err)) < 0)
        return rc;
    if (rc == 1) {
        p->kernel_drops = rw_get_be64(v);
        p->queue_drops = rw_get_be64(v + 8);
    }
    return 0;
}

static int point_get_locked(idx_t *ix, const char *name, int linktype, uint32_t snaplen,
                            struct idx_point *out, char *err);

int idx_point_get(idx_t *ix, const char *name, int linktype, uint32_t snaplen, struct idx_point *out,
                  char *err)
{
    pthread_mutex_lock(&ix->mu);
    int rc = point_get_locked(ix, name, linktype, snaplen, out, err);
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

static int point_get_locked(idx_t *ix, const char *name, int linktype, uint32_t snaplen,
                            struct idx_point *out, char *err)
{
    uint8_t key[80], v[16];
    size_t klen = strlen(name) + 1, vlen = 0;
    int rc;
    if (!rw_point_name_ok(name))
        return rw_err(err, RW_EINPUT,
                      "capture point name '%s' is not valid: use 1-64 letters, digits, '.', '_' or "
                      "'-'",
                      name);
    key[0] = 'N';
    memcpy(key + 1, name, klen - 1);
    if ((rc = idx_get_raw(ix, key, klen, v, sizeof v, &vlen, err)) < 0)
        return rc;
    if (rc == 1) {
        point_decode(v, vlen, name, out);
        if (out->linktype != linktype)
            return rw_err(err, RW_EINPUT,
                          "capture point '%s' records link type %d, this input has link type %d; "
                          "give it its own point with --point",
                          name, out->linktype, linktype);
        if (snaplen > out->snaplen && ix->mode == IDX_WRITE) {
            out->snaplen = snaplen;
            rw_put_be32(v + 8, snaplen);
            rocksdb_writebatch_t *b = rocksdb_writebatch_create();
            rocksdb_writebatch_put(b, (const char *)key, klen, (const char *)v, 12);
            rc = idx_write_batch(ix, b, 1, err);
            rocksdb_writebatch_destroy(b);
            if (rc < 0)
                return rc;
        }
        return point_drops(ix, out, err);
    }
    if (ix->mode != IDX_WRITE)
        return rw_err(err, RW_EINPUT, "no capture point named '%s'", name);
    memset(out, 0, sizeof *out);
    out->id = ix->next_point;
    snprintf(out->name, sizeof out->name, "%s", name);
    out->linktype = linktype;
    out->snaplen = snaplen;
    rw_put_be32(v, out->id);
    rw_put_be32(v + 4, (uint32_t)linktype);
    rw_put_be32(v + 8, snaplen);
    uint8_t mv[4];
    rw_put_be32(mv, ix->next_point + 1);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)key, klen, (const char *)v, 12);
    rocksdb_writebatch_put(b, "Mnext_point", 11, (const char *)mv, 4);
    rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    if (rc == 0)
        ix->next_point++;
    return rc;
}

/* ---------- records under a key prefix, into an array ---------- */

/* Fills *elem (esz bytes, zeroed) from one record under the prefix: 1 to
 * keep it, 0 to skip it, <0 with err to stop (a malformed record). */
typedef int (*scan_fn)(idx_t *ix, void *arg, const uint8_t *k, size_t kl, const uint8_t *v,
                       size_t vl, void *elem, char *err);

/* Every record whose key starts with the plen bytes of prefix, in key
 * order, as fn makes them: *out malloc'ed (the caller frees), *n of them.
 * The one loop behind the idx_*_list functions. */
static int scan_prefix(idx_t *ix, const void *prefix, size_t plen, size_t esz, scan_fn fn,
                       void *arg, void **out, size_t *n, char *err)
{
    rocksdb_iterator_t *it = idx_iter(ix);
    uint8_t *arr = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    for (rocksdb_iter_seek(it, prefix, plen); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl < plen || memcmp(k, prefix, plen) != 0)
            break;
        if (cnt == cap) {
            size_t nc = cap ? cap * 2 : 16;
            uint8_t *na = realloc(arr, nc * esz);
            if (!na) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                goto done;
            }
            arr = na;
            cap = nc;
        }
        memset(arr + cnt * esz, 0, esz);
        if ((rc = fn(ix, arg, k, kl, v, vl, arr + cnt * esz, err)) < 0)
            goto done;
        cnt += (size_t)rc;
        rc = 0;
    }
    rc = idx_iter_status(it, err);
done:
    rocksdb_iter_destroy(it);
    if (rc < 0) {
        free(arr);
        return rc;
    }
    *out = arr;
    *n = cnt;
    return 0;
}

static int point_rec(idx_t *ix, void *arg, const uint8_t *k, size_t kl, const uint8_t *v,
                     size_t vl, void *elem, char *err)
{
    struct idx_point *p = elem;
    char name[65];
    (void)arg;
    if (kl - 1 >= sizeof name)
        return 0; /* a name the writer never makes */
    memcpy(name, k + 1, kl - 1);
    name[kl - 1] = 0;
    point_decode(v, vl, name, p);
    int rc = point_drops(ix, p, err);
    return rc < 0 ? rc : 1;
}

int idx_point_list(idx_t *ix, struct idx_point **out, size_t *n, char *err)
{
    return scan_prefix(ix, "N", 1, sizeof **out, point_rec, NULL, (void **)out, n, err);
}

int idx_point_set_drops(idx_t *ix, uint32_t point, uint64_t kernel, uint64_t queue, char *err)
{
    uint8_t k[5], v[16];
    k[0] = 'K';
    rw_put_be32(k + 1, point);
    rw_put_be64(v, kernel);
    rw_put_be64(v + 8, queue);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)k, 5, (const char *)v, 16);
    int rc = idx_write_batch(ix, b, 0, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

/* ---------- segment catalogue ---------- */

size_t idx_seg_encode(const struct idx_seg *s, uint8_t *v)
{
    size_t pl = strlen(s->path);
    v[0] = 1;
    rw_put_be32(v + 1, s->point);
    rw_put_be32(v + 5, (uint32_t)s->linktype);
    rw_put_be32(v + 9, s->snaplen);
    v[13] = (uint8_t)s->state;
    rw_put_be64(v + 14, (uint64_t)s->min_ts);
    rw_put_be64(v + 22, (uint64_t)s->max_ts);
    rw_put_be64(v + 30, s->packets);
    rw_put_be64(v + 38, s->bytes);
    rw_put_be64(v + 46, s->wire_bytes);
    rw_put_be64(v + 54, s->file_size);
    rw_put_be16(v + 62, (uint16_t)pl);
    memcpy(v + 64, s->path, pl);
    if (!s->compressed)
        return 64 + pl;
    /* Version 1 records may carry a tail: stored size and flags. */
    rw_put_be64(v + 64 + pl, s->stored_size);
    v[72 + pl] = 1; /* bit 0: lz4-compressed */
    return 73 + pl;
}

static int seg_decode(uint64_t id, const uint8_t *v, size_t n, struct idx_seg *s)
{
    size_t pl;
    if (n < 64 || v[0] != 1)
        return -1;
    pl = rw_get_be16(v + 62);
    if (64 + pl > n || pl >= sizeof s->path)
        return -1;
    memset(s, 0, sizeof *s);
    s->id = id;
    s->point = rw_get_be32(v + 1);
    s->linktype = (int)rw_get_be32(v + 5);
    s->snaplen = rw_get_be32(v + 9);
    s->state = v[13];
    s->min_ts = (int64_t)rw_get_be64(v + 14);
    s->max_ts = (int64_t)rw_get_be64(v + 22);
    s->packets = rw_get_be64(v + 30);
    s->bytes = rw_get_be64(v + 38);
    s->wire_bytes = rw_get_be64(v + 46);
    s->file_size = rw_get_be64(v + 54);
    memcpy(s->path, v + 64, pl);
    s->path[pl] = 0;
    s->stored_size = s->file_size;
    if (n >= 73 + pl) {
        s->stored_size = rw_get_be64(v + 64 + pl);
        s->compressed = v[72 + pl] & 1;
    }
    return 0;
}

/* Rewrite one segment record with a synced write. */
static int seg_put(idx_t *ix, const struct idx_seg *s, char *err)
{
    uint8_t k[9], v[256 + 96];
    k[0] = 'S';
    rw_put_be64(k + 1, s->id);
    size_t vl = idx_seg_encode(s, v);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)k, 9, (const char *)v, vl);
    int rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

int idx_seg_get(idx_t *ix, uint64_t id, struct idx_seg *out, char *err)
{
    uint8_t k[9], v[256 + 96];
    size_t vl = 0;
    k[0] = 'S';
    rw_put_be64(k + 1, id);
    int rc = idx_get_raw(ix, k, 9, v, sizeof v, &vl, err);
    if (rc <= 0)
        return rc;
    if (vl > sizeof v || seg_decode(id, v, vl, out) < 0)
        return rw_err(err, RW_ECORRUPT, "index: malformed record of segment %llu; run 'rewind "
                      "reindex'", (unsigned long long)id);
    return 1;
}

int idx_seg_set_compressed(idx_t *ix, const struct idx_seg *s, const char *path, uint64_t stored,
                           char *err)
{
    struct idx_seg c = *s;
    if (strlen(path) >= sizeof c.path)
        return rw_err(err, RW_ESTATE, "segment path too long: %s", path);
    snprintf(c.path, sizeof c.path, "%s", path);
    c.compressed = 1;
    c.stored_size = stored;
    return seg_put(ix, &c, err);
}

/* A segment record; with a window (arg: two int64), only segments holding
 * packets in it. */
static int seg_rec(idx_t *ix, void *arg, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl,
                   void *elem, char *err)
{
    struct idx_seg *s = elem;
    const int64_t *win = arg;
    (void)ix;
    if (kl != 9 || seg_decode(rw_get_be64(k + 1), v, vl, s) < 0)
        return rw_err(err, RW_ECORRUPT, "index: malformed segment record (%zu-byte key, %zu-byte "
                      "value); run 'rewind reindex'", kl, vl);
    return !win || (s->packets && s->max_ts >= win[0] && s->min_ts < win[1]);
}

int idx_seg_list(idx_t *ix, int64_t from, int64_t to, struct idx_seg **out, size_t *n, char *err)
{
    int64_t win[2] = {from, to};
    return scan_prefix(ix, "S", 1, sizeof **out, seg_rec, win, (void **)out, n, err);
}

/* Every segment, including empty and open ones (for recovery and status). */
int idx_seg_all(idx_t *ix, struct idx_seg **out, size_t *n, char *err)
{
    return scan_prefix(ix, "S", 1, sizeof **out, seg_rec, NULL, (void **)out, n, err);
}

int idx_seg_mark_sealed(idx_t *ix, const struct idx_seg *s, char *err)
{
    struct idx_seg c = *s;
    c.state = IDX_SEG_SEALED;
    return seg_put(ix, &c, err);
}

uint64_t idx_next_seg_id(idx_t *ix)
{
    pthread_mutex_lock(&ix->mu);
    uint64_t id = ix->next_seg++;
    pthread_mutex_unlock(&ix->mu);
    return id;
}

/* ---------- reading postings ---------- */

void idx_bitmap_free(roaring_bitmap_t *b)
{
    /* This CRoaring's roaring_bitmap_free() does not accept NULL. */
    if (b)
        roaring_bitmap_free(b);
}

/* Increment a big-endian value; returns 0 on overflow. */
static int be_inc(uint8_t *v, size_t len)
{
    for (size_t i = len; i-- > 0;) {
        if (++v[i] != 0)
            return 1;
    }
    return 0;
}

static ssize_t seg_find(const uint64_t *segs, size_t n, uint64_t s)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (segs[mid] < s)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && segs[lo] == s ? (ssize_t)lo : -1;
}

int idx_postings(idx_t *ix, int kind, const uint8_t *lo, const uint8_t *hi, size_t len,
                 const uint64_t *segs, size_t nsegs, roaring_bitmap_t **out, uint8_t *damaged,
                 char *err)
{
    uint8_t key[2 + 16 + 8], val[16];
    rocksdb_iterator_t *it;
    int rc = 0;
    for (size_t i = 0; i < nsegs; i++) {
        out[i] = NULL;
        if (damaged)
            damaged[i] = 0;
    }
    if (nsegs == 0)
        return 0;
    if (len > 16)
        return rw_err(err, RW_ESTATE, "posting value too long");
    if (len)    /* pseudo postings have no value, and lo may be NULL */
        memcpy(val, lo, len);
    key[0] = 'P';
    key[1] = (uint8_t)kind;
    it = idx_iter(ix);
    for (;;) {
        /* One distinct value per round: seek to its first wanted segment. */
        if (len)
            memcpy(key + 2, val, len);
        rw_put_be64(key + 2 + len, segs[0]);
        rocksdb_iter_seek(it, (const char *)key, 2 + len + 8);
        if (!rocksdb_iter_valid(it))
            break;
        size_t kl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl != 2 + len + 8 || k[0] != 'P' || k[1] != kind)
            break;
        if (len && memcmp(k + 2, hi, len) > 0)
            break;
        if (len)
            memcpy(val, k + 2, len);
        /* Walk this value's segments up to the last wanted one. */
        while (rocksdb_iter_valid(it)) {
            k = (const uint8_t *)rocksdb_iter_key(it, &kl);
            if (kl != 2 + len + 8 || k[0] != 'P' || k[1] != kind || memcmp(k + 2, val, len) != 0)
                break;
            uint64_t s = rw_get_be64(k + 2 + len);
            if (s > segs[nsegs - 1])
                break;
            ssize_t at = seg_find(segs, nsegs, s);
            if (at >= 0) {
                size_t vl;
                const char *v = rocksdb_iter_value(it, &vl);
                roaring_bitmap_t *b = posting_decode(v, vl);
                if (!b && !damaged) {
                    char what[64];
                    rc = rw_err(err, RW_ECORRUPT,
                                "index: the posting (%s) of segment %llu is damaged; run 'rewind "
                                "reindex'",
                                idx_term_desc(kind, NULL, 0, what, sizeof what),
                                (unsigned long long)s);
                    goto done;
                }
                if (!b) {
                    damaged[at] = 1;
                } else if (out[at]) {
                    roaring_bitmap_or_inplace(out[at], b);
                    roaring_bitmap_free(b);
                } else {
                    out[at] = b;
                }
            }
            rocksdb_iter_next(it);
        }
        if (len == 0 || memcmp(val, hi, len) >= 0 || !be_inc(val, len))
            break;
    }
    rc = idx_iter_status(it, err);
done:
    rocksdb_iter_destroy(it);
    for (size_t i = 0; i < nsegs; i++) {
        /* What the readable values of a damaged segment gave is no bound. */
        if (rc < 0 || (damaged && damaged[i])) {
            idx_bitmap_free(out[i]);
            out[i] = NULL;
        }
    }
    return rc;
}

int idx_postings_check(idx_t *ix, int (*cb)(void *arg, const struct idx_damage *d), void *arg,
                       char *err)
{
    rocksdb_iterator_t *it = idx_iter(ix);
    int rc = 0;
    for (rocksdb_iter_seek(it, "P", 1); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = (const uint8_t *)rocksdb_iter_key(it, &kl);
        if (kl < 1 || k[0] != 'P')
            break;
        const char *v = rocksdb_iter_value(it, &vl);
        roaring_bitmap_t *b = posting_decode(v, vl);
        if (b) {
            roaring_bitmap_free(b);
            continue;
        }
        struct idx_damage d = {.kind = kl >= 2 ? k[1] : -1, .seg = UINT64_MAX};
        if (kl >= 10 && kl - 10 <= sizeof d.val) { /* else not a key of ours: seg unknown */
            d.len = kl - 10;
            memcpy(d.val, k + 2, d.len);
            d.seg = rw_get_be64(k + kl - 8);
        }
        d.marked = vl == sizeof IDX_DAMAGED_MARK - 1 && !memcmp(v, IDX_DAMAGED_MARK, vl);
        if (cb(arg, &d))
            goto done;
    }
    rc = idx_iter_status(it, err);
done:
    rocksdb_iter_destroy(it);
    return rc;
}

char *idx_term_desc(int kind, const uint8_t *val, size_t len, char *buf, size_t n)
{
    static const char *const names[] = {
        [IDX_T_IP4] = "host", [IDX_T_IP6] = "host", [IDX_T_PORT] = "port",
        [IDX_T_PROTO4] = "ip proto", [IDX_T_PROTO6] = "ip6 proto", [IDX_T_L3] = "ether proto",
        [IDX_T_VLAN] = "vlan", [IDX_T_FLOW] = "flow",
    };
    char v[INET6_ADDRSTRLEN] = "";
    const char *name = kind == IDX_K_UNPARSED ? "unparsed packets"
                       : kind == IDX_K_DEEP   ? "deep packets"
                       : kind > 0 && kind < IDX_T_MAX ? names[kind]
                                                      : NULL;
    if (val && len && len == idx_term_len(kind)) {
        switch (kind) {
        case IDX_T_IP4: inet_ntop(AF_INET, val, v, sizeof v); break;
        case IDX_T_IP6: inet_ntop(AF_INET6, val, v, sizeof v); break;
        case IDX_T_PORT:
        case IDX_T_VLAN: snprintf(v, sizeof v, "%u", rw_get_be16(val)); break;
        case IDX_T_PROTO4:
        case IDX_T_PROTO6: snprintf(v, sizeof v, "%u", val[0]); break;
        case IDX_T_L3: snprintf(v, sizeof v, "0x%04x", rw_get_be16(val)); break;
        case IDX_T_FLOW:
            snprintf(v, sizeof v, "0x%016llx", (unsigned long long)rw_get_be64(val));
            break;
        }
    }
    char k[16];
    snprintf(k, sizeof k, kind < IDX_K_UNPARSED ? "%d" : "0x%02x", kind);
    if (name)
        snprintf(buf, n, "%s%s%s (kind %s)", name, v[0] ? " " : "", v, k);
    else
        snprintf(buf, n, "kind %s", k);
    return buf;
}

/* ---------- locators ---------- */

size_t idx_chunk_encode(const struct idx_chunk *c, uint8_t *v)
{
    size_t n = 0;
    v[n++] = 1;
    rw_put_be32(v + n, c->count);
    n += 4;
    rw_put_be64(v + n, (uint64_t)c->min_ts);
    n += 8;
    rw_put_be64(v + n, (uint64_t)c->max_ts);
    n += 8;
    rw_put_be64(v + n, c->count ? c->off[0] : 0);
    n += 8;
    for (uint32_t i = 1; i < c->count; i++)
        n += rw_varint_put(v + n, c->off[i] - c->off[i - 1]);
    return n;
}

int idx_chunk_get(idx_t *ix, uint64_t seg, uint32_t no, struct idx_chunk *out, char *err)
{
    uint8_t k[13];
    char *rerr = NULL;
    size_t vl = 0;
    k[0] = 'L';
    rw_put_be64(k + 1, seg);
    rw_put_be32(k + 9, no);
    char *v = rocksdb_get(ix->db, ix->ropts, (const char *)k, 13, &vl, &rerr);
    if (rerr)
        return db_err(err, rerr, "reading locators");
    if (!v)
        return rw_err(err, RW_ECORRUPT, "index: segment %llu has no locator chunk %u",
                      (unsigned long long)seg, no);
    const uint8_t *p = (const uint8_t *)v;
    int rc = 0;
    if (vl < 29 || p[0] != 1 || rw_get_be32(p + 1) > IDX_CHUNK || rw_get_be32(p + 1) == 0) {
        rc = rw_err(err, RW_ECORRUPT, "index: locator chunk %u of segment %llu is malformed", no,
                    (unsigned long long)seg);
        goto done;
    }
    out->count = rw_get_be32(p + 1);
    out->min_ts = (int64_t)rw_get_be64(p + 5);
    out->max_ts = (int64_t)rw_get_be64(p + 13);
    out->off[0] = rw_get_be64(p + 21);
    size_t pos = 29;
    for (uint32_t i = 1; i < out->count; i++) {
        uint64_t d;
        size_t used;
        /* Record lengths take one or two bytes: decode those inline, the
         * rest (and every malformed case) through rw_varint_get(). */
        if (pos < vl && p[pos] < 0x80) {
            d = p[pos];
            used = 1;
        } else if (pos + 1 < vl && p[pos + 1] < 0x80) {
            d = (uint64_t)(p[pos] & 0x7f) | (uint64_t)p[pos + 1] << 7;
            used = 2;
        } else {
            used = rw_varint_get(p + pos, vl - pos, &d);
        }
        if (!used) {
            rc = rw_err(err, RW_ECORRUPT, "index: locator chunk %u of segment %llu is truncated",
                        no, (unsigned long long)seg);
            goto done;
        }
        pos += used;
        out->off[i] = out->off[i - 1] + d;
    }
done:
    rocksdb_free(v);
    return rc;
}

uint64_t idx_write_headroom(void) { return IDX_LOG_PREALLOC + IDX_MANIFEST_PREALLOC; }

uint64_t idx_disk_bytes(idx_t *ix)
{
    char path[1100];
    DIR *d;
    struct dirent *e;
    uint64_t total = 0;
    snprintf(path, sizeof path, "%s/index", ix->dir);
    if (!(d = opendir(path)))
        return 0;
    while ((e = readdir(d))) {
        char f[1400];
        struct stat st;
        snprintf(f, sizeof f, "%s/%s", path, e->d_name);
        if (stat(f, &st) == 0 && S_ISREG(st.st_mode))
            total += (uint64_t)st.st_size;
    }
    closedir(d);
    return total;
}

/* ---------- retention, holds, config ---------- */

int idx_seg_delete(idx_t *ix, const struct idx_seg *s, char *err)
{
    uint8_t k[9], lo[9], hi[9], x[9];
    int rc;
    if (s->id > UINT32_MAX)
        return rw_err(err, RW_ESTATE, "segment id %llu out of range", (unsigned long long)s->id);
    k[0] = 'S';
    x[0] = 'X';
    rw_put_be64(k + 1, s->id);
    rw_put_be64(x + 1, s->id);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_delete(b, (const char *)k, 9);
    rocksdb_writebatch_put(b, (const char *)x, 9, "", 0);
    for (int i = 0; i < 3; i++) {
        lo[0] = hi[0] = "LFD"[i];
        rw_put_be64(lo + 1, s->id);
        rw_put_be64(hi + 1, s->id + 1);
        rocksdb_writebatch_delete_range(b, (const char *)lo, 9, (const char *)hi, 9);
    }
    rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    if (rc == 0) {
        pthread_rwlock_wrlock(&ix->tomb_lock);
        roaring_bitmap_add(ix->tombs, (uint32_t)s->id);
        pthread_rwlock_unlock(&ix->tomb_lock);
    }
    return rc;
}

int idx_writable(idx_t *ix, char *err)
{
    uint8_t v[4];
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rw_put_be32(v, FORMAT_VERSION);
    rocksdb_writebatch_put(b, "Mformat", 7, (const char *)v, 4);
    int rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

int idx_seg_exists(idx_t *ix, uint64_t id, char *err)
{
    uint8_t k[9], v[8];
    k[0] = 'S';
    rw_put_be64(k + 1, id);
    return idx_get_raw(ix, k, 9, v, sizeof v, NULL, err);
}

/* A hold record, version 2 (man/rewind-archive.5, K13): version 1 had no
 * author. */
static size_t hold_encode(const struct idx_hold *h, uint8_t *v)
{
    size_t fl = strlen(h->filter), rl = strlen(h->reason), al = strlen(h->author), n = 0;
    v[n++] = 2;
    rw_put_be64(v + n, (uint64_t)h->from);
    rw_put_be64(v + n + 8, (uint64_t)h->to);
    rw_put_be64(v + n + 16, (uint64_t)h->created);
    n += 24;
    rw_put_be16(v + n, (uint16_t)fl);
    memcpy(v + n + 2, h->filter, fl);
    n += 2 + fl;
    rw_put_be16(v + n, (uint16_t)rl);
    memcpy(v + n + 2, h->reason, rl);
    n += 2 + rl;
    rw_put_be16(v + n, (uint16_t)al);
    memcpy(v + n + 2, h->author, al);
    return n + 2 + al;
}

int idx_hold_add(idx_t *ix, struct idx_hold *h, char *err)
{
    uint8_t k[9], v[800], mv[8];
    int rc;
    if (ix->mode != IDX_WRITE)
        return rw_err(err, RW_ESTATE, "holds are added by the archive's writer");
    pthread_mutex_lock(&ix->mu);
    uint8_t cur[8];
    uint64_t next = 1;
    if ((rc = idx_get_raw(ix, (const uint8_t *)"Mnext_hold", 10, cur, 8, NULL, err)) < 0) {
        pthread_mutex_unlock(&ix->mu);
        return rc;
    }
    if (rc == 1)
        next = rw_get_be64(cur);
    h->id = next;
    k[0] = 'H';
    rw_put_be64(k + 1, h->id);
    rw_put_be64(mv, next + 1);
    size_t vl = hold_encode(h, v);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)k, 9, (const char *)v, vl);
    rocksdb_writebatch_put(b, "Mnext_hold", 10, (const char *)mv, 8);
    rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

int idx_hold_del(idx_t *ix, uint64_t id, char *err)
{
    uint8_t k[9], v[8];
    int rc;
    if (ix->mode != IDX_WRITE)
        return rw_err(err, RW_ESTATE, "holds are released by the archive's writer");
    k[0] = 'H';
    rw_put_be64(k + 1, id);
    pthread_mutex_lock(&ix->mu);
    if ((rc = idx_get_raw(ix, k, 9, v, sizeof v, NULL, err)) == 1) {
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        rocksdb_writebatch_delete(b, (const char *)k, 9);
        rc = idx_write_batch(ix, b, 1, err);
        rocksdb_writebatch_destroy(b);
        if (rc == 0)
            rc = 1;
    }
    pthread_mutex_unlock(&ix->mu);
    return rc;
}

static int hold_rec(idx_t *ix, void *arg, const uint8_t *k, size_t kl, const uint8_t *v,
                    size_t vl, void *elem, char *err)
{
    struct idx_hold *h = elem;
    (void)ix;
    (void)arg;
    if (kl != 9)
        return 0;
    h->id = rw_get_be64(k + 1);
    if (vl < 29 || (v[0] != 1 && v[0] != 2))
        goto bad;
    h->from = (int64_t)rw_get_be64(v + 1);
    h->to = (int64_t)rw_get_be64(v + 9);
    h->created = (int64_t)rw_get_be64(v + 17);
    size_t fl = rw_get_be16(v + 25);
    if (27 + fl + 2 > vl || fl >= sizeof h->filter)
        goto bad;
    memcpy(h->filter, v + 27, fl);
    size_t rl = rw_get_be16(v + 27 + fl);
    if (29 + fl + rl > vl || rl >= sizeof h->reason)
        goto bad;
    memcpy(h->reason, v + 29 + fl, rl);
    if (v[0] == 2) {
        size_t at = 29 + fl + rl, al = at + 2 <= vl ? rw_get_be16(v + at) : SIZE_MAX;
        if (al == SIZE_MAX || at + 2 + al > vl || al >= sizeof h->author)
            goto bad;
        memcpy(h->author, v + at + 2, al);
    }
    return 1;
bad:
    return rw_err(err, RW_ECORRUPT, "index: malformed hold record %llu", (unsigned long long)h->id);
}

int idx_hold_list(idx_t *ix, struct idx_hold **out, size_t *n, char *err)
{
    return scan_prefix(ix, "H", 1, sizeof **out, hold_rec, NULL, (void **)out, n, err);
}

/* ---------- tokens (man/rewind-archive.5, K14) ---------- */

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

int idx_token_put(idx_t *ix, const struct idx_token *t, char *err)
{
    uint8_t k[33], v[600];
    size_t n = 0;
    if (ix->mode != IDX_WRITE)
        return rw_err(err, RW_ESTATE, "tokens are changed by the archive's writer");
    k[0] = 'T';
    memcpy(k + 1, t->hash, 32);
    v[n++] = 1;
    v[n++] = (uint8_t)t->role;
    rw_put_be64(v + n, (uint64_t)t->created);
    rw_put_be64(v + n + 8, (uint64_t)t->expires);
    rw_put_be64(v + n + 16, (uint64_t)t->revoked);
    n += 24;
    n += put_str(v + n, t->name);
    n += put_str(v + n, t->case_id);
    n += put_str(v + n, t->creator);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)k, sizeof k, (const char *)v, n);
    int rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

static int token_decode(const uint8_t *k, const uint8_t *v, size_t vl, struct idx_token *t)
{
    size_t at = 26;
    memset(t, 0, sizeof *t);
    memcpy(t->hash, k + 1, 32);
    if (vl < 26 || v[0] != 1)
        return -1;
    t->role = v[1];
    t->created = (int64_t)rw_get_be64(v + 2);
    t->expires = (int64_t)rw_get_be64(v + 10);
    t->revoked = (int64_t)rw_get_be64(v + 18);
    if (get_str(v, vl, &at, t->name, sizeof t->name) < 0 ||
        get_str(v, vl, &at, t->case_id, sizeof t->case_id) < 0 ||
        get_str(v, vl, &at, t->creator, sizeof t->creator) < 0)
        return -1;
    return 0;
}

int idx_token_get(idx_t *ix, const uint8_t hash[32], struct idx_token *t, char *err)
{
    uint8_t k[33];
    char *rerr = NULL;
    size_t vl = 0;
    k[0] = 'T';
    memcpy(k + 1, hash, 32);
    char *v = rocksdb_get(ix->db, ix->ropts, (const char *)k, sizeof k, &vl, &rerr);
    if (rerr)
        return db_err(err, rerr, "reading a token");
    if (!v)
        return 0;
    int bad = token_decode(k, (const uint8_t *)v, vl, t);
    rocksdb_free(v);
    return bad ? rw_err(err, RW_ECORRUPT, "index: malformed token record") : 1;
}

static int token_rec(idx_t *ix, void *arg, const uint8_t *k, size_t kl, const uint8_t *v,
                     size_t vl, void *elem, char *err)
{
    (void)ix;
    (void)arg;
    if (kl != 33)
        return 0;
    if (token_decode(k, v, vl, elem) < 0)
        return rw_err(err, RW_ECORRUPT, "index: malformed token record");
    return 1;
}

int idx_token_list(idx_t *ix, struct idx_token **out, size_t *n, char *err)
{
    return scan_prefix(ix, "T", 1, sizeof **out, token_rec, NULL, (void **)out, n, err);
}

int idx_config_get(idx_t *ix, struct idx_config *c, char *err)
{
    uint8_t v[64];
    size_t vl = 0;
    memset(c, 0, sizeof *c);
    int rc = idx_get_raw(ix, (const uint8_t *)"Mconfig", 7, v, sizeof v, &vl, err);
    if (rc <= 0)
        return rc;
    if (vl < 45 || v[0] != 1)
        return rw_err(err, RW_ECORRUPT, "index: malformed configuration record");
    if (vl >= 53) /* written since --min-horizon exists (K3) */
        c->min_horizon_ns = (int64_t)rw_get_be64(v + 45);
    c->segment_ns = (int64_t)rw_get_be64(v + 1);
    c->segment_bytes = rw_get_be64(v + 9);
    c->quota_bytes = rw_get_be64(v + 17);
    c->quota_pct = rw_get_be32(v + 25);
    c->max_age_ns = (int64_t)rw_get_be64(v + 29);
    c->compress_after_ns = (int64_t)rw_get_be64(v + 37);
    return 0;
}

int idx_horizon_breach_get(idx_t *ix, int64_t *when, char *err)
{
    uint8_t v[8];
    size_t vl = 0;
    *when = 0;
    int rc = idx_get_raw(ix, (const uint8_t *)"Mhorizon_breach", 15, v, sizeof v, &vl, err);
    if (rc <= 0)
        return rc;
    if (vl != 8)
        return rw_err(err, RW_ECORRUPT, "index: malformed horizon record");
    *when = (int64_t)rw_get_be64(v);
    return 1;
}

int idx_horizon_breach_put(idx_t *ix, int64_t when, char *err)
{
    uint8_t v[8];
    rw_put_be64(v, (uint64_t)when);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, "Mhorizon_breach", 15, (const char *)v, 8);
    int rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

int idx_config_put(idx_t *ix, const struct idx_config *c, char *err)
{
    uint8_t v[53];
    v[0] = 1;
    rw_put_be64(v + 1, (uint64_t)c->segment_ns);
    rw_put_be64(v + 9, c->segment_bytes);
    rw_put_be64(v + 17, c->quota_bytes);
    rw_put_be32(v + 25, c->quota_pct);
    rw_put_be64(v + 29, (uint64_t)c->max_age_ns);
    rw_put_be64(v + 37, (uint64_t)c->compress_after_ns);
    rw_put_be64(v + 45, (uint64_t)c->min_horizon_ns);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, "Mconfig", 7, (const char *)v, sizeof v);
    int rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

/* ---------- damaged ranges of segment files (man/rewind-archive.5, K16) ---------- */

static size_t segdamage_encode(const struct idx_segdamage *d, uint8_t *v)
{
    size_t wl = strnlen(d->why, sizeof d->why - 1), nl = strnlen(d->note, sizeof d->note - 1);
    v[0] = 1;
    v[1] = (uint8_t)d->state;
    rw_put_be64(v + 2, d->hi);
    rw_put_be64(v + 10, (uint64_t)d->ts_before);
    rw_put_be64(v + 18, (uint64_t)d->ts_after);
    rw_put_be64(v + 26, (uint64_t)d->found);
    rw_put_be64(v + 34, (uint64_t)d->accepted);
    v[42] = (uint8_t)wl;
    memcpy(v + 43, d->why, wl);
    rw_put_be16(v + 43 + wl, (uint16_t)nl);
    memcpy(v + 45 + wl, d->note, nl);
    return 45 + wl + nl;
}

/* 0, or -1 when the value is not a version 1 record (K11: damage). */
static int segdamage_decode(const uint8_t *k, const uint8_t *v, size_t vl, struct idx_segdamage *d)
{
    memset(d, 0, sizeof *d);
    d->seg = rw_get_be64(k + 1);
    d->lo = rw_get_be64(k + 9);
    if (vl < 45 || v[0] != 1 || (v[1] != IDX_DMG_FOUND && v[1] != IDX_DMG_ACCEPTED))
        return -1;
    size_t wl = v[42];
    if (wl >= sizeof d->why || 45 + wl > vl)
        return -1;
    size_t nl = rw_get_be16(v + 43 + wl);
    if (nl >= sizeof d->note || 45 + wl + nl != vl)
        return -1;
    d->state = v[1];
    d->hi = rw_get_be64(v + 2);
    d->ts_before = (int64_t)rw_get_be64(v + 10);
    d->ts_after = (int64_t)rw_get_be64(v + 18);
    d->found = (int64_t)rw_get_be64(v + 26);
    d->accepted = (int64_t)rw_get_be64(v + 34);
    memcpy(d->why, v + 43, wl);
    memcpy(d->note, v + 45 + wl, nl);
    return d->hi > d->lo ? 0 : -1;
}

int idx_segdamage_put(idx_t *ix, const struct idx_segdamage *d, char *err)
{
    uint8_t k[17], v[45 + sizeof d->why + sizeof d->note];
    if (ix->mode != IDX_WRITE)
        return rw_err(err, RW_ESTATE, "damaged ranges are recorded by the archive's writer");
    k[0] = 'D';
    rw_put_be64(k + 1, d->seg);
    rw_put_be64(k + 9, d->lo);
    size_t vl = segdamage_encode(d, v);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)k, 17, (const char *)v, vl);
    int rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    return rc;
}

static int segdamage_rec(idx_t *ix, void *arg, const uint8_t *k, size_t kl, const uint8_t *v,
                         size_t vl, void *elem, char *err)
{
    (void)ix;
    (void)arg;
    if (kl != 17 || segdamage_decode(k, v, vl, elem) < 0)
        return rw_err(err, RW_ECORRUPT, "index: malformed damaged-range record of segment %llu; "
                      "run 'rewind reindex'", kl >= 9 ? (unsigned long long)rw_get_be64(k + 1) : 0ULL);
    return 1;
}

int idx_segdamage_list(idx_t *ix, uint64_t seg, struct idx_segdamage **out, size_t *n, char *err)
{
    uint8_t start[9] = {'D'};
    size_t slen = 1;
    if (seg != UINT64_MAX) {
        rw_put_be64(start + 1, seg);
        slen = 9;
    }
    return scan_prefix(ix, start, slen, sizeof **out, segdamage_rec, NULL, (void **)out, n, err);
}
