/* verb_case.c -- the control socket's case verb: lawful intercept cases
 * created, changed, ended and shown by the daemon that owns the archive,
 * through the same case store (intercept/intercept.h) as the HTTP API, so
 * that the record, the retrospective copy and the audit record are the same
 * whichever door a case came through (ctl.h). */
#include "ctl/ctl_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "intercept/intercept.h"

/* "case JSON\n" for k; -1 when the peer has gone or memory ran out. */
static int send_case(int conn, const struct ic_case *k)
{
    char *s = ic_case_json(k, rw_now_ns());
    if (!s)
        return -1;
    size_t n = strlen(s);
    char *line = malloc(n + 7);
    int rc = -1;
    if (line) {
        memcpy(line, "case ", 5);
        memcpy(line + 5, s, n);
        line[n + 5] = '\n';
        rc = ctl_send_all(conn, line, n + 6);
    }
    free(line);
    free(s);
    return rc;
}

void ctl_verb_case(struct ctl *c, int conn, char *line, int fd)
{
    char err[RW_ERRSZ], *save = NULL, *k, *v, route[32], client[48];
    const char *op = NULL, *id = NULL, *json = NULL;
    struct auth_principal peer;
    struct ucred cr;
    socklen_t cl = sizeof cr;
    struct ic_case *kc = NULL;
    int rc, found = 1;
    if (fd >= 0)
        close(fd);
    strtok_r(line, "\t", &save);
    while ((rc = ctl_next_field(&save, "case request", &k, &v, err)) == 1) {
        if (!strcmp(k, "op"))
            op = v;
        else if (!strcmp(k, "id"))
            id = v;
        else if (!strcmp(k, "json"))
            json = v;
        else
            rc = rw_err(err, RW_EINPUT, "case request: unknown field %.40s", k);
        if (rc < 0)
            break;
    }
    if (rc == 0 && !c->o.cases)
        rc = rw_err(err, RW_ESTATE, "this rewindd keeps no cases");
    if (rc == 0 && (!op || (strcmp(op, "list") && strcmp(op, "add") && !id)))
        rc = rw_err(err, RW_EINPUT, "case request: op= add, patch, end, show or list (with id= "
                    "but for add and list)");
    if (rc < 0)
        goto fail;
    ctl_peer(conn, &peer);
    if (getsockopt(conn, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0)
        snprintf(client, sizeof client, "unix pid %d uid %u", (int)cr.pid, (unsigned)cr.uid);
    else
        snprintf(client, sizeof client, "unix");
    snprintf(route, sizeof route, "ctl case %.16s", op);
    struct ic_who who = {peer.name, auth_role_name(peer.role), peer.method, client, route};
    if (!strcmp(op, "list")) {
        struct ic_case *all = NULL;
        size_t n = 0;
        if ((rc = ic_list(c->o.cases, &all, &n, err)) < 0)
            goto fail;
        for (size_t i = 0; i < n; i++)
            if (send_case(conn, &all[i]) < 0)
                break;
        free(all);
        ctl_send_line(conn, "ok %zu", n);
        return;
    }
    if (!(kc = malloc(sizeof *kc))) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto fail;
    }
    if (!strcmp(op, "add"))
        rc = ic_create(c->o.cases, json ? json : "", json ? strlen(json) : 0, &who, kc, err);
    else if (!strcmp(op, "patch"))
        rc = ic_patch(c->o.cases, id, json ? json : "", json ? strlen(json) : 0, &who, kc,
                      &found, err);
    else if (!strcmp(op, "end"))
        rc = ic_end(c->o.cases, id, &who, kc, &found, err);
    else if (!strcmp(op, "show"))
        found = rc = ic_get(c->o.cases, id, kc, err);
    else
        rc = rw_err(err, RW_EINPUT, "case request: unknown op %.16s", op);
    if (rc < 0)
        goto fail;
    if (found) {
        if (strcmp(op, "show"))
            rw_info("case %s: %s by %s", kc->id, op, peer.name);
        send_case(conn, kc);
    }
    ctl_send_line(conn, "ok %d", found);
    free(kc);
    return;
fail:
    free(kc);
    ctl_send_line(conn, "error %d %s", rc, err);
}
