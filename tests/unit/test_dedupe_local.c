/* Dedupe windows in memory, against a real redis-server: a window known to
 * be open is answered from memory (one Redis call per window), Redis down
 * falls back to one alert per key per aligned window per replica with an
 * id both replicas derive alike, a release lets the next sighting alert,
 * and the table stays bounded. */
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

static struct dd_windows *windows(struct vg_redis *r, int ms, int keys)
{
    struct dd_windows *w = NULL;
    assert_int_equal(dd_windows_create(&w, r, ms, keys), VG_OK);
    return w;
}

static enum dd_verdict check(struct dd_windows *w, const char *key, char id[33])
{
    char scratch[33];
    return dd_windows_check(w, key, vg_now_us(), id ? id : scratch);
}

/* Sleep until just after the start of a wall-clock window of ms, so an
 * aligned window does not close in the middle of a test step. */
static void align(int ms)
{
    int64_t w = (int64_t)ms * 1000, into = vg_now_us() % w;
    vg_sleep_us(w - into + 20000);
}

static void busy_scene_costs_one_redis_call_per_window(void **state)
{
    struct fixture_redis *fx = *state;
    struct dd_windows *w = windows(fx->r, 600, 64);
    struct dd_windows_stats ws;
    assert_int_equal(check(w, "l:busy", NULL), DD_ALERT);
    for (int i = 0; i < 500; i++)
        assert_int_equal(check(w, "l:busy", NULL), DD_SUPPRESS);
    dd_windows_get_stats(w, &ws);
    assert_int_equal(ws.redis_calls, 1);
    assert_int_equal(ws.cache_hits, 500);
    vg_sleep_us(650000);
    /* The window closed (in Redis and in memory): the next sighting alerts. */
    assert_int_equal(check(w, "l:busy", NULL), DD_ALERT);
    dd_windows_get_stats(w, &ws);
    assert_int_equal(ws.redis_calls, 2);
    dd_windows_destroy(w);
}

static void window_of_another_replica_is_cached_too(void **state)
{
    struct fixture_redis *fx = *state;
    struct dd_windows *a = windows(fx->r, 800, 64), *b = windows(fx->r, 800, 64);
    struct dd_windows_stats ws;
    assert_int_equal(check(a, "l:shared", NULL), DD_ALERT);
    vg_sleep_us(300000);
    for (int i = 0; i < 100; i++)
        assert_int_equal(check(b, "l:shared", NULL), DD_SUPPRESS);
    dd_windows_get_stats(b, &ws);
    assert_int_equal(ws.redis_calls, 1); /* the failed SET NX told b the PTTL */
    /* b caches only what is left of a's window, not a whole window. */
    vg_sleep_us(550000);
    assert_int_equal(check(b, "l:shared", NULL), DD_ALERT);
    assert_int_equal(check(a, "l:shared", NULL), DD_SUPPRESS);
    dd_windows_destroy(a);
    dd_windows_destroy(b);
}

static void release_lets_next_sighting_alert(void **state)
{
    struct fixture_redis *fx = *state;
    struct dd_windows *a = windows(fx->r, 5000, 64), *b = windows(fx->r, 5000, 64);
    char id[33], id2[33];
    assert_int_equal(check(a, "l:rel", id), DD_ALERT);
    /* Someone else's release leaves our window in Redis alone. */
    dd_windows_release(b, "l:rel", "not-the-owner", DD_ALERT);
    assert_int_equal(check(b, "l:rel", NULL), DD_SUPPRESS);
    /* Ours: memory and Redis forget it, the next sighting alerts anew. */
    dd_windows_release(a, "l:rel", id, DD_ALERT);
    assert_int_equal(check(a, "l:rel", id2), DD_ALERT);
    assert_string_not_equal(id, id2);
    dd_windows_destroy(a);
    dd_windows_destroy(b);
}

static void memory_only_one_alert_per_aligned_window(void **state)
{
    (void)state;
    struct dd_windows *a = windows(NULL, 1000, 64), *b = windows(NULL, 1000, 64);
    char ida[33], idb[33], next[33];
    align(1000);
    assert_int_equal(check(a, "l:mem", ida), DD_ALERT_FAIL_OPEN);
    for (int i = 0; i < 50; i++)
        assert_int_equal(check(a, "l:mem", NULL), DD_SUPPRESS);
    /* Another replica alerts once too, with the same id: JetStream's
     * duplicate window stores one of them. */
    assert_int_equal(check(b, "l:mem", idb), DD_ALERT_FAIL_OPEN);
    assert_string_equal(ida, idb);
    assert_int_equal(check(b, "l:mem", NULL), DD_SUPPRESS);
    assert_int_equal(check(a, "l:other", NULL), DD_ALERT_FAIL_OPEN);
    align(1000);
    assert_int_equal(check(a, "l:mem", next), DD_ALERT_FAIL_OPEN);
    assert_string_not_equal(ida, next);
    /* A released fail-open window alerts again, with the same id. */
    dd_windows_release(a, "l:mem", next, DD_ALERT_FAIL_OPEN);
    assert_int_equal(check(a, "l:mem", ida), DD_ALERT_FAIL_OPEN);
    assert_string_equal(ida, next);
    dd_windows_destroy(a);
    dd_windows_destroy(b);
}

static void table_is_bounded_and_evicts_expired(void **state)
{
    (void)state;
    struct dd_windows *w = windows(NULL, 1000, 8);
    struct dd_windows_stats ws;
    char key[32], id1[33], id2[33];
    align(1000);
    for (int i = 0; i < 20; i++) {
        snprintf(key, sizeof(key), "l:cap:%d", i);
        assert_int_equal(check(w, key, NULL), DD_ALERT_FAIL_OPEN);
    }
    dd_windows_get_stats(w, &ws);
    assert_true(ws.entries <= 8);
    assert_int_equal(ws.table_full, 12);
    /* Full: a key not remembered still gets the same id in its window, so
     * JetStream collapses the repeats. */
    assert_int_equal(check(w, "l:cap:19", id1), DD_ALERT_FAIL_OPEN);
    assert_int_equal(check(w, "l:cap:19", id2), DD_ALERT_FAIL_OPEN);
    assert_string_equal(id1, id2);
    assert_int_equal(check(w, "l:cap:0", NULL), DD_SUPPRESS);
    align(1000);
    /* The expired windows made room. */
    for (int i = 100; i < 108; i++) {
        snprintf(key, sizeof(key), "l:cap:%d", i);
        assert_int_equal(check(w, key, NULL), DD_ALERT_FAIL_OPEN);
        assert_int_equal(check(w, key, NULL), DD_SUPPRESS);
    }
    dd_windows_destroy(w);
}

static void redis_down_falls_back_then_resumes(void **state)
{
    struct fixture_redis *fx = *state;
    struct dd_windows *w = windows(fx->r, 1000, 64);
    char id[33];
    fixture_stop(fx->redis);
    fx->redis = 0;
    align(1000);
    assert_int_equal(check(w, "l:down", id), DD_ALERT_FAIL_OPEN);
    for (int i = 0; i < 100; i++)
        assert_int_equal(check(w, "l:down", NULL), DD_SUPPRESS);
    fx->redis = fixture_redis_start(fx->port);
    vg_sleep_us(1100000); /* the client reconnects at most once a second */
    /* The next window comes from Redis again and is suppressed there. */
    assert_int_equal(check(w, "l:down", id), DD_ALERT);
    assert_int_equal(check(w, "l:down", NULL), DD_SUPPRESS);
    int opened = -1;
    assert_int_equal(dd_window_open(fx->r, "l:down", 1000, "other", &opened), VG_OK);
    assert_int_equal(opened, 0);
    dd_windows_destroy(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(busy_scene_costs_one_redis_call_per_window),
        cmocka_unit_test(window_of_another_replica_is_cached_too),
        cmocka_unit_test(release_lets_next_sighting_alert),
        cmocka_unit_test(memory_only_one_alert_per_aligned_window),
        cmocka_unit_test(table_is_bounded_and_evicts_expired),
        cmocka_unit_test(redis_down_falls_back_then_resumes),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
