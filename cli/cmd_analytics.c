/* cmd_analytics.c -- rewind flows, rewind top, rewind timeline: the
 * analytics of analytics/analytics.h, read from an archive (--dir) or asked
 * of a rewindd (--url), as a table, JSON or CSV. Both ways print the same
 * answer: the local one is written by the same code the server uses. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "analytics/analytics.h"
#include "cli/cmds.h"
#include "cli/httpc.h"
#include "cli/qargs.h"
#include "query/read.h"

enum kind { FLOWS, TOP, TIMELINE };

/* The options the three commands share, in each one's --help. */
#define COMMON_OPTIONS \
    "  -d, --dir DIR       the archive (or $REWIND_DIR)\n" \
    "  -u, --url URL       ask a rewindd instead (or $REWIND_URL)\n" \
    "      --token T       bearer token for --url (or $REWIND_TOKEN)\n" \
    "  -f, --from T        window start: RFC 3339, Unix seconds, or relative (-15m)\n" \
    "  -t, --to T          window end (exclusive)\n" \
    "  -p, --point NAME    only this capture point (repeatable)\n"

enum outfmt { OUT_TABLE, OUT_JSON, OUT_CSV };

static const char flows_help[] =
    "usage: rewind flows (--dir DIR | --url URL) [--from T] [--to T] [--point NAME]...\n"
    "                    [--sort bytes|packets|start|duration] [--limit N]\n"
    "                    [--community-id ID] [--json | --csv] [FILTER...]\n"
    "\n"
    "The flows of a window, from the index alone: one line per flow (capture point,\n"
    "5-tuple, VLAN), merged across segments, with packets and bytes each way, TCP\n"
    "flags and Community ID. FILTER takes the words of pcap-filter(7) that a flow's\n"
    "key decides: host, net, port, portrange, src, dst, proto, ip, ip6, tcp, udp,\n"
    "sctp, icmp, icmp6, vlan, with and/or/not; a flow matches when a packet of it\n"
    "would. Default: the 1000 flows with the most bytes.\n"
    "\n"
    COMMON_OPTIONS
    "  -s, --sort KEY      bytes (default), packets, start or duration\n"
    "  -n, --limit N       at most N flows (default 1000, at most 1000000)\n"
    "      --community-id ID  only the flows with this Community ID (1:...)\n"
    "      --json          the API's JSON instead of a table\n"
    "      --csv           the API's CSV instead of a table\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input.\n";

static const char top_help[] =
    "usage: rewind top (--dir DIR | --url URL) [--from T] [--to T] [--point NAME]...\n"
    "                  [--by src|dst|pair|port|proto|point] [--metric bytes|packets]\n"
    "                  [--limit N] [--json | --csv] [FILTER...]\n"
    "\n"
    "Top talkers of a window: packets and bytes (sum of original lengths) sent by each\n"
    "source address (src), received by each destination (dst), exchanged by each pair,\n"
    "carried by each TCP/UDP/SCTP port (either side), per IP protocol, or per capture\n"
    "point (every packet, IP or not). Counted exactly as tcpdump would count the same\n"
    "window and BPF FILTER: from the index where it can, from the packets where it\n"
    "must (a filter, or a segment that the window cuts).\n"
    "\n"
    COMMON_OPTIONS
    "  -b, --by KEY        src (default), dst, pair, port, proto or point\n"
    "  -m, --metric M      bytes (default) or packets: the order\n"
    "  -n, --limit N       at most N talkers (default 10)\n"
    "      --json          the API's JSON instead of a table\n"
    "      --csv           the API's CSV instead of a table\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input.\n";

static const char timeline_help[] =
    "usage: rewind timeline (--dir DIR | --url URL) [--from T] [--to T] [--point NAME]...\n"
    "                       [--step D] [--json | --csv] [FILTER...]\n"
    "\n"
    "Packets and bytes per step and capture point. Without a filter from the index's\n"
    "per-second counters, with a BPF FILTER from the matching packets. Steps are\n"
    "whole seconds from 1s to 1d, aligned to the Unix epoch; the window is widened\n"
    "to whole steps (the answer says which). An open end is the archive's first or\n"
    "last packet. On a terminal: a sparkline of bytes per point; otherwise CSV.\n"
    "\n"
    COMMON_OPTIONS
    "  -S, --step D        bucket width: 1s (default), 10s, 1m, 1h, 1d, ...\n"
    "      --json          the API's JSON\n"
    "      --csv           the API's CSV (the default when not on a terminal)\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage or bad input.\n";

struct opts {
    enum kind kind;
    const char *name;
    const char *dir, *url, *token;
    const char *from, *to;
    const char *points[33];
    int npoints;
    const char *sort, *limit, *cid, *by, *metric, *step;
    enum outfmt out;
    char *filter;
};

static int sink_file(void *arg, const void *buf, size_t n)
{
    return fwrite(buf, 1, n, arg) == n ? 0 : -1;
}

/* ------------------------------------------------------------- printing */

/* Print CSV text as columns aligned for a terminal. */
static void print_table(const char *csv)
{
    size_t w[32] = {0};
    int pass;
    for (pass = 0; pass < 2; pass++) {
        const char *p = csv;
        while (*p) {
            const char *eol = strchr(p, '\n');
            size_t len = eol ? (size_t)(eol - p) : strlen(p);
            int col = 0;
            const char *c = p;
            while (c <= p + len && col < 32) {
                const char *e = memchr(c, ',', (size_t)(p + len - c));
                size_t l = e ? (size_t)(e - c) : (size_t)(p + len - c);
                if (pass == 0) {
                    if (l > w[col])
                        w[col] = l;
                } else {
                    printf("%s%-*.*s", col ? "  " : "", e ? (int)w[col] : 0, (int)l, c);
                }
                col++;
                if (!e)
                    break;
                c = e + 1;
            }
            if (pass == 1)
                putchar('\n');
            p += len + (eol ? 1 : 0);
        }
    }
}

/* A timeline's CSV (time,point,packets,bytes) as one sparkline of bytes per
 * point, the buckets summed into as many cells as the terminal is wide. */
static void print_sparklines(const char *csv)
{
    static const char *const bars[] = {" ", "▁", "▂", "▃", "▄", "▅", "▆", "▇", "█"};
    struct winsize ws;
    int width = ioctl(1, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 30 ? ws.ws_col : 80;
    char names[16][65];
    int npoints = 0;
    size_t nrows = 0;
    char first[48] = "", last[48] = "";
    /* Pass 1: points and bucket count. */
    const char *p = strchr(csv, '\n');
    for (p = p ? p + 1 : csv + strlen(csv); *p;) {
        const char *eol = strchr(p, '\n');
        char line[256];
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        char *t = strtok(line, ","), *pt = strtok(NULL, ",");
        if (t && pt) {
            int i;
            for (i = 0; i < npoints && strcmp(names[i], pt); i++)
                ;
            if (i == npoints && npoints < 16)
                snprintf(names[npoints++], sizeof names[0], "%s", pt);
            if (!first[0])
                snprintf(first, sizeof first, "%s", t);
            snprintf(last, sizeof last, "%s", t);
            nrows++;
        }
        p += len + (eol ? 1 : 0);
    }
    if (!npoints) {
        printf("no packets in the window\n");
        return;
    }
    size_t nb = nrows / (size_t)npoints;
    int cells = width - 24 > 8 ? width - 24 : 8;
    if ((size_t)cells > nb)
        cells = (int)nb;
    uint64_t *sum = calloc((size_t)npoints * (size_t)cells, sizeof *sum);
    uint64_t *pk = calloc((size_t)npoints, sizeof *pk), *by = calloc((size_t)npoints, sizeof *by);
    if (!sum || !pk || !by) {
        free(sum), free(pk), free(by);
        return;
    }
    p = strchr(csv, '\n');
    size_t row = 0;
    for (p = p ? p + 1 : csv + strlen(csv); *p;) {
        const char *eol = strchr(p, '\n');
        char line[256];
        size_t len = eol ? (size_t)(eol - p) : strlen(p);
        snprintf(line, sizeof line, "%.*s", (int)len, p);
        char *t = strtok(line, ","), *pt = strtok(NULL, ","), *np = strtok(NULL, ","),
             *nb_ = strtok(NULL, ",");
        if (t && pt && np && nb_) {
            int i;
            for (i = 0; i < npoints && strcmp(names[i], pt); i++)
                ;
            size_t bucket = row / (size_t)npoints;
            if (i < npoints && nb) {
                size_t cell = bucket * (size_t)cells / nb;
                sum[(size_t)i * (size_t)cells + cell] += strtoull(nb_, NULL, 10);
                pk[i] += strtoull(np, NULL, 10);
                by[i] += strtoull(nb_, NULL, 10);
            }
            row++;
        }
        p += len + (eol ? 1 : 0);
    }
    printf("%s .. %s, %zu steps, bytes per %s\n", first, last, nb,
           cells < (int)nb ? "cell (steps summed)" : "step");
    for (int i = 0; i < npoints; i++) {
        uint64_t max = 0;
        for (int c = 0; c < cells; c++)
            if (sum[(size_t)i * (size_t)cells + c] > max)
                max = sum[(size_t)i * (size_t)cells + c];
        printf("%-12.12s ", names[i]);
        for (int c = 0; c < cells; c++) {
            uint64_t v = sum[(size_t)i * (size_t)cells + c];
            int lvl = v == 0 ? 0 : max ? 1 + (int)((v * 7) / max) : 0;
            fputs(bars[lvl > 8 ? 8 : lvl], stdout);
        }
        char b[32];
        printf(" %llu pkts, %s\n", (unsigned long long)pk[i], rw_size_fmt(by[i], b, sizeof b));
    }
    free(sum), free(pk), free(by);
}

/* ------------------------------------------------------------ the answer */

static int append(char *q, size_t n, const char *k, const char *v)
{
    if (!v)
        return 0;
    char *e = httpc_escape(v);
    if (!e)
        return -1;
    size_t l = strlen(q);
    int w = snprintf(q + l, n - l, "%s%s=%s", strchr(q, '?') ? "&" : "?", k, e);
    free(e);
    return w < 0 || (size_t)w >= n - l ? -1 : 0;
}

/* Ask --url: the answer's text into *out (malloc'ed). */
static int ask_url(const struct opts *o, const char *fmt, char **out, size_t *outlen, int direct,
                   char *err)
{
    static const char *const paths[] = {"/api/v1/flows", "/api/v1/top", "/api/v1/timeline"};
    char path[16384];
    int rc;
    snprintf(path, sizeof path, "%s", paths[o->kind]);
    int bad = append(path, sizeof path, "from", o->from) | append(path, sizeof path, "to", o->to);
    for (int i = 0; i < o->npoints; i++)
        bad |= append(path, sizeof path, "point", o->points[i]);
    if (o->filter && o->filter[0])
        bad |= append(path, sizeof path, "filter", o->filter);
    bad |= append(path, sizeof path, "sort", o->sort) | append(path, sizeof path, "limit", o->limit);
    bad |= append(path, sizeof path, "community_id", o->cid) |
           append(path, sizeof path, "by", o->by) | append(path, sizeof path, "metric", o->metric);
    bad |= append(path, sizeof path, "step", o->step) | append(path, sizeof path, "format", fmt);
    if (bad)
        return rw_err(err, RW_EINPUT, "the request does not fit in a URL: shorten the filter");
    /* JSON and CSV go straight out; a table needs the whole answer first. */
    FILE *f = direct ? stdout : open_memstream(out, outlen);
    if (!f)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if ((rc = httpc_set_token(o->token, err)) == 0)
        rc = httpc_get(o->url, path, sink_file, f, err);
    if (!direct)
        fclose(f);
    return rc;
}

static int parse_time(const char *name, const char *s, int64_t dflt, int64_t *out, char *err)
{
    *out = dflt;
    if (s && rw_time_parse(s, rw_now_ns(), out, err) < 0)
        return rw_errctx(err, RW_EINPUT, "--%s", name);
    return 0;
}

static int parse_limit(const char *s, uint64_t *out, char *err)
{
    char *end;
    *out = 0;
    if (!s)
        return 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || s[0] == '-')
        return rw_err(err, RW_EINPUT, "--limit '%s': expected a whole number", s);
    *out = v;
    return 0;
}

/* Read --dir: the answer's text into *out, written by analytics/. */
static int ask_dir(const struct opts *o, enum an_format fmt, char **out, size_t *outlen, int direct,
                   char *err)
{
    idx_t *ix = NULL;
    int64_t from, to;
    int rc;
    const char **points = o->npoints ? (const char **)o->points : NULL;
    if ((rc = parse_time("from", o->from, RW_TIME_MIN, &from, err)) < 0 ||
        (rc = parse_time("to", o->to, RW_TIME_MAX, &to, err)) < 0)
        return rc;
    if (from >= to)
        return rw_err(err, RW_EINPUT, "--from must be before --to");
    if ((rc = qry_archive_open(o->dir, &ix, err)) < 0)
        return rc;
    FILE *f = direct ? stdout : open_memstream(out, outlen);
    if (!f) {
        qry_archive_close(ix);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    int64_t start = rw_now_ns();
    const char *route = "flows";
    if (o->kind == FLOWS) {
        struct an_flow_query q = {.from = from, .to = to, .filter = o->filter, .points = points,
                                  .community_id = o->cid};
        struct an_flows r;
        if ((o->sort && (rc = an_sort_parse(o->sort, &q.sort, err)) < 0) ||
            (rc = parse_limit(o->limit, &q.limit, err)) < 0)
            goto done;
        if ((rc = an_flows_get(ix, &q, &r, err)) == 0) {
            rc = an_flows_write(f, &q, &r, fmt) < 0 ? rw_err(err, RW_EIO, "writing the answer failed") : 0;
            an_flows_free(&r);
        }
    } else if (o->kind == TOP) {
        struct an_top_query q = {.from = from, .to = to, .filter = o->filter, .points = points};
        struct an_top t;
        route = "top";
        if ((o->by && (rc = an_by_parse(o->by, &q.by, err)) < 0) ||
            (o->metric && (rc = an_metric_parse(o->metric, &q.metric, err)) < 0) ||
            (rc = parse_limit(o->limit, &q.limit, err)) < 0)
            goto done;
        if ((rc = an_top_get(ix, &q, &t, err)) == 0) {
            rc = an_top_write(f, &q, &t, fmt) < 0 ? rw_err(err, RW_EIO, "writing the answer failed") : 0;
            an_top_free(&t);
        }
    } else {
        struct an_tl_query q = {.from = from, .to = to, .filter = o->filter, .points = points,
                                .step = RW_NS_PER_SEC};
        struct an_timeline t;
        route = "timeline";
        if (o->step && (rc = rw_duration_parse(o->step, &q.step, err)) < 0) {
            rc = rw_errctx(err, RW_EINPUT, "--step");
            goto done;
        }
        if ((rc = an_timeline_get(ix, &q, &t, err)) == 0) {
            rc = an_timeline_write(f, &t, fmt) < 0 ? rw_err(err, RW_EIO, "writing the answer failed") : 0;
            an_timeline_free(&t);
        }
    }
done:
    if (!direct)
        fclose(f);
    {
        /* Flows and talkers are records of who talked to whom: audited as
         * packets are (DESIGN.md invariant 8). */
        char aerr[RW_ERRSZ];
        struct cli_audit_what w = {.route = route, .from = from, .to = to, .filter = o->filter,
                                   .points = points};
        if (cli_audit_read(o->dir, &w, rc == 0 ? 200 : rc == RW_EINPUT ? 400 : 500, start,
                           aerr) < 0 && rc == 0)
            rc = rw_err(err, RW_EIO, "%s", aerr);
    }
    qry_archive_close(ix);
    return rc;
}

static int run(struct opts *o, int argc, char **argv)
{
    static const struct option lopts[] = {
        {"dir", required_argument, 0, 'd'},    {"url", required_argument, 0, 'u'},
        {"token", required_argument, 0, 'T'},  {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},     {"point", required_argument, 0, 'p'},
        {"sort", required_argument, 0, 's'},   {"limit", required_argument, 0, 'n'},
        {"community-id", required_argument, 0, 'C'}, {"by", required_argument, 0, 'b'},
        {"metric", required_argument, 0, 'm'}, {"step", required_argument, 0, 'S'},
        {"json", no_argument, 0, 'J'},         {"csv", no_argument, 0, 'V'},
        {"help", no_argument, 0, 'h'},         {0, 0, 0, 0}};
    static const char *const helps[] = {flows_help, top_help, timeline_help};
    /* Which options each command takes (the rest are refused by name). */
    static const char *const takes[] = {"dutftpsnCJVh", "dutftpbmnJVh", "dutftpSJVh"};
    char err[RW_ERRSZ];
    int c, rc, li;
    o->token = getenv("REWIND_TOKEN");
    o->out = isatty(1) ? OUT_TABLE : OUT_CSV;
    if (o->kind == FLOWS || o->kind == TOP)
        o->out = OUT_TABLE;
    while ((c = getopt_long(argc, argv, "d:u:f:t:p:s:n:b:m:S:h", lopts, &li)) != -1) {
        if (c == '?')
            return cli_usage("bad option; see 'rewind %s --help'", o->name);
        if (!strchr(takes[o->kind], c)) {
            fprintf(stderr, "rewind %s: option --%s is not one of its options; see 'rewind %s "
                            "--help'\n", o->name, lopts[li].name, o->name);
            return 2;
        }
        switch (c) {
        case 'd': o->dir = optarg; break;
        case 'u': o->url = optarg; break;
        case 'T': o->token = optarg; break;
        case 'f': o->from = optarg; break;
        case 't': o->to = optarg; break;
        case 'p':
            if (o->npoints == 32)
                return cli_usage("at most 32 --point options%s", "");
            o->points[o->npoints++] = optarg;
            break;
        case 's': o->sort = optarg; break;
        case 'n': o->limit = optarg; break;
        case 'C': o->cid = optarg; break;
        case 'b': o->by = optarg; break;
        case 'm': o->metric = optarg; break;
        case 'S': o->step = optarg; break;
        case 'J': o->out = OUT_JSON; break;
        case 'V': o->out = OUT_CSV; break;
        case 'h': fputs(helps[o->kind], stdout); return 0;
        }
    }
    /* The filter: the remaining words, as tcpdump takes them. */
    size_t flen = 1;
    for (int i = optind; i < argc; i++)
        flen += strlen(argv[i]) + 1;
    o->filter = calloc(1, flen);
    if (!o->filter)
        return cli_fail(RW_ENOMEM, "out of memory");
    for (int i = optind; i < argc; i++) {
        if (i > optind)
            strcat(o->filter, " ");
        strcat(o->filter, argv[i]);
    }
    if (!o->dir && !o->url)
        o->url = getenv("REWIND_URL");
    if (!o->url)
        o->dir = cli_env_dir(o->dir);
    if (!o->dir && !o->url) {
        free(o->filter);
        return cli_usage("--dir DIR or --url URL is required (or $REWIND_DIR, $REWIND_URL)%s", "");
    }
    if (o->dir && o->url) {
        free(o->filter);
        return cli_usage("give --dir or --url, not both%s", "");
    }
    char *text = NULL;
    size_t len = 0;
    enum an_format fmt = o->out == OUT_JSON ? AN_JSON : AN_CSV;
    if (o->url)
        rc = ask_url(o, fmt == AN_JSON ? "json" : "csv", &text, &len, o->out != OUT_TABLE, err);
    else
        rc = ask_dir(o, fmt, &text, &len, o->out != OUT_TABLE, err);
    free(o->filter);
    if (rc < 0) {
        free(text);
        return cli_fail(rc, err);
    }
    if (o->out == OUT_TABLE && o->kind == TIMELINE)
        print_sparklines(text ? text : "");
    else if (o->out == OUT_TABLE)
        print_table(text ? text : "");
    else if (text)
        fwrite(text, 1, len, stdout);
    free(text);
    if (fflush(stdout) != 0)
        return cli_fail(RW_EIO, "writing the answer to standard output failed");
    return 0;
}

int cmd_flows(int argc, char **argv)
{
    struct opts o = {.kind = FLOWS, .name = "flows"};
    return run(&o, argc, argv);
}

int cmd_top(int argc, char **argv)
{
    struct opts o = {.kind = TOP, .name = "top"};
    return run(&o, argc, argv);
}

int cmd_timeline(int argc, char **argv)
{
    struct opts o = {.kind = TIMELINE, .name = "timeline"};
    return run(&o, argc, argv);
}
