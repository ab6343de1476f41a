/* cap.h -- writing the archive: segment files, capture points, import of
 * pcap/pcapng files and live capture from interfaces.
 *
 * A cap_arch_t owns the archive for writing (the index in IDX_WRITE mode).
 * Packets enter through a point writer (cap_pw_t), which appends them to the
 * point's open segment (nanosecond pcap, see man/rewind-archive.5), rolls
 * segments by time and size, and commits the segment bytes and then their
 * index entries at every flush: an indexed packet is always on disk. */
#ifndef CAP_H
#define CAP_H

#include <stdint.h>

#include "common/rw.h"
#include "index/index.h"

/* Archive settings. Retention and segment settings left 0 are "not given":
 * the archive's remembered value applies, else the default. Given ones are
 * remembered by the archive (man/rewindd.8, RETENTION). */
typedef struct cap_arch cap_arch_t;
typedef struct cap_pw cap_pw_t;

struct cap_opts {
    int64_t segment_ns;      /* roll after this much capture time (default 60 s) */
    uint64_t segment_bytes;  /* roll before a segment exceeds this (default 256 MiB) */
    uint64_t quota_bytes;    /* keep segments + index under this (default: no quota) */
    uint32_t quota_pct;      /* ... or under this percentage of the file system */
    int64_t max_age_ns;      /* delete segments whose newest packet is older (default: none) */
    int64_t compress_after_ns; /* compress segments sealed longer ago (default 10 min;
                                  INT64_MAX: never) */
    int64_t flush_ns;        /* commit at least this often (default 1 s) */
    int sync;                /* fdatasync segments and sync the WAL at each flush (default 1) */
};
void cap_opts_default(struct cap_opts *o);
/* Parse one command-line setting: name is "quota" (SIZE or N%), "max-age",
 * "segment-bytes", "segment-seconds" or "compress-after". RW_EINPUT with a
 * message naming the option. */
int cap_opts_set(struct cap_opts *o, const char *name, const char *val, char *err) RW_WUR;
/* The settings in force (after cap_arch_open resolved them). */
const struct cap_opts *cap_arch_opts(const cap_arch_t *a);

/* Enforce the quota and max age now: delete the oldest sealed segments not
 * under a legal hold, index entries first, then files. Returns how many were
 * deleted. Runs after every segment seal and periodically in rewindd. */
int cap_retention_run(cap_arch_t *a, char *err) RW_WUR;


/* ---- disk space ----
 * Segment bytes are written only while the archive's file system keeps a
 * reserve free for the index: RocksDB must never meet a full disk, because
 * it then refuses every write until it recovers by itself, which needs 32
 * MiB free (its write buffer). The reserve is twice the index's own size
 * (RocksDB writes a flush's table before it deletes the log, a compaction's
 * output before its input) plus a margin of 1/32 of the file system, at least
 * 1 MiB and at most 256 MiB. A writer that hits the reserve first runs
 * retention if a quota is set (which then also deletes the oldest segments
 * until the file system has the reserve and a margin free), and fails with
 * RW_ENOSPC if that does not make room. */
struct cap_space {
    uint64_t avail;   /* bytes available to unprivileged users (df's Avail) */
    uint64_t size;    /* size of the file system */
    uint64_t reserve; /* segment writes stop when avail would fall below this */
    uint64_t resume;  /* a paused capture resumes when avail reaches this */
};
int cap_space_get(cap_arch_t *a, struct cap_space *sp, char *err) RW_WUR;

/* Open DIR for writing (creating it), recover segments a crash left open
 * (truncated to their last committed record). */
int cap_arch_open(const char *dir, const struct cap_opts *o, cap_arch_t **out, char *err) RW_WUR;
/* Seals nothing: close every point writer first. */
void cap_arch_close(cap_arch_t *a);
idx_t *cap_arch_index(cap_arch_t *a);
const char *cap_arch_dir(const cap_arch_t *a);

/* A writer for capture point `name` of DLT `dlt`. The point is created in the
 * index with its first packet, so opening a writer changes nothing. One
 * writer per point at a time: RW_EBUSY if the point already has one. */
int cap_pw_open(cap_arch_t *a, const char *name, int dlt, uint32_t snaplen, cap_pw_t **out,
                char *err) RW_WUR;
/* Append one packet; frac is nanoseconds (may exceed 1e9 in broken files: it
 * is stored as captured). May roll and flush.
 *
 * When cap_pw_add or cap_pw_flush fails (RW_ENOSPC: disk full; RW_EIO,
 * RW_EDB: the segment or the index could not be written), nothing already
 * committed is touched: the writer cuts its open segment back to the size
 * the index covers, forgets the packets after it (cap_pw_lost counts them,
 * and the packet of a failed cap_pw_add) and closes the file. That segment
 * is sealed as committed by cap_pw_resume, by the next cap_pw_add (which
 * then starts a new segment) or by cap_pw_close, whichever comes first and
 * finds room; else by recovery when the archive next opens. */
int cap_pw_add(cap_pw_t *w, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len,
               const uint8_t *data, char *err) RW_WUR;
/* Commit what was added if the flush interval has passed (force: now). */
int cap_pw_flush(cap_pw_t *w, int force, char *err) RW_WUR;
/* After a failure: run retention, check that the file system has room again
 * (cap_space.resume) and that the index takes writes, and seal the segment
 * that was cut back. 0 when writing can go on, else why not (RW_ENOSPC...). */
int cap_pw_resume(cap_pw_t *w, char *err) RW_WUR;
/* Seal the open segment and free the writer (also on error paths). */
int cap_pw_close(cap_pw_t *w, char *err) RW_WUR;
/* Packets added through this writer and stored (a failed write subtracts the
 * ones it lost). */
uint64_t cap_pw_packets(const cap_pw_t *w);
/* Packets given to cap_pw_add that failures lost (see cap_pw_add). */
uint64_t cap_pw_lost(const cap_pw_t *w);
const char *cap_pw_name(const cap_pw_t *w);
/* Record drop counters for the point (no-op before its first packet). */
int cap_pw_set_drops(cap_pw_t *w, uint64_t kernel, uint64_t queue, char *err) RW_WUR;

/* The LINKTYPE_ value a pcap file header carries for a libpcap DLT_ value. */
int cap_linktype_of_dlt(int dlt);

/* ---- compressed segments ---- */
struct cap_compress_stats {
    uint64_t segments, bytes_in, bytes_saved;
};
/* Compress every sealed segment whose file was last written longer ago than
 * the archive's compress-after setting (see compress.c for the order of the
 * swap). Stops between segments when *stop becomes nonzero. */
int cap_compress_run(cap_arch_t *a, const volatile int *stop, struct cap_compress_stats *st,
                     char *err) RW_WUR;
/* rewindd: a thread that runs cap_compress_run every few seconds. */
typedef struct cap_compressor cap_compressor_t;
int cap_compressor_start(cap_arch_t *a, cap_compressor_t **out, char *err) RW_WUR;
void cap_compressor_stop(cap_compressor_t *c); /* finishes the segment at hand */

/* ---- reading capture files ---- */
#define CAP_MAX_IFACES 64
typedef struct cap_reader cap_reader_t;
struct cap_rec {
    int ifid; /* pcapng interface (across sections), 0 for pcap */
    uint32_t sec, frac, caplen, len; /* frac in nanoseconds */
    const uint8_t *data;             /* valid until the next cap_reader_next() */
};
/* Open a pcap or pcapng file ("-" for stdin) with libpcap. RW_EINPUT with
 * "PATH: file header: <libpcap's reason>" if it is not a readable capture. */
int cap_reader_open(const char *path, cap_reader_t **out, char *err) RW_WUR;
/* 1 and a record, 0 at the end, RW_EINPUT "PATH: record N: <reason>". */
int cap_reader_next(cap_reader_t *r, struct cap_rec *rec, char *err) RW_WUR;
int cap_reader_dlt(const cap_reader_t *r);
uint32_t cap_reader_snaplen(const cap_reader_t *r);
uint64_t cap_reader_records(const cap_reader_t *r);
/* Bytes of the file consumed so far; *total gets the file size (0 for a pipe). */
uint64_t cap_reader_pos(const cap_reader_t *r, uint64_t *total);
void cap_reader_close(cap_reader_t *r);

/* ---- import ---- */
struct cap_import_stats {
    uint64_t packets, bytes; /* records stored */
    int points;              /* capture points written */
};
/* Progress callback: bytes of the file consumed so far, of total. */
typedef void (*cap_progress_fn)(void *arg, const char *path, uint64_t done, uint64_t total,
                                uint64_t packets);
/* Import a pcap or pcapng file into point `point` (a pcapng file with several
 * interfaces gives POINT for interface 0 and POINT-ifN for the others).
 * A fault in the file keeps every good record before it and returns
 * RW_EINPUT naming the file (as `label`, or path if NULL) and record. */
int cap_import_file(cap_arch_t *a, const char *path, const char *label, const char *point,
                    cap_progress_fn progress, void *parg, struct cap_import_stats *st,
                    char *err) RW_WUR;
/* The same for an open descriptor (borrowed: read from its current offset,
 * never closed), named `label` in messages: what a client hands the daemon,
 * read as the client would have read it, whatever it is (file, pipe,
 * socket). RW_EINPUT if it is not open for reading. */
int cap_import_fd(cap_arch_t *a, int fd, const char *label, const char *point,
                  cap_progress_fn progress, void *parg, struct cap_import_stats *st,
                  char *err) RW_WUR;

/* ---- handing imports to the daemon that owns an archive ---- */
/* Serve imports on the Unix socket DIR/rewindd.sock on a thread of its own:
 * a client passes an open file descriptor (so the daemon reads only what the
 * client could read) and gets progress and the result back. A request line
 * that is not an import goes to `other` (NULL: refused) on the connection's
 * own thread, with the connection (closed by the caller afterwards) and the
 * line without its '\n'; the daemon answers queries this way. */
typedef struct cap_handoff cap_handoff_t;
typedef void (*cap_request_fn)(void *arg, int conn, char *line);
int cap_handoff_start(cap_arch_t *a, cap_request_fn other, void *other_arg,
                      cap_handoff_t **out, char *err) RW_WUR;
/* Stop accepting, then wait for the connections being served: an import
 * finishes its file; `other` requests must be cut by their owner first. */
void cap_handoff_stop(cap_handoff_t *h);
/* Client side: import `path` through the daemon owning `dir`. Returns as
 * cap_import_file() would; RW_EBUSY if no daemon answers. */
int cap_handoff_import(const char *dir, const char *path, const char *point,
                       cap_progress_fn progress, void *parg, struct cap_import_stats *st,
                       char *err) RW_WUR;

/* ---- verify and reindex ---- */
typedef void (*cap_report_fn)(void *arg, const char *problem);
struct cap_verify_stats {
    uint64_t segments, packets, sampled, problems;
};
/* Check every segment against the index: file header, every record's
 * offset against its locator, counts, time span, bytes, and the postings of
 * a sample of packets. Each problem goes to report, precisely placed;
 * returns <0 only if the check itself could not run. */
int cap_verify(idx_t *ix, cap_report_fn report, void *arg, struct cap_verify_stats *st,
               char *err) RW_WUR;
/* Rebuild the index from the segment files alone: the old index directory
 * is moved aside (index.old-TIME), settings and holds are carried over when
 * it still opens, damaged record tails are cut off and reported. */
int cap_reindex(const char *dir, cap_report_fn report, void *arg, struct cap_verify_stats *st,
                char *err) RW_WUR;

/* ---- live capture ---- */
typedef struct cap_live cap_live_t;
/* Start capturing iface into point `point` (default: the interface name) on
 * a thread of its own; a second thread writes. Returns after the interface
 * is open and capturing. */
int cap_live_start(cap_arch_t *a, const char *iface, const char *point, cap_live_t **out,
                   char *err) RW_WUR;
/* Stop, drain, seal; fills a message and returns <0 if the capture failed. */
int cap_live_stop(cap_live_t *l, char *err) RW_WUR;
/* Nonzero if the capture thread has died (message in err). */
int cap_live_failed(cap_live_t *l, char *err);

/* A point whose writes fail (disk full, I/O error) pauses instead of dying:
 * the writer cuts the open segment back to what the index covers (see
 * cap_pw_add), the capture thread keeps reading the interface and drops
 * every packet (counted as queue drops and as paused drops), and every
 * CAP_LIVE_RETRY_S seconds the writer tries cap_pw_resume. The daemon logs
 * one line when a point pauses and one when it resumes. */
#define CAP_LIVE_RETRY_S 2
struct cap_live_state {
    char point[65];
    int paused;            /* 1 while capture is paused */
    uint64_t paused_drops; /* packets dropped because capture was paused (this run) */
    uint64_t pauses;       /* times capture paused (this run) */
    char reason[RW_ERRSZ]; /* why it paused, the last time */
};
void cap_live_state(cap_live_t *l, struct cap_live_state *st);

#endif
