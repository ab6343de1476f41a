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

/* Sequential reader of one segment file. */
struct segfile {
    FILE *f;
    const char *why; /* what a read error of a compressed segment was */
    int swap;
    uint32_t snaplen, linktype;
    uint64_t off;
    uint8_t *buf;
    size_t cap;
};

static int segfile_open(struct segfile *sf, const char *path, char *err)
{
    uint32_t h[6];
    memset(sf, 0, sizeof *sf);
    if (!(sf->f = segf_stream(path, &sf->why, err)))
        return RW_EIO;
    if (fread(h, 1, 24, sf->f) != 24) {
        fclose(sf->f);
        sf->f = NULL;
        return rw_err(err, RW_ECORRUPT, "%s: shorter than a pcap file header", path);
    }
    if (h[0] == 0x4d3cb2a1)
        sf->swap = 1;
    else if (h[0] != 0xa1b23c4d) {
        fclose(sf->f);
        sf->f = NULL;
        return rw_err(err, RW_ECORRUPT, "%s: not a nanosecond pcap file (magic %08x)", path, h[0]);
    }
    sf->snaplen = sf->swap ? __builtin_bswap32(h[4]) : h[4];
    sf->linktype = (sf->swap ? __builtin_bswap32(h[5]) : h[5]) & 0x03ffffff;
    sf->off = 24;
    return 0;
}

/* 1 and a record, 0 at a clean end, 2 at a partial record, <0 error. */
static int segfile_next(struct segfile *sf, uint32_t rec[4], const uint8_t **data, char *err)
{
    size_t got = fread(rec, 1, 16, sf->f);
    if (ferror(sf->f))
        return rw_err(err, RW_ECORRUPT, "%s", sf->why[0] ? sf->why : strerror(errno));
    if (got == 0)
        return 0;
    if (got < 16)
        return 2;
    if (sf->swap)
        for (int i = 0; i < 4; i++)
            rec[i] = __builtin_bswap32(rec[i]);
    if (rec[2] > sf->snaplen || rec[2] > (1u << 28))
        return rw_err(err, RW_ECORRUPT, "caplen %u exceeds snaplen %u", rec[2], sf->snaplen);
    if (rec[2] > sf->cap) {
        uint8_t *nb = realloc(sf->buf, rec[2]);
        if (!nb)
            return rw_err(err, RW_ENOMEM, "out of memory");
        sf->buf = nb;
        sf->cap = rec[2];
    }
    if (fread(sf->buf, 1, rec[2], sf->f) != rec[2])
        return ferror(sf->f) ? rw_err(err, RW_ECORRUPT, "%s", sf->why[0] ? sf->why : strerror(errno))
                             : 2;
    *data = sf->buf;
    sf->off += 16 + rec[2];
    return 1;
}

static void segfile_close(struct segfile *sf)
{
    if (sf->f)
        fclose(sf->f);
    free(sf->buf);
}

/* ---------------------------------------------------------------- verify */

struct vctx {
    arc_report_fn report;
    void *arg;
    struct arc_verify_stats *st;
};

static void problem(struct vctx *v, const char *fmt, ...) RW_PRINTF(2, 3);
static void problem(struct vctx *v, const char *fmt, ...)
{
    char msg[1024];
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

static int verify_segment(idx_t *ix, const struct idx_seg *s, struct vctx *v, char *err)
{
    char path[1400], e2[RW_ERRSZ];
    struct segfile sf;
    struct stat sb;
    struct idx_chunk ch;
    int64_t mn = INT64_MAX, mx = INT64_MIN;
    uint64_t n = 0, bytes = 0, stride = s->packets / SAMPLES + 1;
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
    if (segfile_open(&sf, path, e2) < 0) {
        problem(v, "segment %s: %s", s->path, e2);
        return 0;
    }
    if (sf.linktype != (uint32_t)segf_linktype_of_dlt(s->linktype) || sf.snaplen != s->snaplen)
        problem(v, "segment %s: header says link type %u snaplen %u, the index %d/%u", s->path,
                sf.linktype, sf.snaplen, segf_linktype_of_dlt(s->linktype), s->snaplen);
    while (sf.off < s->file_size) {
        uint32_t rec[4];
        const uint8_t *data;
        uint64_t off = sf.off;
        rc = segfile_next(&sf, rec, &data, e2);
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
    else if (!broke && n && (mn != s->min_ts || mx != s->max_ts || bytes != s->bytes))
        problem(v, "segment %s: times or byte counts differ from the index", s->path);
    if (!broke && s->compressed) {
        /* Read the frame to its end: LZ4 checks the content checksum there. */
        uint8_t tail[4096];
        while (fread(tail, 1, sizeof tail, sf.f) > 0)
            ;
        if (ferror(sf.f))
            problem(v, "segment %s: %s", s->path, sf.why[0] ? sf.why : "read error");
    }
    v->st->packets += n;
    segfile_close(&sf);
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

static int dlt_of_file(const char *path, int *dlt, char *err)
{
    char eb[PCAP_ERRBUF_SIZE];
    const char *why;
    FILE *f = segf_stream(path, &why, err);
    if (!f)
        return RW_EIO;
    pcap_t *p = pcap_fopen_offline(f, eb); /* closes f */
    if (!p)
        return rw_err(err, RW_ECORRUPT, "%s: %s", path, eb);
    *dlt = pcap_datalink(p);
    pcap_close(p);
    return 0;
}

static int reindex_segment(idx_t *ix, const char *dir, const char *point, const char *rel,
                           struct arc_verify_stats *st, arc_report_fn report, void *arg, char *err)
{
    char path[1400], msg[1600];
    struct segfile sf;
    struct idx_point pt;
    struct idx_parsed p;
    idx_segw_t *w;
    uint64_t seg;
    int dlt = 0, rc, lz = strstr(rel, ".pcap.lz4") != NULL;
    snprintf(path, sizeof path, "%s/%s", dir, rel);
    if ((rc = segfile_open(&sf, path, err)) < 0 || (rc = dlt_of_file(path, &dlt, err)) < 0) {
        segfile_close(&sf);
        snprintf(msg, sizeof msg, "skipping %s: %s", rel, err);
        report(arg, msg);
        st->problems++;
        return 0;
    }
    if ((rc = idx_point_get(ix, point, dlt, sf.snaplen, &pt, err)) < 0 ||
        (rc = idx_segw_begin(ix, pt.id, dlt, sf.snaplen, rel, &w, &seg, err)) < 0) {
        segfile_close(&sf);
        return rc;
    }
    for (;;) {
        uint32_t rec[4];
        const uint8_t *data;
        uint64_t off = sf.off;
        rc = segfile_next(&sf, rec, &data, err);
        if (rc == 0)
            break;
        if (rc != 1) {
            snprintf(msg, sizeof msg, "%s: packet at offset %llu: %s; cutting the file there", rel,
                     (unsigned long long)off, rc == 2 ? "truncated record" : err);
            report(arg, msg);
            st->problems++;
            sf.off = off;
            if (lz) /* cannot cut a compressed file: the index stops there */
                break;
            if (truncate(path, (off_t)off) < 0) {
                rc = rw_err(err, RW_EIO, "%s: truncate: %s", path, strerror(errno));
                idx_segw_abandon(w);
                segfile_close(&sf);
                return rc;
            }
            break;
        }
        idx_parse_packet(dlt, data, rec[2], &p);
        idx_segw_add(w, (int64_t)rec[0] * RW_NS_PER_SEC + rec[1], off, rec[2], rec[3], &p);
        st->packets++;
        if ((st->packets & 0xffff) == 0 && (rc = idx_segw_flush(w, sf.off, 0, err)) < 0) {
            idx_segw_abandon(w);
            segfile_close(&sf);
            return rc;
        }
    }
    rc = idx_segw_seal(w, sf.off, err);
    segfile_close(&sf);
    if (rc == 1) { /* no packets: the file has nothing to keep */
        unlink(path);
        return 0;
    }
    if (rc == 0 && lz) {
        struct idx_seg rec;
        struct stat sb;
        if ((rc = idx_seg_get(ix, seg, &rec, err)) == 1 && stat(path, &sb) == 0)
            rc = idx_seg_set_compressed(ix, &rec, rel, (uint64_t)sb.st_size, err);
        else if (rc >= 0)
            rc = rw_err(err, RW_EIO, "%s: vanished during reindex", path);
    }
    st->segments++;
    return rc;
}

int arc_reindex(const char *dir, arc_report_fn report, void *arg, struct arc_verify_stats *st,
                char *err)
{
    char idir[1100], old[1200];
    struct idx_config cfg = {0};
    struct idx_hold *holds = NULL;
    size_t nholds = 0;
    idx_t *ix = NULL;
    int rc;
    memset(st, 0, sizeof *st);
    snprintf(idir, sizeof idir, "%s/index", dir);
    snprintf(old, sizeof old, "%s/index.old-%lld", dir, (long long)(rw_now_ns() / RW_NS_PER_SEC));
    /* Keep what the old index knew beyond the segments, if it still opens. */
    if (idx_open(dir, IDX_READ, &ix, err) == 0) {
        if (idx_config_get(ix, &cfg, err) < 0)
            memset(&cfg, 0, sizeof cfg);
        if (idx_hold_list(ix, &holds, &nholds, err) < 0)
            nholds = 0;
        idx_close(ix);
        ix = NULL;
    }
    /* Make sure no writer owns the archive before moving its index. */
    if ((rc = idx_open(dir, IDX_WRITE, &ix, err)) < 0 && rc == RW_EBUSY) {
        free(holds);
        return rc;
    }
    idx_close(ix);
    ix = NULL;
    if (rename(idir, old) < 0 && errno != ENOENT) {
        free(holds);
        return rw_err(err, RW_EIO, "moving %s aside: %s", idir, strerror(errno));
    }
    if ((rc = idx_open(dir, IDX_WRITE, &ix, err)) < 0)
        goto done;
    if ((cfg.segment_ns || cfg.segment_bytes || cfg.quota_bytes || cfg.quota_pct ||
         cfg.max_age_ns || cfg.compress_after_ns || cfg.min_horizon_ns) &&
        (rc = idx_config_put(ix, &cfg, err)) < 0)
        goto done;
    for (size_t i = 0; i < nholds; i++)
        if ((rc = idx_hold_add(ix, &holds[i], err)) < 0)
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
            rc = reindex_segment(ix, dir, names[i].point, names[i].rel, st, report, arg, err);
    free(names);
    if (rc == 0) {
        char msg[1400];
        snprintf(msg, sizeof msg, "the previous index is kept in %s; delete it when satisfied", old);
        report(arg, msg);
    }
done:
    idx_close(ix);
    free(holds);
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
