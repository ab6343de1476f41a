/* output.c -- flows, top talkers and timelines as JSON or CSV, the same
 * bytes for the HTTP API and the command line (man/rewindd.8 names the
 * fields). */
#include "analytics/an_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

static void put_time(FILE *f, int64_t ns)
{
    char b[48];
    an_json_str(f, rw_time_fmt(ns, b, sizeof b));
}

static void put_window(FILE *f, int64_t from, int64_t to)
{
    fputs("\"from\":", f);
    if (from == RW_TIME_MIN)
        fputs("null", f);
    else
        put_time(f, from);
    fputs(",\"to\":", f);
    if (to == RW_TIME_MAX)
        fputs("null", f);
    else
        put_time(f, to);
}

/* TCP flags as letters, in the order of the flags byte from its low bit:
 * FIN SYN RST PSH ACK URG ECE CWR. */
static void tcp_flags(uint8_t fl, char out[9])
{
    static const char letters[] = "FSRPAUEC";
    int n = 0;
    for (int i = 0; i < 8; i++)
        if (fl & (1u << i))
            out[n++] = letters[i];
    out[n] = 0;
}

static const char *const sort_names[] = {"bytes", "packets", "start", "duration"};

void an_flows_write_head(FILE *f, const struct an_flow_query *q, const struct an_flows *r,
                         enum an_format fmt)
{
    if (fmt == AN_CSV) {
        fputs("point,proto,vlan,src,sport,dst,dport,first,last,duration,packets_fwd,bytes_fwd,"
              "packets_rev,bytes_rev,packets,bytes,tcp_flags,community_id\n", f);
        return;
    }
    fputc('{', f);
    put_window(f, q->from, q->to);
    fputs(",\"filter\":", f);
    an_json_str(f, q->filter ? q->filter : "");
    if (q->community_id) {
        fputs(",\"community_id\":", f);
        an_json_str(f, q->community_id);
    }
    fprintf(f, ",\"sort\":\"%s\",\"matched\":%llu,\"returned\":%zu,\"flows\":[",
            sort_names[q->sort], (unsigned long long)r->matched, r->n);
}

/* A row is built in a buffer by hand, not by printf: a million flows are
 * a million rows, and formatting was most of their cost. */
struct rowbuf {
    char b[1024];
    size_t n;
    int64_t tsec;   /* the second whose text tdate holds (-1: none) */
    char tdate[24]; /* "YYYY-MM-DDTHH:MM:SS" */
};

static void rb_str(struct rowbuf *r, const char *s)
{
    size_t l = strlen(s);
    if (r->n + l < sizeof r->b) {
        memcpy(r->b + r->n, s, l);
        r->n += l;
    }
}

/* Two digits at a time, from a table of "00".."99". */
static const char digits2[201] = "0001020304050607080910111213141516171819"
                                 "2021222324252627282930313233343536373839"
                                 "4041424344454647484950515253545556575859"
                                 "6061626364656667686970717273747576777879"
                                 "8081828384858687888990919293949596979899";

static void rb_u64(struct rowbuf *r, uint64_t v)
{
    char t[24];
    int i = 24;
    while (v >= 100) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        t[--i] = digits2[2 * d + 1];
        t[--i] = digits2[2 * d];
    }
    if (v >= 10) {
        t[--i] = digits2[2 * v + 1];
        t[--i] = digits2[2 * v];
    } else {
        t[--i] = (char)('0' + v);
    }
    if (r->n + (size_t)(24 - i) < sizeof r->b) {
        memcpy(r->b + r->n, t + i, (size_t)(24 - i));
        r->n += (size_t)(24 - i);
    }
}

/* digits of v, zero-padded to width w */
static void rb_pad(struct rowbuf *r, uint64_t v, int w)
{
    if (r->n + (size_t)w >= sizeof r->b)
        return;
    int i = w - 1;
    for (; i >= 1; i -= 2) {
        unsigned d = (unsigned)(v % 100);
        v /= 100;
        r->b[r->n + (size_t)i] = digits2[2 * d + 1];
        r->b[r->n + (size_t)i - 1] = digits2[2 * d];
    }
    if (i == 0)
        r->b[r->n] = (char)('0' + v % 10);
    r->n += (size_t)w;
}

/* The time as rw_time_fmt() writes it (RFC 3339, nanoseconds, Z). */
static void rb_time(struct rowbuf *r, int64_t ns)
{
    int64_t sec = ns / RW_NS_PER_SEC, frac = ns % RW_NS_PER_SEC;
    if (frac < 0) {
        frac += RW_NS_PER_SEC;
        sec--;
    }
    if (sec != r->tsec) {
        char full[48];
        rw_time_fmt(sec * RW_NS_PER_SEC, full, sizeof full);
        if (strlen(full) < 19) { /* not a calendar time: as rw_time_fmt has it */
            rw_time_fmt(ns, full, sizeof full);
            rb_str(r, full);
            return;
        }
        memcpy(r->tdate, full, 19);
        r->tdate[19] = 0;
        r->tsec = sec;
    }
    rb_str(r, r->tdate);
    rb_str(r, ".");
    rb_pad(r, (uint64_t)frac, 9);
    rb_str(r, "Z");
}

/* seconds with 9 decimals, of a non-negative duration */
static void rb_dur(struct rowbuf *r, int64_t ns)
{
    if (ns < 0)
        ns = 0;
    rb_u64(r, (uint64_t)(ns / RW_NS_PER_SEC));
    rb_str(r, ".");
    rb_pad(r, (uint64_t)(ns % RW_NS_PER_SEC), 9);
}

static void rb_json_str(struct rowbuf *r, const char *s)
{
    rb_str(r, "\"");
    for (; *s && r->n + 8 < sizeof r->b; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            r->b[r->n++] = '\\';
            r->b[r->n++] = (char)c;
        } else if (c < 0x20) {
            r->n += (size_t)snprintf(r->b + r->n, 8, "\\u%04x", c);
        } else {
            r->b[r->n++] = (char)c;
        }
    }
    rb_str(r, "\"");
}

/* Row i of the answer (in its order) into rb. */
static void format_row(struct rowbuf *rb, const struct an_flows *r, size_t i, enum an_format fmt)
{
    char a[64], b[64], fl[9];
    const struct an_flow *x = &r->flows[r->order ? r->order[i] : i];
    const char *pn = an_proto_name(x->proto), *point = an_flow_point(r, x);
    int icmp = x->proto == 1 || x->proto == 58, csv = fmt == AN_CSV;
    tcp_flags(x->tcp_flags, fl);
    an_addr(x->family, x->src, a, sizeof a);
    an_addr(x->family, x->dst, b, sizeof b);
    rb->n = 0;
    if (csv) {
        rb_str(rb, point);
        rb_str(rb, ",");
        if (pn)
            rb_str(rb, pn);
        else
            rb_u64(rb, x->proto);
        rb_str(rb, ",");
        rb_u64(rb, x->vlan);
        rb_str(rb, ",");
        rb_str(rb, a);
        rb_str(rb, ",");
        rb_u64(rb, x->sport);
        rb_str(rb, ",");
        rb_str(rb, b);
        rb_str(rb, ",");
        rb_u64(rb, x->dport);
        rb_str(rb, ",");
        rb_time(rb, x->first);
        rb_str(rb, ",");
        rb_time(rb, x->last);
        rb_str(rb, ",");
    } else {
        rb_str(rb, i ? ",\n{\"point\":" : "\n{\"point\":");
        rb_json_str(rb, point);
        rb_str(rb, ",\"proto\":");
        rb_u64(rb, x->proto);
        if (pn) {
            rb_str(rb, ",\"proto_name\":\"");
            rb_str(rb, pn);
            rb_str(rb, "\"");
        }
        rb_str(rb, ",\"vlan\":");
        rb_u64(rb, x->vlan);
        rb_str(rb, ",\"src\":\"");
        rb_str(rb, a);
        rb_str(rb, icmp ? "\",\"icmp_type\":" : "\",\"sport\":");
        rb_u64(rb, x->sport);
        rb_str(rb, ",\"dst\":\"");
        rb_str(rb, b);
        rb_str(rb, icmp ? "\",\"icmp_code\":" : "\",\"dport\":");
        rb_u64(rb, x->dport);
        rb_str(rb, ",\"first\":\"");
        rb_time(rb, x->first);
        rb_str(rb, "\",\"last\":\"");
        rb_time(rb, x->last);
        rb_str(rb, "\",\"duration\":");
    }
    const char *const jn[] = {",\"packets_fwd\":", ",\"bytes_fwd\":", ",\"packets_rev\":",
                              ",\"bytes_rev\":", ",\"packets\":", ",\"bytes\":"};
    const uint64_t v[] = {x->pkts_fwd, x->bytes_fwd, x->pkts_rev, x->bytes_rev,
                          x->pkts_fwd + x->pkts_rev, x->bytes_fwd + x->bytes_rev};
    rb_dur(rb, x->last - x->first);
    for (int k = 0; k < 6; k++) {
        rb_str(rb, csv ? "," : jn[k]);
        rb_u64(rb, v[k]);
    }
    if (csv) {
        rb_str(rb, ",");
        rb_str(rb, fl);
        rb_str(rb, ",");
        rb_str(rb, x->community_id);
        rb_str(rb, "\n");
    } else {
        if (x->proto == 6) {
            rb_str(rb, ",\"tcp_flags\":\"");
            rb_str(rb, fl);
            rb_str(rb, "\"");
        }
        rb_str(rb, ",\"community_id\":\"");
        rb_str(rb, x->community_id);
        rb_str(rb, "\"}");
    }
}

/* Ask for the row a few ahead of i (rows are read in the answer's order,
 * which jumps about memory). */
static void prefetch_row(const struct an_flows *r, size_t i, size_t j)
{
    if (r->order && i + 16 < r->n && i + 16 < j) {
        const char *ahead = (const char *)&r->flows[r->order[i + 16]];
        an_prefetch(ahead);
        an_prefetch(ahead + 64);
        an_prefetch(ahead + sizeof(struct an_flow) - 1);
    }
}

void an_flows_write_rows(FILE *f, const struct an_flows *r, size_t i, size_t j,
                         enum an_format fmt)
{
    struct rowbuf rb = {.tsec = -1};
    for (; i < j && i < r->n; i++) {
        prefetch_row(r, i, j);
        format_row(&rb, r, i, fmt);
        fwrite(rb.b, 1, rb.n, f);
    }
}

void an_flows_write_tail(FILE *f, enum an_format fmt)
{
    if (fmt == AN_JSON)
        fputs("]}\n", f);
}

/* ------------------------------------------- a big answer on two cores */

/* A big answer is formatted by two threads, chunk by chunk: this one takes
 * the even chunks and writes every chunk in order, a helper formats the
 * odd ones into one of two buffers. Formatting was a third of a
 * million-flow answer. */
#define FMT_CHUNK 8192

struct chunk {
    char *b;
    size_t n, cap;
    int ready; /* formatted, not yet written */
};

struct fmt_pair {
    const struct an_flows *r;
    enum an_format fmt;
    size_t nchunks;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct chunk odd[2]; /* chunk c (odd) goes in odd[(c / 2) % 2] */
    int stop, oom;
};

/* Rows of chunk c into ch (grown as needed); -1: no memory. */
static int format_chunk(const struct an_flows *r, enum an_format fmt, size_t c, struct chunk *ch,
                        struct rowbuf *rb)
{
    size_t i = c * FMT_CHUNK, j = i + FMT_CHUNK < r->n ? i + FMT_CHUNK : r->n;
    ch->n = 0;
    for (; i < j; i++) {
        prefetch_row(r, i, j);
        format_row(rb, r, i, fmt);
        if (ch->n + rb->n > ch->cap) {
            size_t nc = ch->cap ? ch->cap * 2 : (size_t)FMT_CHUNK * 512;
            char *nb = realloc(ch->b, nc);
            if (!nb)
                return -1;
            ch->b = nb;
            ch->cap = nc;
        }
        memcpy(ch->b + ch->n, rb->b, rb->n);
        ch->n += rb->n;
    }
    return 0;
}

static void *fmt_odd(void *arg)
{
    struct fmt_pair *fp = arg;
    struct rowbuf rb = {.tsec = -1};
    for (size_t c = 1; c < fp->nchunks; c += 2) {
        struct chunk *ch = &fp->odd[(c / 2) % 2];
        pthread_mutex_lock(&fp->mu);
        while (ch->ready && !fp->stop)
            pthread_cond_wait(&fp->cv, &fp->mu);
        int stop = fp->stop;
        pthread_mutex_unlock(&fp->mu);
        if (stop)
            break;
        int rc = format_chunk(fp->r, fp->fmt, c, ch, &rb);
        pthread_mutex_lock(&fp->mu);
        if (rc < 0)
            fp->oom = fp->stop = 1;
        ch->ready = 1;
        pthread_cond_broadcast(&fp->cv);
        pthread_mutex_unlock(&fp->mu);
        if (rc < 0)
            break;
    }
    return NULL;
}

/* All rows, on two threads. -1: no thread (nothing written), -2: no
 * memory (some written). */
static int write_rows_pair(FILE *f, const struct an_flows *r, enum an_format fmt)
{
    struct fmt_pair fp = {.r = r, .fmt = fmt, .nchunks = (r->n + FMT_CHUNK - 1) / FMT_CHUNK};
    struct chunk even = {0};
    struct rowbuf rb = {.tsec = -1};
    pthread_t tid;
    int rc = 0;
    pthread_mutex_init(&fp.mu, NULL);
    pthread_cond_init(&fp.cv, NULL);
    if (pthread_create(&tid, NULL, fmt_odd, &fp) != 0) {
        pthread_mutex_destroy(&fp.mu);
        pthread_cond_destroy(&fp.cv);
        return -1;
    }
    for (size_t c = 0; c < fp.nchunks && rc == 0; c++) {
        if (c % 2 == 0) {
            if (format_chunk(r, fmt, c, &even, &rb) < 0) {
                rc = -2;
                break;
            }
            fwrite(even.b, 1, even.n, f);
            continue;
        }
        struct chunk *ch = &fp.odd[(c / 2) % 2];
        pthread_mutex_lock(&fp.mu);
        while (!ch->ready)
            pthread_cond_wait(&fp.cv, &fp.mu);
        if (fp.oom)
            rc = -2;
        pthread_mutex_unlock(&fp.mu);
        if (rc == 0)
            fwrite(ch->b, 1, ch->n, f);
        pthread_mutex_lock(&fp.mu);
        ch->ready = 0;
        pthread_cond_broadcast(&fp.cv);
        pthread_mutex_unlock(&fp.mu);
    }
    pthread_mutex_lock(&fp.mu);
    fp.stop = 1;
    pthread_cond_broadcast(&fp.cv);
    pthread_mutex_unlock(&fp.mu);
    pthread_join(tid, NULL);
    pthread_mutex_destroy(&fp.mu);
    pthread_cond_destroy(&fp.cv);
    free(even.b);
    free(fp.odd[0].b);
    free(fp.odd[1].b);
    return rc;
}

int an_flows_write(FILE *f, const struct an_flow_query *q, const struct an_flows *r,
                   enum an_format fmt)
{
    int rc = r->n < 4 * FMT_CHUNK ? -1 : 0;
    an_flows_write_head(f, q, r, fmt);
    if (rc == 0)
        rc = write_rows_pair(f, r, fmt);
    if (rc == -1)
        an_flows_write_rows(f, r, 0, r->n, fmt);
    if (rc == -2)
        return -1; /* half an answer: no tail that would make it look whole */
    an_flows_write_tail(f, fmt);
    return ferror(f) ? -1 : 0;
}

/* The key columns of a talker, CSV or JSON members. */
static void talker_key(FILE *f, enum an_by by, const struct an_talker *t, int csv)
{
    char a[64], b[64];
    const char *pn;
    switch (by) {
    case AN_BY_SRC:
    case AN_BY_DST:
        fprintf(f, csv ? "%s," : "\"address\":\"%s\",", an_addr(t->family, t->a, a, sizeof a));
        break;
    case AN_BY_PAIR:
        fprintf(f, csv ? "%s,%s," : "\"a\":\"%s\",\"b\":\"%s\",",
                an_addr(t->family, t->a, a, sizeof a), an_addr(t->family, t->b, b, sizeof b));
        break;
    case AN_BY_PORT:
        fprintf(f, csv ? "%u," : "\"port\":%u,", t->port);
        break;
    case AN_BY_PROTO:
        pn = an_proto_name(t->proto);
        if (csv)
            fprintf(f, "%d,%s,", t->proto, pn ? pn : "");
        else if (pn)
            fprintf(f, "\"proto\":%d,\"name\":\"%s\",", t->proto, pn);
        else
            fprintf(f, "\"proto\":%d,", t->proto);
        break;
    case AN_BY_POINT:
        if (csv) {
            fprintf(f, "%s,", t->point);
        } else {
            fputs("\"point\":", f);
            an_json_str(f, t->point);
            fputc(',', f);
        }
        break;
    }
}

int an_top_write(FILE *f, const struct an_top_query *q, const struct an_top *t,
                 enum an_format fmt)
{
    static const char *const heads[] = {"address", "address", "a,b", "port", "proto,name", "point"};
    if (fmt == AN_CSV) {
        fprintf(f, "%s,packets,bytes\n", heads[q->by]);
        for (size_t i = 0; i < t->n; i++) {
            talker_key(f, q->by, &t->rows[i], 1);
            fprintf(f, "%llu,%llu\n", (unsigned long long)t->rows[i].packets,
                    (unsigned long long)t->rows[i].bytes);
        }
        return ferror(f) ? -1 : 0;
    }
    fputc('{', f);
    put_window(f, q->from, q->to);
    fputs(",\"filter\":", f);
    an_json_str(f, q->filter ? q->filter : "");
    fprintf(f,
            ",\"by\":\"%s\",\"metric\":\"%s\",\"source\":\"%s\",\"packets\":%llu,\"bytes\":%llu,"
            "\"talkers\":%llu,\"top\":[",
            an_by_name(q->by), q->metric == AN_METRIC_BYTES ? "bytes" : "packets",
            t->from_packets ? "packets" : "index", (unsigned long long)t->packets,
            (unsigned long long)t->bytes, (unsigned long long)t->keys);
    for (size_t i = 0; i < t->n; i++) {
        fputs(i ? ",\n{" : "\n{", f);
        talker_key(f, q->by, &t->rows[i], 0);
        fprintf(f, "\"packets\":%llu,\"bytes\":%llu}", (unsigned long long)t->rows[i].packets,
                (unsigned long long)t->rows[i].bytes);
    }
    fputs("]}\n", f);
    return ferror(f) ? -1 : 0;
}

int an_timeline_write(FILE *f, const struct an_timeline *t, enum an_format fmt)
{
    char tb[48];
    if (fmt == AN_CSV) {
        fputs("time,point,packets,bytes\n", f);
        for (size_t b = 0; b < t->nbuckets; b++)
            for (int p = 0; p < t->npoints; p++) {
                size_t i = (size_t)p * t->nbuckets + b;
                fprintf(f, "%s,%s,%llu,%llu\n",
                        rw_time_fmt(t->from + (int64_t)b * t->step, tb, sizeof tb), t->points[p],
                        (unsigned long long)t->packets[i], (unsigned long long)t->bytes[i]);
            }
        return ferror(f) ? -1 : 0;
    }
    fputc('{', f);
    put_window(f, t->from, t->to);
    fprintf(f, ",\"step\":%lld,\"buckets\":%zu,\"source\":\"%s\",\"points\":[",
            (long long)(t->step / RW_NS_PER_SEC), t->nbuckets,
            t->from_packets ? "packets" : "counters");
    for (int p = 0; p < t->npoints; p++) {
        fputs(p ? ",\n{\"point\":" : "\n{\"point\":", f);
        an_json_str(f, t->points[p]);
        for (int m = 0; m < 2; m++) {
            const uint64_t *v = (m ? t->bytes : t->packets) + (size_t)p * t->nbuckets;
            fprintf(f, ",\"%s\":[", m ? "bytes" : "packets");
            for (size_t b = 0; b < t->nbuckets; b++)
                fprintf(f, b ? ",%llu" : "%llu", (unsigned long long)v[b]);
            fputc(']', f);
        }
        fputc('}', f);
    }
    fputs("]}\n", f);
    return ferror(f) ? -1 : 0;
}
