/* fuzz_pull.c -- libFuzzer target for the pull client's pcapng stream
 * parser (intercept/pull.c), which reads what a server sends: fed in
 * pieces of any size, it must never read past what it was given, and every
 * packet it accepts must lie within its block, on a known interface, with a
 * sequence number. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "intercept/intercept.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[RW_ERRSZ];
    ic_ng_parser_t *p = ic_ng_parser_new();
    if (!p)
        return 0;
    /* The first byte chooses the piece size: the parser must not care. */
    size_t step = size ? (size_t)data[0] % 61 + 1 : 1, at = size ? 1 : 0;
    while (at < size) {
        size_t n = size - at < step ? size - at : step;
        if (ic_ng_feed(p, data + at, n, err) < 0)
            break;
        at += n;
        struct ic_ng_event ev;
        size_t used;
        int rc;
        while ((rc = ic_ng_next(p, &ev, &used, err)) == 1) {
            if (used < 12 || used > IC_NG_MAX_BLOCK || used % 4)
                abort();
            if (ev.kind == IC_NG_PACKET) {
                if (!ic_ng_iface(p, ev.ifid) || ev.seq == 0 || ev.caplen > used)
                    abort();
                volatile uint8_t sum = 0;
                for (uint32_t i = 0; i < ev.caplen; i++)
                    sum ^= ev.data[i];
                (void)sum;
            }
            ic_ng_consume(p, used);
        }
        if (rc < 0) {
            if (!err[0])
                abort();
            break;
        }
    }
    ic_ng_parser_free(p);
    return 0;
}
