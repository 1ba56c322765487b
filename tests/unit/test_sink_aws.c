/* What the AWS sinks share (lib/sink/sink_aws.c): the endpoint key's rule,
 * each AWS attempt's share of the sink's timeout (the client's backoff
 * ceilings taken out), and the verdict on what fails after the client's own
 * retries. The sinks against AWS fakes: tests/integration/test_sink_aws.py
 * and test_sink_kinesis.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "sink/sink_aws.h"

static void assert_normalised(const char *in, const char *want)
{
    char out[VG_URL_MAX + 16];
    vg_sink_aws_endpoint_normalise(in, out, sizeof(out));
    if (strcmp(out, want))
        fail_msg("normalise(\"%s\") = \"%s\", want \"%s\"", in, out, want);
}

static void assert_endpoint_refused(const char *e)
{
    if (vg_sink_aws_endpoint_check(e, "f:1: sink s") != VG_ERR_CONFIG)
        fail_msg("endpoint \"%s\" accepted", e);
    if (!strstr(vg_err_detail(), "f:1: sink s: endpoint") ||
        !strstr(vg_err_detail(), "without a path"))
        fail_msg("endpoint \"%s\": error \"%s\"", e, vg_err_detail());
}

static void test_endpoint_normalised(void **state)
{
    (void)state;
    assert_normalised("", "");
    assert_normalised("sns.eu-west-1.amazonaws.com", "https://sns.eu-west-1.amazonaws.com");
    assert_normalised("http://127.0.0.1:4566/", "http://127.0.0.1:4566");
    assert_normalised("https://h//", "https://h");
}

static void test_endpoint_checked(void **state)
{
    (void)state;
    const char *ok[] = {"", "http://127.0.0.1:4567", "https://h.example/", "h.example",
                        "xxxx-ats.iot.eu-west-1.amazonaws.com", "http://[::1]:4567"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
        if (vg_sink_aws_endpoint_check(ok[i], "w") != VG_OK)
            fail_msg("endpoint \"%s\" refused: %s", ok[i], vg_err_detail());
    assert_endpoint_refused("ftp://h");
    assert_endpoint_refused("http://");
    assert_endpoint_refused("https:///");
    assert_endpoint_refused("http://h/path");
    assert_endpoint_refused("h/path");
    assert_endpoint_refused("https://h?x=1");
    assert_endpoint_refused("https://user@h");
    assert_endpoint_refused("https://h x");
}

static void test_attempt_share(void **state)
{
    (void)state;
    /* 3 attempts: backoff ceilings 100 + 200 ms before the 2nd and 3rd. */
    assert_int_equal(vg_sink_aws_attempt_ms(10000, 3), (10000 - 300) / 3);
    assert_int_equal(vg_sink_aws_attempt_ms(5000, 3), (5000 - 300) / 3);
    assert_int_equal(vg_sink_aws_attempt_ms(10000, 0), (10000 - 300) / 3);   /* default */
    assert_int_equal(vg_sink_aws_attempt_ms(10000, 1), 10000);
    /* 100 .. 12800 (25500), then 20000 (the cap) twice: 65500. */
    assert_int_equal(vg_sink_aws_attempt_ms(100000, 11), (100000 - 65500) / 11);
    /* Never below the floor, even when the backoff alone is longer. */
    assert_int_equal(vg_sink_aws_attempt_ms(2000, 3), VG_SINK_AWS_ATTEMPT_MIN_MS);
    assert_int_equal(vg_sink_aws_attempt_ms(60000, 20), VG_SINK_AWS_ATTEMPT_MIN_MS);
}

static void test_verdicts(void **state)
{
    (void)state;
    const struct { vg_status st; const char *code; enum vg_sink_verdict want; } cases[] = {
        {VG_ERR_THROTTLED, "ThrottlingException", VG_SINK_RETRY},
        {VG_ERR_TIMEOUT, "", VG_SINK_RETRY},
        {VG_ERR_UNAVAILABLE, "InternalFailure", VG_SINK_RETRY},
        {VG_ERR_NOMEM, "", VG_SINK_RETRY},
        {VG_ERR_DECODE, "", VG_SINK_RETRY},
        {VG_ERR_AUTH, "", VG_SINK_RETRY},                   /* no credentials to be had */
        {VG_ERR_AUTH, "ExpiredTokenException", VG_SINK_RETRY},
        {VG_ERR_AUTH, "AuthorizationError", VG_SINK_PERMANENT},
        {VG_ERR_AUTH, "InvalidSignatureException", VG_SINK_PERMANENT},
        {VG_ERR_AWS, "KMSThrottling", VG_SINK_RETRY},
        {VG_ERR_AWS, "KMSThrottlingException", VG_SINK_RETRY},
        {VG_ERR_AWS, "RequestTimeout", VG_SINK_RETRY},
        {VG_ERR_AWS, "InvalidParameter", VG_SINK_PERMANENT},
        {VG_ERR_AWS, "KMSDisabledException", VG_SINK_PERMANENT},
        {VG_ERR_AWS, "", VG_SINK_PERMANENT},
        {VG_ERR_NOT_FOUND, "ResourceNotFoundException", VG_SINK_PERMANENT},
        {VG_ERR_INVALID, "", VG_SINK_PERMANENT},
        {VG_ERR_TOO_LARGE, "", VG_SINK_PERMANENT},
        {VG_ERR_CONFIG, "", VG_SINK_PERMANENT},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        if (vg_sink_aws_verdict(cases[i].st, cases[i].code) != cases[i].want)
            fail_msg("%s with code \"%s\": verdict %d, want %d", vg_status_str(cases[i].st),
                     cases[i].code, vg_sink_aws_verdict(cases[i].st, cases[i].code),
                     cases[i].want);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_endpoint_normalised),
        cmocka_unit_test(test_endpoint_checked),
        cmocka_unit_test(test_attempt_share),
        cmocka_unit_test(test_verdicts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
