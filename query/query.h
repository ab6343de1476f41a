/* query.h -- answer "packets in [from, to) matching FILTER" from an archive.
 *
 * The index narrows (query/filter.h plans over index postings), libpcap's
 * compiled filter judges every candidate, and the answer streams: packets of
 * one capture point in capture order, points merged by timestamp. Memory is
 * bounded by a batch of segments' candidate bitmaps and one read buffer per
 * point, whatever the archive or result size. */
#ifndef QRY_QUERY_H
#define QRY_QUERY_H

#include <stdint.h>

#include "common/rw.h"

typedef struct idx idx_t; /* the archive's index (index/index.h), opened by read.h */

struct qry_spec {
    int64_t from, to;    /* [from, to) in ns; RW_TIME_MIN / RW_TIME_MAX for open ends */
    const char *filter;  /* BPF expression; NULL or "" for all */
    const char **points; /* NULL-terminated names, or NULL for every point */
    uint64_t limit_packets, limit_bytes; /* 0: no limit */
    int headers_only;    /* cut every packet after its innermost header (transport,
                            else network, else link), original length kept, before the
                            filter judges it: answers without payload (the noc role) */
    const uint64_t *segs; /* when not NULL: only these segments (ids, ascending, nsegs of
                             them) take part; for callers that answer the rest of the
                             window another way (analytics: flow records) */
    size_t nsegs;
};

typedef struct qry qry_t;

/* A point taking part in the answer. */
struct qry_point {
    char name[65];
    int dlt;          /* libpcap DLT_ value */
    int linktype;     /* LINKTYPE_ value for file headers */
    uint32_t snaplen;
};

struct qry_pkt {
    int point;           /* index into qry_points() */
    uint32_t sec, frac;  /* as stored: frac in nanoseconds */
    uint32_t caplen, len;
    const uint8_t *data; /* valid until the next qry_next() */
};

/* Primitives a filter may join with and/or: libpcap's compile time grows
 * much faster than the filter (and compiles are serial). */
#define QRY_MAX_PRIMITIVES 128

/* Plan a query. Bad points, a filter of more than QRY_MAX_PRIMITIVES
 * primitives, or a filter libpcap rejects for a point's link type are
 * RW_EINPUT with libpcap's message (for a query over every point,
 * only when it rejects it for every point: see qry_skipped()). The index is read as it stands
 * now (call idx_refresh() first to follow a writer). */
int qry_new(idx_t *ix, const struct qry_spec *spec, qry_t **out, char *err) RW_WUR;

/* The step of planning whose input was bad, for callers that answer an
 * error with a code (HTTP 400 bad_filter or bad_parameter). */
enum qry_step {
    QRY_STEP_SPEC = 0,   /* the window, the points, too many link types */
    QRY_STEP_FILTER = 1, /* libpcap rejected the filter for a point's link type */
};
/* qry_new(), also setting *step (when not NULL) to the step that failed;
 * QRY_STEP_SPEC on success and for failures that are not RW_EINPUT. */
int qry_new_ex(idx_t *ix, const struct qry_spec *spec, qry_t **out, enum qry_step *step,
               char *err) RW_WUR;
void qry_free(qry_t *q);

/* Points with segments in the window, in the order the packets refer to. */
const struct qry_point *qry_points(const qry_t *q, int *n);

/* Next matching packet: 1 with *pkt filled, 0 at the end, <0 on error. */
int qry_next(qry_t *q, struct qry_pkt *pkt, char *err) RW_WUR;

/* While it scans, qry_next() asks fn(arg) at each segment and every 1024
 * packets it judges or skips; a nonzero answer ends the query, qry_next()
 * returning RW_ESTOP. For servers whose client went away or which stop: a
 * scan with matches far apart would otherwise run on until the next one. */
void qry_set_cancel(qry_t *q, int (*fn)(void *arg), void *arg);

/* Points left out of the answer: a query over every point (spec->points
 * NULL) with a filter skips a point whose link type libpcap cannot filter
 * (NFLOG, a type it does not know) rather than fail, as long as another
 * point remains; a query that names the point fails with libpcap's
 * message. One line per point ("capture point 'nf' left out: filter 'port
 * 25': NFLOG link-layer type filtering not implemented (link type
 * NFLOG)"), up to QRY_SKIP_MAX, *more (may be NULL) counting the others.
 * Library code does not print: front ends warn. Valid until qry_free(). */
#define QRY_SKIP_MAX 8
const char *const *qry_skipped(const qry_t *q, size_t *n, size_t *more);

/* Plan description for logs and the X-Rewind-Plan header. */
const char *qry_plan_desc(const qry_t *q);

/* A posting of the index that did not decode, met while planning
 * (idx_postings()). Its segment was read in full, every packet judged by
 * the filter, so the answer is still complete; only slower. Library code
 * does not log: the front ends that answer queries read these once the
 * query ends (or is cut) and log them. */
struct qry_damage {
    uint64_t seg;   /* segment id */
    int kind;       /* term kind (index/parse.h) or IDX_K_* */
    char path[192]; /* the segment file, relative to the archive directory */
};
#define QRY_DAMAGE_MAX 16
/* The distinct (segment, kind) pairs met so far by qry_next(), up to
 * QRY_DAMAGE_MAX of them; *more (more may be NULL) counts the postings met
 * beyond those. Valid until qry_free(). */
const struct qry_damage *qry_damage(const qry_t *q, size_t *n, size_t *more);
/* The same as one line for a log (RW_ERRSZ bytes hold it): "damaged index:
 * the posting of port (kind 3) in segment 12 (segments/...) does not decode;
 * ...". Returns 1 if there was damage, 0 (and "") if not. */
int qry_damage_desc(const qry_t *q, char *buf, size_t n);

/* Packets the answer lacks because a segment file is damaged: the one
 * exception to "complete, or an error" (DESIGN.md, partial answers). A
 * block of a compressed segment that does not decompress or fails its
 * checksum, a record whose header disagrees with the index (caplen, time),
 * bytes missing from a file that ends early: its packets are left out, the
 * query goes on with the others (the blocks are independent), and each
 * damaged range is noted here. Ranges that 'rewind reindex' recorded as
 * damaged (man/rewind-archive.5, K16) in segments of the window are noted
 * too, as soon as the query is planned: their packets are no longer in the
 * index, yet missing from the answer all the same. Library code does not
 * print: the front ends warn (one line per range), exit 3, end a pcapng
 * answer with a note and an HTTP answer with a trailer. */
struct qry_loss {
    int point;            /* index into qry_points() */
    uint64_t seg;         /* segment id */
    char path[192];       /* the segment file, relative to the archive directory */
    uint32_t block, last_block; /* the 64 KiB blocks of pcap bytes it spans (SEGF_BLOCK) */
    uint64_t lo, hi;      /* pcap bytes [lo, hi) */
    uint64_t packets;     /* candidates of this query there that could not be read (met
                             while reading; 0 for a recorded range: the index no longer
                             knows its packets) */
    int recorded;         /* 0 met while reading; else IDX_DMG_FOUND or IDX_DMG_ACCEPTED */
    int64_t ts_before, ts_after; /* recorded: times of the packets around the range */
    int64_t accepted;     /* recorded and accepted: when */
    char why[96];         /* "fails its checksum", "the record header disagrees ..." */
};
#define QRY_LOSS_MAX 64
/* The damaged ranges met so far (merged where they touch), up to
 * QRY_LOSS_MAX of them; *more (may be NULL) counts the faults met beyond
 * those. Valid until qry_free(). The answer is complete iff *n and *more
 * are 0 once qry_next() has returned 0. */
const struct qry_loss *qry_losses(const qry_t *q, size_t *n, size_t *more);
/* One warning line for a range (RW_ERRSZ bytes hold it): "damaged segment
 * segments/P/D/N.pcap.lz4 (id 3): block 5 (pcap bytes 327680-393215) fails
 * its checksum: 12 packets that may match are not in the answer". */
void qry_loss_desc(const struct qry_loss *l, char *buf, size_t n);
/* Blocks of damage that the queries of this process have met, since it
 * started (a daemon's /metrics): read[0] met while reading, [1] recorded
 * by reindex and not accepted, [2] recorded and accepted. */
void qry_loss_totals(uint64_t out[3]);

/* ---- output ---- */
typedef int (*qry_write_fn)(void *arg, const void *buf, size_t n);
typedef struct qry_out qry_out_t;
enum { QRY_PCAP = 0, QRY_PCAPNG = 1 };

/* A capture-file writer over a write callback (buffered). For QRY_PCAP all
 * points must share a link type: RW_EINPUT otherwise. The pcap header has
 * the nanosecond magic and the largest snaplen of the points. Nothing goes
 * to fn before the first qry_out_packet() or qry_out_close(), so a caller
 * may open what fn writes to once this has succeeded. */
int qry_out_new(int format, const struct qry_point *pts, int npts, qry_write_fn fn, void *arg,
                qry_out_t **out, char *err) RW_WUR;
int qry_out_packet(qry_out_t *o, const struct qry_pkt *p) RW_WUR;
/* Hand what is buffered to the write callback now (an answer that then
 * waits for packets, such as follow=1, must not keep its last ones back);
 * <0 if a write failed. */
int qry_out_flush(qry_out_t *o) RW_WUR;
/* End a pcapng answer with what q lacks (qry_losses): one Interface
 * Statistics Block per damaged range, on the interface of its point, whose
 * comment is qry_loss_desc()'s line: readers that do not show it (tcpdump,
 * libpcap) skip it. A pcap file has no place for it: nothing is written.
 * Call it after qry_next() returned 0, before qry_out_close(). */
int qry_out_losses(qry_out_t *o, const qry_t *q) RW_WUR;
/* Flush; returns <0 if any write failed. Frees. */
int qry_out_close(qry_out_t *o) RW_WUR;

#endif
