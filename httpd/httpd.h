/* httpd.h -- the HTTP front door (libmicrohttpd): packets as streamed
 * pcap/pcapng, segments, status, Prometheus metrics, liveness, each a row
 * of one route table with the permission it needs. Routes and parameters
 * are documented in man/rewindd.8. */
#ifndef HTTPD_H
#define HTTPD_H

#include <stdio.h>

#include "common/rw.h"
#include "auth/auth.h"
#include "query/read.h"

/* One row of the route table: the only requests the server answers. */
struct httpd_route {
    const char *path;    /* exact match, no trailing slash; "/a/" then "*": "/a/" and more;
                            a segment "{id}" matches any one non-empty segment */
    const char *methods; /* "GET, HEAD": the Allow header of a 405 */
    enum auth_perm perm; /* what the client's role must allow (auth/auth.h) */
};
/* The i-th route, or NULL past the last. */
const struct httpd_route *httpd_route_at(size_t i);
/* The route for a path, or NULL (404). */
const struct httpd_route *httpd_route_find(const char *path);
/* 1 if r takes method. */
int httpd_route_allows(const struct httpd_route *r, const char *method);

/* The limits of the HTTP server (rewindd(8), LIMITS); 0 in a field of
 * httpd_opts.limits means its default. */
struct hd_limits {
    int max_conns;        /* connections at once; beyond: 503 (default 256) */
    int max_client_conns; /* from one client address; beyond: 503 (default 64) */
    int idle_timeout_s;   /* a request is due within this of the connection or of
                             its previous answer (default 15) */
    int send_timeout_s;   /* the window of the minimum-progress rule (default 30) */
    int min_rate;         /* bytes/s an answer waiting on its client must move
                             (default 1024) */
    int max_uri;          /* request URI bytes; beyond: 414 (default 65536) */
    int max_headers;      /* request header bytes; beyond: 431 (default 32768) */
};
#define HD_DEFAULT_MAX_CONNS 256
#define HD_DEFAULT_MAX_CLIENT_CONNS 64
#define HD_DEFAULT_IDLE_TIMEOUT 15
#define HD_DEFAULT_SEND_TIMEOUT 30
#define HD_DEFAULT_MIN_RATE 1024
#define HD_DEFAULT_MAX_URI 65536
#define HD_DEFAULT_MAX_HEADERS 32768
/* libmicrohttpd's per-connection memory: what a request line and headers
 * must fit in for rewind to see them (beyond it libmicrohttpd answers 414
 * or 431 itself, in HTML). Above max_uri + max_headers with room to answer. */
#define HD_CONN_MEMORY (256u << 10)

struct httpd_opts {
    const char *listen;  /* "ADDR:PORT" or "[V6ADDR]:PORT"; default 127.0.0.1:8800 */
    int max_queries;     /* concurrent packet queries before 503 (default 8) */
    int max_streams;     /* long-lived answers (follow=1, pull intercept) in all (default 32) */
    int max_streams_each; /* and for one principal (default 4) */
    const char *sensor;  /* name in response headers and metrics (default: hostname) */
    qry_live_fn live;         /* live capture state (NULL: none); called on */
    void *live_arg;           /* libmicrohttpd's threads */
    /* TLS: PEM files, read when the server starts (and by httpd_check_opts).
     * tls_cert may hold the chain after the server's own certificate. With
     * tls_client_ca a client must present a certificate it signed (mutual
     * TLS), else the handshake fails. All NULL: plain HTTP. */
    const char *tls_cert, *tls_key, *tls_client_ca;
    /* Whether any access token is defined (NULL: none). A listener beyond
     * loopback needs TLS and tokens (httpd_check_opts). Called on the
     * caller's thread, in httpd_check_opts and httpd_start. */
    int (*have_tokens)(void *arg);
    void *tokens_arg;
    /* The audit trail every packet answer (and refusal) is recorded in,
     * before its last byte leaves (NULL: none). Borrowed until httpd_stop. */
    struct audit *audit;
    struct hd_limits limits; /* zeros: the defaults */
    /* The web console's files (index.html, ...; NULL: no console), served
     * at / and /ui/. web_root_given: the operator chose it (--web-root),
     * so a directory without index.html keeps the server from starting;
     * otherwise it is a default, only warned about. */
    const char *web_root;
    int web_root_given;
    /* The case store of lawful intercept (intercept/intercept.h; NULL: the
     * case routes answer 503). Borrowed until httpd_stop. */
    struct ic *cases;
    /* Its identity counters (RADIUS accounting seen, refused, intervals),
     * for /metrics and /status (NULL: none). */
    struct ic_ident_tap *idtap;
    /* More Prometheus families at the end of /metrics (NULL: none), such
     * as the flow export's (export/export.h, ex_metrics). */
    void (*metrics)(void *arg, FILE *f);
    void *metrics_arg;
    /* rewindd --federate: /api/v1/packets answered across these sensors
     * (export/export.h) instead of from the archive; borrowed. */
    const struct ex_sensors *federate;
};

typedef struct httpd httpd_t;

/* Fill the fields of l that are 0 with their defaults. */
void httpd_limits_defaults(struct hd_limits *l);

/* Everything httpd_start would refuse as bad input, checked without
 * binding anything, so that a daemon can refuse before it creates its
 * archive: a malformed listen address; a listener beyond loopback without
 * TLS or without tokens ("--listen ADDR is not loopback: ..."); TLS files
 * missing, unreadable, not PEM, of the wrong kind, or a key that does not
 * match the certificate (each message names the option and the file).
 * Returns 0 or RW_EINPUT. */
int httpd_check_opts(const struct httpd_opts *o, char *err) RW_WUR;

/* Serve the archive behind ix (borrowed until httpd_stop) on threads of
 * libmicrohttpd's own, over TLS when o->tls_cert is set. Returns RW_EINPUT
 * for what httpd_check_opts refuses and for a port in use, RW_EIO if the
 * server cannot start. An expired TLS certificate is served with a warning
 * in the log (clients will refuse it). */
int httpd_start(idx_t *ix, const struct httpd_opts *o, httpd_t **out, char *err) RW_WUR;
/* Stop accepting, cut responses in flight (their streams end with a transfer
 * error, never as a silently short file) and free. */
void httpd_stop(httpd_t *h);

/* Parse "ADDR:PORT" into a socket address; exposed for tests. */
struct sockaddr_storage;
int httpd_parse_listen(const char *s, struct sockaddr_storage *ss, char *err) RW_WUR;

#endif
