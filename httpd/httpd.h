/* httpd.h -- the HTTP front door (libmicrohttpd): packets as streamed
 * pcap/pcapng, segments, status, Prometheus metrics, liveness, each a row
 * of one route table with the permission it needs. Routes and parameters
 * are documented in man/rewindd.8. */
#ifndef HTTPD_H
#define HTTPD_H

#include "common/rw.h"
#include "auth/auth.h"
#include "query/read.h"

/* One row of the route table: the only requests the server answers. */
struct httpd_route {
    const char *path;    /* exact match, no trailing slash */
    const char *methods; /* "GET, HEAD": the Allow header of a 405 */
    enum auth_perm perm; /* what the client's role must allow (auth/auth.h) */
};
/* The i-th route, or NULL past the last. */
const struct httpd_route *httpd_route_at(size_t i);
/* The route for a path, or NULL (404). */
const struct httpd_route *httpd_route_find(const char *path);
/* 1 if r takes method. */
int httpd_route_allows(const struct httpd_route *r, const char *method);

struct httpd_opts {
    const char *listen;  /* "ADDR:PORT" or "[V6ADDR]:PORT"; default 127.0.0.1:8800 */
    int max_queries;     /* concurrent packet queries before 503 (default 8) */
    const char *sensor;  /* name in response headers and metrics (default: hostname) */
    qry_live_fn live;         /* live capture state (NULL: none); called on */
    void *live_arg;           /* libmicrohttpd's threads */
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
