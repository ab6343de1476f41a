/* hold.c -- legal holds: placed and released by the archive's writer,
 * honoured by retention (retention.c reads them at every pass). */
#include "archive/arc_int.h"

int arc_hold_add(arc_t *a, struct idx_hold *h, char *err)
{
    if (h->from >= h->to)
        return rw_err(err, RW_EINPUT, "a hold's from must be before its to");
    /* One retention pass at a time: a pass that began before the hold
     * finishes first, and every later one sees it. */
    pthread_mutex_lock(&a->ret_mu);
    int rc = idx_hold_add(a->ix, h, err);
    pthread_mutex_unlock(&a->ret_mu);
    return rc;
}

int arc_hold_release(arc_t *a, uint64_t id, char *err)
{
    pthread_mutex_lock(&a->ret_mu);
    int rc = idx_hold_del(a->ix, id, err);
    pthread_mutex_unlock(&a->ret_mu);
    return rc;
}
