/* writer.c -- segment files and capture point writers.
 *
 * Segment file format: a classic pcap file with the nanosecond magic
 * 0xa1b23c4d written in host byte order, version 2.4, the point's snaplen and
 * LINKTYPE, then records of a 16-byte header and caplen bytes. We write it
 * ourselves rather than through pcap_dump() because durability needs control
 * of the file descriptor: large writes, fdatasync() before the index commits,
 * and truncation to the last committed record after a crash. */
#include "archive/archive.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <ftw.h>
#include <grp.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/arc_int.h"
#include "archive/segfile.h"
#include "archive/segout.h"
#include "index/parse.h"

#define TIGHT (4u << 20)   /* this little above the reserve: commit every buffer */
/* A record at least this large is written on its own (segout_write_big):
 * a buffer may hold up to a block of bytes waiting when it takes it. */
#define BIG (SEGOUT_BUF / 2)


static int claim_point(arc_t *a, const char *name, char *err)
{
    int free_slot = -1, rc = 0;
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < MAX_WRITERS; i++) {
        if (!a->active[i][0]) {
            if (free_slot < 0)
                free_slot = i;
        } else if (!strcmp(a->active[i], name)) {
            rc = rw_err(err, RW_EBUSY,
                        "capture point '%s' is being written (live capture or another import); "
                        "import into another --point",
                        name);
            break;
        }
    }
    if (rc == 0 && free_slot < 0)
        rc = rw_err(err, RW_EBUSY, "too many capture points written at once (%d)", MAX_WRITERS);
    if (rc == 0)
        snprintf(a->active[free_slot], sizeof a->active[free_slot], "%s", name);
    pthread_mutex_unlock(&a->mu);
    return rc;
}

static void release_point(arc_t *a, const char *name)
{
    pthread_mutex_lock(&a->mu);
    for (int i = 0; i < MAX_WRITERS; i++)
        if (!strcmp(a->active[i], name))
            a->active[i][0] = 0;
    pthread_mutex_unlock(&a->mu);
}

struct arc_pw {
    arc_t *a;
    char name[65];
    int dlt;
    uint32_t snaplen;
    int have_point;
    struct idx_point pt;
    /* open segment */
    int fd;
    idx_segw_t *sw;
    uint64_t seg_id;
    uint64_t first_seg; /* the first segment this writer opened, 0 before */
    char relpath[192];
    int64_t seg_start;
    segout_t *out;      /* its bytes on their way to fd */
    int dirty;          /* packets added since the last flush */
    int tight;          /* little space above the reserve: commit often */
    int64_t last_flush; /* monotonic ns */
    uint64_t seg_packets;     /* packets added to the open segment */
    uint64_t committed;       /* bytes of it the index covers */
    uint64_t committed_pkts;  /* packets of it the index covers */
    uint64_t packets;         /* added and not lost */
    uint64_t lost;            /* see arc_pw_lost */
    /* a segment cut back after a failed write, to be sealed as committed */
    int have_cut;
    uint64_t cut_id;
    char cut_path[192];
    int manual;         /* the caller commits (arc_pw_set_manual_flush) */
    /* A packet is indexed when the next one comes (or at a flush, a seal):
     * its flow's entry, asked for at the start of the next packet, arrives
     * while that one is parsed and copied, instead of stalling the add
     * (on many flows, the slot and the entry missed the caches at every
     * packet). parsed[cur] is the packet at hand, parsed[cur ^ 1] the one
     * waiting, if pend.on. */
    struct idx_parsed parsed[2];
    int cur;
    struct {
        int on;
        int64_t ts;
        uint64_t off;
        uint32_t caplen, len;
    } pend;
};

void arc_opts_default(struct arc_opts *o)
{
    memset(o, 0, sizeof *o);
    o->flush_ns = RW_NS_PER_SEC;
    o->sync = 1;
}

int arc_opts_set(struct arc_opts *o, const char *name, const char *val, char *err)
{
    int64_t ns;
    if (!strcmp(name, "quota")) {
        size_t n = strlen(val);
        if (n > 1 && val[n - 1] == '%') {
            char *end;
            long pct = strtol(val, &end, 10);
            if (end != val + n - 1 || pct < 1 || pct > 100)
                return rw_err(err, RW_EINPUT, "--quota '%s': a percentage must be 1%%..100%%", val);
            o->quota_pct = (uint32_t)pct;
            o->quota_bytes = 0;
            return 0;
        }
        if (rw_size_parse(val, &o->quota_bytes, err) < 0 || o->quota_bytes < (1 << 20))
            return rw_err(err, RW_EINPUT,
                          "--quota '%s': expected a size of at least 1M (e.g. 1.2T) or a "
                          "percentage of the disk (e.g. 90%%)",
                          val);
        o->quota_pct = 0;
        return 0;
    }
    if (!strcmp(name, "segment-bytes")) {
        if (rw_size_parse(val, &o->segment_bytes, err) < 0 || o->segment_bytes < 4096 ||
            o->segment_bytes > (4ULL << 30))
            return rw_err(err, RW_EINPUT, "--segment-bytes '%s': expected a size from 4k to 4G",
                          val);
        return 0;
    }
    int64_t *dst = !strcmp(name, "segment-seconds")  ? &o->segment_ns
                   : !strcmp(name, "max-age")        ? &o->max_age_ns
                   : !strcmp(name, "compress-after") ? &o->compress_after_ns
                   : !strcmp(name, "min-horizon")    ? &o->min_horizon_ns
                                                     : NULL;
    if (!dst)
        return rw_err(err, RW_EINPUT, "unknown setting '%s'", name);
    if (dst == &o->compress_after_ns && (!strcmp(val, "never") || !strcmp(val, "0"))) {
        /* 0 means "not given" in cap_opts: "compress at once" is 1 ns. */
        *dst = val[0] == '0' ? 1 : INT64_MAX;
        return 0;
    }
    if (rw_duration_parse(val, &ns, err) < 0 || ns <= 0)
        return rw_err(err, RW_EINPUT, "--%s '%s': expected a positive duration (60s, 10m, 2h, 7d)",
                      name, val);
    *dst = ns;
    return 0;
}

/* Given settings win and are remembered; others come from the archive, then
 * the defaults. */
static int resolve_opts(arc_t *a, const struct arc_opts *given, char *err)
{
    struct idx_config c;
    int rc = idx_config_get(a->ix, &c, err), changed = 0;
    if (rc < 0)
        return rc;
#define TAKE(f) do { if (given->f && given->f != c.f) { c.f = given->f; changed = 1; } } while (0)
    TAKE(segment_ns);
    TAKE(segment_bytes);
    TAKE(max_age_ns);
    TAKE(compress_after_ns);
    TAKE(min_horizon_ns);
#undef TAKE
    if (given->quota_bytes && given->quota_bytes != c.quota_bytes) {
        c.quota_bytes = given->quota_bytes;
        c.quota_pct = 0;
        changed = 1;
    } else if (given->quota_pct && given->quota_pct != c.quota_pct) {
        c.quota_pct = given->quota_pct;
        c.quota_bytes = 0;
        changed = 1;
    }
    if (changed && (rc = idx_config_put(a->ix, &c, err)) < 0)
        return rc;
    a->o = *given;
    a->o.segment_ns = c.segment_ns ? c.segment_ns : 60 * RW_NS_PER_SEC;
    a->o.segment_bytes = c.segment_bytes ? c.segment_bytes : 256ULL << 20;
    a->o.quota_bytes = c.quota_bytes;
    a->o.quota_pct = c.quota_pct;
    a->o.max_age_ns = c.max_age_ns;
    a->o.min_horizon_ns = c.min_horizon_ns;
    a->o.compress_after_ns = c.compress_after_ns ? c.compress_after_ns : 600 * RW_NS_PER_SEC;
    if (!a->o.flush_ns)
        a->o.flush_ns = RW_NS_PER_SEC;
    return 0;
}

const struct arc_opts *arc_get_opts(const arc_t *a) { return &a->o; }

static int mkdirs(const char *path)
{
    char tmp[1400];
    snprintf(tmp, sizeof tmp, "%s", path);
    for (char *p = tmp + 1; *p; p++) {
        if (*p == '/') {
            *p = 0;
            if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
                return -1;
            *p = '/';
        }
    }
    if (mkdir(tmp, 0750) < 0 && errno != EEXIST)
        return -1;
    return 0;
}

/* Is rel (a path under segments/) named by some catalogue record? */
static int known_path(const struct idx_seg *segs, size_t n, const char *rel)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(segs[i].path, rel))
            return 1;
    return 0;
}

/* Remove segment files no catalogue record names: a crash after a file was
 * created but before its record was committed, after retention forgot a
 * segment but before the file was unlinked, or during a compression. */
static void remove_orphans(arc_t *a, const struct idx_seg *segs, size_t n)
{
    struct arc_segname *names;
    size_t nn;
    char err[RW_ERRSZ];
    if (arc_segname_list(a->dir, NULL, &names, &nn, err) < 0)
        return; /* no segments directory yet */
    for (size_t i = 0; i < nn; i++) {
        char full[1400], *slash;
        if (known_path(segs, n, names[i].rel))
            continue;
        snprintf(full, sizeof full, "%s/%s", a->dir, names[i].rel);
        arc_log(a, "warn", "recovery: removing %s, which no index record names", full);
        unlink(full);
        if ((slash = strrchr(full, '/'))) {
            *slash = 0;
            rmdir(full); /* the day directory, only if now empty */
        }
    }
    free(names);
}

/* Recover after a crash: segments left open are cut back to the bytes their
 * index covers (whole records) and sealed, or dropped if they hold nothing;
 * records whose file is gone are dropped; files no record names go. */
static int recover(arc_t *a, char *err)
{
    struct idx_seg *segs;
    size_t n;
    int rc = idx_seg_all(a->ix, &segs, &n, err);
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct idx_seg *s = &segs[i];
        char path[1400];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", a->dir, s->path);
        int missing = stat(path, &st) < 0 && errno == ENOENT;
        if (missing || (s->state == IDX_SEG_OPEN && s->packets == 0)) {
            if (missing && s->packets)
                arc_log(a, "warn",
                        "recovery: segment file %s is missing; forgetting its %llu packets", path,
                        (unsigned long long)s->packets);
            if ((rc = idx_seg_delete(a->ix, s, err)) < 0)
                break;
            unlink(path);
            s->path[0] = 0;
            continue;
        }
        if (s->state != IDX_SEG_OPEN)
            continue;
        if ((uint64_t)st.st_size != s->file_size)
            arc_log(a, "info",
                    "recovery: segment %s cut from %lld to %llu bytes (its last committed record)",
                    path, (long long)st.st_size, (unsigned long long)s->file_size);
        if (truncate(path, (off_t)s->file_size) < 0) {
            rc = rw_err(err, RW_EIO, "recovering segment %s: truncate: %s", path, strerror(errno));
            break;
        }
        rc = idx_seg_mark_sealed(a->ix, s, err);
    }
    if (rc == 0)
        remove_orphans(a, segs, n);
    free(segs);
    return rc;
}

void arc_log(arc_t *a, const char *level, const char *fmt, ...)
{
    char msg[2048];
    va_list ap;
    if (!a->o.log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    a->o.log(a->o.log_arg, level, msg);
}

/* Packets are subscribers' communications: nobody outside the archive's
 * owner and group reaches them by any path (rewind query --local, tcpdump
 * -r, cat). New files are 0640 in 0750 directories; the archive directory
 * itself loses any bits for others, so that older archives and files a
 * umask let through are closed too. Run as root with a group named
 * "rewind" (make install creates it), an archive owned by root's group is
 * handed to that group, setgid, so that every file made inside inherits
 * it: members read the archive, nobody else. */
static gid_t handover_gid;

/* nftw: an archive handed to the group rewind: every entry to it, setgid
 * on directories, nothing for others. */
static int hand_over(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)ftw;
    if (flag == FTW_SL)
        return 0;
    if (lchown(path, (uid_t)-1, handover_gid) == 0)
        chmod(path, (st->st_mode & 07777 & ~07u) | (S_ISDIR(st->st_mode) ? S_ISGID : 0));
    return 0;
}

static void lock_down(arc_t *a)
{
    struct stat st;
    char buf[1024];
    struct group gr, *g = NULL;
    if (stat(a->dir, &st) < 0)
        return;
    if (geteuid() == 0 && st.st_gid == 0 && getgrnam_r("rewind", &gr, buf, sizeof buf, &g) == 0 &&
        g) {
        handover_gid = g->gr_gid;
        /* routine (documented in rewindd(8), SECURITY): no log line */
        (void)nftw(a->dir, hand_over, 16, FTW_PHYS);
        if (stat(a->dir, &st) < 0)
            return;
    }
    if (st.st_mode & 07) {
        arc_log(a, "warn", "archive %s was readable by every local user (mode %04o); now %04o",
                a->dir, (unsigned)(st.st_mode & 07777), (unsigned)(st.st_mode & 07770));
        if (chmod(a->dir, st.st_mode & 07770) < 0)
            arc_log(a, "warn", "chmod %s: %s", a->dir, strerror(errno));
    }
}

int arc_open(const char *dir, const struct arc_opts *o, arc_t **out, char *err)
{
    arc_t *a = calloc(1, sizeof *a);
    int rc;
    if (!a)
        return rw_err(err, RW_ENOMEM, "out of memory");
    snprintf(a->dir, sizeof a->dir, "%s", dir);
    pthread_mutex_init(&a->mu, NULL);
    pthread_mutex_init(&a->ret_mu, NULL);
    pthread_mutex_init(&a->space_mu, NULL);
    struct arc_opts def;
    arc_opts_default(&def);
    /* The directory is closed (and handed to its group) before the index
     * makes anything inside it. */
    a->o.log = (o ? o : &def)->log;
    a->o.log_arg = (o ? o : &def)->log_arg;
    if (mkdir(dir, 0750) == 0 || errno == EEXIST)
        lock_down(a);
    if ((rc = idx_open(dir, IDX_WRITE, &a->ix, err)) < 0 ||
        (rc = resolve_opts(a, o ? o : &def, err)) < 0 || (rc = recover(a, err)) < 0) {
        arc_close(a);
        return rc;
    }
    *out = a;
    return 0;
}

void arc_close(arc_t *a)
{
    if (!a)
        return;
    idx_close(a->ix);
    pthread_mutex_destroy(&a->mu);
    pthread_mutex_destroy(&a->ret_mu);
    pthread_mutex_destroy(&a->space_mu);
    free(a);
}

const char *arc_dir(const arc_t *a) { return a->dir; }

idx_t *arc_index(arc_t *a) { return a->ix; }

int arc_pw_open(arc_t *a, const char *name, int dlt, uint32_t snaplen, arc_pw_t **out,
                char *err)
{
    arc_pw_t *w;
    if (!rw_point_name_ok(name))
        return rw_err(err, RW_EINPUT,
                      "capture point name '%s' is not valid: use 1-64 letters, digits, '.', '_' or "
                      "'-'",
                      name);
    int rc = claim_point(a, name, err);
    if (rc < 0)
        return rc;
    if (!(w = calloc(1, sizeof *w)) || !(w->out = segout_new())) {
        free(w);
        release_point(a, name);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    w->a = a;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->dlt = dlt;
    w->snaplen = snaplen ? snaplen : 262144;
    w->fd = -1;
    w->last_flush = rw_mono_ns();
    *out = w;
    return 0;
}

/* Hand what the buffer holds to the segment file, after the space check:
 * its whole blocks, or all of it (a flush, a seal). */
static int write_out(arc_pw_t *w, int all, char *err)
{
    int rc;
    uint64_t left;
    size_t n = segout_pending(w->out);
    if (n) {
        if ((rc = arc_space_ensure(w->a, n, 0, &left, err)) < 0)
            return rc;
        /* Near the reserve, commit after every buffer written, so that a
         * full disk finds little uncommitted (see add()). */
        w->tight = left < TIGHT;
    }
    return segout_push(w->out, all, err);
}

static int seg_open(arc_pw_t *w, int64_t ts, char *err)
{
    char rel_day[ARC_SEG_REL_MAX], path[1400], dirpath[1400];
    int rc;
    if ((rc = arc_space_ensure(w->a, 24, 0, NULL, err)) < 0)
        return rc;
    if (!w->have_point) {
        if ((rc = idx_point_get(w->a->ix, w->name, w->dlt, w->snaplen, &w->pt, err)) < 0)
            return rc;
        w->have_point = 1;
    }
    if (arc_segname_make(w->name, ts, 0, w->relpath, sizeof w->relpath, rel_day, sizeof rel_day) < 0)
        return rw_err(err, RW_EINPUT, "segment name for point %s too long", w->name);
    snprintf(dirpath, sizeof dirpath, "%s/%s", w->a->dir, rel_day);
    if (mkdirs(dirpath) < 0)
        return rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "creating %s: %s", dirpath,
                      strerror(errno));
    for (int i = 0;; i++) {
        if (i > 0 &&
            arc_segname_make(w->name, ts, i, w->relpath, sizeof w->relpath, NULL, 0) < 0)
            return rw_err(err, RW_EINPUT, "segment name for point %s too long", w->name);
        snprintf(path, sizeof path, "%s/%s", w->a->dir, w->relpath);
        w->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
        if (w->fd >= 0)
            break;
        if (errno != EEXIST || i > 1000)
            return rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "creating segment %s: %s",
                          path, strerror(errno));
    }
    /* pcap file header, nanosecond magic, host byte order */
    uint32_t hdr[6] = {0xa1b23c4d, RW_PCAP_VERSION, 0, 0, w->snaplen,
                       (uint32_t)segf_linktype_of_dlt(w->dlt)};
    segout_start(w->out, w->fd, path, w->a->o.sync);
    segout_put(w->out, hdr, 24, NULL, 0);
    w->seg_start = ts;
    /* The header and the directory entry are durable before the catalogue
     * names the file, so recovery never finds a record without its file. */
    if ((rc = write_out(w, 1, err)) == 0 && w->a->o.sync) {
        if (fdatasync(w->fd) < 0 || rw_fsync_dir(dirpath) < 0)
            rc = rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "syncing new segment %s: %s",
                        path, strerror(errno));
    }
    if (rc < 0 ||
        (rc = idx_segw_begin(w->a->ix, w->pt.id, w->dlt, w->snaplen, w->relpath, &w->sw,
                             &w->seg_id, err)) < 0) {
        segout_stop(w->out);
        close(w->fd);
        unlink(path);
        w->fd = -1;
        return rc;
    }
    w->committed = 24; /* idx_segw_begin recorded the header */
    if (!w->first_seg)
        w->first_seg = w->seg_id;
    w->committed_pkts = 0;
    w->seg_packets = 0;
    return 0;
}

/* Index the packet waiting, if any. */
static void pend_add(arc_pw_t *w)
{
    if (!w->pend.on)
        return;
    idx_segw_add(w->sw, w->pend.ts, w->pend.off, w->pend.caplen, w->pend.len,
                 &w->parsed[w->cur ^ 1]);
    w->pend.on = 0;
}

static int commit(arc_pw_t *w, int sync, char *err)
{
    int rc;
    pend_add(w);
    /* Every byte the batch covers is in the file before the batch is
     * made: the segment's bytes first, then the index that points at them. */
    if ((rc = write_out(w, 1, err)) < 0 || (rc = segout_drain(w->out, err)) < 0)
        return rc;
    uint64_t size = segout_size(w->out);
    /* fdatasync, then the index batch, on the segment's commit thread:
     * capture goes on while the disk catches up. */
    if ((rc = idx_segw_commit(w->sw, w->fd, size, sync, err)) < 0)
        return rc;
    w->committed = size;
    w->committed_pkts = w->seg_packets;
    w->dirty = 0;
    w->last_flush = rw_mono_ns();
    return 0;
}

/* Seal the open segment. On failure the segment is left open (sw may be
 * gone) for cut_back(). */
static int seg_seal(arc_pw_t *w, char *err)
{
    int rc = 0;
    if (w->fd < 0)
        return 0;
    pend_add(w);
    if ((rc = write_out(w, 1, err)) < 0 || (rc = segout_drain(w->out, err)) < 0)
        return rc;
    if (w->a->o.sync && fdatasync(w->fd) < 0)
        return rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "syncing segment %s: %s",
                      w->relpath, strerror(errno));
    rc = idx_segw_seal(w->sw, segout_size(w->out), err); /* frees sw, whatever happens */
    w->sw = NULL;
    if (rc < 0)
        return rc;
    if (rc == 1) { /* empty: the index forgot it, the file goes too */
        char path[1400];
        snprintf(path, sizeof path, "%s/%s", w->a->dir, w->relpath);
        unlink(path);
    }
    segout_stop(w->out);
    close(w->fd);
    w->fd = -1;
    idx_flush(w->a->ix, 0); /* bound the WAL that readers replay */
    if (w->a->o.quota_bytes || w->a->o.quota_pct || w->a->o.max_age_ns) {
        char e2[RW_ERRSZ];
        if (arc_retention_run(w->a, e2) < 0)
            arc_log(w->a, "warn", "retention: %s", e2); /* capture goes on; the next seal retries */
    }
    return 0;
}

/* A write failed: cut the open segment back to what the index covers, so
 * that no byte past the last committed record stays in it, forget the
 * packets after that record, and remember the segment for seal_cut(). The
 * index is not written here: the disk may be full. */
static void cut_back(arc_pw_t *w)
{
    uint64_t gone;
    if (w->fd < 0)
        return;
    gone = w->seg_packets - w->committed_pkts;
    w->lost += gone;
    w->packets -= gone;
    w->pend.on = 0; /* one of them */
    idx_segw_abandon(w->sw);
    w->sw = NULL;
    segout_stop(w->out); /* waits for writes in flight, drops what waits */
    /* If this fails too, seal_cut() and recovery cut the file again. */
    if (ftruncate(w->fd, (off_t)w->committed) == 0 && w->a->o.sync)
        fdatasync(w->fd);
    close(w->fd);
    w->fd = -1;
    w->dirty = 0;
    w->have_cut = 1;
    w->cut_id = w->seg_id;
    snprintf(w->cut_path, sizeof w->cut_path, "%s", w->relpath);
}

/* Seal the segment cut_back() left, as the index last committed it (or
 * forget it and its file if it holds no packet). Writes the index. */
static int seal_cut(arc_pw_t *w, char *err)
{
    struct idx_seg s;
    char path[1400];
    struct stat st;
    int rc;
    if (!w->have_cut)
        return 0;
    snprintf(path, sizeof path, "%s/%s", w->a->dir, w->cut_path);
    if ((rc = idx_seg_get(w->a->ix, w->cut_id, &s, err)) < 0)
        return rw_errctx(err, rc, "sealing segment %s", path);
    if (rc == 1 && s.packets == 0) {
        if ((rc = idx_seg_delete(w->a->ix, &s, err)) < 0)
            return rw_errctx(err, rc, "forgetting empty segment %s", path);
        unlink(path);
    } else if (rc == 1 && s.state == IDX_SEG_OPEN) {
        if (stat(path, &st) == 0 && (uint64_t)st.st_size > s.file_size &&
            truncate(path, (off_t)s.file_size) < 0)
            return rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO,
                          "cutting segment %s back to %llu bytes: %s", path,
                          (unsigned long long)s.file_size, strerror(errno));
        if ((rc = idx_seg_mark_sealed(w->a->ix, &s, err)) < 0)
            return rw_errctx(err, rc, "sealing segment %s", path);
    }
    w->have_cut = 0;
    return 0;
}

/* Make the open segment the one a packet of time ts and caplen bytes goes
 * into (pending: bytes the caller holds for it, not yet written): seal a
 * cut segment, roll by age or size, open one. */
static int place(arc_pw_t *w, int64_t ts, uint32_t caplen, size_t pending, char *err)
{
    int rc;
    if (w->have_cut) {
        if ((rc = arc_space_ensure(w->a, 0, 0, NULL, err)) < 0 || (rc = seal_cut(w, err)) < 0)
            return rc;
    }
    if (w->fd >= 0) {
        int64_t age = ts - w->seg_start;
        if (age >= w->a->o.segment_ns || age <= -w->a->o.segment_ns ||
            segout_size(w->out) + pending + 16 + caplen > w->a->o.segment_bytes) {
            if ((rc = seg_seal(w, err)) < 0)
                return rc;
        }
    }
    if (w->fd < 0 && (rc = seg_open(w, ts, err)) < 0)
        return rc;
    return 0;
}

/* The packet at offset off of the open segment, parsed into
 * w->parsed[w->cur], is in the file or the caller's hands: index it (once
 * the next comes: see struct arc_pw), after the one waiting. 1 when the
 * flush interval has passed and the caller should commit. */
static int indexed(arc_pw_t *w, int64_t ts, uint64_t off, uint32_t caplen, uint32_t len)
{
    pend_add(w);
    w->pend.on = 1;
    w->pend.ts = ts;
    w->pend.off = off;
    w->pend.caplen = caplen;
    w->pend.len = len;
    w->cur ^= 1;
    w->dirty = 1;
    w->seg_packets++;
    w->packets++;
    return !w->manual && (w->packets & 1023) == 0 &&
           rw_mono_ns() - w->last_flush >= w->a->o.flush_ns;
}

static int add(arc_pw_t *w, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len,
               const uint8_t *data, int *added, char *err)
{
    int64_t ts = (int64_t)sec * RW_NS_PER_SEC + frac;
    int rc;
    if (caplen > w->snaplen)
        caplen = w->snaplen;
    if (w->pend.on) /* the entry of the one waiting (its slot was asked for then) */
        idx_segw_prefetch(w->sw, &w->parsed[w->cur ^ 1], 1);
    if ((rc = place(w, ts, caplen, 0, err)) < 0)
        return rc;
    uint32_t rec[4] = {sec, frac, caplen, len};
    struct idx_parsed *p = &w->parsed[w->cur];
    /* Parsed first (but for the flow's hash, which the index keeps with
     * the flow): the flow's slot is on its way to the caches while the
     * packet is copied, and its entry while the next is (cache misses on a
     * busy link; idx_segw_add reads them first). */
    idx_parse_packet_nohash(w->dlt, data, caplen, p);
    idx_segw_prefetch(w->sw, p, 0);
    /* Lawful intercept and followers see each stored packet, before its
     * copy: after it, the tap's first stores waited for the copy's to drain
     * from the store buffer (3 % of the capture's CPU with no case active,
     * in the profile). */
    if (w->a->tap) {
        struct arc_tap t = {w->name, w->dlt, w->snaplen, ts, data, caplen, len, p};
        w->a->tap(w->a->tap_arg, &t);
    }
    uint64_t off = segout_size(w->out);
    if (16 + (size_t)caplen >= BIG) { /* a record this large goes straight out */
        if ((rc = arc_space_ensure(w->a, segout_pending(w->out) + 16 + caplen, 0, NULL, err)) < 0 ||
            (rc = segout_write_big(w->out, rec, 16, data, caplen, err)) < 0)
            return rc;
    } else {
        if (16 + caplen > segout_room(w->out)) {
            if ((rc = write_out(w, 0, err)) < 0)
                return rc;
            /* Everything added is on its way: near a full disk, commit it
             * now rather than lose up to a flush interval of it to the next
             * write. */
            if (w->tight && w->dirty && (rc = commit(w, w->a->o.sync, err)) < 0)
                return rc;
        }
        segout_put(w->out, rec, 16, data, caplen);
    }
    *added = 1;
    if (indexed(w, ts, off, caplen, len))
        return commit(w, w->a->o.sync, err);
    return 0;
}

int arc_pw_add(arc_pw_t *w, uint32_t sec, uint32_t frac, uint32_t caplen, uint32_t len,
               const uint8_t *data, char *err)
{
    int added = 0;
    int rc = add(w, sec, frac, caplen, len, data, &added, err);
    if (rc < 0) {
        cut_back(w); /* counts this packet if it was added */
        if (!added)
            w->lost++;
    }
    return rc;
}

void arc_set_tap(arc_t *a, arc_tap_fn fn, void *arg)
{
    a->tap = fn;
    a->tap_arg = arg;
}

void arc_pw_set_manual_flush(arc_pw_t *w, int on) { w->manual = on; }

int arc_pw_flush_due(const arc_pw_t *w)
{
    return w->dirty && w->fd >= 0 && rw_mono_ns() - w->last_flush >= w->a->o.flush_ns;
}

int arc_pw_flush(arc_pw_t *w, int force, char *err)
{
    int rc;
    if (!w->dirty || w->fd < 0)
        return 0;
    if (!force && rw_mono_ns() - w->last_flush < w->a->o.flush_ns)
        return 0;
    if ((rc = commit(w, w->a->o.sync, err)) < 0)
        cut_back(w);
    return rc;
}

/* Can the archive's file system take a write again (after an I/O error)?
 * Writes, syncs and removes a small file. */
static int probe(arc_t *a, char *err)
{
    char path[1100], buf[4096];
    int rc = 0;
    snprintf(path, sizeof path, "%s/.write-probe", a->dir);
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    memset(buf, 0, sizeof buf);
    if (fd < 0 || rw_write_all(fd, buf, sizeof buf) < 0 || fdatasync(fd) < 0)
        rc = rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "writing %s: %s", path,
                    strerror(errno));
    if (fd >= 0)
        close(fd);
    unlink(path);
    return rc;
}

int arc_pw_resume(arc_pw_t *w, char *err)
{
    int rc;
    if (w->a->o.quota_bytes || w->a->o.quota_pct || w->a->o.max_age_ns) {
        if ((rc = arc_retention_run(w->a, err)) < 0)
            return rw_errctx(err, rc, "retention");
    }
    if ((rc = arc_space_ensure(w->a, 0, 1, NULL, err)) < 0 || (rc = probe(w->a, err)) < 0)
        return rc;
    if ((rc = idx_writable(w->a->ix, err)) < 0)
        return rw_errctx(err, rc, "the index takes no writes yet");
    return seal_cut(w, err);
}

int arc_pw_close(arc_pw_t *w, char *err)
{
    int rc;
    struct arc_space sp;
    char e2[RW_ERRSZ];
    if (!w)
        return 0;
    if ((rc = seg_seal(w, err)) < 0)
        cut_back(w);
    /* Seal a cut segment now only if the index write cannot meet a full
     * disk; else recovery does it when the archive next opens. */
    if (w->have_cut && arc_space_get(w->a, &sp, e2) == 0 && sp.avail >= ARC_INDEX_MIN_FREE &&
        seal_cut(w, e2) < 0 && rc == 0)
        rc = rw_err(err, RW_EIO, "%s", e2);
    release_point(w->a, w->name);
    segout_free(w->out);
    free(w);
    return rc;
}

uint64_t arc_pw_packets(const arc_pw_t *w) { return w->packets; }
uint64_t arc_pw_lost(const arc_pw_t *w) { return w->lost; }
uint64_t arc_pw_first_segment(const arc_pw_t *w) { return w->first_seg; }
const char *arc_pw_name(const arc_pw_t *w) { return w->name; }

int arc_pw_set_drops(arc_pw_t *w, uint64_t kernel, uint64_t queue, char *err)
{
    if (!w->have_point)
        return 0;
    /* Counters of earlier runs stay: drops are never hidden by a restart. */
    return idx_point_set_drops(w->a->ix, w->pt.id, w->pt.kernel_drops + kernel,
                               w->pt.queue_drops + queue, err);
}
