/* arc_int.h -- private state shared by the files of archive/. */
#ifndef ARC_INT_H
#define ARC_INT_H

#include <pthread.h>

#include "archive/archive.h"

#define MAX_WRITERS 256

struct arc {
    idx_t *ix;
    struct arc_opts o;
    char dir[1024];
    /* names of points with an open writer: one writer per point at a time,
     * so that a point's segments stay in capture order */
    pthread_mutex_t mu;
    char active[MAX_WRITERS][65];
    pthread_mutex_t ret_mu; /* one retention pass at a time */
    int quota_warned;
    /* the index's size, read at most once a second (arc_space_get) */
    pthread_mutex_t space_mu;
    uint64_t ix_bytes;
    int64_t ix_bytes_at;
    /* arc_set_tap: called by every point writer with every packet */
    arc_tap_fn tap;
    void *tap_arg;
};

/* Below this much available space rewind does not write its index at all
 * (RocksDB must not meet a full disk, see arc_space in cap.h): retention
 * and the sealing of a cut segment wait. */
#define ARC_INDEX_MIN_FREE (1ULL << 20)

/* 0 if n more segment bytes leave the reserve free (arc_space; with resume,
 * the resume level), and *left (may be NULL) the bytes that would still be
 * available above it. Otherwise runs retention if a quota is set and checks
 * again; RW_ENOSPC naming the archive and the numbers if still short. */
int arc_space_ensure(arc_t *a, uint64_t n, int resume, uint64_t *left, char *err) RW_WUR;

#endif
