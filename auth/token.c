/* token.c -- roles and what they may do, and bearer tokens: made, checked,
 * listed, revoked (auth.h). */
#include "auth/auth.h"

#include <errno.h>
#include <stdatomic.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>

#include "index/index.h"

/* ---------------------------------------------------------------- roles */

static const char *const role_names[AUTH_NROLES] = {"nobody", "viewer", "noc",
                                                    "agency", "analyst", "admin"};

/* The one table: which roles each permission admits. The agency role is
 * admitted to cases only, and there (httpd/cases.c) to its own case. */
static const struct {
    unsigned roles; /* bit per enum auth_role */
    const char *names;
} perms[] = {
#define R(r) (1u << (r))
    [AUTH_PERM_NONE] = {~0u, "anyone"},
    [AUTH_PERM_METRICS] = {R(AUTH_VIEWER) | R(AUTH_NOC) | R(AUTH_ANALYST) | R(AUTH_ADMIN),
                           "viewer, noc, analyst or admin"},
    [AUTH_PERM_STATUS] = {R(AUTH_VIEWER) | R(AUTH_NOC) | R(AUTH_ANALYST) | R(AUTH_ADMIN),
                          "viewer, noc, analyst or admin"},
    [AUTH_PERM_HOLDS] = {R(AUTH_ANALYST) | R(AUTH_ADMIN), "analyst or admin"},
    [AUTH_PERM_PACKETS] = {R(AUTH_NOC) | R(AUTH_ANALYST) | R(AUTH_ADMIN),
                           "noc (without payload), analyst or admin"},
    [AUTH_PERM_PAYLOAD] = {R(AUTH_ANALYST) | R(AUTH_ADMIN), "analyst or admin"},
    [AUTH_PERM_HOLD] = {R(AUTH_ANALYST) | R(AUTH_ADMIN), "analyst or admin"},
    [AUTH_PERM_ADMIN] = {R(AUTH_ADMIN), "admin"},
    [AUTH_PERM_FLOWS] = {R(AUTH_NOC) | R(AUTH_ANALYST) | R(AUTH_ADMIN), "noc, analyst or admin"},
    [AUTH_PERM_CASES] = {R(AUTH_AGENCY) | R(AUTH_ADMIN), "agency (its own case) or admin"},
#undef R
};

int auth_allows(enum auth_role role, enum auth_perm perm)
{
    if ((unsigned)perm >= sizeof perms / sizeof perms[0] || (unsigned)role >= AUTH_NROLES)
        return 0;
    return (perms[perm].roles >> role) & 1;
}

const char *auth_roles_for(enum auth_perm perm)
{
    return (unsigned)perm < sizeof perms / sizeof perms[0] ? perms[perm].names : "admin";
}

const char *auth_role_name(enum auth_role role)
{
    return (unsigned)role < AUTH_NROLES ? role_names[role] : "unknown";
}

int auth_role_parse(const char *s, enum auth_role *out, char *err)
{
    for (int r = AUTH_VIEWER; r < AUTH_NROLES; r++) {
        if (!strcmp(s, role_names[r])) {
            *out = (enum auth_role)r;
            return 0;
        }
    }
    return rw_err(err, RW_EINPUT, "unknown role '%.32s': admin, analyst, noc, agency or viewer",
                  s);
}

/* --------------------------------------------------------------- tokens */

static atomic_uint_fast64_t generation;

uint64_t auth_token_generation(void) { return atomic_load(&generation); }

static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

static int b64url_char(int c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '_';
}

void auth_token_hash(const char *token, size_t n, uint8_t hash[32])
{
    SHA256((const unsigned char *)token, n, hash);
}

int auth_token_new(char *out, uint8_t hash[32], char *err)
{
    uint8_t raw[33] = {0}; /* 32 random bytes, one zero byte to pad the last group */
    size_t got = 0;
    while (got < 32) {
        ssize_t r = getrandom(raw + got, 32 - got, 0);
        if (r < 0 && errno != EINTR)
            return rw_err(err, RW_EIO, "getrandom: %s", strerror(errno));
        if (r > 0)
            got += (size_t)r;
    }
    /* 32 bytes = 10 groups of 3 (40 chars) and 2 bytes (3 chars). */
    size_t o = 0;
    for (size_t i = 0; i < 33; i += 3) {
        uint32_t v = (uint32_t)raw[i] << 16 | (uint32_t)raw[i + 1] << 8 | raw[i + 2];
        out[o++] = b64url[v >> 18 & 63];
        out[o++] = b64url[v >> 12 & 63];
        out[o++] = b64url[v >> 6 & 63];
        if (i + 2 < 32)
            out[o++] = b64url[v & 63];
    }
    out[AUTH_TOKEN_CHARS] = 0;
    auth_token_hash(out, AUTH_TOKEN_CHARS, hash);
    OPENSSL_cleanse(raw, sizeof raw);
    return 0;
}

int auth_bearer_parse(const char *value, const char **tok, size_t *n, char *err)
{
    if (!value || !*value)
        return rw_err(err, RW_EINPUT, "no credentials: send 'Authorization: Bearer TOKEN'");
    if (strncasecmp(value, "Bearer", 6) != 0 || (value[6] != ' ' && value[6] != '\t'))
        return rw_err(err, RW_EINPUT,
                      "the Authorization header is not 'Bearer TOKEN' (only bearer tokens are "
                      "taken)");
    const char *p = value + 6;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = 0;
    while (b64url_char((unsigned char)p[len]))
        len++;
    const char *rest = p + len;
    while (*rest == ' ' || *rest == '\t')
        rest++;
    if (len != AUTH_TOKEN_CHARS || *rest)
        return rw_err(err, RW_EINPUT, "malformed bearer token: a token is %d base64url "
                                      "characters ('rewind token add' makes them)",
                      AUTH_TOKEN_CHARS);
    *tok = p;
    *n = len;
    return 0;
}

int auth_token_check(idx_t *ix, const char *tok, size_t n, int64_t now, struct auth_principal *p,
                     char *err)
{
    uint8_t h[32];
    struct idx_token t;
    auth_token_hash(tok, n, h);
    int rc = idx_token_get(ix, h, &t, err);
    if (rc <= 0)
        return rc;
    /* The record was found by this hash; comparing the two in constant time
     * keeps it so should the lookup ever become a scan. */
    if (CRYPTO_memcmp(h, t.hash, 32) != 0)
        return 0;
    if (t.revoked && t.revoked <= now)
        return rw_err(err, RW_EINPUT, "this token was revoked");
    if (t.expires && t.expires <= now)
        return rw_err(err, RW_EINPUT, "this token has expired");
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", t.name);
    p->role = (unsigned)t.role < AUTH_NROLES ? (enum auth_role)t.role : AUTH_NOBODY;
    snprintf(p->case_id, sizeof p->case_id, "%s", t.case_id);
    p->method = "token";
    return 1;
}

static int live(const struct idx_token *t, int64_t now);

int auth_name_check(idx_t *ix, const char *name, int64_t now, struct auth_principal *p, char *err)
{
    struct idx_token *all = NULL;
    size_t n = 0;
    int rc = idx_token_list(ix, &all, &n, err), found = 0;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && !found; i++) {
        if (!live(&all[i], now) || strcmp(all[i].name, name))
            continue;
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", all[i].name);
        p->role = (unsigned)all[i].role < AUTH_NROLES ? (enum auth_role)all[i].role : AUTH_NOBODY;
        snprintf(p->case_id, sizeof p->case_id, "%s", all[i].case_id);
        p->method = "token";
        found = 1;
    }
    free(all);
    return found;
}

static void info_of(const struct idx_token *t, struct auth_token_info *i)
{
    memset(i, 0, sizeof *i);
    for (int k = 0; k < 6; k++)
        snprintf(i->id + 2 * k, 3, "%02x", t->hash[k]);
    snprintf(i->name, sizeof i->name, "%s", t->name);
    i->role = (unsigned)t->role < AUTH_NROLES ? (enum auth_role)t->role : AUTH_NOBODY;
    snprintf(i->case_id, sizeof i->case_id, "%s", t->case_id);
    i->created = t->created;
    i->expires = t->expires;
    i->revoked = t->revoked;
    snprintf(i->creator, sizeof i->creator, "%s", t->creator);
}

static int live(const struct idx_token *t, int64_t now)
{
    return !t->revoked && (!t->expires || t->expires > now);
}

int auth_token_add(idx_t *ix, const char *name, enum auth_role role, const char *case_id,
                   int64_t expires, const char *creator, char *out, char *err)
{
    struct idx_token t = {0}, *all = NULL;
    size_t n = 0;
    int64_t now = rw_now_ns();
    int rc;
    if (!name[0] || strlen(name) >= sizeof t.name || strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                                                  "abcdefghijklmnopqrstuvwxyz"
                                                                  "0123456789._@-") != strlen(name))
        return rw_err(err, RW_EINPUT, "a token's name is 1 to 64 of letters, digits, '.', '_', "
                                      "'@', '-'");
    if (role == AUTH_NOBODY || (unsigned)role >= AUTH_NROLES)
        return rw_err(err, RW_EINPUT, "a token needs a role");
    if ((role == AUTH_AGENCY) != (case_id && case_id[0] != 0))
        return rw_err(err, RW_EINPUT, role == AUTH_AGENCY ? "an agency token needs --case ID"
                                                          : "--case is for agency tokens only");
    if (case_id && strlen(case_id) >= sizeof t.case_id)
        return rw_err(err, RW_EINPUT, "a case id is at most 64 characters");
    if (expires && expires <= now)
        return rw_err(err, RW_EINPUT, "the token would have expired already");
    if ((rc = idx_token_list(ix, &all, &n, err)) < 0)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (live(&all[i], now) && !strcmp(all[i].name, name)) {
            free(all);
            return rw_err(err, RW_EINPUT, "%s has a live token already; revoke it first "
                                          "(rewind token revoke --name %s)", name, name);
        }
    }
    free(all);
    if ((rc = auth_token_new(out, t.hash, err)) < 0)
        return rc;
    snprintf(t.name, sizeof t.name, "%s", name);
    t.role = role;
    snprintf(t.case_id, sizeof t.case_id, "%s", case_id ? case_id : "");
    t.created = now;
    t.expires = expires;
    snprintf(t.creator, sizeof t.creator, "%s", creator ? creator : "");
    if ((rc = idx_token_put(ix, &t, err)) < 0)
        OPENSSL_cleanse(out, AUTH_TOKEN_CHARS);
    atomic_fetch_add(&generation, 1);
    return rc;
}

int auth_token_revoke(idx_t *ix, const char *name, char *err)
{
    struct idx_token *all = NULL;
    size_t n = 0;
    int64_t now = rw_now_ns();
    int rc, count = 0;
    if ((rc = idx_token_list(ix, &all, &n, err)) < 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        struct auth_token_info inf;
        info_of(&all[i], &inf);
        if (all[i].revoked || (strcmp(all[i].name, name) && strcmp(inf.id, name)))
            continue;
        all[i].revoked = now;
        if ((rc = idx_token_put(ix, &all[i], err)) == 0)
            count++;
    }
    free(all);
    atomic_fetch_add(&generation, 1);
    return rc < 0 ? rc : count;
}

static int by_created(const void *a, const void *b)
{
    const struct auth_token_info *x = a, *y = b;
    return x->created < y->created ? -1 : x->created > y->created;
}

int auth_token_list(idx_t *ix, struct auth_token_info **out, size_t *n, char *err)
{
    struct idx_token *all = NULL;
    size_t cnt = 0;
    int rc = idx_token_list(ix, &all, &cnt, err);
    *out = NULL;
    *n = 0;
    if (rc < 0)
        return rc;
    struct auth_token_info *v = calloc(cnt ? cnt : 1, sizeof *v);
    if (!v) {
        free(all);
        return rw_err(err, RW_ENOMEM, "out of memory");
    }
    for (size_t i = 0; i < cnt; i++)
        info_of(&all[i], &v[i]);
    free(all);
    qsort(v, cnt, sizeof *v, by_created);
    *out = v;
    *n = cnt;
    return 0;
}

int auth_tokens_defined(idx_t *ix, int64_t now, char *err)
{
    struct idx_token *all = NULL;
    size_t n = 0;
    int rc = idx_token_list(ix, &all, &n, err), any = 0;
    if (rc < 0)
        return rc;
    for (size_t i = 0; i < n && !any; i++)
        any = live(&all[i], now);
    free(all);
    return any;
}
