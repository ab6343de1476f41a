/* rewindd.c -- the daemon: an archive and the services around it (live
 * capture points, the compressor, the control socket, the HTTP API), each
 * started in order and stopped in reverse. */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <malloc.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "auth/audit.h"
#include "auth/auth.h"
#include "capture/cap.h"
#include "common/rw.h"
#include "ctl/ctl.h"
#include "export/export.h"
#include "cli/qargs.h"
#include "httpd/httpd.h"
#include "intercept/intercept.h"

#define MAX_IFACES 16

static volatile sig_atomic_t stop_sig, hup;

static void on_signal(int sig) { stop_sig = sig; }
static void on_hup(int sig) { hup = sig; }

/* The daemon: what main() parsed, and every service's handle. */
struct daemon {
    const char *dir;
    char ifaces[MAX_IFACES][64];  /* -i IFACE[=POINT], split (argv stays as given) */
    char points[MAX_IFACES][65];  /* "" for the interface's name */
    int nif;
    struct arc_opts ao;
    struct cap_live_opts co; /* --buffer-size */
    struct httpd_opts ho;
    const char *ctl_group; /* --ctl-group */
    int ctl_max_conns, ctl_idle_s; /* --ctl-max-connections, --ctl-idle-timeout */
    arc_t *a;
    cap_live_t *lives[MAX_IFACES];
    arc_compressor_t *zip;
    audit_t *audit;
    ic_t *cases;
    uint64_t case_quota;   /* --case-quota: each case's spool */
    ctl_t *ctl;
    httpd_t *web;
    struct ex_opts xo; /* --export-flows, --export-ipfix */
    ex_t *ex;
    struct ex_sensors fed; /* --federate FILE */
};

/* -i IFACE[=POINT] into its two parts, copied: argv is left as given, so
 * that ps shows the command line the operator typed. */
static int split_iface(const char *arg, char *iface, char *point, char *err)
{
    const char *eq = strchr(arg, '=');
    size_t il = eq ? (size_t)(eq - arg) : strlen(arg);
    if (il == 0 || il >= 64)
        return rw_err(err, RW_EINPUT, "interface name must be 1 to 63 characters");
    memcpy(iface, arg, il);
    iface[il] = 0;
    point[0] = 0;
    if (eq && !rw_point_name_ok(eq + 1))
        return rw_err(err, RW_EINPUT, "invalid point name '%s': use letters, digits, '.', '_', "
                                      "'-' (at most 64)", eq + 1);
    if (eq)
        snprintf(point, 65, "%s", eq + 1);
    return 0;
}

/* For the status and /metrics: which points are paused. */
static size_t live_state(void *arg, struct qry_live *out, size_t max)
{
    struct daemon *d = arg;
    size_t n = 0;
    for (int i = 0; i < d->nif && n < max; i++) {
        struct cap_live_state st;
        if (!d->lives[i])
            continue;
        cap_live_state(d->lives[i], &st);
        snprintf(out[n].point, sizeof out[n].point, "%s", st.point);
        out[n].linktype = st.dlt;
        out[n].paused = st.paused;
        out[n].paused_drops = st.paused_drops;
        snprintf(out[n].reason, sizeof out[n].reason, "%s", st.reason);
        n++;
    }
    return n;
}

/* ---- the services ----
 * Each start returns 0 or an RW_E* code with a message; each stop undoes
 * its start (and is called only after it succeeded). They start in table
 * order and stop in reverse: the archive first and last, capture before
 * the front doors so that an answer never waits for a point to open, and
 * the front doors stopped first so that nothing reads what is closing. */

static int archive_start(struct daemon *d, char *err)
{
    int rc = arc_open(d->dir, &d->ao, &d->a, err);
    if (rc == RW_ENOSPC)
        rw_errctx(err, rc, "archive %s is full; free space on its file system", d->dir);
    return rc;
}
static void archive_stop(struct daemon *d) { arc_close(d->a); }

/* The audit trail: the daemon is its one writer while it runs. A trail
 * that a crash cut is taken up again (a record says where), one that does
 * not verify at its end keeps the daemon from starting. */
static int audit_start(struct daemon *d, char *err)
{
    int rc = audit_open(d->dir, &d->audit, err);
    if (rc == AUDIT_RECOVERED) {
        rw_warn("audit trail: %s", err);
        rc = 0;
    }
    return rc < 0 ? rw_errctx(err, rc, "audit trail of %s", d->dir) : 0;
}
static void audit_stop(struct daemon *d) { audit_close(d->audit); }

/* Lawful intercept's case store (DIR/cases): the HTTP routes and the
 * control socket's case verb change it through this one handle. */
static int cases_start(struct daemon *d, char *err)
{
    struct ic_live_opts lo = {.quota = d->case_quota, .log = cli_log_event};
    int rc = ic_open(d->dir, arc_index(d->a), d->audit, &d->cases, err);
    if (rc < 0)
        return rc;
    /* Before capture opens a point writer: identities from RADIUS
     * accounting, and the tee of live intercept, see every packet. */
    arc_set_tap(d->a, ic_tap, d->cases);
    if ((rc = ic_live_start(d->cases, &lo, err)) < 0) {
        arc_set_tap(d->a, NULL, NULL);
        ic_close(d->cases);
        d->cases = NULL;
    }
    return rc;
}
static void cases_stop(struct daemon *d)
{
    ic_live_stop(d->cases); /* capture has stopped: what is spooled goes to disk */
    ic_close(d->cases);
}

static int compressor_start(struct daemon *d, char *err)
{
    return arc_compressor_start(d->a, &d->zip, err);
}
static void compressor_stop(struct daemon *d) { arc_compressor_stop(d->zip); }

static int capture_start(struct daemon *d, char *err)
{
    for (int i = 0; i < d->nif; i++) {
        const char *point = d->points[i][0] ? d->points[i] : NULL;
        int rc = cap_live_start_opts(d->a, d->ifaces[i], point, &d->co, &d->lives[i], err);
        if (rc < 0)
            return rc; /* capture_stop stops those started */
        rw_info("capturing on %s into point %s of %s", d->ifaces[i], point ? point : d->ifaces[i],
                d->dir);
    }
    return 0;
}
static void capture_stop(struct daemon *d)
{
    char err[RW_ERRSZ];
    for (int i = 0; i < d->nif; i++) {
        if (d->lives[i] && cap_live_stop(d->lives[i], err) < 0)
            rw_error("%s", err);
        d->lives[i] = NULL;
    }
}

/* The flow export (export/export.h): threads of its own that read the
 * index, never the capture path. */
static int export_start(struct daemon *d, char *err)
{
    static char host[128];
    if (!d->xo.sensor) {
        if (gethostname(host, sizeof host - 1) < 0 || !host[0])
            snprintf(host, sizeof host, "rewind");
        d->xo.sensor = host;
    }
    d->xo.log = cli_log_event;
    int rc = ex_start(arc_index(d->a), d->dir, &d->xo, &d->ex, err);
    if (rc == 0 && d->xo.clickhouse)
        rw_info("exporting flows of sealed segments to ClickHouse as sensor %s", d->xo.sensor);
    if (rc == 0 && d->xo.ipfix)
        rw_info("exporting flows of sealed segments as IPFIX to %s", d->xo.ipfix);
    return rc;
}
static void export_stop(struct daemon *d) { ex_stop(d->ex); }

static int ctl_service_start(struct daemon *d, char *err)
{
    struct ctl_opts co = {.archive = d->a, .max_queries = d->ho.max_queries,
                          .live = live_state, .live_arg = d, .group = d->ctl_group,
                          .audit = d->audit, .cases = d->cases,
                          .max_conns = d->ctl_max_conns, .idle_ms = d->ctl_idle_s * 1000};
    return ctl_start(&co, &d->ctl, err);
}
static void ctl_service_stop(struct daemon *d) { ctl_stop(d->ctl); }

/* Whether a token is defined: a listener beyond loopback needs one
 * (httpd_check_opts). Tokens are kept in the archive's index, so before
 * the archive is open this can only tell an archive without an index yet,
 * which has none, from one that may have some: that one is asked again by
 * httpd_start, once it is open. A token store that cannot be read has none
 * (the listener is refused, never opened by accident). */
static int have_tokens(void *arg)
{
    struct daemon *d = arg;
    char path[4096], err[RW_ERRSZ];
    struct stat st;
    if (!d->a) {
        snprintf(path, sizeof path, "%s/index", d->dir);
        return stat(path, &st) == 0;
    }
    return auth_tokens_defined(arc_index(d->a), rw_now_ns(), err) > 0;
}

/* The web console's files when --web-root is not given: beside the
 * installed binary (PREFIX/sbin/rewindd: PREFIX/share/rewind/web), else in
 * the source tree it was built in (bin/rewindd: web/). NULL: neither. */
static const char *default_web_root(void)
{
    static char out[4096];
    static const char *const rel[] = {"/../share/rewind/web", "/../web"};
    char exe[4000];
    struct stat st;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return NULL;
    exe[n] = 0;
    char *slash = strrchr(exe, '/');
    if (!slash)
        return NULL;
    *slash = 0;
    for (size_t i = 0; i < sizeof rel / sizeof rel[0]; i++) {
        snprintf(out, sizeof out, "%s%s", exe, rel[i]);
        char index[4200];
        snprintf(index, sizeof index, "%s/index.html", out);
        if (stat(index, &st) == 0 && S_ISREG(st.st_mode))
            return out;
    }
    return NULL;
}

static int http_start(struct daemon *d, char *err)
{
    if (!d->ho.listen)
        return 0;
    d->ho.live = live_state;
    d->ho.live_arg = d;
    d->ho.audit = d->audit;
    d->ho.cases = d->cases;
    d->ho.idtap = ic_ident_counters(d->cases);
    d->ho.metrics = ex_metrics;
    d->ho.metrics_arg = d->ex;
    int rc = httpd_start(arc_index(d->a), &d->ho, &d->web, err);
    if (rc < 0)
        return rc;
    const char *scheme = d->ho.tls_cert ? "https" : "http";
    rw_info("serving %s://%s/api/v1/status (packets: curl -fOJ '%s://%s/api/v1/packets"
            "?from=-5m&filter=port%%2053')", scheme, d->ho.listen, scheme, d->ho.listen);
    if (d->ho.web_root)
        rw_info("web console: %s://%s/ (files from %s)", scheme, d->ho.listen, d->ho.web_root);
    if (d->ho.tls_client_ca)
        rw_info("https: clients need a certificate signed by %s", d->ho.tls_client_ca);
    /* Only a loopback listener gets this far without tokens (httpd_check_opts). */
    if (!have_tokens(d))
        rw_warn("http: the API is open to any client on this host: no tokens are defined "
                "(rewind token add)");
    return 0;
}
static void http_stop(struct daemon *d) { httpd_stop(d->web); }

static const struct service {
    const char *name;
    int (*start)(struct daemon *d, char *err);
    void (*stop)(struct daemon *d);
} services[] = {
    {"archive", archive_start, archive_stop},
    {"audit trail", audit_start, audit_stop},
    {"cases", cases_start, cases_stop},
    {"compressor", compressor_start, compressor_stop},
    {"capture", capture_start, capture_stop},
    {"flow export", export_start, export_stop},
    {"control socket", ctl_service_start, ctl_service_stop},
    {"http", http_start, http_stop},
};
#define NSERVICES (int)(sizeof services / sizeof services[0])

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
    "      --buffer-size SIZE    kernel capture buffer per interface (default 64M;\n"
    "                            1M..2G; a number without a unit is KiB, as\n"
    "                            tcpdump -B)\n"
    "      --segment-seconds N   roll segments after N seconds (default 60)\n"
    "      --segment-bytes SIZE  roll segments before SIZE (default 256M)\n"
    "      --quota SIZE|N%       keep segments + index under SIZE or N% of the disk;\n"
    "                            oldest whole segments go first, never held ones\n"
    "      --max-age DURATION    delete segments older than this (e.g. 30d)\n"
    "      --compress-after DUR  lz4-compress sealed segments this long after they\n"
    "                            were written (default 10m; 0: at once; never)\n"
    "      --min-horizon DUR     alarm (log, status, metric) when retention deletes\n"
    "                            packets less than DUR before the newest (e.g. 30d)\n"
    "                            (segment and retention settings are remembered\n"
    "                            by the archive once given)\n"
    "      --flush DURATION      commit interval (default 1s); at most this much\n"
    "                            capture is lost on a crash\n"
    "  -l, --listen ADDR:PORT    HTTP API address (default 127.0.0.1:8800;\n"
    "                            'none' to serve no HTTP); an address beyond\n"
    "                            loopback needs TLS and tokens (rewindd(8), SECURITY)\n"
    "      --tls-cert FILE       serve HTTPS: the server's PEM certificate (the\n"
    "                            chain to its CA may follow it in FILE)\n"
    "      --tls-key FILE        the certificate's PEM private key, unencrypted\n"
    "      --tls-client-ca FILE  mutual TLS: a client needs a certificate signed by\n"
    "                            a CA in this PEM file, else its handshake fails\n"
    "      --web-root DIR        the web console's files, served at / (default:\n"
    "                            ../share/rewind/web beside the binary, else ../web;\n"
    "                            'none' for no console)\n"
    "      --max-queries N       concurrent packet queries before 503 (default 8);\n"
    "                            as many again for 'rewind query --dir DIR'\n"
    "      --max-connections N   HTTP connections at once; a request on one more\n"
    "                            is answered 503 with Retry-After (default 256)\n"
    "      --max-client-connections N\n"
    "                            the same per client address (default 64)\n"
    "      --idle-timeout SECS   an HTTP connection must bring a complete request\n"
    "                            within SECS of opening or of its last answer, else\n"
    "                            it is closed (default 15)\n"
    "      --send-timeout SECS   an answer waiting on its client is cut when the\n"
    "      --min-rate BYTES      client accepts fewer than BYTES a second over SECS\n"
    "                            (defaults 30 and 1024); a quiet stream is not cut\n"
    "      --max-streams N       long-lived answers (follow=1, a case's pull intercept)\n"
    "                            open at once, a pool apart from --max-queries\n"
    "                            (default 32)\n"
    "      --max-streams-per-client N\n"
    "                            the same for one token or client (default 4)\n"
    "      --max-uri BYTES       longest request URI, else 414 (default 65536)\n"
    "      --max-headers BYTES   largest request headers, else 431 (default 32768)\n"
    "      --ctl-max-connections N\n"
    "                            control socket connections at once; more are told\n"
    "                            'busy' (default 64)\n"
    "      --ctl-idle-timeout SECS\n"
    "                            a control socket request is due within SECS of\n"
    "                            connecting (default 10)\n"
    "      --sensor NAME         sensor name in responses (default: host name)\n"
    "      --ctl-group GROUP     the group of DIR/rewindd.sock, whose members may\n"
    "                            query and place holds (default: DIR's group)\n"
    "      --case-quota SIZE     each lawful intercept case's spool (default 1G;\n"
    "                            alarm at 80%, beyond it packets are dropped, counted)\n"
    "      --export-flows clickhouse=URL\n"
    "                            insert the flow records of each sealed segment\n"
    "                            into ClickHouse (HTTP interface, e.g.\n"
    "                            http://127.0.0.1:8123/?database=rewind; tables:\n"
    "                            'rewind clickhouse-schema')\n"
    "      --export-auth FILE    ClickHouse login: first line USER:PASSWORD\n"
    "      --export-ipfix [udp://|tcp://]HOST:PORT\n"
    "                            send the same flows as IPFIX (default UDP)\n"
    "      --federate FILE       answer /api/v1/packets across the sensors FILE\n"
    "                            names (format: rewind(1), query --sensors)\n"
    "      --log FILE            append the log to FILE instead of stderr; SIGHUP\n"
    "                            reopens it (a failed reopen keeps the old file)\n"
    "  -h, --help                this help\n"
    "\n"
    "HTTP routes (see rewindd(8)): /api/v1/packets, /segments, /status, /flows, /top,\n"
    "/timeline, /holds, /audit, /cases, /identities, /metrics, /healthz; the web console\n"
    "at /.\n"
    "Disk full: a point pauses (one log line, metric rewind_capture_paused,\n"
    "dropped packets counted) and resumes by itself once there is room; with\n"
    "--quota, retention makes room first (see rewindd(8), DISK FULL).\n"
    "SIGTERM or SIGINT: stop accepting, cut responses in flight, seal segments,\n"
    "exit 0. SIGHUP: reopen the --log file, for log rotation.\n"
    "Exit status: 0 clean stop, 1 runtime failure, 2 bad usage.\n";

/* The limits' options (rewindd(8), LIMITS): getopt code, name, where the
 * value goes, its range. */
static int limit_opt(struct daemon *d, int code, const char *arg)
{
    struct hd_limits *l = &d->ho.limits;
    const struct {
        int code;
        const char *name;
        int *to;
        long lo, hi;
    } t[] = {
        {40, "max-connections", &l->max_conns, 1, 100000},
        {41, "max-client-connections", &l->max_client_conns, 1, 100000},
        {42, "idle-timeout", &l->idle_timeout_s, 1, 86400},
        {43, "send-timeout", &l->send_timeout_s, 1, 86400},
        {44, "min-rate", &l->min_rate, 1, 1 << 30},
        {45, "max-uri", &l->max_uri, 1024, HD_CONN_MEMORY / 2},
        {46, "max-headers", &l->max_headers, 1024, HD_CONN_MEMORY / 4},
        {47, "ctl-max-connections", &d->ctl_max_conns, 1, 100000},
        {48, "ctl-idle-timeout", &d->ctl_idle_s, 1, 86400},
        {49, "max-streams", &d->ho.max_streams, 1, 100000},
        {50, "max-streams-per-client", &d->ho.max_streams_each, 1, 100000},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        if (t[i].code != code)
            continue;
        char *end;
        errno = 0;
        long v = strtol(arg, &end, 10);
        if (errno || end == arg || *end || v < t[i].lo || v > t[i].hi) {
            fprintf(stderr, "rewindd: --%s must be a whole number %ld..%ld, not '%s'\n",
                    t[i].name, t[i].lo, t[i].hi, arg);
            return -1;
        }
        *t[i].to = (int)v;
        return 0;
    }
    return -1;
}

int main(int argc, char **argv)
{
    /* Archive files hold packets: never readable by other users (0640 files,
     * 0750 directories, whatever the caller's umask allowed). */
    umask(027);
    /* Keep freed memory for reuse instead of giving it back and faulting it
     * in again (18-30 us a page on the VMs we measured): each segment's
     * index buffers, each commit's write batch and each memtable come and
     * go, and glibc would otherwise map and unmap the large ones every
     * time. Up to 64 MiB free at the top of a heap is kept.
     * One heap for all threads: the capture thread builds the batches the
     * commit thread frees, RocksDB's threads make memtables and compaction
     * buffers, and with a heap per thread (glibc's default) each kept its
     * own peak: live at 1 Gbit/s for a minute, 119.6 against 107.6 MiB
     * resident, the same CPU; four concurrent queries over HTTP no slower. */
    mallopt(M_ARENA_MAX, 1);
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
                                         {"min-horizon", required_argument, 0, 4},
                                         {"ctl-group", required_argument, 0, 5},
                                         {"max-queries", required_argument, 0, 'Q'},
                                         {"sensor", required_argument, 0, 'N'},
                                         {"log", required_argument, 0, 'L'},
                                         {"tls-cert", required_argument, 0, 6},
                                         {"tls-key", required_argument, 0, 7},
                                         {"tls-client-ca", required_argument, 0, 8},
                                         {"web-root", required_argument, 0, 20},
                                         {"case-quota", required_argument, 0, 9},
                                         {"max-connections", required_argument, 0, 40},
                                         {"max-client-connections", required_argument, 0, 41},
                                         {"idle-timeout", required_argument, 0, 42},
                                         {"send-timeout", required_argument, 0, 43},
                                         {"min-rate", required_argument, 0, 44},
                                         {"max-uri", required_argument, 0, 45},
                                         {"max-headers", required_argument, 0, 46},
                                         {"ctl-max-connections", required_argument, 0, 47},
                                         {"ctl-idle-timeout", required_argument, 0, 48},
                                         {"max-streams", required_argument, 0, 49},
                                         {"max-streams-per-client", required_argument, 0, 50},
                                         {"export-flows", required_argument, 0, 30},
                                         {"export-auth", required_argument, 0, 31},
                                         {"export-ipfix", required_argument, 0, 32},
                                         {"federate", required_argument, 0, 33},
                                         {"buffer-size", required_argument, 0, 51},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *logfile = NULL;
    static struct daemon d = {.ho = {.listen = "127.0.0.1:8800"}};
    int c, rc, status = 0;
    char err[RW_ERRSZ];
    arc_opts_default(&d.ao);
    d.ao.log = cli_log_event;
    while ((c = getopt_long(argc, argv, "d:i:l:h", opts, NULL)) != -1) {
        switch (c) {
        case 'l': d.ho.listen = strcmp(optarg, "none") ? optarg : NULL; break;
        case 1:
        case 2:
        case 3:
        case 4:
            if (arc_opts_set(&d.ao, c == 1 ? "quota" : c == 2 ? "max-age" : c == 3 ? "compress-after"
                                                                               : "min-horizon",
                             optarg, err) < 0) {
                fprintf(stderr, "rewindd: %s\n", err);
                return 2;
            }
            break;
        case 'N': d.ho.sensor = optarg; break;
        case 5: d.ctl_group = optarg; break;
        case 6: d.ho.tls_cert = optarg; break;
        case 7: d.ho.tls_key = optarg; break;
        case 8: d.ho.tls_client_ca = optarg; break;
        case 20:
            d.ho.web_root = strcmp(optarg, "none") ? optarg : NULL;
            d.ho.web_root_given = 1;
            break;
        case 9:
            if (rw_size_parse(optarg, &d.case_quota, err) < 0 || d.case_quota < (1 << 20)) {
                fprintf(stderr, "rewindd: --case-quota: %s\n",
                        d.case_quota < (1 << 20) ? "at least 1M" : err);
                return 2;
            }
            break;
        case 51:
            if (cap_buffer_parse(optarg, &d.co.buffer_bytes, err) < 0) {
                fprintf(stderr, "rewindd: %s\n", err);
                return 2;
            }
            break;
        case 'L': logfile = optarg; break;
        case 30:
            if (ex_flows_target_parse(optarg, &d.xo.clickhouse, err) < 0) {
                fprintf(stderr, "rewindd: %s\n", err);
                return 2;
            }
            break;
        case 31: d.xo.ch_auth = optarg; break;
        case 32: d.xo.ipfix = optarg; break;
        case 33:
            ex_sensors_free(&d.fed);
            if (ex_sensors_load(optarg, &d.fed, err) < 0) {
                fprintf(stderr, "rewindd: --federate: %s\n", err);
                return 2;
            }
            d.ho.federate = &d.fed;
            break;
        case 'Q': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || v < 1 || v > 1024) {
                fprintf(stderr, "rewindd: --max-queries must be 1..1024, not '%s'\n", optarg);
                return 2;
            }
            d.ho.max_queries = (int)v;
            break;
        }
        case 40: case 41: case 42: case 43: case 44: case 45: case 46: case 47: case 48:
        case 49: case 50:
            if (limit_opt(&d, c, optarg) < 0)
                return 2;
            break;
        case 'd': d.dir = optarg; break;
        case 'i':
            if (d.nif == MAX_IFACES) {
                fprintf(stderr, "rewindd: at most %d interfaces\n", MAX_IFACES);
                return 2;
            }
            if (split_iface(optarg, d.ifaces[d.nif], d.points[d.nif], err) < 0) {
                fprintf(stderr, "rewindd: -i %s: %s\n", optarg, err);
                return 2;
            }
            d.nif++;
            break;
        case 'S':
            if (arc_opts_set(&d.ao, "segment-seconds", optarg, err) < 0) {
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
            d.ao.flush_ns = ns;
            break;
        }
        case 'B':
            if (arc_opts_set(&d.ao, "segment-bytes", optarg, err) < 0) {
                fprintf(stderr, "rewindd: %s\n", err);
                return 2;
            }
            break;
        case 'h': fputs(help, stdout); return 0;
        default: fprintf(stderr, "rewindd: bad option (see 'rewindd --help')\n"); return 2;
        }
    }
    if (!d.dir) {
        fprintf(stderr, "rewindd: --dir DIR is required (see 'rewindd --help')\n");
        return 2;
    }
    if (optind < argc) {
        fprintf(stderr, "rewindd: unexpected argument '%s' (see 'rewindd --help')\n", argv[optind]);
        return 2;
    }
    struct sockaddr_storage ss;
    if (d.ho.listen && httpd_parse_listen(d.ho.listen, &ss, err) < 0) {
        fprintf(stderr, "rewindd: --listen: %s\n", err);
        return 2;
    }
    if (!d.ho.listen && d.ho.federate) {
        fprintf(stderr, "rewindd: --federate with --listen none: there is no HTTP server to "
                        "answer across sensors\n");
        return 2;
    }
    if (!d.ho.listen && (d.ho.tls_cert || d.ho.tls_key || d.ho.tls_client_ca)) {
        fprintf(stderr, "rewindd: --tls-* options with --listen none: there is no HTTP server "
                        "to use them\n");
        return 2;
    }
    /* Before anything is created, like the interface check below: a
     * listener refused (beyond loopback without TLS, or into an archive that
     * has no token yet), or a TLS file that will not do, leaves no archive
     * directory behind. */
    d.ho.have_tokens = have_tokens;
    d.ho.tokens_arg = &d;
    if (!d.ho.web_root_given)
        d.ho.web_root = default_web_root();
    if (d.ho.listen && httpd_check_opts(&d.ho, err) < 0) {
        fprintf(stderr, "rewindd: %s\n", err);
        return 2;
    }
    d.xo.sensor = d.ho.sensor;
    if (ex_check_opts(&d.xo, err) < 0) {
        fprintf(stderr, "rewindd: %s\n", err);
        return 2;
    }
    /* Before anything is created: a mistyped interface leaves no archive
     * directory behind, and the error lists the ones that exist. */
    for (int i = 0; i < d.nif; i++) {
        if (cap_iface_check(d.ifaces[i], err) < 0) {
            fprintf(stderr, "rewindd: -i %s: %s\n", d.ifaces[i], err);
            return 2;
        }
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

    int started = 0;
    for (; started < NSERVICES; started++) {
        if ((rc = services[started].start(&d, err)) < 0) {
            if (started == 0)
                rw_error("%s", err);
            else
                rw_error("%s: %s", services[started].name, err);
            status = rc == RW_EINPUT ? 2 : 1;
            if (services[started].stop == capture_stop)
                capture_stop(&d); /* the points that did start */
            goto stop;
        }
    }
    rw_info("ready; query with: rewind query --dir %s --from -5m 'FILTER' -w out.pcap", d.dir);
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
        for (int i = 0; i < d.nif; i++) {
            if (d.lives[i] && cap_live_failed(d.lives[i], err)) {
                rw_error("%s; stopping", err);
                status = 1;
                stop_sig = -1;
            }
        }
    }
    if (stop_sig > 0)
        rw_info("signal %d: stopping", (int)stop_sig);
stop:
    /* Front doors first (they cut answers in flight), then capture (it
     * drains and seals), the compressor, and the archive last. A query on
     * the control socket is cut before capture stops, so that it does not
     * wait for the drain. */
    ctl_cancel(d.ctl);
    while (started-- > 0)
        services[started].stop(&d);
    rw_info("stopped");
    return status;
}
