/* The KVS upload (services/capture/kvs_upload.c over lib/aws/kvs_putmedia.c)
 * against tests/fakes/fake_kvs_media.py: real video (OpenCV's vtest.avi
 * encoded to H.264 by the ffmpeg command line) demuxed with libavformat and
 * handed packet by packet to cap_kvs_* as capture does; the fake checks the
 * SigV4 signature, parses the MKV it receives and acknowledges it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <jansson.h>
#include <libavformat/avformat.h>

#include "clip.h"
#include "config.h"
#include "fake_aws_ctl.h"
#include "fixture.h"
#include "aws/kvs_putmedia.h"
#include "kvs_upload.h"
#include "metrics.h"
#include "timeutil.h"

#define STREAM "vigil-porch"
#define GOP_S 1                 /* -g 10 at 10 fps */
#define VIDEO_S 12

static struct {
    pid_t pid;
    int port;
    char dir[64], mp4[128], ts[128], cfg_path[128], url[64];
    struct vg_config cfg;
} g;

/* ---- a demuxed file, fed GOP by GOP --------------------------------------- */

struct src {
    AVFormatContext *fmt;
    int vi;
    AVPacket *pending;          /* the keyframe that starts the next GOP */
};

static void src_open(struct src *s, const char *path, int strip_extradata)
{
    memset(s, 0, sizeof(*s));
    assert_int_equal(avformat_open_input(&s->fmt, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(s->fmt, NULL) >= 0);
    s->vi = av_find_best_stream(s->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    assert_true(s->vi >= 0);
    AVCodecParameters *par = s->fmt->streams[s->vi]->codecpar;
    assert_int_equal(par->codec_id, AV_CODEC_ID_H264);
    if (strip_extradata) {      /* as an RTSP camera that announces no SPS/PPS */
        av_freep(&par->extradata);
        par->extradata_size = 0;
    }
    s->pending = av_packet_alloc();
}

static const AVStream *src_stream(struct src *s)
{
    return s->fmt->streams[s->vi];
}

/* Feed the packets of the next gops GOPs; the number of keyframes fed. */
static int src_feed(struct cap_kvs *k, struct src *s, int gops)
{
    int keys = 0;
    AVPacket *p = s->pending;
    for (;;) {
        if (!p->data && av_read_frame(s->fmt, p) < 0)
            break;
        if (p->stream_index != s->vi) {
            av_packet_unref(p);
            continue;
        }
        if (p->flags & AV_PKT_FLAG_KEY) {
            if (keys == gops)
                break;          /* kept for the next call */
            keys++;
        }
        cap_kvs_packet(k, src_stream(s), p);
        av_packet_unref(p);
    }
    return keys;
}

static void src_close(struct src *s)
{
    av_packet_free(&s->pending);
    avformat_close_input(&s->fmt);
}

/* ---- helpers ------------------------------------------------------------ */

static struct cap_kvs *kvs_new(void)
{
    struct cap_kvs *k = NULL;
    assert_int_equal(cap_kvs_create(&k, &g.cfg, &g.cfg.cameras[0]), VG_OK);
    assert_non_null(k);
    return k;
}

static struct vg_kvs_put_stats stats_of(struct cap_kvs *k)
{
    struct vg_kvs_put_stats st;
    cap_kvs_stats(k, &st);
    return st;
}

/* Wait up to 10 s for at least n acks of type e. */
static struct vg_kvs_put_stats wait_acks(struct cap_kvs *k, enum vg_kvs_ack e, uint64_t n)
{
    struct vg_kvs_put_stats st = stats_of(k);
    for (int i = 0; i < 1000 && st.acks[e] < n; i++) {
        vg_sleep_us(10000);
        st = stats_of(k);
    }
    if (st.acks[e] < n)
        fail_msg("%llu %s acks after 10 s, wanted %llu (last error: %s)",
                 (unsigned long long)st.acks[e], vg_kvs_ack_name(e), (unsigned long long)n,
                 st.last_error);
    return st;
}

static json_t *sessions(void)
{
    json_t *j = fake("GET", "/_fake/putmedia", NULL);
    json_t *s = json_incref(json_object_get(j, "sessions"));
    json_decref(j);
    assert_true(json_is_array(s));
    return s;
}

/* Wait up to 5 s for session i to be closed; its closed_by. */
static const char *wait_closed(size_t i, char *out, size_t cap)
{
    for (int n = 0; n < 500; n++) {
        json_t *s = sessions();
        json_t *one = json_array_get(s, i);
        if (one && !json_is_true(json_object_get(one, "open"))) {
            snprintf(out, cap, "%s", json_string_value(json_object_get(one, "closed_by")));
            json_decref(s);
            return out;
        }
        json_decref(s);
        vg_sleep_us(10000);
    }
    fail_msg("session %zu still open after 5 s", i);
    return NULL;
}

static int64_t jint(json_t *o, const char *key)
{
    return (int64_t)json_integer_value(json_object_get(o, key));
}

/* A session's MKV: a fresh EBML header (DocType), one H.264 track with
 * AVCC private data, clusters with keyframes first and increasing
 * timecodes (above *last_tc). The number of clusters. */
static size_t check_session_mkv(json_t *sess, int64_t *last_tc)
{
    assert_true(json_is_true(json_object_get(sess, "signed_ok")));
    assert_int_equal(jint(sess, "status"), 200);
    json_t *h = json_object_get(sess, "headers");
    assert_string_equal(json_string_value(json_object_get(h, "x-amzn-stream-name")), STREAM);
    assert_string_equal(json_string_value(json_object_get(h, "x-amzn-fragment-timecode-type")),
                        "ABSOLUTE");
    assert_string_equal(json_string_value(json_object_get(h, "transfer-encoding")), "chunked");
    assert_string_equal(json_string_value(json_object_get(sess, "doctype")), "matroska");
    assert_int_equal(jint(sess, "timecode_scale"), 1000000);
    json_t *tracks = json_object_get(sess, "tracks");
    assert_int_equal(json_array_size(tracks), 1);
    json_t *t = json_array_get(tracks, 0);
    assert_int_equal(jint(t, "number"), 1);
    assert_int_equal(jint(t, "type"), 1);
    assert_string_equal(json_string_value(json_object_get(t, "codec_id")), "V_MPEG4/ISO/AVC");
    assert_int_equal(jint(t, "codec_private_first_byte"), 1);   /* AVCDecoderConfigurationRecord */
    assert_true(jint(t, "codec_private_len") > 7);
    assert_int_equal(jint(t, "width"), 768);
    assert_int_equal(jint(t, "height"), 576);
    json_t *cl = json_object_get(sess, "clusters");
    size_t i;
    json_t *c;
    json_array_foreach(cl, i, c) {
        int64_t tc = jint(c, "timecode_ms");
        assert_true(json_is_true(json_object_get(c, "key_first")));
        assert_true(jint(c, "blocks") >= 5);
        assert_true(tc > *last_tc);
        assert_int_equal(jint(c, "producer_ms"), tc);
        if (i == 0) {           /* the request's producer start is its first fragment */
            char want[32];
            snprintf(want, sizeof(want), "%lld.%03lld", (long long)(tc / 1000),
                     (long long)(tc % 1000));
            assert_string_equal(
                json_string_value(json_object_get(h, "x-amzn-producer-start-timestamp")), want);
        }
        *last_tc = tc;
    }
    return json_array_size(cl);
}

static uint64_t counter(const char *name, const char *labels)
{
    return vg_counter_value(vg_counter_get_labeled(name, labels, "test"));
}

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    const char *args[] = {"--access-key", FIXTURE_AWS_KEY, "--secret-key", FIXTURE_AWS_SECRET,
                          "--region", FIXTURE_AWS_REGION, NULL};
    char cmd[1024];
    g.pid = fixture_fake_start("fake_kvs_media.py", args, &g.port);
    if (!g.port)
        return -1;
    fixture_aws_test_env();
    snprintf(g.url, sizeof(g.url), "http://127.0.0.1:%d", g.port);
    setenv("AWS_ENDPOINT_URL", g.url, 1);
    unsetenv("AWS_ENDPOINT_URL_KINESIS_VIDEO_MEDIA");
    fake_ctl_init(g.port);
    snprintf(g.dir, sizeof(g.dir), "/tmp/vigil-kvs-XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    snprintf(g.mp4, sizeof(g.mp4), "%s/porch.mp4", g.dir);
    snprintf(g.ts, sizeof(g.ts), "%s/porch.ts", g.dir);
    /* 1 s GOPs, no B-frames, as a camera sends them. */
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -nostdin -y -i %s -t %d -c:v libx264 "
             "-preset ultrafast -g 10 -keyint_min 10 -sc_threshold 0 -bf 0 -pix_fmt yuv420p %s "
             "&& ffmpeg -v error -nostdin -y -i %s -c copy -bsf:v h264_mp4toannexb %s",
             CLIP_VTEST, VIDEO_S, g.mp4, g.mp4, g.ts);
    if (system(cmd) != 0)
        return -1;
    snprintf(g.cfg_path, sizeof(g.cfg_path), "%s/vigil.yaml", g.dir);
    FILE *f = fopen(g.cfg_path, "w");
    if (!f)
        return -1;
    fprintf(f, "cameras:\n  - id: porch\n    url: %s\n    kvs_stream: %s\n", g.mp4, STREAM);
    fclose(f);
    return vg_cfg_load(&g.cfg, g.cfg_path) == VG_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    fixture_stop(g.pid);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", g.dir);
    if (system(cmd) != 0)
        return -1;
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

/* A whole file: one signed session, valid MKV, every fragment acknowledged. */
static void uploads_valid_mkv(void **state)
{
    uint64_t persisted0 = counter("vigil_capture_kvs_acks_total",
                                  "camera=\"porch\",event=\"persisted\"");
    int64_t t0_ms = vg_now_us() / 1000;
    struct cap_kvs *k = kvs_new();
    struct src s;
    src_open(&s, g.mp4, 0);
    cap_kvs_source_opened(k, src_stream(&s));
    assert_int_equal(src_feed(k, &s, 1000), VIDEO_S / GOP_S);
    cap_kvs_source_closed(k);       /* the last cluster too */
    struct vg_kvs_put_stats st = wait_acks(k, VG_KVS_ACK_PERSISTED, VIDEO_S / GOP_S);
    assert_int_equal(st.acks[VG_KVS_ACK_BUFFERING], VIDEO_S / GOP_S);
    assert_int_equal(st.acks[VG_KVS_ACK_RECEIVED], VIDEO_S / GOP_S);
    assert_int_equal(st.acks[VG_KVS_ACK_ERROR], 0);
    assert_int_equal(st.clusters_dropped, 0);
    assert_int_equal(st.connects, 1);
    assert_int_equal(st.last_http_status, 200);
    assert_true(counter("vigil_capture_kvs_acks_total", "camera=\"porch\",event=\"persisted\"") -
                persisted0 == VIDEO_S / GOP_S);
    cap_kvs_destroy(k);             /* ends the body: the fake sees the client's end */

    char why[32];
    assert_string_equal(wait_closed(0, why, sizeof(why)), "client");
    json_t *ss = sessions();
    assert_int_equal(json_array_size(ss), 1);
    int64_t last = 0;
    json_t *sess = json_array_get(ss, 0);
    assert_int_equal(check_session_mkv(sess, &last), VIDEO_S / GOP_S);
    /* Absolute wall-clock timecodes: from now on, one second per GOP. */
    json_t *cl = json_object_get(sess, "clusters");
    int64_t first = jint(json_array_get(cl, 0), "timecode_ms");
    assert_true(first >= t0_ms - 1000 && first <= t0_ms + 3000);
    assert_true(last - first >= (VIDEO_S - 2) * 1000 && last - first <= VIDEO_S * 1000);
    assert_int_equal(json_array_size(json_object_get(sess, "errors")), 0);
    json_decref(ss);
    assert_int_equal(fake_count("kinesisvideo.GetDataEndpoint"), 1);
    src_close(&s);
}

/* Annex B packets and no extradata (an RTSP camera): the SPS/PPS come from
 * the first keyframe, the muxer writes them as AVCC. */
static void annexb_without_extradata(void **state)
{
    struct cap_kvs *k = kvs_new();
    struct src s;
    src_open(&s, g.ts, 1);
    cap_kvs_source_opened(k, src_stream(&s));
    src_feed(k, &s, 4);
    cap_kvs_source_closed(k);
    wait_acks(k, VG_KVS_ACK_PERSISTED, 4);
    cap_kvs_destroy(k);
    char why[32];
    wait_closed(0, why, sizeof(why));
    json_t *ss = sessions();
    int64_t last = 0;
    assert_int_equal(check_session_mkv(json_array_get(ss, 0), &last), 4);
    json_decref(ss);
    src_close(&s);
}

/* An ERROR ack: counted and logged, the session ends, the next one starts
 * with a fresh EBML header and goes on with later timecodes. */
static void error_ack_reconnects(void **state)
{
    uint64_t e0 = counter("vigil_capture_kvs_errors_total", "camera=\"porch\",error_id=\"4002\"");
    struct cap_kvs *k = kvs_new();
    struct src s;
    src_open(&s, g.mp4, 0);
    cap_kvs_source_opened(k, src_stream(&s));
    src_feed(k, &s, 3);
    wait_acks(k, VG_KVS_ACK_PERSISTED, 2);
    fake_do("POST", "/_fake/putmedia/error", "{\"error_id\":4002}");
    src_feed(k, &s, 1);             /* cluster 3 completes: refused */
    struct vg_kvs_put_stats st = wait_acks(k, VG_KVS_ACK_ERROR, 1);
    assert_int_equal(st.last_error_id, 4002);
    assert_int_equal(counter("vigil_capture_kvs_errors_total",
                             "camera=\"porch\",error_id=\"4002\"") - e0, 1);
    char why[32];
    assert_string_equal(wait_closed(0, why, sizeof(why)), "error");
    src_feed(k, &s, 1000);
    cap_kvs_source_closed(k);
    st = wait_acks(k, VG_KVS_ACK_PERSISTED, VIDEO_S / GOP_S - 2);
    assert_int_equal(st.connects, 2);
    cap_kvs_destroy(k);
    wait_closed(1, why, sizeof(why));

    json_t *ss = sessions();
    assert_int_equal(json_array_size(ss), 2);
    int64_t last = 0;
    size_t n0 = check_session_mkv(json_array_get(ss, 0), &last);
    size_t n1 = check_session_mkv(json_array_get(ss, 1), &last);
    assert_int_equal(n0, 3);        /* two persisted, the third refused */
    assert_true(n1 >= VIDEO_S / GOP_S - 3);
    json_t *err = json_array_get(json_object_get(json_array_get(ss, 0), "errors"), 0);
    assert_int_equal(jint(err, "error_id"), 4002);
    json_decref(ss);
    src_close(&s);
}

/* The service's idle close (IDLE acks, then the end of the session): the
 * uploader reconnects when video comes again, with a fresh header. */
static void idle_close_reconnects(void **state)
{
    fake_do("POST", "/_fake/putmedia/config", "{\"idle_close_s\":1.2,\"idle_ack_s\":0.3}");
    struct cap_kvs *k = kvs_new();
    struct src s;
    src_open(&s, g.mp4, 0);
    cap_kvs_source_opened(k, src_stream(&s));
    src_feed(k, &s, 3);
    wait_acks(k, VG_KVS_ACK_PERSISTED, 2);
    char why[32];
    assert_string_equal(wait_closed(0, why, sizeof(why)), "idle");
    struct vg_kvs_put_stats st = stats_of(k);
    assert_true(st.acks[VG_KVS_ACK_IDLE] >= 1);
    src_feed(k, &s, 1000);
    cap_kvs_source_closed(k);
    st = wait_acks(k, VG_KVS_ACK_PERSISTED, VIDEO_S / GOP_S);
    assert_int_equal(st.connects, 2);
    assert_int_equal(st.acks[VG_KVS_ACK_ERROR], 0);
    cap_kvs_destroy(k);
    wait_closed(1, why, sizeof(why));

    json_t *ss = sessions();
    assert_int_equal(json_array_size(ss), 2);
    int64_t last = 0;
    size_t n = check_session_mkv(json_array_get(ss, 0), &last);
    n += check_session_mkv(json_array_get(ss, 1), &last);
    assert_int_equal(n, VIDEO_S / GOP_S);   /* nothing lost across the reconnect */
    json_decref(ss);
    src_close(&s);
}

/* A wrong secret: PutMedia answers 403 and the uploader says why. */
static void bad_signature_refused(void **state)
{
    setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret", 1);
    setenv("AWS_ENDPOINT_URL_KINESIS_VIDEO_MEDIA", g.url, 1);  /* straight to PutMedia */
    struct cap_kvs *k = kvs_new();   /* loads its credentials when it first connects */
    struct src s;
    src_open(&s, g.mp4, 0);
    cap_kvs_source_opened(k, src_stream(&s));
    src_feed(k, &s, 3);
    struct vg_kvs_put_stats st = stats_of(k);
    for (int i = 0; i < 500 && st.last_http_status != 403; i++) {
        vg_sleep_us(10000);
        st = stats_of(k);
    }
    for (int i = 0; i < 100 && !st.last_error[0]; i++) {
        vg_sleep_us(10000);
        st = stats_of(k);
    }
    setenv("AWS_SECRET_ACCESS_KEY", FIXTURE_AWS_SECRET, 1);
    unsetenv("AWS_ENDPOINT_URL_KINESIS_VIDEO_MEDIA");
    assert_int_equal(st.last_http_status, 403);
    assert_non_null(strstr(st.last_error, "HTTP 403: InvalidSignatureException"));
    assert_non_null(strstr(st.last_error, "signature we calculated does not match"));
    assert_int_equal(st.acks[VG_KVS_ACK_PERSISTED], 0);
    assert_int_equal(st.sessions_ok, 0);
    /* The refusal dropped the cached credentials: with the next video the
     * right ones are read again and the upload goes on. */
    src_feed(k, &s, 3);
    wait_acks(k, VG_KVS_ACK_PERSISTED, 2);
    cap_kvs_destroy(k);
    json_t *ss = sessions();
    json_t *sess = json_array_get(ss, 0);
    assert_false(json_is_true(json_object_get(sess, "signed_ok")));
    assert_int_equal(jint(sess, "status"), 403);
    assert_int_equal(json_array_size(json_object_get(sess, "clusters")), 0);
    json_decref(ss);
    src_close(&s);
}

/* Disconnected (nothing listens): the queue keeps the newest clusters that
 * fit, drops whole older ones, and never makes the caller wait. */
static void queue_full_drops_oldest(void **state)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fixture_free_port());
    setenv("AWS_ENDPOINT_URL_KINESIS_VIDEO_MEDIA", url, 1);
    struct vg_aws *a = NULL;
    struct vg_kvs_put *p = NULL;
    assert_int_equal(vg_aws_create(&a, &(struct vg_aws_opts){0}), VG_OK);
    struct vg_kvs_put_opts o = {.stream_name = "vigil-queue", .queue_bytes = 100000,
                                .reconnect_min_ms = 5000};
    assert_int_equal(vg_kvs_put_start(&p, a, &o), VG_OK);
    static uint8_t cluster[200000];
    assert_int_equal(vg_kvs_put_cluster(p, cluster, 30000, 1000), VG_ERR_INVALID);
    assert_int_equal(vg_kvs_put_header(p, "\x1a\x45\xdf\xa3", 4), VG_OK);
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < 10; i++)
        assert_int_equal(vg_kvs_put_cluster(p, cluster, 30000, 1000 + i), VG_OK);
    assert_int_equal(vg_kvs_put_cluster(p, cluster, sizeof(cluster), 2000), VG_ERR_TOO_LARGE);
    assert_true(vg_mono_us() - t0 < 100000);
    struct vg_kvs_put_stats st;
    vg_kvs_put_get_stats(p, &st);
    assert_int_equal(st.clusters_queued, 10);
    assert_int_equal(st.clusters_dropped, 7 + 1);
    assert_int_equal(st.queued_bytes, 90000);
    assert_int_equal(st.clusters_sent, 0);
    vg_kvs_put_stop(p);
    vg_aws_destroy(a);
    unsetenv("AWS_ENDPOINT_URL_KINESIS_VIDEO_MEDIA");
}

/* Off without a stream name; the fake never hears of it. */
static void off_without_stream(void **state)
{
    struct vg_camera_cfg cam = g.cfg.cameras[0];
    cam.kvs_stream[0] = '\0';
    struct cap_kvs *k = (struct cap_kvs *)1;
    assert_int_equal(cap_kvs_create(&k, &g.cfg, &cam), VG_OK);
    assert_null(k);
    cap_kvs_packet(NULL, NULL, NULL);
    cap_kvs_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(uploads_valid_mkv, reset),
        cmocka_unit_test_setup(annexb_without_extradata, reset),
        cmocka_unit_test_setup(error_ack_reconnects, reset),
        cmocka_unit_test_setup(idle_close_reconnects, reset),
        cmocka_unit_test_setup(bad_signature_refused, reset),
        cmocka_unit_test_setup(queue_full_drops_oldest, reset),
        cmocka_unit_test_setup(off_without_stream, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
