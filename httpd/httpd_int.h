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
#include <stdio.h>

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
    uint64_t received;      /* body bytes of the request coming in since then */
    int64_t win_start;      /* progress window (watchdog): start, 0 none */
    uint64_t win_acked;     /* bytes the client had acknowledged then */
    atomic_int cut;         /* HD_CUT_*: the watchdog shut the socket down */
    atomic_int longlived;   /* its answer is a long-lived stream (follow=1, intercept):
                               a half-close by the client means it has gone */
    struct hd_slot *slot;   /* its packet answer's query slot (NULL: none): taken
                               back while the answer waits on a stalled client */
    unsigned last_reads;    /* slot->reads at the watchdog's last look */
    uint64_t last_acked;    /* bytes the client had acknowledged then */
    int stalled;            /* looks in a row the answer waited on the client */
    atomic_int lines;       /* request lines libmicrohttpd parsed on it */
    size_t uri_len;         /* the raw request URI of the current request */
    char bad_uri[160];      /* what is wrong with its raw bytes ("" nothing) */
};
enum { HD_CUT_IDLE = 1, HD_CUT_SLOW = 2, HD_CUT_GONE = 3 };

struct hd_guard {
    struct hd_limits lim;
    pthread_mutex_t lock; /* the list and every hd_conn's fields but uri_* */
    struct hd_conn *head;
    int n, max_total, max_client;
    pthread_t thr;
    int started;
    atomic_int quit;
    atomic_uint_fast64_t refused, cut_idle, cut_slow, cut_gone;
};

#define HD_STREAM_OWNERS 64 /* principals holding long-lived answers at once */

struct httpd {
    struct MHD_Daemon *d;
    int tls;             /* HTTPS: --tls-cert and --tls-key */
    int mtls;            /* and a client needs a certificate --tls-client-ca signed */
    int exposed;         /* listening beyond loopback: never open, tokens or not */
    struct httpd_tls pem; /* kept until stop: libmicrohttpd keeps the pointers */
    idx_t *ix;
    int max_queries;
    /* The pool of long-lived answers (streams.c), under streams_mu. */
    pthread_mutex_t streams_mu;
    int max_streams, max_streams_each, nstreams;
    struct {
        char name[80];
        int n;
    } owners[HD_STREAM_OWNERS];
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
    int web_fd;                 /* the web console's root directory (-1: none) */
    char web_root[4096];
    struct ic *cases;           /* the case store (borrowed; NULL: no cases) */
    struct ic_ident_tap *idtap; /* identity counters (borrowed; NULL: none) */
    void (*metrics)(void *arg, FILE *f); /* more /metrics families (NULL: none) */
    const struct ex_sensors *federate;   /* --federate: /api/v1/packets across sensors */
    void *metrics_arg;
};

struct params {
    int n;
    const char *k[MAX_PARAMS], *v[MAX_PARAMS];
    int overflow;
    int head; /* a HEAD request: the headers of the answer only */
    struct auth_principal who; /* whom the request comes from */
    char client[80];            /* the client's address, for the audit trail */
    const char *url, *method;   /* the path (no query string) and method, as received */
    const char *body;           /* the request's body (POST, PATCH, DELETE, PUT), NUL-ended */
    size_t body_len;            /* its bytes; 0 and body "" when there was none */
    int body_too_big;           /* it exceeded HD_BODY_MAX and was discarded */
};

/* The largest request body kept (a case, a batch of identity records). */
#define HD_BODY_MAX (8u << 20)
/* A request's body as it arrives: what handle()'s *con_cls points to. */
struct hd_body;
/* A body collector for a request of method: a real one for the methods that
 * take a body, a shared one that discards for the others; NULL when out
 * of memory. */
struct hd_body *hd_body_new(const char *method);
/* Append what libmicrohttpd handed over (beyond HD_BODY_MAX: dropped, and
 * the request marked too big). */
void hd_body_add(struct hd_body *b, const char *data, size_t n);
/* Point p's body fields at b's bytes (valid until hd_body_free). */
void hd_body_params(const struct hd_body *b, struct params *p);
/* libmicrohttpd's request-completed callback: frees the body. */
void hd_body_free(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode toe);

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
/* Logs "http: MSG" as a warning, the same line at most once a minute. */
void hd_warn_limited(const char *msg);
#define HD_PLAIN_HINT "this port speaks plain HTTP: http://, not https://"
void hd_conn_close(struct httpd *h, void **socket_context);
/* A request began (busy 1) or its answer ended (0): which timeout applies. */
void hd_conn_state(struct httpd *h, struct hd_conn *k, int busy);
/* n more bytes of a request's body came in: a body arriving at --min-rate
 * or faster is not idle, however long it takes (HD_BODY_MAX bounds it). */
void hd_conn_received(struct httpd *h, struct hd_conn *k, size_t n);
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
/* Append the audit record ar (its request fields filled by the caller) with
 * who asked, from where and by which route ("GET path"); a failure to write
 * it is logged. Nothing when the server has no trail. */
void hd_audit(struct httpd *h, const struct params *p, const char *path, struct audit_rec *ar);

/* federate.c: /api/v1/packets across the sensors of h->federate. */
hd_handler_fn hd_route_fed_packets;
/* streams.c: a place in the pool of long-lived answers (follow=1, pull
 * intercept) for principal who, or RW_EBUSY saying which limit is reached;
 * given back with hd_stream_give. */
int hd_stream_take(struct httpd *h, const char *who, char *err) RW_WUR;
void hd_stream_give(struct httpd *h, const char *who);
int hd_streams_open(struct httpd *h);

/* analytics.c: /api/v1/flows, /api/v1/top, /api/v1/timeline. */
hd_handler_fn hd_route_flows, hd_route_top, hd_route_timeline;
/* The filter of a request with community_id=cid: the flows' filter, and
 * spec->filter if any (*out malloc'ed); RW_EINPUT, RW_ENOTFOUND with err. */
int hd_cid_filter(struct httpd *h, const char *cid, const struct qry_spec *spec, char **out,
                  char *err) RW_WUR;

/* web.c: the web console's files, GET / and GET /ui/NAME. */
hd_handler_fn hd_route_web;
/* Open the web root (NULL: no console). A root given (--web-root) without
 * index.html is RW_EINPUT; the default one is only warned about. */
int hd_web_open(struct httpd *h, const char *root, int given, char *err) RW_WUR;
void hd_web_close(struct httpd *h);
/* libmicrohttpd's unescaping of paths and parameters (%XX), but for %00,
 * which is left as written: a NUL never cuts a path or a value short. */
size_t hd_unescape(void *cls, struct MHD_Connection *c, char *s);
/* 1 if rel (a path below the web root) is plain segments of [A-Za-z0-9._-],
 * none empty or starting with '.'; exposed for tests. */
int hd_web_path_ok(const char *rel);
/* ---- lawful intercept (cases.c) ---- */
/* /api/v1/cases: GET the list (an agency: its own case), POST a new case. */
enum MHD_Result hd_route_cases(struct httpd *h, struct MHD_Connection *c, const struct params *p);
/* /api/v1/cases/ID: GET, PATCH, DELETE (ends it; the record stays). */
enum MHD_Result hd_route_case(struct httpd *h, struct MHD_Connection *c, const struct params *p);
/* Live intercept's per-case figures in /metrics and /api/v1/status. */
void hd_cases_metrics(struct httpd *h, FILE *f);
void hd_cases_status(struct httpd *h, json_t *j);
/* /api/v1/cases/ID/intercept?after=SEQ: pull delivery (intercept.c). */
enum MHD_Result hd_route_case_intercept(struct httpd *h, struct MHD_Connection *c,
                                        const struct params *p);
/* follow=1 on /api/v1/packets (follow.c): start following before the
 * archive's part is planned (its window is cut where following begins);
 * the answer's interfaces (the archive's, then the live points it lacks,
 * owned by hf); the next new packet (1), none yet (0: hd_follow_done says
 * whether the answer is over), or a failure that cuts the answer. */
struct hd_follow;
int hd_follow_start(struct httpd *h, struct qry_spec *spec, struct hd_follow **out, char *err);
const struct qry_point *hd_follow_points(struct httpd *h, struct hd_follow *hf,
                                         const struct qry_point *pts, int *npts);
int hd_follow_next(struct hd_follow *hf, struct qry_pkt *pkt, char *err);
int hd_follow_done(const struct hd_follow *hf);
void hd_follow_free(struct hd_follow *hf);
/* POST /api/v1/cases/ID/exports: an evidence bundle (exports.c). */
enum MHD_Result hd_route_case_exports(struct httpd *h, struct MHD_Connection *c,
                                      const struct params *p);
/* /api/v1/identities: GET a user's intervals, POST records as JSON lines. */
enum MHD_Result hd_route_identities(struct httpd *h, struct MHD_Connection *c,
                                    const struct params *p);
struct idx_ident;
/* An identity interval as the API writes it. */
json_t *hd_ident_json(const struct idx_ident *r);
/* The identity counters in /metrics (nothing without a tap). */
void hd_ident_metrics(struct httpd *h, FILE *f);

/* Application evidence (sessions.c): SMTP sessions and messages, VoIP calls. */
hd_handler_fn hd_route_smtp, hd_route_smtp_message, hd_route_calls, hd_route_call;

#endif
