/* verify.c -- check an archive's segments against its index, and rebuild the
 * index from the segments alone. Both read segments record by record as
 * man/rewind-archive.5 describes them. */
#include "archive/archive.h"
#include "archive/segfile.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAMPLES 64 /* packets per segment whose postings are checked */

/* Sequential reader of one segment file, through segf_read(): a damaged
 * block of a compressed segment stops the reader there, and it may go on
 * after it, since blocks are independent. */
struct segfile {
    segf_t *f;
    int swap;
    int header;      /* 1 the file header was read; 0 it is damaged (swap 0, the writer's) */
    uint32_t snaplen, linktype;
    uint64_t off, size;
    struct segf_fault bad; /* what a read that returned 3 met */
    int bad_record;        /* ... and it was bytes that are no record, not a block */
};

static int segfile_open(struct segfile *sf, const char *path, char *err)
{
    const uint8_t *p;
    uint32_t h[6];
    int rc;
    memset(sf, 0, sizeof *sf);
    if ((rc = segf_open(path, &sf->f, err)) < 0)
        return rc;
    sf->size = segf_size(sf->f);
    sf->off = 24;
    if ((rc = segf_read(sf->f, 0, 24, &p, NULL, err)) < 0) {
        if (rc != RW_ECORRUPT || !segf_fault(sf->f, &sf->bad)) {
            segf_close(sf->f);
            sf->f = NULL;
            return rc;
        }
        return 0; /* in a damaged block: the reader goes on after it */
    }
    memcpy(h, p, 24);
    if (h[0] == 0x4d3cb2a1)
        sf->swap = 1;
    else if (h[0] != 0xa1b23c4d)
        return 0; /* damaged header: its records may still read, in host order */
    sf->header = 1;
    sf->snaplen = sf->swap ? __builtin_bswap32(h[4]) : h[4];
    sf->linktype = (sf->swap ? __builtin_bswap32(h[5]) : h[5]) & 0x03ffffff;
    return 0;
}

/* Damage at [lo, hi) met by the reader: 3. */
static int segfile_bad(struct segfile *sf, uint64_t lo, uint64_t hi, const char *fmt, ...)
    RW_PRINTF(4, 5);
static int segfile_bad(struct segfile *sf, uint64_t lo, uint64_t hi, const char *fmt, ...)
{
    va_list ap;
    sf->bad_record = 1;
    sf->bad.lo = lo;
    sf->bad.hi = hi;
    sf->bad.block = (uint32_t)(lo / SEGF_BLOCK);
    va_start(ap, fmt);
    vsnprintf(sf->bad.why, sizeof sf->bad.why, fmt, ap);
    va_end(ap);
    return 3;
}

/* The record header at off, if there is one that could be a record (its
 * caplen within snaplen and the file): 1, 0 if not, 3 if off lies in a
 * damaged block (sf->bad), <0 on error. */
static int segfile_header(struct segfile *sf, uint64_t off, uint32_t rec[4], char *err)
{
    const uint8_t *p;
    int rc = segf_read(sf->f, off, 16, &p, NULL, err);
    sf->bad_record = 0;
    if (rc < 0)
        return rc == RW_ECORRUPT && segf_fault(sf->f, &sf->bad) ? 3 : rc;
    memcpy(rec, p, 16);
    if (sf->swap)
        for (int i = 0; i < 4; i++)
            rec[i] = __builtin_bswap32(rec[i]);
    return rec[2] <= sf->snaplen && rec[2] <= (1u << 28) && off + 16 + rec[2] <= sf->size;
}

/* 1 and a record, 0 at a clean end, 2 at a partial record (the file ends
 * inside it), 3 at damage (sf->bad: a block that does not read, or bytes
 * that are no record), <0 error. */
static int segfile_next(struct segfile *sf, uint32_t rec[4], const uint8_t **data, char *err)
{
    const uint8_t *p;
    if (sf->off == sf->size)
        return 0;
    if (sf->off + 16 > sf->size)
        return 2;
    int rc = segfile_header(sf, sf->off, rec, err);
    if (rc < 0 || rc == 3)
        return rc;
    if (rc == 0) {
        if (rec[2] <= sf->snaplen && sf->off + 16 + rec[2] > sf->size)
            return 2;
        return segfile_bad(sf, sf->off, sf->off + 16, "a damaged record header (caplen %u)",
                           rec[2]);
    }
    if ((rc = segf_read(sf->f, sf->off, 16 + rec[2], &p, NULL, err)) < 0) {
        sf->bad_record = 0;
        return rc == RW_ECORRUPT && segf_fault(sf->f, &sf->bad) ? 3 : rc;
    }
    *data = p + 16;
    sf->off += 16 + rec[2];
    return 1;
}

static void segfile_close(struct segfile *sf) { segf_close(sf->f); }

/* ---------------------------------------------------------------- verify */

struct vctx {
    arc_report_fn report;
    void *arg;
    struct arc_verify_stats *st;
};

static void problem(struct vctx *v, const char *fmt, ...) RW_PRINTF(2, 3);
static void problem(struct vctx *v, const char *fmt, ...)
{
    char msg[1600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    v->st->problems++;
    v->report(v->arg, msg);
}

/* A damaged posting counts as having the packet: damaged_posting() reports it. */
static int posting_has(idx_t *ix, const struct idx_term *t, uint64_t seg, uint32_t ord, char *err)
{
    roaring_bitmap_t *b = NULL;
    uint8_t damaged;
    int rc = idx_postings(ix, t->kind, t->val, t->val, t->len, &seg, 1, &b, &damaged, err);
    if (rc < 0)
        return rc;
    rc = damaged || (b && roaring_bitmap_contains(b, ord));
    idx_bitmap_free(b);
    return rc;
}

/* A compressed segment without block checksums (written before rewind
 * added them) is read to the end of its frame, where LZ4 checks the content
 * checksum: a damaged block that still decodes is found only there. */
static void content_checksum(struct vctx *v, const struct idx_seg *s, const char *path)
{
    char e2[RW_ERRSZ], tail[4096];
    const char *why;
    FILE *f = segf_stream(path, &why, e2);
    if (!f) {
        problem(v, "segment %s: %s", s->path, e2);
        return;
    }
    while (fread(tail, 1, sizeof tail, f) > 0)
        ;
    if (ferror(f))
        problem(v, "segment %s: %s (compressed before blocks had checksums: the damaged block "
                "cannot be told)", s->path, why[0] ? why : "read error");
    fclose(f);
}

/* The recorded damaged range (K16) that holds pcap offset off, or NULL. */
static const struct idx_segdamage *known_at(const struct idx_segdamage *k, size_t n, uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        if (k[i].lo <= off && off < k[i].hi)
            return &k[i];
    return NULL;
}

/* Where the reader stopped: "block 3 (pcap bytes 196608-262143) fails its
 * checksum", "pcap bytes 1200-1215: a damaged record header (caplen 5898307)";
 * without the bytes of a block when !bytes ("block 3 fails its checksum"). */
static void fault_desc(const struct segfile *sf, int bytes, char *buf, size_t n)
{
    if (sf->bad_record && !bytes)
        snprintf(buf, n, "%s", sf->bad.why);
    else if (sf->bad_record)
        snprintf(buf, n, "pcap bytes %llu-%llu: %s", (unsigned long long)sf->bad.lo,
                 (unsigned long long)(sf->bad.hi - 1), sf->bad.why);
    else if (!segf_compressed(sf->f) || sf->bad.lo >= sf->size)
        snprintf(buf, n, "pcap bytes %llu-%llu %s", (unsigned long long)sf->bad.lo,
                 (unsigned long long)(sf->bad.hi - 1), sf->bad.why);
    else if (bytes)
        snprintf(buf, n, "block %u (pcap bytes %llu-%llu) %s", sf->bad.block,
                 (unsigned long long)sf->bad.lo, (unsigned long long)(sf->bad.hi - 1),
                 sf->bad.why);
    else
        snprintf(buf, n, "block %u %s", sf->bad.block, sf->bad.why);
}

/* Past damage met at off, the locators say where the next packets are:
 * move *n (and *ch, *chunk_no) to the first packet at or after skip_to and
 * sf->off to it (file_size when none is left). */
static int skip_to(idx_t *ix, const struct idx_seg *s, struct segfile *sf, uint64_t skip_to,
                   uint64_t *n, int64_t *chunk_no, struct idx_chunk *ch, char *err)
{
    for (; *n < s->packets; ++*n) {
        if ((int64_t)(*n / IDX_CHUNK) != *chunk_no) {
            *chunk_no = (int64_t)(*n / IDX_CHUNK);
            int rc = idx_chunk_get(ix, s->id, (uint32_t)*chunk_no, ch, err);
            if (rc < 0)
                return rc;
        }
        if (*n % IDX_CHUNK < ch->count && ch->off[*n % IDX_CHUNK] >= skip_to) {
            sf->off = ch->off[*n % IDX_CHUNK];
            return 0;
        }
    }
    sf->off = s->file_size;
    return 0;
}

/* "in block 3", "in blocks 3-5": the 64 KiB blocks of pcap bytes a
 * recorded range lies in. */
static const char *blocks_desc(const struct idx_segdamage *k, char *buf, size_t n)
{
    uint64_t b0 = k->lo / SEGF_BLOCK, b1 = (k->hi - 1) / SEGF_BLOCK;
    if (b0 == b1)
        snprintf(buf, n, "in block %llu", (unsigned long long)b0);
    else
        snprintf(buf, n, "in blocks %llu-%llu", (unsigned long long)b0, (unsigned long long)b1);
    return buf;
}

/* A range reindex recorded: a problem until the loss is accepted. */
static void known_problem(struct vctx *v, const struct idx_seg *s, const struct idx_segdamage *k)
{
    char when[48], blocks[48];
    if (k->state == IDX_DMG_ACCEPTED) {
        v->st->accepted++;
        return;
    }
    v->st->damaged++;
    problem(v, "segment %s (id %llu): pcap bytes %llu-%llu (%s) are lost (%s), recorded by "
            "'rewind reindex' on %s; every readable packet around them is indexed; "
            "'rewind verify --quarantine' accepts the loss",
            s->path, (unsigned long long)s->id, (unsigned long long)k->lo,
            (unsigned long long)(k->hi - 1), blocks_desc(k, blocks, sizeof blocks), k->why,
            rw_time_fmt(k->found, when, sizeof when));
}

static int verify_segment(idx_t *ix, const struct idx_seg *s, struct vctx *v, char *err)
{
    char path[1400], e2[RW_ERRSZ], where[RW_ERRSZ];
    struct segfile sf;
    struct stat sb;
    struct idx_chunk ch;
    struct idx_segdamage *known = NULL;
    size_t nknown = 0;
    int64_t mn = INT64_MAX, mx = INT64_MIN;
    uint64_t n = 0, bytes = 0, stride = s->packets / SAMPLES + 1, unread = 0;
    int64_t chunk_no = -1;
    int rc, broke = 0;
    snprintf(path, sizeof path, "%s/%s", idx_dir(ix), s->path);
    if (stat(path, &sb) < 0) {
        problem(v, "segment %s: %s", s->path, strerror(errno));
        return 0;
    }
    if (s->compressed && (uint64_t)sb.st_size != s->stored_size) {
        problem(v, "segment %s: compressed file has %lld bytes, the index says %llu", s->path,
                (long long)sb.st_size, (unsigned long long)s->stored_size);
        return 0;
    }
    if (!s->compressed && ((uint64_t)sb.st_size < s->file_size ||
                           (s->state == IDX_SEG_SEALED && (uint64_t)sb.st_size != s->file_size))) {
        problem(v, "segment %s: file has %lld bytes, the index covers %llu", s->path,
                (long long)sb.st_size, (unsigned long long)s->file_size);
        return 0;
    }
    if ((rc = idx_segdamage_list(ix, s->id, &known, &nknown, err)) < 0)
        return rc;
    for (size_t i = 0; i < nknown; i++)
        known_problem(v, s, &known[i]);
    if (segfile_open(&sf, path, e2) < 0) {
        problem(v, "segment %s: %s", s->path, e2);
        free(known);
        return 0;
    }
    if (!sf.header) {
        sf.snaplen = s->snaplen; /* records are checked against the index's */
        if (!known_at(known, nknown, 0) && !sf.bad.hi) /* a damaged block is told below */
            problem(v, "segment %s: the file header is damaged", s->path);
    } else if (sf.linktype != (uint32_t)segf_linktype_of_dlt(s->linktype) ||
               sf.snaplen != s->snaplen) {
        problem(v, "segment %s: header says link type %u snaplen %u, the index %d/%u", s->path,
                sf.linktype, sf.snaplen, segf_linktype_of_dlt(s->linktype), s->snaplen);
    }
    while (sf.off < s->file_size) {
        uint32_t rec[4];
        const uint8_t *data;
        uint64_t off = sf.off;
        const struct idx_segdamage *k = known_at(known, nknown, off);
        if (k) { /* lost: the next packet's locator must be at its end */
            sf.off = k->hi < s->file_size ? k->hi : s->file_size;
            continue;
        }
        rc = segfile_next(&sf, rec, &data, e2);
        if (rc == 3) {
            /* Blocks are independent: the packets after it are checked. */
            uint64_t first = n;
            fault_desc(&sf, 1, where, sizeof where);
            if ((rc = skip_to(ix, s, &sf, sf.bad_record ? off + 1 : sf.bad.hi, &n, &chunk_no, &ch,
                              e2)) < 0) {
                problem(v, "segment %s: %s", s->path, e2);
                broke = 1;
                break;
            }
            problem(v, "segment %s: packet %llu at offset %llu: %s: %llu packets cannot be read "
                    "(queries leave them out, with a warning); 'rewind reindex' records the "
                    "range and keeps every readable packet", s->path, (unsigned long long)first,
                    (unsigned long long)off, where, (unsigned long long)(n - first));
            unread += n - first;
            continue;
        }
        if (rc != 1) {
            problem(v, "segment %s: packet %llu at offset %llu: %s", s->path,
                    (unsigned long long)n, (unsigned long long)off,
                    rc == 2 || rc == 0 ? "truncated record" : e2);
            broke = 1;
            break;
        }
        if ((int64_t)(n / IDX_CHUNK) != chunk_no) {
            chunk_no = (int64_t)(n / IDX_CHUNK);
            if ((rc = idx_chunk_get(ix, s->id, (uint32_t)chunk_no, &ch, e2)) < 0) {
                problem(v, "segment %s: %s", s->path, e2);
                broke = 1;
                break;
            }
        }
        if (n % IDX_CHUNK >= ch.count || ch.off[n % IDX_CHUNK] != off) {
            problem(v, "segment %s: packet %llu is at offset %llu, its locator says %llu", s->path,
                    (unsigned long long)n, (unsigned long long)off,
                    (unsigned long long)(n % IDX_CHUNK < ch.count ? ch.off[n % IDX_CHUNK] : 0));
            broke = 1;
            break;
        }
        int64_t ts = (int64_t)rec[0] * RW_NS_PER_SEC + rec[1];
        mn = ts < mn ? ts : mn;
        mx = ts > mx ? ts : mx;
        bytes += rec[2];
        if (n % stride == 0) {
            struct idx_parsed p;
            idx_parse_packet(s->linktype, data, rec[2], &p);
            for (int i = 0; i < p.nterms; i++) {
                if ((rc = posting_has(ix, &p.terms[i], s->id, (uint32_t)n, err)) < 0) {
                    segfile_close(&sf);
                    free(known);
                    return rc;
                }
                if (!rc) {
                    problem(v, "segment %s: packet %llu: term of kind %d missing from its posting",
                            s->path, (unsigned long long)n, p.terms[i].kind);
                    break;
                }
            }
            v->st->sampled++;
        }
        n++;
    }
    if (!broke && n != s->packets)
        problem(v, "segment %s: %llu packets in the file, the index says %llu", s->path,
                (unsigned long long)n, (unsigned long long)s->packets);
    else if (!broke && sf.off != s->file_size)
        problem(v, "segment %s: the last record ends at %llu, the index covers %llu bytes",
                s->path, (unsigned long long)sf.off, (unsigned long long)s->file_size);
    else if (!broke && !unread && n && (mn != s->min_ts || mx != s->max_ts || bytes != s->bytes))
        problem(v, "segment %s: times or byte counts differ from the index", s->path);
    if (!broke && !unread && s->compressed && !nknown && !segf_block_checksums(sf.f))
        content_checksum(v, s, path);
    v->st->packets += n - unread;
    segfile_close(&sf);
    free(known);
    return 0;
}

struct pcheck {
    struct vctx *v;
    const struct idx_seg *segs;
    size_t n;
};

static int by_id(const void *key, const void *seg)
{
    uint64_t a = *(const uint64_t *)key, b = ((const struct idx_seg *)seg)->id;
    return a < b ? -1 : a > b;
}

/* Postings of deleted segments wait for compaction and are never read. */
static int damaged_posting(void *arg, const struct idx_damage *d)
{
    struct pcheck *c = arg;
    const struct idx_seg *s = bsearch(&d->seg, c->segs, c->n, sizeof *c->segs, by_id);
    char what[64];
    if (s)
        problem(c->v, "segment %s (id %llu): the posting of %s is damaged (%s); queries read "
                "every packet of the segment until 'rewind reindex' rebuilds the index",
                s->path, (unsigned long long)d->seg,
                idx_term_desc(d->kind, d->val, d->len, what, sizeof what),
                d->marked ? "marked so by the merge of an operand that did not decode"
                          : "its value does not decode");
    return 0;
}

int arc_verify(idx_t *ix, arc_report_fn report, void *arg, struct arc_verify_stats *st, char *err)
{
    struct idx_seg *segs = NULL;
    size_t n = 0;
    struct vctx v = {report, arg, st};
    int rc;
    memset(st, 0, sizeof *st);
    if ((rc = idx_seg_all(ix, &segs, &n, err)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (segs[i].packets == 0 && segs[i].state == IDX_SEG_OPEN)
            continue;
        st->segments++;
        if ((rc = verify_segment(ix, &segs[i], &v, err)) < 0)
            break;
    }
    struct pcheck pc = {&v, segs, n};
    if (rc == 0)
        rc = idx_postings_check(ix, damaged_posting, &pc, err);
    free(segs);
    return rc;
}

/* --------------------------------------------------------------- reindex */

#define CHAIN 8                      /* records that must follow a resync point */
#define RESYNC_WINDOW_NS (7 * 86400 * RW_NS_PER_SEC)

/* libpcap's DLT_ of a file header's LINKTYPE_ (libpcap maps them when it
 * reads a header, but does not export the map): ask it, through a header
 * in memory. */
static int dlt_of_linktype(uint32_t linktype, int *dlt, char *err)
{
    char eb[PCAP_ERRBUF_SIZE];
    uint32_t h[6] = {0xa1b23c4d, 2 | (4u << 16), 0, 0, 65535, linktype};
    FILE *f = fmemopen(h, sizeof h, "rb");
    pcap_t *p = f ? pcap_fopen_offline(f, eb) : NULL; /* closes f */
    if (!p) {
        if (f)
            fclose(f);
        return rw_err(err, RW_ECORRUPT, "link type %u: %s", linktype, f ? eb : strerror(errno));
    }
    *dlt = pcap_datalink(p);
    pcap_close(p);
    return 0;
}

/* A range the previous index recorded and whose loss was accepted: a
 * reindex that finds the same damage again keeps the acceptance. */
struct oldloss {
    char path[192];
    struct idx_segdamage d;
};

struct rctx {
    idx_t *ix;
    const char *dir;
    struct vctx v;            /* where problems go, and the counts */
    struct idx_point *oldpts; /* points of the previous index: the link type of a */
    size_t noldpts;           /* point whose segment header is damaged */
    struct oldloss *old;
    size_t nold;
    struct idx_seg *oldsegs;  /* the previous catalogue, by path: how many bytes */
    size_t noldsegs;          /* a segment held that now ends early */
    int64_t window;           /* ns: record times a resync point may have, around the
                                 segment's start */
};

/* A segment of which no packet can be indexed is renamed NAME.unreadable,
 * which no reader, recovery or retention takes for a segment: kept for
 * whoever wants to look at it, never deleted. */
static void set_aside(struct rctx *c, const char *rel, const char *why)
{
    char from[1400], to[1500];
    snprintf(from, sizeof from, "%s/%s", c->dir, rel);
    snprintf(to, sizeof to, "%s.unreadable", from);
    if (rename(from, to) == 0)
        problem(&c->v, "%s: %s; no packet of it could be indexed: kept as %s.unreadable", rel, why,
                rel);
    else
        problem(&c->v, "%s: %s; no packet of it could be indexed (and renaming it failed: %s)", rel,
                why, strerror(errno));
}

/* The link type and snaplen of point: the previous index's, or this one's
 * (an earlier segment of the point): 1, or 0 if neither knows it. */
static int point_of(struct rctx *c, const char *point, int *dlt, uint32_t *snaplen, char *err)
{
    struct idx_point *pts = NULL;
    size_t n = 0;
    for (size_t i = 0; i < c->noldpts; i++) {
        if (!strcmp(c->oldpts[i].name, point)) {
            *dlt = c->oldpts[i].linktype;
            *snaplen = c->oldpts[i].snaplen;
            return 1;
        }
    }
    int rc = idx_point_list(c->ix, &pts, &n, err), found = 0;
    for (size_t i = 0; rc == 0 && i < n && !found; i++) {
        if (!strcmp(pts[i].name, point)) {
            *dlt = pts[i].linktype;
            *snaplen = pts[i].snaplen;
            found = 1;
        }
    }
    free(pts);
    return rc < 0 ? rc : found;
}

/* Could a record start at off: a header whose caplen fits snaplen and the
 * file, whose time lies within [tmin, tmax]? 1, 0, 3 in a damaged block. */
static int plausible(struct segfile *sf, uint64_t off, int64_t tmin, int64_t tmax, uint32_t rec[4],
                     char *err)
{
    int rc = segfile_header(sf, off, rec, err);
    if (rc != 1)
        return rc;
    int64_t ts = (int64_t)rec[0] * RW_NS_PER_SEC + rec[1];
    return ts >= tmin && ts <= tmax;
}

/* Where records resume after damage: the first offset from `from` on where
 * a plausible header is followed by CHAIN - 1 more, each where the one
 * before ends (or the chain reaches the end of the file, or the next
 * damaged block). Offsets in damaged blocks are skipped. *at = sf->size if
 * there is none. A record straddles blocks, so the first one after a
 * damaged block begins anywhere in the next: this finds it. */
static int resync(struct segfile *sf, uint64_t from, int64_t tmin, int64_t tmax, uint64_t *at,
                  char *err)
{
    uint32_t rec[4];
    for (uint64_t c = from; c + 16 <= sf->size; c++) {
        uint64_t next = c;
        int k, rc = 0;
        for (k = 0; k < CHAIN && next < sf->size; k++, next += 16 + rec[2])
            if ((rc = plausible(sf, next, tmin, tmax, rec, err)) != 1)
                break;
        if (rc < 0)
            return rc;
        if (k == 0 && rc == 3) { /* c is in a damaged block: go on after it */
            c = sf->bad.hi > c ? sf->bad.hi - 1 : c;
            continue;
        }
        if (k == CHAIN || (k > 0 && (next == sf->size || rc == 3))) {
            *at = c;
            return 0;
        }
    }
    *at = sf->size;
    return 0;
}

/* Record damaged pcap bytes [lo, hi) of the segment being indexed (merged
 * into the previous range when it ends at lo). */
static int add_damage(struct idx_segdamage **d, size_t *nd, uint64_t lo, uint64_t hi,
                      int64_t ts_before, const char *why, char *err)
{
    if (*nd && (*d)[*nd - 1].hi == lo) {
        (*d)[*nd - 1].hi = hi;
        return 0;
    }
    struct idx_segdamage *nb = realloc(*d, (*nd + 1) * sizeof *nb);
    if (!nb)
        return rw_err(err, RW_ENOMEM, "out of memory");
    *d = nb;
    struct idx_segdamage *x = &nb[(*nd)++];
    memset(x, 0, sizeof *x);
    x->lo = lo;
    x->hi = hi;
    x->state = IDX_DMG_FOUND;
    x->ts_before = ts_before;
    x->ts_after = INT64_MAX;
    x->found = rw_now_ns();
    snprintf(x->why, sizeof x->why, "%s", why);
    return 0;
}

static int by_path(const void *a, const void *b)
{
    return strcmp(((const struct idx_seg *)a)->path, ((const struct idx_seg *)b)->path);
}

/* The pcap bytes the previous index covered of the segment at rel (0 if it
 * did not know it). */
static uint64_t old_size(const struct rctx *c, const char *rel)
{
    struct idx_seg key;
    snprintf(key.path, sizeof key.path, "%s", rel);
    const struct idx_seg *s = c->noldsegs ? bsearch(&key, c->oldsegs, c->noldsegs,
                                                    sizeof *c->oldsegs, by_path) : NULL;
    return s ? s->file_size : 0;
}

/* The damaged ranges found in segment seg (path rel), in the new index: an
 * acceptance the previous index recorded for the same range is kept. */
static int put_damage(struct rctx *c, uint64_t seg, const char *rel, struct idx_segdamage *d,
                      size_t nd, char *err)
{
    int rc = 0;
    for (size_t i = 0; i < nd && rc == 0; i++) {
        d[i].seg = seg;
        for (size_t j = 0; j < c->nold; j++) {
            const struct idx_segdamage *o = &c->old[j].d;
            if (!strcmp(c->old[j].path, rel) && o->lo == d[i].lo && o->hi == d[i].hi) {
                d[i].state = IDX_DMG_ACCEPTED;
                d[i].accepted = o->accepted;
                snprintf(d[i].note, sizeof d[i].note, "%s", o->note);
            }
        }
        rc = idx_segdamage_put(c->ix, &d[i], err);
    }
    return rc;
}

/* Index one segment file: every record it holds, also after damage. Where
 * a block does not read or bytes are no records, the reader resynchronises
 * at the next record boundary (resync) and the bytes between are recorded
 * as a damaged range (K16); a plain file that merely ends inside its last
 * record (a crash) is cut there, as recovery would. */
static int reindex_segment(struct rctx *c, const struct arc_segname *name, char *err)
{
    char path[1400], where[RW_ERRSZ];
    struct segfile sf;
    struct idx_point pt;
    struct idx_parsed p;
    struct idx_segdamage *dmg = NULL;
    size_t nd = 0;
    idx_segw_t *w = NULL;
    uint64_t seg, file_size;
    uint32_t snaplen = 0;
    int64_t last_ts = INT64_MIN, tmin = name->start - c->window, tmax = name->start + c->window;
    uint64_t had = old_size(c, name->rel); /* pcap bytes the previous index covered */
    int dlt = 0, rc;
    snprintf(path, sizeof path, "%s/%s", c->dir, name->rel);
    if ((rc = segfile_open(&sf, path, err)) < 0) {
        if (rc == RW_ENOMEM)
            return rc;
        if (rc == RW_ECORRUPT)
            set_aside(c, name->rel, err);
        else
            problem(&c->v, "skipping %s: %s", name->rel, err);
        return 0;
    }
    if (sf.header) {
        snaplen = sf.snaplen;
        rc = dlt_of_linktype(sf.linktype, &dlt, err);
    } else if ((rc = point_of(c, name->point, &dlt, &snaplen, err)) == 0) {
        rc = rw_err(err, RW_ECORRUPT, "its file header is damaged, and no index knows the link "
                    "type of point %s", name->point);
    } else if (rc == 1) {
        rc = 0;
    }
    if (rc < 0) {
        segfile_close(&sf);
        if (rc == RW_ENOMEM || rc == RW_EDB)
            return rc;
        set_aside(c, name->rel, err);
        return 0;
    }
    sf.snaplen = snaplen;
    if ((rc = idx_point_get(c->ix, name->point, dlt, snaplen, &pt, err)) < 0 ||
        (rc = idx_segw_begin(c->ix, pt.id, dlt, snaplen, name->rel, &w, &seg, err)) < 0)
        goto fail;
    if (!sf.header) { /* records go on after the header's damage */
        uint64_t at;
        if ((rc = resync(&sf, 24, tmin, tmax, &at, err)) < 0 ||
            (rc = add_damage(&dmg, &nd, 0, at, INT64_MIN, "the file header is damaged", err)) < 0)
            goto fail;
        problem(&c->v, "%s: the file header is damaged%s%s: pcap bytes 0-%llu lost, recorded as a "
                "damaged range; %s", name->rel, sf.bad.hi ? ", " : "",
                sf.bad.hi ? (fault_desc(&sf, 0, where, sizeof where), where) : "",
                (unsigned long long)(at - 1),
                at < sf.size ? "the records after it are indexed" : "no record follows it");
        sf.off = at;
    }
    for (;;) {
        uint32_t rec[4];
        const uint8_t *data;
        uint64_t off = sf.off, at;
        rc = segfile_next(&sf, rec, &data, err);
        if (rc == 0 && had <= sf.size)
            break;
        if (rc == 1) {
            int64_t ts = (int64_t)rec[0] * RW_NS_PER_SEC + rec[1];
            if (nd && dmg[nd - 1].hi == off)
                dmg[nd - 1].ts_after = ts;
            last_ts = ts;
            idx_parse_packet(dlt, data, rec[2], &p);
            idx_segw_add(w, ts, off, rec[2], rec[3], &p);
            c->v.st->packets++;
            if ((c->v.st->packets & 0xffff) == 0 && (rc = idx_segw_flush(w, sf.off, 0, err)) < 0)
                goto fail;
            continue;
        }
        if (rc < 0)
            goto fail;
        /* Damage (3), or a record the file ends inside (2) or at its end
         * (0) when the previous index covered more: do records resume
         * after it? */
        int partial = rc == 2 || rc == 0;
        if (rc == 3)
            fault_desc(&sf, 0, where, sizeof where);
        else
            snprintf(where, sizeof where, "the file ends inside a record");
        uint64_t from = rc == 3 && !sf.bad_record && sf.bad.hi > off + 1 ? sf.bad.hi : off + 1;
        if (rc == 0)
            at = sf.size;
        else if ((rc = resync(&sf, from, tmin, tmax, &at, err)) < 0)
            goto fail;
        if (at == sf.size && partial && had > sf.size) {
            /* The file lost its end: the previous index covered more. */
            snprintf(where, sizeof where, "the file ends early: %llu bytes the index covered "
                     "are missing", (unsigned long long)(had - sf.size));
            at = had;
        } else if (at == sf.size && partial && !segf_compressed(sf.f)) {
            /* the tail a crash left: cut, as recovery cuts an open segment */
            problem(&c->v, "%s: packet at offset %llu: truncated record; cutting the file there",
                    name->rel, (unsigned long long)off);
            if (truncate(path, (off_t)off) < 0) {
                rc = rw_err(err, RW_EIO, "%s: truncate: %s", path, strerror(errno));
                goto fail;
            }
            sf.size = off;
            break;
        }
        if ((rc = add_damage(&dmg, &nd, off, at, last_ts, where, err)) < 0)
            goto fail;
        problem(&c->v, "%s: %s: pcap bytes %llu-%llu lost, recorded as a damaged range; %s", name->rel,
                where, (unsigned long long)off, (unsigned long long)(at - 1),
                at < sf.size ? "the records after it are indexed" : "no record follows it");
        if (at >= sf.size)
            break;
        sf.off = at;
    }
    file_size = sf.size;
    rc = idx_segw_seal(w, file_size, err);
    w = NULL;
    if (rc == 1) { /* no packets */
        segfile_close(&sf);
        if (nd)
            set_aside(c, name->rel, "every record of it is damaged");
        else
            unlink(path); /* an empty segment: nothing to keep */
        free(dmg);
        return 0;
    }
    if (rc == 0)
        rc = put_damage(c, seg, name->rel, dmg, nd, err);
    if (rc == 0 && name->compressed) {
        struct idx_seg rec;
        struct stat sb;
        if ((rc = idx_seg_get(c->ix, seg, &rec, err)) == 1 && stat(path, &sb) == 0)
            rc = idx_seg_set_compressed(c->ix, &rec, name->rel, (uint64_t)sb.st_size, err);
        else if (rc >= 0)
            rc = rw_err(err, RW_EIO, "%s: vanished during reindex", path);
    }
    c->v.st->segments++;
    segfile_close(&sf);
    free(dmg);
    return rc;
fail:
    idx_segw_abandon(w);
    segfile_close(&sf);
    free(dmg);
    return rc;
}

/* What the previous index knew beyond the segments, read while it still
 * opens: settings, holds, subscriber identities, points, accepted damaged
 * ranges. */
static void read_old(const char *dir, struct idx_config *cfg, struct idx_hold **holds,
                     size_t *nholds, struct idx_ident **idents, size_t *nidents,
                     struct rctx *c)
{
    char err[RW_ERRSZ];
    idx_t *ix;
    struct idx_seg *segs = NULL;
    struct idx_segdamage *d = NULL;
    size_t nsegs = 0, nd = 0;
    if (idx_open(dir, IDX_READ, &ix, err) < 0)
        return;
    if (idx_config_get(ix, cfg, err) < 0)
        memset(cfg, 0, sizeof *cfg);
    if (idx_hold_list(ix, holds, nholds, err) < 0)
        *nholds = 0;
    if (idx_ident_list(ix, NULL, idents, nidents, err) < 0)
        *nidents = 0;
    if (idx_point_list(ix, &c->oldpts, &c->noldpts, err) < 0)
        c->noldpts = 0;
    if (idx_seg_all(ix, &segs, &nsegs, err) == 0 &&
        idx_segdamage_list(ix, UINT64_MAX, &d, &nd, err) == 0 &&
        (c->old = calloc(nd + 1, sizeof *c->old))) {
        for (size_t i = 0; i < nd; i++) {
            for (size_t j = 0; j < nsegs && d[i].state == IDX_DMG_ACCEPTED; j++) {
                if (segs[j].id == d[i].seg) {
                    snprintf(c->old[c->nold].path, sizeof c->old[c->nold].path, "%s",
                             segs[j].path);
                    c->old[c->nold++].d = d[i];
                    break;
                }
            }
        }
    }
    if (segs) {
        qsort(segs, nsegs, sizeof *segs, by_path);
        c->oldsegs = segs;
        c->noldsegs = nsegs;
    }
    free(d);
    idx_close(ix);
}

int arc_reindex(const char *dir, arc_report_fn report, void *arg, struct arc_verify_stats *st,
                char *err)
{
    char idir[1100], old[1200];
    struct idx_config cfg = {0};
    struct idx_hold *holds = NULL;
    struct idx_ident *idents = NULL;
    size_t nholds = 0, nidents = 0;
    idx_t *ix = NULL;
    struct rctx c = {.dir = dir, .v = {report, arg, st}};
    int rc;
    memset(st, 0, sizeof *st);
    snprintf(idir, sizeof idir, "%s/index", dir);
    snprintf(old, sizeof old, "%s/index.old-%lld", dir, (long long)(rw_now_ns() / RW_NS_PER_SEC));
    /* Keep what the old index knew beyond the segments, if it still opens. */
    read_old(dir, &cfg, &holds, &nholds, &idents, &nidents, &c);
    /* Records of a segment lie within segment_seconds of its first (S5). */
    c.window = cfg.segment_ns > RESYNC_WINDOW_NS / 2 ? 2 * cfg.segment_ns : RESYNC_WINDOW_NS;
    /* Make sure no writer owns the archive before moving its index. */
    if ((rc = idx_open(dir, IDX_WRITE, &ix, err)) < 0 && rc == RW_EBUSY)
        goto done;
    idx_close(ix);
    ix = NULL;
    /* A second reindex in the same second keeps the first one's too. */
    for (int i = 1; access(old, F_OK) == 0 && i < 100; i++)
        snprintf(old, sizeof old, "%s/index.old-%lld-%d", dir,
                 (long long)(rw_now_ns() / RW_NS_PER_SEC), i);
    if (rename(idir, old) < 0 && errno != ENOENT) {
        rc = rw_err(err, RW_EIO, "moving %s aside: %s", idir, strerror(errno));
        goto done;
    }
    if ((rc = idx_open(dir, IDX_WRITE, &ix, err)) < 0)
        goto done;
    c.ix = ix;
    if ((cfg.segment_ns || cfg.segment_bytes || cfg.quota_bytes || cfg.quota_pct ||
         cfg.max_age_ns || cfg.compress_after_ns || cfg.min_horizon_ns) &&
        (rc = idx_config_put(ix, &cfg, err)) < 0)
        goto done;
    for (size_t i = 0; i < nholds; i++)
        if ((rc = idx_hold_add(ix, &holds[i], err)) < 0)
            goto done;
    for (size_t i = 0; i < nidents; i++) /* those posted are in no segment */
        if ((rc = idx_ident_put(ix, &idents[i], i + 1 == nidents, err)) < 0)
            goto done;
    /* A point's segments are written one after another, each sealed before
     * the next is created, so the order they were written in (file times,
     * then names: arc_segname_list) is capture order even where packet
     * times step back. */
    struct arc_segname *names = NULL;
    size_t nn = 0;
    if ((rc = arc_segname_list(dir, NULL, &names, &nn, err)) < 0)
        goto done;
    for (size_t i = 0; i < nn && rc == 0; i++)
        if (!names[i].partial)
            rc = reindex_segment(&c, &names[i], err);
    free(names);
    if (rc == 0) {
        char msg[1400];
        snprintf(msg, sizeof msg, "the previous index is kept in %s; delete it when satisfied", old);
        report(arg, msg);
    }
done:
    idx_close(ix);
    free(holds);
    free(idents);
    free(c.oldpts);
    free(c.old);
    free(c.oldsegs);
    return rc;
}

int arc_quarantine(arc_t *a, const char *who, const char *reason, uint64_t *n, char *err)
{
    idx_t *ix = arc_index(a);
    struct idx_segdamage *d = NULL;
    size_t nd = 0;
    char span[112], blocks[48];
    int rc = idx_segdamage_list(ix, UINT64_MAX, &d, &nd, err);
    *n = 0;
    for (size_t i = 0; rc == 0 && i < nd; i++) {
        struct idx_seg seg;
        if (d[i].state != IDX_DMG_FOUND)
            continue;
        if ((rc = idx_seg_get(ix, d[i].seg, &seg, err)) < 0)
            break;
        if (rc == 0) /* its segment is gone (retention): nothing left to accept */
            continue;
        d[i].state = IDX_DMG_ACCEPTED;
        d[i].accepted = rw_now_ns();
        snprintf(d[i].note, sizeof d[i].note, "by %s%s%s", who, reason[0] ? ": " : "", reason);
        if ((rc = idx_segdamage_put(ix, &d[i], err)) < 0)
            break;
        /* The archive's log is where the loss is written down (there is no
         * audit trail yet), as well as in the record itself. */
        rw_span_fmt(d[i].ts_before, d[i].ts_after, span, sizeof span);
        arc_log(a, "warn", "quarantine: segment %s (id %llu): pcap bytes %llu-%llu (%s) are lost "
                "(%s)%s%s; the loss is accepted %s", seg.path, (unsigned long long)d[i].seg,
                (unsigned long long)d[i].lo, (unsigned long long)(d[i].hi - 1),
                blocks_desc(&d[i], blocks, sizeof blocks), d[i].why,
                span[0] ? ", with the packets captured " : "", span, d[i].note);
        ++*n;
        rc = 0;
    }
    free(d);
    return rc;
}

int arc_verify_dir(const char *dir, arc_report_fn report, void *arg, struct arc_verify_stats *st,
                   char *err)
{
    idx_t *ix;
    int rc = idx_open(dir, IDX_READ, &ix, err);
    if (rc < 0)
        return rc;
    rc = arc_verify(ix, report, arg, st, err);
    idx_close(ix);
    return rc;
}
