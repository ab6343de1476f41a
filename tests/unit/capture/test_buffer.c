/* test_buffer.c -- unit tests for cap_buffer_parse (capture/live.c): rewindd
 * --buffer-size takes a size with a unit, or KiB as tcpdump -B does, within
 * CAP_BUFFER_MIN..CAP_BUFFER_MAX, and says what it expects otherwise. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "capture/cap.h"

static void test_sizes(void **state)
{
    (void)state;
    static const struct {
        const char *in;
        uint64_t want;
    } ok[] = {
        {"64M", 64ULL << 20},   {"16M", 16ULL << 20}, {"1G", 1ULL << 30},   {"2G", 2ULL << 30},
        {"65536", 64ULL << 20}, {"1024", 1ULL << 20}, {"1.5M", 3ULL << 19}, {"16MiB", 16ULL << 20},
        {"4096k", 4ULL << 20},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char err[RW_ERRSZ] = "";
        uint64_t v = 0;
        if (cap_buffer_parse(ok[i].in, &v, err) != 0)
            fail_msg("'%s' refused: %s", ok[i].in, err);
        if (v != ok[i].want)
            fail_msg("'%s' gave %llu, want %llu", ok[i].in, (unsigned long long)v,
                     (unsigned long long)ok[i].want);
    }
}

static void test_refused(void **state)
{
    (void)state;
    static const struct {
        const char *in, *says;
    } bad[] = {
        {"", "expected a size"},      {"abc", "expected a size"}, {"12q", "expected a size"},
        {"-5M", "expected a size"},   {"100", "from 1M to 2G"},   {"512k", "from 1M to 2G"},
        {"3G", "from 1M to 2G"},      {"0", "from 1M to 2G"},
        {"99999999999999999999", "expected a size"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char err[RW_ERRSZ] = "";
        uint64_t v = 7;
        int rc = cap_buffer_parse(bad[i].in, &v, err);
        if (rc != RW_EINPUT)
            fail_msg("'%s' gave %d, want RW_EINPUT", bad[i].in, rc);
        if (!strstr(err, bad[i].says) || !strstr(err, "--buffer-size"))
            fail_msg("'%s': message '%s' does not say '%s'", bad[i].in, err, bad[i].says);
        if (v != 7)
            fail_msg("'%s' changed the value on failure", bad[i].in);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
