/* The rolling recording (services/capture/record.h) on real video made here
 * with the ffmpeg command line: packets demuxed from the file go through the
 * recorder as capture hands them over; the segments are checked with ffprobe,
 * the index line by line. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <libavformat/avformat.h>

#include "metrics.h"
#include "record.h"
#include "record_index.h"

#define CAM "cam1"
#define MAX_PKTS 2000
#define MAX_SEGS 64

static char tmp[256];
static int have_x265;

static void sh(const char *fmt, ...)
{
    char cmd[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int rc = system(cmd);
    if (rc != 0)
        fail_msg("command failed (%d): %s", rc, cmd);
}

static void path_of(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", tmp, name);
}

/* A clip of testsrc: seconds long, `size`, 25 fps, a keyframe every second. */
static void make_clip(const char *name, const char *codec, const char *size, int seconds,
                      const char *extra)
{
    char out[512];
    path_of(out, sizeof(out), name);
    sh("ffmpeg -hide_banner -nostdin -loglevel error -y -f lavfi -i testsrc=s=%s:r=25 -t %d "
       "%s -g 25 -keyint_min 25 -sc_threshold 0 -pix_fmt %s %s '%s'", size, seconds, codec,
       strstr(codec, "mjpeg") ? "yuvj420p" : "yuv420p", extra ? extra : "", out);
}

static int setup(void **state)
{
    (void)state;
    snprintf(tmp, sizeof(tmp), "/tmp/vigil-test-record.XXXXXX");
    if (!mkdtemp(tmp))
        return -1;
    FILE *p = popen("ffmpeg -hide_banner -encoders 2>/dev/null", "r");
    char line[256];
    while (p && fgets(line, sizeof(line), p))
        if (strstr(line, " libx265 "))
            have_x265 = 1;
    if (p)
        pclose(p);
    make_clip("h264.mp4", "-c:v libx264 -preset veryfast", "320x240", 12, NULL);
    make_clip("h264-gop2.mp4", "-c:v libx264 -preset veryfast", "320x240", 12,
              "-g 50 -keyint_min 50");
    make_clip("mjpeg.avi", "-c:v mjpeg -q:v 5", "320x240", 6, NULL);
    if (have_x265)
        make_clip("hevc.mp4", "-c:v libx265 -preset ultrafast -x265-params log-level=error",
                  "320x240", 6, "-tag:v hvc1");
    /* A stream that changes size mid-way: two MPEG-TS clips one after the other. */
    make_clip("small.ts", "-c:v libx264 -preset veryfast", "320x240", 3, NULL);
    make_clip("large.ts", "-c:v libx264 -preset veryfast", "640x480", 3, NULL);
    sh("cat '%s/small.ts' '%s/large.ts' > '%s/resize.ts'", tmp, tmp, tmp);
    if (have_x265) {
        const char *x265 = "-c:v libx265 -preset ultrafast -x265-params log-level=error";
        make_clip("small-hevc.ts", x265, "320x240", 3, NULL);
        make_clip("large-hevc.ts", x265, "640x480", 3, NULL);
        sh("cat '%s/small-hevc.ts' '%s/large-hevc.ts' > '%s/resize-hevc.ts'", tmp, tmp, tmp);
    }
    /* Noise does not compress: about 375 kB a second. */
    make_clip("fat.mp4", "-c:v libx264 -preset veryfast -b:v 3M -maxrate 3M -bufsize 1M",
              "320x240", 10, "-vf noise=alls=60:allf=t");
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    char full[512];
    path_of(full, sizeof(full), "full");
    umount(full);                   /* test_disk_full's tmpfs, if a failure left it */
    if (tmp[0] && strlen(tmp) > 10 && !getenv("VIGIL_TEST_KEEP"))
        sh("rm -rf '%s'", tmp);
    return 0;
}

/* ---- demuxing ----------------------------------------------------------------- */

struct clip_pkts {
    AVFormatContext *fmt;
    AVStream *st;
    AVPacket *pkt[MAX_PKTS];
    int n, keys;
};

static void demux(struct clip_pkts *c, const char *name)
{
    char path[512];
    path_of(path, sizeof(path), name);
    memset(c, 0, sizeof(*c));
    assert_int_equal(avformat_open_input(&c->fmt, path, NULL, NULL), 0);
    assert_true(avformat_find_stream_info(c->fmt, NULL) >= 0);
    int idx = av_find_best_stream(c->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    assert_true(idx >= 0);
    c->st = c->fmt->streams[idx];
    AVPacket *p = av_packet_alloc();
    while (av_read_frame(c->fmt, p) >= 0 && c->n < MAX_PKTS) {
        if (p->stream_index == idx) {
            c->keys += (p->flags & AV_PKT_FLAG_KEY) != 0;
            c->pkt[c->n++] = av_packet_clone(p);
        }
        av_packet_unref(p);
    }
    av_packet_free(&p);
}

static void demux_free(struct clip_pkts *c)
{
    for (int i = 0; i < c->n; i++)
        av_packet_free(&c->pkt[i]);
    avformat_close_input(&c->fmt);
}

static void feed(struct cap_recorder *r, const struct clip_pkts *c, int from, int to)
{
    for (int i = from; i < to && i < c->n; i++)
        cap_recorder_packet(r, c->pkt[i]);
}

/* The whole clip as one source: open, every packet, close. */
static void record_clip(struct cap_recorder *r, const char *name, struct clip_pkts *c)
{
    demux(c, name);
    assert_int_equal(cap_recorder_start(r, c->st, 0, 0), VG_OK);
    feed(r, c, 0, c->n);
    cap_recorder_stop(r);
    cap_recorder_sync(r);
}

static struct cap_recorder *recorder(const char *dir, int segment_s, int max_age_h, int max_mb)
{
    struct cap_recorder *r = NULL;
    struct cap_recorder_cfg cfg = {
        .camera = CAM, .dir = dir, .segment_s = segment_s, .max_age_h = max_age_h,
        .max_mb = max_mb,
    };
    assert_int_equal(cap_recorder_create(&r, &cfg), VG_OK);
    return r;
}

static void fresh_dir(char *out, size_t cap, const char *name)
{
    path_of(out, cap, name);
    sh("rm -rf '%s' && mkdir -p '%s'", out, out);
}

/* ---- reading back --------------------------------------------------------------- */

static int read_index(const char *dir, struct cap_rec_segment *segs)
{
    char path[600], line[256];
    snprintf(path, sizeof(path), "%s/" CAM "/index", dir);
    FILE *f = fopen(path, "r");
    int n = 0;
    while (f && fgets(line, sizeof(line), f) && n < MAX_SEGS) {
        assert_int_equal(cap_rec_index_parse(line, &segs[n]), 0);
        n++;
    }
    if (f)
        fclose(f);
    return n;
}

struct probe {
    char codec[32];
    int width, height;
    int frames;
    int first_key;
    double duration;
};

static void probe(const char *dir, const char *file, struct probe *p)
{
    char cmd[1024], line[256];
    memset(p, 0, sizeof(*p));
    snprintf(cmd, sizeof(cmd),
             "ffprobe -v error -select_streams v:0 -count_frames -show_entries "
             "stream=codec_name,width,height,nb_read_frames:format=duration -of default=nw=1 "
             "'%s/" CAM "/%s' && ffprobe -v error -select_streams v:0 -read_intervals '%%+#1' "
             "-show_entries frame=key_frame -of default=nw=1 '%s/" CAM "/%s'",
             dir, file, dir, file);
    FILE *f = popen(cmd, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        line[strcspn(line, "\n")] = '\0';
        if (!strncmp(line, "codec_name=", 11))
            snprintf(p->codec, sizeof(p->codec), "%.*s", (int)sizeof(p->codec) - 1, line + 11);
        else if (!strncmp(line, "width=", 6))
            p->width = atoi(line + 6);
        else if (!strncmp(line, "height=", 7))
            p->height = atoi(line + 7);
        else if (!strncmp(line, "nb_read_frames=", 15))
            p->frames = atoi(line + 15);
        else if (!strncmp(line, "duration=", 9))
            p->duration = atof(line + 9);
        else if (!strncmp(line, "key_frame=", 10))
            p->first_key = atoi(line + 10);
    }
    assert_int_equal(pclose(f), 0);
}

static int64_t file_size(const char *dir, const char *file)
{
    char path[600];
    struct stat sb;
    snprintf(path, sizeof(path), "%s/" CAM "/%s", dir, file);
    return stat(path, &sb) == 0 ? (int64_t)sb.st_size : -1;
}

static int count_mkv(const char *dir)
{
    char cmd[600], line[64];
    snprintf(cmd, sizeof(cmd), "ls '%s/" CAM "' | grep -c '\\.mkv$'", dir);
    FILE *f = popen(cmd, "r");
    int n = f && fgets(line, sizeof(line), f) ? atoi(line) : -1;
    if (f)
        pclose(f);
    return n;
}

static uint64_t errors(const char *reason)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "reason=\"%s\"", reason);
    return vg_counter_value(vg_counter_get_labeled("vigil_capture_recording_errors_total",
                                                   labels, "recording errors"));
}

static uint64_t counter(const char *name)
{
    return vg_counter_value(vg_counter_get(name, "recording"));
}

/* Segments of a clip of `seconds` at 25 fps cut every `segment_s`: each one
 * ffprobe-able, starting on a keyframe, of the right codec and size, its
 * index line agreeing with the file; all frames kept. */
static void check_segments(const char *dir, const char *codec, int w, int h, int seconds,
                           int segment_s)
{
    struct cap_rec_segment segs[MAX_SEGS];
    int n = read_index(dir, segs);
    int want = (seconds + segment_s - 1) / segment_s;
    assert_int_equal(n, want);
    assert_int_equal(count_mkv(dir), n);
    int frames = 0;
    for (int i = 0; i < n; i++) {
        struct probe p;
        char name[48];
        snprintf(name, sizeof(name), "%" PRId64 ".mkv", segs[i].start_ms);
        assert_string_equal(segs[i].file, name);   /* files: named by their start */
        assert_string_equal(segs[i].codec, codec);
        assert_int_equal(segs[i].width, w);
        assert_int_equal(segs[i].height, h);
        assert_int_equal(segs[i].bytes, file_size(dir, segs[i].file));
        if (i > 0)
            assert_true(segs[i].start_ms > segs[i - 1].start_ms);
        int64_t len_ms = i < n - 1 ? segment_s * 1000 : (seconds - segment_s * (n - 1)) * 1000;
        assert_true(llabs(segs[i].duration_ms - len_ms) <= 40);
        probe(dir, segs[i].file, &p);
        assert_string_equal(p.codec, codec);
        assert_int_equal(p.width, w);
        assert_int_equal(p.height, h);
        assert_int_equal(p.first_key, 1);
        assert_true(fabs(p.duration * 1000 - (double)segs[i].duration_ms) <= 50);
        assert_int_equal(p.frames, (int)(len_ms / 40));
        frames += p.frames;
    }
    assert_int_equal(frames, seconds * 25);
}

/* ---- tests ------------------------------------------------------------------------- */

static void test_index_line_round_trip(void **state)
{
    (void)state;
    struct cap_rec_segment a = {.start_ms = 1718000000000, .duration_ms = 10040,
                                .bytes = 1523311, .file = "1718000000000.mkv",
                                .codec = "h264", .width = 1280, .height = 720}, b;
    char line[256];
    assert_true(cap_rec_index_line(line, sizeof(line), &a) > 0);
    assert_string_equal(line, "1718000000000 10040 1523311 1718000000000.mkv h264 1280x720\n");
    assert_int_equal(cap_rec_index_parse(line, &b), 0);
    assert_memory_equal(&a, &b, sizeof(a));
    assert_int_equal(cap_rec_index_parse("1 2 3 x.mkv h264 10x", &b), -1);
    assert_int_equal(cap_rec_index_parse("1 2 3 x.mkv h264 10x10 extra", &b), -1);
}

static void test_h264_segments_rotate_at_keyframes(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "h264");
    uint64_t segs0 = counter("vigil_capture_recording_segments_total");
    uint64_t bytes0 = counter("vigil_capture_recording_bytes_total");
    struct cap_recorder *r = recorder(dir, 4, 24, 2048);
    record_clip(r, "h264.mp4", &c);
    assert_int_equal(c.keys, 12);
    check_segments(dir, "h264", 320, 240, 12, 4);
    assert_int_equal(counter("vigil_capture_recording_segments_total") - segs0, 3);
    struct cap_rec_segment segs[MAX_SEGS];
    int n = read_index(dir, segs);
    int64_t total = 0;
    for (int i = 0; i < n; i++)
        total += segs[i].bytes;
    assert_int_equal(counter("vigil_capture_recording_bytes_total") - bytes0, (uint64_t)total);
    cap_recorder_destroy(r);
    demux_free(&c);
}

static void test_segment_cut_at_next_keyframe(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "h264-gop2");
    /* 3 s asked, a keyframe every 2 s: each cut waits for the next, at 4 s. */
    struct cap_recorder *r = recorder(dir, 3, 24, 2048);
    record_clip(r, "h264-gop2.mp4", &c);
    assert_int_equal(c.keys, 6);
    check_segments(dir, "h264", 320, 240, 12, 4);
    cap_recorder_destroy(r);
    demux_free(&c);
}

static void test_hevc(void **state)
{
    (void)state;
    if (!have_x265)
        skip();
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "hevc");
    struct cap_recorder *r = recorder(dir, 2, 24, 2048);
    record_clip(r, "hevc.mp4", &c);
    check_segments(dir, "hevc", 320, 240, 6, 2);
    cap_recorder_destroy(r);
    demux_free(&c);
}

static void test_mjpeg_is_kept_as_jpeg(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "mjpeg");
    struct cap_recorder *r = recorder(dir, 2, 24, 2048);
    record_clip(r, "mjpeg.avi", &c);
    check_segments(dir, "mjpeg", 320, 240, 6, 2);
    cap_recorder_destroy(r);
    demux_free(&c);
}

/* Every source open starts a new segment, even mid-interval; a file played
 * twice (a loop) gives segments whose timestamps start at 0 again. */
static void test_reopen_starts_a_segment(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "reopen");
    struct cap_recorder *r = recorder(dir, 100, 24, 2048);
    demux(&c, "h264.mp4");
    for (int round = 0; round < 2; round++) {
        assert_int_equal(cap_recorder_start(r, c.st, 0, 0), VG_OK);
        feed(r, &c, 0, 25 * 5 + 10);    /* 5.4 s, then the source "reconnects" */
    }
    cap_recorder_stop(r);
    cap_recorder_sync(r);
    struct cap_rec_segment segs[MAX_SEGS];
    assert_int_equal(read_index(dir, segs), 2);
    for (int i = 0; i < 2; i++) {
        struct probe p;
        /* Cut mid-GOP: the last P-frame shows after B-frames never sent. */
        assert_true(segs[i].duration_ms >= 5400 && segs[i].duration_ms <= 5520);
        probe(dir, segs[i].file, &p);
        assert_int_equal(p.frames, 135);
        assert_int_equal(p.first_key, 1);
    }
    cap_recorder_destroy(r);
    demux_free(&c);
}

/* The segment being written is readable while it grows: everything up to
 * its last complete cluster (1 s) is on disk, with no index line yet. */
static void test_open_segment_is_readable(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "open");
    struct cap_recorder *r = recorder(dir, 100, 24, 2048);
    demux(&c, "h264.mp4");
    assert_int_equal(cap_recorder_start(r, c.st, 0, 0), VG_OK);
    feed(r, &c, 0, 125);
    cap_recorder_sync(r);
    struct cap_rec_segment segs[MAX_SEGS];
    assert_int_equal(read_index(dir, segs), 0);
    assert_int_equal(count_mkv(dir), 1);
    char cmd[600], name[64] = "";
    snprintf(cmd, sizeof(cmd), "ls '%s/" CAM "'", dir);
    FILE *f = popen(cmd, "r");
    assert_non_null(fgets(name, sizeof(name), f));
    pclose(f);
    name[strcspn(name, "\n")] = '\0';
    struct probe p;
    probe(dir, name, &p);
    assert_string_equal(p.codec, "h264");
    assert_int_equal(p.first_key, 1);
    assert_true(p.frames >= 100);
    print_message("open segment: %d of 125 frames readable\n", p.frames);
    cap_recorder_stop(r);
    cap_recorder_sync(r);
    assert_int_equal(read_index(dir, segs), 1);
    probe(dir, segs[0].file, &p);
    assert_int_equal(p.frames, 125);
    cap_recorder_destroy(r);
    demux_free(&c);
}

/* A camera's first second arrives in a burst (what the probe read ahead),
 * then in real time: the index dates the segment by the packets that came
 * on time, a second before its first packet arrived. */
static void test_live_segment_dated_by_least_delay(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "live");
    struct cap_recorder *r = recorder(dir, 100, 24, 2048);
    demux(&c, "h264.mp4");
    assert_int_equal(cap_recorder_start(r, c.st, 1, 0), VG_OK);
    feed(r, &c, 0, 25);
    for (int i = 25; i < 75; i++) {
        usleep(40 * 1000);
        feed(r, &c, i, i + 1);
    }
    cap_recorder_stop(r);
    cap_recorder_sync(r);
    struct cap_rec_segment segs[MAX_SEGS];
    assert_int_equal(read_index(dir, segs), 1);
    int64_t named = atoll(segs[0].file);
    print_message("live: named %" PRId64 ", dated %" PRId64 " (%" PRId64 " ms earlier)\n",
                  named, segs[0].start_ms, named - segs[0].start_ms);
    assert_true(named - segs[0].start_ms >= 900 && named - segs[0].start_ms <= 1100);
    cap_recorder_destroy(r);
    demux_free(&c);
}

/* Packets before the first keyframe cannot be decoded alone: dropped. */
static void test_starts_at_a_keyframe(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "midgop");
    struct cap_recorder *r = recorder(dir, 100, 24, 2048);
    demux(&c, "h264.mp4");
    assert_int_equal(cap_recorder_start(r, c.st, 0, 0), VG_OK);
    feed(r, &c, 10, 100);           /* joins 0.4 s into a GOP: the first 15 are lost */
    cap_recorder_stop(r);
    cap_recorder_sync(r);
    struct cap_rec_segment segs[MAX_SEGS];
    assert_int_equal(read_index(dir, segs), 1);
    struct probe p;
    probe(dir, segs[0].file, &p);
    assert_int_equal(p.frames, 75);
    assert_int_equal(p.first_key, 1);
    assert_true(llabs(segs[0].duration_ms - 3000) <= 40);
    cap_recorder_destroy(r);
    demux_free(&c);
}

/* One MPEG-TS stream whose picture grows from 320x240 to 640x480, and whose
 * timestamps start again: two segments, each playable with its own size.
 * The parameter sets are in-band (Annex B), as from most RTSP cameras. */
static void resolution_change_splits(const char *clip, const char *name)
{
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), name);
    struct cap_recorder *r = recorder(dir, 100, 24, 2048);
    record_clip(r, clip, &c);
    struct cap_rec_segment segs[MAX_SEGS];
    assert_int_equal(read_index(dir, segs), 2);
    int sizes[2][2] = {{320, 240}, {640, 480}};
    for (int i = 0; i < 2; i++) {
        struct probe p;
        assert_int_equal(segs[i].width, sizes[i][0]);
        assert_int_equal(segs[i].height, sizes[i][1]);
        probe(dir, segs[i].file, &p);
        assert_int_equal(p.width, sizes[i][0]);
        assert_int_equal(p.height, sizes[i][1]);
        assert_int_equal(p.frames, 75);
        assert_int_equal(p.first_key, 1);
        assert_true(llabs(segs[i].duration_ms - 3000) <= 40);
        /* Decodes cleanly: every frame, no error from the decoder. */
        char cmd[1024];
        snprintf(cmd, sizeof(cmd), "test -z \"$(ffmpeg -v error -nostdin -i '%s/" CAM "/%s' "
                 "-f null - 2>&1)\"", dir, segs[i].file);
        assert_int_equal(system(cmd), 0);
    }
    cap_recorder_destroy(r);
    demux_free(&c);
}

static void test_resolution_change_splits(void **state)
{
    (void)state;
    resolution_change_splits("resize.ts", "resize");
}

static void test_hevc_resolution_change_splits(void **state)
{
    (void)state;
    if (!have_x265)
        skip();
    resolution_change_splits("resize-hevc.ts", "resize-hevc");
}

/* max_mb 1 with ~375 kB a second: only the newest segments stay, and the
 * index keeps exactly the lines of the files left; a segment older than
 * max_age_h goes at the next close. */
static void test_retention(void **state)
{
    (void)state;
    char dir[512], old[600];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "retention");
    sh("mkdir -p '%s/" CAM "' && head -c 1000 /dev/zero > '%s/" CAM "/1000.mkv' && "
       "echo '1000 4000 1000 1000.mkv h264 320x240' > '%s/" CAM "/index'", dir, dir, dir);
    snprintf(old, sizeof(old), "%s/" CAM "/1000.mkv", dir);
    uint64_t removed0 = counter("vigil_capture_recording_segments_removed_total");
    struct cap_recorder *r = recorder(dir, 1, 1, 1);
    record_clip(r, "fat.mp4", &c);
    assert_int_equal(access(old, F_OK), -1);
    struct cap_rec_segment segs[MAX_SEGS];
    int n = read_index(dir, segs);
    assert_true(n >= 1 && n < 10);
    assert_int_equal(count_mkv(dir), n);
    int64_t total = 0;
    for (int i = 0; i < n; i++) {
        assert_true(file_size(dir, segs[i].file) == segs[i].bytes);
        total += segs[i].bytes;
    }
    assert_true(total <= 1024 * 1024 + segs[n - 1].bytes);
    /* The newest survive: the last second of the clip is there. */
    assert_true(segs[n - 1].duration_ms >= 960);
    uint64_t removed = counter("vigil_capture_recording_segments_removed_total") - removed0;
    assert_int_equal(removed, 10 - n + 1);
    char tmp_index[600];
    snprintf(tmp_index, sizeof(tmp_index), "%s/" CAM "/index.tmp", dir);
    assert_int_equal(access(tmp_index, F_OK), -1);
    cap_recorder_destroy(r);
    demux_free(&c);
}

/* The directory cannot be made (a regular file is in the way: ENOTDIR, which
 * root gets too): nothing recorded, counted, and once the way is clear the
 * recording resumes at a keyframe a second later, with no new source. */
static void test_unwritable_dir_then_recovers(void **state)
{
    (void)state;
    char base[512], dir[600];
    struct clip_pkts c;
    fresh_dir(base, sizeof(base), "blocked");
    sh("touch '%s/afile'", base);
    snprintf(dir, sizeof(dir), "%s/afile/rec", base);
    uint64_t e0 = errors("not_writable");
    struct cap_recorder *r = recorder(dir, 2, 24, 2048);
    demux(&c, "h264.mp4");
    assert_int_equal(cap_recorder_start(r, c.st, 0, 0), VG_OK);
    feed(r, &c, 0, 100);
    cap_recorder_sync(r);
    assert_int_equal(errors("not_writable") - e0, 1);      /* retried after 1 s, not each key */
    assert_int_equal(vg_counter_value(vg_gauge_get("vigil_capture_recording_up", "up")), 0);
    sh("rm '%s/afile'", base);
    usleep(1100 * 1000);
    feed(r, &c, 100, 200);
    cap_recorder_sync(r);
    assert_int_equal(vg_counter_value(vg_gauge_get("vigil_capture_recording_up", "up")), 1);
    cap_recorder_stop(r);
    cap_recorder_sync(r);
    assert_int_equal(errors("not_writable") - e0, 1);
    struct cap_rec_segment segs[MAX_SEGS];
    int n = read_index(dir, segs);
    assert_int_equal(n, 2);         /* 4 s from packet 100: two segments of 2 s */
    struct probe p;
    probe(dir, segs[0].file, &p);
    assert_int_equal(p.first_key, 1);
    assert_int_equal(p.frames, 50);
    cap_recorder_destroy(r);
    demux_free(&c);
}

/* A disk that fills up (a 400 kB tmpfs): counted as no_space, the segment cut
 * short is still readable, and the recorder keeps taking packets. */
static void test_disk_full(void **state)
{
    (void)state;
    char dir[512];
    struct clip_pkts c;
    fresh_dir(dir, sizeof(dir), "full");
    if (mount("tmpfs", dir, "tmpfs", 0, "size=400k") != 0) {
        print_message("cannot mount a tmpfs (%s): skipped\n", strerror(errno));
        skip();
    }
    uint64_t e0 = errors("no_space");
    struct cap_recorder *r = recorder(dir, 100, 0, 0);
    record_clip(r, "fat.mp4", &c);  /* ~3.7 MB into 400 kB */
    assert_true(errors("no_space") > e0);
    assert_int_equal(vg_counter_value(vg_gauge_get("vigil_capture_recording_up", "up")), 0);
    int n = count_mkv(dir);
    assert_true(n >= 1);
    cap_recorder_destroy(r);
    umount(dir);
    demux_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_index_line_round_trip),
        cmocka_unit_test(test_h264_segments_rotate_at_keyframes),
        cmocka_unit_test(test_segment_cut_at_next_keyframe),
        cmocka_unit_test(test_hevc),
        cmocka_unit_test(test_mjpeg_is_kept_as_jpeg),
        cmocka_unit_test(test_reopen_starts_a_segment),
        cmocka_unit_test(test_open_segment_is_readable),
        cmocka_unit_test(test_live_segment_dated_by_least_delay),
        cmocka_unit_test(test_starts_at_a_keyframe),
        cmocka_unit_test(test_resolution_change_splits),
        cmocka_unit_test(test_hevc_resolution_change_splits),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_unwritable_dir_then_recovers),
        cmocka_unit_test(test_disk_full),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
