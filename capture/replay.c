/* replay.c -- packets out of an interface: a libpcap handle that only
 * sends, the pacing of a replay (recorded pace, scaled, fixed rate, top
 * speed) on absolute monotonic deadlines, and the loop that joins a capture
 * reader to both (rewind replay). */
#include "capture/cap.h"

#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sched.h>
#include <sys/prctl.h>
#include <time.h>

/* ---- the sender ---- */

struct cap_sender {
    pcap_t *p;
    int dlt;
    char iface[IF_NAMESIZE + 1];
};

/* "no interface X here; there are: lo, eth0" (if_nameindex: the interfaces
 * of this network namespace, whatever libpcap may open). */
static int no_such_iface(const char *iface, char *err)
{
    char names[RW_ERRSZ - 128] = "";
    size_t n = 0;
    struct if_nameindex *all = if_nameindex();
    for (struct if_nameindex *i = all; i && i->if_name; i++)
        if (n + strlen(i->if_name) + 3 < sizeof names)
            n += (size_t)snprintf(names + n, sizeof names - n, "%s%s", n ? ", " : "", i->if_name);
    if (all)
        if_freenameindex(all);
    return rw_err(err, RW_EINPUT, "no interface '%s' here; there are: %s", iface,
                  n ? names : "none");
}

int cap_sender_open(const char *iface, cap_sender_t **out, char *err)
{
    char ebuf[PCAP_ERRBUF_SIZE] = "";
    cap_sender_t *s;
    int rc;
    *out = NULL;
    if (!iface || !*iface)
        return rw_err(err, RW_EINPUT, "no interface named");
    if (strlen(iface) > IF_NAMESIZE - 1 || if_nametoindex(iface) == 0)
        return no_such_iface(iface, err);
    if (!(s = calloc(1, sizeof *s)))
        return rw_err(err, RW_ENOMEM, "out of memory");
    snprintf(s->iface, sizeof s->iface, "%s", iface);
    if (!(s->p = pcap_create(iface, ebuf))) {
        rc = rw_err(err, RW_EIO, "interface %s: %s", iface, ebuf);
        goto fail;
    }
    /* It sends: a small buffer, and (below) a filter that keeps nothing, so
     * the kernel queues none of the interface's traffic for us. */
    pcap_set_snaplen(s->p, 64);
    pcap_set_buffer_size(s->p, 64 << 10);
    pcap_set_timeout(s->p, 1000);
    int a = pcap_activate(s->p);
    if (a < 0) {
        const char *why = pcap_geterr(s->p);
        if (a == PCAP_ERROR_NO_SUCH_DEVICE)
            rc = no_such_iface(iface, err);
        else if (a == PCAP_ERROR_IFACE_NOT_UP)
            rc = rw_err(err, RW_EINPUT, "interface %s is down (ip link set %s up)", iface, iface);
        else if (a == PCAP_ERROR_PERM_DENIED)
            rc = rw_err(err, RW_EIO, "interface %s: %s (sending needs root or CAP_NET_RAW)", iface,
                        why);
        else
            rc = rw_err(err, RW_EIO, "interface %s: %s", iface, why);
        goto fail;
    }
    struct bpf_insn none[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct bpf_program prog = {1, none};
    if (pcap_setfilter(s->p, &prog) < 0) {
        rc = rw_err(err, RW_EIO, "interface %s: setting a filter: %s", iface, pcap_geterr(s->p));
        goto fail;
    }
    /* Not inherited by the programs the caller runs (a query feeding it). */
    int fd = pcap_get_selectable_fd(s->p);
    if (fd >= 0)
        fcntl(fd, F_SETFD, FD_CLOEXEC);
    s->dlt = pcap_datalink(s->p);
    *out = s;
    return 0;
fail:
    cap_sender_close(s);
    return rc;
}

int cap_sender_dlt(const cap_sender_t *s) { return s->dlt; }

void cap_sender_close(cap_sender_t *s)
{
    if (!s)
        return;
    if (s->p)
        pcap_close(s->p);
    free(s);
}

#define FULL_QUEUE_WAIT_NS 1000000000LL /* how long a full transmit queue is waited out */

int cap_sender_send(cap_sender_t *s, const uint8_t *data, uint32_t len, char *err)
{
    int64_t give_up = 0;
    for (;;) {
        if (pcap_inject(s->p, data, len) >= 0)
            return 0;
        int e = errno; /* pcap_inject on Linux: send(2)'s errno, and its text in geterr */
        if (e == ENOBUFS || e == EAGAIN || e == EINTR) {
            /* The interface's queue is full (a slower link than our pace):
             * wait for it to drain, as a blocking send would. */
            int64_t now = rw_mono_ns();
            if (!give_up)
                give_up = now + FULL_QUEUE_WAIT_NS;
            if (now < give_up) {
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
                continue;
            }
            return rw_err(err, RW_EINPUT, "%u-byte frame: the transmit queue of %s stayed full "
                          "for a second", len, s->iface);
        }
        if (e == EMSGSIZE)
            return rw_err(err, RW_EINPUT, "%u-byte frame: longer than the MTU of %s allows "
                          "(ip link set %s mtu N)", len, s->iface, s->iface);
        if (e == EINVAL)
            return rw_err(err, RW_EINPUT, "%u-byte frame: %s refuses it (%s)", len, s->iface,
                          pcap_geterr(s->p));
        return rw_err(err, RW_EIO, "sending on %s: %s", s->iface, pcap_geterr(s->p));
    }
}

/* ---- pacing ---- */

void cap_pacer_init(struct cap_pacer *p, enum cap_pace_mode mode, double rate)
{
    memset(p, 0, sizeof *p);
    p->mode = mode;
    p->rate = rate > 0 ? rate : 1;
}

void cap_pacer_round(struct cap_pacer *p) { p->new_round = 1; }

int64_t cap_pacer_next(struct cap_pacer *p, int64_t ts_ns, uint32_t len, int64_t now)
{
    if (p->mode == CAP_PACE_TOP)
        return now;
    if (!p->started) {
        p->started = 1;
        p->base = now;
        p->offset = 0;
    } else if (p->mode == CAP_PACE_RECORDED && !p->new_round && ts_ns > p->last_ts) {
        p->offset += (double)(ts_ns - p->last_ts) / p->rate;
    }
    p->new_round = 0;
    p->last_ts = ts_ns;
    int64_t due = p->base + (int64_t)p->offset;
    /* A fixed rate: the next packet leaves once this one's time is over. */
    if (p->mode == CAP_PACE_MBPS)
        p->offset += (double)len * 8 * 1e3 / p->rate; /* ns of len bytes at rate Mbit/s */
    else if (p->mode == CAP_PACE_PPS)
        p->offset += 1e9 / p->rate;
    return due;
}

/* A sleep ends some tens of microseconds after its time (timer slack, the
 * wake-up); spinning the last stretch makes the send land on time. */
#define SPIN_NS 100000

int cap_wait_until(int64_t deadline_ns, const volatile sig_atomic_t *stop)
{
    for (;;) {
        if (stop && *stop)
            return RW_ESTOP;
        int64_t now = rw_mono_ns();
        if (now >= deadline_ns)
            return 0;
        if (deadline_ns - now > SPIN_NS) {
            int64_t wake = deadline_ns - SPIN_NS;
            struct timespec ts = {wake / RW_NS_PER_SEC, wake % RW_NS_PER_SEC};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL); /* EINTR: look again */
        }
    }
}

/* ---- the replay loop ---- */

int cap_sender_accepts(const cap_sender_t *s, int dlt, char *err)
{
    if (dlt == s->dlt && dlt == DLT_EN10MB)
        return 0;
    const char *fn = pcap_datalink_val_to_name(dlt), *in = pcap_datalink_val_to_name(s->dlt);
    return rw_err(err, RW_EINPUT,
                  "link type %s (%d) cannot be sent on %s, whose link type is %s (%d): replay "
                  "sends Ethernet captures out of Ethernet interfaces, frames as they were "
                  "recorded",
                  fn ? fn : "unknown", dlt, s->iface, in ? in : "unknown", s->dlt);
}

int cap_replay(cap_sender_t *s, cap_reader_t *r, struct cap_pacer *p,
               const struct cap_replay_ctl *c, struct cap_replay_stats *st, char *err)
{
    static const struct cap_replay_ctl none = {0};
    struct cap_rec rec;
    char e2[RW_ERRSZ];
    int rc, dlt = cap_reader_dlt(r);
    c = c ? c : &none;
    if ((rc = cap_sender_accepts(s, dlt, err)) < 0)
        return rc;
    /* Timers of this thread wake on time rather than up to 50 µs late
     * (the default slack); put back as it was when done. */
    int slack = prctl(PR_GET_TIMERSLACK, 0, 0, 0, 0);
    prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);
    /* The kernel's real-time throttling (sched_rt_runtime_us) leaves other
     * threads their share even when every gap is spun. */
    int policy = -1;
    struct sched_param old_prio, rt_prio = {.sched_priority = sched_get_priority_min(SCHED_FIFO)};
    if (c->realtime && p->mode != CAP_PACE_TOP &&
        pthread_getschedparam(pthread_self(), &policy, &old_prio) == 0 &&
        pthread_setschedparam(pthread_self(), SCHED_FIFO, &rt_prio) != 0)
        policy = -1;
    int64_t next_progress = rw_mono_ns() + c->progress_ns;
    while ((rc = cap_reader_next(r, &rec, err)) == 1) {
        int64_t ts = (int64_t)rec.sec * RW_NS_PER_SEC + rec.frac;
        int64_t due = cap_pacer_next(p, ts, rec.caplen, rw_mono_ns());
        /* A long gap: progress goes on meanwhile. */
        while (c->progress && due - rw_mono_ns() > c->progress_ns &&
               (rc = cap_wait_until(rw_mono_ns() + c->progress_ns, c->stop)) == 0)
            c->progress(c->parg, st);
        if (rc < 0 || (rc = cap_wait_until(due, c->stop)) < 0) {
            rw_err(err, RW_ESTOP, "stopped");
            break;
        }
        int64_t now = rw_mono_ns();
        if (now - due > CAP_REPLAY_LATE_NS)
            st->late++;
        if (now - due > st->max_late_ns)
            st->max_late_ns = now - due;
        if ((rc = cap_sender_send(s, rec.data, rec.caplen, e2)) == RW_EINPUT) {
            if (!st->errors)
                snprintf(st->first_error, sizeof st->first_error, "record %llu: %.400s",
                         (unsigned long long)cap_reader_records(r), e2);
            st->errors++;
        } else if (rc < 0) {
            memcpy(err, e2, RW_ERRSZ);
            break;
        } else {
            if (!st->packets)
                st->first_ns = now;
            st->last_ns = now;
            st->packets++;
            st->bytes += rec.caplen;
            st->truncated += rec.caplen < rec.len;
        }
        if (c->progress && now >= next_progress) {
            c->progress(c->parg, st);
            next_progress = now + c->progress_ns;
        }
    }
    if (slack > 0)
        prctl(PR_SET_TIMERSLACK, (unsigned long)slack, 0, 0, 0);
    if (policy >= 0)
        pthread_setschedparam(pthread_self(), policy, &old_prio);
    return rc < 0 ? rc : 0;
}
