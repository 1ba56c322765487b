#include "record.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <libavcodec/avcodec.h>
#include <libavutil/mathematics.h>

#include "log.h"
#include "metrics.h"
#include "record_index.h"
#include "timeutil.h"

/* What the writer may fall behind by before packets are dropped: seconds of
 * any camera's stream, bounded in memory. */
#define QUEUE_MAX_ITEMS 2048
#define QUEUE_MAX_BYTES (48 << 20)
#define CLUSTER_MS "1000"           /* how stale the open segment's readable end is */
#define JUMP_MS 10000               /* a timestamp jump larger than this is a discontinuity */
#define FAIL_LOG_EVERY_US (60 * 1000000LL)
#define RETRY_MIN_US 1000000LL
#define PATH_LEN 4096

enum item_kind { IT_PACKET, IT_START, IT_STOP, IT_SIZE, IT_SYNC, IT_QUIT };

struct item {
    struct item *next;
    enum item_kind kind;
    AVPacket *pkt;              /* IT_PACKET */
    int gap;                    /* IT_PACKET: packets were dropped before it */
    int64_t wall_us, mono_us;   /* arrival */
    AVCodecParameters *par;     /* IT_START */
    AVRational tb;              /* IT_START */
    int wallclock, live;        /* IT_START */
    int width, height;          /* IT_SIZE */
    int *done;                  /* IT_SYNC */
};

enum fail_reason {
    F_NOT_WRITABLE, F_NO_SPACE, F_IO, F_MUX, F_OVERRUN, F_INDEX, F_RETENTION, F__N
};

static const char *const fail_names[F__N] = {
    "not_writable", "no_space", "io", "mux", "overrun", "index", "retention",
};

struct rec_metrics {
    struct vg_counter *errors[F__N];
    struct vg_counter *up, *segments, *bytes, *removed;
};

/* The segment being written. */
struct segment {
    AVFormatContext *oc;
    struct cap_rec_segment info;
    char path[PATH_LEN];
    int64_t base;               /* input pts of the first packet, input time base */
    int64_t shift;              /* added after discontinuities, input time base */
    int64_t last_dts;           /* output, ms */
    int64_t last_step;          /* ms between the last two packets */
    int64_t end_ms;             /* end of the latest packet, ms */
    int64_t mono0_us;           /* arrival of the first packet */
    int64_t wall_off_ms;        /* live: least (arrival - pts) seen, the wall clock at pts 0 */
    uint64_t packets;
};

/* The stream being recorded, as the writer thread knows it. */
struct stream {
    AVCodecParameters *par;     /* NULL: no source open */
    AVRational tb;
    int wallclock;
    int live;
    int all_key;                /* intra-only codec: every packet is a keyframe */
    int annexb_ps;              /* H.264/H.265 with start codes: watch in-band parameter sets */
    uint8_t *ps;                /* the open segment's in-band parameter sets */
    int ps_len;
    int rotate;                 /* parameters changed: new segment at the next keyframe */
    int refused;                /* the muxer cannot take this stream: wait for the next */
};

struct cap_recorder {
    char camera[128];
    char cam_dir[PATH_LEN];
    int segment_s, max_age_h, max_mb;
    struct rec_metrics m;

    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv, done_cv;
    struct item *head, *tail;
    size_t n_items, n_bytes;
    int dropping;               /* capture side: dropping up to the next keyframe */
    int all_key;                /* capture side copy of stream.all_key */
    int64_t overrun_logged_us;  /* capture side */
    int size_w, size_h;         /* capture side: the last size reported */

    /* writer thread only */
    struct stream s;
    struct segment seg;
    int64_t last_start_ms;      /* of the last file name */
    int64_t last_index_ms;      /* of the last index line */
    int64_t retry_at_us;        /* monotonic; 0 = try at the next keyframe */
    int64_t retry_delay_us;
    int failing;
    int64_t fail_logged_us;
    uint64_t fail_unlogged;
};

/* ---- metrics and failures ------------------------------------------------- */

static void metrics_init(struct rec_metrics *m)
{
    for (int i = 0; i < F__N; i++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", fail_names[i]);
        m->errors[i] = vg_counter_get_labeled(
            "vigil_capture_recording_errors_total", labels,
            "Recording failures: directory not writable, disk full, write or muxer errors, "
            "packets dropped because the disk fell behind (overrun)");
    }
    m->up = vg_gauge_get("vigil_capture_recording_up", "1 while a recording segment is open");
    m->segments = vg_counter_get("vigil_capture_recording_segments_total",
                                 "Recording segments closed and indexed");
    m->bytes = vg_counter_get("vigil_capture_recording_bytes_total",
                              "Bytes of the recording segments closed");
    m->removed = vg_counter_get("vigil_capture_recording_segments_removed_total",
                                "Recording segments deleted by retention (age or size)");
}

static enum fail_reason reason_of_errno(int err)
{
    switch (err) {
    case ENOSPC: case EDQUOT: case EFBIG: return F_NO_SPACE;
    case EACCES: case EPERM: case EROFS: case ENOTDIR: case ENOENT: case EEXIST:
    case ENAMETOOLONG: case ELOOP:
        return F_NOT_WRITABLE;
    default: return F_IO;
    }
}

static enum fail_reason reason_of_averror(int err)
{
    return err < 0 && err > -4096 ? reason_of_errno(AVUNERROR(err)) : F_MUX;
}

/* Count every failure; say so at most once a minute, with what was hidden. */
static void failed(struct cap_recorder *r, enum fail_reason why, const char *fmt, ...)
{
    char msg[PATH_LEN + 256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    vg_counter_inc(r->m.errors[why]);
    int64_t now = vg_mono_us();
    r->failing = 1;
    if (r->fail_logged_us && now - r->fail_logged_us < FAIL_LOG_EVERY_US) {
        r->fail_unlogged++;
        return;
    }
    char hidden[64] = "";
    if (r->fail_unlogged)
        snprintf(hidden, sizeof(hidden), " (%" PRIu64 " more failures since the last report)",
                 r->fail_unlogged);
    VG_WARN("recording.failed", r->camera, "%s (%s); recording retried at a keyframe, live "
            "pipeline unaffected%s", msg, fail_names[why], hidden);
    r->fail_logged_us = now;
    r->fail_unlogged = 0;
}

static void av_err_text(int err, char *buf, size_t cap)
{
    if (av_strerror(err, buf, cap) < 0)
        snprintf(buf, cap, "error %d", err);
}

/* ---- the queue ---------------------------------------------------------------- */

static void item_free(struct item *it)
{
    if (!it)
        return;
    av_packet_free(&it->pkt);
    avcodec_parameters_free(&it->par);
    free(it);
}

static size_t item_bytes(const struct item *it)
{
    return sizeof(*it) + (it->pkt ? (size_t)it->pkt->size : 0);
}

static void push_locked(struct cap_recorder *r, struct item *it)
{
    it->next = NULL;
    if (r->tail)
        r->tail->next = it;
    else
        r->head = it;
    r->tail = it;
    r->n_items++;
    r->n_bytes += item_bytes(it);
    pthread_cond_signal(&r->cv);
}

static void push(struct cap_recorder *r, struct item *it)
{
    pthread_mutex_lock(&r->mu);
    push_locked(r, it);
    pthread_mutex_unlock(&r->mu);
}

static struct item *pop(struct cap_recorder *r)
{
    pthread_mutex_lock(&r->mu);
    while (!r->head)
        pthread_cond_wait(&r->cv, &r->mu);
    struct item *it = r->head;
    r->head = it->next;
    if (!r->head)
        r->tail = NULL;
    r->n_items--;
    r->n_bytes -= item_bytes(it);
    pthread_mutex_unlock(&r->mu);
    return it;
}

static int is_key(const struct stream *s, const AVPacket *p)
{
    return s->all_key || (p->flags & AV_PKT_FLAG_KEY);
}

/* ---- in-band parameter sets (H.264 SPS/PPS, H.265 VPS/SPS/PPS) --------------- */

static int annexb(const uint8_t *d, int n)
{
    return n >= 4 && d[0] == 0 && d[1] == 0 && (d[2] == 1 || (d[2] == 0 && d[3] == 1));
}

static int is_ps_nal(enum AVCodecID id, uint8_t hdr)
{
    if (id == AV_CODEC_ID_H264) {
        int t = hdr & 0x1f;
        return t == 7 || t == 8;
    }
    int t = (hdr >> 1) & 0x3f;
    return t >= 32 && t <= 34;
}

/* The parameter-set NAL units of an Annex B packet, each behind a 4-byte
 * start code, into a malloc'ed buffer (*len 0: none). */
static uint8_t *extract_ps(enum AVCodecID id, const uint8_t *d, int n, int *len)
{
    uint8_t *out = NULL;
    int used = 0;
    *len = 0;
    int i = 0;
    while (i + 3 <= n) {
        if (!(d[i] == 0 && d[i + 1] == 0 && d[i + 2] == 1)) {
            i++;
            continue;
        }
        int start = i + 3, end = start;
        while (end + 3 <= n && !(d[end] == 0 && d[end + 1] == 0 && (d[end + 2] == 1 ||
                                 (d[end + 2] == 0 && end + 3 < n && d[end + 3] == 1))))
            end++;
        if (end + 3 > n)
            end = n;
        while (end > start && d[end - 1] == 0)      /* trailing zeros belong to no NAL */
            end--;
        if (end > start && is_ps_nal(id, d[start])) {
            uint8_t *grown = realloc(out, (size_t)(used + 4 + end - start) +
                                              AV_INPUT_BUFFER_PADDING_SIZE);
            if (!grown)
                break;
            out = grown;
            memcpy(out + used, "\0\0\0\1", 4);
            memcpy(out + used + 4, d + start, (size_t)(end - start));
            used += 4 + end - start;
        }
        i = end;
    }
    if (out)
        memset(out + used, 0, AV_INPUT_BUFFER_PADDING_SIZE);
    *len = used;
    return out;
}

/* The picture size a keyframe announces, through FFmpeg's parser (no decoding). */
static void parsed_size(enum AVCodecID id, const AVPacket *p, int *w, int *h)
{
    AVCodecParserContext *pc = av_parser_init(id);
    AVCodecContext *ctx = avcodec_alloc_context3(NULL);
    if (pc && ctx) {
        uint8_t *out = NULL;
        int out_len = 0;
        pc->flags |= PARSER_FLAG_COMPLETE_FRAMES;
        av_parser_parse2(pc, ctx, &out, &out_len, p->data, p->size, AV_NOPTS_VALUE,
                         AV_NOPTS_VALUE, 0);
        if (pc->width > 0 && pc->height > 0) {
            *w = pc->width;
            *h = pc->height;
        } else if (ctx->width > 0 && ctx->height > 0) {
            *w = ctx->width;
            *h = ctx->height;
        }
    }
    av_parser_close(pc);
    avcodec_free_context(&ctx);
}

static int set_extradata(AVCodecParameters *par, const uint8_t *d, int n)
{
    uint8_t *x = av_mallocz((size_t)n + AV_INPUT_BUFFER_PADDING_SIZE);
    if (!x)
        return -1;
    memcpy(x, d, (size_t)n);
    av_freep(&par->extradata);
    par->extradata = x;
    par->extradata_size = n;
    return 0;
}

/* A keyframe's parameters: adopt new in-band parameter sets or announced
 * extradata; a change while a segment is open starts a new one. */
static void watch_params(struct cap_recorder *r, const AVPacket *p)
{
    struct stream *s = &r->s;
    size_t sd_len = 0;
    const uint8_t *sd = av_packet_get_side_data(p, AV_PKT_DATA_NEW_EXTRADATA, &sd_len);
    if (sd && sd_len > 0 && sd_len < INT32_MAX &&
        ((int)sd_len != s->par->extradata_size || memcmp(sd, s->par->extradata, sd_len))) {
        if (set_extradata(s->par, sd, (int)sd_len) == 0) {
            parsed_size(s->par->codec_id, p, &s->par->width, &s->par->height);
            s->rotate = r->seg.oc != NULL;
        }
    }
    if (!s->annexb_ps || !is_key(s, p) || !annexb(p->data, p->size))
        return;
    int len = 0;
    uint8_t *ps = extract_ps(s->par->codec_id, p->data, p->size, &len);
    if (len > 0 && (len != s->ps_len || memcmp(ps, s->ps, (size_t)len))) {
        int changed = s->ps_len > 0 || r->seg.oc != NULL;
        free(s->ps);
        s->ps = ps;
        s->ps_len = len;
        ps = NULL;
        /* The segment's CodecPrivate is made from these: exactly what the
         * stream carries, whatever the SDP or the probe said. */
        set_extradata(s->par, s->ps, s->ps_len);
        parsed_size(s->par->codec_id, p, &s->par->width, &s->par->height);
        if (changed && r->seg.oc)
            s->rotate = 1;
    }
    free(ps);
}

/* ---- segments ----------------------------------------------------------------- */

static int mkdirs(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        *p = '/';
        if (rc != 0 && errno != EEXIST)
            return -1;
    }
    if (mkdir(path, 0755) != 0 && errno != EEXIST)
        return -1;
    struct stat sb;
    if (stat(path, &sb) != 0)
        return -1;
    if (!S_ISDIR(sb.st_mode)) {
        errno = ENOTDIR;
        return -1;
    }
    return 0;
}

static void retention(struct cap_recorder *r, const char *keep)
{
    if (r->max_age_h <= 0 && r->max_mb <= 0)
        return;
    struct cap_rec_retention rt = {
        .now_ms = vg_now_us() / 1000, .max_age_h = r->max_age_h, .max_mb = r->max_mb,
        .keep = keep,
    };
    int removed = 0;
    int64_t bytes = 0;
    vg_status st = cap_rec_retention(r->cam_dir, &rt, &removed, &bytes);
    if (removed > 0) {
        vg_counter_add(r->m.removed, (uint64_t)removed);
        VG_DEBUG("recording.pruned", r->camera, "%d segments, %" PRId64 " bytes deleted",
                 removed, bytes);
    }
    if (st != VG_OK)
        failed(r, F_RETENTION, "%s", vg_err_detail());
}

/* Finish the file and index it. A segment cut short by an error is indexed
 * too when it holds packets: it is readable up to where the error hit. */
static void seg_close(struct cap_recorder *r, int write_error)
{
    struct segment *g = &r->seg;
    if (!g->oc)
        return;
    char why[AV_ERROR_MAX_STRING_SIZE];
    int rc = write_error ? 0 : av_write_trailer(g->oc);
    if (rc < 0) {
        av_err_text(rc, why, sizeof(why));
        failed(r, reason_of_averror(rc), "closing %s: %s", g->path, why);
        write_error = 1;
    }
    rc = avio_closep(&g->oc->pb);
    if (rc < 0 && !write_error) {
        av_err_text(rc, why, sizeof(why));
        failed(r, reason_of_averror(rc), "closing %s: %s", g->path, why);
    }
    avformat_free_context(g->oc);
    g->oc = NULL;
    vg_gauge_set(r->m.up, 0);
    struct stat sb;
    if (g->packets == 0 || stat(g->path, &sb) != 0 || sb.st_size == 0) {
        remove(g->path);
        return;
    }
    g->info.bytes = (int64_t)sb.st_size;
    g->info.duration_ms = g->end_ms;
    /* The name was given at the first packet; the index has the better
     * estimate, never before the previous segment's. */
    if (r->s.live && g->wall_off_ms < g->info.start_ms && g->wall_off_ms > r->last_index_ms)
        g->info.start_ms = g->wall_off_ms;
    r->last_index_ms = g->info.start_ms;
    if (cap_rec_index_append(r->cam_dir, &g->info) != VG_OK) {
        int err = errno;
        failed(r, err == ENOSPC ? F_NO_SPACE : F_INDEX, "%s", vg_err_detail());
    }
    vg_counter_inc(r->m.segments);
    vg_counter_add(r->m.bytes, (uint64_t)g->info.bytes);
    VG_DEBUG("recording.segment", r->camera, "%s %" PRId64 " ms %" PRId64 " bytes %s %dx%d",
             g->info.file, g->info.duration_ms, g->info.bytes, g->info.codec, g->info.width,
             g->info.height);
    retention(r, g->info.file);
}

/* After a failure: stay off for a while (doubling up to segment_s), then
 * try again at a keyframe. */
static void back_off(struct cap_recorder *r)
{
    int64_t max = (int64_t)r->segment_s * 1000000;
    r->retry_delay_us = r->retry_delay_us ? r->retry_delay_us * 2 : RETRY_MIN_US;
    if (r->retry_delay_us > max)
        r->retry_delay_us = max > RETRY_MIN_US ? max : RETRY_MIN_US;
    r->retry_at_us = vg_mono_us() + r->retry_delay_us;
}

static int seg_open(struct cap_recorder *r, const struct item *it)
{
    struct segment *g = &r->seg;
    struct stream *s = &r->s;
    char why[AV_ERROR_MAX_STRING_SIZE];
    /* The frame interval carries over: a segment cut one frame after it
     * began (camera lost, stop) still lasts that frame, not 0 ms. */
    int64_t step = g->last_step;
    memset(g, 0, sizeof(*g));
    g->last_step = step;
    if (mkdirs(r->cam_dir) != 0) {
        int err = errno;
        failed(r, reason_of_errno(err), "creating %s: %s", r->cam_dir, strerror(err));
        return -1;
    }
    int64_t start_ms = it->wall_us / 1000;
    if (start_ms <= r->last_start_ms)
        start_ms = r->last_start_ms + 1;        /* names stay unique and ordered */
    g->info.start_ms = start_ms;
    snprintf(g->info.file, sizeof(g->info.file), "%" PRId64 ".mkv", start_ms);
    snprintf(g->info.codec, sizeof(g->info.codec), "%s", avcodec_get_name(s->par->codec_id));
    g->info.width = s->par->width;
    g->info.height = s->par->height;
    if (snprintf(g->path, sizeof(g->path), "%s/%s", r->cam_dir, g->info.file) >=
        (int)sizeof(g->path)) {
        failed(r, F_NOT_WRITABLE, "%s/%s: %s", r->cam_dir, g->info.file, strerror(ENAMETOOLONG));
        return -1;
    }
    int rc = avformat_alloc_output_context2(&g->oc, NULL, "matroska", g->path);
    AVStream *ost = rc >= 0 ? avformat_new_stream(g->oc, NULL) : NULL;
    if (!ost || avcodec_parameters_copy(ost->codecpar, s->par) < 0) {
        failed(r, F_MUX, "%s: FFmpeg has no matroska muxer or is out of memory", g->path);
        goto fail;
    }
    ost->codecpar->codec_tag = 0;   /* the source container's tag means nothing in Matroska */
    ost->time_base = s->tb;
    rc = avio_open(&g->oc->pb, g->path, AVIO_FLAG_WRITE);
    if (rc < 0) {
        av_err_text(rc, why, sizeof(why));
        failed(r, reason_of_averror(rc), "creating %s: %s", g->path, why);
        goto fail;
    }
    /* Short clusters, each written out as soon as it is complete: the open
     * segment on disk is never more than about a second behind. */
    AVDictionary *opts = NULL;
    av_dict_set(&opts, "cluster_time_limit", CLUSTER_MS, 0);
    g->oc->flags |= AVFMT_FLAG_FLUSH_PACKETS;
    g->oc->avoid_negative_ts = AVFMT_AVOID_NEG_TS_DISABLED;  /* keep the first pts at 0 */
    rc = avformat_write_header(g->oc, &opts);
    av_dict_free(&opts);
    if (rc < 0) {
        av_err_text(rc, why, sizeof(why));
        enum fail_reason fr = reason_of_averror(rc);
        if (fr == F_MUX || fr == F_IO) {
            /* The stream itself is the problem: no use retrying before the
             * source changes. */
            s->refused = 1;
            fr = F_MUX;
        }
        failed(r, fr, "%s: Matroska refused the %s stream: %s", g->path, g->info.codec, why);
        goto fail;
    }
    g->mono0_us = it->mono_us;
    r->last_start_ms = start_ms;
    r->retry_delay_us = 0;
    r->retry_at_us = 0;
    if (r->failing)
        VG_INFO("recording.resumed", r->camera, "recording again into %s", g->path);
    r->failing = 0;
    vg_gauge_set(r->m.up, 1);
    return 0;
fail:
    if (g->oc) {
        avio_closep(&g->oc->pb);
        avformat_free_context(g->oc);
        g->oc = NULL;
        remove(g->path);
    }
    return -1;
}

/* Output timestamps in ms from the segment's start, strictly increasing dts;
 * packets without any timestamp are timed by their arrival. */
static void retime(struct cap_recorder *r, const struct item *it, AVPacket *p)
{
    struct segment *g = &r->seg;
    const struct stream *s = &r->s;
    const AVRational ms = {1, 1000};
    int64_t dts, pts;
    if (s->wallclock || (p->dts == AV_NOPTS_VALUE && p->pts == AV_NOPTS_VALUE)) {
        dts = pts = (it->mono_us - g->mono0_us) / 1000;
    } else {
        int64_t in_dts = p->dts != AV_NOPTS_VALUE ? p->dts : p->pts;
        int64_t in_pts = p->pts != AV_NOPTS_VALUE ? p->pts : in_dts;
        /* The segment starts at its first keyframe's presentation time:
         * with B-frames, decoding starts a little earlier (dts < 0). */
        if (g->packets == 0)
            g->base = in_pts;
        dts = av_rescale_q(in_dts - g->base, s->tb, ms) + g->shift;
        pts = av_rescale_q(in_pts - g->base, s->tb, ms) + g->shift;
        int64_t step = g->last_step > 0 ? g->last_step : 40;
        if (g->packets > 0 && (dts < g->last_dts - 1000 || dts > g->last_dts + JUMP_MS)) {
            /* The source's clock jumped (a camera restarted its counter,
             * concatenated streams): carry on one frame after the last. */
            int64_t delta = g->last_dts + step - dts;
            g->shift += delta;
            dts += delta;
            pts += delta;
        }
    }
    if (g->packets > 0 && dts <= g->last_dts)
        dts = g->last_dts + 1;
    if (pts < dts)
        pts = dts;
    if (g->packets > 0)
        g->last_step = dts - g->last_dts;
    g->last_dts = dts;
    int64_t dur = p->duration > 0 && !s->wallclock ? av_rescale_q(p->duration, s->tb, ms) : 0;
    int64_t end = pts + (dur > 0 ? dur : g->last_step > 0 ? g->last_step : 0);
    if (end > g->end_ms)
        g->end_ms = end;
    /* A live source's packets arrive late by a varying amount (the burst
     * after the probe, network jitter), never early: the least delay seen
     * dates the segment's start best. */
    int64_t off = it->wall_us / 1000 - pts;
    if (g->packets == 0 || off < g->wall_off_ms)
        g->wall_off_ms = off;
    p->dts = dts;
    p->pts = pts;
    p->duration = dur;
    p->time_base = ms;
}

static void write_packet(struct cap_recorder *r, struct item *it)
{
    struct segment *g = &r->seg;
    AVPacket *p = it->pkt;
    retime(r, it, p);
    AVStream *ost = g->oc->streams[0];
    av_packet_rescale_ts(p, (AVRational){1, 1000}, ost->time_base);
    p->stream_index = 0;
    p->pos = -1;
    int rc = av_write_frame(g->oc, p);
    if (rc < 0) {
        char why[AV_ERROR_MAX_STRING_SIZE];
        av_err_text(rc, why, sizeof(why));
        failed(r, reason_of_averror(rc), "writing %s: %s", g->path, why);
        seg_close(r, 1);
        back_off(r);
        return;
    }
    g->packets++;
}

static void on_packet(struct cap_recorder *r, struct item *it)
{
    struct stream *s = &r->s;
    if (!s->par)
        return;
    AVPacket *p = it->pkt;
    int key = is_key(s, p);
    if (key)
        watch_params(r, p);
    if (it->gap && r->seg.oc)
        seg_close(r, 0);        /* the packets in between are lost: start clean */
    if (r->seg.oc && key) {
        int64_t media_ms = 0;
        int64_t ts = p->pts != AV_NOPTS_VALUE ? p->pts : p->dts;
        if (s->wallclock || ts == AV_NOPTS_VALUE)
            media_ms = (it->mono_us - r->seg.mono0_us) / 1000;
        else
            media_ms = av_rescale_q(ts - r->seg.base, s->tb, (AVRational){1, 1000}) +
                       r->seg.shift;
        if (s->rotate || media_ms >= (int64_t)r->segment_s * 1000)
            seg_close(r, 0);
    }
    if (!r->seg.oc) {
        if (!key || s->refused || (r->retry_at_us && it->mono_us < r->retry_at_us))
            return;
        s->rotate = 0;
        if (seg_open(r, it) != 0) {
            back_off(r);
            return;
        }
    }
    write_packet(r, it);
}

static void on_start(struct cap_recorder *r, struct item *it)
{
    struct stream *s = &r->s;
    seg_close(r, 0);
    avcodec_parameters_free(&s->par);
    free(s->ps);
    memset(s, 0, sizeof(*s));
    s->par = it->par;
    it->par = NULL;
    s->tb = it->tb;
    s->wallclock = it->wallclock;
    s->live = it->live;
    const AVCodecDescriptor *d = avcodec_descriptor_get(s->par->codec_id);
    s->all_key = d && (d->props & AV_CODEC_PROP_INTRA_ONLY);
    s->annexb_ps = (s->par->codec_id == AV_CODEC_ID_H264 || s->par->codec_id == AV_CODEC_ID_HEVC)
                   && !(s->par->extradata_size > 0 && s->par->extradata[0] == 1);
    r->retry_at_us = 0;     /* a new source deserves an immediate try */
    r->retry_delay_us = 0;
}

static void on_size(struct cap_recorder *r, const struct item *it)
{
    struct stream *s = &r->s;
    if (!s->par || (s->par->width == it->width && s->par->height == it->height))
        return;
    int known = s->par->width > 0 && s->par->height > 0;
    s->par->width = it->width;
    s->par->height = it->height;
    if (known && r->seg.oc)
        s->rotate = 1;
    else if (r->seg.oc) {
        r->seg.info.width = it->width;      /* the probe did not know it: no new segment */
        r->seg.info.height = it->height;
    }
}

static void *writer(void *arg)
{
    struct cap_recorder *r = arg;
    for (;;) {
        struct item *it = pop(r);
        switch (it->kind) {
        case IT_PACKET: on_packet(r, it); break;
        case IT_START: on_start(r, it); break;
        case IT_STOP: seg_close(r, 0); break;
        case IT_SIZE: on_size(r, it); break;
        case IT_SYNC:
            pthread_mutex_lock(&r->mu);
            *it->done = 1;
            pthread_cond_broadcast(&r->done_cv);
            pthread_mutex_unlock(&r->mu);
            break;
        case IT_QUIT:
            seg_close(r, 0);
            item_free(it);
            return NULL;
        }
        item_free(it);
    }
}

/* ---- the capture side -------------------------------------------------------- */

static struct item *item_new(enum item_kind kind)
{
    struct item *it = calloc(1, sizeof(*it));
    if (it) {
        it->kind = kind;
        it->wall_us = vg_now_us();
        it->mono_us = vg_mono_us();
    }
    return it;
}

vg_status cap_recorder_create(struct cap_recorder **out, const struct cap_recorder_cfg *cfg)
{
    *out = NULL;
    if (!cfg->dir || !cfg->dir[0] || !cfg->camera || !cfg->camera[0] || cfg->segment_s <= 0)
        return vg_errf(VG_ERR_INVALID, "recording: needs a directory, a camera and segment_s > 0");
    struct cap_recorder *r = calloc(1, sizeof(*r));
    if (!r)
        return vg_errf(VG_ERR_NOMEM, "recording: out of memory");
    snprintf(r->camera, sizeof(r->camera), "%s", cfg->camera);
    if (snprintf(r->cam_dir, sizeof(r->cam_dir), "%s/%s", cfg->dir, cfg->camera) >=
        (int)sizeof(r->cam_dir)) {
        free(r);
        return vg_errf(VG_ERR_INVALID, "recording.dir %s: too long", cfg->dir);
    }
    r->segment_s = cfg->segment_s;
    r->max_age_h = cfg->max_age_h;
    r->max_mb = cfg->max_mb;
    metrics_init(&r->m);
    vg_gauge_set(r->m.up, 0);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    pthread_cond_init(&r->done_cv, NULL);
    int rc = pthread_create(&r->thread, NULL, writer, r);
    if (rc != 0) {
        pthread_mutex_destroy(&r->mu);
        pthread_cond_destroy(&r->cv);
        pthread_cond_destroy(&r->done_cv);
        free(r);
        return vg_errf(VG_ERR_NOMEM, "recording: no writer thread: %s", strerror(rc));
    }
    *out = r;
    return VG_OK;
}

void cap_recorder_destroy(struct cap_recorder *r)
{
    if (!r)
        return;
    struct item *it = item_new(IT_QUIT);
    if (it) {
        push(r, it);
        pthread_join(r->thread, NULL);
    } else {
        pthread_cancel(r->thread);      /* out of memory at shutdown: the segment stays open */
        pthread_join(r->thread, NULL);
    }
    while (r->head) {
        struct item *next = r->head->next;
        item_free(r->head);
        r->head = next;
    }
    avcodec_parameters_free(&r->s.par);
    free(r->s.ps);
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    pthread_cond_destroy(&r->done_cv);
    free(r);
}

vg_status cap_recorder_start(struct cap_recorder *r, const AVStream *st, int live, int wallclock)
{
    struct item *it = item_new(IT_START);
    if (!it || !(it->par = avcodec_parameters_alloc()) ||
        avcodec_parameters_copy(it->par, st->codecpar) < 0) {
        item_free(it);
        return vg_errf(VG_ERR_NOMEM, "recording: out of memory");
    }
    it->tb = st->time_base;
    it->wallclock = wallclock;
    it->live = live;
    const AVCodecDescriptor *d = avcodec_descriptor_get(st->codecpar->codec_id);
    r->size_w = r->size_h = 0;
    pthread_mutex_lock(&r->mu);
    r->all_key = d && (d->props & AV_CODEC_PROP_INTRA_ONLY);
    r->dropping = 0;
    push_locked(r, it);
    pthread_mutex_unlock(&r->mu);
    return VG_OK;
}

void cap_recorder_stop(struct cap_recorder *r)
{
    struct item *it = item_new(IT_STOP);
    if (it)
        push(r, it);
}

void cap_recorder_packet(struct cap_recorder *r, const AVPacket *pkt)
{
    struct item *it = item_new(IT_PACKET);
    if (it && !(it->pkt = av_packet_clone(pkt))) {
        item_free(it);
        it = NULL;
    }
    pthread_mutex_lock(&r->mu);
    int key = r->all_key || (pkt->flags & AV_PKT_FLAG_KEY);
    int full = !it || r->n_items >= QUEUE_MAX_ITEMS ||
               r->n_bytes + item_bytes(it) > QUEUE_MAX_BYTES;
    if (full || (r->dropping && !key)) {
        /* The disk fell behind: lose packets up to the next keyframe, which
         * then opens a new segment (a segment never has a hole inside). */
        int64_t now = vg_mono_us();
        int first = !r->dropping;
        int say = first && (!r->overrun_logged_us ||
                            now - r->overrun_logged_us >= FAIL_LOG_EVERY_US);
        r->dropping = 1;
        if (say)
            r->overrun_logged_us = now;
        pthread_mutex_unlock(&r->mu);
        item_free(it);
        if (first)
            vg_counter_inc(r->m.errors[F_OVERRUN]);
        if (say)
            VG_WARN("recording.overrun", r->camera, "the disk fell behind the camera: "
                    "packets dropped up to the next keyframe, which starts a new segment");
        return;
    }
    it->gap = r->dropping;
    r->dropping = 0;
    push_locked(r, it);
    pthread_mutex_unlock(&r->mu);
}

void cap_recorder_frame_size(struct cap_recorder *r, int width, int height)
{
    if (width == r->size_w && height == r->size_h)
        return;     /* called for every frame: only changes are queued */
    r->size_w = width;
    r->size_h = height;
    struct item *it = item_new(IT_SIZE);
    if (!it)
        return;
    it->width = width;
    it->height = height;
    push(r, it);
}

void cap_recorder_sync(struct cap_recorder *r)
{
    int done = 0;
    struct item *it = item_new(IT_SYNC);
    if (!it)
        return;
    it->done = &done;
    pthread_mutex_lock(&r->mu);
    push_locked(r, it);
    while (!done)
        pthread_cond_wait(&r->done_cv, &r->mu);
    pthread_mutex_unlock(&r->mu);
}
