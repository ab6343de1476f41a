/* follow.c -- follow=1 on /api/v1/packets: the archive's part of the
 * answer, then every new packet the filter takes as it is stored (like
 * tcpdump -l), until the client leaves or `to` passes. New packets come
 * from the archive's tap through a follower (intercept/intercept.h,
 * ic_follow_*), registered before the archive's part is planned, which
 * takes what is stored from that moment on: the archive's part ends there.
 * A client that reads too slowly for the follower's queue gets a cut
 * answer (a transfer error), never a thinned one. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "archive/segfile.h"
#include "httpd/httpd_int.h"
#include "intercept/intercept.h"

#define FOLLOW_QUEUE (32u << 20)

struct hd_follow {
    ic_follow_t *f;
    int64_t to;                       /* the answer ends here (RW_TIME_MAX: never) */
    struct qry_point *pts;            /* the answer's interfaces: the archive's, then the live
                                         points it lacked */
    int npts;
    int done;
};

int hd_follow_start(struct httpd *h, struct qry_spec *spec, struct hd_follow **out, char *err)
{
    struct hd_follow *hf = calloc(1, sizeof *hf);
    *out = NULL;
    if (!hf)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if (!h->cases) {
        free(hf);
        return rw_err(err, RW_EINPUT, "parameter 'follow': this rewindd stores no new packets "
                      "to follow");
    }
    int rc = ic_follow_new(h->cases, spec->filter, spec->points, spec->headers_only,
                           FOLLOW_QUEUE, &hf->f, err);
    if (rc < 0) {
        free(hf);
        return rc;
    }
    hf->to = spec->to;
    int64_t cut = ic_follow_cut(hf->f);
    if (spec->to > cut)
        spec->to = cut;
    if (spec->from >= spec->to)
        spec->from = spec->to - 1; /* nothing of the archive: a window that holds none */
    /* What was stored before the cut is committed within a flush interval
     * (1 s by default): the archive's part is planned after it. */
    struct timespec ts = {1, 300000000L};
    nanosleep(&ts, NULL);
    *out = hf;
    return 0;
}

const struct qry_point *hd_follow_points(struct httpd *h, struct hd_follow *hf,
                                         const struct qry_point *pts, int *npts)
{
    struct qry_live live[QRY_MAX_LIVE];
    size_t nl = h->live ? h->live(h->live_arg, live, QRY_MAX_LIVE) : 0;
    hf->pts = calloc((size_t)*npts + nl, sizeof *hf->pts);
    if (!hf->pts)
        return pts;
    memcpy(hf->pts, pts, (size_t)*npts * sizeof *pts);
    hf->npts = *npts;
    for (size_t i = 0; i < nl; i++) {
        int known = 0;
        for (int k = 0; k < hf->npts; k++)
            known |= !strcmp(hf->pts[k].name, live[i].point);
        if (known)
            continue;
        struct qry_point *p = &hf->pts[hf->npts++];
        memcpy(p->name, live[i].point, strnlen(live[i].point, sizeof p->name - 1));
        p->dlt = live[i].linktype;
        p->linktype = segf_linktype_of_dlt(live[i].linktype);
        p->snaplen = 262144;
    }
    *npts = hf->npts;
    return hf->pts;
}

int hd_follow_next(struct hd_follow *hf, struct qry_pkt *pkt, char *err)
{
    struct ic_spool_rec r;
    if (hf->done || rw_now_ns() >= hf->to) {
        hf->done = 1;
        return 0;
    }
    int rc = ic_follow_next(hf->f, &r, 1000);
    if (rc == RW_ESTATE)
        return rw_err(err, RW_EIO, "follow: the client read more slowly than packets came "
                      "(%u MiB waiting): the answer is cut", FOLLOW_QUEUE >> 20);
    if (rc <= 0)
        return rc < 0 ? rw_err(err, rc, "follow: a queued packet does not read back") : 0;
    if (r.ts >= hf->to) {
        hf->done = 1;
        return 0;
    }
    int i;
    for (i = 0; i < hf->npts && (strcmp(hf->pts[i].name, r.point) || hf->pts[i].dlt != r.dlt);
         i++)
        ;
    if (i == hf->npts)
        return rw_err(err, RW_EIO, "follow: capture point %s began after the answer did: ask "
                      "again", r.point);
    pkt->point = i;
    pkt->sec = (uint32_t)(r.ts / RW_NS_PER_SEC);
    pkt->frac = (uint32_t)(r.ts % RW_NS_PER_SEC);
    pkt->caplen = r.caplen;
    pkt->len = r.len;
    pkt->data = r.data;
    return 1;
}

int hd_follow_done(const struct hd_follow *hf) { return hf->done; }

void hd_follow_free(struct hd_follow *hf)
{
    if (!hf)
        return;
    ic_follow_free(hf->f);
    free(hf->pts);
    free(hf);
}
