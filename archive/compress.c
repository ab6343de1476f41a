/* compress.c -- rewrite old sealed segments as lz4 frames (archive/segfile.h).
 *
 * Order of a swap, so that a crash at any point leaves one file that the
 * catalogue names and, at worst, an orphan that recovery removes:
 *   1. NAME.pcap.lz4.tmp written and fdatasync'ed
 *   2. renamed to NAME.pcap.lz4, directory synced
 *   3. catalogue record names NAME.pcap.lz4 (one synced write)
 *   4. NAME.pcap unlinked
 * Readers that opened NAME.pcap before step 4 keep reading it; those that
 * open it later find it gone and ask the catalogue again (query.c). */
#include "archive/arc_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/segfile.h"

static void sync_dir_of(const char *path)
{
    char d[1400];
    snprintf(d, sizeof d, "%s", path);
    char *slash = strrchr(d, '/');
    if (!slash)
        return;
    *slash = 0;
    rw_fsync_dir(d);
}

/* 1 compressed, 0 skipped (gone meanwhile), <0 error. */
static int compress_one(arc_t *a, const struct idx_seg *s, uint64_t *saved, char *err)
{
    char src[1400], dst[1400], tmp[1420], rel[sizeof s->path];
    uint64_t stored = 0;
    int rc;
    if (snprintf(rel, sizeof rel, "%s.lz4", s->path) >= (int)sizeof rel)
        return rw_err(err, RW_ESTATE, "segment path too long: %s", s->path);
    snprintf(src, sizeof src, "%s/%s", a->dir, s->path);
    snprintf(dst, sizeof dst, "%s/%s", a->dir, rel);
    snprintf(tmp, sizeof tmp, "%s.tmp", dst);
    if ((rc = segf_compress(src, tmp, &stored, err)) < 0)
        return rc;
    if (rename(tmp, dst) < 0) {
        rc = rw_err(err, RW_EIO, "%s: rename: %s", tmp, strerror(errno));
        unlink(tmp);
        return rc;
    }
    sync_dir_of(dst);
    /* Retention may have deleted the segment while it was being compressed:
     * swap under its lock, and only if the record is still the one read. */
    pthread_mutex_lock(&a->ret_mu);
    struct idx_seg now;
    rc = idx_seg_get(a->ix, s->id, &now, err);
    if (rc == 1 && (strcmp(now.path, s->path) != 0 || now.state != IDX_SEG_SEALED))
        rc = 0;
    if (rc == 1 && (rc = idx_seg_set_compressed(a->ix, &now, rel, stored, err)) == 0)
        rc = 1;
    pthread_mutex_unlock(&a->ret_mu);
    if (rc == 1) {
        unlink(src);
        *saved += s->file_size > stored ? s->file_size - stored : 0;
    } else {
        unlink(dst);
    }
    return rc;
}

int arc_compress_run(arc_t *a, const volatile int *stop, struct arc_compress_stats *st,
                     char *err)
{
    struct idx_seg *segs = NULL;
    size_t n = 0;
    struct arc_compress_stats local = {0};
    int rc;
    if (!st)
        st = &local;
    if (a->o.compress_after_ns == INT64_MAX)
        return 0;
    if ((rc = idx_seg_all(a->ix, &segs, &n, err)) < 0)
        return rc;
    int64_t now = rw_now_ns();
    for (size_t i = 0; i < n && !(stop && *stop); i++) {
        const struct idx_seg *s = &segs[i];
        char path[1400];
        struct stat sb;
        if (s->state != IDX_SEG_SEALED || s->compressed || s->packets == 0)
            continue;
        snprintf(path, sizeof path, "%s/%s", a->dir, s->path);
        /* The file's mtime is when its last record was written: the seal. */
        if (stat(path, &sb) < 0 ||
            now - ((int64_t)sb.st_mtim.tv_sec * RW_NS_PER_SEC + sb.st_mtim.tv_nsec) <
                a->o.compress_after_ns)
            continue;
        /* The compressed copy exists beside the original for a moment: never
         * let it eat into the space kept free for the index (cap.h). */
        struct arc_space sp;
        if (arc_space_get(a, &sp, err) == 0 && sp.avail < sp.reserve + s->file_size + 4096)
            continue;
        rc = compress_one(a, s, &st->bytes_saved, err);
        if (rc < 0)
            break;
        st->segments += (uint64_t)rc;
        st->bytes_in += rc ? s->file_size : 0;
        rc = 0;
    }
    free(segs);
    return rc;
}

/* ---------- the daemon's compressor thread ---------- */

struct arc_compressor {
    arc_t *a;
    pthread_t thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    volatile int stop;
    int failing;
};

static void *compressor_main(void *arg)
{
    arc_compressor_t *c = arg;
    char err[RW_ERRSZ];
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += 5;
        pthread_mutex_lock(&c->mu);
        while (!c->stop && pthread_cond_timedwait(&c->cv, &c->mu, &until) == 0)
            ;
        int stop = c->stop;
        pthread_mutex_unlock(&c->mu);
        if (stop)
            break;
        struct arc_compress_stats st = {0};
        if (arc_compress_run(c->a, &c->stop, &st, err) < 0) {
            /* Once per run of failures: a full disk would say so every 5 s. */
            if (!c->failing)
                arc_log(c->a, "warn", "compressing segments: %s; the segments stay uncompressed and are "
                        "retried", err);
            c->failing = 1;
        } else {
            if (c->failing)
                arc_log(c->a, "info", "compressing segments works again");
            c->failing = 0;
        }
        if (st.segments)
            arc_log(c->a, "info", "compressed %llu segments: %.1f MiB saved",
                    (unsigned long long)st.segments, st.bytes_saved / 1048576.0);
    }
    return NULL;
}

int arc_compressor_start(arc_t *a, arc_compressor_t **out, char *err)
{
    arc_compressor_t *c = calloc(1, sizeof *c);
    if (!c)
        return rw_err(err, RW_ENOMEM, "out of memory");
    c->a = a;
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    if (pthread_create(&c->thr, NULL, compressor_main, c) != 0) {
        free(c);
        return rw_err(err, RW_ENOMEM, "cannot start the compressor thread");
    }
    *out = c;
    return 0;
}

void arc_compressor_stop(arc_compressor_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&c->mu);
    c->stop = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thr, NULL);
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    free(c);
}
