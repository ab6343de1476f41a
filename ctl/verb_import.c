/* verb_import.c -- the control socket's import verb: `rewind import` hands
 * its files to the daemon that owns the archive, as open descriptors, so
 * the daemon reads exactly what the client could open (ctl.h). */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "capture/cap.h"

static void on_progress(void *arg, const char *path, uint64_t done, uint64_t total, uint64_t pk)
{
    (void)path;
    ctl_send_line(*(int *)arg, "progress %llu %llu %llu", (unsigned long long)done,
                  (unsigned long long)total, (unsigned long long)pk);
}

/* A pipe or a socket may never end (a client that keeps its write end
 * open, or hands the daemon both ends of one pipe): reading it straight
 * would hold ctl_stop() up for ever. A pump thread copies it into a pipe of
 * our own, looking at the stop flag every 200 ms; on a stop it closes its
 * end, and the import sees the file end (a cut one: an error). */
struct pump {
    const struct ctl *c;
    int in, out; /* the client's descriptor (borrowed), our pipe's write end (owned) */
    int cut;     /* the daemon stopped before the input ended */
    atomic_int quit; /* the import is over: stop pumping */
    pthread_t t;
};

static int wait_fd(struct pump *p, int fd, short ev)
{
    for (;;) {
        struct pollfd pf = {fd, ev, 0};
        int r = poll(&pf, 1, 200);
        if (atomic_load(&p->quit))
            return -1;
        if (atomic_load(&p->c->stop)) {
            p->cut = 1;
            return -1;
        }
        if (r > 0)
            return pf.revents & (POLLERR | POLLNVAL) && !(pf.revents & ev) ? -1 : 0;
        if (r < 0 && errno != EINTR)
            return -1;
    }
}

static void *pump_run(void *arg)
{
    struct pump *p = arg;
    char buf[64 << 10];
    sigset_t pipe_sig;
    /* A write to a pipe whose reader is gone fails with EPIPE here rather
     * than raise SIGPIPE (delivered to this thread, blocked). */
    sigemptyset(&pipe_sig);
    sigaddset(&pipe_sig, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe_sig, NULL);
    for (;;) {
        if (wait_fd(p, p->in, POLLIN) < 0)
            break;
        ssize_t n = read(p->in, buf, sizeof buf);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n <= 0)
            break;
        for (ssize_t off = 0; off < n;) {
            if (wait_fd(p, p->out, POLLOUT) < 0)
                goto done;
            ssize_t w = write(p->out, buf + off, (size_t)(n - off));
            if (w < 0 && (errno == EINTR || errno == EAGAIN))
                continue;
            if (w <= 0) /* the import stopped reading: it failed */
                goto done;
            off += w;
        }
    }
done:
    close(p->out);
    return NULL;
}

/* Start a pump from fd if it is not a regular file: *rd is then the
 * descriptor to import from (ours, for the caller to close), else fd. */
static int pump_start(struct ctl *c, int fd, struct pump *p, int *rd, char *err)
{
    struct stat sb;
    int pp[2];
    *rd = fd;
    memset(p, 0, sizeof *p);
    p->out = -1;
    if (fstat(fd, &sb) == 0 && S_ISREG(sb.st_mode))
        return 0;
    if (pipe2(pp, O_CLOEXEC) < 0)
        return rw_err(err, RW_EIO, "import: pipe: %s", strerror(errno));
    /* Non-blocking writes: the pump looks at the stop flag between them. */
    (void)fcntl(pp[1], F_SETFL, O_NONBLOCK);
    p->c = c;
    p->in = fd;
    p->out = pp[1];
    if (pthread_create(&p->t, NULL, pump_run, p) != 0) {
        close(pp[0]);
        close(pp[1]);
        p->out = -1;
        return rw_err(err, RW_EIO, "import: cannot start a thread");
    }
    *rd = pp[0];
    return 0;
}

void ctl_verb_import(struct ctl *c, int conn, char *line, int fd)
{
    char err[RW_ERRSZ], *save = NULL, *k, *v, *point = NULL, *label = NULL;
    int rc;
    strtok_r(line, "\t", &save); /* the verb */
    while ((rc = ctl_next_field(&save, "import request", &k, &v, err)) == 1) {
        if (!strcmp(k, "point"))
            point = v;
        else if (!strcmp(k, "label"))
            label = v;
        else
            rc = rw_err(err, RW_EINPUT, "import request: unknown field %.40s", k);
        if (rc < 0)
            break;
    }
    if (rc == 0 && (!point || !label))
        rc = rw_err(err, RW_EINPUT, "import request without point= and label=");
    if (rc == 0 && fd < 0)
        rc = rw_err(err, RW_EINPUT, "import request without a file descriptor");
    if (rc == 0 && !rw_point_name_ok(point))
        rc = rw_err(err, RW_EINPUT, "invalid point name '%.64s'", point);
    if (rc < 0) {
        ctl_send_line(conn, "error %d %s", rc, err);
        goto done;
    }
    struct cap_import_stats st;
    struct pump pump;
    int rd;
    rw_info("import of %s into point %s handed over by a client", label, point);
    /* The descriptor itself, not a reopened /proc/self/fd path: a socket
     * cannot be reopened, and standard input is read from where it stands. */
    if ((rc = pump_start(c, fd, &pump, &rd, err)) == 0) {
        rc = cap_import_fd(c->o.archive, rd, label, point, on_progress, &conn, &st, err);
        if (rd != fd) {
            atomic_store(&pump.quit, 1);
            close(rd); /* a pump blocked on writing sees EPIPE */
            pthread_join(pump.t, NULL);
            if (pump.cut)
                rc = rw_err(err, RW_EIO, "import of %s cut by the daemon's shutdown before the "
                            "input ended; packets before the cut are in the archive", label);
        }
    }
    if (rc < 0) {
        rw_warn("import of %s: %s", label, err);
        ctl_send_line(conn, "error %d %s", rc, err);
    } else {
        char detail[260], aerr[RW_ERRSZ];
        rw_info("imported %s: %llu packets", label, (unsigned long long)st.packets);
        snprintf(detail, sizeof detail, "imported %.120s into point %.64s", label, point);
        if (ctl_audit_rec(c, conn, "import", NULL, 200, st.packets, st.bytes, NULL, rw_now_ns(), 0,
                          detail, aerr) < 0)
            rw_error("audit trail: %s", aerr);
        ctl_send_line(conn, "ok %llu %llu %d %llu", (unsigned long long)st.packets,
                      (unsigned long long)st.bytes, st.points, (unsigned long long)st.removed);
    }
done:
    if (fd >= 0)
        close(fd);
}
