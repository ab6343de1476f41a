/* audit.h -- the tamper-evident audit trail: one JSON line per request that
 * returns packets, flows or sessions or changes state, in append-only files
 * under DIR/audit/, each line chained to the one before it by SHA-256. The
 * format is rule by rule in man/rewind-archive.5, AUDIT TRAIL (A1 to A10).
 *
 * One process appends (the archive's writer: audit_open holds a lock); any
 * number read, also while it appends (audit_head, audit_list,
 * audit_verify), because files are only ever appended to.
 *
 * Records hold names, never secrets: there is no field for a token, and
 * callers pass the principal's name, never the credential it presented (nor
 * a URL or header that carries one). */
#ifndef AUTH_AUDIT_H
#define AUTH_AUDIT_H

#include <stddef.h>
#include <stdint.h>

#include "common/rw.h"

#define AUDIT_HEXSZ 65                   /* 64 lowercase hex digits and a NUL */
#define AUDIT_LINE_MAX (1u << 20)        /* longest record line, '\n' excluded */
#define AUDIT_ROLL_BYTES (64ull << 20) /* default size at which a new file starts */
/* Bytes kept allocated past the current file's end, so that a full disk
 * still takes the next records (about 250): the writer's reserve. */
#define AUDIT_RESERVE (128ull << 10)

/* audit_open's return when it opened the trail after cutting off a record
 * that a crash left torn (> 0: the handle is open; err says what was cut,
 * for the log). */
#define AUDIT_RECOVERED 1

typedef struct audit audit_t;
typedef struct audit_hash audit_hash_t;

/* A request parameter other than the window, filter and points, as given
 * ("format" = "pcapng", "limit_packets" = "10"). The value of one named
 * token, access_token, bearer, authorization, password, secret, api_key or
 * apikey is written as AUDIT_REDACTED: a credential in a query string never
 * reaches the trail. */
struct audit_param {
    const char *name;  /* 1 to 32 of [a-z0-9_], not from_ns, to_ns, filter, points,
                          not ending in _hex */
    const char *value;
};
#define AUDIT_REDACTED "(redacted)"

/* One record. The caller fills it for audit_append (after audit_rec_init);
 * the readers hand parsed ones to their callbacks. Strings are NUL-ended
 * bytes, any bytes: the record keeps them exactly (A5). A NULL string is
 * written as "" (detail, filter and sha256: left out). */
struct audit_rec {
    /* The chain: set by audit_append (ignored on input) and by the readers. */
    uint64_t seq;              /* 1, 2, 3, ... in append order */
    char prev[AUDIT_HEXSZ];    /* hash of record seq-1 (64 zeros before record 1) */
    char hash[AUDIT_HEXSZ];    /* this record's hash (A3) */

    /* Who asked. */
    int64_t time_ns;           /* when the request arrived; 0: now */
    const char *principal;     /* the principal's name (struct auth_principal's; "" for
                                  none); never a token */
    const char *role;          /* its role, e.g. "analyst" (auth_role_name()) */
    const char *method;        /* how it proved who it is: "token", "tls", "uid",
                                  "open" (struct auth_principal's method) */
    const char *client;        /* e.g. "192.0.2.7:50312", "[2001:db8::1]:50312",
                                  "unix uid 1000" */

    /* What it asked. */
    const char *route;         /* e.g. "GET /api/v1/packets", "ctl query", "ctl hold":
                                  the path without its query string, which may hold a
                                  credential */
    int64_t from_ns, to_ns;    /* the window as resolved; RW_TIME_MIN and RW_TIME_MAX
                                  (open ends, as in struct qry_spec) are left out */
    const char *filter;        /* the BPF filter as given; NULL: none */
    const char *const *points; /* NULL-terminated, as in struct qry_spec; NULL: none */
    const struct audit_param *params; /* any other parameter */
    size_t nparams;

    /* What it got. */
    int status;                /* the HTTP status of the answer; the control socket
                                  uses the same codes (200, 400, 403, 500, 503...) */
    uint64_t packets;          /* packets sent */
    uint64_t bytes;            /* bytes sent: the answer's body, the file the client
                                  saves (not HTTP headers or chunk framing) */
    const char *sha256;        /* audit_hash_final() of exactly those bytes; NULL:
                                  nothing sent */
    int64_t duration_ns;       /* from the request's arrival to this record */
    const char *detail;        /* what a state change did, e.g. "hold 3 placed";
                                  NULL: none */
};

/* Zero r and set the window open (from_ns RW_TIME_MIN, to_ns RW_TIME_MAX). */
void audit_rec_init(struct audit_rec *r);

/* ---- the writer ---- */

/* Open DIR's audit trail for appending: create DIR/audit/ (mode 0750; DIR
 * must exist), take the writer's lock (RW_EBUSY when another process holds
 * it), and find the chain's head by reading the tail of the last file.
 * A last line without its '\n' is a record a crash tore before it was
 * fsynced, so no answer was completed on its strength: its bytes stay where
 * they are (files are never rewritten), a new file starts with a record
 * that says where the cut is (A9), and the return value is AUDIT_RECOVERED
 * with err saying what was cut, for the caller to log. RW_ECORRUPT when the
 * last complete record does not parse or match its hash (damage no crash
 * makes: see `rewind audit verify`). *out is set on 0 and AUDIT_RECOVERED,
 * NULL otherwise; free it with audit_close(). */
int audit_open(const char *dir, audit_t **out, char *err) RW_WUR;
/* Release the lock and free a (NULL is fine). Every appended record is
 * already durable. */
void audit_close(audit_t *a);
/* Start a new file before one would exceed bytes (default
 * AUDIT_ROLL_BYTES); a file always holds at least one record. */
void audit_set_roll(audit_t *a, uint64_t bytes);

/* Append r as the next record: assign its seq and prev (and set r->seq,
 * r->prev, r->hash), write one line and fdatasync it before returning, so
 * a caller that answers only afterwards never sends the last byte of an
 * unrecorded answer. Safe to call from any number of threads: records are
 * numbered in the order they are written, and concurrent callers share
 * their fdatasyncs. Borrows r's strings for the call only.
 * RW_EINPUT for a record that cannot be written (a bad param name, sha256
 * not 64 hex digits, a line over AUDIT_LINE_MAX): nothing is appended.
 * RW_EIO or RW_ENOSPC when the write failed (nothing of it is left in the
 * file) or the fdatasync did: after a failed fdatasync every later append
 * fails too, for what reached the disk is unknown; reopen the trail. */
int audit_append(audit_t *a, struct audit_rec *r, char *err) RW_WUR;
/* The last record's seq and hash (0 and 64 zeros for an empty trail), for
 * /metrics. */
void audit_last(audit_t *a, uint64_t *seq, char hex[AUDIT_HEXSZ]);

/* ---- the SHA-256 of the bytes sent ---- */

/* A streaming SHA-256 for the answer's bytes, fed as they are sent. NULL
 * when out of memory. */
audit_hash_t *audit_hash_new(void);
void audit_hash_update(audit_hash_t *h, const void *p, size_t n);
/* Bytes fed so far. */
uint64_t audit_hash_bytes(const audit_hash_t *h);
/* Write the digest as 64 lowercase hex digits and free h (RW_ENOMEM with a
 * message if libcrypto failed on the way). */
int audit_hash_final(audit_hash_t *h, char hex[AUDIT_HEXSZ], char *err) RW_WUR;
/* Free h without a digest (the client went away); NULL is fine. */
void audit_hash_free(audit_hash_t *h);

/* ---- readers: work while the writer appends ---- */

/* The chain's head: the seq and hash of the last complete record (0 and 64
 * zeros when there is none). RW_EINPUT when DIR has no audit/ directory,
 * RW_ECORRUPT when the last record does not parse or match its hash. */
int audit_head(const char *dir, uint64_t *seq, char hex[AUDIT_HEXSZ], char *err) RW_WUR;

/* A record of audit_list: r's strings and line stay valid until the
 * callback returns. Return 0 to go on, anything else to stop. */
typedef int (*audit_list_fn)(void *arg, const struct audit_rec *r, const char *line, size_t len);

/* Every record with from_ns <= time_ns < to_ns (RW_TIME_MIN, RW_TIME_MAX:
 * open) and, when principal is not NULL, of that principal, in chain
 * order. A line that does not parse is skipped and the listing goes on; it
 * then returns RW_ECORRUPT naming the first such line (the records around
 * it were listed). A torn last line is not a record yet and is skipped.
 * RW_ESTOP when the callback stopped it; RW_EINPUT when DIR has no audit/.
 * The chain is not checked: audit_verify does that. */
int audit_list(const char *dir, int64_t from_ns, int64_t to_ns, const char *principal,
               audit_list_fn cb, void *arg, char *err) RW_WUR;

/* A problem audit_verify found. */
struct audit_problem {
    const char *file;   /* e.g. "audit-0000000002.jsonl" */
    uint64_t line;      /* 1-based line in file; 0: the file as a whole */
    uint64_t offset;    /* byte offset of that line */
    uint64_t seq;       /* the record expected there (0: none) */
    const char *msg;    /* the whole story, file, line and record included */
};
typedef void (*audit_report_fn)(void *arg, const struct audit_problem *p);

struct audit_stats {
    uint64_t files, records, problems;
    uint64_t last_seq;            /* of the last record read */
    char head[AUDIT_HEXSZ];       /* its hash (64 zeros: none) */
    uint64_t cuts;                /* records torn by a crash and recorded as cut (A9) */
};

/* A head recorded off the machine (`rewind audit head`), to check against:
 * a chain rewritten whole is consistent in itself, but lacks this record. */
struct audit_expect {
    uint64_t seq;                 /* 0: any record with this hash */
    char hash[AUDIT_HEXSZ];
};

/* Check the whole trail, file by file in order: file numbers without gaps
 * (A1), every line a record that parses (A2, A4) and matches its own hash
 * (A3), seq consecutive from 1 and prev equal to the hash of the record
 * before (A6), across files; a torn line only where the next file's first
 * record says a crash cut it (A9); with expect, that record in the chain.
 * Each problem goes to report (NULL: nowhere) naming the file, line and the
 * record; the check goes on after it (a record whose bytes were changed is
 * one problem: the next is checked against the hash it claims). Returns
 * RW_ECORRUPT when there were problems, with err naming the first; 0 when
 * clean; RW_EINPUT when DIR has no audit/ (without expect) or RW_EIO. The
 * last line is given a moment to be completed when the writer is at it. */
int audit_verify(const char *dir, const struct audit_expect *expect, audit_report_fn report,
                 void *arg, struct audit_stats *st, char *err) RW_WUR;

#endif
