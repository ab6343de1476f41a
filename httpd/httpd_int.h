/* httpd_int.h -- what the files of httpd/ share: the server's state, a
 * request's parameters, the answer helpers and the route handlers. Not for
 * other modules (httpd.h is the contract). A route is a row of the table in
 * httpd.c; its handler may live in a file of its own (analytics.c, ...). */
#ifndef HTTPD_INT_H
#define HTTPD_INT_H
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>

#include "httpd/httpd.h"
#include "httpd/tls.h"
#include "auth/audit.h"
#include "query/query.h"

#define MAX_PARAMS 32
#define HD_ECHO_MAX 256 /* bytes of a client's value echoed in a header */
#define NBUCKETS 9

/* ---- limits and timeouts (guard.c) ---- */

/* A packet answer's hold on one of --max-queries (h->active). */
struct hd_slot {
    atomic_int held;    /* 1, or 0 while the watchdog has it back: the client stalled */
    atomic_uint reads;  /* times libmicrohttpd asked the answer for more */
};

/* One client connection, from libmicrohttpd's "started" notification to
 * its "closed" one (its socket context). */
struct hd_conn {
    struct hd_conn *prev, *next;
    int fd;                 /* libmicrohttpd's socket: open while we are listed */
    int family;
    unsigned char addr[16]; /* the client's address: per-client counts */
    int over;               /* over a limit when it came: 1 total, 2 per client */
    int busy;               /* a request is being answered */
    int64_t since;          /* monotonic ns: opened, or its last answer ended */
    int64_t win_start;      /* progress window (watchdog): start, 0 none */
    uint64_t win_acked;     /* bytes the client had acknowledged then */
    atomic_int cut;         /* HD_CUT_*: the watchdog shut the socket down */
    struct hd_slot *slot;   /* its packet answer's query slot (NULL: none): taken
                               back while the answer waits on a stalled client */
    unsigned last_reads;    /* slot->reads at the watchdog's last look */
    uint64_t last_acked;    /* bytes the client had acknowledged then */
    int stalled;            /* looks in a row the answer waited on the client */
    size_t uri_len;         /* the raw request URI of the current request */
    char bad_uri[160];      /* what is wrong with its raw bytes ("" nothing) */
};
enum { HD_CUT_IDLE = 1, HD_CUT_SLOW = 2 };

struct hd_guard {
    struct hd_limits lim;
    pthread_mutex_t lock; /* the list and every hd_conn's fields but uri_* */
    struct hd_conn *head;
    int n, max_total, max_client;
    pthread_t thr;
    int started;
    atomic_int quit;
    atomic_uint_fast64_t refused, cut_idle, cut_slow;
};

struct httpd {
    struct MHD_Daemon *d;
    int tls;             /* HTTPS: --tls-cert and --tls-key */
    int mtls;            /* and a client needs a certificate --tls-client-ca signed */
    int exposed;         /* listening beyond loopback: never open, tokens or not */
    struct httpd_tls pem; /* kept until stop: libmicrohttpd keeps the pointers */
    idx_t *ix;
    int max_queries;
    char sensor[128];
    atomic_int active;
    atomic_int stopping;
    atomic_uint_fast64_t requests, queries, exported, errors;
    atomic_uint_fast64_t buckets[NBUCKETS + 1];
    atomic_uint_fast64_t dur_us_sum;
    qry_live_fn live;
    void *live_arg;
    atomic_int tokens;          /* tokens defined, as last looked up */
    atomic_int_fast64_t tokens_at; /* when (monotonic ns) */
    atomic_uint_fast64_t tokens_gen; /* auth_token_generation() then */
    audit_t *audit;             /* the audit trail (borrowed; NULL: none) */
    struct hd_guard g;          /* connections, limits and the watchdog (guard.c) */
};

struct params {
    int n;
    const char *k[MAX_PARAMS], *v[MAX_PARAMS];
    int overflow;
    int head; /* a HEAD request: the headers of the answer only */
    struct auth_principal who; /* whom the request comes from */
    char client[80];            /* the client's address, for the audit trail */
};

/* A route's handler: answers the request (parameters p, already let
 * through the gate) on c. */
typedef enum MHD_Result hd_handler_fn(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p);

/* The last value of parameter k, or NULL. */
const char *hd_param(const struct params *p, const char *k);
/* The first parameter given twice that is not in the NULL-terminated
 * repeatable list, or NULL. */
const char *hd_repeated_param(const struct params *p, const char *const *repeatable);
/* The first parameter not in the NULL-terminated allowed list, or NULL. */
const char *hd_unknown_param(const struct params *p, const char *const *allowed);
/* "ADDR:PORT" of the client, for the audit trail. */
void hd_client_addr(struct MHD_Connection *c, char *out, size_t n);
/* Queue body (copied) with Content-Type ctype, Cache-Control: no-store and
 * the header xname: xval when xname is not NULL. */
enum MHD_Result hd_send_body(struct MHD_Connection *c, unsigned status, const char *ctype,
                             const char *body, const char *xname, const char *xval);
enum MHD_Result hd_send_text(struct MHD_Connection *c, unsigned status, const char *ctype,
                             const char *body);
/* JSON answers; take ownership of j. */
enum MHD_Result hd_send_json_x(struct MHD_Connection *c, unsigned status, json_t *j,
                               const char *xname, const char *xval);
enum MHD_Result hd_send_json(struct MHD_Connection *c, unsigned status, json_t *j);
/* An error answer {"error":{"code":…,"message":…}}, with one extra header
 * when xname is not NULL (Allow for 405, Retry-After for 503). */
enum MHD_Result hd_send_error_x(struct httpd *h, struct MHD_Connection *c, unsigned status,
                                const char *code, const char *xname, const char *xval,
                                const char *fmt, ...) RW_PRINTF(7, 8);
#define hd_send_error(h, c, status, code, ...)                                              \
    hd_send_error_x(h, c, status, code, NULL, NULL, __VA_ARGS__)
/* 400 unknown_parameter naming the parameters route takes (allowed). */
enum MHD_Result hd_send_unknown_param(struct httpd *h, struct MHD_Connection *c,
                                      const char *route, const char *bad,
                                      const char *const *allowed);
/* A time as the API writes it (RFC 3339, nanoseconds). */
json_t *hd_jtime(int64_t ns);
/* from/to of a request (default: all time); RW_EINPUT naming the parameter. */
int hd_parse_window(const struct params *p, int64_t *from, int64_t *to, char *err);
/* A whole number (or, with sizes, a size such as 10M) of parameter name;
 * *out unchanged when v is NULL. */
int hd_parse_count(const char *name, const char *v, int sizes, uint64_t *out, char *err);

/* The longest prefix of s[0..n) that is valid UTF-8 (no overlong forms,
 * surrogates or code points beyond U+10FFFF). */
size_t hd_utf8_prefix(const unsigned char *s, size_t n);
/* Replace each byte of s that is not part of valid UTF-8 by '?'. */
void hd_utf8_clean(char *s);
/* Check a raw request URI ("/path?k=v&..." as the client sent it, before
 * any unescaping): 1 with msg set ("parameter 'filter': its value contains
 * a NUL byte (%00)") when the path, a parameter's name or its value
 * decodes to a NUL or to invalid UTF-8; else 0. libmicrohttpd's unescaping
 * cuts a value at its first NUL, so this is judged before it. */
int hd_raw_uri_check(const char *uri, char *msg, size_t cap);
/* A header value of at most about max bytes for v: v itself when it is that
 * short and printable, else a cut, printable form followed by "... (N
 * bytes, sha256 HEX16)". out has room for cap bytes (cap > max + 64). */
void hd_bounded_value(const char *v, size_t max, char *out, size_t cap);

/* The connection's record (NULL if none could be made). */
struct hd_conn *hd_conn_of(struct MHD_Connection *c);
/* libmicrohttpd's connection notifications: count, mark over a limit. */
void hd_conn_open(struct httpd *h, struct MHD_Connection *c, void **socket_context);
void hd_conn_close(struct httpd *h, void **socket_context);
/* A request began (busy 1) or its answer ended (0): which timeout applies. */
void hd_conn_state(struct httpd *h, struct hd_conn *k, int busy);
/* Register (slot) or forget (NULL) the query slot of k's packet answer:
 * the watchdog gives it back (h->active--, held = 0) while the answer
 * waits on a client that stalled (bytes unacknowledged in its socket, none
 * acknowledged and nothing more asked for over two looks, half a second),
 * so that such a client
 * does not keep the queries of others out; the stream takes it again when
 * asked for more. */
void hd_conn_slot(struct httpd *h, struct hd_conn *k, struct hd_slot *slot);
/* Start and stop the watchdog that enforces the timeouts. */
int hd_guard_start(struct httpd *h, const struct hd_limits *lim, char *err) RW_WUR;
void hd_guard_stop(struct httpd *h);
/* Why the watchdog cut a connection (HD_CUT_*), for logs; NULL if it did not. */
const char *hd_cut_reason(int why);

#endif
