#include "source.h"

#include <dlfcn.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/avcodec.h>
#include <libavdevice/version.h>
#include <libavutil/macros.h>
#include <libavformat/avformat.h>
#include <libavutil/log.h>

#include "config.h"
#include "log.h"
#include "timeutil.h"

#define OPEN_TIMEOUT_MS 15000
#define READ_TIMEOUT_MS 10000
#define DECODE_ERROR_LOG_EVERY 100

struct cap_source {
    enum cap_source_kind kind;
    char url_masked[VG_URL_MAX];
    char camera[VG_ID_MAX];
    char desc[128];
    AVFormatContext *fmt;
    AVCodecContext *dec;
    AVPacket *pkt;
    AVFrame *frame;
    int vstream;
    int flushing;           /* end of input seen, decoder being drained */
    int64_t deadline_us;    /* monotonic; 0 = none */
    int timeout_ms;         /* what the current deadline was set from */
    int stop_hit, timeout_hit;
    cap_stop_fn stop;
    void *stop_ctx;
    int read_timeout_ms;
    int keyframes_only;
    cap_packet_fn on_packet;
    void *packet_ctx;
    int64_t frame_ms;       /* nominal frame interval, for frames without pts */
    int wallclock;          /* live source without timestamps: use arrival time */
    int64_t last_pts_ms;
    int64_t opened_us;
    uint64_t decode_errors;
};

enum cap_source_kind cap_source_kind_of(const char *url)
{
    if (!strncmp(url, "rtsp://", 7) || !strncmp(url, "rtsps://", 8))
        return CAP_SOURCE_RTSP;
    if (!strncmp(url, "http://", 7) || !strncmp(url, "https://", 8))
        return CAP_SOURCE_HTTP;
    if (!strncmp(url, "/dev/video", 10) || !strncmp(url, "v4l2://", 7))
        return CAP_SOURCE_V4L2;
    if (!strncmp(url, "file:", 5) || !strstr(url, "://"))
        return CAP_SOURCE_FILE;
    return CAP_SOURCE_NET;
}

const char *cap_source_kind_name(enum cap_source_kind kind)
{
    switch (kind) {
    case CAP_SOURCE_FILE: return "file";
    case CAP_SOURCE_RTSP: return "rtsp";
    case CAP_SOURCE_HTTP: return "http";
    case CAP_SOURCE_V4L2: return "v4l2";
    case CAP_SOURCE_NET: return "network";
    }
    return "unknown";
}

int cap_source_is_live(enum cap_source_kind kind) { return kind != CAP_SOURCE_FILE; }

uint64_t cap_source_decode_errors(const struct cap_source *s) { return s->decode_errors; }
const char *cap_source_describe(const struct cap_source *s) { return s->desc; }
const AVStream *cap_source_stream(const struct cap_source *s)
{
    return s->fmt->streams[s->vstream];
}
int cap_source_wallclock(const struct cap_source *s) { return s->wallclock; }

/* ---- FFmpeg's log, into ours ------------------------------------------ */

/* FFmpeg reports every damaged macroblock at error level; a corrupt stream
 * would flood the log, so at most this many lines pass per minute. */
#define AVLOG_PER_MINUTE 20

static char av_log_camera[VG_ID_MAX];   /* set once, before any source opens */

/* FFmpeg may quote a URL it was given: hide any "user:password@" in it. */
static void mask_userinfo(char *line)
{
    for (char *p = strstr(line, "://"); p; p = strstr(p, "://")) {
        p += 3;
        size_t span = strcspn(p, "/@ \t\n\"'");
        if (p[span] != '@')
            continue;
        if (span < 3) {         /* never grow the line: it may fill its buffer */
            memset(p, '*', span);
            continue;
        }
        memmove(p + 3, p + span, strlen(p + span) + 1);
        memcpy(p, "***", 3);
    }
}

static void on_av_log(void *avcl, int level, const char *fmt, va_list vl)
{
    static _Atomic int64_t window_start;
    static atomic_int in_window;
    if (level > AV_LOG_WARNING)
        return;
    enum vg_log_level lv = level <= AV_LOG_ERROR ? VG_LOG_WARN : VG_LOG_DEBUG;
    if (!vg_log_enabled(lv))
        return;
    int64_t now = vg_mono_us();
    if (now - atomic_load(&window_start) > 60 * 1000000LL) {
        atomic_store(&window_start, now);
        atomic_store(&in_window, 0);
    }
    if (atomic_fetch_add(&in_window, 1) >= AVLOG_PER_MINUTE)
        return;
    char line[512];
    int print_prefix = 1;
    av_log_format_line2(avcl, level, fmt, vl, line, sizeof(line), &print_prefix);
    mask_userinfo(line);
    size_t n = strlen(line);
    while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == ' '))
        line[--n] = '\0';
    if (n > 0)
        vg_log(lv, "ffmpeg.log", av_log_camera[0] ? av_log_camera : NULL, "%s", line);
}

void cap_source_log_setup(const char *camera)
{
    snprintf(av_log_camera, sizeof(av_log_camera), "%s", camera ? camera : "");
    av_log_set_callback(on_av_log);
}

/* ---- errors ------------------------------------------------------------ */

static vg_status status_of_averror(int err)
{
    switch (err) {
    case AVERROR(ENOENT): return VG_ERR_NOT_FOUND;
    case AVERROR(EACCES): case AVERROR(EPERM): case AVERROR(EIO): case AVERROR(EISDIR):
    case AVERROR(ENOTDIR): case AVERROR(EBUSY): case AVERROR(ENODEV): case AVERROR(ENXIO):
        return VG_ERR_IO;
    case AVERROR(ETIMEDOUT): return VG_ERR_TIMEOUT;
    case AVERROR(ECONNREFUSED): case AVERROR(ECONNRESET): case AVERROR(EHOSTUNREACH):
    case AVERROR(ENETUNREACH): case AVERROR(EPIPE):
        return VG_ERR_UNAVAILABLE;
    case AVERROR_EOF: return VG_ERR_EOF;
    case AVERROR_HTTP_BAD_REQUEST: case AVERROR_HTTP_UNAUTHORIZED: case AVERROR_HTTP_FORBIDDEN:
    case AVERROR_HTTP_NOT_FOUND: case AVERROR_HTTP_OTHER_4XX: case AVERROR_HTTP_SERVER_ERROR:
        return VG_ERR_HTTP;
    case AVERROR(ENOMEM): return VG_ERR_NOMEM;
    default: return VG_ERR_MEDIA;
    }
}

/* Translate an AVERROR at the point it enters vigil, keeping FFmpeg's text. */
static vg_status av_fail(struct cap_source *s, int err, const char *what)
{
    if (err == AVERROR_EXIT && s->stop_hit)
        return vg_errf(VG_ERR_STOPPED, "%s %s: stop requested", what, s->url_masked);
    if (err == AVERROR_EXIT && s->timeout_hit)
        return vg_errf(VG_ERR_TIMEOUT, "%s %s: no response within %d ms", what, s->url_masked,
                       s->timeout_ms);
    char msg[AV_ERROR_MAX_STRING_SIZE];
    av_strerror(err, msg, sizeof(msg));
    return vg_errf(status_of_averror(err), "%s %s: %s", what, s->url_masked, msg);
}

/* Polled by FFmpeg during every blocking operation. */
static int on_interrupt(void *opaque)
{
    struct cap_source *s = opaque;
    if (s->stop && s->stop(s->stop_ctx)) {
        s->stop_hit = 1;
        return 1;
    }
    if (s->deadline_us && vg_mono_us() > s->deadline_us) {
        s->timeout_hit = 1;
        return 1;
    }
    return 0;
}

static void arm_deadline(struct cap_source *s, int ms)
{
    s->stop_hit = s->timeout_hit = 0;
    /* A local file never stalls the way a network peer does: no deadline. */
    s->timeout_ms = ms;
    s->deadline_us = cap_source_is_live(s->kind) ? vg_mono_us() + (int64_t)ms * 1000 : 0;
}

/* ---- open -------------------------------------------------------------- */

/* libavdevice drags in dozens of libraries (X11, SDL, speech synthesis...)
 * that cost every capture process ~17 MiB of RSS; only v4l2 cameras need
 * it, so it is loaded when the first one opens. */
static void (*avdevice_register)(void);

static void load_avdevice(void)
{
    void *h = dlopen("libavdevice.so." AV_STRINGIFY(LIBAVDEVICE_VERSION_MAJOR),
                     RTLD_NOW | RTLD_LOCAL);
    if (h)
        *(void **)&avdevice_register = dlsym(h, "avdevice_register_all");
    if (avdevice_register)
        avdevice_register();
}

static vg_status input_format(const struct cap_source *s, const AVInputFormat **out)
{
    static pthread_once_t loaded = PTHREAD_ONCE_INIT;
    *out = NULL;
    if (s->kind != CAP_SOURCE_V4L2)
        return VG_OK;
    pthread_once(&loaded, load_avdevice);
    if (!avdevice_register)
        return vg_errf(VG_ERR_MEDIA, "open %s: v4l2 needs libavdevice.so.%d: %s",
                       s->url_masked, LIBAVDEVICE_VERSION_MAJOR, dlerror());
    *out = av_find_input_format("video4linux2");
    if (!*out)
        return vg_errf(VG_ERR_MEDIA, "open %s: FFmpeg has no video4linux2 input",
                       s->url_masked);
    return VG_OK;
}

static vg_status input_options(const struct cap_source *s, int io_timeout_ms,
                               AVDictionary **opts)
{
    char us[32];
    snprintf(us, sizeof(us), "%lld", (long long)io_timeout_ms * 1000);
    int rc = 0;
    switch (s->kind) {
    case CAP_SOURCE_RTSP:
        /* TCP: UDP through home NAT/Wi-Fi loses packets and smears frames. */
        rc |= av_dict_set(opts, "rtsp_transport", "tcp", 0);
        rc |= av_dict_set(opts, "timeout", us, 0);
        break;
    case CAP_SOURCE_HTTP:
    case CAP_SOURCE_NET:
        rc |= av_dict_set(opts, "rw_timeout", us, 0);
        break;
    default:
        break;
    }
    return rc < 0 ? vg_errf(VG_ERR_NOMEM, "open %s: out of memory", s->url_masked) : VG_OK;
}

static const char *ffmpeg_url(const struct cap_source *s, const char *url)
{
    if (s->kind == CAP_SOURCE_V4L2 && !strncmp(url, "v4l2://", 7))
        return url + 7;
    return url;
}

static vg_status open_input(struct cap_source *s, const char *url, int open_timeout_ms)
{
    const AVInputFormat *ifmt = NULL;
    AVDictionary *opts = NULL;
    vg_status st = input_format(s, &ifmt);
    if (st == VG_OK)
        st = input_options(s, s->read_timeout_ms, &opts);
    if (st != VG_OK)
        goto out;
    s->fmt = avformat_alloc_context();
    if (!s->fmt) {
        st = vg_errf(VG_ERR_NOMEM, "open %s: out of memory", s->url_masked);
        goto out;
    }
    s->fmt->interrupt_callback.callback = on_interrupt;
    s->fmt->interrupt_callback.opaque = s;
    arm_deadline(s, open_timeout_ms);
    int rc = avformat_open_input(&s->fmt, ffmpeg_url(s, url), ifmt, &opts);
    if (rc < 0) {           /* the context was freed and NULLed */
        st = av_fail(s, rc, "open");
        goto out;
    }
    rc = avformat_find_stream_info(s->fmt, NULL);
    st = rc < 0 ? av_fail(s, rc, "probe") : VG_OK;
out:
    av_dict_free(&opts);
    return st;
}

static void describe(struct cap_source *s, const AVStream *vs)
{
    AVRational fr = av_guess_frame_rate(s->fmt, (AVStream *)vs, NULL);
    double fps = fr.num > 0 && fr.den > 0 ? av_q2d(fr) : 0.0;
    char rate[48];
    s->frame_ms = fps > 0.5 ? (int64_t)(1000.0 / fps + 0.5) : 40;
    /* Without timestamps the rate is FFmpeg's guess: do not print it. */
    if (s->wallclock)
        snprintf(rate, sizeof(rate), "no timestamps, timed by arrival");
    else
        snprintf(rate, sizeof(rate), "%.2f fps", fps);
    snprintf(s->desc, sizeof(s->desc), "%s %dx%d %s%s",
             avcodec_get_name(vs->codecpar->codec_id), vs->codecpar->width,
             vs->codecpar->height, rate, s->keyframes_only ? ", keyframes only" : "");
}

static vg_status open_decoder(struct cap_source *s)
{
    const AVCodec *codec = NULL;
    int idx = av_find_best_stream(s->fmt, AVMEDIA_TYPE_VIDEO, -1, -1, &codec, 0);
    if (idx == AVERROR_STREAM_NOT_FOUND)
        return vg_errf(VG_ERR_MEDIA, "open %s: no video stream", s->url_masked);
    if (idx < 0 || !codec)
        return vg_errf(VG_ERR_MEDIA, "open %s: no decoder for its video stream", s->url_masked);
    AVStream *vs = s->fmt->streams[idx];
    s->vstream = idx;
    describe(s, vs);
    s->dec = avcodec_alloc_context3(codec);
    if (!s->dec)
        return vg_errf(VG_ERR_NOMEM, "open %s: out of memory", s->url_masked);
    int rc = avcodec_parameters_to_context(s->dec, vs->codecpar);
    if (rc < 0)
        return av_fail(s, rc, "decoder for");
    s->dec->pkt_timebase = vs->time_base;
    if (s->keyframes_only)
        s->dec->skip_frame = AVDISCARD_NONKEY;
    s->dec->thread_count = 0;   /* one per core */
    /* Frame threading delays every frame by one per thread: fine for files,
     * not for a live camera whose frames should be seen as they happen. */
    s->dec->thread_type = cap_source_is_live(s->kind) ? FF_THREAD_SLICE
                                                     : FF_THREAD_FRAME | FF_THREAD_SLICE;
    rc = avcodec_open2(s->dec, codec, NULL);
    return rc < 0 ? av_fail(s, rc, "decoder for") : VG_OK;
}

vg_status cap_source_open(struct cap_source **out, const char *url,
                          const struct cap_source_opts *opts)
{
    struct cap_source *s = calloc(1, sizeof(*s));
    vg_status st = VG_ERR_NOMEM;
    if (!s) {
        st = vg_errf(VG_ERR_NOMEM, "open: out of memory");
        goto out;
    }
    s->kind = cap_source_kind_of(url);
    vg_cfg_mask_url(s->url_masked, sizeof(s->url_masked), url);
    snprintf(s->camera, sizeof(s->camera), "%s", opts->camera ? opts->camera : "");
    s->stop = opts->stop;
    s->stop_ctx = opts->stop_ctx;
    s->read_timeout_ms = opts->read_timeout_ms > 0 ? opts->read_timeout_ms : READ_TIMEOUT_MS;
    s->keyframes_only = opts->keyframes_only;
    s->on_packet = opts->on_packet;
    s->packet_ctx = opts->packet_ctx;
    s->pkt = av_packet_alloc();
    s->frame = av_frame_alloc();
    if (!s->pkt || !s->frame) {
        st = vg_errf(VG_ERR_NOMEM, "open %s: out of memory", s->url_masked);
        goto out;
    }
    st = open_input(s, url, opts->open_timeout_ms > 0 ? opts->open_timeout_ms : OPEN_TIMEOUT_MS);
    /* MJPEG over HTTP carries no timestamps; FFmpeg invents them from a
     * guessed frame rate (25 fps), which would make sampling run at the
     * wrong rate. Frames of a live source arrive in real time: use that. */
    if (st == VG_OK) {
        s->wallclock = cap_source_is_live(s->kind) &&
                       (s->fmt->iformat->flags & AVFMT_NOTIMESTAMPS);
        st = open_decoder(s);
    }
    if (st != VG_OK)
        goto out;
    s->opened_us = vg_mono_us();
    *out = s;
    s = NULL;
out:
    cap_source_destroy(s);
    return st;
}

void cap_source_destroy(struct cap_source *s)
{
    if (!s)
        return;
    avcodec_free_context(&s->dec);
    avformat_close_input(&s->fmt);
    av_packet_free(&s->pkt);
    av_frame_free(&s->frame);
    free(s);
}

/* ---- read -------------------------------------------------------------- */

/* err: an AVERROR, or 0 for a frame the decoder repaired (concealed). */
static void decode_error(struct cap_source *s, int err)
{
    char msg[AV_ERROR_MAX_STRING_SIZE + 32] = "frame damaged, errors concealed";
    s->decode_errors++;
    if (s->decode_errors % DECODE_ERROR_LOG_EVERY != 1)
        return;
    if (err) {
        char why[AV_ERROR_MAX_STRING_SIZE];
        av_strerror(err, why, sizeof(why));
        snprintf(msg, sizeof(msg), "packet skipped: %s", why);
    }
    VG_WARN("frame.decode_error", s->camera, "%s: %s (%" PRIu64 " so far)",
            s->url_masked, msg, s->decode_errors);
}

/* Read one packet and hand it to the decoder; at the end of input, start
 * draining the frames the decoder still holds. */
static vg_status feed_decoder(struct cap_source *s)
{
    if (s->flushing)
        return vg_errf(VG_ERR_EOF, "%s: end of stream", s->url_masked);
    arm_deadline(s, s->read_timeout_ms);
    int rc = av_read_frame(s->fmt, s->pkt);
    /* The end of input: AVERROR_EOF, or a demuxer that says something else
     * once its input ran out. avio marks a read error (a deadline that
     * expired, a reset connection) as eof_reached too, with the error
     * kept in pb->error: that is a failure, not an end. */
    if (rc == AVERROR_EOF ||
        (rc < 0 && s->fmt->pb && avio_feof(s->fmt->pb) && !s->fmt->pb->error)) {
        s->flushing = 1;
        avcodec_send_packet(s->dec, NULL);
        return VG_OK;
    }
    /* FFmpeg's http reads a multipart body that ends as EIO ("Stream ends
     * prematurely"): for a camera, that is the camera hanging up. */
    if (rc == AVERROR(EIO) && s->kind == CAP_SOURCE_HTTP)
        return vg_errf(status_of_averror(rc), "read %s: the camera closed the stream",
                       s->url_masked);
    if (rc < 0)
        return av_fail(s, rc, "read");
    if (s->pkt->stream_index == s->vstream) {
        if (s->on_packet)
            s->on_packet(s->packet_ctx, s->fmt->streams[s->vstream], s->pkt);
        rc = avcodec_send_packet(s->dec, s->pkt);
        if (rc < 0 && rc != AVERROR(EAGAIN))
            decode_error(s, rc);
    }
    av_packet_unref(s->pkt);
    return VG_OK;
}

static int64_t frame_pts_ms(struct cap_source *s, const AVFrame *f)
{
    const AVStream *vs = s->fmt->streams[s->vstream];
    int64_t ts = f->best_effort_timestamp != AV_NOPTS_VALUE ? f->best_effort_timestamp : f->pts;
    if (s->wallclock || (ts == AV_NOPTS_VALUE && cap_source_is_live(s->kind))) {
        s->last_pts_ms = (vg_mono_us() - s->opened_us) / 1000;
    } else if (ts != AV_NOPTS_VALUE) {
        if (vs->start_time != AV_NOPTS_VALUE)
            ts -= vs->start_time;
        s->last_pts_ms = av_rescale_q(ts, vs->time_base, (AVRational){1, 1000});
    } else {
        s->last_pts_ms += s->frame_ms;
    }
    return s->last_pts_ms;
}

vg_status cap_source_read(struct cap_source *s, const AVFrame **frame, int64_t *pts_ms)
{
    for (;;) {
        int rc = avcodec_receive_frame(s->dec, s->frame);
        if (rc == 0) {
            /* Damaged data usually still yields a frame, patched up from
             * its neighbours: still worth analysing, but counted. */
            if (s->frame->decode_error_flags)
                decode_error(s, 0);
            *pts_ms = frame_pts_ms(s, s->frame);
            *frame = s->frame;
            return VG_OK;
        }
        if (rc == AVERROR_EOF)
            return vg_errf(VG_ERR_EOF, "%s: end of stream", s->url_masked);
        if (rc != AVERROR(EAGAIN))
            decode_error(s, rc);
        vg_status st = feed_decoder(s);
        if (st != VG_OK)
            return st;
    }
}

int cap_frame_is_key(const AVFrame *f)
{
#ifdef AV_FRAME_FLAG_KEY
    int key = (f->flags & AV_FRAME_FLAG_KEY) != 0;
#else
    int key = f->key_frame;
#endif
    return key || f->pict_type == AV_PICTURE_TYPE_I;
}

vg_status cap_source_rewind(struct cap_source *s)
{
    int64_t start = s->fmt->start_time != AV_NOPTS_VALUE ? s->fmt->start_time : 0;
    arm_deadline(s, s->read_timeout_ms);
    int rc = av_seek_frame(s->fmt, -1, start, AVSEEK_FLAG_BACKWARD);
    if (rc < 0)
        return av_fail(s, rc, "seek");
    avcodec_flush_buffers(s->dec);
    s->flushing = 0;
    s->last_pts_ms = 0;
    return VG_OK;
}
