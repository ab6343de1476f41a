/* read.c -- reading the audit trail while its writer appends: the chain's
 * head, listing records, and verifying the chain record by record (rules
 * A1 to A9 of man/rewind-archive.5). */
#include "auth/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A torn last line is read again this often, this many times, before it is
 * called torn: the writer writes a record with one write(2), so a reader
 * sees it partly written for no longer than that takes. */
#define TORN_RETRIES 10
#define TORN_WAIT_NS 20000000L

static int trail_dir(const char *dir, char *out, size_t n, char *err)
{
    if ((size_t)snprintf(out, n, "%s/" AUDIT_SUBDIR, dir) >= n)
        return rw_err(err, RW_EINPUT, "%s: path too long", dir);
    return 0;
}

static int open_file(const char *auditdir, uint64_t num, char *name, size_t namesz, char *err)
{
    char path[1200];
    snprintf(name, namesz, AUDIT_NAME_FMT, (unsigned long long)num);
    snprintf(path, sizeof path, "%s/%s", auditdir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
    return fd;
}

/* ------------------------------------------------------------ head */

int audit_head(const char *dir, uint64_t *seq, char hex[AUDIT_HEXSZ], char *err)
{
    char ad[1100];
    uint64_t *nums;
    size_t n;
    int rc;
    *seq = 0;
    memcpy(hex, AUDIT_ZERO_HASH, AUDIT_HEXSZ);
    if ((rc = trail_dir(dir, ad, sizeof ad, err)) < 0 ||
        (rc = audit_files(ad, &nums, &n, err)) < 0)
        return rc;
    /* The last complete line: a torn one after it is not a record (yet),
     * and a file the writer has just started may be empty. */
    for (size_t i = n; i-- > 0;) {
        char path[1200], name[64];
        struct audit_tail t;
        snprintf(name, sizeof name, AUDIT_NAME_FMT, (unsigned long long)nums[i]);
        snprintf(path, sizeof path, "%s/%s", ad, name);
        rc = audit_tail_read(path, &t, err);
        int found = rc == 0 && t.line;
        if (found)
            rc = audit_tail_head(name, &t, seq, hex, err);
        audit_tail_free(&t);
        if (rc < 0 || found)
            break;
    }
    free(nums);
    return rc;
}

/* ------------------------------------------------------------ list */

int audit_list(const char *dir, int64_t from_ns, int64_t to_ns, const char *principal,
               audit_list_fn cb, void *arg, char *err)
{
    char ad[1100], first[RW_ERRSZ] = "", why[RW_ERRSZ];
    uint64_t *nums;
    size_t n;
    int rc;
    if ((rc = trail_dir(dir, ad, sizeof ad, err)) < 0 ||
        (rc = audit_files(ad, &nums, &n, err)) < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        char name[64];
        struct audit_lines lr;
        int fd = open_file(ad, nums[i], name, sizeof name, err);
        if (fd < 0) {
            rc = fd;
            break;
        }
        audit_lines_init(&lr, fd);
        for (uint64_t lineno = 1;; lineno++) {
            const char *line;
            size_t len;
            uint64_t off;
            struct audit_parsed p;
            int k = audit_lines_next(&lr, &line, &len, &off, err);
            if (k < 0)
                rc = rw_errctx(err, k, "%s", name);
            if (k <= 0 || k == AUDIT_TORN) /* a torn line is no record (yet) */
                break;
            if (k == AUDIT_LONG) {
                if (!first[0])
                    rw_err(first, RW_ECORRUPT, "%s line %llu: longer than %u bytes: not a "
                           "record", name, (unsigned long long)lineno, AUDIT_LINE_MAX);
                continue;
            }
            int pr = audit_line_parse(line, len, &p, why);
            if (pr < 0 && !first[0])
                rw_err(first, RW_ECORRUPT, "%s line %llu: not a record: %s", name,
                       (unsigned long long)lineno, why);
            if (pr == 0 && p.rec.time_ns >= from_ns && p.rec.time_ns < to_ns &&
                (!principal || !strcmp(principal, p.rec.principal)) &&
                cb(arg, &p.rec, line, len) != 0)
                rc = rw_err(err, RW_ESTOP, "stopped");
            audit_parsed_free(&p);
            if (rc)
                break;
        }
        audit_lines_free(&lr);
        close(fd);
    }
    free(nums);
    if (rc == 0 && first[0])
        return rw_err(err, RW_ECORRUPT, "%s (rewind audit verify checks the whole trail)",
                      first);
    return rc;
}

/* ------------------------------------------------------------ verify */

struct vstate {
    audit_report_fn report;
    void *arg;
    struct audit_stats *st;
    char *err;
    const char *file;          /* the file being read */
    uint64_t expect;           /* the seq the next record must have */
    char prev[AUDIT_HEXSZ];    /* the hash it must name as prev ("": not known) */
    char alt[AUDIT_HEXSZ];     /* ... or this one ("": none; see check_record) */
    struct audit_cut cuts[8];  /* torn lines since the last record (A9) */
    char cutnames[8][64];
    size_t ncuts, lostcuts;
    const struct audit_expect *want;
    int want_found;
};

static void problem(struct vstate *v, uint64_t line, uint64_t off, uint64_t seq,
                    const char *fmt, ...) RW_PRINTF(5, 6);
static void problem(struct vstate *v, uint64_t line, uint64_t off, uint64_t seq,
                    const char *fmt, ...)
{
    char what[RW_ERRSZ], msg[RW_ERRSZ];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (line)
        rw_err(msg, 0, "%s line %llu: %s", v->file, (unsigned long long)line, what);
    else
        rw_err(msg, 0, "%s: %s", v->file, what);
    if (v->st->problems++ == 0)
        rw_err(v->err, RW_ECORRUPT, "%s", msg);
    if (v->report) {
        struct audit_problem p = {v->file, line, off, seq, msg};
        v->report(v->arg, &p);
    }
}

/* The torn lines a record must say were cut (A9) are the ones since the
 * record before it. */
static void check_cuts(struct vstate *v, const struct audit_parsed *p, uint64_t line,
                       uint64_t off)
{
    int same = p->ncuts == v->ncuts && !v->lostcuts;
    for (size_t i = 0; same && i < v->ncuts; i++)
        same = !strcmp(p->cuts[i].file, v->cuts[i].file) &&
               p->cuts[i].offset == v->cuts[i].offset && p->cuts[i].bytes == v->cuts[i].bytes;
    if (same) {
        v->st->cuts += v->ncuts;
    } else if (v->ncuts) {
        for (size_t i = 0; i < v->ncuts; i++)
            problem(v, line, off, p->rec.seq, "record %llu: before it, %s ends with %llu bytes "
                    "of a record cut off at offset %llu, and this record does not say a crash "
                    "cut them (A9): the file was truncated", (unsigned long long)p->rec.seq,
                    v->cuts[i].file, (unsigned long long)v->cuts[i].bytes,
                    (unsigned long long)v->cuts[i].offset);
    } else {
        problem(v, line, off, p->rec.seq, "record %llu says a crash cut off a record in %s at "
                "offset %llu, but no torn line is there: the trail was changed",
                (unsigned long long)p->rec.seq, p->cuts[0].file,
                (unsigned long long)p->cuts[0].offset);
    }
    v->ncuts = v->lostcuts = 0;
}

static void check_expect(struct vstate *v, const struct audit_rec *r, uint64_t line,
                         uint64_t off)
{
    const struct audit_expect *w = v->want;
    if (!w)
        return;
    if (!strcmp(r->hash, w->hash) && (!w->seq || w->seq == r->seq))
        v->want_found = 1;
    else if (w->seq == r->seq)
        problem(v, line, off, r->seq, "record %llu has hash %s, but the head recorded for it "
                "off the machine is %s: the trail was rewritten from there on",
                (unsigned long long)r->seq, r->hash, w->hash);
}

static void check_line(struct vstate *v, const char *s, size_t len, uint64_t line, uint64_t off)
{
    struct audit_parsed p;
    char why[RW_ERRSZ], claimed[AUDIT_HEXSZ], actual[AUDIT_HEXSZ];
    uint64_t e = v->expect;
    if (audit_line_parse(s, len, &p, why) < 0) {
        problem(v, line, off, e, "record %llu expected: not a record: %s",
                (unsigned long long)e, why);
        goto unknown;
    }
    if (audit_line_hashes(s, len, claimed, actual) < 0 || strcmp(claimed, p.rec.hash)) {
        problem(v, line, off, e, "record %llu expected: the line does not end in its hash "
                "member (A3)", (unsigned long long)e);
        goto unknown;
    }
    if (strcmp(claimed, actual)) {
        /* The bytes were changed after the hash was computed. The next
         * record names this one by the hash it had (claimed), unless the
         * hash member itself was changed (then by actual): either is
         * accepted there, so one changed record is one problem. */
        if (p.rec.seq == e)
            problem(v, line, off, e, "record %llu: its bytes do not match its hash: the "
                    "record was changed", (unsigned long long)e);
        else
            problem(v, line, off, e, "record %llu expected (the line says %llu): its bytes do "
                    "not match its hash: the record was changed", (unsigned long long)e,
                    (unsigned long long)p.rec.seq);
        v->expect = e + 1;
        memcpy(v->prev, claimed, AUDIT_HEXSZ);
        memcpy(v->alt, actual, AUDIT_HEXSZ);
        v->ncuts = v->lostcuts = 0;
        audit_parsed_free(&p);
        return;
    }
    uint64_t s_ = p.rec.seq;
    check_cuts(v, &p, line, off);
    if (s_ < e) {
        /* Moved or repeated: the records after it are still expected to
         * follow the one before it. */
        problem(v, line, off, e, "record %llu where record %llu was expected: a record out of "
                "place or repeated", (unsigned long long)s_, (unsigned long long)e);
        check_expect(v, &p.rec, line, off);
        v->st->records++;
        audit_parsed_free(&p);
        return;
    }
    if (s_ > e)
        problem(v, line, off, e, e + 1 == s_ ? "record %llu where record %llu was expected: "
                "record %llu is missing or out of place" : "record %llu where record %llu was "
                "expected: records %llu to %llu are missing or out of place",
                (unsigned long long)s_, (unsigned long long)e, (unsigned long long)e,
                (unsigned long long)(s_ - 1));
    else if (v->prev[0] && strcmp(p.rec.prev, v->prev) && strcmp(p.rec.prev, v->alt))
        problem(v, line, off, e, "record %llu: its prev (%.16s...) is not the hash of record "
                "%llu (%.16s...): the record before it was replaced", (unsigned long long)s_,
                p.rec.prev, (unsigned long long)(s_ - 1), v->prev);
    check_expect(v, &p.rec, line, off);
    v->st->records++;
    v->st->last_seq = s_;
    memcpy(v->st->head, actual, AUDIT_HEXSZ);
    v->expect = s_ + 1;
    memcpy(v->prev, actual, AUDIT_HEXSZ);
    v->alt[0] = 0;
    audit_parsed_free(&p);
    return;
unknown:
    /* Nothing of this line can be trusted: the next record is taken as it
     * comes, counted from the one expected here. */
    audit_parsed_free(&p);
    v->expect = e + 1;
    v->prev[0] = v->alt[0] = 0;
    v->ncuts = v->lostcuts = 0;
}

static void note_torn(struct vstate *v, uint64_t off, size_t len)
{
    if (v->ncuts == 8) {
        v->lostcuts++;
        return;
    }
    snprintf(v->cutnames[v->ncuts], sizeof v->cutnames[0], "%s", v->file);
    v->cuts[v->ncuts] = (struct audit_cut){v->cutnames[v->ncuts], off, len};
    v->ncuts++;
}

/* One file, line by line. last: the writer may be appending to it. */
static int verify_file(struct vstate *v, int fd, int last)
{
    struct audit_lines lr;
    int rc = 0;
    audit_lines_init(&lr, fd);
    for (uint64_t lineno = 1;; lineno++) {
        const char *line;
        size_t len;
        uint64_t off;
        int k = audit_lines_next(&lr, &line, &len, &off, v->err);
        for (int tries = 0; k == AUDIT_TORN && last && tries < TORN_RETRIES; tries++) {
            struct timespec ts = {0, TORN_WAIT_NS};
            nanosleep(&ts, NULL);
            k = audit_lines_next(&lr, &line, &len, &off, v->err);
        }
        if (k < 0) {
            rc = rw_errctx(v->err, k, "%s", v->file);
            break;
        }
        if (k == 0)
            break;
        if (k == AUDIT_TORN) {
            note_torn(v, off, len);
            break;
        }
        if (k == AUDIT_LONG) {
            problem(v, lineno, off, v->expect, "record %llu expected: a line longer than %u "
                    "bytes: not a record", (unsigned long long)v->expect, AUDIT_LINE_MAX);
            v->expect++;
            v->prev[0] = v->alt[0] = 0;
            continue;
        }
        check_line(v, line, len, lineno, off);
    }
    audit_lines_free(&lr);
    return rc;
}

int audit_verify(const char *dir, const struct audit_expect *expect, audit_report_fn report,
                 void *arg, struct audit_stats *st, char *err)
{
    char ad[1100], name[64];
    uint64_t *nums = NULL;
    size_t n = 0;
    int rc;
    struct vstate v = {.report = report, .arg = arg, .st = st, .err = err, .expect = 1,
                       .want = expect};
    memset(st, 0, sizeof *st);
    memcpy(st->head, AUDIT_ZERO_HASH, AUDIT_HEXSZ);
    memcpy(v.prev, AUDIT_ZERO_HASH, AUDIT_HEXSZ);
    if ((rc = trail_dir(dir, ad, sizeof ad, err)) < 0)
        return rc;
    rc = audit_files(ad, &nums, &n, err);
    if (rc == RW_EINPUT && expect) /* a head was recorded: the trail is gone */
        rc = 0;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        uint64_t want = i ? nums[i - 1] + 1 : 1;
        snprintf(name, sizeof name, AUDIT_NAME_FMT, (unsigned long long)nums[i]);
        v.file = name;
        if (nums[i] != want)
            problem(&v, 0, 0, 0, want + 1 == nums[i] ? "file " AUDIT_NAME_FMT " before it is "
                    "missing (A1)" : "files " AUDIT_NAME_FMT " to %llu before it are missing "
                    "(A1)", (unsigned long long)want, (unsigned long long)(nums[i] - 1));
        int fd = open_file(ad, nums[i], name, sizeof name, err);
        if (fd < 0) {
            rc = fd;
            goto out;
        }
        st->files++;
        rc = verify_file(&v, fd, i + 1 == n);
        close(fd);
        if (rc < 0)
            goto out;
    }
    if (v.ncuts) {
        v.file = v.cutnames[0];
        problem(&v, 0, v.cuts[0].offset, v.expect, "%llu bytes at offset %llu are the start of "
                "record %llu, cut off with nothing after it: the file was truncated, or a "
                "crash tore the record (the writer then says so in the next record when it "
                "opens the trail again)", (unsigned long long)v.cuts[0].bytes,
                (unsigned long long)v.cuts[0].offset, (unsigned long long)v.expect);
    }
    if (expect && !v.want_found) {
        char of[48] = "";
        if (expect->seq)
            snprintf(of, sizeof of, " for record %llu", (unsigned long long)expect->seq);
        v.file = n ? name : AUDIT_SUBDIR;
        problem(&v, 0, 0, expect->seq, "no record has the hash recorded off the machine (%s%s):"
                " records were removed or the trail was rewritten since", expect->hash, of);
    }
out:
    free(nums);
    if (rc < 0)
        return rc;
    return st->problems ? RW_ECORRUPT : 0;
}
