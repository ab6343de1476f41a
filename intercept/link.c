/* link.c -- the etsi pusher's link to the agency: a TCP connection, or
 * TLS over it (GnuTLS) when the case's delivery names tls, with the
 * agency's certificate verified against the case's CA and server name,
 * and rewind's client certificate when one is given (intercept_int.h,
 * ic_link_*). Either way the pusher sees one byte stream, so what it
 * resends after a break is the same over both. */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/dl.h"
#include "common/rw.h"

/* GnuTLS is loaded on first use (common/dl.h), as libcurl is: bin/rewind-core
 * reads and writes cases (rewind case add) but a short query there is mostly
 * process start-up, and the dozen libraries GnuTLS brings would be loaded
 * by every run. In rewindd the library is loaded already (libmicrohttpd). */
#define TL_FUNCS(X) \
    X(gnutls_bye) \
    X(gnutls_certificate_allocate_credentials) \
    X(gnutls_certificate_free_credentials) \
    X(gnutls_certificate_set_x509_key_file) \
    X(gnutls_certificate_set_x509_system_trust) \
    X(gnutls_certificate_set_x509_trust_file) \
    X(gnutls_certificate_type_get) \
    X(gnutls_certificate_verification_status_print) \
    X(gnutls_credentials_set) \
    X(gnutls_deinit) \
    X(gnutls_error_is_fatal) \
    X(gnutls_handshake) \
    X(gnutls_init) \
    X(gnutls_load_file) \
    X(gnutls_record_get_direction) \
    X(gnutls_record_recv) \
    X(gnutls_record_send) \
    X(gnutls_server_name_set) \
    X(gnutls_session_get_verify_cert_status) \
    X(gnutls_session_set_verify_cert) \
    X(gnutls_set_default_priority) \
    X(gnutls_strerror) \
    X(gnutls_x509_crt_deinit) \
    X(gnutls_x509_crt_list_import2) \
    X(gnutls_transport_set_int2) \

static struct {
#define TL_FIELD(f) __typeof__(f) *f;
    TL_FUNCS(TL_FIELD)
#undef TL_FIELD
    gnutls_free_function *free_p;
} tl;
static char tl_err[RW_ERRSZ]; /* why GnuTLS could not be loaded; "" if it was */
static pthread_once_t tl_once = PTHREAD_ONCE_INIT;
#define TL(f) (*tl.f)
#define TL_FREE(p) (*tl.free_p)(p)

static void tl_load(void)
{
    static const char *const names[] = {"libgnutls.so.30"};
#define TL_SYM(f) {#f, (void **)&tl.f},
    const struct rw_dlsym syms[] = {TL_FUNCS(TL_SYM){"gnutls_free", (void **)&tl.free_p}};
#undef TL_SYM
    rw_dl_load("GnuTLS", "libgnutls30", "delivery.tls", names, 1, 0, syms,
               sizeof syms / sizeof syms[0], tl_err);
}

/* GnuTLS, loaded: 0, or RW_EIO saying why not. */
static int tl_ready(char *err)
{
    pthread_once(&tl_once, tl_load);
    return tl_err[0] ? rw_err(err, RW_EIO, "%s", tl_err) : 0;
}

struct ic_link {
    int fd;
    gnutls_session_t s;                     /* NULL: plain TCP */
    gnutls_certificate_credentials_t cred;
    int up;                                 /* the handshake completed */
    atomic_int *stop;
};

/* ---------- TLS settings ---------- */

/* Can this process open path for reading? RW_EINPUT naming field if not. */
static int readable(const char *field, const char *path, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return rw_err(err, RW_EINPUT, "%s: %s: %s", field, path, strerror(errno));
    close(fd);
    return 0;
}

/* The credentials of case c: its CA (or the system's), its client
 * certificate and key. RW_EINPUT naming the field at fault. */
static int tls_creds(const struct ic_case *c, gnutls_certificate_credentials_t *out, char *err)
{
    gnutls_certificate_credentials_t x = NULL;
    int r, rc = tl_ready(err);
    if (rc < 0)
        return rc;
    if (TL(gnutls_certificate_allocate_credentials)(&x) < 0)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if (c->tls_ca[0]) {
        if ((rc = readable("delivery.tls.ca", c->tls_ca, err)) < 0)
            goto fail;
        r = TL(gnutls_certificate_set_x509_trust_file)(x, c->tls_ca, GNUTLS_X509_FMT_PEM);
        if (r <= 0) {
            rc = rw_err(err, RW_EINPUT, "delivery.tls.ca: %s: %s", c->tls_ca,
                        r < 0 ? TL(gnutls_strerror)(r) : "no PEM certificate in it");
            goto fail;
        }
    } else if ((r = TL(gnutls_certificate_set_x509_system_trust)(x)) <= 0) {
        rc = rw_err(err, RW_EINPUT, "delivery.tls.ca: not given, and the system's trust store "
                    "%s", r < 0 ? TL(gnutls_strerror)(r) : "holds no certificate");
        goto fail;
    }
    if (c->tls_cert[0]) {
        if ((rc = readable("delivery.tls.cert", c->tls_cert, err)) < 0 ||
            (rc = readable("delivery.tls.key", c->tls_key, err)) < 0)
            goto fail;
        r = TL(gnutls_certificate_set_x509_key_file)(x, c->tls_cert, c->tls_key,
                                                 GNUTLS_X509_FMT_PEM);
        if (r < 0) {
            /* Which file is at fault: the certificate alone first. */
            gnutls_datum_t d = {NULL, 0};
            gnutls_x509_crt_t *crts = NULL;
            unsigned n = 0;
            int cr = TL(gnutls_load_file)(c->tls_cert, &d);
            if (cr >= 0)
                cr = TL(gnutls_x509_crt_list_import2)(&crts, &n, &d, GNUTLS_X509_FMT_PEM, 0);
            for (unsigned i = 0; cr >= 0 && i < n; i++)
                TL(gnutls_x509_crt_deinit)(crts[i]);
            TL_FREE(crts);
            TL_FREE(d.data);
            if (cr < 0)
                rc = rw_err(err, RW_EINPUT, "delivery.tls.cert: %s: %s", c->tls_cert,
                            TL(gnutls_strerror)(cr));
            else if (r == GNUTLS_E_CERTIFICATE_KEY_MISMATCH)
                rc = rw_err(err, RW_EINPUT, "delivery.tls.key: %s does not match the "
                            "certificate %s", c->tls_key, c->tls_cert);
            else
                rc = rw_err(err, RW_EINPUT, "delivery.tls.key: %s: %s", c->tls_key,
                            TL(gnutls_strerror)(r));
            goto fail;
        }
    }
    *out = x;
    return 0;
fail:
    TL(gnutls_certificate_free_credentials)(x);
    return rc;
}

int ic_etsi_tls_check(const struct ic_case *c, char *err)
{
    gnutls_certificate_credentials_t x = NULL;
    int rc = tls_creds(c, &x, err);
    if (rc == 0)
        TL(gnutls_certificate_free_credentials)(x);
    return rc;
}

/* ---------- the connection ---------- */

/* HOST and PORT of "HOST:PORT" or "[V6]:PORT". */
static int split(const char *to, char *host, size_t hn, char *port, size_t pn, char *err)
{
    const char *colon = strrchr(to, ':');
    size_t hl = colon ? (size_t)(colon - to) : 0;
    if (!colon || hl >= hn || strlen(colon + 1) >= pn)
        return rw_err(err, RW_EINPUT, "bad address %s", to);
    memcpy(host, to, hl);
    host[hl] = 0;
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = 0;
    }
    snprintf(port, pn, "%s", colon + 1);
    return 0;
}

/* A TCP connection to host:port within 5 s, or -1. */
static int dial(const char *to, const char *host, const char *port, char *err)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *ai = NULL;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc) {
        rw_err(err, RW_EIO, "%s: %s", to, gai_strerror(rc));
        return -1;
    }
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        rw_err(err, RW_EIO, "socket: %s", strerror(errno));
    } else if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
        struct pollfd pf = {fd, POLLOUT, 0};
        int soerr = errno == EINPROGRESS ? 0 : errno;
        socklen_t sl = sizeof soerr;
        if (!soerr && (poll(&pf, 1, 5000) != 1 ||
                       getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0))
            soerr = ETIMEDOUT;
        if (soerr) {
            rw_err(err, RW_EIO, "%s: %s", to, strerror(soerr));
            close(fd);
            fd = -1;
        }
    }
    freeaddrinfo(ai);
    if (fd >= 0) {
        int one = 1, idle = 5, intvl = 2, cnt = 3;
        setsockopt(fd, SOL_SOCKET, SO_KEEPALIVE, &one, sizeof one);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle, sizeof idle);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &intvl, sizeof intvl);
        setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &cnt, sizeof cnt);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    return fd;
}

/* Wait until the session can go on (the direction it last needed), up to
 * ms; 0, or -1 on timeout or stop. */
static int tls_wait(ic_link_t *l, int ms)
{
    struct pollfd pf = {l->fd, TL(gnutls_record_get_direction)(l->s) ? POLLOUT : POLLIN, 0};
    for (int waited = 0; waited < ms; waited += 200) {
        if (l->stop && atomic_load(l->stop))
            return -1;
        int r = poll(&pf, 1, 200);
        if (r > 0)
            return 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
    return -1;
}

static int handshake(ic_link_t *l, const struct ic_case *c, const char *host, char *err)
{
    const char *name = c->tls_server_name[0] ? c->tls_server_name : host;
    unsigned char ip[16];
    int r, rc = tls_creds(c, &l->cred, err);
    if (rc < 0)
        return rc;
    if (TL(gnutls_init)(&l->s, GNUTLS_CLIENT | GNUTLS_NONBLOCK) < 0) {
        l->s = NULL;
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    if ((r = TL(gnutls_set_default_priority)(l->s)) < 0 ||
        (r = TL(gnutls_credentials_set)(l->s, GNUTLS_CRD_CERTIFICATE, l->cred)) < 0)
        return rw_err(err, RW_EIO, "TLS to %s: %s", c->deliver_to, TL(gnutls_strerror)(r));
    /* SNI carries host names only; an address is still what is verified. */
    if (inet_pton(AF_INET, name, ip) != 1 && inet_pton(AF_INET6, name, ip) != 1)
        TL(gnutls_server_name_set)(l->s, GNUTLS_NAME_DNS, name, strlen(name));
    TL(gnutls_session_set_verify_cert)(l->s, name, 0);
    TL(gnutls_transport_set_int2)(l->s, l->fd, l->fd);
    do {
        r = TL(gnutls_handshake)(l->s);
    } while (r < 0 && !TL(gnutls_error_is_fatal)(r) && tls_wait(l, 10000) == 0);
    if (r >= 0) {
        l->up = 1;
        return 0;
    }
    if (r == GNUTLS_E_CERTIFICATE_VERIFICATION_ERROR) {
        gnutls_datum_t why = {NULL, 0};
        unsigned st = TL(gnutls_session_get_verify_cert_status)(l->s);
        TL(gnutls_certificate_verification_status_print)(st, TL(gnutls_certificate_type_get)(l->s), &why,
                                                      0);
        rc = rw_err(err, RW_EIO, "TLS to %s: the agency's certificate is refused for the name "
                    "%s: %s (delivery.tls.ca, delivery.tls.server_name)", c->deliver_to, name,
                    why.data ? (const char *)why.data : TL(gnutls_strerror)(r));
        TL_FREE(why.data);
        return rc;
    }
    return rw_err(err, RW_EIO, "TLS handshake with %s: %s", c->deliver_to,
                  TL(gnutls_error_is_fatal)(r) ? TL(gnutls_strerror)(r) : "timed out");
}

int ic_link_open(const struct ic_case *c, atomic_int *stop, ic_link_t **out, char *err)
{
    char host[128], port[8];
    int rc;
    ic_link_t *l;
    if ((rc = split(c->deliver_to, host, sizeof host, port, sizeof port, err)) < 0)
        return rc;
    if (!(l = calloc(1, sizeof *l)))
        return rw_err(err, RW_ENOMEM, "out of memory");
    l->stop = stop;
    if ((l->fd = dial(c->deliver_to, host, port, err)) < 0) {
        free(l);
        return RW_EIO;
    }
    if (c->tls && (rc = handshake(l, c, host, err)) < 0) {
        ic_link_close(l);
        return rc;
    }
    *out = l;
    return 0;
}

int ic_link_send(ic_link_t *l, const uint8_t *b, size_t n)
{
    while (n) {
        ssize_t w;
        if (l->s) {
            w = TL(gnutls_record_send)(l->s, b, n);
            if (w == GNUTLS_E_AGAIN || w == GNUTLS_E_INTERRUPTED) {
                /* Called again with the same data, as GnuTLS requires. */
                if (tls_wait(l, 10000) < 0)
                    return -1;
                continue;
            }
            if (w < 0)
                return -1;
        } else {
            w = send(l->fd, b, n, MSG_NOSIGNAL);
            if (w < 0 && errno != EAGAIN && errno != EINTR)
                return -1;
            if (w <= 0) {
                struct pollfd pf = {l->fd, POLLOUT, 0};
                if ((l->stop && atomic_load(l->stop)) || poll(&pf, 1, 10000) != 1 ||
                    (pf.revents & (POLLERR | POLLHUP)))
                    return -1;
                continue;
            }
        }
        b += w;
        n -= (size_t)w;
    }
    return 0;
}

int ic_link_drain(ic_link_t *l)
{
    uint8_t b[4096];
    for (;;) {
        if (l->s) {
            ssize_t r = TL(gnutls_record_recv)(l->s, b, sizeof b);
            if (r > 0 || r == GNUTLS_E_INTERRUPTED)
                continue;
            return r == GNUTLS_E_AGAIN ? 0 : -1;
        }
        ssize_t r = recv(l->fd, b, sizeof b, MSG_DONTWAIT);
        if (r > 0)
            continue;
        return r == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) ? -1 : 0;
    }
}

void ic_link_close(ic_link_t *l)
{
    if (!l)
        return;
    if (l->s) {
        if (l->up) /* best effort: the socket does not block */
            TL(gnutls_bye)(l->s, GNUTLS_SHUT_WR);
        TL(gnutls_deinit)(l->s);
    }
    if (l->cred)
        TL(gnutls_certificate_free_credentials)(l->cred);
    if (l->fd >= 0)
        close(l->fd);
    free(l);
}
