/* Configuration: defaults, YAML binding, and errors that name file:line or
 * the environment variable. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"

static struct vg_config cfg;

static vg_status parse(const char *text)
{
    vg_cfg_defaults(&cfg);
    vg_status st = vg_cfg_parse(&cfg, "test.yaml", text, strlen(text));
    if (st == VG_OK)
        st = vg_cfg_validate(&cfg);
    return st;
}

static void assert_error(const char *text, const char *expect)
{
    assert_int_not_equal(parse(text), VG_OK);
    if (!strstr(vg_err_detail(), expect))
        fail_msg("detail \"%s\" lacks \"%s\"", vg_err_detail(), expect);
}

static void defaults_are_local(void **state)
{
    assert_int_equal(parse(""), VG_OK);
    assert_string_equal(cfg.prefix, "vigil");
    assert_string_equal(cfg.nats_url, "nats://127.0.0.1:4222");
    assert_int_equal(cfg.dedupe.window_s, 30);
    assert_int_equal(cfg.dispatch.n_detectors, 2);
    assert_string_equal(cfg.dispatch.detectors[0], "motion");
    assert_string_equal(cfg.dispatch.detectors[1], "opencv");
    assert_string_equal(cfg.facematch.matcher, "none");
    assert_int_equal(cfg.n_cameras, 0);
}

static void full_file_binds(void **state)
{
    const char *text =
        "prefix: home\n"
        "cameras:\n"
        "  - id: porch\n"
        "    url: rtsp://u:p@cam/stream\n"
        "    fps: 2.5\n"
        "    loop: true\n"
        "    motion: { threshold: 30, min_area: 0.01 }\n"
        "    watch:\n"
        "      - { label: person, min_confidence: 0.72 }\n"
        "      - { label: motion }\n"
        "dedupe: { window_s: 45 }\n"
        "notifier:\n"
        "  sinks:\n"
        "    - { name: out, type: file, path: /tmp/a.jsonl }\n"
        "    - { name: hook, type: webhook, url: 'http://127.0.0.1:9/x', retries: 2 }\n";
    assert_int_equal(parse(text), VG_OK);
    assert_string_equal(cfg.prefix, "home");
    assert_int_equal(cfg.n_cameras, 1);
    const struct vg_camera_cfg *cam = vg_cfg_camera(&cfg, "porch");
    assert_non_null(cam);
    assert_true(cam->fps == 2.5);
    assert_int_equal(cam->loop, 1);
    assert_int_equal(cam->motion_threshold, 30);
    assert_int_equal(cam->motion_width, 320); /* default kept */
    assert_int_equal(cam->n_watch, 2);
    assert_string_equal(cam->watch[0].label, "person");
    assert_true(cam->watch[0].min_confidence > 0.719 && cam->watch[0].min_confidence < 0.721);
    assert_int_equal(cfg.dedupe.window_s, 45);
    assert_int_equal(cfg.notifier.n_sinks, 2);
    assert_int_equal(cfg.notifier.sinks[1].retries, 2);
    assert_int_equal(cfg.notifier.sinks[1].timeout_ms, 5000);
}

static void errors_name_file_and_line(void **state)
{
    assert_error("prefix: a\nbogus: 1\n", "test.yaml:2: unknown key \"bogus\"");
    assert_error("dedupe:\n  window_s: 0\n", "test.yaml:2: dedupe.window_s = 0 is out of range");
    assert_error("dedupe:\n  window_s: soon\n", "test.yaml:2: dedupe.window_s must be an integer");
    assert_error("cameras:\n  - id: a\n    url: x\n    fps: 9999\n", "test.yaml:4:");
    assert_error("cameras:\n  - id: a.b\n    url: x\n", "test.yaml:2: camera id \"a.b\"");
    assert_error("cameras:\n  - id: a\n", "test.yaml:2: camera \"a\" needs a url");
    assert_error("cameras:\n  - {id: a, url: x}\n  - {id: a, url: y}\n",
                 "test.yaml:3: camera id \"a\" is used twice");
    assert_error("cameras:\n  - {id: a, url: x, loop: maybe}\n", "must be true or false");
    assert_error("notifier:\n  sinks:\n    - {name: s, type: pager}\n",
                 "test.yaml:3: sink \"s\" has unknown type \"pager\"");
    assert_error("notifier:\n  sinks:\n    - {name: s, type: webhook, url: ftp://x}\n",
                 "needs an http(s) url");
    assert_error("key: [unclosed\n", "test.yaml:");
    assert_error("dispatch: { detector: motion, detectors: [motion] }\n",
                 "give only the chain");
    assert_error("cameras: 3\n", "cameras must be a list");
}

static void env_overrides_and_is_validated(void **state)
{
    setenv("VIGIL_NATS_URL", "nats://10.0.0.1:4222", 1);
    vg_cfg_defaults(&cfg);
    assert_int_equal(vg_cfg_apply_env(&cfg), VG_OK);
    assert_string_equal(cfg.nats_url, "nats://10.0.0.1:4222");
    setenv("VIGIL_NATS_URL", "http://wrong", 1);
    assert_int_equal(vg_cfg_apply_env(&cfg), VG_OK);
    assert_int_equal(vg_cfg_validate(&cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "nats_url"));
    unsetenv("VIGIL_NATS_URL");
    setenv("VIGIL_LOG_LEVEL", "loud", 1);
    vg_cfg_defaults(&cfg);
    vg_cfg_apply_env(&cfg);
    assert_int_equal(vg_cfg_validate(&cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "log_level"));
    unsetenv("VIGIL_LOG_LEVEL");
}

static void aws_section(void **state)
{
    const char *text =
        "aws:\n"
        "  region: eu-west-1\n"
        "  max_attempts: 5\n"
        "  rate_limits:\n"
        "    - { api: rekognition.DetectLabels, per_second: 5, burst: 10 }\n"
        "faces: { collection: home, profile_table: people }\n";
    assert_int_equal(parse(text), VG_OK);
    assert_string_equal(cfg.aws.region, "eu-west-1");
    assert_int_equal(cfg.aws.max_attempts, 5);
    assert_int_equal(cfg.aws.timeout_ms, 10000);
    assert_int_equal(cfg.aws.n_rate_limits, 1);
    assert_true(cfg.aws.rate_limits[0].burst == 10);
    assert_string_equal(cfg.faces.profile_table, "people");
    assert_error("aws:\n  access_key_id: AKID\n", "go together");
    assert_error("aws:\n  rate_limits:\n    - { api: x }\n", "test.yaml:3: a rate limit needs");
}

static void missing_file_is_clear(void **state)
{
    assert_int_equal(vg_cfg_load(&cfg, "/nonexistent/vigil.yaml"), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "/nonexistent/vigil.yaml: No such file"));
}

static void secrets_are_masked(void **state)
{
    char out[256];
    vg_cfg_mask_url(out, sizeof(out), "redis://:hunter2@db:6379/0");
    assert_string_equal(out, "redis://:***@db:6379/0");
    vg_cfg_mask_url(out, sizeof(out), "rtsp://admin:pw@cam/live");
    assert_string_equal(out, "rtsp://admin:***@cam/live");
    vg_cfg_mask_url(out, sizeof(out), "redis://:p@ss@db:6379");
    assert_string_equal(out, "redis://:***@db:6379");
    vg_cfg_mask_url(out, sizeof(out), "http://cam/a@b");
    assert_string_equal(out, "http://cam/a@b");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(defaults_are_local),
        cmocka_unit_test(full_file_binds),
        cmocka_unit_test(errors_name_file_and_line),
        cmocka_unit_test(env_overrides_and_is_validated),
        cmocka_unit_test(aws_section),
        cmocka_unit_test(missing_file_is_clear),
        cmocka_unit_test(secrets_are_masked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
