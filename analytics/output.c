/* output.c -- flows, top talkers and timelines as JSON or CSV, the same
 * bytes for the HTTP API and the command line (man/rewindd.8 names the
 * fields). */
#include "analytics/an_int.h"

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

void an_flows_write_rows(FILE *f, const struct an_flows *r, size_t i, size_t j,
                         enum an_format fmt)
{
    char a[64], b[64], t1[48], t2[48], fl[9];
    for (; i < j && i < r->n; i++) {
        const struct an_flow *x = &r->flows[i];
        const char *pn = an_proto_name(x->proto), *point = an_flow_point(r, x);
        tcp_flags(x->tcp_flags, fl);
        if (fmt == AN_CSV) {
            fprintf(f, "%s,", point);
            if (pn)
                fprintf(f, "%s,", pn);
            else
                fprintf(f, "%d,", x->proto);
            fprintf(f, "%u,%s,%u,%s,%u,%s,%s,%.9f,%llu,%llu,%llu,%llu,%llu,%llu,%s,%s\n", x->vlan,
                    an_addr(x->family, x->src, a, sizeof a), x->sport,
                    an_addr(x->family, x->dst, b, sizeof b), x->dport,
                    rw_time_fmt(x->first, t1, sizeof t1), rw_time_fmt(x->last, t2, sizeof t2),
                    (double)(x->last - x->first) / 1e9, (unsigned long long)x->pkts_fwd,
                    (unsigned long long)x->bytes_fwd, (unsigned long long)x->pkts_rev,
                    (unsigned long long)x->bytes_rev,
                    (unsigned long long)(x->pkts_fwd + x->pkts_rev),
                    (unsigned long long)(x->bytes_fwd + x->bytes_rev), fl, x->community_id);
            continue;
        }
        int icmp = x->proto == 1 || x->proto == 58;
        fputs(i ? ",\n{\"point\":" : "\n{\"point\":", f);
        an_json_str(f, point);
        fprintf(f, ",\"proto\":%d", x->proto);
        if (pn)
            fprintf(f, ",\"proto_name\":\"%s\"", pn);
        fprintf(f, ",\"vlan\":%u,\"src\":\"%s\",\"%s\":%u,\"dst\":\"%s\",\"%s\":%u,\"first\":",
                x->vlan, an_addr(x->family, x->src, a, sizeof a), icmp ? "icmp_type" : "sport",
                x->sport, an_addr(x->family, x->dst, b, sizeof b), icmp ? "icmp_code" : "dport",
                x->dport);
        put_time(f, x->first);
        fputs(",\"last\":", f);
        put_time(f, x->last);
        fprintf(f,
                ",\"duration\":%.9f,\"packets_fwd\":%llu,\"bytes_fwd\":%llu,\"packets_rev\":%llu,"
                "\"bytes_rev\":%llu,\"packets\":%llu,\"bytes\":%llu",
                (double)(x->last - x->first) / 1e9, (unsigned long long)x->pkts_fwd,
                (unsigned long long)x->bytes_fwd, (unsigned long long)x->pkts_rev,
                (unsigned long long)x->bytes_rev, (unsigned long long)(x->pkts_fwd + x->pkts_rev),
                (unsigned long long)(x->bytes_fwd + x->bytes_rev));
        if (x->proto == 6)
            fprintf(f, ",\"tcp_flags\":\"%s\"", fl);
        fprintf(f, ",\"community_id\":\"%s\"}", x->community_id);
    }
}

void an_flows_write_tail(FILE *f, enum an_format fmt)
{
    if (fmt == AN_JSON)
        fputs("]}\n", f);
}

int an_flows_write(FILE *f, const struct an_flow_query *q, const struct an_flows *r,
                   enum an_format fmt)
{
    an_flows_write_head(f, q, r, fmt);
    an_flows_write_rows(f, r, 0, r->n, fmt);
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
