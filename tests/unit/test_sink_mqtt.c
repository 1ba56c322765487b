/* The mqtt sink's configuration and its behaviour without a broker: keys
 * bind with their defaults, the password comes from the environment and is
 * masked, bad settings fail with errors that never quote the url or the
 * password, and with nothing listening an alert is a quick transient
 * failure and the sink shuts down promptly. Everything against a real
 * broker is in tests/integration/test_sink_mqtt.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sink/sink.h"
#include "sink_fixture.h"
#include "timeutil.h"

#define PW "Pa55-SECRET"

static void test_keys_bind_with_defaults(void **state)
{
    char line[256];
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: ha, type: mqtt, url: 'mqtt://broker.local'}\n"),
                     VG_OK);
    const struct vg_sink_cfg *s = &cfg.notifier.sinks[0];
    assert_string_equal(s->ops->name, "mqtt");
    assert_true(s->ops->caps & VG_SINK_CAP_SNAPSHOT);
    assert_int_equal(s->incidents, VG_SINK_INCIDENTS_ALL);
    assert_int_equal(s->timeout_ms, 5000);
    assert_true(s->ops->settings_size <= VG_SINK_SETTINGS_MAX);
    const char *want[][2] = {{"topic_prefix", "topic_prefix=vigil"}, {"qos", "qos=1"},
                             {"retain", "retain=false"}, {"keepalive_s", "keepalive_s=30"},
                             {"snapshot", "snapshot=true"}, {"ha_discovery", "ha_discovery=false"},
                             {"ha_prefix", "ha_prefix=homeassistant"},
                             {"protocol", "protocol=3.1.1"}, {"client_id", "client_id="}};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
        sink_opt_format(s, want[i][0], line, sizeof(line));
        assert_string_equal(line, want[i][1]);
    }
}

static void test_password_from_env_masked(void **state)
{
    char line[256];
    setenv("VIGIL_SINK_HOME_MQ_PASSWORD", PW, 1);
    setenv("VIGIL_SINK_HOME_MQ_USERNAME", "vigil", 1);
    vg_status st = sink_parse("notifier:\n  sinks:\n"
                              "    - {name: home-mq, type: mqtt, url: 'mqtts://b:8884', qos: 2}\n");
    unsetenv("VIGIL_SINK_HOME_MQ_PASSWORD");
    unsetenv("VIGIL_SINK_HOME_MQ_USERNAME");
    assert_int_equal(st, VG_OK);
    const struct vg_sink_cfg *s = &cfg.notifier.sinks[0];
    sink_opt_format(s, "password", line, sizeof(line));
    assert_string_equal(line, "password=***");
    sink_opt_format(s, "username", line, sizeof(line));
    assert_string_equal(line, "username=vigil");
    /* Without the environment a password with no user is refused. */
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b',"
                      " password: '" PW "'}\n", "password needs a username", "SECRET");
}

static void test_config_errors(void **state)
{
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt}\n",
                      "test.yaml:3: sink m: an mqtt sink needs url mqtt://host[:port]", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt,"
                      " url: 'mqtt://u:" PW "@broker:1883'}\n", "no user:password@", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'http://broker'}\n",
                      "needs url mqtt://", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b:70000'}\n",
                      "needs url mqtt://", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b:1883/x'}\n",
                      "needs url mqtt://", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b',"
                      " topic_prefix: 'home/#'}\n", "topic_prefix \"home/#\" must be a topic",
                      "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b',"
                      " topic_prefix: 'home/'}\n", "topic_prefix \"home/\" must be a topic",
                      "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b',"
                      " ha_discovery: true, ha_prefix: '+'}\n", "ha_prefix \"+\" must be a topic",
                      "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtts://b',"
                      " cert_file: /c.pem}\n", "cert_file and key_file go together", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b',"
                      " ca_file: /ca.pem}\n", "need an mqtts:// url", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b', qos: 3}\n",
                      "qos", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: m, type: mqtt, url: 'mqtt://b',"
                      " protocol: '3'}\n", "protocol", "SECRET");
    assert_int_equal(sink_parse("notifier:\n  sinks:\n    - {name: m, type: mqtt,"
                                " url: 'mqtt://[::1]:1884/'}\n"), VG_OK);
}

static void test_missing_ca_file_fails_at_open(void **state)
{
    assert_int_equal(sink_parse("notifier:\n  sinks:\n    - {name: m, type: mqtt,"
                                " url: 'mqtts://127.0.0.1:1', ca_file: /nonexistent/ca.pem}\n"),
                     VG_OK);
    struct vg_sink *s = NULL;
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[0], &cfg), VG_ERR_CONFIG);
    if (!strstr(vg_err_detail(), "ca_file /nonexistent/ca.pem"))
        fail_msg("error: %s", vg_err_detail());
}

/* Nothing listens on port 1: RETRY at once (not after the whole timeout),
 * naming the broker, never the password; closing does not wait out the
 * reconnect backoff. */
static void test_no_broker_is_transient(void **state)
{
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: mq, type: mqtt, url: 'mqtt://127.0.0.1:1',\n"
                                "       username: u, password: '" PW "', timeout_ms: 4000}\n"),
                     VG_OK);
    struct vg_sink *s = NULL;
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[0], &cfg), VG_OK);
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    h.camera_id = "door";
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    a.header = &h;
    a.alert_id = "a1";
    a.label = "person";
    struct vg_sink_alert v = {.alert = &a, .title = "person at door", .text = "person",
                              .html = "", .json = "{}", .json_len = 2, .snapshot_url = "",
                              .clip_url = "", .count = 1};
    struct vg_sink_result r;
    for (int i = 0; i < 2; i++) {
        int64_t t0 = vg_mono_us();
        vg_sink_deliver(s, &v, &r);
        int64_t ms = (vg_mono_us() - t0) / 1000;
        assert_int_equal(r.verdict, VG_SINK_RETRY);
        if (!strstr(r.error, "not connected to mqtt://127.0.0.1:1") || strstr(r.error, "SECRET"))
            fail_msg("error: %s", r.error);
        assert_true(ms < 3000);
    }
    int64_t t0 = vg_mono_us();
    vg_sink_close(s);
    assert_true((vg_mono_us() - t0) / 1000 < 1500);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keys_bind_with_defaults),
        cmocka_unit_test(test_password_from_env_masked),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_missing_ca_file_fails_at_open),
        cmocka_unit_test(test_no_broker_is_transient),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
