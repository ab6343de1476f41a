/* ctl_int.h -- private to ctl/: the wire format's pieces shared by the
 * client and the server, and the server's verbs. */
#ifndef CTL_INT_H
#define CTL_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <sys/types.h>

#include "auth/auth.h"
#include "ctl/ctl.h"

/* ---- wire format (proto.c) ---- */

/* Unescape %XX in place; -1 on a broken escape or an escaped NUL. */
int ctl_unescape(char *s);
/* Bytes of v once escaped. */
size_t ctl_escaped_len(const char *v);
/* Append "\tKEY=VALUE" with VALUE escaped to buf (capacity cap, *len used,
 * kept NUL-terminated); -1 when it does not fit. */
int ctl_put_field(char *buf, size_t cap, size_t *len, const char *key, const char *val);
/* Decimal, optionally negative (sign), nothing else: no spaces, no '+'. */
int ctl_parse_num(const char *v, int sign, int64_t *i, uint64_t *u);
/* The next "KEY=VALUE" field of a request or answer line being split on
 * tabs (strtok_r state in *save): 1 with *key and the unescaped *val, 0 at
 * the end, RW_EINPUT naming what (e.g. "hold request") is malformed. */
int ctl_next_field(char **save, const char *what, char **key, char **val, char *err) RW_WUR;

/* Send one line (printf format; a '\n' inside becomes a space, and a '\n'
 * ends it) without SIGPIPE. A failed send is ignored: the peer has gone. */
void ctl_send_line(int fd, const char *fmt, ...) RW_PRINTF(2, 3);
/* Send all of buf without SIGPIPE; -1 on failure. */
int ctl_send_all(int sock, const void *buf, size_t n);
/* Send n bytes of buf with the descriptor fd attached (SCM_RIGHTS), without
 * SIGPIPE; returns what sendmsg() returns. */
ssize_t ctl_send_fd(int sock, const void *buf, size_t n, int fd);
/* Receive up to n bytes, retrying on EINTR, with *fd set to a descriptor
 * that came along (close-on-exec) or -1; returns what recvmsg() returns. */
ssize_t ctl_recv_fd(int sock, void *buf, size_t n, int *fd);
/* Wait until fd is readable (or hung up): 0; or -1 once *stop is set,
 * looked at every 200 ms, so that a client does not hold up a stop. */
int ctl_wait_in(int fd, const atomic_int *stop);

/* Connect to the daemon owning dir: a socket, or -1 when none answers
 * (no socket, a stale one, no permission). */
int ctl_connect(const char *dir);
/* Read the peer's next line from the socket fd into buf without its '\n',
 * leaving the bytes of later lines unread. -1 when it closed the
 * connection first. */
int ctl_read_line(int fd, char *buf, size_t cap);
/* "error CODE MESSAGE" -> code and err; anything else is the daemon
 * breaking the protocol (RW_EIO naming what, e.g. "the query"). */
int ctl_answer_error(const char *line, const char *what, char *err);

/* A point's status as "\tKEY=VALUE" fields appended to buf (as
 * ctl_put_field); -1 when it does not fit. */
int ctl_put_point(char *buf, size_t cap, size_t *len, const struct qry_point_status *p);
/* Set the field key of p from val; -1 if val is malformed. Unknown keys
 * are ignored. */
int ctl_get_point_field(struct qry_point_status *p, const char *key, const char *val);

/* ---- the server (server.c) and its verbs (verb_*.c) ---- */
struct ctl {
    struct ctl_opts o;
    int lfd;
    char path[108];
    pthread_t thr;
    atomic_int stop;   /* stop accepting */
    atomic_int busy;   /* connections being served */
    atomic_int active; /* queries being answered */
    atomic_int cancel; /* cut queries, refuse new ones */
};
/* Each verb answers one request on conn (borrowed: the server closes it);
 * line is the request without its '\n' (the verb may change it in place),
 * fd a descriptor that came with it (the verb's to close) or -1. */
void ctl_verb_query(struct ctl *c, int conn, char *line, int fd);
void ctl_verb_import(struct ctl *c, int conn, char *line, int fd);
void ctl_verb_hold(struct ctl *c, int conn, char *line, int fd);
void ctl_verb_status(struct ctl *c, int conn, char *line, int fd);
void ctl_verb_token(struct ctl *c, int conn, char *line, int fd);
void ctl_verb_case(struct ctl *c, int conn, char *line, int fd);
void ctl_verb_audit(struct ctl *c, int conn, char *line, int fd);

/* Append an audit record for a request on conn: the peer as principal;
 * spec (may be NULL) gives window, filter and points; sha256 NULL when
 * nothing was sent. 0, or <0 with err (the caller must then not report
 * success). No trail: 0. */
int ctl_audit_rec(struct ctl *c, int conn, const char *route, const struct qry_spec *spec,
                  int status, uint64_t packets, uint64_t bytes, const char *sha256,
                  int64_t start_ns, int64_t duration_ns, const char *detail, char *err);

/* Who is on the other end of conn, as the kernel says (SO_PEERCRED): root
 * and the daemon's own user are admin; anyone else who could open the
 * socket (mode 0660: its group) is an analyst. *p's name is "USER (uid N)". */
void ctl_peer(int conn, struct auth_principal *p);

#endif
