/* test_guard.c -- unit tests for httpd/guard.c: UTF-8 judged as JSON needs
 * it, the raw request URI's check (bad UTF-8 and %00 in the path, a name or
 * a value, the message naming which), and header values bounded. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "httpd/httpd_int.h"

static size_t pfx(const char *s) { return hd_utf8_prefix((const unsigned char *)s, strlen(s)); }

static void test_utf8(void **state)
{
    (void)state;
    static const struct {
        const char *s;
        size_t valid;
    } cases[] = {
        {"", 0},
        {"port 25", 7},
        {"caf\xc3\xa9", 5},
        {"\xe2\x82\xac", 3},         /* U+20AC */
        {"\xf0\x9f\x98\x80", 4},     /* U+1F600 */
        {"\xff", 0},
        {"a\x80", 1},                /* a lone continuation */
        {"\xc3", 0},                 /* cut short */
        {"\xc3\x28", 0},
        {"\xc0\xaf", 0},             /* overlong '/' */
        {"\xe0\x80\xaf", 0},         /* overlong, three bytes */
        {"\xed\xa0\x80", 0},         /* U+D800, a surrogate */
        {"\xf4\x90\x80\x80", 0},     /* beyond U+10FFFF */
        {"\xf5\x80\x80\x80", 0},
        {"ok\xe2\x82", 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        if (pfx(cases[i].s) != cases[i].valid)
            fail_msg("case %zu: %zu, not %zu", i, pfx(cases[i].s), cases[i].valid);
    char s[] = "a\xff" "b\xc3";
    hd_utf8_clean(s);
    assert_string_equal(s, "a?b?");
}

static void test_raw_uri(void **state)
{
    (void)state;
    static const struct {
        const char *uri;
        const char *want; /* words of the message; NULL: nothing wrong */
    } cases[] = {
        {"/api/v1/packets", NULL},
        {"/api/v1/packets?filter=port%2025&from=-5m", NULL},
        {"/api/v1/packets?filter=caf%C3%A9", NULL},
        {"/api/v1/packets?filter=%", NULL},      /* a broken escape stays as it is */
        {"/api/v1/packets?filter=%zz%4", NULL},
        {"/api/v1/packets?a&&b=&=c", NULL},
        {"/api/v1/packets?filter=%ff", "parameter 'filter': its value is not valid UTF-8"},
        {"/api/v1/packets?from=1&filter=port%2025%00%20and%20host%209.9.9.9",
         "parameter 'filter': its value contains a NUL byte (%00)"},
        {"/api/v1/packets?limit=1%00", "parameter 'limit': its value contains a NUL"},
        {"/api/v1/packets?%ff=1", "a parameter name ('%ff') is not valid UTF-8"},
        {"/api/v1/packets?x%00y", "a parameter name ('x%00y') contains a NUL"},
        {"/api/v1/pa%ffckets", "the path is not valid UTF-8"},
        {"/api/v1/pa%00ckets?filter=x", "the path contains a NUL"},
        {"/api/v1/packets?filter=\xff", "parameter 'filter': its value is not valid UTF-8"},
        {"/api/v1/packets?fil%74er=%c0%af", "parameter 'filter'"}, /* a name decoded */
    };
    char msg[160];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        int rc = hd_raw_uri_check(cases[i].uri, msg, sizeof msg);
        if (rc != (cases[i].want != NULL) || (cases[i].want && !strstr(msg, cases[i].want)))
            fail_msg("case %zu (%s): %d '%s'", i, cases[i].uri, rc, msg);
        if (rc && pfx(msg) != strlen(msg))
            fail_msg("case %zu: the message is not UTF-8", i);
    }
}

static void test_bounded_value(void **state)
{
    (void)state;
    char out[HD_ECHO_MAX + 96], big[30000];
    hd_bounded_value("port 25", HD_ECHO_MAX, out, sizeof out);
    assert_string_equal(out, "port 25");
    /* A control character never reaches a header line. */
    hd_bounded_value("port 25\r\nX-Evil: 1", HD_ECHO_MAX, out, sizeof out);
    assert_null(strchr(out, '\r'));
    assert_null(strchr(out, '\n'));
    assert_non_null(strstr(out, "(18 bytes, sha256 "));
    memset(big, 'p', sizeof big - 1);
    big[sizeof big - 1] = 0;
    hd_bounded_value(big, HD_ECHO_MAX, out, sizeof out);
    assert_true(strlen(out) < HD_ECHO_MAX + 96);
    assert_non_null(strstr(out, "... (29999 bytes, sha256 "));
    /* Cut between characters, never inside one. */
    for (size_t i = 0; i + 2 < sizeof big; i += 2)
        memcpy(big + i, "\xc3\xa9", 2);
    big[sizeof big - 2] = 0;
    hd_bounded_value(big, HD_ECHO_MAX, out, sizeof out);
    assert_int_equal(pfx(out), strlen(out));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_utf8),
        cmocka_unit_test(test_raw_uri),
        cmocka_unit_test(test_bounded_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
