/* heap_thp.c -- back bin/rewind's malloc heap with transparent huge pages.
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
 * short of a 2 MiB boundary, make malloc grow it by HEAP_HUGE at once, and
 * madvise(MADV_HUGEPAGE) that range before any of it is touched (a range
 * already touched as 4 KiB pages would stay so). The first page takes
 * malloc's own bookkeeping. Allocations up to 32 MiB stay on that heap
 * rather than in separate mmap()s, and the heap is trimmed only when 64 MiB
 * are free at its top, so memory that was faulted in is reused.
 *
 * Only where THP is "madvise" or "always" does this change anything; with
 * THP off, or if another allocator (ASan) owns malloc, or the heap was
 * already in use, it does nothing. Linked into bin/rewind only: the daemon
 * starts once. */
#include <malloc.h>
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define HEAP_HUGE (24u << 20)
#define HUGE_PAGE (2u << 20)
#define SMALL_PAGE 4096u

__attribute__((constructor(101))) static void heap_thp(void)
{
    if (mallinfo2().arena != 0)
        return; /* someone allocated before us: leave the heap as it is */
    char *brk0 = sbrk(0);
    if (brk0 == (void *)-1)
        return;
    uintptr_t b = (uintptr_t)brk0;
    char *start = (char *)(((b + SMALL_PAGE + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1)) - SMALL_PAGE);
    if (start > brk0 && sbrk(start - brk0) == (void *)-1)
        return;
    mallopt(M_MMAP_THRESHOLD, 32 << 20);
    mallopt(M_TRIM_THRESHOLD, 64 << 20);
    void *p = malloc(HEAP_HUGE); /* grows the heap; touches its first and last page only */
    char *top = sbrk(0);
    char *lo = start + SMALL_PAGE;
    char *hi = (char *)((uintptr_t)top & ~(uintptr_t)(HUGE_PAGE - 1));
    if (p && top != (void *)-1 && lo < hi)
        madvise(lo, (size_t)(hi - lo), MADV_HUGEPAGE);
    free(p);
}
