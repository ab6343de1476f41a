/* handoff.c -- imports into an archive that a running rewindd owns.
 *
 * Only one process may write an archive, so `rewind import` hands its files
 * to the daemon over the Unix socket DIR/rewindd.sock. The client sends the
 * open file descriptor (SCM_RIGHTS) rather than a path: the daemon reads
 * exactly what the client was allowed to open, never a path of its choosing.
 *
 * Protocol, one connection per file:
 *   client: "import\tPOINT\tLABEL\n" with the descriptor attached
 *   daemon: "progress DONE TOTAL PACKETS\n"...  then
 *           "ok PACKETS BYTES POINTS\n" or "error CODE MESSAGE\n"
 * Any other request line goes to the `other` handler (queries: qsock.h). */
#include "capture/cap.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

struct cap_handoff {
    cap_arch_t *a;
    cap_request_fn other;
    void *other_arg;
    int lfd;
    char path[108];
    pthread_t thr;
    atomic_int stop;
    atomic_int busy; /* connections being served */
};

struct conn {
    struct cap_handoff *h;
    int fd;
};

static int sock_path(const char *dir, char *out, size_t n, char *err)
{
    if ((size_t)snprintf(out, n, "%s/rewindd.sock", dir) >= n)
        return rw_err(err, RW_EINPUT, "archive path %s is too long for a Unix socket", dir);
    return 0;
}

static void on_progress(void *arg, const char *path, uint64_t done, uint64_t total, uint64_t pk)
{
    (void)path;
    rw_send_line(*(int *)arg, "progress %llu %llu %llu", (unsigned long long)done,
                 (unsigned long long)total, (unsigned long long)pk);
}

static void *serve(void *arg)
{
    struct conn *c = arg;
    char err[RW_ERRSZ];
    char *buf = malloc(RW_SOCK_MAX_REQ), *nl = NULL;
    int filefd = -1;
    size_t len = 0;
    /* The line may arrive in pieces; a descriptor comes with the first. An
     * idle connection must not hold up cap_handoff_stop(). */
    ssize_t n = buf && rw_wait_in(c->fd, &c->h->stop) == 0 ?
                    rw_recv_fd(c->fd, buf, RW_SOCK_MAX_REQ - 1, &filefd) : -1;
    while (n > 0) {
        len += (size_t)n;
        buf[len] = 0;
        if ((nl = memchr(buf, '\n', len)) || len == RW_SOCK_MAX_REQ - 1)
            break;
        n = rw_wait_in(c->fd, &c->h->stop) == 0 ? recv(c->fd, buf + len, RW_SOCK_MAX_REQ - 1 - len, 0)
                                                 : -1;
    }
    if (!nl) {
        rw_send_line(c->fd, "error %d request line missing, cut or longer than %d bytes",
                     RW_EINPUT, RW_SOCK_MAX_REQ - 1);
        goto done;
    }
    *nl = 0;
    if (strncmp(buf, "import\t", 7) != 0) {
        if (c->h->other)
            c->h->other(c->h->other_arg, c->fd, buf);
        else
            rw_send_line(c->fd, "error %d unknown request", RW_EINPUT);
        goto done;
    }
    char *point = buf + 7, *label;
    if (filefd < 0) {
        rw_send_line(c->fd, "error %d import request without a file descriptor", RW_EINPUT);
        goto done;
    }
    if (!(label = strchr(point, '\t'))) {
        rw_send_line(c->fd, "error %d malformed import request", RW_EINPUT);
        goto done;
    }
    *label++ = 0;
    struct cap_import_stats st;
    rw_info("import of %s into point %s handed over by a client", label, point);
    /* The descriptor itself, not a reopened /proc/self/fd path: a socket
     * cannot be reopened, and standard input is read from where it stands. */
    int rc = cap_import_fd(c->h->a, filefd, label, point, on_progress, &c->fd, &st, err);
    if (rc < 0) {
        rw_warn("import of %s: %s", label, err);
        rw_send_line(c->fd, "error %d %s", rc, err);
    } else {
        rw_info("imported %s: %llu packets", label, (unsigned long long)st.packets);
        rw_send_line(c->fd, "ok %llu %llu %d", (unsigned long long)st.packets,
                     (unsigned long long)st.bytes, st.points);
    }
done:
    if (filefd >= 0)
        close(filefd);
    free(buf);
    close(c->fd);
    atomic_fetch_sub(&c->h->busy, 1);
    free(c);
    return NULL;
}

static void *accept_loop(void *arg)
{
    struct cap_handoff *h = arg;
    while (!atomic_load(&h->stop)) {
        struct pollfd p = {h->lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept4(h->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct conn *c = malloc(sizeof *c);
        pthread_t t;
        pthread_attr_t at;
        if (!c) {
            close(fd);
            continue;
        }
        c->h = h;
        c->fd = fd;
        atomic_fetch_add(&h->busy, 1);
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, serve, c) != 0) {
            atomic_fetch_sub(&h->busy, 1);
            close(fd);
            free(c);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

int cap_handoff_start(cap_arch_t *a, cap_request_fn other, void *other_arg,
                      cap_handoff_t **out, char *err)
{
    struct cap_handoff *h = calloc(1, sizeof *h);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc;
    if (!h)
        return rw_err(err, RW_ENOMEM, "out of memory");
    h->a = a;
    h->other = other;
    h->other_arg = other_arg;
    if ((rc = sock_path(cap_arch_dir(a), h->path, sizeof h->path, err)) < 0) {
        free(h);
        return rc;
    }
    memcpy(sa.sun_path, h->path, strlen(h->path) + 1);
    unlink(h->path); /* we own the archive: a socket left here is stale */
    h->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (h->lfd < 0 || bind(h->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        chmod(h->path, 0660) < 0 || listen(h->lfd, 16) < 0) {
        rc = rw_err(err, RW_EIO, "import socket %s: %s", h->path, strerror(errno));
        if (h->lfd >= 0)
            close(h->lfd);
        free(h);
        return rc;
    }
    if (pthread_create(&h->thr, NULL, accept_loop, h) != 0) {
        close(h->lfd);
        unlink(h->path);
        free(h);
        return rw_err(err, RW_EIO, "cannot start the import thread");
    }
    *out = h;
    return 0;
}

void cap_handoff_stop(cap_handoff_t *h)
{
    if (!h)
        return;
    atomic_store(&h->stop, 1);
    pthread_join(h->thr, NULL);
    close(h->lfd);
    unlink(h->path);
    /* Imports in flight finish their file: they are bounded by its size.
     * Queries were cut by their owner (qsock_server_cancel) before. */
    while (atomic_load(&h->busy) > 0)
        usleep(50 * 1000);
    free(h);
}

int cap_handoff_import(const char *dir, const char *path, const char *point,
                       cap_progress_fn progress, void *parg, struct cap_import_stats *st,
                       char *err)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    char sp[108], line[RW_ERRSZ + 64];
    int rc, filefd, s;
    memset(st, 0, sizeof *st);
    if ((rc = sock_path(dir, sp, sizeof sp, err)) < 0)
        return rc;
    memcpy(sa.sun_path, sp, strlen(sp) + 1);
    s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s < 0 || connect(s, (struct sockaddr *)&sa, sizeof sa) < 0) {
        if (s >= 0)
            close(s);
        return rw_err(err, RW_EBUSY,
                      "archive %s is written by another process that takes no imports (no %s); "
                      "stop it or import into another --dir",
                      dir, sp);
    }
    filefd = strcmp(path, "-") ? open(path, O_RDONLY | O_CLOEXEC) : 0;
    if (filefd < 0) {
        rc = rw_err(err, RW_EINPUT, "%s: %s", path, strerror(errno));
        close(s);
        return rc;
    }
    char req[1200];
    int reqlen = snprintf(req, sizeof req, "import\t%s\t%s\n", point, path);
    if (rw_send_fd(s, req, (size_t)reqlen, filefd) != reqlen) {
        rc = rw_err(err, RW_EIO, "handing %s to the daemon: %s", path, strerror(errno));
        goto done;
    }
    FILE *f = fdopen(s, "r");
    if (!f) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    s = -1;
    rc = rw_err(err, RW_EIO, "the daemon closed the connection while importing %s; see its log",
                path);
    while (fgets(line, sizeof line, f)) {
        unsigned long long a1, a2, a3;
        int code, off = 0;
        line[strcspn(line, "\n")] = 0;
        if (sscanf(line, "progress %llu %llu %llu", &a1, &a2, &a3) == 3) {
            if (progress)
                progress(parg, path, a1, a2, a3);
        } else if (sscanf(line, "ok %llu %llu %d", &a1, &a2, &code) == 3) {
            st->packets = a1;
            st->bytes = a2;
            st->points = code;
            rc = 0;
            break;
        } else if (sscanf(line, "error %d %n", &code, &off) == 1 && off > 0) {
            rc = rw_err(err, code < 0 && code >= RW_ESTOP ? code : RW_EIO, "%s", line + off);
            break;
        }
    }
    fclose(f);
done:
    if (s >= 0)
        close(s);
    if (filefd > 0)
        close(filefd);
    return rc;
}
