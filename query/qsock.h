/* qsock.h -- queries answered by a running rewindd over DIR/rewindd.sock.
 *
 * A short query is mostly fixed cost: starting a process, opening RocksDB,
 * closing it. rewindd has the index open already, so `rewind query --dir`
 * asks it first and reads the archive itself only when no daemon answers.
 * The answer is the same either way: the daemon runs the same qry_new(),
 * qry_next() and qry_out_*() code over the same index.
 *
 * The client opens its own output (file or pipe) and passes the descriptor
 * (SCM_RIGHTS) once the daemon has planned the query, so the daemon writes
 * only where the client may write, and a rejected filter leaves -w FILE
 * untouched as it does locally.
 *
 * Protocol on one connection (lines end in '\n'; values are %XX-escaped):
 *   client: "query\tfrom=NS\tto=NS\tlimit=N\tformat=pcap|pcapng\tcount=0|1
 *            [\tpoint=NAME]...[\tfilter=EXPR]"
 *   daemon: "busy" (the client reads the archive itself), or
 *           "error CODE MESSAGE", or
 *           "ready" -- then the client sends "out" with the descriptor,
 *                      or nothing at all for count=1;
 *   daemon: "ok PACKETS BYTES", "error CODE MESSAGE", or "epipe" when the
 *           reader of the client's pipe went away (the client then dies of
 *           SIGPIPE, as it would have writing the pipe itself).
 * The daemon stops writing when the client hangs up or the daemon stops. */
#ifndef QRY_QSOCK_H
#define QRY_QSOCK_H

#include <stdint.h>

#include "common/rw.h"
#include "index/index.h"
#include "query/query.h"

#define QSOCK_MAX_REQ RW_SOCK_MAX_REQ /* bytes of a request line */
#define QSOCK_MAX_POINTS 64

/* A parsed request. Strings point into the buffer given to qsock_parse(). */
struct qsock_req {
    struct qry_spec spec;
    const char *points[QSOCK_MAX_POINTS + 1];
    int format; /* QRY_PCAP or QRY_PCAPNG */
    int count;  /* 1: answer the number of packets only */
};

/* Parse (and unescape in place) a request line without its '\n'.
 * RW_EINPUT with a message for anything malformed. */
int qsock_parse(char *line, struct qsock_req *r, char *err) RW_WUR;

/* The request line for r, '\n' included, in a new NUL-terminated buffer
 * (free it) of *len bytes; NULL when longer than QSOCK_MAX_REQ or out of
 * memory. */
char *qsock_format(const struct qsock_req *r, size_t *len);

/* ---- daemon side ---- */
typedef struct qsock_server qsock_server_t;
/* Answer queries over ix (borrowed), at most max_queries at once (more are
 * told "busy"). */
int qsock_server_new(idx_t *ix, int max_queries, qsock_server_t **out, char *err) RW_WUR;
/* Serve one request on connection conn (borrowed; the caller closes it).
 * line is the request without '\n'. Runs on the connection's thread. */
void qsock_serve(qsock_server_t *s, int conn, char *line);
/* Cut the queries in flight (their clients see an error) and refuse new
 * ones. Then stop whatever calls qsock_serve() before qsock_server_free(). */
void qsock_server_cancel(qsock_server_t *s);
void qsock_server_free(qsock_server_t *s);

/* ---- client side ---- */
enum {
    QSOCK_LOCAL = 1, /* no daemon answered: read the archive yourself */
    QSOCK_EPIPE = 2, /* the reader of the output pipe went away */
};

/* Ask the rewindd that owns dir. outfd_fn opens the output once the daemon
 * has accepted the query (not called for r->count) and returns a descriptor
 * (the caller's to close) or <0 with err set. Returns 0 with *packets set,
 * QSOCK_LOCAL when no daemon serves dir (or it is busy or stopping),
 * QSOCK_EPIPE, or <0 with err set: the daemon's own error and code, or
 * RW_EIO when it went away mid-answer. */
typedef int (*qsock_open_fn)(void *arg, char *err);
int qsock_ask(const char *dir, const struct qsock_req *r, qsock_open_fn outfd_fn, void *arg,
              uint64_t *packets, char *err) RW_WUR;

#endif
