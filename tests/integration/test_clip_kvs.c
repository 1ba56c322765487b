/* The kvs clip provider against the AWS fake (SigV4 checked): the links
 * come from GetDataEndpoint + GetHLSStreamingSessionURL with
 * PRODUCER_TIMESTAMP fragments over detection - pre_roll_s .. + length_s,
 * ON_DEMAND for a clip that has ended and LIVE_REPLAY for one still being
 * recorded (or as configured), Expires from expires_s, the data endpoint
 * asked once per stream. */
#include <math.h>
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

#include "clip/clip.h"
#include "config.h"
#include "fake_aws_ctl.h"
#include "fixture.h"
#include "timeutil.h"

#define S 1000000LL

static struct {
    struct fake_env f;
    struct vg_config cfg;
    char path[64];
} g;

static int group_setup(void **state)
{
    return fake_env_start(&g.f);
}

static int group_teardown(void **state)
{
    fake_env_stop(&g.f);
    if (g.path[0])
        unlink(g.path);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    return 0;
}

/* A provider from this `clips:` section (flow style, without braces). */
static struct vg_clip_provider *open_with(const char *clips)
{
    char yaml[1024];
    struct vg_clip_provider *p = NULL;
    if (g.path[0])
        unlink(g.path);
    snprintf(yaml, sizeof(yaml),
             "cameras:\n"
             "  - {id: porch, url: rtsp://cam/1, kvs_stream: porch-stream}\n"
             "  - {id: yard, url: rtsp://cam/2, kvs_stream: yard-stream}\n"
             "  - {id: shed, url: rtsp://cam/3}\n"
             "clips: {%s}\n", clips);
    snprintf(g.path, sizeof(g.path), "/tmp/vigil-clipkvs-XXXXXX");
    int fd = mkstemp(g.path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    assert_int_equal(vg_cfg_load(&g.cfg, g.path), VG_OK);
    assert_int_equal(vg_clip_open(&p, &g.cfg), VG_OK);
    assert_string_equal(vg_clip_type(p), "kvs");
    return p;
}

/* The last GetHLSStreamingSessionURL body the fake received. */
static json_t *last_hls(char *text, size_t cap)
{
    json_t *r = fake("GET", "/_fake/requests?bodies=1&limit=1&api="
                            "kinesisvideo.GetHLSStreamingSessionURL", NULL);
    const char *body = json_string_value(json_object_get(json_array_get(r, 0), "body"));
    assert_non_null(body);
    snprintf(text, cap, "%s", body);
    json_decref(r);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    return j;
}

static const char *jstr(json_t *o, const char *a, const char *b)
{
    o = json_object_get(o, a);
    return json_string_value(b ? json_object_get(o, b) : o);
}

static double range_ts(json_t *body, const char *key)
{
    json_t *sel = json_object_get(body, "HLSFragmentSelector");
    return json_number_value(json_object_get(json_object_get(sel, "TimestampRange"), key));
}

/* A wall-clock µs time as sent: seconds with millisecond precision (compared
 * as numbers: JSON drops trailing zeros, "….120" arrives as "….12"). */
static void assert_secs(double sent, int64_t us)
{
    double want = (double)(us / 1000) / 1000.0;
    assert_true(fabs(sent - want) < 0.0005);
}

static void ended_clip_is_on_demand(void **state)
{
    char url[VG_CLIP_URL_MAX], text[2048];
    struct vg_clip_provider *p = open_with("type: kvs, expires_s: 900, pre_roll_s: 4, "
                                           "length_s: 20");
    int64_t detect = vg_now_us() - 600 * S + 123456;
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&g.cfg, "porch"), detect, url, sizeof(url)),
                     VG_OK);
    assert_true(!strncmp(url, "https://", 8) && strstr(url, ".m3u8?SessionToken="));
    json_t *b = last_hls(text, sizeof(text));
    assert_string_equal(jstr(b, "StreamName", NULL), "porch-stream");
    assert_string_equal(jstr(b, "PlaybackMode", NULL), "ON_DEMAND");
    assert_string_equal(jstr(b, "HLSFragmentSelector", "FragmentSelectorType"),
                        "PRODUCER_TIMESTAMP");
    assert_int_equal(json_integer_value(json_object_get(b, "Expires")), 900);
    assert_secs(range_ts(b, "StartTimestamp"), detect - 4 * S);
    assert_secs(range_ts(b, "EndTimestamp"), detect + 16 * S);
    assert_true(range_ts(b, "EndTimestamp") - range_ts(b, "StartTimestamp") > 19.99);
    json_decref(b);
    json_t *ep = fake("GET", "/_fake/kinesisvideo", NULL);
    assert_string_equal(jstr(ep, "GetDataEndpoint", "APIName"), "GET_HLS_STREAMING_SESSION_URL");
    json_decref(ep);
    vg_clip_close(p);
}

static void clip_still_recording_is_live_replay(void **state)
{
    char url[VG_CLIP_URL_MAX], text[2048];
    struct vg_clip_provider *p = open_with("type: kvs");
    int64_t detect = vg_now_us() - 2 * S;
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&g.cfg, "yard"), detect, url, sizeof(url)),
                     VG_OK);
    json_t *b = last_hls(text, sizeof(text));
    assert_string_equal(jstr(b, "StreamName", NULL), "yard-stream");
    assert_string_equal(jstr(b, "PlaybackMode", NULL), "LIVE_REPLAY");
    assert_string_equal(jstr(b, "HLSFragmentSelector", "FragmentSelectorType"),
                        "PRODUCER_TIMESTAMP");
    assert_int_equal(json_integer_value(json_object_get(b, "Expires")), 3600);   /* default */
    /* from detection - 5 s, ending 30 s later: the session stops at the clip's end */
    double start = range_ts(b, "StartTimestamp"), end = range_ts(b, "EndTimestamp");
    assert_true(start > 0 && end - start > 29.99 && end - start < 30.01);
    assert_true(start * S < detect - 4.99 * S && start * S > detect - 5.01 * S);
    json_decref(b);
    vg_clip_close(p);
}

static void playback_as_configured(void **state)
{
    char url[VG_CLIP_URL_MAX], text[2048];
    struct vg_clip_provider *p = open_with("type: kvs, playback: on_demand");
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&g.cfg, "porch"), vg_now_us(), url,
                                  sizeof(url)), VG_OK);
    json_t *b = last_hls(text, sizeof(text));
    assert_string_equal(jstr(b, "PlaybackMode", NULL), "ON_DEMAND");
    json_decref(b);
    vg_clip_close(p);

    p = open_with("type: kvs, playback: live_replay");
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&g.cfg, "porch"), vg_now_us() - 3600 * S,
                                  url, sizeof(url)), VG_OK);
    b = last_hls(text, sizeof(text));
    assert_string_equal(jstr(b, "PlaybackMode", NULL), "LIVE_REPLAY");
    json_decref(b);
    vg_clip_close(p);
}

static void data_endpoint_asked_once_per_stream(void **state)
{
    char url[VG_CLIP_URL_MAX];
    struct vg_clip_provider *p = open_with("type: kvs");
    const struct vg_camera_cfg *cam = vg_cfg_camera(&g.cfg, "porch");
    /* earlier tests may have cached porch-stream's endpoint: use a fresh stream */
    struct vg_camera_cfg fresh = *cam;
    snprintf(fresh.kvs_stream, sizeof(fresh.kvs_stream), "burst-%d", (int)getpid());
    for (int i = 0; i < 5; i++)
        assert_int_equal(vg_clip_link(p, &fresh, vg_now_us() - (int64_t)i * 60 * S, url,
                                      sizeof(url)), VG_OK);
    assert_int_equal(fake_count("kinesisvideo.GetDataEndpoint"), 1);
    assert_int_equal(fake_count("kinesisvideo.GetHLSStreamingSessionURL"), 5);
    vg_clip_close(p);
}

static void no_stream_no_link(void **state)
{
    char url[VG_CLIP_URL_MAX];
    struct vg_clip_provider *p = open_with("type: kvs");
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&g.cfg, "shed"), vg_now_us(), url,
                                  sizeof(url)), VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "camera shed has no kvs_stream"));
    assert_int_equal(fake_count("kinesisvideo.*"), 0);

    /* a stream KVS does not know */
    fake_do("POST", "/_fake/config", "{\"strict_streams\":true}");
    struct vg_camera_cfg gone = *vg_cfg_camera(&g.cfg, "porch");
    snprintf(gone.kvs_stream, sizeof(gone.kvs_stream), "gone-%d", (int)getpid());
    assert_int_equal(vg_clip_link(p, &gone, vg_now_us(), url, sizeof(url)), VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "ResourceNotFoundException"));
    assert_non_null(strstr(vg_err_detail(), "clip of porch"));
    vg_clip_close(p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(ended_clip_is_on_demand, reset),
        cmocka_unit_test_setup(clip_still_recording_is_live_replay, reset),
        cmocka_unit_test_setup(playback_as_configured, reset),
        cmocka_unit_test_setup(data_endpoint_asked_once_per_stream, reset),
        cmocka_unit_test_setup(no_stream_no_link, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
