/* verb_token.c -- the control socket's token verb: bearer tokens added and
 * revoked by the daemon that owns the archive, effective at once (the HTTP
 * server looks each token up in the index at each request). The token is
 * sent back once, on this socket, and never logged. */
#include "ctl/ctl_int.h"

#include <inttypes.h>
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "archive/archive.h"

void ctl_verb_token(struct ctl *c, int conn, char *line, int fd)
{
    char err[RW_ERRSZ], *save = NULL, *k, *v, tok[AUTH_TOKEN_CHARS + 1];
    const char *op = NULL, *name = NULL, *role = NULL, *case_id = "";
    int64_t expires = 0;
    int rc;
    struct auth_principal peer;
    if (fd >= 0)
        close(fd);
    ctl_peer(conn, &peer);
    strtok_r(line, "\t", &save);
    while ((rc = ctl_next_field(&save, "token request", &k, &v, err)) == 1) {
        int64_t x = 0;
        uint64_t u = 0;
        if (!strcmp(k, "op"))
            op = v;
        else if (!strcmp(k, "name"))
            name = v;
        else if (!strcmp(k, "role"))
            role = v;
        else if (!strcmp(k, "case"))
            case_id = v;
        else if (!strcmp(k, "expires") && ctl_parse_num(v, 1, &x, &u) == 0)
            expires = x;
        else
            rc = rw_err(err, RW_EINPUT, "token request: bad field %.40s", k);
        if (rc < 0)
            break;
    }
    if (rc == 0 && !name)
        rc = rw_err(err, RW_EINPUT, "token request without name=");
    idx_t *ix = arc_index(c->o.archive);
    if (rc == 0 && op && !strcmp(op, "add")) {
        enum auth_role r = AUTH_NOBODY;
        if (!role)
            rc = rw_err(err, RW_EINPUT, "token request without role=");
        else if ((rc = auth_role_parse(role, &r, err)) == 0 &&
                 (rc = auth_token_add(ix, name, r, case_id, expires, peer.name, tok, err)) == 0) {
            char detail[200], aerr[RW_ERRSZ];
            rw_info("token for %s (role %s) added by %s", name, role, peer.name);
            snprintf(detail, sizeof detail, "token for %.64s added, role %s%s%.64s", name, role,
                     case_id[0] ? ", case " : "", case_id);
            if (ctl_audit_rec(c, conn, "token add", NULL, 200, 0, 0, NULL, rw_now_ns(), 0, detail,
                              aerr) < 0)
                rw_error("audit trail: %s", aerr);
            ctl_send_line(conn, "ok %s", tok);
            OPENSSL_cleanse(tok, sizeof tok);
            return;
        }
    } else if (rc == 0 && op && !strcmp(op, "revoke")) {
        if ((rc = auth_token_revoke(ix, name, err)) >= 0) {
            char detail[128], aerr[RW_ERRSZ];
            if (rc)
                rw_info("%d token(s) of %s revoked by %s", rc, name, peer.name);
            snprintf(detail, sizeof detail, "%d token(s) of %.64s revoked", rc, name);
            if (ctl_audit_rec(c, conn, "token revoke", NULL, rc ? 200 : 404, 0, 0, NULL,
                              rw_now_ns(), 0, detail, aerr) < 0)
                rw_error("audit trail: %s", aerr);
            ctl_send_line(conn, "ok %d", rc);
            return;
        }
    } else if (rc == 0) {
        rc = rw_err(err, RW_EINPUT, "token request: op must be add or revoke");
    }
    ctl_send_line(conn, "error %d %s", rc, err);
}
