/* reasm.h -- TCP stream reassembly, one direction of a connection at a time.
 *
 * Segments go in as captured (any order, repeated, overlapping); the
 * direction's bytes come out in sequence order through a callback, each
 * byte once. The rules, as Wireshark's defaults have them:
 *
 *  R1 Sequence numbers are 32-bit and wrap; a direction keeps a 64-bit
 *     offset from its first byte, so a stream may be longer than 4 GiB.
 *  R2 Where two segments overlap, the first copy captured wins; bytes
 *     already delivered are never delivered again (retransmissions).
 *  R3 A SYN sets the first byte (ISN + 1). Without one the stream started
 *     before the capture did ("mid-way"): its first segment seen sets it, and
 *     earlier bytes captured later are dropped as old.
 *  R4 Bytes never captured are never invented: a hole that can no longer be
 *     filled (the direction ended, or its buffer or the pool is full) is
 *     reported as a gap with its length, and the bytes after it follow.
 *  R5 FIN ends the direction once every byte before it was delivered (or
 *     reported missing); RST ends it at once, after what was buffered.
 *  R6 Memory is bounded: out-of-order bytes waiting for a hole are limited
 *     per direction (rsm_dir_new's max) and across directions by a pool; the
 *     oldest hole gives way first (R4). In-order bytes are never buffered.
 *
 * The callbacks are called from rsm_segment(), rsm_end() and rsm_free()
 * never: a direction freed while bytes wait loses them (call rsm_end first). */
#ifndef RSM_REASM_H
#define RSM_REASM_H

#include <stddef.h>
#include <stdint.h>

#include "common/rw.h"

/* Bytes held across every direction that shares the pool. Not thread-safe:
 * one pool per thread of analysis. */
struct rsm_pool {
    size_t used, max; /* max 0: no limit beyond each direction's own */
};

#define RSM_SYN 0x02
#define RSM_FIN 0x01
#define RSM_RST 0x04

/* What a direction hands on. ts is the capture time (ns) of the segment
 * whose arrival let the bytes out. A nonzero return stops the direction:
 * later segments are ignored (rsm_stopped() says so). */
struct rsm_sink {
    int (*data)(void *arg, const uint8_t *p, size_t n, int64_t ts);
    int (*gap)(void *arg, uint64_t len, int64_t ts);
    void (*end)(void *arg, int rst, int64_t ts); /* FIN reached or RST; at most once */
    void *arg;
};

typedef struct rsm_dir rsm_dir_t;

/* A new direction feeding sink, holding at most max out-of-order bytes
 * (0: 1 MiB) from pool (may be NULL). NULL when out of memory. */
rsm_dir_t *rsm_dir_new(const struct rsm_sink *sink, struct rsm_pool *pool, size_t max);
/* Frees what is buffered (without delivering it) and d; NULL is fine. */
void rsm_dir_free(rsm_dir_t *d);

/* One captured segment of this direction: seq, TCP flags, and the payload
 * (n bytes, as captured: a segment cut short by the snap length gives what
 * it has, and the rest becomes a gap when it cannot be filled). */
void rsm_segment(rsm_dir_t *d, uint32_t seq, int flags, const uint8_t *p, size_t n, int64_t ts);
/* The capture ended (or the connection was given up): every hole left is
 * a gap, every buffered byte is delivered, and the sink's end is called if
 * it was not. */
void rsm_end(rsm_dir_t *d, int64_t ts);

struct rsm_stats {
    uint64_t delivered;      /* bytes handed to data() */
    uint64_t missing;        /* bytes reported by gap() */
    uint64_t gaps;           /* gap() calls */
    uint64_t retransmitted;  /* bytes received again (dropped, R2) */
    uint64_t buffered;       /* bytes waiting now */
    int midstream;           /* no SYN: the stream started before the capture (R3) */
    int syn, fin, rst;       /* seen */
};
void rsm_stats(const rsm_dir_t *d, struct rsm_stats *st);
/* 1 once the sink asked to stop or the direction ended. */
int rsm_stopped(const rsm_dir_t *d);

#endif
