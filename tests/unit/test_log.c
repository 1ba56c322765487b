/* Logging: the per-(event, camera) rate limit and URL masking of secrets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"
#include "metrics.h"

static int64_t fake_now;
static int64_t fake_clock(void) { return __atomic_load_n(&fake_now, __ATOMIC_RELAXED); }

static char *buf;
static size_t buf_len;
static FILE *mem;

static int setup(void **state)
{
    vg_log_setup("test", VG_LOG_DEBUG);
    vg_log_set_clock(fake_clock);
    fake_now = 1000000;
    mem = open_memstream(&buf, &buf_len);
    vg_log_set_stream(mem);
    vg_log_set_rate_limit(10, 10000);
    return 0;
}

static int teardown(void **state)
{
    vg_log_set_stream(NULL);
    fclose(mem);
    free(buf);
    buf = NULL;
    return 0;
}

static int count_of(const char *needle)
{
    fflush(mem);
    int n = 0;
    for (const char *p = buf; p && (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static uint64_t suppressed_total(void)
{
    return vg_counter_value(vg_counter_get("vigil_log_suppressed_total", ""));
}

static void test_burst_then_summary(void **state)
{
    uint64_t before = suppressed_total();
    for (int i = 0; i < 1000; i++)
        VG_WARN("message.malformed", "cam1", "bad %d", i);
    assert_int_equal(count_of("\"event\":\"message.malformed\""), 10);
    assert_int_equal(suppressed_total() - before, 990);
    assert_int_equal(count_of("log.suppressed"), 0);

    fake_now += 10000; /* the interval is over: the next line reports */
    VG_WARN("message.malformed", "cam1", "bad again");
    assert_int_equal(count_of("\"event\":\"log.suppressed\",\"camera\":\"cam1\","
                              "\"suppressed_event\":\"message.malformed\",\"suppressed\":990"),
                     1);
    assert_int_equal(count_of("message.malformed: 990 more lines in the last 10 s"), 1);
    assert_int_equal(count_of("\"event\":\"message.malformed\""), 11);
}

static void test_keys_are_independent(void **state)
{
    for (int i = 0; i < 50; i++) {
        VG_WARN("a.event", "cam1", "x");
        VG_WARN("a.event", "cam2", "x");
        VG_WARN("b.event", NULL, "x");
    }
    assert_int_equal(count_of("\"event\":\"a.event\",\"camera\":\"cam1\""), 10);
    assert_int_equal(count_of("\"event\":\"a.event\",\"camera\":\"cam2\""), 10);
    assert_int_equal(count_of("\"event\":\"b.event\""), 10);
}

static void test_sweep_reports_quiet_keys(void **state)
{
    for (int i = 0; i < 30; i++)
        VG_ERROR("quiet.after", NULL, "x");
    fake_now += 11000; /* another event's line makes the sweep report it */
    VG_INFO("other.event", NULL, "y");
    assert_int_equal(count_of("\"suppressed_event\":\"quiet.after\",\"suppressed\":20"), 1);
}

static void test_flush_reports_pending(void **state)
{
    for (int i = 0; i < 15; i++)
        VG_WARN("pending.event", NULL, "x");
    vg_log_flush();
    assert_int_equal(count_of("\"suppressed_event\":\"pending.event\",\"suppressed\":5"), 1);
    vg_log_flush();
    assert_int_equal(count_of("log.suppressed"), 1);
}

static void test_debug_not_limited(void **state)
{
    for (int i = 0; i < 100; i++)
        VG_DEBUG("debug.event", NULL, "x");
    assert_int_equal(count_of("\"event\":\"debug.event\""), 100);
}

static void test_zero_burst_disables(void **state)
{
    vg_log_set_rate_limit(0, 10000);
    for (int i = 0; i < 100; i++)
        VG_WARN("unlimited.event", NULL, "x");
    assert_int_equal(count_of("\"event\":\"unlimited.event\""), 100);
}

static void test_table_full_falls_back_to_writing(void **state)
{
    char ev[32];
    for (int k = 0; k < 600; k++) { /* more keys than slots */
        snprintf(ev, sizeof(ev), "ev.%d", k);
        for (int i = 0; i < 12; i++)
            VG_WARN(ev, NULL, "x");
    }
    /* Every key wrote at least its burst; none lost a line without a count. */
    fflush(mem);
    int lines = count_of("\"level\":\"warn\"");
    uint64_t total = 600 * 12;
    assert_true(lines >= 600 * 10);
    assert_true((uint64_t)lines <= total);
}

static void *hammer(void *arg)
{
    for (int i = 0; i < 20000; i++)
        VG_WARN("threaded.event", (const char *)arg, "x %d", i);
    return NULL;
}

static void test_threads(void **state)
{
    uint64_t before = suppressed_total();
    pthread_t t[4];
    const char *cams[4] = {"c0", "c1", "c0", "c1"};
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, hammer, (void *)cams[i]);
    for (int i = 0; i < 4; i++)
        pthread_join(t[i], NULL);
    assert_int_equal(count_of("\"event\":\"threaded.event\""), 20);
    assert_int_equal(suppressed_total() - before, 4 * 20000 - 20);
}

static void assert_masked(const char *url, const char *want, const char *secret)
{
    char out[VG_URL_MAX];
    vg_cfg_mask_url(out, sizeof(out), url);
    assert_string_equal(out, want);
    if (secret)
        assert_null(strstr(out, secret));
}

static void test_mask_urls(void **state)
{
    assert_masked("nats://user:pass@host:4222", "nats://user:***@host:4222", "pass");
    assert_masked("nats://s3cr3t@host:4222", "nats://***@host:4222", "s3cr3t");
    assert_masked("tls://u:p%40ss@h:4443", "tls://u:***@h:4443", "p%40ss");
    assert_masked("redis://:pw@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0", "pw");
    assert_masked("redis://default:a@b@h:6379", "redis://default:***@h:6379", "a@b");
    assert_masked("nats://127.0.0.1:4222", "nats://127.0.0.1:4222", NULL);
    assert_masked("http://h/x@y", "http://h/x@y", NULL); /* '@' in the path only */
    assert_masked("nats://a:one@h1:4222,nats://tok2@h2:4222",
                  "nats://a:***@h1:4222,nats://***@h2:4222", NULL);
    char out[VG_URL_MAX];
    vg_cfg_mask_url(out, sizeof(out), "nats://a:one@h1:4222,nats://tok2@h2:4222");
    assert_null(strstr(out, "one"));
    assert_null(strstr(out, "tok2"));
    char small[12];
    vg_cfg_mask_url(small, sizeof(small), "nats://user:pass@host:4222");
    assert_int_equal(strlen(small), sizeof(small) - 1);
    assert_null(strstr(small, "pass"));
}

static void test_bad_nats_url_error_is_masked(void **state)
{
    struct vg_config cfg;
    vg_cfg_defaults(&cfg);
    snprintf(cfg.nats_url, sizeof(cfg.nats_url), "http://user:hunter2@host:4222");
    assert_int_not_equal(vg_cfg_validate(&cfg), VG_OK);
    assert_null(strstr(vg_err_detail(), "hunter2"));
    assert_non_null(strstr(vg_err_detail(), "nats_url"));
}

#define T(f) cmocka_unit_test_setup_teardown(f, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_burst_then_summary),
        T(test_keys_are_independent),
        T(test_sweep_reports_quiet_keys),
        T(test_flush_reports_pending),
        T(test_debug_not_limited),
        T(test_zero_burst_disables),
        T(test_table_full_falls_back_to_writing),
        T(test_threads),
        cmocka_unit_test(test_mask_urls),
        cmocka_unit_test(test_bad_nats_url_error_is_masked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
