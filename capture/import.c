/* import.c -- ingest pcap and pcapng files into capture points.
 *
 * libpcap reads the records (byte order, pcapng options, per-interface time
 * resolution, its own sanity checks). It does not say which pcapng
 * interface a packet came from, so a small walker follows the same bytes'
 * block structure in step and names the interface of each packet block.
 * libpcap reads the file through a stdio stream of ours that keeps a copy
 * of what passes for the walker: the file is read once, and a pipe or
 * standard input has its interfaces told apart as a regular file does. */
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
#include <unistd.h>

#define STREAM_BUF (256u << 10) /* stdio buffer of the stream libpcap reads */
#define NG_SHB 0x0A0D0D0Au

/* ---- pcapng block walker (interface id of each packet block) ----
 *
 * libpcap returns a packet only once it has read the packet's whole block,
 * so when the walker looks for that packet's block, it and every block
 * before it are in the copy. What the walker has passed is dropped: the
 * copy holds about one stdio buffer and one block, whatever the file size. */
struct ngwalk {
    int on;       /* keeping a copy: until the file is known not to be pcapng */
    uint8_t *buf; /* bytes read but not yet walked: buf[off, len) */
    size_t off, len, cap;
    int swap;
    int base; /* interfaces of earlier sections */
    int nif;  /* interfaces of this section */
};

static uint32_t ng32(const struct ngwalk *w, const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return w->swap ? __builtin_bswap32(v) : v;
}

static void ngwalk_stop(struct ngwalk *w)
{
    free(w->buf);
    memset(w, 0, sizeof *w);
}

/* Append n bytes that libpcap is about to read. */
static int ngwalk_keep(struct ngwalk *w, const void *data, size_t n)
{
    if (w->off) {
        memmove(w->buf, w->buf + w->off, w->len - w->off);
        w->len -= w->off;
        w->off = 0;
    }
    if (w->len + n > w->cap) {
        size_t nc = w->cap ? w->cap * 2 : 2 * STREAM_BUF;
        while (nc < w->len + n)
            nc *= 2;
        uint8_t *nb = realloc(w->buf, nc);
        if (!nb)
            return -1;
        w->buf = nb;
        w->cap = nc;
    }
    memcpy(w->buf + w->len, data, n);
    w->len += n;
    return 0;
}

/* Next packet block's interface index across sections: 1, 0 when the copy
 * ends before it, -1 for a block shorter than a block header. Reads only
 * inside the blocks it has whole in the copy. */
static int ngwalk_next(struct ngwalk *w, int *ifid)
{
    for (;;) {
        const uint8_t *h = w->buf + w->off;
        size_t avail = w->len - w->off;
        uint32_t type, len;
        if (avail < 12)
            return 0;
        memcpy(&type, h, 4);
        if (type == NG_SHB) { /* byte order from its magic */
            uint32_t magic;
            memcpy(&magic, h + 8, 4);
            w->swap = magic != 0x1A2B3C4D;
            w->base += w->nif;
            w->nif = 0;
        } else {
            type = ng32(w, h);
        }
        len = ng32(w, h + 4);
        if (len < 12)
            return -1;
        if (len > avail)
            return 0;
        w->off += len;
        if (type == 1) { /* IDB */
            w->nif++;
        } else if (type == 6 || type == 2 || type == 3) { /* EPB, obsolete PB, SPB */
            uint32_t id = 0;
            if (type == 6) {
                id = ng32(w, h + 8);
            } else if (type == 2) {
                uint16_t v;
                memcpy(&v, h + 8, 2);
                id = w->swap ? __builtin_bswap16(v) : v;
            }
            /* beyond the supported interfaces: the caller refuses the record */
            *ifid = id < CAP_MAX_IFACES && w->base < CAP_MAX_IFACES ? w->base + (int)id
                                                                    : CAP_MAX_IFACES;
            return 1;
        }
    }
}

struct cap_reader {
    pcap_t *p;
    int fd;     /* the input, read by libpcap through our stream */
    int own_fd; /* 0 for standard input, which is not ours to close */
    struct ngwalk ng;
    char path[1024];
    uint64_t recno, total, pos;
};

/* Read function of the stream libpcap reads: the input's bytes, a copy of
 * them kept for the walker. */
static ssize_t stream_read(void *cookie, char *buf, size_t n)
{
    cap_reader_t *r = cookie;
    ssize_t got;
    do
        got = read(r->fd, buf, n);
    while (got < 0 && errno == EINTR);
    if (got <= 0)
        return got;
    r->pos += (uint64_t)got;
    if (r->ng.on && ngwalk_keep(&r->ng, buf, (size_t)got) < 0) {
        errno = ENOMEM; /* libpcap reports a read error with this reason */
        return -1;
    }
    return got;
}

static int stream_close(void *cookie)
{
    cap_reader_t *r = cookie;
    if (r->own_fd && r->fd >= 0)
        close(r->fd);
    r->fd = -1;
    return 0;
}

/* ---- header checks libpcap leaves to its callers ---- */

/* Magic numbers of the pcap (not pcapng) formats libpcap reads: microsecond,
 * nanosecond, and Kuznetzov's modified format (pcap-savefile(5)). */
static int pcap_magic(uint32_t m)
{
    return m == 0xA1B2C3D4u || m == 0xA1B23C4Du || m == 0xA1B2CD34u;
}

/* The link-type field of a pcap file header, bytes 20-23 in the file's byte
 * order (pcap-savefile(5) of libpcap 1.10.5 and later; draft-ietf-opsawg-pcap,
 * "File Header"): bits 31-28 FCS len, 27 R, 26 P, 25-16 Reserved3, 15-0 the
 * link-layer type. Reserved3 must be zero, and a reader should treat any
 * other value as an error. libpcap 1.10.3 masks only the top six bits, so
 * Reserved3 ends up in the link type, which tcpdump then refuses as unknown;
 * later libpcap refuses the header itself. We read the field ourselves to
 * refuse it under either, naming the field. FCS len, P and R describe the
 * frames or are unused: libpcap and tcpdump take them, and so do we. */
#define PCAP_LT_RESERVED3 0x03FF0000u

static int check_pcap_linktype_field(const cap_reader_t *r, char *err)
{
    uint32_t magic, lt;
    if (r->ng.len < 24) /* libpcap read the 24-byte header through our copy */
        return 0;
    memcpy(&magic, r->ng.buf, 4);
    memcpy(&lt, r->ng.buf + 20, 4);
    if (!pcap_magic(magic)) {
        if (!pcap_magic(__builtin_bswap32(magic)))
            return 0; /* pcapng: an IDB's link type has 16 bits and no flags */
        lt = __builtin_bswap32(lt);
    }
    if (lt & PCAP_LT_RESERVED3)
        return rw_err(err, RW_EINPUT,
                      "%s: file header: link-type field 0x%08x has reserved bits 0x%08x set "
                      "(Reserved3, bits 16-25, must be zero)",
                      r->path, lt, lt & PCAP_LT_RESERVED3);
    return 0;
}

/* tcpdump compiles its filter for the file's link type before it reads a
 * packet, an empty filter too, and refuses a link type libpcap's compiler
 * does not know ("unknown data link type 999"). So do we, with the same
 * call on the same handle: a point of such a link type could not be
 * queried like tcpdump either. pcap_compile() is thread-safe since libpcap
 * 1.8.0 (its ChangeLog), so a daemon's imports need not share the query's
 * lock. */
static int check_linktype_known(cap_reader_t *r, char *err)
{
    struct bpf_program prog;
    if (pcap_compile(r->p, &prog, "", 1, PCAP_NETMASK_UNKNOWN) < 0)
        return rw_err(err, RW_EINPUT, "%s: file header: link type %d: %s", r->path,
                      pcap_datalink(r->p), pcap_geterr(r->p));
    pcap_freecode(&prog);
    return 0;
}

/* Open the capture file at path ("-": standard input) or, when fd >= 0, the
 * descriptor fd (borrowed, not closed). Either is read from where it
 * stands, as tcpdump -r - reads its standard input. */
static int reader_open(const char *path, int fd, const char *label, cap_reader_t **out,
                       char *err)
{
    char ebuf[PCAP_ERRBUF_SIZE];
    struct stat sb;
    cap_reader_t *r = calloc(1, sizeof *r);
    *out = NULL;
    if (!r)
        return rw_err(err, RW_ENOMEM, "out of memory");
    snprintf(r->path, sizeof r->path, "%s", label);
    r->own_fd = fd < 0 && strcmp(path, "-") != 0;
    r->fd = fd >= 0 ? fd : r->own_fd ? open(path, O_RDONLY | O_CLOEXEC) : STDIN_FILENO;
    if (fd >= 0 && (fcntl(fd, F_GETFL) & O_ACCMODE) == O_WRONLY) {
        free(r);
        return rw_err(err, RW_EINPUT, "%s: the descriptor is not open for reading", label);
    }
    if (r->fd < 0 || fstat(r->fd, &sb) < 0) {
        int e = errno;
        stream_close(r);
        free(r);
        return rw_err(err, RW_EINPUT, "%s: %s", label, strerror(e));
    }
    if (S_ISDIR(sb.st_mode)) {
        stream_close(r);
        free(r);
        return rw_err(err, RW_EINPUT, "%s: is a directory, not a capture file", label);
    }
    if (S_ISREG(sb.st_mode)) {
        off_t at = lseek(r->fd, 0, SEEK_CUR); /* standard input may start further on */
        r->total = (uint64_t)sb.st_size;
        r->pos = at > 0 ? (uint64_t)at : 0;
        posix_fadvise(r->fd, 0, 0, POSIX_FADV_SEQUENTIAL); /* read once, in order */
    }
    r->ng.on = 1; /* until the header says whether it is pcapng */
    FILE *f = fopencookie(r, "r", (cookie_io_functions_t){.read = stream_read,
                                                          .close = stream_close});
    if (!f || setvbuf(f, NULL, _IOFBF, STREAM_BUF) != 0) {
        if (f)
            fclose(f);
        else
            stream_close(r);
        free(r);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    /* One thread at a time reads it (import's read-ahead thread): no stdio
     * lock per fread(). */
    __fsetlocking(f, FSETLOCKING_BYCALLER);
    r->p = pcap_fopen_offline_with_tstamp_precision(f, PCAP_TSTAMP_PRECISION_NANO, ebuf);
    if (!r->p) {
        fclose(f); /* not closed by libpcap on failure */
        ngwalk_stop(&r->ng);
        free(r);
        return rw_err(err, RW_EINPUT, "%s: file header: %s", label, ebuf);
    }
    int rc;
    if ((rc = check_pcap_linktype_field(r, err)) < 0 || (rc = check_linktype_known(r, err)) < 0) {
        cap_reader_close(r);
        return rc;
    }
    uint32_t magic = 0;
    if (r->ng.len >= 4)
        memcpy(&magic, r->ng.buf, 4);
    if (magic != NG_SHB)
        ngwalk_stop(&r->ng); /* classic pcap: no interfaces to follow */
    *out = r;
    return 0;
}

int cap_reader_open(const char *path, cap_reader_t **out, char *err)
{
    return reader_open(path, -1, path, out, err);
}

int cap_reader_open_fd(int fd, const char *label, cap_reader_t **out, char *err)
{
    return reader_open(label, fd, label, out, err);
}

void cap_reader_close(cap_reader_t *r)
{
    if (!r)
        return;
    if (r->p)
        pcap_close(r->p); /* closes our stream, and with it the input */
    ngwalk_stop(&r->ng);
    free(r);
}

int cap_reader_dlt(const cap_reader_t *r) { return pcap_datalink(r->p); }
uint32_t cap_reader_snaplen(const cap_reader_t *r) { return (uint32_t)pcap_snapshot(r->p); }
uint64_t cap_reader_records(const cap_reader_t *r) { return r->recno; }

uint64_t cap_reader_pos(const cap_reader_t *r, uint64_t *total)
{
    *total = r->total;
    return r->pos; /* read from the input: ahead of libpcap by a buffer at most */
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
    if (r->ng.on && ngwalk_next(&r->ng, &rec->ifid) != 1) {
        /* libpcap accepted a block the walker cannot follow: trust libpcap,
         * and give this packet and the rest of the file interface 0 */
        rec->ifid = 0;
        ngwalk_stop(&r->ng);
    }
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

static int close_all(arc_pw_t **pw, int n, int rc, char *err)
{
    char e2[RW_ERRSZ];
    for (int i = 0; i < n; i++) {
        if (!pw[i])
            continue;
        int r = arc_pw_close(pw[i], e2);
        if (r < 0 && rc == 0) {
            rc = r;
            memcpy(err, e2, RW_ERRSZ);
        }
    }
    return rc;
}

/* A write into the archive failed (arc_pw_add has cut back what was not
 * committed): say where, what is kept, and what to do. */
static void failed_write(arc_t *a, arc_pw_t **pw, int n, const char *label, uint64_t recno,
                         int rc, char *err)
{
    char e2[RW_ERRSZ];
    uint64_t kept = 0;
    for (int i = 0; i < n; i++)
        if (pw[i])
            kept += arc_pw_packets(pw[i]);
    memcpy(e2, err, RW_ERRSZ);
    if (rc == RW_ENOSPC)
        rw_err(err, rc,
               "%s: record %llu: archive %s is full (%s); the %llu packets of this file committed "
               "before it are kept; free space there or set --quota",
               label, (unsigned long long)recno, arc_dir(a), e2, (unsigned long long)kept);
    else
        rw_err(err, rc,
               "%s: record %llu: writing archive %s: %s; the %llu packets of this file committed "
               "before it are kept",
               label, (unsigned long long)recno, arc_dir(a), e2, (unsigned long long)kept);
}

/* ---- read-ahead: libpcap reads on a thread of its own ----
 *
 * Reading (read(), libpcap's record checks, the copy out of the page cache)
 * is a third to a half of an import's work, and the writer blocks in
 * fdatasync() whenever it seals a segment. A second thread reads records
 * into a small ring of blocks (2 MiB) while the importing thread parses,
 * indexes and writes, so on two cores the two overlap and a sync no longer
 * stops the reading. Records reach arc_pw_add() in file order as before. */
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

/* cap_import_file() and cap_import_fd(): path, or fd when fd >= 0. */
static int import_input(arc_t *a, const char *path, int fd, const char *label,
                        const char *point, cap_progress_fn progress, void *parg,
                        struct cap_import_stats *st, char *err)
{
    arc_pw_t *pw[CAP_MAX_IFACES] = {0};
    cap_reader_t *r;
    struct readahead *ra;
    int rc, nw = 0;
    int64_t last_prog = 0;
    memset(st, 0, sizeof *st);
    if ((rc = reader_open(path, fd, label, &r, err)) < 0)
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
                if ((rc = arc_pw_open(a, name, dlt, snap, &pw[i], err)) < 0)
                    break;
                if (i + 1 > nw)
                    nw = i + 1;
                st->points++;
            }
            if ((rc = arc_pw_add(pw[i], h.sec, h.frac, h.caplen, h.len, data, err)) < 0) {
                failed_write(a, pw, nw, label, st->packets + 1, rc, err);
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
    /* Which segments this file went into, to tell afterwards what of it
     * retention deleted at once (old captures under a small quota). */
    char names[CAP_MAX_IFACES][80];
    uint64_t firsts[CAP_MAX_IFACES] = {0};
    for (int i = 0; i < nw; i++) {
        if (pw[i] && (firsts[i] = arc_pw_first_segment(pw[i])))
            snprintf(names[i], sizeof names[i], "%s", arc_pw_name(pw[i]));
    }
    rc = close_all(pw, nw, rc < 0 ? rc : 0, err);
    for (int i = 0; i < nw && rc == 0; i++) {
        uint64_t kept = 0;
        if (firsts[i] && arc_packets_since(a, names[i], firsts[i], &kept, err) == 0)
            st->kept += kept;
    }
    st->removed = rc == 0 && st->kept < st->packets ? st->packets - st->kept : 0;
    if (progress) {
        uint64_t total;
        cap_reader_pos(r, &total);
        progress(parg, label, total, total, st->packets);
    }
    cap_reader_close(r);
    return rc;
}

int cap_import_file(arc_t *a, const char *path, const char *label, const char *point,
                    cap_progress_fn progress, void *parg, struct cap_import_stats *st, char *err)
{
    return import_input(a, path, -1, label ? label : path, point, progress, parg, st, err);
}

int cap_import_fd(arc_t *a, int fd, const char *label, const char *point,
                  cap_progress_fn progress, void *parg, struct cap_import_stats *st, char *err)
{
    return import_input(a, NULL, fd, label, point, progress, parg, st, err);
}
