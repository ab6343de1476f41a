/* test_ffilter.c -- the flow filter and Community ID checks of analytics/:
 * which words are refused, and what a flow matches (BPF's meaning, on the
 * flow's key, in either direction it has packets). */
#include <arpa/inet.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "analytics/analytics.h"

static struct an_flow flow4(const char *src, int sport, const char *dst, int dport, int proto,
                            int vlan, int fwd, int rev)
{
    struct an_flow f;
    memset(&f, 0, sizeof f);
    f.family = 4;
    f.proto = (uint8_t)proto;
    inet_pton(AF_INET, src, f.src);
    inet_pton(AF_INET, dst, f.dst);
    f.sport = (uint16_t)sport;
    f.dport = (uint16_t)dport;
    f.vlan = (uint16_t)vlan;
    f.pkts_fwd = (uint64_t)fwd;
    f.pkts_rev = (uint64_t)rev;
    return f;
}

static int matches(const char *expr, const struct an_flow *f)
{
    char err[RW_ERRSZ];
    an_ffilter_t *ff;
    assert_int_equal(an_ffilter_new(expr, &ff, err), 0);
    int m = an_ffilter_match(ff, f);
    an_ffilter_free(ff);
    return m;
}

static void test_refused(void **state)
{
    static const char *const bad[] = {"len > 100", "tcp[13] & 2 != 0", "ether host 1:2:3:4:5:6",
                                      "greater 100", "host example.org", "broadcast",
                                      "port 80 and", "net 10.0.0.0/33", NULL};
    (void)state;
    for (const char *const *b = bad; *b; b++) {
        char err[RW_ERRSZ] = "";
        an_ffilter_t *ff = NULL;
        assert_int_equal(an_ffilter_new(*b, &ff, err), RW_EINPUT);
        assert_null(ff);
        assert_true(err[0] != 0);
    }
}

static void test_match(void **state)
{
    (void)state;
    struct an_flow f = flow4("10.0.0.1", 40000, "192.0.2.7", 25, 6, 0, 3, 2);
    assert_true(matches("host 192.0.2.7", &f));
    assert_true(matches("port 25", &f));
    assert_true(matches("tcp and net 10.0.0.0/8", &f));
    assert_true(matches("src host 192.0.2.7", &f)); /* the reverse direction has packets */
    assert_false(matches("udp", &f));
    assert_false(matches("host 192.0.2.8", &f));
    assert_false(matches("vlan", &f));
    assert_true(matches("portrange 20-30 and not port 80", &f));
    assert_true(matches("ip proto 6", &f));
    /* One way only: src host of the receiver does not match. */
    struct an_flow one = flow4("10.0.0.1", 40000, "192.0.2.7", 25, 6, 0, 3, 0);
    assert_false(matches("src host 192.0.2.7", &one));
    assert_true(matches("dst host 192.0.2.7", &one));
    /* A tagged flow needs 'vlan', as in tcpdump. */
    struct an_flow tagged = flow4("10.0.0.1", 1, "10.0.0.2", 2, 17, 100, 1, 1);
    assert_false(matches("udp", &tagged));
    assert_true(matches("vlan 100 and udp", &tagged));
    assert_false(matches("vlan 101 and udp", &tagged));
    /* ICMP: the reverse of an echo request is an echo reply. */
    struct an_flow ping = flow4("10.0.0.1", 8, "10.0.0.2", 0, 1, 0, 1, 1);
    assert_true(matches("icmp and src host 10.0.0.2", &ping));
    assert_true(matches("icmp", &ping));
}

static void test_cid_valid(void **state)
{
    (void)state;
    assert_true(an_cid_valid("1:LQU9qZlK+B5F3KDmev6m5PMibrg="));
    assert_false(an_cid_valid("1:LQU9qZlK+B5F3KDmev6m5PMibrg"));
    assert_false(an_cid_valid("2:LQU9qZlK+B5F3KDmev6m5PMibrg="));
    assert_false(an_cid_valid("1:LQU9qZlK B5F3KDmev6m5PMibrg="));
    assert_false(an_cid_valid(""));
}

static void test_parse_words(void **state)
{
    char err[RW_ERRSZ];
    enum an_sort s;
    enum an_by by;
    enum an_metric m;
    enum an_format f;
    (void)state;
    assert_int_equal(an_sort_parse("duration", &s, err), 0);
    assert_int_equal(s, AN_SORT_DURATION);
    assert_int_equal(an_sort_parse("size", &s, err), RW_EINPUT);
    assert_non_null(strstr(err, "size"));
    assert_int_equal(an_by_parse("pair", &by, err), 0);
    assert_int_equal(by, AN_BY_PAIR);
    assert_int_equal(an_by_parse("mac", &by, err), RW_EINPUT);
    assert_int_equal(an_metric_parse("packets", &m, err), 0);
    assert_int_equal(an_metric_parse("flows", &m, err), RW_EINPUT);
    assert_int_equal(an_format_parse(NULL, &f, err), 0);
    assert_int_equal(f, AN_JSON);
    assert_int_equal(an_format_parse("xml", &f, err), RW_EINPUT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_refused),
        cmocka_unit_test(test_match),
        cmocka_unit_test(test_cid_valid),
        cmocka_unit_test(test_parse_words),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
