/* fuzz_ctl.c -- libFuzzer target for the control socket's query request codec
 * (ctl/client.c): any line ctl_query_parse() accepts must come back unchanged
 * through ctl_query_format() and ctl_query_parse() again. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ctl/ctl.h"

static int same_str(const char *a, const char *b)
{
    return (!a || !*a) ? (!b || !*b) : (b && !strcmp(a, b));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[RW_ERRSZ];
    struct ctl_query r, r2;
    char *line = malloc(size + 1);
    if (!line)
        return 0;
    memcpy(line, data, size);
    line[size] = 0;
    if (ctl_query_parse(line, &r, err) == 0) {
        size_t len;
        char *again = ctl_query_format(&r, &len);
        if (again) {
            if (len == 0 || again[len - 1] != '\n' || strlen(again) != len)
                abort();
            again[len - 1] = 0;
            if (ctl_query_parse(again, &r2, err) != 0)
                abort();
            if (r.spec.from != r2.spec.from || r.spec.to != r2.spec.to ||
                r.spec.limit_packets != r2.spec.limit_packets || r.format != r2.format ||
                r.count != r2.count || !same_str(r.spec.filter, r2.spec.filter))
                abort();
            int i;
            for (i = 0; r.points[i]; i++)
                if (!r2.points[i] || strcmp(r.points[i], r2.points[i]))
                    abort();
            if (r2.points[i])
                abort();
            free(again);
        }
    } else if (!err[0]) {
        abort(); /* a refusal says why */
    }
    free(line);
    return 0;
}
