/* cmd_export.c -- rewind export: a case's evidence bundle (a BagIt bag in
 * a tar file, evidence/evidence.h) made from the archive, and `rewind
 * export verify` that checks one as a court's expert would. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth/audit.h"
#include "cli/cmds.h"
#include "cli/qargs.h"
#include "ctl/ctl.h"
#include "evidence/evidence.h"
#include "intercept/intercept.h"
#include "query/read.h"

static const char export_help[] =
    "usage: rewind export --dir DIR --case LIID -o BUNDLE.tar [--from T] [--to T]\n"
    "                     [--filter BPF]\n"
    "       rewind export verify BUNDLE.tar\n"
    "\n"
    "Write case LIID's evidence bundle: a BagIt bag (RFC 8493) in a tar file with\n"
    "data/packets.pcapng (the case's packets in the window, as rewind query\n"
    "answers its filter), data/case.json (the warrant, targets and the identity\n"
    "intervals used), data/capture.json, data/audit.jsonl (the case's audit\n"
    "records), bag-info.txt, manifest-sha256.txt, tagmanifest-sha256.txt and an\n"
    "RFC 3161 timestamp request over the manifest for the operator's TSA\n"
    "(manifest-sha256.txt.tsq). The window defaults to the case's, up to now.\n"
    "'verify' checks a bundle: every hash, Payload-Oxum, the tag files and the\n"
    "timestamp request (exit 1 naming each problem).\n"
    "\n"
    "options:\n"
    "  -d, --dir DIR          the archive (default $REWIND_DIR)\n"
    "  -c, --case LIID        the case\n"
    "  -o, --output FILE      the tar file to write\n"
    "  -f, --from T           from this time (default: the case's from)\n"
    "  -t, --to T             to this time (default: the case's end, or now)\n"
    "  -F, --filter BPF       narrow the case's packets further\n"
    "  -h, --help             this help\n";

static void say(void *arg, const char *problem)
{
    (void)arg;
    fprintf(stderr, "rewind: %s\n", problem);
}

static int verify(int argc, char **argv)
{
    char err[RW_ERRSZ];
    struct ev_verify_stats st;
    if (argc != 3)
        return cli_usage("export verify takes one bundle%s", "");
    int rc = ev_verify(argv[2], say, NULL, &st, err);
    if (rc == RW_ECORRUPT) {
        fprintf(stderr, "rewind: %s\n", err);
        return EXIT_RUNTIME;
    }
    if (rc < 0)
        return cli_fail(rc, err);
    printf("%s: bag %s verified: %llu files, %llu payload files of %llu bytes, every hash "
           "matches\n", argv[2], st.name, (unsigned long long)st.files,
           (unsigned long long)st.payload_files, (unsigned long long)st.payload_bytes);
    return 0;
}

/* On the record: through the daemon owning dir, else appended here. */
static void audit_export(const char *dir, const struct ic_case *c, int64_t from, int64_t to,
                         const struct ev_result *res, const char *out)
{
    char err[RW_ERRSZ], detail[RW_ERRSZ];
    struct qry_spec spec = {.from = from, .to = to};
    snprintf(detail, sizeof detail, "evidence bundle of case %s (%s) written to %.200s", c->id,
             res->name, out);
    int rc = ctl_audit(dir, "export", &spec, res->packets, res->bytes, res->tar_sha256, 0, 200,
                       err);
    if (rc == RW_EBUSY) {
        audit_t *at;
        char who[128], client[48];
        struct audit_rec r;
        struct audit_param p = {"case", c->id};
        if ((rc = audit_open(dir, &at, err)) >= 0) {
            rw_user_name(getuid(), who, sizeof who);
            snprintf(client, sizeof client, "local pid %d", (int)getpid());
            audit_rec_init(&r);
            r.principal = who;
            r.role = getuid() == 0 ? "admin" : "analyst";
            r.method = "uid";
            r.client = client;
            r.route = "local export";
            r.from_ns = from;
            r.to_ns = to;
            r.params = &p;
            r.nparams = 1;
            r.status = 200;
            r.packets = res->packets;
            r.bytes = res->bytes;
            r.sha256 = res->tar_sha256;
            r.detail = detail;
            rc = audit_append(at, &r, err);
            audit_close(at);
        }
    }
    if (rc < 0)
        fprintf(stderr, "rewind: warning: not in the audit trail: %s\n", err);
}

int cmd_export(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},  {"case", required_argument, 0, 'c'},
        {"output", required_argument, 0, 'o'}, {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},   {"filter", required_argument, 0, 'F'},
        {"help", no_argument, 0, 'h'},       {0, 0, 0, 0}};
    const char *dir = NULL, *id = NULL, *out = NULL, *from = NULL, *to = NULL, *filter = NULL;
    char err[RW_ERRSZ];
    int o, rc;
    if (argc > 1 && !strcmp(argv[1], "verify"))
        return verify(argc, argv);
    while ((o = getopt_long(argc, argv, "d:c:o:f:t:F:h", opts, NULL)) != -1) {
        switch (o) {
        case 'd': dir = optarg; break;
        case 'c': id = optarg; break;
        case 'o': out = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'F': filter = optarg; break;
        case 'h': fputs(export_help, stdout); return 0;
        default: return cli_usage("export: bad option%s", "");
        }
    }
    dir = cli_env_dir(dir);
    if (optind != argc)
        return cli_usage("export: unexpected argument '%s'", argv[optind]);
    if (!dir || !id || !out)
        return cli_usage("export: --dir, --case and -o BUNDLE.tar are required%s", "");
    struct ic_case *c = malloc(sizeof *c);
    if (!c)
        return cli_fail(RW_ENOMEM, "out of memory");
    if ((rc = ic_get_dir(dir, id, c, err)) <= 0) {
        free(c);
        if (rc == 0)
            return cli_fail(RW_EINPUT, "no such case (rewind case list)");
        return cli_fail(rc, err);
    }
    int64_t now = rw_now_ns(), end = ic_case_end_ns(c);
    struct ev_request rq = {.dir = dir, .c = c, .from = c->from, .to = end < now ? end : now,
                            .filter = filter};
    if ((from && (rc = rw_time_parse(from, now, &rq.from, err)) < 0) ||
        (to && (rc = rw_time_parse(to, now, &rq.to, err)) < 0)) {
        free(c);
        return cli_fail(RW_EINPUT, err);
    }
    if ((rc = qry_archive_open(dir, &rq.ix, err)) < 0) {
        free(c);
        return cli_fail(rc, err);
    }
    struct ev_result res;
    rc = ev_bundle(&rq, out, &res, err);
    if (rc == 0) {
        audit_export(dir, c, rq.from, rq.to, &res, out);
        printf("%s: bag %s, %llu packets, %llu bytes, sha256 %s\n", out, res.name,
               (unsigned long long)res.packets, (unsigned long long)res.bytes, res.tar_sha256);
    }
    qry_archive_close(rq.ix);
    free(c);
    return rc < 0 ? cli_fail(rc, err) : 0;
}
