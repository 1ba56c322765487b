/* IoT data plane Publish against the AWS fake, read back through its
 * /_fake/iot log: topics with '/', spaces and UTF-8 (the path is signed
 * URI-encoded twice), qos, local refusals, the endpoint setting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "aws/client.h"
#include "aws/iot.h"
#include "fake_aws_ctl.h"
#include "fixture.h"

static struct {
    struct fake_env f;
    char fake_url[64];
} g;

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    if (fake_env_start(&g.f) != 0)
        return -1;
    snprintf(g.fake_url, sizeof(g.fake_url), "http://127.0.0.1:%d", g.f.port);
    return 0;
}

static int group_teardown(void **state)
{
    fake_env_stop(&g.f);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    return 0;
}

/* The messages the fake received on topic (URI-encoded for the query). */
static json_t *received(const char *topic_query)
{
    char path[512];
    snprintf(path, sizeof(path), "/_fake/iot?topic=%s", topic_query);
    return fake("GET", path, NULL);
}

static int restore_env(void **state)
{
    setenv("AWS_ENDPOINT_URL", g.fake_url, 1);
    unsetenv("AWS_ENDPOINT_URL_IOT_DATA_PLANE");
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void publish_and_read_back(void **state)
{
    const char *payload = "{\"camera\":\"front-door\",\"label\":\"person\",\"score\":0.98}";
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "vigil/front-door/alerts", 1, payload,
                                    strlen(payload)), VG_OK);
    json_t *msgs = received("vigil%2Ffront-door%2Falerts"), *m = json_array_get(msgs, 0);
    assert_int_equal(json_array_size(msgs), 1);
    assert_string_equal(json_string_value(json_object_get(m, "payload")), payload);
    assert_int_equal(json_integer_value(json_object_get(m, "qos")), 1);
    assert_string_equal(json_string_value(json_object_get(m, "raw_topic")),
                        "vigil%2Ffront-door%2Falerts");
    json_decref(msgs);

    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "vigil/heartbeat", 0, NULL, 0), VG_OK);
    msgs = received("vigil%2Fheartbeat");
    m = json_array_get(msgs, 0);
    assert_int_equal(json_integer_value(json_object_get(m, "qos")), 0);
    assert_string_equal(json_string_value(json_object_get(m, "payload")), "");
    json_decref(msgs);
}

static void topics_needing_encoding(void **state)
{
    const char *topic = "vigil/caméra 1/état+?&=%";
    /* '+' is a wildcard: refused. Without it: */
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, topic, 0, "x", 1), VG_ERR_INVALID);
    topic = "vigil/caméra 1/état?&=%";
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, topic, 1, "x", 1), VG_OK);
    json_t *all = fake("GET", "/_fake/iot", NULL);
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(all, 0), "topic")),
                        topic);
    json_decref(all);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "$aws/things/cam-1/shadow/update", 0,
                                    "{}", 2), VG_OK);
}

static void bad_input_refused_locally(void **state)
{
    char long_topic[VG_IOT_MAX_TOPIC + 2];
    memset(long_topic, 't', VG_IOT_MAX_TOPIC + 1);
    long_topic[VG_IOT_MAX_TOPIC + 1] = '\0';
    const char *bad[] = {"", "a/+/b", "a/#", "#", "$SYS/broker", "$aws/other", long_topic,
                         "a/b/c/d/e/f/g/h/i"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++)
        assert_int_equal(vg_iot_publish(g.f.aws, NULL, bad[i], 0, "x", 1), VG_ERR_INVALID);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, NULL, 0, "x", 1), VG_ERR_INVALID);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a", 2, "x", 1), VG_ERR_INVALID);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a", -1, "x", 1), VG_ERR_INVALID);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a", 0, NULL, 3), VG_ERR_INVALID);
    char *big = calloc(1, VG_IOT_MAX_PAYLOAD + 1);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a", 0, big, VG_IOT_MAX_PAYLOAD + 1),
                     VG_ERR_TOO_LARGE);
    assert_int_equal(fake_count("iotdata.*"), 0);
    /* The limits themselves are fine. */
    long_topic[VG_IOT_MAX_TOPIC] = '\0';
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, long_topic, 0, big, VG_IOT_MAX_PAYLOAD),
                     VG_OK);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a/b/c/d/e/f/g/h", 0, "x", 1), VG_OK);
    free(big);
}

static void endpoint_setting(void **state)
{
    char host[64];
    unsetenv("AWS_ENDPOINT_URL");
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a", 0, "x", 1), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "AWS_ENDPOINT_URL_IOT_DATA_PLANE"));
    assert_int_equal(vg_iot_publish(g.f.aws, g.fake_url, "explicit", 0, "x", 1), VG_OK);
    setenv("AWS_ENDPOINT_URL_IOT_DATA_PLANE", g.fake_url, 1);
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "from-env", 0, "x", 1), VG_OK);
    unsetenv("AWS_ENDPOINT_URL_IOT_DATA_PLANE");
    /* A bare host means https: nothing answers TLS there, so it fails to connect. */
    snprintf(host, sizeof(host), "127.0.0.1:%d", g.f.port);
    assert_int_equal(vg_iot_publish(g.f.aws, host, "tls", 0, "x", 1), VG_ERR_UNAVAILABLE);
    json_t *all = fake("GET", "/_fake/iot", NULL);
    assert_int_equal(json_array_size(all), 2);
    json_decref(all);
}

static void service_errors(void **state)
{
    fake_do("POST", "/_fake/fail", "{\"api\":\"iotdata.Publish\",\"count\":1,\"status\":403,"
                                   "\"code\":\"ForbiddenException\"}");
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a", 1, "x", 1), VG_ERR_AUTH);
    assert_non_null(strstr(vg_err_detail(), "ForbiddenException"));
    fake_do("POST", "/_fake/fail", "{\"api\":\"iotdata.Publish\",\"count\":1,\"status\":503}");
    assert_int_equal(vg_iot_publish(g.f.aws, NULL, "a", 1, "x", 1), VG_OK);
    assert_int_equal(fake_count("iotdata.Publish"), 3);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(publish_and_read_back, reset),
        cmocka_unit_test_setup(topics_needing_encoding, reset),
        cmocka_unit_test_setup(bad_input_refused_locally, reset),
        cmocka_unit_test_setup_teardown(endpoint_setting, reset, restore_env),
        cmocka_unit_test_setup(service_errors, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
