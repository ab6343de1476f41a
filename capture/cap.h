/* cap.h -- packets into the archive: reading pcap/pcapng files, importing
 * them, and live capture from interfaces. Both feed point writers of
 * archive/archive.h. */
#ifndef CAP_H
#define CAP_H

#include <signal.h>
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
/* The same for an open descriptor (borrowed: read from where it stands,
 * never closed; a pipe will do), named `label` in messages. */
int cap_reader_open_fd(int fd, const char *label, cap_reader_t **out, char *err) RW_WUR;
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
 * a thread of its own, which also indexes and writes. Returns after the
 * interface is open and capturing. */
int cap_live_start(arc_t *a, const char *iface, const char *point, cap_live_t **out,
                   char *err) RW_WUR;
/* The kernel's capture ring per interface (libpcap's buffer size, a
 * TPACKET_V3 ring on Linux): what holds packets while the writer is busy. */
#define CAP_BUFFER_DEFAULT (64ULL << 20)
#define CAP_BUFFER_MIN (1ULL << 20)
#define CAP_BUFFER_MAX (2ULL << 30)
struct cap_live_opts {
    uint64_t buffer_bytes; /* 0: CAP_BUFFER_DEFAULT */
};
/* --buffer-size: a size with a unit (16M, 1G), or a plain number of KiB as
 * tcpdump's -B takes it; CAP_BUFFER_MIN..CAP_BUFFER_MAX. RW_EINPUT saying
 * what is expected. */
int cap_buffer_parse(const char *s, uint64_t *bytes, char *err) RW_WUR;
/* cap_live_start with options (o may be NULL: the defaults). */
int cap_live_start_opts(arc_t *a, const char *iface, const char *point,
                        const struct cap_live_opts *o, cap_live_t **out, char *err) RW_WUR;
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

/* ---- replay: packets out of an interface (capture/replay.c) ---- */
typedef struct cap_sender cap_sender_t;
/* Open interface iface for sending (libpcap; needs CAP_NET_RAW). The handle
 * receives nothing: its kernel filter refuses every packet. RW_EINPUT when
 * there is no such interface (naming those there are) or it is down, RW_EIO
 * for anything else libpcap refuses (permission). */
int cap_sender_open(const char *iface, cap_sender_t **out, char *err) RW_WUR;
/* The interface's link type (libpcap DLT_). */
int cap_sender_dlt(const cap_sender_t *s);
/* 0 if frames of link type dlt can be sent on s as they are (Ethernet on
 * Ethernet), else RW_EINPUT naming both link types. */
int cap_sender_accepts(const cap_sender_t *s, int dlt, char *err) RW_WUR;
/* Send len bytes as one frame, as they are. 0; RW_EINPUT for a frame the
 * interface refuses (longer than its MTU, shorter than a link header): the
 * caller may count it and go on; RW_EIO when the interface takes nothing
 * more (down, gone). A full transmit queue is waited out (up to a second). */
int cap_sender_send(cap_sender_t *s, const uint8_t *data, uint32_t len, char *err) RW_WUR;
void cap_sender_close(cap_sender_t *s);

/* The pace of a replay: each packet's CLOCK_MONOTONIC deadline is absolute,
 * computed from the first packet's, so a late packet (the process was not
 * scheduled) makes the next ones follow at once, and no error accumulates.
 *   RECORDED  the recorded gaps divided by rate (the speed factor; a gap
 *             where the clock stepped backwards counts as none)
 *   MBPS      rate Mbit/s of frames as sent (caplen bytes)
 *   PPS       rate packets per second
 *   TOP       no waiting */
enum cap_pace_mode { CAP_PACE_RECORDED, CAP_PACE_MBPS, CAP_PACE_PPS, CAP_PACE_TOP };
struct cap_pacer {
    enum cap_pace_mode mode;
    double rate;
    int64_t base;    /* deadline of the first packet (CLOCK_MONOTONIC ns) */
    double offset;   /* ns after base of the next packet's deadline */
    int64_t last_ts; /* recorded time of the previous packet (RECORDED) */
    int started, new_round;
};
void cap_pacer_init(struct cap_pacer *p, enum cap_pace_mode mode, double rate);
/* The deadline of the next packet, recorded at ts_ns, of len bytes as sent;
 * now (CLOCK_MONOTONIC ns) is the first packet's deadline. */
int64_t cap_pacer_next(struct cap_pacer *p, int64_t ts_ns, uint32_t len, int64_t now);
/* The file starts again (--loop): the next packet follows the previous one
 * at once at the recorded pace, and at the same rate at a fixed rate. */
void cap_pacer_round(struct cap_pacer *p);
/* Wait until CLOCK_MONOTONIC reaches deadline_ns: clock_nanosleep to a
 * little before it, then spin (a wake-up is often tens of microseconds
 * late). 0, or RW_ESTOP once *stop (may be NULL) is nonzero; a signal
 * interrupts the sleep so that a handler setting *stop is seen at once. */
int cap_wait_until(int64_t deadline_ns, const volatile sig_atomic_t *stop);

struct cap_replay_stats {
    uint64_t packets, bytes; /* sent; bytes as sent */
    uint64_t truncated;      /* of those, shorter than on the wire (caplen < len): sent as
                                captured */
    uint64_t errors;         /* frames the interface refused (not in packets) */
    uint64_t late;           /* sent more than CAP_REPLAY_LATE_NS after their deadline */
    int64_t max_late_ns;
    int64_t first_ns, last_ns; /* CLOCK_MONOTONIC of the first and the last send */
    char first_error[RW_ERRSZ];
};
#define CAP_REPLAY_LATE_NS 1000000
struct cap_replay_ctl {
    const volatile sig_atomic_t *stop; /* nonzero: stop (a signal handler's flag); may be NULL */
    void (*progress)(void *arg, const struct cap_replay_stats *st); /* may be NULL */
    void *parg;
    int64_t progress_ns; /* call progress about this often */
    int realtime; /* pace under SCHED_FIFO (lowest priority) when permitted: see cap_replay */
};
/* Send r's records out of s at p's pace, adding to st (which the caller
 * zeroes once, before the first round). A capture s does not accept
 * (cap_sender_accepts) is refused before anything is sent. With
 * c->realtime and a pace that waits, the calling thread runs under
 * SCHED_FIFO at the lowest real-time priority while it sends, when the
 * process may (root, CAP_SYS_NICE; silently not otherwise): on a busy
 * machine a normal thread's wake-up can be milliseconds late, a real-time
 * one's is not. Its policy is put back before returning. Returns 0 at the end of r, RW_ESTOP when stopped, RW_EINPUT for
 * a record r cannot read (the records before it were sent), RW_EIO when
 * the interface fails. */
int cap_replay(cap_sender_t *s, cap_reader_t *r, struct cap_pacer *p,
               const struct cap_replay_ctl *c, struct cap_replay_stats *st, char *err) RW_WUR;

#endif
