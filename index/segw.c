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
#include <unistd.h>

/* Terms of the packets since the last flush. A term's id indexes terms[];
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
#define GROUP_KIND 0xff     /* no term kind: a group (see struct flow_ent) */
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
 * addresses, protocol, ports and flow hash. The flow's group keeps the term
 * ids its first plain packet had in this flush, so that the next plain
 * packet with the same flow adds them without looking up a term: its terms
 * are the same set since its key is the same (the key holds the family,
 * protocol, both addresses and, with has_ports, both ports) if so are
 * has_ports and the number of terms. Most of a busy link's packets then
 * cost one lookup (the flow's, needed anyway) instead of seven.
 *
 * Those ids are also a "group": a pseudo term (kind GROUP_KIND, not in
 * the hash table, its value the flow's index) that stands for the set.
 * Such a packet logs one entry, the group's, instead of one per term: a
 * seventh of the log's and the generations' entries, memory and sorting.
 * At flush a term's ordinals are its own and those of every group that
 * holds it (groups_index, posting_build). A group's set never changes while
 * it lives (one flush): a plain packet of the flow whose terms differ from
 * the set logs its terms one by one. */
#define FLOW_TIDS 7
#define GROUP_ROW (FLOW_TIDS + 1) /* gtid: a group's term count, then its ids */
#define FLOW_BLOCK 1024 /* flow entries a block (136 KiB) */
struct flow_ent { /* 136 bytes; what a packet touches first (the first 104) */
    struct idx_flowkey key; /* what finds it (index/parse.h) */
    uint32_t tgen;  /* gid is valid while this is the segment's tgen */
    uint32_t gid;   /* its group's term id */
    uint32_t gcnt;  /* the group's log entries since the last spill (groups_settle) */
    uint32_t pkts_fwd, pkts_rev; /* a segment has fewer than 2^32 packets */
    uint16_t sport, dport;       /* the first packet's (struct idx_flowrec) */
    uint8_t swap;      /* the first packet's key_swap: its source is the key's second endpoint */
    uint8_t has_ports; /* the first packet's, for the Community ID */
    uint8_t tcp_flags;
    uint8_t dirty;
    uint8_t tn;     /* how many terms the group has */
    uint8_t tports; /* has_ports of the packet they are from */
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
 * a table file: the size of RocksDB's write buffer (index.c), which such a
 * batch fills by itself, so that ingesting makes no more level-0 files than
 * the memtable's flushes would; but one more a segment: the memtable with
 * the segment's record (written at its start) is flushed before its first
 * batch is ingested (index.c, sst_prepare), which is why level 0 is
 * compacted at 5 files instead of 4 (index.c). Ingesting the first batch
 * too, rather than joining the record in the memtable, saves a memtable
 * and a batch of that size (30 MiB at 330 000 small packets). */
#define INGEST_BYTES (4u << 20)

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
    struct term_log *log;
    size_t nlog;
    uint32_t *sorted, *toff;
    size_t toffcap;
    uint32_t *ids; /* term ids in key order, at flush */
    size_t idscap;
    /* groups since the last flush: their term ids, and for each its terms
     * (gtid[GROUP_ROW * i]: how many, then the ids); at flush the groups that hold
     * each term: gmem[gfirst[id] .. gfirst[id + 1]) */
    uint32_t *glist, *gtid;
    size_t ngroups, glcap;
    uint32_t *gfirst, *gmem;
    size_t gfcap, gmcap;
    uint64_t flush_base; /* the first ordinal since the last flush */
    uint64_t *bits;      /* zero between uses: a bit per ordinal from bbase (bits_ready) */
    size_t bitscap;      /* in words */
    uint32_t bbase;
    uint32_t *cards;     /* posting_bits: each container's cardinality */
    uint32_t *merge;     /* a term's ordinals gathered from several sources, and room
                            to sort them: 2 * mergecap */
    size_t mergecap;
    struct sortkey *sk; /* radix sort of a flush's keys: 2 * skcap entries */
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
    /* since the last flush: ordinals the postings will hold (a group's
     * entry counts once per term), and flows changed */
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
    char ferr[RW_ERRSZ];
};

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
        if (w->terms[id].kind == GROUP_KIND)
            continue;
        size_t j = w->terms[id].hash & (ncap - 1);
        while (ns[j])
            j = (j + 1) & (ncap - 1);
        ns[j] = (uint32_t)id + 1;
    }
    free(w->slots);
    w->slots = ns;
    w->tcap = ncap;
}

/* The groups' counts of log entries, from their flows' entries into
 * tcnt[]. */
static void groups_settle(struct idx_segw *w)
{
    for (size_t i = 0; i < w->ngroups; i++) {
        struct flow_ent *f = flow_at(w, w->terms[w->glist[i]].v0);
        w->tcnt[w->glist[i]] += f->gcnt;
        f->gcnt = 0;
    }
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
    if (!w->sorted && !(w->sorted = malloc(TERM_LOG * sizeof *w->sorted)))
        abort();
    groups_settle(w);
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
    groups_settle(w);
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

/* At flush: the groups that hold each term, gmem[gfirst[id] ..
 * gfirst[id + 1]) (a counting sort of the groups' sets by term). */
static void groups_index(struct idx_segw *w)
{
    size_t n = w->nterms, total = 0;
    if (w->gfcap < n + 1) {
        free(w->gfirst);
        w->gfcap = w->tecap + 1;
        if (!(w->gfirst = malloc(w->gfcap * sizeof *w->gfirst)))
            abort(); /* out of memory while indexing: nothing sane to do */
    }
    memset(w->gfirst, 0, (n + 1) * sizeof *w->gfirst);
    for (size_t i = 0; i < w->ngroups; i++) {
        const uint32_t *g = w->gtid + GROUP_ROW * i;
        for (uint32_t t = 1; t <= g[0]; t++)
            w->gfirst[g[t] + 1]++;
        total += g[0];
    }
    if (w->gmcap < total) {
        free(w->gmem);
        w->gmcap = total + total / 2;
        if (!(w->gmem = malloc(w->gmcap * sizeof *w->gmem)))
            abort();
    }
    for (size_t id = 0; id < n; id++)
        w->gfirst[id + 1] += w->gfirst[id];
    /* fill through gfirst[id + 1] as a cursor, then shift it back */
    for (size_t i = 0; i < w->ngroups; i++) {
        const uint32_t *g = w->gtid + GROUP_ROW * i;
        for (uint32_t t = 1; t <= g[0]; t++)
            w->gmem[w->gfirst[g[t]]++] = w->glist[i];
    }
    for (size_t id = n; id > 0; id--)
        w->gfirst[id] = w->gfirst[id - 1];
    w->gfirst[0] = 0;
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

/* posting_build() for a term of many ordinals from several sources: set
 * their bits, then write CRoaring's portable format (idx_posting_encode)
 * container by container from the bitset: a container of more than 4096
 * is the bitset's 1024 words as they are. */
static const uint8_t *posting_bits(struct idx_segw *w, uint32_t id, const uint32_t *gm, size_t ng,
                                   size_t *len)
{
    uint32_t base = w->bbase, lo = UINT32_MAX, hi = 0;
    uint64_t *bits = w->bits;
    for (size_t i = 0; i <= ng; i++) {
        size_t c;
        const uint32_t *src = term_ords(w, i == 0 ? id : gm[i - 1], &c);
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

/* The posting of term id since the last flush, its own ordinals and those
 * of the groups that hold it (after groups_index()), encoded into
 * scratch(): *len bytes. One source is encoded as it is. Several are
 * merged: through a bitset of the flush's ordinals when they are dense
 * enough that scanning it costs no more than setting the bits (and the
 * bitset's 64 Ki-ordinal containers are encoded from it straight), else
 * gathered and sorted. (No ordinal is in two sources: a packet logs its
 * group or its terms, and a group holds a term once.) */
static const uint8_t *posting_build(struct idx_segw *w, uint32_t id, size_t *len)
{
    const uint32_t *gm = w->gmem + w->gfirst[id];
    size_t ng = w->gfirst[id + 1] - w->gfirst[id], nd = ng ? term_count(w, id) : 0, total;
    const uint32_t *ords = NULL;
    if (ng == 0 || (ng == 1 && nd == 0)) {
        ords = term_ords(w, ng ? gm[0] : id, &total);
    } else {
        total = nd;
        for (size_t i = 0; i < ng; i++)
            total += term_count(w, gm[i]);
        if ((w->packets - w->flush_base) / 64 <= 2 * total)
            return posting_bits(w, id, gm, ng, len);
        if (w->mergecap < total) {
            free(w->merge);
            w->mergecap = total + total / 2;
            if (!(w->merge = malloc(2 * w->mergecap * sizeof *w->merge)))
                abort(); /* out of memory while indexing: nothing sane to do */
        }
        uint32_t lo = UINT32_MAX, hi = 0;
        size_t k = 0;
        for (size_t i = 0; i <= ng; i++) {
            size_t c;
            const uint32_t *src = term_ords(w, i == 0 ? id : gm[i - 1], &c);
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
    if ((w->nterms - w->ngroups + 1) * 2 > w->tcap) { /* groups are not in the table */
        terms_grow(w);
        j = h & (w->tcap - 1);
        while (w->slots[j])
            j = (j + 1) & (w->tcap - 1);
    }
    uint32_t id = term_new(w, kind, v0, v1, h, len);
    w->slots[j] = id + 1;
    return id;
}

/* A group for flow index fi of the n terms ids[], with no entries yet. */
static uint32_t group_new(struct idx_segw *w, size_t fi, const uint32_t *ids, int n)
{
    if (w->ngroups == w->glcap) {
        size_t ncap = w->glcap ? w->glcap * 2 : 1024;
        uint32_t *ng = realloc(w->glist, ncap * sizeof *ng);
        uint32_t *nt = ng ? realloc(w->gtid, ncap * GROUP_ROW * sizeof *nt) : NULL;
        if (!nt)
            abort(); /* out of memory while indexing: nothing sane to do */
        w->glist = ng;
        w->gtid = nt;
        w->glcap = ncap;
    }
    uint32_t id = term_new(w, GROUP_KIND, fi, 0, 0, 0);
    uint32_t *g = w->gtid + GROUP_ROW * w->ngroups;
    g[0] = (uint32_t)n;
    memcpy(g + 1, ids, (size_t)n * sizeof *ids);
    w->glist[w->ngroups++] = id;
    return id;
}

static inline void term_log(struct idx_segw *w, uint32_t id, uint32_t ord)
{
    if (w->nlog == TERM_LOG)
        terms_spill(w);
    w->tcnt[id]++;
    w->flush_ords++;
    w->log[w->nlog++] = (struct term_log){id, ord};
}

/* A group's entry counts in its flow's entry, which the packet has just
 * touched (a count in tcnt[] would be a cache miss a packet on many
 * flows); groups_settle() moves the counts to tcnt[] before a sort. */
static inline void group_log(struct idx_segw *w, struct flow_ent *e, uint32_t ord)
{
    if (w->nlog == TERM_LOG)
        terms_spill(w);
    e->gcnt++;
    w->flush_ords += e->tn;
    w->log[w->nlog++] = (struct term_log){e->gid, ord};
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
    w->ngroups = 0;
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
    if (!(w->log = malloc(TERM_LOG * sizeof *w->log))) {
        free(w);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
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
    if (plain && !fresh && e->tgen == w->tgen && e->tn == nt + 1 &&
        e->tports == p->flow.has_ports) {
        group_log(w, e, ord);
    } else {
        uint32_t ids[IDX_MAX_TERMS + 1];
        terms_lookup(w, p->terms, nt, ids);
        if (e) {
            uint8_t hv[16] = {0};
            rw_put_be64(hv, e->hash);
            ids[nt++] = term_of(w, IDX_T_FLOW, hv, 8);
        }
        if (plain && e->tgen != w->tgen) {
            e->tn = (uint8_t)nt;
            e->tports = p->flow.has_ports;
            e->tgen = w->tgen;
            e->gid = group_new(w, fi, ids, nt);
            group_log(w, e, ord);
        } else {
            for (int i = 0; i < nt; i++)
                term_log(w, ids[i], ord);
        }
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

/* Term ids in key order: kind, then the value's bytes. */
static int term_cmp(const void *a, const void *b, void *arg)
{
    const struct term_ent *t = arg, *x = &t[*(const uint32_t *)a], *y = &t[*(const uint32_t *)b];
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    uint64_t p = __builtin_bswap64(x->v0), q = __builtin_bswap64(y->v0);
    if (p == q) {
        p = __builtin_bswap64(x->v1);
        q = __builtin_bswap64(y->v1);
    }
    return p < q ? -1 : p > q;
}

/* A key to sort by, and whose it is. */
struct sortkey {
    uint64_t k;
    uint32_t id, pad;
};

/* Room for sorting n keys (and the radix sort's other half). */
static struct sortkey *sortkeys(struct idx_segw *w, size_t n)
{
    if (w->skcap < n) {
        free(w->sk);
        w->skcap = n + n / 8 + 64; /* 16 bytes a key, twice: no more room than that */
        if (!(w->sk = malloc(2 * w->skcap * sizeof *w->sk)))
            abort(); /* out of memory while indexing: nothing sane to do */
    }
    return w->sk;
}

/* Stable LSD radix sort of a[0 .. n) by k, a byte at a time, skipping
 * the bytes in which no two keys differ; tmp has n entries. Returns
 * whichever of a and tmp holds the result. (qsort_r's merge sort, its
 * comparisons through a function pointer, was a twentieth of the
 * capture CPU on many small flows.) */
static struct sortkey *radix_sort(struct sortkey *a, struct sortkey *tmp, size_t n)
{
    uint64_t any = 0, all = ~0ULL;
    if (n < 2)
        return a;
    for (size_t i = 0; i < n; i++) {
        any |= a[i].k;
        all &= a[i].k;
    }
    for (int shift = 0; shift < 64; shift += 8) {
        if (!(((any ^ all) >> shift) & 0xff))
            continue;
        size_t pos[256] = {0}, sum = 0;
        for (size_t i = 0; i < n; i++)
            pos[(a[i].k >> shift) & 0xff]++;
        for (int b = 0; b < 256; b++) {
            size_t c = pos[b];
            pos[b] = sum;
            sum += c;
        }
        for (size_t i = 0; i < n; i++)
            tmp[pos[(a[i].k >> shift) & 0xff]++] = a[i];
        struct sortkey *t = a;
        a = tmp;
        tmp = t;
    }
    return a;
}

/* The ids of the terms (not the groups) in key order (kind, then the
 * value's bytes) into ids: by kind and the value's first 7 bytes, then
 * values longer than 7 bytes that share those by term_cmp. */
static void terms_order(struct idx_segw *w, uint32_t *ids)
{
    size_t n = w->nterms - w->ngroups;
    if (n == 0)
        return;
    struct sortkey *a = sortkeys(w, n);
    for (size_t i = 0, j = 0; i < w->nterms; i++)
        if (w->terms[i].kind != GROUP_KIND)
            a[j++] = (struct sortkey){((uint64_t)w->terms[i].kind << 56) |
                                          (__builtin_bswap64(w->terms[i].v0) >> 8),
                                      (uint32_t)i, 0};
    a = radix_sort(a, w->sk + w->skcap, n);
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

/* A flush visits terms and flows in key order, which is no order in
 * memory: on many flows each visit missed the caches several times (a
 * fifth of the capture's CPU on small packets). What a visit reads is
 * asked for this many visits ahead. */
#define FLUSH_AHEAD 8

static inline void term_prefetch(const struct idx_segw *w, uint32_t id)
{
    __builtin_prefetch(&w->terms[id]);
    __builtin_prefetch(&w->gfirst[id]);
    __builtin_prefetch(&w->tcnt[id]);
    __builtin_prefetch(&w->toff[id]);
    for (size_t g = 0; g < w->ngens; g++)
        if (id < w->gens[g].nterms)
            __builtin_prefetch(&w->gens[g].start[id]);
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
    size_t est = (w->nterms - w->ngroups) * 64 + w->flush_ords * 2 + w->ndirty * 170 + w->plen +
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
    fs = radix_sort(fs, w->sk + w->skcap, nf);
    for (size_t j = 0; j < nf; j++) {
        if (j + FLUSH_AHEAD < nf)
            prefetch_bytes(flow_at(w, fs[j + FLUSH_AHEAD].id), sizeof(struct flow_ent));
        struct flow_ent *e = flow_at(w, fs[j].id);
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
     * A term's ordinals since the last flush are its own and its groups'
     * (posting_build), each the sorted log's after those of the generations
     * it spilled into, if any. Every term in the table has some. */
    terms_sort(w);
    groups_index(w);
    bits_ready(w);
    size_t nids = w->nterms - w->ngroups;
    uint32_t *ids = scratch_ids(w);
    terms_order(w, ids);
    for (size_t i = 0; i < nids; i++) {
        if (i + FLUSH_AHEAD < nids)
            term_prefetch(w, ids[i + FLUSH_AHEAD]);
        struct term_ent *e = &w->terms[ids[i]];
        size_t n;
        const uint8_t *buf = posting_build(w, ids[i], &n);
        k[0] = 'P';
        k[1] = e->kind;
        memcpy(k + 2, &e->v0, 8);
        memcpy(k + 10, &e->v1, 8);
        rw_put_be64(k + 2 + e->len, w->seg.id);
        sink_merge(b, k, 2 + e->len + 8, buf, n);
    }
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
    if (!w->th_started)
        return 0;
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
    if (rc < 0)
        return rc;
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
    free(w->glist);
    free(w->gtid);
    free(w->gfirst);
    free(w->gmem);
    free(w->bits);
    free(w->cards);
    free(w->merge);
    free(w->sk);
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
