/* test_pacer.c -- unit tests for the pacing of capture/replay.c: deadlines of each pace, rounds, clock steps, and the wait. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <signal.h>

#include "capture/cap.h"
#include "common/rw.h"

#define MS 1000000LL
#define T0 (1714572000LL * RW_NS_PER_SEC) /* a recorded time */
#define NOW (5000 * MS)                  /* a monotonic clock reading */

/* Recorded gaps are kept, whatever the clock reads when asked: deadlines
 * are absolute from the first packet's, so a late caller does not drift. */
static void test_recorded(void **state)
{
    (void)state;
    struct cap_pacer p;
    cap_pacer_init(&p, CAP_PACE_RECORDED, 1);
    assert_int_equal(cap_pacer_next(&p, T0, 100, NOW), NOW);
    assert_int_equal(cap_pacer_next(&p, T0 + 10 * MS, 100, NOW + 50 * MS), NOW + 10 * MS);
    assert_int_equal(cap_pacer_next(&p, T0 + 25 * MS, 100, NOW + 60 * MS), NOW + 25 * MS);
    /* The clock stepped backwards: no gap, then gaps from the new times. */
    assert_int_equal(cap_pacer_next(&p, T0 + 5 * MS, 100, NOW), NOW + 25 * MS);
    assert_int_equal(cap_pacer_next(&p, T0 + 7 * MS, 100, NOW), NOW + 27 * MS);
    /* A new round follows at once. */
    cap_pacer_round(&p);
    assert_int_equal(cap_pacer_next(&p, T0, 100, NOW + 900 * MS), NOW + 27 * MS);
    assert_int_equal(cap_pacer_next(&p, T0 + 10 * MS, 100, NOW), NOW + 37 * MS);
}

static void test_speed(void **state)
{
    (void)state;
    struct cap_pacer p;
    cap_pacer_init(&p, CAP_PACE_RECORDED, 4);
    assert_int_equal(cap_pacer_next(&p, T0, 1, NOW), NOW);
    assert_int_equal(cap_pacer_next(&p, T0 + 100 * MS, 1, NOW), NOW + 25 * MS);
    /* Nanosecond gaps, a million of them, add up without rounding drift. */
    cap_pacer_init(&p, CAP_PACE_RECORDED, 3);
    int64_t due = 0;
    for (int64_t i = 0; i <= 1000000; i++)
        due = cap_pacer_next(&p, T0 + i * 1001, 1, NOW);
    assert_true(due - NOW >= 1001000000LL / 3 - 1 && due - NOW <= 1001000000LL / 3);
}

/* A fixed rate: a packet leaves once the previous one's time is over. */
static void test_rates(void **state)
{
    (void)state;
    struct cap_pacer p;
    cap_pacer_init(&p, CAP_PACE_MBPS, 8); /* 1 byte per microsecond */
    assert_int_equal(cap_pacer_next(&p, T0, 1000, NOW), NOW);
    assert_int_equal(cap_pacer_next(&p, T0 - 5 * MS, 500, NOW), NOW + 1 * MS);
    assert_int_equal(cap_pacer_next(&p, T0 + 99 * MS, 60, NOW), NOW + 1 * MS + MS / 2);
    cap_pacer_round(&p); /* a rate goes on across rounds */
    assert_int_equal(cap_pacer_next(&p, T0, 60, NOW), NOW + 1 * MS + MS / 2 + 60000);
    cap_pacer_init(&p, CAP_PACE_PPS, 1000);
    for (int i = 0; i < 10; i++)
        assert_int_equal(cap_pacer_next(&p, T0 + (10 - i) * MS, 1514, NOW + 3 * MS),
                         NOW + 3 * MS + i * MS);
    cap_pacer_init(&p, CAP_PACE_TOP, 0);
    assert_int_equal(cap_pacer_next(&p, T0, 1514, NOW), NOW);
    assert_int_equal(cap_pacer_next(&p, T0 + 1000 * MS, 1514, NOW + 7), NOW + 7);
}

static void test_wait(void **state)
{
    (void)state;
    volatile sig_atomic_t stop = 0;
    int64_t t = rw_mono_ns(), due = t + 3 * MS;
    assert_int_equal(cap_wait_until(due, &stop), 0);
    assert_true(rw_mono_ns() >= due);
    assert_int_equal(cap_wait_until(t - MS, NULL), 0); /* already past */
    stop = 1;
    assert_int_equal(cap_wait_until(rw_mono_ns() + 1000 * MS, &stop), RW_ESTOP);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded),
        cmocka_unit_test(test_speed),
        cmocka_unit_test(test_rates),
        cmocka_unit_test(test_wait),
    };
    return cmocka_run_group_tests_name("capture/pacer", tests, NULL, NULL);
}
