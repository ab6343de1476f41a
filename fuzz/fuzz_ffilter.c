/* fuzz_ffilter.c -- libFuzzer target for analytics/ffilter.c: a flow filter
 * (the /api/v1/flows filter parameter) from arbitrary bytes, judged on a
 * flow made of the input's first bytes, and a Community ID check. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/analytics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct an_flow f;
    char err[RW_ERRSZ];
    memset(&f, 0, sizeof f);
    if (size >= 40) {
        /* The first 40 bytes make the flow, the rest the expression. */
        f.family = data[0] & 1 ? 6 : 4;
        f.proto = data[1];
        memcpy(f.src, data + 2, 16);
        memcpy(f.dst, data + 18, 16);
        f.sport = (uint16_t)(data[34] << 8 | data[35]);
        f.dport = (uint16_t)(data[36] << 8 | data[37]);
        f.vlan = (uint16_t)((data[38] << 8 | data[39]) & 0x0fff);
        f.pkts_fwd = data[38] & 1;
        f.pkts_rev = data[39] & 1;
        data += 40;
        size -= 40;
    }
    char *expr = malloc(size + 1);
    if (!expr)
        return 0;
    memcpy(expr, data, size);
    expr[size] = 0;
    an_ffilter_t *ff;
    if (an_ffilter_new(expr, &ff, err) == 0) {
        (void)an_ffilter_match(ff, &f);
        an_ffilter_free(ff);
    } else if (!err[0]) {
        abort(); /* a refusal always says why */
    }
    (void)an_cid_valid(expr);
    free(expr);
    return 0;
}
