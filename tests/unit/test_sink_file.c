/* The file sink: the outbox and its directories are created, each alert is
 * exactly one line, and a failed write is a retryable sink failure. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sink.h"

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

static void test_appends_lines(void **state)
{
    char dir[] = "/tmp/vigil-sink-file-XXXXXX";
    struct vg_sink_cfg cfg = {.name = "outbox", .type = "file", .retries = 2};
    struct ntf_sink *s = NULL;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    const char *one = "{\"alert_id\":\"1\"}", *two = "{\"alert_id\":\"2\"}";

    assert_non_null(mkdtemp(dir));
    snprintf(cfg.path, sizeof(cfg.path), "%s/a/b/alerts.jsonl", dir);
    assert_int_equal(ntf_sink_create(&s, &cfg), VG_OK);
    assert_string_equal(s->name, "outbox");
    assert_int_equal(s->retries, 2);
    assert_int_equal(s->deliver(s, one, strlen(one), &a), VG_OK);
    assert_int_equal(s->deliver(s, two, strlen(two), &a), VG_OK);
    assert_string_equal(slurp(cfg.path), "{\"alert_id\":\"1\"}\n{\"alert_id\":\"2\"}\n");
    ntf_sink_destroy(s);

    unlink(cfg.path);
    snprintf(cfg.path, sizeof(cfg.path), "%s/a/b", dir);
    rmdir(cfg.path);
    snprintf(cfg.path, sizeof(cfg.path), "%s/a", dir);
    rmdir(cfg.path);
    rmdir(dir);
}

static void test_write_failure_is_retryable(void **state)
{
    struct vg_sink_cfg cfg = {.name = "bad", .type = "file", .path = "/dev/null/not-a-dir/x"};
    struct ntf_sink *s = NULL;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    assert_int_equal(ntf_sink_create(&s, &cfg), VG_OK);
    vg_status st = s->deliver(s, "{}", 2, &a);
    assert_int_equal(st, VG_ERR_IO);
    assert_true(ntf_sink_retryable(st));
    assert_non_null(strstr(vg_err_detail(), "/dev/null"));
    ntf_sink_destroy(s);
}

static void test_config_errors(void **state)
{
    struct ntf_sink *s = NULL;
    struct vg_sink_cfg nopath = {.name = "x", .type = "file"};
    struct vg_sink_cfg unknown = {.name = "x", .type = "pigeon"};
    struct vg_sink_cfg badurl = {.name = "x", .type = "webhook", .url = "ftp://h/"};
    assert_int_equal(ntf_sink_create(&s, &nopath), VG_ERR_CONFIG);
    assert_int_equal(ntf_sink_create(&s, &unknown), VG_ERR_CONFIG);
    assert_int_equal(ntf_sink_create(&s, &badurl), VG_ERR_CONFIG);
    assert_null(s);
    ntf_sink_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_lines),
        cmocka_unit_test(test_write_failure_is_retryable),
        cmocka_unit_test(test_config_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
