/* The local clip from real recording segments (made by the ffmpeg command
 * line in the recorder's layout), checked with ffprobe: where it starts,
 * how long it plays, that H.264/H.265 are copied (the very packets of the
 * recording) with the moov first, that MJPEG is transcoded, that the open
 * segment is used, that a resolution change ends the clip, and the errors. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <libavutil/log.h>

#include "clip/assemble.h"
#include "clip_rig.h"

#define T0_MS 1700000000000LL   /* 2023-11-14T22:13:20Z */
#define S 1000000LL
#define T0 (T0_MS * 1000)
#define GOP_S 1.0               /* -g 25 at 25 fps */
/* B-frames on (veryfast): the clip's first packet is not the first displayed. */
#define H264 "-c:v libx264 -preset veryfast -bf 2 -g 25 -keyint_min 25 -sc_threshold 0 " \
             "-pix_fmt yuv420p"
#define SRC(size) "-f lavfi -i testsrc2=size=" size ":rate=25"

static char root[256];

static void path_in(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", root, name);
}

static int setup(void **state)
{
    snprintf(root, sizeof(root), "/tmp/vigil-clip-XXXXXX");
    return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
    rig_sh("rm -rf '%s'", root);
    return 0;
}

/* 640x360 H.264 in three 4 s segments from T0; the newest stays open. */
static void h264_recording(char *dir, size_t cap, const char *name, int64_t *starts)
{
    path_in(dir, cap, name);
    assert_int_equal(rig_segments(dir, T0_MS, SRC("640x360"), H264, 4, 12, -1,
                                  "h264 640x360", starts, 8), 3);
    /* 4 s each (B-frames delay the cut by two frames) */
    assert_true(starts[1] >= T0_MS + 4000 && starts[1] <= T0_MS + 4100);
    assert_true(starts[2] >= T0_MS + 8000 && starts[2] <= T0_MS + 8100);
}

static int no_tmp_left(const char *dir)
{
    DIR *d = opendir(dir);
    int ok = 1;
    for (struct dirent *e; d && (e = readdir(d));)
        if (strstr(e->d_name, ".tmp"))
            ok = 0;
    if (d)
        closedir(d);
    return ok;
}

/* T − pre-roll inside segment 1, the clip running into the open segment 2. */
static void copied_from_keyframe_across_segments(void **state)
{
    char dir[512], out[600], boxes[128];
    int64_t starts[8];
    long src[8], got[8];
    struct vg_clip_info info;
    h264_recording(dir, sizeof(dir), "cam1", starts);
    snprintf(out, sizeof(out), "%s/clip.mp4", root);

    int64_t detect = T0 + 6 * S + 500000, start = detect - 2 * S, end = start + 5 * S;
    assert_int_equal(vg_clip_assemble(dir, start, end, out, &info), VG_OK);
    /* the last keyframe at or before T − pre-roll (4.5 s): segment 1's first */
    assert_true(info.start_us <= start && start - info.start_us <= (int64_t)(GOP_S * S));
    assert_int_equal(info.start_us, starts[1] * 1000);
    assert_int_equal(info.transcoded, 0);
    assert_string_equal(info.codec, "h264");
    assert_int_equal(info.width, 640);
    assert_int_equal(info.height, 360);

    char seg[600];
    snprintf(seg, sizeof(seg), "%s/%lld.mkv", dir, (long long)starts[1]);
    json_t *p = rig_probe(out), *sp = rig_probe(seg);
    assert_non_null(p);
    assert_non_null(sp);
    assert_string_equal(rig_stream_str(p, "codec_name"), "h264");
    assert_string_equal(rig_stream_str(p, "profile"), rig_stream_str(sp, "profile"));
    assert_int_equal(rig_stream_int(sp, "has_b_frames") > 0, 1);
    json_decref(sp);
    assert_int_equal(rig_stream_int(p, "width"), 640);
    assert_int_equal(rig_stream_int(p, "height"), 360);
    double d = rig_format_duration(p);
    /* the requested 5 s, plus at most one GOP before the start */
    assert_true(d >= 5.0 - 0.05 && d <= 5.0 + GOP_S + 0.05);
    assert_true(d >= (double)(end - info.start_us) / S - 0.1);
    json_decref(p);

    /* copied: the clip's packets are the recording's, byte for byte in size */
    assert_int_equal(rig_packet_sizes(seg, src, 8), 8);
    assert_int_equal(rig_packet_sizes(out, got, 8), 8);
    for (int i = 0; i < 8; i++)
        assert_int_equal(got[i], src[i]);

    rig_top_boxes(out, boxes, sizeof(boxes));
    assert_non_null(strstr(boxes, "moov"));
    assert_non_null(strstr(boxes, "mdat"));
    assert_true(strstr(boxes, "moov") < strstr(boxes, "mdat"));   /* faststart */
    /* decodes from its first frame to its last (dts rebuilt across B-frames, segments) */
    assert_true(rig_decodes_clean(out));
    assert_true(no_tmp_left(root));
}

/* A range wholly inside the open segment (no index line). */
static void open_segment(void **state)
{
    char dir[512], out[600];
    int64_t starts[8];
    struct vg_clip_info info;
    h264_recording(dir, sizeof(dir), "cam2", starts);
    snprintf(out, sizeof(out), "%s/open.mp4", root);
    int64_t start = T0 + 9 * S + 300000;
    assert_int_equal(vg_clip_assemble(dir, start, start + 2 * S, out, &info), VG_OK);
    assert_int_equal(info.start_us, (starts[2] + 1000) * 1000);    /* its second keyframe */
    json_t *p = rig_probe(out);
    double d = rig_format_duration(p);
    assert_true(d >= 2.0 - 0.05 && d <= 2.0 + GOP_S + 0.05);
    json_decref(p);
}

/* The open segment as the recorder leaves it while writing: cut mid-cluster. */
static void open_segment_half_written(void **state)
{
    char dir[512], out[600], seg[600];
    int64_t starts[8];
    struct vg_clip_info info;
    struct stat sb;
    h264_recording(dir, sizeof(dir), "cam2b", starts);
    snprintf(seg, sizeof(seg), "%s/%lld.mkv", dir, (long long)starts[2]);
    assert_int_equal(stat(seg, &sb), 0);
    assert_int_equal(truncate(seg, sb.st_size / 2 + 777), 0);
    snprintf(out, sizeof(out), "%s/half.mp4", root);
    int64_t start = starts[2] * 1000 + 300000;
    assert_int_equal(vg_clip_assemble(dir, start, start + 3 * S, out, &info), VG_OK);
    assert_int_equal(info.start_us, starts[2] * 1000);
    /* about half of the segment's 4 s is there */
    assert_true(info.end_us > start + S / 2 && info.end_us < start + 3 * S);
    json_t *p = rig_probe(out);
    assert_true(rig_format_duration(p) > 1.0);
    json_decref(p);
}

/* The recording ends before the range does: the clip is what there is. */
static void range_past_the_recording_end(void **state)
{
    char dir[512], out[600];
    int64_t starts[8];
    struct vg_clip_info info;
    h264_recording(dir, sizeof(dir), "cam3", starts);
    snprintf(out, sizeof(out), "%s/tail.mp4", root);
    assert_int_equal(vg_clip_assemble(dir, T0 + 10 * S, T0 + 30 * S, out, &info), VG_OK);
    assert_true(info.end_us <= T0 + 12 * S + 100000 && info.end_us >= T0 + 11 * S);
}

static void no_recording(void **state)
{
    char dir[512], out[600];
    int64_t starts[8];
    h264_recording(dir, sizeof(dir), "cam4", starts);
    snprintf(out, sizeof(out), "%s/none.mp4", root);
    assert_int_equal(vg_clip_assemble(dir, T0 + 100 * S, T0 + 130 * S, out, NULL),
                     VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "no recording of cam4 between "
                                            "2023-11-14T22:15:00.000Z and "
                                            "2023-11-14T22:15:30.000Z"));
    assert_int_equal(vg_clip_assemble(dir, T0 - 60 * S, T0 - 30 * S, out, NULL),
                     VG_ERR_NOT_FOUND);
    assert_int_equal(access(out, F_OK), -1);
    assert_true(no_tmp_left(root));
    /* a camera that never recorded */
    path_in(dir, sizeof(dir), "nobody");
    assert_int_equal(vg_clip_assemble(dir, T0, T0 + S, out, NULL), VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "no recording of nobody between"));
    /* bounded */
    assert_int_equal(vg_clip_assemble(dir, T0, T0 + 601 * S, out, NULL), VG_ERR_INVALID);
    assert_non_null(strstr(vg_err_detail(), "at most 600 s"));
    assert_int_equal(vg_clip_assemble(dir, T0, T0, out, NULL), VG_ERR_INVALID);
}

/* MJPEG (as from an HTTP camera) is transcoded to H.264. */
static void mjpeg_transcoded(void **state)
{
    char dir[512], out[600];
    int64_t starts[8];
    struct vg_clip_info info;
    path_in(dir, sizeof(dir), "mjpeg");
    assert_int_equal(rig_segments(dir, T0_MS, SRC("320x240"), "-c:v mjpeg -q:v 5", 3, 6, -1,
                                  "mjpeg 320x240", starts, 8), 2);
    snprintf(out, sizeof(out), "%s/mjpeg.mp4", root);
    int64_t start = T0 + 1 * S + 500000;
    assert_int_equal(vg_clip_assemble(dir, start, start + 3 * S, out, &info), VG_OK);
    assert_int_equal(info.transcoded, 1);
    assert_string_equal(info.codec, "h264");
    /* every MJPEG frame is a keyframe: the clip starts at the frame at the start */
    assert_true(start - info.start_us >= 0 && start - info.start_us < 40000 + 1);
    json_t *p = rig_probe(out);
    assert_string_equal(rig_stream_str(p, "codec_name"), "h264");
    assert_string_equal(rig_stream_str(p, "pix_fmt"), "yuv420p");
    assert_int_equal(rig_stream_int(p, "width"), 320);
    double d = rig_format_duration(p);
    assert_true(d >= 3.0 - 0.1 && d <= 3.0 + 0.1);
    json_decref(p);
    assert_true(rig_decodes_clean(out));
}

/* H.265 is copied with the hvc1 tag (what Safari plays). */
static void hevc_copied_as_hvc1(void **state)
{
    char dir[512], out[600];
    int64_t starts[8];
    struct vg_clip_info info;
    path_in(dir, sizeof(dir), "hevc");
    assert_int_equal(rig_segments(dir, T0_MS, SRC("320x240"),
                                  "-c:v libx265 -preset ultrafast -x265-params "
                                  "keyint=25:min-keyint=25:scenecut=0:log-level=error", 2, 4, -1,
                                  "hevc 320x240", starts, 8), 2);
    snprintf(out, sizeof(out), "%s/hevc.mp4", root);
    assert_int_equal(vg_clip_assemble(dir, T0 + 500000, T0 + 3 * S, out, &info), VG_OK);
    assert_int_equal(info.transcoded, 0);
    assert_string_equal(info.codec, "hevc");
    json_t *p = rig_probe(out);
    assert_string_equal(rig_stream_str(p, "codec_name"), "hevc");
    assert_string_equal(rig_stream_str(p, "codec_tag_string"), "hvc1");
    json_decref(p);
    assert_true(rig_decodes_clean(out));
}

/* 640x360, then 320x240 (a camera that changed resolution): the clip stops
 * at the change; a clip that starts after it is of the new size. */
static void resolution_change_ends_the_clip(void **state)
{
    char dir[512], out[600];
    int64_t a[8], b[8];
    struct vg_clip_info info;
    path_in(dir, sizeof(dir), "resize");
    assert_int_equal(rig_segments(dir, T0_MS, SRC("640x360"), H264, 4, 4, 9, "h264 640x360",
                                  a, 8), 1);
    assert_int_equal(rig_segments(dir, T0_MS + 4000, SRC("320x240"), H264, 4, 4, -1,
                                  "h264 320x240", b, 8), 1);
    snprintf(out, sizeof(out), "%s/resize.mp4", root);
    assert_int_equal(vg_clip_assemble(dir, T0 + 2 * S, T0 + 7 * S, out, &info), VG_OK);
    assert_int_equal(info.width, 640);
    assert_true(info.end_us <= T0 + 4 * S + 1000 && info.end_us >= T0 + 4 * S - 100000);
    json_t *p = rig_probe(out);
    assert_int_equal(rig_stream_int(p, "width"), 640);
    assert_true(rig_format_duration(p) < 2.2);
    json_decref(p);
    assert_int_equal(vg_clip_assemble(dir, T0 + 5 * S, T0 + 7 * S, out, &info), VG_OK);
    assert_int_equal(info.width, 320);
}

int main(void)
{
    av_log_set_level(AV_LOG_ERROR);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(copied_from_keyframe_across_segments),
        cmocka_unit_test(open_segment),
        cmocka_unit_test(open_segment_half_written),
        cmocka_unit_test(range_past_the_recording_end),
        cmocka_unit_test(no_recording),
        cmocka_unit_test(mjpeg_transcoded),
        cmocka_unit_test(hevc_copied_as_hvc1),
        cmocka_unit_test(resolution_change_ends_the_clip),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
