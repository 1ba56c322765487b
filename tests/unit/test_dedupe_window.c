/* Dedupe windows against a real redis-server: one alert per key per
 * window, the window does not slide, and Redis going away is reported
 * (the service then falls back to local windows) and recovered from. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "fixture.h"
#include "window.h"

static int setup(void **state)
{
    static struct fixture_redis fx;
    *state = &fx;
    return fixture_redis_up(&fx);
}

static int teardown(void **state)
{
    fixture_redis_down(*state);
    return 0;
}

static int open_window(struct fixture_redis *fx, const char *key, int ms, const char *id)
{
    int opened = -1;
    assert_int_equal(dd_window_open(fx->r, key, ms, id, &opened), VG_OK);
    return opened;
}

static void first_sighting_alerts_then_suppressed(void **state)
{
    struct fixture_redis *fx = *state;
    assert_int_equal(open_window(fx, "t:cam:person", 2000, "a1"), 1);
    assert_int_equal(open_window(fx, "t:cam:person", 2000, "a2"), 0);
    assert_int_equal(open_window(fx, "t:cam:person", 2000, "a3"), 0);
    /* Other keys are independent. */
    assert_int_equal(open_window(fx, "t:cam:pet", 2000, "b1"), 1);
    assert_int_equal(open_window(fx, "t:cam2:person", 2000, "c1"), 1);
}

static void window_expires_and_does_not_slide(void **state)
{
    struct fixture_redis *fx = *state;
    assert_int_equal(open_window(fx, "t:slide", 400, "a1"), 1);
    vg_sleep_us(250000);
    assert_int_equal(open_window(fx, "t:slide", 400, "a2"), 0); /* suppressed at 250 ms */
    vg_sleep_us(250000);
    /* 500 ms after the first: a sliding window would still be closed (until 650). */
    assert_int_equal(open_window(fx, "t:slide", 400, "a3"), 1);
}

static void abandon_only_own_window(void **state)
{
    struct fixture_redis *fx = *state;
    assert_int_equal(open_window(fx, "t:ab", 5000, "mine"), 1);
    assert_int_equal(dd_window_abandon(fx->r, "t:ab", "other"), VG_OK);
    assert_int_equal(open_window(fx, "t:ab", 5000, "x"), 0);
    assert_int_equal(dd_window_abandon(fx->r, "t:ab", "mine"), VG_OK);
    assert_int_equal(open_window(fx, "t:ab", 5000, "y"), 1);
}

static void redis_down_is_reported_and_recovers(void **state)
{
    struct fixture_redis *fx = *state;
    int opened = 0;
    fixture_stop(fx->redis);
    vg_status st = dd_window_open(fx->r, "t:down", 1000, "a", &opened);
    assert_int_equal(st, VG_ERR_UNAVAILABLE);
    assert_non_null(strstr(vg_err_detail(), "redis"));
    /* Calls in the next second fail fast instead of hanging on connect. */
    int64_t t0 = vg_mono_us();
    assert_int_equal(dd_window_open(fx->r, "t:down", 1000, "a", &opened), VG_ERR_UNAVAILABLE);
    assert_true(vg_mono_us() - t0 < 100000);
    fx->redis = fixture_redis_start(fx->port);
    vg_sleep_us(1100000);
    assert_int_equal(open_window(fx, "t:down", 1000, "b"), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_sighting_alerts_then_suppressed),
        cmocka_unit_test(window_expires_and_does_not_slide),
        cmocka_unit_test(abandon_only_own_window),
        cmocka_unit_test(redis_down_is_reported_and_recovers),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
