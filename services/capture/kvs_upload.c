/* Capture -> Kinesis Video Streams: remux into live MKV, cut it into the
 * header and whole clusters, queue them for PutMedia. See kvs_upload.h. */
#include "kvs_upload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libavcodec/bsf.h>
#include <libavutil/mathematics.h>
#include <libavutil/opt.h>

#include "aws/aws_config.h"
#include "log.h"
#include "metrics.h"
#include "opts.h"
#include "timeutil.h"
#include "yamltree.h"

#define IO_BUF 65536
#define EBML_ID_HEADER 0x1A45DFA3u
#define MKV_ID_SEGMENT 0x18538067u
#define MKV_ID_CLUSTER 0x1F43B675u
#define MKV_ID_TIMECODE 0xE7u
/* KVS refuses fragments over 10 s (ErrorId 4002): a GOP longer than this is
 * cut (that cluster then starts without a keyframe). */
#define CLUSTER_TIME_LIMIT_MS 9500

struct kvs_settings {
    int upload;
    int queue_mb;
    int reconnect_max_s;
};

static const struct vg_opt kvs_opts[] = {
    VG_OPT_BOOL_("upload", struct kvs_settings, upload, "true",
                 "upload every camera that has a kvs_stream to Kinesis Video (PutMedia)"),
    VG_OPT_INT_("queue_mb", struct kvs_settings, queue_mb, 1, 512, "8",
                "upload queue per camera; when full, whole clusters (oldest first) are dropped"),
    VG_OPT_INT_("reconnect_max_s", struct kvs_settings, reconnect_max_s, 1, 600, "30",
                "longest wait between PutMedia reconnects (backoff from 0.5 s, doubling)"),
    VG_OPT_END,
};

/* The muxer's output cut at the top level: everything before the first
 * Cluster is the header; then each whole Cluster goes to the uploader. */
struct scan {
    uint8_t *buf;
    size_t len, cap;
    uint8_t *hdr;
    size_t hdr_len;
    int header_sent, broken;
};

struct cap_kvs {
    char camera[VG_ID_MAX], stream[257];
    struct kvs_settings s;
    struct vg_aws *aws;
    struct vg_kvs_put *up;
    /* the current source */
    int active, src_index, warned_codec;
    AVRational src_tb;
    AVCodecParameters *par;
    AVBSFContext *bsf;          /* extract_extradata, while the extradata is missing */
    /* the current MKV stream */
    AVFormatContext *mux;
    int64_t origin_dts, base_ms, last_dts_ms;
    int64_t last_ms;            /* newest timestamp written, across streams */
    struct scan sc;
    struct vg_counter *skipped, *errors;
};

/* ---- EBML cutting --------------------------------------------------------- */

static int vint_len(uint8_t b)
{
    for (int i = 0; i < 8; i++)
        if (b & (0x80 >> i))
            return i + 1;
    return 0;
}

/* Element header at p (n bytes available): 1 and *id, *size (-1: unknown),
 * *hlen; 0 when more bytes are needed; -1 when it is not EBML. */
static int ebml_head(const uint8_t *p, size_t n, uint32_t *id, int64_t *size, size_t *hlen)
{
    if (n < 1)
        return 0;
    int il = vint_len(p[0]);
    if (il == 0 || il > 4)
        return -1;
    if (n < (size_t)il + 1)
        return 0;
    int sl = vint_len(p[il]);
    if (sl == 0)
        return -1;
    if (n < (size_t)(il + sl))
        return 0;
    uint32_t v = 0;
    for (int i = 0; i < il; i++)
        v = v << 8 | p[i];
    uint64_t s = p[il] & (0xFFu >> sl);
    int all_ones = s == (0xFFu >> sl);
    for (int i = 1; i < sl; i++) {
        s = s << 8 | p[il + i];
        all_ones &= p[il + i] == 0xFF;
    }
    *id = v;
    *size = all_ones ? -1 : (int64_t)s;
    *hlen = (size_t)(il + sl);
    return 1;
}

/* The Timecode child of a whole cluster, ms; -1 if it has none. */
static int64_t cluster_timecode(const uint8_t *p, size_t n, size_t hlen)
{
    size_t off = hlen;
    while (off < n) {
        uint32_t id;
        int64_t size;
        size_t h;
        if (ebml_head(p + off, n - off, &id, &size, &h) != 1 || size < 0 ||
            (uint64_t)size > n - off - h)
            return -1;
        if (id == MKV_ID_TIMECODE) {
            uint64_t v = 0;
            for (int64_t i = 0; i < size && i < 8; i++)
                v = v << 8 | p[off + h + (size_t)i];
            return (int64_t)v;
        }
        off += h + (size_t)size;
    }
    return -1;
}

static int hdr_append(struct scan *sc, const uint8_t *p, size_t n)
{
    uint8_t *h = realloc(sc->hdr, sc->hdr_len + n);
    if (!h)
        return -1;
    memcpy(h + sc->hdr_len, p, n);
    sc->hdr = h;
    sc->hdr_len += n;
    return 0;
}

static void scan_element(struct cap_kvs *k, uint32_t id, const uint8_t *p, size_t n, size_t hlen)
{
    struct scan *sc = &k->sc;
    if (id != MKV_ID_CLUSTER) {
        /* EBML header, Info, Tracks, Tags...; after the first cluster only
         * the trailer's Cues/Tags, which a live stream does without. */
        if (!sc->header_sent && hdr_append(sc, p, n) != 0)
            sc->broken = 1;
        return;
    }
    vg_status st = VG_OK;
    if (!sc->header_sent) {
        if ((st = vg_kvs_put_header(k->up, sc->hdr, sc->hdr_len)) != VG_OK) {
            sc->broken = 1;
            return;
        }
        sc->header_sent = 1;
    }
    st = vg_kvs_put_cluster(k->up, p, n, cluster_timecode(p, n, hlen));
    if (st != VG_OK)
        VG_WARN("kvs.cluster_dropped", k->camera, "stream %s: %s", k->stream, vg_err_detail());
}

/* Cut every whole top-level element out of the bytes gathered so far. */
static void scan_run(struct cap_kvs *k)
{
    struct scan *sc = &k->sc;
    size_t off = 0;
    while (!sc->broken) {
        uint32_t id;
        int64_t size;
        size_t hlen;
        int r = ebml_head(sc->buf + off, sc->len - off, &id, &size, &hlen);
        if (r == 0)
            break;
        if (r < 0 || (size < 0 && id != MKV_ID_SEGMENT)) {
            sc->broken = 1;
            break;
        }
        if (id == MKV_ID_SEGMENT) {     /* enter it: its children are the elements */
            if (!sc->header_sent && hdr_append(sc, sc->buf + off, hlen) != 0)
                sc->broken = 1;
            off += hlen;
            continue;
        }
        if ((uint64_t)size > VG_KVS_MAX_FRAGMENT) {
            sc->broken = 1;
            break;
        }
        if (sc->len - off < hlen + (size_t)size)
            break;
        scan_element(k, id, sc->buf + off, hlen + (size_t)size, hlen);
        off += hlen + (size_t)size;
    }
    if (sc->broken) {
        VG_ERROR("kvs.mkv_cut", k->camera, "stream %s: the muxer's output could not be cut into "
                 "clusters; upload of this stream stops until the source is opened again",
                 k->stream);
        vg_counter_inc(k->errors);
        sc->len = 0;
        return;
    }
    memmove(sc->buf, sc->buf + off, sc->len - off);
    sc->len -= off;
}

#if LIBAVFORMAT_VERSION_MAJOR >= 61
static int on_mux_write(void *opaque, const uint8_t *data, int n)
#else
static int on_mux_write(void *opaque, uint8_t *data, int n)
#endif
{
    struct cap_kvs *k = opaque;
    struct scan *sc = &k->sc;
    if (sc->broken || n <= 0)
        return n;
    if (sc->len + (size_t)n > sc->cap) {
        size_t cap = sc->cap ? sc->cap : 1 << 16;
        while (cap < sc->len + (size_t)n)
            cap *= 2;
        uint8_t *b = realloc(sc->buf, cap);
        if (!b)
            return AVERROR(ENOMEM);
        sc->buf = b;
        sc->cap = cap;
    }
    memcpy(sc->buf + sc->len, data, (size_t)n);
    sc->len += (size_t)n;
    scan_run(k);
    return n;
}

/* ---- the muxer ------------------------------------------------------------ */

static void mux_free(struct cap_kvs *k)
{
    if (!k->mux)
        return;
    if (k->mux->pb) {
        av_freep(&k->mux->pb->buffer);
        avio_context_free(&k->mux->pb);
    }
    avformat_free_context(k->mux);
    k->mux = NULL;
    free(k->sc.hdr);
    k->sc.hdr = NULL;
    k->sc.hdr_len = 0;
    k->sc.len = 0;
    k->sc.header_sent = k->sc.broken = 0;
}

static void mux_close(struct cap_kvs *k)
{
    if (!k->mux)
        return;
    av_write_trailer(k->mux);       /* the last cluster */
    avio_flush(k->mux->pb);
    mux_free(k);
}

static vg_status mux_open(struct cap_kvs *k, int64_t origin_dts)
{
    AVFormatContext *m = NULL;
    AVDictionary *o = NULL;
    char limit[32];
    int rc = avformat_alloc_output_context2(&m, NULL, "matroska", NULL);
    if (rc < 0 || !m)
        return vg_errf(VG_ERR_MEDIA, "kvs: no matroska muxer");
    AVStream *os = avformat_new_stream(m, NULL);
    uint8_t *iobuf = av_malloc(IO_BUF);
    if (!os || !iobuf || avcodec_parameters_copy(os->codecpar, k->par) < 0) {
        av_free(iobuf);
        avformat_free_context(m);
        return VG_ERR_NOMEM;
    }
    os->codecpar->codec_tag = 0;
    os->time_base = (AVRational){1, 1000};
    m->pb = avio_alloc_context(iobuf, IO_BUF, 1, k, NULL, on_mux_write, NULL);
    if (!m->pb) {
        av_free(iobuf);
        avformat_free_context(m);
        return VG_ERR_NOMEM;
    }
    m->pb->seekable = 0;
    /* Absolute timestamps stay as they are: no shifting to zero. */
    m->avoid_negative_ts = AVFMT_AVOID_NEG_TS_MAKE_NON_NEGATIVE;
    av_dict_set(&o, "live", "1", 0);
    av_dict_set(&o, "write_crc32", "0", 0);
    /* A cluster per GOP: the muxer starts one at each keyframe; the limits
     * only cut GOPs too long or too large for one KVS fragment. */
    av_dict_set_int(&o, "cluster_time_limit", CLUSTER_TIME_LIMIT_MS, 0);
    snprintf(limit, sizeof(limit), "%d", k->s.queue_mb * 1024 * 1024 / 2);
    av_dict_set(&o, "cluster_size_limit", limit, 0);
    k->mux = m;
    k->sc.len = 0;
    k->sc.header_sent = k->sc.broken = 0;
    rc = avformat_write_header(m, &o);
    av_dict_free(&o);
    if (rc < 0) {
        char e[128];
        av_strerror(rc, e, sizeof(e));
        mux_free(k);
        return vg_errf(VG_ERR_MEDIA, "kvs: matroska header for stream %s: %s", k->stream, e);
    }
    avio_flush(m->pb);
    k->origin_dts = origin_dts;
    /* Wall clock at the first packet, never behind what was already sent:
     * KVS wants fragment timecodes to grow. */
    int64_t now_ms = vg_now_us() / 1000;
    k->base_ms = now_ms > k->last_ms + 1 ? now_ms : k->last_ms + 1;
    k->last_dts_ms = INT64_MIN;
    VG_INFO("kvs.stream_start", k->camera, "stream %s: new MKV stream (%s %dx%d) at %lld ms",
            k->stream, avcodec_get_name(k->par->codec_id), k->par->width, k->par->height,
            (long long)k->base_ms);
    return VG_OK;
}

/* ---- config ---------------------------------------------------------------- */

static vg_status load_settings(const struct vg_config *cfg, struct kvs_settings *s)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *node = NULL;
    const char *file = cfg->source[0] ? cfg->source : "configuration";
    vg_status st = vg_cfg_section(cfg, "kvs", &root, &node);
    if (st == VG_OK)
        st = vg_opts_load(kvs_opts, node, s, file, "kvs.");
    vg_yaml_free(root);
    return st;
}

vg_status cap_kvs_create(struct cap_kvs **out, const struct vg_config *cfg,
                         const struct vg_camera_cfg *cam)
{
    struct kvs_settings s = {0};
    *out = NULL;
    if (!cam->kvs_stream[0])
        return VG_OK;
    vg_status st = load_settings(cfg, &s);
    if (st != VG_OK || !s.upload)
        return st;
    struct cap_kvs *k = calloc(1, sizeof(*k));
    if (!k)
        return VG_ERR_NOMEM;
    k->s = s;
    snprintf(k->camera, sizeof(k->camera), "%s", cam->id);
    snprintf(k->stream, sizeof(k->stream), "%s", cam->kvs_stream);
    char l[128];
    snprintf(l, sizeof(l), "camera=\"%s\"", k->camera);
    k->skipped = vg_counter_get_labeled("vigil_capture_kvs_skipped_packets_total", l,
                                        "packets not uploaded (no timestamp, out of order, "
                                        "before the first keyframe)");
    k->errors = vg_counter_get_labeled("vigil_capture_kvs_mux_errors_total", l,
                                       "matroska muxing failures of the KVS upload");
    struct vg_kvs_put_opts o = {
        .stream_name = k->stream, .camera = k->camera,
        .queue_bytes = (size_t)s.queue_mb << 20, .reconnect_max_s = s.reconnect_max_s,
    };
    if ((st = vg_aws_from_config(&k->aws, cfg)) != VG_OK ||
        (st = vg_kvs_put_start(&k->up, k->aws, &o)) != VG_OK) {
        vg_aws_destroy(k->aws);
        free(k);
        return st;
    }
    VG_INFO("kvs.upload_on", k->camera, "uploading to Kinesis Video stream %s (queue %d MB)",
            k->stream, s.queue_mb);
    k->last_ms = 0;
    *out = k;
    return VG_OK;
}

static void source_reset(struct cap_kvs *k)
{
    mux_close(k);
    av_bsf_free(&k->bsf);
    avcodec_parameters_free(&k->par);
    k->active = 0;
}

void cap_kvs_destroy(struct cap_kvs *k)
{
    if (!k)
        return;
    source_reset(k);
    vg_kvs_put_stop(k->up);
    vg_aws_destroy(k->aws);
    free(k->sc.buf);
    free(k);
}

void cap_kvs_source_opened(struct cap_kvs *k, const AVStream *st)
{
    if (!k || !st)
        return;
    source_reset(k);
    enum AVCodecID id = st->codecpar->codec_id;
    if (id != AV_CODEC_ID_H264 && id != AV_CODEC_ID_HEVC) {
        if (!k->warned_codec)
            VG_WARN("kvs.codec", k->camera, "stream %s: Kinesis Video plays back H.264 and H.265 "
                    "only; this camera sends %s: not uploaded", k->stream, avcodec_get_name(id));
        k->warned_codec = 1;
        return;
    }
    if (!(k->par = avcodec_parameters_alloc()) ||
        avcodec_parameters_copy(k->par, st->codecpar) < 0) {
        avcodec_parameters_free(&k->par);
        return;
    }
    /* RTSP cameras often announce no SPS/PPS: take them from the first
     * keyframe that carries them in-band. */
    if (k->par->extradata_size == 0) {
        const AVBitStreamFilter *f = av_bsf_get_by_name("extract_extradata");
        if (f && av_bsf_alloc(f, &k->bsf) == 0) {
            avcodec_parameters_copy(k->bsf->par_in, st->codecpar);
            k->bsf->time_base_in = st->time_base;
            if (av_bsf_init(k->bsf) < 0)
                av_bsf_free(&k->bsf);
        }
    }
    k->src_index = st->index;
    k->src_tb = st->time_base;
    k->active = 1;
}

void cap_kvs_source_closed(struct cap_kvs *k)
{
    if (!k)
        return;
    source_reset(k);
}

/* Extradata from a packet that carries SPS/PPS in-band. */
static void take_extradata(struct cap_kvs *k, const AVPacket *pkt)
{
    AVPacket *tmp = av_packet_alloc();
    if (!tmp || av_packet_ref(tmp, pkt) < 0 || av_bsf_send_packet(k->bsf, tmp) < 0) {
        av_packet_free(&tmp);
        return;
    }
    while (av_bsf_receive_packet(k->bsf, tmp) == 0) {
        size_t n = 0;
        uint8_t *d = av_packet_get_side_data(tmp, AV_PKT_DATA_NEW_EXTRADATA, &n);
        if (d && n > 0 && !k->par->extradata_size) {
            k->par->extradata = av_mallocz(n + AV_INPUT_BUFFER_PADDING_SIZE);
            if (k->par->extradata) {
                memcpy(k->par->extradata, d, n);
                k->par->extradata_size = (int)n;
            }
        }
        av_packet_unref(tmp);
    }
    av_packet_free(&tmp);
}

void cap_kvs_packet(struct cap_kvs *k, const AVStream *st, const AVPacket *pkt)
{
    if (!k || !st || !pkt)
        return;
    if (!k->active && !k->warned_codec && st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO &&
        !k->par)
        cap_kvs_source_opened(k, st);   /* the caller skipped source_opened */
    if (!k->active || st->index != k->src_index)
        return;
    int64_t dts = pkt->dts != AV_NOPTS_VALUE ? pkt->dts : pkt->pts;
    int64_t pts = pkt->pts != AV_NOPTS_VALUE ? pkt->pts : dts;
    if (dts == AV_NOPTS_VALUE) {
        vg_counter_inc(k->skipped);
        return;
    }
    if (!k->mux) {
        if (k->bsf && !k->par->extradata_size)
            take_extradata(k, pkt);
        /* Start at a keyframe with the decoder's parameters in hand. */
        if (!(pkt->flags & AV_PKT_FLAG_KEY) || !k->par->extradata_size) {
            vg_counter_inc(k->skipped);
            return;
        }
        if (mux_open(k, dts) != VG_OK) {
            VG_ERROR("kvs.mux", k->camera, "%s", vg_err_detail());
            vg_counter_inc(k->errors);
            k->active = 0;
            return;
        }
    }
    AVRational ms = {1, 1000};
    int64_t dts_ms = k->base_ms + av_rescale_q(dts - k->origin_dts, k->src_tb, ms);
    int64_t pts_ms = k->base_ms + av_rescale_q(pts - k->origin_dts, k->src_tb, ms);
    if (dts_ms < k->last_dts_ms || pts_ms < k->base_ms) {
        vg_counter_inc(k->skipped);
        return;
    }
    AVPacket *out = av_packet_alloc();
    if (!out || av_packet_ref(out, pkt) < 0) {
        av_packet_free(&out);
        return;
    }
    out->stream_index = 0;
    out->dts = dts_ms;
    out->pts = pts_ms;
    out->duration = pkt->duration > 0 ? av_rescale_q(pkt->duration, k->src_tb, ms) : 0;
    out->pos = -1;
    int rc = av_write_frame(k->mux, out);
    av_packet_free(&out);
    if (rc < 0) {
        char e[128];
        av_strerror(rc, e, sizeof(e));
        VG_WARN("kvs.mux", k->camera, "stream %s: matroska muxer: %s; a new MKV stream starts at "
                "the next keyframe", k->stream, e);
        vg_counter_inc(k->errors);
        mux_close(k);
        return;
    }
    avio_flush(k->mux->pb);
    k->last_dts_ms = dts_ms;
    if (pts_ms > k->last_ms)
        k->last_ms = pts_ms;
}

void cap_kvs_stats(struct cap_kvs *k, struct vg_kvs_put_stats *out)
{
    if (!k || !k->up) {
        memset(out, 0, sizeof(*out));
        return;
    }
    vg_kvs_put_get_stats(k->up, out);
}
