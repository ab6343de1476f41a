/* rw.h -- shared utilities for every rewind module: status codes, error
 * buffers, time and size parsing, logging. No protocol knowledge lives here. */
#ifndef RW_H
#define RW_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define RW_ERRSZ 512

/* Status codes. 0 is success; every failure is negative and comes with a
 * message in the caller's err[RW_ERRSZ]. RW_EINPUT means the caller's input
 * was bad (CLI exit 2, HTTP 400); everything else is a runtime failure. */
enum {
    RW_OK = 0,
    RW_EINPUT = -1,   /* bad user input: filter, time, file, parameter */
    RW_EIO = -2,      /* I/O error on the archive or a file */
    RW_ENOMEM = -3,
    RW_ECORRUPT = -4, /* bytes read from the archive are not what we wrote */
    RW_EDB = -5,      /* RocksDB reported an error */
    RW_EBUSY = -6,    /* archive is owned by another writer */
    RW_ESTATE = -7,   /* operation not possible in this state */
    RW_ENOSPC = -8,   /* disk full */
    RW_ESTOP = -9,    /* stopped by the caller (client went away, signal) */
    RW_ENOTFOUND = -10, /* what was asked for does not exist (HTTP 404) */
};

#define RW_WUR __attribute__((warn_unused_result))
#define RW_PRINTF(a, b) __attribute__((format(printf, a, b)))

/* Write a message into err (size RW_ERRSZ) and return code. */
int rw_err(char *err, int code, const char *fmt, ...) RW_PRINTF(3, 4);

/* Prefix an existing message with context: "ctx: old message". Returns code,
 * so callers write `return rw_errctx(err, rc, "segment %s", path);`. */
int rw_errctx(char *err, int code, const char *fmt, ...) RW_PRINTF(3, 4);

/* Time. Times are int64 nanoseconds since the Unix epoch. */
#define RW_NS_PER_SEC 1000000000LL
#define RW_TIME_MIN INT64_MIN
#define RW_TIME_MAX INT64_MAX

int64_t rw_now_ns(void);
int64_t rw_mono_ns(void);

/* Parse a time: RFC 3339 ("2024-05-01T14:00:00Z", "...+02:00", fraction
 * allowed, 'T' or ' '), Unix seconds with an optional fraction
 * ("1700000000.25"), "now", or relative to now ("-15m", "-2h30m", "-1d",
 * "-90s", "-500ms"). Returns 0 or RW_EINPUT with a message. */
int rw_time_parse(const char *s, int64_t now_ns, int64_t *out_ns, char *err) RW_WUR;

/* Format ns as RFC 3339 UTC with nanoseconds: buf needs 40 bytes. */
char *rw_time_fmt(int64_t ns, char *buf, size_t bufsz);
/* "between A and B", "after A" (b is INT64_MAX), "before B" (a is
 * INT64_MIN) or "" (both): when something happened that lies between two
 * known times. Returns buf; 112 bytes hold any. */
char *rw_span_fmt(int64_t a, int64_t b, char *buf, size_t bufsz);

/* Parse a duration ("60", "60s", "10m", "2h", "7d", "500ms") to ns. */
int rw_duration_parse(const char *s, int64_t *out_ns, char *err) RW_WUR;

/* Parse a size ("256M", "1.5G", "4096", "2T", "64k"; binary units). */
int rw_size_parse(const char *s, uint64_t *out, char *err) RW_WUR;

/* Human-readable size ("1.2 GiB") into buf. */
char *rw_size_fmt(uint64_t n, char *buf, size_t bufsz);

/* A capture point name is 1..64 chars of [A-Za-z0-9._-], not starting with
 * '.'; it names a directory under segments/. */
int rw_point_name_ok(const char *name);

/* Logging to stderr with an RFC 3339 timestamp and level. Library modules do
 * not log; only cli/ and the daemon's threads do. */
void rw_log(const char *level, const char *fmt, ...) RW_PRINTF(2, 3);
#define rw_info(...) rw_log("info", __VA_ARGS__)
#define rw_warn(...) rw_log("warn", __VA_ARGS__)
#define rw_error(...) rw_log("error", __VA_ARGS__)

/* Big-endian helpers for keys and on-disk records. */
static inline void rw_put_be16(uint8_t *p, uint16_t v) { p[0] = v >> 8; p[1] = v; }
static inline void rw_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = v >> 24; p[1] = v >> 16; p[2] = v >> 8; p[3] = v;
}
static inline void rw_put_be64(uint8_t *p, uint64_t v)
{
    rw_put_be32(p, (uint32_t)(v >> 32));
    rw_put_be32(p + 4, (uint32_t)v);
}
static inline uint16_t rw_get_be16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static inline uint32_t rw_get_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t rw_get_be64(const uint8_t *p)
{
    return (uint64_t)rw_get_be32(p) << 32 | rw_get_be32(p + 4);
}

/* Major 2, minor 4 as two host-order 16-bit fields, as one 32-bit word. */
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
#define RW_PCAP_VERSION ((2u << 16) | 4u)
#else
#define RW_PCAP_VERSION (2u | (4u << 16))
#endif

/* Little-endian varints (LEB128) for compact on-disk arrays. */
size_t rw_varint_put(uint8_t *p, uint64_t v);
/* Returns bytes consumed, or 0 if the input is truncated or over-long. */
size_t rw_varint_get(const uint8_t *p, size_t n, uint64_t *v);

/* Write all of buf to fd, retrying on EINTR and short writes; -1 on error. */
int rw_write_all(int fd, const void *buf, size_t n);

/* fsync() the directory dir, so that entries created or renamed in it are
 * durable; -1 with errno set on error. */
int rw_fsync_dir(const char *dir);

/* A user as the audit trail and holds name it: "NAME (uid N)", or "uid N"
 * when the user has no name. */
void rw_user_name(unsigned uid, char *out, size_t n);

/* The value of the hex digit c, or -1. */
int rw_hexval(int c);

#endif
