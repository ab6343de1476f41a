/* segfile.c -- plain and lz4-compressed segment files (see segfile.h).
 *
 * Layout of NAME.pcap.lz4 (all integers little-endian, as LZ4's own are):
 *
 *   LZ4 frame   header (64 KiB max block, independent blocks, content size,
 *               content checksum), one data block per 64 KiB of pcap bytes,
 *               end mark, content checksum
 *   skippable   magic 0x184D2A52, u32 payload length, payload:
 *               u64 offset[n + 1]  file offset of each block's 4-byte header;
 *                                  offset[n] is the end mark's
 *               u64 pcap_size, u32 block_size, u32 n, u32 version (1), "RWZT"
 *
 * Block i holds pcap bytes [i * block_size, min((i + 1) * block_size,
 * pcap_size)), so a reader finds the blocks of any byte range from the
 * table alone and decompresses only those. */
#include "archive/segfile.h"

#include <errno.h>
#include <fcntl.h>
#include <lz4.h>
#include <lz4frame.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SKIP_MAGIC 0x184D2A52u
#define LZ4_MAGIC 0x184D2204u
#define FOOTER 24
#define PLAIN_AHEAD (256u << 10) /* read-ahead of plain files, at most */
#define PLAIN_MIN (16u << 10)    /* ... and after a jump */
#define PLAIN_SPARSE 4096u       /* ... and after a window mostly skipped */

struct segf {
    int fd, lz;
    uint32_t bcs;    /* 4: every block is followed by its XXH32 (frame flag), else 0 */
    uint64_t size;   /* pcap bytes */
    uint64_t stored; /* file bytes */
    char path[1024];
    /* compressed: block table */
    uint64_t *boff;
    uint32_t nblocks, bsize;
    /* what is at buf: pcap bytes [base, base + len) */
    uint8_t *buf;
    size_t cap, len, win; /* win: plain read-ahead, adapts to the pattern */
    size_t used;          /* bytes of [base, base + len) asked for (plain) */
    uint64_t base;
    uint8_t *cbuf; /* compressed bytes being decoded */
    size_t ccap;
    /* the last damage a read met (segf_fault); faulted: the last read failed
     * because of it */
    struct segf_fault bad;
    int faulted;
};

static uint32_t get32le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t get64le(const uint8_t *p) { return get32le(p) | (uint64_t)get32le(p + 4) << 32; }

static void put32le(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void put64le(uint8_t *p, uint64_t v)
{
    put32le(p, (uint32_t)v);
    put32le(p + 4, (uint32_t)(v >> 32));
}

/* XXH32 (xxhash.com, the checksum of LZ4 frames), for the block checksums
 * that LZ4F writes: liblz4 does not export it under its own name. */
static uint32_t rotl32(uint32_t x, int r) { return x << r | x >> (32 - r); }

/* A little-endian u32 at p, as one load (get32le's shifts are not always
 * merged into one, and this runs over every byte a query decompresses). */
static uint32_t load32le(const uint8_t *p)
{
    uint32_t v;
    memcpy(&v, p, 4);
    return __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__ ? v : __builtin_bswap32(v);
}

static uint32_t xxh32(const uint8_t *p, size_t n, uint32_t seed)
{
    static const uint32_t P1 = 0x9E3779B1u, P2 = 0x85EBCA77u, P3 = 0xC2B2AE3Du,
                          P4 = 0x27D4EB2Fu, P5 = 0x165667B1u;
    const uint8_t *end = p + n;
    uint32_t h;
    if (n >= 16) {
        uint32_t v1 = seed + P1 + P2, v2 = seed + P2, v3 = seed, v4 = seed - P1;
        for (; end - p >= 16; p += 16) {
            v1 = rotl32(v1 + load32le(p) * P2, 13) * P1;
            v2 = rotl32(v2 + load32le(p + 4) * P2, 13) * P1;
            v3 = rotl32(v3 + load32le(p + 8) * P2, 13) * P1;
            v4 = rotl32(v4 + load32le(p + 12) * P2, 13) * P1;
        }
        h = rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18);
    } else {
        h = seed + P5;
    }
    h += (uint32_t)n;
    for (; end - p >= 4; p += 4)
        h = rotl32(h + load32le(p) * P3, 17) * P4;
    for (; p < end; p++)
        h = rotl32(h + *p * P5, 11) * P1;
    h ^= h >> 15;
    h *= P2;
    h ^= h >> 13;
    h *= P3;
    return h ^ (h >> 16);
}

static int pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0)
            return -1;
        if (r == 0)
            break;
        got += (size_t)r;
    }
    return (int)(got == n);
}

static int grow(uint8_t **p, size_t *cap, size_t want)
{
    if (want <= *cap)
        return 0;
    uint8_t *nb = realloc(*p, want);
    if (!nb)
        return -1;
    *p = nb;
    *cap = want;
    return 0;
}

/* Read and check the block table of a compressed segment. */
static int load_table(segf_t *f, char *err)
{
    uint8_t ft[FOOTER], sk[8], flg;
    /* The frame descriptor's FLG byte says whether blocks carry a checksum:
     * segments compressed before rewind wrote them do not. */
    if (pread_full(f->fd, &flg, 1, 4) != 1 || (flg & 0xc0) != 0x40)
        return rw_err(err, RW_ECORRUPT, "segment %s: compressed, but its frame header is damaged",
                      f->path);
    f->bcs = flg & 0x10 ? 4 : 0;
    if (f->stored < 8 + FOOTER || pread_full(f->fd, ft, FOOTER, f->stored - FOOTER) != 1 ||
        memcmp(ft + 20, "RWZT", 4) != 0)
        return rw_err(err, RW_ECORRUPT, "segment %s: compressed, but its block table is missing",
                      f->path);
    f->size = get64le(ft);
    f->bsize = get32le(ft + 8);
    f->nblocks = get32le(ft + 12);
    uint32_t ver = get32le(ft + 16);
    uint64_t tbytes = 8ULL * (f->nblocks + 1ULL);
    if (ver != 1 || f->bsize == 0 || f->bsize > (4u << 20) || f->size == 0 ||
        (f->size + f->bsize - 1) / f->bsize != f->nblocks || tbytes + FOOTER + 8 > f->stored)
        return rw_err(err, RW_ECORRUPT, "segment %s: block table header is damaged", f->path);
    uint64_t tstart = f->stored - FOOTER - tbytes;
    if (pread_full(f->fd, sk, 8, tstart - 8) != 1 || get32le(sk) != SKIP_MAGIC ||
        get32le(sk + 4) != tbytes + FOOTER)
        return rw_err(err, RW_ECORRUPT, "segment %s: block table frame is damaged", f->path);
    uint8_t *raw = malloc(tbytes);
    if (!(f->boff = malloc(tbytes)) || !raw) {
        free(raw);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    if (pread_full(f->fd, raw, tbytes, tstart) != 1) {
        free(raw);
        return rw_err(err, RW_ECORRUPT, "segment %s: block table is short", f->path);
    }
    for (uint32_t i = 0; i <= f->nblocks; i++)
        f->boff[i] = get64le(raw + 8ULL * i);
    free(raw);
    /* Offsets rise, each block fits its 4-byte header (and checksum), and
     * the end mark and content checksum (8 bytes) sit before the table's
     * frame. */
    for (uint32_t i = 0; i < f->nblocks; i++)
        if (f->boff[i + 1] < f->boff[i] + 4 + f->bcs ||
            f->boff[i + 1] - f->boff[i] - 4 - f->bcs > f->bsize)
            return rw_err(err, RW_ECORRUPT, "segment %s: block table entry %u is damaged",
                          f->path, i);
    if (f->boff[0] < 7 || f->boff[f->nblocks] + 8 > tstart - 8)
        return rw_err(err, RW_ECORRUPT, "segment %s: block table does not fit the file", f->path);
    return 0;
}

int segf_open(const char *path, segf_t **out, char *err)
{
    segf_t *f = calloc(1, sizeof *f);
    struct stat st;
    uint8_t magic[4];
    int rc;
    if (!f)
        return rw_err(err, RW_ENOMEM, "out of memory");
    snprintf(f->path, sizeof f->path, "%s", path);
    if ((f->fd = open(path, O_RDONLY | O_CLOEXEC)) < 0) {
        int e = errno;
        free(f);
        rc = rw_err(err, RW_EIO, "segment %s: %s", path, strerror(e));
        errno = e;
        return rc;
    }
    if (fstat(f->fd, &st) < 0 || pread_full(f->fd, magic, 4, 0) != 1) {
        rc = rw_err(err, RW_ECORRUPT, "segment %s: shorter than a file header", path);
        goto fail;
    }
    f->stored = (uint64_t)st.st_size;
    f->lz = get32le(magic) == LZ4_MAGIC;
    if (f->lz) {
        if ((rc = load_table(f, err)) < 0)
            goto fail;
    } else {
        f->size = f->stored;
        posix_fadvise(f->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
    }
    *out = f;
    return 0;
fail:
    segf_close(f);
    return rc;
}

void segf_close(segf_t *f)
{
    if (!f)
        return;
    if (f->fd >= 0)
        close(f->fd);
    free(f->boff);
    free(f->buf);
    free(f->cbuf);
    free(f);
}

int segf_compressed(const segf_t *f) { return f->lz; }
uint64_t segf_size(const segf_t *f) { return f->size; }

static int read_plain(segf_t *f, uint64_t off, size_t need, char *err)
{
    /* The window grows while reads come close after the last one (port and
     * net queries read most of a segment) and falls back after a jump: a
     * needle's few packets then cost a page or four each instead of 256 KiB
     * copied (and, the first time, faulted in). */
    uint64_t end = f->base + f->len;
    if (!f->len || off < f->base)
        f->win = PLAIN_MIN; /* first read, or back to an earlier offset */
    else if (off < end)
        ; /* a record that runs past the window: same pace */
    else if (f->used * 16 < f->len) /* most of the window was skipped */
        f->win = f->win / 2 > PLAIN_SPARSE ? f->win / 2 : PLAIN_SPARSE;
    else if (off - end < f->win)
        f->win = f->win * 2 < PLAIN_AHEAD ? f->win * 2 : PLAIN_AHEAD;
    else if (off - end >= 8 * (uint64_t)f->win)
        f->win = f->win / 2 > PLAIN_MIN ? f->win / 2 : PLAIN_MIN;
    size_t want = need > f->win ? need : f->win;
    if (grow(&f->buf, &f->cap, want) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    ssize_t got;
    do
        got = pread(f->fd, f->buf, want, (off_t)off);
    while (got < 0 && errno == EINTR);
    if (got < 0) {
        f->len = 0;
        return rw_err(err, RW_EIO, "segment %s: read at %llu: %s", f->path,
                      (unsigned long long)off, strerror(errno));
    }
    f->base = off;
    f->len = (size_t)got;
    f->used = 0;
    return 0;
}

/* Record damage at pcap bytes [lo, hi) (block: the first block it lies in)
 * as what the failing read met; the error names it. */
static int fault(segf_t *f, uint64_t lo, uint64_t hi, const char *why, char *err)
{
    if (why != f->bad.why) /* not the same fault met again */
        snprintf(f->bad.why, sizeof f->bad.why, "%s", why);
    f->bad.lo = lo;
    f->bad.hi = hi;
    f->bad.block = (uint32_t)(lo / SEGF_BLOCK);
    f->faulted = 1;
    f->len = 0; /* a failed decode may have written over the buffer */
    if (f->lz && lo < f->size)
        return rw_err(err, RW_ECORRUPT, "segment %s: block %u %s; run 'rewind verify'", f->path,
                      f->bad.block, why);
    return rw_err(err, RW_ECORRUPT, "segment %s: bytes %llu-%llu %s; run 'rewind verify'",
                  f->path, (unsigned long long)lo, (unsigned long long)hi, why);
}

/* Pcap bytes of block b. */
static uint64_t block_end(const segf_t *f, uint32_t b)
{
    uint64_t e = ((uint64_t)b + 1) * f->bsize;
    return e < f->size ? e : f->size;
}

/* Decode blocks b0..b1 (inclusive) into buf. Blocks from b0 on that are in
 * the buffer already are kept, not decoded again: a sequential reader
 * (verify, reindex) whose record runs into the next block decodes each
 * block once. */
static int read_blocks(segf_t *f, uint32_t b0, uint32_t b1, char *err)
{
    uint32_t have0 = (uint32_t)(f->base / f->bsize), first = b0;
    uint32_t haveN = have0 + (uint32_t)((f->len + f->bsize - 1) / f->bsize); /* [have0, haveN) */
    size_t n = (size_t)(b1 - b0 + 1) * f->bsize, out = 0;
    if (grow(&f->buf, &f->cap, n) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if (f->len && b0 >= have0 && b0 < haveN) {
        first = haveN - 1 < b1 ? haveN : b1 + 1;
        out = (size_t)(block_end(f, first - 1) - (uint64_t)b0 * f->bsize);
        memmove(f->buf, f->buf + ((uint64_t)b0 * f->bsize - f->base), out);
    }
    f->base = (uint64_t)b0 * f->bsize;
    f->len = out;
    if (first > b1)
        return 0;
    uint64_t c0 = f->boff[first], c1 = f->boff[b1 + 1];
    if (grow(&f->cbuf, &f->ccap, (size_t)(c1 - c0)) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    int r = pread_full(f->fd, f->cbuf, (size_t)(c1 - c0), c0);
    if (r < 0) {
        f->len = 0;
        return rw_err(err, RW_EIO, "segment %s: read at %llu: %s", f->path,
                      (unsigned long long)c0, strerror(errno));
    }
    if (r == 0)
        return fault(f, (uint64_t)first * f->bsize, f->size, "is cut short: the file ends early",
                     err);
    for (uint32_t b = first; b <= b1; b++) {
        const uint8_t *blk = f->cbuf + (f->boff[b] - c0);
        uint32_t hdr = get32le(blk), clen = hdr & 0x7fffffffu;
        int ulen = (int)(block_end(f, b) - (uint64_t)b * f->bsize);
        const char *why = NULL;
        if (clen != f->boff[b + 1] - f->boff[b] - 4 - f->bcs)
            why = "has a size that disagrees with the block table";
        else if (f->bcs && xxh32(blk + 4, clen, 0) != get32le(blk + 4 + clen))
            why = "fails its checksum";
        else if (hdr & 0x80000000u) { /* stored uncompressed */
            if ((int)clen != ulen)
                why = "has the wrong size";
            else
                memcpy(f->buf + out, blk + 4, clen);
        } else if (LZ4_decompress_safe((const char *)blk + 4, (char *)f->buf + out, (int)clen,
                                       ulen) != ulen) {
            why = "does not decompress";
        }
        if (why)
            return fault(f, (uint64_t)b * f->bsize, block_end(f, b), why, err);
        out += (size_t)ulen;
    }
    f->len = out;
    return 0;
}

int segf_read(segf_t *f, uint64_t off, size_t need, const uint8_t **p, size_t *avail, char *err)
{
    int rc;
    f->faulted = 0;
    if (need == 0)
        need = 1;
    if (!(off >= f->base && off + need <= f->base + f->len)) {
        if (off + need > f->size)
            return fault(f, f->size > off ? f->size : off, off + need,
                         "are missing: the file ends before them", err);
        /* A block found damaged before fails again at once, without being
         * read and decoded once for each packet a query wants from it. */
        if (f->bad.hi > f->bad.lo && off < f->bad.hi && off + need > f->bad.lo)
            return fault(f, f->bad.lo, f->bad.hi, f->bad.why, err);
        if (f->lz)
            rc = read_blocks(f, (uint32_t)(off / f->bsize), (uint32_t)((off + need - 1) / f->bsize),
                             err);
        else
            rc = read_plain(f, off, need, err);
        if (rc < 0)
            return rc;
        if (off + need > f->base + f->len) /* a plain file shorter than when opened */
            return fault(f, f->base + f->len, off + need, "are missing: the file ends before them",
                         err);
    }
    *p = f->buf + (off - f->base);
    f->used += need;
    if (avail)
        *avail = (size_t)(f->base + f->len - off);
    return 0;
}

int segf_fault(const segf_t *f, struct segf_fault *out)
{
    if (!f->faulted)
        return 0;
    *out = f->bad;
    return 1;
}

int segf_block_checksums(const segf_t *f) { return f->bcs != 0; }

/* ---------- sequential stream ---------- */

struct zstream {
    int fd;
    LZ4F_dctx *dctx;
    uint8_t in[64 << 10];
    size_t in_len, in_pos;
    int done;
    char why[256];
};

static ssize_t zs_read(void *cookie, char *buf, size_t size)
{
    struct zstream *z = cookie;
    size_t out = 0;
    while (out < size && !z->done) {
        if (z->in_pos == z->in_len) {
            ssize_t r = read(z->fd, z->in, sizeof z->in);
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                snprintf(z->why, sizeof z->why, "read: %s", strerror(errno));
                errno = EIO;
                return -1;
            }
            if (r == 0) {
                snprintf(z->why, sizeof z->why, "compressed frame cut short");
                errno = EIO;
                return -1;
            }
            z->in_len = (size_t)r;
            z->in_pos = 0;
        }
        size_t dst = size - out, src = z->in_len - z->in_pos;
        size_t hint = LZ4F_decompress(z->dctx, buf + out, &dst, z->in + z->in_pos, &src, NULL);
        if (LZ4F_isError(hint)) {
            snprintf(z->why, sizeof z->why, "lz4: %s", LZ4F_getErrorName(hint));
            errno = EIO;
            return -1;
        }
        z->in_pos += src;
        out += dst;
        if (hint == 0) /* frame complete and its checksum verified */
            z->done = 1;
    }
    return (ssize_t)out;
}

static int zs_close(void *cookie)
{
    struct zstream *z = cookie;
    close(z->fd);
    LZ4F_freeDecompressionContext(z->dctx);
    free(z);
    return 0;
}

FILE *segf_stream(const char *path, const char **why, char *err)
{
    static const char none[] = "";
    uint8_t magic[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *why = none;
    if (fd < 0) {
        rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
        return NULL;
    }
    if (pread_full(fd, magic, 4, 0) != 1 || get32le(magic) != LZ4_MAGIC) {
        FILE *fp = fdopen(fd, "rb");
        if (!fp) {
            rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
            close(fd);
        }
        return fp;
    }
    struct zstream *z = calloc(1, sizeof *z);
    if (!z || LZ4F_isError(LZ4F_createDecompressionContext(&z->dctx, LZ4F_VERSION))) {
        free(z);
        close(fd);
        rw_err(err, RW_ENOMEM, "out of memory");
        return NULL;
    }
    z->fd = fd;
    cookie_io_functions_t io = {.read = zs_read, .close = zs_close};
    FILE *fp = fopencookie(z, "rb", io);
    if (!fp) {
        zs_close(z);
        rw_err(err, RW_ENOMEM, "out of memory");
        return NULL;
    }
    *why = z->why;
    return fp;
}

/* ---------- compressing ---------- */

int segf_compress(const char *src, const char *dst, uint64_t *stored, char *err)
{
    LZ4F_preferences_t prefs;
    LZ4F_cctx *cctx = NULL;
    uint8_t *in = NULL, *out = NULL, *tab = NULL;
    uint64_t *boff = NULL, pos = 0, size;
    size_t ocap, nblocks;
    struct stat st;
    int rc = 0, ifd = -1, ofd = -1;
    if ((ifd = open(src, O_RDONLY | O_CLOEXEC)) < 0 || fstat(ifd, &st) < 0) {
        rc = rw_err(err, RW_EIO, "%s: %s", src, strerror(errno));
        goto done;
    }
    size = (uint64_t)st.st_size;
    if (size == 0) {
        rc = rw_err(err, RW_ECORRUPT, "%s: empty segment", src);
        goto done;
    }
    nblocks = (size_t)((size + SEGF_BLOCK - 1) / SEGF_BLOCK);
    memset(&prefs, 0, sizeof prefs);
    prefs.frameInfo.blockSizeID = LZ4F_max64KB;
    prefs.frameInfo.blockMode = LZ4F_blockIndependent;
    prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
    /* A checksum per block, so that a reader tells a damaged block from its
     * neighbours, which stay readable (verify, queries, reindex). */
    prefs.frameInfo.blockChecksumFlag = LZ4F_blockChecksumEnabled;
    prefs.frameInfo.contentSize = size;
    prefs.autoFlush = 1; /* each update below becomes exactly one block */
    ocap = LZ4F_compressBound(SEGF_BLOCK, &prefs) + LZ4F_HEADER_SIZE_MAX;
    if (!(in = malloc(SEGF_BLOCK)) || !(out = malloc(ocap)) ||
        !(boff = malloc((nblocks + 1) * sizeof *boff)) ||
        LZ4F_isError(LZ4F_createCompressionContext(&cctx, LZ4F_VERSION))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    if ((ofd = open(dst, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
        rc = rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "%s: %s", dst, strerror(errno));
        goto done;
    }
    posix_fadvise(ifd, 0, 0, POSIX_FADV_SEQUENTIAL);
    size_t n = LZ4F_compressBegin(cctx, out, ocap, &prefs);
    if (LZ4F_isError(n))
        goto lz4fail;
    if (rw_write_all(ofd, out, n) < 0)
        goto wfail;
    pos = n;
    for (size_t b = 0; b < nblocks; b++) {
        uint64_t want64 = size - (uint64_t)b * SEGF_BLOCK;
        size_t want = want64 < SEGF_BLOCK ? (size_t)want64 : SEGF_BLOCK;
        int r = pread_full(ifd, in, want, (uint64_t)b * SEGF_BLOCK);
        if (r != 1) {
            rc = rw_err(err, RW_EIO, "%s: %s", src, r < 0 ? strerror(errno) : "changed while "
                        "being compressed");
            goto done;
        }
        boff[b] = pos;
        n = LZ4F_compressUpdate(cctx, out, ocap, in, want, NULL);
        if (LZ4F_isError(n))
            goto lz4fail;
        if (n < 8 || (get32le(out) & 0x7fffffffu) != n - 8) {
            rc = rw_err(err, RW_EIO, "%s: lz4 did not produce one block per update", src);
            goto done;
        }
        if (rw_write_all(ofd, out, n) < 0)
            goto wfail;
        pos += n;
    }
    boff[nblocks] = pos;
    n = LZ4F_compressEnd(cctx, out, ocap, NULL);
    if (LZ4F_isError(n))
        goto lz4fail;
    if (rw_write_all(ofd, out, n) < 0)
        goto wfail;
    pos += n;
    /* the block table, in a frame lz4 -d skips */
    size_t tbytes = 8 * (nblocks + 1), plen = tbytes + FOOTER;
    if (!(tab = malloc(8 + plen))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    put32le(tab, SKIP_MAGIC);
    put32le(tab + 4, (uint32_t)plen);
    for (size_t b = 0; b <= nblocks; b++)
        put64le(tab + 8 + 8 * b, boff[b]);
    uint8_t *ft = tab + 8 + tbytes;
    put64le(ft, size);
    put32le(ft + 8, SEGF_BLOCK);
    put32le(ft + 12, (uint32_t)nblocks);
    put32le(ft + 16, 1);
    memcpy(ft + 20, "RWZT", 4);
    if (rw_write_all(ofd, tab, 8 + plen) < 0)
        goto wfail;
    /* Keep the original's mtime: it orders a point's segments for reindex
     * and says when the segment was sealed. */
    struct timespec times[2] = {st.st_atim, st.st_mtim};
    if (futimens(ofd, times) < 0 || fdatasync(ofd) < 0)
        goto wfail;
    pos += 8 + plen;
    *stored = pos;
    goto done;
lz4fail:
    rc = rw_err(err, RW_EIO, "%s: lz4: %s", src, LZ4F_getErrorName(n));
    goto done;
wfail:
    rc = rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "%s: %s", dst, strerror(errno));
done:
    if (ifd >= 0)
        close(ifd);
    if (ofd >= 0) {
        close(ofd);
        if (rc < 0)
            unlink(dst);
    }
    LZ4F_freeCompressionContext(cctx);
    free(in);
    free(out);
    free(boff);
    free(tab);
    return rc;
}

int segf_linktype_of_dlt(int dlt)
{
    /* libpcap maps DLT_ to LINKTYPE_ when it writes a file header but does
     * not export the map, so ask it through a file in memory. */
    char mem[64];
    FILE *f = fmemopen(mem, sizeof mem, "w");
    pcap_t *p = pcap_open_dead(dlt, 65535);
    int lt = dlt;
    if (f && p) {
        pcap_dumper_t *d = pcap_dump_fopen(p, f);
        if (d) {
            pcap_dump_flush(d);
            uint32_t v;
            memcpy(&v, mem + 20, 4);
            lt = (int)(v & 0x03ffffff);
            pcap_dump_close(d); /* closes f */
            f = NULL;
        }
    }
    if (f)
        fclose(f);
    if (p)
        pcap_close(p);
    return lt;
}
