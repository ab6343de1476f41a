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
    struct ex_fed_query q = {.from = from, .to = to, .filter = filter, .cid = cid};
    ex_fed_t *fed = NULL;
    if ((rc = ex_fed_fetch(&ss, &q, httpc_get_as, &fed, err)) < 0) {
        status = cli_fail(rc, err);
        goto out;
    }
    if (ex_fed_warning(fed))
        fprintf(stderr, "rewind: %s\n", ex_fed_warning(fed));
    fprintf(stderr, "rewind: %s\n", ex_fed_asked(fed));
    size_t nasked;
    const char *what;
    int input;
    size_t failed = ex_fed_failed(fed, &nasked, &what, &input);
    if (failed) {
        fprintf(stderr, "rewind: %zu of %zu sensors failed: %s\n", failed, nasked, what);
        if (!partial || failed == nasked) {
            fprintf(stderr, "rewind: no answer written%s\n",
                    partial ? "" : " (--partial answers without them)");
            status = input ? EXIT_USAGE : EXIT_RUNTIME;
            goto out;
        }
    }
    FILE *o = stdout;
    if (wfile && !(o = fopen(wfile, "w"))) {
        status = cli_fail(RW_EINPUT, strerror(errno));
        goto out;
    }
    uint64_t pk = 0;
    rc = ex_fed_write(fed, o, &pk, err);
    if (wfile && fclose(o) != 0 && rc == 0)
        rc = rw_err(err, RW_EIO, "%s: %s", wfile, strerror(errno));
    if (rc < 0) {
        if (wfile)
            unlink(wfile);
        status = cli_fail(rc, err);
        goto out;
    }
    fprintf(stderr, "rewind: %llu packets from %zu sensors%s\n", (unsigned long long)pk,
            nasked - failed, failed ? " (partial: the comment at its end names what is missing)"
                                    : "");
out:
    ex_fed_free(fed);
    ex_sensors_free(&ss);
    return status;
}
