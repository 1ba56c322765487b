/* bench.clip: how long the local clip provider takes to assemble a 30 s clip
 * (vg_clip_assemble) from 10 s segments of 720p25 H.264, next to, in the
 * same run on the same files, (a) only reading the segments' packets and
 * (b) a plain FFmpeg remux of the same packets into a faststart MP4 with no
 * logic (no keyframe search, no dts rebuilding, no change checks). Then the
 * transcoding path: a 30 s clip from an MJPEG 720p recording and, when the
 * demo file is installed, from vtest.avi (MPEG-4 part 2, msmpeg4v3), with
 * wall and CPU time. Median of ROUNDS. Prints figures; never fails on time.
 * Usage: bench_clip [workdir] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libavformat/avformat.h>

#include "clip/assemble.h"
#include "clip_rig.h"
#include "timeutil.h"

#define ROUNDS 5
#define T0_MS 1700000000000LL
#define S 1000000LL
#define VTEST "/usr/share/doc/opencv-doc/examples/data/vtest.avi"

static char root[256];

static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec +
           (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof(*v), cmp_d);
    return v[n / 2];
}

/* Baselines over segments [0, n): read only (out NULL), or remux to out the
 * packets of [from_us, to_us) (wall clock), which the caller puts on a keyframe. */
static int plain(const char *dir, const int64_t *starts, int n, const char *out,
                 int64_t from_us, int64_t to_us, long *packets)
{
    AVFormatContext *oc = NULL;
    AVStream *os = NULL;
    AVDictionary *opts = NULL;
    *packets = 0;
    for (int i = 0; i < n; i++) {
        char path[600];
        AVFormatContext *ic = NULL;
        snprintf(path, sizeof(path), "%s/%lld.mkv", dir, (long long)starts[i]);
        if (avformat_open_input(&ic, path, av_find_input_format("matroska"), NULL) < 0)
            return -1;
        AVStream *is = ic->streams[0];
        if (out && !oc) {
            avformat_alloc_output_context2(&oc, NULL, "mp4", out);
            os = avformat_new_stream(oc, NULL);
            avcodec_parameters_copy(os->codecpar, is->codecpar);
            os->codecpar->codec_tag = 0;
            os->time_base = is->time_base;
            if (avio_open(&oc->pb, out, AVIO_FLAG_WRITE) < 0)
                return -1;
            av_dict_set(&opts, "movflags", "+faststart", 0);
            if (avformat_write_header(oc, &opts) < 0)
                return -1;
            av_dict_free(&opts);
        }
        AVPacket *p = av_packet_alloc();
        int64_t off = av_rescale_q(starts[i] * 1000 - from_us, (AVRational){1, 1000000},
                                   is->time_base);
        while (av_read_frame(ic, p) >= 0) {
            (*packets)++;
            int64_t wall = starts[i] * 1000 + av_rescale_q(p->pts, is->time_base,
                                                           (AVRational){1, 1000000});
            if (oc && wall >= from_us && wall < to_us) {
                p->pts += off;
                p->dts = p->pts;    /* no B-frames in this recording */
                av_packet_rescale_ts(p, is->time_base, os->time_base);
                p->stream_index = 0;
                av_interleaved_write_frame(oc, p);
            }
            av_packet_unref(p);
        }
        av_packet_free(&p);
        avformat_close_input(&ic);
    }
    if (oc) {
        av_write_trailer(oc);
        avio_closep(&oc->pb);
        avformat_free_context(oc);
    }
    return 0;
}

static void bench_transcode(const char *label, const char *dir, int64_t start_us)
{
    char out[600];
    double wall[ROUNDS], cpu[ROUNDS];
    struct vg_clip_info info = {0};
    int rounds = 3;
    snprintf(out, sizeof(out), "%s/transcode.mp4", root);
    for (int r = 0; r < rounds; r++) {
        double c0 = cpu_s();
        int64_t t0 = vg_mono_us();
        vg_status st = vg_clip_assemble(dir, start_us, start_us + 30 * S, out, &info);
        wall[r] = (vg_mono_us() - t0) / 1e6;
        cpu[r] = cpu_s() - c0;
        if (st != VG_OK) {
            printf("  %s: %s\n", label, vg_err_detail());
            return;
        }
    }
    struct stat sb;
    stat(out, &sb);
    double w = median(wall, rounds), c = median(cpu, rounds);
    double len = (info.end_us - info.start_us) / 1e6;
    printf("  %-33s: %7.2f s wall, %6.2f s CPU for %.1f s of %dx%d -> %s (%.1fx real time, "
           "%.0f%% of one core per clip second, %.1f MB)\n", label, w, c, len, info.width,
           info.height, info.codec, len / w, 100 * c / len, sb.st_size / 1e6);
}

int main(int argc, char **argv)
{
    char dir[512], out[600], mjpeg[512], vt[512];
    int64_t starts[16];
    av_log_set_level(AV_LOG_ERROR);
    snprintf(root, sizeof(root), "%s/vigil-bench-clip-XXXXXX", argc > 1 ? argv[1] : "/tmp");
    if (!mkdtemp(root))
        return 1;
    snprintf(dir, sizeof(dir), "%s/cam", root);
    int64_t t = vg_mono_us();
    int n = rig_segments(dir, T0_MS, "-f lavfi -i testsrc2=size=1280x720:rate=25",
                         "-c:v libx264 -preset veryfast -bf 0 -g 50 -keyint_min 50 "
                         "-sc_threshold 0 -pix_fmt yuv420p -b:v 2M", 10, 40, -1,
                         "h264 1280x720", starts, 16);
    if (n != 4) {
        fprintf(stderr, "bench.clip: could not make the recording (%d segments)\n", n);
        return 1;
    }
    printf("bench.clip: 4 x 10 s segments of 1280x720 25 fps H.264 2 Mb/s (made in %.1f s); "
           "a 30 s clip from 5.5 s on (4 segments), median of %d\n",
           (vg_mono_us() - t) / 1e6, ROUNDS);

    double rd[ROUNDS], rx[ROUNDS], as[ROUNDS];
    long pk = 0;
    struct vg_clip_info info = {0};
    snprintf(out, sizeof(out), "%s/clip.mp4", root);
    char base_out[640];
    snprintf(base_out, sizeof(base_out), "%s/remux.mp4", root);
    for (int r = 0; r < ROUNDS; r++) {
        int64_t a = vg_mono_us();
        plain(dir, starts, n, NULL, 0, 0, &pk);
        int64_t b = vg_mono_us();
        /* the same packets the clip holds: from the keyframe at 4 s to 35.5 s */
        plain(dir, starts, n, base_out, T0_MS * 1000 + 4 * S, T0_MS * 1000 + 35500000, &pk);
        int64_t c = vg_mono_us();
        vg_status st = vg_clip_assemble(dir, T0_MS * 1000 + 5500000, T0_MS * 1000 + 35500000,
                                        out, &info);
        int64_t d = vg_mono_us();
        if (st != VG_OK) {
            fprintf(stderr, "bench.clip: %s\n", vg_err_detail());
            return 1;
        }
        rd[r] = (b - a) / 1e3;
        rx[r] = (c - b) / 1e3;
        as[r] = (d - c) / 1e3;
    }
    double mrd = median(rd, ROUNDS), mrx = median(rx, ROUNDS), mas = median(as, ROUNDS);
    struct stat sb;
    stat(out, &sb);
    printf("  read the 4 segments' packets     : %8.1f ms (%ld packets, 40 s)\n", mrd, pk);
    printf("  plain remux of the same packets  : %8.1f ms (4 s .. 35.5 s, no logic)\n", mrx);
    printf("  vg_clip_assemble, 30 s (copy)    : %8.1f ms (%.1f s from %+.2f s, %.1f MB)\n", mas,
           (info.end_us - info.start_us) / 1e6, (info.start_us - T0_MS * 1000) / 1e6,
           sb.st_size / 1e6);
    printf("  ratio assemble / plain remux     : %8.2f\n", mrx > 0 ? mas / mrx : 0);

    snprintf(mjpeg, sizeof(mjpeg), "%s/mjpeg", root);
    if (rig_segments(mjpeg, T0_MS, "-f lavfi -i testsrc2=size=1280x720:rate=25",
                     "-c:v mjpeg -q:v 5", 10, 40, -1, "mjpeg 1280x720", starts, 16) == 4)
        bench_transcode("MJPEG 720p25 -> H.264 (30 s)", mjpeg, T0_MS * 1000 + 5500000);
    struct stat vs;
    snprintf(vt, sizeof(vt), "%s/vtest", root);
    if (stat(VTEST, &vs) == 0 &&
        rig_segments(vt, T0_MS, "-i " VTEST, "-c copy", 10, 60, -1, "msmpeg4v3 768x576",
                     starts, 16) > 1)    /* its keyframes are 25 s apart: 25 s segments */
        bench_transcode("vtest msmpeg4v3 576p10 (30 s)", vt, T0_MS * 1000 + 5500000);
    rig_sh("rm -rf '%s'", root);
    return 0;
}
