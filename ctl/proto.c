/* proto.c -- the control socket's wire format (ctl.h): field escapes,
 * lines, descriptors passed along, connecting to the daemon. libc only: the
 * small front end links it. */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

int ctl_sock_path(const char *dir, char *out, size_t n, char *err)
{
    if ((size_t)snprintf(out, n, "%s/rewindd.sock", dir) >= n)
        return rw_err(err, RW_EINPUT, "archive path %s is too long for a Unix socket", dir);
    return 0;
}

int ctl_unescape(char *s)
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

size_t ctl_escaped_len(const char *v)
{
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)v; *p; p++)
        n += needs_escape(*p) ? 3 : 1;
    return n;
}

int ctl_put_field(char *buf, size_t cap, size_t *len, const char *key, const char *val)
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

int ctl_parse_num(const char *v, int sign, int64_t *i, uint64_t *u)
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

int ctl_next_field(char **save, const char *what, char **key, char **val, char *err)
{
    char *f = strtok_r(NULL, "\t", save);
    if (!f)
        return 0;
    char *v = strchr(f, '=');
    if (!v)
        return rw_err(err, RW_EINPUT, "%s: field without '=': %.40s", what, f);
    *v++ = 0;
    if (ctl_unescape(v) < 0)
        return rw_err(err, RW_EINPUT, "%s: field %.20s: bad %%-escape", what, f);
    *key = f;
    *val = v;
    return 1;
}

void ctl_send_line(int fd, const char *fmt, ...)
{
    char buf[RW_ERRSZ + 64];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2;
    for (int i = 0; i < n; i++) /* one line, whatever the message holds */
        if (buf[i] == '\n')
            buf[i] = ' ';
    buf[n++] = '\n';
    (void)!send(fd, buf, (size_t)n, MSG_NOSIGNAL);
}

/* Control message room for one descriptor, aligned as a cmsghdr. */
union cmsg_one {
    struct cmsghdr h;
    char buf[CMSG_SPACE(sizeof(int))];
};

ssize_t ctl_send_fd(int sock, const void *buf, size_t n, int fd)
{
    union cmsg_one cmsgbuf;
    struct iovec iov = {(void *)buf, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cmsgbuf.buf,
                       .msg_controllen = sizeof cmsgbuf.buf};
    memset(&cmsgbuf, 0, sizeof cmsgbuf);
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);
    cm->cmsg_level = SOL_SOCKET;
    cm->cmsg_type = SCM_RIGHTS;
    cm->cmsg_len = CMSG_LEN(sizeof(int));
    memcpy(CMSG_DATA(cm), &fd, sizeof fd);
    return sendmsg(sock, &m, MSG_NOSIGNAL);
}

/* Room for many descriptors: the kernel installs as many as fit (a
 * CMSG_SPACE for one int, rounded up to the alignment, holds two), so a
 * buffer sized for one would still receive a second, and keeping only the
 * first leaked it. What does not fit here the kernel drops (MSG_CTRUNC)
 * rather than install. */
#define CTL_RECV_FDS 32
union cmsg_many {
    struct cmsghdr h;
    char buf[CMSG_SPACE(CTL_RECV_FDS * sizeof(int))];
};

ssize_t ctl_recv_fd(int sock, void *buf, size_t n, int *fd)
{
    union cmsg_many cmsgbuf;
    struct iovec iov = {buf, n};
    struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = cmsgbuf.buf,
                       .msg_controllen = sizeof cmsgbuf.buf};
    ssize_t r;
    *fd = -1;
    do
        r = recvmsg(sock, &m, MSG_CMSG_CLOEXEC);
    while (r < 0 && errno == EINTR);
    if (r < 0)
        return r;
    /* The first descriptor is the request's; every other one that came
     * along (in this message or in further control messages of it) is
     * closed here, whatever the payload says. */
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(&m); cm; cm = CMSG_NXTHDR(&m, cm)) {
        if (cm->cmsg_level != SOL_SOCKET || cm->cmsg_type != SCM_RIGHTS ||
            cm->cmsg_len < CMSG_LEN(0))
            continue;
        size_t k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < k; i++) {
            int d;
            memcpy(&d, CMSG_DATA(cm) + i * sizeof(int), sizeof d);
            if (*fd < 0 && r > 0)
                *fd = d;
            else
                close(d);
        }
    }
    return r;
}

int ctl_wait_in(int fd, const atomic_int *stop)
{
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        int r = poll(&p, 1, 200);
        if (atomic_load(stop))
            return -1;
        if (r > 0)
            return 0;
    }
}

int ctl_send_all(int sock, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = send(sock, p, n, MSG_NOSIGNAL);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int ctl_connect(const char *dir)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char err[RW_ERRSZ];
    if (ctl_sock_path(dir, sa.sun_path, sizeof sa.sun_path, err) < 0)
        return -1;
    int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s >= 0 && connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        close(s);
        s = -1;
    }
    return s;
}

int ctl_read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap) {
        /* Peek, then take the line and no more: a query's answer may be
         * several lines sent in a row ("damage" lines, then "ok"). */
        ssize_t k = recv(fd, buf + n, cap - 1 - n, MSG_PEEK);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return -1;
        char *nl = memchr(buf + n, '\n', (size_t)k);
        if (nl)
            k = nl - (buf + n) + 1;
        size_t want = (size_t)k;
        while ((k = recv(fd, buf + n, want, 0)) < 0 && errno == EINTR)
            ;
        if (k <= 0)
            return -1;
        nl = memchr(buf + n, '\n', (size_t)k);
        n += (size_t)k;
        if (nl) {
            *nl = 0;
            return 0;
        }
    }
    buf[n] = 0;
    return 0;
}

int ctl_answer_error(const char *line, const char *what, char *err)
{
    int code, off = 0;
    if (sscanf(line, "error %d %n", &code, &off) == 1 && off > 0)
        return rw_err(err, code < 0 && code >= RW_ESTOP ? code : RW_EIO, "%s", line + off);
    return rw_err(err, RW_EIO, "rewindd answered %s with '%.80s'; see its log", what, line);
}


/* ---- status lines ----
 * One table names every field of a point's status on the wire, for the
 * server that writes it and the client that reads it back. */
enum { F_U64, F_I64, F_INT, F_STR };
static const struct {
    const char *name;
    size_t off;
    int type;
    size_t size;
} point_fields[] = {
#define U(f) {#f, offsetof(struct qry_point_status, f), F_U64, 0}
#define I(f) {#f, offsetof(struct qry_point_status, f), F_I64, 0}
#define N(f) {#f, offsetof(struct qry_point_status, f), F_INT, 0}
#define S(f) \
    {#f, offsetof(struct qry_point_status, f), F_STR, sizeof((struct qry_point_status *)0)->f}
    S(name), S(linktype), U(segments), U(open_segments), U(compressed_segments), U(packets),
    U(captured_bytes), U(wire_bytes), U(pcap_bytes), U(stored_bytes), U(compressed_pcap_bytes),
    U(compressed_stored_bytes), I(first), I(last),
    U(kernel_drops), U(queue_drops), N(live), N(paused), U(paused_drops), S(reason),
#undef U
#undef I
#undef N
#undef S
};

int ctl_put_point(char *buf, size_t cap, size_t *len, const struct qry_point_status *p)
{
    const char *base = (const char *)p;
    for (size_t i = 0; i < sizeof point_fields / sizeof point_fields[0]; i++) {
        char num[32];
        const char *v = num, *at = base + point_fields[i].off;
        switch (point_fields[i].type) {
        case F_U64: snprintf(num, sizeof num, "%" PRIu64, *(const uint64_t *)at); break;
        case F_I64: snprintf(num, sizeof num, "%" PRId64, *(const int64_t *)at); break;
        case F_INT: snprintf(num, sizeof num, "%d", *(const int *)at); break;
        default: v = at; break;
        }
        if (ctl_put_field(buf, cap, len, point_fields[i].name, v) < 0)
            return -1;
    }
    return 0;
}

int ctl_get_point_field(struct qry_point_status *p, const char *key, const char *val)
{
    char *base = (char *)p;
    for (size_t i = 0; i < sizeof point_fields / sizeof point_fields[0]; i++) {
        if (strcmp(key, point_fields[i].name))
            continue;
        int64_t x = 0;
        uint64_t u = 0;
        switch (point_fields[i].type) {
        case F_U64:
            if (ctl_parse_num(val, 0, &x, &u) < 0)
                return -1;
            *(uint64_t *)(base + point_fields[i].off) = u;
            return 0;
        case F_I64:
        case F_INT:
            if (ctl_parse_num(val, 1, &x, &u) < 0)
                return -1;
            if (point_fields[i].type == F_INT)
                *(int *)(base + point_fields[i].off) = (int)x;
            else
                *(int64_t *)(base + point_fields[i].off) = x;
            return 0;
        default:
            snprintf(base + point_fields[i].off, point_fields[i].size, "%s", val);
            return 0;
        }
    }
    return 0; /* a field this client does not know: a newer daemon's */
}
