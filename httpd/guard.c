/* guard.c -- the HTTP server's limits: connections counted in total and per
 * client address, an idle timeout, a minimum-progress timeout for answers,
 * and the checks of raw request bytes (UTF-8, %00) that libmicrohttpd does
 * not make. A watchdog thread enforces the timeouts; the limits are
 * answered as the API's JSON by handle() (httpd.c), which asks here.
 *
 * Why a watchdog: libmicrohttpd's own timeout counts any byte as activity,
 * so a client reading one byte a second (or sending one header byte every
 * few seconds) keeps its connection, its thread and, for a packet answer,
 * one of the --max-queries slots for ever. The watchdog bounds a
 * connection by progress instead of duration: waiting for a request it
 * gets --idle-timeout seconds; while an answer waits in its socket for the
 * client, the client must accept --min-rate bytes a second over each
 * --send-timeout window. An answer that is not waiting on its client (a
 * long scan, a follow stream with nothing new) is never cut: slow is not
 * idle. A connection is cut with shutdown(2) on its socket; libmicrohttpd
 * then ends it as a client gone away, and the stream's cleanup names why. */
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <linux/sockios.h>
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "httpd/httpd_int.h"

/* ---------- raw bytes ---------- */

size_t hd_utf8_prefix(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned char c = s[i];
        size_t k;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            k = 1, cp = c & 0x1f;
        else if (c >= 0xe0 && c <= 0xef)
            k = 2, cp = c & 0x0f;
        else if (c >= 0xf0 && c <= 0xf4)
            k = 3, cp = c & 0x07;
        else
            return i;
        if (i + k >= n) /* cut short */
            return i;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return i;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        /* Overlong three- and four-byte forms, surrogates, beyond U+10FFFF. */
        if ((k == 2 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (k == 3 && (cp < 0x10000 || cp > 0x10ffff)))
            return i;
        i += k + 1;
    }
    return n;
}

void hd_utf8_clean(char *s)
{
    size_t n = strlen(s), i = 0;
    while (i < n) {
        i += hd_utf8_prefix((const unsigned char *)s + i, n - i);
        if (i < n)
            s[i++] = '?';
    }
}

static int hexval(int c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
         : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Percent-decode [s, s+n) into out (room for n bytes), as libmicrohttpd
 * does ("%4" or "%zz" stay as they are); the decoded length. */
static size_t pct_decode(const char *s, size_t n, unsigned char *out)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        int a, b;
        if (s[i] == '%' && i + 2 < n && (a = hexval((unsigned char)s[i + 1])) >= 0 &&
            (b = hexval((unsigned char)s[i + 2])) >= 0) {
            out[o++] = (unsigned char)(a << 4 | b);
            i += 2;
        } else {
            out[o++] = (unsigned char)s[i];
        }
    }
    return o;
}

/* What is wrong with one decoded piece: NULL when nothing. */
static const char *piece_fault(const unsigned char *d, size_t n)
{
    if (memchr(d, 0, n))
        return "contains a NUL byte (%00)";
    if (hd_utf8_prefix(d, n) != n)
        return "is not valid UTF-8";
    return NULL;
}

/* A name for messages: printable ASCII of the raw (escaped) text, cut. */
static void shown(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 4 < cap; i++)
        out[o++] = (unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f ? s[i] : '?';
    if (n && o + 4 >= cap && cap > 4)
        memcpy(out + o - 3, "...", 3);
    out[o] = 0;
}

int hd_raw_uri_check(const char *uri, char *msg, size_t cap)
{
    size_t n = strlen(uri), plen = strcspn(uri, "?");
    unsigned char *d = malloc(n + 1);
    const char *why;
    char name[72];
    int rc = 0;
    msg[0] = 0;
    if (!d)
        return 0; /* nothing to judge with; libmicrohttpd's own parsing goes on */
    if ((why = piece_fault(d, pct_decode(uri, plen, d)))) {
        snprintf(msg, cap, "the path %s", why);
        rc = 1;
        goto done;
    }
    for (const char *p = uri[plen] ? uri + plen + 1 : uri + n; *p;) {
        size_t l = strcspn(p, "&"), kl = strcspn(p, "=&");
        shown(p, kl, name, sizeof name);
        if ((why = piece_fault(d, pct_decode(p, kl, d)))) {
            snprintf(msg, cap, "a parameter name ('%s') %s", name, why);
            rc = 1;
            goto done;
        }
        if (kl < l && (why = piece_fault(d, pct_decode(p + kl + 1, l - kl - 1, d)))) {
            /* The name (valid: judged above) is shown decoded, as the API
             * names its parameters; its value's fault is in msg. */
            size_t dl = pct_decode(p, kl, d);
            dl = hd_utf8_prefix(d, dl < 64 ? dl : 64);
            snprintf(name, sizeof name, "%.*s", (int)dl, (const char *)d);
            snprintf(msg, cap, "parameter '%s': its value %s", name, why);
            rc = 1;
            goto done;
        }
        p += l + (p[l] == '&');
    }
done:
    free(d);
    return rc;
}

void hd_bounded_value(const char *v, size_t max, char *out, size_t cap)
{
    size_t n = strlen(v), i;
    int plain = n <= max;
    for (i = 0; plain && i < n; i++)
        plain = (unsigned char)v[i] >= 0x20 && v[i] != 0x7f;
    if (plain && n < cap) {
        memcpy(out, v, n + 1);
        return;
    }
    /* A cut, printable form and what identifies the whole: its length and
     * the start of its SHA-256 (the audit record has the whole value). */
    char hex[AUDIT_HEXSZ] = "", err[RW_ERRSZ];
    audit_hash_t *hh = audit_hash_new();
    if (hh) {
        audit_hash_update(hh, v, n);
        if (audit_hash_final(hh, hex, err) < 0)
            hex[0] = 0;
    }
    char tail[96];
    int tl = snprintf(tail, sizeof tail, "... (%zu bytes, sha256 %.16s)", n, hex[0] ? hex : "?");
    size_t keep = max < cap - (size_t)tl - 1 ? max : cap - (size_t)tl - 1;
    keep = keep < n ? keep : n;
    keep = hd_utf8_prefix((const unsigned char *)v, keep); /* whole characters only */
    for (i = 0; i < keep; i++)
        out[i] = (unsigned char)v[i] >= 0x20 && v[i] != 0x7f ? v[i] : ' ';
    memcpy(out + keep, tail, (size_t)tl + 1);
}

/* ---------- connections ---------- */

static int same_addr(const struct hd_conn *a, const struct hd_conn *b)
{
    return a->family == b->family && !memcmp(a->addr, b->addr, sizeof a->addr);
}

static void addr_of(struct MHD_Connection *c, struct hd_conn *k)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    k->family = 0;
    memset(k->addr, 0, sizeof k->addr);
    if (!ci || !ci->client_addr)
        return;
    k->family = ci->client_addr->sa_family;
    if (k->family == AF_INET)
        memcpy(k->addr, &((const struct sockaddr_in *)ci->client_addr)->sin_addr, 4);
    else if (k->family == AF_INET6)
        memcpy(k->addr, &((const struct sockaddr_in6 *)ci->client_addr)->sin6_addr, 16);
}

struct hd_conn *hd_conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* A new connection: counted, and marked when it is over a limit (its
 * request, once it comes, is answered 503 and the connection closed). */
void hd_conn_open(struct httpd *h, struct MHD_Connection *c, void **socket_context)
{
    struct hd_conn *k = calloc(1, sizeof *k);
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    *socket_context = k;
    if (!k)
        return;
    addr_of(c, k);
    k->fd = ci ? ci->connect_fd : -1;
    k->since = rw_mono_ns();
    pthread_mutex_lock(&h->g.lock);
    int total = 1, mine = 1;
    for (struct hd_conn *o = h->g.head; o; o = o->next) {
        total++;
        mine += same_addr(o, k);
    }
    k->next = h->g.head;
    if (h->g.head)
        h->g.head->prev = k;
    h->g.head = k;
    h->g.n = total;
    if (mine > h->g.max_client)
        k->over = 2;
    else if (total > h->g.max_total)
        k->over = 1;
    pthread_mutex_unlock(&h->g.lock);
}

/* The socket's TCP_INFO, if the kernel filled it at least up to the field
 * that ends need bytes in (TI_UPTO); -1 if not (not TCP, an old kernel). */
#define TI_UPTO(f) (offsetof(struct tcp_info, f) + sizeof(((struct tcp_info *)0)->f))
static int tcp_info_get(int fd, struct tcp_info *ti, size_t need)
{
    socklen_t l = sizeof *ti;
    memset(ti, 0, sizeof *ti);
    if (fd < 0 || getsockopt(fd, IPPROTO_TCP, TCP_INFO, ti, &l) < 0 || l < need)
        return -1;
    return 0;
}

/* Bytes received on the socket and sent on it; 0 when it does not say.
 * Received counts the client's FIN when it came first. */
static void sock_traffic(int fd, uint64_t *received, uint64_t *sent)
{
    struct tcp_info ti;
    *received = *sent = 0;
    if (tcp_info_get(fd, &ti, TI_UPTO(tcpi_bytes_sent)) < 0)
        return;
    *received = ti.tcpi_bytes_received;
    *sent = ti.tcpi_bytes_sent;
}

void hd_conn_close(struct httpd *h, void **socket_context)
{
    struct hd_conn *k = *socket_context;
    if (!k)
        return;
    /* A plain-HTTP connection that sent bytes but never a request line
     * libmicrohttpd could parse, and had no answer, was closed by it
     * without a word: a TLS ClientHello with no space before its first
     * line end does that. (Had it been answered 400, mhd_log said so.)
     * The socket is still open here: libmicrohttpd closes it after
     * telling. A client that connects and goes (a port check: its FIN
     * alone) is not worth a line. */
    uint64_t got, sent;
    if (!h->tls && !atomic_load(&k->lines) && !atomic_load(&k->cut)) {
        sock_traffic(k->fd, &got, &sent);
        if (got > 1 && !sent)
            hd_warn_limited("a client's bytes were not an HTTP request and its connection was "
                            "closed unanswered (a TLS client? " HD_PLAIN_HINT ")");
    }
    pthread_mutex_lock(&h->g.lock);
    if (k->prev)
        k->prev->next = k->next;
    else
        h->g.head = k->next;
    if (k->next)
        k->next->prev = k->prev;
    h->g.n--;
    pthread_mutex_unlock(&h->g.lock);
    *socket_context = NULL;
    free(k);
}

void hd_conn_state(struct httpd *h, struct hd_conn *k, int busy)
{
    if (!k)
        return;
    pthread_mutex_lock(&h->g.lock);
    k->busy = busy;
    if (!busy)
        atomic_store(&k->longlived, 0); /* the next request on it is its own */
    k->since = rw_mono_ns();
    k->received = 0;
    k->win_start = 0;
    pthread_mutex_unlock(&h->g.lock);
}

void hd_conn_received(struct httpd *h, struct hd_conn *k, size_t n)
{
    if (!k)
        return;
    pthread_mutex_lock(&h->g.lock);
    k->received += n;
    pthread_mutex_unlock(&h->g.lock);
}

void hd_conn_slot(struct httpd *h, struct hd_conn *k, struct hd_slot *slot)
{
    if (!k)
        return;
    pthread_mutex_lock(&h->g.lock);
    k->slot = slot;
    k->stalled = 0;
    k->last_reads = slot ? atomic_load(&slot->reads) : 0;
    pthread_mutex_unlock(&h->g.lock);
}

/* Bytes of the answer the client has acknowledged, and bytes waiting in
 * the socket for it; -1 when the socket does not say (not TCP). */
static int sock_progress(int fd, uint64_t *acked, int *queued)
{
    struct tcp_info ti;
    if (tcp_info_get(fd, &ti, TI_UPTO(tcpi_bytes_acked)) < 0 || ioctl(fd, SIOCOUTQ, queued) < 0)
        return -1;
    *acked = ti.tcpi_bytes_acked;
    return 0;
}

static void cut(struct httpd *h, struct hd_conn *k, int why)
{
    atomic_store(&k->cut, why);
    (void)shutdown(k->fd, SHUT_RDWR);
    atomic_fetch_add(why == HD_CUT_IDLE   ? &h->g.cut_idle
                     : why == HD_CUT_SLOW ? &h->g.cut_slow
                                          : &h->g.cut_gone, 1);
}

/* One look at every connection (the lock held: a connection's socket stays
 * open until hd_conn_close, which takes it). */
static void watch_once(struct httpd *h, int64_t now)
{
    const struct hd_limits *L = &h->g.lim;
    for (struct hd_conn *k = h->g.head; k; k = k->next) {
        if (atomic_load(&k->cut) || k->fd < 0)
            continue;
        if (!k->busy) {
            /* Past the timeout, a request whose body still comes in at
             * --min-rate (on average since the connection waited) is let
             * finish; headers dripped, or a body dripped, are not. */
            int64_t waited = now - k->since;
            if (L->idle_timeout_s && waited > (int64_t)L->idle_timeout_s * RW_NS_PER_SEC &&
                k->received < (uint64_t)((double)L->min_rate * (double)waited / 1e9))
                cut(h, k, HD_CUT_IDLE);
            continue;
        }
        /* A client that hung up while its answer waits for data (a quiet
         * follow=1 or intercept stream writes nothing for minutes) would
         * hold its connection and its place in a pool until the next
         * write failed: its FIN is seen here instead. */
        /* Only for long-lived streams does a half-close mean gone: a client
         * may send its request, shut its side and read a normal answer. */
        struct pollfd pf = {.fd = k->fd, .events = POLLRDHUP};
        short gone = POLLHUP | POLLERR | (atomic_load(&k->longlived) ? POLLRDHUP : 0);
        if (poll(&pf, 1, 0) == 1 && (pf.revents & gone)) {
            cut(h, k, HD_CUT_GONE);
            continue;
        }
        if (!L->send_timeout_s)
            continue;
        uint64_t acked;
        int queued;
        if (sock_progress(k->fd, &acked, &queued) < 0)
            continue;
        /* Waiting on a client that acknowledged nothing, and not asked for
         * more, two looks in a row (half a second): its query slot goes
         * back to the pool until the client reads again. A client reading
         * slowly but steadily acknowledges bytes at every look. */
        if (k->slot) {
            unsigned r = atomic_load(&k->slot->reads);
            k->stalled = queued > 0 && r == k->last_reads && acked == k->last_acked
                             ? k->stalled + 1 : 0;
            k->last_reads = r;
            k->last_acked = acked;
            if (k->stalled >= 2 && atomic_exchange(&k->slot->held, 0) == 1)
                atomic_fetch_sub(&h->active, 1);
        }
        if (queued <= 0 || k->win_start == 0) {
            /* Not waiting on the client (or a new window): progress is not
             * asked of it now. */
            k->win_start = queued > 0 ? now : 0;
            k->win_acked = acked;
            continue;
        }
        if (now - k->win_start < (int64_t)L->send_timeout_s * RW_NS_PER_SEC)
            continue;
        if (acked - k->win_acked < (uint64_t)L->min_rate * L->send_timeout_s) {
            cut(h, k, HD_CUT_SLOW);
            continue;
        }
        k->win_start = now;
        k->win_acked = acked;
    }
}

static void *watchdog(void *arg)
{
    struct httpd *h = arg;
    while (!atomic_load(&h->stopping) && !atomic_load(&h->g.quit)) {
        usleep(250 * 1000);
        pthread_mutex_lock(&h->g.lock);
        watch_once(h, rw_mono_ns());
        pthread_mutex_unlock(&h->g.lock);
    }
    return NULL;
}

int hd_guard_start(struct httpd *h, const struct hd_limits *lim, char *err)
{
    h->g.lim = *lim;
    h->g.max_total = lim->max_conns;
    h->g.max_client = lim->max_client_conns;
    if (pthread_mutex_init(&h->g.lock, NULL) != 0)
        return rw_err(err, RW_EIO, "cannot make a mutex");
    if (pthread_create(&h->g.thr, NULL, watchdog, h) != 0) {
        pthread_mutex_destroy(&h->g.lock);
        return rw_err(err, RW_EIO, "cannot start the HTTP watchdog's thread");
    }
    h->g.started = 1;
    return 0;
}

void hd_guard_stop(struct httpd *h)
{
    if (!h->g.started)
        return;
    atomic_store(&h->g.quit, 1);
    pthread_join(h->g.thr, NULL);
    pthread_mutex_destroy(&h->g.lock);
    h->g.started = 0;
}

const char *hd_cut_reason(int why)
{
    return why == HD_CUT_GONE ? "the client hung up"
         : why == HD_CUT_IDLE ? "idle beyond --idle-timeout"
         : why == HD_CUT_SLOW ? "the client read slower than --min-rate for --send-timeout"
                              : NULL;
}
