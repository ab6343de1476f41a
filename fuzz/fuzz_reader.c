/* fuzz_reader.c -- libFuzzer target for the capture file reader: libpcap's
 * pcap/pcapng parsing plus our pcapng block walker, on arbitrary bytes. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "capture/cap.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char path[64], err[RW_ERRSZ];
    cap_reader_t *r;
    struct cap_rec rec;
    int fd = memfd_create("fuzz", 0);
    if (fd < 0 || rw_write_all(fd, data, size) < 0)
        return 0;
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    if (cap_reader_open(path, &r, err) == 0) {
        int n = 0;
        while (n++ < 100000 && cap_reader_next(r, &rec, err) == 1) {
            if (rec.ifid < 0 || rec.ifid >= CAP_MAX_IFACES)
                __builtin_trap();
            volatile uint8_t sink = rec.caplen ? rec.data[rec.caplen - 1] : 0;
            (void)sink;
        }
        cap_reader_close(r);
    }
    close(fd);
    return 0;
}
