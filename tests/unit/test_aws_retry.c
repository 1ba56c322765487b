/* The AWS retry policy: what is retried, backoff bounds, the retry budget
 * and the client-side token buckets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "aws/retry.h"
#include "timeutil.h"

static void classification(void **state)
{
    assert_true(vg_aws_retry_is_throttle(400, "ThrottlingException"));
    assert_true(vg_aws_retry_is_throttle(400, "ProvisionedThroughputExceededException"));
    assert_true(vg_aws_retry_is_throttle(429, ""));
    assert_true(vg_aws_retry_is_retryable(503, "SlowDown"));
    assert_true(vg_aws_retry_is_retryable(500, "InternalServerError"));
    assert_true(vg_aws_retry_is_retryable(400, "ExpiredTokenException"));
    assert_false(vg_aws_retry_is_retryable(400, "InvalidParameterException"));
    assert_false(vg_aws_retry_is_retryable(403, "AccessDeniedException"));
    assert_false(vg_aws_retry_is_retryable(404, "ResourceNotFoundException"));
}

static void full_jitter_bounds(void **state)
{
    int64_t max_seen = 0;
    for (int i = 0; i < 2000; i++) {
        int64_t d = vg_aws_retry_delay_ms(100, 20000, 3);
        assert_true(d >= 0 && d <= 800);
        if (d > max_seen)
            max_seen = d;
        assert_true(vg_aws_retry_delay_ms(100, 20000, 30) <= 20000);
    }
    assert_true(max_seen > 400); /* spread over the whole range, not clustered */
}

static void budget_stops_retry_storms(void **state)
{
    struct vg_aws_retry r;
    vg_aws_retry_init(&r);
    int granted = 0;
    while (vg_aws_retry_acquire(&r, 0))
        granted++;
    assert_int_equal(granted, VG_AWS_RETRY_QUOTA / VG_AWS_RETRY_COST);
    vg_aws_retry_success(&r, 1);             /* a retried success refunds its cost */
    assert_true(vg_aws_retry_acquire(&r, 0));
    assert_false(vg_aws_retry_acquire(&r, 0));
    vg_aws_retry_cleanup(&r);
}

static void token_bucket_paces_calls(void **state)
{
    struct vg_aws_retry r;
    vg_aws_retry_init(&r);
    assert_int_equal(vg_aws_retry_set_rate(&r, "rekognition.DetectLabels", 20, 2), VG_OK);
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < 6; i++)
        assert_int_equal(vg_aws_retry_take_rate(&r, "rekognition.DetectLabels", 5000), VG_OK);
    int64_t took = vg_mono_us() - t0;
    /* 2 from the burst, 4 more at 20/s: about 200 ms. */
    assert_true(took >= 180000 && took < 3000000);
    /* Other APIs are not limited. */
    t0 = vg_mono_us();
    for (int i = 0; i < 100; i++)
        assert_int_equal(vg_aws_retry_take_rate(&r, "s3.PutObject", 0), VG_OK);
    assert_true(vg_mono_us() - t0 < 1000000);
    /* No token within the timeout: throttled, not a hang. */
    assert_int_equal(vg_aws_retry_set_rate(&r, "slow", 0.1, 1), VG_OK);
    assert_int_equal(vg_aws_retry_take_rate(&r, "slow", 100), VG_OK);
    assert_int_equal(vg_aws_retry_take_rate(&r, "slow", 100), VG_ERR_THROTTLED);
    assert_int_equal(vg_aws_retry_set_rate(&r, "bad", 0, 1), VG_ERR_INVALID);
    vg_aws_retry_cleanup(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(classification),
        cmocka_unit_test(full_jitter_bounds),
        cmocka_unit_test(budget_stops_retry_storms),
        cmocka_unit_test(token_bucket_paces_calls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
