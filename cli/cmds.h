/* cmds.h -- the commands of rewind(1) that live in files of their own
 * (cli/cmd_NAME.c). Each takes the arguments after the command name
 * (argv[0] is the command) and returns the process's exit status
 * (qargs.h: cli_exit_for). main() in rewind.c dispatches to them. */
#ifndef CLI_CMDS_H
#define CLI_CMDS_H
#include <stdint.h>

/* rewind flows, top and timeline (cmd_analytics.c). */
int cmd_flows(int argc, char **argv);
int cmd_top(int argc, char **argv);
int cmd_timeline(int argc, char **argv);

/* Record in dir's audit trail what this process did to or read from dir
 * itself (rewind.c). A read (read = 1) is reported to the rewindd owning
 * dir, which writes the trail; otherwise, or with no daemon, the trail is
 * opened here. spec may be NULL. 0, or <0 with err. */
struct qry_spec;
int cli_audit(const char *dir, const char *route, const struct qry_spec *spec, int status,
              uint64_t packets, uint64_t bytes, const char *sha256, int64_t start_ns,
              int64_t duration_ns, const char *detail, int read, char *err);

/* What a command read from an archive, for its audit record. */
struct cli_audit_what {
    const char *route; /* "flows", "top", ... */
    int64_t from, to;
    const char *filter;
    const char **points;
};
/* Record in dir's audit trail that this process read w with the given
 * status (200, 400, 500), started at start_ns (rewind.c). 0, or <0 with err. */
int cli_audit_read(const char *dir, const struct cli_audit_what *w, int status, int64_t start_ns,
                   char *err);

/* rewind replay: a capture file or a query's answer out of an interface. */
int cmd_replay(int argc, char **argv);

/* rewind case add|list|show|end: lawful intercept cases (cmd_case.c). */
int cmd_case(int argc, char **argv);

/* rewind identity: a subscriber's addresses over time (cmd_identity.c). */
int cmd_identity(int argc, char **argv);

/* rewind intercept: an agency's pull client (cmd_intercept.c). */
int cmd_intercept(int argc, char **argv);

/* rewind export: a case's evidence bundle, and its verification (cmd_export.c). */
int cmd_export(int argc, char **argv);
/* rewind clickhouse-schema: the DDL of rewindd --export-flows (cmd_clickhouse.c). */
int cmd_clickhouse_schema(int argc, char **argv);

/* rewind query --sensors FILE: one query across sensors (cmd_federate.c). */
int cmd_query_sensors(int argc, char **argv);

#include <stdint.h>
#include <stdio.h>

struct ses_spec;

int cmd_smtp(int argc, char **argv);  /* cmd_smtp.c */
int cmd_calls(int argc, char **argv); /* cmd_calls.c */

/* Shared by cmd_smtp.c and cmd_calls.c (defined in cmd_smtp.c). */
/* --from/--to into ns (open ends RW_TIME_MIN/MAX); RW_EINPUT naming the option. */
int cli_sessions_window(const char *from, const char *to, int64_t *f, int64_t *t, char *err);
/* --limit: 1..SES_LIMIT_MAX; *out unchanged when v is NULL. */
int cli_sessions_limit(const char *v, uint64_t *out, char *err);
/* Run spec over the archive in dir, the answer to out, with its audit record
 * (route names it); *found (may be NULL) 0 when the message or call asked
 * for is not there. Returns the exit status. */
int cli_sessions_local(const char *dir, const struct ses_spec *spec, const char *route, FILE *out,
                       int *found);
/* Append "?k=v" or "&k=v" (v URL-escaped; nothing when v is NULL). */
int cli_qs_add(char *qs, size_t n, const char *k, const char *v);
/* Record in dir's audit trail what this process read itself. */
int cli_sessions_audit(const char *dir, const char *route, int64_t from, int64_t to,
                       const char *filter, int status, uint64_t packets, uint64_t bytes,
                       const char *sha256, int64_t start_ns, int64_t dur_ns, char *err);

#endif
