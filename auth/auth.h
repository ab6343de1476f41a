/* auth.h -- principals, roles, and bearer tokens: who may use what.
 *
 * A principal is whoever a request comes from: a bearer token's name, a TLS
 * client certificate's subject, a local user on the control socket (by the
 * uid the kernel reports), or nobody on a daemon that defines no token
 * (loopback only). Its role decides what it may do, in one table
 * (auth_access), which the front doors' route tables consult for every
 * request (man/rewindd.8, SECURITY).
 *
 * Tokens are 256 random bits written as 43 base64url characters; only
 * their SHA-256 is stored (in the archive's index), so a stolen index
 * gives no usable token. A token is shown once, when it is made, and never
 * logged. */
#ifndef AUTH_AUTH_H
#define AUTH_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "common/rw.h"

typedef struct idx idx_t;

enum auth_role {
    AUTH_NOBODY = 0, /* no credentials: only what needs none */
    AUTH_VIEWER,     /* status and metrics */
    AUTH_NOC,        /* + holds list, packets without payload */
    AUTH_AGENCY,     /* its own case only (struct auth_principal's case_id) */
    AUTH_ANALYST,    /* + packets with payload, placing holds */
    AUTH_ADMIN,      /* everything: tokens, releasing holds, the audit trail */
};
#define AUTH_NROLES 6

/* What a route needs. */
enum auth_perm {
    AUTH_PERM_NONE = 0, /* liveness: anyone */
    AUTH_PERM_METRICS,  /* Prometheus counters */
    AUTH_PERM_STATUS,   /* status, the segment catalogue: no packet data */
    AUTH_PERM_HOLDS,    /* list legal holds: the warrants' windows, filters, reasons */
    AUTH_PERM_PACKETS,  /* packets (noc: cut after the transport header) */
    AUTH_PERM_PAYLOAD,  /* packets with their payload */
    AUTH_PERM_HOLD,     /* place a legal hold */
    AUTH_PERM_ADMIN,    /* tokens, releasing holds, the audit trail */
    AUTH_PERM_FLOWS,    /* flows, top talkers, timelines: no payload */
    AUTH_PERM_CASES,    /* lawful intercept cases: an agency its own case only (the
                           route checks the case), admin all of them and changes */
};

/* May role use perm? */
int auth_allows(enum auth_role role, enum auth_perm perm);
/* The roles that may, for a 403's message: "analyst or admin". */
const char *auth_roles_for(enum auth_perm perm);

const char *auth_role_name(enum auth_role role);
/* RW_EINPUT naming the roles there are if s is none of them. */
int auth_role_parse(const char *s, enum auth_role *out, char *err) RW_WUR;

struct auth_principal {
    char name[128];
    enum auth_role role;
    char case_id[65];   /* agency tokens: the case they belong to */
    const char *method; /* "token", "tls", "uid", "open": static strings */
};

/* ---- tokens ---- */
#define AUTH_TOKEN_CHARS 43 /* 32 bytes as base64url without padding */

/* A new random token into out (AUTH_TOKEN_CHARS + 1 bytes) and its hash. */
int auth_token_new(char *out, uint8_t hash[32], char *err) RW_WUR;
/* SHA-256 of a token's characters. */
void auth_token_hash(const char *token, size_t n, uint8_t hash[32]);
/* The token in an Authorization header value ("Bearer TOKEN", the scheme
 * case-insensitive, one space or more): 0 with tok and n pointing into
 * value, RW_EINPUT with a message (never quoting the token) otherwise. A
 * token is AUTH_TOKEN_CHARS base64url characters. */
int auth_bearer_parse(const char *value, const char **tok, size_t *n, char *err) RW_WUR;

/* The principal of a token at time now: 1 and *p for a known, valid token;
 * 0 for an unknown one; RW_EINPUT for a revoked or expired one, saying so
 * (not which token). The stored hash is compared in constant time. */
int auth_token_check(idx_t *ix, const char *tok, size_t n, int64_t now,
                     struct auth_principal *p, char *err) RW_WUR;

/* The principal of name at now, by its live token: 1 and *p (method
 * "token"; the caller names how it authenticated), 0 if name has none. For
 * a verified client certificate, whose CN names the principal. */
int auth_name_check(idx_t *ix, const char *name, int64_t now, struct auth_principal *p,
                    char *err) RW_WUR;

struct auth_token_info {
    char id[13];        /* the first 12 hex digits of its hash: names it in lists */
    char name[65];
    enum auth_role role;
    char case_id[65];
    int64_t created, expires, revoked; /* ns, 0: never, not */
    char creator[128];
};
/* Writer: add a token for principal name (unique among tokens not revoked)
 * with role (and case_id for agency), expiring at expires (0: never);
 * the token itself into out (AUTH_TOKEN_CHARS + 1), to be shown once. */
int auth_token_add(idx_t *ix, const char *name, enum auth_role role, const char *case_id,
                   int64_t expires, const char *creator, char *out, char *err) RW_WUR;
/* Writer: revoke every live token of principal name (or the one whose id
 * starts with name's 12 hex digits): how many, 0 if none. */
int auth_token_revoke(idx_t *ix, const char *name, char *err) RW_WUR;
/* Every token, live or not, by creation time. *out malloc'ed. */
int auth_token_list(idx_t *ix, struct auth_token_info **out, size_t *n, char *err) RW_WUR;
/* Bumped by every auth_token_add and auth_token_revoke of this process:
 * a server caching "are tokens defined?" looks again when it changes, so a
 * token added through the control socket counts from the next request. */
uint64_t auth_token_generation(void);
/* 1 if at least one token is live at now (the daemon may then listen
 * beyond loopback), 0 if none. */
int auth_tokens_defined(idx_t *ix, int64_t now, char *err) RW_WUR;

#endif
