/* server.c -- the control socket's listener: DIR/rewindd.sock, a thread
 * per connection, one request each, dispatched by its verb (ctl.h). */
#include "ctl/ctl_int.h"

#include <errno.h>
#include <grp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "archive/archive.h"
#include "auth/audit.h"

/* The verbs: one row each, with the permission a peer needs (a verb may
 * ask more of a request, as hold does to release). Room for more. */
static const struct {
    const char *verb;
    enum auth_perm perm;
    void (*fn)(struct ctl *c, int conn, char *line, int fd);
} verbs[] = {
    {"query", AUTH_PERM_PACKETS, ctl_verb_query},
    {"import", AUTH_PERM_ADMIN, ctl_verb_import},
    {"hold", AUTH_PERM_HOLD, ctl_verb_hold},
    {"status", AUTH_PERM_STATUS, ctl_verb_status},
    {"token", AUTH_PERM_ADMIN, ctl_verb_token},
    {"audit", AUTH_PERM_PACKETS, ctl_verb_audit},
    {"case", AUTH_PERM_ADMIN, ctl_verb_case},
};

int ctl_audit_rec(struct ctl *c, int conn, const char *route, const struct qry_spec *spec,
                  int status, uint64_t packets, uint64_t bytes, const char *sha256,
                  int64_t start_ns, int64_t duration_ns, const char *detail, char *err)
{
    struct auth_principal p;
    struct audit_rec r;
    char client[48];
    struct ucred cr;
    socklen_t cl = sizeof cr;
    if (!c->o.audit)
        return 0;
    ctl_peer(conn, &p);
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
        snprintf(client, sizeof client, "unix pid %d uid %u", (int)cr.pid, (unsigned)cr.uid);
    else
        snprintf(client, sizeof client, "unix");
    audit_rec_init(&r);
    r.time_ns = start_ns;
    r.principal = p.name;
    r.role = auth_role_name(p.role);
    r.method = p.method;
    r.client = client;
    r.route = route;
    if (spec) {
        r.from_ns = spec->from;
        r.to_ns = spec->to;
        r.filter = spec->filter;
        r.points = spec->points;
    }
    r.status = status;
    r.packets = packets;
    r.bytes = bytes;
    r.sha256 = sha256;
    r.duration_ns = duration_ns;
    r.detail = detail;
    return audit_append(c->o.audit, &r, err);
}

void ctl_peer(int conn, struct auth_principal *p)
{
    struct ucred cr;
    socklen_t cl = sizeof cr;
    memset(p, 0, sizeof *p);
    p->method = "uid";
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
        snprintf(p->name, sizeof p->name, "unknown user");
        p->role = AUTH_NOBODY;
        return;
    }
    rw_user_name(cr.uid, p->name, sizeof p->name);
    p->role = cr.uid == 0 || cr.uid == geteuid() ? AUTH_ADMIN : AUTH_ANALYST;
}

struct conn {
    struct ctl *c;
    int fd;
};

static void dispatch(struct ctl *c, int conn, char *line, int fd)
{
    size_t vl = strcspn(line, "\t");
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++) {
        if (strlen(verbs[i].verb) == vl && !strncmp(line, verbs[i].verb, vl)) {
            struct auth_principal p;
            ctl_peer(conn, &p);
            if (!auth_allows(p.role, verbs[i].perm)) {
                if (fd >= 0)
                    close(fd);
                rw_info("control socket: %s refused to %s (role %s)", verbs[i].verb, p.name,
                        auth_role_name(p.role));
                ctl_send_line(conn, "error %d %s needs the role %s; %s has %s", RW_EINPUT,
                              verbs[i].verb, auth_roles_for(verbs[i].perm), p.name,
                              auth_role_name(p.role));
                return;
            }
            verbs[i].fn(c, conn, line, fd);
            return;
        }
    }
    if (fd >= 0)
        close(fd);
    ctl_send_line(conn, "error %d unknown request '%.*s'; this rewindd knows query, import, "
                        "hold, status and token", RW_EINPUT, (int)(vl < 40 ? vl : 40), line);
}

static void *serve(void *arg)
{
    struct conn *cn = arg;
    struct ctl *c = cn->c;
    char *buf = malloc(CTL_MAX_REQ), *nl = NULL;
    int fd = -1;
    size_t len = 0;
    /* The line may arrive in pieces; a descriptor comes with the first. An
     * idle connection must not hold up ctl_stop(). */
    ssize_t n = buf && ctl_wait_in(cn->fd, &c->stop) == 0 ?
                    ctl_recv_fd(cn->fd, buf, CTL_MAX_REQ - 1, &fd) : -1;
    while (n > 0) {
        len += (size_t)n;
        buf[len] = 0;
        if ((nl = memchr(buf, '\n', len)) || len == CTL_MAX_REQ - 1)
            break;
        n = ctl_wait_in(cn->fd, &c->stop) == 0 ? recv(cn->fd, buf + len, CTL_MAX_REQ - 1 - len, 0)
                                               : -1;
    }
    if (nl) {
        *nl = 0;
        dispatch(c, cn->fd, buf, fd);
    } else {
        if (fd >= 0)
            close(fd);
        ctl_send_line(cn->fd, "error %d request line missing, cut or longer than %d bytes",
                      RW_EINPUT, CTL_MAX_REQ - 1);
    }
    free(buf);
    close(cn->fd);
    atomic_fetch_sub(&c->busy, 1);
    free(cn);
    return NULL;
}

static void *accept_loop(void *arg)
{
    struct ctl *c = arg;
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {c->lfd, POLLIN, 0};
        if (poll(&p, 1, 200) <= 0)
            continue;
        int fd = accept4(c->lfd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct conn *cn = malloc(sizeof *cn);
        pthread_t t;
        pthread_attr_t at;
        if (!cn) {
            close(fd);
            continue;
        }
        cn->c = c;
        cn->fd = fd;
        atomic_fetch_add(&c->busy, 1);
        pthread_attr_init(&at);
        pthread_attr_setdetachstate(&at, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &at, serve, cn) != 0) {
            atomic_fetch_sub(&c->busy, 1);
            close(fd);
            free(cn);
        }
        pthread_attr_destroy(&at);
    }
    return NULL;
}

/* The socket's group: its members may open it (as analysts, ctl.h). */
static int set_group(const char *path, const char *group)
{
    struct group gr, *g = NULL;
    char buf[1024];
    if (!group)
        return 0;
    if (getgrnam_r(group, &gr, buf, sizeof buf, &g) != 0 || !g) {
        errno = ENOENT;
        return -1;
    }
    return chown(path, (uid_t)-1, g->gr_gid);
}

int ctl_start(const struct ctl_opts *o, ctl_t **out, char *err)
{
    struct ctl *c = calloc(1, sizeof *c);
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int rc;
    if (!c)
        return rw_err(err, RW_ENOMEM, "out of memory");
    c->o = *o;
    if (c->o.max_queries <= 0)
        c->o.max_queries = 8;
    if ((rc = ctl_sock_path(arc_dir(o->archive), c->path, sizeof c->path, err)) < 0) {
        free(c);
        return rc;
    }
    memcpy(sa.sun_path, c->path, strlen(c->path) + 1);
    unlink(c->path); /* we own the archive: a socket left here is stale */
    c->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->lfd < 0 || bind(c->lfd, (struct sockaddr *)&sa, sizeof sa) < 0 ||
        chmod(c->path, 0660) < 0 || set_group(c->path, o->group) < 0 || listen(c->lfd, 16) < 0) {
        rc = rw_err(err, errno == ENOENT && o->group ? RW_EINPUT : RW_EIO,
                    "control socket %s: %s%s%s", c->path, strerror(errno),
                    o->group ? "; --ctl-group " : "", o->group ? o->group : "");
        if (c->lfd >= 0)
            close(c->lfd);
        free(c);
        return rc;
    }
    if (pthread_create(&c->thr, NULL, accept_loop, c) != 0) {
        close(c->lfd);
        unlink(c->path);
        free(c);
        return rw_err(err, RW_EIO, "cannot start the control socket's thread");
    }
    *out = c;
    return 0;
}

void ctl_cancel(ctl_t *c)
{
    if (c)
        atomic_store(&c->cancel, 1);
}

void ctl_stop(ctl_t *c)
{
    if (!c)
        return;
    atomic_store(&c->cancel, 1);
    atomic_store(&c->stop, 1);
    pthread_join(c->thr, NULL);
    close(c->lfd);
    unlink(c->path);
    /* Imports in flight finish their file: they are bounded by its size.
     * Queries were cut (ctl_cancel) and see the cut within 200 ms. */
    while (atomic_load(&c->busy) > 0)
        usleep(50 * 1000);
    free(c);
}
