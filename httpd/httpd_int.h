/* httpd_int.h -- what the files of httpd/ share: the server's state, a
 * request's parameters, the answer helpers and the route handlers. Not for
 * other modules (httpd.h is the contract). A route is a row of the table in
 * httpd.c; its handler may live in a file of its own (analytics.c, ...). */
#ifndef HTTPD_INT_H
#define HTTPD_INT_H
#include <jansson.h>
#include <microhttpd.h>
#include <stdatomic.h>

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
};

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

/* federate.c: /api/v1/packets across the sensors of h->federate. */
hd_handler_fn hd_route_fed_packets;
/* analytics.c: /api/v1/flows, /api/v1/top, /api/v1/timeline. */
hd_handler_fn hd_route_flows, hd_route_top, hd_route_timeline;
/* The filter of a request with community_id=cid: the flows' filter, and
 * spec->filter if any (*out malloc'ed); RW_EINPUT, RW_ENOTFOUND with err. */
int hd_cid_filter(struct httpd *h, const char *cid, const struct qry_spec *spec, char **out,
                  char *err) RW_WUR;

#endif
