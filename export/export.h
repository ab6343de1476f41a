/* export.h -- flow records leaving the sensor: into ClickHouse (one row
 * per flow per sealed segment, over its HTTP interface) and as IPFIX
 * (RFC 7011, libfixbuf) to any flow collector.
 *
 * Each sink runs on a thread of its own and reads the archive's index
 * only (never the capture path): it lists the catalogue every poll, sends
 * the flow records of every sealed segment it has not sent yet, in segment
 * id order, and remembers which it sent in a state file in the archive
 * directory (DIR/export-SINK.state, man/rewind-archive.5), written after
 * the sink accepted them. After a failure (collector unreachable, an
 * answer other than 200) the same segments are sent again, at growing
 * intervals, until they are taken: the backlog waits in the archive
 * (bounded by retention: a segment deleted before it was sent is never
 * sent). ClickHouse rows have a deterministic key, so that a
 * resend leaves no duplicate in a ReplacingMergeTree (ex_ch_schema).
 *
 * Functions return 0 or a negative RW_E* code with err filled. */
#ifndef EX_EXPORT_H
#define EX_EXPORT_H
#include <stdint.h>
#include <stdio.h>

#include "common/rw.h"

typedef struct idx idx_t;

/* The default ClickHouse database (a URL without ?database= uses it). */
#define EX_CH_DATABASE "rewind"

/* The DDL for ClickHouse (18.16 and later) of database db (NULL:
 * EX_CH_DATABASE): statements separated by ";\n\n", each one a single
 * request to the HTTP interface. A static buffer: not thread safe. */
const char *ex_ch_schema(const char *db);

struct ex_opts {
    const char *sensor;     /* sensor id in every row (required) */
    const char *clickhouse; /* ClickHouse HTTP URL, or NULL */
    const char *ch_auth;    /* file: one line "USER:PASSWORD" (or USER alone), or NULL */
    const char *ipfix;      /* "HOST:PORT", "udp://HOST:PORT" or "tcp://HOST:PORT", or NULL */
    int64_t poll_ns;        /* catalogue poll interval (0: 1 s) */
    int64_t retry_max_ns;   /* longest wait between retries (0: 30 s) */
    /* Events ("info", "warn", "error"): a sink that fails, and recovers. */
    void (*log)(void *arg, const char *level, const char *msg);
    void *log_arg;
};

/* "clickhouse=URL" (the argument of --export-flows) into the URL, checked
 * (http:// or https://, a host, no fragment). RW_EINPUT saying what is
 * wrong. *url points into arg. */
int ex_flows_target_parse(const char *arg, const char **url, char *err) RW_WUR;
/* Everything ex_start would refuse as bad input, without connecting: a
 * malformed URL or IPFIX address, an auth file that cannot be read or is
 * empty. RW_EINPUT naming the option. */
int ex_check_opts(const struct ex_opts *o, char *err) RW_WUR;

typedef struct ex ex_t;

/* Start a thread per configured sink over the archive in dir (its writer's
 * index ix, borrowed until ex_stop). With no sink configured, *out is NULL
 * and nothing starts. */
int ex_start(idx_t *ix, const char *dir, const struct ex_opts *o, ex_t **out, char *err) RW_WUR;
/* Stop the threads (a send in flight is cut) and free; NULL is fine. */
void ex_stop(ex_t *e);

/* What a sink has done, for /metrics and tests. */
struct ex_sink_state {
    char name[16];            /* "clickhouse", "ipfix" */
    int up;                   /* 1 if the last send succeeded (or none was needed) */
    uint64_t pending;         /* sealed segments not sent yet */
    int64_t lag_ns;           /* now minus the last packet of the oldest pending segment; 0 */
    uint64_t segments, flows; /* sent since start (rows, IPFIX records) */
    uint64_t failures;        /* failed sends since start */
    int64_t complete_ns;      /* every packet before this time has been sent */
};
/* The state of up to max sinks; returns how many. */
size_t ex_state(ex_t *e, struct ex_sink_state *out, size_t max);
/* The Prometheus families of the sinks (rewind_export_*), for /metrics. */
void ex_metrics(void *e, FILE *f);

/* ---- one query across sensors ---- */

/* A sensors file: one line per item, '#' starts a comment.
 *   clickhouse URL [auth=FILE]
 *   sensor NAME URL [token=TOKEN|token=@FILE] [ca=FILE]
 * NAME is the sensor's --sensor (the name in its ClickHouse rows), URL its
 * HTTP API (https://HOST:PORT), the token one of its tokens, the CA the
 * PEM file its certificate is checked against. */
struct ex_sensor {
    char name[65];
    char url[512];
    char token[160];
    char ca[512];
};
struct ex_sensors {
    char clickhouse[512]; /* "" if none */
    char ch_user[128], ch_pass[256];
    struct ex_sensor *s;
    size_t n;
};
/* RW_EINPUT "FILE line N: what is wrong" for a malformed file. */
int ex_sensors_load(const char *path, struct ex_sensors *out, char *err) RW_WUR;
void ex_sensors_free(struct ex_sensors *ss);

/* An HTTP GET of base + path with "Authorization: Bearer token" (token
 * NULL or ""), the server checked against the PEM file ca (NULL: the
 * system's), the body of a 2xx answer streamed to sink; *status the HTTP
 * status (0: no answer). 4xx: RW_EINPUT, else RW_EIO, with the server's
 * message. The CLI gives one over its dlopen()ed libcurl, the daemon
 * ex_http_get. */
typedef int (*ex_get_fn)(const char *base, const char *path, const char *token, const char *ca,
                         int (*sink)(void *arg, const void *buf, size_t n), void *arg,
                         long *status, char *err);
/* ex_get_fn over libcurl (linked: rewindd). */
int ex_http_get(const char *base, const char *path, const char *token, const char *ca,
                int (*sink)(void *arg, const void *buf, size_t n), void *arg, long *status,
                char *err);

/* A query across sensors: which to ask (ClickHouse's flows, see
 * rewind(1)), their answers fetched in parallel into temporary files. */
struct ex_fed_query {
    int64_t from, to;   /* from may be RW_TIME_MIN; to is absolute */
    const char *filter; /* BPF, "" for all */
    const char *cid;    /* Community ID or NULL */
};
typedef struct ex_fed ex_fed_t;
/* The ClickHouse condition ClickHouse is asked with for a flow filter: a
 * superset of the flows it matches (host, port, protocol and family words;
 * and/or; the rest, not included, taken as 1), "1" when none can be made.
 * Only numbers and hex addresses from filter reach it. */
void ex_fed_filter_sql(const char *filter, char *out, size_t n);
/* Ask. Returns 0 with *out even when sensors failed (ex_fed_failed says
 * which); <0 only when nothing could be asked. */
int ex_fed_fetch(const struct ex_sensors *ss, const struct ex_fed_query *q, ex_get_fn get,
                 ex_fed_t **out, char *err) RW_WUR;
/* What was asked and why ("asking east, west (no matching flow in
 * ClickHouse on north)"), and a warning when ClickHouse could not say. */
const char *ex_fed_asked(const ex_fed_t *f);
const char *ex_fed_warning(const ex_fed_t *f);
/* Sensors asked, and of those failed; *what: "sensor NAME (URL): error;
 * ...", *input: 1 if every failure was a 4xx (a bad request). */
size_t ex_fed_failed(const ex_fed_t *f, size_t *asked, const char **what, int *input);
/* 1 if sensor i of the file was asked. */
int ex_fed_was_asked(const ex_fed_t *f, size_t i);
/* Merge the answers that arrived into out (ex_pcapng_merge); with
 * failures, a closing comment names what is missing. */
int ex_fed_write(ex_fed_t *f, FILE *out, uint64_t *packets, char *err) RW_WUR;
void ex_fed_free(ex_fed_t *f);

/* Flows and top talkers across the sensors, from ss's ClickHouse alone
 * (FINAL rows of the window; the filter a flow filter; points named
 * SENSOR:POINT), as analytics.h answers them for one archive, except that
 * a 5-tuple's rows are one flow whatever the pauses between them, and top
 * talkers count only packets that flows name. RW_EINPUT for a filter that
 * is not a flow filter or a file without ClickHouse; RW_EIO when
 * ClickHouse fails. Free with an_flows_free / an_top_free. */
struct an_flow_query;
struct an_flows;
struct an_top_query;
struct an_top;
int ex_fed_flows(const struct ex_sensors *ss, ex_get_fn get, const struct an_flow_query *q,
                 struct an_flows *out, char *err) RW_WUR;
int ex_fed_top(const struct ex_sensors *ss, ex_get_fn get, const struct an_top_query *q,
               struct an_top *out, char *err) RW_WUR;

/* One sensor's answer to merge: a pcapng stream as rewindd writes it
 * (one section, its interfaces first). */
struct ex_merge_in {
    const char *sensor;
    FILE *f; /* read from where it stands */
};
/* Merge the answers by timestamp (the earliest head first; a tie goes to
 * the later input, as mergecap does) into one pcapng section on out,
 * with one interface per sensor:point. A non-empty note is written last,
 * as a comment (an Interface Statistics Block of interface 0). *packets:
 * packets written. RW_EINPUT naming the sensor for a stream that is not
 * such pcapng; RW_EIO if writing failed. */
int ex_pcapng_merge(const struct ex_merge_in *in, size_t n, const char *note, FILE *out,
                    uint64_t *packets, char *err) RW_WUR;

#endif
