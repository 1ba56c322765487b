/* Full-jitter backoff: every delay lies in [0, min(cap, base * 2^attempt)],
 * the ceiling never overflows, and the delays are actually spread out. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "backoff.h"

static void test_ceiling(void **state)
{
    assert_int_equal(ntf_backoff_ceiling_ms(200, 30000, 0), 200);
    assert_int_equal(ntf_backoff_ceiling_ms(200, 30000, 1), 400);
    assert_int_equal(ntf_backoff_ceiling_ms(200, 30000, 4), 3200);
    assert_int_equal(ntf_backoff_ceiling_ms(200, 30000, 8), 30000);
    assert_int_equal(ntf_backoff_ceiling_ms(200, 30000, 1000), 30000);  /* no overflow */
    assert_int_equal(ntf_backoff_ceiling_ms(0x7fffffff, 0x7fffffff, 64), 0x7fffffff);
    assert_int_equal(ntf_backoff_ceiling_ms(200, 30000, -3), 200);
    assert_int_equal(ntf_backoff_ceiling_ms(0, 30000, 3), 0);
}

static void test_bounds(void **state)
{
    struct ntf_backoff b;
    ntf_backoff_init(&b, 12345);
    for (int attempt = 0; attempt < 40; attempt++) {
        int64_t ceiling = ntf_backoff_ceiling_ms(100, 5000, attempt);
        for (int i = 0; i < 2000; i++) {
            int64_t d = ntf_backoff_delay_ms(&b, 100, 5000, attempt);
            assert_true(d >= 0);
            assert_true(d <= ceiling);
        }
    }
    assert_int_equal(ntf_backoff_delay_ms(&b, 0, 5000, 3), 0);
}

/* Jitter must spread retries over the whole range, not cluster at the top. */
static void test_spread(void **state)
{
    struct ntf_backoff b;
    int low = 0, high = 0;
    int64_t min = INT64_MAX, max = -1;
    ntf_backoff_init(&b, 0);
    for (int i = 0; i < 10000; i++) {
        int64_t d = ntf_backoff_delay_ms(&b, 1000, 30000, 3);   /* ceiling 8000 */
        low += d < 4000;
        high += d >= 4000;
        min = d < min ? d : min;
        max = d > max ? d : max;
    }
    assert_true(low > 4000 && high > 4000);
    assert_true(min < 100);
    assert_true(max > 7900);
}

static void test_seeded_is_repeatable(void **state)
{
    struct ntf_backoff a, b;
    ntf_backoff_init(&a, 99);
    ntf_backoff_init(&b, 99);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ntf_backoff_delay_ms(&a, 50, 10000, i % 10),
                         ntf_backoff_delay_ms(&b, 50, 10000, i % 10));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling),
        cmocka_unit_test(test_bounds),
        cmocka_unit_test(test_spread),
        cmocka_unit_test(test_seeded_is_repeatable),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
