/* segw.c -- build the index of one open segment and commit it in batches.
 *
 * Terms are gathered in memory per (kind, value) (see below) and
 * committed at each flush as merge operands (the merge operator ORs them), so
 * a flush costs one write batch whatever the segment's age, and a reader sees
 * every flushed packet of the open segment. Flow records live in memory for
 * the segment's life and are rewritten when they change. */
#include "index/index.h"
#include "index/index_int.h"

#include <errno.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

/* Terms of the packets since the last flush that are not their flow's
 * (below: a packet that is not plain, index/parse.h). A term's id indexes terms[];
 * the open-addressing table maps a term to its id. Each packet appends
 * (id, ordinal) pairs to a log; when the log fills, it is sorted by id
 * (counting sort: ordinals stay ascending) into a "generation": the
 * ordinals grouped by term, and where each term's group starts. At flush
 * the log is sorted once more, and each term's ordinals, gathered from the
 * generations and the log, are written in CRoaring's portable format
 * (idx_posting_encode) with no bitmap built. That replaces a
 * roaring_bitmap_add() per term per packet, whose container lookup was the
 * largest cost of an import, and a bitmap per term and flush (its
 * allocations, add_many and free were most of the writer's cost on many
 * small flows). */
struct term_ent { /* 32 bytes: two to a cache line */
    uint64_t v0, v1;  /* value bytes, zero-padded to 16 */
    uint32_t hash;
    uint8_t kind, len;
};

struct term_log {
    uint32_t id, ord;
};

#define TERM_LOG (1u << 17) /* entries between spills: 1 MiB of log */
#define GEN_KEEP 2          /* generation buffers kept for the next flush (512 KiB each) */

/* A spilled log: ords[start[id] .. start[id + 1]) are term id's ordinals,
 * for the ids below nterms (terms added later have none here). */
struct term_gen {
    uint32_t *ords;  /* TERM_LOG entries */
    uint32_t *start; /* nterms + 1 entries */
    size_t nterms, startcap;
};
/* Flows are kept dense (indexes 0 .. fcount, in order of first packet,
 * in blocks of FLOW_BLOCK entries: flow_at), each entry about half a
 * flow record's size (the record's addresses are the key's, its Community
 * ID is kept as the 20 bytes of its SHA-1); an open-addressing table of
 * slots (the entry's index + 1 and the low bits of key_hash(), so that a
 * probe touches no entry) finds them by their key. The flow's hash
 * (FNV-1a, a byte at a time, fixed by the archive format) is computed
 * once, when the flow is new: a packet costs a few multiplications
 * instead (key_hash). A table of whole entries at half load held twice
 * the entries' memory, which many small flows made the largest part of
 * the writer's. */
/* A plain packet's terms are its flow's (index/parse.h): the L3 type,
 * addresses, protocol, ports and flow hash, all of which follow from the
 * flow's key and has_ports (idx_flowkey_terms). Such a packet costs no term
 * look-up: it notes only its flow, as the flow's index among the flows
 * "active" in this flush (pf: one entry a packet, PF_NONE for the others).
 * At flush the active flows' terms are derived from their keys as (term,
 * flow) pairs, sorted by term, and a term's posting is the ordinals of its
 * flows (counted into fords by flow) with its own, if packets that are not
 * plain logged it too (posting_build). This keeps the flush's memory at
 * about 8 bytes a packet (pf, then fords) and 16 a flow (two pairs at a
 * time), rather than a table entry for every distinct term, address, port
 * and flow hash: on many small flows those tables were most of the
 * writer's memory.
 *
 * A flow's packets are noted so while they agree with its first plain one
 * in this flush on has_ports and the number of terms (which the key then
 * fixes); one that does not logs its terms one by one, as a packet that is
 * not plain does. */
#define FLOW_TIDS 7     /* a plain packet's terms at most: IDX_FLOW_TERMS and the hash */
#define PF_NONE UINT32_MAX
#define PF_SHIFT 16     /* pf's blocks: 64 Ki packets (256 KiB) */
#define ACTIVE_MAX (1u << 28) /* active flows a flush (a pair's 28 bits: PAIR) */
#define FLOW_BLOCK 1024 /* flow entries a block (136 KiB) */
struct flow_ent { /* 136 bytes; what a packet touches first (the first 104) */
    struct idx_flowkey key; /* what finds it (index/parse.h) */
    uint32_t tgen;  /* aidx, gcnt, tn and tports are valid while this is the segment's tgen */
    uint32_t aidx;  /* its index among the flush's active flows */
    uint32_t gcnt;  /* plain packets noted since the last flush */
    uint32_t pkts_fwd, pkts_rev; /* a segment has fewer than 2^32 packets */
    uint16_t sport, dport;       /* the first packet's (struct idx_flowrec) */
    uint8_t swap;      /* the first packet's key_swap: its source is the key's second endpoint */
    uint8_t has_ports; /* the first packet's, for the Community ID */
    uint8_t tcp_flags;
    uint8_t dirty;
    uint8_t tn;     /* how many terms its plain packets have in this flush, */
    uint8_t tports; /* and their has_ports */
    int64_t first_ts, last_ts;
    uint64_t bytes_fwd, bytes_rev;
    uint64_t hash;   /* idx_flowkey_hash(key): its flow term and record key */
    uint8_t cid[20]; /* idx_community_sha1 */
};
_Static_assert(sizeof(struct flow_ent) == 136, "flow_ent grew: see its comment");

struct flow_slot {
    uint32_t idx1; /* index + 1, 0: empty */
    uint32_t hlo;  /* key_hash()'s low 32 bits */
};

struct sec_count {
    int64_t sec;
    uint64_t pkts, bytes;
};

/* Where a flush's records go: a write batch (through RocksDB's write-ahead
 * log and memtable), or, for a large one, a table file of its own that is
 * ingested whole (index_int.h: idx_sst_*). A batch that fills a memtable by
 * itself costs RocksDB a memtable insert per key (a skiplist search), the
 * log's checksum, and then the memtable's flush into a table file anyway;
 * the table file built here straight from the sorted keys skips all that,
 * and takes no memory for the batch or the memtable. Both are atomic and
 * durable; either way a large batch becomes one level-0 file. */
struct sink {
    rocksdb_writebatch_t *b;      /* or */
    rocksdb_sstfilewriter_t *sst; /* with its file */
    char path[1100];
    char *rerr; /* the first error adding to sst */
};

static void sink_put(struct sink *s, const void *k, size_t kl, const void *v, size_t vl)
{
    if (s->b)
        rocksdb_writebatch_put(s->b, k, kl, v, vl);
    else if (!s->rerr)
        rocksdb_sstfilewriter_put(s->sst, k, kl, v, vl, &s->rerr);
}

static void sink_merge(struct sink *s, const void *k, size_t kl, const void *v, size_t vl)
{
    if (s->b)
        rocksdb_writebatch_merge(s->b, k, kl, v, vl);
    else if (!s->rerr)
        rocksdb_sstfilewriter_merge(s->sst, k, kl, v, vl, &s->rerr);
}

/* A batch estimated at this many bytes of memtable or more is ingested as
 * a table file: half the size of RocksDB's write buffer (index.c). A
 * memtable holds two such batches, so that ingesting makes no more level-0
 * files than twice the memtable's flushes would; and one more a segment:
 * the memtable with the segment's record (written at its start) is flushed
 * before its first batch is ingested (index.c, sst_prepare), which is why
 * level 0 is compacted at 5 files instead of 4 (index.c). Ingesting the
 * first batch too, rather than joining the record in the memtable, saves a
 * memtable and a batch of that size (30 MiB at 330 000 small packets).
 * Half rather than the whole write buffer (4 MiB until issue 17's eighth
 * round): a one-second flush at 1 Gbit/s of the bench's mix is 2-4 MiB,
 * which in the memtable cost the batch (4 MiB of string) and two memtables
 * (7.3 MiB), a tenth of the daemon's RSS; ingested, neither (97 instead of
 * 102 MB while capturing), for about a tenth more CPU at that rate (the
 * table file's syncs, and level 0 compacted more often). */
#define INGEST_BYTES (2u << 20)

struct idx_segw {
    idx_t *ix;
    struct idx_seg seg;
    /* terms added since the last flush */
    struct term_ent *terms;
    struct term_gen *gens; /* spilled logs since the last flush */
    size_t ngens, gencap, genfree; /* gens[ngens .. genfree) hold buffers for reuse */
    uint32_t *gather; /* one term's ordinals at flush */
    size_t gathercap;
    size_t nterms, tecap;
    /* log entries of each term since the last spill: apart from the
     * entries, in 4 bytes a term, so that the counts of a busy link's
     * terms stay in the cache (a packet of a known flow touches its
     * terms' counts only) */
    uint32_t *tcnt;
    uint32_t tgen; /* term ids are valid while this stays (flow_ent.tgen) */
    uint32_t *slots; /* term id + 1, 0: empty */
    size_t tcap;     /* slots, a power of two */
    struct term_log *log; /* grows to TERM_LOG entries, then spills */
    size_t nlog, logcap;
    uint32_t *sorted, *toff;
    size_t sortcap;
    size_t toffcap;
    uint32_t *ids; /* term ids in key order, at flush */
    size_t idscap;
    /* plain packets since the last flush (see struct flow_ent): packet
     * flush_base + i's active flow is pf[i >> PF_SHIFT][i & mask], or
     * PF_NONE; the active flows' indexes, alist[aidx]; at flush, their
     * ordinals, fords[fstart[aidx] .. fstart[aidx + 1]) */
    uint32_t **pf;
    size_t npf;     /* blocks mapped */
    uint32_t *alist;
    size_t nactive, alcap;
    uint32_t *fstart, *fords;
    size_t fscap, focap;
    uint64_t *pairs;      /* at flush: the active flows' terms of a phase (PAIR) */
    struct pair6 *pairs6; /* ... their IPv6 addresses */
    size_t paircap, pair6cap;
    uint32_t *forder;     /* at flush: the changed flows in key order (their hash) */
    size_t forcap;
    uint32_t *srcf;       /* at flush: one term's active flows */
    size_t srcfcap;
    uint64_t flush_base; /* the first ordinal since the last flush */
    uint64_t *bits;      /* zero between uses: a bit per ordinal from bbase (bits_ready) */
    size_t bitscap;      /* in words */
    uint32_t bbase;
    uint32_t *cards;     /* posting_bits: each container's cardinality */
    uint32_t *merge;     /* a term's ordinals gathered from several sources, and room
                            to sort them: 2 * mergecap */
    size_t mergecap;
    struct sortkey *sk; /* sorting a flush's flows or terms: skcap entries */
    size_t skcap;
    /* flows of the whole segment: entry i is flow_at(w, i) */
    struct flow_ent **fblk;
    size_t fcount, nfblk; /* entries, and blocks */
    struct flow_slot *fslots;
    size_t fcap;          /* slots, a power of two */
    /* locators: the chunk being filled, and full chunks not yet committed */
    struct idx_chunk cur;
    uint32_t cur_no;
    uint8_t *pending; /* encoded chunks: [u32 no][u32 len][bytes] ... */
    size_t plen, pcap;
    /* per-second counters since the last flush */
    struct sec_count *secs;
    size_t nsecs, capsecs;
    uint64_t packets; /* added, flushed or not */
    /* since the last flush: ordinals the postings will hold (a plain
     * packet's count once per term), and flows changed */
    size_t flush_ords, ndirty;
    int logged; /* records written through RocksDB's log since the last ingest (sink_commit) */
    uint8_t *scratch;
    size_t scratch_cap;
    /* idx_segw_commit(): one batch at a time is synced and written by a
     * thread of its own. A failure is final for the segment. */
    pthread_t th;
    int th_started, stop;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct sink inflight; /* handed to the thread, not yet written */
    int busy;             /* inflight holds a batch */
    /* the last batch written, cleared, for the next flush: its buffer is
     * as large as a flush needs, so a flush does not grow one from nothing
     * (reallocations and page faults) */
    rocksdb_writebatch_t *spare;
    int in_fd, in_sync;
    int failed; /* error code of a failed commit, 0 if none */
    int flush_failed; /* idx_segw_flush() failed: the caller's thread's copy of failed */
    char ferr[RW_ERRSZ];
};

/* A flush's large buffers (pf's blocks, fords, the pairs, the sort keys)
 * are mapped for it and unmapped as soon as it is done with each, rather
 * than kept for the next flush: so that they never all exist at once (pf
 * is gone before the pairs are made, the flows' sort keys before the
 * terms' are), which made the writer's peak, the RSS that capture pays for
 * (issue 17). malloc would keep what is freed in its heap. It costs the
 * page faults of filling them again: about 2 000 a flush of 400 000
 * packets. */
static void *buf_map(size_t bytes)
{
    void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        abort(); /* out of memory while indexing: nothing sane to do */
    return p;
}

static void buf_unmap(void *p, size_t bytes)
{
    if (p)
        munmap(p, bytes);
}

static inline uint64_t term_hash(int kind, uint64_t v0, uint64_t v1)
{
    uint64_t h = v0 ^ (v1 * 0x9e3779b97f4a7c15ULL) ^ ((uint64_t)kind << 56);
    h ^= h >> 31;
    h *= 0xbf58476d1ce4e5b9ULL;
    h ^= h >> 29;
    h *= 0x94d049bb133111ebULL;
    return h ^ (h >> 32);
}

static inline struct flow_ent *flow_at(const struct idx_segw *w, size_t i)
{
    return &w->fblk[i / FLOW_BLOCK][i % FLOW_BLOCK];
}

static void terms_grow(struct idx_segw *w)
{
    size_t ncap = w->tcap ? w->tcap * 2 : 4096;
    uint32_t *ns = calloc(ncap, sizeof *ns);
    if (!ns)
        abort(); /* out of memory while indexing: nothing sane to do */
    for (size_t id = 0; id < w->nterms; id++) {
        size_t j = w->terms[id].hash & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = (uint32_t)id + 1;
    }
    free(w->slots);
    w->slots = ns;
    w->tcap = ncap;
}

/* Sort the log by term id (counting sort: each term's ordinals stay
 * ascending): term id's ordinals are then sorted[toff[id] - cnt, toff[id]). */
static void terms_sort(struct idx_segw *w)
{
    if (w->toffcap < w->nterms) {
        free(w->toff);
        w->toffcap = w->tecap;
        if (!(w->toff = malloc(w->toffcap * sizeof *w->toff)))
            abort();
    }
    if (!w->sorted || w->sortcap < w->nlog) { /* never NULL: term_ords reads from it */
        free(w->sorted);
        w->sortcap = w->logcap ? w->logcap : 1;
        if (!(w->sorted = malloc(w->sortcap * sizeof *w->sorted)))
            abort();
    }
    uint32_t pos = 0;
    for (size_t id = 0; id < w->nterms; id++) {
        w->toff[id] = pos;
        pos += w->tcnt[id];
    }
    for (size_t i = 0; i < w->nlog; i++)
        w->sorted[w->toff[w->log[i].id]++] = w->log[i].ord;
}

/* Move the log into a generation (the log is full). */
static void terms_spill(struct idx_segw *w)
{
    if (w->nlog == 0)
        return;
    if (w->ngens == w->gencap) {
        size_t ncap = w->gencap ? w->gencap * 2 : 8;
        struct term_gen *ng = realloc(w->gens, ncap * sizeof *ng);
        if (!ng)
            abort(); /* out of memory while indexing: nothing sane to do */
        memset(ng + w->gencap, 0, (ncap - w->gencap) * sizeof *ng);
        w->gens = ng;
        w->gencap = ncap;
    }
    struct term_gen *g = &w->gens[w->ngens++];
    if (w->genfree < w->ngens)
        w->genfree = w->ngens;
    if (!g->ords && !(g->ords = malloc(TERM_LOG * sizeof *g->ords)))
        abort();
    if (g->startcap < w->nterms + 1) {
        free(g->start);
        g->startcap = w->tecap + 1;
        if (!(g->start = malloc(g->startcap * sizeof *g->start)))
            abort();
    }
    /* the counting sort, into the generation */
    uint32_t pos = 0;
    for (size_t id = 0; id < w->nterms; id++) {
        g->start[id] = pos;
        pos += w->tcnt[id];
        w->tcnt[id] = 0;
    }
    g->start[w->nterms] = pos;
    g->nterms = w->nterms;
    uint32_t *at = w->toffcap >= w->nterms ? w->toff : NULL;
    if (!at) {
        free(w->toff);
        w->toffcap = w->tecap;
        if (!(w->toff = at = malloc(w->toffcap * sizeof *w->toff)))
            abort();
    }
    memcpy(at, g->start, w->nterms * sizeof *at);
    for (size_t i = 0; i < w->nlog; i++)
        g->ords[at[w->log[i].id]++] = w->log[i].ord;
    w->nlog = 0;
}

/* Term id's ordinals since the last flush, ascending: from the
 * generations, then the log (sorted by terms_sort()). */
static const uint32_t *term_ords(struct idx_segw *w, uint32_t id, size_t *n)
{
    uint32_t cnt = w->tcnt[id];
    const uint32_t *tail = w->sorted + w->toff[id] - cnt;
    size_t total = cnt, ng = 0;
    for (size_t i = 0; i < w->ngens; i++)
        if (id < w->gens[i].nterms) {
            size_t c = w->gens[i].start[id + 1] - w->gens[i].start[id];
            total += c;
            ng += c != 0;
        }
    *n = total;
    if (ng == 0)
        return tail;
    if (w->gathercap < total) {
        free(w->gather);
        w->gathercap = total * 2;
        if (!(w->gather = malloc(w->gathercap * sizeof *w->gather)))
            abort();
    }
    size_t k = 0;
    for (size_t i = 0; i < w->ngens; i++)
        if (id < w->gens[i].nterms) {
            const struct term_gen *g = &w->gens[i];
            memcpy(w->gather + k, g->ords + g->start[id], (g->start[id + 1] - g->start[id]) * 4);
            k += g->start[id + 1] - g->start[id];
        }
    memcpy(w->gather + k, tail, cnt * 4);
    return w->gather;
}

/* How many ordinals term id has since the last flush. */
static size_t term_count(const struct idx_segw *w, uint32_t id)
{
    size_t total = w->tcnt[id];
    for (size_t i = 0; i < w->ngens; i++)
        if (id < w->gens[i].nterms)
            total += w->gens[i].start[id + 1] - w->gens[i].start[id];
    return total;
}

/* Sort a[0 .. n) (distinct, each in lo .. lo + 2^32): insertion sort when
 * few, else an LSD radix sort by the bytes of a[i] - lo that differ,
 * through tmp (n entries). Returns whichever of a and tmp holds them. */
static uint32_t *ords_sort(uint32_t *a, uint32_t *tmp, size_t n, uint32_t lo, uint32_t hi)
{
    if (n <= 32) {
        for (size_t i = 1; i < n; i++) {
            uint32_t x = a[i];
            size_t j = i;
            for (; j > 0 && a[j - 1] > x; j--)
                a[j] = a[j - 1];
            a[j] = x;
        }
        return a;
    }
    for (int shift = 0; shift < 32 && (hi - lo) >> shift; shift += 8) {
        size_t pos[256] = {0}, sum = 0;
        for (size_t i = 0; i < n; i++)
            pos[((a[i] - lo) >> shift) & 0xff]++;
        for (int b = 0; b < 256; b++) {
            size_t c = pos[b];
            pos[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[pos[((a[i] - lo) >> shift) & 0xff]++] = a[i];
        uint32_t *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* Room for n bytes. */
static uint8_t *scratch(struct idx_segw *w, size_t n)
{
    if (n > w->scratch_cap) {
        free(w->scratch);
        w->scratch_cap = n * 2;
        w->scratch = malloc(w->scratch_cap);
        if (!w->scratch)
            abort();
    }
    return w->scratch;
}

/* CRoaring's portable format without run containers (idx_posting_encode):
 * the header of nc containers; returns where their data starts. */
static uint32_t posting_head(uint8_t *out, uint32_t nc)
{
    uint32_t cookie = 12346;
    memcpy(out, &cookie, 4);
    memcpy(out + 4, &nc, 4);
    return 8 + 8 * nc;
}

/* The descriptor of container i of nc: its key, its cardinality (card
 * values) and where its data starts. */
static void posting_container(uint8_t *out, uint32_t nc, uint32_t i, uint16_t key, uint32_t card,
                              uint32_t at)
{
    uint16_t card1 = (uint16_t)(card - 1);
    memcpy(out + 8 + 4 * (size_t)i, &key, 2);
    memcpy(out + 10 + 4 * (size_t)i, &card1, 2);
    memcpy(out + 8 + 4 * (size_t)nc + 4 * (size_t)i, &at, 4);
}

/* Room for a bit per ordinal since the last flush, in whole 64 Ki-ordinal
 * containers from bbase, all zero (posting_bits clears what it sets). */
static void bits_ready(struct idx_segw *w)
{
    w->bbase = (uint32_t)w->flush_base & ~0xffffu;
    size_t words = (size_t)((((w->packets | 0xffff) + 1) - w->bbase) / 64);
    if (w->bitscap < words) {
        free(w->bits);
        free(w->cards);
        w->bitscap = words;
        w->bits = calloc(words, sizeof *w->bits);
        w->cards = malloc((words / 1024 + 1) * sizeof *w->cards);
        if (!w->bits || !w->cards)
            abort(); /* out of memory while indexing: nothing sane to do */
    }
}

#define NO_TERM UINT32_MAX

/* A term's sources of ordinals since the last flush: i == 0, its own
 * (term id tid's, none if NO_TERM), then each of its nf active flows
 * fl[0 .. nf) (fords, counted by flow_order()). Ascending in each. */
static const uint32_t *src_ords(struct idx_segw *w, uint32_t tid, const uint32_t *fl, size_t i,
                                size_t *n)
{
    if (i == 0) {
        if (tid == NO_TERM) {
            *n = 0;
            return NULL;
        }
        return term_ords(w, tid, n);
    }
    uint32_t a = fl[i - 1];
    *n = w->fstart[a + 1] - w->fstart[a];
    return w->fords + w->fstart[a];
}

/* posting_build() for a term of many ordinals from several sources: set
 * their bits, then write CRoaring's portable format (idx_posting_encode)
 * container by container from the bitset: a container of more than 4096
 * is the bitset's 1024 words as they are. */
static const uint8_t *posting_bits(struct idx_segw *w, uint32_t tid, const uint32_t *fl, size_t nf,
                                   size_t *len)
{
    uint32_t base = w->bbase, lo = UINT32_MAX, hi = 0;
    uint64_t *bits = w->bits;
    for (size_t i = 0; i <= nf; i++) {
        size_t c;
        const uint32_t *src = src_ords(w, tid, fl, i, &c);
        if (c == 0)
            continue;
        for (size_t j = 0; j < c; j++) {
            uint32_t b = src[j] - base;
            bits[b >> 6] |= 1ULL << (b & 63);
        }
        if (src[0] < lo)
            lo = src[0];
        if (src[c - 1] > hi)
            hi = src[c - 1];
    }
    /* words lo_w .. hi_w hold every bit; container k's are k * 1024 .. */
    size_t lo_w = (lo - base) >> 6, hi_w = (hi - base) >> 6;
    size_t k0 = lo_w >> 10, k1 = hi_w >> 10, nc = 0, size = 8;
    for (size_t k = k0; k <= k1; k++) {
        size_t a = k == k0 ? lo_w : k << 10, b = k == k1 ? hi_w + 1 : (k + 1) << 10;
        uint32_t card = 0;
        for (size_t i = a; i < b; i++)
            card += (uint32_t)__builtin_popcountll(bits[i]);
        w->cards[k - k0] = card;
        if (card) {
            nc++;
            size += 8 + (card > 4096 ? 8192 : 2 * (size_t)card);
        }
    }
    uint8_t *out = scratch(w, size);
    uint32_t at = posting_head(out, (uint32_t)nc), ci = 0;
    for (size_t k = k0; k <= k1; k++) {
        uint32_t card = w->cards[k - k0];
        if (!card)
            continue;
        posting_container(out, (uint32_t)nc, ci++, (uint16_t)((base >> 16) + k), card, at);
        if (card > 4096) {
            memcpy(out + at, bits + (k << 10), 8192);
            at += 8192;
            continue;
        }
        size_t a = k == k0 ? lo_w : k << 10, b = k == k1 ? hi_w + 1 : (k + 1) << 10;
        for (size_t i = a; i < b; i++)
            for (uint64_t word = bits[i]; word; word &= word - 1) {
                uint16_t v = (uint16_t)(((i - (k << 10)) << 6) + (size_t)__builtin_ctzll(word));
                memcpy(out + at, &v, 2);
                at += 2;
            }
    }
    memset(bits + lo_w, 0, (hi_w - lo_w + 1) * sizeof *bits);
    *len = at;
    return out;
}

/* The posting of a term since the last flush, from its sources (src_ords:
 * its own ordinals, those of its active flows), encoded into scratch():
 * *len bytes. One source is encoded as it is. Several are merged: through
 * a bitset of the flush's ordinals when they are dense enough that
 * scanning it costs no more than setting the bits (and the bitset's 64
 * Ki-ordinal containers are encoded from it straight), else gathered and
 * sorted. (No ordinal is in two sources: a packet is noted with its flow
 * or logs its terms, and a term is once among a flow's.) */
static const uint8_t *posting_build(struct idx_segw *w, uint32_t tid, const uint32_t *fl, size_t nf,
                                    size_t *len)
{
    size_t own = tid == NO_TERM ? 0 : term_count(w, tid), total;
    const uint32_t *ords = NULL;
    if (nf == 0 || (nf == 1 && own == 0)) {
        ords = src_ords(w, tid, fl, nf, &total);
    } else {
        total = own;
        for (size_t i = 0; i < nf; i++)
            total += w->fstart[fl[i] + 1] - w->fstart[fl[i]];
        if ((w->packets - w->flush_base) / 64 <= 2 * total)
            return posting_bits(w, tid, fl, nf, len);
        if (w->mergecap < total) {
            free(w->merge);
            w->mergecap = total + total / 2;
            if (!(w->merge = malloc(2 * w->mergecap * sizeof *w->merge)))
                abort(); /* out of memory while indexing: nothing sane to do */
        }
        uint32_t lo = UINT32_MAX, hi = 0;
        size_t k = 0;
        for (size_t i = 0; i <= nf; i++) {
            size_t c;
            const uint32_t *src = src_ords(w, tid, fl, i, &c);
            if (c == 0)
                continue;
            memcpy(w->merge + k, src, c * sizeof *src);
            k += c;
            if (src[0] < lo)
                lo = src[0];
            if (src[c - 1] > hi)
                hi = src[c - 1];
        }
        ords = ords_sort(w->merge, w->merge + w->mergecap, k, lo, hi);
    }
    uint8_t *buf = scratch(w, idx_posting_size(ords, total));
    *len = idx_posting_encode(ords, total, buf);
    return buf;
}

/* After a flush: keep a few generation buffers for the next one (faulting
 * 1 MiB in again costs more than the sort that fills them). */
static void gens_reset(struct idx_segw *w)
{
    for (size_t i = GEN_KEEP; i < w->genfree; i++) {
        free(w->gens[i].ords);
        free(w->gens[i].start);
        w->gens[i] = (struct term_gen){0};
    }
    if (w->genfree > GEN_KEEP)
        w->genfree = GEN_KEEP;
    w->ngens = 0;
}

/* A new entry in terms[], with no ordinals yet. */
static uint32_t term_new(struct idx_segw *w, int kind, uint64_t v0, uint64_t v1, uint64_t h,
                         size_t len)
{
    if (w->nterms == w->tecap) {
        size_t ncap = w->tecap ? w->tecap * 2 : 2048;
        struct term_ent *nt = realloc(w->terms, ncap * sizeof *nt);
        uint32_t *nc = realloc(w->tcnt, ncap * sizeof *nc);
        if (!nt || !nc)
            abort(); /* out of memory while indexing: nothing sane to do */
        w->terms = nt;
        w->tcnt = nc;
        w->tecap = ncap;
    }
    uint32_t id = (uint32_t)w->nterms++;
    w->terms[id] = (struct term_ent){.v0 = v0, .v1 = v1, .hash = (uint32_t)h,
                                     .kind = (uint8_t)kind, .len = (uint8_t)len};
    w->tcnt[id] = 0;
    return id;
}

/* The id of a term, added if new. */
static inline uint32_t term_id(struct idx_segw *w, int kind, uint64_t v0, uint64_t v1, uint64_t h,
                               size_t len)
{
    size_t j = h & (w->tcap - 1);
    for (;;) {
        uint32_t s = w->slots[j];
        if (!s)
            break;
        const struct term_ent *e = &w->terms[s - 1];
        if (e->hash == (uint32_t)h && e->v0 == v0 && e->v1 == v1 && e->kind == kind)
            return s - 1;
        j = (j + 1) & (w->tcap - 1);
    }
    if ((w->nterms + 1) * 2 > w->tcap) {
        terms_grow(w);
        j = h & (w->tcap - 1);
        while (w->slots[j])
            j = (j + 1) & (w->tcap - 1);
    }
    uint32_t id = term_new(w, kind, v0, v1, h, len);
    w->slots[j] = id + 1;
    return id;
}

/* Room in the log for an entry: it grows to TERM_LOG entries (most
 * packets are plain and log none), then spills. */
static void log_room(struct idx_segw *w)
{
    if (w->logcap == TERM_LOG) {
        terms_spill(w);
        return;
    }
    size_t ncap = w->logcap ? w->logcap * 4 : 4096;
    struct term_log *nl = realloc(w->log, (ncap < TERM_LOG ? ncap : TERM_LOG) * sizeof *nl);
    if (!nl)
        abort(); /* out of memory while indexing: nothing sane to do */
    w->log = nl;
    w->logcap = ncap < TERM_LOG ? ncap : TERM_LOG;
}

static inline void term_log(struct idx_segw *w, uint32_t id, uint32_t ord)
{
    if (w->nlog == w->logcap)
        log_room(w);
    w->tcnt[id]++;
    w->flush_ords++;
    w->log[w->nlog++] = (struct term_log){id, ord};
}

/* Note packet ord's active flow (PF_NONE: none) in pf. */
static inline void pf_note(struct idx_segw *w, uint32_t ord, uint32_t aidx)
{
    size_t i = ord - (uint32_t)w->flush_base, blk = i >> PF_SHIFT;
    if (blk == w->npf) {
        uint32_t **np = realloc(w->pf, (w->npf + 1) * sizeof *np);
        if (!np)
            abort(); /* out of memory while indexing: nothing sane to do */
        np[w->npf] = buf_map(sizeof(uint32_t) << PF_SHIFT);
        w->pf = np;
        w->npf++;
    }
    w->pf[blk][i & ((1u << PF_SHIFT) - 1)] = aidx;
}

static void pf_unmap(struct idx_segw *w)
{
    for (size_t i = 0; i < w->npf; i++)
        buf_unmap(w->pf[i], sizeof(uint32_t) << PF_SHIFT);
    w->npf = 0;
}

/* Flow index fi (entry e) active in this flush, for plain packets of
 * has_ports hp and n terms. */
static void flow_activate(struct idx_segw *w, struct flow_ent *e, size_t fi, int hp, int n)
{
    if (w->nactive == w->alcap) {
        size_t ncap = w->alcap ? w->alcap * 2 : 1024;
        uint32_t *na = realloc(w->alist, ncap * sizeof *na);
        if (!na)
            abort();
        w->alist = na;
        w->alcap = ncap;
    }
    e->tgen = w->tgen;
    e->tn = (uint8_t)n;
    e->tports = (uint8_t)hp;
    e->gcnt = 0;
    e->aidx = (uint32_t)w->nactive;
    w->alist[w->nactive++] = (uint32_t)fi;
}

/* The id of a term whose value v is zero-padded to 16 bytes (NULL for
 * pseudo terms), added if new. */
static uint32_t term_of(struct idx_segw *w, int kind, const uint8_t *v, size_t len)
{
    uint64_t v0 = 0, v1 = 0;
    if (len) {
        memcpy(&v0, v, 8);
        memcpy(&v1, v + 8, 8);
    }
    return term_id(w, kind, v0, v1, term_hash(kind, v0, v1), len);
}

static void term_add(struct idx_segw *w, int kind, const uint8_t *v, size_t len, uint32_t ord)
{
    term_log(w, term_of(w, kind, v, len), ord);
}

/* The ids of a packet's terms (distinct: the parser removes duplicates),
 * added if new. The table and the entries are larger than the caches, so
 * the slots, then the entries, of all the packet's terms are prefetched
 * before they are looked up one by one. */
static void terms_lookup(struct idx_segw *w, const struct idx_term *terms, int n, uint32_t *ids)
{
    uint64_t h[IDX_MAX_TERMS];
    for (int i = 0; i < n; i++) {
        uint64_t v0, v1;
        memcpy(&v0, terms[i].val, 8);
        memcpy(&v1, terms[i].val + 8, 8);
        h[i] = term_hash(terms[i].kind, v0, v1);
        __builtin_prefetch(&w->slots[h[i] & (w->tcap - 1)]);
    }
    for (int i = 0; i < n; i++) {
        uint32_t s = w->slots[h[i] & (w->tcap - 1)];
        if (s)
            __builtin_prefetch(&w->terms[s - 1]);
    }
    for (int i = 0; i < n; i++) {
        uint64_t v0, v1;
        memcpy(&v0, terms[i].val, 8);
        memcpy(&v1, terms[i].val + 8, 8);
        ids[i] = term_id(w, terms[i].kind, v0, v1, h[i], terms[i].len);
    }
}

static void terms_clear(struct idx_segw *w)
{
    gens_reset(w);
    w->nterms = 0;
    w->nactive = 0;
    w->tgen++;
    w->nlog = 0;
    if (w->slots)
        memset(w->slots, 0, w->tcap * sizeof *w->slots);
}

/* Ask the caches for n bytes from p: each line they touch (an entry need
 * not start a line). */
static inline void prefetch_bytes(const void *p, size_t n)
{
    const char *c = p;
    for (size_t l = 0; l < n; l += 64)
        __builtin_prefetch(c + l);
    __builtin_prefetch(c + n - 1);
}

/* The slot hash of a flow key: a few multiplications (the flow hash
 * takes 40 dependent ones). */
static inline uint64_t key_hash(const struct idx_flowkey *k)
{
    uint64_t x = (k->w[0] ^ k->w[1] * 0x9e3779b97f4a7c15ULL) + (k->w[2] ^ k->w[3] * 0xc2b2ae3d27d4eb4fULL);
    x = (x ^ k->w[4]) * 0xbf58476d1ce4e5b9ULL;
    return x ^ (x >> 31);
}

static inline int key_same(const struct idx_flowkey *a, const struct idx_flowkey *b)
{
    return ((a->w[0] ^ b->w[0]) | (a->w[1] ^ b->w[1]) | (a->w[2] ^ b->w[2]) |
            (a->w[3] ^ b->w[3]) | (a->w[4] ^ b->w[4])) == 0;
}

/* The flow of this key (kh = key_hash(key)) and its index *fi; *fresh
 * when it was added now (zeroed but for its key and hash). */
static struct flow_ent *flow_slot(struct idx_segw *w, const struct idx_flowkey *key, uint64_t kh,
                                  int *fresh, size_t *fi)
{
    if ((w->fcount + 1) * 2 > w->fcap) {
        size_t ncap = w->fcap ? w->fcap * 2 : 1024;
        struct flow_slot *ns = calloc(ncap, sizeof *ns);
        if (!ns)
            abort(); /* out of memory while indexing: nothing sane to do */
        for (size_t i = 0; i < w->fcount; i++) {
            uint64_t h = key_hash(&flow_at(w, i)->key);
            size_t j = h & (ncap - 1);
            while (ns[j].idx1)
                j = (j + 1) & (ncap - 1);
            ns[j] = (struct flow_slot){(uint32_t)i + 1, (uint32_t)h};
        }
        free(w->fslots);
        w->fslots = ns;
        w->fcap = ncap;
    }
    size_t j = kh & (w->fcap - 1);
    for (;;) {
        struct flow_slot *sl = &w->fslots[j];
        if (!sl->idx1)
            break;
        if (sl->hlo == (uint32_t)kh && key_same(&flow_at(w, sl->idx1 - 1)->key, key)) {
            *fresh = 0;
            *fi = sl->idx1 - 1;
            return flow_at(w, *fi);
        }
        j = (j + 1) & (w->fcap - 1);
    }
    if (w->fcount == w->nfblk * FLOW_BLOCK) { /* a block more: entries never move */
        struct flow_ent **nb = realloc(w->fblk, (w->nfblk + 1) * sizeof *nb);
        if (!nb || !(nb[w->nfblk] = malloc(FLOW_BLOCK * sizeof **nb)))
            abort();
        w->fblk = nb;
        w->nfblk++;
    }
    *fi = w->fcount;
    struct flow_ent *e = flow_at(w, w->fcount);
    w->fslots[j] = (struct flow_slot){(uint32_t)w->fcount + 1, (uint32_t)kh};
    w->fcount++;
    memset(e, 0, sizeof *e);
    e->key = *key;
    e->hash = idx_flowkey_hash(key);
    *fresh = 1;
    return e;
}

static void flow_add(struct idx_segw *w, struct flow_ent *e, int fresh, const struct idx_parsed *p,
                     int64_t ts, uint32_t wirelen)
{
    const struct idx_flow *f = &p->flow;
    if (fresh) {
        e->sport = f->sport;
        e->dport = f->dport;
        e->has_ports = f->has_ports;
        e->swap = p->key_swap;
        e->first_ts = e->last_ts = ts;
        idx_community_sha1(f, e->cid);
    }
    w->ndirty += !e->dirty;
    e->dirty = 1;
    if (ts < e->first_ts)
        e->first_ts = ts;
    if (ts > e->last_ts)
        e->last_ts = ts;
    if (p->key_swap == e->swap) { /* the way of the first packet */
        e->pkts_fwd++;
        e->bytes_fwd += wirelen;
    } else {
        e->pkts_rev++;
        e->bytes_rev += wirelen;
    }
    e->tcp_flags |= f->tcp_flags;
}

/* The flow's record (struct idx_flowrec) as idx_flow_decode reads it: the
 * addresses are the key's (zero-padded to 16 bytes as there), the first
 * packet's source first. */
static size_t flow_encode(const struct flow_ent *e, uint8_t *v)
{
    const uint8_t *key = (const uint8_t *)e->key.w;
    char cid[40];
    idx_community_fmt(e->cid, cid);
    size_t n = 0, cl = strlen(cid);
    v[n++] = 1;
    v[n++] = key[IDX_FK_FAMILY];
    v[n++] = key[IDX_FK_PROTO];
    memcpy(v + n, key + (e->swap ? IDX_FK_END2 : IDX_FK_END1), 16);
    n += 16;
    memcpy(v + n, key + (e->swap ? IDX_FK_END1 : IDX_FK_END2), 16);
    n += 16;
    rw_put_be16(v + n, e->sport);
    rw_put_be16(v + n + 2, e->dport);
    memcpy(v + n + 4, key + IDX_FK_VLAN, 2); /* big-endian there too */
    n += 6;
    rw_put_be64(v + n, (uint64_t)e->first_ts);
    rw_put_be64(v + n + 8, (uint64_t)e->last_ts);
    rw_put_be64(v + n + 16, e->pkts_fwd);
    rw_put_be64(v + n + 24, e->bytes_fwd);
    rw_put_be64(v + n + 32, e->pkts_rev);
    rw_put_be64(v + n + 40, e->bytes_rev);
    n += 48;
    v[n++] = e->tcp_flags;
    v[n++] = (uint8_t)cl;
    memcpy(v + n, cid, cl);
    return n + cl;
}

int idx_flow_decode(const uint8_t *v, size_t vl, struct idx_flowrec *r)
{
    if (vl < 91 || v[0] != 1)
        return -1;
    memset(r, 0, sizeof *r);
    r->family = v[1];
    r->proto = v[2];
    memcpy(r->src, v + 3, 16);
    memcpy(r->dst, v + 19, 16);
    r->sport = rw_get_be16(v + 35);
    r->dport = rw_get_be16(v + 37);
    r->vlan = rw_get_be16(v + 39);
    r->first_ts = (int64_t)rw_get_be64(v + 41);
    r->last_ts = (int64_t)rw_get_be64(v + 49);
    r->pkts_fwd = rw_get_be64(v + 57);
    r->bytes_fwd = rw_get_be64(v + 65);
    r->pkts_rev = rw_get_be64(v + 73);
    r->bytes_rev = rw_get_be64(v + 81);
    r->tcp_flags = v[89];
    size_t cl = v[90];
    if (91 + cl > vl || cl >= sizeof r->community_id)
        return -1;
    memcpy(r->community_id, v + 91, cl);
    r->community_id[cl] = 0;
    return 0;
}

static int pending_chunk(struct idx_segw *w)
{
    size_t need = 8 + 29 + 10 * IDX_CHUNK;
    if (w->plen + need > w->pcap) {
        size_t ncap = (w->plen + need) * 2;
        uint8_t *np = realloc(w->pending, ncap);
        if (!np)
            return -1;
        w->pending = np;
        w->pcap = ncap;
    }
    size_t len = idx_chunk_encode(&w->cur, w->pending + w->plen + 8);
    rw_put_be32(w->pending + w->plen, w->cur_no);
    rw_put_be32(w->pending + w->plen + 4, (uint32_t)len);
    w->plen += 8 + len;
    return 0;
}

int idx_segw_begin(idx_t *ix, uint32_t point, int linktype, uint32_t snaplen, const char *relpath,
                   idx_segw_t **out, uint64_t *seg_id, char *err)
{
    struct idx_segw *w = calloc(1, sizeof *w);
    uint8_t k[9], v[64 + 256], mv[8];
    int rc;
    if (!w)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if (strlen(relpath) >= sizeof w->seg.path) {
        free(w);
        return rw_err(err, RW_EINPUT, "segment path too long: %s", relpath);
    }
    w->ix = ix;
    terms_grow(w);
    w->tgen = 1;
    w->seg.id = idx_next_seg_id(ix);
    w->seg.point = point;
    w->seg.linktype = linktype;
    w->seg.snaplen = snaplen;
    w->seg.state = IDX_SEG_OPEN;
    w->seg.min_ts = INT64_MAX;
    w->seg.max_ts = INT64_MIN;
    w->seg.file_size = 24;
    snprintf(w->seg.path, sizeof w->seg.path, "%s", relpath);
    k[0] = 'S';
    rw_put_be64(k + 1, w->seg.id);
    size_t vl = idx_seg_encode(&w->seg, v);
    rw_put_be64(mv, w->seg.id + 1);
    rocksdb_writebatch_t *b = rocksdb_writebatch_create();
    rocksdb_writebatch_put(b, (const char *)k, 9, (const char *)v, vl);
    rocksdb_writebatch_put(b, "Mnext_seg", 9, (const char *)mv, 8);
    rc = idx_write_batch(ix, b, 1, err);
    rocksdb_writebatch_destroy(b);
    if (rc < 0) {
        idx_segw_abandon(w);
        return rc;
    }
    w->logged = 1;
    *out = w;
    *seg_id = w->seg.id;
    return 0;
}

void idx_segw_prefetch(idx_segw_t *w, const struct idx_parsed *p, int step)
{
    if (!p->flow.present || !w->fcap)
        return;
    const struct flow_slot *sl = &w->fslots[key_hash(&p->key) & (w->fcap - 1)];
    if (step == 0) {
        __builtin_prefetch(sl);
    } else if (sl->idx1) { /* every line a packet touches */
        prefetch_bytes(flow_at(w, sl->idx1 - 1), offsetof(struct flow_ent, hash));
    }
}

void idx_segw_add(idx_segw_t *w, int64_t ts, uint64_t offset, uint32_t caplen, uint32_t wirelen,
                  const struct idx_parsed *p)
{
    if (w->flush_failed)
        return; /* nothing more is committed (idx_segw_flush) */
    uint32_t ord = (uint32_t)w->packets;
    struct flow_ent *e = NULL;
    int fresh = 0;
    size_t fi = 0;
    /* the packet's terms but the flow's, which the flow's entry has (the
     * parser's, if it added one, is the last: index/parse.h) */
    int nt = p->nterms;
    if (nt && p->terms[nt - 1].kind == IDX_T_FLOW)
        nt--;
    if (p->flow.present)
        e = flow_slot(w, &p->key, key_hash(&p->key), &fresh, &fi);
    int plain = e && !(p->flags & (IDX_F_UNPARSED | IDX_F_DEEP)) && nt + 1 <= FLOW_TIDS;
    if (plain && e->tgen != w->tgen && w->nactive < ACTIVE_MAX) {
        /* the flow's first plain packet in this flush: its terms are the
         * key's (the parser's contract, which this checks by their count) */
        struct idx_term t[IDX_FLOW_TERMS];
        if (idx_flowkey_terms(&p->key, p->flow.has_ports, t) == nt)
            flow_activate(w, e, fi, p->flow.has_ports, nt + 1);
    }
    if (plain && e->tgen == w->tgen && e->tn == nt + 1 && e->tports == p->flow.has_ports) {
        e->gcnt++;
        w->flush_ords += e->tn;
        pf_note(w, ord, e->aidx);
    } else {
        uint32_t ids[IDX_MAX_TERMS + 1];
        terms_lookup(w, p->terms, nt, ids);
        if (e) {
            uint8_t hv[16] = {0};
            rw_put_be64(hv, e->hash);
            ids[nt++] = term_of(w, IDX_T_FLOW, hv, 8);
        }
        for (int i = 0; i < nt; i++)
            term_log(w, ids[i], ord);
        pf_note(w, ord, PF_NONE);
    }
    if (p->flags & IDX_F_UNPARSED)
        term_add(w, IDX_K_UNPARSED, NULL, 0, ord);
    if (p->flags & IDX_F_DEEP)
        term_add(w, IDX_K_DEEP, NULL, 0, ord);
    if (e)
        flow_add(w, e, fresh, p, ts, wirelen);
    /* locator */
    if (w->cur.count == 0) {
        w->cur.min_ts = w->cur.max_ts = ts;
    } else {
        if (ts < w->cur.min_ts)
            w->cur.min_ts = ts;
        if (ts > w->cur.max_ts)
            w->cur.max_ts = ts;
    }
    w->cur.off[w->cur.count++] = offset;
    if (w->cur.count == IDX_CHUNK) {
        if (pending_chunk(w) < 0)
            abort();
        w->cur.count = 0;
        w->cur_no++;
    }
    /* counters, per second of capture time */
    int64_t sec = ts / RW_NS_PER_SEC;
    if (w->nsecs == 0 || w->secs[w->nsecs - 1].sec != sec) {
        size_t i;
        for (i = 0; i < w->nsecs && w->secs[i].sec != sec; i++)
            ;
        if (i == w->nsecs) {
            if (w->nsecs == w->capsecs) {
                w->capsecs = w->capsecs ? w->capsecs * 2 : 16;
                w->secs = realloc(w->secs, w->capsecs * sizeof *w->secs);
                if (!w->secs)
                    abort();
            }
            w->secs[w->nsecs++] = (struct sec_count){sec, 0, 0};
        } else if (i != w->nsecs - 1) {
            struct sec_count t = w->secs[i];
            w->secs[i] = w->secs[w->nsecs - 1];
            w->secs[w->nsecs - 1] = t;
        }
    }
    w->secs[w->nsecs - 1].pkts++;
    w->secs[w->nsecs - 1].bytes += wirelen;
    /* segment stats */
    if (ts < w->seg.min_ts)
        w->seg.min_ts = ts;
    if (ts > w->seg.max_ts)
        w->seg.max_ts = ts;
    w->seg.bytes += caplen;
    w->seg.wire_bytes += wirelen;
    w->packets++;
}

uint64_t idx_segw_packets(const idx_segw_t *w) { return w->packets; }

/* Key order of two terms: kind, then the value's bytes (zero-padded to
 * 16, in v0 and v1 as in memory). */
static int term_order(int xk, uint64_t x0, uint64_t x1, int yk, uint64_t y0, uint64_t y1)
{
    if (xk != yk)
        return xk < yk ? -1 : 1;
    uint64_t p = __builtin_bswap64(x0), q = __builtin_bswap64(y0);
    if (p == q) {
        p = __builtin_bswap64(x1);
        q = __builtin_bswap64(y1);
    }
    return p < q ? -1 : p > q;
}

/* Term ids in key order. */
static int term_cmp(const void *a, const void *b, void *arg)
{
    const struct term_ent *t = arg, *x = &t[*(const uint32_t *)a], *y = &t[*(const uint32_t *)b];
    return term_order(x->kind, x->v0, x->v1, y->kind, y->v0, y->v1);
}

/* A key to sort by, and whose it is. */
struct sortkey {
    uint64_t k;
    uint32_t id, pad;
};

/* A flush visits terms and flows in key order, which is no order in
 * memory: on many flows each visit missed the caches several times (a
 * fifth of the capture's CPU on small packets). What a visit reads is
 * asked for this many visits ahead. */
#define FLUSH_AHEAD 8

/* Room for sorting n keys, until sortkeys_done(). */
static struct sortkey *sortkeys(struct idx_segw *w, size_t n)
{
    w->skcap = n ? n : 1;
    return w->sk = buf_map(w->skcap * sizeof *w->sk);
}

static void sortkeys_done(struct idx_segw *w)
{
    buf_unmap(w->sk, w->skcap * sizeof *w->sk);
    w->sk = NULL;
}

/* In-place MSD radix sorts ("American flag"), a byte of KEY at a time
 * from bit shift down, skipping a byte in which all keys agree; insertion
 * sort for a few. In place, so that a flush sorts its terms and flows
 * without a second buffer of their size (an LSD radix sort's, or a merge
 * sort's); and without comparisons through a function pointer (qsort_r's
 * were a twentieth of the capture CPU on many small flows). Not stable. */
#define INPLACE_SORT(name, T, KEY)                                                           \
    static void name(T *a, size_t n, int shift)                                              \
    {                                                                                        \
        while (n > 32) {                                                                     \
            size_t cnt[256] = {0}, next[256], end[256], sum = 0;                             \
            for (size_t i = 0; i < n; i++)                                                   \
                cnt[(KEY(a[i]) >> shift) & 0xff]++;                                          \
            if (cnt[(KEY(a[0]) >> shift) & 0xff] == n) { /* all agree here */                \
                if (shift == 0)                                                              \
                    return;                                                                  \
                shift -= 8;                                                                  \
                continue;                                                                    \
            }                                                                                \
            for (int b = 0; b < 256; b++) {                                                  \
                next[b] = sum;                                                               \
                sum += cnt[b];                                                               \
                end[b] = sum;                                                                \
            }                                                                                \
            for (unsigned b = 0; b < 256; b++)                                               \
                while (next[b] < end[b]) { /* cycle each misplaced key home */               \
                    T v = a[next[b]];                                                        \
                    unsigned d = (unsigned)(KEY(v) >> shift) & 0xff;                         \
                    while (d != b) {                                                         \
                        T t = a[next[d]];                                                    \
                        a[next[d]++] = v;                                                    \
                        v = t;                                                               \
                        d = (unsigned)(KEY(v) >> shift) & 0xff;                              \
                    }                                                                        \
                    a[next[b]++] = v;                                                        \
                }                                                                            \
            if (shift > 0)                                                                   \
                for (int b = 0; b < 256; b++)                                                \
                    if (cnt[b] > 1)                                                          \
                        name(a + end[b] - cnt[b], cnt[b], shift - 8);                        \
            return;                                                                          \
        }                                                                                    \
        for (size_t i = 1; i < n; i++) {                                                     \
            T x = a[i];                                                                      \
            size_t j = i;                                                                    \
            for (; j > 0 && KEY(a[j - 1]) > KEY(x); j--)                                     \
                a[j] = a[j - 1];                                                             \
            a[j] = x;                                                                        \
        }                                                                                    \
    }

/* An active flow's term (not an IPv6 address, see struct pair6): its kind
 * (4 bits), its value as a big-endian number (up to 4 bytes: 32 bits),
 * the flow's index among the active ones (28 bits: ACTIVE_MAX). Sorted as
 * integers, the pairs are in the terms' key order. */
#define PAIR(kind, val, aidx) ((uint64_t)(kind) << 60 | (uint64_t)(val) << 28 | (aidx))
#define PAIR_TERM(p) ((p) >> 28)
#define PAIR_AIDX(p) ((uint32_t)((p) & (ACTIVE_MAX - 1)))
/* An active flow's IPv6 address (big-endian halves). */
struct pair6 {
    uint64_t hi, lo;
    uint32_t aidx, pad;
};

#define KEY_SELF(x) (x)
#define KEY_K(x) ((x).k)
#define KEY_HI(x) ((x).hi)
#define KEY_LO(x) ((x).lo)
INPLACE_SORT(sort_u64, uint64_t, KEY_SELF)
INPLACE_SORT(sort_keys, struct sortkey, KEY_K)
INPLACE_SORT(sort_p6hi, struct pair6, KEY_HI)
INPLACE_SORT(sort_p6lo, struct pair6, KEY_LO)

/* The ids of the terms in key order (kind, then the value's bytes) into
 * ids: by kind and the value's first 7 bytes, then values longer than 7
 * bytes that share those by term_cmp. */
static void terms_order(struct idx_segw *w, uint32_t *ids)
{
    size_t n = w->nterms;
    if (n == 0)
        return;
    struct sortkey *a = sortkeys(w, n);
    for (size_t i = 0; i < n; i++)
        a[i] = (struct sortkey){((uint64_t)w->terms[i].kind << 56) |
                                    (__builtin_bswap64(w->terms[i].v0) >> 8),
                                (uint32_t)i, 0};
    sort_keys(a, n, 56);
    for (size_t i = 0; i < n; i++)
        ids[i] = a[i].id;
    for (size_t i = 0; i < n;) {
        size_t j = i + 1;
        while (j < n && a[j].k == a[i].k)
            j++;
        if (j - i > 1 && w->terms[ids[i]].len > 7)
            qsort_r(ids + i, j - i, sizeof *ids, term_cmp, w->terms);
        i = j;
    }
    sortkeys_done(w);
}

/* At flush: the active flows' ordinals, counted by flow from pf into
 * fords (fstart[a] .. fstart[a + 1] are flow a's, ascending). */
static void flow_order(struct idx_segw *w)
{
    size_t na = w->nactive, total = 0;
    if (w->fscap < na + 1) {
        free(w->fstart);
        w->fscap = w->alcap + 1;
        if (!(w->fstart = malloc(w->fscap * sizeof *w->fstart)))
            abort(); /* out of memory while indexing: nothing sane to do */
    }
    for (size_t a = 0; a < na; a++) {
        if (a + FLUSH_AHEAD < na)
            __builtin_prefetch(&flow_at(w, w->alist[a + FLUSH_AHEAD])->gcnt);
        w->fstart[a] = (uint32_t)total;
        total += flow_at(w, w->alist[a])->gcnt;
    }
    w->fstart[na] = (uint32_t)total;
    w->focap = total ? total : 1;
    w->fords = buf_map(w->focap * sizeof *w->fords);
    /* fill through fstart[a] as a cursor, then shift it back */
    size_t npk = (size_t)(w->packets - w->flush_base);
    uint32_t base = (uint32_t)w->flush_base;
    for (size_t i = 0; i < npk; i++) {
        uint32_t a = w->pf[i >> PF_SHIFT][i & ((1u << PF_SHIFT) - 1)];
        if (a != PF_NONE)
            w->fords[w->fstart[a]++] = base + (uint32_t)i;
    }
    for (size_t a = na; a > 0; a--)
        w->fstart[a] = w->fstart[a - 1];
    w->fstart[0] = 0;
    pf_unmap(w);
}

/* The active flows' terms are made into pairs in three phases, each of
 * kinds above the last one's and of at most two terms a flow: the
 * addresses, the ports, then the protocol and the L3 type. So the pairs
 * take 16 bytes a flow at a time rather than 48, for deriving each flow's
 * terms three times (idx_flowkey_terms: 2 ms a flush of 50 000 flows). */
#define PAIR_PHASES 3
static int pair_phase(int kind)
{
    return kind == IDX_T_IP4 || kind == IDX_T_IP6 ? 0 : kind == IDX_T_PORT ? 1 : 2;
}

/* At flush: the active flows' terms of phase ph as pairs, sorted: *n of
 * them in pairs, *n6 in pairs6. */
static void flow_pairs(struct idx_segw *w, int ph, size_t *n, size_t *n6)
{
    size_t np = 0, np6 = 0, na = w->nactive;
    if (!w->pairs) {
        w->paircap = na ? 2 * na : 1;
        w->pairs = buf_map(w->paircap * sizeof *w->pairs);
    }
    for (size_t a = 0; a < na; a++) {
        if (a + FLUSH_AHEAD < na)
            prefetch_bytes(flow_at(w, w->alist[a + FLUSH_AHEAD]), sizeof(struct idx_flowkey));
        const struct flow_ent *e = flow_at(w, w->alist[a]);
        struct idx_term t[IDX_FLOW_TERMS];
        int nt = idx_flowkey_terms(&e->key, e->tports, t);
        for (int i = 0; i < nt; i++) {
            if (pair_phase(t[i].kind) != ph)
                continue;
            if (t[i].kind == IDX_T_IP6) {
                if (np6 == w->pair6cap) {
                    size_t ncap = w->pair6cap ? w->pair6cap * 2 : 1024;
                    struct pair6 *q = realloc(w->pairs6, ncap * sizeof *q);
                    if (!q)
                        abort();
                    w->pairs6 = q;
                    w->pair6cap = ncap;
                }
                w->pairs6[np6++] = (struct pair6){rw_get_be64(t[i].val),
                                                  rw_get_be64(t[i].val + 8), (uint32_t)a, 0};
                continue;
            }
            uint32_t v = 0;
            for (int j = 0; j < t[i].len; j++)
                v = v << 8 | t[i].val[j];
            w->pairs[np++] = PAIR(t[i].kind, v, a);
        }
    }
    sort_u64(w->pairs, np, 56);
    sort_p6hi(w->pairs6, np6, 56);
    for (size_t i = 0; i < np6;) {
        size_t j = i + 1;
        while (j < np6 && w->pairs6[j].hi == w->pairs6[i].hi)
            j++;
        sort_p6lo(w->pairs6 + i, j - i, 56);
        i = j;
    }
    *n = np;
    *n6 = np6;
}

/* Room for one id per term. */
static uint32_t *scratch_ids(struct idx_segw *w)
{
    if (w->idscap < w->nterms) {
        free(w->ids);
        w->idscap = w->tecap;
        if (!(w->ids = malloc(w->idscap * sizeof *w->ids)))
            abort();
    }
    return w->ids;
}

size_t idx_posting_size(const uint32_t *v, size_t n)
{
    size_t sz = 8, i = 0;
    while (i < n) {
        uint32_t hi = v[i] >> 16;
        size_t j = i;
        while (j < n && v[j] >> 16 == hi)
            j++;
        sz += 8 + (j - i > 4096 ? 8192 : 2 * (j - i));
        i = j;
    }
    return sz;
}

/* CRoaring's portable format without run containers (the cookie 12346,
 * the container count, a key and cardinality - 1 per container, an offset
 * per container, then each container: up to 4096 values as 16-bit
 * integers, else a 65536-bit bitset; little-endian), written from n
 * ascending distinct values: what roaring_bitmap_portable_serialize()
 * writes for the same set built without run_optimize, with no bitmap
 * built. out has idx_posting_size(v, n) bytes. */
size_t idx_posting_encode(const uint32_t *v, size_t n, uint8_t *out)
{
    uint32_t nc = 0;
    for (size_t i = 0; i < n;) {
        uint32_t hi = v[i] >> 16;
        while (i < n && v[i] >> 16 == hi)
            i++;
        nc++;
    }
    uint32_t at = posting_head(out, nc), ci = 0;
    for (size_t i = 0; i < n;) {
        uint32_t hi = v[i] >> 16;
        size_t j = i;
        while (j < n && v[j] >> 16 == hi)
            j++;
        posting_container(out, nc, ci++, (uint16_t)hi, (uint32_t)(j - i), at);
        if (j - i > 4096) {
            uint64_t words[1024];
            memset(words, 0, sizeof words);
            for (size_t k = i; k < j; k++)
                words[(v[k] & 0xffff) >> 6] |= 1ULL << (v[k] & 63);
            memcpy(out + at, words, sizeof words);
            at += 8192;
        } else {
            for (size_t k = i; k < j; k++) {
                uint16_t lo = (uint16_t)v[k];
                memcpy(out + at, &lo, 2);
                at += 2;
            }
        }
        i = j;
    }
    return at;
}


static inline void term_prefetch(const struct idx_segw *w, uint32_t id)
{
    __builtin_prefetch(&w->terms[id]);
    __builtin_prefetch(&w->tcnt[id]);
    __builtin_prefetch(&w->toff[id]);
    for (size_t g = 0; g < w->ngens; g++)
        if (id < w->gens[g].nterms)
            __builtin_prefetch(&w->gens[g].start[id]);
}

/* Unmap what flow_order() and flow_pairs() mapped for the flush. */
static void flush_unmap(struct idx_segw *w)
{
    buf_unmap(w->fords, w->focap * sizeof *w->fords);
    w->fords = NULL;
    buf_unmap(w->pairs, w->paircap * sizeof *w->pairs);
    w->pairs = NULL;
    free(w->pairs6);
    w->pairs6 = NULL;
    w->pair6cap = 0;
}

/* A term's key for the flush's merge: its value's bytes zero-padded to 16
 * (as struct term_ent's v0 and v1), its kind and length. */
struct tkey {
    uint64_t v0, v1;
    int kind;
    size_t len;
};

/* The value of d (its len set): a big-endian number v of len bytes, or,
 * if be is not NULL, the big-endian halves be[0] and be[1]. */
static void tkey_set(struct tkey *d, uint32_t v, const uint64_t *be)
{
    uint8_t b[16] = {0};
    if (be) {
        rw_put_be64(b, be[0]);
        rw_put_be64(b + 8, be[1]);
    } else {
        for (size_t j = 0; j < d->len; j++)
            b[j] = (uint8_t)(v >> (8 * (d->len - 1 - j)));
    }
    memcpy(&d->v0, b, 8);
    memcpy(&d->v1, b + 8, 8);
}


/* Everything added since the last commit, as one write batch, in key
 * order (C, F, L, P, S; within each, ascending): the memtable inserts a
 * key after the one before it without searching from the top, which makes
 * a batch of many flows and terms several times cheaper to apply. */
static void build_batch(struct idx_segw *w, uint64_t file_size, struct sink *b)
{
    uint8_t k[2 + 16 + 8], v[64 + 256];
    /* A table file for a batch that would fill a memtable (see struct
     * sink); a write batch when that is small, or the file cannot be made. */
    size_t est = (w->nterms + 2 * w->nactive) * 64 + w->flush_ords * 2 + w->ndirty * 170 + w->plen +
                 (size_t)w->cur.count * 10;
    char err[RW_ERRSZ];
    b->rerr = NULL;
    b->sst = NULL;
    b->b = NULL;
    if (est >= INGEST_BYTES)
        b->sst = idx_sst_open(w->ix, w->seg.id, b->path, sizeof b->path, err);
    if (!b->sst) {
        b->b = w->spare ? w->spare : rocksdb_writebatch_create();
        w->spare = NULL;
    }
    /* counters, by second (a table file takes keys in order only) */
    for (size_t i = 1; i < w->nsecs; i++)
        for (size_t j = i; j > 0 && (uint64_t)w->secs[j - 1].sec > (uint64_t)w->secs[j].sec; j--) {
            struct sec_count t = w->secs[j];
            w->secs[j] = w->secs[j - 1];
            w->secs[j - 1] = t;
        }
    for (size_t i = 0; i < w->nsecs; i++) {
        uint8_t ck[13], cv[16];
        ck[0] = 'C';
        rw_put_be32(ck + 1, w->seg.point);
        rw_put_be64(ck + 5, (uint64_t)w->secs[i].sec);
        rw_put_be64(cv, w->secs[i].pkts);
        rw_put_be64(cv + 8, w->secs[i].bytes);
        sink_merge(b, ck, 13, cv, 16);
    }
    /* flows that changed, in key order (their hash) */
    size_t nf = 0;
    for (size_t i = 0; i < w->fcount; i++)
        if (flow_at(w, i)->dirty)
            nf++;
    struct sortkey *fs = sortkeys(w, nf ? nf : 1);
    nf = 0;
    for (size_t i = 0; i < w->fcount; i++)
        if (flow_at(w, i)->dirty)
            fs[nf++] = (struct sortkey){flow_at(w, i)->hash, (uint32_t)i, 0};
    sort_keys(fs, nf, 56);
    if (w->forcap < nf) {
        free(w->forder);
        w->forcap = nf + nf / 4;
        if (!(w->forder = malloc(w->forcap * sizeof *w->forder)))
            abort(); /* out of memory while indexing: nothing sane to do */
    }
    for (size_t j = 0; j < nf; j++)
        w->forder[j] = fs[j].id;
    sortkeys_done(w);
    for (size_t j = 0; j < nf; j++) {
        if (j + FLUSH_AHEAD < nf)
            prefetch_bytes(flow_at(w, w->forder[j + FLUSH_AHEAD]), sizeof(struct flow_ent));
        struct flow_ent *e = flow_at(w, w->forder[j]);
        uint8_t fk[17], fv[160];
        fk[0] = 'F';
        rw_put_be64(fk + 1, w->seg.id);
        rw_put_be64(fk + 9, e->hash);
        size_t n = flow_encode(e, fv);
        sink_put(b, fk, 17, fv, n);
    }
    /* locators: full chunks, then the partial one (rewritten next time) */
    for (size_t pos = 0; pos < w->plen;) {
        uint32_t no = rw_get_be32(w->pending + pos), len = rw_get_be32(w->pending + pos + 4);
        k[0] = 'L';
        rw_put_be64(k + 1, w->seg.id);
        rw_put_be32(k + 9, no);
        sink_put(b, k, 13, w->pending + pos + 8, len);
        pos += 8 + len;
    }
    if (w->cur.count) {
        uint8_t *buf = scratch(w, 29 + 10 * IDX_CHUNK);
        size_t len = idx_chunk_encode(&w->cur, buf);
        k[0] = 'L';
        rw_put_be64(k + 1, w->seg.id);
        rw_put_be32(k + 9, w->cur_no);
        sink_put(b, k, 13, buf, len);
    }
    /* postings, in key order: the memtable inserts them fastest that way.
     * A term's ordinals since the last flush are its active flows' and its
     * own (posting_build). Four streams, each in key order, are merged: the
     * term table's terms (terms_order), the active flows' terms as pairs
     * (flow_pairs), their IPv6 addresses, and their flow hashes (the
     * changed flows in hash order, from the flow records above). Only the
     * table's terms can share a key with another stream's (the three
     * others have kinds of their own). */
    terms_sort(w);
    bits_ready(w);
    flow_order(w);
    size_t nids = w->nterms, np = 0, np6 = 0, i1 = 0, i2 = 0, i6 = 0, i4 = 0;
    int phase = 0;
    uint32_t *ids = scratch_ids(w);
    terms_order(w, ids);
    if (w->srcfcap < w->nactive) {
        free(w->srcf);
        w->srcfcap = w->alcap;
        if (!(w->srcf = malloc(w->srcfcap * sizeof *w->srcf)))
            abort(); /* out of memory while indexing: nothing sane to do */
    }
    for (;;) {
        while (i2 == np && i6 == np6 && phase < PAIR_PHASES) {
            flow_pairs(w, phase++, &np, &np6);
            i2 = i6 = 0;
        }
        while (i4 < nf && flow_at(w, w->forder[i4])->tgen != w->tgen)
            i4++; /* changed by packets that were not plain only */
        /* the first of the derived streams (distinct kinds: the lowest) */
        struct tkey d = {.kind = -1}, t = {.kind = -1};
        int from = 0;
        if (i2 < np) {
            uint64_t x = w->pairs[i2];
            d.kind = (int)(x >> 60);
            d.len = idx_term_len(d.kind);
            tkey_set(&d, (uint32_t)(x >> 28), NULL);
            from = 2;
        }
        if (i6 < np6 && (d.kind < 0 || IDX_T_IP6 < d.kind)) {
            d.kind = IDX_T_IP6;
            d.len = 16;
            tkey_set(&d, 0, &w->pairs6[i6].hi);
            from = 6;
        }
        if (i4 < nf && (d.kind < 0 || IDX_T_FLOW < d.kind)) {
            uint64_t h = flow_at(w, w->forder[i4])->hash;
            d.kind = IDX_T_FLOW;
            d.len = 8;
            tkey_set(&d, 0, (const uint64_t[2]){h, 0});
            from = 4;
        }
        if (i1 < nids) {
            const struct term_ent *e = &w->terms[ids[i1]];
            t = (struct tkey){e->v0, e->v1, e->kind, e->len};
        }
        if (t.kind < 0 && d.kind < 0)
            break;
        int c = t.kind < 0 ? 1 : d.kind < 0 ? -1 : term_order(t.kind, t.v0, t.v1, d.kind, d.v0, d.v1);
        uint32_t tid = NO_TERM;
        size_t nsf = 0;
        if (c <= 0) {
            if (i1 + FLUSH_AHEAD < nids)
                term_prefetch(w, ids[i1 + FLUSH_AHEAD]);
            tid = ids[i1++];
        }
        if (c >= 0) { /* the derived term's flows */
            if (from == 2) {
                uint64_t term = PAIR_TERM(w->pairs[i2]);
                for (; i2 < np && PAIR_TERM(w->pairs[i2]) == term; i2++)
                    w->srcf[nsf++] = PAIR_AIDX(w->pairs[i2]);
            } else if (from == 6) {
                struct pair6 q = w->pairs6[i6];
                for (; i6 < np6 && w->pairs6[i6].hi == q.hi && w->pairs6[i6].lo == q.lo; i6++)
                    w->srcf[nsf++] = w->pairs6[i6].aidx;
            } else {
                uint64_t h = flow_at(w, w->forder[i4])->hash;
                for (; i4 < nf && flow_at(w, w->forder[i4])->hash == h; i4++)
                    if (flow_at(w, w->forder[i4])->tgen == w->tgen)
                        w->srcf[nsf++] = flow_at(w, w->forder[i4])->aidx;
            }
        }
        const struct tkey *key = c <= 0 ? &t : &d;
        size_t n;
        const uint8_t *buf = posting_build(w, tid, w->srcf, nsf, &n);
        k[0] = 'P';
        k[1] = (uint8_t)key->kind;
        memcpy(k + 2, &key->v0, 8);
        memcpy(k + 10, &key->v1, 8);
        rw_put_be64(k + 2 + key->len, w->seg.id);
        sink_merge(b, k, 2 + key->len + 8, buf, n);
    }
    flush_unmap(w);
    if (w->nterms)
        memset(w->tcnt, 0, w->nterms * sizeof *w->tcnt);
    w->nlog = 0;
    /* catalogue last, in the same batch: readers see all of it or none */
    w->seg.packets = w->packets;
    w->seg.file_size = file_size;
    k[0] = 'S';
    rw_put_be64(k + 1, w->seg.id);
    size_t vl = idx_seg_encode(&w->seg, v);
    sink_put(b, k, 9, v, vl);
}

/* Commit what build_batch() put in b: write or ingest it. Frees the table
 * file; a write batch is left to the caller. */
static int sink_commit(struct idx_segw *w, struct sink *b, int sync, char *err)
{
    if (b->b) {
        w->logged = 1;
        return idx_write_batch(w->ix, b->b, sync, err);
    }
    if (b->rerr) {
        int rc = idx_sst_failed(b->sst, b->path, b->rerr, err);
        b->rerr = NULL;
        b->sst = NULL;
        return rc;
    }
    int rc = idx_sst_ingest(w->ix, b->sst, b->path, w->logged, err);
    b->sst = NULL;
    if (rc == 0)
        w->logged = 0;
    return rc;
}

/* Keep a written batch's buffer for the next flush, or free it: a larger
 * one than this goes (what would fill it is ingested, see INGEST_BYTES). */
#define SPARE_MAX (2u << 20)
static void sink_done(struct idx_segw *w, struct sink *b)
{
    size_t size;
    if (!b->b)
        return;
    rocksdb_writebatch_data(b->b, &size);
    rocksdb_writebatch_clear(b->b);
    if (!w->spare && size <= SPARE_MAX)
        w->spare = b->b;
    else
        rocksdb_writebatch_destroy(b->b);
    b->b = NULL;
}

/* What build_batch() took is in a batch now: start the next one afresh. */
static void batch_taken(struct idx_segw *w)
{
    terms_clear(w);
    w->flush_base = w->packets;
    w->plen = 0;
    w->nsecs = 0;
    w->flush_ords = 0;
    w->ndirty = 0;
    for (size_t i = 0; i < w->fcount; i++)
        flow_at(w, i)->dirty = 0;
}

/* Wait until no batch is in flight; the error of a failed one, if any. */
static int commit_wait(struct idx_segw *w, char *err)
{
    if (!w->th_started) {
        if (w->failed)
            rw_err(err, w->failed, "%s", w->ferr);
        return w->failed;
    }
    pthread_mutex_lock(&w->mu);
    while (w->busy)
        pthread_cond_wait(&w->cv, &w->mu);
    int rc = w->failed;
    if (rc)
        rw_err(err, rc, "%s", w->ferr);
    pthread_mutex_unlock(&w->mu);
    return rc;
}

static void *commit_main(void *arg)
{
    struct idx_segw *w = arg;
    pthread_mutex_lock(&w->mu);
    for (;;) {
        while (!w->busy && !w->stop)
            pthread_cond_wait(&w->cv, &w->mu);
        if (!w->busy)
            break;
        struct sink *b = &w->inflight;
        int fd = w->in_fd, sync = w->in_sync, rc = 0;
        char e[RW_ERRSZ];
        pthread_mutex_unlock(&w->mu);
        /* The segment's bytes first, then the index that points at them. */
        if (sync && fdatasync(fd) < 0)
            rc = rw_err(e, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "syncing segment %s: %s",
                        w->seg.path, strerror(errno));
        if (rc == 0)
            rc = sink_commit(w, b, sync, e);
        else if (b->sst) {
            free(b->rerr);
            idx_sst_discard(b->sst, b->path);
            b->sst = NULL;
            b->rerr = NULL;
        }
        pthread_mutex_lock(&w->mu);
        sink_done(w, b);
        if (rc < 0 && !w->failed) {
            w->failed = rc;
            memcpy(w->ferr, e, RW_ERRSZ);
        }
        w->busy = 0;
        pthread_cond_broadcast(&w->cv);
    }
    pthread_mutex_unlock(&w->mu);
    return NULL;
}

int idx_segw_commit(idx_segw_t *w, int fd, uint64_t file_size, int sync, char *err)
{
    int rc;
    if ((rc = commit_wait(w, err)) < 0)
        return rc;
    if (!w->th_started) {
        pthread_mutex_init(&w->mu, NULL);
        pthread_cond_init(&w->cv, NULL);
        if (pthread_create(&w->th, NULL, commit_main, w) != 0) {
            /* No thread: commit here, as idx_segw_flush() does. */
            pthread_mutex_destroy(&w->mu);
            pthread_cond_destroy(&w->cv);
            if (sync && fdatasync(fd) < 0)
                return rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO,
                              "syncing segment %s: %s", w->seg.path, strerror(errno));
            return idx_segw_flush(w, file_size, sync, err);
        }
        w->th_started = 1;
    }
    build_batch(w, file_size, &w->inflight);
    batch_taken(w);
    pthread_mutex_lock(&w->mu);
    w->busy = 1;
    w->in_fd = fd;
    w->in_sync = sync;
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
    return 0;
}

int idx_segw_flush(idx_segw_t *w, uint64_t file_size, int sync, char *err)
{
    int rc;
    if ((rc = commit_wait(w, err)) < 0)
        return rc;
    struct sink b;
    build_batch(w, file_size, &b);
    rc = sink_commit(w, &b, sync, err);
    sink_done(w, &b);
    if (rc < 0) { /* final, as a commit's: build_batch() consumed the flush */
        if (w->th_started)
            pthread_mutex_lock(&w->mu);
        w->failed = rc;
        snprintf(w->ferr, sizeof w->ferr, "%s", err);
        if (w->th_started)
            pthread_mutex_unlock(&w->mu);
        w->flush_failed = rc;
        return rc;
    }
    batch_taken(w);
    return 0;
}

void idx_segw_abandon(idx_segw_t *w)
{
    if (!w)
        return;
    if (w->th_started) { /* a batch in flight is finished, not dropped */
        pthread_mutex_lock(&w->mu);
        w->stop = 1;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->mu);
        pthread_join(w->th, NULL);
        pthread_mutex_destroy(&w->mu);
        pthread_cond_destroy(&w->cv);
    }
    if (w->spare)
        rocksdb_writebatch_destroy(w->spare);
    terms_clear(w);
    free(w->terms);
    free(w->tcnt);
    w->genfree = w->ngens = 0;
    for (size_t i = 0; i < w->gencap; i++) {
        free(w->gens[i].ords);
        free(w->gens[i].start);
    }
    free(w->gens);
    free(w->gather);
    free(w->slots);
    free(w->log);
    free(w->sorted);
    free(w->toff);
    free(w->ids);
    pf_unmap(w);
    free(w->pf);
    free(w->alist);
    free(w->fstart);
    flush_unmap(w);
    free(w->forder);
    free(w->srcf);
    free(w->bits);
    free(w->cards);
    free(w->merge);
    buf_unmap(w->sk, w->skcap * sizeof *w->sk);
    for (size_t i = 0; i < w->nfblk; i++)
        free(w->fblk[i]);
    free(w->fblk);
    free(w->fslots);
    free(w->pending);
    free(w->secs);
    free(w->scratch);
    free(w);
}

int idx_segw_seal(idx_segw_t *w, uint64_t file_size, char *err)
{
    int rc;
    if ((rc = commit_wait(w, err)) < 0) {
        /* A commit failed: the catalogue keeps the segment open at its last
         * committed size, and recovery cuts the file back to it. */
        idx_segw_abandon(w);
        return rc;
    }
    if (w->packets == 0) {
        uint8_t k[9];
        k[0] = 'S';
        rw_put_be64(k + 1, w->seg.id);
        rocksdb_writebatch_t *b = rocksdb_writebatch_create();
        rocksdb_writebatch_delete(b, (const char *)k, 9);
        rc = idx_write_batch(w->ix, b, 1, err);
        rocksdb_writebatch_destroy(b);
        idx_segw_abandon(w);
        return rc < 0 ? rc : 1;
    }
    w->seg.state = IDX_SEG_SEALED;
    rc = idx_segw_flush(w, file_size, 1, err);
    idx_segw_abandon(w);
    return rc;
}

int idx_flows(idx_t *ix, uint64_t seg, int (*cb)(void *arg, const struct idx_flowrec *r), void *arg,
              char *err)
{
    return idx_flows_range(ix, seg, 0, UINT64_MAX, cb, arg, err);
}

int idx_flows_range(idx_t *ix, uint64_t seg, uint64_t lo, uint64_t hi,
                    int (*cb)(void *arg, const struct idx_flowrec *r), void *arg, char *err)
{
    uint8_t k[17];
    int rc = 0;
    k[0] = 'F';
    rw_put_be64(k + 1, seg);
    rw_put_be64(k + 9, lo);
    rocksdb_iterator_t *it = idx_iter(ix);
    for (rocksdb_iter_seek(it, (const char *)k, 17); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const char *key = rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        struct idx_flowrec r;
        if (kl != 17 || memcmp(key, k, 9) != 0)
            break;
        uint64_t hash = rw_get_be64((const uint8_t *)key + 9);
        if (hash > hi)
            break;
        if (idx_flow_decode(v, vl, &r) < 0) {
            rc = rw_err(err, RW_ECORRUPT, "index: malformed flow record in segment %llu",
                        (unsigned long long)seg);
            break;
        }
        r.hash = hash;
        if (cb(arg, &r))
            break;
    }
    if (rc == 0)
        rc = idx_iter_status(it, err);
    rocksdb_iter_destroy(it);
    return rc;
}

int idx_counters(idx_t *ix, uint32_t point, int64_t from_sec, int64_t to_sec,
                 int (*cb)(void *arg, int64_t sec, uint64_t packets, uint64_t bytes), void *arg,
                 char *err)
{
    uint8_t k[13];
    int rc = 0;
    k[0] = 'C';
    rw_put_be32(k + 1, point);
    /* Seconds are stored as u64 (K9): times before 1970 sort after the rest
     * and are not asked for here. */
    rw_put_be64(k + 5, (uint64_t)(from_sec < 0 ? 0 : from_sec));
    rocksdb_iterator_t *it = idx_iter(ix);
    for (rocksdb_iter_seek(it, (const char *)k, 13); rocksdb_iter_valid(it); rocksdb_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *key = (const uint8_t *)rocksdb_iter_key(it, &kl);
        const uint8_t *v = (const uint8_t *)rocksdb_iter_value(it, &vl);
        if (kl != 13 || memcmp(key, k, 5) != 0)
            break;
        int64_t sec = (int64_t)rw_get_be64(key + 5);
        if (sec >= to_sec || sec < 0)
            break;
        if (vl != 16)
            continue; /* K9: a value that is not 16 bytes counts as zero */
        if (cb(arg, sec, rw_get_be64(v), rw_get_be64(v + 8)))
            break;
    }
    rc = idx_iter_status(it, err);
    rocksdb_iter_destroy(it);
    return rc;
}
