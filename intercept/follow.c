/* follow.c -- following new packets as they are stored (follow=1 on
 * /api/v1/packets, rewind query --follow): the same tap as live intercept
 * copies each packet a follower's filter takes into that follower's bounded
 * queue, never waiting; a follower whose reader falls behind by more than
 * its queue is cut (its answer then ends as a failed transfer), never
 * thinned out silently (intercept.h, ic_follow_*). */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <pcap/pcap.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/archive.h"
#include "index/parse.h"

#define MAX_DLTS 8

struct ic_follow {
    struct ic_follow *next;    /* in the store's list */
    ic_t *ic;
    char *filter;              /* "" for all */
    char **points;             /* NULL-terminated copies; NULL: every point */
    int headers_only;
    int64_t cut;               /* packets before this time are the archive's part */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct {
        int dlt, state;
        struct bpf_program bpf;
    } progs[MAX_DLTS];
    int nprogs;
    uint8_t *q;                /* records: ic_spool_rec_put's format */
    size_t qhead, qlen, qcap;  /* a byte queue: [qhead, qhead + qlen) */
    int overflow;
    uint8_t cur[44 + 68 + IC_SPOOL_CAPLEN_MAX]; /* the record handed out last */
};

/* The store keeps the list; live.c's tee walks it. */
static pthread_mutex_t list_mu = PTHREAD_MUTEX_INITIALIZER;
static struct ic_follow *list;
static atomic_int nfollow;

static int wants_point(const struct ic_follow *f, const char *point)
{
    if (!f->points)
        return 1;
    for (char **p = f->points; *p; p++)
        if (!strcmp(*p, point))
            return 1;
    return 0;
}

static int matches(struct ic_follow *f, const struct arc_tap *t, uint32_t caplen)
{
    int i;
    if (!f->filter[0])
        return 1;
    for (i = 0; i < f->nprogs && f->progs[i].dlt != t->dlt; i++)
        ;
    if (i == f->nprogs) {
        if (i == MAX_DLTS)
            return 0;
        pcap_t *pc = pcap_open_dead(t->dlt, (int)(t->snaplen ? t->snaplen : 262144));
        f->progs[i].dlt = t->dlt;
        f->progs[i].state =
            pc && pcap_compile(pc, &f->progs[i].bpf, f->filter, 1, PCAP_NETMASK_UNKNOWN) == 0 ? 1
                                                                                           : -1;
        if (pc)
            pcap_close(pc);
        f->nprogs++;
    }
    if (f->progs[i].state != 1)
        return 0;
    struct pcap_pkthdr h = {.caplen = caplen, .len = t->len};
    h.ts.tv_sec = t->ts / RW_NS_PER_SEC;
    h.ts.tv_usec = t->ts % RW_NS_PER_SEC / 1000;
    return pcap_offline_filter(&f->progs[i].bpf, &h, t->data) != 0;
}

void ic_follow_tee(const struct arc_tap *t)
{
    if (!atomic_load(&nfollow))
        return;
    pthread_mutex_lock(&list_mu);
    for (struct ic_follow *f = list; f; f = f->next) {
        if (t->ts < f->cut || !wants_point(f, t->point))
            continue;
        uint32_t caplen = t->caplen > IC_SPOOL_CAPLEN_MAX ? IC_SPOOL_CAPLEN_MAX : t->caplen;
        if (f->headers_only && t->parsed->hdr_end < caplen)
            caplen = t->parsed->hdr_end; /* as a noc answer cuts them, before the filter */
        pthread_mutex_lock(&f->mu);
        if (!f->overflow && matches(f, t, caplen)) {
            size_t need = ic_spool_rec_size(strlen(t->point), caplen);
            if (f->qlen + need > f->qcap) {
                f->overflow = 1;
            } else {
                if (f->qhead + f->qlen + need > f->qcap) { /* room at the front: compact */
                    memmove(f->q, f->q + f->qhead, f->qlen);
                    f->qhead = 0;
                }
                f->qlen += ic_spool_rec_put(f->q + f->qhead + f->qlen, 0, t->ts, t->dlt,
                                            t->snaplen, t->point, t->data, caplen, t->len);
            }
            pthread_cond_signal(&f->cv);
        }
        pthread_mutex_unlock(&f->mu);
    }
    pthread_mutex_unlock(&list_mu);
}

int ic_follow_new(ic_t *ic, const char *filter, const char *const *points, int headers_only,
                  size_t queue, ic_follow_t **out, char *err)
{
    struct ic_follow *f = calloc(1, sizeof *f);
    size_t np = 0;
    *out = NULL;
    if (!f || !(f->filter = strdup(filter ? filter : "")) || !(f->q = malloc(queue)))
        goto nomem;
    if (points) {
        while (points[np])
            np++;
        if (!(f->points = calloc(np + 1, sizeof *f->points)))
            goto nomem;
        for (size_t i = 0; i < np; i++)
            if (!(f->points[i] = strdup(points[i])))
                goto nomem;
    }
    f->ic = ic;
    f->qcap = queue;
    f->headers_only = headers_only;
    f->cut = rw_now_ns();
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cv, NULL);
    pthread_mutex_lock(&list_mu);
    f->next = list;
    list = f;
    atomic_fetch_add(&nfollow, 1);
    pthread_mutex_unlock(&list_mu);
    *out = f;
    return 0;
nomem:
    for (size_t i = 0; f && f->points && i < np; i++)
        free(f->points[i]);
    if (f) {
        free(f->points);
        free(f->filter);
        free(f->q);
    }
    free(f);
    return rw_err(err, RW_ENOMEM, "out of memory");
}

int64_t ic_follow_cut(const ic_follow_t *f) { return f->cut; }

int ic_follow_next(ic_follow_t *f, struct ic_spool_rec *rec, int ms)
{
    struct timespec dl;
    int rc = 0;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&f->mu);
    while (!f->qlen && !f->overflow)
        if (pthread_cond_timedwait(&f->cv, &f->mu, &dl) != 0)
            break;
    if (f->qlen) {
        /* One record out, copied: the queue may move once unlocked. */
        size_t n = rw_get_be32(f->q + f->qhead + 4);
        memcpy(f->cur, f->q + f->qhead, n);
        f->qhead += n;
        f->qlen -= n;
        rc = ic_spool_rec_parse(f->cur, n, rec) > 0 ? 1 : RW_EIO;
    } else if (f->overflow) {
        rc = RW_ESTATE;
    }
    pthread_mutex_unlock(&f->mu);
    return rc;
}

void ic_follow_free(ic_follow_t *f)
{
    if (!f)
        return;
    pthread_mutex_lock(&list_mu);
    for (struct ic_follow **p = &list; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    atomic_fetch_sub(&nfollow, 1);
    pthread_mutex_unlock(&list_mu);
    for (int i = 0; i < f->nprogs; i++)
        if (f->progs[i].state == 1)
            pcap_freecode(&f->progs[i].bpf);
    for (char **p = f->points; p && *p; p++)
        free(*p);
    free(f->points);
    free(f->filter);
    free(f->q);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cv);
    free(f);
}
