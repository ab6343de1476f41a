/* index.h -- the archive's RocksDB index: points, segment catalogue,
 * postings, packet locators, flow records and counters.
 *
 * The key layout of every record is written down once, in
 * man/rewind-archive.5; the K_* constants in index.c cite it.
 *
 * One writer per archive (IDX_WRITE, holds RocksDB's lock); any number of
 * readers (IDX_READ, a RocksDB secondary instance that follows the writer's
 * flushes after idx_refresh()). A reader never blocks the writer. */
#ifndef IDX_INDEX_H
#define IDX_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include <roaring/roaring.h>

#include "common/rw.h"
#include "index/parse.h"

typedef struct idx idx_t;

enum { IDX_READ = 0, IDX_WRITE = 1 };

/* Pseudo term kinds with an empty value: per-segment sets of packets. */
#define IDX_K_UNPARSED 0x40 /* postings may miss terms of these packets */
#define IDX_K_DEEP 0x41     /* postings may be a superset for these packets */

/* Packets per locator chunk: a candidate costs one chunk decode. */
#define IDX_CHUNK 1024

/* Open DIR/index (creating DIR and the index for IDX_WRITE). A reader's
 * RocksDB secondary keeps its own small log directory under /tmp.
 * Returns RW_EBUSY if another process writes the archive. */
int idx_open(const char *dir, int mode, idx_t **out, char *err) RW_WUR;
void idx_close(idx_t *ix);
/* Reader: catch up with the writer's latest flush. No-op for the writer. */
int idx_refresh(idx_t *ix, char *err) RW_WUR;
const char *idx_dir(const idx_t *ix);
/* Writer: flush RocksDB's memtable to a table file (wait: until done), so
 * that a reader opening the index replays only a short write-ahead log.
 * Without wait, a memtable of fewer than 64 records stays as it is. */
void idx_flush(idx_t *ix, int wait);

/* ---- capture points ---- */
struct idx_point {
    uint32_t id;
    char name[65];
    int linktype;
    uint32_t snaplen;     /* largest snaplen seen on this point */
    uint64_t kernel_drops; /* pcap_stats ps_drop + ps_ifdrop, cumulative */
    uint64_t queue_drops;  /* packets rewind itself could not queue */
};

/* Find a point by name, or create it (writer only). A point keeps one link
 * type for life: a mismatch is RW_EINPUT with a message saying so. */
int idx_point_get(idx_t *ix, const char *name, int linktype, uint32_t snaplen, struct idx_point *out,
                  char *err) RW_WUR;
/* All points, sorted by name. *out is malloc'ed; caller frees. */
int idx_point_list(idx_t *ix, struct idx_point **out, size_t *n, char *err) RW_WUR;
int idx_point_set_drops(idx_t *ix, uint32_t point, uint64_t kernel, uint64_t queue, char *err) RW_WUR;

/* ---- segment catalogue ---- */
enum { IDX_SEG_OPEN = 1, IDX_SEG_SEALED = 2 };

struct idx_seg {
    uint64_t id;
    uint32_t point;
    int linktype;
    uint32_t snaplen;
    int state;
    int64_t min_ts, max_ts; /* ns; valid when packets > 0 */
    uint64_t packets;       /* packets indexed (flushed) */
    uint64_t bytes;         /* captured bytes of those packets (sum of caplen) */
    uint64_t wire_bytes;    /* original lengths */
    uint64_t file_size;     /* segment bytes covered by the index (pcap bytes) */
    uint64_t stored_size;   /* bytes on disk: file_size, or the compressed size */
    int compressed;         /* the file is NAME.pcap.lz4 (archive/segfile.h) */
    char path[192];         /* relative to the archive directory */
};

/* Segments holding packets in [from, to) by their min/max time, in id
 * order (which is capture order within a point). *out malloc'ed. */
int idx_seg_list(idx_t *ix, int64_t from, int64_t to, struct idx_seg **out, size_t *n,
                 char *err) RW_WUR;

/* One segment record: 1 found, 0 gone (deleted by retention). */
int idx_seg_get(idx_t *ix, uint64_t id, struct idx_seg *out, char *err) RW_WUR;
/* A sealed segment's file was replaced by its compressed form at path
 * (stored bytes on disk): one synced write. */
int idx_seg_set_compressed(idx_t *ix, const struct idx_seg *s, const char *path, uint64_t stored,
                           char *err) RW_WUR;

/* Every segment record, open, sealed or empty, in id order. */
int idx_seg_all(idx_t *ix, struct idx_seg **out, size_t *n, char *err) RW_WUR;

/* ---- writing a segment (writer only) ---- */
typedef struct idx_segw idx_segw_t;

/* Register a new open segment; the path is relative to the archive dir. */
int idx_segw_begin(idx_t *ix, uint32_t point, int linktype, uint32_t snaplen, const char *relpath,
                   idx_segw_t **out, uint64_t *seg_id, char *err) RW_WUR;
/* Ask the caches for what idx_segw_add will read first for p: its flow's
 * slot (step 0), then, the slot having arrived, the flow's entry (step
 * 1). A hint only; a caller does other work between the steps and the
 * add (archive/writer.c: the next packet's). */
void idx_segw_prefetch(idx_segw_t *w, const struct idx_parsed *p, int step);
/* Add the next packet (ordinals are implicit: 0, 1, 2, ...). Memory only.
 * p is idx_parse_packet's or idx_parse_packet_nohash's parse: the flow's
 * term is added here either way. */
void idx_segw_add(idx_segw_t *w, int64_t ts, uint64_t offset, uint32_t caplen, uint32_t wirelen,
                  const struct idx_parsed *p);
/* Commit everything added so far in one atomic write batch; file_size is
 * how many segment bytes are durable. sync: sync RocksDB's WAL too. A
 * failure is final, as idx_segw_commit's: later packets are not indexed,
 * and later calls return the error. */
int idx_segw_flush(idx_segw_t *w, uint64_t file_size, int sync, char *err) RW_WUR;
/* The same, but in the background: fdatasync(fd) when sync is set, then
 * commit the batch, on the segment's commit thread, so that the caller can
 * go on adding packets meanwhile. One batch is in flight at a time: a call
 * first waits for the previous one. A failed commit is final: this and
 * every later call (flush, commit, seal) return its error. */
int idx_segw_commit(idx_segw_t *w, int fd, uint64_t file_size, int sync, char *err) RW_WUR;
/* Flush, mark sealed, free. With an empty segment, removes its entry instead
 * and returns 1 so the caller deletes the file. */
int idx_segw_seal(idx_segw_t *w, uint64_t file_size, char *err) RW_WUR;
/* Free without writing anything more (after an error, or for recovery). */
void idx_segw_abandon(idx_segw_t *w);
uint64_t idx_segw_packets(const idx_segw_t *w);

/* Recovery: mark an open segment sealed as it stands in the index. */
int idx_seg_mark_sealed(idx_t *ix, const struct idx_seg *s, char *err) RW_WUR;

/* ---- reading the index ---- */

/* The value of a posting key whose packets are no longer known: what the
 * merge operator writes when the base value or an operand of the key does
 * not decode (man/rewind-archive.5, K6). No portable Roaring bitmap starts
 * with these bytes. */
#define IDX_DAMAGED_MARK "rewind-damaged-posting"

/* For each of the nsegs segment ids (ascending), OR of the postings of kind
 * with values in [lo, hi] (len bytes each; kinds IDX_K_* take len 0).
 * out[i] is a new bitmap or NULL if none; caller frees with
 * idx_bitmap_free. A posting value that does not decode (the damage marker
 * or other bytes) sets damaged[i] to 1, with out[i] NULL: the index no
 * longer knows which packets of segs[i] carry those terms, and the caller
 * must take every one as a candidate. damaged[i] is 0 for the others. With
 * damaged NULL, such a value fails the call instead (RW_ECORRUPT, naming
 * the segment and kind). */
int idx_postings(idx_t *ix, int kind, const uint8_t *lo, const uint8_t *hi, size_t len,
                 const uint64_t *segs, size_t nsegs, roaring_bitmap_t **out, uint8_t *damaged,
                 char *err) RW_WUR;

/* A posting value that does not decode, as idx_postings_check() finds it. */
struct idx_damage {
    uint64_t seg;      /* segment id; UINT64_MAX if the key is malformed too */
    int kind;          /* term kind (index/parse.h) or IDX_K_* */
    uint8_t val[16];   /* term value, len bytes */
    size_t len;
    int marked;        /* the value is IDX_DAMAGED_MARK */
};
/* Read every posting value of the index (including those of deleted
 * segments that compaction has not dropped yet) and call cb for each that
 * does not decode, in key order; cb returns nonzero to stop. */
int idx_postings_check(idx_t *ix, int (*cb)(void *arg, const struct idx_damage *d), void *arg,
                       char *err) RW_WUR;

/* A term for messages, as a filter would name it: "port 25 (kind 3)",
 * "host 192.0.2.7 (kind 1)", "unparsed packets (kind 0x40)"; with val NULL
 * only the kind ("port (kind 3)"). Returns buf; 64 bytes hold any term. */
char *idx_term_desc(int kind, const uint8_t *val, size_t len, char *buf, size_t n);

/* roaring_bitmap_free() that accepts NULL. */
void idx_bitmap_free(roaring_bitmap_t *b);

struct idx_chunk {
    uint32_t count;
    int64_t min_ts, max_ts;
    uint64_t off[IDX_CHUNK];
};
/* Locator chunk no of a segment. RW_ECORRUPT if missing or malformed. */
int idx_chunk_get(idx_t *ix, uint64_t seg, uint32_t no, struct idx_chunk *out, char *err) RW_WUR;

/* ---- flows ---- */
struct idx_flowrec {
    uint8_t family, proto;
    uint8_t src[16], dst[16]; /* src is the side that sent the first packet seen */
    uint16_t sport, dport, vlan;
    int64_t first_ts, last_ts;
    uint64_t pkts_fwd, bytes_fwd, pkts_rev, bytes_rev;
    uint8_t tcp_flags;
    char community_id[40]; /* "1:" + base64(sha1) */
    uint64_t hash;         /* the flow hash of its key (K8); set by idx_flows() */
};
/* Community ID v1 (seed 0) of a flow, as Zeek and Suricata print it. */
void idx_community_id(const struct idx_flow *f, char out[40]);
int idx_flow_decode(const uint8_t *v, size_t vl, struct idx_flowrec *r);
/* Iterate the flow records of one segment; cb returns nonzero to stop. */
int idx_flows(idx_t *ix, uint64_t seg, int (*cb)(void *arg, const struct idx_flowrec *r), void *arg,
              char *err) RW_WUR;
/* The same for the flows whose hash is in [lo, hi] (in hash order), so
 * that several threads can share one segment's records. */
int idx_flows_range(idx_t *ix, uint64_t seg, uint64_t lo, uint64_t hi,
                    int (*cb)(void *arg, const struct idx_flowrec *r), void *arg,
                    char *err) RW_WUR;

/* ---- counters ---- */
/* Call cb for each second in [from_sec, to_sec) in which point captured
 * packets (K9), in time order; cb returns nonzero to stop. */
int idx_counters(idx_t *ix, uint32_t point, int64_t from_sec, int64_t to_sec,
                 int (*cb)(void *arg, int64_t sec, uint64_t packets, uint64_t bytes), void *arg,
                 char *err) RW_WUR;

/* ---- retention ---- */
/* Delete a sealed segment's catalogue record, locators, flows and damaged
 * ranges in one synced batch and leave a tombstone; its postings are dropped
 * by compaction (they are never read again: no catalogue record names the
 * segment). The caller unlinks the file afterwards. */
int idx_seg_delete(idx_t *ix, const struct idx_seg *s, char *err) RW_WUR;
/* 1 if the catalogue still has segment id (after idx_refresh for readers). */
int idx_seg_exists(idx_t *ix, uint64_t id, char *err) RW_WUR;

/* A legal hold: segments with packets in [from, to) are never deleted by
 * retention. The filter is recorded for the intercept/export tools; retention
 * keeps whole segments, so it holds the whole window whatever the filter. */
struct idx_hold {
    uint64_t id;
    int64_t from, to, created;
    char filter[256];
    char reason[256];
    char author[128]; /* who placed it ("" in records older than version 2) */
};
int idx_hold_add(idx_t *ix, struct idx_hold *h, char *err) RW_WUR; /* fills h->id */
int idx_hold_list(idx_t *ix, struct idx_hold **out, size_t *n, char *err) RW_WUR;
/* Writer: release hold id (one synced write). 1 released, 0 no such hold. */
int idx_hold_del(idx_t *ix, uint64_t id, char *err) RW_WUR;

/* A bearer token: only its SHA-256 is stored (man/rewind-archive.5, K14). */
struct idx_token {
    uint8_t hash[32];
    char name[65];      /* the principal's name */
    int role;           /* auth/auth.h enum auth_role */
    char case_id[65];   /* for the agency role, "" otherwise */
    int64_t created, expires, revoked; /* ns; 0: never expires, not revoked */
    char creator[128];  /* who added it */
};
/* Writer: add or rewrite a token record (one synced write). */
int idx_token_put(idx_t *ix, const struct idx_token *t, char *err) RW_WUR;
/* 1 and *t for a stored hash, 0 if none. */
int idx_token_get(idx_t *ix, const uint8_t hash[32], struct idx_token *t, char *err) RW_WUR;
/* Every token record, by hash. *out malloc'ed. */
int idx_token_list(idx_t *ix, struct idx_token **out, size_t *n, char *err) RW_WUR;

/* A subscriber identity (man/rewind-archive.5, K17, K18): user held the
 * address or prefix addr/plen over [start, end). */
struct idx_ident {
    char user[128];
    int64_t start, end;        /* ns; end RW_TIME_MAX while still held */
    uint8_t family;            /* 4 or 6 */
    uint8_t addr[16];          /* network byte order; IPv4 in the first 4 */
    uint8_t plen;              /* 32 or 128 for an address */
    uint16_t port_lo, port_hi; /* a port block behind carrier-grade NAT; 0 0: every port */
    char session[64];          /* Acct-Session-Id, "" if none */
    char station[64];          /* Calling-Station-Id, "" if none */
    char source[16];           /* "radius" or "api" */
};
/* Writer: add or rewrite (same user, start and address) an identity
 * record, synced when sync. */
int idx_ident_put(idx_t *ix, const struct idx_ident *r, int sync, char *err) RW_WUR;
/* Every record of user (NULL: of every user, by user), by start time.
 * *out malloc'ed. */
int idx_ident_list(idx_t *ix, const char *user, struct idx_ident **out, size_t *n,
                   char *err) RW_WUR;
/* Every record of exactly addr/plen (any user), by start time. */
int idx_ident_holders(idx_t *ix, int family, const uint8_t addr[16], int plen,
                      struct idx_ident **out, size_t *n, char *err) RW_WUR;

/* A damaged range of a segment file (man/rewind-archive.5, K16): pcap
 * bytes that 'rewind reindex' could not read (a compressed block that does
 * not decompress or fails its checksum, bytes that are no records, a file
 * that ends early). Their packets are lost; the index keeps every readable
 * packet around them. Found, then accepted once an operator has taken note
 * of the loss ('rewind verify --quarantine'). */
enum { IDX_DMG_FOUND = 1, IDX_DMG_ACCEPTED = 2 };
struct idx_segdamage {
    uint64_t seg;
    uint64_t lo, hi;              /* pcap bytes [lo, hi) */
    int state;                    /* IDX_DMG_* */
    int64_t ts_before, ts_after;  /* archive times of the packets read just before and
                                     after: INT64_MIN / INT64_MAX when there are none */
    int64_t found, accepted;      /* when recorded, when accepted (0: not yet) */
    char why[64];                 /* what was wrong: "block 3 fails its checksum" */
    char note[256];               /* who accepted the loss and why; "" until then */
};
/* Writer: record (or rewrite) a range, keyed by segment and lo; synced. */
int idx_segdamage_put(idx_t *ix, const struct idx_segdamage *d, char *err) RW_WUR;
/* The ranges of segment seg (UINT64_MAX: of every segment), in key order
 * (segment, then lo). *out malloc'ed. RW_ECORRUPT for a malformed record. */
int idx_segdamage_list(idx_t *ix, uint64_t seg, struct idx_segdamage **out, size_t *n,
                       char *err) RW_WUR;

/* Settings the archive remembers once given (0 = not set). */
struct idx_config {
    int64_t segment_ns;
    uint64_t segment_bytes;
    uint64_t quota_bytes;
    uint32_t quota_pct; /* of the file system, 1..100 */
    int64_t max_age_ns;
    int64_t compress_after_ns;
    int64_t min_horizon_ns; /* alarm when retention cuts the archive below this */
};
int idx_config_get(idx_t *ix, struct idx_config *c, char *err) RW_WUR;
int idx_config_put(idx_t *ix, const struct idx_config *c, char *err) RW_WUR;
/* When retention last deleted packets within the minimum horizon (the time
 * of the newest packet it deleted): 1 and *when, or 0 if it never did. */
int idx_horizon_breach_get(idx_t *ix, int64_t *when, char *err) RW_WUR;
int idx_horizon_breach_put(idx_t *ix, int64_t when, char *err) RW_WUR;

/* Writer: 0 if the index takes writes. RocksDB refuses every write after
 * one failed for lack of space or an I/O error (RW_ENOSPC, RW_EIO) until it
 * has recovered by itself, which it tries every few seconds once the file
 * system has at least its write buffer (32 MiB) free. Rewrites one record
 * with the value it has. */
int idx_writable(idx_t *ix, char *err) RW_WUR;

/* ---- statistics ---- */
/* Approximate on-disk size of the RocksDB directory. */
uint64_t idx_disk_bytes(idx_t *ix);
/* Bytes the index may take at once beyond twice what its files hold: the
 * space RocksDB preallocates for a new log and a new manifest. */
uint64_t idx_write_headroom(void);

#endif
