/* live.c -- live capture: one thread per interface reads packets from
 * libpcap's TPACKET_V3 ring and hands each to the point writer in
 * libpcap's callback, where it is indexed and copied once, into the
 * writer's buffer (archive/writer.c), which a thread of the writer's
 * writes to the segment. No second ring: a ring between a capture thread
 * and a writer thread cost a copy of every packet, and handing packets
 * across cost more than the copy (issue 17's profile). The thread commits
 * (flushes) at least every flush interval when packets are waiting, so a
 * packet is queryable within about one interval of its capture. Building
 * a commit's index batch takes a while (120-170 ms at 400 000 small
 * packets a second): meanwhile, when the kernel's ring is smaller than
 * DRAIN_BELOW, a second thread, the drainer, takes the packets out of it
 * into a staging buffer (STAGE bytes at most), which the capture thread
 * feeds to the writer once the commit is made. A roll's seal has no
 * drainer: the kernel's ring (--buffer-size) holds the packets meanwhile;
 * when it is full, the kernel drops and counts (kernel drops, in status).
 *
 * When a write fails (disk full, I/O error) the point pauses: the writer
 * has cut its segment back to what the index covers, the thread goes on
 * reading libpcap and drops every packet as a queue drop, and retries
 * every CAP_LIVE_RETRY_S seconds (retention, free space, the index taking
 * writes again) until capture can resume by itself. */
#include "capture/cap.h"
#include "archive/arc_int.h"

#include <errno.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Packets pcap_dispatch() hands over before the loop looks at its timers
 * (flush, drop counters, resuming). The handle does not block: with
 * TPACKET_V3, libpcap's own wait has no timeout (the kernel retires a
 * block only when a packet is in it), so a blocking read after the last
 * packet of a burst would wait, unflushed, for the next one. The loop
 * waits in poll() instead, at most WAIT_MS. */
#define BATCH 256
#define WAIT_MS 100
/* The drainer's staging buffer; it takes a packet only while a packet of
 * the largest size (snaplen) still fits. */
#define STAGE (8u << 20)
#define SNAP 262144
/* A kernel ring this large needs no drainer: it holds a commit's packets
 * by itself (170 ms of 2 Gbit/s is 42 MB), and the 8 MiB staging buffer
 * and the second copy of every packet that waited in it would be spent for
 * nothing (the buffer, once filled, stays in the resident set). */
#define DRAIN_BELOW (64ULL << 20)

struct cap_live {
    arc_t *a;
    arc_pw_t *pw;
    pcap_t *p;
    char iface[64];
    int nano; /* libpcap delivers nanoseconds */
    pthread_t thr;
    pthread_mutex_t mu; /* reason and pauses */
    atomic_int stop, failed;
    atomic_uint_fast64_t queue_drops, kernel_drops;
    char errmsg[RW_ERRSZ];
    /* pause after a failed write */
    atomic_int paused;
    atomic_uint_fast64_t paused_drops;
    uint64_t pauses;
    char reason[RW_ERRSZ];
    int64_t paused_at;
    uint64_t drops_at_pause;
    /* the drainer (see above): it owns the pcap handle while busy */
    pthread_t dr_thr;
    int dr_started, dr_quit, dr_busy; /* under mu */
    atomic_int dr_on;                 /* set under mu; read by the drainer as it goes */
    pthread_cond_t dr_cv;
    int drains;                       /* the kernel's ring is below DRAIN_BELOW */
    uint8_t *stage;                   /* STAGE bytes (mapped on first use), pcap records */
    size_t stage_len;
};

static void drop_paused(struct cap_live *l, uint64_t n)
{
    atomic_fetch_add(&l->paused_drops, n);
    atomic_fetch_add(&l->queue_drops, n);
}

static const char *point_of(struct cap_live *l) { return arc_pw_name(l->pw); }

/* A write failed: pause on errors of the disk or the index, else stop. */
static void on_write_error(struct cap_live *l, int rc, const char *err)
{
    struct arc_space sp;
    char e2[RW_ERRSZ], b1[32], b2[32];
    if (rc != RW_ENOSPC && rc != RW_EIO && rc != RW_EDB) {
        arc_log(l->a, "error", "capture on %s: %s", l->iface, err);
        snprintf(l->errmsg, sizeof l->errmsg, "%s", err);
        atomic_store(&l->failed, 1);
        atomic_store(&l->stop, 1);
        pcap_breakloop(l->p);
        return;
    }
    pthread_mutex_lock(&l->mu);
    snprintf(l->reason, sizeof l->reason, "%s", err);
    l->pauses++;
    pthread_mutex_unlock(&l->mu);
    l->drops_at_pause = atomic_load(&l->paused_drops);
    atomic_store(&l->paused, 1);
    l->paused_at = rw_mono_ns();
    if (arc_space_get(l->a, &sp, e2) < 0)
        sp.avail = sp.size = 0;
    arc_log(l->a, "error", "capture on %s PAUSED (point %s, archive %s, %s free of %s): %s. Packets are "
             "dropped and counted as queue drops until capture resumes by itself: free space on "
             "that file system, or give rewindd a --quota so that retention makes room%s",
             l->iface, point_of(l), arc_dir(l->a), rw_size_fmt(sp.avail, b1, sizeof b1),
             rw_size_fmt(sp.size, b2, sizeof b2), err,
             rc == RW_ENOSPC ? "" : "; if space is not the cause, check the disk (dmesg)");
}

static int try_resume(struct cap_live *l)
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
            l->iface, point_of(l), (double)(rw_mono_ns() - l->paused_at) / 1e9,
            rw_size_fmt(sp.avail, b1, sizeof b1),
            (unsigned long long)(atomic_load(&l->paused_drops) - l->drops_at_pause));
    return 0;
}

/* libpcap's callback, once per packet. h and data point into libpcap's
 * ring and are valid only during this call: the writer copies the packet
 * into its buffer. Every captured packet passes here; a per-packet
 * consumer that must see packets as they are stored (a tee) hangs on the
 * archive's tap (arc_set_tap), which the writer calls. A paused point
 * drops at once. */
static void on_packet(u_char *arg, const struct pcap_pkthdr *h, const u_char *data)
{
    struct cap_live *l = (struct cap_live *)arg;
    char err[RW_ERRSZ];
    if (atomic_load_explicit(&l->paused, memory_order_relaxed) ||
        atomic_load_explicit(&l->failed, memory_order_relaxed)) {
        drop_paused(l, 1);
        return;
    }
    int rc = arc_pw_add(l->pw, (uint32_t)h->ts.tv_sec,
                        (uint32_t)(l->nano ? h->ts.tv_usec : h->ts.tv_usec * 1000), h->caplen,
                        h->len, data, err);
    if (rc < 0) {
        /* this packet, if it was lost, is in arc_pw_lost() */
        on_write_error(l, rc, err);
    }
}

/* The drainer's callback: the packet as a pcap record in the staging
 * buffer (the caller checked the room). */
static void on_stage(u_char *arg, const struct pcap_pkthdr *h, const u_char *data)
{
    struct cap_live *l = (struct cap_live *)arg;
    uint32_t rec[4] = {(uint32_t)h->ts.tv_sec,
                       (uint32_t)(l->nano ? h->ts.tv_usec : h->ts.tv_usec * 1000), h->caplen,
                       h->len};
    memcpy(l->stage + l->stage_len, rec, 16);
    memcpy(l->stage + l->stage_len + 16, data, h->caplen);
    l->stage_len += 16 + (size_t)h->caplen;
}

static void *dr_main(void *arg)
{
    struct cap_live *l = arg;
    struct pollfd pfd = {pcap_get_selectable_fd(l->p), POLLIN, 0};
    pthread_mutex_lock(&l->mu);
    for (;;) {
        /* after a failed read, idle until the capture thread has seen it */
        while ((!atomic_load(&l->dr_on) || atomic_load(&l->failed)) && !l->dr_quit)
            pthread_cond_wait(&l->dr_cv, &l->mu);
        if (l->dr_quit)
            break;
        l->dr_busy = 1;
        pthread_mutex_unlock(&l->mu);
        while (atomic_load(&l->dr_on)) {
            int r = 0;
            /* one packet at a time: each must fit whatever its size */
            if (STAGE - l->stage_len >= 16 + SNAP)
                r = pcap_dispatch(l->p, 1, on_stage, (u_char *)l);
            if (r == PCAP_ERROR) {
                snprintf(l->errmsg, sizeof l->errmsg, "capture on %s: %s", l->iface,
                         pcap_geterr(l->p));
                atomic_store(&l->failed, 1);
                break;
            }
            if (r == 0)
                (void)poll(&pfd, 1, 1); /* nothing ready, or no room: the kernel's ring holds */
        }
        pthread_mutex_lock(&l->mu);
        l->dr_busy = 0;
        pthread_cond_broadcast(&l->dr_cv);
    }
    pthread_mutex_unlock(&l->mu);
    return NULL;
}

/* Commit, with the drainer (below DRAIN_BELOW) emptying the kernel's ring
 * meanwhile, then hand what it staged to the writer. */
static void flush_draining(struct cap_live *l)
{
    char err[RW_ERRSZ];
    int rc;
    if (l->drains && !l->stage) {
        void *m = mmap(NULL, STAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
        l->stage = m == MAP_FAILED ? NULL : m;
    }
    if (l->stage && !l->dr_started)
        l->dr_started = pthread_create(&l->dr_thr, NULL, dr_main, l) == 0;
    int drain = l->stage && l->dr_started;
    if (drain) {
        pthread_mutex_lock(&l->mu);
        atomic_store(&l->dr_on, 1);
        pthread_cond_broadcast(&l->dr_cv);
        pthread_mutex_unlock(&l->mu);
    }
    rc = arc_pw_flush(l->pw, 1, err);
    if (drain) {
        pthread_mutex_lock(&l->mu);
        atomic_store(&l->dr_on, 0);
        while (l->dr_busy)
            pthread_cond_wait(&l->dr_cv, &l->mu);
        pthread_mutex_unlock(&l->mu);
    }
    if (rc < 0)
        on_write_error(l, rc, err);
    /* the staged packets, in order, before any still in the kernel's ring */
    for (size_t off = 0; off < l->stage_len;) {
        uint32_t rec[4];
        memcpy(rec, l->stage + off, 16);
        struct pcap_pkthdr h = {.caplen = rec[2], .len = rec[3]};
        h.ts.tv_sec = rec[0];
        h.ts.tv_usec = l->nano ? rec[1] : rec[1] / 1000;
        on_packet((u_char *)l, &h, l->stage + off + 16);
        off += 16 + (size_t)rec[2];
    }
    l->stage_len = 0;
}

static void *cap_main(void *arg)
{
    struct cap_live *l = arg;
    char err[RW_ERRSZ];
    int64_t last_stats = 0, last_drops = 0, last_try = 0;
    uint64_t lost_seen = 0, kd_stored = UINT64_MAX, qd_stored = UINT64_MAX;
    struct pollfd pfd = {pcap_get_selectable_fd(l->p), POLLIN, 0};
    for (;;) {
        int r = atomic_load(&l->stop) ? 0 : pcap_dispatch(l->p, BATCH, on_packet, (u_char *)l);
        if (r == 0 && !atomic_load(&l->stop))
            (void)poll(&pfd, 1, WAIT_MS); /* until a block is ready, or the timers are due */
        if (r == PCAP_ERROR) {
            snprintf(l->errmsg, sizeof l->errmsg, "capture on %s: %s", l->iface, pcap_geterr(l->p));
            atomic_store(&l->failed, 1);
        }
        int last = atomic_load(&l->stop) || atomic_load(&l->failed);
        if (!atomic_load(&l->paused) && arc_pw_flush_due(l->pw))
            flush_draining(l);
        /* packets the writer had taken and a failed write lost */
        uint64_t lost = arc_pw_lost(l->pw);
        if (lost != lost_seen) {
            drop_paused(l, lost - lost_seen);
            lost_seen = lost;
        }
        int64_t now = rw_mono_ns();
        if (now - last_stats > RW_NS_PER_SEC / 2) {
            struct pcap_stat ps;
            if (pcap_stats(l->p, &ps) == 0)
                atomic_store(&l->kernel_drops, (uint64_t)ps.ps_drop + ps.ps_ifdrop);
            last_stats = now;
        }
        if (atomic_load(&l->paused) && !atomic_load(&l->failed) && !last &&
            now - last_try >= CAP_LIVE_RETRY_S * RW_NS_PER_SEC &&
            now - l->paused_at >= CAP_LIVE_RETRY_S * RW_NS_PER_SEC) {
            last_try = now;
            try_resume(l);
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
        if (last)
            break;
    }
    return NULL;
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
    if (!l)
        return rw_err(err, RW_ENOMEM, "out of memory");
    l->a = a;
    snprintf(l->iface, sizeof l->iface, "%s", iface);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->dr_cv, NULL);
    if (!(l->p = pcap_create(iface, ebuf))) {
        rc = rw_err(err, RW_EINPUT, "interface %s: %s", iface, ebuf);
        goto fail;
    }
    pcap_set_snaplen(l->p, 262144);
    pcap_set_promisc(l->p, 1);
    pcap_set_timeout(l->p, 100);
    pcap_set_buffer_size(l->p, (int)kbuf);
    l->drains = kbuf < DRAIN_BELOW;
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
    if (pcap_setnonblock(l->p, 1, ebuf) < 0 || pcap_get_selectable_fd(l->p) < 0) {
        rc = rw_err(err, RW_EIO, "interface %s: cannot read it without blocking: %s", iface, ebuf);
        goto fail;
    }
    if ((rc = arc_pw_open(a, point ? point : iface, pcap_datalink(l->p),
                          (uint32_t)pcap_snapshot(l->p), &l->pw, err)) < 0)
        goto fail;
    arc_pw_set_manual_flush(l->pw, 1); /* cap_main commits, with the drainer */
    if (pthread_create(&l->thr, NULL, cap_main, l) != 0) {
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
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->dr_cv);
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
    pthread_join(l->thr, NULL);
    if (l->dr_started) {
        pthread_mutex_lock(&l->mu);
        l->dr_quit = 1;
        pthread_cond_broadcast(&l->dr_cv);
        pthread_mutex_unlock(&l->mu);
        pthread_join(l->dr_thr, NULL);
    }
    if (l->stage)
        munmap(l->stage, STAGE);
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
    pthread_cond_destroy(&l->dr_cv);
    free(l);
    return rc;
}
