/* verb_query.c -- the control socket's query verb: the daemon answers
 * `rewind query --dir` from its open index, writing into the descriptor
 * the client passed (ctl.h). */
#include "ctl/ctl_int.h"

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
#include <unistd.h>

#include "archive/archive.h"
#include "auth/audit.h"

/* Where the answer goes, and whether anyone still wants it. */
struct sink {
    struct ctl *s;
    int conn, fd;
    int nb;      /* fd does not block: writes wait in poll(), watching conn */
    int sock;    /* fd is a socket: send(MSG_DONTWAIT) */
    uint64_t bytes;
    int cut;     /* RW_ESTOP: client gone or daemon stopping */
    int werrno;  /* errno of a failed write */
    audit_hash_t *hash; /* of the bytes written, for the audit trail */
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
        if (k->hash)
            audit_hash_update(k->hash, p, (size_t)w);
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
    if (ctl_wait_in(k->conn, &k->s->cancel) < 0)
        return -1;
    ssize_t n = ctl_recv_fd(k->conn, buf, sizeof buf - 1, &fd);
    if (fd >= 0 && (n != 4 || memcmp(buf, "out\n", 4) != 0)) {
        close(fd);
        fd = -1;
    }
    return fd;
}

/* Each damaged range the answer lacks: a warn line in the log and a
 * "damage" line to the client, before its "ok" (ctl.h). */
static void send_losses(int conn, const qry_t *q, const char *what)
{
    char text[RW_ERRSZ];
    size_t n, more;
    const struct qry_loss *l = qry_losses(q, &n, &more);
    for (size_t i = 0; i < n; i++) {
        qry_loss_desc(&l[i], text, sizeof text);
        rw_warn("%s: %s", what, text);
        ctl_send_line(conn, "damage %s", text);
    }
    if (more) {
        rw_warn("%s: and %zu more damaged ranges", what, more);
        ctl_send_line(conn, "damage and %zu more damaged ranges", more);
    }
}

void ctl_verb_query(struct ctl *s, int conn, char *line, int fd0)
{
    char err[RW_ERRSZ], what[300], reply[RW_ERRSZ + 64] = "", dmg[RW_ERRSZ];
    struct ctl_query r;
    qry_t *q = NULL;
    qry_out_t *out = NULL;
    struct sink k = {.s = s, .conn = conn, .fd = -1};
    uint64_t packets = 0;
    int64_t start = rw_mono_ns(), start_real = rw_now_ns();
    int rc;
#define REPLY(...) snprintf(reply, sizeof reply, __VA_ARGS__) /* sent once done */
    if (fd0 >= 0) /* a query brings its descriptor later, when asked */
        close(fd0);
    /* Busy or stopping: the client reads the archive itself. */
    if (atomic_load(&s->cancel)) {
        ctl_send_line(conn, "busy");
        return;
    }
    if (atomic_fetch_add(&s->active, 1) >= s->o.max_queries) {
        atomic_fetch_sub(&s->active, 1);
        ctl_send_line(conn, "busy");
        return;
    }
    if ((rc = ctl_query_parse(line, &r, err)) < 0) {
        rw_info("rewind query: bad request refused: %s", err);
        REPLY("error %d %s", rc, err);
        goto done;
    }
    snprintf(what, sizeof what, "rewind query filter '%.200s'", r.spec.filter ? r.spec.filter : "");
    k.hash = s->o.audit ? audit_hash_new() : NULL; /* freed at done */
    if ((rc = qry_new(arc_index(s->o.archive), &r.spec, &q, err)) < 0) {
        rw_info("%s: refused: %s", what, err);
        REPLY("error %d %s", rc, err);
        goto done;
    }
    if (!r.count) {
        int npts;
        const struct qry_point *pts = qry_points(q, &npts);
        /* Checked before the client opens its output: a mix of link types
         * in a pcap is refused as locally, leaving -w FILE alone. */
        if ((rc = qry_out_new(r.format, pts, npts, sink_write, &k, &out, err)) < 0) {
            rw_info("%s: refused: %s", what, err);
            REPLY("error %d %s", rc, err);
            goto done;
        }
        ctl_send_line(conn, "ready");
        int fd = recv_out(&k);
        if (fd < 0 && atomic_load(&s->cancel)) {
            rw_warn("%s: cut by shutdown before the answer", what);
            REPLY("error %d rewindd stopped while answering; ask again", RW_ESTOP);
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
            REPLY("error %d the output descriptor is not open for writing", RW_EINPUT);
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
    if (qry_damage_desc(q, dmg, sizeof dmg)) /* before the client hears the end */
        rw_warn("%s: %s", what, dmg);
    if (rc == 0 && out) {
        rc = qry_out_losses(out, q) < 0 ? -1 : 0;
        rc = qry_out_close(out) < 0 ? -1 : rc;
        out = NULL;
    } else if (rc == 1) {
        rc = -1;
    }
    if (rc >= 0)
        send_losses(conn, q, what);
    if (rc >= 0) {
        /* On disk before the client hears "ok", with the hash of exactly
         * the bytes written into its descriptor. */
        char hex[AUDIT_HEXSZ] = "", aerr[RW_ERRSZ];
        if (k.hash && audit_hash_final(k.hash, hex, aerr) < 0)
            hex[0] = 0;
        k.hash = NULL;
        if (ctl_audit_rec(s, conn, r.count ? "query --dir (count)" : "query --dir", &r.spec, 200,
                          packets, k.bytes, hex[0] ? hex : NULL, start_real,
                          rw_mono_ns() - start, NULL, aerr) < 0) {
            rw_error("%s: audit trail: %s", what, aerr);
            REPLY("error %d the audit trail cannot be written: %s", RW_EIO, aerr);
            goto done;
        }
        rw_info("%s: %" PRIu64 " packets, %" PRIu64 " bytes in %.3f s", what, packets, k.bytes,
                (double)(rw_mono_ns() - start) / 1e9);
        REPLY("ok %" PRIu64 " %" PRIu64, packets, k.bytes);
    } else if (k.cut) {
        if (atomic_load(&s->cancel)) {
            rw_warn("%s: cut by shutdown after %" PRIu64 " bytes", what, k.bytes);
            REPLY("error %d rewindd stopped while answering; ask again", RW_ESTOP);
        } else {
            rw_info("%s: client went away after %" PRIu64 " bytes", what, k.bytes);
        }
    } else if (k.werrno == EPIPE) {
        rw_info("%s: the reader of the client's pipe went away after %" PRIu64 " bytes", what,
                k.bytes);
        REPLY("epipe");
    } else if (k.werrno) {
        REPLY("error %d writing output: %s", RW_EIO, strerror(k.werrno));
    } else {
        rw_error("%s: failed after %" PRIu64 " bytes: %s", what, k.bytes, err);
        REPLY("error %d %s", rc, err);
    }
done:
    /* The writer first: closing it flushes through sink_write(), which
     * hashes what it sends (a query that failed midway had bytes buffered;
     * freeing the hash first was a use after free, and rewindd died). */
    if (out)
        (void)!qry_out_close(out);
    audit_hash_free(k.hash);
    k.hash = NULL;
    qry_free(q);
    if (k.fd >= 0)
        close(k.fd);
    /* The slot is free before the client hears the last line: a client
     * asking again as soon as it has its answer must not be told "busy"
     * because of the query that answered it. */
    atomic_fetch_sub(&s->active, 1);
    if (reply[0])
        ctl_send_line(conn, "%s", reply);
#undef REPLY
}

