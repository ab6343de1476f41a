/* query.c -- plan over the index, judge with BPF, stream in capture order. */
#include "query/query.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/segfile.h"
#include "index/index.h"
#include "query/filter.h"

#define BATCH 64           /* segments planned at once: bounds bitmap memory */

/* pcap_compile() was not thread-safe before libpcap 1.8; keep it serial. */
static pthread_mutex_t compile_lock = PTHREAD_MUTEX_INITIALIZER;

struct pstream {
    int pidx;
    uint32_t point_id;
    struct bpf_program *prog; /* NULL: no filter */
    struct idx_seg *segs;     /* this point's segments in the window */
    size_t nsegs, next;       /* next segment to plan */
    /* planned batch */
    roaring_bitmap_t *cand[BATCH]; /* NULL: every packet of the segment */
    size_t bstart, bn, bi;
    /* segment being read */
    segf_t *f;
    int swap, active;
    struct idx_seg *seg;
    roaring_uint32_iterator_t it;
    int use_it;
    uint32_t ord;
    struct idx_chunk chunk;
    int64_t chunk_no;
    struct idx_chunk *ahead;  /* chunk next_no, read ahead for where the last packet of
                                 chunk ends (record_end); malloc'ed once */
    int64_t next_no;
    const struct idx_segdamage *known; /* recorded damaged ranges of the segment (K16) */
    size_t nknown;
    int done;
    /* head packet, waiting to be merged */
    int have;
    struct qry_pkt pkt;
    int64_t ts;
};

struct qry {
    idx_t *ix;
    struct qry_spec spec;
    char *filter;
    struct qf_node *plan;
    int nleaves;
    struct qry_point *pts;
    int npts;
    struct pstream *ps;
    struct bpf_program progs[8];
    int prog_dlt[8];
    int nprogs;
    int filter_rejected; /* compile_for() failed in pcap_compile: see qry_new_ex() */
    uint64_t out_pkts, out_bytes;
    uint64_t segs_total, segs_read;
    char desc[256];
    int (*cancel)(void *arg); /* qry_set_cancel() */
    void *cancel_arg;
    uint32_t steps;           /* of stream_next(), counted for cancel */
    struct qry_damage damage[QRY_DAMAGE_MAX]; /* qry_damage() */
    size_t ndamage, damage_more;
    struct qry_loss loss[QRY_LOSS_MAX]; /* qry_losses() */
    size_t nloss, loss_more;
    struct idx_segdamage *known; /* every recorded damaged range (K16), by segment */
    size_t nknown;
};

/* qry_loss_totals(): blocks met by every query of the process. */
static atomic_uint_fast64_t loss_blocks[3];

/* ---------- plan evaluation ---------- */

struct leafpost {
    roaring_bitmap_t *p[BATCH];
};

struct evalctx {
    struct leafpost *leaves; /* in DFS order of QF_TERM nodes */
    int leaf;
    roaring_bitmap_t *all, *unparsed, *deep, *empty;
    int j;
};

static int count_leaves(const struct qf_node *n)
{
    if (!n)
        return 0;
    if (n->op == QF_TERM)
        return 1;
    return count_leaves(n->a) + count_leaves(n->b);
}

/* Upper (superset) and lower (subset) bounds of a node for one segment;
 * both returned as new bitmaps. See query/filter.h. The lower bound only
 * matters under a NOT: lo may be NULL when the caller does not need it,
 * and is then not computed. */
static void eval(const struct qf_node *n, struct evalctx *c, roaring_bitmap_t **up,
                 roaring_bitmap_t **lo)
{
    roaring_bitmap_t *ua, *la = NULL, *ub, *lb = NULL;
    switch (n->op) {
    case QF_TERM: {
        roaring_bitmap_t *p = c->leaves[c->leaf++].p[c->j];
        if (!p)
            p = c->empty;
        *up = roaring_bitmap_or(p, c->unparsed);
        if (!lo)
            return;
        if (n->exact) {
            *lo = roaring_bitmap_andnot(p, c->unparsed);
            roaring_bitmap_andnot_inplace(*lo, c->deep);
        } else {
            *lo = roaring_bitmap_create();
        }
        return;
    }
    case QF_AND:
    case QF_OR:
        eval(n->a, c, &ua, lo ? &la : NULL);
        eval(n->b, c, &ub, lo ? &lb : NULL);
        if (n->op == QF_AND) {
            roaring_bitmap_and_inplace(ua, ub);
            if (lo)
                roaring_bitmap_and_inplace(la, lb);
        } else {
            roaring_bitmap_or_inplace(ua, ub);
            if (lo)
                roaring_bitmap_or_inplace(la, lb);
        }
        roaring_bitmap_free(ub);
        *up = ua;
        if (lo) {
            roaring_bitmap_free(lb);
            *lo = la;
        }
        return;
    case QF_NOT:
        eval(n->a, c, &ua, &la);
        *up = roaring_bitmap_andnot(c->all, la);
        if (lo)
            *lo = roaring_bitmap_andnot(c->all, ua);
        roaring_bitmap_free(ua);
        roaring_bitmap_free(la);
        return;
    case QF_ANY:
    default:
        *up = roaring_bitmap_copy(c->all);
        if (lo)
            *lo = roaring_bitmap_create();
        return;
    }
}

/* Lower bounds, and with them the DEEP postings, are needed only under a NOT. */
static int has_not(const struct qf_node *n)
{
    return n && (n->op == QF_NOT || has_not(n->a) || has_not(n->b));
}

/* A locator chunk that cannot be read: when its segment is gone from the
 * catalogue, retention deleted it under the query (the window reached the
 * oldest packets of a full archive), which deserves its own words. */
static int chunk_err(qry_t *q, const struct idx_seg *seg, int rc, char *err)
{
    char e2[RW_ERRSZ];
    if (rc == RW_ECORRUPT && idx_seg_exists(q->ix, seg->id, e2) == 0)
        return rw_err(err, RW_ESTATE,
                      "segment %s was deleted by retention while this query read it (the "
                      "window reaches the oldest packets of an archive kept at its quota); "
                      "ask again, or for a later window", seg->path);
    return rw_errctx(err, rc, "segment %s", seg->path);
}

static void note_damage(qry_t *q, const struct idx_seg *seg, int kind)
{
    for (size_t i = 0; i < q->ndamage; i++)
        if (q->damage[i].seg == seg->id && q->damage[i].kind == kind)
            return;
    if (q->ndamage == QRY_DAMAGE_MAX) {
        q->damage_more++;
        return;
    }
    struct qry_damage *d = &q->damage[q->ndamage++];
    d->seg = seg->id;
    d->kind = kind;
    snprintf(d->path, sizeof d->path, "%s", seg->path);
}

/* The postings of a term for the batch being planned. A posting that does
 * not decode marks its segment in dmg[] rather than failing the query: the
 * planner then takes every packet of it as a candidate, which is always a
 * superset, whatever the filter (under 'not' too), and the filter judges
 * them. */
static int batch_postings(qry_t *q, const struct pstream *s, int kind, const uint8_t *lo,
                          const uint8_t *hi, size_t len, const uint64_t *ids, size_t nids,
                          roaring_bitmap_t **out, uint8_t *dmg, char *err)
{
    uint8_t d[BATCH];
    int rc = idx_postings(q->ix, kind, lo, hi, len, ids, nids, out, d, err);
    for (size_t j = 0; rc == 0 && j < nids; j++) {
        if (d[j]) {
            dmg[j] = 1;
            note_damage(q, &s->segs[s->bstart + j], kind);
        }
    }
    return rc;
}

static int fetch_leaves(qry_t *q, const struct pstream *s, const struct qf_node *n,
                        const uint64_t *ids, size_t nids, struct leafpost *lp, int *k,
                        uint8_t *dmg, char *err)
{
    int rc;
    if (!n)
        return 0;
    if (n->op == QF_TERM)
        return batch_postings(q, s, n->kind, n->lo, n->hi, n->len, ids, nids, lp[(*k)++].p, dmg,
                              err);
    if ((rc = fetch_leaves(q, s, n->a, ids, nids, lp, k, dmg, err)) < 0)
        return rc;
    return fetch_leaves(q, s, n->b, ids, nids, lp, k, dmg, err);
}

static void free_batch(struct pstream *s)
{
    for (size_t i = 0; i < s->bn; i++) {
        idx_bitmap_free(s->cand[i]);
        s->cand[i] = NULL;
    }
    s->bn = s->bi = 0;
}

/* Plan the next batch of a point's segments: candidates per segment. */
static int plan_batch(qry_t *q, struct pstream *s, char *err)
{
    uint64_t ids[BATCH];
    uint8_t dmg[BATCH] = {0}; /* a posting of the segment is damaged: read all of it */
    size_t n = s->nsegs - s->next < BATCH ? s->nsegs - s->next : BATCH;
    int rc = 0;
    free_batch(s);
    s->bstart = s->next;
    s->bn = n;
    s->next += n;
    if (q->plan->op == QF_ANY)
        return 0; /* every packet is a candidate */
    for (size_t i = 0; i < n; i++)
        ids[i] = s->segs[s->bstart + i].id;
    struct leafpost *lp = calloc((size_t)q->nleaves + 2, sizeof *lp);
    if (!lp)
        return rw_err(err, RW_ENOMEM, "out of memory");
    int k = 0;
    if ((rc = fetch_leaves(q, s, q->plan, ids, n, lp, &k, dmg, err)) < 0 ||
        (rc = batch_postings(q, s, IDX_K_UNPARSED, NULL, NULL, 0, ids, n, lp[q->nleaves].p, dmg,
                             err)) < 0 ||
        (has_not(q->plan) && (rc = batch_postings(q, s, IDX_K_DEEP, NULL, NULL, 0, ids, n,
                                                  lp[q->nleaves + 1].p, dmg, err)) < 0))
        goto done;
    roaring_bitmap_t *empty = roaring_bitmap_create();
    for (size_t j = 0; j < n; j++) {
        if (dmg[j])
            continue; /* s->cand[j] stays NULL: every packet */
        struct evalctx c = {.leaves = lp, .leaf = 0, .j = (int)j, .empty = empty};
        c.all = roaring_bitmap_from_range(0, s->segs[s->bstart + j].packets, 1);
        c.unparsed = lp[q->nleaves].p[j] ? lp[q->nleaves].p[j] : empty;
        c.deep = lp[q->nleaves + 1].p[j] ? lp[q->nleaves + 1].p[j] : empty;
        eval(q->plan, &c, &s->cand[j], NULL);
        roaring_bitmap_and_inplace(s->cand[j], c.all);
        roaring_bitmap_free(c.all);
    }
    roaring_bitmap_free(empty);
done:
    for (int i = 0; i < q->nleaves + 2; i++)
        for (size_t j = 0; j < n; j++)
            idx_bitmap_free(lp[i].p[j]);
    free(lp);
    return rc;
}

/* ---------- damaged segment files ---------- */

static uint32_t blocks_of(const struct qry_loss *l) { return l->last_block - l->block + 1; }

/* Note that pcap bytes [lo, hi) of seg could not be read (recorded: a range
 * that reindex recorded, K16), merged with a noted range it touches. */
static struct qry_loss *note_loss(qry_t *q, const struct pstream *s, const struct idx_seg *seg,
                                  uint64_t lo, uint64_t hi, int recorded, const char *why)
{
    struct qry_loss *l = NULL;
    for (size_t i = 0; i < q->nloss && !l; i++)
        if (q->loss[i].seg == seg->id && q->loss[i].recorded == recorded &&
            lo <= q->loss[i].hi && hi >= q->loss[i].lo)
            l = &q->loss[i];
    uint32_t before = l ? blocks_of(l) : 0;
    if (!l) {
        if (q->nloss == QRY_LOSS_MAX) {
            q->loss_more++;
            return NULL;
        }
        l = &q->loss[q->nloss++];
        memset(l, 0, sizeof *l);
        l->point = s->pidx;
        l->seg = seg->id;
        l->recorded = recorded;
        l->lo = lo;
        l->hi = hi;
        snprintf(l->path, sizeof l->path, "%s", seg->path);
        snprintf(l->why, sizeof l->why, "%s", why);
    }
    l->lo = lo < l->lo ? lo : l->lo;
    l->hi = hi > l->hi ? hi : l->hi;
    l->block = (uint32_t)(l->lo / SEGF_BLOCK);
    l->last_block = (uint32_t)((l->hi - 1) / SEGF_BLOCK);
    atomic_fetch_add(&loss_blocks[recorded ? (recorded == IDX_DMG_ACCEPTED ? 2 : 1) : 0],
                     blocks_of(l) - before);
    return l;
}

/* The ranges reindex recorded in the segments of s that may have held
 * packets of the window (their packets' times lie between those around
 * them): noted as soon as the query is planned, whether or not the index
 * has candidates there, for the index no longer knows those packets. */
static void note_recorded(qry_t *q, const struct pstream *s)
{
    for (size_t i = 0, j = 0; i < s->nsegs && j < q->nknown; i++) {
        while (j < q->nknown && q->known[j].seg < s->segs[i].id)
            j++;
        for (; j < q->nknown && q->known[j].seg == s->segs[i].id; j++) {
            const struct idx_segdamage *k = &q->known[j];
            if (k->ts_before >= q->spec.to || k->ts_after < q->spec.from)
                continue;
            struct qry_loss *l = note_loss(q, s, &s->segs[i], k->lo, k->hi, k->state, k->why);
            if (l) {
                l->ts_before = k->ts_before;
                l->ts_after = k->ts_after;
                l->accepted = k->accepted;
            }
        }
    }
}

/* A candidate whose record [off, end) lies in a range already found
 * unreadable is left out (and counted) without reading it again. */
static int already_lost(qry_t *q, const struct pstream *s, uint64_t off, uint64_t end)
{
    for (size_t i = 0; i < q->nloss; i++) {
        struct qry_loss *l = &q->loss[i];
        if (l->seg == s->seg->id && !l->recorded && off < l->hi && end > l->lo) {
            l->packets++;
            return 1;
        }
    }
    return 0;
}

/* Reading a packet failed with rc: note the damage segf found, count the
 * packet and go on without it (0), or fail (rc) when it was not damage. */
static int lost_read(qry_t *q, struct pstream *s, int rc)
{
    struct segf_fault ft;
    if (rc != RW_ECORRUPT || !segf_fault(s->f, &ft))
        return rc;
    /* Past the end of a file that ends early: everything up to file_size. */
    if (ft.lo >= segf_size(s->f) && s->seg->file_size > ft.hi)
        ft.hi = s->seg->file_size;
    struct qry_loss *l = note_loss(q, s, s->seg, ft.lo, ft.hi, 0, ft.why);
    if (l)
        l->packets++;
    return 0;
}

/* Where packet ord's record ends by the index: where the next one starts,
 * or a recorded damaged range starts (reindex left the bytes between out),
 * or the segment's file_size for the last packet. */
static int record_end(qry_t *q, struct pstream *s, uint32_t ord, uint64_t off, uint64_t *end,
                      char *err)
{
    uint32_t i = ord % IDX_CHUNK;
    if (i + 1 < s->chunk.count) {
        *end = s->chunk.off[i + 1];
    } else if (ord + 1 < s->seg->packets) {
        int64_t no = (int64_t)(ord / IDX_CHUNK) + 1;
        if (no != s->next_no) {
            if (!s->ahead && !(s->ahead = malloc(sizeof *s->ahead)))
                return rw_err(err, RW_ENOMEM, "out of memory");
            s->next_no = -1;
            int rc = idx_chunk_get(q->ix, s->seg->id, (uint32_t)no, s->ahead, err);
            if (rc < 0)
                return chunk_err(q, s->seg, rc, err);
            s->next_no = no;
        }
        *end = s->ahead->off[0];
    } else {
        *end = s->seg->file_size;
    }
    for (size_t k = 0; k < s->nknown; k++)
        if (s->known[k].lo > off && s->known[k].lo < *end)
            *end = s->known[k].lo;
    return 0;
}

/* Read packet ord's record at off: 1 with the header in f[] (host order)
 * and *data, 0 when it is damaged (noted, left out), <0 on error. The
 * header must agree with the index -- its caplen with where the next
 * record starts, its time with its locator chunk -- or the packet is
 * damaged: a plain pcap has no checksum, and a damaged caplen would read a
 * packet that was never captured and lose the place of the next. */
static int read_record(qry_t *q, struct pstream *s, uint32_t ord, uint64_t off, uint32_t f[4],
                       const uint8_t **data, char *err)
{
    const uint8_t *h;
    uint64_t end = 0;
    int rc;
    if ((rc = record_end(q, s, ord, off, &end, err)) < 0)
        return rc;
    if (already_lost(q, s, off, end))
        return 0;
    if ((rc = segf_read(s->f, off, 16, &h, NULL, err)) < 0)
        return lost_read(q, s, rc);
    memcpy(f, h, 16);
    if (s->swap)
        for (int i = 0; i < 4; i++)
            f[i] = __builtin_bswap32(f[i]);
    int64_t ts = (int64_t)f[0] * RW_NS_PER_SEC + f[1];
    char why[96];
    why[0] = 0;
    if (end < off + 16 || f[2] != end - off - 16 || f[2] > s->seg->snaplen)
        snprintf(why, sizeof why, "a record header disagrees with the index (caplen %u, "
                 "expected %lld)", f[2], end < off + 16 ? -1LL : (long long)(end - off - 16));
    else if (ts < s->chunk.min_ts || ts > s->chunk.max_ts)
        snprintf(why, sizeof why, "a record header disagrees with the index (its time is "
                 "outside its locator chunk's)");
    if (why[0]) {
        struct qry_loss *l = note_loss(q, s, s->seg, off, end > off + 16 ? end : off + 16, 0, why);
        if (l)
            l->packets++;
        return 0;
    }
    if ((rc = segf_read(s->f, off, 16 + f[2], &h, NULL, err)) < 0)
        return lost_read(q, s, rc);
    *data = h + 16;
    return 1;
}

/* ---------- reading segments ---------- */

static void seg_close(struct pstream *s)
{
    segf_close(s->f);
    s->f = NULL;
    s->active = 0;
}

/* The candidates of the segment being opened, for a count of what a
 * segment that cannot be read at all leaves out. */
static uint64_t candidates(const struct pstream *s)
{
    const roaring_bitmap_t *c = s->cand[s->bi];
    return c ? roaring_bitmap_get_cardinality(c) : s->seg->packets;
}

/* 0 open, 1 the segment was deleted since the query was planned or cannot
 * be read at all (noted as damage), <0. */
static int seg_open(qry_t *q, struct pstream *s, char *err)
{
    char path[1400];
    const uint8_t *hdr;
    s->seg = &s->segs[s->bstart + s->bi];
    for (int tries = 0;; tries++) {
        snprintf(path, sizeof path, "%s/%s", idx_dir(q->ix), s->seg->path);
        int rc = segf_open(path, &s->f, err);
        if (rc == 0)
            break;
        if (rc == RW_ECORRUPT) {
            /* A compressed file whose frame header or block table is
             * damaged: no block can be found. What segf_open says follows
             * "segment PATH: ". */
            char why[96];
            const char *what = strstr(err, ": ");
            snprintf(why, sizeof why, "cannot be read (%s)", what ? what + 2 : err);
            struct qry_loss *l = note_loss(q, s, s->seg, 0, s->seg->file_size, 0, why);
            if (l)
                l->packets += candidates(s);
            return 1;
        }
        if (rc != RW_EIO || errno != ENOENT || tries > 2)
            return rc;
        /* Retention may have deleted it since the query was planned (then
         * the index has forgotten it too, and its packets are gone), or the
         * compressor replaced it with NAME.pcap.lz4 (then the index names
         * the new file). */
        struct idx_seg now;
        if ((rc = idx_refresh(q->ix, err)) < 0 || (rc = idx_seg_get(q->ix, s->seg->id, &now, err)) < 0)
            return rc;
        if (rc == 0)
            return 1;
        if (!strcmp(now.path, s->seg->path))
            return rw_err(err, RW_EIO, "segment %s: %s", path, strerror(ENOENT));
        *s->seg = now;
    }
    s->known = NULL; /* its recorded damaged ranges: adjacent in q->known */
    s->nknown = 0;
    for (size_t i = 0; i < q->nknown; i++) {
        if (q->known[i].seg == s->seg->id && !s->nknown++)
            s->known = &q->known[i];
    }
    /* The byte order of the records is the file header's. When the header
     * is damaged (or in a damaged block), it is the host's, the writer's
     * (S1): records read in the wrong order would disagree with the index
     * and be noted as damaged, never answered. A damaged header costs no
     * packet by itself: the packets of its block are noted as they are
     * read. */
    uint32_t magic = 0xa1b23c4d;
    struct segf_fault ft;
    int rc = segf_read(s->f, 0, 24, &hdr, NULL, err);
    if (rc == 0)
        memcpy(&magic, hdr, 4);
    else if (rc != RW_ECORRUPT || !segf_fault(s->f, &ft)) {
        seg_close(s);
        return rc;
    }
    s->swap = magic == 0x4d3cb2a1;
    s->chunk_no = -1;
    s->next_no = -1;
    s->active = 1;
    s->ord = 0;
    roaring_bitmap_t *c = s->cand[s->bi];
    s->use_it = c != NULL;
    if (c)
        roaring_init_iterator(c, &s->it);
    q->segs_read++;
    return 0;
}

/* Next candidate ordinal of the current segment that may be in the window:
 * 1 found, 0 segment exhausted. Skips locator chunks outside the window. */
static int next_ordinal(qry_t *q, struct pstream *s, uint32_t *ord, char *err)
{
    for (;;) {
        uint32_t o;
        if (s->use_it) {
            if (!s->it.has_value)
                return 0;
            o = s->it.current_value;
        } else {
            o = s->ord;
        }
        if (o >= s->seg->packets)
            return 0;
        uint32_t no = o / IDX_CHUNK;
        if ((int64_t)no != s->chunk_no && (int64_t)no == s->next_no) {
            memcpy(&s->chunk, s->ahead, sizeof s->chunk); /* read ahead by record_end() */
            s->chunk_no = no;
        } else if ((int64_t)no != s->chunk_no) {
            int rc = idx_chunk_get(q->ix, s->seg->id, no, &s->chunk, err);
            if (rc < 0)
                return chunk_err(q, s->seg, rc, err);
            s->chunk_no = no;
        }
        if (s->chunk.max_ts < q->spec.from || s->chunk.min_ts >= q->spec.to ||
            o % IDX_CHUNK >= s->chunk.count) {
            uint32_t nxt = (no + 1) * IDX_CHUNK;
            if (s->use_it) {
                if (!roaring_move_uint32_iterator_equalorlarger(&s->it, nxt))
                    return 0;
            } else {
                s->ord = nxt;
            }
            continue;
        }
        *ord = o;
        if (s->use_it)
            roaring_advance_uint32_iterator(&s->it);
        else
            s->ord = o + 1;
        return 1;
    }
}

/* Produce the point's next matching packet into s->pkt: 1, 0 at end, <0. */
static int stream_next(qry_t *q, struct pstream *s, char *err)
{
    int rc;
    for (;;) {
        /* Every 1024 packets judged or skipped, and at each segment: a
         * scan with matches far apart would not otherwise stop. */
        if (q->cancel && ((++q->steps & 1023) == 0 || !s->active) && q->cancel(q->cancel_arg))
            return rw_err(err, RW_ESTOP, "query cancelled");
        if (!s->active) {
            if (s->bi >= s->bn) {
                if (s->next >= s->nsegs) {
                    s->done = 1;
                    return 0;
                }
                if ((rc = plan_batch(q, s, err)) < 0)
                    return rc;
                continue;
            }
            if (s->cand[s->bi] && roaring_bitmap_is_empty(s->cand[s->bi]) &&
                q->plan->op != QF_ANY) {
                s->bi++;
                continue;
            }
            if ((rc = seg_open(q, s, err)) < 0)
                return rc;
            if (rc == 1) { /* deleted meanwhile */
                s->bi++;
                continue;
            }
        }
        uint32_t ord = 0;
        if ((rc = next_ordinal(q, s, &ord, err)) < 0)
            return rc;
        if (rc == 0) {
            seg_close(s);
            s->bi++;
            continue;
        }
        uint64_t off = s->chunk.off[ord % IDX_CHUNK];
        const uint8_t *d = NULL;
        uint32_t f[4];
        if ((rc = read_record(q, s, ord, off, f, &d, err)) < 0)
            return rc;
        if (rc == 0) /* damaged: noted, left out */
            continue;
        int64_t ts = (int64_t)f[0] * RW_NS_PER_SEC + f[1];
        if (ts < q->spec.from || ts >= q->spec.to)
            continue;
        if (q->spec.headers_only) {
            /* Cut after the innermost header the parser recognises, before
             * the filter judges: the payload never leaves, and a filter
             * cannot probe it either (tcp[40] = 0x41 sees a short packet). */
            struct idx_parsed pp;
            idx_parse_packet(q->pts[s->pidx].dlt, d, f[2], &pp);
            if (pp.hdr_end < f[2])
                f[2] = pp.hdr_end;
        }
        if (s->prog) {
            struct pcap_pkthdr ph = {.caplen = f[2], .len = f[3]};
            ph.ts.tv_sec = f[0];
            ph.ts.tv_usec = f[1];
            if (!pcap_offline_filter(s->prog, &ph, d))
                continue;
        }
        s->pkt = (struct qry_pkt){.point = s->pidx, .sec = f[0], .frac = f[1], .caplen = f[2],
                                  .len = f[3], .data = d};
        s->ts = ts;
        return 1;
    }
}

/* ---------- setup ---------- */

static int compile_for(qry_t *q, int dlt, struct bpf_program **out, char *err)
{
    for (int i = 0; i < q->nprogs; i++) {
        if (q->prog_dlt[i] == dlt) {
            *out = &q->progs[i];
            return 0;
        }
    }
    if (q->nprogs == (int)(sizeof q->progs / sizeof q->progs[0]))
        return rw_err(err, RW_EINPUT, "too many different link types in one query");
    /* Compile against a savefile handle, as 'tcpdump -r' does: libpcap
     * generates different code for a savefile than for a live or dead handle
     * (DLT_NULL matches every BSD AF_INET6 value only for savefiles). An
     * empty pcap file in memory with the point's link type gives it that. */
    char ebuf[PCAP_ERRBUF_SIZE], mem[24];
    uint32_t hdr[6] = {0xa1b2c3d4, 2 | (4u << 16), 0, 0, 262144, (uint32_t)segf_linktype_of_dlt(dlt)};
    memcpy(mem, hdr, sizeof mem);
    FILE *f = fmemopen(mem, sizeof mem, "rb");
    pcap_t *p = f ? pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, ebuf) : NULL;
    if (!p) {
        if (f)
            fclose(f);
        return rw_err(err, RW_EIO, "preparing the filter compiler: %s", f ? ebuf : strerror(errno));
    }
    pthread_mutex_lock(&compile_lock);
    int r = pcap_compile(p, &q->progs[q->nprogs], q->filter, 1, PCAP_NETMASK_UNKNOWN);
    pthread_mutex_unlock(&compile_lock);
    if (r < 0) {
        const char *name = pcap_datalink_val_to_name(dlt);
        rw_err(err, RW_EINPUT, "filter '%s': %s (link type %s)", q->filter, pcap_geterr(p),
               name ? name : "unknown");
        q->filter_rejected = 1;
        pcap_close(p);
        return RW_EINPUT;
    }
    pcap_close(p);
    q->prog_dlt[q->nprogs] = dlt;
    *out = &q->progs[q->nprogs++];
    return 0;
}

static int point_selected(const struct qry_spec *sp, const char *name)
{
    if (!sp->points)
        return 1;
    for (const char **p = sp->points; *p; p++)
        if (!strcmp(*p, name))
            return 1;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int qry_new(idx_t *ix, const struct qry_spec *spec, qry_t **out, char *err)
{
    return qry_new_ex(ix, spec, out, NULL, err);
}

int qry_new_ex(idx_t *ix, const struct qry_spec *spec, qry_t **out, enum qry_step *step,
               char *err)
{
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0;
    int rc;
    qry_t *q = calloc(1, sizeof *q);
    *out = NULL;
    if (step)
        *step = QRY_STEP_SPEC;
    if (!q)
        return rw_err(err, RW_ENOMEM, "out of memory");
    q->ix = ix;
    q->spec = *spec;
    if (spec->from >= spec->to) {
        rc = rw_err(err, RW_EINPUT, "empty time window: 'from' must be before 'to'");
        goto fail;
    }
    q->filter = strdup(spec->filter ? spec->filter : "");
    q->spec.filter = q->filter;
    if (!q->filter || !(q->plan = qf_parse(q->filter))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto fail;
    }
    q->nleaves = count_leaves(q->plan);
    if ((rc = idx_point_list(ix, &pts, &npts, err)) < 0)
        goto fail;
    if (spec->points) {
        for (const char **p = spec->points; *p; p++) {
            size_t i;
            for (i = 0; i < npts && strcmp(pts[i].name, *p); i++)
                ;
            if (i == npts) {
                char names[256] = "";
                for (size_t j = 0; j < npts; j++)
                    snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                             j ? ", " : "", pts[j].name);
                rc = rw_err(err, RW_EINPUT, "no capture point named '%s' (the archive has: %s)", *p,
                            npts ? names : "none");
                goto fail;
            }
        }
    }
    if ((rc = idx_seg_list(ix, spec->from, spec->to, &segs, &nsegs, err)) < 0)
        goto fail;
    if (spec->segs) {
        size_t keep = 0;
        for (size_t j = 0; j < nsegs; j++)
            if (bsearch(&segs[j].id, spec->segs, spec->nsegs, sizeof *spec->segs, cmp_u64))
                segs[keep++] = segs[j];
        nsegs = keep;
        q->spec.segs = NULL; /* the caller's array is not ours to keep */
        q->spec.nsegs = 0;
    }
    q->pts = calloc(npts + 1, sizeof *q->pts);
    q->ps = calloc(npts + 1, sizeof *q->ps);
    if (!q->pts || !q->ps) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto fail;
    }
    /* Points with segments in the window; if none, every selected point, so
     * that an empty answer still has the right file header. */
    for (int pass = 0; pass < 2 && q->npts == 0; pass++) {
        for (size_t i = 0; i < npts; i++) {
            if (!point_selected(spec, pts[i].name))
                continue;
            size_t cnt = 0;
            for (size_t j = 0; j < nsegs; j++)
                cnt += segs[j].point == pts[i].id;
            if (pass == 0 && cnt == 0)
                continue;
            struct pstream *s = &q->ps[q->npts];
            struct qry_point *qp = &q->pts[q->npts];
            snprintf(qp->name, sizeof qp->name, "%s", pts[i].name);
            qp->dlt = pts[i].linktype;
            qp->linktype = segf_linktype_of_dlt(qp->dlt);
            qp->snaplen = pts[i].snaplen;
            s->pidx = q->npts;
            s->point_id = pts[i].id;
            if (cnt) {
                s->segs = malloc(cnt * sizeof *s->segs);
                if (!s->segs) {
                    rc = rw_err(err, RW_ENOMEM, "out of memory");
                    goto fail;
                }
                for (size_t j = 0; j < nsegs; j++)
                    if (segs[j].point == pts[i].id)
                        s->segs[s->nsegs++] = segs[j];
            }
            q->segs_total += s->nsegs;
            q->npts++;
        }
    }
    if (q->filter[0]) {
        struct bpf_program *prog;
        if (q->npts == 0 && (rc = compile_for(q, DLT_EN10MB, &prog, err)) < 0)
            goto fail;
        for (int i = 0; i < q->npts; i++)
            if ((rc = compile_for(q, q->pts[i].dlt, &q->ps[i].prog, err)) < 0)
                goto fail;
    }
    /* Ranges that reindex recorded as damaged: usually none, one seek. */
    if ((rc = idx_segdamage_list(ix, UINT64_MAX, &q->known, &q->nknown, err)) < 0)
        goto fail;
    for (int i = 0; i < q->npts; i++)
        note_recorded(q, &q->ps[i]);
    snprintf(q->desc, sizeof q->desc, "%s over %llu segments of %d points",
             q->plan->op == QF_ANY ? "scan" : "index", (unsigned long long)q->segs_total, q->npts);
    free(pts);
    free(segs);
    *out = q;
    return 0;
fail:
    if (step && rc == RW_EINPUT && q->filter_rejected)
        *step = QRY_STEP_FILTER;
    free(pts);
    free(segs);
    qry_free(q);
    return rc;
}

void qry_set_cancel(qry_t *q, int (*fn)(void *arg), void *arg)
{
    q->cancel = fn;
    q->cancel_arg = arg;
}

void qry_free(qry_t *q)
{
    if (!q)
        return;
    for (int i = 0; q->ps && i < q->npts; i++) {
        seg_close(&q->ps[i]);
        free_batch(&q->ps[i]);
        free(q->ps[i].segs);
        free(q->ps[i].ahead);
    }
    for (int i = 0; i < q->nprogs; i++)
        pcap_freecode(&q->progs[i]);
    free(q->ps);
    free(q->pts);
    free(q->known);
    qf_free(q->plan);
    free(q->filter);
    free(q);
}

const struct qry_point *qry_points(const qry_t *q, int *n)
{
    *n = q->npts;
    return q->pts;
}

const char *qry_plan_desc(const qry_t *q) { return q->desc; }

const struct qry_damage *qry_damage(const qry_t *q, size_t *n, size_t *more)
{
    *n = q->ndamage;
    if (more)
        *more = q->damage_more;
    return q->damage;
}

int qry_damage_desc(const qry_t *q, char *buf, size_t n)
{
    /* A few named, the rest counted: the line fits an error buffer. */
    size_t total = q->ndamage + q->damage_more, shown = q->ndamage < 3 ? q->ndamage : 3, len;
    char what[64];
    snprintf(buf, n, "%s", "");
    if (total == 0)
        return 0;
    len = (size_t)snprintf(buf, n, "damaged index: the posting%s of", total > 1 ? "s" : "");
    for (size_t i = 0; i < shown && len < n; i++)
        len += (size_t)snprintf(buf + len, n - len, "%s %s in segment %llu (%s)",
                                i == 0 ? "" : i + 1 == total ? " and" : ",",
                                idx_term_desc(q->damage[i].kind, NULL, 0, what, sizeof what),
                                (unsigned long long)q->damage[i].seg, q->damage[i].path);
    if (total > shown && len < n)
        len += (size_t)snprintf(buf + len, n - len, " and %zu more", total - shown);
    if (len < n)
        snprintf(buf + len, n - len, " %s; %s read in full, so the answer is complete; run "
                 "'rewind verify', then 'rewind reindex'",
                 total > 1 ? "do not decode" : "does not decode",
                 total > 1 ? "those segments were" : "the segment was");
    return 1;
}

const struct qry_loss *qry_losses(const qry_t *q, size_t *n, size_t *more)
{
    *n = q->nloss;
    if (more)
        *more = q->loss_more;
    return q->loss;
}

void qry_loss_desc(const struct qry_loss *l, char *buf, size_t n)
{
    char blocks[48], span[112], when[48];
    size_t len;
    if (l->block == l->last_block)
        snprintf(blocks, sizeof blocks, "block %u", l->block);
    else
        snprintf(blocks, sizeof blocks, "blocks %u-%u", l->block, l->last_block);
    len = (size_t)snprintf(buf, n, "damaged segment %s (id %llu): %s (pcap bytes %llu-%llu) ",
                           l->path, (unsigned long long)l->seg, blocks, (unsigned long long)l->lo,
                           (unsigned long long)(l->hi - 1));
    if (len >= n)
        return;
    if (!l->recorded) {
        snprintf(buf + len, n - len, "%s: %llu packet%s that may match %s not in the answer",
                 l->why, (unsigned long long)l->packets, l->packets == 1 ? "" : "s",
                 l->packets == 1 ? "is" : "are");
        return;
    }
    rw_span_fmt(l->ts_before, l->ts_after, span, sizeof span);
    len += (size_t)snprintf(buf + len, n - len, "recorded as lost by 'rewind reindex' (%s): "
                            "the packets captured there%s%s%s are not in the answer", l->why,
                            span[0] ? ", " : "", span, span[0] ? "," : "");
    if (len < n && l->recorded == IDX_DMG_ACCEPTED)
        snprintf(buf + len, n - len, " (the loss was accepted on %s)",
                 rw_time_fmt(l->accepted, when, sizeof when));
}

void qry_loss_totals(uint64_t out[3])
{
    for (int i = 0; i < 3; i++)
        out[i] = atomic_load(&loss_blocks[i]);
}

int qry_next(qry_t *q, struct qry_pkt *pkt, char *err)
{
    struct pstream *best = NULL;
    int rc;
    if (q->spec.limit_packets && q->out_pkts >= q->spec.limit_packets)
        return 0;
    if (q->spec.limit_bytes && q->out_bytes >= q->spec.limit_bytes)
        return 0;
    for (int i = 0; i < q->npts; i++) {
        struct pstream *s = &q->ps[i];
        if (!s->have && !s->done) {
            if ((rc = stream_next(q, s, err)) < 0)
                return rc;
            s->have = rc == 1;
        }
        /* Ties go to the earlier point: deterministic answers. */
        if (s->have && (!best || s->ts < best->ts))
            best = s;
    }
    if (!best)
        return 0;
    best->have = 0;
    *pkt = best->pkt;
    q->out_pkts++;
    q->out_bytes += pkt->caplen + 16;
    return 1;
}
