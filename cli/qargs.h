/* qargs.h -- `rewind query`'s command line, and asking the rewindd that owns
 * --dir for the answer (ctl/ctl.h). Shared by bin/rewind, the small front
 * end that asks the daemon (cli/front.c), and bin/rewind-core, the client
 * that reads archives itself (cli/rewind.c): both must parse and refuse the
 * same arguments the same way. */
#ifndef CLI_QARGS_H
#define CLI_QARGS_H

#include <stdint.h>

#include "common/rw.h"
#include "query/query.h"

#define EXIT_RUNTIME 1
#define EXIT_USAGE 2
#define EXIT_DAMAGED 3 /* answered, with damage: every readable packet, and a warning per
                          damaged range of the archive that the answer lacks */

/* In rewind-core's environment when the front end has asked the daemon
 * and none answered (or it was busy): do not ask again, read the archive. */
#define CLI_ASKED_ENV "REWIND_DAEMON_ASKED"

/* "rewind: " + the message + a pointer to --help on stderr; EXIT_USAGE. */
int cli_usage(const char *fmt, const char *arg);
/* The exit status for an RW_E* code: EXIT_USAGE for RW_EINPUT, else
 * EXIT_RUNTIME. */
int cli_exit_for(int rc);
/* "rewind: ERR" on stderr; cli_exit_for(rc). */
int cli_fail(int rc, const char *err);
/* An archive's log function (struct arc_opts.log): rw_log on stderr. */
void cli_log_event(void *arg, const char *level, const char *msg);
/* The same without "info" lines (--quiet). */
void cli_log_warnings(void *arg, const char *level, const char *msg);
/* dir, or $REWIND_DIR when dir is NULL. */
const char *cli_env_dir(const char *dir);

extern const char qargs_help[]; /* rewind query --help */

/* The output of a query: -w FILE, opened (truncating) only once the query
 * is known to be good, or stdout. */
struct qargs_out {
    const char *wfile; /* NULL for stdout, also when given as -w - */
    int fd; /* -1 until opened */
};
/* Opens o's output (a struct qargs_out *); a ctl_open_fn. */
int qargs_open_output(void *o, char *err);

/* A parsed `rewind query` command line. */
struct qargs {
    const char *dir, *url, *from, *to;
    const char *token; /* --token, for --url */
    const char *cid;   /* --community-id: rewind-core turns it into a filter */
    const char *points[65];
    int npoints, count, format, local;
    int follow; /* --follow: then every new match, over --url */
    char *filter;
    struct qry_spec spec;
    struct qargs_out o;
};

/* Parse the arguments of `rewind query` (argv[0] is "query"). Returns -1
 * when they are good, or the exit status after printing the help or the
 * error; nothing is printed when quiet (the front end leaves every
 * complaint to rewind-core, which parses them again). */
int qargs_parse(int argc, char **argv, struct qargs *a, int quiet);
/* Ask the rewindd serving a->dir. Returns the exit status, or -1 when no
 * daemon answered and the archive must be read by the caller. */
int qargs_ask(struct qargs *a);
/* Close the output and free; a failed answer's -w FILE is removed, for a
 * short file must not pass for an answer (one with damage is kept: it holds
 * every readable packet, and the warnings say what it lacks). Returns
 * status. */
int qargs_end(struct qargs *a, int status);

#endif
