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

#endif
