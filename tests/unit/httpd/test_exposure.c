/* test_exposure.c -- unit tests for httpd_check_opts (httpd/httpd.h): which
 * listen addresses are loopback, and that a listener beyond loopback needs
 * TLS and tokens both. No file is read unless the rule lets it through. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "common/rw.h"
#include "httpd/httpd.h"

static int tokens_yes(void *arg)
{
    (void)arg;
    return 1;
}

static int tokens_no(void *arg)
{
    (void)arg;
    return 0;
}

/* Loopback: no TLS, no tokens needed. */
static void test_loopback_open(void **state)
{
    (void)state;
    static const char *const ok[] = {"127.0.0.1:8800", "127.1.2.3:80", ":8800", "[::1]:8800",
                                     "[::ffff:127.0.0.1]:8800", "127.255.255.254:1"};
    char err[RW_ERRSZ];
    int failed = 0;
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        struct httpd_opts o = {.listen = ok[i]};
        if (httpd_check_opts(&o, err) != 0) {
            print_error("%s refused: %s\n", ok[i], err);
            failed++;
        }
    }
    struct httpd_opts dflt = {0}; /* the default, 127.0.0.1:8800 */
    if (httpd_check_opts(&dflt, err) != 0) {
        print_error("the default listen address refused: %s\n", err);
        failed++;
    }
    assert_int_equal(failed, 0);
}

/* Beyond loopback: refused without TLS (tokens or not), refused with TLS
 * and no tokens, and let through to the TLS files with both (which do not
 * exist here: the error is then about the file, not the address). */
static void test_beyond_loopback(void **state)
{
    (void)state;
    static const char *const addrs[] = {"0.0.0.0:8800", "192.0.2.7:8800", "10.0.0.1:443",
                                        "128.0.0.1:80", "126.255.255.255:80", "[::]:8800",
                                        "[2001:db8::7]:8800", "[::ffff:10.0.0.1]:80",
                                        "[::2]:8800"};
    static const struct {
        const char *cert, *key;
        int (*tokens)(void *);
        const char *want; /* in the message */
    } cases[] = {
        {NULL, NULL, NULL, "needs TLS (--tls-cert, --tls-key) and tokens (rewind token add)"},
        {NULL, NULL, tokens_yes, "needs TLS (--tls-cert, --tls-key) and tokens"},
        {"/nonexistent/c.pem", NULL, tokens_yes, "needs TLS (--tls-cert, --tls-key)"},
        {"/nonexistent/c.pem", "/nonexistent/k.pem", NULL, "needs tokens (rewind token add)"},
        {"/nonexistent/c.pem", "/nonexistent/k.pem", tokens_no, "and none is defined"},
        {"/nonexistent/c.pem", "/nonexistent/k.pem", tokens_yes,
         "--tls-cert /nonexistent/c.pem: No such file or directory"},
    };
    char err[RW_ERRSZ], head[160];
    int failed = 0;
    for (size_t a = 0; a < sizeof addrs / sizeof addrs[0]; a++) {
        for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
            struct httpd_opts o = {.listen = addrs[a], .tls_cert = cases[i].cert,
                                   .tls_key = cases[i].key, .have_tokens = cases[i].tokens};
            int rc = httpd_check_opts(&o, err);
            snprintf(head, sizeof head, "--listen %s is not loopback: ", addrs[a]);
            int exposure = strncmp(cases[i].want, "--tls-cert", 10) != 0;
            if (rc != RW_EINPUT || !strstr(err, cases[i].want) ||
                (exposure && strncmp(err, head, strlen(head)))) {
                print_error("%s, case %zu: rc %d, '%s'; expected '%s'\n", addrs[a], i, rc, err,
                            cases[i].want);
                failed++;
            }
        }
    }
    assert_int_equal(failed, 0);
}

/* TLS options that do not go together, on loopback. */
static void test_tls_option_pairs(void **state)
{
    (void)state;
    static const struct {
        const char *cert, *key, *ca, *want;
    } cases[] = {
        {"c.pem", NULL, NULL, "--tls-cert needs --tls-key too"},
        {NULL, "k.pem", NULL, "--tls-key needs --tls-cert too"},
        {NULL, NULL, "ca.pem", "--tls-client-ca needs --tls-cert and --tls-key"},
    };
    char err[RW_ERRSZ];
    int failed = 0;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct httpd_opts o = {.tls_cert = cases[i].cert, .tls_key = cases[i].key,
                               .tls_client_ca = cases[i].ca};
        int rc = httpd_check_opts(&o, err);
        if (rc != RW_EINPUT || !strstr(err, cases[i].want)) {
            print_error("case %zu: rc %d, '%s'; expected '%s'\n", i, rc, err, cases[i].want);
            failed++;
        }
    }
    assert_int_equal(failed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_loopback_open),
        cmocka_unit_test(test_beyond_loopback),
        cmocka_unit_test(test_tls_option_pairs),
    };
    return cmocka_run_group_tests_name("httpd/exposure", tests, NULL, NULL);
}
