/* import.c -- ingest pcap and pcapng files into capture points.
 *
 * libpcap reads the records (byte order, pcapng options, per-interface time
 * resolution, its own sanity checks). It does not say which pcapng
 * interface a packet came from, so a small walker follows the same file's
 * block structure in step and names the interface of each packet block. */
#include "capture/cap.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdio.h>
#include <stdio_ext.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>


/* ---- pcapng block walker (interface id of each packet block) ---- */
struct ngwalk {
    FILE *f;
    int swap;
    int base;  /* interfaces of earlier sections */
    int nif;   /* interfaces of this section */
};

static uint32_t ng32(const struct ngwalk *w, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return w->swap ? __builtin_bswap32(v) : v;
}

/* Next packet block's interface index across sections: 1, 0 at EOF, -1 bad. */
static int ngwalk_next(struct ngwalk *w, int *ifid)
{
    uint8_t h[12];
    for (;;) {
        if (fread(h, 1, 8, w->f) != 8)
            return 0;
        uint32_t type, len;
        memcpy(&type, h, 4);
        if (type == 0x0A0D0D0A) { /* SHB: byte order from its magic */
            if (fread(h + 8, 1, 4, w->f) != 4)
                return 0;
            uint32_t magic;
            memcpy(&magic, h + 8, 4);
            w->swap = magic != 0x1A2B3C4D;
            w->base += w->nif;
            w->nif = 0;
            len = ng32(w, h + 4);
            if (len < 12 || fseek(w->f, (long)len - 12, SEEK_CUR) < 0)
                return -1;
            continue;
        }
        type = ng32(w, h);
        len = ng32(w, h + 4);
        if (len < 12)
            return -1;
        if (type == 1) { /* IDB */
            w->nif++;
        } else if (type == 6 || type == 2 || type == 3) {
            uint8_t b[4] = {0};
            int id = 0;
            if (type != 3) {
                if (fread(b, 1, 4, w->f) != 4)
                    return 0;
                if (fseek(w->f, -4, SEEK_CUR) < 0)
                    return -1;
                if (type == 6) {
                    id = (int)ng32(w, b);
                } else {
                    uint16_t v;
                    memcpy(&v, b, 2);
                    id = w->swap ? __builtin_bswap16(v) : v;
                }
            }
            *ifid = w->base + id;
            if (fseek(w->f, (long)len - 8, SEEK_CUR) < 0)
                return -1;
            return 1;
        }
        if (fseek(w->f, (long)len - 8, SEEK_CUR) < 0)
            return -1;
    }
}

static int is_pcapng(const char *path)
{
    FILE *f = fopen(path, "rb");
    uint32_t m = 0;
    if (!f)
        return 0;
    if (fread(&m, 1, 4, f) != 4)
        m = 0;
    fclose(f);
    return m == 0x0A0D0D0A;
}

#define RDBUF (1u << 20) /* stdio buffer for the file libpcap reads */

struct cap_reader {
    pcap_t *p;
    char *rdbuf;
    struct ngwalk ng;
    char path[1024];
    uint64_t recno, total;
};

static int reader_open(const char *path, const char *label, cap_reader_t **out, char *err)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    struct stat sb = {0};
    cap_reader_t *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return rw_err(err, RW_ENOMEM, "out of memory");
    snprintf(r->path, sizeof r->path, "%s", label);
    if (strcmp(path, "-") != 0) {
        if (stat(path, &sb) < 0) {
            free(r);
            return rw_err(err, RW_EINPUT, "%s: %s", label, strerror(errno));
        }
        if (S_ISDIR(sb.st_mode)) {
            free(r);
            return rw_err(err, RW_EINPUT, "%s: is a directory, not a capture file", label);
        }
        r->total = (uint64_t)sb.st_size;
    }
    if (r->total && S_ISREG(sb.st_mode)) {
        /* A regular file: open it ourselves to give libpcap's stream a
         * large buffer (one read() per MiB instead of per 4 KiB) and tell
         * the kernel it is read once, in order. */
        FILE *f = fopen(path, "rb");
        if (!f) {
            free(r);
            return rw_err(err, RW_EINPUT, "%s: %s", label, strerror(errno));
        }
        if ((r->rdbuf = malloc(RDBUF)))
            setvbuf(f, r->rdbuf, _IOFBF, RDBUF);
        /* One thread at a time reads it: no stdio lock per fread(). */
        __fsetlocking(f, FSETLOCKING_BYCALLER);
        posix_fadvise(fileno(f), 0, 0, POSIX_FADV_SEQUENTIAL);
        r->p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, ebuf);
        if (!r->p)
            fclose(f);
    } else {
        r->p = pcap_open_offline_with_tstamp_precision(path, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    }
    if (!r->p) {
        free(r->rdbuf);
        free(r);
        return rw_err(err, RW_EINPUT, "%s: file header: %s", label, ebuf);
    }
    /* The walker re-reads the file: only possible for a regular file. */
    if (r->total && S_ISREG(sb.st_mode) && is_pcapng(path) && !(r->ng.f = fopen(path, "rb"))) {
        cap_reader_close(r);
        return rw_err(err, RW_EIO, "%s: %s", label, strerror(errno));
    }
    *out = r;
    return 0;
}

int cap_reader_open(const char *path, cap_reader_t **out, char *err)
{
    return reader_open(path, path, out, err);
}

void cap_reader_close(cap_reader_t *r)
{
    if (!r)
        return;
    if (r->ng.f)
        fclose(r->ng.f);
    if (r->p)
        pcap_close(r->p); /* closes the stream, which may use rdbuf */
    free(r->rdbuf);
    free(r);
}

int cap_reader_dlt(const cap_reader_t *r) { return pcap_datalink(r->p); }
uint32_t cap_reader_snaplen(const cap_reader_t *r) { return (uint32_t)pcap_snapshot(r->p); }
uint64_t cap_reader_records(const cap_reader_t *r) { return r->recno; }

uint64_t cap_reader_pos(const cap_reader_t *r, uint64_t *total)
{
    FILE *f = pcap_file(r->p);
    long pos = f ? ftell(f) : 0;
    *total = r->total;
    return pos > 0 ? (uint64_t)pos : 0;
}

int cap_reader_next(cap_reader_t *r, struct cap_rec *rec, char *err)
{
    struct pcap_pkthdr *h;
    const u_char *data;
    int x = pcap_next_ex(r->p, &h, &data);
    if (x == PCAP_ERROR_BREAK)
        return 0;
    if (x != 1)
        return rw_err(err, RW_EINPUT, "%s: record %llu: %s; the %llu records before it were kept",
                      r->path, (unsigned long long)r->recno + 1, pcap_geterr(r->p),
                      (unsigned long long)r->recno);
    r->recno++;
    rec->ifid = 0;
    if (r->ng.f && ngwalk_next(&r->ng, &rec->ifid) != 1)
        rec->ifid = 0; /* libpcap accepted the block; trust it, interface 0 */
    if (rec->ifid < 0 || rec->ifid >= CAP_MAX_IFACES)
        return rw_err(err, RW_EINPUT, "%s: record %llu: interface %d: at most %d interfaces are "
                      "supported per file", r->path, (unsigned long long)r->recno, rec->ifid,
                      CAP_MAX_IFACES);
    rec->sec = (uint32_t)h->ts.tv_sec;
    rec->frac = (uint32_t)h->ts.tv_usec;
    rec->caplen = h->caplen;
    rec->len = h->len;
    rec->data = data;
    return 1;
}

static int close_all(cap_pw_t **pw, int n, int rc, char *err)
{
    char e2[RW_ERRSZ];
    for (int i = 0; i < n; i++) {
        if (!pw[i])
            continue;
        int r = cap_pw_close(pw[i], e2);
        if (r < 0 && rc == 0) {
            rc = r;
            memcpy(err, e2, RW_ERRSZ);
        }
    }
    return rc;
}

/* ---- read-ahead: libpcap reads on a thread of its own ----
 *
 * Reading (read(), libpcap's record checks, the copy out of the page cache)
 * is a third to a half of an import's work, and the writer blocks in
 * fdatasync() whenever it seals a segment. A second thread reads records
 * into a small ring of blocks (2 MiB) while the importing thread parses,
 * indexes and writes, so on two cores the two overlap and a sync no longer
 * stops the reading. Records reach cap_pw_add() in file order as before. */
#define RA_SLOTS 8
#define RA_BLOCK (256u << 10) /* bytes of records per block (a larger record still fits) */

struct ra_hdr {
    uint32_t sec, frac, caplen, len;
    int32_t ifid, pad;
};

struct ra_block {
    uint8_t *buf;
    size_t cap, len;
    uint64_t pos; /* file position after the block's records, for progress */
    int end;      /* the block ends the file: 0 at EOF, <0 an error (in err) */
    int last;
    char err[RW_ERRSZ];
};

struct readahead {
    cap_reader_t *r;
    pthread_t th;
    pthread_mutex_t mu;
    pthread_cond_t filled, emptied;
    unsigned head, tail; /* blocks head..tail-1 are ready */
    int stop;            /* the importer gave up */
    int rd_waits, im_waits; /* who sleeps: wake only that one, in batches */
    struct ra_block blk[RA_SLOTS];
};

static int ra_fill(struct readahead *ra, struct ra_block *b)
{
    struct cap_rec rec;
    b->len = 0;
    b->last = 0;
    while (b->len < RA_BLOCK) {
        int rc = cap_reader_next(ra->r, &rec, b->err);
        if (rc != 1) {
            b->last = 1;
            b->end = rc;
            break;
        }
        size_t need = (sizeof(struct ra_hdr) + rec.caplen + 7) & ~(size_t)7;
        if (b->len + need > b->cap) {
            size_t ncap = b->len + need > RA_BLOCK + 8 ? b->len + need : RA_BLOCK + 8;
            uint8_t *nb = realloc(b->buf, ncap + (size_t)(1u << 16));
            if (!nb) {
                b->last = 1;
                b->end = rw_err(b->err, RW_ENOMEM, "out of memory");
                break;
            }
            b->buf = nb;
            b->cap = ncap + (size_t)(1u << 16);
        }
        struct ra_hdr h = {rec.sec, rec.frac, rec.caplen, rec.len, rec.ifid, 0};
        memcpy(b->buf + b->len, &h, sizeof h);
        if (rec.caplen)
            memcpy(b->buf + b->len + sizeof h, rec.data, rec.caplen);
        b->len += need;
    }
    uint64_t total;
    b->pos = cap_reader_pos(ra->r, &total);
    return b->last;
}

static void *ra_main(void *arg)
{
    struct readahead *ra = arg;
    for (int last = 0; !last;) {
        pthread_mutex_lock(&ra->mu);
        while (ra->tail - ra->head == RA_SLOTS && !ra->stop) {
            ra->rd_waits = 1;
            pthread_cond_wait(&ra->emptied, &ra->mu);
        }
        int stop = ra->stop;
        struct ra_block *b = &ra->blk[ra->tail % RA_SLOTS];
        pthread_mutex_unlock(&ra->mu);
        if (stop)
            break;
        last = ra_fill(ra, b);
        pthread_mutex_lock(&ra->mu);
        ra->tail++;
        if (ra->im_waits) {
            ra->im_waits = 0;
            pthread_cond_signal(&ra->filled);
        }
        pthread_mutex_unlock(&ra->mu);
    }
    return NULL;
}

static struct ra_block *ra_take(struct readahead *ra)
{
    pthread_mutex_lock(&ra->mu);
    while (ra->tail == ra->head) {
        ra->im_waits = 1;
        pthread_cond_wait(&ra->filled, &ra->mu);
    }
    struct ra_block *b = &ra->blk[ra->head % RA_SLOTS];
    pthread_mutex_unlock(&ra->mu);
    return b;
}

static void ra_release(struct readahead *ra)
{
    pthread_mutex_lock(&ra->mu);
    ra->head++;
    /* Let the reader sleep until half the ring is free: it then refills it
     * in one go instead of waking for every block. */
    if (ra->rd_waits && ra->tail - ra->head <= RA_SLOTS / 2) {
        ra->rd_waits = 0;
        pthread_cond_signal(&ra->emptied);
    }
    pthread_mutex_unlock(&ra->mu);
}

static void ra_stop(struct readahead *ra)
{
    pthread_mutex_lock(&ra->mu);
    ra->stop = 1;
    pthread_cond_signal(&ra->emptied);
    pthread_mutex_unlock(&ra->mu);
    pthread_join(ra->th, NULL);
    for (int i = 0; i < RA_SLOTS; i++)
        free(ra->blk[i].buf);
    pthread_mutex_destroy(&ra->mu);
    pthread_cond_destroy(&ra->filled);
    pthread_cond_destroy(&ra->emptied);
}

int cap_import_file(cap_arch_t *a, const char *path, const char *label, const char *point,
                    cap_progress_fn progress, void *parg, struct cap_import_stats *st, char *err)
{
    cap_pw_t *pw[CAP_MAX_IFACES] = {0};
    cap_reader_t *r;
    struct readahead *ra;
    int rc, nw = 0;
    int64_t last_prog = 0;
    memset(st, 0, sizeof *st);
    if (!label)
        label = path;
    if ((rc = reader_open(path, label, &r, err)) < 0)
        return rc;
    if (!(ra = calloc(1, sizeof *ra))) {
        cap_reader_close(r);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    ra->r = r;
    pthread_mutex_init(&ra->mu, NULL);
    pthread_cond_init(&ra->filled, NULL);
    pthread_cond_init(&ra->emptied, NULL);
    if ((errno = pthread_create(&ra->th, NULL, ra_main, ra)) != 0) {
        rc = rw_err(err, RW_EIO, "starting the reader thread: %s", strerror(errno));
        pthread_mutex_destroy(&ra->mu);
        pthread_cond_destroy(&ra->filled);
        pthread_cond_destroy(&ra->emptied);
        free(ra);
        cap_reader_close(r);
        return rc;
    }
    int dlt = cap_reader_dlt(r);
    uint32_t snap = cap_reader_snaplen(r);
    for (int done = 0; !done;) {
        struct ra_block *b = ra_take(ra);
        for (size_t off = 0; off < b->len && rc >= 0;) {
            struct ra_hdr h;
            memcpy(&h, b->buf + off, sizeof h);
            const uint8_t *data = b->buf + off + sizeof h;
            off += (sizeof h + h.caplen + 7) & ~(size_t)7;
            int i = h.ifid;
            if (!pw[i]) {
                char name[80];
                if (i == 0)
                    snprintf(name, sizeof name, "%s", point);
                else
                    snprintf(name, sizeof name, "%s-if%d", point, i);
                if ((rc = cap_pw_open(a, name, dlt, snap, &pw[i], err)) < 0)
                    break;
                if (i + 1 > nw)
                    nw = i + 1;
                st->points++;
            }
            if ((rc = cap_pw_add(pw[i], h.sec, h.frac, h.caplen, h.len, data, err)) < 0) {
                rw_errctx(err, rc, "%s: record %llu", label, (unsigned long long)st->packets + 1);
                break;
            }
            st->packets++;
            st->bytes += h.caplen;
            if (progress && (st->packets & 4095) == 0) {
                int64_t now = rw_mono_ns();
                if (now - last_prog > RW_NS_PER_SEC / 4) {
                    progress(parg, label, b->pos, r->total, st->packets);
                    last_prog = now;
                }
            }
        }
        if (rc >= 0 && b->last) {
            rc = b->end;
            if (rc < 0)
                memcpy(err, b->err, RW_ERRSZ);
        }
        done = rc < 0 || b->last;
        ra_release(ra);
    }
    ra_stop(ra);
    free(ra);
    rc = close_all(pw, nw, rc < 0 ? rc : 0, err);
    if (progress) {
        uint64_t total;
        cap_reader_pos(r, &total);
        progress(parg, label, total, total, st->packets);
    }
    cap_reader_close(r);
    return rc;
}
