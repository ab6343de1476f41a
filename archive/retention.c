/* retention.c -- keep the archive under its quota and maximum age, and its
 * file system from filling up.
 *
 * Whole segments go, oldest data first (by newest packet), never an open
 * segment and never one holding packets inside a legal hold. The index
 * forgets a segment (one synced batch) before its file is unlinked, so no
 * catalogue record ever names a file that is gone; a crash in between leaves
 * an orphan file, which recovery removes. With a quota, retention also
 * deletes while the file system has less than the resume level free (see
 * arc_space in cap.h): the operator chose a ring buffer, and a disk shared
 * with other data may fill before the quota is reached. Without a quota
 * nothing is deleted for space: capture pauses instead. */
#include "archive/arc_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

static int held(const struct idx_seg *s, const struct idx_hold *h, size_t nh)
{
    for (size_t i = 0; i < nh; i++)
        if (s->max_ts >= h[i].from && s->min_ts < h[i].to)
            return 1;
    return 0;
}

static int by_age(const void *a, const void *b)
{
    const struct idx_seg *x = a, *y = b;
    if (x->max_ts != y->max_ts)
        return x->max_ts < y->max_ts ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

#define MIB (1ULL << 20)

int arc_space_get(arc_t *a, struct arc_space *sp, char *err)
{
    struct statvfs fs;
    if (statvfs(a->dir, &fs) < 0)
        return rw_err(err, RW_EIO, "archive %s: statvfs: %s", a->dir, strerror(errno));
    sp->size = (uint64_t)fs.f_blocks * fs.f_frsize;
    sp->avail = (uint64_t)fs.f_bavail * fs.f_frsize;
    uint64_t margin = sp->size / 32;
    margin = margin < MIB ? MIB : margin > 256 * MIB ? 256 * MIB : margin;
    /* idx_disk_bytes reads the index directory: not at every segment write,
     * but often when the disk is nearly full and the index grows (its
     * write-ahead log) between reads. */
    int64_t now = rw_mono_ns();
    pthread_mutex_lock(&a->space_mu);
    int64_t every = sp->avail < 2 * (a->ix_bytes + margin) + 64 * MIB ? RW_NS_PER_SEC / 10
                                                                      : RW_NS_PER_SEC;
    if (!a->ix_bytes_at || now - a->ix_bytes_at >= every) {
        a->ix_bytes = idx_disk_bytes(a->ix);
        a->ix_bytes_at = now;
    }
    uint64_t ixb = a->ix_bytes;
    pthread_mutex_unlock(&a->space_mu);
    /* Twice the index: RocksDB writes a flush's table before it deletes the
     * log, and a compaction's output before it deletes the input (the one
     * after an import rewrites all of it). With only the index's own size
     * kept free, a busy capture on a small file system saw free space fall
     * below what retention needs to delete anything. And what RocksDB
     * preallocates for a new log and manifest, which the files' sizes do
     * not show (a 32 MiB file system saw RocksDB fail with 8 MiB free and
     * twice the index kept, when it preallocated 9 + 4 MiB). */
    sp->reserve = 2 * ixb + idx_write_headroom() + margin;
    sp->resume = sp->reserve + margin;
    return 0;
}

#define ARC_SPACE_PASSES 4

int arc_space_ensure(arc_t *a, uint64_t n, int resume, uint64_t *left, char *err)
{
    struct arc_space sp;
    int rc;
    for (int pass = 0;; pass++) {
        if ((rc = arc_space_get(a, &sp, err)) < 0)
            return rc;
        uint64_t need = (resume ? sp.resume : sp.reserve) + n;
        if (sp.avail >= need) {
            if (left)
                *left = sp.avail - need;
            return 0;
        }
        /* A deleted segment that a query still reads keeps its blocks until
         * the query closes it: when a pass frees nothing that shows, the
         * next deletes the next oldest, a few times before giving up. */
        if (pass >= ARC_SPACE_PASSES || (!a->o.quota_bytes && !a->o.quota_pct))
            break;
        if ((rc = arc_retention_run(a, err)) < 0)
            return rc;
        if (rc == 0)
            break;
    }
    char b1[32], b2[32], b3[32], b4[32];
    if (resume)
        return rw_err(err, RW_ENOSPC,
                      "no space left: %s available of %s on its file system; writing "
                      "resumes at %s",
                      rw_size_fmt(sp.avail, b1, sizeof b1), rw_size_fmt(sp.size, b2, sizeof b2),
                      rw_size_fmt(sp.resume, b3, sizeof b3));
    return rw_err(err, RW_ENOSPC,
                  "no space left: %s available of %s on its file system, and writing %s more "
                  "would leave less than the %s rewind keeps free for its index",
                  rw_size_fmt(sp.avail, b1, sizeof b1), rw_size_fmt(sp.size, b2, sizeof b2),
                  rw_size_fmt(n, b4, sizeof b4), rw_size_fmt(sp.reserve, b3, sizeof b3));
}

static uint64_t quota_of(arc_t *a)
{
    struct statvfs fs;
    if (a->o.quota_bytes)
        return a->o.quota_bytes;
    if (a->o.quota_pct && statvfs(a->dir, &fs) == 0)
        return (uint64_t)fs.f_blocks * fs.f_frsize / 100 * a->o.quota_pct;
    return 0;
}

static void remove_file(arc_t *a, const char *rel)
{
    char path[1400];
    snprintf(path, sizeof path, "%s/%s", a->dir, rel);
    unlink(path);
    /* the day directory goes with its last segment */
    char *slash = strrchr(path, '/');
    if (slash) {
        *slash = 0;
        rmdir(path);
    }
}

int arc_retention_run(arc_t *a, char *err)
{
    struct idx_seg *segs = NULL;
    struct idx_hold *holds = NULL;
    size_t nsegs = 0, nholds = 0;
    int rc, deleted = 0;
    uint64_t quota = quota_of(a), short_by = 0, freed = 0;
    struct arc_space sp;
    if (!quota && !a->o.max_age_ns)
        return 0;
    if (quota && arc_space_get(a, &sp, err) == 0 && sp.avail < sp.resume) {
        /* forgetting a segment writes the index, which must not meet a
         * full disk: the operator has to free some space first */
        if (sp.avail < ARC_INDEX_MIN_FREE)
            return rw_err(err, RW_ENOSPC, "no space left: %llu bytes available on the "
                          "file system of %s, too little to update the index and delete "
                          "segments", (unsigned long long)sp.avail, a->dir);
        short_by = sp.resume - sp.avail;
    }
    pthread_mutex_lock(&a->ret_mu);
    if ((rc = idx_seg_all(a->ix, &segs, &nsegs, err)) < 0 ||
        (rc = idx_hold_list(a->ix, &holds, &nholds, err)) < 0)
        goto done;
    uint64_t used = idx_disk_bytes(a->ix);
    int64_t newest = INT64_MIN;
    for (size_t i = 0; i < nsegs; i++) {
        used += segs[i].stored_size;
        if (segs[i].packets && segs[i].max_ts > newest)
            newest = segs[i].max_ts;
    }
    /* Age counts back from the newest packet in the archive: for live
     * capture that is now, and an imported old capture is not deleted just
     * for being old. */
    int64_t cutoff = a->o.max_age_ns && newest != INT64_MIN ? newest - a->o.max_age_ns : INT64_MIN;
    int64_t breach = 0;
    if (a->o.min_horizon_ns && (rc = idx_horizon_breach_get(a->ix, &breach, err)) < 0)
        goto done;
    qsort(segs, nsegs, sizeof *segs, by_age);
    for (size_t i = 0; i < nsegs; i++) {
        struct idx_seg *s = &segs[i];
        int over_quota = quota && (used > quota || freed < short_by);
        int too_old = s->packets && s->max_ts < cutoff;
        if (!over_quota && !too_old)
            continue;
        if (s->state != IDX_SEG_SEALED || held(s, holds, nholds))
            continue;
        if ((rc = idx_seg_delete(a->ix, s, err)) < 0)
            goto done;
        if (a->o.min_horizon_ns && s->packets && s->max_ts > newest - a->o.min_horizon_ns &&
            s->max_ts > breach) {
            /* The law or the operator wants more than the disk keeps. */
            char b1[48];
            breach = s->max_ts;
            if ((rc = idx_horizon_breach_put(a->ix, breach, err)) < 0)
                goto done;
            arc_log(a, "error",
                    "retention: deleted segment %s (last packet %s, %.1f h before the newest) "
                    "to keep the quota: the archive no longer reaches back the --min-horizon of "
                    "%.1f h; add disk, raise --quota or compress sooner",
                    s->path, rw_time_fmt(s->max_ts, b1, sizeof b1),
                    (double)(newest - s->max_ts) / 3.6e12, (double)a->o.min_horizon_ns / 3.6e12);
        }
        remove_file(a, s->path);
        used -= s->stored_size < used ? s->stored_size : used;
        freed += s->stored_size;
        deleted++;
    }
    if (quota && used > quota && !a->quota_warned) {
        a->quota_warned = 1;
        arc_log(a, "warn", "retention: %llu bytes in use over the quota of %llu, and only open or held "
                "segments are left to delete",
                (unsigned long long)used, (unsigned long long)quota);
    } else if (!quota || used <= quota) {
        a->quota_warned = 0;
    }
    rc = deleted;
done:
    pthread_mutex_unlock(&a->ret_mu);
    free(segs);
    free(holds);
    return rc;
}

int arc_packets_since(arc_t *a, const char *point, uint64_t first_seg, uint64_t *packets,
                      char *err)
{
    struct idx_point *pts = NULL;
    struct idx_seg *segs = NULL;
    size_t npts = 0, nsegs = 0;
    int rc;
    *packets = 0;
    if ((rc = idx_point_list(a->ix, &pts, &npts, err)) < 0 ||
        (rc = idx_seg_all(a->ix, &segs, &nsegs, err)) < 0)
        goto done;
    for (size_t i = 0; i < npts; i++) {
        if (strcmp(pts[i].name, point))
            continue;
        for (size_t j = 0; j < nsegs; j++)
            if (segs[j].point == pts[i].id && segs[j].id >= first_seg)
                *packets += segs[j].packets;
    }
done:
    free(pts);
    free(segs);
    return rc;
}
