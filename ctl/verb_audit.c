/* verb_audit.c -- the control socket's audit verb: `rewind query --local`
 * run while the daemon owns the archive reads the files itself, and reports
 * what it read here, so that the trail has one writer (the daemon) and the
 * record names the user the kernel says is on the socket (ctl.h). */
#include "ctl/ctl_int.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth/audit.h"

void ctl_verb_audit(struct ctl *c, int conn, char *line, int fd)
{
    char err[RW_ERRSZ], *save = NULL, *k, *v, route[64] = "";
    const char *points[CTL_MAX_POINTS + 1], *sha = NULL;
    struct qry_spec spec = {.from = RW_TIME_MIN, .to = RW_TIME_MAX};
    uint64_t packets = 0, bytes = 0, status = 200;
    int64_t dur = 0;
    int np = 0, rc;
    if (fd >= 0)
        close(fd);
    strtok_r(line, "\t", &save);
    while ((rc = ctl_next_field(&save, "audit request", &k, &v, err)) == 1) {
        int64_t x = 0;
        uint64_t u = 0;
        if (!strcmp(k, "route"))
            snprintf(route, sizeof route, "%.40s (reported)", v);
        else if (!strcmp(k, "filter"))
            spec.filter = v;
        else if (!strcmp(k, "point") && np < CTL_MAX_POINTS)
            points[np++] = v;
        else if (!strcmp(k, "sha256") && strlen(v) == 64 && strspn(v, "0123456789abcdef") == 64)
            sha = v;
        else if ((!strcmp(k, "from") || !strcmp(k, "to") || !strcmp(k, "duration")) &&
                 ctl_parse_num(v, 1, &x, &u) == 0)
            *(k[0] == 'f' ? &spec.from : k[0] == 't' ? &spec.to : &dur) = x;
        else if ((!strcmp(k, "packets") || !strcmp(k, "bytes") || !strcmp(k, "status")) &&
                 ctl_parse_num(v, 0, &x, &u) == 0)
            *(k[0] == 'p' ? &packets : k[0] == 'b' ? &bytes : &status) = u;
        else
            rc = rw_err(err, RW_EINPUT, "audit request: bad field %.40s", k);
        if (rc < 0)
            break;
    }
    points[np] = NULL;
    spec.points = np ? points : NULL;
    if (rc == 0 && !route[0])
        rc = rw_err(err, RW_EINPUT, "audit request without route=");
    if (rc == 0)
        rc = ctl_audit_rec(c, conn, route, &spec, (int)status, packets, bytes, sha, rw_now_ns(),
                           dur, "read by the client itself", err);
    if (rc < 0) {
        ctl_send_line(conn, "error %d %s", rc, err);
        return;
    }
    ctl_send_line(conn, "ok 0");
}
