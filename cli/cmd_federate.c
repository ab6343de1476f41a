/* cmd_federate.c -- rewind query --sensors FILE: one query across sensors.
 *
 * ClickHouse (the flows rewindd --export-flows sent it) says which sensors
 * hold flows that match the filter in the window; those are asked, and so
 * is every sensor whose export has not reached the window's end or that
 * holds packets no flow record names (not IP), so that no match is
 * skipped. With no ClickHouse, no filter a flow can be judged by, or a
 * ClickHouse that does not answer, every sensor is asked. The answers are
 * fetched in parallel and merged by timestamp into one pcapng with one
 * interface per sensor:point (export/merge.c). Nothing is written before
 * every sensor asked has answered in full: a sensor that fails fails the
 * query, naming it; with --partial the answer goes on without it and ends
 * with a comment naming what is missing. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analytics/analytics.h"
#include "cli/cmds.h"
#include "cli/httpc.h"
#include "cli/qargs.h"
#include "export/export.h"

static const char fed_help[] =
    "usage: rewind query --sensors FILE [--from T] [--to T] [--community-id ID]\n"
    "                    [--partial] [-w FILE] [FILTER...]\n"
    "\n"
    "Ask several sensors (rewindd) for the packets in [from, to) that match the\n"
    "BPF FILTER and merge their answers by timestamp into one pcapng, with one\n"
    "interface per sensor:point. FILE names the sensors and the ClickHouse that\n"
    "holds their flows (rewindd --export-flows; format in rewind(1)):\n"
    "    clickhouse http://127.0.0.1:8123/?database=rewind [auth=FILE]\n"
    "    sensor NAME https://HOST:PORT [token=TOKEN|token=@FILE] [ca=FILE]\n"
    "When the filter names hosts, ports or protocols (the words of a flow\n"
    "filter, see rewind flows) or --community-id is given, only the sensors\n"
    "whose flows match in ClickHouse are asked, and those whose export lags\n"
    "behind the window's end or that hold packets no flow names (not IP).\n"
    "\n"
    "      --sensors FILE      the sensors file\n"
    "  -f, --from T            start, inclusive (default: the beginning)\n"
    "  -t, --to T              end, exclusive (default: now)\n"
    "      --community-id ID   the packets of the flows with this Community ID\n"
    "      --partial           answer without the sensors that fail, and end the\n"
    "                          answer with a comment naming them (default: fail)\n"
    "  -w, --write FILE        write to FILE (default: stdout)\n"
    "  -h, --help              this help\n"
    "\n"
    "Exit status: 0 answered in full (or --partial), 1 a sensor failed, 2 bad\n"
    "usage or a bad sensors file.\n";

/* ---- fetching ---- */

struct mem {
    char *p;
    size_t n, cap;
};

static int mem_sink(void *arg, const void *buf, size_t n)
{
    struct mem *m = arg;
    if (m->n + n + 1 > m->cap) {
        size_t nc = m->cap ? m->cap * 2 : 65536;
        while (nc < m->n + n + 1)
            nc *= 2;
        if (nc > (256u << 20))
            return -1;
        char *p = realloc(m->p, nc);
        if (!p)
            return -1;
        m->p = p;
        m->cap = nc;
    }
    memcpy(m->p + m->n, buf, n);
    m->n += n;
    m->p[m->n] = 0;
    return 0;
}

static int file_sink(void *arg, const void *buf, size_t n)
{
    return fwrite(buf, 1, n, arg) == n ? 0 : -1;
}

/* Run a SELECT on ClickHouse; the TabSeparated answer in m. */
static int ch_select(const struct ex_sensors *ss, const char *sql, struct mem *m, char *err)
{
    char *q = httpc_escape(sql);
    char *u = ss->ch_user[0] ? httpc_escape(ss->ch_user) : NULL;
    char *pw = ss->ch_user[0] ? httpc_escape(ss->ch_pass) : NULL;
    size_t n = strlen(ss->clickhouse) + (q ? strlen(q) : 0) + (u ? strlen(u) + strlen(pw) : 0) + 64;
    char *url = malloc(n);
    int rc;
    if (!q || !url || (ss->ch_user[0] && (!u || !pw))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    const char *sep = strchr(ss->clickhouse, '?') ? "&" : strchr(ss->clickhouse + 8, '/') ? "?" : "/?";
    int k = snprintf(url, n, "%s%s%squery=%s", ss->clickhouse, sep,
                     strstr(ss->clickhouse, "database=") ? "" : "database=" EX_CH_DATABASE "&", q);
    if (u)
        snprintf(url + k, n - (size_t)k, "&user=%s&password=%s", u, pw);
    m->n = 0;
    rc = httpc_get_as(url, "", "", NULL, mem_sink, m, NULL, err);
    if (rc < 0) {
        char e2[RW_ERRSZ];
        snprintf(e2, sizeof e2, "%s", err);
        char *pos = strstr(e2, "password="); /* never in a message */
        if (pos)
            *pos = 0;
        rw_err(err, rc, "ClickHouse %s: %s", ss->clickhouse, e2);
    }
out:
    free(q);
    free(u);
    free(pw);
    free(url);
    return rc;
}

static int sensor_index(const struct ex_sensors *ss, const char *name, size_t len)
{
    for (size_t i = 0; i < ss->n; i++)
        if (strlen(ss->s[i].name) == len && !strncmp(ss->s[i].name, name, len))
            return (int)i;
    return -1;
}

static int unhex(const char *h, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        if (sscanf(h + 2 * i, "%2x", &v) != 1)
            return -1;
        out[i] = (uint8_t)v;
    }
    return 0;
}

/* Which sensors to ask: named[i] set for those ClickHouse names, ask[i]
 * for every one to ask. 0, or <0 when ClickHouse could not say (then all
 * are asked). */
static int select_sensors(const struct ex_sensors *ss, int64_t from, int64_t to,
                          an_ffilter_t *ff, const char *cid, uint8_t *ask, char *why, size_t wn,
                          char *err)
{
    char sql[1024], w[256];
    struct mem m = {0};
    int rc;
    snprintf(w, sizeof w, "last_ns >= %lld AND first_ns < %lld", (long long)from, (long long)to);
    if (cid)
        snprintf(sql, sizeof sql, "SELECT DISTINCT sensor FROM flows WHERE community_id = '%s' "
                 "AND %s FORMAT TabSeparated", cid, w);
    else
        snprintf(sql, sizeof sql, "SELECT sensor, family, proto, hex(src), hex(dst), sport, dport, "
                 "vlan FROM flows WHERE %s GROUP BY sensor, family, proto, src, dst, sport, dport, "
                 "vlan FORMAT TabSeparated", w);
    if ((rc = ch_select(ss, sql, &m, err)) < 0)
        goto out;
    for (char *line = m.p, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        size_t sl = strcspn(line, "\t");
        int i = sensor_index(ss, line, sl);
        if (i < 0 || ask[i])
            continue;
        if (cid) {
            ask[i] = 1;
            continue;
        }
        struct an_flow f;
        unsigned fam, proto, sp, dp, vlan;
        char src[40], dst[40];
        memset(&f, 0, sizeof f);
        if (sscanf(line + sl, "\t%u\t%u\t%32s\t%32s\t%u\t%u\t%u", &fam, &proto, src, dst, &sp, &dp,
                   &vlan) != 7 || (fam != 4 && fam != 6)) {
            rc = rw_err(err, RW_EIO, "ClickHouse %s: an unexpected row '%.80s'", ss->clickhouse,
                        line);
            goto out;
        }
        uint8_t a[16], b[16];
        if (unhex(src, a, 16) < 0 || unhex(dst, b, 16) < 0) {
            rc = rw_err(err, RW_EIO, "ClickHouse %s: an unexpected address in '%.80s'",
                        ss->clickhouse, line);
            goto out;
        }
        f.family = (uint8_t)fam;
        f.proto = (uint8_t)proto;
        memcpy(f.src, fam == 4 ? a + 12 : a, fam == 4 ? 4 : 16);
        memcpy(f.dst, fam == 4 ? b + 12 : b, fam == 4 ? 4 : 16);
        f.sport = (uint16_t)sp;
        f.dport = (uint16_t)dp;
        f.vlan = (uint16_t)vlan;
        if (an_ffilter_match(ff, &f))
            ask[i] = 1;
    }
    /* Exports that have not reached the window's end. */
    uint8_t *complete = calloc(ss->n, 1);
    if (!complete) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    rc = ch_select(ss, "SELECT sensor, max(complete_ns) FROM exports GROUP BY sensor "
                       "FORMAT TabSeparated", &m, err);
    for (char *line = m.p, *nl; rc == 0 && line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        size_t sl = strcspn(line, "\t");
        int i = sensor_index(ss, line, sl);
        long long c;
        if (i >= 0 && line[sl] && sscanf(line + sl + 1, "%lld", &c) == 1 && c >= to)
            complete[i] = 1;
    }
    for (size_t i = 0; rc == 0 && i < ss->n; i++)
        if (!complete[i] && !ask[i]) {
            ask[i] = 2;
            size_t l = strlen(why);
            snprintf(why + l, wn - l, "%s%s: its export lags behind the window's end", l ? "; " : "",
                     ss->s[i].name);
        }
    free(complete);
    if (rc < 0)
        goto out;
    /* Packets that no flow names. */
    snprintf(sql, sizeof sql, "SELECT DISTINCT sensor FROM segments FINAL WHERE %s AND packets > "
             "flow_packets FORMAT TabSeparated", w);
    if ((rc = ch_select(ss, sql, &m, err)) < 0)
        goto out;
    for (char *line = m.p, *nl; line && *line; line = nl) {
        nl = strchr(line, '\n');
        if (nl)
            *nl++ = 0;
        int i = sensor_index(ss, line, strlen(line));
        if (i >= 0 && !ask[i]) {
            ask[i] = 3;
            size_t l = strlen(why);
            snprintf(why + l, wn - l, "%s%s: holds packets no flow names", l ? "; " : "",
                     ss->s[i].name);
        }
    }
out:
    free(m.p);
    return rc;
}

struct fetch {
    const struct ex_sensor *s;
    const char *path;
    FILE *f;
    int rc, empty, started;
    char err[RW_ERRSZ];
    pthread_t th;
};

static void *fetch_run(void *arg)
{
    struct fetch *x = arg;
    long status = 0;
    x->rc = httpc_get_as(x->s->url, x->path, x->s->token, x->s->ca[0] ? x->s->ca : NULL,
                         file_sink, x->f, &status, x->err);
    if (x->rc < 0 && status == 404 && strstr(x->err, "no flow with Community ID")) {
        x->rc = 0; /* asked because it lags: it has none */
        x->empty = 1;
    }
    if (x->rc == 0 && (fflush(x->f) != 0 || fseek(x->f, 0, SEEK_SET) != 0))
        x->rc = rw_err(x->err, RW_EIO, "temporary file: %s", strerror(errno));
    return NULL;
}

static int append(char *q, size_t n, const char *k, const char *v)
{
    char *e = httpc_escape(v);
    size_t l = strlen(q);
    if (!e)
        return -1;
    int w = snprintf(q + l, n - l, "%s%s=%s", l ? "&" : "?", k, e);
    free(e);
    return w < 0 || (size_t)w >= n - l ? -1 : 0;
}

int cmd_query_sensors(int argc, char **argv)
{
    static const struct option opts[] = {{"sensors", required_argument, 0, 'S'},
                                         {"from", required_argument, 0, 'f'},
                                         {"to", required_argument, 0, 't'},
                                         {"community-id", required_argument, 0, 'C'},
                                         {"partial", no_argument, 0, 'P'},
                                         {"write", required_argument, 0, 'w'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *file = NULL, *from_s = NULL, *to_s = NULL, *cid = NULL, *wfile = NULL;
    int partial = 0, c, rc, status = 0;
    char err[RW_ERRSZ];
    optind = 1;
    while ((c = getopt_long(argc, argv, "f:t:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'S': file = optarg; break;
        case 'f': from_s = optarg; break;
        case 't': to_s = optarg; break;
        case 'C': cid = optarg; break;
        case 'P': partial = 1; break;
        case 'w': wfile = strcmp(optarg, "-") ? optarg : NULL; break;
        case 'h': fputs(fed_help, stdout); return 0;
        default:
            return cli_usage("query --sensors: bad option%s (the options of a query across "
                             "sensors are in 'rewind query --sensors FILE --help')", "");
        }
    }
    if (!file)
        return cli_usage("query --sensors: no sensors file given%s", "");
    /* The filter: the remaining words. */
    char filter[4096] = "";
    for (int i = optind; i < argc; i++) {
        size_t l = strlen(filter);
        if ((size_t)snprintf(filter + l, sizeof filter - l, "%s%s", l ? " " : "", argv[i]) >=
            sizeof filter - l)
            return cli_usage("query --sensors: the filter is too long%s", "");
    }
    int64_t now = rw_now_ns(), from = RW_TIME_MIN, to = now;
    if (from_s && rw_time_parse(from_s, now, &from, err) < 0)
        return cli_usage("query --sensors: --from: %s", err);
    if (to_s && rw_time_parse(to_s, now, &to, err) < 0)
        return cli_usage("query --sensors: --to: %s", err);
    if (from >= to)
        return cli_usage("query --sensors: --from must be before --to%s", "");
    if (cid && !an_cid_valid(cid))
        return cli_usage("query --sensors: --community-id '%s' is not a Community ID v1 "
                         "(\"1:\" and 28 base64 characters)", cid);
    struct ex_sensors ss;
    if ((rc = ex_sensors_load(file, &ss, err)) < 0)
        return cli_fail(rc, err);

    /* Whom to ask. */
    uint8_t *ask = calloc(ss.n, 1);
    struct fetch *fx = calloc(ss.n, sizeof *fx);
    char why[2048] = "", path[8192] = "", q[8000] = "";
    an_ffilter_t *ff = NULL;
    if (!ask || !fx) {
        status = cli_fail(RW_ENOMEM, "out of memory");
        goto out;
    }
    int narrow = ss.clickhouse[0] && (cid || (filter[0] && an_ffilter_new(filter, &ff, err) == 0));
    if (narrow && select_sensors(&ss, from, to, ff, cid, ask, why, sizeof why, err) < 0) {
        fprintf(stderr, "rewind: %s; asking every sensor\n", err);
        narrow = 0;
    }
    if (!narrow)
        memset(ask, 1, ss.n);
    {
        char list[2048] = "", skipped[2048] = "";
        for (size_t i = 0; i < ss.n; i++) {
            char *l = ask[i] ? list : skipped;
            size_t k = strlen(l);
            snprintf(l + k, sizeof list - k, "%s%s", k ? ", " : "", ss.s[i].name);
        }
        fprintf(stderr, "rewind: asking %s%s%s%s%s%s\n", list[0] ? list : "no sensor",
                skipped[0] ? " (no matching flow in ClickHouse on " : "", skipped,
                skipped[0] ? ")" : "", why[0] ? "; also asked: " : "", why);
    }
    /* The request each sensor gets: the same absolute window. */
    char tb[64];
    if (from != RW_TIME_MIN && append(q, sizeof q, "from", rw_time_fmt(from, tb, sizeof tb)) < 0)
        goto toolong;
    if (append(q, sizeof q, "to", rw_time_fmt(to, tb, sizeof tb)) < 0)
        goto toolong;
    if (filter[0] && append(q, sizeof q, "filter", filter) < 0)
        goto toolong;
    if (cid && append(q, sizeof q, "community_id", cid) < 0)
        goto toolong;
    if (append(q, sizeof q, "format", "pcapng") < 0)
        goto toolong;
    snprintf(path, sizeof path, "/api/v1/packets%s", q);

    size_t nask = 0;
    for (size_t i = 0; i < ss.n; i++) {
        if (!ask[i])
            continue;
        fx[i].s = &ss.s[i];
        fx[i].path = path;
        if (!(fx[i].f = tmpfile())) {
            status = cli_fail(RW_EIO, "cannot create a temporary file (TMPDIR)");
            goto out;
        }
        if (pthread_create(&fx[i].th, NULL, fetch_run, &fx[i]) != 0) {
            fx[i].rc = rw_err(fx[i].err, RW_EIO, "cannot start a thread");
            nask++;
            continue;
        }
        fx[i].started = 1;
        nask++;
    }
    for (size_t i = 0; i < ss.n; i++)
        if (fx[i].started)
            pthread_join(fx[i].th, NULL);
    /* Every failure is named; without --partial, nothing is written. */
    char note[4096] = "";
    int failed = 0, input = 0;
    for (size_t i = 0; i < ss.n; i++) {
        if (!fx[i].f || fx[i].rc == 0)
            continue;
        failed++;
        if (fx[i].rc == RW_EINPUT)
            input = 1;
        fprintf(stderr, "rewind: sensor %s (%s) failed: %s\n", ss.s[i].name, ss.s[i].url,
                fx[i].err);
        size_t l = strlen(note);
        snprintf(note + l, sizeof note - l, "%ssensor %s (%s): %s",
                 l ? "; " : "rewind: this answer lacks the packets of ", ss.s[i].name,
                 ss.s[i].url, fx[i].err);
    }
    if (failed && (!partial || (size_t)failed == nask)) {
        fprintf(stderr, "rewind: %d of %zu sensors failed; no answer written%s\n", failed, nask,
                partial ? "" : " (--partial answers without them)");
        status = input ? EXIT_USAGE : EXIT_RUNTIME;
        goto out;
    }
    struct ex_merge_in *in = calloc(ss.n ? ss.n : 1, sizeof *in);
    size_t nin = 0;
    if (!in) {
        status = cli_fail(RW_ENOMEM, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < ss.n; i++) {
        if (!fx[i].f || fx[i].rc || fx[i].empty)
            continue;
        in[nin].sensor = ss.s[i].name;
        in[nin++].f = fx[i].f;
    }
    FILE *out = stdout;
    if (wfile && !(out = fopen(wfile, "w"))) {
        free(in);
        status = cli_fail(RW_EINPUT, strerror(errno));
        goto out;
    }
    uint64_t pk = 0;
    rc = ex_pcapng_merge(in, nin, note, out, &pk, err);
    free(in);
    if (wfile && fclose(out) != 0 && rc == 0)
        rc = rw_err(err, RW_EIO, "%s: %s", wfile, strerror(errno));
    if (rc < 0) {
        if (wfile)
            unlink(wfile);
        status = cli_fail(rc, err);
        goto out;
    }
    fprintf(stderr, "rewind: %llu packets from %zu sensors%s\n", (unsigned long long)pk, nin,
            failed ? " (partial: see the comment at its end)" : "");
    goto out;
toolong:
    status = cli_usage("query --sensors: the request is too long%s", "");
out:
    for (size_t i = 0; fx && i < ss.n; i++)
        if (fx[i].f)
            fclose(fx[i].f);
    an_ffilter_free(ff);
    free(ask);
    free(fx);
    ex_sensors_free(&ss);
    return status;
}
