/* intercept_int.h -- private to intercept/: reading a stored case record. */
#ifndef INTERCEPT_INT_H
#define INTERCEPT_INT_H

#include <stdatomic.h>

#include "intercept/intercept.h"

/* A stored case record (ic_case_json()'s output, as in DIR/cases/ID/case.json)
 * into c: the document's fields checked as ic_case_parse does, plus what the
 * store adds (created, ended, preserved). RW_ECORRUPT naming what is wrong. */
int ic_case_load(const char *text, size_t n, struct ic_case *c, char *err) RW_WUR;

/* The targets' part of a case's BPF ("host A or net P or ether host M",
 * no filter) into out: how many targets it has (0: user targets only, out
 * ""), -1 when it does not fit n. */
int ic_targets_bpf(const struct ic_case *c, char *out, size_t n);

/* ---- spool files (spool.c; man/rewind-archive.5, SPOOL) ---- */
#define IC_SPOOL_CAPLEN_MAX (256u << 10)
/* Bytes of a record with a point name of namelen bytes and caplen bytes. */
size_t ic_spool_rec_size(size_t namelen, uint32_t caplen);
/* Write one record at p (ic_spool_rec_size bytes); returns its size. */
size_t ic_spool_rec_put(uint8_t *p, uint64_t seq, int64_t ts, int dlt, uint32_t snaplen,
                        const char *point, const uint8_t *data, uint32_t caplen, uint32_t len);
/* The record at p (avail bytes): its size, 0 when not whole yet, -1 when
 * it is no record (P2). */
long ic_spool_rec_parse(const uint8_t *p, size_t avail, struct ic_spool_rec *r);
/* The first sequence numbers of the spool files in sdir, ascending. */
int ic_spool_files(const char *sdir, uint64_t **out, size_t *n, char *err) RW_WUR;
/* The next sequence number of a spool without changing it (a reader's). */
int ic_spool_count(const char *sdir, uint64_t *next_seq, uint64_t *bytes, char *err) RW_WUR;
/* Before appending again: cut a torn last record (a crash's), and find the
 * next sequence number (1 for an empty spool) and the bytes on disk. */
int ic_spool_recover(const char *sdir, uint64_t *next_seq, uint64_t *bytes, char *err) RW_WUR;

/* ---- the store's parts (store.c) that live.c uses ---- */
struct ic_live;
const char *ic_cases_dir(const ic_t *ic); /* DIR/cases */
idx_t *ic_index(const ic_t *ic);
struct ic_live *ic_live_of(const ic_t *ic);
void ic_live_set(ic_t *ic, struct ic_live *l);
void ic_live_free(struct ic_live *l);
/* Tee one stored packet (live.c), and whether a user target is active. */
void ic_live_tee(ic_t *ic, const struct arc_tap *t);
int ic_live_users(ic_t *ic);
/* Queue a stored packet for the followers that take it (follow.c). */
void ic_follow_tee(const struct arc_tap *t);

/* ---- etsi push (etsi.c) ---- */
#define IC_ETSI_WINDOW 256      /* PDUs sent again after a reconnection */
#define IC_ETSI_KEEPALIVE_S 5   /* a keep-alive TRI after this long idle */
enum { IC_DIR_FROM_TARGET = 0, IC_DIR_TO_TARGET = 1, IC_DIR_INDETERMINATE = 2 };
/* One PS-PDU of IP content (CC) for packet ip (iplen bytes), *out
 * malloc'ed; RW_ENOMEM. */
int ic_etsi_cc(const struct ic_case *c, const char *element, uint64_t seq, int64_t ts, int dir,
               const uint8_t *ip, size_t iplen, uint8_t **out, size_t *n) RW_WUR;
/* A keep-alive PS-PDU (a TRI). */
int ic_etsi_keepalive(const struct ic_case *c, const char *element, uint64_t seq, int64_t ts,
                      uint8_t **out, size_t *n) RW_WUR;
/* Where a frame's IP packet starts (0, *off), or -1 when it holds none. */
int ic_etsi_ip(int dlt, const uint8_t *d, uint32_t caplen, uint32_t *off);
/* From or to the target, or indeterminate. */
int ic_etsi_direction(const struct ic_case *c, ic_sel_t *sel, const uint8_t *ip, size_t n,
                      int64_t ts);
/* ---- the link to the agency (link.c): TCP, or TLS over it ---- */
typedef struct ic_link ic_link_t;
/* Check the TLS files of etsi case c as the pusher will load them (the CA,
 * the client certificate and its key, and that they match): RW_EINPUT
 * naming the field ("delivery.tls.ca: ..."). */
int ic_etsi_tls_check(const struct ic_case *c, char *err) RW_WUR;
/* Connect to c's deliver_to within 5 s and, with c->tls, make the TLS
 * handshake within 10 s verifying the agency's certificate: *out, or
 * RW_EIO (RW_EINPUT for settings that cannot work) saying why. stop is
 * polled while waiting. Free with ic_link_close(). */
int ic_link_open(const struct ic_case *c, atomic_int *stop, ic_link_t **out, char *err) RW_WUR;
/* Write all of b, waiting for room at most 10 s at a time; -1 when the
 * link broke, the peer went away or *stop was set. */
int ic_link_send(ic_link_t *l, const uint8_t *b, size_t n);
/* Read and drop what the agency sent (keep-alive responses): -1 once it
 * closed the link or the link broke, 0 otherwise. */
int ic_link_drain(ic_link_t *l);
void ic_link_close(ic_link_t *l);

struct ic_pusher;
int ic_pusher_start(ic_t *ic, const struct ic_case *c,
                    void (*log)(void *, const char *, const char *), void *log_arg,
                    struct ic_pusher **out, char *err) RW_WUR;
void ic_pusher_update(struct ic_pusher *p, const struct ic_case *c);
const char *ic_pusher_case(const struct ic_pusher *p);
/* 1 once the pusher has stopped by itself (its case ended and all was
 * sent, or its delivery is no longer etsi). */
int ic_pusher_done(struct ic_pusher *p);
void ic_pusher_stats(const struct ic_pusher *p, uint64_t *sent, uint64_t *reconnects,
                     int *connected, uint64_t *skipped);
/* Connection attempts that failed (this run), and why the last one did
 * ("" after a connection succeeded) into why (n bytes). */
uint64_t ic_pusher_failures(struct ic_pusher *p, char *why, size_t n);
void ic_pusher_stop(struct ic_pusher *p);

#endif
