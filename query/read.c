/* read.c -- the read API under the front ends: status, segments, holds,
 * each computed once from the index (read.h says why). */
#include "query/read.h"

#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "index/index.h"

int qry_archive_open(const char *dir, idx_t **out, char *err)
{
    return idx_open(dir, IDX_READ, out, err);
}

void qry_archive_close(idx_t *ix) { idx_close(ix); }

const char *qry_archive_dir(const idx_t *ix) { return idx_dir(ix); }

static void linktype_name(int lt, char *out, size_t n)
{
    const char *name = pcap_datalink_val_to_name(lt);
    if (name)
        snprintf(out, n, "%s", name);
    else
        snprintf(out, n, "DLT_%d", lt);
}

/* Add segment s to the sums of p. */
static void add_segment(struct qry_point_status *p, const struct idx_seg *s)
{
    if (s->packets == 0)
        return; /* an open segment before its first flush */
    if (p->segments == 0 || s->min_ts < p->first)
        p->first = s->min_ts;
    if (p->segments == 0 || s->max_ts > p->last)
        p->last = s->max_ts;
    p->segments++;
    p->open_segments += s->state == IDX_SEG_OPEN;
    p->compressed_segments += s->compressed != 0;
    p->packets += s->packets;
    p->captured_bytes += s->bytes;
    p->wire_bytes += s->wire_bytes;
    p->pcap_bytes += s->file_size;
    p->stored_bytes += s->stored_size;
    if (s->compressed) {
        p->compressed_pcap_bytes += s->file_size;
        p->compressed_stored_bytes += s->stored_size;
    }
}

/* Add point p's sums to the total t. */
static void add_point(struct qry_point_status *t, const struct qry_point_status *p)
{
    if (p->segments) {
        if (t->segments == 0 || p->first < t->first)
            t->first = p->first;
        if (t->segments == 0 || p->last > t->last)
            t->last = p->last;
    }
    t->segments += p->segments;
    t->open_segments += p->open_segments;
    t->compressed_segments += p->compressed_segments;
    t->packets += p->packets;
    t->captured_bytes += p->captured_bytes;
    t->wire_bytes += p->wire_bytes;
    t->pcap_bytes += p->pcap_bytes;
    t->stored_bytes += p->stored_bytes;
    t->compressed_pcap_bytes += p->compressed_pcap_bytes;
    t->compressed_stored_bytes += p->compressed_stored_bytes;
    t->kernel_drops += p->kernel_drops;
    t->queue_drops += p->queue_drops;
    t->paused_drops += p->paused_drops;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct qry_point_status *)a)->name,
                  ((const struct qry_point_status *)b)->name);
}

int qry_status_get(idx_t *ix, qry_live_fn live, void *live_arg, struct qry_status *st, char *err)
{
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    struct idx_hold *holds = NULL;
    struct idx_config cfg;
    size_t npts = 0, nsegs = 0, nholds = 0;
    int rc;
    memset(st, 0, sizeof *st);
    snprintf(st->archive, sizeof st->archive, "%s", idx_dir(ix));
    snprintf(st->total.name, sizeof st->total.name, "total");
    if ((rc = idx_point_list(ix, &pts, &npts, err)) < 0 ||
        (rc = idx_seg_all(ix, &segs, &nsegs, err)) < 0 ||
        (rc = idx_config_get(ix, &cfg, err)) < 0 ||
        (rc = idx_hold_list(ix, &holds, &nholds, err)) < 0)
        goto done;
    if (npts && !(st->points = calloc(npts, sizeof *st->points))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    st->npoints = npts;
    for (size_t i = 0; i < npts; i++) {
        struct qry_point_status *p = &st->points[i];
        snprintf(p->name, sizeof p->name, "%s", pts[i].name);
        linktype_name(pts[i].linktype, p->linktype, sizeof p->linktype);
        p->kernel_drops = pts[i].kernel_drops;
        p->queue_drops = pts[i].queue_drops;
        for (size_t j = 0; j < nsegs; j++)
            if (segs[j].point == pts[i].id)
                add_segment(p, &segs[j]);
    }
    if (live) {
        struct qry_live lv[QRY_MAX_LIVE];
        size_t nl = live(live_arg, lv, QRY_MAX_LIVE);
        for (size_t k = 0; k < nl; k++) {
            struct qry_point_status *p = NULL;
            for (size_t i = 0; i < st->npoints && !p; i++)
                if (!strcmp(st->points[i].name, lv[k].point))
                    p = &st->points[i];
            if (!p) { /* captured, nothing stored yet: shown with zero counts */
                struct qry_point_status *np =
                    realloc(st->points, (st->npoints + 1) * sizeof *st->points);
                if (!np) {
                    rc = rw_err(err, RW_ENOMEM, "out of memory");
                    goto done;
                }
                st->points = np;
                p = &st->points[st->npoints++];
                memset(p, 0, sizeof *p);
                memcpy(p->name, lv[k].point, sizeof p->name);
                p->name[sizeof p->name - 1] = 0;
                linktype_name(lv[k].linktype, p->linktype, sizeof p->linktype);
            }
            p->live = 1;
            p->paused = lv[k].paused;
            p->paused_drops = lv[k].paused_drops;
            snprintf(p->reason, sizeof p->reason, "%s", lv[k].reason);
        }
        qsort(st->points, st->npoints, sizeof *st->points, by_name);
    }
    for (size_t i = 0; i < st->npoints; i++)
        add_point(&st->total, &st->points[i]);
    st->index_bytes = idx_disk_bytes(ix);
    struct statvfs fs;
    if (statvfs(idx_dir(ix), &fs) == 0)
        st->disk_available = (uint64_t)fs.f_bavail * fs.f_frsize;
    st->quota_bytes = cfg.quota_bytes;
    st->quota_pct = cfg.quota_pct;
    st->max_age_ns = cfg.max_age_ns;
    st->min_horizon_ns = cfg.min_horizon_ns;
    int64_t breach = 0;
    if (cfg.min_horizon_ns && (rc = idx_horizon_breach_get(ix, &breach, err)) < 0)
        goto done;
    /* The alarm holds while the archive reaches back less than the minimum
     * horizon from its newest packet; it clears once it reaches back that far
     * again (or retention never cut into the horizon). */
    st->below_horizon = breach && (st->total.segments == 0 ||
                                   st->total.last - st->total.first < cfg.min_horizon_ns);
    st->holds = nholds;
done:
    free(pts);
    free(segs);
    free(holds);
    if (rc < 0)
        qry_status_free(st);
    return rc;
}

void qry_status_free(struct qry_status *st)
{
    free(st->points);
    st->points = NULL;
    st->npoints = 0;
}

/* 1 if name is one of points (NULL: all). */
static int wanted(const char *const *points, const char *name)
{
    if (!points)
        return 1;
    for (size_t i = 0; points[i]; i++)
        if (!strcmp(points[i], name))
            return 1;
    return 0;
}

int qry_segments(idx_t *ix, int64_t from, int64_t to, const char *const *points,
                 struct qry_segment **out, size_t *n, char *err)
{
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = idx_point_list(ix, &pts, &npts, err)) < 0 ||
        (rc = idx_seg_list(ix, from, to, &segs, &nsegs, err)) < 0)
        goto done;
    for (size_t i = 0; points && points[i]; i++) {
        size_t j = 0;
        while (j < npts && strcmp(pts[j].name, points[i]))
            j++;
        if (j == npts) {
            rc = rw_err(err, RW_EINPUT, "no capture point '%.64s' in this archive", points[i]);
            goto done;
        }
    }
    struct qry_segment *v = calloc(nsegs ? nsegs : 1, sizeof *v);
    if (!v) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    size_t k = 0;
    for (size_t i = 0; i < nsegs; i++) {
        const struct idx_seg *s = &segs[i];
        const char *pname = "?";
        for (size_t j = 0; j < npts; j++)
            if (pts[j].id == s->point)
                pname = pts[j].name;
        if (!wanted(points, pname))
            continue;
        struct qry_segment *q = &v[k++];
        q->id = s->id;
        snprintf(q->point, sizeof q->point, "%s", pname);
        q->open = s->state == IDX_SEG_OPEN;
        q->compressed = s->compressed != 0;
        q->first = s->min_ts;
        q->last = s->max_ts;
        q->packets = s->packets;
        q->captured_bytes = s->bytes;
        q->wire_bytes = s->wire_bytes;
        q->pcap_bytes = s->file_size;
        q->stored_bytes = s->stored_size;
        snprintf(q->path, sizeof q->path, "%s", s->path);
    }
    *out = v;
    *n = k;
done:
    free(pts);
    free(segs);
    return rc;
}

int qry_holds(idx_t *ix, struct qry_hold **out, size_t *n, char *err)
{
    struct idx_hold *hs = NULL;
    size_t nh = 0;
    int rc;
    *out = NULL;
    *n = 0;
    if ((rc = idx_hold_list(ix, &hs, &nh, err)) < 0)
        return rc;
    struct qry_hold *v = calloc(nh ? nh : 1, sizeof *v);
    if (!v) {
        free(hs);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < nh; i++) {
        v[i].id = hs[i].id;
        v[i].from = hs[i].from;
        v[i].to = hs[i].to;
        v[i].created = hs[i].created;
        memcpy(v[i].filter, hs[i].filter, sizeof v[i].filter);
        memcpy(v[i].reason, hs[i].reason, sizeof v[i].reason);
        memcpy(v[i].author, hs[i].author, sizeof v[i].author);
    }
    free(hs);
    *out = v;
    *n = nh;
    return 0;
}
