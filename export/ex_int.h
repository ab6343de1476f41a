/* ex_int.h -- what the feeder (feed.c) and the sinks (clickhouse.c,
 * ipfix.c) share inside the export module. */
#ifndef EX_INT_H
#define EX_INT_H
#include "export/export.h"
#include "index/index.h"

/* One segment handed to a sink, with its point's name. */
struct ex_seg {
    struct idx_seg s;
    char point[65];
};

/* A batch: segments to send, in id order, and what is then complete. */
struct ex_batch {
    const char *sensor;
    const struct ex_seg *segs;
    size_t n;
    int64_t complete_ns; /* every packet before this has been sent once this batch is */
};

struct ex_sink {
    const char *name;
    void *ctx;
    /* Send every flow record of the batch; *flows: records sent. cancel
     * becomes nonzero when the sink should give up at once. */
    int (*send)(void *ctx, idx_t *ix, const struct ex_batch *b, uint64_t *flows,
                volatile int *cancel, char *err);
    /* The archive's oldest packet is now at oldest_ns (its first day's
     * start, UTC): drop what the sink keeps of this sensor's older days.
     * NULL: the sink keeps nothing to drop. Called when that day changes. */
    int (*retire)(void *ctx, const char *sensor, int64_t oldest_ns, volatile int *cancel,
                  char *err);
    void (*free)(void *ctx);
};

int ex_ch_sink(const struct ex_opts *o, struct ex_sink *out, char *err) RW_WUR;
int ex_ipfix_sink(const struct ex_opts *o, struct ex_sink *out, char *err) RW_WUR;
int ex_ipfix_check(const char *spec, char *err) RW_WUR;
int ex_ch_check(const char *url, const char *auth, char *err) RW_WUR;

/* A SELECT on the ClickHouse of ss (its login as HTTP basic
 * authentication), the answer to sink; errors name the server, never the
 * password. */
int ex_ch_select(const struct ex_sensors *ss, ex_get_fn get, const char *sql,
                 int (*sink)(void *arg, const void *buf, size_t n), void *arg, char *err) RW_WUR;

/* IPv4 in its IPv4-mapped IPv6 form (::ffff:a.b.c.d), IPv6 as is. */
/* A growing NUL-ended buffer for what ClickHouse answers (ex_ch_select's
 * sink): at most max bytes, else the sink fails. Caller frees p. */
struct ex_mem {
    char *p;
    size_t n, cap, max;
};
int ex_mem_sink(void *arg, const void *buf, size_t n);

void ex_addr16(uint8_t family, const uint8_t in[16], uint8_t out[16]);

#endif
