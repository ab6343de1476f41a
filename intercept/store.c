/* store.c -- the case store: DIR/cases/ID/case.json written whole and
 * renamed into place, the retrospective copy DIR/cases/ID/retro.pcapng
 * made when a case is created, and the audit record of every change
 * (intercept.h; the layout in man/rewind-archive.5, CASES). */
#include "intercept/intercept.h"
#include "intercept/intercept_int.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth/audit.h"
#include "index/index.h"
#include "query/query.h"

struct ic {
    char dir[4096];   /* the archive */
    char cases[4200]; /* DIR/cases */
    idx_t *ix;
    struct audit *audit;
    pthread_mutex_t mu; /* one change at a time in this process */
    struct ic_ident_tap idtap; /* identities from RADIUS accounting (ic_tap) */
    struct ic_live *live;      /* live intercept, once started */
};

const char *ic_cases_dir(const ic_t *ic) { return ic->cases; }
idx_t *ic_index(const ic_t *ic) { return ic->ix; }
struct ic_live *ic_live_of(const ic_t *ic) { return ic->live; }
void ic_live_set(ic_t *ic, struct ic_live *l) { ic->live = l; }
struct ic_ident_tap *ic_ident_counters(ic_t *ic) { return &ic->idtap; }

/* After a change: live intercept takes the cases as they are now. */
static void follow(struct ic *ic)
{
    char err[RW_ERRSZ];
    if (ic->live)
        (void)!ic_live_rebuild(ic, err); /* it logs what failed */
}

static int cases_dir(const char *dir, char *out, size_t n, int create, char *err)
{
    if ((size_t)snprintf(out, n, "%s/cases", dir) >= n)
        return rw_err(err, RW_EINPUT, "archive path too long");
    if (create && mkdir(out, 0750) < 0 && errno != EEXIST)
        return rw_err(err, RW_EIO, "creating %s: %s", out, strerror(errno));
    return 0;
}

int ic_open(const char *dir, idx_t *ix, struct audit *audit, ic_t **out, char *err)
{
    struct ic *ic = calloc(1, sizeof *ic);
    int rc;
    *out = NULL;
    if (!ic)
        return rw_err(err, RW_ENOMEM, "out of memory");
    snprintf(ic->dir, sizeof ic->dir, "%s", dir);
    if ((rc = cases_dir(dir, ic->cases, sizeof ic->cases, 1, err)) < 0) {
        free(ic);
        return rc;
    }
    ic->ix = ix;
    ic->idtap.ix = ix;
    ic->audit = audit;
    pthread_mutex_init(&ic->mu, NULL);
    *out = ic;
    return 0;
}

void ic_close(ic_t *ic)
{
    if (!ic)
        return;
    pthread_mutex_destroy(&ic->mu);
    free(ic);
}

/* ---------- records ---------- */

static int read_file(const char *path, char **out, size_t *n, char *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0)
        return errno == ENOENT ? 0 : rw_err(err, RW_EIO, "%s: %s", path, strerror(errno));
    if (fstat(fd, &st) < 0 || st.st_size > (off_t)IC_BODY_MAX * 2) {
        close(fd);
        return rw_err(err, RW_ECORRUPT, "%s: unreadable or too large", path);
    }
    char *b = malloc((size_t)st.st_size + 1);
    ssize_t r = b ? read(fd, b, (size_t)st.st_size) : -1;
    close(fd);
    if (r != st.st_size) {
        free(b);
        return rw_err(err, RW_EIO, "%s: short read", path);
    }
    b[r] = 0;
    *out = b;
    *n = (size_t)r;
    return 1;
}

static int load_case(const char *cases, const char *id, struct ic_case *c, char *err)
{
    char path[4400], *buf = NULL;
    size_t n = 0;
    if (!ic_id_ok(id))
        return 0;
    snprintf(path, sizeof path, "%s/%s/case.json", cases, id);
    int rc = read_file(path, &buf, &n, err);
    if (rc <= 0)
        return rc;
    rc = ic_case_load(buf, n, c, err);
    free(buf);
    if (rc < 0)
        return rw_errctx(err, rc, "case record %s", path);
    return 1;
}

/* Write c as DIR/cases/ID/case.json: a temporary file, fsynced, renamed,
 * the directory fsynced. */
static int store_case(struct ic *ic, const struct ic_case *c, char *err)
{
    char d[4300], tmp[4400], path[4400];
    snprintf(d, sizeof d, "%s/%s", ic->cases, c->id);
    snprintf(tmp, sizeof tmp, "%s/.case.json.tmp", d);
    snprintf(path, sizeof path, "%s/case.json", d);
    char *s = ic_case_json(c, rw_now_ns());
    if (!s)
        return rw_err(err, RW_ENOMEM, "out of memory");
    size_t n = strlen(s);
    s[n] = '\n'; /* over the NUL json_dumps left: one line, written with n + 1 */
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640), rc = 0;
    if (fd < 0 || rw_write_all(fd, s, n + 1) < 0 || fsync(fd) < 0)
        rc = rw_err(err, RW_EIO, "writing %s: %s", tmp, strerror(errno));
    if (fd >= 0)
        close(fd);
    free(s);
    if (rc == 0 && rename(tmp, path) < 0)
        rc = rw_err(err, RW_EIO, "renaming %s: %s", tmp, strerror(errno));
    if (rc == 0 && rw_fsync_dir(d) < 0)
        rc = rw_err(err, RW_EIO, "syncing %s: %s", d, strerror(errno));
    if (rc < 0)
        unlink(tmp);
    return rc;
}

/* ---------- the retrospective copy ---------- */

struct sink {
    int fd;
    audit_hash_t *hash;
    uint64_t bytes;
    int failed;
};

static int sink_write(void *arg, const void *buf, size_t n)
{
    struct sink *s = arg;
    if (rw_write_all(s->fd, buf, n) < 0) {
        s->failed = errno ? errno : EIO;
        return -1;
    }
    audit_hash_update(s->hash, buf, n);
    s->bytes += n;
    return 0;
}

/* Copy the packets of c in [c->from, min(c->to, now)) into
 * DIR/cases/ID/retro.pcapng (a temporary file renamed once complete),
 * filling c's retro_* fields. A case whose window starts after now, or
 * that has no address target yet, gets no file and 0 packets. */
static int preserve(struct ic *ic, struct ic_case *c, int64_t now, char *err)
{
    char d[4300], tmp[4400], path[4400];
    struct qry_spec spec = {0};
    qry_t *q = NULL;
    qry_out_t *o = NULL;
    ic_sel_t *sel = NULL;
    struct sink s = {.fd = -1};
    int rc, npts;
    size_t niv;
    c->retro_from = c->from;
    c->retro_to = c->to < now ? c->to : now;
    if (c->retro_from >= c->retro_to) {
        c->retro_to = c->retro_from;
        return 0;
    }
    if ((rc = idx_refresh(ic->ix, err)) < 0 ||
        (rc = ic_sel_new(ic->ix, c, c->retro_from, c->retro_to, &sel, err)) < 0)
        goto out;
    if (!ic_sel_filter(sel))
        goto out; /* user targets that held no address in the window */
    int judge = ic_sel_intervals(sel, &niv) && niv; /* the query's filter is exact otherwise */
    spec.from = c->retro_from;
    spec.to = c->retro_to;
    spec.filter = ic_sel_filter(sel);
    snprintf(d, sizeof d, "%s/%s", ic->cases, c->id);
    snprintf(tmp, sizeof tmp, "%s/.retro.pcapng.tmp", d);
    snprintf(path, sizeof path, "%s/retro.pcapng", d);
    if ((rc = qry_new(ic->ix, &spec, &q, err)) < 0)
        goto out;
    const struct qry_point *pts = qry_points(q, &npts);
    if (!(s.hash = audit_hash_new())) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto out;
    }
    if ((s.fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640)) < 0) {
        rc = rw_err(err, RW_EIO, "%s: %s", tmp, strerror(errno));
        goto out;
    }
    if ((rc = qry_out_new(QRY_PCAPNG, pts, npts, sink_write, &s, &o, err)) < 0)
        goto out;
    for (;;) {
        struct qry_pkt pkt;
        if ((rc = qry_next(q, &pkt, err)) <= 0)
            break;
        if (judge) {
            const struct qry_point *pt = &pts[pkt.point];
            int m = ic_sel_match(sel, pt->dlt, pt->snaplen,
                                 (int64_t)pkt.sec * RW_NS_PER_SEC + pkt.frac, pkt.data,
                                 pkt.caplen, pkt.len);
            if (m < 0) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                break;
            }
            if (!m)
                continue;
        }
        c->retro_packets++;
        if (qry_out_packet(o, &pkt) < 0)
            break;
    }
    if (rc == 0 && qry_out_losses(o, q) < 0)
        rc = RW_EIO;
    int crc = qry_out_close(o);
    o = NULL;
    if (rc == 0 && (crc < 0 || s.failed))
        rc = rw_err(err, RW_EIO, "writing %s: %s", tmp, strerror(s.failed ? s.failed : EIO));
    if (rc == 0 && fsync(s.fd) < 0)
        rc = rw_err(err, RW_EIO, "syncing %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) < 0)
        rc = rw_err(err, RW_EIO, "renaming %s: %s", tmp, strerror(errno));
    if (rc == 0 && rw_fsync_dir(d) < 0)
        rc = rw_err(err, RW_EIO, "syncing %s: %s", d, strerror(errno));
    if (rc == 0) {
        rc = audit_hash_final(s.hash, c->retro_sha256, err);
        s.hash = NULL;
        c->retro_bytes = s.bytes;
    }
out:
    if (o)
        (void)!qry_out_close(o);
    if (s.fd >= 0) {
        close(s.fd);
        if (rc < 0)
            unlink(tmp);
    }
    audit_hash_free(s.hash);
    qry_free(q);
    ic_sel_free(sel);
    return rc < 0 ? rw_errctx(err, rc, "preserving the packets of case %s", c->id) : 0;
}

/* ---------- audit ---------- */

static int audit_change(struct ic *ic, const struct ic_who *who, const struct ic_case *c,
                        int status, const char *detail, char *err)
{
    struct audit_rec r;
    struct audit_param p = {"case", c->id};
    char bpf[IC_FILTER_MAX + 4096], e2[RW_ERRSZ];
    if (!ic->audit)
        return 0;
    audit_rec_init(&r);
    r.principal = who->principal;
    r.role = who->role;
    r.method = who->method;
    r.client = who->client;
    r.route = who->route;
    r.from_ns = c->from;
    r.to_ns = c->to;
    r.filter = ic_case_bpf(c, bpf, sizeof bpf, e2) == 0 ? bpf : NULL;
    r.params = &p;
    r.nparams = 1;
    r.status = status;
    if (status == 201) { /* what the case's own store received */
        r.packets = c->retro_packets;
        r.bytes = c->retro_bytes;
        r.sha256 = c->retro_sha256[0] ? c->retro_sha256 : NULL;
    }
    r.detail = detail;
    return audit_append(ic->audit, &r, err);
}

/* ---------- changes ---------- */

/* Across processes: a rewind case without a daemon beside one... that
 * cannot happen (the daemon answers the control socket), but two local
 * commands can race; a lock file orders them. */
static int lock_cases(struct ic *ic, int *fd, char *err)
{
    char p[4300];
    pthread_mutex_lock(&ic->mu);
    snprintf(p, sizeof p, "%s/.lock", ic->cases);
    *fd = open(p, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
    if (*fd < 0 || flock(*fd, LOCK_EX) < 0) {
        int e = errno;
        if (*fd >= 0)
            close(*fd);
        pthread_mutex_unlock(&ic->mu);
        return rw_err(err, RW_EIO, "locking %s: %s", p, strerror(e));
    }
    return 0;
}

static void unlock_cases(struct ic *ic, int fd)
{
    close(fd);
    pthread_mutex_unlock(&ic->mu);
}

int ic_create(ic_t *ic, const char *json, size_t n, const struct ic_who *who, struct ic_case *out,
              char *err)
{
    int64_t now = rw_now_ns();
    struct ic_case *c = calloc(1, sizeof *c), old;
    char d[4300], detail[256];
    int rc, lk;
    if (!c)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if ((rc = ic_case_parse(json, n, now, c, err)) < 0)
        goto done;
    if ((rc = lock_cases(ic, &lk, err)) < 0)
        goto done;
    if ((rc = load_case(ic->cases, c->id, &old, err)) != 0) {
        if (rc > 0)
            rc = rw_err(err, RW_ESTATE, "id: case %s exists already (%s): one LIID, one "
                        "window: PATCH its 'to', or give the new warrant another id", c->id,
                        ic_case_state(&old, now));
        goto unlock;
    }
    snprintf(d, sizeof d, "%s/%s", ic->cases, c->id);
    if (mkdir(d, 0750) < 0 && errno != EEXIST) {
        rc = rw_err(err, RW_EIO, "creating %s: %s", d, strerror(errno));
        goto unlock;
    }
    c->created = now;
    snprintf(c->creator, sizeof c->creator, "%s", who->principal ? who->principal : "");
    if ((rc = preserve(ic, c, now, err)) < 0 || (rc = store_case(ic, c, err)) < 0)
        goto unlock;
    snprintf(detail, sizeof detail, "case %s created (%s, warrant %.120s): %llu packets preserved",
             c->id, c->type == IC_IRI ? "iri" : "content", c->warrant,
             (unsigned long long)c->retro_packets);
    rc = audit_change(ic, who, c, 201, detail, err);
    if (out)
        *out = *c;
unlock:
    unlock_cases(ic, lk);
    if (rc == 0)
        follow(ic);
done:
    free(c);
    return rc;
}

int ic_patch(ic_t *ic, const char *id, const char *json, size_t n, const struct ic_who *who,
             struct ic_case *out, int *found, char *err)
{
    int64_t now = rw_now_ns();
    json_error_t je;
    const char *key;
    json_t *v, *j = NULL;
    struct ic_case *c = calloc(1, sizeof *c), *t = calloc(1, sizeof *t);
    char changed[160] = "";
    int rc, lk = -1;
    *found = 0;
    if (!c || !t) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    if (n > IC_BODY_MAX) {
        rc = rw_err(err, RW_EINPUT, "body: at most %u bytes", IC_BODY_MAX);
        goto done;
    }
    if (!(j = json_loadb(json, n, JSON_REJECT_DUPLICATES, &je))) {
        rc = rw_err(err, RW_EINPUT, "body: not JSON: %s (line %d, column %d)", je.text, je.line,
                    je.column);
        goto done;
    }
    if (!json_is_object(j) || json_object_size(j) == 0) {
        rc = rw_err(err, RW_EINPUT, "body: expected a JSON object with the fields to change");
        goto done;
    }
    json_object_foreach(j, key, v) {
        if (strcmp(key, "authority") && strcmp(key, "warrant") && strcmp(key, "to") &&
            strcmp(key, "delivery")) {
            rc = rw_err(err, RW_EINPUT, "%.40s: %s", key,
                        !strcmp(key, "id") || !strcmp(key, "from") || !strcmp(key, "targets") ||
                                !strcmp(key, "filter") || !strcmp(key, "type")
                            ? "cannot be changed once the case exists (its retrospective copy "
                              "was made with it): end the case and create another"
                            : "unknown field: a case's authority, warrant, to and delivery can "
                              "be changed");
            goto done;
        }
    }
    if ((rc = lock_cases(ic, &lk, err)) < 0) {
        lk = -1;
        goto done;
    }
    if ((rc = load_case(ic->cases, id, c, err)) <= 0)
        goto done;
    *found = 1;
    if (c->ended) {
        rc = rw_err(err, RW_ESTATE, "case %s was ended; it can no longer be changed", id);
        goto done;
    }
    /* The new values are checked as a whole document would be: the stored
     * case as JSON with the changes over it. */
    char *cur = ic_case_json(c, now);
    json_t *doc = cur ? json_loads(cur, 0, NULL) : NULL;
    free(cur);
    if (!doc) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    json_object_foreach(j, key, v) {
        json_object_set(doc, key, v);
        snprintf(changed + strlen(changed), sizeof changed - strlen(changed), "%s%s",
                 changed[0] ? ", " : "", key);
    }
    static const char *const derived[] = {"state", "created", "created_by", "preserved"};
    for (size_t i = 0; i < sizeof derived / sizeof derived[0]; i++)
        json_object_del(doc, derived[i]);
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    if (!s) {
        rc = rw_err(err, RW_ENOMEM, "out of memory");
        goto done;
    }
    rc = ic_case_parse(s, strlen(s), now, t, err);
    free(s);
    if (rc < 0)
        goto done;
    /* Moving the end into the past would disown what was intercepted up to
     * now; ending a case is DELETE's, at now. */
    if (json_object_get(j, "to") && t->to < now && t->to != c->to) {
        rc = rw_err(err, RW_EINPUT, "to: before now: a case's end moves to now or later "
                    "(DELETE ends it now)");
        goto done;
    }
    memcpy(c->authority, t->authority, sizeof c->authority);
    memcpy(c->warrant, t->warrant, sizeof c->warrant);
    c->to = t->to;
    c->delivery = t->delivery;
    memcpy(c->deliver_to, t->deliver_to, sizeof c->deliver_to);
    memcpy(c->country, t->country, sizeof c->country);
    memcpy(c->operator_id, t->operator_id, sizeof c->operator_id);
    memcpy(c->element_id, t->element_id, sizeof c->element_id);
    c->tls = t->tls;
    memcpy(c->tls_ca, t->tls_ca, sizeof c->tls_ca);
    memcpy(c->tls_cert, t->tls_cert, sizeof c->tls_cert);
    memcpy(c->tls_key, t->tls_key, sizeof c->tls_key);
    memcpy(c->tls_server_name, t->tls_server_name, sizeof c->tls_server_name);
    if ((rc = store_case(ic, c, err)) < 0)
        goto done;
    char detail[256];
    snprintf(detail, sizeof detail, "case %s changed: %s", id, changed);
    rc = audit_change(ic, who, c, 200, detail, err);
    if (out)
        *out = *c;
done:
    if (lk >= 0)
        unlock_cases(ic, lk);
    if (rc == 0 && *found)
        follow(ic);
    json_decref(j);
    free(c);
    free(t);
    return rc < 0 ? rc : 0;
}

int ic_end(ic_t *ic, const char *id, const struct ic_who *who, struct ic_case *out, int *found,
           char *err)
{
    struct ic_case *c = calloc(1, sizeof *c);
    int rc, lk;
    *found = 0;
    if (!c)
        return rw_err(err, RW_ENOMEM, "out of memory");
    if ((rc = lock_cases(ic, &lk, err)) < 0) {
        free(c);
        return rc;
    }
    if ((rc = load_case(ic->cases, id, c, err)) <= 0)
        goto done;
    *found = 1;
    if (c->ended) {
        rc = rw_err(err, RW_ESTATE, "case %s was ended already", id);
        goto done;
    }
    c->ended = rw_now_ns();
    snprintf(c->ended_by, sizeof c->ended_by, "%s", who->principal ? who->principal : "");
    if ((rc = store_case(ic, c, err)) < 0)
        goto done;
    char detail[128];
    snprintf(detail, sizeof detail, "case %s ended", id);
    rc = audit_change(ic, who, c, 200, detail, err);
    if (out)
        *out = *c;
done:
    unlock_cases(ic, lk);
    if (rc == 0 && *found)
        follow(ic);
    free(c);
    return rc < 0 ? rc : 0;
}

int ic_get(ic_t *ic, const char *id, struct ic_case *out, char *err)
{
    return load_case(ic->cases, id, out, err);
}

int ic_get_dir(const char *dir, const char *id, struct ic_case *out, char *err)
{
    char cases[4200];
    int rc = cases_dir(dir, cases, sizeof cases, 0, err);
    return rc < 0 ? rc : load_case(cases, id, out, err);
}

static int cmp_case(const void *a, const void *b)
{
    return strcmp(((const struct ic_case *)a)->id, ((const struct ic_case *)b)->id);
}

int ic_list_dir(const char *dir, struct ic_case **out, size_t *n, char *err)
{
    char cases[4200];
    int rc = cases_dir(dir, cases, sizeof cases, 0, err);
    struct ic_case *v = NULL;
    size_t cnt = 0, cap = 0;
    *out = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    DIR *dp = opendir(cases);
    if (!dp)
        return errno == ENOENT ? 0 : rw_err(err, RW_EIO, "%s: %s", cases, strerror(errno));
    struct dirent *de;
    while ((de = readdir(dp))) {
        if (!ic_id_ok(de->d_name))
            continue;
        if (cnt == cap) {
            cap = cap ? cap * 2 : 8;
            struct ic_case *nv = realloc(v, cap * sizeof *v);
            if (!nv) {
                rc = rw_err(err, RW_ENOMEM, "out of memory");
                break;
            }
            v = nv;
        }
        if ((rc = load_case(cases, de->d_name, &v[cnt], err)) < 0)
            break;
        cnt += (size_t)rc;
        rc = 0;
    }
    closedir(dp);
    if (rc < 0) {
        free(v);
        return rc;
    }
    if (cnt)
        qsort(v, cnt, sizeof *v, cmp_case);
    *out = v;
    *n = cnt;
    return 0;
}

int ic_list(ic_t *ic, struct ic_case **out, size_t *n, char *err)
{
    return ic_list_dir(ic->dir, out, n, err);
}
