/* fuzz_filter.c -- libFuzzer target for query/filter.c: parse, format, free. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "query/filter.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *expr = malloc(size + 1);
    if (!expr)
        return 0;
    memcpy(expr, data, size);
    expr[size] = 0;

    struct qf_node *n = qf_parse(expr);
    if (n) {
        char small[16];
        int need = qf_format(n, small, sizeof(small));
        char *buf = malloc((size_t)need + 1);
        if (buf) {
            if (qf_format(n, buf, need + 1) != need || strlen(buf) != (size_t)need)
                abort();
            free(buf);
        }
        qf_free(n);
    }
    free(expr);
    return 0;
}
