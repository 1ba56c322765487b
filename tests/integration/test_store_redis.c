/* The redis metadata store against a real redis-server on a loopback port:
 * records by camera and time, newest first, kinds and limits, the default
 * horizon, retention by age and by count applied with each put in one round
 * trip (EXPIRE refreshed), and the frame fetcher with identities merged and
 * snapshot links resolved through a real fs store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "fixture.h"
#include "redis.h"
#include "store/meta_store.h"
#include "store/snapshot_store.h"
#include "timeutil.h"

static struct {
    struct fixture_redis fx;
    struct vg_config cfg;
    char cfg_path[64];
    int64_t now;
} g;

static vg_status load(const char *store_yaml)
{
    char yaml[2048];
    if (g.cfg_path[0])
        unlink(g.cfg_path);
    snprintf(g.cfg_path, sizeof(g.cfg_path), "/tmp/vigil-storeredis-XXXXXX");
    int fd = mkstemp(g.cfg_path);
    assert_true(fd >= 0);
    snprintf(yaml, sizeof(yaml),
             "prefix: vt\nredis_url: redis://127.0.0.1:%d\n"
             "console: {public_url: http://console.test:8080}\n%s", g.fx.port, store_yaml);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    return vg_cfg_load(&g.cfg, g.cfg_path);
}

static long long redis_int(const char *fmt, const char *arg)
{
    redisReply *r = NULL;
    assert_int_equal(vg_redis_cmd(g.fx.r, &r, fmt, arg), VG_OK);
    long long v = r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    return v;
}

static int setup(void **state)
{
    (void)state;
    g.now = vg_now_us();
    return fixture_redis_up(&g.fx);
}

static int teardown(void **state)
{
    (void)state;
    fixture_redis_down(&g.fx);
    if (g.cfg_path[0])
        unlink(g.cfg_path);
    return 0;
}

static int flush(void **state)
{
    (void)state;
    redisReply *r = NULL;
    if (vg_redis_cmd(g.fx.r, &r, "FLUSHALL") != VG_OK)
        return -1;
    freeReplyObject(r);
    return 0;
}

static struct vg_meta_store *open_meta(const char *yaml, int shared)
{
    struct vg_meta_store *m = NULL;
    assert_int_equal(load(yaml), VG_OK);
    assert_int_equal(vg_meta_store_open(&m, &g.cfg, shared ? g.fx.r : NULL), VG_OK);
    assert_string_equal(vg_meta_store_type(m), "redis");
    return m;
}

static void put_frame(struct vg_meta_store *m, const char *cam, int64_t ts, const char *trace,
                      const char *ref)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"camera\":\"%s\",\"capture_ts_us\":%lld,\"trace_id\":\"%s\",\"labels\":"
             "[{\"label\":\"person\",\"confidence\":0.91,\"box\":{\"x\":0.1,\"y\":0.2,\"w\":0.3,"
             "\"h\":0.4}}],\"zones\":[\"drive\"],\"snapshot_ref\":\"%s\"}",
             cam, (long long)ts, trace, ref ? ref : "");
    assert_int_equal(vg_meta_put(m, VG_META_FRAME, cam, ts, trace, json), VG_OK);
}

static void newest_first_ranges_kinds_limits(void **state)
{
    (void)state;
    struct vg_meta_store *m = open_meta("store:\n  metadata: {type: redis}\n", 1);
    struct vg_meta_result res;
    int64_t t0 = g.now - 3600LL * 1000000;     /* an hour ago */
    char id[32];
    for (int i = 0; i < 20; i++) {
        snprintf(id, sizeof(id), "f%02d", i);
        put_frame(m, "porch", t0 + i * 1000000LL, id, NULL);
        if (i % 5 == 0) {
            snprintf(id, sizeof(id), "a%02d", i);
            assert_int_equal(vg_meta_put(m, VG_META_ALERT, "porch", t0 + i * 1000000LL + 1, id,
                                         "{\"kind\":\"alert\"}"), VG_OK);
        }
    }
    put_frame(m, "yard", t0, "other-camera", NULL);

    /* Everything of the last day (the default horizon), newest first. */
    struct vg_meta_query q = {.camera = "porch"};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 24);
    for (size_t i = 1; i < res.n; i++)
        assert_true(res.r[i - 1].ts_us >= res.r[i].ts_us);
    assert_int_equal(res.r[0].kind, VG_META_FRAME);
    assert_string_equal(res.r[0].id, "f19");
    assert_int_equal(res.r[0].ts_us, t0 + 19000000LL);      /* µs kept exactly */
    assert_int_equal(res.r[4].kind, VG_META_ALERT);   /* f19 f18 f17 f16 a15 */
    assert_string_equal(res.r[4].id, "a15");
    assert_non_null(strstr(res.r[0].json, "\"zones\":[\"drive\"]"));
    vg_meta_result_free(&res);

    /* A range, a limit and a kind. */
    q = (struct vg_meta_query){.camera = "porch", .from_us = t0 + 5000000LL,
                               .to_us = t0 + 12000000LL, .kinds = VG_META_FRAME, .limit = 3};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 3);
    assert_string_equal(res.r[0].id, "f12");
    assert_string_equal(res.r[2].id, "f10");
    vg_meta_result_free(&res);
    q.kinds = VG_META_ALERT;
    q.limit = 0;
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 2);
    assert_string_equal(res.r[0].id, "a10");
    assert_string_equal(res.r[1].id, "a05");
    vg_meta_result_free(&res);

    /* Out of the horizon: nothing; bad queries: refused. */
    q = (struct vg_meta_query){.camera = "porch", .to_us = t0 - 1};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 0);
    q = (struct vg_meta_query){.camera = "porch", .from_us = 10, .to_us = 5};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_ERR_INVALID);
    q = (struct vg_meta_query){.camera = NULL};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_ERR_INVALID);
    assert_int_equal(vg_meta_put(m, VG_META_FRAME, "porch", t0, "a|b", "{}"), VG_ERR_INVALID);
    assert_int_equal(vg_meta_put(m, VG_META_FRAME, "../x", t0, "ab", "{}"), VG_ERR_INVALID);
    assert_int_equal(vg_meta_put(m, (enum vg_meta_kind)3, "porch", t0, "ab", "{}"),
                     VG_ERR_INVALID);
    vg_meta_store_close(m);
}

/* fetch_limit and fetch_horizon_hrs from store.metadata. */
static void fetch_defaults_from_config(void **state)
{
    (void)state;
    struct vg_meta_store *m = open_meta(
        "store:\n  metadata: {type: redis, fetch_horizon_hrs: 2, fetch_limit: 4}\n", 0);
    struct vg_meta_result res;
    char id[16];
    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof(id), "n%d", i);
        put_frame(m, "porch", g.now - (int64_t)i * 60 * 1000000, id, NULL);
    }
    put_frame(m, "porch", g.now - 3 * 3600LL * 1000000, "three-hours-ago", NULL);
    struct vg_meta_query q = {.camera = "porch"};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 4);
    assert_string_equal(res.r[0].id, "n0");
    vg_meta_result_free(&res);
    q.limit = 100;
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 6);     /* not the one beyond the 2 h horizon */
    vg_meta_result_free(&res);
    q.limit = 5000;                 /* capped at 1000, no error */
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    vg_meta_result_free(&res);
    vg_meta_store_close(m);
}

static void retention_by_count_and_age(void **state)
{
    (void)state;
    struct vg_meta_store *m =
        open_meta("store:\n  metadata: {type: redis, ttl_h: 1, max_records: 10}\n", 1);
    char id[16];
    /* Two hours old: gone with the next put. */
    put_frame(m, "porch", g.now - 2 * 3600LL * 1000000, "stale", NULL);
    redisReply *before = NULL;
    assert_int_equal(vg_redis_cmd(g.fx.r, &before, "INFO commandstats"), VG_OK);
    const char *e = strstr(before->str, "cmdstat_eval:calls=");
    long long evals_before = e ? atoll(e + strlen("cmdstat_eval:calls=")) : 0;
    freeReplyObject(before);
    for (int i = 0; i < 25; i++) {
        snprintf(id, sizeof(id), "r%02d", i);
        put_frame(m, "porch", g.now - (int64_t)(25 - i) * 1000000, id, NULL);
    }
    assert_int_equal(redis_int("ZCARD %s", "vt:meta:porch"), 10);
    long long ttl = redis_int("TTL %s", "vt:meta:porch");
    assert_true(ttl > 3500 && ttl <= 3600);
    /* Add + trims + EXPIRE: one command per put. */
    redisReply *after = NULL;
    assert_int_equal(vg_redis_cmd(g.fx.r, &after, "INFO commandstats"), VG_OK);
    e = strstr(after->str, "cmdstat_eval:calls=");
    assert_non_null(e);
    assert_int_equal(atoll(e + strlen("cmdstat_eval:calls=")) - evals_before, 25);
    freeReplyObject(after);

    struct vg_meta_result res;
    struct vg_meta_query q = {.camera = "porch", .from_us = 1, .to_us = g.now + 1000000,
                              .limit = 100};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 10);
    assert_string_equal(res.r[0].id, "r24");
    assert_string_equal(res.r[9].id, "r15");
    vg_meta_result_free(&res);

    /* A redelivered record stored twice shows once. */
    put_frame(m, "porch", g.now, "twice", NULL);
    put_frame(m, "porch", g.now, "twice", "fs:frames/porch/x.jpg");
    q.limit = 3;
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 3);
    assert_string_equal(res.r[0].id, "twice");
    assert_string_not_equal(res.r[1].id, "twice");
    vg_meta_result_free(&res);
    vg_meta_store_close(m);
}

static void frame_fetcher(void **state)
{
    (void)state;
    char dir[] = "/tmp/vigil-storeredis-snaps-XXXXXX", yaml[512], ref[VG_SNAP_REF_MAX];
    assert_non_null(mkdtemp(dir));
    snprintf(yaml, sizeof(yaml),
             "store:\n  metadata: {type: redis}\n  snapshots: {type: fs, dir: %s}\n", dir);
    struct vg_meta_store *m = open_meta(yaml, 1);
    struct vg_snap_store *snaps = NULL;
    assert_int_equal(vg_snap_store_open(&snaps, &g.cfg), VG_OK);
    int64_t t = g.now - 600LL * 1000000;
    assert_int_equal(vg_snap_put(snaps, "porch", t, "trace-b", (const uint8_t *)"jpg", 3, ref,
                                 sizeof(ref)), VG_OK);
    put_frame(m, "porch", t - 5000000, "trace-a", NULL);
    put_frame(m, "porch", t, "trace-b", ref);
    for (int i = 0; i < 2; i++) {
        char id[32], json[256];
        snprintf(id, sizeof(id), "trace-b-%d", i);
        snprintf(json, sizeof(json), "{\"trace_id\":\"trace-b\",\"index\":%d,\"person_id\":"
                 "\"p%d\",\"display_name\":\"%s\",\"similarity\":0.9}", i, i,
                 i ? "Bob" : "Alice");
        assert_int_equal(vg_meta_put(m, VG_META_IDENTITY, "porch", t, id, json), VG_OK);
    }
    assert_int_equal(vg_meta_put(m, VG_META_ALERT, "porch", t, "alert-1", "{}"), VG_OK);

    char *text = NULL;
    struct vg_meta_query q = {.camera = "porch"};
    assert_int_equal(vg_frames_fetch(m, snaps, &q, &text), VG_OK);
    json_error_t err;
    json_t *doc = json_loads(text, 0, &err);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "camera")), "porch");
    assert_true(json_integer_value(json_object_get(doc, "to_us")) >= g.now);
    json_t *frames = json_object_get(doc, "frames");
    assert_int_equal(json_array_size(frames), 2);   /* frames only: no alert */
    json_t *b = json_array_get(frames, 0), *a = json_array_get(frames, 1);
    assert_string_equal(json_string_value(json_object_get(b, "trace_id")), "trace-b");
    assert_int_equal(json_integer_value(json_object_get(b, "ts_us")), t);
    json_t *ids = json_object_get(b, "identities");
    assert_int_equal(json_array_size(ids), 2);
    assert_non_null(strstr(text, "\"display_name\":\"Alice\""));
    assert_non_null(strstr(text, "\"display_name\":\"Bob\""));
    char want[2048];
    snprintf(want, sizeof(want), "http://console.test:8080/api/snapshots/%s", ref + 3);
    assert_string_equal(json_string_value(json_object_get(b, "snapshot_url")), want);
    assert_int_equal(json_array_size(json_object_get(a, "identities")), 0);
    assert_null(json_object_get(a, "snapshot_url"));
    json_t *label = json_array_get(json_object_get(a, "labels"), 0);
    assert_true(json_real_value(json_object_get(label, "confidence")) > 0.9);
    json_decref(doc);
    free(text);

    /* Without a snapshot store: refs stay, no links. */
    assert_int_equal(vg_frames_fetch(m, NULL, &q, &text), VG_OK);
    assert_null(strstr(text, "snapshot_url"));
    assert_non_null(strstr(text, "snapshot_ref"));
    free(text);
    vg_snap_store_close(snaps);
    vg_meta_store_close(m);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

/* Redis down: a put fails fast with a clear error, and works once it is back. */
/* An incident's state is put again as it grows: the newest replaces the one
 * before (same kind, id and time), other records at that time stay. */
static void same_record_replaces(void **state)
{
    (void)state;
    struct vg_meta_store *m = open_meta("store:\n  metadata: {type: redis}\n", 0);
    struct vg_meta_query q = {.camera = "porch", .kinds = VG_META_INCIDENT | VG_META_ALERT};
    struct vg_meta_result res;
    assert_int_equal(vg_meta_put(m, VG_META_ALERT, "porch", g.now, "inc-1", "{\"a\":1}"), VG_OK);
    assert_int_equal(vg_meta_put(m, VG_META_INCIDENT, "porch", g.now, "inc-1", "{\"count\":1}"),
                     VG_OK);
    assert_int_equal(vg_meta_put(m, VG_META_INCIDENT, "porch", g.now, "inc-1", "{\"count\":2}"),
                     VG_OK);
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 2);
    int incidents = 0;
    for (size_t i = 0; i < res.n; i++)
        if (res.r[i].kind == VG_META_INCIDENT) {
            incidents++;
            assert_string_equal(res.r[i].json, "{\"count\":2}");
        }
    assert_int_equal(incidents, 1);
    vg_meta_result_free(&res);
    vg_meta_store_close(m);
}

static void server_down_then_back(void **state)
{
    (void)state;
    struct vg_meta_store *m = open_meta("store:\n  metadata: {type: redis}\n", 0);
    put_frame(m, "porch", g.now, "before", NULL);
    fixture_stop(g.fx.redis);
    vg_status st = vg_meta_put(m, VG_META_FRAME, "porch", g.now, "during", "{}");
    assert_true(st == VG_ERR_UNAVAILABLE || st == VG_ERR_IO || st == VG_ERR_REDIS);
    assert_non_null(strstr(vg_err_detail(), "metadata put frame porch/during"));
    g.fx.redis = fixture_redis_start(g.fx.port);
    vg_status again = VG_ERR_UNAVAILABLE;
    for (int i = 0; i < 30 && again != VG_OK; i++) {
        vg_sleep_us(200000);
        again = vg_meta_put(m, VG_META_FRAME, "porch", g.now, "after", "{}");
    }
    assert_int_equal(again, VG_OK);
    vg_meta_store_close(m);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(newest_first_ranges_kinds_limits, flush),
        cmocka_unit_test_setup(fetch_defaults_from_config, flush),
        cmocka_unit_test_setup(retention_by_count_and_age, flush),
        cmocka_unit_test_setup(frame_fetcher, flush),
        cmocka_unit_test_setup(same_record_replaces, flush),
        cmocka_unit_test_setup(server_down_then_back, flush),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
