/* streams.c -- the pool of long-lived answers: follow=1 on /api/v1/packets
 * and a case's pull intercept. They may stay open for hours, mostly
 * waiting for traffic, so they do not take --max-queries slots (which
 * bound the work of scans); they have a pool of their own, --max-streams
 * in all and --max-streams-per-client for one principal (a token, a
 * certificate, or the open API's "anonymous"), so that one agency or
 * console cannot take them all. */
#include <pthread.h>
#include <string.h>

#include "httpd/httpd_int.h"

int hd_stream_take(struct httpd *h, const char *who, char *err)
{
    int rc = 0, free_i = -1, i;
    pthread_mutex_lock(&h->streams_mu);
    for (i = 0; i < HD_STREAM_OWNERS; i++) {
        if (h->owners[i].n && !strcmp(h->owners[i].name, who))
            break;
        if (!h->owners[i].n && free_i < 0)
            free_i = i;
    }
    if (h->nstreams >= h->max_streams) {
        rc = rw_err(err, RW_EBUSY, "%d long-lived answers (follow=1, intercept) already open "
                    "(rewindd --max-streams); retry shortly", h->max_streams);
    } else if (i < HD_STREAM_OWNERS && h->owners[i].n >= h->max_streams_each) {
        rc = rw_err(err, RW_EBUSY, "%s has %d long-lived answers (follow=1, intercept) open "
                    "already (rewindd --max-streams-per-client); close one first", who,
                    h->owners[i].n);
    } else if (i == HD_STREAM_OWNERS && free_i < 0) {
        rc = rw_err(err, RW_EBUSY, "long-lived answers are open for %d principals already; "
                    "retry shortly", HD_STREAM_OWNERS);
    } else {
        if (i == HD_STREAM_OWNERS) {
            i = free_i;
            snprintf(h->owners[i].name, sizeof h->owners[i].name, "%s", who);
        }
        h->owners[i].n++;
        h->nstreams++;
    }
    pthread_mutex_unlock(&h->streams_mu);
    return rc;
}

void hd_stream_give(struct httpd *h, const char *who)
{
    pthread_mutex_lock(&h->streams_mu);
    for (int i = 0; i < HD_STREAM_OWNERS; i++)
        if (h->owners[i].n && !strcmp(h->owners[i].name, who)) {
            h->owners[i].n--;
            h->nstreams--;
            break;
        }
    pthread_mutex_unlock(&h->streams_mu);
}

int hd_streams_open(struct httpd *h)
{
    pthread_mutex_lock(&h->streams_mu);
    int n = h->nstreams;
    pthread_mutex_unlock(&h->streams_mu);
    return n;
}
