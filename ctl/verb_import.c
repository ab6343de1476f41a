/* verb_import.c -- the control socket's import verb: `rewind import` hands
 * its files to the daemon that owns the archive, as open descriptors, so
 * the daemon reads exactly what the client could open (ctl.h). */
#include "ctl/ctl_int.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "capture/cap.h"

static void on_progress(void *arg, const char *path, uint64_t done, uint64_t total, uint64_t pk)
{
    (void)path;
    ctl_send_line(*(int *)arg, "progress %llu %llu %llu", (unsigned long long)done,
                  (unsigned long long)total, (unsigned long long)pk);
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
    rw_info("import of %s into point %s handed over by a client", label, point);
    /* The descriptor itself, not a reopened /proc/self/fd path: a socket
     * cannot be reopened, and standard input is read from where it stands. */
    rc = cap_import_fd(c->o.archive, fd, label, point, on_progress, &conn, &st, err);
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
