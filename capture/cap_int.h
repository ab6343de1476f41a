/* cap_int.h -- private state shared by the files of capture/. */
#ifndef CAP_INT_H
#define CAP_INT_H

#include <pthread.h>

#include "capture/cap.h"

#define MAX_WRITERS 256

struct cap_arch {
    idx_t *ix;
    struct cap_opts o;
    char dir[1024];
    /* names of points with an open writer: one writer per point at a time,
     * so that a point's segments stay in capture order */
    pthread_mutex_t mu;
    char active[MAX_WRITERS][65];
    pthread_mutex_t ret_mu; /* one retention pass at a time */
    int quota_warned;
};

#endif
