/* flows.c -- whole flows from the per-segment flow records of the index:
 * merged across segments, filtered on their keys, the best of them kept. */
#include "analytics/analytics.h"
#include "analytics/an_int.h"

#include <arpa/inet.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "index/index.h"

int an_sort_parse(const char *s, enum an_sort *out, char *err)
{
    static const char *const names[] = {"bytes", "packets", "start", "duration"};
    for (int i = 0; i < 4; i++)
        if (!strcmp(s, names[i])) {
            *out = (enum an_sort)i;
            return 0;
        }
    return rw_err(err, RW_EINPUT, "sort '%s': expected bytes, packets, start or duration", s);
}

int an_format_parse(const char *s, enum an_format *out, char *err)
{
    if (!s || !strcmp(s, "json"))
        *out = AN_JSON;
    else if (!strcmp(s, "csv"))
        *out = AN_CSV;
    else
        return rw_err(err, RW_EINPUT, "format '%s': expected json or csv", s);
    return 0;
}

/* ------------------------------------------------------- the merge table */

/* The live flows sit in a pool (an array that only grows, its freed rows
 * reused); the table that finds them by (point, flow hash) holds 16-byte
 * entries, so that growing it moves little. */
struct ent {
    uint64_t hash;
    uint32_t point;
    uint32_t idx; /* in the pool; UINT32_MAX: empty */
};

struct table {
    struct ent *e;
    size_t cap, n;
    unsigned shift; /* 64 - log2(cap) */
    struct an_flow *pool;
    size_t pn, pcap;
    uint32_t *freel;
    size_t nfree, freecap;
};

/* Ask for huge pages on a big mapping (the pool of a million flows is 140
 * MiB: faulting it in 4 KiB at a time was a tenth of the answer). The hint
 * covers the whole mapping, not its aligned middle: a hint on part of it
 * would split it, and mremap moves only one piece. Nothing changes where
 * the kernel says no. */
static void huge_hint(void *p, size_t len)
{
    if (len >= (8u << 20))
        (void)madvise(p, len, MADV_HUGEPAGE);
}

/* The pool is a mapping of its own, grown by mremap: realloc copied it at
 * every doubling, touching each page twice. */
static struct an_flow *pool_grow(struct an_flow *p, size_t cap, size_t ncap)
{
    void *np = p ? mremap(p, cap * sizeof *p, ncap * sizeof *p, MREMAP_MAYMOVE)
                 : mmap(NULL, ncap * sizeof *p, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                        -1, 0);
    if (np == MAP_FAILED)
        return NULL;
    huge_hint(np, ncap * sizeof *p);
    return np;
}

static void pool_free(struct an_flow *p, size_t cap)
{
    if (p)
        munmap(p, cap * sizeof *p);
}

/* A flow's home slot: the flow hash is FNV-1a (fixed by the archive
 * format), whose high bits are poorly mixed, so it is mixed again. */
static size_t ent_home(const struct table *t, uint32_t point, uint64_t h)
{
    uint64_t x = (h ^ (uint64_t)point * 0x9e3779b97f4a7c15ULL) * 0xbf58476d1ce4e5b9ULL;
    return (size_t)((x ^ (x >> 31)) >> t->shift);
}

static void table_unmap(struct table *t)
{
    if (t->e)
        munmap(t->e, t->cap * sizeof *t->e);
    t->e = NULL;
}

static int table_grow(struct table *t)
{
    size_t nc = t->cap ? t->cap * 2 : 1024;
    struct ent *ne = mmap(NULL, nc * sizeof *ne, PROT_READ | PROT_WRITE,
                          MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (ne == MAP_FAILED)
        return -1;
    huge_hint(ne, nc * sizeof *ne);
    for (size_t i = 0; i < nc; i++)
        ne[i].idx = UINT32_MAX;
    struct table nt = *t;
    nt.cap = nc;
    nt.shift = 64;
    for (size_t c = nc; c > 1; c >>= 1)
        nt.shift--;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->e[i].idx == UINT32_MAX)
            continue;
        size_t j = ent_home(&nt, t->e[i].point, t->e[i].hash);
        while (ne[j].idx != UINT32_MAX)
            j = (j + 1) & (nc - 1);
        ne[j] = t->e[i];
    }
    table_unmap(t);
    t->e = ne;
    t->cap = nc;
    t->shift = nt.shift;
    return 0;
}

/* The live flow of (point, h), or a new zeroed one (*isnew); NULL: no memory. */
static struct an_flow *table_get(struct table *t, uint32_t point, uint64_t h, int *isnew)
{
    if ((t->n + 1) * 2 > t->cap && table_grow(t) < 0)
        return NULL;
    size_t j = ent_home(t, point, h);
    while (t->e[j].idx != UINT32_MAX) {
        if (t->e[j].hash == h && t->e[j].point == point) {
            *isnew = 0;
            return &t->pool[t->e[j].idx];
        }
        j = (j + 1) & (t->cap - 1);
    }
    uint32_t idx;
    if (t->nfree) {
        idx = t->freel[--t->nfree];
    } else {
        if (t->pn == t->pcap) {
            size_t nc = t->pcap ? t->pcap * 2 : 1024;
            struct an_flow *np = nc < UINT32_MAX ? pool_grow(t->pool, t->pcap, nc) : NULL;
            if (!np)
                return NULL;
            t->pool = np;
            t->pcap = nc;
        }
        idx = (uint32_t)t->pn++;
    }
    t->e[j].hash = h;
    t->e[j].point = point;
    t->e[j].idx = idx;
    t->n++;
    *isnew = 1;
    memset(&t->pool[idx], 0, sizeof t->pool[idx]);
    return &t->pool[idx];
}

/* Remove entry j, keeping every other key reachable (backward shift); its
 * pool row is reused later. -1: no memory for the free list. */
static int table_del(struct table *t, size_t j)
{
    size_t m = t->cap - 1, i = j;
    if (t->nfree == t->freecap) {
        size_t nc = t->freecap ? t->freecap * 2 : 1024;
        uint32_t *nf = realloc(t->freel, nc * sizeof *nf);
        if (!nf)
            return -1;
        t->freel = nf;
        t->freecap = nc;
    }
    t->freel[t->nfree++] = t->e[j].idx;
    t->e[j].idx = UINT32_MAX;
    t->n--;
    for (;;) {
        i = (i + 1) & m;
        if (t->e[i].idx == UINT32_MAX)
            return 0;
        size_t home = ent_home(t, t->e[i].point, t->e[i].hash);
        /* Can the entry at i move to the hole at j? Only if its home is not
         * cyclically in (j, i]. */
        if ((j < i && (home <= j || home > i)) || (j > i && home <= j && home > i)) {
            t->e[j] = t->e[i];
            t->e[i].idx = UINT32_MAX;
            j = i;
        }
    }
}

static void table_free(struct table *t)
{
    table_unmap(t);
    pool_free(t->pool, t->pcap);
    free(t->freel);
}

/* ------------------------------------------------------- the best flows */

static uint64_t total_bytes(const struct an_flow *f) { return f->bytes_fwd + f->bytes_rev; }
static uint64_t total_pkts(const struct an_flow *f) { return f->pkts_fwd + f->pkts_rev; }

/* -1 if a comes before b in the sort's order, 1 if after, 0 if the two
 * would print the same row. Ties are broken by start, point, flow hash,
 * then the rest of the record (a flow split by idle time can repeat all
 * three, in a capture whose clock jumps), so that answers are
 * deterministic and a limit answers the first flows of the whole order. */
static int flow_cmp(enum an_sort s, const struct an_flow *a, const struct an_flow *b)
{
    uint64_t x = 0, y = 0;
    switch (s) {
    case AN_SORT_BYTES:
        x = total_bytes(a), y = total_bytes(b);
        break;
    case AN_SORT_PACKETS:
        x = total_pkts(a), y = total_pkts(b);
        break;
    case AN_SORT_DURATION:
        x = (uint64_t)(a->last - a->first), y = (uint64_t)(b->last - b->first);
        break;
    case AN_SORT_START:
        break;
    }
#define CMP_BY(u, v, fewer_first) \
    if ((u) != (v))               \
        return ((u) < (v)) == (fewer_first) ? -1 : 1;
    CMP_BY(x, y, 0)
    CMP_BY(a->first, b->first, 1)
    CMP_BY(a->point_id, b->point_id, 1)
    CMP_BY(a->hash, b->hash, 1)
    CMP_BY(a->last, b->last, 1)
    CMP_BY(a->pkts_fwd, b->pkts_fwd, 1)
    CMP_BY(a->bytes_fwd, b->bytes_fwd, 1)
    CMP_BY(a->pkts_rev, b->pkts_rev, 1)
    CMP_BY(a->bytes_rev, b->bytes_rev, 1)
    CMP_BY(a->tcp_flags, b->tcp_flags, 1)
#undef CMP_BY
    return 0;
}

static int better(enum an_sort s, const struct an_flow *a, const struct an_flow *b)
{
    return flow_cmp(s, a, b) < 0;
}

/* A heap of at most limit flows whose root is the worst kept. */
struct best {
    struct an_flow *h;
    size_t n, cap, limit;
    int oom;
    int heaped; /* h is a heap: filled once, since then only better flows enter */
    enum an_sort sort;
    uint64_t offered;
};

static void sift_down(struct best *b, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, w = i;
        if (l < b->n && better(b->sort, &b->h[w], &b->h[l]))
            w = l;
        if (r < b->n && better(b->sort, &b->h[w], &b->h[r]))
            w = r;
        if (w == i)
            return;
        struct an_flow t = b->h[i];
        b->h[i] = b->h[w];
        b->h[w] = t;
        i = w;
    }
}

static void best_offer(struct best *b, const struct an_flow *f)
{
    b->offered++;
    if (b->n < b->limit && b->n == b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 256;
        if (nc > b->limit)
            nc = b->limit;
        struct an_flow *nh = pool_grow(b->h, b->cap, nc);
        if (!nh) {
            b->oom = 1;
            return;
        }
        b->h = nh;
        b->cap = nc;
    }
    if (b->n < b->limit) {
        /* Until the limit is reached every flow is kept: no order needed. */
        b->h[b->n++] = *f;
        return;
    }
    if (!b->heaped) {
        for (size_t i = b->n / 2; i-- > 0;)
            sift_down(b, i);
        b->heaped = 1;
    }
    if (b->limit && better(b->sort, f, &b->h[0])) {
        b->h[0] = *f;
        sift_down(b, 0);
    }
}

/* The final order is found by sorting small keys, not whole flows. */
struct skey {
    uint64_t k; /* the sort's value (0 for start) */
    int64_t first;
    uint32_t idx;
};

/* Ties on (k, first) are ordered by flow_cmp, on the flows themselves. */
struct tie_ctx {
    const struct an_flow *flows;
    enum an_sort sort;
};

static int cmp_ties(const void *pa, const void *pb, void *arg)
{
    const struct tie_ctx *c = arg;
    const struct skey *a = pa, *b = pb;
    return flow_cmp(c->sort, &c->flows[a->idx], &c->flows[b->idx]);
}

/* The digit d (0: lowest byte of first, 15: highest of the inverted sort
 * value) of a key, as an unsigned order: k falls, first rises. */
static unsigned key_digit(const struct skey *x, int d)
{
    uint64_t v = d < 8 ? (uint64_t)x->first ^ (1ULL << 63) : ~x->k;
    return (unsigned)(v >> (8 * (d & 7))) & 255;
}

/* Sort keys in flow_cmp's order: a least-significant-digit radix sort on
 * (k, first), skipping the bytes that every key shares (a window of a few
 * seconds, equal byte counts), then the runs that tie on both by flow_cmp.
 * qsort's merge sort was a fifth of a million-flow answer. */
static int radix_keys(struct skey *k, size_t n, const struct tie_ctx *ties)
{
    if (n < 64) {
        qsort_r(k, n, sizeof *k, cmp_ties, (void *)ties);
        return 0;
    }
    uint32_t(*hist)[256] = calloc(16, sizeof *hist);
    struct skey *tmp = malloc(n * sizeof *tmp);
    if (!hist || !tmp) {
        free(hist);
        free(tmp);
        return -1;
    }
    /* Only the bytes in which some key differs from the first are sorted
     * on (a window of seconds, equal byte counts: a few of the sixteen). */
    uint64_t kdiff = 0, fdiff = 0;
    for (size_t i = 1; i < n; i++) {
        kdiff |= k[i].k ^ k[0].k;
        fdiff |= (uint64_t)(k[i].first ^ k[0].first);
    }
    int digits[16], nd = 0;
    for (int d = 0; d < 16; d++)
        if (((d < 8 ? fdiff : kdiff) >> (8 * (d & 7))) & 255)
            digits[nd++] = d;
    for (size_t i = 0; i < n; i++)
        for (int j = 0; j < nd; j++)
            hist[digits[j]][key_digit(&k[i], digits[j])]++;
    struct skey *src = k, *dst = tmp;
    for (int j = 0; j < nd; j++) {
        int d = digits[j];
        uint32_t pos = 0;
        for (int c = 0; c < 256; c++) {
            uint32_t h = hist[d][c];
            hist[d][c] = pos;
            pos += h;
        }
        for (size_t i = 0; i < n; i++)
            dst[hist[d][key_digit(&src[i], d)]++] = src[i];
        struct skey *t = src;
        src = dst;
        dst = t;
    }
    if (src != k)
        memcpy(k, src, n * sizeof *k);
    free(tmp);
    free(hist);
    /* Ties on (k, first) are rare; flow_cmp orders them. */
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && k[j].k == k[i].k && k[j].first == k[i].first)
            j++;
        if (j - i > 1)
            qsort_r(k + i, j - i, sizeof *k, cmp_ties, (void *)ties);
        i = j;
    }
    return 0;
}

/* The order of the best flows, as indexes into b->h (*order, malloc'ed):
 * sorting small keys, not moving whole flows, which cost a cache miss each
 * for a million of them. */
static int sort_best(struct best *b, uint32_t **order)
{
    struct skey *k = malloc((b->n + 1) * sizeof *k);
    uint32_t *o = malloc((b->n + 1) * sizeof *o);
    if (!k || !o) {
        free(k);
        free(o);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++) {
        const struct an_flow *f = &b->h[i];
        k[i].k = b->sort == AN_SORT_BYTES     ? total_bytes(f)
                 : b->sort == AN_SORT_PACKETS ? total_pkts(f)
                 : b->sort == AN_SORT_DURATION ? (uint64_t)(f->last - f->first)
                                               : 0;
        k[i].first = f->first;
        k[i].idx = (uint32_t)i;
    }
    struct tie_ctx ties = {b->h, b->sort};
    if (radix_keys(k, b->n, &ties) < 0) {
        free(k);
        free(o);
        return -1;
    }
    for (size_t i = 0; i < b->n; i++)
        o[i] = k[i].idx;
    free(k);
    *order = o;
    return 0;
}

/* ------------------------------------------------------------ gathering */

/* Records wait a few places in a queue after their table slot is asked
 * for (prefetched): a million flows' look-ups were each a cache miss, most
 * of the time it took to merge them. */
#define GATHER_AHEAD 16

struct gather {
    const struct an_flow_query *q;
    an_ffilter_t *ff;
    struct table t;
    struct best best;
    uint32_t point;
    uint64_t records;
    int oom;
    const struct idx_flowrec *ahead[GATHER_AHEAD]; /* in the batch being merged */
    size_t ahead_first, ahead_n;
};

static int same_src(const struct an_flow *f, const struct idx_flowrec *r)
{
    size_t alen = f->family == 4 ? 4 : 16;
    return !memcmp(f->src, r->src, alen) && f->sport == r->sport;
}

/* Merge one record of the current point into the table. */
static void merge_record(struct gather *g, const struct idx_flowrec *r)
{
    int isnew;
    struct an_flow *f = table_get(&g->t, g->point, r->hash, &isnew);
    if (!f) {
        g->oom = 1;
        return;
    }
    if (isnew) {
        f->point_id = g->point;
        f->hash = r->hash;
        f->family = r->family;
        f->proto = r->proto;
        memcpy(f->src, r->src, 16);
        memcpy(f->dst, r->dst, 16);
        f->sport = r->sport;
        f->dport = r->dport;
        f->vlan = r->vlan;
        f->first = r->first_ts;
        f->last = r->last_ts;
        memcpy(f->community_id, r->community_id, sizeof f->community_id);
    }
    if (r->first_ts < f->first)
        f->first = r->first_ts;
    if (r->last_ts > f->last)
        f->last = r->last_ts;
    /* A later segment's record names as src whichever side it saw first. */
    if (isnew || same_src(f, r)) {
        f->pkts_fwd += r->pkts_fwd, f->bytes_fwd += r->bytes_fwd;
        f->pkts_rev += r->pkts_rev, f->bytes_rev += r->bytes_rev;
    } else {
        f->pkts_fwd += r->pkts_rev, f->bytes_fwd += r->bytes_rev;
        f->pkts_rev += r->pkts_fwd, f->bytes_rev += r->bytes_fwd;
    }
    f->tcp_flags |= r->tcp_flags;
}

/* Merge the records still waiting in the queue. */
static void drain(struct gather *g)
{
    for (; g->ahead_n && !g->oom; g->ahead_n--) {
        merge_record(g, g->ahead[g->ahead_first]);
        g->ahead_first = (g->ahead_first + 1) % GATHER_AHEAD;
    }
}

/* Queue one record of the current point for merging. */
static void take_record(struct gather *g, const struct idx_flowrec *r)
{
    if (g->ahead_n == GATHER_AHEAD) {
        merge_record(g, g->ahead[g->ahead_first]);
        g->ahead_first = (g->ahead_first + 1) % GATHER_AHEAD;
        g->ahead_n--;
        if (g->oom)
            return;
    }
    if (g->t.cap)
        an_prefetch(&g->t.e[ent_home(&g->t, g->point, r->hash)]);
    g->ahead[(g->ahead_first + g->ahead_n) % GATHER_AHEAD] = r;
    g->ahead_n++;
}

/* ------------------------------------------------------------ the readers */

/* Two threads read and decode the segments' flow records (RocksDB's
 * iterator and the decoder were the larger half of a million-flow answer),
 * each the flows of one half of the hash space, while the caller merges
 * them. Within a segment the order of records does not matter (a flow has
 * one record per segment); across segments it does, so every reader ends
 * each segment with a batch marked last (maybe empty), and the caller
 * takes segment k's batches only, from both, until both said last. */
#define RD_N 2
#define RB_N 4
#define RB_CAP 2048

struct rbatch {
    struct idx_flowrec *r;
    size_t n;
    size_t seg; /* index in the segment list */
    int last;   /* this reader's last batch of the segment */
};

struct readers;

struct reader {
    struct readers *all;
    uint64_t lo, hi; /* its part of the hash space */
    struct rbatch b[RB_N];
    size_t head, tail;  /* consumed and published batches */
    struct rbatch *cur; /* being filled (b[tail % RB_N]) */
    int done, rc, started;
    char err[RW_ERRSZ];
    uint64_t records;
    pthread_t tid;
};

struct readers {
    idx_t *ix;
    const struct an_flow_query *q;
    const struct idx_seg *segs;
    const size_t *sel; /* the segments to read, as indexes in segs */
    size_t nsel;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stop;
    struct reader rd[RD_N];
};

/* The next free batch for segment seg, or NULL when told to stop. */
static struct rbatch *rd_slot(struct reader *rd, size_t seg)
{
    struct readers *R = rd->all;
    pthread_mutex_lock(&R->mu);
    while (rd->tail - rd->head == RB_N && !R->stop)
        pthread_cond_wait(&R->cv, &R->mu);
    struct rbatch *b = R->stop ? NULL : &rd->b[rd->tail % RB_N];
    pthread_mutex_unlock(&R->mu);
    if (b) {
        b->n = 0;
        b->seg = seg;
        b->last = 0;
    }
    return b;
}

static void rd_publish(struct reader *rd)
{
    struct readers *R = rd->all;
    pthread_mutex_lock(&R->mu);
    rd->tail++;
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    rd->cur = NULL;
}

static int rd_take(void *arg, const struct idx_flowrec *r)
{
    struct reader *rd = arg;
    const struct an_flow_query *q = rd->all->q;
    rd->records++;
    if (r->last_ts < q->from || r->first_ts >= q->to)
        return 0;
    if (q->community_id && strcmp(r->community_id, q->community_id))
        return 0;
    if (rd->cur->n == RB_CAP) {
        size_t seg = rd->cur->seg;
        rd_publish(rd);
        if (!(rd->cur = rd_slot(rd, seg)))
            return 1;
    }
    rd->cur->r[rd->cur->n++] = *r;
    return 0;
}

static void *rd_main(void *arg)
{
    struct reader *rd = arg;
    struct readers *R = rd->all;
    int rc = 0;
    char err[RW_ERRSZ] = "";
    for (size_t k = 0; k < R->nsel && rc == 0; k++) {
        if (!(rd->cur = rd_slot(rd, R->sel[k])))
            break;
        rc = idx_flows_range(R->ix, R->segs[R->sel[k]].id, rd->lo, rd->hi, rd_take, rd, err);
        if (!rd->cur)
            break; /* stopped */
        rd->cur->last = 1;
        rd_publish(rd);
    }
    pthread_mutex_lock(&R->mu);
    rd->done = 1;
    rd->rc = rc;
    memcpy(rd->err, err, sizeof err);
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
    return NULL;
}

/* The next batch of segment seg from a reader that has not finished it
 * (*from: which), NULL when a reader ended without finishing it (an error,
 * or told to stop). */
static struct rbatch *rd_next(struct readers *R, const int *need, int *from)
{
    struct rbatch *b = NULL;
    pthread_mutex_lock(&R->mu);
    for (;;) {
        int waiting = 0;
        for (int k = 0; k < RD_N && !b; k++) {
            struct reader *rd = &R->rd[k];
            if (!need[k])
                continue;
            if (rd->head < rd->tail) {
                b = &rd->b[rd->head % RB_N];
                *from = k;
            } else if (!rd->done) {
                waiting = 1;
            }
        }
        if (b || !waiting)
            break;
        pthread_cond_wait(&R->cv, &R->mu);
    }
    pthread_mutex_unlock(&R->mu);
    return b;
}

static void rd_release(struct reader *rd)
{
    struct readers *R = rd->all;
    pthread_mutex_lock(&R->mu);
    rd->head++;
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
}

static void rd_stop(struct readers *R)
{
    pthread_mutex_lock(&R->mu);
    R->stop = 1;
    pthread_cond_broadcast(&R->cv);
    pthread_mutex_unlock(&R->mu);
}

/* Offer the flows that have ended: of point, with no packet since before
 * (all of them when all). */
static void flush(struct gather *g, uint32_t point, int64_t before, int all)
{
    struct table *t = &g->t;
    if (all && g->best.n == 0 && t->n <= g->best.limit) {
        /* Every live flow fits in the answer: the pool becomes it, compacted
         * in place, without a copy (the common case of a short window). */
        /* The pool is walked in its own order (the table's would jump
         * about it); its free rows are the ones on the free list. */
        uint8_t *dead = calloc(t->pn + 1, 1);
        if (!dead) {
            g->oom = 1;
            return;
        }
        for (size_t i = 0; i < t->nfree; i++)
            dead[t->freel[i]] = 1;
        size_t k = 0;
        for (size_t i = 0; i < t->pn; i++) {
            if (dead[i] || (g->ff && !an_ffilter_match(g->ff, &t->pool[i])))
                continue;
            if (k != i)
                t->pool[k] = t->pool[i];
            k++;
        }
        free(dead);
        table_unmap(t);
        t->cap = 0;
        pool_free(g->best.h, g->best.cap);
        g->best.h = t->pool;
        g->best.n = k;
        g->best.cap = t->pcap;
        g->best.offered += k;
        t->pool = NULL;
        t->pn = t->pcap = t->n = t->nfree = 0;
        return;
    }
    for (size_t j = 0; j < t->cap;) {
        struct ent *e = &t->e[j];
        if (e->idx != UINT32_MAX &&
            (all || (e->point == point && t->pool[e->idx].last < before))) {
            const struct an_flow *f = &t->pool[e->idx];
            if (!g->ff || an_ffilter_match(g->ff, f))
                best_offer(&g->best, f);
            if (table_del(t, j) < 0) {
                g->oom = 1;
                return;
            }
            continue; /* j now holds a shifted entry, or is empty */
        }
        j++;
    }
}

int an_flows_get(idx_t *ix, const struct an_flow_query *q, struct an_flows *out, char *err)
{
    struct gather g = {.q = q};
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0;
    uint32_t *ords = NULL;
    size_t *sel = NULL, nsel = 0;
    struct readers R = {0};
    int rc, inited = 0, short_read = 0;
    memset(out, 0, sizeof *out);
    if (q->from >= q->to)
        return rw_err(err, RW_EINPUT, "empty time window: 'from' must be before 'to'");
    if (q->limit > AN_FLOWS_LIMIT_MAX)
        return rw_err(err, RW_EINPUT, "limit %llu: at most %d flows per answer",
                      (unsigned long long)q->limit, AN_FLOWS_LIMIT_MAX);
    if (q->community_id && !an_cid_valid(q->community_id))
        return rw_err(err, RW_EINPUT,
                      "community_id '%.64s': expected '1:' and 28 base64 characters", q->community_id);
    if (q->filter && q->filter[0] && (rc = an_ffilter_new(q->filter, &g.ff, err)) < 0)
        return rc;
    g.best.sort = q->sort;
    g.best.limit = q->limit ? q->limit : AN_FLOWS_LIMIT_DEFAULT;
    if ((rc = an_points_selected(ix, q->points, &pts, &npts, err)) < 0)
        goto done;
    if ((rc = idx_seg_list(ix, q->from, q->to, &segs, &nsegs, err)) < 0)
        goto done;
    ords = calloc(npts + 1, sizeof *ords);
    sel = calloc(nsegs + 1, sizeof *sel);
    if (!ords || !sel) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < nsegs; i++) {
        size_t p;
        for (p = 0; p < npts && pts[p].id != segs[i].point; p++)
            ;
        if (p < npts)
            sel[nsel++] = i;
    }
    R.ix = ix;
    R.q = q;
    R.segs = segs;
    R.sel = sel;
    R.nsel = nsel;
    pthread_mutex_init(&R.mu, NULL);
    pthread_cond_init(&R.cv, NULL);
    inited = 1;
    for (int k = 0; k < RD_N; k++) {
        struct reader *rd = &R.rd[k];
        rd->all = &R;
        rd->lo = k == 0 ? 0 : (UINT64_MAX / RD_N) * (uint64_t)k + 1;
        rd->hi = k == RD_N - 1 ? UINT64_MAX : (UINT64_MAX / RD_N) * (uint64_t)(k + 1);
        for (int i = 0; i < RB_N; i++)
            if (!(rd->b[i].r = malloc(RB_CAP * sizeof *rd->b[i].r))) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                goto done;
            }
    }
    for (int k = 0; k < RD_N; k++) {
        if (pthread_create(&R.rd[k].tid, NULL, rd_main, &R.rd[k]) != 0) {
            rc = rw_err(err, RW_ENOMEM, "cannot start a thread to read flow records");
            goto done;
        }
        R.rd[k].started = 1;
    }
    for (size_t s = 0; s < nsel && !g.oom && !g.best.oom; s++) {
        const struct idx_seg *sg = &segs[sel[s]];
        size_t p;
        drain(&g);
        for (p = 0; p < npts && pts[p].id != sg->point; p++)
            ;
        g.point = pts[p].id;
        /* Flows of this point idle for AN_FLOW_IDLE before this segment
         * have ended: the table holds the flows of the last minutes, not
         * of the whole window. */
        if (++ords[p] > 1 && sg->packets && sg->min_ts > RW_TIME_MIN + AN_FLOW_IDLE)
            flush(&g, g.point, sg->min_ts - AN_FLOW_IDLE, 0);
        int need[RD_N], from, left = RD_N;
        for (int k = 0; k < RD_N; k++)
            need[k] = 1;
        struct rbatch *b;
        while (left && (b = rd_next(&R, need, &from))) {
            for (size_t i = 0; i < b->n && !g.oom; i++)
                take_record(&g, &b->r[i]);
            drain(&g); /* the queue points into the batch */
            if (b->last) {
                need[from] = 0;
                left--;
            }
            rd_release(&R.rd[from]);
            if (g.oom || g.best.oom)
                break;
        }
        if (left) {
            short_read = 1; /* a reader failed, or we ran out of memory */
            break;
        }
    }
    drain(&g);
    rd_stop(&R);
    for (int k = 0; k < RD_N; k++)
        if (R.rd[k].started) {
            pthread_join(R.rd[k].tid, NULL);
            R.rd[k].started = 0;
            g.records += R.rd[k].records;
        }
    if (g.oom || g.best.oom) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    for (int k = 0; k < RD_N; k++)
        if (R.rd[k].rc < 0) {
            rc = R.rd[k].rc;
            memcpy(err, R.rd[k].err, RW_ERRSZ);
            goto done;
        }
    if (short_read) { /* not expected: never answer part of the records as the whole */
        rc = rw_err(err, RW_EIO, "reading flow records: a reader ended before its segments did");
        goto done;
    }
    flush(&g, 0, 0, 1);
    if (g.best.oom) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    if (sort_best(&g.best, &out->order) < 0) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    out->points = calloc(npts + 1, sizeof *out->points);
    if (!out->points) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < npts; i++) {
        out->points[i].id = pts[i].id;
        snprintf(out->points[i].name, sizeof out->points[i].name, "%s", pts[i].name);
    }
    out->npoints = npts;
    out->flows = g.best.h;
    out->flows_mapped = g.best.h ? g.best.cap * sizeof *g.best.h : 0;
    out->n = g.best.n;
    out->matched = g.best.offered;
    out->records = g.records;
    g.best.h = NULL;
    rc = 0;
done:
    if (rc < 0) {
        free(out->order);
        out->order = NULL;
    }
    if (inited) {
        rd_stop(&R);
        for (int k = 0; k < RD_N; k++)
            if (R.rd[k].started)
                pthread_join(R.rd[k].tid, NULL);
        pthread_mutex_destroy(&R.mu);
        pthread_cond_destroy(&R.cv);
    }
    for (int k = 0; k < RD_N; k++)
        for (int i = 0; i < RB_N; i++)
            free(R.rd[k].b[i].r);
    pool_free(g.best.h, g.best.cap);
    table_free(&g.t);
    free(pts);
    free(segs);
    free(ords);
    free(sel);
    an_ffilter_free(g.ff);
    return rc;
}

const char *an_flow_point(const struct an_flows *r, const struct an_flow *f)
{
    for (size_t i = 0; i < r->npoints; i++)
        if (r->points[i].id == f->point_id)
            return r->points[i].name;
    return "?";
}

void an_flows_free(struct an_flows *f)
{
    free(f->order);
    free(f->points);
    if (f->flows_mapped)
        munmap(f->flows, f->flows_mapped);
    else
        free(f->flows);
    memset(f, 0, sizeof *f);
}
