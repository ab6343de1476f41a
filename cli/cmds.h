/* cmds.h -- the commands of rewind(1) that live in files of their own
 * (cli/cmd_NAME.c). Each takes the arguments after the command name
 * (argv[0] is the command) and returns the process's exit status
 * (qargs.h: cli_exit_for). main() in rewind.c dispatches to them. */
#ifndef CLI_CMDS_H
#define CLI_CMDS_H

/* rewind case add|list|show|end: lawful intercept cases (cmd_case.c). */
int cmd_case(int argc, char **argv);

/* rewind identity: a subscriber's addresses over time (cmd_identity.c). */
int cmd_identity(int argc, char **argv);

/* rewind intercept: an agency's pull client (cmd_intercept.c). */
int cmd_intercept(int argc, char **argv);

/* rewind export: a case's evidence bundle, and its verification (cmd_export.c). */
int cmd_export(int argc, char **argv);

#endif
