/* live.c -- live intercept: the archive's tap tees each stored packet that
 * an active case takes into that case's spool (intercept.h, ic_live_*).
 *
 * The tap runs on the point writers' threads, never on a capture thread,
 * and never waits on a disk: a packet's addresses (the innermost flow's
 * source and destination) are looked up in a hash of every address the
 * active cases target, and only on a hit is the case's BPF run; a packet
 * the case takes is numbered (per case, from 1, without gaps) and copied
 * into the case's memory buffer. A flusher thread writes the buffers to
 * the spool files and fdatasyncs them (spool_due: within IC_FLUSH_MS of a
 * case's first packet after a quiet spell, then every IC_SYNC_MS), and
 * only then is a packet offered for delivery. A full buffer or a spool at its quota
 * drops the packet before it is numbered, counts it, and the count is
 * reported: nothing is dropped silently, and numbers never skip. */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <errno.h>
#include <fcntl.h>
#include <pcap/pcap.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archive/archive.h"
#include "index/index.h"
#include "index/parse.h"

/* Each flush of a case with new packets is a write and an fdatasync (and
 * the file system's journal commit for the file's new size): with ten
 * cases each taking a trickle, every 20 ms that was about 5 % of the
 * capture's CPU, every 50 ms 3 %, every 100 ms 3 % of a capture that had
 * meanwhile got a third cheaper (make bench). So the flusher looks every
 * IC_FLUSH_MS, and a spool whose last sync is older than IC_SYNC_MS (the
 * first packet of a new case, or after a quiet spell: warrant to first
 * packet stays about IC_FLUSH_MS) or that holds IC_SYNC_BYTES is synced
 * at that look; a steady trickle every IC_SYNC_MS. Delivery stays well
 * within a second. */
#define IC_FLUSH_MS 100
#define IC_SYNC_MS 200
#define IC_SYNC_BYTES (1u << 20)
#define SPOOL_BUF_MAX (32u << 20)   /* bytes waiting for the flusher, per case */
#define SPOOL_SPARE_MAX (1u << 20)  /* a larger buffer is freed once written, not kept */
#define SPOOL_FILE_MAX (64ull << 20) /* a spool file rolls over beyond this, or beyond a
                                        32nd of the quota, whichever is less (files the
                                        agency holds are deleted whole) */
#define HASH_SLOTS 8                 /* cases per address slot */

struct spool {
    char id[IC_ID_MAX + 1];
    char sdir[4400];
    int64_t from, end;      /* the case's window: packets outside are not taken */
    ic_sel_t *sel;          /* what it takes (under mu: its programs compile lazily) */
    pthread_mutex_t mu;
    uint8_t *buf;           /* records numbered, not yet written */
    size_t blen, bcap;
    uint8_t *spare;         /* an empty buffer of sparecap bytes for buf's place when the
                               flusher takes buf (no malloc and cross-thread free a flush) */
    size_t sparecap;
    uint64_t buf_first;     /* seq of buf's first record */
    uint64_t next_seq;      /* the next number to give */
    uint64_t bytes;         /* on disk and in buf */
    atomic_uint_fast64_t durable; /* the last number on disk, synced */
    atomic_uint_fast64_t teed, dropped;
    atomic_uint_fast64_t delivered;   /* the highest number pull delivery has sent */
    atomic_uint_fast64_t held;        /* the highest number the agency said it holds (after=) */
    atomic_uint_fast64_t connections; /* pull connections made (reconnects show here) */
    uint64_t quota;
    int alarm;              /* spool above IC_ALARM_PCT of its quota */
    uint64_t dropped_logged;
    int64_t dropped_logged_at; /* monotonic: drops are logged at most every 10 s */
    int64_t synced_at;      /* monotonic: the flusher's last write and sync (flusher only) */
    int fd;                 /* the file being appended to (flusher only) */
    uint64_t file_bytes;
    int active;             /* in the active set (under the engine's lock) */
    unsigned prune_tick;    /* flusher only */
};

struct hent {
    uint8_t used, family;
    uint8_t addr[16];
    uint8_t n;
    uint16_t sp[HASH_SLOTS];
};

struct pfx {
    uint8_t family, plen;
    uint64_t w[2], m[2]; /* the prefix's bits and its mask, as two words */
    uint16_t sp;
};

struct mac {
    uint8_t mac[6];
    uint16_t sp;
};

/* What the capture path looks a packet up in: the active cases' addresses,
 * prefixes and MACs, each naming its spool by its index in ic_live.sp. */
#define TEE_FILTER_LOG2 9 /* 512 bits */
#define TEE_FILTER_WORDS ((1u << TEE_FILTER_LOG2) / 64)
#define TEE_PLENS 8
struct tee_set {
    uint64_t ver;           /* ic_live.ver this copy was made at */
    /* A bit for each exact address, and for each prefix masked to its
     * length, at filter_bit(): a packet whose addresses, whole and masked to
     * each of plens, find no bit is no case's, which is known without
     * touching the table and the lists below (set_seal). nplens > TEE_PLENS:
     * too many lengths, every packet's addresses go through pfx. */
    uint64_t filter[TEE_FILTER_WORDS];
    uint8_t nplens, plen_family[TEE_PLENS], plen[TEE_PLENS];
    uint64_t plen_m[TEE_PLENS][2]; /* prefix_mask(plen[k]) */
    uint8_t macs_any;       /* nmacs != 0: every frame's MACs are compared */
    struct hent *hash;      /* open addressing, hcap slots (a power of two) */
    size_t hcap;
    struct pfx *pfx;
    size_t npfx;
    struct mac *macs;
    size_t nmacs;
};

struct ic_live {
    ic_t *ic;
    struct ic_live_opts o;
    pthread_rwlock_t lk;    /* the active set below */
    struct spool **sp;      /* every spool ever opened this run (active or not) */
    size_t nsp;
    struct tee_set set;     /* under lk; each capturing thread looks up its own copy */
    atomic_uint_fast64_t ver; /* set.ver: a new number at each rebuild */
    atomic_int nactive;
    int users;              /* an active case has a user target */
    struct ic_pusher **push; /* etsi push, one per case (this run) */
    size_t npush;
    pthread_t thr;
    pthread_mutex_t cvmu;   /* with cv: a spool got new durable records */
    pthread_cond_t cv;
    atomic_int stop;
};

static void logf_(struct ic_live *L, const char *level, const char *fmt, ...)
    RW_PRINTF(3, 4);
static void logf_(struct ic_live *L, const char *level, const char *fmt, ...)
{
    char msg[RW_ERRSZ];
    va_list ap;
    if (!L->o.log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    L->o.log(L->o.log_arg, level, msg);
}

/* ---------- the address hash ---------- */

/* The capture path asks this of every packet, both addresses, while a
 * case is active: two words mixed, not sixteen bytes hashed one by one
 * (the bench measured the tee at a sixth of the capture's CPU with ten
 * cases when it did that). */
static uint64_t addr_mix(uint64_t w0, uint64_t w1, uint64_t salt)
{
    uint64_t h = (w0 ^ salt) * 0x9e3779b97f4a7c15ull ^ w1 * 0xc2b2ae3d27d4eb4full;
    return h ^ (h >> 29);
}

static uint64_t hash_addr(int family, const uint8_t *a)
{
    uint64_t w[2];
    memcpy(w, a, 16);
    return addr_mix(w[0], w[1], (uint64_t)family);
}

static struct hent *hash_find(const struct tee_set *S, int family, const uint8_t *a, int add)
{
    if (!S->hcap)
        return NULL;
    for (size_t i = hash_addr(family, a) & (S->hcap - 1), k = 0; k < S->hcap;
         i = (i + 1) & (S->hcap - 1), k++) {
        struct hent *e = &S->hash[i];
        if (!e->used) {
            if (!add)
                return NULL;
            e->used = 1;
            e->family = (uint8_t)family;
            memcpy(e->addr, a, 16);
            return e;
        }
        if (e->family == family && !memcmp(e->addr, a, 16))
            return e;
    }
    return NULL;
}

/* The mask of a prefix of plen bits, as words of the address's bytes in
 * their order (what hash_addr and struct pfx read). */
static void prefix_mask(int plen, uint64_t m[2])
{
    uint8_t mask[16];
    for (int i = 0; i < 16; i++) {
        int bits = plen - 8 * i;
        mask[i] = bits >= 8 ? 0xff : bits <= 0 ? 0 : (uint8_t)(0xff << (8 - bits));
    }
    memcpy(m, mask, 16);
}

static void add_addr(struct tee_set *S, int family, const uint8_t *a, int plen, uint16_t sp)
{
    if (plen == (family == 4 ? 32 : 128)) {
        struct hent *e = hash_find(S, family, a, 1);
        for (int i = 0; e && i < e->n; i++)
            if (e->sp[i] == sp)
                return;
        if (e && e->n < HASH_SLOTS) {
            e->sp[e->n++] = sp;
            return;
        }
    }
    /* A prefix, or an address more than HASH_SLOTS cases share: a list. */
    struct pfx *np = realloc(S->pfx, (S->npfx + 1) * sizeof *np);
    if (!np)
        return;
    S->pfx = np;
    struct pfx *p = &np[S->npfx++];
    p->family = (uint8_t)family;
    p->plen = (uint8_t)plen;
    memcpy(p->w, a, 16);
    prefix_mask(plen, p->m);
    p->w[0] &= p->m[0];
    p->w[1] &= p->m[1];
    p->sp = sp;
}

static int in_prefix(const struct pfx *p, int family, const uint64_t a[2])
{
    return p->family == family && ((a[0] & p->m[0]) == p->w[0]) && ((a[1] & p->m[1]) == p->w[1]);
}

static unsigned filter_bit(int family, int plen, const uint64_t w[2])
{
    uint64_t h = addr_mix(w[0], w[1], (uint64_t)(family | plen << 8));
    return (unsigned)(h >> (64 - TEE_FILTER_LOG2));
}

static void filter_set(struct tee_set *S, int family, int plen, const uint64_t w[2])
{
    unsigned b = filter_bit(family, plen, w);
    S->filter[b / 64] |= 1ull << (b % 64);
}

/* Fill S's filter from its table and lists, once they are complete. */
static void set_seal(struct tee_set *S)
{
    memset(S->filter, 0, sizeof S->filter);
    S->nplens = 0;
    for (size_t i = 0; i < S->hcap; i++)
        if (S->hash[i].used) {
            uint64_t w[2];
            memcpy(w, S->hash[i].addr, 16);
            filter_set(S, S->hash[i].family, S->hash[i].family == 4 ? 32 : 128, w);
        }
    for (size_t i = 0; i < S->npfx; i++) {
        const struct pfx *p = &S->pfx[i];
        int k = 0, n = S->nplens < TEE_PLENS ? S->nplens : TEE_PLENS;
        while (k < n && (S->plen_family[k] != p->family || S->plen[k] != p->plen))
            k++;
        if (k == n && S->nplens < TEE_PLENS) {
            S->plen_family[k] = p->family;
            S->plen[k] = p->plen;
            memcpy(S->plen_m[k], p->m, sizeof p->m);
            S->nplens++;
        } else if (k == n) {
            S->nplens = TEE_PLENS + 1;
        }
        filter_set(S, p->family, p->plen, p->w); /* p->w is masked already */
    }
    S->macs_any = S->nmacs != 0;
}

/* An address of the packet as the two words hash_addr and struct pfx read
 * (an IPv4 address zero-padded), loaded straight from the parse: words
 * stored into an array and read back would wait for the store buffer to
 * drain, and it holds the packet's copy into the write buffer just before
 * (a third of what ten cases cost in the profile). */
static inline void addr_words(const struct idx_flow *f, const uint8_t *a, uint64_t w[2])
{
    if (f->family == 4) {
        uint64_t v = 0;
        memcpy(&v, a, 4); /* one load of 4 bytes, zero-extended */
        w[0] = v;
        w[1] = 0;
    } else {
        memcpy(&w[0], a, 8);
        memcpy(&w[1], a + 8, 8);
    }
}

static inline int filter_has(const struct tee_set *S, int family, int plen, uint64_t w0,
                             uint64_t w1)
{
    const uint64_t w[2] = {w0, w1};
    unsigned b = filter_bit(family, plen, w);
    return S->filter[b / 64] >> (b % 64) & 1;
}

/* Whether a packet with these addresses may be some case's (a false yes is
 * possible, a false no is not). */
static int set_may(const struct tee_set *S, const struct idx_flow *f)
{
    if (S->nplens > TEE_PLENS)
        return 1;
    int full = f->family == 4 ? 32 : 128;
    for (int d = 0; d < 2; d++) {
        uint64_t w[2];
        addr_words(f, d ? f->dst : f->src, w);
        if (filter_has(S, f->family, full, w[0], w[1]))
            return 1;
        for (int k = 0; k < S->nplens; k++)
            if (S->plen_family[k] == f->family &&
                filter_has(S, f->family, S->plen[k], w[0] & S->plen_m[k][0],
                           w[1] & S->plen_m[k][1]))
                return 1;
    }
    return 0;
}

static void set_clear(struct tee_set *S)
{
    free(S->hash);
    free(S->pfx);
    free(S->macs);
    memset(S, 0, sizeof *S);
}

/* ---------- each capturing thread's copy of the set ---------- */

/* Every packet is looked up while a case is active; a read lock on the
 * set for each was a third of what ten cases cost the capture (two atomic
 * read-modify-writes a packet, make bench). So each thread that tees keeps
 * its own copy, made under the lock whenever a rebuild has numbered a new
 * set, and looks up without any lock; only a packet that hits takes the
 * lock to reach the spools. Versions are numbered across engines, so that
 * a copy can never be taken for another engine's set. */
static atomic_uint_fast64_t set_vers;
static pthread_key_t copy_key; /* frees a thread's copy when it ends */
static int copy_key_ok;
static pthread_once_t copy_once = PTHREAD_ONCE_INIT;
static __thread struct tee_set *copy_mine;

static void copy_free(void *p)
{
    set_clear(p);
    free(p);
}

static void copy_key_make(void)
{
    copy_key_ok = pthread_key_create(&copy_key, copy_free) == 0;
}

static void *dup_or_null(const void *p, size_t n)
{
    void *d;
    if (!n)
        return NULL;
    if ((d = malloc(n)))
        memcpy(d, p, n);
    return d;
}

/* This thread's copy of L's set, current as of L->ver; NULL if it cannot be
 * made (out of memory): then the caller looks up L->set under the lock. */
static const struct tee_set *copy_get(struct ic_live *L)
{
    struct tee_set *m = copy_mine;
    if (m && m->ver == atomic_load_explicit(&L->ver, memory_order_acquire))
        return m;
    pthread_once(&copy_once, copy_key_make);
    if (!copy_key_ok)
        return NULL;
    if (!m) {
        if (!(m = calloc(1, sizeof *m)) || pthread_setspecific(copy_key, m) != 0) {
            free(m);
            return NULL;
        }
        copy_mine = m;
    }
    set_clear(m);
    pthread_rwlock_rdlock(&L->lk);
    const struct tee_set *S = &L->set;
    *m = *S; /* the filter and counts; the arrays are the copy's own: */
    m->hash = dup_or_null(S->hash, S->hcap * sizeof *S->hash);
    m->pfx = dup_or_null(S->pfx, S->npfx * sizeof *S->pfx);
    m->macs = dup_or_null(S->macs, S->nmacs * sizeof *S->macs);
    int ok = (m->hash || !S->hcap) && (m->pfx || !S->npfx) && (m->macs || !S->nmacs);
    pthread_rwlock_unlock(&L->lk);
    if (!ok) {
        set_clear(m);
        return NULL;
    }
    return m;
}

/* ---------- spools ---------- */

static struct spool *spool_get(struct ic_live *L, const char *id, char *err)
{
    for (size_t i = 0; i < L->nsp; i++)
        if (!strcmp(L->sp[i]->id, id))
            return L->sp[i];
    struct spool *s = calloc(1, sizeof *s);
    struct spool **nv = realloc(L->sp, (L->nsp + 1) * sizeof *nv);
    if (!s || !nv) {
        free(s);
        if (nv)
            L->sp = nv;
        rw_err(err, RW_ENOMEM, "out of memory");
        return NULL;
    }
    L->sp = nv;
    snprintf(s->id, sizeof s->id, "%s", id);
    snprintf(s->sdir, sizeof s->sdir, "%s/%s/spool", ic_cases_dir(L->ic), id);
    if (mkdir(s->sdir, 0750) < 0 && errno != EEXIST) {
        rw_err(err, RW_EIO, "creating %s: %s", s->sdir, strerror(errno));
        free(s);
        return NULL;
    }
    if (ic_spool_recover(s->sdir, &s->next_seq, &s->bytes, err) < 0) {
        free(s);
        return NULL;
    }
    atomic_store(&s->durable, s->next_seq - 1);
    pthread_mutex_init(&s->mu, NULL);
    s->fd = -1;
    s->quota = L->o.quota;
    L->sp[L->nsp++] = s;
    return s;
}

/* Write what s's buffer holds, sync it: the flusher's, and the rebuild's
 * for a spool leaving the active set. 0, or <0 (logged by the caller). */
static int spool_flush(struct ic_live *L, struct spool *s, char *err)
{
    pthread_mutex_lock(&s->mu);
    uint8_t *buf = s->buf;
    size_t len = s->blen, cap = s->bcap;
    uint64_t first = s->buf_first, last = s->next_seq - 1;
    if (len) {
        s->buf = s->spare;
        s->bcap = s->sparecap;
        s->blen = 0;
        s->spare = NULL;
        s->sparecap = 0;
    }
    pthread_mutex_unlock(&s->mu);
    if (!len)
        return 0;
    int rc = 0;
    uint64_t roll = s->quota / 32 < SPOOL_FILE_MAX ? s->quota / 32 : SPOOL_FILE_MAX;
    if (s->fd >= 0 && s->file_bytes + len > (roll < (64u << 10) ? 64u << 10 : roll)) {
        close(s->fd);
        s->fd = -1;
    }
    if (s->fd < 0) {
        char path[4500];
        snprintf(path, sizeof path, "%s/%020llu.rws", s->sdir, (unsigned long long)first);
        s->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        struct stat st;
        if (s->fd < 0 || fstat(s->fd, &st) < 0 || rw_fsync_dir(s->sdir) < 0)
            rc = rw_err(err, RW_EIO, "opening %s: %s", path, strerror(errno));
        else
            s->file_bytes = (uint64_t)st.st_size;
    }
    if (rc == 0 && (rw_write_all(s->fd, buf, len) < 0 || fdatasync(s->fd) < 0))
        rc = rw_err(err, errno == ENOSPC ? RW_ENOSPC : RW_EIO, "writing the spool of case %s: %s",
                    s->id, strerror(errno));
    pthread_mutex_lock(&s->mu); /* buf, written, is the next spare */
    if (!s->spare && cap <= SPOOL_SPARE_MAX) {
        s->spare = buf;
        s->sparecap = cap;
        buf = NULL;
    }
    pthread_mutex_unlock(&s->mu);
    free(buf);
    if (rc < 0) {
        /* The numbers given are lost with the buffer: a gap the agency is
         * told of (dropped), and the next write starts a new file. */
        if (s->fd >= 0)
            close(s->fd);
        s->fd = -1;
        atomic_fetch_add(&s->dropped, last - first + 1);
        return rc;
    }
    s->file_bytes += len;
    atomic_store(&s->durable, last);
    (void)L;
    return 0;
}

/* Whether the flusher should write and sync s now (see IC_SYNC_MS). */
static int spool_due(struct spool *s, int64_t now)
{
    pthread_mutex_lock(&s->mu);
    size_t len = s->blen;
    pthread_mutex_unlock(&s->mu);
    return len && (len >= IC_SYNC_BYTES || now - s->synced_at >= IC_SYNC_MS * 1000000LL);
}

/* ---------- etsi push ---------- */

/* Start or update the pusher of etsi case c (under the write lock). An
 * ended case gets one only while its spool holds what was never sent. */
static void push_follow(struct ic_live *L, const struct ic_case *c, int live)
{
    char err[RW_ERRSZ];
    for (size_t i = 0; i < L->npush; i++)
        if (!strcmp(ic_pusher_case(L->push[i]), c->id)) {
            if (!ic_pusher_done(L->push[i]) || !live) {
                ic_pusher_update(L->push[i], c);
                return;
            }
            /* It stopped (its delivery was pull for a while): a new one. */
            ic_pusher_stop(L->push[i]);
            L->push[i] = L->push[--L->npush];
            break;
        }
    if (!live) {
        char path[4500];
        uint64_t next, bytes;
        unsigned long long sent = 0;
        snprintf(path, sizeof path, "%s/%s/etsi.state", ic_cases_dir(L->ic), c->id);
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "sent %llu", &sent) != 1)
                sent = 0;
            fclose(f);
        }
        snprintf(path, sizeof path, "%s/%s/spool", ic_cases_dir(L->ic), c->id);
        if (ic_spool_count(path, &next, &bytes, err) < 0 || next - 1 <= sent)
            return;
    }
    struct ic_pusher **np = realloc(L->push, (L->npush + 1) * sizeof *np);
    if (!np)
        return;
    L->push = np;
    if (ic_pusher_start(L->ic, c, L->o.log, L->o.log_arg, &L->push[L->npush], err) == 0)
        L->npush++;
    else
        logf_(L, "error", "intercept: %s", err);
}

/* A case whose delivery is no longer etsi (a PATCH): its pusher, if any,
 * is told and stops pushing (under the write lock). */
static void push_drop(struct ic_live *L, const struct ic_case *c)
{
    for (size_t i = 0; i < L->npush; i++)
        if (!strcmp(ic_pusher_case(L->push[i]), c->id))
            ic_pusher_update(L->push[i], c);
}

/* Delete the spool files whose every record the agency holds: by push
 * (sent, less the window sent again after a break) while an etsi case is
 * pushed, else by pull (the after= of its last request) or by what the
 * push sent before it stopped, whichever is further. Never the file being appended
 * to. Flusher only. */
static void spool_prune(struct ic_live *L, struct spool *s)
{
    char err[RW_ERRSZ], path[4500];
    uint64_t limit = atomic_load(&s->held), *f = NULL;
    size_t nf = 0;
    /* A case pushed by etsi keeps what the pusher may send again. */
    for (size_t i = 0; i < L->npush; i++)
        if (!strcmp(ic_pusher_case(L->push[i]), s->id)) {
            uint64_t sent, rec, skip;
            int conn;
            ic_pusher_stats(L->push[i], &sent, &rec, &conn, &skip);
            uint64_t pushed = sent > IC_ETSI_WINDOW ? sent - IC_ETSI_WINDOW : 0;
            /* While it pushes, only what it sent; once it stopped (the case
             * ended, or its delivery became pull), what either delivered. */
            limit = !ic_pusher_done(L->push[i]) || pushed > limit ? pushed : limit;
        }
    if (!limit || ic_spool_files(s->sdir, &f, &nf, err) < 0)
        return;
    for (size_t i = 0; i + 1 < nf && f[i + 1] - 1 <= limit; i++) {
        struct stat st;
        snprintf(path, sizeof path, "%s/%020llu.rws", s->sdir, (unsigned long long)f[i]);
        if (stat(path, &st) == 0 && unlink(path) == 0) {
            pthread_mutex_lock(&s->mu);
            s->bytes -= (uint64_t)st.st_size < s->bytes ? (uint64_t)st.st_size : s->bytes;
            pthread_mutex_unlock(&s->mu);
        }
    }
    free(f);
}

/* ---------- the active set ---------- */

/* Rebuild the hash and lists from the cases on disk and the identities in
 * the index: at start, when a case changes, when an identity of a user
 * some active case targets changes. */
int ic_live_rebuild(ic_t *ic, char *err)
{
    struct ic_live *L = ic_live_of(ic);
    struct ic_case *cs = NULL;
    size_t ncs = 0;
    int64_t now = rw_now_ns();
    if (!L)
        return 0;
    int rc = ic_list(ic, &cs, &ncs, err);
    if (rc < 0)
        return rc;
    pthread_rwlock_wrlock(&L->lk);
    for (size_t i = 0; i < L->nsp; i++)
        L->sp[i]->active = 0;
    struct tee_set *S = &L->set;
    set_clear(S);
    L->users = 0;
    size_t want = 64;
    for (size_t i = 0; i < ncs; i++)
        want += 4 * cs[i].ntargets;
    while (S->hcap < want)
        S->hcap = S->hcap ? S->hcap * 2 : 256;
    S->hash = calloc(S->hcap, sizeof *S->hash);
    if (!S->hash)
        S->hcap = 0;
    int nactive = 0;
    for (size_t i = 0; i < ncs && rc == 0; i++) {
        struct ic_case *c = &cs[i];
        int64_t end = ic_case_end_ns(c);
        if (c->delivery == IC_ETSI && c->type != IC_IRI)
            push_follow(L, c, end > now);
        else
            push_drop(L, c);
        if (end <= now || c->type == IC_IRI)
            continue; /* ended; an iri case never takes payload */
        struct spool *s = spool_get(L, c->id, err);
        if (!s) {
            rc = RW_EIO;
            break;
        }
        uint16_t si = 0;
        while (L->sp[si] != s)
            si++;
        ic_sel_t *sel = NULL;
        if ((rc = ic_sel_new(ic_index(ic), c, c->from, end, &sel, err)) < 0)
            break;
        pthread_mutex_lock(&s->mu);
        ic_sel_free(s->sel);
        s->sel = sel;
        s->from = c->from;
        s->end = end;
        pthread_mutex_unlock(&s->mu);
        s->active = 1;
        nactive++;
        for (size_t t = 0; t < c->ntargets; t++) {
            const struct ic_target *tg = &c->targets[t];
            if (tg->kind == IC_TARGET_USER) {
                L->users = 1;
            } else if (tg->kind == IC_TARGET_MAC) {
                struct mac *nm = realloc(S->macs, (S->nmacs + 1) * sizeof *nm);
                if (nm) {
                    S->macs = nm;
                    memcpy(nm[S->nmacs].mac, tg->mac, 6);
                    nm[S->nmacs++].sp = si;
                }
            } else {
                uint8_t a[16] = {0};
                memcpy(a, tg->addr, tg->family == AF_INET ? 4 : 16);
                add_addr(S, tg->family == AF_INET ? 4 : 6, a, tg->plen, si);
            }
        }
        size_t niv;
        const struct idx_ident *iv = ic_sel_intervals(sel, &niv);
        for (size_t k = 0; k < niv; k++)
            add_addr(S, iv[k].family, iv[k].addr, iv[k].plen, si);
    }
    set_seal(S);
    S->ver = atomic_fetch_add(&set_vers, 1) + 1;
    atomic_store(&L->ver, S->ver);
    atomic_store(&L->nactive, nactive);
    /* Spools that left the set: what they hold goes to disk now (under the
     * lock: another rebuild may grow the array). */
    for (size_t i = 0; i < L->nsp; i++) {
        char e2[RW_ERRSZ];
        struct spool *s = L->sp[i];
        if (s->active)
            continue;
        if (spool_flush(L, s, e2) < 0)
            logf_(L, "error", "intercept: %s", e2);
        uint64_t d = atomic_load(&s->dropped);
        if (d != s->dropped_logged) { /* the last word on its drops */
            logf_(L, "warn", "intercept: case %s: %llu packets dropped in all (spool %llu of "
                  "%llu bytes)", s->id, (unsigned long long)d, (unsigned long long)s->bytes,
                  (unsigned long long)s->quota);
            s->dropped_logged = d;
        }
    }
    pthread_rwlock_unlock(&L->lk);
    free(cs);
    if (rc < 0)
        logf_(L, "error", "intercept: the active cases could not all be set up: %s", err);
    return rc;
}

/* ---------- the tee ---------- */

static void take(struct ic_live *L, struct spool *s, const struct arc_tap *t)
{
    pthread_mutex_lock(&s->mu);
    if (!s->active || t->ts < s->from || t->ts >= s->end || !s->sel)
        goto out;
    int m = ic_sel_match(s->sel, t->dlt, t->snaplen, t->ts, t->data, t->caplen, t->len);
    if (m <= 0) {
        if (m < 0)
            atomic_fetch_add(&s->dropped, 1);
        goto out;
    }
    uint32_t caplen = t->caplen > IC_SPOOL_CAPLEN_MAX ? IC_SPOOL_CAPLEN_MAX : t->caplen;
    size_t need = ic_spool_rec_size(strlen(t->point), caplen);
    if (s->bytes + need > s->quota || s->blen + need > SPOOL_BUF_MAX) {
        atomic_fetch_add(&s->dropped, 1);
        goto out;
    }
    if (s->blen + need > s->bcap) {
        size_t nc = s->bcap ? s->bcap * 2 : 65536;
        while (nc < s->blen + need)
            nc *= 2;
        uint8_t *nb = realloc(s->buf, nc);
        if (!nb) {
            atomic_fetch_add(&s->dropped, 1);
            goto out;
        }
        s->buf = nb;
        s->bcap = nc;
    }
    if (!s->blen)
        s->buf_first = s->next_seq;
    s->blen += ic_spool_rec_put(s->buf + s->blen, s->next_seq++, t->ts, t->dlt, t->snaplen,
                                t->point, t->data, caplen, t->len);
    s->bytes += need;
    atomic_fetch_add(&s->teed, 1);
out:
    pthread_mutex_unlock(&s->mu);
    (void)L;
}

/* The spools S names for this packet, each once: its addresses, then the
 * prefixes and MACs. */
static int candidates(const struct tee_set *S, const struct arc_tap *t, uint16_t cand[64])
{
    const struct idx_flow *f = &t->parsed->flow;
    int nc = 0;
#define ADD(x)                                                                                  \
    do {                                                                                        \
        int dup_ = 0;                                                                           \
        for (int k_ = 0; k_ < nc; k_++)                                                         \
            dup_ |= cand[k_] == (x);                                                            \
        if (!dup_ && nc < 64)                                                                   \
            cand[nc++] = (x);                                                                   \
    } while (0)
    if (f->present) {
        uint64_t a[2][2] = {{0, 0}, {0, 0}};
        size_t al = f->family == 4 ? 4 : 16;
        memcpy(a[0], f->src, al);
        memcpy(a[1], f->dst, al);
        for (int d = 0; d < 2; d++) {
            const struct hent *e = hash_find(S, f->family, (const uint8_t *)a[d], 0);
            for (int i = 0; e && i < e->n; i++)
                ADD(e->sp[i]);
            for (size_t i = 0; i < S->npfx; i++)
                if (in_prefix(&S->pfx[i], f->family, a[d]))
                    ADD(S->pfx[i].sp);
        }
    }
    if (S->nmacs && t->dlt == DLT_EN10MB && t->caplen >= 12)
        for (size_t i = 0; i < S->nmacs; i++)
            if (!memcmp(t->data, S->macs[i].mac, 6) || !memcmp(t->data + 6, S->macs[i].mac, 6))
                ADD(S->macs[i].sp);
#undef ADD
    return nc;
}

void ic_live_tee(ic_t *ic, const struct arc_tap *t)
{
    struct ic_live *L = ic_live_of(ic);
    uint16_t cand[64];
    int nc;
    if (!L || !atomic_load(&L->nactive))
        return;
    const struct tee_set *mine = copy_get(L);
    if (mine) {
        if (!mine->macs_any && (!t->parsed->flow.present || !set_may(mine, &t->parsed->flow)))
            return;
        if (!(nc = candidates(mine, t, cand)))
            return;
        pthread_rwlock_rdlock(&L->lk);
    } else {
        pthread_rwlock_rdlock(&L->lk);
        nc = candidates(&L->set, t, cand);
    }
    /* A spool named by a copy that a rebuild has since replaced is still
     * in L->sp (spools are never removed while the engine runs), and take()
     * checks under its mutex that its case is active and the packet in its
     * window. */
    for (int i = 0; i < nc; i++)
        take(L, L->sp[cand[i]], t);
    pthread_rwlock_unlock(&L->lk);
}

int ic_live_users(ic_t *ic)
{
    struct ic_live *L = ic_live_of(ic);
    return L && L->users;
}

/* ---------- the flusher ---------- */

static void *flusher(void *arg)
{
    struct ic_live *L = arg;
    char err[RW_ERRSZ];
    /* Named, so that its CPU can be told apart (top -H, make bench). */
    pthread_setname_np(pthread_self(), "ic-flush");
    while (!atomic_load(&L->stop)) {
        struct timespec ts = {0, IC_FLUSH_MS * 1000000L};
        nanosleep(&ts, NULL);
        int any = 0;
        pthread_rwlock_rdlock(&L->lk);
        for (size_t i = 0; i < L->nsp; i++) {
            struct spool *s = L->sp[i];
            uint64_t before = atomic_load(&s->durable);
            int64_t now = rw_mono_ns();
            if (spool_due(s, now)) {
                s->synced_at = now;
                if (spool_flush(L, s, err) < 0)
                    logf_(L, "error", "intercept: %s", err);
            }
            any |= atomic_load(&s->durable) != before;
            if (++s->prune_tick % (1000 / IC_FLUSH_MS) == 0) /* once a second */
                spool_prune(L, s);
            uint64_t d = atomic_load(&s->dropped);
            if (d != s->dropped_logged &&
                (!s->dropped_logged || rw_mono_ns() - s->dropped_logged_at > 10 * RW_NS_PER_SEC)) {
                s->dropped_logged_at = rw_mono_ns();
                logf_(L, "warn", "intercept: case %s: %llu packets dropped so far (spool %llu "
                      "of %llu bytes): they are missing from its sequence's delivery",
                      s->id, (unsigned long long)d, (unsigned long long)s->bytes,
                      (unsigned long long)s->quota);
                s->dropped_logged = d;
            }
            int alarm = s->bytes * 100 >= s->quota * IC_ALARM_PCT;
            if (alarm != s->alarm) {
                s->alarm = alarm;
                logf_(L, alarm ? "warn" : "info", "intercept: case %s: spool %s: %llu of %llu "
                      "bytes", s->id, alarm ? "above its alarm level" : "back below its alarm "
                      "level", (unsigned long long)s->bytes, (unsigned long long)s->quota);
            }
        }
        pthread_rwlock_unlock(&L->lk);
        if (any) {
            pthread_mutex_lock(&L->cvmu);
            pthread_cond_broadcast(&L->cv);
            pthread_mutex_unlock(&L->cvmu);
        }
    }
    return NULL;
}

int ic_live_start(ic_t *ic, const struct ic_live_opts *o, char *err)
{
    struct ic_live *L = calloc(1, sizeof *L);
    if (!L)
        return rw_err(err, RW_ENOMEM, "out of memory");
    L->ic = ic;
    L->o = *o;
    if (!L->o.quota)
        L->o.quota = IC_DEFAULT_QUOTA;
    pthread_rwlock_init(&L->lk, NULL);
    pthread_mutex_init(&L->cvmu, NULL);
    pthread_cond_init(&L->cv, NULL);
    ic_live_set(ic, L);
    int rc = ic_live_rebuild(ic, err);
    if (rc == 0 && pthread_create(&L->thr, NULL, flusher, L) != 0)
        rc = rw_err(err, RW_EIO, "cannot start the intercept flusher");
    if (rc < 0) {
        ic_live_set(ic, NULL);
        L->thr = 0;
        atomic_store(&L->stop, 1);
        ic_live_free(L);
        return rc;
    }
    return 0;
}

void ic_live_free(struct ic_live *L)
{
    char err[RW_ERRSZ];
    if (!L)
        return;
    for (size_t i = 0; i < L->npush; i++)
        ic_pusher_stop(L->push[i]);
    free(L->push);
    for (size_t i = 0; i < L->nsp; i++) {
        struct spool *s = L->sp[i];
        if (spool_flush(L, s, err) < 0)
            logf_(L, "error", "intercept: %s", err);
        if (s->fd >= 0)
            close(s->fd);
        ic_sel_free(s->sel);
        free(s->buf);
        free(s->spare);
        pthread_mutex_destroy(&s->mu);
        free(s);
    }
    free(L->sp);
    set_clear(&L->set);
    pthread_rwlock_destroy(&L->lk);
    pthread_mutex_destroy(&L->cvmu);
    pthread_cond_destroy(&L->cv);
    free(L);
}

void ic_live_stop(ic_t *ic)
{
    struct ic_live *L = ic_live_of(ic);
    if (!L)
        return;
    atomic_store(&L->stop, 1);
    pthread_join(L->thr, NULL);
    pthread_mutex_lock(&L->cvmu);
    pthread_cond_broadcast(&L->cv);
    pthread_mutex_unlock(&L->cvmu);
    ic_live_set(ic, NULL);
    ic_live_free(L);
}

/* ---------- for delivery and status ---------- */

int ic_live_durable(ic_t *ic, const char *id, uint64_t *durable, int *active, char *err)
{
    struct ic_live *L = ic_live_of(ic);
    *active = 0;
    if (L) {
        pthread_rwlock_rdlock(&L->lk);
        for (size_t i = 0; i < L->nsp; i++)
            if (!strcmp(L->sp[i]->id, id)) {
                *durable = atomic_load(&L->sp[i]->durable);
                *active = L->sp[i]->active;
                pthread_rwlock_unlock(&L->lk);
                return 0;
            }
        pthread_rwlock_unlock(&L->lk);
    }
    /* Not spooled by this run: every complete record on disk counts. */
    char sdir[4400];
    uint64_t next, bytes;
    snprintf(sdir, sizeof sdir, "%s/%s/spool", ic_cases_dir(ic), id);
    int rc = ic_spool_count(sdir, &next, &bytes, err);
    *durable = rc == 0 ? next - 1 : 0;
    return rc;
}

void ic_live_wait(ic_t *ic, uint64_t seen, const char *id, int ms)
{
    struct ic_live *L = ic_live_of(ic);
    uint64_t d;
    int active;
    char err[RW_ERRSZ];
    struct timespec dl;
    if (!L) {
        struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
        nanosleep(&ts, NULL);
        return;
    }
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&L->cvmu);
    while (!atomic_load(&L->stop) && ic_live_durable(ic, id, &d, &active, err) == 0 &&
           d <= seen)
        if (pthread_cond_timedwait(&L->cv, &L->cvmu, &dl) != 0)
            break;
    pthread_mutex_unlock(&L->cvmu);
}

void ic_live_pulled(ic_t *ic, const char *id, uint64_t seq, int connect)
{
    struct ic_live *L = ic_live_of(ic);
    if (!L)
        return;
    pthread_rwlock_rdlock(&L->lk);
    for (size_t i = 0; i < L->nsp; i++) {
        struct spool *s = L->sp[i];
        if (strcmp(s->id, id))
            continue;
        if (connect) {
            atomic_fetch_add(&s->connections, 1);
            uint64_t h = atomic_load(&s->held);
            while (seq > h && !atomic_compare_exchange_weak(&s->held, &h, seq))
                ;
            pthread_rwlock_unlock(&L->lk);
            return;
        }
        uint64_t d = atomic_load(&s->delivered);
        while (seq > d && !atomic_compare_exchange_weak(&s->delivered, &d, seq))
            ;
        break;
    }
    pthread_rwlock_unlock(&L->lk);
}

size_t ic_live_stats(ic_t *ic, struct ic_live_stat *out, size_t max)
{
    struct ic_live *L = ic_live_of(ic);
    size_t n = 0;
    if (!L)
        return 0;
    pthread_rwlock_rdlock(&L->lk);
    for (size_t i = 0; i < L->nsp && n < max; i++) {
        struct spool *s = L->sp[i];
        struct ic_live_stat *o = &out[n++];
        snprintf(o->id, sizeof o->id, "%s", s->id);
        pthread_mutex_lock(&s->mu);
        o->spool_bytes = s->bytes;
        o->next_seq = s->next_seq;
        pthread_mutex_unlock(&s->mu);
        o->durable = atomic_load(&s->durable);
        o->teed = atomic_load(&s->teed);
        o->dropped = atomic_load(&s->dropped);
        o->quota = s->quota;
        for (size_t k = 0; k < L->npush; k++)
            if (!strcmp(ic_pusher_case(L->push[k]), s->id)) {
                o->push = 1;
                ic_pusher_stats(L->push[k], &o->push_sent, &o->push_reconnects,
                                &o->push_connected, &o->push_skipped);
                o->push_failures = ic_pusher_failures(L->push[k], o->push_error,
                                                      sizeof o->push_error);
            }
        o->delivered = atomic_load(&s->delivered);
        o->connections = atomic_load(&s->connections);
        o->alarm = s->alarm;
        o->active = s->active;
    }
    pthread_rwlock_unlock(&L->lk);
    return n;
}
