/* segfile.h -- reading a segment file by offset, plain or compressed, and
 * compressing one.
 *
 * A segment is a nanosecond pcap. Once sealed and old enough it may be
 * rewritten as NAME.pcap.lz4: one LZ4 frame (64 KiB independent blocks,
 * content checksum, content size) that `lz4 -d` turns back into the same
 * bytes, followed by an LZ4 skippable frame that the lz4 tool ignores and
 * that holds the block table (man/rewind-archive.5, COMPRESSED SEGMENTS).
 * Offsets everywhere (locators, file_size) are offsets in the pcap bytes, so
 * the index does not change when a segment is compressed. */
#ifndef ARC_SEGFILE_H
#define ARC_SEGFILE_H

#include <stdint.h>
#include <stdio.h>

#include "common/rw.h"

#define SEGF_BLOCK (64u << 10) /* uncompressed bytes per lz4 block */

typedef struct segf segf_t;

/* Open a segment for random reads; the format is told by its magic. The
 * error is RW_EIO (errno kept) if the file cannot be opened, RW_ECORRUPT if
 * a compressed segment's block table is damaged. */
int segf_open(const char *path, segf_t **out, char *err) RW_WUR;
void segf_close(segf_t *f);
int segf_compressed(const segf_t *f);
/* Bytes of the pcap (the uncompressed size). For a plain file, its size. */
uint64_t segf_size(const segf_t *f);

/* Make bytes [off, off + need) of the pcap available at *p, valid until the
 * next call. Reads ahead: *avail (if not NULL) gets how many bytes from off
 * are at *p, at least need. RW_ECORRUPT if the file ends before off + need
 * or a block does not decompress or fails its checksum; segf_fault() then
 * says which bytes. Blocks are independent: the others stay readable. */
int segf_read(segf_t *f, uint64_t off, size_t need, const uint8_t **p, size_t *avail,
              char *err) RW_WUR;

/* Damage that a read met: pcap bytes [lo, hi) cannot be read. For a
 * compressed segment that is one whole block (block, the 64 KiB block
 * [block * SEGF_BLOCK, ...)), for a plain one the bytes past the end of the
 * file (block: the one lo lies in). */
struct segf_fault {
    uint64_t lo, hi;
    uint32_t block;
    char why[64]; /* "does not decompress", "fails its checksum", ... */
};
/* 1 with *out filled when the last segf_read() failed because of damage
 * (RW_ECORRUPT), 0 otherwise (it succeeded, or failed for another reason:
 * an I/O error, no memory). */
int segf_fault(const segf_t *f, struct segf_fault *out);
/* 1 if every block of this compressed segment carries a checksum (the
 * frame's block checksum flag, man/rewind-archive.5 S11), so a damaged
 * block is found by reading it; without (segments compressed before rewind
 * wrote them), only a block that no longer decodes is, and the content
 * checksum covers the rest. */
int segf_block_checksums(const segf_t *f);

/* A stdio stream of the pcap bytes from the start, for sequential readers
 * (verify, reindex). For a compressed segment the whole frame is checked as
 * it is read: a bad block or content checksum is a read error (ferror), and
 * *why, owned by the stream and valid until fclose, then says what was
 * wrong (it is "" otherwise). */
FILE *segf_stream(const char *path, const char **why, char *err);

/* Compress the plain segment src into dst (created, written, fdatasync'ed;
 * removed again on failure). *stored gets dst's size. */
int segf_compress(const char *src, const char *dst, uint64_t *stored, char *err) RW_WUR;

/* The LINKTYPE_ value a pcap file header carries for a libpcap DLT_ value
 * (libpcap maps them when it writes a header but does not export the map). */
int segf_linktype_of_dlt(int dlt);

#endif
