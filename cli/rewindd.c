/* rewindd.c -- the daemon: live capture from interfaces into an archive. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "capture/cap.h"
#include "httpd/httpd.h"
#include "query/qsock.h"
#include "common/rw.h"

#define MAX_IFACES 16

static volatile sig_atomic_t stop_sig, hup;

static void on_signal(int sig) { stop_sig = sig; }
static void on_hup(int sig) { hup = sig; }

struct lives {
    cap_live_t **l;
    int n;
};

/* For /metrics and /api/v1/status: which points are paused. */
static size_t capture_state(void *arg, struct httpd_capture *out, size_t max)
{
    struct lives *ls = arg;
    size_t n = 0;
    for (int i = 0; i < ls->n && n < max; i++) {
        struct cap_live_state st;
        if (!ls->l[i])
            continue;
        cap_live_state(ls->l[i], &st);
        snprintf(out[n].point, sizeof out[n].point, "%s", st.point);
        out[n].paused = st.paused;
        out[n].paused_drops = st.paused_drops;
        snprintf(out[n].reason, sizeof out[n].reason, "%s", st.reason);
        n++;
    }
    return n;
}

/* Send the log (stderr) to the end of path. The file is opened first and
 * then put in place on descriptor 2, rather than with freopen(): the stream
 * stays the one set line buffered at start, and when path cannot be opened
 * nothing changes, so the log goes on into the file it went to before.
 * Writes "PATH: reason" into err on failure. */
static int log_open(const char *path, char *err)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0666);
    if (fd < 0)
        return rw_err(err, RW_EINPUT, "%s: %s", path, strerror(errno));
    flockfile(stderr); /* no half line of another thread's lands in the new file */
    fflush(stderr);
    int r = dup2(fd, STDERR_FILENO), e = errno;
    funlockfile(stderr);
    close(fd);
    if (r < 0)
        return rw_err(err, RW_EIO, "%s: %s", path, strerror(e));
    return 0;
}

static const char help[] =
    "usage: rewindd --dir DIR [-i IFACE[=POINT]]... [OPTIONS]\n"
    "\n"
    "Capture packets from interfaces into the archive in DIR, rolling segments\n"
    "by time and size and indexing them as they are written. Packets are\n"
    "queryable ('rewind query --dir DIR') about one flush interval after capture.\n"
    "The daemon owns DIR: 'rewind import --dir DIR' hands its files to it\n"
    "through DIR/rewindd.sock, and 'rewind query --dir DIR' is answered there\n"
    "from the daemon's open index. With no -i it only serves the archive.\n"
    "\n"
    "  -d, --dir DIR             archive directory (created if missing)\n"
    "  -i, --interface IFACE[=POINT]\n"
    "                            capture on IFACE into capture point POINT\n"
    "                            (default: the interface name); repeatable\n"
    "      --segment-seconds N   roll segments after N seconds (default 60)\n"
    "      --segment-bytes SIZE  roll segments before SIZE (default 256M)\n"
    "      --quota SIZE|N%       keep segments + index under SIZE or N% of the disk;\n"
    "                            oldest whole segments go first, never held ones\n"
    "      --max-age DURATION    delete segments older than this (e.g. 30d)\n"
    "      --compress-after DUR  lz4-compress sealed segments this long after they\n"
    "                            were written (default 10m; 0: at once; never)\n"
    "                            (segment and retention settings are remembered\n"
    "                            by the archive once given)\n"
    "      --flush DURATION      commit interval (default 1s); at most this much\n"
    "                            capture is lost on a crash\n"
    "  -l, --listen ADDR:PORT    HTTP API address (default 127.0.0.1:8800;\n"
    "                            'none' to serve no HTTP)\n"
    "      --max-queries N       concurrent packet queries before 503 (default 8);\n"
    "                            as many again for 'rewind query --dir DIR'\n"
    "      --sensor NAME         sensor name in responses (default: host name)\n"
    "      --log FILE            append the log to FILE instead of stderr; SIGHUP\n"
    "                            reopens it (a failed reopen keeps the old file)\n"
    "  -h, --help                this help\n"
    "\n"
    "HTTP routes (see rewindd(8)): /api/v1/packets, /api/v1/segments,\n"
    "/api/v1/status, /metrics, /healthz.\n"
    "Disk full: a point pauses (one log line, metric rewind_capture_paused,\n"
    "dropped packets counted) and resumes by itself once there is room; with\n"
    "--quota, retention makes room first (see rewindd(8), DISK FULL).\n"
    "SIGTERM or SIGINT: stop accepting, cut responses in flight, seal segments,\n"
    "exit 0. SIGHUP: reopen the --log file, for log rotation.\n"
    "Exit status: 0 clean stop, 1 runtime failure, 2 bad usage.\n";

/* The import socket's handler for requests other than imports. */
static void serve_query(void *arg, int conn, char *line) { qsock_serve(arg, conn, line); }

int main(int argc, char **argv)
{
    /* Keep freed memory for reuse instead of giving it back and faulting it
     * in again (18-30 us a page on the VMs we measured): each segment's
     * index buffers, each commit's write batch and each memtable come and
     * go, and glibc would otherwise map and unmap the large ones every
     * time. Up to 64 MiB free at the top of a heap is kept. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"interface", required_argument, 0, 'i'},
                                         {"segment-seconds", required_argument, 0, 'S'},
                                         {"segment-bytes", required_argument, 0, 'B'},
                                         {"flush", required_argument, 0, 'F'},
                                         {"listen", required_argument, 0, 'l'},
                                         {"quota", required_argument, 0, 1},
                                         {"max-age", required_argument, 0, 2},
                                         {"compress-after", required_argument, 0, 3},
                                         {"max-queries", required_argument, 0, 'Q'},
                                         {"sensor", required_argument, 0, 'N'},
                                         {"log", required_argument, 0, 'L'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *logfile = NULL;
    struct httpd_opts ho = {.listen = "127.0.0.1:8800"};
    char *ifaces[MAX_IFACES];
    int nif = 0, c, rc, status = 0;
    char err[RW_ERRSZ];
    struct cap_opts o;
    cap_opts_default(&o);
    while ((c = getopt_long(argc, argv, "d:i:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': ho.listen = strcmp(optarg, "none") ? optarg : NULL; break;
        case 1:
        case 2:
        case 3:
            if (cap_opts_set(&o, c == 1 ? "quota" : c == 2 ? "max-age" : "compress-after", optarg,
                             err) < 0) {
                fprintf(stderr, "rewindd: %s\n", err);
                return 2;
            }
            break;
        case 'N': ho.sensor = optarg; break;
        case 'L': logfile = optarg; break;
        case 'Q': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1024) {
                fprintf(stderr, "rewindd: --max-queries must be 1..1024, not '%s'\n", optarg);
                return 2;
            }
            ho.max_queries = (int)v;
            break;
        }
        case 'd': dir = optarg; break;
        case 'i':
            if (nif == MAX_IFACES) {
                fprintf(stderr, "rewindd: at most %d interfaces\n", MAX_IFACES);
                return 2;
            }
            ifaces[nif++] = optarg;
            break;
        case 'S':
            if (cap_opts_set(&o, "segment-seconds", optarg, err) < 0) {
                fprintf(stderr, "rewindd: %s\n", err);
                return 2;
            }
            break;
        case 'F': {
            int64_t ns = 0;
            if (rw_duration_parse(optarg, &ns, err) < 0) {
                fprintf(stderr, "rewindd: --flush: %s\n", err);
                return 2;
            }
            if (ns <= 0) {
                fprintf(stderr, "rewindd: --flush: must be positive\n");
                return 2;
            }
            o.flush_ns = ns;
            break;
        }
        case 'B':
            if (cap_opts_set(&o, "segment-bytes", optarg, err) < 0) {
                fprintf(stderr, "rewindd: %s\n", err);
                return 2;
            }
            break;
        case 'h': fputs(help, stdout); return 0;
        default: fprintf(stderr, "rewindd: bad option (see 'rewindd --help')\n"); return 2;
        }
    }
    if (!dir) {
        fprintf(stderr, "rewindd: --dir DIR is required (see 'rewindd --help')\n");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "rewindd: unexpected argument '%s' (see 'rewindd --help')\n", argv[optind]);
        return 2;
    }
    struct sockaddr_storage ss;
    if (ho.listen && httpd_parse_listen(ho.listen, &ss, err) < 0) {
        fprintf(stderr, "rewindd: --listen: %s\n", err);
        return 2;
    }
    setvbuf(stderr, NULL, _IOLBF, 0); /* before any output; log_open keeps the stream */
    if (logfile && log_open(logfile, err) < 0) {
        fprintf(stderr, "rewindd: --log: cannot open log %s\n", err);
        return 2;
    }
    struct sigaction sa = {.sa_handler = on_signal}, sh = {.sa_handler = on_hup};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGHUP, &sh, NULL);
    signal(SIGPIPE, SIG_IGN);

    cap_arch_t *a;
    if ((rc = cap_arch_open(dir, &o, &a, err)) < 0) {
        if (rc == RW_ENOSPC)
            rw_error("archive %s is full (%s); free space on its file system", dir, err);
        else
            rw_error("%s", err);
        return rc == RW_EINPUT ? 2 : 1;
    }
    cap_live_t *lives[MAX_IFACES] = {0};
    cap_handoff_t *hand = NULL;
    cap_compressor_t *zip = NULL;
    httpd_t *web = NULL;
    qsock_server_t *qs = NULL;
    /* Local queries ('rewind query --dir') are answered on the import
     * socket by the open index: no process of theirs opens RocksDB. */
    if ((rc = qsock_server_new(cap_arch_index(a), ho.max_queries, &qs, err)) < 0 ||
        (rc = cap_handoff_start(a, serve_query, qs, &hand, err)) < 0) {
        rw_error("%s", err);
        status = 1;
        goto stop;
    }
    if ((rc = cap_compressor_start(a, &zip, err)) < 0) {
        rw_error("%s", err);
        status = 1;
        goto stop;
    }
    for (int i = 0; i < nif; i++) {
        char *eq = strchr(ifaces[i], '=');
        const char *point = NULL;
        if (eq) {
            *eq = 0;
            point = eq + 1;
        }
        if ((rc = cap_live_start(a, ifaces[i], point, &lives[i], err)) < 0) {
            rw_error("%s", err);
            status = rc == RW_EINPUT ? 2 : 1;
            goto stop;
        }
        rw_info("capturing on %s into point %s of %s", ifaces[i], point ? point : ifaces[i], dir);
    }
    struct lives ls = {lives, nif};
    ho.capture = capture_state;
    ho.capture_arg = &ls;
    if (ho.listen) {
        if ((rc = httpd_start(cap_arch_index(a), &ho, &web, err)) < 0) {
            rw_error("%s", err);
            status = rc == RW_EINPUT ? 2 : 1;
            goto stop;
        }
        rw_info("serving http://%s/api/v1/ (curl -o x.pcap 'http://%s/api/v1/packets?from=-5m"
                "&filter=port%%2053')", ho.listen, ho.listen);
    }
    rw_info("ready; query with: rewind query --dir %s --from -5m 'FILTER' -w out.pcap", dir);
    while (!stop_sig) {
        usleep(200 * 1000);
        if (hup) {
            hup = 0;
            if (!logfile)
                rw_info("SIGHUP: no --log file to reopen");
            else if (log_open(logfile, err) < 0)
                rw_error("SIGHUP: cannot reopen log %s; still logging to the file opened before",
                         err);
            else
                rw_info("SIGHUP: log reopened");
        }
        for (int i = 0; i < nif; i++) {
            if (lives[i] && cap_live_failed(lives[i], err)) {
                rw_error("%s; stopping", err);
                status = 1;
                stop_sig = -1;
            }
        }
    }
    if (stop_sig > 0)
        rw_info("signal %d: stopping", (int)stop_sig);
stop:
    httpd_stop(web);
    for (int i = 0; i < nif; i++) {
        if (lives[i] && cap_live_stop(lives[i], err) < 0) {
            rw_error("%s", err);
            status = 1;
        }
    }
    qsock_server_cancel(qs);
    cap_handoff_stop(hand);
    qsock_server_free(qs);
    cap_compressor_stop(zip);
    cap_arch_close(a);
    rw_info("stopped");
    return status;
}
