/* timeline.c -- packets and bytes per step and capture point: from the
 * per-second counters without a filter, from the packets with one. */
#include "analytics/an_int.h"

#include <stdlib.h>
#include <string.h>

#include "index/index.h"

static int64_t floor_div(int64_t a, int64_t b) { return a / b - (a % b != 0 && (a < 0) != (b < 0)); }

struct tl {
    struct an_timeline *t;
    int point; /* counters: the point being read */
};

static int take_second(void *arg, int64_t sec, uint64_t packets, uint64_t bytes)
{
    struct tl *c = arg;
    struct an_timeline *t = c->t;
    int64_t ns = sec * RW_NS_PER_SEC;
    if (ns < t->from || ns >= t->to)
        return 0;
    size_t b = (size_t)((ns - t->from) / t->step);
    t->packets[(size_t)c->point * t->nbuckets + b] += packets;
    t->bytes[(size_t)c->point * t->nbuckets + b] += bytes;
    return 0;
}

static int take_packet(void *arg, const struct qry_point *pt, const struct qry_pkt *p)
{
    struct tl *c = arg;
    struct an_timeline *t = c->t;
    int64_t ns = (int64_t)p->sec * RW_NS_PER_SEC + p->frac;
    int i;
    for (i = 0; i < t->npoints && strcmp(t->points[i], pt->name); i++)
        ;
    if (i == t->npoints || ns < t->from || ns >= t->to)
        return 0;
    size_t b = (size_t)((ns - t->from) / t->step);
    t->packets[(size_t)i * t->nbuckets + b]++;
    t->bytes[(size_t)i * t->nbuckets + b] += p->len;
    return 0;
}

int an_timeline_get(idx_t *ix, const struct an_tl_query *q, struct an_timeline *out, char *err)
{
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0;
    int64_t from = q->from, to = q->to, step = q->step;
    int rc;
    memset(out, 0, sizeof *out);
    if (step < AN_STEP_MIN || step > AN_STEP_MAX || step % RW_NS_PER_SEC)
        return rw_err(err, RW_EINPUT, "step: a whole number of seconds from 1s to 1d");
    if (from >= to)
        return rw_err(err, RW_EINPUT, "empty time window: 'from' must be before 'to'");
    if ((rc = an_points_selected(ix, q->points, &pts, &npts, err)) < 0)
        return rc;
    if (q->filter && q->filter[0] && (rc = an_filter_check(ix, q->filter, q->points, err)) < 0)
        goto done;
    if ((rc = idx_seg_list(ix, from, to, &segs, &nsegs, err)) < 0)
        goto done;
    if (from == RW_TIME_MIN || to == RW_TIME_MAX) {
        /* An open end is the archive's first or last packet (of the points asked). */
        int64_t lo = RW_TIME_MAX, hi = RW_TIME_MIN;
        for (size_t i = 0; i < nsegs; i++) {
            size_t p;
            for (p = 0; p < npts && pts[p].id != segs[i].point; p++)
                ;
            if (p == npts || !segs[i].packets)
                continue;
            lo = segs[i].min_ts < lo ? segs[i].min_ts : lo;
            hi = segs[i].max_ts > hi ? segs[i].max_ts : hi;
        }
        if (lo > hi) /* nothing recorded: an empty timeline */
            lo = hi = from == RW_TIME_MIN ? (to == RW_TIME_MAX ? 0 : to - 1) : from;
        if (from == RW_TIME_MIN)
            from = lo > q->from ? lo : q->from;
        if (to == RW_TIME_MAX)
            to = hi < to - 1 ? hi + 1 : to;
        if (from >= to)
            to = from + 1;
    }
    out->step = step;
    out->from = floor_div(from, step) * step;
    out->to = (floor_div(to - 1, step) + 1) * step;
    out->nbuckets = (size_t)((out->to - out->from) / step);
    out->npoints = (int)npts;
    if ((uint64_t)out->nbuckets * (npts ? npts : 1) > AN_BUCKETS_MAX) {
        rc = rw_err(err, RW_EINPUT,
                    "step: the window holds %llu steps of %llds%s; at most %d (steps times "
                    "points): choose a larger step or a shorter window",
                    (unsigned long long)out->nbuckets, (long long)(step / RW_NS_PER_SEC),
                    npts > 1 ? " per point" : "", AN_BUCKETS_MAX);
        goto done;
    }
    out->points = calloc(npts + 1, sizeof *out->points);
    out->packets = calloc(out->nbuckets * npts + 1, sizeof *out->packets);
    out->bytes = calloc(out->nbuckets * npts + 1, sizeof *out->bytes);
    if (!out->points || !out->packets || !out->bytes) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    for (size_t i = 0; i < npts; i++)
        snprintf(out->points[i], sizeof out->points[i], "%s", pts[i].name);
    struct tl c = {.t = out};
    if (q->filter && q->filter[0]) {
        out->from_packets = 1;
        rc = an_scan(ix, out->from, out->to, q->filter, q->points, NULL, 0, take_packet, &c, err);
    } else {
        for (size_t i = 0; i < npts && rc == 0; i++) {
            c.point = (int)i;
            rc = idx_counters(ix, pts[i].id, floor_div(out->from, RW_NS_PER_SEC),
                              floor_div(out->to - 1, RW_NS_PER_SEC) + 1, take_second, &c, err);
        }
    }
done:
    free(pts);
    free(segs);
    if (rc < 0)
        an_timeline_free(out);
    return rc;
}

void an_timeline_free(struct an_timeline *t)
{
    free(t->points);
    free(t->packets);
    free(t->bytes);
    memset(t, 0, sizeof *t);
}
