/* test_web.c -- unit tests for httpd/web.c: which paths below the web root
 * a request may name (plain segments only), and the unescaping that never
 * decodes %00. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "httpd/httpd_int.h"

static void test_web_path_ok(void **state)
{
    (void)state;
    static const char *const ok[] = {"index.html", "console.js", "vendor/chart.min.js",
                                     "a/b/c.css", "x-y_z.1.svg", "A9"};
    static const char *const bad[] = {
        "",          ".",           "..",          "../index.html", "vendor/../index.html",
        "a/./b.js",  ".hidden.js",  "vendor/.x",   "/etc/passwd",   "a//b.js",
        "vendor/",   "console.js/", "a b.js",      "a%2e.js",       "a\\b.js",
        "x\n.js",   "caf\xc3\xa9.js", "a:b.js", "~root",         "a?b",
        "a#b",       "*.js",
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (!hd_web_path_ok(ok[i]))
            fail_msg("'%s' refused", ok[i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (hd_web_path_ok(bad[i]))
            fail_msg("'%s' accepted", bad[i]);
    char longp[400];
    memset(longp, 'a', sizeof longp - 1);
    longp[sizeof longp - 1] = 0;
    assert_false(hd_web_path_ok(longp));
}

static void test_unescape(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } cases[] = {
        {"/ui/%2e%2e/x", "/ui/../x"},     {"%41%62c", "Abc"},          {"a%00b", "a%00b"},
        {"%00", "%00"},                   {"%2", "%2"},                {"%zz%4", "%zz%4"},
        {"port%2080", "port 80"},         {"%25", "%"},                {"%2525", "%25"},
        {"a+b", "a+b"},                   {"", ""},                    {"%c3%a9", "\xc3\xa9"},
        {"%0a", "\n"},                    {"x%", "x%"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[64];
        snprintf(buf, sizeof buf, "%s", cases[i].in);
        size_t n = hd_unescape(NULL, NULL, buf);
        if (strcmp(buf, cases[i].out) || n != strlen(cases[i].out))
            fail_msg("'%s' -> '%s' (%zu), want '%s'", cases[i].in, buf, n, cases[i].out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_web_path_ok),
        cmocka_unit_test(test_unescape),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
