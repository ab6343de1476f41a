/* fuzz_radius.c -- libFuzzer target for the RADIUS accounting parser
 * (intercept/radius.c), which reads UDP payloads from any capture: it must
 * never read past the bytes given, and what it accepts must hold together
 * (printable names that fit, prefixes without bits beyond their length). */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "intercept/intercept.h"

static void printable(const char *s, size_t cap)
{
    size_t n = strnlen(s, cap);
    if (n == cap)
        abort();
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ic_radius_acct a;
    char err[RW_ERRSZ];
    /* A copy of exactly size bytes, so that ASan catches a read past them. */
    uint8_t *p = malloc(size ? size : 1);
    if (!p)
        return 0;
    memcpy(p, data, size);
    int rc = ic_radius_parse(p, size, &a, err);
    if (rc < 0 && (rc != RW_EINPUT || !err[0] || strnlen(err, RW_ERRSZ) == RW_ERRSZ))
        abort();
    if (rc == 1) {
        if (!a.user[0] || (a.status != IC_ACCT_START && a.status != IC_ACCT_STOP &&
                           a.status != IC_ACCT_INTERIM))
            abort();
        printable(a.user, sizeof a.user);
        printable(a.session, sizeof a.session);
        printable(a.station, sizeof a.station);
        if (a.nprefix < 0 || a.nprefix > IC_RADIUS_PREFIXES)
            abort();
        for (int i = 0; i < a.nprefix; i++) {
            if (a.prefix[i].plen < 0 || a.prefix[i].plen > 128)
                abort();
            for (int b = a.prefix[i].plen; b < 128; b++)
                if (a.prefix[i].addr[b / 8] & (0x80 >> (b % 8)))
                    abort();
        }
    }
    free(p);
    return 0;
}
