/* reasm.c -- TCP stream reassembly of one direction (rules R1-R6 in reasm.h). */
#include "analytics/reasm.h"

#include <stdlib.h>
#include <string.h>

#define RSM_DEFAULT_MAX (1u << 20)

/* An out-of-order piece waiting for the bytes before it: [off, off + len)
 * of the direction, disjoint from every other piece (R2 trims on entry). */
struct piece {
    struct piece *next;
    uint64_t off;
    size_t len;
    uint8_t data[];
};

struct rsm_dir {
    struct rsm_sink sink;
    struct rsm_pool *pool;
    size_t max;
    int started, done, ended;
    uint32_t base;     /* sequence number of offset 0 */
    uint64_t next;     /* offset of the next byte to deliver */
    uint64_t fin_off;  /* offset FIN stands at; UINT64_MAX: none seen */
    uint64_t high;     /* end of the furthest byte seen (kept or not) */
    struct piece *head; /* sorted by off */
    struct rsm_stats st;
};

rsm_dir_t *rsm_dir_new(const struct rsm_sink *sink, struct rsm_pool *pool, size_t max)
{
    rsm_dir_t *d = calloc(1, sizeof *d);
    if (!d)
        return NULL;
    d->sink = *sink;
    d->pool = pool;
    d->max = max ? max : RSM_DEFAULT_MAX;
    d->fin_off = UINT64_MAX;
    return d;
}

static void drop_pieces(rsm_dir_t *d)
{
    struct piece *p = d->head, *nx;
    for (; p; p = nx) {
        nx = p->next;
        if (d->pool)
            d->pool->used -= p->len;
        free(p);
    }
    d->head = NULL;
    d->st.buffered = 0;
}

void rsm_dir_free(rsm_dir_t *d)
{
    if (!d)
        return;
    drop_pieces(d);
    free(d);
}

static void stop(rsm_dir_t *d)
{
    d->done = 1;
    drop_pieces(d);
}

static void deliver(rsm_dir_t *d, const uint8_t *p, size_t n, int64_t ts)
{
    if (d->done || !n)
        return;
    d->next += n;
    d->st.delivered += n;
    if (d->sink.data && d->sink.data(d->sink.arg, p, n, ts))
        stop(d);
}

static void gap(rsm_dir_t *d, uint64_t n, int64_t ts)
{
    if (d->done || !n)
        return;
    d->next += n;
    d->st.missing += n;
    d->st.gaps++;
    if (d->sink.gap && d->sink.gap(d->sink.arg, n, ts))
        stop(d);
}

static void finish(rsm_dir_t *d, int rst, int64_t ts)
{
    if (d->ended)
        return;
    d->ended = 1;
    if (d->sink.end)
        d->sink.end(d->sink.arg, rst, ts);
    stop(d);
}

/* Hand on the pieces that now follow the delivered bytes. */
static void drain(rsm_dir_t *d, int64_t ts)
{
    while (!d->done && d->head && d->head->off <= d->next) {
        struct piece *p = d->head;
        d->head = p->next;
        d->st.buffered -= p->len;
        if (d->pool)
            d->pool->used -= p->len;
        /* Pieces never reach behind next: R2 trimmed them on entry and
         * next only moves to a piece's start or over delivered bytes. */
        uint64_t skip = d->next - p->off;
        if (skip < p->len)
            deliver(d, p->data + skip, p->len - (size_t)skip, ts);
        free(p);
    }
}

/* Give up the first hole (R4, R6): its length is a gap, what follows it
 * goes on. 0 if there was no hole to give up. */
static int give_up_hole(rsm_dir_t *d, int64_t ts)
{
    if (!d->head)
        return 0;
    gap(d, d->head->off - d->next, ts);
    drain(d, ts);
    return 1;
}

static int pool_full(const rsm_dir_t *d, size_t more)
{
    return d->pool && d->pool->max && d->pool->used + more > d->pool->max;
}

static int add_piece(rsm_dir_t *d, struct piece **at, uint64_t off, const uint8_t *p, size_t n)
{
    struct piece *np = malloc(sizeof *np + n);
    if (!np)
        return -1;
    np->off = off;
    np->len = n;
    memcpy(np->data, p, n);
    np->next = *at;
    *at = np;
    d->st.buffered += n;
    if (d->pool)
        d->pool->used += n;
    return 0;
}

/* Buffer [off, off + n) where no piece is yet (first copy wins, R2). */
static void buffer(rsm_dir_t *d, uint64_t off, const uint8_t *p, size_t n, int64_t ts)
{
    for (;;) {
        if (off < d->next) { /* giving up holes moved next past some of it */
            uint64_t skip = d->next - off;
            if (skip >= n)
                return;
            off += skip, p += skip, n -= (size_t)skip;
        }
        if (off == d->next) { /* in order: never held, up to the first piece held (R2) */
            size_t k = n;
            if (d->head && d->head->off < off + n)
                k = (size_t)(d->head->off - off);
            deliver(d, p, k, ts);
            p += k, off += k, n -= k;
            drain(d, ts);
            if (!n || d->done)
                return;
            continue; /* the rest overlaps what was held: trimmed above */
        }
        /* Make room (R6): the oldest holes go until this fits. */
        if (!(d->st.buffered + n > d->max || pool_full(d, n)) || !give_up_hole(d, ts) || d->done)
            break;
    }
    if (d->done)
        return;
    if (d->st.buffered + n > d->max || pool_full(d, n))
        return; /* still no room: these bytes will be part of a gap */
    uint64_t cur = off, end = off + n;
    struct piece **at = &d->head;
    while (cur < end) {
        struct piece *q = *at;
        if (!q || q->off >= end) {
            if (add_piece(d, at, cur, p + (cur - off), (size_t)(end - cur)) < 0)
                return;
            break;
        }
        uint64_t qend = q->off + q->len;
        if (qend <= cur) {
            at = &q->next;
            continue;
        }
        if (q->off > cur) {
            if (add_piece(d, at, cur, p + (cur - off), (size_t)(q->off - cur)) < 0)
                return;
            at = &(*at)->next;
            cur = q->off;
        }
        d->st.retransmitted += (qend < end ? qend : end) - cur; /* q's copy stays */
        cur = qend;
        at = &q->next;
    }
}

void rsm_segment(rsm_dir_t *d, uint32_t seq, int flags, const uint8_t *p, size_t n, int64_t ts)
{
    if (d->done)
        return;
    if (flags & RSM_SYN) {
        d->st.syn = 1;
        if (!d->started) {
            d->started = 1;
            d->base = seq + 1;
        }
        seq++; /* data on a SYN starts after it */
    }
    if (!d->started) {
        if (!n && !(flags & (RSM_FIN | RSM_RST)))
            return; /* a bare ACK anchors nothing: keep-alives sit one byte back */
        d->started = 1;
        d->st.midstream = 1;
        d->base = seq;
    }
    /* R1: the offset nearest to where the direction stands. */
    int64_t delta = (int32_t)(seq - (uint32_t)(d->base + (uint32_t)d->next));
    int64_t off = (int64_t)d->next + delta;
    if (off < 0) { /* before the first byte: only what reaches past it counts */
        if ((uint64_t)-off >= n)
            n = 0;
        else
            p += -off, n -= (size_t)-off;
        off = 0;
    }
    uint64_t o = (uint64_t)off, seg_end = o + n;
    if (n && seg_end > d->high)
        d->high = seg_end;
    if (flags & RSM_RST) {
        d->st.rst = 1;
        rsm_end(d, ts);
        return;
    }
    if (d->fin_off != UINT64_MAX && o + n > d->fin_off) /* nothing lies past FIN */
        n = o >= d->fin_off ? 0 : (size_t)(d->fin_off - o);
    if (n) {
        if (o + n <= d->next) {
            d->st.retransmitted += n;
        } else {
            if (o < d->next) {
                uint64_t skip = d->next - o;
                d->st.retransmitted += skip;
                p += skip, n -= (size_t)skip, o = d->next;
            }
            buffer(d, o, p, n, ts);
        }
    }
    if (flags & RSM_FIN) {
        d->st.fin = 1;
        if (d->fin_off == UINT64_MAX)
            d->fin_off = seg_end;
    }
    if (!d->done && d->fin_off != UINT64_MAX && d->next >= d->fin_off)
        finish(d, 0, ts);
}

void rsm_end(rsm_dir_t *d, int64_t ts)
{
    while (!d->done && give_up_hole(d, ts))
        ;
    /* Bytes seen but not kept (R6), or never seen before a FIN (R4). */
    uint64_t last = d->fin_off != UINT64_MAX && d->fin_off > d->high ? d->fin_off : d->high;
    if (!d->done && last > d->next)
        gap(d, last - d->next, ts);
    finish(d, d->st.rst, ts);
}

void rsm_stats(const rsm_dir_t *d, struct rsm_stats *st)
{
    *st = d->st;
}

int rsm_stopped(const rsm_dir_t *d) { return d->done; }
