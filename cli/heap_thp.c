/* heap_thp.c -- back bin/rewind-core's malloc heap with transparent huge pages.
 *
 * A needle query is mostly process start-up: RocksDB's static
 * initialisers, the secondary open and the block reads all allocate from a
 * fresh heap, and every first touch of a 4 KiB page is a page fault. On the
 * VMs we measured a fault costs 18-30 us, and a query took about 250 of
 * them on the heap alone: a third of its time. With the heap in 2 MiB
 * transparent huge pages the same query takes a handful.
 *
 * So, before anything else allocates (constructor priority 101 runs before
 * the C++ initialisers of the static RocksDB), we start the heap one page
 * short of a 2 MiB boundary, have malloc's first allocation grow it by
 * HEAP_HUGE of top padding, and madvise(MADV_HUGEPAGE) the range above that
 * first page before any of it is touched (a 2 MiB range already touched as
 * 4 KiB pages would stay so). malloc's own bookkeeping and the top chunk's
 * header stay in the first page. Allocations up to 32 MiB then come from
 * this heap rather than from separate mmap()s, and the heap is trimmed only
 * when 64 MiB are free at its top, so memory once faulted in is reused.
 *
 * Only where THP is "madvise" or "always" does this change anything; with
 * THP off, or if another allocator (ASan) owns malloc, or the heap was
 * already in use, it does nothing. Linked into bin/rewind-core only: the
 * daemon starts once. */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HEAP_HUGE (24u << 20)
#define HUGE_PAGE (2u << 20)
#define SMALL_PAGE 4096u
#define DEFAULT_TOP_PAD (128 << 10) /* glibc's */

__attribute__((constructor(101))) static void heap_thp(void)
{
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 33)
    if (mallinfo2().arena != 0)
        return; /* someone allocated before us: leave the heap as it is */
#else
    return;
#endif
    char *brk0 = sbrk(0);
    if (brk0 == (void *)-1)
        return;
    uintptr_t b = (uintptr_t)brk0;
    char *start = (char *)(((b + SMALL_PAGE + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1)) - SMALL_PAGE);
    if (start > brk0 && sbrk(start - brk0) == (void *)-1)
        return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    mallopt(M_TOP_PAD, (int)HEAP_HUGE);
    void *p = malloc(64); /* grows the heap by the pad; touches its first page only */
    char *top = sbrk(0);
    mallopt(M_TOP_PAD, DEFAULT_TOP_PAD);
    char *lo = start + SMALL_PAGE;
    char *hi = (char *)((uintptr_t)top & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p && top != (void *)-1 && lo < hi)
        madvise(lo, (size_t)(hi - lo), MADV_HUGEPAGE);
    free(p);
}
