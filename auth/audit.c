/* audit.c -- the audit trail's writer (one process, any number of threads):
 * opening the trail and recording what a crash cut off, appending records
 * with shared fdatasyncs, rolling files; and the streaming SHA-256 of an
 * answer's bytes. */
#include "auth/audit_int.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

struct audit {
    pthread_mutex_t mu;      /* the chain and the current file */
    pthread_mutex_t sync_mu; /* one fdatasync at a time; taken before mu */
    char auditdir[1024];
    int dirfd;               /* holds the writer's flock (A8) */
    int fd;                  /* the current file, O_APPEND */
    uint64_t fileno, size;   /* its number and size */
    uint64_t reserved;       /* bytes of it allocated ahead (fallocate KEEP_SIZE) */
    uint64_t seq;            /* the last record written */
    uint64_t synced;         /* the last record known to be on disk */
    char head[AUDIT_HEXSZ];  /* the last record's hash */
    uint64_t roll;
    int failed;              /* an fdatasync failed: what is on disk is unknown */
    char failmsg[RW_ERRSZ];
};

void audit_rec_init(struct audit_rec *r)
{
    memset(r, 0, sizeof *r);
    r->from_ns = RW_TIME_MIN;
    r->to_ns = RW_TIME_MAX;
}

/* ------------------------------------------------------------ files */

static void file_path(const audit_t *a, uint64_t num, char *path, size_t n)
{
    snprintf(path, n, "%s/" AUDIT_NAME_FMT, a->auditdir, (unsigned long long)num);
}

/* Keep AUDIT_RESERVE bytes allocated past the end of the current file
 * (fallocate, the file's size unchanged): a full disk then still takes the
 * next thousands of records, so that packet answers, which may not finish
 * without their record, go on while capture is paused for space. Where the
 * file system cannot (or is full already), records are written as they
 * come and may fail for want of space. */
static void reserve_ahead(audit_t *a)
{
    if (a->reserved >= a->size + AUDIT_RESERVE / 2)
        return;
    if (fallocate(a->fd, FALLOC_FL_KEEP_SIZE, (off_t)a->size, (off_t)AUDIT_RESERVE) == 0)
        a->reserved = a->size + AUDIT_RESERVE;
}

/* Make file num the current one, creating it (an empty file of that number
 * may be left by a crash or a failed roll: it is taken as it is). */
static int file_start(audit_t *a, uint64_t num, int create, char *err)
{
    char path[1100];
    struct stat sb;
    file_path(a, num, path, sizeof path);
    int fd = open(path, O_WRONLY | O_APPEND | O_CLOEXEC | (create ? O_CREAT : 0), 0640);
    if (fd < 0 || fstat(fd, &sb) < 0) {
        rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "%s: %s", path, strerror(errno));
        if (fd >= 0)
            close(fd);
        return errno == ENOSPC ? RW_ENOSPC : RW_EIO;
    }
    if (create && sb.st_size) {
        close(fd);
        return rw_err(err, RW_ECORRUPT, "%s exists already and is not empty", path);
    }
    /* The new name must be durable before records in it are called so. */
    if (create && rw_fsync_dir(a->auditdir) < 0) {
        rw_err(err, RW_EIO, "%s: fsync: %s", a->auditdir, strerror(errno));
        close(fd);
        return RW_EIO;
    }
    if (a->fd >= 0)
        close(a->fd);
    a->fd = fd;
    a->fileno = num;
    a->size = (uint64_t)sb.st_size;
    a->reserved = 0;
    reserve_ahead(a);
    return 0;
}

/* ------------------------------------------------------------ appending */

static int fail_sticky(audit_t *a, int e, const char *what, char *err)
{
    a->failed = 1;
    rw_err(a->failmsg, RW_EIO, "audit trail %s: %s failed (%s): what reached "
             "the disk is unknown; no more records until the trail is opened again",
             a->auditdir, what, strerror(e));
    return rw_err(err, RW_EIO, "%s", a->failmsg);
}

/* Write one record (mu held): its line, after rolling when the file is full. */
static int write_locked(audit_t *a, const struct audit_buf *body, struct audit_rec *r,
                        char *err)
{
    struct audit_buf line = {0};
    char hex[AUDIT_HEXSZ];
    int rc;
    if (a->failed)
        return rw_err(err, RW_EIO, "%s", a->failmsg);
    if (audit_line_assemble(a->seq + 1, a->head, body->p, body->len, &line, hex) < 0) {
        audit_buf_free(&line);
        return rw_err(err, RW_ENOMEM, "audit record: out of memory");
    }
    if (line.len - 1 > AUDIT_LINE_MAX) {
        rc = rw_err(err, RW_EINPUT, "audit record of %zu bytes: longer than %u", line.len - 1,
                    AUDIT_LINE_MAX);
        goto out;
    }
    if (a->size && a->size + line.len > a->roll) {
        /* Everything in the old file is made durable now, so that a later
         * fdatasync of the new one covers every record before it. */
        if (fdatasync(a->fd) < 0) {
            rc = fail_sticky(a, errno, "fdatasync before starting a new file", err);
            goto out;
        }
        a->synced = a->seq;
        /* On failure the old file stays current; an empty new file that
         * is left is taken as it is by the next attempt. */
        if ((rc = file_start(a, a->fileno + 1, 1, err)) < 0)
            goto out;
    }
    if (rw_write_all(a->fd, line.p, line.len) < 0) {
        int e = errno;
        /* Take back what part of the line got in, so that the next record
         * starts a line of its own (files hold whole records, A2). */
        if (ftruncate(a->fd, (off_t)a->size) < 0) {
            rc = fail_sticky(a, errno, "removing a partly written record", err);
            goto out;
        }
        rc = rw_err(err, e == ENOSPC ? RW_ENOSPC : RW_EIO, "audit trail %s/" AUDIT_NAME_FMT
                    ": write: %s", a->auditdir, (unsigned long long)a->fileno, strerror(e));
        goto out;
    }
    r->seq = a->seq + 1;
    memcpy(r->prev, a->head, AUDIT_HEXSZ);
    memcpy(r->hash, hex, AUDIT_HEXSZ);
    a->size += line.len;
    reserve_ahead(a);
    a->seq++;
    memcpy(a->head, hex, AUDIT_HEXSZ);
    rc = 0;
out:
    audit_buf_free(&line);
    return rc;
}

/* Make record seq durable. Whoever comes first syncs everything written so
 * far; threads that wrote meanwhile find their record covered (group
 * commit: one fdatasync for many requests). */
static int sync_to(audit_t *a, uint64_t seq, char *err)
{
    int rc = 0;
    pthread_mutex_lock(&a->sync_mu);
    pthread_mutex_lock(&a->mu);
    if (a->failed) {
        rc = rw_err(err, RW_EIO, "%s", a->failmsg);
    } else if (a->synced < seq) {
        uint64_t target = a->seq;
        /* A duplicate, so that a roll may close the file meanwhile; its
         * records were synced by the roll itself. */
        int fd = dup(a->fd), r, e;
        if (fd < 0) {
            r = fdatasync(a->fd);
            e = errno;
        } else {
            pthread_mutex_unlock(&a->mu);
            r = fdatasync(fd);
            e = errno;
            close(fd);
            pthread_mutex_lock(&a->mu);
        }
        if (r < 0)
            rc = a->failed ? rw_err(err, RW_EIO, "%s", a->failmsg)
                           : fail_sticky(a, e, "fdatasync", err);
        else if (a->synced < target)
            a->synced = target;
    }
    pthread_mutex_unlock(&a->mu);
    pthread_mutex_unlock(&a->sync_mu);
    return rc;
}

static int append_cuts(audit_t *a, struct audit_rec *r, const struct audit_cut *cuts,
                       size_t ncuts, char *err)
{
    struct audit_buf body = {0};
    if (r->time_ns == 0)
        r->time_ns = rw_now_ns();
    int rc = audit_body_format(r, cuts, ncuts, &body, err);
    if (rc == 0) {
        pthread_mutex_lock(&a->mu);
        rc = write_locked(a, &body, r, err);
        pthread_mutex_unlock(&a->mu);
    }
    audit_buf_free(&body);
    return rc < 0 ? rc : sync_to(a, r->seq, err);
}

int audit_append(audit_t *a, struct audit_rec *r, char *err)
{
    return append_cuts(a, r, NULL, 0, err);
}

void audit_last(audit_t *a, uint64_t *seq, char hex[AUDIT_HEXSZ])
{
    pthread_mutex_lock(&a->mu);
    *seq = a->seq;
    memcpy(hex, a->head, AUDIT_HEXSZ);
    pthread_mutex_unlock(&a->mu);
}

void audit_set_roll(audit_t *a, uint64_t bytes)
{
    pthread_mutex_lock(&a->mu);
    a->roll = bytes ? bytes : AUDIT_ROLL_BYTES;
    pthread_mutex_unlock(&a->mu);
}

/* ------------------------------------------------------------ opening */

/* Find the head, walking back from the last file past files without a
 * complete line, and gather the torn bytes after it (A9). */
static int find_head(audit_t *a, const uint64_t *nums, size_t n, struct audit_cut *cuts,
                     char (*names)[64], size_t *ncuts, char *err)
{
    *ncuts = 0;
    a->seq = 0;
    memcpy(a->head, AUDIT_ZERO_HASH, AUDIT_HEXSZ);
    for (size_t i = n; i-- > 0;) {
        char path[1100];
        struct audit_tail t;
        file_path(a, nums[i], path, sizeof path);
        int rc = audit_tail_read(path, &t, err);
        if (rc == 0 && t.torn_len) {
            if (*ncuts == 8) { /* more crashes in a row than records: not a crash */
                audit_tail_free(&t);
                return rw_err(err, RW_ECORRUPT, "%s: more than 8 files end in a torn line "
                              "after the last record", a->auditdir);
            }
            memmove(cuts + 1, cuts, *ncuts * sizeof *cuts);
            memmove(names + 1, names, *ncuts * sizeof *names);
            snprintf(names[0], sizeof names[0], AUDIT_NAME_FMT, (unsigned long long)nums[i]);
            cuts[0] = (struct audit_cut){names[0], t.torn_off, t.torn_len};
            (*ncuts)++;
        }
        if (rc == 0 && t.line)
            rc = audit_tail_head(path + strlen(a->auditdir) + 1, &t, &a->seq, a->head, err);
        int found = t.line != NULL;
        audit_tail_free(&t);
        if (rc < 0)
            return rw_errctx(err, rc, "audit trail %s is damaged (rewind audit verify says "
                             "where)", a->auditdir);
        if (found)
            break;
    }
    /* Cut names point into names[], which moved: point them again. */
    for (size_t i = 0; i < *ncuts; i++)
        cuts[i].file = names[i];
    return 0;
}

static int recover(audit_t *a, char *err)
{
    uint64_t *nums = NULL;
    size_t n = 0, ncuts = 0;
    struct audit_cut cuts[9];
    char names[9][64];
    int rc = audit_files(a->auditdir, &nums, &n, err);
    if (rc < 0)
        return rc;
    if (n == 0) {
        rc = file_start(a, 1, 1, err);
        free(nums);
        return rc;
    }
    if ((rc = find_head(a, nums, n, cuts, names, &ncuts, err)) < 0)
        goto out;
    /* An empty last file is the current one; a torn one is left as it is
     * and the next file starts (files are never rewritten, A2). */
    char path[1100];
    struct stat sb;
    file_path(a, nums[n - 1], path, sizeof path);
    if (stat(path, &sb) < 0) {
        rc = rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
        goto out;
    }
    int torn_last = ncuts && !strcmp(cuts[ncuts - 1].file, strrchr(path, '/') + 1);
    if ((rc = file_start(a, nums[n - 1] + torn_last, torn_last, err)) < 0)
        goto out;
    if (ncuts) {
        char detail[RW_ERRSZ];
        size_t k = 0;
        k += (size_t)snprintf(detail, sizeof detail, "a crash cut off");
        for (size_t i = 0; i < ncuts && k < sizeof detail; i++)
            k += (size_t)snprintf(detail + k, sizeof detail - k, "%s %s: %llu bytes at offset "
                                  "%llu", i ? "," : "", cuts[i].file,
                                  (unsigned long long)cuts[i].bytes,
                                  (unsigned long long)cuts[i].offset);
        if (k < sizeof detail)
            snprintf(detail + k, sizeof detail - k, " (a record not yet fsynced, so no answer "
                     "was completed on its strength)");
        struct audit_rec r;
        audit_rec_init(&r);
        r.route = "audit cut";
        r.detail = detail;
        if ((rc = append_cuts(a, &r, cuts, ncuts, err)) < 0) {
            rw_errctx(err, rc, "recording the cut");
            goto out;
        }
        rc = rw_err(err, AUDIT_RECOVERED, "audit trail %s: %s; record %llu says so", a->auditdir,
                    detail, (unsigned long long)r.seq);
    }
out:
    free(nums);
    return rc;
}

int audit_open(const char *dir, audit_t **out, char *err)
{
    struct stat sb;
    *out = NULL;
    if (stat(dir, &sb) < 0 || !S_ISDIR(sb.st_mode))
        return rw_err(err, RW_EINPUT, "%s: no such directory", dir);
    audit_t *a = calloc(1, sizeof *a);
    if (!a)
        return rw_err(err, RW_ENOMEM, "out of memory");
    a->fd = a->dirfd = -1;
    a->roll = AUDIT_ROLL_BYTES;
    memcpy(a->head, AUDIT_ZERO_HASH, AUDIT_HEXSZ);
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->sync_mu, NULL);
    int rc;
    if ((size_t)snprintf(a->auditdir, sizeof a->auditdir, "%s/" AUDIT_SUBDIR, dir) >=
        sizeof a->auditdir) {
        rc = rw_err(err, RW_EINPUT, "%s: path too long", dir);
        goto fail;
    }
    if (mkdir(a->auditdir, 0750) == 0) {
        if (rw_fsync_dir(dir) < 0) {
            rc = rw_err(err, RW_EIO, "%s: fsync: %s", dir, strerror(errno));
            goto fail;
        }
    } else if (errno != EEXIST) {
        rc = rw_err(err, RW_EIO, "%s: %s", a->auditdir, strerror(errno));
        goto fail;
    }
    if ((a->dirfd = open(a->auditdir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
        rc = rw_err(err, RW_EIO, "%s: %s", a->auditdir, strerror(errno));
        goto fail;
    }
    if (flock(a->dirfd, LOCK_EX | LOCK_NB) < 0) {
        rc = errno == EWOULDBLOCK
                 ? rw_err(err, RW_EBUSY, "%s: the audit trail is written by another process",
                          a->auditdir)
                 : rw_err(err, RW_EIO, "%s: flock: %s", a->auditdir, strerror(errno));
        goto fail;
    }
    if ((rc = recover(a, err)) < 0)
        goto fail;
    a->synced = a->seq;
    *out = a;
    return rc;
fail:
    audit_close(a);
    return rc;
}

void audit_close(audit_t *a)
{
    if (!a)
        return;
    if (a->fd >= 0)
        close(a->fd);
    if (a->dirfd >= 0)
        close(a->dirfd); /* releases the flock */
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->sync_mu);
    free(a);
}

/* ------------------------------------------------------------ SHA-256 */

struct audit_hash {
    EVP_MD_CTX *ctx;
    uint64_t bytes;
    int bad;
};

audit_hash_t *audit_hash_new(void)
{
    audit_hash_t *h = calloc(1, sizeof *h);
    if (!h)
        return NULL;
    if (!(h->ctx = EVP_MD_CTX_new()) || EVP_DigestInit_ex(h->ctx, EVP_sha256(), NULL) != 1) {
        audit_hash_free(h);
        return NULL;
    }
    return h;
}

void audit_hash_update(audit_hash_t *h, const void *p, size_t n)
{
    if (n && EVP_DigestUpdate(h->ctx, p, n) != 1)
        h->bad = 1;
    h->bytes += n;
}

uint64_t audit_hash_bytes(const audit_hash_t *h) { return h->bytes; }

int audit_hash_final(audit_hash_t *h, char hex[AUDIT_HEXSZ], char *err)
{
    static const char digits[] = "0123456789abcdef";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int ok = !h->bad && EVP_DigestFinal_ex(h->ctx, md, &n) == 1 && n == 32;
    audit_hash_free(h);
    if (!ok)
        return rw_err(err, RW_ENOMEM, "SHA-256 of the answer: libcrypto failed");
    for (int i = 0; i < 32; i++) {
        hex[2 * i] = digits[md[i] >> 4];
        hex[2 * i + 1] = digits[md[i] & 15];
    }
    hex[64] = 0;
    return 0;
}

void audit_hash_free(audit_hash_t *h)
{
    if (!h)
        return;
    EVP_MD_CTX_free(h->ctx);
    free(h);
}
