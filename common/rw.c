/* rw.c -- shared utilities: error buffers, time/size parsing, logging. */
#include "common/rw.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

int rw_err(char *err, int code, const char *fmt, ...)
{
    va_list ap;
    if (err) {
        va_start(ap, fmt);
        vsnprintf(err, RW_ERRSZ, fmt, ap);
        va_end(ap);
    }
    return code;
}

int rw_errctx(char *err, int code, const char *fmt, ...)
{
    char ctx[RW_ERRSZ], joined[2 * RW_ERRSZ + 2];
    va_list ap;
    if (!err)
        return code;
    va_start(ap, fmt);
    vsnprintf(ctx, sizeof ctx, fmt, ap);
    va_end(ap);
    snprintf(joined, sizeof joined, "%s: %s", ctx, err);
    memcpy(err, joined, RW_ERRSZ - 1);
    err[RW_ERRSZ - 1] = 0;
    return code;
}

int64_t rw_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * RW_NS_PER_SEC + ts.tv_nsec;
}

int64_t rw_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * RW_NS_PER_SEC + ts.tv_nsec;
}

/* Parse up to 9 fraction digits after a '.', as nanoseconds. */
static const char *parse_frac(const char *p, int64_t *ns)
{
    int64_t v = 0;
    int n = 0;
    *ns = 0;
    if (*p != '.')
        return p;
    p++;
    if (!isdigit((unsigned char)*p))
        return NULL;
    while (isdigit((unsigned char)*p)) {
        if (n < 9) {
            v = v * 10 + (*p - '0');
            n++;
        }
        p++;
    }
    while (n++ < 9)
        v *= 10;
    *ns = v;
    return p;
}

static int parse_digits(const char **pp, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)(*pp)[i]))
            return -1;
        v = v * 10 + ((*pp)[i] - '0');
    }
    *pp += n;
    *out = v;
    return 0;
}

/* Days since 1970-01-01 of a proleptic Gregorian date (no timegm/TZ games). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static int parse_rfc3339(const char *s, int64_t *out, char *err)
{
    const char *p = s;
    int Y, M, D, h, m, sec = 0, oh = 0, om = 0, sign = 0;
    int64_t frac = 0;
    static const int mdays[] = {31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (parse_digits(&p, 4, &Y) || *p++ != '-' || parse_digits(&p, 2, &M) || *p++ != '-' ||
        parse_digits(&p, 2, &D))
        goto bad;
    if (*p == 0) {
        h = m = 0;
        goto zone;
    }
    if (*p != 'T' && *p != 't' && *p != ' ')
        goto bad;
    p++;
    if (parse_digits(&p, 2, &h) || *p++ != ':' || parse_digits(&p, 2, &m))
        goto bad;
    if (*p == ':') {
        p++;
        if (parse_digits(&p, 2, &sec))
            goto bad;
        if (!(p = parse_frac(p, &frac)))
            goto bad;
    }
zone:
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        sign = *p++ == '-' ? -1 : 1;
        if (parse_digits(&p, 2, &oh))
            goto bad;
        if (*p == ':')
            p++;
        if (parse_digits(&p, 2, &om))
            goto bad;
    } else if (*p != 0) {
        goto bad;
    }
    if (*p != 0)
        goto bad;
    int leap = (Y % 4 == 0 && Y % 100 != 0) || Y % 400 == 0;
    if (M < 1 || M > 12 || D < 1 || D > mdays[M - 1] || (M == 2 && D == 29 && !leap) || h > 23 || m > 59 || sec > 60 || oh > 23 ||
        om > 59)
        return rw_err(err, RW_EINPUT, "time '%s': field out of range", s);
    int64_t days = days_from_civil(Y, M, D);
    int64_t secs = days * 86400 + h * 3600 + m * 60 + sec - sign * (oh * 3600 + om * 60);
    /* int64 nanoseconds reach 1677-09-21 .. 2262-04-11: refuse rather
     * than wrap (year 9999 would come back as some time in 1815). */
    if (__builtin_mul_overflow(secs, RW_NS_PER_SEC, out) || __builtin_add_overflow(*out, frac, out))
        return rw_err(err, RW_EINPUT, "time '%s': out of range (before 1677 or after 2262)", s);
    return 0;
bad:
    return rw_err(err, RW_EINPUT,
                  "time '%s': expected RFC 3339 (2024-05-01T14:00:00Z), Unix seconds "
                  "(1714572000.5), 'now' or a relative time (-15m)",
                  s);
}

/* Sum of NUMBER UNIT pairs ("2h30m", "500ms", "90"); bare number = seconds. */
static int parse_dur_units(const char *s, int64_t *out)
{
    const char *p = s;
    int64_t total = 0;
    if (!*p)
        return -1;
    while (*p) {
        char *end;
        double v;
        int64_t mult = RW_NS_PER_SEC;
        if (!isdigit((unsigned char)*p) && *p != '.')
            return -1;
        errno = 0;
        v = strtod(p, &end);
        if (end == p || errno || !isfinite(v) || v < 0)
            return -1;
        p = end;
        if (!strncmp(p, "ms", 2)) {
            mult = 1000000;
            p += 2;
        } else if (!strncmp(p, "us", 2)) {
            mult = 1000;
            p += 2;
        } else if (!strncmp(p, "ns", 2)) {
            mult = 1;
            p += 2;
        } else if (*p == 's') {
            p++;
        } else if (*p == 'm') {
            mult = 60 * RW_NS_PER_SEC;
            p++;
        } else if (*p == 'h') {
            mult = 3600 * RW_NS_PER_SEC;
            p++;
        } else if (*p == 'd') {
            mult = 86400 * RW_NS_PER_SEC;
            p++;
        } else if (*p == 'w') {
            mult = 7 * 86400 * RW_NS_PER_SEC;
            p++;
        } else if (*p != 0) {
            return -1;
        }
        if (v * (double)mult > 9.0e18)
            return -1;
        if (__builtin_add_overflow(total, (int64_t)llround(v * (double)mult), &total) ||
            total > (int64_t)9e18)
            return -1;
    }
    *out = total;
    return 0;
}

int rw_duration_parse(const char *s, int64_t *out_ns, char *err)
{
    if (!s || parse_dur_units(s, out_ns) < 0)
        return rw_err(err, RW_EINPUT, "duration '%s': expected e.g. 60s, 10m, 2h, 7d", s ? s : "");
    return 0;
}

int rw_time_parse(const char *s, int64_t now_ns, int64_t *out_ns, char *err)
{
    if (!s || !*s)
        return rw_err(err, RW_EINPUT, "time: empty value");
    if (!strcmp(s, "now")) {
        *out_ns = now_ns;
        return 0;
    }
    if (s[0] == '-' || s[0] == '+') {
        int64_t d;
        if (parse_dur_units(s + 1, &d) < 0)
            return rw_err(err, RW_EINPUT, "time '%s': bad relative time; expected e.g. -15m, -2h, -1d",
                          s);
        if (s[0] == '-' ? __builtin_sub_overflow(now_ns, d, out_ns)
                        : __builtin_add_overflow(now_ns, d, out_ns))
            return rw_err(err, RW_EINPUT, "time '%s': out of range", s);
        return 0;
    }
    /* Unix seconds: digits with an optional fraction, and nothing else. */
    const char *p = s;
    while (isdigit((unsigned char)*p))
        p++;
    if (p > s && (*p == 0 || *p == '.') && p - s <= 11) {
        int64_t secs = strtoll(s, NULL, 10), frac = 0, ns;
        const char *e = parse_frac(p, &frac);
        if (e && *e == 0) {
            /* int64 nanoseconds reach 2262-04-11: refuse rather than wrap. */
            if (__builtin_mul_overflow(secs, RW_NS_PER_SEC, &ns) ||
                __builtin_add_overflow(ns, frac, out_ns))
                return rw_err(err, RW_EINPUT, "time '%s': out of range (after year 2262)", s);
            return 0;
        }
    }
    return parse_rfc3339(s, out_ns, err);
}

char *rw_span_fmt(int64_t a, int64_t b, char *buf, size_t bufsz)
{
    char t1[48], t2[48];
    if (a != INT64_MIN && b != INT64_MAX)
        snprintf(buf, bufsz, "between %s and %s", rw_time_fmt(a, t1, sizeof t1),
                 rw_time_fmt(b, t2, sizeof t2));
    else if (a != INT64_MIN)
        snprintf(buf, bufsz, "after %s", rw_time_fmt(a, t1, sizeof t1));
    else if (b != INT64_MAX)
        snprintf(buf, bufsz, "before %s", rw_time_fmt(b, t2, sizeof t2));
    else
        snprintf(buf, bufsz, "%s", "");
    return buf;
}

char *rw_time_fmt(int64_t ns, char *buf, size_t bufsz)
{
    int64_t secs = ns / RW_NS_PER_SEC, frac = ns % RW_NS_PER_SEC;
    if (frac < 0) {
        frac += RW_NS_PER_SEC;
        secs--;
    }
    time_t t = (time_t)secs;
    struct tm tm;
    if (!gmtime_r(&t, &tm)) {
        snprintf(buf, bufsz, "%lld", (long long)ns);
        return buf;
    }
    snprintf(buf, bufsz, "%04d-%02d-%02dT%02d:%02d:%02d.%09lldZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)frac);
    return buf;
}

int rw_size_parse(const char *s, uint64_t *out, char *err)
{
    char *end;
    double v;
    uint64_t mult = 1;
    if (!s || !*s || !(isdigit((unsigned char)*s) || *s == '.'))
        goto bad;
    errno = 0;
    v = strtod(s, &end);
    if (errno || end == s || !isfinite(v) || v < 0)
        goto bad;
    switch (*end) {
    case 0: break;
    case 'k': case 'K': mult = 1ULL << 10; end++; break;
    case 'm': case 'M': mult = 1ULL << 20; end++; break;
    case 'g': case 'G': mult = 1ULL << 30; end++; break;
    case 't': case 'T': mult = 1ULL << 40; end++; break;
    default: goto bad;
    }
    if (*end == 'i')
        end++;
    if (*end == 'B' || *end == 'b')
        end++;
    if (*end || v * (double)mult > 1.8e19)
        goto bad;
    *out = (uint64_t)(v * (double)mult);
    return 0;
bad:
    return rw_err(err, RW_EINPUT, "size '%s': expected a number with an optional k, M, G or T suffix",
                  s ? s : "");
}

char *rw_size_fmt(uint64_t n, char *buf, size_t bufsz)
{
    static const char *units[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
    double v = (double)n;
    int u = 0;
    while (v >= 1024 && u < 5) {
        v /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(buf, bufsz, "%llu B", (unsigned long long)n);
    else
        snprintf(buf, bufsz, "%.1f %s", v, units[u]);
    return buf;
}

int rw_point_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n > 64 || name[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!isalnum(c) && c != '.' && c != '_' && c != '-')
            return 0;
    }
    return 1;
}

void rw_log(const char *level, const char *fmt, ...)
{
    char ts[48], msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One event, one line: a filter or file name from a client cannot
     * break it up, nor forge a line of its own. */
    for (char *p = msg; *p; p++)
        if ((unsigned char)*p < ' ' || *p == 0x7f)
            *p = ' ';
    rw_time_fmt(rw_now_ns(), ts, sizeof ts);
    /* Milliseconds are plenty in a log line. */
    memmove(ts + 23, ts + 29, strlen(ts + 29) + 1);
    fprintf(stderr, "%s %s %s\n", ts, level, msg);
}

size_t rw_varint_put(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    while (v >= 0x80) {
        p[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    p[n++] = (uint8_t)v;
    return n;
}

size_t rw_varint_get(const uint8_t *p, size_t n, uint64_t *v)
{
    uint64_t r = 0;
    for (size_t i = 0; i < n && i < 10; i++) {
        /* The 10th byte holds bit 63 only: anything more would not fit. */
        if (i == 9 && p[i] > 1)
            return 0;
        r |= (uint64_t)(p[i] & 0x7f) << (7 * i);
        if (!(p[i] & 0x80)) {
            *v = r;
            return i + 1;
        }
    }
    return 0;
}

int rw_fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    int e = errno;
    close(fd);
    errno = e;
    return rc;
}

int rw_write_all(int fd, const void *buf, size_t n)
{
    const char *p = buf;
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int rw_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

void rw_user_name(unsigned uid, char *out, size_t n)
{
    struct passwd pw, *pp = NULL;
    char buf[1024];
    if (getpwuid_r((uid_t)uid, &pw, buf, sizeof buf, &pp) == 0 && pp)
        snprintf(out, n, "%.64s (uid %u)", pp->pw_name, uid);
    else
        snprintf(out, n, "uid %u", uid);
}
