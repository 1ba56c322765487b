/* Pending alerts against a real redis-server: the window and the alert's
 * record are written by one call (or not at all), a record is claimed by
 * one sweeper at a time and is due again when its claimer vanished, a
 * cleared or expired record is never claimed, and the test hook is inert
 * unless named. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "fault.h"
#include "fixture.h"
#include "pending.h"
#include "vigil/v1/vigil.pb-c.h"
#include "window.h"

#define PREFIX "tp"

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

static long long integer(struct vg_redis *r, const char *fmt, const char *arg)
{
    redisReply *reply = NULL;
    assert_int_equal(vg_redis_cmd(r, &reply, fmt, arg), VG_OK);
    long long v = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    return v;
}

/* A small Alert for alert_id, as dedupe would stash it. */
static void stash_for(struct dd_stash *s, const char *alert_id)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    h.camera_id = "porch";
    a.header = &h;
    a.alert_id = (char *)alert_id;
    a.label = "person";
    assert_int_equal(dd_stash_init(s, PREFIX, alert_id, &a.base, 4096, 60000), VG_OK);
}

/* Make every record due now, as if the grace or the lease had passed. */
static void make_due(struct vg_redis *r, const char *alert_id)
{
    redisReply *reply = NULL;
    assert_int_equal(vg_redis_cmd(r, &reply, "ZADD " PREFIX ":dd:pending 0 %s", alert_id),
                     VG_OK);
    freeReplyObject(reply);
}

static int claim(struct vg_redis *r, struct dd_pending_item *items)
{
    int n = -1;
    assert_int_equal(dd_pending_claim(r, PREFIX, DD_PENDING_BATCH, 60000, items, &n), VG_OK);
    return n;
}

static void window_and_record_are_written_together(void **state)
{
    struct fixture_redis *fx = *state;
    struct dd_stash s;
    int opened = -1;
    int64_t ttl = 0;
    stash_for(&s, "id-first");
    assert_int_equal(dd_window_open_stash(fx->r, "tp:w1", 30000, "id-first", &s, &opened, &ttl),
                     VG_OK);
    assert_int_equal(opened, 1);
    assert_int_equal(integer(fx->r, "EXISTS %s", s.key), 1);
    assert_int_equal(integer(fx->r, "ZCARD %s", s.set), 1);
    /* The record waits for its publisher: not due yet. */
    struct dd_pending_item items[DD_PENDING_BATCH];
    assert_int_equal(claim(fx->r, items), 0);
    dd_stash_cleanup(&s);

    /* A window already open writes no record for the suppressed sighting. */
    stash_for(&s, "id-second");
    assert_int_equal(dd_window_open_stash(fx->r, "tp:w1", 30000, "id-second", &s, &opened,
                                          &ttl), VG_OK);
    assert_int_equal(opened, 0);
    assert_int_equal(integer(fx->r, "EXISTS %s", s.key), 0);
    assert_int_equal(integer(fx->r, "ZCARD %s", s.set), 1);
    dd_stash_cleanup(&s);
    assert_int_equal(dd_pending_clear(fx->r, PREFIX, "id-first"), VG_OK);
    assert_int_equal(dd_pending_count(fx->r, PREFIX), 0);
}

static void one_claimer_at_a_time_and_due_again_after_the_lease(void **state)
{
    struct fixture_redis *fx = *state;
    struct dd_pending_item items[DD_PENDING_BATCH];
    struct dd_stash s;
    int opened = -1;
    int64_t ttl = 0;
    stash_for(&s, "id-lease");
    assert_int_equal(dd_window_open_stash(fx->r, "tp:w2", 30000, "id-lease", &s, &opened, &ttl),
                     VG_OK);
    make_due(fx->r, "id-lease");
    assert_int_equal(claim(fx->r, items), 1);
    assert_string_equal(items[0].alert_id, "id-lease");
    assert_int_equal(items[0].len, s.len);
    assert_memory_equal(items[0].data, s.data, s.len);
    dd_pending_items_free(items, 1);
    /* A second replica sweeping now gets nothing: the lease holds it. */
    assert_int_equal(claim(fx->r, items), 0);
    /* The claimer died: after the lease the record is due again. */
    make_due(fx->r, "id-lease");
    assert_int_equal(claim(fx->r, items), 1);
    dd_pending_items_free(items, 1);
    /* Stored and cleared: never claimed again. */
    assert_int_equal(dd_pending_clear(fx->r, PREFIX, "id-lease"), VG_OK);
    make_due(fx->r, "id-lease");   /* a late claimer's ZADD must not revive it */
    assert_int_equal(claim(fx->r, items), 0);
    assert_int_equal(dd_pending_count(fx->r, PREFIX), 0);
    dd_stash_cleanup(&s);
}

static void expired_and_foreign_ids_are_forgotten(void **state)
{
    struct fixture_redis *fx = *state;
    struct dd_pending_item items[DD_PENDING_BATCH];
    char long_id[DD_PENDING_ID_MAX + 8];
    memset(long_id, 'x', sizeof(long_id) - 1);
    long_id[sizeof(long_id) - 1] = '\0';
    make_due(fx->r, "id-expired");      /* its bytes are gone (TTL) */
    make_due(fx->r, long_id);
    assert_int_equal(dd_pending_count(fx->r, PREFIX), 2);
    assert_int_equal(claim(fx->r, items), 0);
    assert_int_equal(dd_pending_count(fx->r, PREFIX), 0);
}

static void redis_down_is_reported(void **state)
{
    struct vg_redis *r = NULL;
    struct dd_pending_item items[DD_PENDING_BATCH];
    int n = -1;
    char url[64];
    (void)state;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", fixture_free_port());
    assert_int_equal(vg_redis_create(&r, url, 200), VG_OK);
    assert_int_not_equal(dd_pending_claim(r, PREFIX, 4, 1000, items, &n), VG_OK);
    assert_int_equal(n, -1);
    assert_int_not_equal(dd_pending_clear(r, PREFIX, "x"), VG_OK);
    assert_int_equal(dd_pending_count(r, PREFIX), -1);
    vg_redis_destroy(r);
}

static void fault_hook_is_inert_unless_named(void **state)
{
    (void)state;
    unsetenv("VIGIL_FAULT");
    assert_false(vg_fault_armed("dedupe.after_window"));
    vg_fault_point("dedupe.after_window");  /* returns: nothing named */
    setenv("VIGIL_FAULT", "other.point,dedupe.after_window", 1);
    assert_true(vg_fault_armed("dedupe.after_window"));
    assert_false(vg_fault_armed("dedupe.after"));
    assert_false(vg_fault_armed("dedupe.after_window_x"));
    assert_false(vg_fault_armed(""));
    unsetenv("VIGIL_FAULT");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(window_and_record_are_written_together),
        cmocka_unit_test(one_claimer_at_a_time_and_due_again_after_the_lease),
        cmocka_unit_test(expired_and_foreign_ids_are_forgotten),
        cmocka_unit_test(redis_down_is_reported),
        cmocka_unit_test(fault_hook_is_inert_unless_named),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
