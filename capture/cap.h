/* cap.h -- packets into the archive: reading pcap/pcapng files, importing
 * them, and live capture from interfaces. Both feed point writers of
 * archive/archive.h. */
#ifndef CAP_H
#define CAP_H

#include <stdint.h>

#include "common/rw.h"
#include "archive/archive.h"

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
    uint64_t kept;           /* of those, still in the archive when the import ended */
    uint64_t removed;        /* ... and deleted by retention at once (the archive's oldest
                                under its quota or max age) */
    int points;              /* capture points written */
};
/* Progress callback: bytes of the file consumed so far, of total. */
typedef void (*cap_progress_fn)(void *arg, const char *path, uint64_t done, uint64_t total,
                                uint64_t packets);
/* Import a pcap or pcapng file into point `point` (a pcapng file with several
 * interfaces gives POINT for interface 0 and POINT-ifN for the others).
 * A fault in the file keeps every good record before it and returns
 * RW_EINPUT naming the file (as `label`, or path if NULL) and record. */
int cap_import_file(arc_t *a, const char *path, const char *label, const char *point,
                    cap_progress_fn progress, void *parg, struct cap_import_stats *st,
                    char *err) RW_WUR;
/* The same for an open descriptor (borrowed: read from its current offset,
 * never closed), named `label` in messages: what a client hands the daemon,
 * read as the client would have read it, whatever it is (file, pipe,
 * socket). RW_EINPUT if it is not open for reading. */
int cap_import_fd(arc_t *a, int fd, const char *label, const char *point,
                  cap_progress_fn progress, void *parg, struct cap_import_stats *st,
                  char *err) RW_WUR;

/* ---- live capture ---- */
typedef struct cap_live cap_live_t;
/* 0 if capture can open interface iface, else RW_EINPUT naming the
 * interfaces it can open (pcap_findalldevs), for a check before anything
 * is created. */
int cap_iface_check(const char *iface, char *err) RW_WUR;
/* Start capturing iface into point `point` (default: the interface name) on
 * a thread of its own; a second thread writes. Returns after the interface
 * is open and capturing. */
int cap_live_start(arc_t *a, const char *iface, const char *point, cap_live_t **out,
                   char *err) RW_WUR;
/* Stop, drain, seal; fills a message and returns <0 if the capture failed. */
int cap_live_stop(cap_live_t *l, char *err) RW_WUR;
/* Nonzero if the capture thread has died (message in err). */
int cap_live_failed(cap_live_t *l, char *err);

/* A point whose writes fail (disk full, I/O error) pauses instead of dying:
 * the writer cuts the open segment back to what the index covers (see
 * arc_pw_add), the capture thread keeps reading the interface and drops
 * every packet (counted as queue drops and as paused drops), and every
 * CAP_LIVE_RETRY_S seconds the writer tries arc_pw_resume. The daemon logs
 * one line when a point pauses and one when it resumes. */
#define CAP_LIVE_RETRY_S 2
struct cap_live_state {
    char point[65];
    int dlt;               /* the interface's link type (libpcap DLT_) */
    int paused;            /* 1 while capture is paused */
    uint64_t paused_drops; /* packets dropped because capture was paused (this run) */
    uint64_t pauses;       /* times capture paused (this run) */
    char reason[RW_ERRSZ]; /* why it paused, the last time */
};
void cap_live_state(cap_live_t *l, struct cap_live_state *st);

#endif
