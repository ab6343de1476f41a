/* feed.c -- the export threads: which sealed segments a sink has not been
 * sent yet, handing them over in batches, remembering what it took in a
 * state file, retrying after a failure. */
#include "export/ex_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define MAX_SINKS 2
#define BATCH_SEGS 64
#define BATCH_PACKETS 4000000 /* a batch is cut after this many packets' segments */

/* What a sink has sent: every segment id below low, and those in done[]. */
struct mark {
    uint64_t low;
    uint64_t *done;
    size_t n, cap;
};

struct feed {
    struct ex *e;
    struct ex_sink sink;
    char state_path[4096];
    struct mark m;
    pthread_t th;
    int started;
    volatile int stop;
    pthread_mutex_t mu; /* guards st, the wake-up */
    pthread_cond_t cv;
    struct ex_sink_state st;
    int64_t retired_day; /* the oldest day retire() was told of; INT64_MIN: none yet */
};

struct ex {
    idx_t *ix;
    char sensor[128];
    struct ex_opts o;
    struct feed f[MAX_SINKS];
    int n;
};

void ex_addr16(uint8_t family, const uint8_t in[16], uint8_t out[16])
{
    if (family == 4) {
        memset(out, 0, 10);
        out[10] = out[11] = 0xff;
        memcpy(out + 12, in, 4);
    } else {
        memcpy(out, in, 16);
    }
}

static void logf_(struct ex *e, const char *level, const char *fmt, ...) RW_PRINTF(3, 4);
static void logf_(struct ex *e, const char *level, const char *fmt, ...)
{
    char msg[RW_ERRSZ + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (e->o.log)
        e->o.log(e->o.log_arg, level, msg);
}

/* ---- the state file ---- */

static int mark_has(const struct mark *m, uint64_t id)
{
    if (id < m->low)
        return 1;
    for (size_t i = 0; i < m->n; i++)
        if (m->done[i] == id)
            return 1;
    return 0;
}

static int mark_add(struct mark *m, uint64_t id)
{
    if (mark_has(m, id))
        return 0;
    if (m->n == m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 64;
        uint64_t *d = realloc(m->done, nc * sizeof *d);
        if (!d)
            return -1;
        m->done = d;
        m->cap = nc;
    }
    m->done[m->n++] = id;
    return 0;
}

/* Raise low to the first segment of the catalogue not sent yet, and drop
 * the done ids below it. */
static void mark_compact(struct mark *m, const struct idx_seg *segs, size_t n)
{
    uint64_t low = UINT64_MAX;
    for (size_t i = 0; i < n; i++) {
        if (!mark_has(m, segs[i].id)) {
            low = segs[i].id;
            break;
        }
    }
    if (low == UINT64_MAX) { /* all sent: everything up to the last one */
        uint64_t top = m->low;
        for (size_t i = 0; i < n; i++)
            if (segs[i].id + 1 > top)
                top = segs[i].id + 1;
        low = top;
    }
    if (low < m->low)
        low = m->low;
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++)
        if (m->done[i] >= low)
            m->done[k++] = m->done[i];
    m->n = k;
    m->low = low;
}

/* "rewind-export 1\nlow N\ndone N\n..." */
static int state_load(struct feed *f, char *err)
{
    FILE *fp = fopen(f->state_path, "r");
    if (!fp) {
        if (errno == ENOENT)
            return 0;
        return rw_err(err, RW_EIO, "%s: %s", f->state_path, strerror(errno));
    }
    char line[128];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, fp)) {
        unsigned long long v;
        lineno++;
        if (lineno == 1) {
            if (strcmp(line, "rewind-export 1\n")) {
                rc = rw_err(err, RW_ECORRUPT, "%s: not a rewind export state file (line 1)",
                            f->state_path);
                break;
            }
        } else if (sscanf(line, "low %llu", &v) == 1) {
            f->m.low = v;
        } else if (sscanf(line, "done %llu", &v) == 1) {
            if (mark_add(&f->m, v) < 0) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                break;
            }
        } else {
            rc = rw_err(err, RW_ECORRUPT, "%s: line %d is malformed; delete the file to send "
                        "every segment again", f->state_path, lineno);
            break;
        }
    }
    fclose(fp);
    return rc;
}

static int state_save(struct feed *f, char *err)
{
    char tmp[4200];
    snprintf(tmp, sizeof tmp, "%s.tmp", f->state_path);
    FILE *fp = fopen(tmp, "w");
    if (!fp)
        return rw_err(err, RW_EIO, "%s: %s", tmp, strerror(errno));
    fprintf(fp, "rewind-export 1\nlow %" PRIu64 "\n", f->m.low);
    for (size_t i = 0; i < f->m.n; i++)
        fprintf(fp, "done %" PRIu64 "\n", f->m.done[i]);
    int bad = fflush(fp) != 0 || fdatasync(fileno(fp)) != 0;
    bad |= fclose(fp) != 0;
    if (bad || rename(tmp, f->state_path) < 0) {
        int e = errno;
        unlink(tmp);
        return rw_err(err, RW_EIO, "%s: %s", f->state_path, strerror(e));
    }
    return 0;
}

/* ---- the thread ---- */

/* Wait up to ns, or until stopped. */
static void nap(struct feed *f, int64_t ns)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    int64_t t = ts.tv_sec * RW_NS_PER_SEC + ts.tv_nsec + ns;
    ts.tv_sec = t / RW_NS_PER_SEC;
    ts.tv_nsec = t % RW_NS_PER_SEC;
    pthread_mutex_lock(&f->mu);
    if (!f->stop)
        pthread_cond_timedwait(&f->cv, &f->mu, &ts);
    pthread_mutex_unlock(&f->mu);
}

static const char *point_name(const struct idx_point *pts, size_t np, uint32_t id)
{
    for (size_t i = 0; i < np; i++)
        if (pts[i].id == id)
            return pts[i].name;
    return "?";
}

/* One pass: list the catalogue, send one batch if any is pending.
 * Returns 1 if a batch was sent, 0 if nothing was pending, <0 on failure. */
static int step(struct feed *f, char *err)
{
    struct ex *e = f->e;
    struct idx_seg *segs = NULL;
    struct idx_point *pts = NULL;
    size_t n = 0, np = 0;
    struct ex_seg *b = NULL;
    int rc;
    if ((rc = idx_seg_all(e->ix, &segs, &n, err)) < 0)
        return rc;
    if ((rc = idx_point_list(e->ix, &pts, &np, err)) < 0)
        goto out;
    b = calloc(BATCH_SEGS, sizeof *b);
    if (!b) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    /* Pending: sealed segments with packets not sent yet, in id order. */
    size_t nb = 0, pending = 0;
    uint64_t pkts = 0;
    int64_t now = rw_now_ns(), oldest = 0;
    for (size_t i = 0; i < n; i++) {
        const struct idx_seg *s = &segs[i];
        if (s->state != IDX_SEG_SEALED || mark_has(&f->m, s->id))
            continue;
        if (s->packets == 0) { /* nothing to send: taken as sent */
            if (mark_add(&f->m, s->id) < 0) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                goto out;
            }
            continue;
        }
        if (!pending++)
            oldest = s->max_ts;
        if (nb < BATCH_SEGS && (nb == 0 || pkts + s->packets <= BATCH_PACKETS)) {
            b[nb].s = *s;
            snprintf(b[nb].point, sizeof b[nb].point, "%s", point_name(pts, np, s->point));
            pkts += s->packets;
            nb++;
        }
    }
    /* Complete: before the first packet of any segment left unsent once
     * this batch is taken (open ones included), else up to now less the
     * index's commit interval. */
    int64_t complete = now - 5 * RW_NS_PER_SEC;
    for (size_t i = 0; i < n; i++) {
        const struct idx_seg *s = &segs[i];
        int inb = 0;
        for (size_t k = 0; k < nb && !inb; k++)
            inb = b[k].s.id == s->id;
        if (inb || mark_has(&f->m, s->id) || s->packets == 0)
            continue;
        if (s->min_ts < complete)
            complete = s->min_ts;
    }
    pthread_mutex_lock(&f->mu);
    f->st.pending = pending;
    f->st.lag_ns = pending && now > oldest ? now - oldest : 0;
    pthread_mutex_unlock(&f->mu);
    /* Retention moved the archive's first day: the sink drops older ones. */
    int64_t first = INT64_MAX;
    for (size_t i = 0; i < n; i++)
        if (segs[i].packets && segs[i].min_ts < first)
            first = segs[i].min_ts;
    if (f->sink.retire && first != INT64_MAX) {
        int64_t day = first / (86400 * RW_NS_PER_SEC);
        if (first < 0 && first % (86400 * RW_NS_PER_SEC))
            day--;
        if (day != f->retired_day) {
            if ((rc = f->sink.retire(f->sink.ctx, e->sensor, day * 86400 * RW_NS_PER_SEC,
                                     &f->stop, err)) < 0)
                goto out;
            f->retired_day = day;
        }
    }
    if (nb == 0) {
        mark_compact(&f->m, segs, n);
        pthread_mutex_lock(&f->mu);
        f->st.complete_ns = complete;
        pthread_mutex_unlock(&f->mu);
        rc = 0;
        goto out;
    }
    struct ex_batch batch = {.sensor = e->sensor, .segs = b, .n = nb, .complete_ns = complete};
    uint64_t flows = 0;
    if ((rc = f->sink.send(f->sink.ctx, e->ix, &batch, &flows, &f->stop, err)) < 0)
        goto out;
    for (size_t k = 0; k < nb; k++)
        if (mark_add(&f->m, b[k].s.id) < 0) {
            rc = rw_err(err, RW_ENOMEM, "out of memory");
            goto out;
        }
    mark_compact(&f->m, segs, n);
    if ((rc = state_save(f, err)) < 0)
        goto out;
    pthread_mutex_lock(&f->mu);
    f->st.segments += nb;
    f->st.flows += flows;
    f->st.pending = pending - nb;
    f->st.complete_ns = complete;
    if (f->st.pending == 0)
        f->st.lag_ns = 0;
    pthread_mutex_unlock(&f->mu);
    rc = 1;
out:
    free(segs);
    free(pts);
    free(b);
    return rc;
}

static void *run(void *arg)
{
    struct feed *f = arg;
    struct ex *e = f->e;
    int64_t poll = e->o.poll_ns > 0 ? e->o.poll_ns : RW_NS_PER_SEC;
    int64_t rmax = e->o.retry_max_ns > 0 ? e->o.retry_max_ns : 30 * RW_NS_PER_SEC;
    int64_t wait = 0;
    int failing = 0;
    char err[RW_ERRSZ];
    while (!f->stop) {
        int rc = step(f, err);
        if (f->stop)
            break;
        if (rc < 0) {
            wait = wait ? wait * 2 : RW_NS_PER_SEC / 2;
            if (wait > rmax)
                wait = rmax;
            pthread_mutex_lock(&f->mu);
            f->st.up = 0;
            f->st.failures++;
            uint64_t pend = f->st.pending;
            pthread_mutex_unlock(&f->mu);
            if (!failing)
                logf_(e, "warn", "export to %s: %s; %llu segments wait in the archive, retrying",
                      f->sink.name, err, (unsigned long long)pend);
            failing = 1;
            nap(f, wait);
            continue;
        }
        if (failing)
            logf_(e, "info", "export to %s works again", f->sink.name);
        failing = 0;
        wait = 0;
        pthread_mutex_lock(&f->mu);
        f->st.up = 1;
        pthread_mutex_unlock(&f->mu);
        if (rc == 0)
            nap(f, poll);
    }
    return NULL;
}

/* ---- options ---- */

int ex_flows_target_parse(const char *arg, const char **url, char *err)
{
    static const char pre[] = "clickhouse=";
    if (strncmp(arg, pre, sizeof pre - 1))
        return rw_err(err, RW_EINPUT, "--export-flows takes clickhouse=URL (e.g. "
                      "clickhouse=http://127.0.0.1:8123/?database=rewind), not '%s'", arg);
    *url = arg + sizeof pre - 1;
    return ex_ch_check(*url, NULL, err);
}

int ex_check_opts(const struct ex_opts *o, char *err)
{
    int rc;
    if (o->clickhouse && (rc = ex_ch_check(o->clickhouse, o->ch_auth, err)) < 0)
        return rc;
    if (o->ch_auth && !o->clickhouse)
        return rw_err(err, RW_EINPUT, "--export-auth without --export-flows: there is no "
                      "ClickHouse to log in to");
    if (o->ipfix && (rc = ex_ipfix_check(o->ipfix, err)) < 0)
        return rc;
    return 0;
}

int ex_start(idx_t *ix, const char *dir, const struct ex_opts *o, ex_t **out, char *err)
{
    int rc;
    *out = NULL;
    if (!o->clickhouse && !o->ipfix)
        return 0;
    if ((rc = ex_check_opts(o, err)) < 0)
        return rc;
    struct ex *e = calloc(1, sizeof *e);
    if (!e)
        return rw_err(err, RW_ENOMEM, "out of memory");
    e->ix = ix;
    e->o = *o;
    snprintf(e->sensor, sizeof e->sensor, "%s", o->sensor ? o->sensor : "rewind");
    for (int k = 0; k < 2; k++) {
        const char *name = k == 0 ? "clickhouse" : "ipfix";
        if (k == 0 ? !o->clickhouse : !o->ipfix)
            continue;
        struct feed *f = &e->f[e->n];
        f->e = e;
        pthread_mutex_init(&f->mu, NULL);
        pthread_cond_init(&f->cv, NULL);
        snprintf(f->st.name, sizeof f->st.name, "%s", name);
        f->retired_day = INT64_MIN;
        f->st.up = 1;
        snprintf(f->state_path, sizeof f->state_path, "%s/export-%s.state", dir, name);
        e->n++;
        if ((rc = state_load(f, err)) < 0)
            goto fail;
        rc = k == 0 ? ex_ch_sink(o, &f->sink, err) : ex_ipfix_sink(o, &f->sink, err);
        if (rc < 0)
            goto fail;
    }
    for (int i = 0; i < e->n; i++) {
        if (pthread_create(&e->f[i].th, NULL, run, &e->f[i]) != 0) {
            rc = rw_err(err, RW_EIO, "cannot start the export thread");
            goto fail;
        }
        e->f[i].started = 1;
    }
    *out = e;
    return 0;
fail:
    ex_stop(e);
    return rc;
}

void ex_stop(ex_t *e)
{
    if (!e)
        return;
    for (int i = 0; i < e->n; i++) {
        struct feed *f = &e->f[i];
        pthread_mutex_lock(&f->mu);
        f->stop = 1;
        pthread_cond_broadcast(&f->cv);
        pthread_mutex_unlock(&f->mu);
    }
    for (int i = 0; i < e->n; i++) {
        struct feed *f = &e->f[i];
        if (f->started)
            pthread_join(f->th, NULL);
        if (f->sink.free)
            f->sink.free(f->sink.ctx);
        free(f->m.done);
        pthread_mutex_destroy(&f->mu);
        pthread_cond_destroy(&f->cv);
    }
    free(e);
}

size_t ex_state(ex_t *e, struct ex_sink_state *out, size_t max)
{
    size_t n = 0;
    for (int i = 0; e && i < e->n && n < max; i++) {
        pthread_mutex_lock(&e->f[i].mu);
        out[n++] = e->f[i].st;
        pthread_mutex_unlock(&e->f[i].mu);
    }
    return n;
}

void ex_metrics(void *arg, FILE *f)
{
    struct ex_sink_state st[MAX_SINKS];
    size_t n = ex_state(arg, st, MAX_SINKS);
    if (!n)
        return;
    static const char *const fams[][3] = {
        {"rewind_export_up", "gauge", "1 if the last send to the sink succeeded, else 0."},
        {"rewind_export_pending_segments", "gauge", "Sealed segments not sent to the sink yet."},
        {"rewind_export_lag_seconds", "gauge",
         "Age of the last packet of the oldest segment not sent yet (0: none waits)."},
        {"rewind_export_segments_total", "counter", "Segments sent since the daemon started."},
        {"rewind_export_flows_total", "counter",
         "Flow records sent (ClickHouse rows, IPFIX flow pairs) since the daemon started."},
        {"rewind_export_failures_total", "counter", "Failed sends since the daemon started."}};
    for (int m = 0; m < 6; m++) {
        fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", fams[m][0], fams[m][2], fams[m][0], fams[m][1]);
        for (size_t i = 0; i < n; i++) {
            if (m == 2) {
                fprintf(f, "%s{sink=\"%s\"} %.3f\n", fams[m][0], st[i].name,
                        (double)st[i].lag_ns / RW_NS_PER_SEC);
                continue;
            }
            uint64_t v = m == 0 ? (uint64_t)st[i].up : m == 1 ? st[i].pending
                         : m == 3 ? st[i].segments : m == 4 ? st[i].flows : st[i].failures;
            fprintf(f, "%s{sink=\"%s\"} %llu\n", fams[m][0], st[i].name, (unsigned long long)v);
        }
    }
}
