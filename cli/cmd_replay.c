/* cmd_replay.c -- rewind replay: send a capture file, or the answer of a
 * query, out of an interface (an IDS's mirror port) at the recorded pace,
 * scaled, at a fixed rate or as fast as possible (capture/cap.h does the
 * sending and the pacing). */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "capture/cap.h"
#include "cli/cmds.h"
#include "cli/qargs.h"

static const char replay_help[] =
    "usage: rewind replay --interface IF [PACE] [--loop N] FILE|-\n"
    "       rewind replay --interface IF [PACE] [--loop N] (--dir DIR | --url URL)\n"
    "                     [--from T] [--to T] [--point NAME]... [--limit N] [FILTER...]\n"
    "\n"
    "Send the packets of a capture file (pcap or pcapng, '-' for standard input),\n"
    "or the answer of a query (the options and FILTER of 'rewind query'), out of\n"
    "interface IF, e.g. the mirror port of an IDS, each frame as it was recorded.\n"
    "Only Ethernet captures are sent, out of Ethernet interfaces. A frame cut by\n"
    "the capture's snaplen is sent as captured and counted as truncated.\n"
    "\n"
    "  -i, --interface IF   the interface to send on (required: nothing is sent\n"
    "                       without it); needs root or CAP_NET_RAW\n"
    "      --loop N         send it all N times (default 1), one round after the\n"
    "                       other; a query is asked again for each round, for the\n"
    "                       same window (relative times are resolved once)\n"
    "  -h, --help           this help\n"
    "\n"
    "PACE, one of (default: the recorded pace):\n"
    "      --speed X        the recorded pace times X (2: twice as fast, 0.5: half)\n"
    "      --mbps N         N megabits per second (of frames as sent)\n"
    "      --pps N          N packets per second\n"
    "      --topspeed       as fast as the interface takes them\n"
    "\n"
    "Query options (see 'rewind query --help'): -d/--dir, -u/--url, -f/--from,\n"
    "-t/--to, -p/--point, -c/--limit, --local, --token. Giving any of them\n"
    "replays the query's answer; the remaining words are its filter.\n"
    "\n"
    "On a terminal, progress is shown on standard error; a summary (packets,\n"
    "bytes, elapsed time, achieved rate, truncated frames, errors, packets sent\n"
    "more than 1 ms after their time) is printed on standard output at the end,\n"
    "also when interrupted.\n"
    "\n"
    "Exit status: 0 every packet sent, 1 frames refused by the interface or a\n"
    "runtime failure, 2 bad usage, file, link type or interface.\n";

static volatile sig_atomic_t stop_flag;

static void on_signal(int sig)
{
    (void)sig;
    stop_flag = 1;
}

struct replay {
    const char *iface, *file;
    enum cap_pace_mode mode;
    double rate;
    unsigned long loops, round;
    int query;          /* replay a query's answer */
    char **qargv;       /* "rewind" "query" OPTIONS "-w" "-" "--" FILTER... NULL */
    int qargc;
    int tty;            /* progress on standard error */
    int64_t start;      /* CLOCK_MONOTONIC of the start */
    struct cap_replay_stats st;
};

/* A positive, finite number for option opt, or -1 after the message. */
static int positive(const char *opt, const char *v, double max, const char *what, double *out)
{
    char *end, msg[RW_ERRSZ];
    errno = 0;
    double d = strtod(v, &end);
    if (errno || end == v || *end || !isfinite(d) || d <= 0 || d > max) {
        snprintf(msg, sizeof msg, "replay: %s needs %s, not '%.60s'", opt, what, v);
        cli_usage("%s", msg);
        return -1;
    }
    *out = d;
    return 0;
}

static void add_qarg(struct replay *r, const char *a) { r->qargv[r->qargc++] = (char *)a; }

/* The replay's own options and the query's: the query's are kept, in
 * order, for 'rewind query'. -1 when good, else the exit status. */
static int parse(int argc, char **argv, struct replay *r)
{
    enum { O_SPEED = 256, O_MBPS, O_PPS, O_TOP, O_LOOP, O_LOCAL, O_TOKEN, O_LIMIT };
    static const struct option opts[] = {
        {"interface", required_argument, 0, 'i'}, {"speed", required_argument, 0, O_SPEED},
        {"mbps", required_argument, 0, O_MBPS},    {"pps", required_argument, 0, O_PPS},
        {"topspeed", no_argument, 0, O_TOP},       {"loop", required_argument, 0, O_LOOP},
        {"help", no_argument, 0, 'h'},             {"dir", required_argument, 0, 'd'},
        {"url", required_argument, 0, 'u'},        {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},         {"point", required_argument, 0, 'p'},
        {"limit", required_argument, 0, 'c'},      {"local", no_argument, 0, O_LOCAL},
        {"token", required_argument, 0, O_TOKEN},  {0, 0, 0, 0}};
    char msg[RW_ERRSZ];
    int c, paces = 0;
    r->mode = CAP_PACE_RECORDED;
    r->rate = 1;
    r->loops = 1;
    if (!(r->qargv = calloc((size_t)argc * 2 + 8, sizeof *r->qargv)))
        return cli_fail(RW_ENOMEM, "out of memory");
    add_qarg(r, "rewind");
    add_qarg(r, "query");
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":i:hd:u:f:t:p:c:", opts, NULL)) != -1) {
        switch (c) {
        case 'i': r->iface = optarg; break;
        case O_SPEED:
        case O_MBPS:
        case O_PPS:
        case O_TOP:
            if (paces++)
                return cli_usage("replay: give one pace: --speed, --mbps, --pps or "
                                 "--topspeed%s", "");
            if (c == O_SPEED &&
                positive("--speed", optarg, 1e6, "a positive factor (2: twice the recorded "
                         "pace, 0.5: half of it)", &r->rate) < 0)
                return EXIT_USAGE;
            if (c == O_MBPS &&
                positive("--mbps", optarg, 1e6, "a rate in megabits per second above 0 "
                         "(e.g. 100 or 2.5)", &r->rate) < 0)
                return EXIT_USAGE;
            if (c == O_PPS &&
                positive("--pps", optarg, 1e9, "a rate in packets per second above 0 "
                         "(e.g. 1000)", &r->rate) < 0)
                return EXIT_USAGE;
            r->mode = c == O_SPEED ? CAP_PACE_RECORDED : c == O_MBPS ? CAP_PACE_MBPS
                      : c == O_PPS ? CAP_PACE_PPS : CAP_PACE_TOP;
            break;
        case O_LOOP: {
            char *end;
            errno = 0;
            unsigned long v = strtoul(optarg, &end, 10);
            if (errno || end == optarg || *end || optarg[0] == '-' || v == 0 || v > 1000000)
                return cli_usage("replay: --loop needs a number of rounds from 1 to 1000000, "
                                 "not '%.60s'", optarg);
            r->loops = v;
            break;
        }
        case 'h': fputs(replay_help, stdout); return 0;
        case 'd': add_qarg(r, "--dir"); add_qarg(r, optarg); r->query = 1; break;
        case 'u': add_qarg(r, "--url"); add_qarg(r, optarg); r->query = 1; break;
        case 'f': add_qarg(r, "--from"); add_qarg(r, optarg); r->query = 1; break;
        case 't': add_qarg(r, "--to"); add_qarg(r, optarg); r->query = 1; break;
        case 'p': add_qarg(r, "--point"); add_qarg(r, optarg); r->query = 1; break;
        case 'c': add_qarg(r, "--limit"); add_qarg(r, optarg); r->query = 1; break;
        case O_LOCAL: add_qarg(r, "--local"); r->query = 1; break;
        case O_TOKEN: add_qarg(r, "--token"); add_qarg(r, optarg); r->query = 1; break;
        case ':':
            snprintf(msg, sizeof msg, "replay: %.60s needs a value", argv[optind - 1]);
            return cli_usage("%s", msg);
        default:
            if (optopt == 'l')
                return cli_usage("replay: -l is not an option here: --loop N repeats the "
                                 "replay, --limit N stops a query after N packets%s", "");
            if (optopt)
                snprintf(msg, sizeof msg, "replay: unknown option -%c", optopt);
            else
                snprintf(msg, sizeof msg, "replay: unknown option %.60s", argv[optind - 1]);
            return cli_usage("%s", msg);
        }
    }
    if (!r->iface || !*r->iface)
        return cli_usage("replay: refusing to send without --interface IF: name the interface "
                         "the packets go out of (e.g. the IDS's mirror port)%s", "");
    if (r->query) {
        add_qarg(r, "-w");
        add_qarg(r, "-");
        add_qarg(r, "--");
        for (int i = optind; i < argc; i++)
            add_qarg(r, argv[i]);
        return -1;
    }
    if (optind == argc)
        return cli_usage("replay: give a capture FILE ('-' for standard input), or a query "
                         "(--dir DIR or --url URL, --from, --to, a filter)%s", "");
    if (argc - optind > 1)
        return cli_usage("replay: one capture file at a time ('%.60s' is a second); a "
                         "filter needs a query (--dir DIR or --url URL)", argv[optind + 1]);
    r->file = argv[optind];
    if (!strcmp(r->file, "-") && r->loops > 1)
        return cli_usage("replay: standard input can be read once; --loop needs a FILE%s", "");
    return -1;
}

/* Parse the query as 'rewind query' will (the same messages, exit 2 before
 * anything is sent), and write relative times (-15m, now) as the absolute
 * times they are now, so that every round asks for the same window. */
static int check_query(struct replay *r)
{
    struct qargs a;
    int n = r->qargc, status;
    char **v = calloc((size_t)n + 2, sizeof *v);
    if (!v)
        return cli_fail(RW_ENOMEM, "out of memory");
    /* getopt permutes: parse a copy. --count: this parse writes nothing,
     * so the refusal to write a capture to a terminal does not apply. */
    v[0] = r->qargv[1];
    v[1] = "--count";
    memcpy(v + 2, r->qargv + 2, sizeof *v * (size_t)(n - 2));
    status = qargs_parse(n, v, &a, 0);
    free(v);
    if (status >= 0)
        return qargs_end(&a, status);
    static char abs_time[2][40];
    for (int i = 2; i + 1 < n && strcmp(r->qargv[i], "--"); i++) {
        int is_from = !strcmp(r->qargv[i], "--from");
        if (!is_from && strcmp(r->qargv[i], "--to"))
            continue;
        int64_t ns = is_from ? a.spec.from : a.spec.to;
        if (ns < 0)
            continue; /* before 1970: as given */
        snprintf(abs_time[is_from], sizeof abs_time[0], "%lld.%09lld",
                 (long long)(ns / RW_NS_PER_SEC), (long long)(ns % RW_NS_PER_SEC));
        r->qargv[++i] = abs_time[is_from];
    }
    qargs_end(&a, 0);
    return -1;
}

/* Start 'rewind query' (this executable) writing its answer into a pipe;
 * *fd gets the reading end. Its messages go to our standard error. */
static pid_t start_query(struct replay *r, int *fd, char *err)
{
    int p[2];
    if (pipe2(p, O_CLOEXEC) < 0) {
        rw_err(err, RW_EIO, "pipe: %s", strerror(errno));
        return -1;
    }
    fflush(NULL);
    pid_t pid = fork();
    if (pid < 0) {
        rw_err(err, RW_EIO, "fork: %s", strerror(errno));
        close(p[0]);
        close(p[1]);
        return -1;
    }
    if (pid == 0) {
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        if (dup2(p[1], STDOUT_FILENO) < 0)
            _exit(EXIT_RUNTIME);
        execv("/proc/self/exe", r->qargv);
        fprintf(stderr, "rewind: replay: cannot run the query: %s\n", strerror(errno));
        _exit(EXIT_RUNTIME);
    }
    close(p[1]);
    *fd = p[0];
    return pid;
}

/* The query's exit status (waited for), 0 when kill_it stopped it (SIGTERM
 * first, so that it says nothing of the pipe then closed under it). */
static int end_query(pid_t pid, int fd, int kill_it)
{
    int ws;
    if (kill_it)
        kill(pid, SIGTERM);
    if (fd >= 0)
        close(fd);
    while (waitpid(pid, &ws, 0) < 0)
        if (errno != EINTR)
            return EXIT_RUNTIME;
    if (WIFEXITED(ws))
        return WEXITSTATUS(ws);
    return kill_it ? 0 : EXIT_RUNTIME;
}

static double elapsed_s(const struct cap_replay_stats *st)
{
    return st->packets > 1 ? (double)(st->last_ns - st->first_ns) / 1e9 : 0;
}

static void show_progress(void *arg, const struct cap_replay_stats *st)
{
    const struct replay *r = arg;
    double t = (double)(rw_mono_ns() - r->start) / 1e9; /* goes on during a long gap */
    fprintf(stderr, "\rreplay: %llu packets, %.1f MB, %.1f s, %.1f Mbit/s, %.0f packets/s",
            (unsigned long long)st->packets, (double)st->bytes / 1e6, t,
            t > 0 ? (double)st->bytes * 8 / t / 1e6 : 0, t > 0 ? (double)st->packets / t : 0);
    if (r->loops > 1)
        fprintf(stderr, ", round %lu of %lu", r->round, r->loops);
    fprintf(stderr, "   ");
}

static void summary(const struct replay *r)
{
    const struct cap_replay_stats *st = &r->st;
    double t = elapsed_s(st);
    if (r->tty)
        fputc('\n', stderr);
    printf("interface: %s\n", r->iface);
    printf("packets:   %llu", (unsigned long long)st->packets);
    if (r->loops > 1)
        printf(" (%lu rounds of %lu)", r->round, r->loops);
    printf("\nbytes:     %llu\n", (unsigned long long)st->bytes);
    printf("elapsed:   %.6f s (first packet to last)\n", t);
    if (t > 0)
        printf("rate:      %.3f Mbit/s, %.1f packets/s\n", (double)st->bytes * 8 / t / 1e6,
               (double)st->packets / t);
    else
        printf("rate:      -\n");
    printf("truncated: %llu (cut by the capture's snaplen, sent as captured)\n",
           (unsigned long long)st->truncated);
    if (st->errors)
        printf("errors:    %llu (refused by the interface; the first: %s)\n",
               (unsigned long long)st->errors, st->first_error);
    else
        printf("errors:    0\n");
    if (r->mode != CAP_PACE_TOP)
        printf("late:      %llu (sent more than 1 ms after their time; the latest %.3f ms)\n",
               (unsigned long long)st->late, (double)st->max_late_ns / 1e6);
    fflush(stdout);
}

/* One round: the file (rd when it is open already: takes ownership), or
 * the query's answer. 0, or the exit status. */
static int one_round(struct replay *r, cap_sender_t *s, struct cap_pacer *pace, cap_reader_t *rd)
{
    char err[RW_ERRSZ];
    struct cap_replay_ctl ctl = {&stop_flag, r->tty ? show_progress : NULL, r, 250000000, 1};
    pid_t pid = -1;
    int fd = -1, rc, status = 0;
    if (r->query) {
        if ((pid = start_query(r, &fd, err)) < 0)
            return cli_fail(RW_EIO, err);
        rc = cap_reader_open_fd(fd, "the query's answer", &rd, err);
    } else {
        rc = rd ? 0 : cap_reader_open(r->file, &rd, err);
    }
    if (rc < 0) {
        /* A query that failed said why (and its status says what kind). */
        if (pid > 0 && (status = end_query(pid, fd, 0)) != 0)
            return status;
        return cli_fail(rc, err);
    }
    if ((rc = cap_sender_accepts(s, cap_reader_dlt(rd), err)) < 0)
        rw_errctx(err, rc, "%s", r->query ? "the query's answer" : r->file);
    else
        rc = cap_replay(s, rd, pace, &ctl, &r->st, err);
    cap_reader_close(rd);
    /* A query that failed on its own (its answer then ends early, or
     * short) said why: its status is the replay's. */
    if (pid > 0 && (status = end_query(pid, fd, rc < 0)) != 0 && (rc == 0 || rc == RW_EINPUT))
        return status;
    if (rc == RW_ESTOP)
        return EXIT_RUNTIME;
    return rc < 0 ? cli_fail(rc, err) : 0;
}

int cmd_replay(int argc, char **argv)
{
    struct replay r = {0};
    char err[RW_ERRSZ];
    cap_sender_t *s = NULL;
    cap_reader_t *first = NULL;
    struct stat sb;
    int status = parse(argc, argv, &r), rc;
    if (status >= 0)
        goto done;
    if (r.query && (status = check_query(&r)) >= 0)
        goto done;
    /* A file that cannot be read is refused before the interface is
     * opened; what was read of it is the first round's (it may be a pipe). */
    if (!r.query && (rc = cap_reader_open(r.file, &first, err)) < 0) {
        status = cli_fail(rc, err);
        goto done;
    }
    if (!r.query && r.loops > 1 && (stat(r.file, &sb) < 0 || !S_ISREG(sb.st_mode))) {
        status = cli_usage("replay: %s is not a regular file, it can be read once; --loop needs "
                           "a FILE", r.file);
        goto done;
    }
    if ((rc = cap_sender_open(r.iface, &s, err)) < 0) {
        status = cli_fail(rc, err);
        goto done;
    }
    struct sigaction sa = {.sa_handler = on_signal}; /* no SA_RESTART: a sleep ends at once */
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    r.tty = isatty(STDERR_FILENO);
    struct cap_pacer pace;
    cap_pacer_init(&pace, r.mode, r.rate);
    status = 0;
    r.start = rw_mono_ns();
    for (r.round = 1; r.round <= r.loops && status == 0 && !stop_flag; r.round++) {
        if (r.round > 1)
            cap_pacer_round(&pace);
        status = one_round(&r, s, &pace, first);
        first = NULL;
    }
    r.round--;
    /* Nothing was sent when the capture itself was refused (link type,
     * header): its message is all there is to say. */
    if (r.st.packets || r.st.errors || status == 0 || stop_flag)
        summary(&r);
    if (stop_flag) {
        fprintf(stderr, "rewind: replay: interrupted\n");
        status = status ? status : EXIT_RUNTIME;
    } else if (status == 0 && r.st.errors) {
        fprintf(stderr, "rewind: replay: %llu frames were refused by %s (the first: %s)\n",
                (unsigned long long)r.st.errors, r.iface, r.st.first_error);
        status = EXIT_RUNTIME;
    }
done:
    cap_reader_close(first);
    cap_sender_close(s);
    free(r.qargv);
    return status;
}
