/* cmd_calls.c -- `rewind calls`: VoIP calls of a window (SIP over UDP and
 * TCP, grouped by Call-ID) with their RTP/RTCP streams, from an archive
 * (--dir) or a rewindd (--url); --pcap ID writes one call's packets. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "analytics/sessions.h"
#include "cli/cmds.h"
#include "cli/httpc.h"
#include "cli/qargs.h"
#include "common/rw.h"

static const char calls_help[] =
    "usage: rewind calls (--dir DIR | --url URL) [--from T] [--to T] [--host IP]\n"
    "                    [--user TEXT] [--limit N] [--json | --csv]\n"
    "       rewind calls (--dir DIR | --url URL) --pcap ID [--pcapng] [-w FILE]\n"
    "\n"
    "VoIP calls in a window: SIP over UDP and TCP (port 5060, and SIP found by\n"
    "its content on any port), grouped by Call-ID into calls (dialogs that\n"
    "INVITE): caller and callee, INVITE, ringing, answer and BYE times, the final\n"
    "response, duration, and the RTP/RTCP streams SDP announced (both sides,\n"
    "re-INVITEs followed) with packets, loss and maximum jitter (RFC 3550).\n"
    "--pcap ID writes exactly that call's SIP and RTP/RTCP packets. Reads\n"
    "packet payload: the analyst role.\n"
    "\n"
    "  -d, --dir DIR    archive directory (or $REWIND_DIR)\n"
    "  -u, --url URL    ask a rewindd instead (or $REWIND_URL)\n"
    "      --token T    bearer token for --url (or $REWIND_TOKEN)\n"
    "      --from T     window start (RFC 3339, unix seconds, -15m, ...); default: all\n"
    "      --to T       window end (exclusive); default: now\n"
    "      --host IP    calls whose SIP goes to or from this address\n"
    "      --user TEXT  calls whose caller or callee URI contains TEXT\n"
    "      --limit N    at most N calls, the first ones (default 100, at most 10000)\n"
    "      --json       JSON, as GET /api/v1/voip/calls answers (default: a table)\n"
    "      --csv        CSV, one row per call\n"
    "      --pcap ID    the call's packets (ID from the listing) as pcap\n"
    "      --pcapng     ... as pcapng\n"
    "  -w FILE          write them to FILE instead of stdout\n"
    "  -h, --help       this help\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure or no such call, 2 bad usage.\n";

static int write_out(void *arg, const void *buf, size_t n)
{
    return fwrite(buf, 1, n, (FILE *)arg) == n ? 0 : -1;
}

int cmd_calls(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},   {"url", required_argument, 0, 'u'},
        {"token", required_argument, 0, 'T'}, {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},    {"host", required_argument, 0, 'H'},
        {"user", required_argument, 0, 'U'},  {"limit", required_argument, 0, 'l'},
        {"json", no_argument, 0, 'j'},        {"csv", no_argument, 0, 'c'},
        {"pcap", required_argument, 0, 'p'},  {"pcapng", no_argument, 0, 'n'},
        {"help", no_argument, 0, 'h'},        {0, 0, 0, 0}};
    const char *dir = NULL, *url = NULL, *token = getenv("REWIND_TOKEN"), *from = NULL,
               *to = NULL, *host = NULL, *user = NULL, *limit = NULL, *id = NULL, *wfile = NULL;
    int c, nfmt = 0, rc, ng = 0;
    char err[RW_ERRSZ];
    struct ses_spec spec = {0};
    spec.kind = SES_CALLS;
    spec.format = SES_TEXT;
    while ((c = getopt_long(argc, argv, "d:u:w:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'u': url = optarg; break;
        case 'T': token = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'H': host = optarg; break;
        case 'U': user = optarg; break;
        case 'l': limit = optarg; break;
        case 'j': spec.format = SES_JSON, nfmt++; break;
        case 'c': spec.format = SES_CSV, nfmt++; break;
        case 'p': id = optarg; break;
        case 'n': ng = 1; break;
        case 'w': wfile = optarg; break;
        case 'h': fputs(calls_help, stdout); return 0;
        default: return cli_usage("calls: bad option%s", "");
        }
    }
    if (optind < argc)
        return cli_usage("calls: unexpected argument '%s'", argv[optind]);
    if (nfmt > 1)
        return cli_usage("calls: --json and --csv exclude each other%s", "");
    if (id && (nfmt || host || user || limit || from || to))
        return cli_usage("calls: --pcap ID takes no listing options (the ID names the call's "
                         "window)%s", "");
    if ((ng || wfile) && !id)
        return cli_usage("calls: --pcapng and -w go with --pcap ID%s", "");
    if (!dir && !url)
        url = getenv("REWIND_URL");
    if (!url)
        dir = cli_env_dir(dir);
    if (!dir && !url)
        return cli_usage("calls: --dir DIR or --url URL is required%s", "");
    if (cli_sessions_window(from, to, &spec.from, &spec.to, err) < 0 ||
        cli_sessions_limit(limit, &spec.limit, err) < 0)
        return cli_fail(RW_EINPUT, err);
    spec.host = host;
    spec.user = user;
    if (id) {
        spec.kind = SES_CALL_PCAP;
        spec.id = id;
        spec.pcap_format = ng ? QRY_PCAPNG : QRY_PCAP;
        if (strspn(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-") !=
            strlen(id))
            return cli_usage("calls: --pcap '%s' is not a call ID (from the listing)", id);
    }
    if ((rc = ses_check(&spec, err)) < 0) {
        fprintf(stderr, "rewind: calls: --%s\n", err);
        return EXIT_USAGE;
    }
    FILE *out = stdout;
    char tmp[4200] = "";
    if (wfile && strcmp(wfile, "-")) { /* written whole, then renamed: no half file */
        snprintf(tmp, sizeof tmp, "%s.part", wfile);
        if (!(out = fopen(tmp, "wb"))) {
            fprintf(stderr, "rewind: calls: -w %s: cannot write %s: %s\n", wfile, tmp,
                    strerror(errno));
            return EXIT_USAGE;
        }
    } else if (id && isatty(STDOUT_FILENO)) {
        return cli_usage("calls: --pcap writes a capture file: use -w FILE or a pipe%s", "");
    }
    int status, found = 1;
    if (url) {
        static const char *const fmts[] = {"json", "csv", "text", "report"};
        char qs[2048] = "", path[2400];
        if ((rc = httpc_set_token(token, err)) < 0) {
            status = cli_fail(rc, err);
        } else if (id) {
            snprintf(path, sizeof path, "/api/v1/voip/calls/%s/pcap%s", id,
                     ng ? "?format=pcapng" : "");
            rc = httpc_get(url, path, write_out, out, err);
            status = rc < 0 ? cli_fail(rc, err) : 0;
        } else if (cli_qs_add(qs, sizeof qs, "from", from) < 0 ||
                   cli_qs_add(qs, sizeof qs, "to", to) < 0 ||
                   cli_qs_add(qs, sizeof qs, "host", host) < 0 ||
                   cli_qs_add(qs, sizeof qs, "user", user) < 0 ||
                   cli_qs_add(qs, sizeof qs, "limit", limit) < 0) {
            status = cli_fail(RW_EINPUT, "calls: arguments too long");
        } else {
            snprintf(path, sizeof path, "/api/v1/voip/calls%s%sformat=%s", qs, qs[0] ? "&" : "?",
                     fmts[spec.format]);
            rc = httpc_get(url, path, write_out, out, err);
            status = rc < 0 ? cli_fail(rc, err) : 0;
        }
    } else {
        status = cli_sessions_local(dir, &spec, id ? "calls pcap" : "calls", out, &found);
        if (!status && !found) {
            fprintf(stderr, "rewind: calls: no call %s in the archive\n", id);
            status = EXIT_RUNTIME;
        }
    }
    if (tmp[0]) {
        if (fclose(out) != 0 && !status)
            status = cli_fail(RW_EIO, "calls: writing the capture file failed");
        if (status)
            unlink(tmp);
        else if (rename(tmp, wfile) < 0)
            status = cli_fail(RW_EIO, "calls: renaming the capture file failed");
    }
    return status;
}
