/* archive.h -- the archive on disk, for its one writer: point writers that
 * append packets to time-sliced pcap segments and commit their index
 * entries, segment naming, retention (quota, age, legal holds), the disk
 * reserve, compression of sealed segments, verify and reindex.
 *
 * An arc_t owns the archive for writing (the index in IDX_WRITE mode).
 * Packets enter through a point writer (arc_pw_t), which appends them to the
 * point's open segment (nanosecond pcap, see man/rewind-archive.5), rolls
 * segments by time and size, and commits the segment bytes and then their
 * index entries at every flush: an indexed packet is always on disk.
 * capture/ feeds point writers (live capture, import); query/ reads what
 * they wrote. */
#ifndef ARC_ARCHIVE_H
#define ARC_ARCHIVE_H

#include <stdint.h>
#include <time.h>

#include "common/rw.h"
#include "index/index.h"

/* Archive settings. Retention and segment settings left 0 are "not given":
 * the archive's remembered value applies, else the default. Given ones are
 * remembered by the archive (man/rewindd.8, RETENTION). */
typedef struct arc arc_t;
typedef struct arc_pw arc_pw_t;

struct arc_opts {
    int64_t segment_ns;      /* roll after this much capture time (default 60 s) */
    uint64_t segment_bytes;  /* roll before a segment exceeds this (default 256 MiB) */
    uint64_t quota_bytes;    /* keep segments + index under this (default: no quota) */
    uint32_t quota_pct;      /* ... or under this percentage of the file system */
    int64_t max_age_ns;      /* delete segments whose newest packet is older (default: none) */
    int64_t compress_after_ns; /* compress segments sealed longer ago (default 10 min;
                                  INT64_MAX: never) */
    int64_t min_horizon_ns;  /* alarm when retention deletes packets less than this
                                before the newest one (default: no alarm) */
    int64_t flush_ns;        /* commit at least this often (default 1 s) */
    int sync;                /* fdatasync segments and sync the WAL at each flush (default 1) */
    /* Where the archive's own events go: recovery, retention, compression,
     * a capture that pauses. Library code does not print; the program that
     * opens the archive decides (rewindd and rewind log them with rw_log).
     * NULL: nowhere. */
    void (*log)(void *arg, const char *level, const char *msg);
    void *log_arg;
};
void arc_opts_default(struct arc_opts *o);
/* Parse one command-line setting: name is "quota" (SIZE or N%), "max-age",
 * "segment-bytes", "segment-seconds", "compress-after" or "min-horizon". RW_EINPUT with a
 * message naming the option. */
int arc_opts_set(struct arc_opts *o, const char *name, const char *val, char *err) RW_WUR;
/* Report an event ("info", "warn" or "error") through the archive's log
 * function. For archive/ and the capture threads that feed it. */
void arc_log(arc_t *a, const char *level, const char *fmt, ...) RW_PRINTF(3, 4);
/* The settings in force (after arc_open resolved them). */
const struct arc_opts *arc_get_opts(const arc_t *a);

/* Enforce the quota and max age now: delete the oldest sealed segments not
 * under a legal hold, index entries first, then files. Returns how many were
 * deleted. Runs after every segment seal and periodically in rewindd. */
int arc_retention_run(arc_t *a, char *err) RW_WUR;


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
struct arc_space {
    uint64_t avail;   /* bytes available to unprivileged users (df's Avail) */
    uint64_t size;    /* size of the file system */
    uint64_t reserve; /* segment writes stop when avail would fall below this */
    uint64_t resume;  /* a paused capture resumes when avail reaches this */
};
int arc_space_get(arc_t *a, struct arc_space *sp, char *err) RW_WUR;

/* Open DIR for writing (creating it), recover segments a crash left open
 * (truncated to their last committed record). */
int arc_open(const char *dir, const struct arc_opts *o, arc_t **out, char *err) RW_WUR;
/* Seals nothing: close every point writer first. */
void arc_close(arc_t *a);
idx_t *arc_index(arc_t *a);
const char *arc_dir(const arc_t *a);

/* A writer for capture point `name` of DLT `dlt`. The point is created in the
 * index with its first packet, so opening a writer changes nothing. One
 * writer per point at a time: RW_EBUSY if the point already has one. */
int arc_pw_open(arc_t *a, const char *name, int dlt, uint32_t snaplen, arc_pw_t **out,
                char *err) RW_WUR;
/* Append one packet; frac is nanoseconds (may exceed 1e9 in broken files: it
 * is stored as captured). May roll and flush.
 *
 * When arc_pw_add or arc_pw_flush fails (RW_ENOSPC: disk full; RW_EIO,
 * RW_EDB: the segment or the index could not be written), nothing already
 * committed is touched: the writer cuts its open segment back to the size
 * the index covers, forgets the packets after it (arc_pw_lost counts them,
 * and the packet of a failed arc_pw_add) and closes the file. That segment
 * is sealed as committed by arc_pw_resume, by the next arc_pw_add (which
 * then starts a new segment) or by arc_pw_close, whichever comes first and
 * finds room; else by recovery when the archive next opens. */
int arc_pw_add(arc_pw_t *w, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len,
               const uint8_t *data, char *err) RW_WUR;
/* Commit what was added if the flush interval has passed (force: now). */
int arc_pw_flush(arc_pw_t *w, int force, char *err) RW_WUR;
/* on: arc_pw_add no longer commits by itself when a flush interval has
 * passed (it still does near a full disk, and a roll seals): the caller
 * does, with arc_pw_flush, when arc_pw_flush_due says so. */
void arc_pw_set_manual_flush(arc_pw_t *w, int on);
/* 1 when packets wait to be committed and a flush interval has passed. */
int arc_pw_flush_due(const arc_pw_t *w);
/* After a failure: run retention, check that the file system has room again
 * (arc_space.resume) and that the index takes writes, and seal the segment
 * that was cut back. 0 when writing can go on, else why not (RW_ENOSPC...). */
int arc_pw_resume(arc_pw_t *w, char *err) RW_WUR;
/* Seal the open segment and free the writer (also on error paths). */
int arc_pw_close(arc_pw_t *w, char *err) RW_WUR;
/* Packets added through this writer and stored (a failed write subtracts the
 * ones it lost). */
uint64_t arc_pw_packets(const arc_pw_t *w);
/* The id of the first segment this writer opened (0: none yet). */
uint64_t arc_pw_first_segment(const arc_pw_t *w);
/* Packets still in the archive in point's segments from first_seg on:
 * with arc_pw_first_segment, what retention left of a writer's packets
 * (it may delete them at once when they are the archive's oldest). */
int arc_packets_since(arc_t *a, const char *point, uint64_t first_seg, uint64_t *packets,
                      char *err) RW_WUR;
/* Packets given to arc_pw_add that failures lost (see arc_pw_add). */
uint64_t arc_pw_lost(const arc_pw_t *w);
const char *arc_pw_name(const arc_pw_t *w);
/* Record drop counters for the point (no-op before its first packet). */
int arc_pw_set_drops(arc_pw_t *w, uint64_t kernel, uint64_t queue, char *err) RW_WUR;

/* ---- the tap ----
 * Every packet a point writer stores, once placed in its segment and
 * parsed for the index, just before its bytes are copied in, is shown to
 * the archive's tap, on the writer's thread: lawful intercept reads
 * subscriber identities (RADIUS accounting) from it, and tees the packets
 * of active cases and followers. (Should the copy then fail, the packet is
 * counted lost by the archive though the tap saw it.) The tap must not
 * block (capture waits on the writer) and must not keep the pointers past
 * its return. */
struct idx_parsed;
struct arc_tap {
    const char *point;               /* the point's name */
    int dlt;                         /* its link type (libpcap DLT_) */
    uint32_t snaplen;                /* its snapshot length */
    int64_t ts;                      /* ns */
    const uint8_t *data;
    uint32_t caplen, len;
    const struct idx_parsed *parsed; /* index/parse.h: the innermost flow, header end */
};
typedef void (*arc_tap_fn)(void *arg, const struct arc_tap *t);
/* Install the tap (NULL: none) before any writer is opened; the archive
 * borrows arg until arc_close. */
void arc_set_tap(arc_t *a, arc_tap_fn fn, void *arg);

/* ---- compressed segments ---- */
struct arc_compress_stats {
    uint64_t segments, bytes_in, bytes_saved;
};
/* Compress every sealed segment whose file was last written longer ago than
 * the archive's compress-after setting (see compress.c for the order of the
 * swap). Stops between segments when *stop becomes nonzero. */
int arc_compress_run(arc_t *a, const volatile int *stop, struct arc_compress_stats *st,
                     char *err) RW_WUR;
/* rewindd: a thread that runs arc_compress_run every few seconds. */
typedef struct arc_compressor arc_compressor_t;
int arc_compressor_start(arc_t *a, arc_compressor_t **out, char *err) RW_WUR;
void arc_compressor_stop(arc_compressor_t *c); /* finishes the segment at hand */

/* ---- legal holds ----
 * A hold keeps every segment with packets in [from, to) from retention
 * (whole segments: the filter is recorded, the whole window is held). The
 * writer places and releases holds; retention reads them at every pass, so
 * a hold takes effect at once. */
int arc_hold_add(arc_t *a, struct idx_hold *h, char *err) RW_WUR; /* fills h->id */
/* 1 released, 0 no such hold. */
int arc_hold_release(arc_t *a, uint64_t id, char *err) RW_WUR;

/* ---- segment file names ----
 * segments/POINT/YYYY-MM-DD/START_NS[-N].pcap[.lz4] under the archive
 * directory (man/rewind-archive.5, SEGMENT FILES): the day of the first
 * packet (UTC), its time in ns, a suffix when two segments of a point
 * start in the same nanosecond. The writer names segments with
 * arc_segname_make; recovery and reindex find them with arc_segname_list. */
#define ARC_SEG_REL_MAX 192 /* fits struct idx_seg.path */
struct arc_segname {
    char rel[ARC_SEG_REL_MAX]; /* relative to the archive directory */
    char point[65];
    int64_t start;             /* ns, from the name */
    int suffix;                /* 0 for none */
    int compressed;            /* .pcap.lz4 */
    int partial;               /* .pcap.lz4.tmp: a compression a crash cut short */
    struct timespec mtime;     /* of the file, when listed */
};
/* The relative path of a plain segment of point starting at start_ns;
 * *day_dir (may be NULL) gets the directory part ("segments/P/DAY"). */
int arc_segname_make(const char *point, int64_t start_ns, int suffix, char *rel, size_t n,
                     char *day_dir, size_t dn) RW_WUR;
/* Parse a relative path; 0 if it names a segment, -1 if not. */
int arc_segname_parse(const char *rel, struct arc_segname *out);
/* The segment files of point (NULL: every point) under dir, in the order
 * they were written (file time, then name). *out malloc'ed. RW_EIO if
 * dir/segments cannot be read. */
int arc_segname_list(const char *dir, const char *point, struct arc_segname **out, size_t *n,
                     char *err) RW_WUR;

/* ---- verify and reindex ---- */
typedef void (*arc_report_fn)(void *arg, const char *problem);
struct arc_verify_stats {
    uint64_t segments, packets, sampled, problems;
    uint64_t damaged;  /* damaged ranges recorded (K16) whose loss is not accepted yet */
    uint64_t accepted; /* ... and those whose loss was accepted (quarantined) */
};
/* Check every segment against the index: file header, every record's
 * offset against its locator, counts, time span, bytes, and the postings of
 * a sample of packets. Each problem goes to report, precisely placed;
 * returns <0 only if the check itself could not run. */
int arc_verify(idx_t *ix, arc_report_fn report, void *arg, struct arc_verify_stats *st,
               char *err) RW_WUR;
/* arc_verify() of the archive in dir, read as a reader does (it works
 * while a daemon writes the archive). */
int arc_verify_dir(const char *dir, arc_report_fn report, void *arg, struct arc_verify_stats *st,
                   char *err) RW_WUR;
/* Rebuild the index from the segment files alone: the old index directory
 * is moved aside (index.old-TIME), settings and holds are carried over when
 * it still opens. Every readable record is indexed: after a compressed
 * block that does not read, or bytes that are no records, records resume at
 * the next record boundary, and the bytes between are recorded as a damaged
 * range (idx_segdamage, K16; an acceptance the old index recorded for the
 * same range is kept); a plain file's partial last record (a crash's) is
 * cut off. Each is reported. A segment of which nothing can be indexed is
 * renamed NAME.unreadable, never deleted. */
int arc_reindex(const char *dir, arc_report_fn report, void *arg, struct arc_verify_stats *st,
                char *err) RW_WUR;

/* Accept the loss of every recorded damaged range (K16) not accepted yet
 * ('rewind verify --quarantine'): each is marked accepted with the time and
 * "by WHO: REASON", and written to the archive's log (arc_log, "warn") with
 * its segment, bytes and times. Readable packets are never touched. *n gets
 * how many. Writer only. */
int arc_quarantine(arc_t *a, const char *who, const char *reason, uint64_t *n, char *err) RW_WUR;

#endif
