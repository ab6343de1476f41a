/* qsock.c -- queries over DIR/rewindd.sock: the request codec and the
 * client's question. Protocol in qsock.h; the daemon's answer is in
 * qsock_srv.c, apart, so that the small `rewind` front end links this file
 * without the query engine and RocksDB. */
#include "query/qsock.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
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
