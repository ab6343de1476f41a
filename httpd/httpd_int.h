/* httpd_int.h -- what the files of httpd/ share: the server's state, a
 * request's parameters, the answer helpers and the route handlers. Not for
 * other modules (httpd.h is the contract). A route is a row of the table in
 * httpd.c; its handler may live in a file of its own (analytics.c, ...). */
#ifndef HTTPD_INT_H
#define HTTPD_INT_H
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>
#include <stdio.h>

#include "httpd/httpd.h"
#include "httpd/tls.h"
#include "auth/audit.h"
#include "query/query.h"

#define MAX_PARAMS 32
#define NBUCKETS 9

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

/* Append the audit record ar (its request fields filled by the caller) with
 * who asked, from where and by which route ("GET path"); a failure to write
 * it is logged. Nothing when the server has no trail. */
void hd_audit(struct httpd *h, const struct params *p, const char *path, struct audit_rec *ar);

/* federate.c: /api/v1/packets across the sensors of h->federate. */
hd_handler_fn hd_route_fed_packets;
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

#endif
