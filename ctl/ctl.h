/* ctl.h -- the daemon's local control socket, DIR/rewindd.sock: its wire
 * format, the server rewindd runs on it, and the client half that `rewind`
 * (and its libc-only front end, cli/front.c) uses.
 *
 * One process writes an archive. Everything that changes an archive a
 * daemon owns (imports, holds) goes through that daemon here, and short
 * queries are answered here from the daemon's open index: a short query is
 * mostly fixed cost (starting a process, opening RocksDB), which the
 * daemon has paid already. The answer is the same either way: the daemon
 * runs the same qry_new(), qry_next() and qry_out_*() code over the same
 * index as `rewind query --local`.
 *
 * Wire format. One request per connection: the client sends one line, a
 * verb and then tab-separated KEY=VALUE fields whose values are
 * %XX-escaped (every byte <= ' ', >= 0x7f and '%'; an escaped NUL is
 * refused), at most CTL_MAX_REQ bytes with its '\n'. A descriptor may ride
 * along (SCM_RIGHTS), so that the daemon reads or writes only what the
 * client itself could open. Every answer is lines; "error CODE MESSAGE"
 * (CODE an RW_E* value) ends any verb, and "busy" means the daemon will
 * not take the request now (the client reads the archive itself).
 *
 *   query  from=NS to=NS limit=N format=pcap|pcapng count=0|1 [point=P]...
 *          [filter=F]
 *     -> "ready"; the client then sends "out" with its output descriptor
 *        (nothing for count=1) -> "ok PACKETS BYTES", or "epipe" when the
 *        reader of the client's pipe went away (the client then dies of
 *        SIGPIPE, as it would have writing the pipe itself). An answer
 *        with damage (query.h, qry_losses) has a line "damage TEXT" per
 *        damaged range it lacks just before its "ok" (TEXT is
 *        qry_loss_desc()'s, and one more "damage and N more damaged
 *        ranges" when there were more); the client warns and exits 3.
 *   import point=P label=L, the file's descriptor attached
 *     -> "progress DONE TOTAL PACKETS"... then "ok PACKETS BYTES POINTS REMOVED"
 *   hold   op=add from=NS to=NS [filter=F] [reason=R]   -> "ok ID"
 *   hold   op=release id=N                              -> "ok 1" | "ok 0"
 *   token  op=add name=N role=R [case=C] [expires=NS]      -> "ok TOKEN"
 *   token  op=revoke name=N                                -> "ok COUNT"
 *   audit  route=R [from=NS] [to=NS] [filter=F] [point=P]... packets=N bytes=N
 *          sha256=HEX duration=NS status=N
 *     -> "ok SEQ": a record of what `rewind query --local` read itself,
 *        appended under the peer's name (the one writer of the trail is
 *        the daemon; the client says what it did, the kernel who it is)
 *   case   op=add|patch|end|show|list [id=ID] [json=DOCUMENT]
 *     -> "case JSON" lines (one per case; none for a case that does not
 *        exist), then "ok N" (the number of case lines)
 *   status
 *     -> "point" lines, one per capture point, then "archive", each with
 *        the fields of struct qry_status (query/read.h), then "ok".
 *
 * Every verb needs a role of the peer, whom the kernel names (SO_PEERCRED):
 * root and the daemon's user are admin, any other user that can open the
 * socket (its group) analyst; query needs packets, import and token admin,
 * hold analyst (release: admin), status viewer (auth/auth.h).
 *
 * The server stops writing an answer when the client hangs up or the
 * daemon stops. */
#ifndef CTL_CTL_H
#define CTL_CTL_H

#include <stdint.h>

#include "common/rw.h"
#include "query/query.h"
#include "query/read.h"

#define CTL_MAX_REQ 65536 /* bytes of a request line, '\n' and a NUL included */
#define CTL_MAX_POINTS 64

/* The socket of the daemon owning dir, into out (108 bytes). RW_EINPUT if
 * the path is too long for a Unix socket. */
int ctl_sock_path(const char *dir, char *out, size_t n, char *err) RW_WUR;

/* ---- query ---- */

/* A parsed query request. Strings point into the buffer given to
 * ctl_query_parse(). */
struct ctl_query {
    struct qry_spec spec;
    const char *points[CTL_MAX_POINTS + 1];
    int format; /* QRY_PCAP or QRY_PCAPNG */
    int count;  /* 1: answer the number of packets only */
};

/* Parse (and unescape in place) a query request line without its '\n'.
 * RW_EINPUT with a message for anything malformed. */
int ctl_query_parse(char *line, struct ctl_query *r, char *err) RW_WUR;
/* The request line for r, '\n' included, in a new NUL-terminated buffer
 * (free it) of *len bytes; NULL when longer than CTL_MAX_REQ or out of
 * memory. */
char *ctl_query_format(const struct ctl_query *r, size_t *len);

enum {
    CTL_LOCAL = 1, /* no daemon answered: read the archive yourself */
    CTL_EPIPE = 2, /* the reader of the output pipe went away */
};

/* Ask the rewindd that owns dir. open_out opens the output once the daemon
 * has accepted the query (not called for r->count) and returns a
 * descriptor (the caller's to close) or <0 with err set. Returns 0 with
 * *packets set, CTL_LOCAL when no daemon serves dir (or it is busy or
 * stopping, or silent for 10 s), CTL_EPIPE, or <0 with err set: the
 * daemon's own error and code, or RW_EIO when it went away mid-answer. */
typedef int (*ctl_open_fn)(void *arg, char *err);
/* Called with each damaged range the answer lacks (qry_loss_desc()'s line),
 * before ctl_ask_query() returns: the answer is then one with damage. */
typedef void (*ctl_damage_fn)(void *arg, const char *line);
int ctl_ask_query(const char *dir, const struct ctl_query *r, ctl_open_fn open_out, void *arg,
                  ctl_damage_fn damage, void *darg, uint64_t *packets, char *err) RW_WUR;

/* ---- import ---- */
struct ctl_import_result {
    uint64_t packets, bytes; /* records stored */
    int points;              /* capture points written */
    uint64_t removed;        /* of the packets, deleted by retention at once */
};
typedef void (*ctl_progress_fn)(void *arg, const char *path, uint64_t done, uint64_t total,
                                uint64_t packets);
/* Import path ("-": standard input) into point through the daemon owning
 * dir, which reads the descriptor this call opens. Returns as
 * cap_import_file() would; RW_EBUSY if no daemon answers. */
int ctl_import(const char *dir, const char *path, const char *point, ctl_progress_fn progress,
               void *parg, struct ctl_import_result *res, char *err) RW_WUR;

/* ---- holds ---- */
/* Place a hold through the daemon owning dir: *id gets its number.
 * RW_EBUSY if no daemon answers (the caller then writes the archive
 * itself). */
int ctl_hold_add(const char *dir, int64_t from, int64_t to, const char *filter,
                 const char *reason, uint64_t *id, char *err) RW_WUR;
/* 1 released, 0 no such hold, RW_EBUSY if no daemon answers. */
int ctl_hold_release(const char *dir, uint64_t id, char *err) RW_WUR;

/* ---- tokens ---- */
/* Add a bearer token through the daemon owning dir (the peer must be
 * admin: root or the daemon's user): the token into tok (AUTH_TOKEN_CHARS
 * + 1 bytes, from auth/auth.h), to be shown once. RW_EBUSY if no daemon
 * answers. */
int ctl_token_add(const char *dir, const char *name, const char *role, const char *case_id,
                  int64_t expires, char *tok, size_t toksz, char *err) RW_WUR;
/* Revoke name's tokens: how many; RW_EBUSY if no daemon answers. */
int ctl_token_revoke(const char *dir, const char *name, char *err) RW_WUR;

/* ---- audit ---- */
/* Record through the daemon owning dir what this process read itself
 * (rewind query --local). RW_EBUSY if no daemon answers. */
int ctl_audit(const char *dir, const char *route, const struct qry_spec *spec, uint64_t packets,
              uint64_t bytes, const char *sha256, int64_t duration_ns, int status,
              char *err) RW_WUR;

/* ---- cases (lawful intercept) ---- */
/* op is add (json: the case), patch (id, json: the changes), end (id),
 * show (id) or list, through the daemon owning dir (its peer must be admin;
 * root or the daemon's user). *answer (malloc'ed) gets the case, or for list
 * the cases one per line, as JSON. RW_EINPUT naming a bad field, RW_ESTATE
 * for a case that exists or has ended, 0 with *answer NULL for show, patch
 * or end of a case that does not exist; RW_EBUSY if no daemon answers. */
int ctl_case(const char *dir, const char *op, const char *id, const char *json, char **answer,
             char *err) RW_WUR;

/* ---- status ---- */
/* The status as the daemon owning dir sees it, live capture state
 * included (qry_status_free() it). RW_EBUSY if no daemon answers. */
int ctl_status(const char *dir, struct qry_status *st, char *err) RW_WUR;

/* ---- the server (rewindd) ---- */
typedef struct ctl ctl_t;
struct arc;
struct ctl_opts {
    struct arc *archive;  /* the archive the daemon owns (borrowed) */
    int max_queries;      /* concurrent queries before "busy" (default 8) */
    qry_live_fn live;     /* live capture state for status (NULL: none) */
    void *live_arg;
    const char *group;    /* the socket's group (NULL: the archive directory's) */
    struct audit *audit;  /* the audit trail queries and changes are recorded in
                             (borrowed; NULL: none) */
    struct ic *cases;     /* lawful intercept's case store (borrowed; NULL: none) */
};
/* Listen on DIR/rewindd.sock (a stale socket is replaced: the caller owns
 * the archive) and serve each connection on a thread of its own. */
int ctl_start(const struct ctl_opts *o, ctl_t **out, char *err) RW_WUR;
/* Cut the queries in flight (their clients see an error) and refuse new
 * ones; imports go on. */
void ctl_cancel(ctl_t *c);
/* Stop accepting, wait for the connections being served (an import
 * finishes its file) and free. Accepts NULL. */
void ctl_stop(ctl_t *c);

#endif
