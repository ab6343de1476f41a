/* cmd_clickhouse.c -- rewind clickhouse-schema: the DDL of the tables that
 * rewindd --export-flows writes (export/schema.c). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cli/cmds.h"
#include "cli/qargs.h"
#include "export/export.h"

static const char schema_help[] =
    "usage: rewind clickhouse-schema [--database NAME]\n"
    "\n"
    "Print the ClickHouse DDL (18.16 and later) of the tables that\n"
    "'rewindd --export-flows clickhouse=URL' inserts into: flows (one row per\n"
    "flow per sealed segment), segments and exports (how far each sensor's\n"
    "export has got). Statements are separated by blank lines; feed them to\n"
    "'clickhouse-client --multiquery', or one by one to the HTTP interface.\n"
    "\n"
    "      --database NAME   the database (default " EX_CH_DATABASE "); give the URL the\n"
    "                        same ?database=NAME\n"
    "  -h, --help            this help\n";

int cmd_clickhouse_schema(int argc, char **argv)
{
    static const struct option opts[] = {{"database", required_argument, 0, 'D'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    const char *db = EX_CH_DATABASE;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'D': db = optarg; break;
        case 'h': fputs(schema_help, stdout); return 0;
        default: return cli_usage("bad option for clickhouse-schema%s", " (see --help)");
        }
    }
    if (optind < argc)
        return cli_usage("clickhouse-schema: unexpected argument '%s'", argv[optind]);
    size_t n = strlen(db);
    if (n == 0 || n > 64 || strspn(db, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                       "0123456789_") != n || (db[0] >= '0' && db[0] <= '9'))
        return cli_usage("clickhouse-schema: --database must be a name of letters, digits and "
                         "'_' (not starting with a digit), not '%s'", db);
    fputs(ex_ch_schema(db), stdout);
    return 0;
}
