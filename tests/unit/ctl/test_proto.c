/* test_proto.c -- unit tests for ctl/: the query request codec, status fields on the wire, and the server on a real Unix socket answering the client half. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#define _XOPEN_SOURCE_EXTENDED 1
#include <ftw.h>
#include <limits.h>
#include <pcap/pcap.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "archive/archive.h"
#include "common/rw.h"
#include "ctl/ctl.h"
#include "ctl/ctl_int.h"
#include "query/read.h"

#define S RW_NS_PER_SEC
#define T0 (1714572000LL * S)

/* ---- the query request codec ---- */

/* A filter or point name as parsed: NULL and "" both mean none. */
static const char *nz(const char *s) { return s && *s ? s : NULL; }

/* The request line must be one line of printable ASCII fields. */
static void check_line(const char *line, size_t len, int nfields)
{
    int tabs = 0;
    assert_int_equal(strlen(line), len);
    assert_true(len < CTL_MAX_REQ);
    assert_int_equal(line[len - 1], '\n');
    for (size_t i = 0; i + 1 < len; i++) {
        unsigned char c = (unsigned char)line[i];
        if (c == '\t')
            tabs++;
        else if (c <= ' ' || c >= 0x7f)
            fail_msg("byte %zu of the request is 0x%02x, not escaped: %s", i, c, line);
    }
    assert_int_equal(tabs, nfields);
}

static void roundtrip(const struct ctl_query *in)
{
    char err[RW_ERRSZ] = "";
    size_t len = 0;
    int npts = 0;
    while (in->spec.points && in->spec.points[npts])
        npts++;
    char *line = ctl_query_format(in, &len);
    assert_non_null(line);
    check_line(line, len, 5 + npts + (nz(in->spec.filter) != NULL));
    line[len - 1] = 0; /* parsed without its '\n' */
    struct ctl_query out;
    int rc = ctl_query_parse(line, &out, err);
    if (rc != 0)
        fail_msg("ctl_query_parse: %d %s", rc, err);
    assert_true(out.spec.from == in->spec.from);
    assert_true(out.spec.to == in->spec.to);
    assert_true(out.spec.limit_packets == in->spec.limit_packets);
    assert_int_equal(out.format, in->format);
    assert_int_equal(out.count, in->count);
    if (nz(in->spec.filter))
        assert_string_equal(out.spec.filter, in->spec.filter);
    else
        assert_null(nz(out.spec.filter));
    if (npts == 0) {
        assert_null(out.spec.points);
    } else {
        assert_non_null(out.spec.points);
        for (int i = 0; i < npts; i++) {
            assert_non_null(out.spec.points[i]);
            assert_string_equal(out.spec.points[i], in->spec.points[i]);
        }
        assert_null(out.spec.points[npts]);
    }
    free(line);
}

static void test_query_roundtrip(void **state)
{
    (void)state;
    static char many_names[CTL_MAX_POINTS][24];
    static const char *many[CTL_MAX_POINTS + 1];
    for (int i = 0; i < CTL_MAX_POINTS; i++) {
        snprintf(many_names[i], sizeof many_names[i], "point-%02d", i);
        many[i] = many_names[i];
    }
    static const char *two[] = {"alpha", "beta", NULL};
    static const char *odd[] = {"tab\there", "100%", "new\nline", "\xc3\xa9t\xc3\xa9", "a=b",
                                " ", NULL};
    static const struct {
        int64_t from, to;
        uint64_t limit;
        int format, count;
        const char *filter;
        const char **points;
    } cases[] = {
        {T0, T0 + S, 0, QRY_PCAP, 0, NULL, NULL},
        {T0, T0 + 1, 10, QRY_PCAPNG, 0, "port 25 and host 10.0.0.1", two},
        {INT64_MIN, INT64_MAX, UINT64_MAX, QRY_PCAP, 1, "udp", NULL},
        {-5 * S, -1, 1, QRY_PCAP, 0, NULL, NULL},
        {0, 1, 0, QRY_PCAP, 1, "", NULL},
        {T0, T0 + S, 0, QRY_PCAP, 0, "tcp\tand\tport\t80", NULL},
        {T0, T0 + S, 0, QRY_PCAP, 0, "len > 100%", NULL},
        {T0, T0 + S, 0, QRY_PCAP, 0, "%41%%%00%zz%", NULL}, /* escapes are not re-read */
        {T0, T0 + S, 0, QRY_PCAP, 0, "host 10.0.0.1\nor\r\nport 53\n", NULL},
        {T0, T0 + S, 0, QRY_PCAP, 0, "\xc3\xa9\xff\x80\x7f\x01\x1f ~=", NULL},
        {T0, T0 + S, 0, QRY_PCAP, 0, "  leading and trailing spaces  ", NULL},
        {T0, T0 + S, 5, QRY_PCAPNG, 0, "tcp", odd},
        {T0, T0 + S, 0, QRY_PCAPNG, 1, NULL, many},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ctl_query q;
        memset(&q, 0, sizeof q);
        q.spec.from = cases[i].from;
        q.spec.to = cases[i].to;
        q.spec.limit_packets = cases[i].limit;
        q.spec.filter = cases[i].filter;
        q.spec.points = cases[i].points;
        q.format = cases[i].format;
        q.count = cases[i].count;
        print_message("case %zu\n", i);
        roundtrip(&q);
    }
}

/* A long filter fits while its request fits CTL_MAX_REQ, escapes included. */
static void test_query_format_limit(void **state)
{
    (void)state;
    struct ctl_query q;
    size_t len;
    memset(&q, 0, sizeof q);
    q.spec.from = T0;
    q.spec.to = T0 + S;
    char *filter = malloc(CTL_MAX_REQ);
    memset(filter, '\n', 20000); /* 60000 bytes escaped */
    filter[20000] = 0;
    q.spec.filter = filter;
    roundtrip(&q);
    memset(filter, '\n', 22000); /* 66000 bytes escaped */
    filter[22000] = 0;
    assert_null(ctl_query_format(&q, &len));
    memset(filter, 'a', CTL_MAX_REQ - 1);
    filter[CTL_MAX_REQ - 1] = 0;
    assert_null(ctl_query_format(&q, &len));
    free(filter);
}

#define Q "query\tfrom=1\tto=2"

static void test_query_parse_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *line, *msg; /* msg: in the error message */
    } cases[] = {
        {"query", "without from= and to="},
        {"query\tfrom=1", "without from= and to="},
        {"query\tto=1", "without from= and to="},
        {"query\tfilter=tcp\tlimit=5", "without from= and to="},
        {"query\tfrom=5\tto=5", "from must be before to"},
        {"query\tfrom=6\tto=5", "from must be before to"},
        {"query\tfrom=9223372036854775807\tto=-9223372036854775808", "from must be before to"},
        {"", "not a query request"},
        {"queryx\tfrom=1\tto=2", "not a query request"},
        {"status", "not a query request"},
        {" query\tfrom=1\tto=2", "not a query request"},
        {Q "\tcolour=red", "unknown field colour"},
        {Q "\tFilter=tcp", "unknown field Filter"},
        {Q "\tlimit_bytes=5", "unknown field limit_bytes"},
        {Q "\tfilter", "without '='"},
        {Q "\tformat=json", "format must be pcap or pcapng"},
        {Q "\tformat=PCAP", "format must be pcap or pcapng"},
        {Q "\tformat=", "format must be pcap or pcapng"},
        /* escapes: broken, or a NUL */
        {Q "\tfilter=%", "bad %-escape"},
        {Q "\tfilter=%4", "bad %-escape"},
        {Q "\tfilter=ab%4g", "bad %-escape"},
        {Q "\tfilter=%g4", "bad %-escape"},
        {Q "\tfilter=% 4", "bad %-escape"},
        {Q "\tfilter=%00", "bad %-escape"},
        {Q "\tfilter=tcp%00and", "bad %-escape"},
        {Q "\tpoint=a%00", "bad %-escape"},
        /* numbers: decimal digits, a '-' for from and to, nothing else */
        {"query\tfrom=+5\tto=9", "not a number"},
        {"query\tfrom= 5\tto=9", "not a number"},
        {"query\tfrom=%205\tto=9", "not a number"},
        {"query\tfrom=5%20\tto=9", "not a number"},
        {"query\tfrom=5x\tto=9", "not a number"},
        {"query\tfrom=\tto=9", "not a number"},
        {"query\tfrom=-\tto=9", "not a number"},
        {"query\tfrom=--5\tto=9", "not a number"},
        {"query\tfrom=0x5\tto=9", "not a number"},
        {"query\tfrom=1e9\tto=2e9", "not a number"},
        {"query\tfrom=1.5\tto=9", "not a number"},
        {"query\tfrom=1\tto=99999999999999999999", "not a number"},
        {"query\tfrom=-99999999999999999999\tto=1", "not a number"},
        {Q "\tlimit=-1", "not a number"},
        {Q "\tlimit=+1", "not a number"},
        {Q "\tlimit= 1", "not a number"},
        {Q "\tlimit=18446744073709551616", "not a number"},
        {Q "\tcount=-1", "not a number"},
        {Q "\tcount=yes", "not a number"},
        {Q "\tcount=", "not a number"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char line[256], err[RW_ERRSZ] = "";
        struct ctl_query r;
        snprintf(line, sizeof line, "%s", cases[i].line);
        int rc = ctl_query_parse(line, &r, err);
        if (rc != RW_EINPUT || !strstr(err, cases[i].msg))
            fail_msg("case %zu '%s': %d '%s', expected RW_EINPUT '%s'", i, cases[i].line, rc,
                     err, cases[i].msg);
    }

    /* CTL_MAX_POINTS points pass, one more does not */
    char *line = malloc(CTL_MAX_REQ), err[RW_ERRSZ] = "";
    struct ctl_query r;
    for (int extra = 0; extra <= 1; extra++) {
        size_t len = (size_t)snprintf(line, CTL_MAX_REQ, Q);
        for (int i = 0; i < CTL_MAX_POINTS + extra; i++)
            len += (size_t)snprintf(line + len, CTL_MAX_REQ - len, "\tpoint=p%d", i);
        int rc = ctl_query_parse(line, &r, err);
        if (!extra) {
            assert_int_equal(rc, 0);
            assert_string_equal(r.spec.points[CTL_MAX_POINTS - 1], "p63");
            assert_null(r.spec.points[CTL_MAX_POINTS]);
        } else {
            assert_int_equal(rc, RW_EINPUT);
            assert_non_null(strstr(err, "more than 64 points"));
        }
    }
    free(line);
}

/* ---- a point's status on the wire ---- */

static const char *point_field_names[] = {
    "name", "linktype", "segments", "open_segments", "compressed_segments", "packets",
    "captured_bytes", "wire_bytes", "pcap_bytes", "stored_bytes", "compressed_pcap_bytes",
    "compressed_stored_bytes", "first", "last", "kernel_drops", "queue_drops", "live", "paused",
    "paused_drops", "reason",
};
#define NPOINT_FIELDS (sizeof point_field_names / sizeof point_field_names[0])

/* Split a status line back into p; returns the fields seen. */
static size_t parse_point(char *line, struct qry_point_status *p, const char *kind)
{
    char err[RW_ERRSZ] = "", *save = NULL, *k, *v;
    size_t nf = 0;
    int rc;
    assert_string_equal(strtok_r(line, "\t", &save), kind);
    while ((rc = ctl_next_field(&save, "status", &k, &v, err)) == 1) {
        assert_true(nf < NPOINT_FIELDS);
        assert_string_equal(k, point_field_names[nf]); /* each once, in this order */
        nf++;
        if (ctl_get_point_field(p, k, v) != 0)
            fail_msg("field %s: value '%s' refused", k, v);
    }
    if (rc < 0)
        fail_msg("ctl_next_field: %s", err);
    return nf;
}

static void test_point_roundtrip(void **state)
{
    (void)state;
    struct qry_point_status in, out;
    memset(&in, 0, sizeof in);
    memset(&out, 0, sizeof out);
    snprintf(in.name, sizeof in.name, "tab\there, new\nline, 100%% and %%41, \xc3\xa9");
    snprintf(in.linktype, sizeof in.linktype, "DLT_\t%%\n \x7f");
    for (size_t i = 0; i + 1 < sizeof in.reason; i++) /* every byte value but NUL */
        in.reason[i] = (char)(1 + i % 255);
    in.segments = 1;
    in.open_segments = 2;
    in.compressed_segments = 3;
    in.packets = UINT64_MAX;
    in.captured_bytes = 5;
    in.wire_bytes = 6;
    in.pcap_bytes = 7;
    in.stored_bytes = 8;
    in.compressed_pcap_bytes = 9;
    in.compressed_stored_bytes = 10;
    in.first = INT64_MIN;
    in.last = INT64_MAX;
    in.kernel_drops = 11;
    in.queue_drops = 12;
    in.live = 1;
    in.paused = INT_MIN;
    in.paused_drops = 13;

    char *buf = malloc(CTL_MAX_REQ);
    size_t len = (size_t)snprintf(buf, CTL_MAX_REQ, "point");
    assert_int_equal(ctl_put_point(buf, CTL_MAX_REQ - 1, &len, &in), 0);
    check_line(strcat(buf, "\n"), len + 1, (int)NPOINT_FIELDS);
    buf[len] = 0;
    assert_int_equal(parse_point(buf, &out, "point"), NPOINT_FIELDS);
    assert_string_equal(out.name, in.name);
    assert_string_equal(out.linktype, in.linktype);
    assert_string_equal(out.reason, in.reason);
    assert_memory_equal(&out, &in, sizeof in);

    /* it does not fit: -1, not a cut line */
    len = 5;
    assert_int_equal(ctl_put_point(buf, 200, &len, &in), -1);
    free(buf);
}

static void test_point_field_rejects(void **state)
{
    (void)state;
    static const struct {
        const char *key, *val;
    } bad[] = {
        {"packets", "-1"},  {"packets", "+1"}, {"packets", ""},   {"packets", " 1"},
        {"packets", "1 "},  {"packets", "0x1"}, {"packets", "18446744073709551616"},
        {"first", "1.5"},   {"first", "--1"},  {"first", "+1"},  {"last", "9223372036854775808"},
        {"live", "x"},      {"live", "yes"},   {"paused", ""},   {"paused_drops", "-"},
    };
    struct qry_point_status p, before;
    memset(&p, 0x11, sizeof p);
    p.name[0] = 0;
    before = p;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (ctl_get_point_field(&p, bad[i].key, bad[i].val) != -1)
            fail_msg("%s=%s accepted", bad[i].key, bad[i].val);
    /* a field of a newer daemon: ignored */
    assert_int_equal(ctl_get_point_field(&p, "colour", "red"), 0);
    assert_int_equal(ctl_get_point_field(&p, "", ""), 0);
    assert_memory_equal(&p, &before, sizeof p);
}

/* ---- the server on a real socket ---- */

struct srv {
    char tmp[64], dir[128];
    arc_t *a;
    ctl_t *c;
    uint64_t packets; /* written */
};

static struct qry_live live_rows[] = {
    {.point = "alpha", .linktype = 1, .paused = 1, .paused_drops = 7,
     .reason = "disk full:\tno space left\n100% used"},
    {.point = "nope", .linktype = 1, .reason = "a point the archive does not have"},
};

static size_t live_fn(void *arg, struct qry_live *out, size_t max)
{
    (void)arg;
    size_t n = sizeof live_rows / sizeof live_rows[0];
    n = n < max ? n : max;
    memcpy(out, live_rows, n * sizeof *out);
    return n;
}

static void mkpkt(uint8_t *b, unsigned n, unsigned sport)
{
    memset(b, 0, n);
    static const uint8_t macs[12] = {0, 1, 2, 3, 4, 5, 0, 6, 7, 8, 9, 10};
    memcpy(b, macs, 12);
    rw_put_be16(b + 12, 0x0800);
    uint8_t *ip = b + 14;
    ip[0] = 0x45;
    rw_put_be16(ip + 2, (uint16_t)(n - 14));
    ip[8] = 64;
    ip[9] = 17;
    memcpy(ip + 12, (uint8_t[]){10, 0, 0, 1, 10, 0, 0, 2}, 8);
    rw_put_be16(ip + 20, (uint16_t)sport);
    rw_put_be16(ip + 22, 53);
    rw_put_be16(ip + 24, (uint16_t)(n - 34));
}

static int rm_cb(const char *p, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    remove(p);
    return 0;
}

static int srv_setup(void **state)
{
    struct srv *s = calloc(1, sizeof *s);
    char err[RW_ERRSZ] = "";
    struct arc_opts o;
    arc_pw_t *pw[2];
    uint8_t pkt[200];
    snprintf(s->tmp, sizeof s->tmp, "/tmp/test_proto-XXXXXX");
    if (!mkdtemp(s->tmp))
        return -1;
    snprintf(s->dir, sizeof s->dir, "%s/arch", s->tmp);
    arc_opts_default(&o);
    o.segment_ns = S;
    o.sync = 0;
    o.quota_bytes = 5ULL << 30;
    o.max_age_ns = 7 * 86400 * S;
    if (arc_open(s->dir, &o, &s->a, err) != 0 ||
        arc_pw_open(s->a, "alpha", DLT_EN10MB, 65535, &pw[0], err) != 0 ||
        arc_pw_open(s->a, "beta", DLT_EN10MB, 262144, &pw[1], err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    /* alpha: 300 packets over 3 s from source ports 1000-1006; beta: 50
     * over 8 s from port 2000 */
    for (int i = 0; i < 300; i++) {
        int64_t ts = T0 + i * (S / 100);
        mkpkt(pkt, 60 + i % 100, 1000 + (unsigned)i % 7);
        if (arc_pw_add(pw[0], (uint32_t)(ts / S), (uint32_t)(ts % S), 60 + i % 100, 1500, pkt,
                       err) != 0)
            return -1;
        if (i % 6 == 0) {
            ts += S / 200 + (int64_t)i * S / 60;
            mkpkt(pkt, 80, 2000);
            if (arc_pw_add(pw[1], (uint32_t)(ts / S), (uint32_t)(ts % S), 80, 80, pkt, err) != 0)
                return -1;
        }
    }
    s->packets = 350;
    if (arc_pw_set_drops(pw[0], 3, 4, err) != 0 || arc_pw_close(pw[0], err) != 0 ||
        arc_pw_close(pw[1], err) != 0) {
        fprintf(stderr, "setup: %s\n", err);
        return -1;
    }
    idx_flush(arc_index(s->a), 1);
    struct ctl_opts co = {.archive = s->a, .live = live_fn};
    if (ctl_start(&co, &s->c, err) != 0) {
        fprintf(stderr, "ctl_start: %s\n", err);
        return -1;
    }
    *state = s;
    return 0;
}

static int srv_teardown(void **state)
{
    struct srv *s = *state;
    ctl_stop(s->c);
    arc_close(s->a);
    nftw(s->tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(s);
    return 0;
}

static void status_equal(const struct qry_status *got, const struct qry_status *want)
{
    assert_string_equal(got->archive, want->archive);
    assert_int_equal(got->npoints, want->npoints);
    for (size_t i = 0; i < want->npoints; i++) {
        print_message("point %s: %llu packets\n", got->points[i].name,
                      (unsigned long long)got->points[i].packets);
        assert_string_equal(got->points[i].name, want->points[i].name);
        assert_string_equal(got->points[i].reason, want->points[i].reason);
        assert_memory_equal(&got->points[i], &want->points[i], sizeof want->points[i]);
    }
    assert_string_equal(got->total.name, "total");
    assert_memory_equal(&got->total, &want->total, sizeof want->total);
    assert_int_equal(got->quota_bytes, want->quota_bytes);
    assert_int_equal(got->quota_pct, want->quota_pct);
    assert_true(got->max_age_ns == want->max_age_ns);
    assert_int_equal(got->holds, want->holds);
}

static void test_server_status(void **state)
{
    struct srv *s = *state;
    char err[RW_ERRSZ] = "";
    struct qry_status local, local2, remote;
    idx_t *ix = arc_index(s->a);
    /* The index's size on disk moves while RocksDB works in the background
     * (a flush writes its table before it deletes the log): ask until the
     * daemon's answer and two local looks around it agree. */
    for (int tries = 0;; tries++) {
        assert_int_equal(qry_status_get(ix, live_fn, NULL, &local, err), 0);
        int rc = ctl_status(s->dir, &remote, err);
        if (rc != 0)
            fail_msg("ctl_status: %d %s", rc, err);
        assert_int_equal(qry_status_get(ix, live_fn, NULL, &local2, err), 0);
        if ((local.index_bytes == local2.index_bytes &&
             remote.index_bytes == local.index_bytes) ||
            tries == 50)
            break;
        qry_status_free(&local);
        qry_status_free(&local2);
        qry_status_free(&remote);
        usleep(100 * 1000);
    }

    /* what the archive holds, as the daemon and the read API see it */
    /* alpha and beta hold packets; "nope" is captured live but has stored
     * nothing yet: it is shown with zero counts */
    assert_int_equal(local.npoints, 3);
    assert_string_equal(local.points[2].name, "nope");
    assert_int_equal(local.points[2].live, 1);
    assert_int_equal(local.points[2].packets, 0);
    assert_string_equal(local.points[2].linktype, "EN10MB");
    assert_int_equal(local.total.packets, s->packets);
    assert_int_equal(local.points[0].kernel_drops, 3);
    assert_int_equal(local.points[0].live, 1);
    assert_int_equal(local.points[0].paused, 1);
    assert_string_equal(local.points[0].reason, live_rows[0].reason);
    assert_int_equal(local.points[1].live, 0);
    assert_int_equal(local.quota_bytes, 5ULL << 30);
    status_equal(&remote, &local);
    assert_int_equal(remote.index_bytes, local.index_bytes);
    assert_int_equal(local2.index_bytes, local.index_bytes);
    /* other processes change the free space of the file system */
    assert_true(remote.disk_available > 0);
    assert_in_range(remote.disk_available, local.disk_available - local.disk_available / 100,
                    local.disk_available + local.disk_available / 100);
    qry_status_free(&local);
    qry_status_free(&local2);
    qry_status_free(&remote);
}

static void test_server_holds(void **state)
{
    struct srv *s = *state;
    char err[RW_ERRSZ] = "", filter[256], reason[300];
    struct qry_hold *v;
    struct qry_status st;
    size_t n;
    uint64_t id = 0, id2 = 0;
    idx_t *ix = arc_index(s->a);
    /* 255 bytes each, every one escaped on the wire */
    memset(filter, '\t', 255);
    filter[255] = 0;
    memcpy(filter, "port 53\nand %41 \xc3\xa9", 18);
    for (int i = 0; i < 255; i++)
        reason[i] = (char)(1 + i);
    reason[255] = 0;
    int64_t before = rw_now_ns();
    int rc = ctl_hold_add(s->dir, T0, T0 + S, filter, reason, &id, err);
    if (rc != 0)
        fail_msg("ctl_hold_add: %d %s", rc, err);
    int64_t after = rw_now_ns();
    assert_true(id > 0);
    assert_int_equal(ctl_hold_add(s->dir, -S, INT64_MAX, NULL, NULL, &id2, err), 0);
    assert_true(id2 > id);
    assert_int_equal(qry_holds(ix, &v, &n, err), 0);
    assert_int_equal(n, 2);
    assert_int_equal(v[0].id, id);
    assert_true(v[0].from == T0 && v[0].to == T0 + S);
    assert_true(v[0].created >= before && v[0].created <= after);
    assert_string_equal(v[0].filter, filter);
    assert_string_equal(v[0].reason, reason);
    assert_int_equal(v[1].id, id2);
    assert_true(v[1].from == -S && v[1].to == INT64_MAX);
    assert_string_equal(v[1].filter, "");
    assert_string_equal(v[1].reason, "");
    free(v);
    assert_int_equal(ctl_status(s->dir, &st, err), 0);
    assert_int_equal(st.holds, 2);
    qry_status_free(&st);

    /* refused by the daemon, with its reason */
    uint64_t none = 0;
    assert_int_equal(ctl_hold_add(s->dir, T0, T0, NULL, NULL, &none, err), RW_EINPUT);
    assert_non_null(strstr(err, "from must be before to"));
    assert_int_equal(ctl_hold_add(s->dir, T0 + 1, T0, NULL, "r", &none, err), RW_EINPUT);
    strcat(reason, "x"); /* 256 bytes */
    assert_int_equal(ctl_hold_add(s->dir, T0, T0 + 1, NULL, reason, &none, err), RW_EINPUT);
    assert_non_null(strstr(err, "reason longer than 255 bytes"));
    assert_int_equal(none, 0);
    assert_int_equal(qry_holds(ix, &v, &n, err), 0);
    assert_int_equal(n, 2);
    free(v);

    /* release: 1, then 0 */
    assert_int_equal(ctl_hold_release(s->dir, id2, err), 1);
    assert_int_equal(ctl_hold_release(s->dir, id2, err), 0);
    assert_int_equal(ctl_hold_release(s->dir, id2 + 1000, err), 0);
    assert_int_equal(qry_holds(ix, &v, &n, err), 0);
    assert_int_equal(n, 1);
    assert_int_equal(v[0].id, id);
    free(v);
    assert_int_equal(ctl_hold_release(s->dir, id, err), 1);
    assert_int_equal(qry_holds(ix, &v, &n, err), 0);
    assert_int_equal(n, 0);
    free(v);
    assert_int_equal(ctl_status(s->dir, &st, err), 0);
    assert_int_equal(st.holds, 0);
    qry_status_free(&st);
}

static void test_server_count(void **state)
{
    struct srv *s = *state;
    char err[RW_ERRSZ] = "";
    static const char *alpha[] = {"alpha", NULL};
    static const struct {
        int64_t from, to;
        const char *filter;
        const char **points;
        uint64_t limit, want;
    } cases[] = {
        {RW_TIME_MIN, RW_TIME_MAX, NULL, NULL, 0, 350},
        {RW_TIME_MIN, RW_TIME_MAX, "udp port 1000", NULL, 0, 43},
        {RW_TIME_MIN, RW_TIME_MAX, "src port 2000 or src port 1006", NULL, 0, 50 + 42},
        {RW_TIME_MIN, RW_TIME_MAX, NULL, alpha, 0, 300},
        {T0, T0 + S, NULL, alpha, 0, 100},
        {RW_TIME_MIN, RW_TIME_MAX, NULL, NULL, 7, 7},
        {T0 + 3600 * S, RW_TIME_MAX, NULL, NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct ctl_query r;
        uint64_t got = 0;
        memset(&r, 0, sizeof r);
        r.spec.from = cases[i].from;
        r.spec.to = cases[i].to;
        r.spec.filter = cases[i].filter;
        r.spec.points = cases[i].points;
        r.spec.limit_packets = cases[i].limit;
        r.count = 1;
        int rc = ctl_ask_query(s->dir, &r, NULL, NULL, NULL, NULL, &got, err);
        if (rc != 0)
            fail_msg("case %zu: ctl_ask_query %d %s", i, rc, err);
        assert_int_equal(got, cases[i].want);
    }
    /* a filter libpcap refuses: the daemon's error, not a local fallback */
    struct ctl_query r;
    uint64_t got;
    memset(&r, 0, sizeof r);
    r.spec.from = RW_TIME_MIN;
    r.spec.to = RW_TIME_MAX;
    r.spec.filter = "port nonsense";
    r.count = 1;
    assert_int_equal(ctl_ask_query(s->dir, &r, NULL, NULL, NULL, NULL, &got, err), RW_EINPUT);
}

/* Send raw bytes (shut_wr: then close the sending side) and read the whole
 * answer until the server closes. */
static char *raw_ask(const char *dir, const char *req, size_t len, int shut_wr)
{
    int fd = ctl_connect(dir);
    assert_true(fd >= 0);
    size_t off = 0;
    while (off < len) {
        ssize_t w = send(fd, req + off, len - off, MSG_NOSIGNAL);
        if (w <= 0)
            break; /* the server may answer and close before reading it all */
        off += (size_t)w;
    }
    if (shut_wr)
        shutdown(fd, SHUT_WR);
    size_t cap = 4096, n = 0;
    char *ans = malloc(cap);
    for (;;) {
        ssize_t r = read(fd, ans + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        assert_true(n < cap - 1);
    }
    ans[n] = 0;
    close(fd);
    return ans;
}

static void test_server_bad_requests(void **state)
{
    struct srv *s = *state;
    static const struct {
        const char *req;
        int shut_wr;
        const char *msg; /* in the one error line */
    } cases[] = {
        {"frobnicate\tx=1\n", 0, "unknown request 'frobnicate'"},
        {"QUERY\tfrom=1\tto=2\n", 0, "unknown request 'QUERY'"},
        {"\n", 0, "unknown request ''"},
        {"status\tx=1\n", 0, "status takes no fields"},
        {"hold\top=add\tfrom=1\n", 0, "without from= and to="},
        {"hold\top=steal\n", 0, "op must be add or release"},
        {"hold\top=release\tid=-1\n", 0, "id is not a number"},
        {"hold\top=add\tfrom=1\tto=2\twhen=now\n", 0, "unknown field when"},
        {"query\tfrom=1\n", 0, "without from= and to="},
        {"query\tfrom=1\tto=2\tfilter=%00\n", 0, "bad %-escape"},
        {"status", 1, "request line missing, cut or longer than"},
        {"", 1, "request line missing, cut or longer than"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *ans = raw_ask(s->dir, cases[i].req, strlen(cases[i].req), cases[i].shut_wr);
        char *nl = strchr(ans, '\n');
        if (strncmp(ans, "error -1 ", 9) || !nl || nl[1] || !strstr(ans, cases[i].msg))
            fail_msg("case %zu: answer '%s', expected one line 'error -1 ...%s...'", i, ans,
                     cases[i].msg);
        free(ans);
    }

    /* a line longer than CTL_MAX_REQ: one error line, then the server hangs up */
    size_t len = CTL_MAX_REQ + 100;
    char *big = malloc(len);
    memcpy(big, "query\tfilter=", 13);
    memset(big + 13, 'a', len - 14);
    big[len - 1] = '\n';
    char *ans = raw_ask(s->dir, big, len, 0);
    char *nl = strchr(ans, '\n');
    if (strncmp(ans, "error -1 request line missing, cut or longer than 65535 bytes", 61) || !nl ||
        nl[1])
        fail_msg("over-long line: answer '%s'", ans);
    free(ans);
    free(big);

    /* and the server still answers */
    struct qry_status st;
    char err[RW_ERRSZ];
    assert_int_equal(ctl_status(s->dir, &st, err), 0);
    qry_status_free(&st);
}

/* Last of the group: stopped, the daemon is gone for every client call. */
static void test_server_stop(void **state)
{
    struct srv *s = *state;
    char err[RW_ERRSZ] = "", sock[256];
    struct stat sb;
    struct qry_status st;
    uint64_t id = 0, got = 0;
    snprintf(sock, sizeof sock, "%s/rewindd.sock", s->dir);
    assert_int_equal(stat(sock, &sb), 0);
    assert_true(S_ISSOCK(sb.st_mode));
    assert_int_equal(sb.st_mode & 0777, 0660);
    ctl_stop(s->c);
    s->c = NULL;
    assert_int_equal(stat(sock, &sb), -1);
    assert_int_equal(ctl_hold_add(s->dir, T0, T0 + S, NULL, NULL, &id, err), RW_EBUSY);
    assert_non_null(strstr(err, "rewindd.sock"));
    assert_int_equal(ctl_hold_release(s->dir, 1, err), RW_EBUSY);
    assert_int_equal(ctl_status(s->dir, &st, err), RW_EBUSY);
    struct ctl_query r;
    memset(&r, 0, sizeof r);
    r.spec.from = RW_TIME_MIN;
    r.spec.to = RW_TIME_MAX;
    r.count = 1;
    assert_int_equal(ctl_ask_query(s->dir, &r, NULL, NULL, NULL, NULL, &got, err), CTL_LOCAL);
}

/* No daemon at all: a plain directory, and a socket nobody listens on. */
static void test_no_daemon(void **state)
{
    (void)state;
    char tmp[64] = "/tmp/test_proto-XXXXXX", err[RW_ERRSZ] = "";
    uint64_t id = 0;
    assert_non_null(mkdtemp(tmp));
    assert_int_equal(ctl_hold_add(tmp, T0, T0 + S, "tcp", "r", &id, err), RW_EBUSY);
    assert_int_equal(ctl_hold_release(tmp, 1, err), RW_EBUSY);

    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s/rewindd.sock", tmp);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    close(fd); /* stale: bound, never listening */
    assert_int_equal(ctl_hold_add(tmp, T0, T0 + S, NULL, NULL, &id, err), RW_EBUSY);
    assert_int_equal(ctl_hold_release(tmp, 1, err), RW_EBUSY);
    struct qry_status st;
    assert_int_equal(ctl_status(tmp, &st, err), RW_EBUSY);
    assert_int_equal(id, 0);
    nftw(tmp, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
    const struct CMUnitTest codec[] = {
        cmocka_unit_test(test_query_roundtrip),
        cmocka_unit_test(test_query_format_limit),
        cmocka_unit_test(test_query_parse_rejects),
        cmocka_unit_test(test_point_roundtrip),
        cmocka_unit_test(test_point_field_rejects),
        cmocka_unit_test(test_no_daemon),
    };
    const struct CMUnitTest server[] = {
        cmocka_unit_test(test_server_status),
        cmocka_unit_test(test_server_holds),
        cmocka_unit_test(test_server_count),
        cmocka_unit_test(test_server_bad_requests),
        cmocka_unit_test(test_server_stop), /* last: stops the server */
    };
    int failed = cmocka_run_group_tests_name("ctl/proto", codec, NULL, NULL);
    failed += cmocka_run_group_tests_name("ctl/server", server, srv_setup, srv_teardown);
    return failed;
}
