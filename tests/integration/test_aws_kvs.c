/* Kinesis Video HLS URLs against the AWS fake: the data endpoint, the
 * request bodies the fake received, local refusals, the endpoint cache. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "aws/client.h"
#include "aws/kvs.h"
#include "fake_aws_ctl.h"
#include "fixture.h"

#define T0 1700000000123456LL   /* µs: 2023-11-14T22:13:20.123456Z */
#define MIN_US (60 * 1000000LL)

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

/* The JSON body of the n-th request for api that the fake received (which
 * must be the last), as text (to check how numbers were written) and parsed. */
static json_t *nth_body(const char *api, size_t n, char *text, size_t cap)
{
    char path[256];
    assert_int_equal(fake_count(api), n);
    snprintf(path, sizeof(path), "/_fake/requests?bodies=1&limit=1&api=%s", api);
    json_t *r = fake("GET", path, NULL);
    const char *body = json_string_value(json_object_get(json_array_get(r, 0), "body"));
    assert_non_null(body);
    snprintf(text, cap, "%s", body);
    json_decref(r);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *jstr(json_t *o, const char *path)
{
    char copy[128], *save = NULL;
    snprintf(copy, sizeof(copy), "%s", path);
    for (char *k = strtok_r(copy, ".", &save); k && o; k = strtok_r(NULL, ".", &save))
        o = json_object_get(o, k);
    return json_string_value(o);
}

/* ---- tests ----------------------------------------------------------------- */

static void data_endpoint(void **state)
{
    char ep[VG_KVS_ENDPOINT_MAX], text[1024];
    assert_int_equal(vg_kvs_get_data_endpoint(g.f.aws, "front-door", "GET_HLS_STREAMING_SESSION_URL",
                                              ep, sizeof(ep)), VG_OK);
    assert_string_equal(ep, g.fake_url);
    json_t *b = nth_body("kinesisvideo.GetDataEndpoint", 1, text, sizeof(text));
    assert_string_equal(jstr(b, "StreamName"), "front-door");
    assert_string_equal(jstr(b, "APIName"), "GET_HLS_STREAMING_SESSION_URL");
    json_decref(b);
    char small[8] = "keep";
    assert_int_equal(vg_kvs_get_data_endpoint(g.f.aws, "front-door", "GET_HLS_STREAMING_SESSION_URL",
                                              small, sizeof(small)), VG_ERR_TOO_LARGE);
    assert_string_equal(small, "keep");
    assert_int_equal(vg_kvs_get_data_endpoint(g.f.aws, "front-door", "GET_SOMETHING", ep,
                                              sizeof(ep)), VG_ERR_INVALID);
}

static void on_demand_url(void **state)
{
    char ep[VG_KVS_ENDPOINT_MAX], url[VG_KVS_URL_MAX], text[1024];
    struct vg_kvs_hls_opts o = {.stream_name = "front-door", .mode = VG_KVS_ON_DEMAND,
                                .selector = VG_KVS_PRODUCER_TIMESTAMP, .start_us = T0,
                                .end_us = T0 + MIN_US, .expires_s = 600,
                                .max_fragments = 100};
    assert_int_equal(vg_kvs_get_data_endpoint(g.f.aws, "front-door",
                                              "GET_HLS_STREAMING_SESSION_URL", ep, sizeof(ep)),
                     VG_OK);
    assert_int_equal(vg_kvs_get_hls_url(g.f.aws, ep, &o, url, sizeof(url)), VG_OK);
    assert_true(!strncmp(url, "https://", 8) && strstr(url, ".m3u8?SessionToken="));
    json_t *b = nth_body("kinesisvideo.GetHLSStreamingSessionURL", 1, text, sizeof(text));
    assert_string_equal(jstr(b, "StreamName"), "front-door");
    assert_string_equal(jstr(b, "PlaybackMode"), "ON_DEMAND");
    assert_string_equal(jstr(b, "HLSFragmentSelector.FragmentSelectorType"), "PRODUCER_TIMESTAMP");
    json_t *range = json_object_get(json_object_get(b, "HLSFragmentSelector"), "TimestampRange");
    assert_true(json_is_real(json_object_get(range, "StartTimestamp")));
    /* seconds, milliseconds kept, written exactly */
    assert_non_null(strstr(text, "\"StartTimestamp\":1700000000.123"));
    assert_non_null(strstr(text, "\"EndTimestamp\":1700000060.123"));
    assert_null(strstr(text, "1700000000.1230"));
    assert_int_equal(json_integer_value(json_object_get(b, "Expires")), 600);
    assert_int_equal(json_integer_value(json_object_get(b, "MaxMediaPlaylistFragmentResults")),
                     100);
    json_decref(b);
}

static void live_replay_and_live(void **state)
{
    char url[VG_KVS_URL_MAX], text[1024];
    struct vg_kvs_hls_opts o = {.stream_name = "garage", .mode = VG_KVS_LIVE_REPLAY,
                                .start_us = T0};
    assert_int_equal(vg_kvs_get_hls_url(g.f.aws, g.fake_url, &o, url, sizeof(url)), VG_OK);
    json_t *b = nth_body("kinesisvideo.GetHLSStreamingSessionURL", 1, text, sizeof(text));
    assert_string_equal(jstr(b, "PlaybackMode"), "LIVE_REPLAY");
    assert_string_equal(jstr(b, "HLSFragmentSelector.FragmentSelectorType"), "SERVER_TIMESTAMP");
    json_t *range = json_object_get(json_object_get(b, "HLSFragmentSelector"), "TimestampRange");
    assert_non_null(json_object_get(range, "StartTimestamp"));
    assert_null(json_object_get(range, "EndTimestamp"));
    assert_int_equal(json_integer_value(json_object_get(b, "Expires")), 300);
    assert_null(json_object_get(b, "MaxMediaPlaylistFragmentResults"));
    json_decref(b);

    struct vg_kvs_hls_opts live = {.stream_name = "garage", .mode = VG_KVS_LIVE,
                                   .expires_s = 43200};
    assert_int_equal(vg_kvs_get_hls_url(g.f.aws, g.fake_url, &live, url, sizeof(url)), VG_OK);
    b = nth_body("kinesisvideo.GetHLSStreamingSessionURL", 2, text, sizeof(text));
    assert_string_equal(jstr(b, "PlaybackMode"), "LIVE");
    assert_null(json_object_get(json_object_get(b, "HLSFragmentSelector"), "TimestampRange"));
    json_decref(b);
}

static void invalid_combinations_refused_locally(void **state)
{
    char url[VG_KVS_URL_MAX] = "untouched";
    const struct vg_kvs_hls_opts bad[] = {
        {.stream_name = "s", .mode = VG_KVS_LIVE, .start_us = T0},
        {.stream_name = "s", .mode = VG_KVS_LIVE, .end_us = T0},
        {.stream_name = "s", .mode = VG_KVS_LIVE_REPLAY},
        {.stream_name = "s", .mode = VG_KVS_LIVE_REPLAY, .end_us = T0},
        {.stream_name = "s", .mode = VG_KVS_ON_DEMAND, .start_us = T0},
        {.stream_name = "s", .mode = VG_KVS_ON_DEMAND, .end_us = T0},
        {.stream_name = "s", .mode = VG_KVS_ON_DEMAND, .start_us = T0, .end_us = T0},
        {.stream_name = "s", .mode = VG_KVS_ON_DEMAND, .start_us = T0, .end_us = T0 - 1},
        {.stream_name = "s", .mode = VG_KVS_ON_DEMAND, .start_us = T0,
         .end_us = T0 + 24 * 60 * MIN_US + 1},
        {.stream_name = "s", .mode = VG_KVS_LIVE, .expires_s = 299},
        {.stream_name = "s", .mode = VG_KVS_LIVE, .expires_s = 43201},
        {.stream_name = "s", .mode = VG_KVS_LIVE, .max_fragments = 5001},
        {.stream_name = "s", .mode = VG_KVS_LIVE, .max_fragments = -1},
        {.stream_name = "s", .mode = (enum vg_kvs_playback)7},
        {.stream_name = "bad/name", .mode = VG_KVS_LIVE},
        {.stream_name = "", .mode = VG_KVS_LIVE},
        {.stream_name = NULL, .mode = VG_KVS_LIVE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(*bad); i++) {
        assert_int_equal(vg_kvs_get_hls_url(g.f.aws, g.fake_url, &bad[i], url, sizeof(url)),
                         VG_ERR_INVALID);
        assert_string_equal(url, "untouched");
    }
    assert_int_equal(vg_kvs_clip_url(g.f.aws, "s", 0, 0, 300, VG_KVS_ON_DEMAND, url, sizeof(url)),
                     VG_ERR_INVALID);
    struct vg_kvs_hls_opts ok = {.stream_name = "s", .mode = VG_KVS_LIVE};
    assert_int_equal(vg_kvs_get_hls_url(g.f.aws, "ftp://x", &ok, url, sizeof(url)),
                     VG_ERR_INVALID);
    assert_int_equal(fake_count("kinesisvideo.*"), 0);
    /* 24 hours exactly is allowed. */
    struct vg_kvs_hls_opts day = {.stream_name = "s", .mode = VG_KVS_ON_DEMAND, .start_us = T0,
                                  .end_us = T0 + 24 * 60 * MIN_US};
    assert_int_equal(vg_kvs_get_hls_url(g.f.aws, g.fake_url, &day, url, sizeof(url)), VG_OK);
}

static void unknown_stream_not_found(void **state)
{
    char ep[VG_KVS_ENDPOINT_MAX];
    fake_do("POST", "/_fake/config", "{\"strict_streams\":true}");
    fake_do("POST", "/_fake/streams", "{\"name\":\"porch\"}");
    assert_int_equal(vg_kvs_get_data_endpoint(g.f.aws, "porch", "GET_HLS_STREAMING_SESSION_URL",
                                              ep, sizeof(ep)), VG_OK);
    assert_int_equal(vg_kvs_get_data_endpoint(g.f.aws, "no-such-stream",
                                              "GET_HLS_STREAMING_SESSION_URL", ep, sizeof(ep)),
                     VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "ResourceNotFoundException"));
}

static void archived_media_endpoint_override(void **state)
{
    char url[VG_KVS_URL_MAX];
    struct vg_kvs_hls_opts o = {.stream_name = "s", .mode = VG_KVS_LIVE};
    setenv("AWS_ENDPOINT_URL_KINESIS_VIDEO_ARCHIVED_MEDIA", g.fake_url, 1);
    /* Nothing listens on port 1: the variable must win. */
    vg_status st = vg_kvs_get_hls_url(g.f.aws, "http://127.0.0.1:1", &o, url, sizeof(url));
    unsetenv("AWS_ENDPOINT_URL_KINESIS_VIDEO_ARCHIVED_MEDIA");
    assert_int_equal(st, VG_OK);
    assert_int_equal(fake_count("kinesisvideo.GetHLSStreamingSessionURL"), 1);
}

static void clip_url_caches_endpoint(void **state)
{
    char url[VG_KVS_URL_MAX], text[1024];
    assert_int_equal(vg_kvs_clip_url(g.f.aws, "cache-a", T0, T0 + MIN_US, 900, VG_KVS_ON_DEMAND,
                                     url, sizeof(url)), VG_OK);
    json_t *b = nth_body("kinesisvideo.GetHLSStreamingSessionURL", 1, text, sizeof(text));
    assert_string_equal(jstr(b, "PlaybackMode"), "ON_DEMAND");
    assert_string_equal(jstr(b, "HLSFragmentSelector.FragmentSelectorType"), "SERVER_TIMESTAMP");
    assert_int_equal(json_integer_value(json_object_get(b, "Expires")), 900);
    json_decref(b);
    assert_int_equal(vg_kvs_clip_url(g.f.aws, "cache-a", T0, 0, 0, VG_KVS_LIVE_REPLAY, url,
                                     sizeof(url)), VG_OK);
    assert_int_equal(vg_kvs_clip_url(g.f.aws, "cache-b", 0, 0, 0, VG_KVS_LIVE, url, sizeof(url)),
                     VG_OK);
    assert_int_equal(fake_count("kinesisvideo.GetDataEndpoint"), 2);
    assert_int_equal(fake_count("kinesisvideo.GetHLSStreamingSessionURL"), 3);

    /* A failed HLS call drops the cached endpoint: the next call asks again. */
    fake_do("POST", "/_fake/fail",
            "{\"api\":\"kinesisvideo.GetHLSStreamingSessionURL\",\"count\":1,"
            "\"status\":400,\"code\":\"NoDataRetentionException\"}");
    assert_int_equal(vg_kvs_clip_url(g.f.aws, "cache-a", T0, 0, 0, VG_KVS_LIVE_REPLAY, url,
                                     sizeof(url)), VG_ERR_AWS);
    assert_non_null(strstr(vg_err_detail(), "NoDataRetentionException"));
    assert_int_equal(vg_kvs_clip_url(g.f.aws, "cache-a", T0, 0, 0, VG_KVS_LIVE_REPLAY, url,
                                     sizeof(url)), VG_OK);
    assert_int_equal(fake_count("kinesisvideo.GetDataEndpoint"), 3);
}

static void *clip_worker(void *arg)
{
    char url[VG_KVS_URL_MAX], stream[32];
    intptr_t i = (intptr_t)arg;
    vg_status st = VG_OK;
    for (int k = 0; k < 10 && st == VG_OK; k++) {
        snprintf(stream, sizeof(stream), "threaded-%d", (int)((i + k) % 4));
        st = vg_kvs_clip_url(g.f.aws, stream, T0, T0 + MIN_US, 0, VG_KVS_ON_DEMAND, url,
                             sizeof(url));
    }
    return (void *)(intptr_t)st;
}

static void clip_url_from_threads(void **state)
{
    pthread_t t[8];
    for (intptr_t i = 0; i < 8; i++)
        assert_int_equal(pthread_create(&t[i], NULL, clip_worker, (void *)i), 0);
    for (int i = 0; i < 8; i++) {
        void *ret;
        pthread_join(t[i], &ret);
        assert_int_equal((intptr_t)ret, VG_OK);
    }
    assert_int_equal(fake_count("kinesisvideo.GetHLSStreamingSessionURL"), 80);
    /* 4 streams; threads that missed at the same moment may each ask once. */
    size_t n = fake_count("kinesisvideo.GetDataEndpoint");
    assert_true(n >= 4 && n <= 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(data_endpoint, reset),
        cmocka_unit_test_setup(on_demand_url, reset),
        cmocka_unit_test_setup(live_replay_and_live, reset),
        cmocka_unit_test_setup(invalid_combinations_refused_locally, reset),
        cmocka_unit_test_setup(unknown_stream_not_found, reset),
        cmocka_unit_test_setup(archived_media_endpoint_override, reset),
        cmocka_unit_test_setup(clip_url_caches_endpoint, reset),
        cmocka_unit_test_setup(clip_url_from_threads, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
