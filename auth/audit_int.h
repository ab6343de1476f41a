/* audit_int.h -- auth/'s private half of the audit trail: a record's line
 * (writing and parsing it, its own hash), file names and the line reader
 * shared by the writer and the readers. For auth/, its unit tests and its
 * fuzz target only; everyone else uses audit.h. Rules Ax: man/rewind-archive.5. */
#ifndef AUTH_AUDIT_INT_H
#define AUTH_AUDIT_INT_H

#include <stddef.h>
#include <stdint.h>

#include "auth/audit.h"

#define AUDIT_SUBDIR "audit"
#define AUDIT_NAME_FMT "audit-%010llu.jsonl" /* A1 */
#define AUDIT_ZERO_HASH "0000000000000000000000000000000000000000000000000000000000000000"
/* The last member of every line (A3): ,"hash":"<64 hex>"} */
#define AUDIT_HASH_PREFIX ",\"hash\":\""
#define AUDIT_SUFFIX_LEN (sizeof AUDIT_HASH_PREFIX - 1 + 64 + 2)

/* Where a crash cut a record off (A9): the torn bytes at offset..offset+bytes
 * of file. */
struct audit_cut {
    const char *file;
    uint64_t offset, bytes;
};

/* A growable byte string; oom set once an allocation failed. */
struct audit_buf {
    char *p;
    size_t len, cap;
    int oom;
};
void audit_buf_put(struct audit_buf *b, const void *p, size_t n);
void audit_buf_free(struct audit_buf *b);

/* The members of r after seq and prev, up to the hash (A4, A5), each
 * preceded by a comma; ncuts > 0 adds the member of A9. RW_EINPUT for what
 * cannot be written (see audit_append). */
int audit_body_format(const struct audit_rec *r, const struct audit_cut *cuts, size_t ncuts,
                      struct audit_buf *out, char *err) RW_WUR;
/* The whole line of record seq after prev, body from audit_body_format, with
 * its hash member and '\n'; hex gets the record's hash. */
int audit_line_assemble(uint64_t seq, const char *prev, const char *body, size_t bodylen,
                        struct audit_buf *out, char hex[AUDIT_HEXSZ]);

/* The hash a line claims (its last member) and the one its bytes give (A3),
 * line without its '\n'. -1 when the line does not end in a hash member. */
int audit_line_hashes(const char *line, size_t len, char claimed[AUDIT_HEXSZ],
                      char actual[AUDIT_HEXSZ]);

/* A parsed line: rec's strings, points and params point into memory p
 * owns until audit_parsed_free. */
struct audit_parsed {
    struct audit_rec rec;
    struct audit_cut *cuts; /* A9: the torn lines this record says a crash left */
    size_t ncuts;
    void *json;        /* the jansson document */
    void **owned;      /* decoded strings and arrays */
    size_t nowned, capowned;
};
/* Parse one line (without its '\n') per A2, A4, A5: RW_ECORRUPT with a
 * message saying what is wrong. The hash member is read, not checked
 * (audit_line_hashes does that). p needs audit_parsed_free either way. */
int audit_line_parse(const char *line, size_t len, struct audit_parsed *p, char *err) RW_WUR;
void audit_parsed_free(struct audit_parsed *p);

/* SHA-256 of the concatenation of a and b, as hex. */
void audit_sha256_hex2(const void *a, size_t alen, const void *b, size_t blen,
                       char hex[AUDIT_HEXSZ]);

/* The number of a file name made with AUDIT_NAME_FMT, or 0. */
uint64_t audit_name_number(const char *name);
/* The numbers of DIR/audit's files in order, in *nums (malloc'd, caller
 * frees). RW_EINPUT when the directory is missing. */
int audit_files(const char *auditdir, uint64_t **nums, size_t *n, char *err) RW_WUR;

/* Reads a file line by line with a bounded buffer. */
struct audit_lines {
    int fd;
    char *buf;
    size_t len, pos, cap;
    uint64_t off;     /* file offset of buf[0] */
    int eof, skipping;
};
enum { AUDIT_LINE = 1, AUDIT_LONG = 2, AUDIT_TORN = 3 };
void audit_lines_init(struct audit_lines *lr, int fd);
void audit_lines_free(struct audit_lines *lr);
/* The next line, without its '\n': AUDIT_LINE; AUDIT_LONG for a line over
 * AUDIT_LINE_MAX (its first bytes, the rest is skipped); AUDIT_TORN for
 * bytes at the end without a '\n' (wait, when the writer may be at it, then
 * call again: more may have come); 0 at the end; RW_EIO/RW_ENOMEM. *off is
 * the line's offset. */
int audit_lines_next(struct audit_lines *lr, const char **line, size_t *len, uint64_t *off,
                     char *err);

/* The end of a file: its last complete line and the bytes after it that
 * have no '\n' (torn). RW_ECORRUPT when either is longer than a record can
 * be. t needs audit_tail_free either way. */
struct audit_tail {
    char *buf;
    const char *line;      /* NULL: no complete line */
    size_t line_len;
    uint64_t line_off;
    uint64_t torn_off, torn_len; /* torn_len 0: the file ends with '\n' */
    uint64_t size;
};
int audit_tail_read(const char *path, struct audit_tail *t, char *err) RW_WUR;
void audit_tail_free(struct audit_tail *t);
/* The seq and hash of t's last line, which must parse and match its hash;
 * name is the file's, for messages. */
int audit_tail_head(const char *name, const struct audit_tail *t, uint64_t *seq,
                    char hex[AUDIT_HEXSZ], char *err) RW_WUR;

#endif
