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
