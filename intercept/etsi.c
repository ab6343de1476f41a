/* etsi.c -- push delivery to the agency after ETSI TS 102 232-1 (PS-PDU,
 * session layer) and -3 (IP content): each spooled packet of a case whose
 * delivery is "etsi" becomes one BER-encoded PS-PDU on a TCP connection to
 * the agency's HOST:PORT, in sequence-number order; a keep-alive TRI goes
 * out when the link has been idle; after a reconnection the last
 * IC_ETSI_WINDOW PDUs sent are sent again first (the receiver drops
 * duplicates by sequence number), for what the kernel held when the link
 * broke is not known to have arrived (intercept.h, ic_etsi_*).
 *
 * The encoder writes definite lengths only (DER-like), with the module's
 * IMPLICIT tags: a tagged CHOICE is always explicit (constructed, holding
 * its alternative). */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "index/index.h"

/* ---------- BER ---------- */

/* A growable buffer; an encoding error (out of memory) sticks. */
struct ber {
    uint8_t *p;
    size_t n, cap;
    int failed;
};

static void put(struct ber *b, const void *p, size_t n)
{
    if (b->failed)
        return;
    if (b->n + n > b->cap) {
        size_t nc = b->cap ? b->cap * 2 : 512;
        while (nc < b->n + n)
            nc *= 2;
        uint8_t *np = realloc(b->p, nc);
        if (!np) {
            b->failed = 1;
            return;
        }
        b->p = np;
        b->cap = nc;
    }
    memcpy(b->p + b->n, p, n);
    b->n += n;
}

static void put_len(struct ber *b, size_t n)
{
    uint8_t l[9];
    int k = 0;
    if (n < 128) {
        l[0] = (uint8_t)n;
        put(b, l, 1);
        return;
    }
    for (size_t v = n; v; v >>= 8)
        k++;
    l[0] = (uint8_t)(0x80 | k);
    for (int i = 0; i < k; i++)
        l[1 + i] = (uint8_t)(n >> (8 * (k - 1 - i)));
    put(b, l, (size_t)k + 1);
}

/* Tag, length, content. */
static void tlv(struct ber *b, uint8_t tag, const void *v, size_t n)
{
    put(b, &tag, 1);
    put_len(b, n);
    put(b, v, n);
}

/* A constructed value around what inner holds (freed). */
static void wrap(struct ber *b, uint8_t tag, struct ber *inner)
{
    if (inner->failed)
        b->failed = 1;
    tlv(b, tag, inner->p, inner->n);
    free(inner->p);
    memset(inner, 0, sizeof *inner);
}

static void integer(struct ber *b, uint8_t tag, uint64_t v)
{
    uint8_t d[9];
    int k = 0;
    do
        d[8 - k++] = (uint8_t)v, v >>= 8;
    while (v);
    if (d[9 - k] & 0x80) /* a positive number keeps its top bit clear */
        d[8 - k++] = 0;
    tlv(b, tag, d + 9 - k, (size_t)k);
}

/* Context-specific tags: primitive 0x80|n, constructed 0xa0|n. */
#define CTX(n) ((uint8_t)(0x80 | (n)))
#define CTXC(n) ((uint8_t)(0xa0 | (n)))

/* li-psDomainId: { itu-t(0) identified-organization(4) etsi(0)
 * securityDomain(2) lawfulIntercept(2) li-ps(5) genHeader(1) version(17) } */
static const uint8_t ps_domain_oid[] = {0x04, 0x00, 0x02, 0x02, 0x05, 0x01, 0x11};
/* iPCCObjId (TS 102 232-3): RELATIVE-OID { li-ps(5) iPAccess(3) version(10) ciobj(2) } */
static const uint8_t ipcc_oid[] = {0x05, 0x03, 0x0a, 0x02};

static void psheader(struct ber *b, const struct ic_case *c, const char *element, uint64_t seq,
                     int64_t ts)
{
    struct ber h = {0}, cid = {0}, nid = {0};
    char t[40];
    struct tm tm;
    time_t s = (time_t)(ts / RW_NS_PER_SEC);
    gmtime_r(&s, &tm);
    snprintf(t, sizeof t, "%04d%02d%02d%02d%02d%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(ts % RW_NS_PER_SEC / 1000000));
    const char *op = c->operator_id[0] ? c->operator_id : "rewind";
    const char *ne = c->element_id[0] ? c->element_id : element;
    tlv(&nid, CTX(0), op, strnlen(op, 16));            /* operatorIdentifier */
    tlv(&nid, CTX(1), ne, strnlen(ne, 16));            /* networkElementIdentifier */
    wrap(&cid, CTXC(0), &nid);                         /* networkIdentifier */
    integer(&cid, CTX(1), 1);                          /* communicationIdentityNumber */
    tlv(&cid, CTX(2), c->country, 2);                  /* deliveryCountryCode */
    tlv(&h, CTX(0), ps_domain_oid, sizeof ps_domain_oid); /* li-psDomainId */
    tlv(&h, CTX(1), c->id, strnlen(c->id, 25));        /* lawfulInterceptionIdentifier */
    tlv(&h, CTX(2), c->country, 2);                    /* authorizationCountryCode */
    wrap(&h, CTXC(3), &cid);                           /* communicationIdentifier */
    integer(&h, CTX(4), seq);                          /* sequenceNumber */
    tlv(&h, CTX(5), t, strlen(t));                     /* timeStamp (GeneralizedTime) */
    wrap(b, CTXC(1), &h);                              /* pSHeader */
}

int ic_etsi_cc(const struct ic_case *c, const char *element, uint64_t seq, int64_t ts, int dir,
               const uint8_t *ip, size_t iplen, uint8_t **out, size_t *n)
{
    struct ber pdu = {0}, body = {0}, pay = {0}, seqof = {0}, cc = {0}, ccc = {0}, ipcc = {0},
               ipc = {0};
    uint8_t d = (uint8_t)dir;
    tlv(&ipc, CTX(0), ip, iplen);                      /* iPPackets */
    tlv(&ipcc, CTX(0), ipcc_oid, sizeof ipcc_oid);     /* iPCCObjId */
    wrap(&ipcc, CTXC(1), &ipc);                        /* iPCCContents (CHOICE) */
    wrap(&ccc, CTXC(2), &ipcc);                        /* iPCC */
    tlv(&cc, CTX(0), &d, 1);                           /* payloadDirection */
    wrap(&cc, CTXC(2), &ccc);                          /* cCContents (CHOICE) */
    wrap(&seqof, 0x30, &cc);                           /* CCPayload */
    wrap(&pay, CTXC(1), &seqof);                       /* cCPayloadSequence */
    psheader(&body, c, element, seq, ts);
    wrap(&body, CTXC(2), &pay);                        /* payload (CHOICE) */
    wrap(&pdu, 0x30, &body);                           /* PS-PDU */
    if (pdu.failed) {
        free(pdu.p);
        return RW_ENOMEM;
    }
    *out = pdu.p;
    *n = pdu.n;
    return 0;
}

int ic_etsi_keepalive(const struct ic_case *c, const char *element, uint64_t seq, int64_t ts,
                      uint8_t **out, size_t *n)
{
    struct ber pdu = {0}, body = {0}, tri = {0}, trip = {0};
    tlv(&tri, CTX(3), "", 0);                          /* keep-alive NULL */
    wrap(&trip, CTXC(2), &tri);                        /* tRIPayload (CHOICE) */
    psheader(&body, c, element, seq, ts);
    wrap(&body, CTXC(2), &trip);                       /* payload (CHOICE) */
    wrap(&pdu, 0x30, &body);                           /* PS-PDU */
    if (pdu.failed) {
        free(pdu.p);
        return RW_ENOMEM;
    }
    *out = pdu.p;
    *n = pdu.n;
    return 0;
}

/* ---------- the IP packet of a frame, and its direction ---------- */

int ic_etsi_ip(int dlt, const uint8_t *d, uint32_t caplen, uint32_t *off)
{
    uint32_t o;
    unsigned et;
    switch (dlt) {
    case DLT_EN10MB:
        if (caplen < 14)
            return -1;
        o = 14;
        et = (unsigned)d[12] << 8 | d[13];
        while ((et == 0x8100 || et == 0x88a8 || et == 0x9100) && o + 4 <= caplen) {
            et = (unsigned)d[o + 2] << 8 | d[o + 3];
            o += 4;
        }
        if (et != 0x0800 && et != 0x86dd)
            return -1;
        break;
    case DLT_LINUX_SLL:
        if (caplen < 16)
            return -1;
        o = 16;
        break;
#ifdef DLT_LINUX_SLL2
    case DLT_LINUX_SLL2:
        o = 20;
        break;
#endif
    case DLT_NULL:
    case DLT_LOOP:
        o = 4;
        break;
    case DLT_RAW:
#ifdef DLT_IPV4
    case DLT_IPV4:
    case DLT_IPV6:
#endif
        o = 0;
        break;
    default:
        return -1;
    }
    if (o >= caplen || ((d[o] >> 4) != 4 && (d[o] >> 4) != 6))
        return -1;
    *off = o;
    return 0;
}

static int in_net(int family, const uint8_t *net, int plen, const uint8_t *a)
{
    (void)family;
    int full = plen / 8, rest = plen % 8;
    if (memcmp(net, a, (size_t)full))
        return 0;
    return !rest || ((net[full] ^ a[full]) & (0xff << (8 - rest))) == 0;
}

/* Is address a (family 4 or 6, in 16 bytes) the case's target at ts? */
static int is_target(const struct ic_case *c, ic_sel_t *sel, int family, const uint8_t *a,
                     int64_t ts)
{
    for (size_t i = 0; i < c->ntargets; i++) {
        const struct ic_target *t = &c->targets[i];
        if ((t->kind == IC_TARGET_IP || t->kind == IC_TARGET_PREFIX) &&
            (t->family == AF_INET ? 4 : 6) == family && in_net(family, t->addr, t->plen, a))
            return 1;
    }
    size_t n;
    const struct idx_ident *iv = sel ? ic_sel_intervals(sel, &n) : NULL;
    for (size_t i = 0; iv && i < n; i++)
        if (iv[i].family == family && iv[i].start <= ts && ts < iv[i].end &&
            in_net(family, iv[i].addr, iv[i].plen, a))
            return 1;
    return 0;
}

int ic_etsi_direction(const struct ic_case *c, ic_sel_t *sel, const uint8_t *ip, size_t n,
                      int64_t ts)
{
    uint8_t s[16] = {0}, d[16] = {0};
    int fam;
    if (n >= 20 && ip[0] >> 4 == 4) {
        memcpy(s, ip + 12, 4);
        memcpy(d, ip + 16, 4);
        fam = 4;
    } else if (n >= 40 && ip[0] >> 4 == 6) {
        memcpy(s, ip + 8, 16);
        memcpy(d, ip + 24, 16);
        fam = 6;
    } else {
        return IC_DIR_INDETERMINATE;
    }
    if (is_target(c, sel, fam, s, ts))
        return IC_DIR_FROM_TARGET;
    if (is_target(c, sel, fam, d, ts))
        return IC_DIR_TO_TARGET;
    return IC_DIR_INDETERMINATE;
}

/* ---------- the pusher: one thread per etsi case ---------- */

struct ic_pusher {
    ic_t *ic;
    struct ic_case c;
    char sdir[4400], state[4400];
    char element[17];
    pthread_t thr;
    pthread_mutex_t mu;              /* guards c (ic_pusher_update) and why */
    atomic_int stop, done, connected;
    atomic_int redial;               /* the delivery settings changed */
    atomic_uint_fast64_t failures;   /* connection attempts that failed */
    char why[RW_ERRSZ];              /* of the last one; "" once connected */
    atomic_uint_fast64_t sent;        /* the highest number written to a connection */
    atomic_uint_fast64_t reconnects;
    atomic_uint_fast64_t skipped;     /* spooled packets that are no IP packet */
    void (*log)(void *arg, const char *level, const char *msg);
    void *log_arg;
};

static void plog(struct ic_pusher *p, const char *level, const char *fmt, ...) RW_PRINTF(3, 4);
static void plog(struct ic_pusher *p, const char *level, const char *fmt, ...)
{
    char msg[RW_ERRSZ];
    va_list ap;
    if (!p->log)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    p->log(p->log_arg, level, msg);
}

static void save(struct ic_pusher *p, uint64_t sent)
{
    char tmp[4500], buf[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", p->state);
    int n = snprintf(buf, sizeof buf, "sent %llu\n", (unsigned long long)sent);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return;
    if (write(fd, buf, (size_t)n) == n && fsync(fd) == 0)
        (void)!rename(tmp, p->state);
    close(fd);
}

static uint64_t load(struct ic_pusher *p)
{
    unsigned long long v = 0;
    FILE *f = fopen(p->state, "r");
    if (f) {
        if (fscanf(f, "sent %llu", &v) != 1)
            v = 0;
        fclose(f);
    }
    return v;
}

/* The case as the pusher uses it now, into c (settings may change). */
static void snapshot(struct ic_pusher *p, struct ic_case *c)
{
    pthread_mutex_lock(&p->mu);
    *c = p->c;
    pthread_mutex_unlock(&p->mu);
}

static void set_why(struct ic_pusher *p, const char *why)
{
    pthread_mutex_lock(&p->mu);
    snprintf(p->why, sizeof p->why, "%s", why);
    pthread_mutex_unlock(&p->mu);
}

/* Send spooled PDUs on link l from sent + 1 on, keep-alives when idle, until
 * the link breaks, the settings change, the case ends or the pusher stops.
 * *sent and *saved follow what was written and what was recorded. */
static void push_on(struct ic_pusher *p, const struct ic_case *c, ic_link_t *l, uint64_t *sent,
                    uint64_t *saved)
{
    char err[RW_ERRSZ];
    /* What the kernel held when the link broke may not have arrived. */
    uint64_t from = *sent > IC_ETSI_WINDOW ? *sent - IC_ETSI_WINDOW : 0;
    plog(p, "info", "intercept: case %s: etsi push connected to %s%s, sending from %llu", c->id,
         c->deliver_to, c->tls ? " (TLS)" : "", (unsigned long long)from + 1);
    ic_spool_reader_t *r = NULL;
    ic_sel_t *sel = NULL;
    if (ic_spool_reader_open(p->sdir, from, &r, err) < 0 ||
        ic_sel_new(ic_index(p->ic), c, c->from, ic_case_end_ns(c), &sel, err) < 0)
        plog(p, "error", "intercept: case %s: %s", c->id, err);
    int64_t idle = rw_mono_ns(), sel_at = rw_mono_ns();
    while (r && !atomic_load(&p->stop) && !atomic_load(&p->redial)) {
        uint64_t durable;
        int active, rc;
        struct ic_spool_rec rec;
        if (ic_live_durable(p->ic, c->id, &durable, &active, err) < 0 ||
            (rc = ic_spool_next(r, durable, &rec, err)) < 0) {
            plog(p, "error", "intercept: case %s: etsi push: %s", c->id, err);
            break;
        }
        if (rc == 1) {
            uint32_t off;
            uint8_t *pdu = NULL;
            size_t n = 0;
            if (ic_etsi_ip(rec.dlt, rec.data, rec.caplen, &off) < 0) {
                atomic_fetch_add(&p->skipped, 1); /* no IP packet: no IPCC for it */
            } else {
                int dir = ic_etsi_direction(c, sel, rec.data + off, rec.caplen - off, rec.ts);
                if (ic_etsi_cc(c, p->element, rec.seq, rec.ts, dir, rec.data + off,
                               rec.caplen - off, &pdu, &n) < 0 ||
                    ic_link_send(l, pdu, n) < 0) {
                    free(pdu);
                    break;
                }
                free(pdu);
            }
            if (rec.seq > *sent)
                atomic_store(&p->sent, *sent = rec.seq);
            idle = rw_mono_ns();
            continue;
        }
        if (ic_link_drain(l) < 0)
            break;
        if (*sent != *saved) {
            save(p, *sent);
            *saved = *sent;
        }
        if (!active && *sent >= durable) {
            struct ic_case k;
            if (ic_get(p->ic, c->id, &k, err) == 1 && ic_case_end_ns(&k) <= rw_now_ns()) {
                plog(p, "info", "intercept: case %s has ended: etsi push delivered up to %llu",
                     c->id, (unsigned long long)*sent);
                atomic_store(&p->done, 1);
                break;
            }
        }
        if (rw_mono_ns() - idle > IC_ETSI_KEEPALIVE_S * RW_NS_PER_SEC) {
            uint8_t *ka = NULL;
            size_t n = 0;
            if (ic_etsi_keepalive(c, p->element, *sent, rw_now_ns(), &ka, &n) < 0 ||
                ic_link_send(l, ka, n) < 0) {
                free(ka);
                break;
            }
            free(ka);
            idle = rw_mono_ns();
        }
        if (rw_mono_ns() - sel_at > RW_NS_PER_SEC) { /* a user target's new addresses */
            ic_sel_t *ns = NULL;
            if (ic_sel_new(ic_index(p->ic), c, c->from, ic_case_end_ns(c), &ns, err) == 0) {
                ic_sel_free(sel);
                sel = ns;
            }
            sel_at = rw_mono_ns();
        }
        ic_live_wait(p->ic, durable, c->id, 200);
    }
    ic_spool_reader_close(r);
    ic_sel_free(sel);
}

static void *pusher(void *arg)
{
    struct ic_pusher *p = arg;
    struct ic_case *c = malloc(sizeof *c);
    char err[RW_ERRSZ], logged[RW_ERRSZ] = "";
    pthread_setname_np(pthread_self(), "ic-push");
    uint64_t sent = load(p), saved = sent;
    long backoff = 200;
    int first = 1;
    atomic_store(&p->sent, sent);
    while (c && !atomic_load(&p->stop)) {
        ic_link_t *l = NULL;
        atomic_store(&p->redial, 0);
        snapshot(p, c);
        if (c->delivery != IC_ETSI) {
            plog(p, "info", "intercept: case %s: delivery is no longer etsi: push stops after "
                 "%llu", c->id, (unsigned long long)sent);
            atomic_store(&p->done, 1);
            break;
        }
        if (ic_link_open(c, &p->stop, &l, err) < 0) {
            atomic_fetch_add(&p->failures, 1);
            set_why(p, err);
            /* A new reason at once; the same one again every 5 s at most. */
            if (first || backoff >= 5000 || strcmp(err, logged))
                plog(p, "warn", "intercept: case %s: etsi push to %s: %s; trying again "
                     "(the spool keeps the packets)", c->id, c->deliver_to, err);
            snprintf(logged, sizeof logged, "%s", err);
            for (long w = 0; w < backoff && !atomic_load(&p->stop) && !atomic_load(&p->redial);
                 w += 100) {
                struct timespec ts = {0, 100000000L};
                nanosleep(&ts, NULL);
            }
            backoff = atomic_load(&p->redial) ? 200 : backoff * 2 > 5000 ? 5000 : backoff * 2;
            first = 0;
            continue;
        }
        if (!first)
            atomic_fetch_add(&p->reconnects, 1);
        first = 0;
        backoff = 200;
        set_why(p, "");
        logged[0] = 0;
        atomic_store(&p->connected, 1);
        push_on(p, c, l, &sent, &saved);
        atomic_store(&p->connected, 0);
        ic_link_close(l);
        if (sent != saved) {
            save(p, sent);
            saved = sent;
        }
        if (atomic_load(&p->done))
            break;
        if (!atomic_load(&p->stop))
            plog(p, "warn", "intercept: case %s: etsi push to %s %s after %llu; reconnecting",
                 c->id, c->deliver_to,
                 atomic_load(&p->redial) ? "has new delivery settings" : "broke",
                 (unsigned long long)sent);
    }
    free(c);
    return NULL;
}

int ic_pusher_start(ic_t *ic, const struct ic_case *c, void (*log)(void *, const char *,
                                                                   const char *),
                    void *log_arg, struct ic_pusher **out, char *err)
{
    struct ic_pusher *p = calloc(1, sizeof *p);
    if (!p)
        return rw_err(err, RW_ENOMEM, "out of memory");
    p->ic = ic;
    p->c = *c;
    p->log = log;
    p->log_arg = log_arg;
    pthread_mutex_init(&p->mu, NULL);
    snprintf(p->sdir, sizeof p->sdir, "%s/%s/spool", ic_cases_dir(ic), c->id);
    snprintf(p->state, sizeof p->state, "%s/%s/etsi.state", ic_cases_dir(ic), c->id);
    char host[256] = "rewind";
    gethostname(host, sizeof host - 1);
    snprintf(p->element, sizeof p->element, "%.16s", host);
    if (pthread_create(&p->thr, NULL, pusher, p) != 0) {
        pthread_mutex_destroy(&p->mu);
        free(p);
        return rw_err(err, RW_EIO, "cannot start the etsi pusher of case %s", c->id);
    }
    *out = p;
    return 0;
}

void ic_pusher_update(struct ic_pusher *p, const struct ic_case *c)
{
    pthread_mutex_lock(&p->mu);
    int changed = p->c.delivery != c->delivery || strcmp(p->c.deliver_to, c->deliver_to) || strcmp(p->c.country, c->country) ||
                  strcmp(p->c.operator_id, c->operator_id) ||
                  strcmp(p->c.element_id, c->element_id) || p->c.tls != c->tls ||
                  strcmp(p->c.tls_ca, c->tls_ca) || strcmp(p->c.tls_cert, c->tls_cert) ||
                  strcmp(p->c.tls_key, c->tls_key) ||
                  strcmp(p->c.tls_server_name, c->tls_server_name);
    p->c = *c;
    pthread_mutex_unlock(&p->mu);
    /* New settings take effect on a new link, which resends from the
     * oldest unconfirmed number as after any break. */
    if (changed)
        atomic_store(&p->redial, 1);
}

uint64_t ic_pusher_failures(struct ic_pusher *p, char *why, size_t n)
{
    pthread_mutex_lock(&p->mu);
    snprintf(why, n, "%s", p->why);
    pthread_mutex_unlock(&p->mu);
    return atomic_load(&p->failures);
}

const char *ic_pusher_case(const struct ic_pusher *p) { return p->c.id; }

int ic_pusher_done(struct ic_pusher *p) { return atomic_load(&p->done); }

void ic_pusher_stats(const struct ic_pusher *p, uint64_t *sent, uint64_t *reconnects,
                     int *connected, uint64_t *skipped)
{
    *sent = atomic_load(&p->sent);
    *reconnects = atomic_load(&p->reconnects);
    *connected = atomic_load(&p->connected);
    *skipped = atomic_load(&p->skipped);
}

void ic_pusher_stop(struct ic_pusher *p)
{
    if (!p)
        return;
    atomic_store(&p->stop, 1);
    pthread_join(p->thr, NULL);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
