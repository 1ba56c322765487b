/* The local clip from a camera's recording segments. See assemble.h.
 *
 * Packets are read segment by segment and stamped with wall-clock µs (the
 * segment's start from its name plus the packet's time in the file). Before
 * the range starts, the packets since the last keyframe are held back (one
 * GOP at most): the first packet at or after start_us releases them, so the
 * clip opens on the last keyframe at or before start_us and decodes from
 * its first frame. From there every packet whose dts is before end_us is
 * written. */
#include "clip/assemble.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libavformat/avformat.h>

#include "clip/assemble_int.h"
#include "log.h"

#define US_TB ((AVRational){1, 1000000})

struct run {
    const char *camera;
    int64_t start_us, end_us;
    const char *tmp;
    /* the stream's parameters (of the first segment used) */
    AVCodecParameters *par;
    AVRational fps;
    /* held back before start_us: absolute wall-clock µs */
    AVPacket **held;
    size_t n_held, cap_held;
    int streaming;              /* start_us reached: packets go straight out */
    int done;                   /* end_us reached, or the stream changed */
    struct clip_out *out;
    int64_t origin_us;          /* wall clock of the clip's first packet */
    int64_t last_end_us;        /* wall clock of the end of the latest packet written */
    int64_t dts_shift;          /* reorder delay of reconstructed dts, µs */
    /* the GOP being read, wall-clock µs */
    AVPacket **gop;
    size_t n_gop, cap_gop;
};

static void drop_held(struct run *r)
{
    for (size_t i = 0; i < r->n_held; i++)
        av_packet_free(&r->held[i]);
    r->n_held = 0;
}

static vg_status hold(struct run *r, AVPacket *p)
{
    if (r->n_held == r->cap_held) {
        size_t cap = r->cap_held ? r->cap_held * 2 : 256;
        AVPacket **t = realloc(r->held, cap * sizeof(*t));
        if (!t)
            return VG_ERR_NOMEM;
        r->held = t;
        r->cap_held = cap;
    }
    if (!(r->held[r->n_held] = av_packet_clone(p)))
        return VG_ERR_NOMEM;
    r->n_held++;
    return VG_OK;
}

/* One packet (wall-clock µs) into the clip, relative to its origin. */
static vg_status emit(struct run *r, const AVPacket *p)
{
    vg_status st;
    if (!r->out) {
        r->origin_us = p->pts;
        if ((st = clip_out_open(&r->out, r->tmp, r->par, r->fps)) != VG_OK)
            return st;
    }
    AVPacket *q = av_packet_clone(p);
    if (!q)
        return VG_ERR_NOMEM;
    q->pts -= r->origin_us;
    q->dts -= r->origin_us;
    st = clip_out_write(r->out, q);
    av_packet_free(&q);
    int64_t end = p->pts + (p->duration > 0 ? p->duration : 0);
    if (end > r->last_end_us)
        r->last_end_us = end;
    return st;
}

static vg_status release_held(struct run *r)
{
    vg_status st = VG_OK;
    for (size_t i = 0; i < r->n_held && st == VG_OK; i++)
        st = emit(r, r->held[i]);
    drop_held(r);
    r->streaming = 1;
    return st;
}

/* p in wall-clock µs. */
static vg_status take(struct run *r, AVPacket *p)
{
    int key = (p->flags & AV_PKT_FLAG_KEY) != 0;
    if (r->streaming) {
        if (p->dts >= r->end_us) {
            r->done = 1;
            return VG_OK;
        }
        return emit(r, p);
    }
    if (key && p->pts <= r->start_us) {
        drop_held(r);               /* a later keyframe still before the start */
        return hold(r, p);
    }
    if (!r->n_held && !key)
        return VG_OK;               /* nothing to decode it from */
    if (p->pts < r->start_us)
        return hold(r, p);
    /* The range starts here (or the recording starts after start_us). */
    if (p->pts >= r->end_us) {
        r->done = 1;                /* nothing recorded inside the range */
        return VG_OK;
    }
    vg_status st = release_held(r);
    return st == VG_OK ? take(r, p) : st;
}

static int cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static void drop_gop(struct run *r)
{
    for (size_t i = 0; i < r->n_gop; i++)
        av_packet_free(&r->gop[i]);
    r->n_gop = 0;
}

static vg_status gop_add(struct run *r, AVPacket *p)
{
    if (r->n_gop == r->cap_gop) {
        size_t cap = r->cap_gop ? r->cap_gop * 2 : 64;
        AVPacket **t = realloc(r->gop, cap * sizeof(*t));
        if (!t)
            return VG_ERR_NOMEM;
        r->gop = t;
        r->cap_gop = cap;
    }
    if (!(r->gop[r->n_gop] = av_packet_alloc()))
        return VG_ERR_NOMEM;
    av_packet_move_ref(r->gop[r->n_gop++], p);
    return VG_OK;
}

/* Matroska stores presentation times only. Within a GOP (segments start at
 * keyframes; closed GOPs) the decoding times are the sorted presentation
 * times, moved earlier by the reorder delay so that no packet is decoded
 * after it is shown; the delay only grows, so dts stay monotonic. */
static vg_status flush_gop(struct run *r)
{
    vg_status st = VG_OK;
    size_t n = r->n_gop;
    int64_t *sorted = malloc((n ? n : 1) * sizeof(*sorted));
    if (!sorted)
        return VG_ERR_NOMEM;
    for (size_t i = 0; i < n; i++)
        sorted[i] = r->gop[i]->pts;
    qsort(sorted, n, sizeof(*sorted), cmp_i64);
    for (size_t i = 0; i < n; i++)
        if (sorted[i] - r->gop[i]->pts > r->dts_shift)
            r->dts_shift = sorted[i] - r->gop[i]->pts;
    for (size_t i = 0; i < n && st == VG_OK && !r->done; i++) {
        r->gop[i]->dts = sorted[i] - r->dts_shift;
        st = take(r, r->gop[i]);
    }
    free(sorted);
    drop_gop(r);
    return st;
}

static int same_stream(const AVCodecParameters *a, const AVCodecParameters *b)
{
    return a->codec_id == b->codec_id && a->width == b->width && a->height == b->height &&
           a->extradata_size == b->extradata_size &&
           (!a->extradata_size || !memcmp(a->extradata, b->extradata, a->extradata_size));
}

static vg_status one_segment(struct run *r, const struct clip_seg *seg)
{
    AVFormatContext *ic = NULL;
    const AVInputFormat *mkv = av_find_input_format("matroska");
    int err = avformat_open_input(&ic, seg->path, mkv, NULL);
    if (err < 0) {
        /* The open segment may not have its header on disk yet. */
        if (seg->indexed)
            VG_WARN("clip.segment_unreadable", r->camera, "%s: %s", seg->path, av_err2str(err));
        return VG_OK;
    }
    int vi = av_find_best_stream(ic, AVMEDIA_TYPE_VIDEO, -1, -1, NULL, 0);
    if (vi < 0) {
        VG_WARN("clip.segment_unreadable", r->camera, "%s: no video stream", seg->path);
        avformat_close_input(&ic);
        return VG_OK;
    }
    AVStream *s = ic->streams[vi];
    vg_status st = VG_OK;
    if (r->par && !same_stream(r->par, s->codecpar)) {
        if (r->streaming) {
            /* A resolution or codec change: one MP4 holds one of each. */
            VG_INFO("clip.stream_changed", r->camera, "%s: %s %dx%d after %s %dx%d; the clip "
                    "ends here", seg->path, avcodec_get_name(s->codecpar->codec_id),
                    s->codecpar->width, s->codecpar->height,
                    avcodec_get_name(r->par->codec_id), r->par->width, r->par->height);
            r->done = 1;
            avformat_close_input(&ic);
            return VG_OK;
        }
        drop_held(r);               /* all before start_us: begin with the new stream */
        avcodec_parameters_free(&r->par);
    }
    if (!r->par) {
        if (!(r->par = avcodec_parameters_alloc()) ||
            avcodec_parameters_copy(r->par, s->codecpar) < 0) {
            avformat_close_input(&ic);
            return VG_ERR_NOMEM;
        }
        r->fps = s->avg_frame_rate.num ? s->avg_frame_rate : s->r_frame_rate;
    }
    AVPacket *p = av_packet_alloc();
    int64_t base = AV_NOPTS_VALUE;
    if (!p)
        st = VG_ERR_NOMEM;
    /* A truncated tail (the open segment) reads as the end of the segment. */
    while (st == VG_OK && !r->done && av_read_frame(ic, p) >= 0) {
        if (p->stream_index != vi || p->pts == AV_NOPTS_VALUE) {
            av_packet_unref(p);
            continue;
        }
        if (base == AV_NOPTS_VALUE)
            base = p->pts;          /* the segment's first packet is at its start time */
        p->pts = seg->start_us + av_rescale_q(p->pts - base, s->time_base, US_TB);
        p->dts = AV_NOPTS_VALUE;
        p->duration = av_rescale_q(p->duration, s->time_base, US_TB);
        if ((p->flags & AV_PKT_FLAG_KEY) && r->n_gop)
            st = flush_gop(r);
        if (st == VG_OK)
            st = gop_add(r, p);
        av_packet_unref(p);
    }
    if (st == VG_OK && !r->done)
        st = flush_gop(r);
    drop_gop(r);
    av_packet_free(&p);
    avformat_close_input(&ic);
    return st;
}

static vg_status not_found(const char *camera, int64_t start_us, int64_t end_us)
{
    char a[40], b[40];
    clip_format_time(start_us, a, sizeof(a));
    clip_format_time(end_us, b, sizeof(b));
    return vg_errf(VG_ERR_NOT_FOUND, "no recording of %s between %s and %s", camera, a, b);
}

vg_status vg_clip_assemble(const char *camera_dir, int64_t start_us, int64_t end_us,
                           const char *out_path, struct vg_clip_info *info)
{
    char camera[256], tmp[PATH_MAX];
    struct clip_seg *segs = NULL;
    size_t n = 0;

    if (!camera_dir || !out_path || start_us < 0 || end_us <= start_us)
        return vg_errf(VG_ERR_INVALID, "clip: need a recording directory, an output and a "
                       "range whose end is after its start");
    if (end_us - start_us > VG_CLIP_MAX_RANGE_US)
        return vg_errf(VG_ERR_INVALID, "clip: %lld s asked for; at most %lld s",
                       (long long)((end_us - start_us) / 1000000),
                       (long long)(VG_CLIP_MAX_RANGE_US / 1000000));
    const char *slash = strrchr(camera_dir, '/');
    snprintf(camera, sizeof(camera), "%s", slash && slash[1] ? slash + 1 : camera_dir);
    for (size_t len = strlen(camera); len > 0 && camera[len - 1] == '/'; len--)
        camera[len - 1] = '\0';
    /* One writer per thread: concurrent requests for one clip never share a file. */
    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.%d-%lu.tmp", out_path, (int)getpid(),
                         (unsigned long)pthread_self()) >= sizeof(tmp))
        return vg_errf(VG_ERR_INVALID, "clip: output path too long");

    vg_status st = clip_segments_list(camera_dir, &segs, &n);
    if (st != VG_OK)
        return st;
    struct run r = {.camera = camera, .start_us = start_us, .end_us = end_us, .tmp = tmp};
    for (size_t i = 0; i < n && st == VG_OK && !r.done; i++)
        if (segs[i].end_us > start_us && segs[i].start_us < end_us)
            st = one_segment(&r, &segs[i]);
    free(segs);
    drop_held(&r);
    free(r.held);
    drop_gop(&r);
    free(r.gop);
    if (st == VG_OK && !r.out)
        st = not_found(camera, start_us, end_us);
    if (st == VG_OK)
        st = clip_out_finish(r.out);
    if (st == VG_OK && rename(tmp, out_path) != 0)
        st = vg_errf(VG_ERR_IO, "clip: rename to %s: %s", out_path, strerror(errno));
    if (st == VG_OK && info) {
        memset(info, 0, sizeof(*info));
        info->start_us = r.origin_us;
        info->end_us = r.last_end_us < end_us ? r.last_end_us : end_us;
        info->transcoded = clip_out_transcoded(r.out);
        snprintf(info->codec, sizeof(info->codec), "%s", clip_out_codec(r.out));
        clip_out_size(r.out, &info->width, &info->height);
    }
    if (st != VG_OK && r.out)
        unlink(tmp);
    clip_out_free(r.out);
    avcodec_parameters_free(&r.par);
    return st;
}
