/* sensors.c -- the sensors file of a query across sensors (export.h). */
#include "export/export.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static int url_ok(const char *u)
{
    const char *p = !strncmp(u, "https://", 8) ? u + 8 : !strncmp(u, "http://", 7) ? u + 7 : NULL;
    return p && *p && *p != '/' && *p != ':' && !strpbrk(u, "#\"'\\");
}

/* The first line of a file, without its end: a secret kept out of the
 * sensors file itself. */
static int read_secret(const char *path, char *out, size_t n, const char *file, int line,
                       char *err)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return rw_err(err, RW_EINPUT, "%s line %d: %s: %s", file, line, path, strerror(errno));
    char buf[512];
    int ok = fgets(buf, sizeof buf, f) != NULL;
    fclose(f);
    buf[strcspn(buf, "\r\n")] = 0;
    if (!ok || !buf[0] || strlen(buf) >= n)
        return rw_err(err, RW_EINPUT, "%s line %d: %s: the first line must hold it (at most "
                      "%zu characters)", file, line, path, n - 1);
    snprintf(out, n, "%s", buf);
    memset(buf, 0, sizeof buf);
    return 0;
}

int ex_sensors_load(const char *path, struct ex_sensors *out, char *err)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "r");
    if (!f)
        return rw_err(err, RW_EINPUT, "sensors file %s: %s", path, strerror(errno));
    char line[2048];
    int no = 0, rc = 0;
    size_t cap = 0;
    while (fgets(line, sizeof line, f)) {
        no++;
        if (!strchr(line, '\n') && !feof(f)) {
            rc = rw_err(err, RW_EINPUT, "%s line %d: longer than %zu characters", path, no,
                        sizeof line - 2);
            break;
        }
        line[strcspn(line, "#\r\n")] = 0;
        char *w[8], *save = NULL;
        int nw = 0;
        for (char *t = strtok_r(line, " \t", &save); t; t = strtok_r(NULL, " \t", &save)) {
            if (nw == 8) {
                rc = rw_err(err, RW_EINPUT, "%s line %d: too many words", path, no);
                goto out;
            }
            w[nw++] = t;
        }
        if (nw == 0)
            continue;
        if (!strcmp(w[0], "clickhouse")) {
            if (nw < 2 || !url_ok(w[1]) || strlen(w[1]) >= sizeof out->clickhouse) {
                rc = rw_err(err, RW_EINPUT, "%s line %d: 'clickhouse URL [auth=FILE]' with an "
                            "http:// or https:// URL", path, no);
                goto out;
            }
            if (out->clickhouse[0]) {
                rc = rw_err(err, RW_EINPUT, "%s line %d: a second clickhouse line", path, no);
                goto out;
            }
            snprintf(out->clickhouse, sizeof out->clickhouse, "%s", w[1]);
            for (int i = 2; i < nw; i++) {
                char cred[400];
                if (strncmp(w[i], "auth=", 5)) {
                    rc = rw_err(err, RW_EINPUT, "%s line %d: unknown word '%s' (auth=FILE)",
                                path, no, w[i]);
                    goto out;
                }
                if ((rc = read_secret(w[i] + 5, cred, sizeof cred, path, no, err)) < 0)
                    goto out;
                char *colon = strchr(cred, ':');
                if (colon)
                    *colon = 0;
                if (strlen(cred) >= sizeof out->ch_user ||
                    (colon && strlen(colon + 1) >= sizeof out->ch_pass)) {
                    rc = rw_err(err, RW_EINPUT, "%s line %d: %s: user or password too long",
                                path, no, w[i] + 5);
                    goto out;
                }
                memcpy(out->ch_user, cred, strlen(cred) + 1);
                memcpy(out->ch_pass, colon ? colon + 1 : "", colon ? strlen(colon + 1) + 1 : 1);
                memset(cred, 0, sizeof cred);
            }
            continue;
        }
        if (strcmp(w[0], "sensor")) {
            rc = rw_err(err, RW_EINPUT, "%s line %d: '%s' is neither 'sensor NAME URL ...' nor "
                        "'clickhouse URL'", path, no, w[0]);
            goto out;
        }
        if (nw < 3) {
            rc = rw_err(err, RW_EINPUT, "%s line %d: 'sensor NAME URL [token=TOKEN|token=@FILE] "
                        "[ca=FILE]'", path, no);
            goto out;
        }
        if (!rw_point_name_ok(w[1])) {
            rc = rw_err(err, RW_EINPUT, "%s line %d: sensor name '%s': use letters, digits, '.', "
                        "'_', '-' (at most 64)", path, no, w[1]);
            goto out;
        }
        if (!url_ok(w[2]) || strlen(w[2]) >= sizeof out->s[0].url) {
            rc = rw_err(err, RW_EINPUT, "%s line %d: sensor %s: '%s' is not an http:// or "
                        "https:// URL", path, no, w[1], w[2]);
            goto out;
        }
        for (size_t i = 0; i < out->n; i++)
            if (!strcmp(out->s[i].name, w[1])) {
                rc = rw_err(err, RW_EINPUT, "%s line %d: sensor %s is named twice", path, no,
                            w[1]);
                goto out;
            }
        if (out->n == cap) {
            size_t nc = cap ? cap * 2 : 8;
            struct ex_sensor *s = realloc(out->s, nc * sizeof *s);
            if (!s) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                goto out;
            }
            out->s = s;
            cap = nc;
        }
        struct ex_sensor *s = &out->s[out->n];
        memset(s, 0, sizeof *s);
        snprintf(s->name, sizeof s->name, "%s", w[1]);
        snprintf(s->url, sizeof s->url, "%s", w[2]);
        for (int i = 3; i < nw; i++) {
            if (!strncmp(w[i], "token=@", 7)) {
                if ((rc = read_secret(w[i] + 7, s->token, sizeof s->token, path, no, err)) < 0)
                    goto out;
            } else if (!strncmp(w[i], "token=", 6)) {
                if (strlen(w[i] + 6) >= sizeof s->token || !w[i][6]) {
                    rc = rw_err(err, RW_EINPUT, "%s line %d: sensor %s: empty or too long token",
                                path, no, s->name);
                    goto out;
                }
                snprintf(s->token, sizeof s->token, "%s", w[i] + 6);
            } else if (!strncmp(w[i], "ca=", 3) && w[i][3] && strlen(w[i] + 3) < sizeof s->ca) {
                snprintf(s->ca, sizeof s->ca, "%s", w[i] + 3);
            } else {
                rc = rw_err(err, RW_EINPUT, "%s line %d: sensor %s: unknown word '%s' "
                            "(token=TOKEN, token=@FILE, ca=FILE)", path, no, s->name, w[i]);
                goto out;
            }
        }
        out->n++;
    }
    if (rc == 0 && out->n == 0)
        rc = rw_err(err, RW_EINPUT, "sensors file %s names no sensor ('sensor NAME URL ...')",
                    path);
out:
    fclose(f);
    memset(line, 0, sizeof line);
    if (rc < 0)
        ex_sensors_free(out);
    return rc;
}

void ex_sensors_free(struct ex_sensors *ss)
{
    if (!ss)
        return;
    if (ss->s)
        memset(ss->s, 0, ss->n * sizeof *ss->s);
    free(ss->s);
    memset(ss, 0, sizeof *ss);
}
