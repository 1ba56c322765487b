/* The sink seam: a notifier.sinks entry binds the common keys and the type's
 * own keys from one map (errors name file and line, unknown types list the
 * registry), secrets come from VIGIL_SINK_<NAME>_<VAR> or its _FILE form,
 * the file sink appends exactly one line per alert and reports a failing
 * disk as transient, the redelivery delays grow and honour Retry-After, and
 * the webhook signature covers the timestamp. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "sink/sink.h"
#include "sink_fixture.h"

static char *slurp(const char *path)
{
    static char buf[4096];
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    buf[n] = '\0';
    fclose(f);
    return buf;
}

static void deliver_json(struct vg_sink *s, const char *json, struct vg_sink_result *r)
{
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    struct vg_sink_alert v = {.alert = &a, .json = json, .json_len = strlen(json)};
    vg_sink_deliver(s, &v, r);
}

static void test_binds_common_and_own_keys(void **state)
{
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: out, type: file, path: /tmp/a.jsonl}\n"
                                "    - {name: hook, type: webhook, url: 'http://h/x', retries: 1,\n"
                                "       redeliver_min_s: 5, redeliver_max_s: 60, secret: s3}\n"),
                     VG_OK);
    assert_int_equal(cfg.notifier.n_sinks, 2);
    const struct vg_sink_cfg *out = &cfg.notifier.sinks[0], *hook = &cfg.notifier.sinks[1];
    assert_string_equal(out->ops->name, "file");
    assert_int_equal(out->timeout_ms, 0);           /* a local file has none */
    assert_int_equal(out->retries, 2);              /* default */
    assert_string_equal(hook->ops->name, "webhook");
    assert_int_equal(hook->timeout_ms, 5000);       /* the type's default */
    assert_int_equal(hook->retries, 1);
    assert_int_equal(hook->redeliver_min_s, 5);
    assert_int_equal(hook->line, 4);
}

static void test_config_errors(void **state)
{
    sink_assert_error("notifier:\n  sinks:\n    - {name: s, type: pager}\n",
                      "test.yaml:3: sink \"s\" has unknown type \"pager\" (known: file, webhook, "
                      "sns, telegram, smtp, iot, kinesis, mqtt)", NULL);
    sink_assert_error("notifier:\n  sinks:\n    - {name: s}\n", "test.yaml:3: sink needs a type",
                      NULL);
    sink_assert_error("notifier:\n  sinks:\n    - {name: s, type: file}\n",
                      "test.yaml:3: sink s: a file sink needs a path", NULL);
    sink_assert_error("notifier:\n  sinks:\n    - {name: s, type: webhook, url: ftp://x}\n",
                      "needs an http(s) url", NULL);
    sink_assert_error("notifier:\n  sinks:\n    - {name: s, type: file, path: /x, url: http://h}\n",
                      "test.yaml:3: unknown key \"sinks.url\"", NULL);
    sink_assert_error("notifier:\n  sinks:\n    - {name: a.b, type: file, path: /x}\n",
                      "letters, digits", NULL);
    sink_assert_error("notifier:\n  sinks:\n    - {name: s, type: file, path: /x, retries: 99}\n",
                      "retries = 99 is out of range", NULL);
    sink_assert_error("notifier:\n  sinks:\n"
                      "    - {name: s, type: file, path: /x, redeliver_min_s: 9, "
                      "redeliver_max_s: 3}\n",
                      "redeliver_max_s 3 is below", NULL);
    sink_assert_error("notifier:\n  sinks:\n    - {name: s, type: file, path: /x}\n"
                      "    - {name: s, type: file, path: /y}\n",
                      "test.yaml:4: sink name \"s\" is used twice", NULL);
}

static void test_secret_from_env_and_file(void **state)
{
    char path[] = "/tmp/vigil-secret-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "from-file\n", 10), 10);
    close(fd);
    const char *text = "notifier:\n  sinks:\n"
                       "    - {name: my-hook, type: webhook, url: 'http://h/x', secret: yaml}\n";
    const struct vg_sink_cfg *s = &cfg.notifier.sinks[0];
    char line[64];

    setenv("VIGIL_SINK_MY_HOOK_SECRET", "from-env", 1);
    assert_int_equal(sink_parse(text), VG_OK);
    sink_opt_format(s, "secret", line, sizeof(line));
    assert_string_equal(line, "secret=***");        /* never printed */
    assert_string_equal((const char *)s->settings + s->ops->opts[1].off, "from-env");
    unsetenv("VIGIL_SINK_MY_HOOK_SECRET");

    setenv("VIGIL_SINK_MY_HOOK_SECRET_FILE", path, 1);
    assert_int_equal(sink_parse(text), VG_OK);
    assert_string_equal((const char *)s->settings + s->ops->opts[1].off, "from-file");
    setenv("VIGIL_SINK_MY_HOOK_SECRET_FILE", "/nonexistent/secret", 1);
    sink_assert_error(text, "VIGIL_SINK_MY_HOOK_SECRET_FILE: /nonexistent/secret", NULL);
    unsetenv("VIGIL_SINK_MY_HOOK_SECRET_FILE");
    unlink(path);
}

static void test_file_sink_appends_lines(void **state)
{
    char dir[] = "/tmp/vigil-sink-file-XXXXXX", text[512], path[256];
    struct vg_sink *s = NULL;
    struct vg_sink_result r;

    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/a/b/alerts.jsonl", dir);
    snprintf(text, sizeof(text), "notifier:\n  sinks:\n    - {name: out, type: file, path: %s}\n",
             path);
    assert_int_equal(sink_parse(text), VG_OK);
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[0], &cfg), VG_OK);
    deliver_json(s, "{\"alert_id\":\"1\"}", &r);
    assert_int_equal(r.verdict, VG_SINK_DELIVERED);
    deliver_json(s, "{\"alert_id\":\"2\"}", &r);
    assert_int_equal(r.verdict, VG_SINK_DELIVERED);
    assert_string_equal(slurp(path), "{\"alert_id\":\"1\"}\n{\"alert_id\":\"2\"}\n");
    vg_sink_close(s);

    unlink(path);
    snprintf(path, sizeof(path), "%s/a/b", dir);
    rmdir(path);
    snprintf(path, sizeof(path), "%s/a", dir);
    rmdir(path);
    rmdir(dir);
}

static void test_file_failure_is_transient(void **state)
{
    struct vg_sink *s = NULL;
    struct vg_sink_result r;
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: bad, type: file, path: /dev/null/not-a-dir/x}\n"),
                     VG_OK);
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[0], &cfg), VG_OK);
    deliver_json(s, "{}", &r);
    assert_int_equal(r.verdict, VG_SINK_RETRY);
    assert_non_null(strstr(r.error, "/dev/null"));
    vg_sink_close(s);
    vg_sink_close(NULL);
}

static void test_redelivery_delays(void **state)
{
    struct vg_sink_cfg c = {.redeliver_min_s = 2, .redeliver_max_s = 30};
    assert_int_equal(vg_sink_redeliver_ms(&c, 1, 0), 2000);
    assert_int_equal(vg_sink_redeliver_ms(&c, 2, 0), 4000);
    assert_int_equal(vg_sink_redeliver_ms(&c, 4, 0), 16000);
    assert_int_equal(vg_sink_redeliver_ms(&c, 5, 0), 30000);
    assert_int_equal(vg_sink_redeliver_ms(&c, 1000, 0), 30000);
    assert_int_equal(vg_sink_redeliver_ms(&c, 1, 120000), 120000);     /* Retry-After */
    assert_int_equal(vg_sink_redeliver_ms(&c, 5, 500), 30000);         /* never sooner */
    assert_int_equal(vg_sink_redeliver_ms(&c, 1, 86400000), 3600000);  /* at most an hour */
}

/* Expected values from:
 *   printf '%s' '1700000000.{"alert_id":"abc","camera":"demo"}' |
 *       openssl dgst -sha256 -hmac change-me
 *   printf '%s' '0.' | openssl dgst -sha256 -hmac k */
static void test_signature_covers_timestamp(void **state)
{
    char hex[VG_SINK_HMAC_HEX_LEN + 1], other[VG_SINK_HMAC_HEX_LEN + 1];
    const char *body = "{\"alert_id\":\"abc\",\"camera\":\"demo\"}";
    assert_int_equal(vg_sink_sign("change-me", 1700000000, body, strlen(body), hex), VG_OK);
    assert_string_equal(hex, "8d2102c7b74af9769718a2ab3a66d928b6cb5ee61e45f89f0e9ac823e623e162");
    assert_int_equal(vg_sink_sign("change-me", 1700000001, body, strlen(body), other), VG_OK);
    assert_string_not_equal(hex, other);
    assert_int_equal(vg_sink_sign("k", 0, "", 0, hex), VG_OK);
    assert_string_equal(hex, "6b4a4b8b3c40f1e8f53a3d36682e5f99f7ad2ac1df1c93dfe336f329167641e7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_binds_common_and_own_keys),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_secret_from_env_and_file),
        cmocka_unit_test(test_file_sink_appends_lines),
        cmocka_unit_test(test_file_failure_is_transient),
        cmocka_unit_test(test_redelivery_delays),
        cmocka_unit_test(test_signature_covers_timestamp),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
