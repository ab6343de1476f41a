/* test_reasm.c -- unit tests for analytics/reasm.c: order, retransmission,
 * overlap (first copy wins), wrap, gaps, SYN/FIN/RST, mid-way starts, bounds. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analytics/reasm.h"

/* What a direction handed on: bytes, with each gap written as {GAP n}. */
struct got {
    char buf[1 << 16];
    size_t n;
    int ends, rst;
    uint64_t gaps, missing;
};

static int on_data(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    struct got *g = arg;
    (void)ts;
    assert_true(g->n + n < sizeof g->buf);
    memcpy(g->buf + g->n, p, n);
    g->n += n;
    g->buf[g->n] = 0;
    return 0;
}

static int on_gap(void *arg, uint64_t len, int64_t ts)
{
    struct got *g = arg;
    (void)ts;
    g->n += (size_t)snprintf(g->buf + g->n, sizeof g->buf - g->n, "{GAP %llu}",
                             (unsigned long long)len);
    g->gaps++;
    g->missing += len;
    return 0;
}

static void on_end(void *arg, int rst, int64_t ts)
{
    struct got *g = arg;
    (void)ts;
    g->ends++;
    g->rst = rst;
}

static rsm_dir_t *dir_new(struct got *g, struct rsm_pool *pool, size_t max)
{
    struct rsm_sink s = {on_data, on_gap, on_end, g};
    memset(g, 0, sizeof *g);
    rsm_dir_t *d = rsm_dir_new(&s, pool, max);
    assert_non_null(d);
    return d;
}

static void seg(rsm_dir_t *d, uint32_t seq, int flags, const char *s)
{
    rsm_segment(d, seq, flags, (const uint8_t *)s, strlen(s), 0);
}

static void test_in_order(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 1000, RSM_SYN, "");
    seg(d, 1001, 0, "hello ");
    seg(d, 1007, 0, "world");
    seg(d, 1012, RSM_FIN, "");
    assert_string_equal(g.buf, "hello world");
    assert_int_equal(g.ends, 1);
    assert_int_equal(g.rst, 0);
    struct rsm_stats st;
    rsm_stats(d, &st);
    assert_int_equal(st.midstream, 0);
    assert_int_equal(st.delivered, 11);
    rsm_dir_free(d);
}

static void test_out_of_order(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 99, RSM_SYN, "");
    seg(d, 110, 0, "CCC");
    seg(d, 105, 0, "BBBBB");
    assert_string_equal(g.buf, "");
    seg(d, 100, 0, "AAAAA");
    assert_string_equal(g.buf, "AAAAABBBBBCCC");
    rsm_end(d, 0);
    assert_int_equal(g.gaps, 0);
    assert_int_equal(g.ends, 1);
    rsm_dir_free(d);
}

/* Retransmissions are dropped; where copies differ the first one captured
 * wins, as Wireshark's default does. */
static void test_overlap_first_wins(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0, RSM_SYN, "");
    seg(d, 1, 0, "abcd");
    seg(d, 1, 0, "XXXX");       /* a retransmission that differs: dropped */
    seg(d, 9, 0, "ijkl");       /* buffered */
    seg(d, 7, 0, "YYYYYY");     /* covers 7..12: only 7,8 are new */
    seg(d, 5, 0, "ef");
    assert_string_equal(g.buf, "abcdefYYijkl");
    struct rsm_stats st;
    rsm_stats(d, &st);
    assert_int_equal(st.retransmitted, 8);
    rsm_dir_free(d);
}

/* An in-order segment that runs over bytes held out of order: the held
 * (first) copy wins there too. */
static void test_in_order_over_piece(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0, RSM_SYN, "");
    seg(d, 3, 0, "cd");
    seg(d, 1, 0, "abXXef");
    assert_string_equal(g.buf, "abcdef");
    rsm_dir_free(d);
}

static void test_overlap_inside_piece(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0, RSM_SYN, "");
    seg(d, 5, 0, "55");
    seg(d, 9, 0, "99");
    seg(d, 3, 0, "3XXXXXXXXX"); /* 3..12: keeps 3,4,7,8,11,12 */
    seg(d, 1, 0, "12");
    assert_string_equal(g.buf, "123X55XX99XX"); /* the first copies of 5,6 and 9,10 stay */
    rsm_dir_free(d);
}

static void test_wrap(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0xfffffffa, RSM_SYN, "");
    seg(d, 0xfffffffb, 0, "abc");
    seg(d, 0x00000001, 0, "ghi"); /* after the wrap, before the bytes at the top */
    seg(d, 0xfffffffe, 0, "def");
    seg(d, 0x00000004, RSM_FIN, "");
    assert_string_equal(g.buf, "abcdefghi");
    assert_int_equal(g.ends, 1);
    rsm_dir_free(d);
}

static void test_gap_reported(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0, RSM_SYN, "");
    seg(d, 1, 0, "aaaa");
    seg(d, 15, 0, "zz"); /* bytes 5..14 never come */
    seg(d, 17, RSM_FIN, "");
    assert_string_equal(g.buf, "aaaa");
    assert_int_equal(g.ends, 0);
    rsm_end(d, 0);
    assert_string_equal(g.buf, "aaaa{GAP 10}zz");
    assert_int_equal(g.missing, 10);
    assert_int_equal(g.ends, 1);
    rsm_dir_free(d);
}

/* Bytes missing before a FIN: a gap up to it, nothing invented after. */
static void test_gap_before_fin(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0, RSM_SYN, "");
    seg(d, 1, 0, "ab");
    seg(d, 10, RSM_FIN, "");
    rsm_end(d, 0);
    assert_string_equal(g.buf, "ab{GAP 7}");
    rsm_dir_free(d);
}

static void test_midstream(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    rsm_segment(d, 5000, 0, NULL, 0, 0); /* a bare ACK anchors nothing */
    seg(d, 7000, 0, "later");
    seg(d, 6990, 0, "0123456789"); /* before the first byte seen: old */
    seg(d, 7005, 0, "!");
    assert_string_equal(g.buf, "later!");
    struct rsm_stats st;
    rsm_stats(d, &st);
    assert_int_equal(st.midstream, 1);
    assert_int_equal(st.syn, 0);
    rsm_dir_free(d);
}

static void test_rst(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0, RSM_SYN, "");
    seg(d, 1, 0, "ab");
    seg(d, 6, 0, "fg");
    seg(d, 8, RSM_RST, "");
    assert_string_equal(g.buf, "ab{GAP 3}fg");
    assert_int_equal(g.ends, 1);
    assert_int_equal(g.rst, 1);
    seg(d, 3, 0, "cde"); /* too late: the direction ended */
    assert_string_equal(g.buf, "ab{GAP 3}fg");
    rsm_dir_free(d);
}

/* A FIN's segment may carry data; bytes after FIN are not part of the stream. */
static void test_fin_with_data(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 0);
    seg(d, 0, RSM_SYN, "");
    seg(d, 4, RSM_FIN, "def");
    seg(d, 1, 0, "abc");
    assert_string_equal(g.buf, "abcdef");
    assert_int_equal(g.ends, 1);
    rsm_dir_free(d);
}

/* Per direction: beyond max waiting bytes the oldest hole gives way. */
static void test_bound_per_direction(void **state)
{
    (void)state;
    struct got g;
    rsm_dir_t *d = dir_new(&g, NULL, 8);
    seg(d, 0, RSM_SYN, "");
    seg(d, 11, 0, "AAAA"); /* hole 1..10 */
    seg(d, 21, 0, "BBBB"); /* hole 15..20 */
    struct rsm_stats st;
    rsm_stats(d, &st);
    assert_int_equal(st.buffered, 8);
    seg(d, 31, 0, "CCCC"); /* over 8: the first hole goes */
    assert_string_equal(g.buf, "{GAP 10}AAAA");
    rsm_stats(d, &st);
    assert_true(st.buffered <= 8);
    seg(d, 15, 0, "......"); /* fills the second hole at last */
    assert_string_equal(g.buf, "{GAP 10}AAAA......BBBB");
    rsm_dir_free(d);
}

/* Across directions: the pool's limit holds too. */
static void test_bound_pool(void **state)
{
    (void)state;
    struct rsm_pool pool = {0, 16};
    struct got g1, g2;
    rsm_dir_t *a = dir_new(&g1, &pool, 0), *b = dir_new(&g2, &pool, 0);
    char big[13];
    memset(big, 'x', 12);
    big[12] = 0;
    seg(a, 0, RSM_SYN, "");
    seg(b, 0, RSM_SYN, "");
    seg(a, 3, 0, big);
    assert_int_equal(pool.used, 12);
    seg(b, 3, 0, big); /* b holds nothing to give up and a's bytes stay: refused */
    assert_true(pool.used <= 16);
    seg(b, 1, 0, "ab"); /* b's own hole is filled: the rest is a gap, never invented */
    rsm_end(b, 0);
    assert_string_equal(g2.buf, "ab{GAP 12}");
    seg(a, 1, 0, "cd");
    assert_string_equal(g1.buf, "cdxxxxxxxxxxxx");
    assert_int_equal(pool.used, 0);
    rsm_dir_free(a);
    rsm_dir_free(b);
}

/* A stream much longer than the buffer, delivered out of order in pairs:
 * in-order bytes are never held, so memory stays small. */
static void test_long_stream_bounded(void **state)
{
    (void)state;
    struct rsm_pool pool = {0, 1 << 16};
    struct rsm_sink s = {NULL, NULL, NULL, NULL};
    rsm_dir_t *d = rsm_dir_new(&s, &pool, 1 << 14);
    uint8_t chunk[1400];
    memset(chunk, 'q', sizeof chunk);
    uint32_t seq = 0xfff00000u; /* wraps on the way */
    rsm_segment(d, seq, RSM_SYN, NULL, 0, 0);
    seq++;
    size_t peak = 0;
    for (int i = 0; i < 100000; i += 2) { /* 140 MB */
        rsm_segment(d, seq + 1400, 0, chunk, 1400, 0);
        if (pool.used > peak)
            peak = pool.used;
        rsm_segment(d, seq, 0, chunk, 1400, 0);
        seq += 2800;
    }
    struct rsm_stats st;
    rsm_stats(d, &st);
    assert_int_equal(st.delivered, 100000ull * 1400);
    assert_int_equal(st.missing, 0);
    assert_true(peak <= 1400);
    rsm_dir_free(d);
}

/* A sink that stops the direction: nothing more is delivered. */
static int stop_data(void *arg, const uint8_t *p, size_t n, int64_t ts)
{
    (void)p;
    (void)ts;
    *(size_t *)arg += n;
    return 1;
}

static void test_sink_stops(void **state)
{
    (void)state;
    size_t n = 0;
    struct rsm_sink s = {stop_data, NULL, NULL, &n};
    rsm_dir_t *d = rsm_dir_new(&s, NULL, 0);
    rsm_segment(d, 0, RSM_SYN, NULL, 0, 0);
    rsm_segment(d, 5, 0, (const uint8_t *)"later", 5, 0);
    rsm_segment(d, 1, 0, (const uint8_t *)"abcd", 4, 0);
    assert_int_equal(n, 4);
    assert_true(rsm_stopped(d));
    rsm_segment(d, 10, 0, (const uint8_t *)"x", 1, 0);
    assert_int_equal(n, 4);
    rsm_dir_free(d);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_in_order),
        cmocka_unit_test(test_out_of_order),
        cmocka_unit_test(test_overlap_first_wins),
        cmocka_unit_test(test_overlap_inside_piece),
        cmocka_unit_test(test_in_order_over_piece),
        cmocka_unit_test(test_wrap),
        cmocka_unit_test(test_gap_reported),
        cmocka_unit_test(test_gap_before_fin),
        cmocka_unit_test(test_midstream),
        cmocka_unit_test(test_rst),
        cmocka_unit_test(test_fin_with_data),
        cmocka_unit_test(test_bound_per_direction),
        cmocka_unit_test(test_bound_pool),
        cmocka_unit_test(test_long_stream_bounded),
        cmocka_unit_test(test_sink_stops),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
