/* cmd_smtp.c -- `rewind smtp`: SMTP sessions, transactions and messages of a
 * window, from an archive (--dir) or a rewindd (--url); the spam-complaint
 * report; messages as .eml files. Also the parts `rewind calls` shares. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "analytics/sessions.h"
#include "auth/audit.h"
#include "cli/cmds.h"
#include "cli/httpc.h"
#include "cli/qargs.h"
#include "common/rw.h"
#include "ctl/ctl.h"
#include "query/read.h"

static const char smtp_help[] =
    "usage: rewind smtp (--dir DIR | --url URL) [--from T] [--to T] [--host IP]\n"
    "                   [--limit N] [--json | --csv | --report] [--eml DIR]\n"
    "\n"
    "SMTP sessions in a window (TCP ports 25 and 587), reassembled and parsed:\n"
    "client, server, HELO/EHLO, STARTTLS (after which the session is encrypted),\n"
    "each transaction (MAIL FROM, each RCPT TO with its reply code, DATA or BDAT\n"
    "and the server's final reply) and each message (Subject, From, To, Date,\n"
    "Message-ID, size, attachments). Reads packet payload: the analyst role.\n"
    "\n"
    "  -d, --dir DIR    archive directory (or $REWIND_DIR)\n"
    "  -u, --url URL    ask a rewindd instead (or $REWIND_URL)\n"
    "      --token T    bearer token for --url (or $REWIND_TOKEN)\n"
    "      --from T     window start (RFC 3339, unix seconds, -15m, ...); default: all\n"
    "      --to T       window end (exclusive); default: now\n"
    "      --host IP    sessions of this client or server only\n"
    "      --limit N    at most N sessions, the first ones (default 100, at most 10000)\n"
    "      --json       JSON, as GET /api/v1/smtp answers (default: a table)\n"
    "      --csv        CSV, one row per transaction\n"
    "      --report     the spam-complaint report: every message of --host in the\n"
    "                   window with its recipients, reply codes and final reply\n"
    "      --eml DIR    also write each message to DIR/ID.eml, as the sender composed\n"
    "                   it (DATA dot-unstuffed, BDAT chunks joined); DIR is created\n"
    "  -h, --help       this help\n"
    "\n"
    "Exit status: 0 success, 1 runtime failure, 2 bad usage.\n";

/* The trail records what this process read itself: through the daemon
 * owning dir when one answers, else by appending to the trail. */
int cli_sessions_audit(const char *dir, const char *route, int64_t from, int64_t to,
                       const char *filter, int status, uint64_t packets, uint64_t bytes,
                       const char *sha256, int64_t start_ns, int64_t dur_ns, char *err)
{
    struct qry_spec spec = {.from = from, .to = to, .filter = filter};
    return cli_audit(dir, route, &spec, status, packets, bytes, sha256, start_ns, dur_ns,
                     "read by the client itself", 1, err);
}

struct hashed {
    FILE *f;
    audit_hash_t *h;
    uint64_t bytes;
};

static int write_hashed(void *arg, const void *buf, size_t n)
{
    struct hashed *o = arg;
    if (o->h)
        audit_hash_update(o->h, buf, n);
    o->bytes += n;
    return fwrite(buf, 1, n, o->f) == n ? 0 : -1;
}

int cli_sessions_local(const char *dir, const struct ses_spec *spec, const char *route, FILE *out,
                       int *found)
{
    char err[RW_ERRSZ], hex[AUDIT_HEXSZ] = "";
    idx_t *ix = NULL;
    ses_t *s = NULL;
    struct hashed o = {out, audit_hash_new(), 0};
    int64_t start = rw_mono_ns(), start_real = rw_now_ns();
    int rc, status = 0;
    if (found)
        *found = 1;
    if ((rc = qry_archive_open(dir, &ix, err)) < 0 ||
        (rc = ses_new(ix, spec, write_hashed, &o, &s, err)) < 0) {
        status = cli_fail(rc, err);
        goto done;
    }
    if (!s) { /* SES_CALL_PCAP: no such call */
        if (found)
            *found = 0;
        goto done;
    }
    while ((rc = ses_pump(s, err)) > 0)
        ;
    if (rc < 0)
        status = cli_fail(rc, err);
    else if (found)
        *found = ses_found(s) == 1;
    if (fflush(out) != 0 && !status)
        status = cli_fail(RW_EIO, "writing the answer failed");
done:
    if (o.h && audit_hash_final(o.h, hex, err) < 0)
        hex[0] = 0;
    if (ix) {
        char aerr[RW_ERRSZ];
        if (cli_sessions_audit(dir, route, spec->from, spec->to, s ? ses_filter(s) : spec->id,
                               status ? 500 : found && !*found ? 404 : 200,
                               s ? ses_packets(s) : 0, o.bytes, hex[0] ? hex : NULL, start_real,
                               rw_mono_ns() - start, aerr) < 0) {
            fprintf(stderr, "rewind: audit trail: %s\n", aerr);
            status = status ? status : EXIT_RUNTIME;
        }
    }
    ses_free(s);
    qry_archive_close(ix);
    return status;
}

/* Append k=v (URL-escaped) to a query string. */
int cli_qs_add(char *qs, size_t n, const char *k, const char *v)
{
    if (!v)
        return 0;
    char *e = httpc_escape(v);
    if (!e)
        return -1;
    size_t l = strlen(qs);
    int w = snprintf(qs + l, n - l, "%s%s=%s", l ? "&" : "?", k, e);
    free(e);
    return w < 0 || (size_t)w >= n - l ? -1 : 0;
}

static int write_file(void *arg, const void *buf, size_t n)
{
    return fwrite(buf, 1, n, (FILE *)arg) == n ? 0 : -1;
}

struct buf {
    char *p;
    size_t n, cap;
};

static int write_buf(void *arg, const void *p, size_t n)
{
    struct buf *b = arg;
    if (b->n + n + 1 > b->cap) {
        size_t nc = (b->n + n + 1) * 2;
        char *np = realloc(b->p, nc);
        if (!np)
            return -1;
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
    b->p[b->n] = 0;
    return 0;
}

/* ---- --eml DIR ---- */

struct emldir {
    const char *dir;
    FILE *f;
    char path[4096];
    int failed;
};

static int eml_begin(void *arg, const char *id)
{
    struct emldir *e = arg;
    snprintf(e->path, sizeof e->path, "%s/%s.eml", e->dir, id);
    if (!(e->f = fopen(e->path, "wb"))) {
        fprintf(stderr, "rewind: smtp: %s: %s\n", e->path, strerror(errno));
        e->failed = 1;
        return -1;
    }
    return 0;
}

static int eml_data(void *arg, const void *p, size_t n)
{
    struct emldir *e = arg;
    return e->f && fwrite(p, 1, n, e->f) == n ? 0 : -1;
}

static int eml_end(void *arg, int complete)
{
    struct emldir *e = arg;
    int rc = e->f && fclose(e->f) == 0 ? 0 : -1;
    e->f = NULL;
    if (!complete)
        fprintf(stderr, "rewind: smtp: %s: the message is incomplete in the capture\n", e->path);
    return rc;
}

/* --url --eml: the listing as CSV names the messages; each is fetched. */
static int eml_from_url(const char *url, const char *qs, const char *dir)
{
    char err[RW_ERRSZ], path[8192], fpath[4096];
    struct buf b = {0};
    snprintf(path, sizeof path, "/api/v1/smtp%s%sformat=csv", qs, qs[0] ? "&" : "?");
    int rc = httpc_get(url, path, write_buf, &b, err);
    if (rc < 0) {
        free(b.p);
        return cli_fail(rc, err);
    }
    int status = 0;
    char *save = NULL;
    int first = 1;
    for (char *line = b.p ? strtok_r(b.p, "\r\n", &save) : NULL; line;
         line = strtok_r(NULL, "\r\n", &save)) {
        if (first) { /* the header row */
            first = 0;
            continue;
        }
        size_t l = strcspn(line, ",");
        if (!l || l > 150 || line[0] != 'S')
            continue;
        line[l] = 0;
        snprintf(fpath, sizeof fpath, "%s/%s.eml", dir, line);
        snprintf(path, sizeof path, "/api/v1/smtp/messages/%s.eml", line);
        FILE *f = fopen(fpath, "wb");
        if (!f) {
            fprintf(stderr, "rewind: smtp: %s: %s\n", fpath, strerror(errno));
            status = EXIT_RUNTIME;
            break;
        }
        rc = httpc_get(url, path, write_file, f, err);
        if (fclose(f) != 0 && rc == 0)
            rc = rw_err(err, RW_EIO, "%s: write failed", fpath);
        if (rc < 0) {
            unlink(fpath);
            status = cli_fail(rc, err);
            break;
        }
    }
    free(b.p);
    return status;
}

static int write_out(void *arg, const void *buf, size_t n)
{
    (void)arg;
    return fwrite(buf, 1, n, stdout) == n ? 0 : -1;
}

int cmd_smtp(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'},  {"url", required_argument, 0, 'u'},
        {"token", required_argument, 0, 'T'}, {"from", required_argument, 0, 'f'},
        {"to", required_argument, 0, 't'},   {"host", required_argument, 0, 'H'},
        {"limit", required_argument, 0, 'l'}, {"json", no_argument, 0, 'j'},
        {"csv", no_argument, 0, 'c'},        {"report", no_argument, 0, 'r'},
        {"eml", required_argument, 0, 'e'},  {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    const char *dir = NULL, *url = NULL, *token = getenv("REWIND_TOKEN"), *from = NULL,
               *to = NULL, *host = NULL, *limit = NULL, *eml = NULL;
    int c, nfmt = 0, rc;
    char err[RW_ERRSZ];
    struct ses_spec spec = {0};
    spec.kind = SES_SMTP;
    spec.format = SES_TEXT;
    while ((c = getopt_long(argc, argv, "d:u:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'u': url = optarg; break;
        case 'T': token = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'H': host = optarg; break;
        case 'l': limit = optarg; break;
        case 'j': spec.format = SES_JSON, nfmt++; break;
        case 'c': spec.format = SES_CSV, nfmt++; break;
        case 'r': spec.format = SES_REPORT, nfmt++; break;
        case 'e': eml = optarg; break;
        case 'h': fputs(smtp_help, stdout); return 0;
        default: return cli_usage("smtp: bad option%s", "");
        }
    }
    if (optind < argc)
        return cli_usage("smtp: unexpected argument '%s'", argv[optind]);
    if (nfmt > 1)
        return cli_usage("smtp: --json, --csv and --report exclude each other%s", "");
    if (spec.format == SES_REPORT && !host)
        return cli_usage("smtp: --report needs --host IP (the subscriber complained about)%s",
                         "");
    if (!dir && !url)
        url = getenv("REWIND_URL");
    if (!url)
        dir = cli_env_dir(dir);
    if (!dir && !url)
        return cli_usage("smtp: --dir DIR or --url URL is required%s", "");
    if (eml && mkdir(eml, 0750) < 0 && errno != EEXIST) {
        fprintf(stderr, "rewind: smtp: --eml %s: %s\n", eml, strerror(errno));
        return EXIT_USAGE;
    }
    if (cli_sessions_window(from, to, &spec.from, &spec.to, err) < 0 ||
        cli_sessions_limit(limit, &spec.limit, err) < 0)
        return cli_fail(RW_EINPUT, err);
    spec.host = host;
    if ((rc = ses_check(&spec, err)) < 0) {
        fprintf(stderr, "rewind: smtp: --%s\n", err);
        return EXIT_USAGE;
    }
    if (url) {
        static const char *const fmts[] = {"json", "csv", "text", "report"};
        char qs[2048] = "", path[2200];
        if (cli_qs_add(qs, sizeof qs, "from", from) < 0 ||
            cli_qs_add(qs, sizeof qs, "to", to) < 0 ||
            cli_qs_add(qs, sizeof qs, "host", host) < 0 ||
            cli_qs_add(qs, sizeof qs, "limit", limit) < 0)
            return cli_fail(RW_EINPUT, "smtp: arguments too long");
        if ((rc = httpc_set_token(token, err)) < 0)
            return cli_fail(rc, err);
        if (eml && (rc = eml_from_url(url, qs, eml)) != 0)
            return rc;
        snprintf(path, sizeof path, "/api/v1/smtp%s%sformat=%s", qs, qs[0] ? "&" : "?",
                 fmts[spec.format]);
        rc = httpc_get(url, path, write_out, NULL, err);
        return rc < 0 ? cli_fail(rc, err) : 0;
    }
    struct emldir ed = {eml, NULL, "", 0};
    if (eml) {
        spec.msg_begin = eml_begin;
        spec.msg_data = eml_data;
        spec.msg_end = eml_end;
        spec.msg_arg = &ed;
    }
    int status = cli_sessions_local(dir, &spec, "smtp", stdout, NULL);
    if (ed.f)
        fclose(ed.f);
    return status;
}

int cli_sessions_window(const char *from, const char *to, int64_t *f, int64_t *t, char *err)
{
    int64_t now = rw_now_ns();
    *f = RW_TIME_MIN;
    *t = RW_TIME_MAX;
    if (from && rw_time_parse(from, now, f, err) < 0)
        return rw_errctx(err, RW_EINPUT, "--from");
    if (to && rw_time_parse(to, now, t, err) < 0)
        return rw_errctx(err, RW_EINPUT, "--to");
    if (*f != RW_TIME_MIN && *t != RW_TIME_MAX && *f >= *t)
        return rw_err(err, RW_EINPUT, "--from must be before --to");
    return 0;
}

int cli_sessions_limit(const char *v, uint64_t *out, char *err)
{
    char *e;
    if (!v)
        return 0;
    errno = 0;
    unsigned long long n = strtoull(v, &e, 10);
    if (!*v || *e || errno || n < 1 || n > SES_LIMIT_MAX || v[0] == '-')
        return rw_err(err, RW_EINPUT, "--limit: a number from 1 to %d, not '%.40s'",
                      SES_LIMIT_MAX, v);
    *out = n;
    return 0;
}
