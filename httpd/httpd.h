/* httpd.h -- the REST API (libmicrohttpd): packets as streamed pcap/pcapng,
 * segments, status, Prometheus metrics, liveness. Routes and parameters are
 * documented in man/rewindd.8. */
#ifndef HTTPD_H
#define HTTPD_H

#include "common/rw.h"
#include "index/index.h"

/* What only the daemon knows of a capture point it captures live. */
struct httpd_capture {
    char point[65];
    int paused;            /* 1 while capture is paused (disk full, I/O error) */
    uint64_t paused_drops; /* packets dropped while paused, since the daemon started */
    char reason[RW_ERRSZ]; /* why it paused, the last time */
};
/* Fills up to max entries and returns how many; called on libmicrohttpd's
 * threads at each /metrics and /api/v1/status request. */
typedef size_t (*httpd_capture_fn)(void *arg, struct httpd_capture *out, size_t max);

struct httpd_opts {
    const char *listen;  /* "ADDR:PORT" or "[V6ADDR]:PORT"; default 127.0.0.1:8800 */
    int max_queries;     /* concurrent packet queries before 503 (default 8) */
    const char *sensor;  /* name in response headers and metrics (default: hostname) */
    httpd_capture_fn capture; /* live capture state (NULL: none) */
    void *capture_arg;
};

typedef struct httpd httpd_t;

/* Serve the archive behind ix (borrowed until httpd_stop) on threads of
 * libmicrohttpd's own. Returns RW_EINPUT for a bad address, RW_EIO if the
 * port cannot be bound. */
int httpd_start(idx_t *ix, const struct httpd_opts *o, httpd_t **out, char *err) RW_WUR;
/* Stop accepting, cut responses in flight (their streams end with a transfer
 * error, never as a silently short file) and free. */
void httpd_stop(httpd_t *h);

/* Parse "ADDR:PORT" into a socket address; exposed for tests. */
struct sockaddr_storage;
int httpd_parse_listen(const char *s, struct sockaddr_storage *ss, char *err) RW_WUR;

#endif
