/* read.h -- the archive as the front ends show it: status, segments, holds.
 *
 * httpd/, ctl/ and cli/ answer from here and never from idx_* directly, so
 * that a total is computed once and means the same everywhere: `rewind
 * status`, /api/v1/status, /metrics and the control socket's status verb
 * all show the same numbers. Packets themselves come from query.h. */
#ifndef QRY_READ_H
#define QRY_READ_H

#include <stddef.h>
#include <stdint.h>

#include "common/rw.h"

typedef struct idx idx_t;

/* Open the archive in dir for reading (a RocksDB secondary instance that
 * follows a writer, if one runs). RW_EINPUT if dir is not an archive. */
int qry_archive_open(const char *dir, idx_t **out, char *err) RW_WUR;
void qry_archive_close(idx_t *ix); /* accepts NULL */
const char *qry_archive_dir(const idx_t *ix);

/* What only the daemon knows of a point it captures live. */
struct qry_live {
    char point[65];
    int linktype;          /* libpcap DLT_ of the interface */
    int paused;            /* 1 while capture is paused (disk full, I/O error) */
    uint64_t paused_drops; /* packets dropped while paused, since the daemon started */
    char reason[RW_ERRSZ]; /* why it paused, the last time */
};
/* Fills up to max entries and returns how many. */
typedef size_t (*qry_live_fn)(void *arg, struct qry_live *out, size_t max);
#define QRY_MAX_LIVE 64

struct qry_point_status {
    char name[65];
    char linktype[32]; /* libpcap's name ("EN10MB", "LINUX_SLL"), or "DLT_n" */
    uint64_t segments; /* segments holding packets */
    uint64_t open_segments, compressed_segments;
    uint64_t packets;
    uint64_t captured_bytes; /* sum of captured lengths: what the segments hold */
    uint64_t wire_bytes;     /* sum of original lengths: what crossed the wire */
    uint64_t pcap_bytes;     /* segment bytes as pcap (uncompressed) */
    uint64_t stored_bytes;   /* segment bytes on disk */
    uint64_t compressed_pcap_bytes, compressed_stored_bytes; /* of the compressed segments */
    int64_t first, last;     /* ns, oldest and newest packet; valid when packets > 0 */
    uint64_t kernel_drops, queue_drops;
    int live;                /* the daemon captures it: the three fields below hold */
    int paused;
    uint64_t paused_drops;
    char reason[RW_ERRSZ];
};

struct qry_status {
    char archive[1024];
    struct qry_point_status *points; /* npoints of them, by name; malloc'ed */
    size_t npoints;
    struct qry_point_status total;   /* the sums (name "total") */
    uint64_t index_bytes;            /* RocksDB on disk */
    uint64_t disk_available;         /* df's Avail of the archive's file system, 0 unknown */
    uint64_t quota_bytes;            /* retention settings, 0: none */
    uint32_t quota_pct;
    int64_t max_age_ns;
    int64_t min_horizon_ns;          /* --min-horizon, 0: none */
    int below_horizon;               /* retention deleted packets within the minimum
                                        horizon, and the archive still reaches back less */
    uint64_t holds;
};
/* The status of the archive behind ix; live (may be NULL) adds the live
 * capture state, and the live points that have stored no packet yet (with
 * zero counts). Free with qry_status_free(). */
int qry_status_get(idx_t *ix, qry_live_fn live, void *live_arg, struct qry_status *st,
                   char *err) RW_WUR;
void qry_status_free(struct qry_status *st);

/* One segment of the catalogue. */
struct qry_segment {
    uint64_t id;
    char point[65];
    int open;                 /* still written */
    int compressed;           /* NAME.pcap.lz4 */
    int64_t first, last;      /* ns */
    uint64_t packets, captured_bytes, wire_bytes;
    uint64_t pcap_bytes, stored_bytes;
    char path[192];           /* relative to the archive directory */
};
/* Segments with packets in [from, to), in id order, of the points named
 * in the NULL-terminated points (NULL: every point; an unknown name is
 * RW_EINPUT). *out malloc'ed. */
int qry_segments(idx_t *ix, int64_t from, int64_t to, const char *const *points,
                 struct qry_segment **out, size_t *n, char *err) RW_WUR;

struct qry_hold {
    uint64_t id;
    int64_t from, to, created;
    char filter[256];
    char reason[256];
    char author[128]; /* who placed it, "" if not recorded */
};
/* Every legal hold, by id. *out malloc'ed. */
int qry_holds(idx_t *ix, struct qry_hold **out, size_t *n, char *err) RW_WUR;

#endif
