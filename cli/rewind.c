/* rewind.c -- the command-line client (bin/rewind-core, run by the front end
 * bin/rewind): import, query, status, hold, verify, reindex. */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "archive/archive.h"
#include "auth/audit.h"
#include "capture/cap.h"
#include "cli/httpc.h"
#include "cli/qargs.h"
#include "cli/cmds.h"
#include "analytics/analytics.h"
#include "intercept/intercept.h"
#include "common/rw.h"
#include "auth/audit.h"
#include "auth/auth.h"
#include "ctl/ctl.h"
#include "query/query.h"
#include "query/read.h"



/* ------------------------------------------------------------------ import */

static const char import_help[] =
    "usage: rewind import --dir DIR [--point NAME] [--quiet] [RETENTION] FILE...\n"
    "\n"
    "Ingest pcap and pcapng files into the archive in DIR (created if missing).\n"
    "Packets keep the order of the files; FILE '-' is standard input. A pcapng\n"
    "file with several interfaces becomes one capture point per interface:\n"
    "NAME, NAME-if1, NAME-if2, ..., from a pipe as from a file.\n"
    "A file with a fault keeps its good records before the fault; the fault is\n"
    "reported with the file name and record number, and the exit code is 2.\n"
    "A file header that tcpdump -r refuses (pcap version, reserved link-type\n"
    "bits, a link type libpcap cannot filter) is refused whole, also exit 2.\n"
    "If a running rewindd owns DIR, the files are handed to it (it reads the\n"
    "descriptors this command opened) and imported by the daemon.\n"
    "\n"
    "  -d, --dir DIR      archive directory (or $REWIND_DIR)\n"
    "  -p, --point NAME   capture point to import into (default: import)\n"
    "  -q, --quiet        no progress or summary lines\n"
    "  -h, --help         this help\n"
    "\n"
    "Retention and segment settings, remembered by the archive once given and\n"
    "enforced while importing (oldest whole segments go first, never a held one):\n"
    "      --quota SIZE|N%       keep segments + index under SIZE (e.g. 1.2T) or N%\n"
    "                            of the file system\n"
    "      --max-age DURATION    delete segments older than this before the newest\n"
    "                            packet (e.g. 30d)\n"
    "      --segment-bytes SIZE  roll segments before SIZE (default 256M)\n"
    "      --segment-seconds N   roll segments after N seconds of capture (default 60)\n"
    "      --compress-after DUR  lz4-compress sealed segments this long after they\n"
    "                            were written (default 10m; 0: at once; never);\n"
    "                            import compresses the due ones when it finishes\n"
    "      --min-horizon DUR     alarm (log, status, metric) when retention deletes\n"
    "                            packets less than DUR before the newest (e.g. 30d)\n"
    "\n"
    "Retention may delete what was just imported when it is the archive's oldest:\n"
    "a line then says how many packets it removed (exit 1 if all of them).\n"
    "\n"
    "Exit status: 0 all files imported, 1 runtime failure (or retention removed\n"
    "all of a file at once), 2 bad input.\n";

struct progress {
    int tty;
    int64_t start;
};

static void show_progress(void *arg, const char *path, uint64_t done, uint64_t total,
                          uint64_t packets)
{
    struct progress *pr = arg;
    char a[32], b[32];
    if (!pr->tty)
        return;
    double secs = (double)(rw_mono_ns() - pr->start) / 1e9;
    fprintf(stderr, "\r%s: %3d%% %s of %s, %llu packets, %.0f MB/s   ", path,
            total ? (int)(done * 100 / total) : 0, rw_size_fmt(done, a, sizeof a),
            rw_size_fmt(total, b, sizeof b), (unsigned long long)packets,
            secs > 0 ? (double)done / secs / 1e6 : 0.0);
    fflush(stderr);
}

static int cmd_import(int argc, char **argv)
{
    /* Keep freed memory for reuse instead of giving it back (and faulting
     * it in again): write batches, bitmaps and memtables come and go at
     * every flush and segment. */
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 256 << 20);
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"point", required_argument, 0, 'p'},
                                         {"quiet", no_argument, 0, 'q'},
                                         {"help", no_argument, 0, 'h'},
                                         {"quota", required_argument, 0, 1},
                                         {"max-age", required_argument, 0, 2},
                                         {"segment-bytes", required_argument, 0, 3},
                                         {"segment-seconds", required_argument, 0, 4},
                                         {"compress-after", required_argument, 0, 5},
                                         {"min-horizon", required_argument, 0, 6},
                                         {0, 0, 0, 0}};
    static const char *const setting[] = {NULL, "quota", "max-age", "segment-bytes",
                                          "segment-seconds", "compress-after", "min-horizon"};
    const char *dir = NULL, *point = "import";
    int quiet = 0, c, status = 0, given = 0;
    char err[RW_ERRSZ];
    struct arc_opts o;
    arc_opts_default(&o);
    o.log = cli_log_event;
    while ((c = getopt_long(argc, argv, "d:p:qh", opts, NULL)) != -1) {
        switch (c) {
        case 1:
        case 2:
        case 3:
        case 4:
        case 5:
        case 6:
            if (arc_opts_set(&o, setting[c], optarg, err) < 0)
                return cli_fail(RW_EINPUT, err);
            given = 1;
            break;
        case 'd': dir = optarg; break;
        case 'p': point = optarg; break;
        case 'q':
            quiet = 1;
            o.log = cli_log_warnings; /* --quiet: what went wrong only */
            break;
        case 'h': fputs(import_help, stdout); return 0;
        default: return cli_usage("import: bad option%s", "");
        }
    }
    dir = cli_env_dir(dir);
    if (!dir)
        return cli_usage("import: --dir DIR is required%s", "");
    if (optind >= argc)
        return cli_usage("import: no input files given%s", "");
    if (!rw_point_name_ok(point))
        return cli_usage("import: invalid point name '%s': use letters, digits, '.', '_', '-'",
                         point);
    arc_t *a = NULL;
    int rc = arc_open(dir, &o, &a, err);
    if (rc == RW_EBUSY) {
        /* A daemon owns the archive: hand the files to it. */
        a = NULL;
        if (given)
            return cli_fail(RW_EINPUT, "retention settings can only be changed by the archive's "
                                   "writer; give them to rewindd instead");
        if (!quiet)
            rw_info("%s is owned by a running rewindd; handing the files to it", dir);
    } else if (rc == RW_ENOSPC) {
        fprintf(stderr, "rewind: archive %s is full (%s); free space there\n", dir, err);
        return EXIT_RUNTIME;
    } else if (rc < 0) {
        return cli_fail(rc, err);
    }
    /* RADIUS accounting in the files feeds subscriber identities, as it
     * does in the daemon. */
    ic_t *ic = NULL;
    if (a && ic_open(dir, arc_index(a), NULL, &ic, err) == 0)
        arc_set_tap(a, ic_tap, ic);
    for (int i = optind; i < argc; i++) {
        struct cap_import_stats st;
        struct progress pr = {.tty = !quiet && isatty(2), .start = rw_mono_ns()};
        if (a) {
            rc = cap_import_file(a, argv[i], NULL, point, show_progress, &pr, &st, err);
        } else {
            struct ctl_import_result res;
            rc = ctl_import(dir, argv[i], point, show_progress, &pr, &res, err);
            st.packets = res.packets;
            st.bytes = res.bytes;
            st.points = res.points;
            st.removed = res.removed;
        }
        if (pr.tty)
            fputs("\r\033[K", stderr);
        if (rc < 0) {
            fprintf(stderr, "rewind: %s\n", err);
            status = status == EXIT_RUNTIME ? status : cli_exit_for(rc);
            if (rc != RW_EINPUT)
                break;
            continue;
        }
        if (!quiet) {
            char b[32];
            double secs = (double)(rw_mono_ns() - pr.start) / 1e9;
            rw_info("imported %s: %llu packets, %s into point %s%s in %.2f s", argv[i],
                    (unsigned long long)st.packets, rw_size_fmt(st.bytes, b, sizeof b), point,
                    st.points > 1 ? " (and per-interface points)" : "", secs);
        }
        if (a) { /* the daemon records the imports handed to it; this one is ours */
            char detail[300], aerr[RW_ERRSZ];
            snprintf(detail, sizeof detail, "imported %.200s into point %.64s", argv[i], point);
            if (cli_audit(dir, "import", NULL, 200, st.packets, st.bytes, NULL, rw_now_ns(), 0,
                          detail, 0, aerr) < 0)
                fprintf(stderr, "rewind: warning: not in the audit trail: %s\n", aerr);
        }
        if (st.removed) {
            /* Not silent, even with --quiet: what was just imported is gone. */
            fprintf(stderr, "rewind: %s: retention removed %llu of the %llu packets just "
                            "imported: they are older than what the archive's quota or max age "
                            "keeps (raise --quota, or hold their window first)\n",
                    argv[i], (unsigned long long)st.removed, (unsigned long long)st.packets);
            if (st.removed == st.packets)
                status = EXIT_RUNTIME;
        }
    }
    if (a && status != EXIT_RUNTIME) {
        /* Segments sealed long enough ago (all of them with --compress-after
         * 0) are compressed now; a daemon does this on its own. */
        struct arc_compress_stats cs = {0};
        if ((rc = arc_compress_run(a, NULL, &cs, err)) < 0) {
            fprintf(stderr, "rewind: %s\n", err);
            status = EXIT_RUNTIME;
        } else if (cs.segments && !quiet) {
            rw_info("compressed %llu segments: %.1f MiB saved", (unsigned long long)cs.segments,
                    cs.bytes_saved / 1048576.0);
        }
    }
    arc_close(a);
    ic_close(ic);
    return status;
}

/* ------------------------------------------------------------------ query */

static int write_fd(void *arg, const void *buf, size_t n) { return rw_write_all(*(int *)arg, buf, n); }

/* Counts the packet blocks of a pcapng stream as it arrives (--count --url). */
struct ngcount {
    uint8_t hdr[8];
    size_t have;      /* bytes of the current block header seen */
    uint64_t skip;    /* bytes of the current block body still to skip */
    uint64_t packets;
};

static int count_ng(void *arg, const void *buf, size_t n)
{
    struct ngcount *c = arg;
    const uint8_t *p = buf;
    while (n > 0) {
        if (c->skip) {
            size_t k = n < c->skip ? n : (size_t)c->skip;
            c->skip -= k;
            p += k;
            n -= k;
            continue;
        }
        size_t k = 8 - c->have < n ? 8 - c->have : n;
        memcpy(c->hdr + c->have, p, k);
        c->have += k;
        p += k;
        n -= k;
        if (c->have == 8) {
            uint32_t type, len;
            memcpy(&type, c->hdr, 4);
            memcpy(&len, c->hdr + 4, 4);
            if (len < 12)
                return -1;
            c->packets += type == 6;
            c->skip = len - 8;
            c->have = 0;
        }
    }
    return 0;
}

static int append_param(char *q, size_t qsz, const char *k, const char *v)
{
    char *e = httpc_escape(v);
    if (!e)
        return -1;
    size_t l = strlen(q);
    int n = snprintf(q + l, qsz - l, "%s%s=%s", l ? "&" : "?", k, e);
    free(e);
    return n < 0 || (size_t)n >= qsz - l ? -1 : 0;
}

/* rewind query --url: the same question asked of a daemon. */
static int query_url(const char *url, const char *from, const char *to, const char **points,
                     int npoints, const char *filter, const char *cid, uint64_t limit, int format,
                     int count, int follow, int fd)
{
    char q[8192] = "", err[RW_ERRSZ], lim[32];
    int rc = 0;
    if ((cid && append_param(q, sizeof q, "community_id", cid) < 0) ||
        (from && append_param(q, sizeof q, "from", from) < 0) ||
        (to && append_param(q, sizeof q, "to", to) < 0) ||
        (filter[0] && append_param(q, sizeof q, "filter", filter) < 0))
        return cli_fail(RW_EINPUT, "query too long");
    for (int i = 0; i < npoints; i++)
        if (append_param(q, sizeof q, "point", points[i]) < 0)
            return cli_fail(RW_EINPUT, "query too long");
    if (limit) {
        snprintf(lim, sizeof lim, "%llu", (unsigned long long)limit);
        if (append_param(q, sizeof q, "limit_packets", lim) < 0)
            return cli_fail(RW_EINPUT, "query too long");
    }
    if ((format == QRY_PCAPNG || count) && append_param(q, sizeof q, "format", "pcapng") < 0)
        return cli_fail(RW_EINPUT, "query too long");
    if (follow && append_param(q, sizeof q, "follow", "1") < 0)
        return cli_fail(RW_EINPUT, "query too long");
    char path[8300];
    snprintf(path, sizeof path, "/api/v1/packets%s", q);
    if (count) {
        struct ngcount c = {0};
        rc = httpc_get(url, path, count_ng, &c, err);
        if (rc == 0)
            printf("%llu\n", (unsigned long long)c.packets);
    } else {
        rc = httpc_get(url, path, write_fd, &fd, err);
    }
    return rc < 0 ? cli_fail(rc, err) : 0;
}

/* One warning line per capture point q's answer left out. */
static void warn_skipped(const qry_t *q)
{
    size_t n, more;
    const char *const *l = qry_skipped(q, &n, &more);
    for (size_t i = 0; i < n; i++)
        rw_warn("query: %s", l[i]);
    if (more)
        rw_warn("query: and %zu more capture points left out", more);
}

/* One warning line per damaged range that q's answer lacks; 1 if any. */
static int warn_losses(const qry_t *q)
{
    char line[RW_ERRSZ];
    size_t n, more;
    const struct qry_loss *l = qry_losses(q, &n, &more);
    for (size_t i = 0; i < n; i++) {
        qry_loss_desc(&l[i], line, sizeof line);
        rw_warn("query: %s", line);
    }
    if (more)
        rw_warn("query: and %zu more damaged ranges", more);
    return n || more;
}

/* Record in the archive's audit trail what this process did to or read
 * from dir itself: through the daemon owning dir when one answers (it is
 * the trail's one writer; the kernel tells it who we are), else by opening
 * the trail. 0, or <0 with err. */
int cli_audit(const char *dir, const char *route, const struct qry_spec *spec, int status,
              uint64_t packets, uint64_t bytes, const char *sha256, int64_t start_ns,
              int64_t duration_ns, const char *detail, int read, char *err)
{
    static const struct qry_spec none = {.from = RW_TIME_MIN, .to = RW_TIME_MAX};
    int rc = RW_EBUSY;
    /* Reads are reported to the daemon owning dir, which writes the trail. */
    if (spec && read)
        rc = ctl_audit(dir, route, spec, packets, bytes, sha256, duration_ns, status, err);
    if (rc != RW_EBUSY)
        return rc;
    audit_t *at;
    char who[128], client[48];
    struct audit_rec ar;
    if ((rc = audit_open(dir, &at, err)) < 0)
        return rc;
    rw_user_name(getuid(), who, sizeof who);
    snprintf(client, sizeof client, "local pid %d", (int)getpid());
    audit_rec_init(&ar);
    ar.time_ns = start_ns;
    ar.principal = who;
    ar.role = getuid() == 0 ? "admin" : "analyst";
    ar.method = "uid";
    ar.client = client;
    ar.route = route;
    spec = spec ? spec : &none;
    ar.from_ns = spec->from;
    ar.to_ns = spec->to;
    ar.filter = spec->filter;
    ar.points = spec->points;
    ar.status = status;
    ar.packets = packets;
    ar.bytes = bytes;
    ar.sha256 = sha256;
    ar.duration_ns = duration_ns;
    ar.detail = detail;
    rc = audit_append(at, &ar, err);
    audit_close(at);
    return rc;
}

/* The output of a local query, hashed for the audit trail as it is written. */
int cli_audit_read(const char *dir, const struct cli_audit_what *w, int status, int64_t start_ns,
                   char *err)
{
    struct qry_spec spec = {.from = w->from, .to = w->to, .filter = w->filter,
                            .points = w->points};
    return cli_audit(dir, w->route, &spec, status, 0, 0, NULL, start_ns, rw_now_ns() - start_ns,
                     NULL, 1, err);
}

struct hashed_out {
    int *fd;
    audit_hash_t *hash;
};

static int write_hashed(void *arg, const void *buf, size_t n)
{
    struct hashed_out *o = arg;
    if (o->hash)
        audit_hash_update(o->hash, buf, n);
    return rw_write_all(*o->fd, buf, n);
}

static int query_local(struct qargs *a)
{
    char err[RW_ERRSZ], dmg[RW_ERRSZ];
    idx_t *ix = NULL;
    qry_t *q = NULL;
    qry_out_t *out = NULL;
    int status = 0, rc, npts;
    uint64_t n = 0;
    int64_t start = rw_mono_ns(), start_real = rw_now_ns();
    struct hashed_out ho = {&a->o.fd, audit_hash_new()};
    if ((rc = qry_archive_open(a->dir, &ix, err)) < 0 ||
        (rc = qry_new(ix, &a->spec, &q, err)) < 0) {
        status = cli_fail(rc, err);
        goto done;
    }
    warn_skipped(q);
    const struct qry_point *pts = qry_points(q, &npts);
    /* The output is opened (and -w FILE truncated) only once the query is
     * known to be good: qry_out_new() writes nothing yet. */
    if (!a->count) {
        if ((rc = qry_out_new(a->format, pts, npts, write_hashed, &ho, &out, err)) < 0) {
            status = cli_fail(rc, err);
            goto done;
        }
        if (qargs_open_output(&a->o, err) < 0) {
            status = cli_fail(RW_EINPUT, err);
            goto done;
        }
    }
    struct qry_pkt pkt;
    while ((rc = qry_next(q, &pkt, err)) == 1) {
        n++;
        if (out && qry_out_packet(out, &pkt) < 0) {
            snprintf(err, sizeof err, "writing output: %s", strerror(errno));
            rc = RW_EIO;
            break;
        }
    }
    if (rc < 0) {
        status = cli_fail(rc, err);
        goto done;
    }
    if (out) {
        rc = qry_out_losses(out, q);
        rc = qry_out_close(out) < 0 ? RW_EIO : rc;
        out = NULL;
        if (rc < 0) {
            snprintf(err, sizeof err, "writing output: %s", strerror(errno));
            status = cli_fail(RW_EIO, err);
            goto done;
        }
    }
    if (a->count)
        printf("%llu\n", (unsigned long long)n);
    /* What was read is on the record: through the daemon when one owns the
     * archive (the trail's one writer), else by this process. */
    char hex[AUDIT_HEXSZ] = "";
    uint64_t sent = audit_hash_bytes(ho.hash);
    if (audit_hash_final(ho.hash, hex, err) < 0)
        hex[0] = 0;
    ho.hash = NULL;
    if (cli_audit(a->dir, a->count ? "query --local (count)" : "query --local", &a->spec, 200, n,
                  sent, a->count ? NULL : hex, start_real, rw_mono_ns() - start, NULL, 1, err) < 0)
        fprintf(stderr, "rewind: warning: this query is not in the audit trail: %s\n", err);
done:
    audit_hash_free(ho.hash);
    if (q && qry_damage_desc(q, dmg, sizeof dmg)) /* the answer is complete: status unchanged */
        rw_warn("query: %s", dmg);
    if (q && warn_losses(q) && status == 0) /* answered, with damage */
        status = EXIT_DAMAGED;
    if (out && qry_out_close(out) < 0 && status == 0)
        status = EXIT_RUNTIME;
    qry_free(q);
    qry_archive_close(ix);
    return status;
}

/* --community-id: the flows that have it, looked up in the index, become
 * the filter (and the given one, if any); -1, or the exit status. */
static int cid_to_filter(struct qargs *a)
{
    char err[RW_ERRSZ], *cf = NULL;
    idx_t *ix;
    int rc = qry_archive_open(a->dir, &ix, err);
    if (rc == 0) {
        rc = an_cid_filter(ix, a->cid, a->spec.from, a->spec.to, a->spec.points, &cf, err);
        qry_archive_close(ix);
    }
    if (rc < 0)
        return cli_fail(rc == RW_ENOTFOUND ? RW_EIO : rc, err);
    size_t n = strlen(cf) + strlen(a->filter) + 16;
    char *f = malloc(n);
    if (!f) {
        free(cf);
        return cli_fail(RW_ENOMEM, "out of memory");
    }
    if (a->filter[0])
        snprintf(f, n, "(%s) and (%s)", cf, a->filter);
    else
        snprintf(f, n, "%s", cf);
    free(cf);
    free(a->filter);
    a->filter = f;
    a->spec.filter = f;
    return -1;
}

/* The front end (cli/front.c) asked the daemon already and none answered;
 * see main(). */
static int daemon_asked;

static int cmd_query(int argc, char **argv)
{
    struct qargs a;
    char err[RW_ERRSZ];
    for (int i = 1; i < argc; i++) /* one query across sensors: cmd_federate.c */
        if (!strcmp(argv[i], "--sensors") || !strncmp(argv[i], "--sensors=", 10))
            return cmd_query_sensors(argc, argv);
    int status = qargs_parse(argc, argv, &a, 0);
    if (status >= 0)
        return qargs_end(&a, status);
    if (a.url) {
        if (httpc_set_token(a.token ? a.token : getenv("REWIND_TOKEN"), err) < 0)
            return qargs_end(&a, cli_fail(RW_EINPUT, err));
        if (qargs_open_output(&a.o, err) < 0)
            return qargs_end(&a, cli_fail(RW_EINPUT, err));
        status = query_url(a.url, a.from, a.to, a.points, a.npoints, a.filter, a.cid,
                           a.spec.limit_packets, a.format, a.count, a.follow, a.o.fd);
        return qargs_end(&a, status);
    }
    if (a.cid && (status = cid_to_filter(&a)) >= 0)
        return qargs_end(&a, status);
    if (!a.local && !daemon_asked && (status = qargs_ask(&a)) >= 0)
        return qargs_end(&a, status);
    return qargs_end(&a, query_local(&a));
}

/* ------------------------------------------------------------------ status */

static const char status_help[] =
    "usage: rewind status (--dir DIR | --url URL)\n"
    "\n"
    "Show the archive's capture points, segments, packets, bytes, time span,\n"
    "drops and index size.\n"
    "\n"
    "  -d, --dir DIR   archive directory (or $REWIND_DIR)\n"
    "  -u, --url URL   ask a rewindd instead (or $REWIND_URL): prints its JSON\n"
    "      --token T   bearer token for --url (or $REWIND_TOKEN)\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage or not an archive.\n";

static int write_stdout(void *arg, const void *buf, size_t n)
{
    (void)arg;
    return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

static void print_status(const char *dir, const struct qry_status *st, int live)
{
    char b1[48], b2[48], b3[48];
    const struct qry_point_status *t = &st->total;
    int w = 16; /* the point column fits the longest name */
    printf("archive   %s%s\n", dir, live ? " (owned by a running rewindd)" : "");
    for (size_t i = 0; i < st->npoints; i++)
        if ((int)strlen(st->points[i].name) > w)
            w = (int)strlen(st->points[i].name);
    printf("%-*s %-10s %8s %12s %12s %-30s %-30s %s\n", w, "point", "linktype", "segments",
           "packets", "bytes", "first", "last", "drops(kernel/queue)");
    for (size_t i = 0; i < st->npoints; i++) {
        const struct qry_point_status *p = &st->points[i];
        printf("%-*s %-10s %8llu %12llu %12llu %-30s %-30s %llu/%llu%s%s\n", w, p->name,
               p->linktype, (unsigned long long)p->segments, (unsigned long long)p->packets,
               (unsigned long long)p->captured_bytes,
               p->segments ? rw_time_fmt(p->first, b1, sizeof b1) : "-",
               p->segments ? rw_time_fmt(p->last, b2, sizeof b2) : "-",
               (unsigned long long)p->kernel_drops, (unsigned long long)p->queue_drops,
               p->paused ? "  PAUSED: " : "", p->paused ? p->reason : "");
    }
    printf("points    %zu\n", st->npoints);
    printf("segments  %llu (%llu open, %llu compressed", (unsigned long long)t->segments,
           (unsigned long long)t->open_segments, (unsigned long long)t->compressed_segments);
    if (t->compressed_segments)
        printf(": %s stored for %s, ratio %.2f",
               rw_size_fmt(t->compressed_stored_bytes, b1, sizeof b1),
               rw_size_fmt(t->compressed_pcap_bytes, b2, sizeof b2),
               t->compressed_stored_bytes ? (double)t->compressed_pcap_bytes /
                                                (double)t->compressed_stored_bytes : 0.0);
    printf(")\n");
    printf("packets   %llu\n", (unsigned long long)t->packets);
    printf("bytes     %llu captured (%s), %llu on the wire\n",
           (unsigned long long)t->captured_bytes, rw_size_fmt(t->captured_bytes, b3, sizeof b3),
           (unsigned long long)t->wire_bytes);
    if (t->packets)
        printf("span      %s .. %s (%.3f s)\n", rw_time_fmt(t->first, b1, sizeof b1),
               rw_time_fmt(t->last, b2, sizeof b2), (double)(t->last - t->first) / 1e9);
    else
        printf("span      empty\n");
    printf("index     %s (%.2f%% of captured bytes)\n", rw_size_fmt(st->index_bytes, b3, sizeof b3),
           t->captured_bytes ? 100.0 * (double)st->index_bytes / (double)t->captured_bytes : 0.0);
    printf("disk      %s in segments and index\n",
           rw_size_fmt(t->stored_bytes + st->index_bytes, b3, sizeof b3));
    char q[48] = "none", age[32] = "none";
    if (st->quota_bytes)
        rw_size_fmt(st->quota_bytes, q, sizeof q);
    else if (st->quota_pct)
        snprintf(q, sizeof q, "%u%% of the file system", st->quota_pct);
    if (st->max_age_ns)
        snprintf(age, sizeof age, "%.0f s", (double)st->max_age_ns / 1e9);
    printf("retention quota %s, max age %s; reaches back to %s\n", q, age,
           t->packets ? rw_time_fmt(t->first, b1, sizeof b1) : "-");
    if (st->min_horizon_ns)
        printf("horizon   %.1f h kept, --min-horizon %.1f h%s\n",
               t->packets ? (double)(t->last - t->first) / 3.6e12 : 0.0,
               (double)st->min_horizon_ns / 3.6e12,
               st->below_horizon ? ": ALARM, retention deleted packets within the minimum "
                                   "horizon (add disk, raise --quota)" : "");
    printf("holds     %llu\n", (unsigned long long)st->holds);
}

static int cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"url", required_argument, 0, 'u'},
                                         {"token", required_argument, 0, 'T'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *url = NULL, *token = getenv("REWIND_TOKEN");
    int c, rc;
    char err[RW_ERRSZ];
    while ((c = getopt_long(argc, argv, "d:u:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'u':
            if (url)
                return cli_usage("status: --url given twice; ask one rewindd at a time%s", "");
            url = optarg;
            break;
        case 'T': token = optarg; break;
        case 'h': fputs(status_help, stdout); return 0;
        default: return cli_usage("status: bad option%s", "");
        }
    }
    if (optind < argc)
        return cli_usage("status: unexpected argument '%s'", argv[optind]);
    if (!dir && !url)
        url = getenv("REWIND_URL");
    if (!url)
        dir = cli_env_dir(dir);
    if (!dir && !url)
        return cli_usage("status: --dir DIR or --url URL is required%s", "");
    if (url) {
        if ((rc = httpc_set_token(token, err)) == 0)
            rc = httpc_get(url, "/api/v1/status", write_stdout, NULL, err);
        return rc < 0 ? cli_fail(rc, err) : 0;
    }
    /* The daemon owning the archive answers with its live capture state;
     * without one, the archive is read directly. Either way the numbers
     * come from the one read API (query/read.h). */
    struct qry_status st;
    int live = (rc = ctl_status(dir, &st, err)) == 0;
    if (rc < 0 && rc != RW_EBUSY)
        return cli_fail(rc, err);
    if (!live) {
        idx_t *ix;
        if ((rc = qry_archive_open(dir, &ix, err)) < 0)
            return cli_fail(rc, err);
        rc = qry_status_get(ix, NULL, NULL, &st, err);
        qry_archive_close(ix);
        if (rc < 0)
            return cli_fail(rc, err);
    }
    print_status(dir, &st, live);
    qry_status_free(&st);
    return 0;
}

/* ------------------------------------------------------------------ hold */

static const char hold_help[] =
    "usage: rewind hold --dir DIR --from T --to T [--filter F] [--reason TEXT]\n"
    "       rewind hold --dir DIR --list\n"
    "       rewind hold --dir DIR --release ID\n"
    "\n"
    "Place a legal hold on a time window: retention never deletes a segment with\n"
    "packets in [from, to). Holds are kept in the archive's index; a hold keeps\n"
    "whole segments, so the filter is recorded but the whole window is held.\n"
    "While a rewindd owns DIR, the hold is placed (or released) by the daemon\n"
    "through DIR/rewindd.sock and takes effect at once: its next retention\n"
    "pass keeps the window. Otherwise the archive is written directly; DIR is\n"
    "created if missing, so a hold can be placed before capture starts.\n"
    "\n"
    "  -d, --dir DIR       archive directory (or $REWIND_DIR)\n"
    "  -f, --from T        start of the held window (times as in rewind query)\n"
    "  -t, --to T          end of the held window\n"
    "      --filter F      the BPF filter of the warrant, recorded with the hold\n"
    "      --reason TEXT   case number or reason, recorded with the hold\n"
    "  -l, --list          list the holds\n"
    "      --release ID    release hold ID (retention may then delete its window)\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure (or no hold ID to release),\n"
    "2 bad usage or a bad time.\n";

static int hold_list(const char *dir)
{
    char err[RW_ERRSZ], b1[48], b2[48], b3[48];
    struct qry_hold *hs = NULL;
    size_t n = 0;
    idx_t *ix;
    int rc;
    if ((rc = qry_archive_open(dir, &ix, err)) < 0)
        return cli_fail(rc, err);
    rc = qry_holds(ix, &hs, &n, err);
    qry_archive_close(ix);
    if (rc < 0)
        return cli_fail(rc, err);
    for (size_t i = 0; i < n; i++)
        printf("hold %llu  %s .. %s  filter '%s'  reason '%s'  placed %s by %s\n",
               (unsigned long long)hs[i].id, rw_time_fmt(hs[i].from, b1, sizeof b1),
               rw_time_fmt(hs[i].to, b2, sizeof b2), hs[i].filter, hs[i].reason,
               rw_time_fmt(hs[i].created, b3, sizeof b3),
               hs[i].author[0] ? hs[i].author : "(not recorded)");
    free(hs);
    return 0;
}

/* Place (release == 0) or release a hold: through the daemon owning dir
 * (which records who asked, as the kernel tells it), else by opening the
 * archive for writing. */
static int hold_change(const char *dir, struct idx_hold *h, uint64_t release)
{
    char err[RW_ERRSZ], b1[48], b2[48];
    arc_t *a = NULL;
    int rc = release ? ctl_hold_release(dir, release, err)
                     : ctl_hold_add(dir, h->from, h->to, h->filter, h->reason, &h->id, err);
    if (rc == RW_EBUSY) { /* no daemon: write the archive ourselves */
        struct arc_opts o;
        arc_opts_default(&o);
        o.log = cli_log_event;
        if ((rc = arc_open(dir, &o, &a, err)) == RW_EBUSY)
            rw_errctx(err, rc, "no rewindd answers on %s/rewindd.sock, yet the archive is "
                               "written by another process", dir);
        else if (rc == 0 && release)
            rc = arc_hold_release(a, release, err);
        else if (rc == 0) {
            rw_user_name(getuid(), h->author, sizeof h->author);
            rc = arc_hold_add(a, h, err);
        }
        arc_close(a);
        if (rc >= 0) { /* on the record, as the daemon records its own */
            char detail[128], aerr[RW_ERRSZ];
            struct qry_spec spec = {.from = h->from, .to = h->to, .filter = h->filter};
            if (release)
                snprintf(detail, sizeof detail, "hold %llu %s", (unsigned long long)release,
                         rc ? "released" : "not released: none");
            else
                snprintf(detail, sizeof detail, "hold %llu placed, reason '%.60s'",
                         (unsigned long long)h->id, h->reason);
            if (cli_audit(dir, release ? "hold release" : "hold add", release ? NULL : &spec,
                          release && !rc ? 404 : 200, 0, 0, NULL, rw_now_ns(), 0, detail, 0,
                          aerr) < 0)
                fprintf(stderr, "rewind: warning: not in the audit trail: %s\n", aerr);
        }
    }
    if (rc < 0)
        return cli_fail(rc, err);
    if (release) {
        if (rc == 0)
            return cli_fail(RW_EIO, "no hold with that id (see rewind hold --list)");
        printf("hold %llu released\n", (unsigned long long)release);
    } else {
        printf("hold %llu  %s .. %s\n", (unsigned long long)h->id,
               rw_time_fmt(h->from, b1, sizeof b1), rw_time_fmt(h->to, b2, sizeof b2));
    }
    return 0;
}

static int cmd_hold(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},    {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},     {"filter", required_argument, 0, 'F'},
        {"reason", required_argument, 0, 'r'}, {"list", no_argument, 0, 'l'},
        {"release", required_argument, 0, 'R'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dir = NULL, *from = NULL, *to = NULL, *filter = "", *reason = "";
    int list = 0, c, rc;
    uint64_t release = 0;
    char err[RW_ERRSZ], *end;
    while ((c = getopt_long(argc, argv, "d:f:t:lh", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'F': filter = optarg; break;
        case 'r': reason = optarg; break;
        case 'l': list = 1; break;
        case 'R':
            errno = 0;
            release = strtoull(optarg, &end, 10);
            if (errno || *end || release == 0 || optarg[0] == '-')
                return cli_usage("hold: --release takes a hold's number, not '%s'", optarg);
            break;
        case 'h': fputs(hold_help, stdout); return 0;
        default: return cli_usage("hold: bad option%s", "");
        }
    }
    dir = cli_env_dir(dir);
    if (!dir)
        return cli_usage("hold: --dir DIR is required%s", "");
    if (optind < argc)
        return cli_usage("hold: unexpected argument '%s'", argv[optind]);
    if (list + (release != 0) + (from || to) > 1)
        return cli_usage("hold: give one of --from/--to, --list and --release%s", "");
    if (list)
        return hold_list(dir);
    struct idx_hold h = {0};
    if (!release) {
        int64_t now = rw_now_ns();
        if (!from || !to)
            return cli_usage("hold: --from and --to are required%s", "");
        if ((rc = rw_time_parse(from, now, &h.from, err)) < 0 ||
            (rc = rw_time_parse(to, now, &h.to, err)) < 0)
            return cli_fail(rc, err);
        if (h.from >= h.to)
            return cli_usage("hold: --from must be before --to%s", "");
        if (strlen(filter) >= sizeof h.filter || strlen(reason) >= sizeof h.reason)
            return cli_usage("hold: --filter and --reason are limited to 255 bytes%s", "");
        snprintf(h.filter, sizeof h.filter, "%s", filter);
        snprintf(h.reason, sizeof h.reason, "%s", reason);
        h.created = now;
    }
    return hold_change(dir, &h, release);
}

/* ------------------------------------------------------------------ token */

static const char token_help[] =
    "usage: rewind token add --dir DIR --name NAME --role ROLE [--case ID]\n"
    "                        [--expires DURATION|TIME]\n"
    "       rewind token list --dir DIR\n"
    "       rewind token revoke --dir DIR --name NAME|ID\n"
    "\n"
    "Bearer tokens for the HTTP API (Authorization: Bearer TOKEN). 'add' prints\n"
    "the new token once, alone on a line of standard output: only its SHA-256\n"
    "is stored. Roles: admin (everything), analyst (packets, holds), noc\n"
    "(status, metrics, packets cut after their headers: no payload), agency\n"
    "(its --case only), viewer (status and metrics). While a rewindd owns DIR\n"
    "the daemon adds and revokes tokens through DIR/rewindd.sock, effective at\n"
    "once (root or the daemon's user only); otherwise the archive is written\n"
    "directly. A name has one live token at a time.\n"
    "\n"
    "  -d, --dir DIR          archive directory (or $REWIND_DIR)\n"
    "  -n, --name NAME        the principal: 1-64 of letters, digits, . _ @ -\n"
    "  -r, --role ROLE        admin, analyst, noc, agency or viewer\n"
    "      --case ID          the case of an agency token\n"
    "      --expires D|T      a duration from now (30d) or a time (RFC 3339)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure (revoke: no such token), 2 bad usage.\n";

static int cmd_token(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},  {"name", required_argument, 0, 'n'},
        {"role", required_argument, 0, 'r'}, {"case", required_argument, 0, 'C'},
        {"expires", required_argument, 0, 'e'}, {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dir = NULL, *name = NULL, *role = NULL, *case_id = "", *expires = NULL, *op;
    char err[RW_ERRSZ], tok[AUTH_TOKEN_CHARS + 1], b1[48], b2[48];
    int c, rc;
    if (argc < 2 || argv[1][0] == '-') {
        if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
            fputs(token_help, stdout);
            return 0;
        }
        return cli_usage("token: add, list or revoke? (rewind token --help)%s", "");
    }
    op = argv[1];
    argc--;
    argv++;
    optind = 1;
    while ((c = getopt_long(argc, argv, "d:n:r:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'n': name = optarg; break;
        case 'r': role = optarg; break;
        case 'C': case_id = optarg; break;
        case 'e': expires = optarg; break;
        case 'h': fputs(token_help, stdout); return 0;
        default: return cli_usage("token: bad option%s", "");
        }
    }
    dir = cli_env_dir(dir);
    if (!dir)
        return cli_usage("token: --dir DIR is required%s", "");
    if (optind < argc)
        return cli_usage("token: unexpected argument '%s'", argv[optind]);
    if (!strcmp(op, "list")) {
        struct auth_token_info *v = NULL;
        size_t n = 0;
        idx_t *ix;
        if ((rc = qry_archive_open(dir, &ix, err)) < 0)
            return cli_fail(rc, err);
        rc = auth_token_list(ix, &v, &n, err);
        qry_archive_close(ix);
        if (rc < 0)
            return cli_fail(rc, err);
        int64_t now = rw_now_ns();
        for (size_t i = 0; i < n; i++) {
            char state[96] = "live";
            if (v[i].revoked)
                snprintf(state, sizeof state, "revoked %s", rw_time_fmt(v[i].revoked, b2, sizeof b2));
            else if (v[i].expires)
                snprintf(state, sizeof state, "%s %s", v[i].expires <= now ? "expired" : "live until",
                         rw_time_fmt(v[i].expires, b2, sizeof b2));
            printf("%s  %-16s %-8s%s%s  created %s by %s  %s\n", v[i].id, v[i].name,
                   auth_role_name(v[i].role), v[i].case_id[0] ? " case " : "", v[i].case_id,
                   rw_time_fmt(v[i].created, b1, sizeof b1), v[i].creator, state);
        }
        free(v);
        return 0;
    }
    if (!name)
        return cli_usage("token: --name is required%s", "");
    if (strcmp(op, "add") && strcmp(op, "revoke"))
        return cli_usage("token: unknown operation '%s': add, list or revoke", op);
    int64_t exp_ns = 0;
    enum auth_role r = AUTH_NOBODY;
    if (!strcmp(op, "add")) {
        if (!role)
            return cli_usage("token: --role is required: admin, analyst, noc, agency or viewer%s",
                             "");
        if (auth_role_parse(role, &r, err) < 0)
            return cli_fail(RW_EINPUT, err);
        if (expires) {
            int64_t now = rw_now_ns(), d;
            char e2[RW_ERRSZ];
            if (rw_duration_parse(expires, &d, e2) == 0 && d > 0)
                exp_ns = now + d;
            else if ((rc = rw_time_parse(expires, now, &exp_ns, err)) < 0)
                return cli_fail(rc, err);
        }
        rc = ctl_token_add(dir, name, role, case_id, exp_ns, tok, sizeof tok, err);
    } else {
        rc = ctl_token_revoke(dir, name, err);
    }
    if (rc == RW_EBUSY) { /* no daemon: write the archive ourselves */
        struct arc_opts o;
        arc_t *a = NULL;
        char who[128];
        arc_opts_default(&o);
        o.log = cli_log_event;
        if ((rc = arc_open(dir, &o, &a, err)) == 0) {
            rw_user_name(getuid(), who, sizeof who);
            rc = !strcmp(op, "add") ? auth_token_add(arc_index(a), name, r, case_id, exp_ns, who,
                                                     tok, err)
                                    : auth_token_revoke(arc_index(a), name, err);
        }
        arc_close(a);
        if (rc >= 0) {
            char detail[160], aerr[RW_ERRSZ];
            if (!strcmp(op, "add"))
                snprintf(detail, sizeof detail, "token for %.64s added, role %s", name, role);
            else
                snprintf(detail, sizeof detail, "%d token(s) of %.64s revoked", rc, name);
            if (cli_audit(dir, !strcmp(op, "add") ? "token add" : "token revoke", NULL,
                          strcmp(op, "add") && !rc ? 404 : 200, 0, 0, NULL, rw_now_ns(), 0, detail, 0,
                          aerr) < 0)
                fprintf(stderr, "rewind: warning: not in the audit trail: %s\n", aerr);
        }
    }
    if (rc < 0)
        return cli_fail(rc, err);
    if (!strcmp(op, "add")) {
        puts(tok); /* the token alone: shown once, never stored */
        memset(tok, 0, sizeof tok);
        return 0;
    }
    if (rc == 0)
        return cli_fail(RW_EIO, "no live token of that name or id (see rewind token list)");
    fprintf(stderr, "rewind: revoked %d token(s) of %s\n", rc, name);
    return 0;
}

/* ------------------------------------------------------------ verify, reindex */

static const char verify_help[] =
    "usage: rewind verify --dir DIR [--quarantine [--reason TEXT]]\n"
    "\n"
    "Check every segment against the index: the file header, each record's\n"
    "offset against its locator, packet counts, time span and bytes, every\n"
    "block of a compressed segment, and the postings of a sample of packets;\n"
    "then that every posting decodes. Each problem is one line naming the\n"
    "segment, and the packet, the damaged block or the damaged posting's term.\n"
    "Works while rewindd writes the archive.\n"
    "\n"
    "A damaged block costs its own packets only: 'rewind reindex' indexes\n"
    "every readable packet around it and records the lost range, which verify\n"
    "then reports until --quarantine accepts the loss (queries still warn of\n"
    "it). No packet is deleted.\n"
    "\n"
    "  -d, --dir DIR       archive directory (or $REWIND_DIR)\n"
    "      --quarantine    first accept the loss of every damaged range that\n"
    "                      reindex recorded: each is marked accepted (time, user,\n"
    "                      reason) and written to the log; needs the archive's\n"
    "                      writer, so not while rewindd runs\n"
    "      --reason TEXT   why, recorded with each accepted range\n"
    "  -h, --help          this help\n"
    "\n"
    "Exit status: 0 consistent (damaged ranges accepted are not problems), 1\n"
    "problems found (or the check failed), 2 bad usage.\n";

static const char reindex_help[] =
    "usage: rewind reindex --dir DIR\n"
    "\n"
    "Rebuild the index from the segment files alone. The old index directory is\n"
    "moved aside to DIR/index.old-TIME; settings and legal holds are carried over\n"
    "when it still opens. Every readable packet is indexed: after a damaged block\n"
    "or record, records resume at the next record boundary, and the lost range is\n"
    "recorded (queries and verify report it; 'rewind verify --quarantine' accepts\n"
    "the loss) and reported. A record a crash left cut short at the end of a plain\n"
    "segment is cut off; a segment of which nothing can be indexed is renamed\n"
    "NAME.unreadable, never deleted. Segments are taken in the order they were\n"
    "last written, which is capture order unless files were touched since.\n"
    "Kernel drop counters live only in the index and start again from zero.\n"
    "The archive must not be owned by a running rewindd.\n"
    "\n"
    "  -d, --dir DIR   archive directory (or $REWIND_DIR)\n"
    "  -h, --help      this help\n"
    "\n"
    "Exit status: 0 rebuilt (records cut off are reported, not failures),\n"
    "1 runtime failure or the archive is owned by rewindd, 2 bad usage or no\n"
    "DIR/segments.\n";

static void print_problem(void *arg, const char *msg)
{
    (void)arg;
    fprintf(stderr, "rewind: %s\n", msg);
}

/* Accept the loss of the damaged ranges reindex recorded (verify
 * --quarantine): as the archive's writer, logged, and on the audit trail. */
static int quarantine(const char *dir, const char *reason)
{
    char err[RW_ERRSZ], who[160];
    struct arc_opts o;
    arc_t *a = NULL;
    uint64_t n = 0;
    arc_opts_default(&o);
    o.log = cli_log_event;
    int rc = arc_open(dir, &o, &a, err);
    if (rc == RW_EBUSY)
        return cli_fail(rc, "verify --quarantine: the archive is owned by a running rewindd; "
                            "stop it first, as for reindex");
    if (rc == 0) {
        rw_user_name(getuid(), who, sizeof who);
        rc = arc_quarantine(a, who, reason, &n, err);
    }
    arc_close(a);
    if (rc < 0)
        return cli_fail(rc, err);
    rw_info("verify: the loss of %llu damaged ranges accepted", (unsigned long long)n);
    char detail[400], aerr[RW_ERRSZ];
    snprintf(detail, sizeof detail, "the loss of %llu damaged ranges accepted, reason '%.300s'",
             (unsigned long long)n, reason);
    if (n && cli_audit(dir, "verify --quarantine", NULL, 200, 0, 0, NULL, rw_now_ns(), 0, detail, 0,
                       aerr) < 0)
        fprintf(stderr, "rewind: warning: not in the audit trail: %s\n", aerr);
    return 0;
}

static int cmd_check(int argc, char **argv, int rebuild)
{
    static const struct option opts[] = {{"dir", required_argument, 0, 'd'},
                                         {"help", no_argument, 0, 'h'},
                                         {"quarantine", no_argument, 0, 'Q'},
                                         {"reason", required_argument, 0, 'R'},
                                         {0, 0, 0, 0}};
    const char *dir = NULL, *name = rebuild ? "reindex" : "verify", *reason = NULL;
    int c, rc, quar = 0;
    char err[RW_ERRSZ];
    struct arc_verify_stats st;
    while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'Q':
        case 'R':
            if (rebuild)
                return cli_usage("reindex: bad option%s", "");
            quar |= c == 'Q';
            reason = c == 'R' ? optarg : reason;
            break;
        case 'h': fputs(rebuild ? reindex_help : verify_help, stdout); return 0;
        default: return cli_usage("%s: bad option", name);
        }
    }
    dir = cli_env_dir(dir);
    if (!dir)
        return cli_usage("%s: --dir DIR is required", name);
    if (optind < argc)
        return cli_usage("unexpected argument '%s'", argv[optind]);
    if (reason && !quar)
        return cli_usage("verify: --reason goes with --quarantine%s", "");
    if (quar && (rc = quarantine(dir, reason ? reason : "")) != 0)
        return rc;
    int64_t start = rw_mono_ns();
    if (rebuild) {
        struct stat sb;
        char segs[1100];
        snprintf(segs, sizeof segs, "%s/segments", dir);
        if (stat(segs, &sb) < 0)
            return cli_fail(RW_EINPUT, "no segments directory: not a rewind archive");
        rc = arc_reindex(dir, print_problem, NULL, &st, err);
    } else {
        rc = arc_verify_dir(dir, print_problem, NULL, &st, err);
    }
    if (rc < 0)
        return cli_fail(rc, err);
    char acc[64] = "";
    if (st.accepted)
        snprintf(acc, sizeof acc, ", %llu damaged ranges whose loss was accepted",
                 (unsigned long long)st.accepted);
    rw_info("%s: %llu segments, %llu packets%s, %llu problems%s, %.2f s", name,
            (unsigned long long)st.segments, (unsigned long long)st.packets,
            rebuild ? "" : " checked", (unsigned long long)st.problems, acc,
            (double)(rw_mono_ns() - start) / 1e9);
    return !rebuild && st.problems ? EXIT_RUNTIME : 0;
}

/* ------------------------------------------------------------------ audit */

static const char audit_help[] =
    "usage: rewind audit [list] --dir DIR [--from T] [--to T] [--principal NAME] [--json]\n"
    "       rewind audit head --dir DIR\n"
    "       rewind audit verify --dir DIR [--head HASH]\n"
    "\n"
    "The audit trail in DIR/audit/: one record for each request that returned\n"
    "packets, flows or sessions or changed state, chained by SHA-256 (see\n"
    "rewind-archive(5), AUDIT TRAIL). Works while rewindd appends to it.\n"
    "\n"
    "  list     the records, one line each (the default)\n"
    "  head     print the chain's head as 'SEQ HASH'; keep it off this machine,\n"
    "           so that a trail rewritten whole is caught too (verify --head)\n"
    "  verify   check each record against its own hash and the record before it;\n"
    "           each problem is one line on stderr naming the file, line and\n"
    "           record, the first bad record first\n"
    "\n"
    "  -d, --dir DIR          archive directory (or $REWIND_DIR)\n"
    "  -f, --from T           list the requests made at or after T\n"
    "  -t, --to T             ... and before T (times as in rewind query)\n"
    "  -p, --principal NAME   list only NAME's requests\n"
    "      --json             list the records' lines as stored (JSON lines)\n"
    "      --head HASH        verify: the trail must hold this head ('SEQ HASH' as\n"
    "                         printed by rewind audit head, or the HASH alone)\n"
    "  -h, --help             this help\n"
    "\n"
    "Exit status: 0 success (verify: the chain is intact), 1 a runtime failure\n"
    "or a damaged trail (verify: any problem), 2 bad usage or no trail in DIR.\n";

/* s for a terminal: printable ASCII and well-formed UTF-8 as they are,
 * everything else (control characters, C1 controls, bytes that are not
 * UTF-8) and the quote q and '\' as \xNN, so that a record cannot write
 * escape sequences to the reader's terminal. */
static void put_shown(const char *s, int q)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t n = 1;
        uint32_t cp = *p;
        if (*p >= 0xc2 && *p <= 0xf4) { /* a well-formed sequence's length, else 1 */
            size_t want = *p < 0xe0 ? 2 : *p < 0xf0 ? 3 : 4;
            cp = *p & (0x7f >> want);
            for (n = 1; n < want && (p[n] & 0xc0) == 0x80; n++)
                cp = cp << 6 | (p[n] & 0x3f);
            if (n < want || (want == 3 && (cp < 0x800 || (cp >= 0xd800 && cp < 0xe000))) ||
                (want == 4 && (cp < 0x10000 || cp > 0x10ffff)) || cp < 0xa0)
                n = 1, cp = 0x80; /* shown as \xNN below */
        }
        if (n > 1)
            fwrite(p, 1, n, stdout);
        else if (*p >= 0x20 && *p < 0x7f && *p != q && *p != '\\')
            putchar(*p);
        else
            printf("\\x%02x", *p);
        p += n;
    }
}

static int show_record(void *arg, const struct audit_rec *r, const char *line, size_t len)
{
    char b1[48], b2[48];
    if (*(int *)arg) { /* --json */
        fwrite(line, 1, len, stdout);
        putchar('\n');
        return ferror(stdout);
    }
    printf("%llu %s ", (unsigned long long)r->seq, rw_time_fmt(r->time_ns, b1, sizeof b1));
    put_shown(r->principal[0] ? r->principal : "-", 0);
    printf(" (");
    put_shown(r->role[0] ? r->role : "-", 0);
    printf(", ");
    put_shown(r->method[0] ? r->method : "-", 0);
    printf(") ");
    put_shown(r->client[0] ? r->client : "-", 0);
    printf(" ");
    put_shown(r->route[0] ? r->route : "-", 0);
    if (r->from_ns != RW_TIME_MIN)
        printf(" from %s", rw_time_fmt(r->from_ns, b1, sizeof b1));
    if (r->to_ns != RW_TIME_MAX)
        printf(" to %s", rw_time_fmt(r->to_ns, b2, sizeof b2));
    if (r->filter) {
        printf(" filter '");
        put_shown(r->filter, '\'');
        printf("'");
    }
    for (size_t i = 0; r->points && r->points[i]; i++) {
        printf(i ? "," : " points ");
        put_shown(r->points[i], ',');
    }
    for (size_t i = 0; i < r->nparams; i++) {
        printf(" %s='", r->params[i].name);
        put_shown(r->params[i].value, '\'');
        printf("'");
    }
    printf(" -> %d, %llu packets, %llu bytes", r->status, (unsigned long long)r->packets,
           (unsigned long long)r->bytes);
    if (r->sha256)
        printf(", sha256 %s", r->sha256);
    printf(", %.3f s", (double)r->duration_ns / 1e9);
    if (r->detail) {
        printf(": ");
        put_shown(r->detail, 0);
    }
    putchar('\n');
    return ferror(stdout);
}

static void show_problem(void *arg, const struct audit_problem *p)
{
    (void)arg;
    fprintf(stderr, "rewind: audit: %s\n", p->msg);
}

/* --head: "SEQ HASH", "SEQ:HASH" or "HASH". */
static int parse_head(const char *s, struct audit_expect *e)
{
    char *end;
    memset(e, 0, sizeof *e);
    if (strlen(s) > 64) {
        errno = 0;
        e->seq = strtoull(s, &end, 10);
        if (errno || end == s || (*end != ' ' && *end != ':') || s[0] == '-')
            return -1;
        s = end + 1;
    }
    if (strlen(s) != 64)
        return -1;
    for (int i = 0; i < 64; i++) {
        if (rw_hexval(s[i]) < 0)
            return -1;
        e->hash[i] = "0123456789abcdef"[rw_hexval(s[i])];
    }
    return 0;
}

static int cmd_audit(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},       {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},        {"principal", required_argument, 0, 'p'},
        {"json", no_argument, 0, 'j'},            {"head", required_argument, 0, 'H'},
        {"help", no_argument, 0, 'h'},            {0, 0, 0, 0}};
    const char *dir = NULL, *from = NULL, *to = NULL, *principal = NULL, *head = NULL;
    const char *verb = "list";
    int json = 0, c, rc;
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ];
    while ((c = getopt_long(argc, argv, "d:f:t:p:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'p': principal = optarg; break;
        case 'j': json = 1; break;
        case 'H': head = optarg; break;
        case 'h': fputs(audit_help, stdout); return 0;
        default: return cli_usage("audit: bad option%s", "");
        }
    }
    if (optind < argc)
        verb = argv[optind++];
    if (optind < argc)
        return cli_usage("audit: unexpected argument '%s'", argv[optind]);
    if (strcmp(verb, "list") && strcmp(verb, "head") && strcmp(verb, "verify"))
        return cli_usage("audit: unknown command '%s': list, head or verify", verb);
    dir = cli_env_dir(dir);
    if (!dir)
        return cli_usage("audit: --dir DIR is required%s", "");
    if (strcmp(verb, "list") && (from || to || principal || json))
        return cli_usage("audit %s: --from, --to, --principal and --json are for list", verb);
    if (strcmp(verb, "verify") && head)
        return cli_usage("audit %s: --head is for verify", verb);
    if (!strcmp(verb, "head")) {
        uint64_t seq;
        if ((rc = audit_head(dir, &seq, hex, err)) < 0)
            return cli_fail(rc, err);
        printf("%llu %s\n", (unsigned long long)seq, hex);
        return 0;
    }
    if (!strcmp(verb, "verify")) {
        struct audit_expect want;
        struct audit_stats st;
        if (head && parse_head(head, &want) < 0)
            return cli_usage("audit verify: --head takes 'SEQ HASH' or a HASH of 64 hex "
                             "digits, not '%s'", head);
        rc = audit_verify(dir, head ? &want : NULL, show_problem, NULL, &st, err);
        if (rc < 0 && rc != RW_ECORRUPT)
            return cli_fail(rc, err);
        rw_info("audit verify: %llu files, %llu records, head %llu %s, %llu cut by a crash, "
                "%llu problems", (unsigned long long)st.files, (unsigned long long)st.records,
                (unsigned long long)st.last_seq, st.head, (unsigned long long)st.cuts,
                (unsigned long long)st.problems);
        return st.problems ? EXIT_RUNTIME : 0;
    }
    int64_t f = RW_TIME_MIN, t = RW_TIME_MAX, now = rw_now_ns();
    if ((from && (rc = rw_time_parse(from, now, &f, err)) < 0) ||
        (to && (rc = rw_time_parse(to, now, &t, err)) < 0))
        return cli_fail(rc, err);
    rc = audit_list(dir, f, t, principal, show_record, &json, err);
    if (fflush(stdout) != 0 && rc == 0)
        rc = rw_err(err, RW_EIO, "writing the list: %s", strerror(errno));
    return rc < 0 ? cli_fail(rc == RW_ESTOP ? RW_EIO : rc, rc == RW_ESTOP ? "writing the list "
                             "failed" : err) : 0;
}

/* ------------------------------------------------------------------ main */

static const char main_help[] =
    "usage: rewind COMMAND [OPTIONS]\n"
    "\n"
    "Query and feed a rewind packet archive.\n"
    "\n"
    "commands:\n"
    "  import     ingest pcap/pcapng files into an archive\n"
    "  query      packets in a time window matching a BPF filter, as pcap or pcapng\n"
    "  status     capture points, segments, packets, time span, drops, index size\n"
    "  hold       place, list or release legal holds that retention must keep\n"
    "  token      add, list or revoke bearer tokens for the HTTP API\n"
    "  verify     check every segment against the index\n"
    "  reindex    rebuild the index from the segment files\n"
    "  audit      list and verify the audit trail of requests, print its head\n"
    "  flows      the flows of a window, from the index: 5-tuples, counts, Community IDs\n"
    "  top        top talkers of a window by source, destination, pair, port, protocol\n"
    "  timeline   packets and bytes per step and capture point, a sparkline on a terminal\n"
    "  replay     send a capture file or a query's answer out of an interface\n"
    "  case       lawful intercept cases: add (preserving what matches), list, show, end\n"
    "  identity   the addresses a subscriber held, and when (from RADIUS accounting)\n"
    "  intercept  follow a case's live intercept into pcap files, losing nothing\n"
    "  export     a case's evidence bundle (BagIt, hashes, audit records); verify one\n"
    "  smtp       SMTP sessions, transactions and messages; spam report; .eml files\n"
    "  calls      VoIP calls (SIP) with their RTP streams; one call's packets\n"
    "  clickhouse-schema  the ClickHouse tables of rewindd --export-flows\n"
    "\n"
    "'rewind COMMAND --help' describes each. See rewind(1), rewindd(8),\n"
    "rewind-archive(5).\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure (verify: problems found), 2 bad\n"
    "usage or bad input, 3 query answered with damage (a warning per damaged\n"
    "block of a segment file says what the answer lacks).\n";

int main(int argc, char **argv)
{
    /* Archive files hold packets: never readable by other users (0640 files,
     * 0750 directories, whatever the caller's umask allowed). */
    umask(027);
    /* Set by the front end for this process only; not for what it runs. */
    const char *asked = getenv(CLI_ASKED_ENV);
    if (asked) {
        daemon_asked = !strcmp(asked, "1");
        unsetenv(CLI_ASKED_ENV);
    }
    if (argc < 2)
        return cli_usage("no command given%s", "");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(main_help, stdout);
        return 0;
    }
    argc--;
    argv++;
    optind = 1;
    if (!strcmp(cmd, "import"))
        return cmd_import(argc, argv);
    if (!strcmp(cmd, "query"))
        return cmd_query(argc, argv);
    if (!strcmp(cmd, "status"))
        return cmd_status(argc, argv);
    if (!strcmp(cmd, "hold"))
        return cmd_hold(argc, argv);
    if (!strcmp(cmd, "token"))
        return cmd_token(argc, argv);
    if (!strcmp(cmd, "verify"))
        return cmd_check(argc, argv, 0);
    if (!strcmp(cmd, "reindex"))
        return cmd_check(argc, argv, 1);
    if (!strcmp(cmd, "audit"))
        return cmd_audit(argc, argv);
    if (!strcmp(cmd, "flows"))
        return cmd_flows(argc, argv);
    if (!strcmp(cmd, "top"))
        return cmd_top(argc, argv);
    if (!strcmp(cmd, "timeline"))
        return cmd_timeline(argc, argv);
    if (!strcmp(cmd, "replay"))
        return cmd_replay(argc, argv);
    if (!strcmp(cmd, "case"))
        return cmd_case(argc, argv);
    if (!strcmp(cmd, "identity"))
        return cmd_identity(argc, argv);
    if (!strcmp(cmd, "intercept"))
        return cmd_intercept(argc, argv);
    if (!strcmp(cmd, "export"))
        return cmd_export(argc, argv);
    if (!strcmp(cmd, "smtp"))
        return cmd_smtp(argc, argv);
    if (!strcmp(cmd, "calls"))
        return cmd_calls(argc, argv);
    if (!strcmp(cmd, "clickhouse-schema"))
        return cmd_clickhouse_schema(argc, argv);
    return cli_usage("unknown command '%s'", cmd);
}
