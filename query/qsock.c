/* qsock.c -- queries over DIR/rewindd.sock: the request codec, the daemon's
 * answer and the client's question. Protocol in qsock.h. */
#include "query/qsock.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

/* ---------------------------------------------------------------- codec */

/* Unescape %XX in place; -1 on a broken escape or an escaped NUL. */
static int unescape(char *s)
{
    char *w = s;
    for (const char *r = s; *r; r++) {
        if (*r != '%') {
            *w++ = *r;
            continue;
        }
        int hi = rw_hexval(r[1]), lo = hi < 0 ? -1 : rw_hexval(r[2]);
        if (lo < 0 || (hi | lo) == 0)
            return -1;
        *w++ = (char)(hi << 4 | lo);
        r += 2;
    }
    *w = 0;
    return 0;
}

static int needs_escape(unsigned char c) { return c <= ' ' || c >= 0x7f || c == '%'; }

static size_t escaped_len(const char *v)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        n += needs_escape(*p) ? 3 : 1;
    return n;
}

/* Append "\tKEY=VALUE" with VALUE escaped; -1 when it does not fit. */
static int put_field(char *buf, size_t cap, size_t *len, const char *key, const char *val)
{
    static const char hex[] = "0123456789ABCDEF";
    int n = snprintf(buf + *len, cap - *len, "\t%s=", key);
    if (n < 0 || (size_t)n >= cap - *len)
        return -1;
    *len += (size_t)n;
    for (const unsigned char *p = (const unsigned char *)val; *p; p++) {
        if (*len + 4 > cap)
            return -1;
        if (needs_escape(*p)) {
            buf[(*len)++] = '%';
            buf[(*len)++] = hex[*p >> 4];
            buf[(*len)++] = hex[*p & 15];
        } else {
            buf[(*len)++] = (char)*p;
        }
    }
    buf[*len] = 0;
    return 0;
}

/* Decimal, optionally negative (signed), nothing else: no spaces, no '+'. */
static int parse_num(const char *v, int sign, int64_t *i, uint64_t *u)
{
    char *end;
    const char *d = sign && v[0] == '-' ? v + 1 : v;
    if (*d < '0' || *d > '9')
        return -1;
    errno = 0;
    if (sign)
        *i = strtoll(v, &end, 10);
    else
        *u = strtoull(v, &end, 10);
    return errno || *end ? -1 : 0;
}

int qsock_parse(char *line, struct qsock_req *r, char *err)
{
    int npoints = 0, have_from = 0, have_to = 0;
    memset(r, 0, sizeof *r);
    r->format = QRY_PCAP;
    if (strncmp(line, "query", 5) != 0 || (line[5] && line[5] != '\t'))
        return rw_err(err, RW_EINPUT, "not a query request");
    char *save = NULL;
    for (char *f = strtok_r(line + 5, "\t", &save); f; f = strtok_r(NULL, "\t", &save)) {
        char *v = strchr(f, '=');
        if (!v)
            return rw_err(err, RW_EINPUT, "query request field without '=': %.40s", f);
        *v++ = 0;
        if (unescape(v) < 0)
            return rw_err(err, RW_EINPUT, "query request field %.20s: bad %%-escape", f);
        int64_t x = 0;
        uint64_t u = 0;
        int sign = !strcmp(f, "from") || !strcmp(f, "to");
        if (sign || !strcmp(f, "limit") || !strcmp(f, "count")) {
            if (parse_num(v, sign, &x, &u) < 0)
                return rw_err(err, RW_EINPUT, "query request field %s: not a number: %.40s", f, v);
            if (!strcmp(f, "from"))
                r->spec.from = x, have_from = 1;
            else if (!strcmp(f, "to"))
                r->spec.to = x, have_to = 1;
            else if (!strcmp(f, "limit"))
                r->spec.limit_packets = u;
            else
                r->count = u != 0;
        } else if (!strcmp(f, "format")) {
            if (!strcmp(v, "pcap"))
                r->format = QRY_PCAP;
            else if (!strcmp(v, "pcapng"))
                r->format = QRY_PCAPNG;
            else
                return rw_err(err, RW_EINPUT, "query request: format must be pcap or pcapng");
        } else if (!strcmp(f, "point")) {
            if (npoints == QSOCK_MAX_POINTS)
                return rw_err(err, RW_EINPUT, "query request: more than %d points",
                              QSOCK_MAX_POINTS);
            r->points[npoints++] = v;
        } else if (!strcmp(f, "filter")) {
            r->spec.filter = v;
        } else {
            return rw_err(err, RW_EINPUT, "query request: unknown field %.40s", f);
        }
    }
    if (!have_from || !have_to)
        return rw_err(err, RW_EINPUT, "query request without from= and to=");
    if (r->spec.from >= r->spec.to)
        return rw_err(err, RW_EINPUT, "query request: from must be before to");
    r->points[npoints] = NULL;
    r->spec.points = npoints ? r->points : NULL;
    return 0;
}

char *qsock_format(const struct qsock_req *r, size_t *len)
{
    /* Sized to the request: a first touch of fresh heap can cost a (huge)
     * page fault, a good part of a short query's time. */
    size_t cap = 160, fl = r->spec.filter ? strlen(r->spec.filter) : 0;
    for (int i = 0; r->spec.points && r->spec.points[i]; i++)
        cap += 8 + escaped_len(r->spec.points[i]);
    if (fl)
        cap += 9 + escaped_len(r->spec.filter);
    char *req = cap <= QSOCK_MAX_REQ ? malloc(cap) : NULL;
    if (!req)
        return NULL;
    *len = (size_t)snprintf(req, cap,
                            "query\tfrom=%" PRId64 "\tto=%" PRId64 "\tlimit=%" PRIu64
                            "\tformat=%s\tcount=%d",
                            r->spec.from, r->spec.to, r->spec.limit_packets,
                            r->format == QRY_PCAPNG ? "pcapng" : "pcap", r->count);
    int bad = 0;
    for (int i = 0; r->spec.points && r->spec.points[i]; i++)
        bad |= put_field(req, cap - 1, len, "point", r->spec.points[i]);
    if (fl)
        bad |= put_field(req, cap - 1, len, "filter", r->spec.filter);
    if (bad) { /* cannot happen with cap as computed */
        free(req);
        return NULL;
    }
    req[(*len)++] = '\n'; /* the last field left room for this and a NUL */
    req[*len] = 0;
    return req;
}

/* ---------------------------------------------------------------- daemon */

struct qsock_server {
    idx_t *ix;
    int max;
    atomic_int active;
    atomic_int cancel;
};

int qsock_server_new(idx_t *ix, int max_queries, qsock_server_t **out, char *err)
{
    struct qsock_server *s = calloc(1, sizeof *s);
    if (!s)
        return rw_err(err, RW_ENOMEM, "out of memory");
    s->ix = ix;
    s->max = max_queries > 0 ? max_queries : 8;
    *out = s;
    return 0;
}

void qsock_server_cancel(qsock_server_t *s)
{
    if (s)
        atomic_store(&s->cancel, 1);
}

void qsock_server_free(qsock_server_t *s) { free(s); }

/* Where the answer goes, and whether anyone still wants it. */
struct sink {
    struct qsock_server *s;
    int conn, fd;
    int nb;      /* fd does not block: writes wait in poll(), watching conn */
    int sock;    /* fd is a socket: send(MSG_DONTWAIT) */
    uint64_t bytes;
    int cut;     /* RW_ESTOP: client gone or daemon stopping */
    int werrno;  /* errno of a failed write */
};

/* The client waits for the answer on its connection: the connection
 * hanging up (POLLHUP, both directions closed) means it went away. A
 * client that only shut down its sending side still wants the answer. */
static int still_wanted(struct sink *k)
{
    struct pollfd p = {k->conn, 0, 0};
    if (atomic_load(&k->s->cancel) ||
        (poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLERR | POLLNVAL))))
        k->cut = RW_ESTOP;
    return !k->cut;
}

/* Wait until fd takes more bytes (events), or the client hangs up, or the
 * daemon stops: 0 to go on, -1 with k->cut set. */
static int wait_fd(struct sink *k, int fd, short events)
{
    for (;;) {
        struct pollfd p[2] = {{fd, events, 0}, {k->conn, 0, 0}};
        int n = poll(p, 2, 200);
        if (!still_wanted(k))
            return -1;
        if (n > 0 && p[0].revents)
            return 0;
    }
}

/* A reader that stops reading a pipe must not pin a daemon thread (nor
 * SIGTERM, which waits for the queries to end), so pipes are written
 * without blocking, through a descriptor of the daemon's own: reopening
 * /proc/self/fd/N gives one, with its own flags, where setting O_NONBLOCK on
 * the client's would change its stdout under it. A regular file is written
 * as it comes; a socket with MSG_DONTWAIT. Where the reopen is refused
 * (another user's pipe), the write blocks as the client's own would. */
static void sink_open(struct sink *k, int fd)
{
    struct stat st;
    k->fd = fd;
    if (fstat(fd, &st) < 0)
        return;
    if (S_ISSOCK(st.st_mode)) {
        k->sock = k->nb = 1;
    } else if (S_ISFIFO(st.st_mode)) {
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        int nfd = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
        if (nfd >= 0) {
            close(fd);
            k->fd = nfd;
            k->nb = 1;
        }
    }
}

static int unwanted(void *arg) { return !still_wanted(arg); }

static int sink_write(void *arg, const void *buf, size_t n)
{
    struct sink *k = arg;
    const char *p = buf;
    if (!still_wanted(k))
        return -1;
    while (n > 0) {
        ssize_t w = k->sock ? send(k->fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(k->fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0 && k->nb && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            if (wait_fd(k, k->fd, POLLOUT) < 0)
                return -1;
            continue;
        }
        if (w < 0) {
            k->werrno = errno;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        k->bytes += (uint64_t)w;
    }
    return 0;
}

/* Receive "out" and its descriptor; -1 if the client sent anything else,
 * went away, or the daemon stops first. */
static int recv_out(struct sink *k)
{
    char buf[16];
    int fd;
    /* The client may take a while: opening a FIFO waits for its reader. */
    if (rw_wait_in(k->conn, &k->s->cancel) < 0)
        return -1;
    ssize_t n = rw_recv_fd(k->conn, buf, sizeof buf - 1, &fd);
    if (fd >= 0 && (n != 4 || memcmp(buf, "out\n", 4) != 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

void qsock_serve(qsock_server_t *s, int conn, char *line)
{
    char err[RW_ERRSZ], what[300];
    struct qsock_req r;
    qry_t *q = NULL;
    qry_out_t *out = NULL;
    struct sink k = {.s = s, .conn = conn, .fd = -1};
    uint64_t packets = 0;
    int64_t start = rw_mono_ns();
    int rc;
    /* Busy or stopping: the client reads the archive itself. */
    if (atomic_load(&s->cancel)) {
        rw_send_line(conn, "busy");
        return;
    }
    if (atomic_fetch_add(&s->active, 1) >= s->max) {
        atomic_fetch_sub(&s->active, 1);
        rw_send_line(conn, "busy");
        return;
    }
    if ((rc = qsock_parse(line, &r, err)) < 0) {
        rw_info("rewind query: bad request refused: %s", err);
        rw_send_line(conn, "error %d %s", rc, err);
        goto done;
    }
    snprintf(what, sizeof what, "rewind query filter '%.200s'", r.spec.filter ? r.spec.filter : "");
    if ((rc = qry_new(s->ix, &r.spec, &q, err)) < 0) {
        rw_info("%s: refused: %s", what, err);
        rw_send_line(conn, "error %d %s", rc, err);
        goto done;
    }
    if (!r.count) {
        int npts;
        const struct qry_point *pts = qry_points(q, &npts);
        /* Checked before the client opens its output: a mix of link types
         * in a pcap is refused as locally, leaving -w FILE alone. */
        if ((rc = qry_out_new(r.format, pts, npts, sink_write, &k, &out, err)) < 0) {
            rw_info("%s: refused: %s", what, err);
            rw_send_line(conn, "error %d %s", rc, err);
            goto done;
        }
        rw_send_line(conn, "ready");
        int fd = recv_out(&k);
        if (fd < 0 && atomic_load(&s->cancel)) {
            rw_warn("%s: cut by shutdown before the answer", what);
            rw_send_line(conn, "error %d rewindd stopped while answering; ask again", RW_ESTOP);
            goto done;
        }
        if (fd < 0) {
            rw_info("%s: client went away before the answer", what);
            goto done;
        }
        /* The daemon writes only where the client could: a descriptor opened
         * for reading (of a FIFO, say, that its owner reads) is refused. */
        int mode = fcntl(fd, F_GETFL);
        if (mode < 0 || ((mode & O_ACCMODE) != O_WRONLY && (mode & O_ACCMODE) != O_RDWR)) {
            close(fd);
            rw_warn("%s: refused: the output descriptor is not open for writing", what);
            rw_send_line(conn, "error %d the output descriptor is not open for writing",
                         RW_EINPUT);
            goto done;
        }
        sink_open(&k, fd);
    }
    /* Between writes too (a count, or matches far apart): a client gone or
     * a daemon stopping ends the scan. */
    qry_set_cancel(q, unwanted, &k);
    struct qry_pkt pkt;
    while ((rc = qry_next(q, &pkt, err)) == 1) {
        packets++;
        if (out && qry_out_packet(out, &pkt) < 0)
            break;
    }
    if (rc == 0 && out) {
        rc = qry_out_close(out) < 0 ? -1 : 0;
        out = NULL;
    } else if (rc == 1) {
        rc = -1;
    }
    if (rc >= 0) {
        rw_info("%s: %" PRIu64 " packets, %" PRIu64 " bytes in %.3f s", what, packets, k.bytes,
                (double)(rw_mono_ns() - start) / 1e9);
        rw_send_line(conn, "ok %" PRIu64 " %" PRIu64, packets, k.bytes);
    } else if (k.cut) {
        if (atomic_load(&s->cancel)) {
            rw_warn("%s: cut by shutdown after %" PRIu64 " bytes", what, k.bytes);
            rw_send_line(conn, "error %d rewindd stopped while answering; ask again", RW_ESTOP);
        } else {
            rw_info("%s: client went away after %" PRIu64 " bytes", what, k.bytes);
        }
    } else if (k.werrno == EPIPE) {
        rw_info("%s: the reader of the client's pipe went away after %" PRIu64 " bytes", what,
                k.bytes);
        rw_send_line(conn, "epipe");
    } else if (k.werrno) {
        rw_send_line(conn, "error %d writing output: %s", RW_EIO, strerror(k.werrno));
    } else {
        rw_error("%s: failed after %" PRIu64 " bytes: %s", what, k.bytes, err);
        rw_send_line(conn, "error %d %s", rc, err);
    }
done:
    if (out)
        (void)!qry_out_close(out);
    qry_free(q);
    if (k.fd >= 0)
        close(k.fd);
    atomic_fetch_sub(&s->active, 1);
}

/* ---------------------------------------------------------------- client */

/* Read the daemon's next line. It sends one line and then waits for the
 * client or closes, so reading past a '\n' cannot take a later line's bytes.
 * -1 when it closed the connection first. */
static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        ssize_t k = read(fd, buf + n, cap - 1 - n);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        char *nl = memchr(buf + n, '\n', (size_t)k);
        n += (size_t)k;
        if (nl) {
            *nl = 0;
            return 0;
        }
    }
    buf[n] = 0;
    return 0;
}

/* "error CODE MESSAGE" -> code and err; anything else is the daemon breaking
 * the protocol. */
static int daemon_error(const char *line, char *err)
{
    int code, off = 0;
    if (sscanf(line, "error %d %n", &code, &off) == 1 && off > 0)
        return rw_err(err, code < 0 && code >= RW_ESTOP ? code : RW_EIO, "%s", line + off);
    return rw_err(err, RW_EIO, "rewindd answered the query with '%.80s'; see its log", line);
}

int qsock_ask(const char *dir, const struct qsock_req *r, qsock_open_fn outfd_fn, void *arg,
              uint64_t *packets, char *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char line[RW_ERRSZ + 64];
    int s = -1, rc, outfd = -1;
    size_t len;
    char *req;
    if ((size_t)snprintf(sa.sun_path, sizeof sa.sun_path, "%s/rewindd.sock", dir) >=
        sizeof sa.sun_path)
        return QSOCK_LOCAL;
    if (!(req = qsock_format(r, &len)))
        return QSOCK_LOCAL; /* too long to ask (locally there is no such limit) */
    /* Any failure to reach a daemon, for example no daemon, a stale socket
     * or no permission on it, means reading the archive directly. */
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (s >= 0)
            close(s);
        free(req);
        return QSOCK_LOCAL;
    }
    /* send(), not write(): a daemon gone since connect() must not kill us
     * with SIGPIPE. A daemon that does not reply in 10 s (stopped, wedged)
     * is given up for the local path; planning takes milliseconds. */
    size_t off = 0;
    rc = 0;
    while (off < len && rc == 0) {
        ssize_t w = send(s, req + off, len - off, MSG_NOSIGNAL);
        if (w < 0 && errno != EINTR)
            rc = -1;
        else if (w > 0)
            off += (size_t)w;
    }
    free(req);
    struct timeval tv = {10, 0}, none = {0, 0};
    if (rc < 0 || setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) < 0 ||
        read_line(s, line, sizeof line) < 0 ||
        setsockopt(s, SOL_SOCKET, SO_RCVTIMEO, &none, sizeof none) < 0) {
        close(s);
        return QSOCK_LOCAL; /* a daemon stopping, or not answering: read directly */
    }
    if (!strcmp(line, "busy")) {
        close(s);
        return QSOCK_LOCAL;
    }
    /* A count is answered at once; anything else first waits for the output. */
    if (r->count ? strncmp(line, "ok ", 3) != 0 : strcmp(line, "ready") != 0) {
        rc = daemon_error(line, err);
        close(s);
        return rc;
    }
    if (!r->count) {
        if ((outfd = outfd_fn(arg, err)) < 0) {
            close(s);
            return outfd;
        }
        if (rw_send_fd(s, "out\n", 4, outfd) != 4 || read_line(s, line, sizeof line) < 0) {
            close(s);
            return rw_err(err, RW_EIO,
                          "rewindd closed the connection while answering; see its log");
        }
    }
    close(s);
    unsigned long long pk, by;
    if (sscanf(line, "ok %llu %llu", &pk, &by) == 2) {
        *packets = pk;
        return 0;
    }
    if (!strcmp(line, "epipe"))
        return QSOCK_EPIPE;
    return daemon_error(line, err);
}
