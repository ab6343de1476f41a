/* qargs.c -- `rewind query`'s command line and its question to the daemon,
 * shared by the front end (front.c) and the full client (rewind.c). */
#include "cli/qargs.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ctl/ctl.h"

int cli_usage(const char *fmt, const char *arg)
{
    fprintf(stderr, "rewind: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see 'rewind --help')\n");
    return EXIT_USAGE;
}

int cli_exit_for(int rc) { return rc == RW_EINPUT ? EXIT_USAGE : EXIT_RUNTIME; }

int cli_fail(int rc, const char *err)
{
    fprintf(stderr, "rewind: %s\n", err);
    return cli_exit_for(rc);
}

void cli_log_event(void *arg, const char *level, const char *msg)
{
    (void)arg;
    rw_log(level, "%s", msg);
}

void cli_log_warnings(void *arg, const char *level, const char *msg)
{
    if (strcmp(level, "info"))
        cli_log_event(arg, level, msg);
}

const char *cli_env_dir(const char *dir)
{
    return dir ? dir : getenv("REWIND_DIR");
}

const char qargs_help[] =
    "usage: rewind query (--dir DIR | --url URL) [--from T] [--to T] [--point NAME]...\n"
    "                    [--format pcap|pcapng] [-w FILE] [--count] [--limit N]\n"
    "                    [--local] [--community-id ID] [--follow] [FILTER...]\n"
    "       rewind query --sensors FILE [--partial] [--from T] [--to T] [-w FILE]\n"
    "                    [--community-id ID] [FILTER...]\n"
    "\n"
    "Write the packets in [from, to) that match the BPF FILTER (pcap-filter(7);\n"
    "the words are joined as tcpdump joins them) as a capture file on stdout or\n"
    "FILE. The answer equals 'tcpdump -r ... -w - FILTER' over the same packets.\n"
    "Packets of one capture point keep capture order; points are merged by time.\n"
    "\n"
    "  -d, --dir DIR        archive directory (or $REWIND_DIR)\n"
    "  -u, --url URL        ask a rewindd instead, e.g. http://127.0.0.1:8800\n"
    "                       (or $REWIND_URL); relative times are the daemon's\n"
    "  -f, --from T         start, inclusive (default: the beginning)\n"
    "  -t, --to T           end, exclusive (default: the end)\n"
    "                       T: RFC 3339 (2024-05-01T14:00:00Z), Unix seconds\n"
    "                       (1714572000.25), 'now', or relative (-15m, -2h, -1d)\n"
    "  -p, --point NAME     only this capture point (repeatable)\n"
    "  -F, --format FMT     pcap (nanosecond, the default) or pcapng\n"
    "  -w, --write FILE     write to FILE instead of stdout ('-': stdout)\n"
    "      --count          print the number of matching packets instead\n"
    "  -c, -l, --limit N    stop after N packets (-c as in tcpdump)\n"
    "      --community-id ID  only the packets of the flows with this Community ID\n"
    "                       (1:..., as Zeek and Suricata print it), both ways, and\n"
    "                       FILTER if given too\n"
    "      --local          read DIR directly even when a rewindd serves it\n"
    "      --token TOKEN    bearer token for --url (or $REWIND_TOKEN)\n"
    "      --follow         then keep writing new matches as they are captured,\n"
    "                       until --to passes or the reader leaves (with --url)\n"
    "      --sensors FILE   ask every sensor (rewindd) FILE names that may hold\n"
    "                       matches, as ClickHouse's flows say, and merge their\n"
    "                       answers into one pcapng, an interface per\n"
    "                       sensor:point ('rewind query --sensors FILE --help')\n"
    "      --partial        with --sensors: answer without the sensors that fail,\n"
    "                       naming them in a comment at the end (default: fail)\n"
    "  -h, --help           this help\n"
    "\n"
    "With --dir, a rewindd running on DIR answers through DIR/rewindd.sock, from\n"
    "the index it holds open, writing straight to FILE or stdout; without one\n"
    "(or when it is busy) rewind reads the archive itself. The answer is the same.\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad filter, time or option,\n"
    "3 answered with damage: every readable packet, and a warning per damaged\n"
    "block of a segment file that the answer lacks (FILE is kept).\n";

int qargs_open_output(void *arg, char *err)
{
    struct qargs_out *o = arg;
    if (!o->wfile)
        return o->fd = 1;
    if ((o->fd = open(o->wfile, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644)) < 0)
        return rw_err(err, RW_EINPUT, "cannot write %s: %s", o->wfile, strerror(errno));
    return o->fd;
}

/* The tcpdump options an operator tries first, and what rewind does
 * instead: an unknown option is named, in one line, never guessed at. */
static const struct {
    char opt;
    const char *instead;
} tcpdump_habits[] = {
    {'r', "rewind reads its archive: --dir DIR (or --url URL); to add a capture file to it, "
          "use 'rewind import'"},
    {'i', "choose capture points with --point NAME ('rewind status' lists them); rewindd -i "
          "captures"},
    {'n', "rewind writes a capture file, it does not decode: pipe it to 'tcpdump -r - -n'"},
    {'v', "rewind writes a capture file, it does not decode: pipe it to 'tcpdump -r - -v'"},
    {'e', "rewind writes a capture file, it does not decode: pipe it to 'tcpdump -r - -e'"},
    {'X', "rewind writes a capture file, it does not decode: pipe it to 'tcpdump -r - -X'"},
    {'A', "rewind writes a capture file, it does not decode: pipe it to 'tcpdump -r - -A'"},
    {'s', "answers hold the packets as they were captured; cut them with 'editcap -s'"},
    {'G', "the archive rolls its own segments (rewindd --segment-seconds)"},
    {'W', "retention keeps the archive within its quota (rewindd --quota)"},
};

/* "rewind: query: ..." naming the option that is not rewind's, and what to
 * use instead when it is a tcpdump habit; EXIT_USAGE. */
static int unknown_option(const char *arg, int opt, int missing_value)
{
    char msg[RW_ERRSZ];
    if (missing_value) {
        snprintf(msg, sizeof msg, "query: %s needs a value", arg);
        return cli_usage("%s", msg);
    }
    if (!opt) { /* a long option */
        snprintf(msg, sizeof msg, "query: unknown option %.60s", arg);
        return cli_usage("%s", msg);
    }
    for (size_t i = 0; i < sizeof tcpdump_habits / sizeof tcpdump_habits[0]; i++) {
        if (tcpdump_habits[i].opt == opt) {
            snprintf(msg, sizeof msg, "query: -%c is tcpdump's, not rewind's: %s", opt,
                     tcpdump_habits[i].instead);
            return cli_usage("%s", msg);
        }
    }
    snprintf(msg, sizeof msg, "query: unknown option -%c", opt);
    return cli_usage("%s", msg);
}

int qargs_parse(int argc, char **argv, struct qargs *a, int quiet)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},    {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},     {"point", required_argument, 0, 'p'},
        {"format", required_argument, 0, 'F'}, {"write", required_argument, 0, 'w'},
        {"count", no_argument, 0, 'C'},        {"limit", required_argument, 0, 'l'},
        {"url", required_argument, 0, 'u'},    {"help", no_argument, 0, 'h'},
        {"local", no_argument, 0, 'L'},        {"token", required_argument, 0, 'T'},
        {"community-id", required_argument, 0, 'I'}, {"follow", no_argument, 0, 'W'},
        {0, 0, 0, 0}};
#define USAGE(fmt, arg) (quiet ? EXIT_USAGE : cli_usage(fmt, arg))
#define FAIL(rc, err) (quiet ? cli_exit_for(rc) : cli_fail(rc, err))
    char err[RW_ERRSZ];
    int c, rc;
    int64_t now = rw_now_ns();
    memset(a, 0, sizeof *a);
    a->format = QRY_PCAP;
    a->o.fd = -1;
    a->spec.from = RW_TIME_MIN;
    a->spec.to = RW_TIME_MAX;
    optind = 0; /* glibc: start over, even after an earlier parse */
    opterr = 0; /* unknown options are named below, in one line */
    while ((c = getopt_long(argc, argv, ":d:u:f:t:p:F:w:c:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': a->dir = optarg; break;
        case 'u':
            if (a->url)
                return USAGE("query: --url given twice; one rewindd answers a query (several "
                             "sensors at once are not supported yet)%s", "");
            a->url = optarg;
            break;
        case 'f': a->from = optarg; break;
        case 't': a->to = optarg; break;
        case 'p':
            if (a->npoints == 64)
                return USAGE("query: too many --point options%s", "");
            a->points[a->npoints++] = optarg;
            break;
        case 'F':
            if (!strcmp(optarg, "pcap"))
                a->format = QRY_PCAP;
            else if (!strcmp(optarg, "pcapng"))
                a->format = QRY_PCAPNG;
            else
                return USAGE("query: --format must be pcap or pcapng, not '%s'", optarg);
            break;
        case 'w':
            /* "-" is standard output, as for tcpdump and every pcap tool;
             * a file of that name is ./- */
            a->o.wfile = strcmp(optarg, "-") ? optarg : NULL;
            break;
        case 'C': a->count = 1; break;
        case 'T': a->token = optarg; break;
        case 'L': a->local = 1; break;
        case 'I': a->cid = optarg; break;
        case 'W': a->follow = 1; break;
        case 'c':
        case 'l': {
            char *end;
            errno = 0;
            unsigned long long v = strtoull(optarg, &end, 10);
            if (errno || *end || end == optarg || optarg[0] == '-')
                return USAGE(c == 'c' ? "query: -c needs a packet count (as in tcpdump), not '%s'"
                                      : "query: --limit needs a packet count, not '%s'", optarg);
            a->spec.limit_packets = v;
            break;
        }
        case 'h':
            if (quiet)
                return 0;
            fputs(qargs_help, stdout);
            return 0;
        case ':':
            return quiet ? EXIT_USAGE : unknown_option(argv[optind - 1], optopt, 1);
        default: return quiet ? EXIT_USAGE : unknown_option(argv[optind - 1], optopt, 0);
        }
    }
    if (!a->dir && !a->url)
        a->url = getenv("REWIND_URL");
    if (!a->url)
        a->dir = cli_env_dir(a->dir);
    if (!a->dir && !a->url)
        return USAGE("query: --dir DIR or --url URL is required%s", "");
    if (a->dir && a->url)
        return USAGE("query: give --dir or --url, not both%s", "");
    if (a->follow && (!a->url || a->count))
        return USAGE("query: --follow needs --url (new packets come from the daemon that "
                     "captures them, e.g. --url http://127.0.0.1:8800) and no --count%s", "");
    if (a->from && (rc = rw_time_parse(a->from, now, &a->spec.from, err)) < 0)
        return FAIL(rc, err);
    if (a->to && (rc = rw_time_parse(a->to, now, &a->spec.to, err)) < 0)
        return FAIL(rc, err);
    if (a->spec.from >= a->spec.to)
        return USAGE("query: --from must be before --to%s", "");
    if (!a->count && !a->o.wfile && isatty(1))
        return USAGE("query: refusing to write a capture file to a terminal; use -w FILE, "
                     "--count, or a pipe%s", "");
    /* Join the filter words with spaces, as tcpdump does. */
    size_t flen = 1;
    for (int i = optind; i < argc; i++)
        flen += strlen(argv[i]) + 1;
    if (!(a->filter = calloc(1, flen)))
        return FAIL(RW_ENOMEM, "out of memory");
    for (int i = optind; i < argc; i++) {
        if (i > optind)
            strcat(a->filter, " ");
        strcat(a->filter, argv[i]);
    }
    a->points[a->npoints] = NULL;
    a->spec.filter = a->filter;
    a->spec.points = a->npoints ? a->points : NULL;
    return -1;
#undef USAGE
#undef FAIL
}

int qargs_end(struct qargs *a, int status)
{
    if (a->o.wfile && a->o.fd >= 0) {
        close(a->o.fd);
        if (status != 0 && status != EXIT_DAMAGED)
            unlink(a->o.wfile);
    }
    free(a->filter);
    return status;
}

/* A damaged range the daemon's answer lacks: warned as --local does. */
static void warn_damage(void *arg, const char *line)
{
    ++*(int *)arg;
    rw_warn("query: %s", line);
}

/* A capture point the daemon's answer left out: warned as --local does. */
static void warn_note(void *arg, const char *line)
{
    (void)arg;
    rw_warn("query: %s", line);
}

int qargs_ask(struct qargs *a)
{
    struct ctl_query r = {.spec = a->spec, .format = a->format, .count = a->count,
                          .note = warn_note};
    char err[RW_ERRSZ];
    uint64_t n = 0;
    int damaged = 0;
    int rc = ctl_ask_query(a->dir, &r, qargs_open_output, &a->o, warn_damage, &damaged, &n, err);
    if (rc == CTL_LOCAL)
        return -1;
    if (rc == CTL_EPIPE) {
        /* End as writing the pipe ourselves would have: killed by SIGPIPE,
         * or, where it is ignored or blocked, a write error. */
        struct sigaction sa;
        sigset_t blocked;
        if (sigaction(SIGPIPE, NULL, &sa) == 0 && sa.sa_handler == SIG_DFL &&
            sigprocmask(SIG_BLOCK, NULL, &blocked) == 0 && !sigismember(&blocked, SIGPIPE))
            raise(SIGPIPE);
        return cli_fail(RW_EIO, "writing output: Broken pipe");
    }
    if (rc < 0)
        return cli_fail(rc, err);
    if (a->count)
        printf("%llu\n", (unsigned long long)n);
    return damaged ? EXIT_DAMAGED : 0;
}
