/* fuzz_merge.c -- libFuzzer target for the merge of sensors' pcapng answers
 * (export/merge.c), which come from the network: the input is split at its
 * first "\n--\n" into two streams (or is one), merged into /dev/null; the
 * same bytes are read as a sensors file (export/sensors.c) and as a filter
 * turned into ClickHouse's condition (export/federate.c). Seeds: any answer
 * of GET /api/v1/packets?format=pcapng. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "export/export.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char err[RW_ERRSZ];
    const uint8_t *cut = memmem(data, size, "\n--\n", 4);
    size_t n1 = cut ? (size_t)(cut - data) : size;
    FILE *a = fmemopen((void *)data, n1 ? n1 : 1, "rb");
    FILE *b = cut ? fmemopen((void *)(cut + 4), size - n1 - 4 ? size - n1 - 4 : 1, "rb") : NULL;
    FILE *out = fopen("/dev/null", "wb");
    if (a && out && n1) {
        struct ex_merge_in in[2] = {{"a", a}, {"b", b}};
        uint64_t pk;
        (void)ex_pcapng_merge(in, b && size - n1 - 4 ? 2 : 1, "note", out, &pk, err);
    }
    if (a)
        fclose(a);
    if (b)
        fclose(b);
    if (out)
        fclose(out);
    /* The filter a client sends, as ClickHouse's condition: only digits,
     * hex, the condition's own words and punctuation may come out. */
    char flt[512], cond[4096];
    size_t fl = size < sizeof flt - 1 ? size : sizeof flt - 1;
    memcpy(flt, data, fl);
    flt[fl] = 0;
    ex_fed_filter_sql(flt, cond, sizeof cond);
    if (strchr(cond, '\'') && !strstr(cond, "unhex('"))
        __builtin_trap();
    for (const char *c = cond; *c; c++)
        if (*c == ';' || *c == '\\')
            __builtin_trap();
    int fd = memfd_create("sensors", 0);
    if (fd >= 0) {
        char path[64];
        struct ex_sensors ss;
        if (rw_write_all(fd, data, size) == 0) {
            snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
            if (ex_sensors_load(path, &ss, err) == 0)
                ex_sensors_free(&ss);
        }
        close(fd);
    }
    return 0;
}
