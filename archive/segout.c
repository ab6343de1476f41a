/* segout.c -- the bytes of an open segment on their way to its file (see
 * segout.h).
 *
 * The buffer being filled maps to the file from boff, a multiple of BLK
 * while O_DIRECT is used: its bytes [0, bstart) are already in the file
 * (written through the page cache: they are never written again), and
 * [bstart, blen) wait. Pushing writes the rest of a partly written first
 * block through the page cache, hands the whole blocks after it to the
 * thread, and keeps what is left of a block for the next push; at a flush
 * (all) that too is written through the page cache and becomes the next
 * buffer's partly written first block.
 *
 * Why the flush waits for the thread before writing the tail: a direct
 * write in flight is past the file's end until it completes; a page-cache
 * write beyond it would move the end past it, and a reader's read-ahead
 * could then cache the hole's zeros, which the direct write's invalidation
 * may fail to drop (the kernel warns of a "stale page cache" then). Past
 * the end, nothing is cached. */
#include "archive/segout.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/rw.h"

#define BLK 4096u /* O_DIRECT's alignment of offsets, lengths and memory */
#define NBUF 4    /* one filling, up to three on their way */

struct job {
    int buf;
    size_t from, len;
    uint64_t off;
};

struct segout {
    uint8_t *mem; /* NBUF buffers of SEGOUT_BUF */
    int cur;
    uint64_t boff;
    size_t bstart, blen;
    int fd, dfd, sync;
    char path[1400];
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t cv; /* a job queued or done, a buffer free */
    struct job q[NBUF];
    unsigned qhead, qn;
    int busy;          /* the thread is writing a job */
    int freeb[NBUF];
    int nfree;
    int err;           /* errno of a failed write, until the next file */
    int nodirect;      /* the file system refused a direct write: page cache from now on */
    int stop;
};

static uint8_t *bufp(segout_t *o, int i) { return o->mem + (size_t)i * SEGOUT_BUF; }

static int pwrite_all(int fd, const uint8_t *p, size_t n, uint64_t off)
{
    while (n) {
        ssize_t w = pwrite(fd, p, n, (off_t)off);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (w == 0) {
            errno = ENOSPC;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        off += (uint64_t)w;
    }
    return 0;
}

static void *out_main(void *arg)
{
    segout_t *o = arg;
    pthread_mutex_lock(&o->mu);
    for (;;) {
        while (!o->qn && !o->stop)
            pthread_cond_wait(&o->cv, &o->mu);
        if (!o->qn)
            break;
        struct job j = o->q[o->qhead];
        o->qhead = (o->qhead + 1) % NBUF;
        o->qn--;
        o->busy = 1;
        int failed = o->err, fd = o->fd, dfd = o->dfd, e = 0;
        pthread_mutex_unlock(&o->mu);
        if (!failed && pwrite_all(dfd, bufp(o, j.buf) + j.from, j.len, j.off) < 0) {
            e = errno;
            /* A file system that opens O_DIRECT but refuses the write:
             * this job and the rest go through the page cache. */
            if (e == EINVAL && pwrite_all(fd, bufp(o, j.buf) + j.from, j.len, j.off) == 0)
                e = -1;
            else if (e == EINVAL)
                e = errno;
        }
        pthread_mutex_lock(&o->mu);
        if (e == -1)
            o->nodirect = 1;
        else if (e && !o->err)
            o->err = e;
        o->busy = 0;
        o->freeb[o->nfree++] = j.buf;
        pthread_cond_broadcast(&o->cv);
    }
    pthread_mutex_unlock(&o->mu);
    return NULL;
}

#define MEM_BYTES ((size_t)NBUF * SEGOUT_BUF)
#define HUGE_PAGE (2u << 20)

/* The buffers, in one huge page where the kernel has one to give: a
 * direct write pins its buffer's pages (get_user_pages) each time, 128
 * small pages for 512 KiB against one huge page; and the copy of every
 * packet into them misses the TLB less. Aligned to the huge page by
 * mapping twice as much and unmapping the ends. */
static uint8_t *mem_new(void)
{
    size_t span = MEM_BYTES + HUGE_PAGE;
    uint8_t *m = mmap(NULL, span, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return NULL;
    uintptr_t at = ((uintptr_t)m + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uint8_t *a = (uint8_t *)at;
    if (a > m)
        munmap(m, (size_t)(a - m));
    if (m + span > a + MEM_BYTES)
        munmap(a + MEM_BYTES, (size_t)(m + span - (a + MEM_BYTES)));
    madvise(a, MEM_BYTES, MADV_HUGEPAGE); /* advice: small pages if refused */
    return a;
}

segout_t *segout_new(void)
{
    _Static_assert(MEM_BYTES % BLK == 0, "buffers are whole blocks");
    segout_t *o = calloc(1, sizeof *o);
    if (!o)
        return NULL;
    if (!(o->mem = mem_new())) {
        free(o);
        return NULL;
    }
    o->fd = o->dfd = -1;
    for (int i = 1; i < NBUF; i++)
        o->freeb[o->nfree++] = i;
    o->cur = 0;
    pthread_mutex_init(&o->mu, NULL);
    pthread_cond_init(&o->cv, NULL);
    if (pthread_create(&o->th, NULL, out_main, o) != 0) {
        pthread_mutex_destroy(&o->mu);
        pthread_cond_destroy(&o->cv);
        munmap(o->mem, MEM_BYTES);
        free(o);
        return NULL;
    }
    return o;
}

/* Wait until the thread has written every job; its error, if any. */
static int wait_idle(segout_t *o)
{
    pthread_mutex_lock(&o->mu);
    while (o->qn || o->busy)
        pthread_cond_wait(&o->cv, &o->mu);
    int e = o->err;
    pthread_mutex_unlock(&o->mu);
    return e;
}

void segout_free(segout_t *o)
{
    if (!o)
        return;
    segout_stop(o);
    pthread_mutex_lock(&o->mu);
    o->stop = 1;
    pthread_cond_broadcast(&o->cv);
    pthread_mutex_unlock(&o->mu);
    pthread_join(o->th, NULL);
    pthread_mutex_destroy(&o->mu);
    pthread_cond_destroy(&o->cv);
    munmap(o->mem, MEM_BYTES);
    free(o);
}

void segout_start(segout_t *o, int fd, const char *path, int sync)
{
    segout_stop(o);
    o->fd = fd;
    o->sync = sync;
    snprintf(o->path, sizeof o->path, "%s", path);
    o->dfd = open(path, O_WRONLY | O_DIRECT | O_CLOEXEC); /* -1 (tmpfs: EINVAL): page cache */
    pthread_mutex_lock(&o->mu);
    o->err = 0;
    o->nodirect = 0;
    pthread_mutex_unlock(&o->mu);
}

void segout_stop(segout_t *o)
{
    (void)wait_idle(o);
    if (o->dfd >= 0)
        close(o->dfd);
    o->fd = o->dfd = -1;
    o->boff = o->bstart = o->blen = 0;
}

uint64_t segout_size(const segout_t *o) { return o->boff + o->blen; }
size_t segout_pending(const segout_t *o) { return o->blen - o->bstart; }
size_t segout_room(const segout_t *o) { return SEGOUT_BUF - o->blen; }

void segout_put(segout_t *o, const void *a, size_t na, const void *b, size_t nb)
{
    uint8_t *p = bufp(o, o->cur) + o->blen;
    memcpy(p, a, na);
    if (nb)
        memcpy(p + na, b, nb);
    o->blen += na + nb;
}

static int fail(segout_t *o, int e, char *err)
{
    return rw_err(err, e == ENOSPC || e == EDQUOT ? RW_ENOSPC : RW_EIO, "writing segment %s: %s",
                  o->path, strerror(e));
}

/* A page-cache write of the file's bytes [off, off + n). */
static int cached_write(segout_t *o, const uint8_t *p, size_t n, uint64_t off, char *err)
{
    if (n == 0)
        return 0;
    if (pwrite_all(o->fd, p, n, off) < 0)
        return fail(o, errno, err);
    /* Start writeback now, without waiting, so the fdatasync() at the
     * next commit finds most of the bytes already on disk. */
    if (o->sync)
        sync_file_range(o->fd, (off_t)off, (off_t)n, SYNC_FILE_RANGE_WRITE);
    return 0;
}

int segout_drain(segout_t *o, char *err)
{
    int e = wait_idle(o);
    return e ? fail(o, e, err) : 0;
}

int segout_push(segout_t *o, int all, char *err)
{
    uint8_t *b = bufp(o, o->cur);
    int rc;
    pthread_mutex_lock(&o->mu);
    int e = o->err, direct = o->dfd >= 0 && !o->nodirect;
    pthread_mutex_unlock(&o->mu);
    if (e)
        return fail(o, e, err);
    if (o->blen == o->bstart)
        return 0;
    if (!direct) {
        if ((rc = cached_write(o, b + o->bstart, o->blen - o->bstart, o->boff + o->bstart, err)) < 0)
            return rc;
        o->boff += o->blen;
        o->bstart = o->blen = 0;
        return 0;
    }
    /* the rest of a partly written first block: page cache */
    size_t a = o->bstart ? (o->blen < BLK ? o->blen : BLK) : 0;
    if (a > o->bstart &&
        (rc = cached_write(o, b + o->bstart, a - o->bstart, o->boff + o->bstart, err)) < 0)
        return rc;
    /* whole blocks after it: direct, on the thread */
    size_t d0 = o->bstart ? BLK : 0, d1 = o->blen & ~(size_t)(BLK - 1);
    size_t done = a > d1 ? a : d1; /* bytes [0, done) written or on their way */
    int queued = d1 > d0;
    if (queued) {
        pthread_mutex_lock(&o->mu);
        o->q[(o->qhead + o->qn) % NBUF] = (struct job){o->cur, d0, d1 - d0, o->boff + d0};
        o->qn++;
        pthread_cond_broadcast(&o->cv);
        while (!o->nfree)
            pthread_cond_wait(&o->cv, &o->mu);
        int nb = o->freeb[--o->nfree];
        pthread_mutex_unlock(&o->mu);
        o->cur = nb;
    }
    if (all && o->blen > done) {
        /* the tail: page cache, once no direct write is in flight below it */
        if ((rc = segout_drain(o, err)) < 0 ||
            (rc = cached_write(o, b + done, o->blen - done, o->boff + done, err)) < 0)
            return rc;
        done = o->blen;
    }
    /* The new buffer starts at the block of the first byte not written:
     * [done, blen) moves to [done - shift, blen - shift). */
    size_t shift = done & ~(size_t)(BLK - 1);
    uint8_t *nbp = bufp(o, o->cur);
    if (o->blen > done && (queued || shift))
        memmove(nbp + (done - shift), b + done, o->blen - done);
    o->boff += shift;
    o->bstart = done - shift;
    o->blen -= shift;
    return 0;
}

int segout_write_big(segout_t *o, const void *a, size_t na, const void *b, size_t nb, char *err)
{
    int rc;
    if ((rc = segout_push(o, 1, err)) < 0 || (rc = segout_drain(o, err)) < 0)
        return rc;
    uint64_t at = segout_size(o);
    if ((rc = cached_write(o, a, na, at, err)) < 0 || (rc = cached_write(o, b, nb, at + na, err)) < 0)
        return rc;
    uint64_t end = at + na + nb;
    /* Nothing is pending: the next byte's block is partly written (or
     * starts at end). */
    o->boff = end & ~(uint64_t)(BLK - 1);
    o->bstart = o->blen = (size_t)(end - o->boff);
    return 0;
}
