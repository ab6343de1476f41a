/* cmd_identity.c -- rewind identity: the addresses a subscriber held and
 * when (intercept/intercept.h), read from the archive's index. */
#include <arpa/inet.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "cli/cmds.h"
#include "cli/qargs.h"
#include "index/index.h"
#include "intercept/intercept.h"
#include "query/read.h"

static const char identity_help[] =
    "usage: rewind identity --dir DIR --user NAME [--from T] [--to T]\n"
    "\n"
    "The addresses and prefixes subscriber NAME held that meet [--from, --to),\n"
    "one interval a line: ADDRESS START .. END (or 'now' while held), the\n"
    "session, the calling station and where it was learnt (radius: accounting\n"
    "seen in captured or imported traffic; api: POST /api/v1/identities).\n"
    "\n"
    "options:\n"
    "  -d, --dir DIR      the archive (default $REWIND_DIR)\n"
    "  -u, --user NAME    the subscriber's user name (RADIUS User-Name)\n"
    "  -f, --from T       from this time (default: all time)\n"
    "  -t, --to T         to this time\n"
    "  -h, --help         this help\n";

int cmd_identity(int argc, char **argv)
{
    static const struct option opts[] = {
        {"dir", required_argument, 0, 'd'}, {"user", required_argument, 0, 'u'},
        {"from", required_argument, 0, 'f'}, {"to", required_argument, 0, 't'},
        {"help", no_argument, 0, 'h'},      {0, 0, 0, 0}};
    const char *dir = NULL, *user = NULL, *from = NULL, *to = NULL;
    char err[RW_ERRSZ];
    int c, rc;
    while ((c = getopt_long(argc, argv, "d:u:f:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'd': dir = optarg; break;
        case 'u': user = optarg; break;
        case 'f': from = optarg; break;
        case 't': to = optarg; break;
        case 'h': fputs(identity_help, stdout); return 0;
        default: return cli_usage("identity: bad option%s", "");
        }
    }
    dir = cli_env_dir(dir);
    if (optind != argc)
        return cli_usage("identity: unexpected argument '%s'", argv[optind]);
    if (!dir)
        return cli_usage("identity: --dir DIR is required (or set REWIND_DIR)%s", "");
    if (!user || !*user)
        return cli_usage("identity: --user NAME is required%s", "");
    int64_t now = rw_now_ns(), f = RW_TIME_MIN, t = RW_TIME_MAX;
    if ((from && (rc = rw_time_parse(from, now, &f, err)) < 0) ||
        (to && (rc = rw_time_parse(to, now, &t, err)) < 0))
        return cli_fail(RW_EINPUT, err);
    if (f >= t)
        return cli_usage("identity: --from must be before --to%s", "");
    idx_t *ix;
    if ((rc = qry_archive_open(dir, &ix, err)) < 0)
        return cli_fail(rc, err);
    struct idx_ident *v = NULL;
    size_t n = 0;
    rc = ic_ident_resolve(ix, user, f, t, &v, &n, err);
    qry_archive_close(ix);
    if (rc < 0)
        return cli_fail(rc, err);
    for (size_t i = 0; i < n; i++) {
        char a[INET6_ADDRSTRLEN], b1[48], b2[48];
        inet_ntop(v[i].family == 4 ? AF_INET : AF_INET6, v[i].addr, a, sizeof a);
        printf("%s", a);
        if (v[i].plen != (v[i].family == 4 ? 32 : 128))
            printf("/%u", v[i].plen);
        if (v[i].port_lo || v[i].port_hi)
            printf(" ports %u-%u", v[i].port_lo, v[i].port_hi);
        printf("  %s .. %s", rw_time_fmt(v[i].start, b1, sizeof b1),
               v[i].end == RW_TIME_MAX ? "now" : rw_time_fmt(v[i].end, b2, sizeof b2));
        if (v[i].session[0])
            printf("  session %s", v[i].session);
        if (v[i].station[0])
            printf("  station %s", v[i].station);
        printf("  %s\n", v[i].source);
    }
    free(v);
    return 0;
}
