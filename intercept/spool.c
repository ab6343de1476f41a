/* spool.c -- a case's intercept spool on disk: DIR/cases/ID/spool/, files of
 * numbered packet records, append-only (man/rewind-archive.5, SPOOL, rules
 * P1 to P5). The writer (live.c's flusher) appends whole buffers and
 * fdatasyncs them; readers (pull delivery) read records by sequence number
 * while it appends. */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* P2: a record's fixed header; the point's name and the packet follow,
 * then zeros to a multiple of 4 bytes. */
#define REC_HDR 44
#define REC_MAGIC 0x52575331u /* "RWS1" */

size_t ic_spool_rec_size(size_t namelen, uint32_t caplen)
{
    return (REC_HDR + namelen + caplen + 3) & ~(size_t)3;
}

size_t ic_spool_rec_put(uint8_t *p, uint64_t seq, int64_t ts, int dlt, uint32_t snaplen,
                        const char *point, const uint8_t *data, uint32_t caplen, uint32_t len)
{
    size_t nl = strlen(point), n = ic_spool_rec_size(nl, caplen);
    rw_put_be32(p, REC_MAGIC);
    rw_put_be32(p + 4, (uint32_t)n);
    rw_put_be64(p + 8, seq);
    rw_put_be64(p + 16, (uint64_t)ts);
    rw_put_be32(p + 24, (uint32_t)dlt);
    rw_put_be32(p + 28, snaplen);
    rw_put_be32(p + 32, caplen);
    rw_put_be32(p + 36, len);
    rw_put_be16(p + 40, (uint16_t)nl);
    rw_put_be16(p + 42, 0);
    memcpy(p + REC_HDR, point, nl);
    memcpy(p + REC_HDR + nl, data, caplen);
    memset(p + REC_HDR + nl + caplen, 0, n - REC_HDR - nl - caplen);
    return n;
}

/* A record at p (avail bytes): its size, 0 when incomplete (a torn tail),
 * -1 when it is no record. */
long ic_spool_rec_parse(const uint8_t *p, size_t avail, struct ic_spool_rec *r)
{
    if (avail < REC_HDR)
        return 0;
    if (rw_get_be32(p) != REC_MAGIC)
        return -1;
    size_t n = rw_get_be32(p + 4);
    if (n < REC_HDR || n % 4 || n > REC_HDR + 68 + IC_SPOOL_CAPLEN_MAX)
        return -1;
    if (n > avail)
        return 0;
    r->seq = rw_get_be64(p + 8);
    r->ts = (int64_t)rw_get_be64(p + 16);
    r->dlt = (int)rw_get_be32(p + 24);
    r->snaplen = rw_get_be32(p + 28);
    r->caplen = rw_get_be32(p + 32);
    r->len = rw_get_be32(p + 36);
    size_t nl = rw_get_be16(p + 40);
    if (nl >= sizeof r->point || r->caplen > IC_SPOOL_CAPLEN_MAX ||
        ic_spool_rec_size(nl, r->caplen) != n)
        return -1;
    memcpy(r->point, p + REC_HDR, nl);
    r->point[nl] = 0;
    r->data = p + REC_HDR + nl;
    return (long)n;
}

/* ---------- files ---------- */

static int seq_name(const char *name, uint64_t *seq)
{
    char *end;
    if (strlen(name) != 24 || strcmp(name + 20, ".rws"))
        return -1;
    unsigned long long v = strtoull(name, &end, 10);
    if (end != name + 20)
        return -1;
    *seq = v;
    return 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int ic_spool_files(const char *sdir, uint64_t **out, size_t *n, char *err)
{
    DIR *d = opendir(sdir);
    uint64_t *v = NULL;
    size_t cnt = 0, cap = 0;
    struct dirent *de;
    *out = NULL;
    *n = 0;
    if (!d)
        return errno == ENOENT ? 0 : rw_err(err, RW_EIO, "%s: %s", sdir, strerror(errno));
    while ((de = readdir(d))) {
        uint64_t s;
        if (seq_name(de->d_name, &s) < 0)
            continue;
        if (cnt == cap) {
            uint64_t *nv = realloc(v, (cap = cap ? cap * 2 : 16) * sizeof *v);
            if (!nv) {
                free(v);
                closedir(d);
                return rw_err(err, RW_ENOMEM, "out of memory");
            }
            v = nv;
        }
        v[cnt++] = s;
    }
    closedir(d);
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_u64);
    *out = v;
    *n = cnt;
    return 0;
}

/* Read the whole file path (a spool file, at most IC_SPOOL_FILE_MAX plus
 * a record) into *buf. */
static int slurp(const char *path, uint8_t **buf, size_t *n, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0) {
        close(fd);
        return rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
    }
    uint8_t *b = malloc((size_t)st.st_size + 1);
    size_t got = 0;
    while (b && got < (size_t)st.st_size) {
        ssize_t r = read(fd, b + got, (size_t)st.st_size - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (!b)
        return rw_err(err, RW_ENOMEM, "out of memory");
    *buf = b;
    *n = got;
    return 0;
}

int ic_spool_recover(const char *sdir, uint64_t *next_seq, uint64_t *bytes, char *err)
{
    uint64_t *f = NULL;
    size_t nf = 0;
    char path[4400];
    int rc = ic_spool_files(sdir, &f, &nf, err);
    *next_seq = 1;
    *bytes = 0;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < nf; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%020llu.rws", sdir, (unsigned long long)f[i]);
        if (stat(path, &st) == 0)
            *bytes += (uint64_t)st.st_size;
    }
    if (nf) {
        /* P4: the last file's complete records count; a torn tail is cut. */
        uint8_t *b = NULL;
        size_t n = 0, at = 0;
        snprintf(path, sizeof path, "%s/%020llu.rws", sdir, (unsigned long long)f[nf - 1]);
        if ((rc = slurp(path, &b, &n, err)) == 0) {
            struct ic_spool_rec r;
            uint64_t last = f[nf - 1] - 1;
            long l;
            while ((l = ic_spool_rec_parse(b + at, n - at, &r)) > 0) {
                last = r.seq;
                at += (size_t)l;
            }
            if (at < n) {
                if (truncate(path, (off_t)at) < 0)
                    rc = rw_err(err, RW_EIO, "cutting the torn end of %s: %s", path,
                                strerror(errno));
                *bytes -= n - at;
            }
            *next_seq = last + 1;
        }
        free(b);
    }
    free(f);
    return rc;
}

int ic_spool_count(const char *sdir, uint64_t *next_seq, uint64_t *bytes, char *err)
{
    uint64_t *f = NULL;
    size_t nf = 0;
    char path[4400];
    int rc = ic_spool_files(sdir, &f, &nf, err);
    *next_seq = 1;
    *bytes = 0;
    if (rc < 0 || !nf) {
        free(f);
        return rc;
    }
    uint8_t *b = NULL;
    size_t n = 0, at = 0;
    snprintf(path, sizeof path, "%s/%020llu.rws", sdir, (unsigned long long)f[nf - 1]);
    if ((rc = slurp(path, &b, &n, err)) == 0) {
        struct ic_spool_rec r;
        uint64_t last = f[nf - 1] - 1;
        long l;
        while ((l = ic_spool_rec_parse(b + at, n - at, &r)) > 0) {
            last = r.seq;
            at += (size_t)l;
        }
        *next_seq = last + 1;
        *bytes = at;
    }
    free(b);
    free(f);
    return rc;
}

/* ---------- reading by sequence number ---------- */

#define RBUF (1u << 20)

struct ic_spool_reader {
    char sdir[4400];
    uint64_t next;  /* the next sequence number wanted */
    uint64_t file;  /* first seq of the open file, 0: none */
    int fd;
    uint64_t off;   /* file offset of buf[0] */
    uint8_t *buf;   /* RBUF + the largest record */
    size_t n, at;
};

int ic_spool_reader_open(const char *sdir, uint64_t after, ic_spool_reader_t **out, char *err)
{
    struct ic_spool_reader *r = calloc(1, sizeof *r);
    if (!r || !(r->buf = malloc(RBUF + REC_HDR + 68 + IC_SPOOL_CAPLEN_MAX))) {
        free(r);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    snprintf(r->sdir, sizeof r->sdir, "%s", sdir);
    r->next = after + 1;
    r->fd = -1;
    *out = r;
    return 0;
}

void ic_spool_reader_close(ic_spool_reader_t *r)
{
    if (!r)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->buf);
    free(r);
}

/* The file that holds r->next: the last whose first seq is at most next
 * (0 when none). */
static int pick_file(struct ic_spool_reader *r, uint64_t *pick, char *err)
{
    uint64_t *f = NULL;
    size_t nf = 0;
    int rc = ic_spool_files(r->sdir, &f, &nf, err);
    *pick = 0;
    for (size_t i = 0; rc == 0 && i < nf; i++)
        if (f[i] <= r->next)
            *pick = f[i];
    if (rc == 0 && !*pick && nf && f[0] > r->next)
        rc = rw_err(err, RW_ESTATE, "the spool's packets before %llu were deleted once the "
                    "agency held them: ask from after %llu", (unsigned long long)f[0],
                    (unsigned long long)f[0] - 1);
    free(f);
    return rc;
}

static int open_file(struct ic_spool_reader *r, uint64_t first, char *err)
{
    char path[4500];
    snprintf(path, sizeof path, "%s/%020llu.rws", r->sdir, (unsigned long long)first);
    if (r->fd >= 0)
        close(r->fd);
    r->fd = open(path, O_RDONLY | O_CLOEXEC);
    r->file = first;
    r->off = 0;
    r->n = r->at = 0;
    if (r->fd < 0)
        return rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
    return 0;
}

/* More bytes of the open file after what buf holds: how many. */
static long fill(struct ic_spool_reader *r, char *err)
{
    if (r->at) {
        memmove(r->buf, r->buf + r->at, r->n - r->at);
        r->off += r->at;
        r->n -= r->at;
        r->at = 0;
    }
    size_t room = RBUF + REC_HDR + 68 + IC_SPOOL_CAPLEN_MAX - r->n;
    ssize_t got = pread(r->fd, r->buf + r->n, room, (off_t)(r->off + r->n));
    if (got < 0)
        return rw_err(err, RW_EIO, "reading the spool of %s: %s", r->sdir, strerror(errno));
    r->n += (size_t)got;
    return got;
}

int ic_spool_next(ic_spool_reader_t *r, uint64_t durable, struct ic_spool_rec *rec, char *err)
{
    if (r->next > durable)
        return 0;
    if (r->fd < 0) {
        uint64_t pick;
        int rc = pick_file(r, &pick, err);
        if (rc < 0 || !pick)
            return rc < 0 ? rc : 0;
        if ((rc = open_file(r, pick, err)) < 0)
            return rc;
    }
    for (int tries = 0; tries < 4; tries++) {
        long l = ic_spool_rec_parse(r->buf + r->at, r->n - r->at, rec);
        if (l < 0)
            return rw_err(err, RW_ECORRUPT, "spool %s/%020llu.rws: no record at byte %llu",
                          r->sdir, (unsigned long long)r->file,
                          (unsigned long long)(r->off + r->at));
        if (l > 0) {
            r->at += (size_t)l;
            if (rec->seq < r->next) { /* before the one wanted: skip */
                tries = 0;
                continue;
            }
            if (rec->seq != r->next)
                return rw_err(err, RW_ECORRUPT, "spool of %s: record %llu where %llu was due",
                              r->sdir, (unsigned long long)rec->seq,
                              (unsigned long long)r->next);
            r->next++;
            return 1;
        }
        long got = fill(r, err);
        if (got < 0)
            return (int)got;
        if (got > 0)
            continue;
        /* The end of this file: the next file, if the writer rolled over. */
        uint64_t pick;
        int rc = pick_file(r, &pick, err);
        if (rc < 0)
            return rc;
        if (pick == r->file || !pick)
            return 0;
        if ((rc = open_file(r, pick, err)) < 0)
            return rc;
    }
    return 0;
}
