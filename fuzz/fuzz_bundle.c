/* fuzz_bundle.c -- libFuzzer target for `rewind export verify`'s reader of
 * evidence bundles (evidence/verify.c): a tar file from anyone. It must
 * never crash, never read out of bounds, and answer 0, RW_ECORRUPT or
 * RW_EINPUT with a message. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "evidence/evidence.h"

static void ignore(void *arg, const char *problem)
{
    (void)arg;
    if (!problem[0])
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char path[64];
    char err[RW_ERRSZ] = "";
    struct ev_verify_stats st;
    if (!path[0])
        snprintf(path, sizeof path, "/tmp/fuzz_bundle.%d.tar", (int)getpid());
    FILE *f = fopen(path, "wb");
    if (!f)
        return 0;
    fwrite(data, 1, size, f);
    fclose(f);
    int rc = ev_verify(path, ignore, NULL, &st, err);
    if (rc != 0 && rc != RW_ECORRUPT && rc != RW_EINPUT && rc != RW_ENOMEM)
        abort();
    if (rc < 0 && !err[0])
        abort();
    return 0;
}
