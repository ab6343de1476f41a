/* fuzz_segfile.c -- libFuzzer target for compressed segment files: the block
 * table, random reads through it, and the sequential (checksummed) stream, on
 * arbitrary bytes. Seeds: any NAME.pcap.lz4 of an archive. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "archive/segfile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[RW_ERRSZ];
    segf_t *f;
    int fd = memfd_create("fuzz", 0);
    if (fd < 0 || rw_write_all(fd, data, size) < 0)
        return 0;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (segf_open(path, &f, err) == 0) {
        uint64_t n = segf_size(f), step = n / 7 + 1;
        /* reads at a few offsets, across block boundaries */
        for (uint64_t off = 0; off < n; off += step) {
            const uint8_t *p;
            size_t avail;
            size_t need = n - off < 70000 ? (size_t)(n - off) : 70000;
            if (segf_read(f, off, need, &p, &avail, err) == 0) {
                if (avail < need)
                    __builtin_trap();
                volatile uint8_t sink = p[need - 1];
                (void)sink;
            }
        }
        segf_close(f);
    }
    const char *why;
    FILE *s = segf_stream(path, &why, err);
    if (s) {
        char buf[4096];
        size_t total = 0, got;
        while ((got = fread(buf, 1, sizeof buf, s)) > 0 && total < (64u << 20))
            total += got;
        fclose(s);
    }
    close(fd);
    return 0;
}
