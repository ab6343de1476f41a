/* files.c -- the audit trail's files: their names (A1), listing them in
 * order, reading one line by line with a bounded buffer, and reading the
 * tail of one (the chain's head, a torn last line) without reading it all. */
#include "auth/audit_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

uint64_t audit_name_number(const char *name)
{
    char again[64];
    unsigned long long n = 0;
    const char *p = name;
    if (strncmp(p, "audit-", 6))
        return 0;
    for (p += 6; *p >= '0' && *p <= '9'; p++) {
        if (n > (UINT64_MAX - 9) / 10)
            return 0;
        n = n * 10 + (unsigned)(*p - '0');
    }
    if (strcmp(p, ".jsonl") || n == 0)
        return 0;
    /* Only the name the writer makes for n: one file per number. */
    snprintf(again, sizeof again, AUDIT_NAME_FMT, n);
    return strcmp(again, name) ? 0 : n;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int audit_files(const char *auditdir, uint64_t **nums, size_t *n, char *err)
{
    DIR *d = opendir(auditdir);
    size_t cap = 0;
    *nums = NULL;
    *n = 0;
    if (!d) {
        if (errno == ENOENT || errno == ENOTDIR)
            return rw_err(err, RW_EINPUT, "%s: no audit trail (no such directory)", auditdir);
        return rw_err(err, RW_EIO, "%s: %s", auditdir, strerror(errno));
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        uint64_t k = audit_name_number(de->d_name);
        if (!k)
            continue; /* not ours: A1 names the trail's files */
        if (*n == cap) {
            cap = cap ? 2 * cap : 16;
            uint64_t *v = realloc(*nums, cap * sizeof *v);
            if (!v) {
                closedir(d);
                free(*nums);
                *nums = NULL;
                return rw_err(err, RW_ENOMEM, "out of memory");
            }
            *nums = v;
        }
        (*nums)[(*n)++] = k;
    }
    closedir(d);
    if (*n)
        qsort(*nums, *n, sizeof **nums, cmp_u64);
    return 0;
}

/* ------------------------------------------------------------ lines */

void audit_lines_init(struct audit_lines *lr, int fd)
{
    memset(lr, 0, sizeof *lr);
    lr->fd = fd;
}

void audit_lines_free(struct audit_lines *lr)
{
    free(lr->buf);
    lr->buf = NULL;
}

int audit_lines_next(struct audit_lines *lr, const char **line, size_t *len, uint64_t *off,
                     char *err)
{
    if (!lr->buf) {
        lr->cap = AUDIT_LINE_MAX + 1 + (64u << 10);
        if (!(lr->buf = malloc(lr->cap)))
            return rw_err(err, RW_ENOMEM, "out of memory");
    }
    for (;;) {
        char *nl = memchr(lr->buf + lr->pos, '\n', lr->len - lr->pos);
        size_t have = lr->len - lr->pos;
        if (nl || have > AUDIT_LINE_MAX) {
            size_t n = nl ? (size_t)(nl - (lr->buf + lr->pos)) : have;
            *line = lr->buf + lr->pos;
            *off = lr->off + lr->pos;
            if (lr->skipping) { /* the rest of a line too long: not a record */
                lr->skipping = !nl;
                lr->pos += n + (nl != NULL);
                continue;
            }
            if (n > AUDIT_LINE_MAX) {
                *len = AUDIT_LINE_MAX;
                lr->skipping = !nl;
                lr->pos += n + (nl != NULL);
                return AUDIT_LONG;
            }
            *len = n;
            lr->pos += n + 1;
            return AUDIT_LINE;
        }
        if (lr->eof) {
            lr->eof = 0; /* a later call reads again: the writer may add to it */
            if (!have || lr->skipping)
                return 0;
            *line = lr->buf + lr->pos;
            *len = have;
            *off = lr->off + lr->pos;
            return AUDIT_TORN;
        }
        if (lr->pos) { /* keep the partial line, at the front */
            memmove(lr->buf, lr->buf + lr->pos, have);
            lr->off += lr->pos;
            lr->len = have;
            lr->pos = 0;
        }
        ssize_t r = read(lr->fd, lr->buf + lr->len, lr->cap - lr->len);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return rw_err(err, RW_EIO, "read: %s", strerror(errno));
        }
        if (r == 0)
            lr->eof = 1;
        lr->len += (size_t)r;
    }
}

/* ------------------------------------------------------------ tails */

static int read_at(int fd, char *buf, size_t n, uint64_t off)
{
    while (n > 0) {
        ssize_t r = pread(fd, buf, n, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            errno = 0; /* the file shrank */
        if (r <= 0)
            return -1;
        buf += r;
        n -= (size_t)r;
        off += (uint64_t)r;
    }
    return 0;
}

int audit_tail_read(const char *path, struct audit_tail *t, char *err)
{
    struct stat sb;
    const char *name = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    memset(t, 0, sizeof *t);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &sb) < 0) {
        rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return RW_EIO;
    }
    /* The last record and a torn one after it are each at most a line. */
    uint64_t want = (uint64_t)sb.st_size;
    if (want > 2 * ((uint64_t)AUDIT_LINE_MAX + 1))
        want = 2 * ((uint64_t)AUDIT_LINE_MAX + 1);
    uint64_t base = (uint64_t)sb.st_size - want;
    t->size = (uint64_t)sb.st_size;
    if (!(t->buf = malloc(want + 1))) {
        close(fd);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    if (read_at(fd, t->buf, want, base) < 0) {
        rw_err(err, RW_EIO, "%s: reading its end: %s", path, errno ? strerror(errno) :
               "the file shrank");
        close(fd);
        return RW_EIO;
    }
    close(fd);
    size_t end = want;
    if (end && t->buf[end - 1] != '\n') {
        char *q = memrchr(t->buf, '\n', end);
        size_t start = q ? (size_t)(q + 1 - t->buf) : 0;
        if (!q && base)
            return rw_err(err, RW_ECORRUPT, "%s: more than %u bytes at its end without a "
                          "newline: no torn record is that long", name, AUDIT_LINE_MAX + 1);
        t->torn_off = base + start;
        t->torn_len = end - start;
        end = start;
    }
    if (end) {
        char *q = end > 1 ? memrchr(t->buf, '\n', end - 1) : NULL;
        size_t start = q ? (size_t)(q + 1 - t->buf) : 0;
        if ((!q && base) || end - 1 - start > AUDIT_LINE_MAX)
            return rw_err(err, RW_ECORRUPT, "%s: its last line is longer than %u bytes: not "
                          "a record", name, AUDIT_LINE_MAX);
        t->line = t->buf + start;
        t->line_len = end - 1 - start;
        t->line_off = base + start;
    }
    return 0;
}

void audit_tail_free(struct audit_tail *t)
{
    free(t->buf);
    memset(t, 0, sizeof *t);
}

int audit_tail_head(const char *name, const struct audit_tail *t, uint64_t *seq,
                    char hex[AUDIT_HEXSZ], char *err)
{
    struct audit_parsed p;
    char claimed[AUDIT_HEXSZ], actual[AUDIT_HEXSZ];
    int rc = audit_line_parse(t->line, t->line_len, &p, err);
    if (rc == 0 && (audit_line_hashes(t->line, t->line_len, claimed, actual) < 0 ||
                    strcmp(claimed, p.rec.hash)))
        rc = rw_err(err, RW_ECORRUPT, "it does not end in its hash member");
    else if (rc == 0 && strcmp(claimed, actual))
        rc = rw_err(err, RW_ECORRUPT, "its bytes do not match its hash");
    if (rc == 0) {
        *seq = p.rec.seq;
        memcpy(hex, actual, AUDIT_HEXSZ);
    }
    audit_parsed_free(&p);
    if (rc < 0)
        return rw_errctx(err, rc, "%s: the last record (offset %llu)", name,
                         (unsigned long long)t->line_off);
    return 0;
}
