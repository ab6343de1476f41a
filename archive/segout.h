/* segout.h -- the bytes of an open segment on their way to its file.
 *
 * A point writer appends pcap records to a buffer; full buffers go to the
 * file with O_DIRECT from a thread of their own, so a packet's bytes are
 * copied once (into the buffer) and never again into the page cache, and
 * the writer does not wait for the disk. What O_DIRECT cannot write (less
 * than a block: a segment's header, the tail at a flush, a record larger
 * than a buffer) is written through the page cache, and a block once
 * written that way is never written with O_DIRECT: a block is either all
 * page cache or all direct, so no cached page can go stale under a direct
 * write. On file systems without O_DIRECT (tmpfs) everything goes through
 * the page cache, as plain writes. Internal to archive/. */
#ifndef SEGOUT_H
#define SEGOUT_H

#include <stddef.h>
#include <stdint.h>

#define SEGOUT_BUF (512u << 10) /* bytes a buffer holds; a direct write is at most this */

typedef struct segout segout_t;

/* Buffers and the writing thread; NULL when out of memory. */
segout_t *segout_new(void);
/* Waits for the thread's writes (their errors are dropped), then frees. */
void segout_free(segout_t *o);

/* Write a new, empty file from now on: fd is open for writing (borrowed);
 * path names it, for the O_DIRECT descriptor (opened and closed here) and
 * for messages; sync: start the writeback of page-cache writes at once
 * (sync_file_range), for the fdatasync of the next commit. Waits for
 * writes to the previous file first. */
void segout_start(segout_t *o, int fd, const char *path, int sync);
/* Forget the file (after segout_drain, or after a failure: pending bytes
 * are dropped). Closes the O_DIRECT descriptor, not fd. */
void segout_stop(segout_t *o);

/* The file's size once everything appended is written: where the next
 * record goes. */
uint64_t segout_size(const segout_t *o);
/* Bytes appended and not yet handed to the file. */
size_t segout_pending(const segout_t *o);
/* Room in the buffer for appending now. */
size_t segout_room(const segout_t *o);
/* Append a then b (na + nb <= segout_room()). */
void segout_put(segout_t *o, const void *a, size_t na, const void *b, size_t nb);

/* Hand the buffer's bytes to the file: its whole blocks always, the rest
 * too when all (then everything appended is in the file, or on its way:
 * see segout_drain). 0, or <0 (RW_ENOSPC, RW_EIO) with a message when a
 * write failed, now or earlier on the thread. */
int segout_push(segout_t *o, int all, char *err);
/* Everything handed over is written (not synced); the error of any
 * failed write. */
int segout_drain(segout_t *o, char *err);
/* Write a then b (a record too large for the buffer) straight after what
 * is appended, through the page cache. Pushes and drains first. */
int segout_write_big(segout_t *o, const void *a, size_t na, const void *b, size_t nb, char *err);

#endif
