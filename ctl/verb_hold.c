/* verb_hold.c -- the control socket's hold and status verbs: legal holds
 * placed and released by the daemon that owns the archive (effective at
 * once: retention reads them at every pass), and the status with the
 * daemon's live capture state (ctl.h). */
#include "ctl/ctl_int.h"

#include <inttypes.h>
#include <pwd.h>
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"

static void peer_name(int conn, char *out, size_t n)
{
    struct auth_principal p;
    ctl_peer(conn, &p);
    size_t l = strlen(p.name);
    if (l && p.name[l - 1] == ')') /* "root (uid 0)" -> "root (uid 0, control socket)" */
        snprintf(out, n, "%.*s, control socket)", (int)(l - 1 < 100 ? l - 1 : 100), p.name);
    else
        snprintf(out, n, "%.100s (control socket)", p.name);
}

void ctl_verb_hold(struct ctl *c, int conn, char *line, int fd)
{
    char err[RW_ERRSZ], *save = NULL, *k, *v;
    const char *op = NULL;
    struct idx_hold h = {0};
    int have_from = 0, have_to = 0, have_id = 0, rc;
    uint64_t id = 0;
    if (fd >= 0)
        close(fd);
    strtok_r(line, "\t", &save);
    while ((rc = ctl_next_field(&save, "hold request", &k, &v, err)) == 1) {
        int64_t x = 0;
        uint64_t u = 0;
        if (!strcmp(k, "op")) {
            op = v;
        } else if (!strcmp(k, "from") || !strcmp(k, "to")) {
            if (ctl_parse_num(v, 1, &x, &u) < 0)
                rc = rw_err(err, RW_EINPUT, "hold request: %s is not a number", k);
            else if (k[0] == 'f')
                h.from = x, have_from = 1;
            else
                h.to = x, have_to = 1;
        } else if (!strcmp(k, "id")) {
            if (ctl_parse_num(v, 0, &x, &id) < 0)
                rc = rw_err(err, RW_EINPUT, "hold request: id is not a number");
            have_id = 1;
        } else if (!strcmp(k, "filter") || !strcmp(k, "reason")) {
            char *dst = k[0] == 'f' ? h.filter : h.reason;
            if (strlen(v) >= sizeof h.filter)
                rc = rw_err(err, RW_EINPUT, "hold request: %s longer than 255 bytes", k);
            else
                strcpy(dst, v);
        } else {
            rc = rw_err(err, RW_EINPUT, "hold request: unknown field %.40s", k);
        }
        if (rc < 0)
            break;
    }
    if (rc == 0 && op && !strcmp(op, "add")) {
        if (!have_from || !have_to)
            rc = rw_err(err, RW_EINPUT, "hold request without from= and to=");
        else if (h.from >= h.to)
            rc = rw_err(err, RW_EINPUT, "hold: from must be before to");
        h.created = rw_now_ns();
        peer_name(conn, h.author, sizeof h.author);
        if (rc == 0 && (rc = arc_hold_add(c->o.archive, &h, err)) == 0) {
            char b1[48], b2[48], detail[128], aerr[RW_ERRSZ];
            struct qry_spec spec = {.from = h.from, .to = h.to, .filter = h.filter};
            snprintf(detail, sizeof detail, "hold %" PRIu64 " placed, reason '%.60s'", h.id,
                     h.reason);
            if (ctl_audit_rec(c, conn, "hold add", &spec, 200, 0, 0, NULL, h.created, 0, detail,
                              aerr) < 0)
                rw_error("audit trail: %s", aerr);
            rw_info("hold %" PRIu64 " placed by %s: %s .. %s, reason '%s'", h.id, h.author,
                    rw_time_fmt(h.from, b1, sizeof b1), rw_time_fmt(h.to, b2, sizeof b2),
                    h.reason);
            ctl_send_line(conn, "ok %" PRIu64, h.id);
            return;
        }
    } else if (rc == 0 && op && !strcmp(op, "release")) {
        struct auth_principal p;
        ctl_peer(conn, &p);
        if (!auth_allows(p.role, AUTH_PERM_ADMIN))
            rc = rw_err(err, RW_EINPUT, "releasing a hold needs the role admin; %s has %s",
                        p.name, auth_role_name(p.role));
        else if (!have_id)
            rc = rw_err(err, RW_EINPUT, "hold release without id=");
        else if ((rc = arc_hold_release(c->o.archive, id, err)) >= 0) {
            char who[128], detail[64], aerr[RW_ERRSZ];
            peer_name(conn, who, sizeof who);
            if (rc)
                rw_info("hold %" PRIu64 " released by %s", id, who);
            snprintf(detail, sizeof detail, "hold %" PRIu64 " %s", id,
                     rc ? "released" : "not released: none");
            if (ctl_audit_rec(c, conn, "hold release", NULL, rc ? 200 : 404, 0, 0, NULL,
                              rw_now_ns(), 0, detail, aerr) < 0)
                rw_error("audit trail: %s", aerr);
            ctl_send_line(conn, "ok %d", rc);
            return;
        }
    } else if (rc == 0) {
        rc = rw_err(err, RW_EINPUT, "hold request: op must be add or release");
    }
    ctl_send_line(conn, "error %d %s", rc, err);
}

void ctl_verb_status(struct ctl *c, int conn, char *line, int fd)
{
    char err[RW_ERRSZ], *buf = NULL;
    struct qry_status st;
    size_t len;
    int rc;
    if (fd >= 0)
        close(fd);
    if (strcmp(line, "status")) {
        ctl_send_line(conn, "error %d status takes no fields", RW_EINPUT);
        return;
    }
    if ((rc = qry_status_get(arc_index(c->o.archive), c->o.live, c->o.live_arg, &st, err)) < 0) {
        ctl_send_line(conn, "error %d %s", rc, err);
        return;
    }
    if (!(buf = malloc(CTL_MAX_REQ))) {
        ctl_send_line(conn, "error %d out of memory", RW_ENOMEM);
        goto done;
    }
    for (size_t i = 0; i <= st.npoints; i++) {
        const struct qry_point_status *p = i < st.npoints ? &st.points[i] : &st.total;
        len = (size_t)snprintf(buf, CTL_MAX_REQ, "%s", i < st.npoints ? "point" : "total");
        if (ctl_put_point(buf, CTL_MAX_REQ - 1, &len, p) < 0)
            goto toolong;
        buf[len++] = '\n';
        if (ctl_send_all(conn, buf, len) < 0)
            goto done;
    }
    len = (size_t)snprintf(buf, CTL_MAX_REQ,
                           "archive\tindex_bytes=%" PRIu64 "\tdisk_available=%" PRIu64
                           "\tquota_bytes=%" PRIu64 "\tquota_pct=%u\tmax_age_ns=%" PRId64
                           "\tmin_horizon_ns=%" PRId64 "\tbelow_horizon=%d\tholds=%" PRIu64,
                           st.index_bytes, st.disk_available, st.quota_bytes, st.quota_pct,
                           st.max_age_ns, st.min_horizon_ns, st.below_horizon, st.holds);
    if (ctl_put_field(buf, CTL_MAX_REQ - 1, &len, "archive", st.archive) < 0)
        goto toolong;
    buf[len++] = '\n';
    if (ctl_send_all(conn, buf, len) == 0)
        ctl_send_line(conn, "ok");
    goto done;
toolong:
    ctl_send_line(conn, "error %d status line too long", RW_EIO);
done:
    free(buf);
    qry_status_free(&st);
}
