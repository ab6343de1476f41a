/* live.c -- live capture: a capture thread and a writer.
 *
 * The capture thread only copies packets into a ring buffer; if the writer
 * falls behind and the ring is full, the capture thread waits for room and
 * the kernel's ring (--buffer-size) holds the packets meanwhile; when that
 * is full too, the kernel drops and counts them (kernel drops, in status).
 * The ring has one producer and one consumer and takes no lock per
 * packet: the capture thread publishes its head once per pcap_dispatch()
 * batch and wakes the writer only when it sleeps and a MiB has come since
 * the last wake-up (per-packet signalling cost three times tcpdump's CPU;
 * see publish_()). The writer thread indexes the records and writes them
 * to the point's segment from the ring, and flushes at least every flush
 * interval, so a packet is queryable within about one interval of its
 * capture.
 *
 * When a write fails (disk full, I/O error) the point pauses: the writer
 * has cut its segment back to what the index covers, the capture thread
 * goes on reading libpcap and drops every packet as a queue drop, and the
 * writer retries every CAP_LIVE_RETRY_S seconds (retention, free space, the
 * index taking writes again) until capture can resume by itself. */
#include "capture/cap.h"
#include "archive/arc_int.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

/* The ring between the two threads (8 MiB). Its bytes are pcap records as the
 * segment file holds them, and the writer writes them to the file from
 * here (arc_pw_add_records): a packet is copied once in user space, from
 * libpcap's ring to this one. The kernel's ring (--buffer-size) absorbs
 * bursts; this one only smooths the writer's pauses (a commit, a roll),
 * so it is smaller than the kernel's default. */
#define RING (8u << 20)
#define RING_GUARD 4096u
/* pcap_dispatch() takes at most BATCH packets at a time; RING_REUSE is more
 * than one batch: 32 packets of up to 64 KiB, the largest that GRO or GSO
 * hand to a packet socket (short of BIG TCP). */
#define BATCH 32
#define RING_REUSE (3u << 20)
#define RING_HOT (RING_REUSE + (1u << 20)) /* faulted in at start */
#define RING_STEP (1u << 20)                /* then by the writer when idle */
#define RUN_MAX (512u << 10) /* records handed to the archive at once; ring room comes
                                back this often */
#define WRAP 0xffffffffu

struct cap_live {
    arc_t *a;
    arc_pw_t *pw;
    pcap_t *p;
    char iface[64];
    int nano; /* libpcap delivers nanoseconds */
    pthread_t cap_thr, wr_thr;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    uint8_t *ring;
    /* producer writes at head, consumer reads at tail; phead is the
     * producer's head not yet published (it owns the bytes from head up to
     * phead, across the wrap). 64 bytes apart, so never on one cache line:
     * the two threads write them. (Padding, not _Alignas: the struct comes
     * from calloc.) */
    _Atomic size_t head;
    char pad_head[64 - sizeof(size_t)];
    _Atomic size_t tail;
    char pad_tail[64 - sizeof(size_t)];
    size_t phead;
    size_t unsignalled; /* bytes published since the writer was last woken (the producer's) */
    size_t populated; /* bytes of the ring faulted in (the writer's) */
    atomic_int waiting; /* the writer sleeps (or is about to) on cv */
    atomic_int stop, cap_done, failed;
    atomic_uint_fast64_t queue_drops, kernel_drops;
    char errmsg[RW_ERRSZ];
    /* pause after a failed write; reason and pauses under mu */
    atomic_int paused;
    atomic_uint_fast64_t paused_drops;
    uint64_t pauses;
    char reason[RW_ERRSZ];
};

/* Free bytes for the producer at pos, given the consumer's tail. */
static size_t ring_space(size_t pos, size_t tail)
{
    return pos >= tail ? RING - (pos - tail) - 1 : tail - pos - 1;
}

static void drop_paused(struct cap_live *l, uint64_t n)
{
    atomic_fetch_add(&l->paused_drops, n);
    atomic_fetch_add(&l->queue_drops, n);
}

/* Where a record of need bytes goes in the ring, or -1 when the ring has
 * no room for it now. */
static ptrdiff_t ring_place(struct cap_live *l, size_t need)
{
    size_t pos = l->phead;
    size_t tail = atomic_load_explicit(&l->tail, memory_order_acquire);
    /* Past RING_REUSE with the writer caught up: start again at the front.
     * While the writer keeps up, the ring's working set is then its first
     * RING_REUSE bytes, and the rest is touched (and faulted in) only when
     * a backlog builds. The bytes before the marker must take the batch
     * that follows, for the writer sees the marker only when it is
     * published. (A marker is written past the published head: the writer
     * reads it only once phead moves past it.) */
    if (pos == tail && pos >= RING_REUSE) {
        uint32_t wrap[4] = {0, 0, WRAP, 0};
        memcpy(l->ring + pos, wrap, 16);
        pos = 0;
    }
    /* Records are contiguous: wrap early with a marker if the end is short. */
    if (pos + need + 16 > RING) {
        if (ring_space(pos, tail) < (RING - pos) + need || tail == 0)
            return -1;
        uint32_t wrap[4] = {0, 0, WRAP, 0};
        memcpy(l->ring + pos, wrap, 16);
        pos = 0;
    } else if (ring_space(pos, tail) < need + 16) {
        return -1;
    }
    return (ptrdiff_t)pos;
}

static void publish_(struct cap_live *l, int force);

/* libpcap's callback, once per packet, on the capture thread. h and data
 * point into libpcap's ring and are valid only during this call. This is
 * the one place every captured packet passes: a per-packet consumer that
 * must see packets before the archive does (a tee) goes at the top, and
 * must not wait.
 *
 * When the ring is full the packet waits here, in libpcap's ring, for the
 * writer to make room: the kernel's ring (--buffer-size) goes on filling
 * meanwhile, and only when it too is full does the kernel drop packets,
 * counted as kernel drops. Dropping here at once would waste the kernel's
 * ring, the larger of the two. A paused or failed point drops at once. */
static void on_packet(u_char *arg, const struct pcap_pkthdr *h, const u_char *data)
{
    struct cap_live *l = (struct cap_live *)arg;
    size_t need = 16 + h->caplen;
    ptrdiff_t pos;
    if (atomic_load_explicit(&l->paused, memory_order_relaxed)) {
        drop_paused(l, 1);
        return;
    }
    while ((pos = ring_place(l, need)) < 0) {
        if (atomic_load(&l->stop) || atomic_load(&l->failed) || atomic_load(&l->paused) ||
            need + 32 > RING_REUSE) {
            atomic_fetch_add(&l->queue_drops, 1);
            return;
        }
        publish_(l, 1); /* what this batch holds so far, so that the writer takes it */
        struct timespec ts = {0, 200 * 1000};
        nanosleep(&ts, NULL);
    }
    uint32_t rec[4] = {(uint32_t)h->ts.tv_sec,
                       (uint32_t)(l->nano ? h->ts.tv_usec : h->ts.tv_usec * 1000), h->caplen,
                       h->len};
    memcpy(l->ring + pos, rec, 16);
    memcpy(l->ring + pos + 16, data, h->caplen);
    l->phead = (size_t)pos + need;
    l->unsignalled += need;
}

/* Hand what the last batch added to the writer, and wake it if it sleeps
 * and WAKE_BYTES have come since it was last woken (or force: the capture
 * thread waits for room). A sleeping writer wakes by itself every 100 ms
 * and finds what was published meanwhile: on a slow link a wake-up per
 * libpcap batch of 32 packets is costly (with the flow prefetch in
 * index/segw.c, waking per MiB took a 500 Mbit/s replay of the bench's
 * 200 MiB mix from 0.50-0.55 to 0.43-0.44 CPU s), and a packet still
 * waits far less than a flush interval. Both sides use
 * sequentially consistent accesses of head and waiting, so either the
 * writer sees the new head before it sleeps or we see it waiting. */
#define WAKE_BYTES (1u << 20)
static void publish_(struct cap_live *l, int force)
{
    if (atomic_load(&l->head) == l->phead)
        return;
    atomic_store(&l->head, l->phead);
    if (atomic_load(&l->waiting) && (force || l->unsignalled >= WAKE_BYTES)) {
        l->unsignalled = 0;
        pthread_mutex_lock(&l->mu);
        pthread_cond_signal(&l->cv);
        pthread_mutex_unlock(&l->mu);
    }
}

static void publish(struct cap_live *l) { publish_(l, 0); }

static void *cap_main(void *arg)
{
    struct cap_live *l = arg;
    int64_t last_stats = 0;
    while (!atomic_load(&l->stop)) {
        int r = pcap_dispatch(l->p, BATCH, on_packet, (u_char *)l);
        publish(l);
        if (r == PCAP_ERROR) {
            snprintf(l->errmsg, sizeof l->errmsg, "capture on %s: %s", l->iface, pcap_geterr(l->p));
            atomic_store(&l->failed, 1);
            break;
        }
        int64_t now = rw_mono_ns();
        if (now - last_stats > RW_NS_PER_SEC / 2) {
            struct pcap_stat ps;
            if (pcap_stats(l->p, &ps) == 0)
                atomic_store(&l->kernel_drops, (uint64_t)ps.ps_drop + ps.ps_ifdrop);
            last_stats = now;
        }
    }
    atomic_store(&l->cap_done, 1);
    pthread_mutex_lock(&l->mu);
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

static const char *point_of(struct cap_live *l) { return arc_pw_name(l->pw); }

/* A write failed: pause on errors of the disk or the index, else stop. */
static void on_write_error(struct cap_live *l, int rc, const char *err, int64_t *paused_at)
{
    struct arc_space sp;
    char e2[RW_ERRSZ], b1[32], b2[32];
    if (rc != RW_ENOSPC && rc != RW_EIO && rc != RW_EDB) {
        arc_log(l->a, "error", "capture on %s: %s", l->iface, err);
        snprintf(l->errmsg, sizeof l->errmsg, "%s", err);
        atomic_store(&l->failed, 1);
        atomic_store(&l->stop, 1);
        return;
    }
    pthread_mutex_lock(&l->mu);
    snprintf(l->reason, sizeof l->reason, "%s", err);
    l->pauses++;
    pthread_mutex_unlock(&l->mu);
    atomic_store(&l->paused, 1);
    *paused_at = rw_mono_ns();
    if (arc_space_get(l->a, &sp, e2) < 0)
        sp.avail = sp.size = 0;
    arc_log(l->a, "error", "capture on %s PAUSED (point %s, archive %s, %s free of %s): %s. Packets are "
             "dropped and counted as queue drops until capture resumes by itself: free space on "
             "that file system, or give rewindd a --quota so that retention makes room%s",
             l->iface, point_of(l), arc_dir(l->a), rw_size_fmt(sp.avail, b1, sizeof b1),
             rw_size_fmt(sp.size, b2, sizeof b2), err,
             rc == RW_ENOSPC ? "" : "; if space is not the cause, check the disk (dmesg)");
}

static int try_resume(struct cap_live *l, int64_t paused_at, uint64_t drops_at_pause)
{
    char err[RW_ERRSZ], b1[32];
    struct arc_space sp;
    if (arc_pw_resume(l->pw, err) < 0) {
        pthread_mutex_lock(&l->mu);
        snprintf(l->reason, sizeof l->reason, "%s", err);
        pthread_mutex_unlock(&l->mu);
        return -1;
    }
    if (arc_space_get(l->a, &sp, err) < 0)
        sp.avail = 0;
    atomic_store(&l->paused, 0);
    arc_log(l->a, "info", "capture on %s resumed (point %s) after %.1f s; %s free; %llu packets were dropped "
            "while paused",
            l->iface, point_of(l), (double)(rw_mono_ns() - paused_at) / 1e9,
            rw_size_fmt(sp.avail, b1, sizeof b1),
            (unsigned long long)(atomic_load(&l->paused_drops) - drops_at_pause));
    return 0;
}

#ifndef MADV_POPULATE_WRITE
#define MADV_POPULATE_WRITE 23 /* Linux 5.14 */
#endif

/* While idle, the writer faults in the next part of the ring (see
 * ring_alloc()), so that the capture thread finds it resident when a
 * backlog first reaches it. Faulting a page in does not write it: the
 * capture thread may be using it. */
static void populate_step(struct cap_live *l)
{
    if (l->populated >= RING)
        return;
    size_t n = RING - l->populated < RING_STEP ? RING - l->populated : RING_STEP;
    if (madvise(l->ring + l->populated, n, MADV_POPULATE_WRITE) < 0)
        l->populated = RING; /* before Linux 5.14: pages fault in as used */
    else
        l->populated += n;
}

static void *wr_main(void *arg)
{
    struct cap_live *l = arg;
    char err[RW_ERRSZ];
    int64_t last_drops = 0, paused_at = 0, last_try = 0;
    uint64_t lost_seen = 0, drops_at_pause = 0, kd_stored = UINT64_MAX, qd_stored = UINT64_MAX;
    for (;;) {
        size_t head, tail = atomic_load(&l->tail);
        if (atomic_load(&l->head) == tail && !atomic_load(&l->cap_done)) {
            populate_step(l);
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += 100 * 1000000;
            if (ts.tv_nsec >= RW_NS_PER_SEC) {
                ts.tv_sec++;
                ts.tv_nsec -= RW_NS_PER_SEC;
            }
            pthread_mutex_lock(&l->mu);
            atomic_store(&l->waiting, 1);
            if (atomic_load(&l->head) == tail && !atomic_load(&l->cap_done))
                pthread_cond_timedwait(&l->cv, &l->mu, &ts);
            atomic_store(&l->waiting, 0);
            pthread_mutex_unlock(&l->mu);
        }
        int done = atomic_load(&l->cap_done); /* before head: no packet comes after it */
        head = atomic_load(&l->head);
        int finished = done && head == tail;
        while (tail != head) {
            /* The records up to the head, a wrap marker or RUN_MAX bytes
             * go to the archive in one call, written from the ring. */
            size_t end = tail;
            uint64_t nrec = 0;
            int wrap = 0;
            while (end != head && end - tail < RUN_MAX) {
                uint32_t caplen;
                memcpy(&caplen, l->ring + end + 8, 4);
                if (caplen == WRAP) {
                    wrap = 1;
                    break;
                }
                end += 16 + (size_t)caplen;
                nrec++;
            }
            if (nrec && (atomic_load(&l->paused) || atomic_load(&l->failed))) {
                drop_paused(l, nrec); /* queued before the pause */
            } else if (nrec) {
                uint64_t done = 0;
                int rc = arc_pw_add_records(l->pw, l->ring + tail, end - tail, &done, err);
                if (rc < 0) {
                    drops_at_pause = atomic_load(&l->paused_drops);
                    drop_paused(l, nrec - done); /* after the failure */
                    on_write_error(l, rc, err, &paused_at);
                    last_try = paused_at;
                }
            }
            /* The archive has written or dropped them: their room goes
             * back as we go, not after the whole backlog, for a commit
             * (its fdatasync can take a while) must not hold the
             * backlog's room away from the capture thread. At a marker,
             * say so at once: until then the capture thread has only the
             * bytes before it. */
            tail = wrap ? 0 : end;
            atomic_store(&l->tail, tail);
        }
        atomic_store(&l->tail, tail);
        int rc;
        if (!atomic_load(&l->paused) && (rc = arc_pw_flush(l->pw, 0, err)) < 0) {
            drops_at_pause = atomic_load(&l->paused_drops);
            on_write_error(l, rc, err, &paused_at);
            last_try = paused_at;
        }
        /* packets the writer had taken and a failed write lost */
        uint64_t lost = arc_pw_lost(l->pw);
        if (lost != lost_seen) {
            drop_paused(l, lost - lost_seen);
            lost_seen = lost;
        }
        int64_t now = rw_mono_ns();
        if (atomic_load(&l->paused) && !atomic_load(&l->failed) &&
            now - last_try >= CAP_LIVE_RETRY_S * RW_NS_PER_SEC) {
            last_try = now;
            try_resume(l, paused_at, drops_at_pause);
        }
        /* Drop counters go to the index when they change, never while
         * paused or short of space: an index write must not meet a full
         * disk. */
        uint64_t kd = atomic_load(&l->kernel_drops), qd = atomic_load(&l->queue_drops);
        struct arc_space sp;
        if (!atomic_load(&l->paused) && now - last_drops > RW_NS_PER_SEC &&
            (kd != kd_stored || qd != qd_stored) && arc_space_get(l->a, &sp, err) == 0 &&
            sp.avail >= sp.reserve) {
            if (arc_pw_set_drops(l->pw, kd, qd, err) < 0)
                arc_log(l->a, "warn", "capture on %s: recording drops: %s", l->iface, err);
            else {
                kd_stored = kd;
                qd_stored = qd;
            }
            last_drops = now;
        }
        if (finished)
            break;
    }
    return NULL;
}

/* The ring is on huge pages where the kernel allows, and the part that
 * capture keeps reusing (RING_REUSE and a little past it) is faulted in
 * before capture starts: first touches of 4 KiB pages during capture cost
 * the capture thread a third of its time at full speed (18-30 us each on
 * the VMs we measured), and the kernel dropped packets meanwhile. The rest
 * is faulted in by the writer, RING_STEP at a time, whenever it is idle
 * (populate_step()): zeroing all of it before starting made starting slow
 * (most of an idle daemon's CPU on those VMs), and it is needed only when
 * a backlog builds. A page past the end is left inaccessible, so an
 * overrun faults in every build. */
static uint8_t *ring_alloc(void)
{
    void *p = mmap(NULL, RING + RING_GUARD, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED)
        return NULL;
    if (mprotect((uint8_t *)p + RING, RING_GUARD, PROT_NONE) < 0) {
        munmap(p, RING + RING_GUARD);
        return NULL;
    }
    madvise(p, RING, MADV_HUGEPAGE);
    if (madvise(p, RING_HOT, MADV_POPULATE_WRITE) < 0 && errno == EINVAL)
        memset(p, 0, RING_HOT); /* a kernel before 5.14; on other errors pages fault in as used */
    return p;
}

static void ring_release(uint8_t *ring)
{
    if (ring)
        munmap(ring, RING + RING_GUARD);
}

int cap_iface_check(const char *iface, char *err)
{
    char ebuf[PCAP_ERRBUF_SIZE], names[RW_ERRSZ - 128] = "";
    pcap_if_t *all = NULL;
    size_t n = 0;
    int found = 0;
    if (pcap_findalldevs(&all, ebuf) < 0)
        return 0; /* cannot list: let opening the interface say what is wrong */
    for (pcap_if_t *d = all; d; d = d->next) {
        found |= !strcmp(d->name, iface);
        if (n + strlen(d->name) + 3 < sizeof names)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", d->name);
    }
    pcap_freealldevs(all);
    if (found)
        return 0;
    return rw_err(err, RW_EINPUT, "no interface %s here; capture can open: %s", iface,
                  n ? names : "none (are you root or CAP_NET_RAW?)");
}

int cap_buffer_parse(const char *s, uint64_t *bytes, char *err)
{
    char e2[RW_ERRSZ];
    uint64_t v;
    size_t n = strlen(s);
    if (rw_size_parse(s, &v, e2) < 0)
        return rw_err(err, RW_EINPUT,
                      "--buffer-size '%s': expected a size such as 16M or 1G, or a number of KiB "
                      "as tcpdump -B takes it",
                      s);
    if (n && s[n - 1] >= '0' && s[n - 1] <= '9')
        v = v > UINT64_MAX >> 10 ? UINT64_MAX : v << 10; /* no unit: KiB, as tcpdump -B */
    if (v < CAP_BUFFER_MIN || v > CAP_BUFFER_MAX)
        return rw_err(err, RW_EINPUT, "--buffer-size '%s': must be from 1M to 2G", s);
    *bytes = v;
    return 0;
}

int cap_live_start(arc_t *a, const char *iface, const char *point, cap_live_t **out, char *err)
{
    return cap_live_start_opts(a, iface, point, NULL, out, err);
}

int cap_live_start_opts(arc_t *a, const char *iface, const char *point,
                        const struct cap_live_opts *o, cap_live_t **out, char *err)
{
    uint64_t kbuf = o && o->buffer_bytes ? o->buffer_bytes : CAP_BUFFER_DEFAULT;
    char ebuf[PCAP_ERRBUF_SIZE];
    struct cap_live *l = calloc(1, sizeof *l);
    int rc;
    if (!l || !(l->ring = ring_alloc())) {
        free(l);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    l->populated = RING_HOT;
    l->a = a;
    snprintf(l->iface, sizeof l->iface, "%s", iface);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, NULL);
    if (!(l->p = pcap_create(iface, ebuf))) {
        rc = rw_err(err, RW_EINPUT, "interface %s: %s", iface, ebuf);
        goto fail;
    }
    pcap_set_snaplen(l->p, 262144);
    pcap_set_promisc(l->p, 1);
    pcap_set_timeout(l->p, 100);
    pcap_set_buffer_size(l->p, (int)kbuf);
    l->nano = pcap_set_tstamp_precision(l->p, PCAP_TSTAMP_PRECISION_NANO) == 0;
    int r = pcap_activate(l->p);
    if (r < 0) {
        rc = rw_err(err, r == PCAP_ERROR_NO_SUCH_DEVICE ? RW_EINPUT : RW_EIO,
                    "interface %s: %s%s", iface, pcap_statustostr(r),
                    r == PCAP_ERROR_PERM_DENIED ? " (run as root or give CAP_NET_RAW)" : "");
        if (r == PCAP_ERROR)
            rw_err(err, RW_EIO, "interface %s: %s", iface, pcap_geterr(l->p));
        goto fail;
    }
    l->nano = pcap_get_tstamp_precision(l->p) == PCAP_TSTAMP_PRECISION_NANO;
    if ((rc = arc_pw_open(a, point ? point : iface, pcap_datalink(l->p),
                          (uint32_t)pcap_snapshot(l->p), &l->pw, err)) < 0)
        goto fail;
    if (pthread_create(&l->wr_thr, NULL, wr_main, l) != 0) {
        rc = rw_err(err, RW_EIO, "cannot start writer thread");
        goto fail;
    }
    if (pthread_create(&l->cap_thr, NULL, cap_main, l) != 0) {
        atomic_store(&l->cap_done, 1);
        pthread_join(l->wr_thr, NULL);
        rc = rw_err(err, RW_EIO, "cannot start capture thread");
        goto fail;
    }
    *out = l;
    return 0;
fail:
    if (l->pw) {
        char e2[RW_ERRSZ];
        if (arc_pw_close(l->pw, e2) < 0)
            arc_log(l->a, "warn", "%s", e2);
    }
    if (l->p)
        pcap_close(l->p);
    ring_release(l->ring);
    free(l);
    return rc;
}

void cap_live_state(cap_live_t *l, struct cap_live_state *st)
{
    memset(st, 0, sizeof *st);
    snprintf(st->point, sizeof st->point, "%s", point_of(l));
    st->dlt = pcap_datalink(l->p);
    st->paused = atomic_load(&l->paused);
    st->paused_drops = atomic_load(&l->paused_drops);
    pthread_mutex_lock(&l->mu);
    st->pauses = l->pauses;
    snprintf(st->reason, sizeof st->reason, "%s", l->reason);
    pthread_mutex_unlock(&l->mu);
}

int cap_live_failed(cap_live_t *l, char *err)
{
    if (!atomic_load(&l->failed))
        return 0;
    snprintf(err, RW_ERRSZ, "%s", l->errmsg);
    return 1;
}

int cap_live_stop(cap_live_t *l, char *err)
{
    int rc = 0;
    char e2[RW_ERRSZ];
    if (!l)
        return 0;
    atomic_store(&l->stop, 1);
    pcap_breakloop(l->p);
    pthread_join(l->cap_thr, NULL);
    pthread_join(l->wr_thr, NULL);
    struct pcap_stat ps;
    if (pcap_stats(l->p, &ps) == 0)
        atomic_store(&l->kernel_drops, (uint64_t)ps.ps_drop + ps.ps_ifdrop);
    if (arc_space_ensure(l->a, 0, 0, NULL, e2) < 0)
        arc_log(l->a, "warn", "capture on %s: drop counters not recorded: %s", l->iface, e2);
    else if (arc_pw_set_drops(l->pw, atomic_load(&l->kernel_drops),
                              atomic_load(&l->queue_drops), e2) < 0)
        arc_log(l->a, "warn", "%s", e2);
    if (atomic_load(&l->failed))
        rc = rw_err(err, RW_EIO, "%s", l->errmsg);
    if (arc_pw_close(l->pw, e2) < 0 && rc == 0)
        rc = rw_err(err, RW_EIO, "%s", e2);
    pcap_close(l->p);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    ring_release(l->ring);
    free(l);
    return rc;
}
