/* retention.c -- keep the archive under its quota and maximum age.
 *
 * Whole segments go, oldest data first (by newest packet), never an open
 * segment and never one holding packets inside a legal hold. The index
 * forgets a segment (one synced batch) before its file is unlinked, so no
 * catalogue record ever names a file that is gone; a crash in between leaves
 * an orphan file, which recovery removes. */
#include "capture/cap_int.h"

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

static uint64_t quota_of(cap_arch_t *a)
{
    struct statvfs fs;
    if (a->o.quota_bytes)
        return a->o.quota_bytes;
    if (a->o.quota_pct && statvfs(a->dir, &fs) == 0)
        return (uint64_t)fs.f_blocks * fs.f_frsize / 100 * a->o.quota_pct;
    return 0;
}

static void remove_file(cap_arch_t *a, const char *rel)
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

int cap_retention_run(cap_arch_t *a, char *err)
{
    struct idx_seg *segs = NULL;
    struct idx_hold *holds = NULL;
    size_t nsegs = 0, nholds = 0;
    int rc, deleted = 0;
    uint64_t quota = quota_of(a);
    if (!quota && !a->o.max_age_ns)
        return 0;
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
    qsort(segs, nsegs, sizeof *segs, by_age);
    for (size_t i = 0; i < nsegs; i++) {
        struct idx_seg *s = &segs[i];
        int over_quota = quota && used > quota, too_old = s->packets && s->max_ts < cutoff;
        if (!over_quota && !too_old)
            continue;
        if (s->state != IDX_SEG_SEALED || held(s, holds, nholds))
            continue;
        if ((rc = idx_seg_delete(a->ix, s, err)) < 0)
            goto done;
        remove_file(a, s->path);
        used -= s->stored_size < used ? s->stored_size : used;
        deleted++;
    }
    if (quota && used > quota && !a->quota_warned) {
        a->quota_warned = 1;
        rw_warn("retention: %llu bytes in use over the quota of %llu, and only open or held "
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
