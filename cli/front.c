/* front.c -- bin/rewind: a small front end that asks the rewindd owning
 * --dir to answer `rewind query`, and runs bin/rewind-core for everything
 * else.
 *
 * A needle query that the daemon answers takes the client a few
 * milliseconds of its own. rewind-core links RocksDB statically (16 MB):
 * from a cold page cache, merely loading it cost 11 of the 21 ms of such a
 * query on the machines we measured (their disks read ahead 8 MiB, so the
 * whole file was read). This front end is a few dozen KiB and links only
 * libc. When no daemon answers, or for any other command, it replaces
 * itself with rewind-core (same arguments), which reads the archive; an
 * exec costs about a millisecond warm. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/qargs.h"

#define CORE "rewind-core"

/* rewind-core beside this executable (the build tree), else in
 * ../libexec/rewind/ (an installed tree: PREFIX/bin and PREFIX/libexec).
 * The executable is /proc/self/exe, or argv0 where /proc is not mounted
 * and argv0 names a path. */
static int find_core(const char *argv0, char *path, size_t cap)
{
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self);
    if (n <= 0 || (size_t)n >= sizeof self) {
        if (!strchr(argv0, '/') || strlen(argv0) >= sizeof self)
            return -1;
        n = (ssize_t)strlen(argv0);
        memcpy(self, argv0, (size_t)n);
    }
    self[n] = 0;
    char *slash = strrchr(self, '/');
    if (!slash)
        return -1;
    *slash = 0;
    snprintf(path, cap, "%s/" CORE, self);
    if (access(path, X_OK) == 0)
        return 0;
    snprintf(path, cap, "%s/../libexec/rewind/" CORE, self);
    return access(path, X_OK) == 0 ? 0 : -1;
}

int main(int argc, char **argv)
{
    char core[PATH_MAX + 32];
    unsetenv(CLI_ASKED_ENV); /* only this process says whether it asked */
    if (argc >= 2 && !strcmp(argv[1], "query")) {
        struct qargs a;
        /* getopt_long permutes what it parses: rewind-core gets the
         * arguments as given. */
        char **args = calloc((size_t)argc + 1, sizeof *args);
        if (args) {
            memcpy(args, argv, sizeof *args * (size_t)argc);
            int status = qargs_parse(argc - 1, args + 1, &a, 1);
            /* A Community ID is looked up in the index first: rewind-core's job. */
            if (status < 0 && a.dir && !a.local && !a.cid) {
                if ((status = qargs_ask(&a)) >= 0) {
                    free(args);
                    return qargs_end(&a, status);
                }
                setenv(CLI_ASKED_ENV, "1", 1);
            }
            if (status < 0)
                free(a.filter);
            free(args);
        }
    }
    const char *me = argc > 0 && argv[0] ? argv[0] : "rewind";
    if (find_core(me, core, sizeof core) < 0) {
        fprintf(stderr, "rewind: cannot find %s beside %s or in ../libexec/rewind/; "
                        "reinstall rewind (make install)\n", CORE, me);
        return EXIT_RUNTIME;
    }
    execv(core, argv);
    fprintf(stderr, "rewind: cannot run %s: %s\n", core, strerror(errno));
    return EXIT_RUNTIME;
}
