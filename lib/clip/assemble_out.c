/* The clip's MP4: H.264/H.265 packets copied, anything else decoded and
 * encoded to H.264 (libx264 veryfast; FFmpeg's mpeg4 when libx264 is not
 * built in). Timestamps arrive in µs from the clip's start. */
#include "clip/assemble_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavformat/avformat.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#define US_TB ((AVRational){1, 1000000})
#define ENC_TB ((AVRational){1, 1000})     /* mpeg4 allows denominators up to 65535 */
#define COPY_TB ((AVRational){1, 90000})

struct clip_out {
    AVFormatContext *oc;
    AVStream *st;
    int header_written;
    int64_t last_dts;           /* copy: in the stream's time base */
    int have_dts;
    /* transcoding */
    AVCodecContext *dec, *enc;
    struct SwsContext *sws;
    AVFrame *frame, *scaled;
    AVPacket *pkt;
    int64_t last_pts;
    int have_pts;
    char codec[32];
    int width, height;
};

static vg_status av_fail(const char *what, int err)
{
    char msg[AV_ERROR_MAX_STRING_SIZE] = {0};
    av_strerror(err, msg, sizeof(msg));
    return vg_errf(VG_ERR_MEDIA, "clip: %s: %s", what, msg);
}

static int copyable(enum AVCodecID id)
{
    return id == AV_CODEC_ID_H264 || id == AV_CODEC_ID_HEVC;
}

static vg_status open_transcoder(struct clip_out *o, const AVCodecParameters *par,
                                 AVRational fps)
{
    const AVCodec *dc = avcodec_find_decoder(par->codec_id);
    if (!dc)
        return vg_errf(VG_ERR_MEDIA, "clip: no decoder for %s",
                       avcodec_get_name(par->codec_id));
    if (!(o->dec = avcodec_alloc_context3(dc)))
        return VG_ERR_NOMEM;
    int err = avcodec_parameters_to_context(o->dec, par);
    o->dec->pkt_timebase = US_TB;
    if (err < 0 || (err = avcodec_open2(o->dec, dc, NULL)) < 0)
        return av_fail("open decoder", err);

    const AVCodec *ec = avcodec_find_encoder_by_name("libx264");
    int x264 = ec != NULL;
    if (!ec)
        ec = avcodec_find_encoder(AV_CODEC_ID_MPEG4);
    if (!ec)
        return vg_errf(VG_ERR_MEDIA, "clip: neither libx264 nor mpeg4 encoder available");
    if (!(o->enc = avcodec_alloc_context3(ec)))
        return VG_ERR_NOMEM;
    if (fps.num <= 0 || fps.den <= 0 || av_q2d(fps) > 240)
        fps = (AVRational){25, 1};
    /* yuv420p needs even sizes. */
    o->enc->width = par->width & ~1;
    o->enc->height = par->height & ~1;
    o->enc->pix_fmt = AV_PIX_FMT_YUV420P;
    o->enc->time_base = ENC_TB;
    o->enc->framerate = fps;
    o->enc->gop_size = (int)(2 * av_q2d(fps) + 0.5);    /* a keyframe every 2 s for seeking */
    o->enc->sample_aspect_ratio = par->sample_aspect_ratio;
    if (x264) {
        av_opt_set(o->enc->priv_data, "preset", "veryfast", 0);
    } else {
        o->enc->flags |= AV_CODEC_FLAG_QSCALE;
        o->enc->global_quality = FF_QP2LAMBDA * 4;
    }
    if (o->oc->oformat->flags & AVFMT_GLOBALHEADER)
        o->enc->flags |= AV_CODEC_FLAG_GLOBAL_HEADER;
    if ((err = avcodec_open2(o->enc, ec, NULL)) < 0)
        return av_fail(x264 ? "open libx264" : "open mpeg4 encoder", err);
    if ((err = avcodec_parameters_from_context(o->st->codecpar, o->enc)) < 0)
        return av_fail("encoder parameters", err);
    o->st->time_base = o->enc->time_base;
    o->st->avg_frame_rate = fps;
    if (!(o->frame = av_frame_alloc()) || !(o->scaled = av_frame_alloc()) ||
        !(o->pkt = av_packet_alloc()))
        return VG_ERR_NOMEM;
    o->scaled->format = AV_PIX_FMT_YUV420P;
    o->scaled->width = o->enc->width;
    o->scaled->height = o->enc->height;
    if ((err = av_frame_get_buffer(o->scaled, 0)) < 0)
        return av_fail("frame buffer", err);
    snprintf(o->codec, sizeof(o->codec), "%s", avcodec_get_name(ec->id));
    o->width = o->enc->width;
    o->height = o->enc->height;
    return VG_OK;
}

vg_status clip_out_open(struct clip_out **out, const char *path, const AVCodecParameters *par,
                        AVRational fps)
{
    struct clip_out *o = calloc(1, sizeof(*o));
    AVDictionary *opts = NULL;
    vg_status st = VG_OK;
    int err;
    if (!o)
        return VG_ERR_NOMEM;
    *out = o;
    if ((err = avformat_alloc_output_context2(&o->oc, NULL, "mp4", path)) < 0)
        return av_fail("mp4 muxer", err);
    if (!(o->st = avformat_new_stream(o->oc, NULL)))
        return VG_ERR_NOMEM;
    if (copyable(par->codec_id)) {
        if ((err = avcodec_parameters_copy(o->st->codecpar, par)) < 0)
            return av_fail("codec parameters", err);
        /* hvc1: parameter sets in the sample entry only, the tag Safari plays. */
        o->st->codecpar->codec_tag = par->codec_id == AV_CODEC_ID_HEVC ? MKTAG('h', 'v', 'c', '1')
                                                                       : 0;
        o->st->time_base = COPY_TB;
        o->st->avg_frame_rate = fps;
        snprintf(o->codec, sizeof(o->codec), "%s", avcodec_get_name(par->codec_id));
        o->width = par->width;
        o->height = par->height;
    } else if ((st = open_transcoder(o, par, fps)) != VG_OK) {
        return st;
    }
    if ((err = avio_open(&o->oc->pb, path, AVIO_FLAG_WRITE)) < 0)
        return vg_errf(VG_ERR_IO, "clip: open %s: %s", path, av_err2str(err));
    av_dict_set(&opts, "movflags", "+faststart", 0);
    err = avformat_write_header(o->oc, &opts);
    av_dict_free(&opts);
    if (err < 0)
        return av_fail("mp4 header", err);
    o->header_written = 1;
    return VG_OK;
}

static vg_status write_copy(struct clip_out *o, const AVPacket *in)
{
    AVPacket *p = av_packet_clone(in);
    if (!p)
        return VG_ERR_NOMEM;
    p->stream_index = 0;
    av_packet_rescale_ts(p, US_TB, o->st->time_base);
    /* Segments overlap by a frame or jitter: keep dts strictly increasing
     * (in the muxer's time base, where µs apart may be the same tick). */
    if (o->have_dts && p->dts <= o->last_dts)
        p->dts = o->last_dts + 1;
    if (p->pts < p->dts)
        p->pts = p->dts;
    o->last_dts = p->dts;
    o->have_dts = 1;
    int err = av_interleaved_write_frame(o->oc, p);
    av_packet_free(&p);
    return err < 0 ? av_fail("write packet", err) : VG_OK;
}

/* Write what the encoder has (frame NULL: drain it). */
static vg_status encode(struct clip_out *o, AVFrame *frame)
{
    int err = avcodec_send_frame(o->enc, frame);
    if (err < 0 && err != AVERROR_EOF)
        return av_fail("encode", err);
    while ((err = avcodec_receive_packet(o->enc, o->pkt)) >= 0) {
        o->pkt->stream_index = 0;
        av_packet_rescale_ts(o->pkt, o->enc->time_base, o->st->time_base);
        err = av_interleaved_write_frame(o->oc, o->pkt);
        av_packet_unref(o->pkt);
        if (err < 0)
            return av_fail("write packet", err);
    }
    return err == AVERROR(EAGAIN) || err == AVERROR_EOF ? VG_OK : av_fail("encode", err);
}

/* Frames the decoder has, scaled and encoded. */
static vg_status drain_decoder(struct clip_out *o)
{
    int err;
    while ((err = avcodec_receive_frame(o->dec, o->frame)) >= 0) {
        int64_t ts = o->frame->best_effort_timestamp;
        if (ts == AV_NOPTS_VALUE)
            ts = o->frame->pts;
        int64_t pts = ts == AV_NOPTS_VALUE ? (o->have_pts ? o->last_pts + 1 : 0)
                                           : av_rescale_q(ts, US_TB, o->enc->time_base);
        if (o->have_pts && pts <= o->last_pts)
            pts = o->last_pts + 1;
        o->last_pts = pts;
        o->have_pts = 1;
        o->sws = sws_getCachedContext(o->sws, o->frame->width, o->frame->height,
                                      o->frame->format, o->enc->width, o->enc->height,
                                      AV_PIX_FMT_YUV420P, SWS_BILINEAR, NULL, NULL, NULL);
        if (!o->sws || (err = av_frame_make_writable(o->scaled)) < 0) {
            const char *fmt = av_get_pix_fmt_name(o->frame->format);
            vg_status st = vg_errf(VG_ERR_MEDIA, "clip: cannot convert %dx%d %s to yuv420p",
                                   o->frame->width, o->frame->height, fmt ? fmt : "?");
            av_frame_unref(o->frame);
            return st;
        }
        sws_scale(o->sws, (const uint8_t *const *)o->frame->data, o->frame->linesize, 0,
                  o->frame->height, o->scaled->data, o->scaled->linesize);
        av_frame_unref(o->frame);
        o->scaled->pts = pts;
        vg_status st = encode(o, o->scaled);
        if (st != VG_OK)
            return st;
    }
    return err == AVERROR(EAGAIN) || err == AVERROR_EOF ? VG_OK : av_fail("decode", err);
}

vg_status clip_out_write(struct clip_out *o, const AVPacket *pkt)
{
    if (!o->enc)
        return write_copy(o, pkt);
    int err = avcodec_send_packet(o->dec, pkt);
    /* A damaged frame (a partly written segment) is skipped, not fatal. */
    if (err < 0 && err != AVERROR_INVALIDDATA)
        return av_fail("decode", err);
    return drain_decoder(o);
}

vg_status clip_out_finish(struct clip_out *o)
{
    vg_status st = VG_OK;
    if (o->enc) {
        avcodec_send_packet(o->dec, NULL);
        if ((st = drain_decoder(o)) == VG_OK)
            st = encode(o, NULL);
        if (st != VG_OK)
            return st;
    }
    int err = av_write_trailer(o->oc);
    o->header_written = 0;
    if (err < 0)
        return av_fail("mp4 trailer", err);
    if ((err = avio_closep(&o->oc->pb)) < 0)
        return vg_errf(VG_ERR_IO, "clip: close: %s", av_err2str(err));
    return VG_OK;
}

void clip_out_free(struct clip_out *o)
{
    if (!o)
        return;
    if (o->oc) {
        if (o->oc->pb)
            avio_closep(&o->oc->pb);
        avformat_free_context(o->oc);
    }
    avcodec_free_context(&o->dec);
    avcodec_free_context(&o->enc);
    sws_freeContext(o->sws);
    av_frame_free(&o->frame);
    av_frame_free(&o->scaled);
    av_packet_free(&o->pkt);
    free(o);
}

int clip_out_transcoded(const struct clip_out *o)
{
    return o->enc != NULL;
}

const char *clip_out_codec(const struct clip_out *o)
{
    return o->codec;
}

void clip_out_size(const struct clip_out *o, int *width, int *height)
{
    *width = o->width;
    *height = o->height;
}
