/* The capture loop: open the camera, sample frames, find motion on each,
 * encode and publish the ones worth it (gate.h), keep the camera's status
 * current, reconnect live sources, end cleanly on files. */
#include "capture.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "clip/clip.h"
#include "gate.h"
#include "kvs_upload.h"
#include "log.h"
#include "metrics.h"
#include "pipeline.h"
#include "publish.h"
#include "record.h"
#include "sampler.h"
#include "source.h"
#include "timeutil.h"

#define STATUS_EVERY_US (10 * 1000000LL)
#define DROP_LOG_EVERY 100
/* A flickering light can make every frame a global change: say so once a
 * minute, with the count. */
#define GLOBAL_LOG_EVERY_US (60 * 1000000LL)

struct cap_stats {
    uint64_t read, sampled, published, skipped, dropped, decode_errors, reconnects;
    uint64_t global_changes;
};

struct cap_metrics {
    struct vg_counter *read, *sampled, *published, *dropped, *decode_errors, *reconnects;
    struct vg_counter *skipped_no_motion, *skipped_global, *global_changes;
    struct vg_counter *source_up;
    struct vg_histogram *process;
};

struct cap {
    struct vg_svc *svc;
    struct vg_bus *bus;
    const struct vg_camera_cfg *cam;
    enum cap_source_kind kind;
    char url[VG_URL_MAX];           /* credentials masked: for logs and CameraStatus */
    char subj_frames[192];
    char subj_status[192];
    struct cap_pipeline *pipe;
    struct cap_recorder *rec;       /* NULL: this camera does not record */
    struct cap_kvs *kvs;            /* NULL: no Kinesis Video upload */
    struct cap_sampler sampler;
    struct cap_gate gate;
    struct cap_stats stats;
    struct cap_metrics m;
    uint64_t src_decode_errors;     /* of the current source, already counted */
    int64_t started_us;
    int64_t status_at_us;           /* last periodic status, and */
    uint64_t status_published;      /* frames published by then */
    int64_t global_logged_us;       /* last motion.global_change line, 0 = none yet */
    uint64_t global_unlogged;       /* global changes since that line */
    char error[512];                /* last source error */
};

static void metrics_init(struct cap_metrics *m)
{
    m->read = vg_counter_get("vigil_capture_frames_read_total", "Frames decoded from the source");
    m->sampled = vg_counter_get("vigil_capture_frames_sampled_total",
                                "Frames picked for motion analysis by the sampling mode");
    m->published = vg_counter_get("vigil_capture_frames_published_total", "Frames published");
    m->skipped_no_motion = vg_counter_get_labeled(
        "vigil_capture_frames_skipped_total", "reason=\"no_motion\"",
        "Sampled frames not encoded or published: no motion (or a global change), "
        "no keep-alive due");
    m->skipped_global = vg_counter_get_labeled(
        "vigil_capture_frames_skipped_total", "reason=\"global_change\"",
        "Sampled frames not encoded or published: no motion (or a global change), "
        "no keep-alive due");
    m->global_changes = vg_counter_get(
        "vigil_capture_motion_global_changes_total",
        "Frames where more than motion.max_area changed at once (light, camera moved): "
        "not motion, background re-learnt");
    m->dropped = vg_counter_get("vigil_capture_frames_dropped_total",
                                "Sampled frames that could not be encoded or published");
    m->decode_errors = vg_counter_get("vigil_capture_decode_errors_total",
                                      "Packets the decoder rejected (corrupt video)");
    m->reconnects = vg_counter_get("vigil_capture_reconnects_total",
                                   "Reconnects to a live source");
    m->source_up = vg_gauge_get("vigil_capture_source_up", "1 while the source is open");
    m->process = vg_histogram_get("vigil_capture_frame_process_seconds",
                                  "Scale, motion, JPEG and publish time per sampled frame");
}

static int stop_requested(void *ctx) { return vg_svc_stopping(ctx); }

/* Every video packet, before decoding: the consumers that need the stream
 * itself rather than frames (the rolling recording, the KVS upload). */
static void on_packet(void *ctx, const AVStream *st, const AVPacket *pkt)
{
    struct cap *c = ctx;
    if (c->rec)
        cap_recorder_packet(c->rec, pkt);
    if (c->kvs)
        cap_kvs_packet(c->kvs, st, pkt);
}

/* A source opened, reopened or looped: its packets start a new segment (and
 * a new Matroska header for KVS). */
static void recording_start(struct cap *c, const struct cap_source *src)
{
    if (c->rec && cap_recorder_start(c->rec, cap_source_stream(src), cap_source_is_live(c->kind),
                                     cap_source_wallclock(src)) != VG_OK)
        VG_WARN("recording.failed", c->cam->id, "%s", vg_err_detail());
    if (c->kvs)
        cap_kvs_source_opened(c->kvs, cap_source_stream(src));
}

static void close_source(struct cap *c, struct cap_source *src)
{
    if (src && c->rec)
        cap_recorder_stop(c->rec);
    if (src && c->kvs)
        cap_kvs_source_closed(c->kvs);
    cap_source_destroy(src);
}

static void remember_error(struct cap *c)
{
    snprintf(c->error, sizeof(c->error), "%s", vg_err_detail());
}

/* ---- status ------------------------------------------------------------ */

static void report(struct cap *c, Vigil__V1__CameraStatus__State state, const char *error)
{
    int64_t now = vg_mono_us();
    double dt = (double)(now - c->status_at_us) / 1e6;
    struct cap_status_report r = {
        .state = state,
        .source = c->url,
        .error = error,
        .frames_read = c->stats.read,
        .frames_published = c->stats.published,
        .fps = dt > 0 ? (double)(c->stats.published - c->status_published) / dt : 0.0,
    };
    c->status_at_us = now;
    c->status_published = c->stats.published;
    if (cap_publish_status(c->bus, c->subj_status, c->cam->id, &r) != VG_OK)
        VG_WARN("status.publish_failed", c->cam->id, "%s", vg_err_detail());
}

static void set_online(struct cap *c, int online)
{
    vg_svc_set_ready(c->svc, online);
    vg_gauge_set(c->m.source_up, online);
}

/* ---- one frame ------------------------------------------------------------ */

static void drop(struct cap *c, vg_status st)
{
    c->stats.dropped++;
    vg_counter_inc(c->m.dropped);
    if (c->stats.dropped % DROP_LOG_EVERY == 1)
        VG_WARN("frame.dropped", c->cam->id, "%s: %s (%" PRIu64 " dropped so far)",
                vg_status_str(st), vg_err_detail(), c->stats.dropped);
}

static void note_global_change(struct cap *c, const struct vg_motion_result *m)
{
    int64_t now = vg_mono_us();
    c->stats.global_changes++;
    c->global_unlogged++;
    vg_counter_inc(c->m.global_changes);
    if (c->global_logged_us && now - c->global_logged_us < GLOBAL_LOG_EVERY_US)
        return;
    VG_INFO("motion.global_change", c->cam->id,
            "%.0f%% of the image changed at once (motion.max_area %.0f%%): light or camera, "
            "not motion; background re-learnt (%" PRIu64 " such frames since the last report)",
            100.0 * (double)m->score, 100.0 * c->cam->motion_max_area, c->global_unlogged);
    c->global_logged_us = now;
    c->global_unlogged = 0;
}

static void skip(struct cap *c, enum cap_verdict v)
{
    c->stats.skipped++;
    vg_counter_inc(v == CAP_SKIP_GLOBAL_CHANGE ? c->m.skipped_global : c->m.skipped_no_motion);
}

/* Scale, encode and publish: only for frames the gate let through. */
static vg_status publish(struct cap *c, const AVFrame *f, const struct cap_frame_meta *meta,
                         struct cap_output *out)
{
    vg_status st = cap_pipeline_encode(c->pipe, f, out);
    if (st == VG_OK)
        st = cap_publish_frame(c->bus, c->subj_frames, meta, out);
    return st;
}

static void published(struct cap *c, const struct cap_frame_meta *meta,
                      const struct cap_output *out, enum cap_verdict v)
{
    cap_gate_published(&c->gate, meta->pts_ms);
    c->stats.published++;
    vg_counter_inc(c->m.published);
    VG_DEBUG("frame.published", c->cam->id,
             "seq %" PRIu64 " pts %" PRId64 " ms (%s) %dx%d jpeg %zu bytes motion %.4f boxes %d",
             meta->seq, meta->pts_ms, cap_verdict_name(v), out->width, out->height,
             out->jpeg_len, (double)out->motion.score, out->motion.n_boxes);
}

/* Every sampled frame gets motion; only those the gate passes are scaled to
 * detect size, encoded and published. Each ends up counted once: published,
 * skipped or dropped. */
static void handle_frame(struct cap *c, const AVFrame *f, int64_t pts_ms)
{
    struct cap_output out = {0};
    int64_t t0 = vg_mono_us();
    struct cap_frame_meta meta = {
        .camera = c->cam->id, .seq = ++c->stats.sampled, .capture_ts_us = vg_now_us(),
        .pts_ms = pts_ms,
    };
    enum cap_verdict v = CAP_PUBLISH_ALL;
    vg_counter_inc(c->m.sampled);
    vg_status st = cap_pipeline_motion(c->pipe, f, &out.motion);
    if (st == VG_OK) {
        if (out.motion.global_change)
            note_global_change(c, &out.motion);
        v = cap_gate_decide(&c->gate, &out.motion, pts_ms);
        if (cap_verdict_publishes(v))
            st = publish(c, f, &meta, &out);
    }
    vg_histogram_observe_us(c->m.process, vg_mono_us() - t0);
    if (st != VG_OK)
        drop(c, st);
    else if (!cap_verdict_publishes(v))
        skip(c, v);
    else
        published(c, &meta, &out, v);
    free(out.jpeg);
}

/* ---- one source ---------------------------------------------------------- */

static vg_status open_source(struct cap *c, struct cap_source **src)
{
    struct cap_source_opts opts = {
        .camera = c->cam->id, .stop = stop_requested, .stop_ctx = c->svc,
        .keyframes_only = c->cam->sample_mode == VG_SAMPLE_KEYFRAMES,
        .on_packet = c->rec || c->kvs ? on_packet : NULL, .packet_ctx = c,
    };
    report(c, VIGIL__V1__CAMERA_STATUS__STATE__CONNECTING, NULL);
    vg_status st = cap_source_open(src, c->cam->url, &opts);
    if (st != VG_OK) {
        remember_error(c);
        if (st != VG_ERR_STOPPED)
            vg_log(cap_source_is_live(c->kind) ? VG_LOG_WARN : VG_LOG_ERROR,
                   "source.open_failed", c->cam->id, "%s", c->error);
        return st;
    }
    VG_INFO("source.opened", c->cam->id, "%s %s: %s", cap_source_kind_name(c->kind), c->url,
            cap_source_describe(*src));
    c->error[0] = '\0';
    c->src_decode_errors = 0;
    recording_start(c, *src);
    cap_sampler_reset(&c->sampler);
    cap_gate_reset(&c->gate);
    cap_pipeline_reset_motion(c->pipe);
    set_online(c, 1);
    report(c, VIGIL__V1__CAMERA_STATUS__STATE__ONLINE, NULL);
    return VG_OK;
}

static void count_decode_errors(struct cap *c, const struct cap_source *src)
{
    uint64_t n = cap_source_decode_errors(src);
    if (n > c->src_decode_errors) {
        vg_counter_add(c->m.decode_errors, n - c->src_decode_errors);
        c->stats.decode_errors += n - c->src_decode_errors;
        c->src_decode_errors = n;
    }
}

/* Files play at `speed`; returns non-zero when a stop interrupted the wait. */
static int pace(struct cap *c, int64_t pts_ms)
{
    int64_t wait = cap_sampler_wait_us(&c->sampler, pts_ms, vg_mono_us());
    return wait > 0 && vg_svc_sleep_ms(c->svc, (int)((wait + 999) / 1000));
}

/* Read, sample and publish until the source ends, fails, or we stop. */
static vg_status pump(struct cap *c, struct cap_source *src)
{
    for (;;) {
        const AVFrame *f = NULL;
        int64_t pts_ms = 0;
        if (vg_svc_stopping(c->svc))
            return VG_ERR_STOPPED;
        vg_status st = cap_source_read(src, &f, &pts_ms);
        count_decode_errors(c, src);
        if (st != VG_OK) {
            remember_error(c);
            return st;
        }
        c->stats.read++;
        vg_counter_inc(c->m.read);
        if (c->rec)
            cap_recorder_frame_size(c->rec, f->width, f->height);
        if (cap_sampler_take(&c->sampler, pts_ms, cap_frame_is_key(f))) {
            if (pace(c, pts_ms))
                return VG_ERR_STOPPED;
            handle_frame(c, f, pts_ms);
        }
        if (vg_mono_us() - c->status_at_us >= STATUS_EVERY_US)
            report(c, VIGIL__V1__CAMERA_STATUS__STATE__ONLINE, NULL);
    }
}

/* ---- files and live sources ---------------------------------------------- */

/* Back to the start of a looping file: seek, or reopen if it cannot seek. */
static vg_status restart_file(struct cap *c, struct cap_source **src)
{
    if (cap_source_rewind(*src) != VG_OK) {
        VG_WARN("source.rewind_failed", c->cam->id, "%s; reopening", vg_err_detail());
        close_source(c, *src);
        *src = NULL;
        return open_source(c, src);
    }
    cap_sampler_reset(&c->sampler);
    cap_gate_reset(&c->gate);             /* the first frame is the scene again */
    cap_pipeline_reset_motion(c->pipe);   /* the last frame is no background for the first */
    recording_start(c, *src);             /* timestamps start again: so does a segment */
    VG_INFO("source.looped", c->cam->id, "%s: back to the start", c->url);
    return VG_OK;
}

static vg_status run_file(struct cap *c)
{
    struct cap_source *src = NULL;
    vg_status st = open_source(c, &src);
    while (st == VG_OK) {
        uint64_t before = c->stats.read;
        st = pump(c, src);
        if (st != VG_ERR_EOF || !c->cam->loop)
            break;
        if (c->stats.read == before) {  /* looping a file without frames would spin */
            st = vg_errf(VG_ERR_MEDIA, "%s: no video frames", c->url);
            remember_error(c);
            break;
        }
        st = restart_file(c, &src);
    }
    close_source(c, src);
    return st;
}

/* Returns non-zero when a stop interrupted the wait. */
static int wait_to_reconnect(struct cap *c, int delay_s)
{
    c->stats.reconnects++;
    vg_counter_inc(c->m.reconnects);
    set_online(c, 0);
    VG_WARN("source.reconnecting", c->cam->id, "%s; retrying in %d s", c->error, delay_s);
    report(c, VIGIL__V1__CAMERA_STATUS__STATE__RECONNECTING, c->error);
    return vg_svc_sleep_ms(c->svc, delay_s * 1000);
}

/* A live camera is never given up on: it comes back after a reboot or a
 * Wi-Fi outage. Backoff doubles up to reconnect_max_s and starts again at
 * 1 s once a connection has delivered frames. */
static vg_status run_live(struct cap *c)
{
    int delay_s = 1;
    for (;;) {
        struct cap_source *src = NULL;
        uint64_t before = c->stats.read;
        vg_status st = open_source(c, &src);
        if (st == VG_OK)
            st = pump(c, src);
        close_source(c, src);
        if (st == VG_ERR_STOPPED || vg_svc_stopping(c->svc))
            return VG_ERR_STOPPED;
        if (c->stats.read > before)
            delay_s = 1;
        if (wait_to_reconnect(c, delay_s))
            return VG_ERR_STOPPED;
        delay_s = delay_s * 2 < c->cam->reconnect_max_s ? delay_s * 2 : c->cam->reconnect_max_s;
    }
}

/* ---- service ------------------------------------------------------------- */

static void log_summary(struct cap *c, vg_status st)
{
    double elapsed = (double)(vg_mono_us() - c->started_us) / 1e6;
    const char *event = st == VG_ERR_EOF ? "source.eof"
                        : st == VG_ERR_STOPPED ? "capture.stopped" : "source.failed";
    vg_log(st == VG_ERR_EOF || st == VG_ERR_STOPPED ? VG_LOG_INFO : VG_LOG_ERROR, event,
           c->cam->id,
           "frames_read=%" PRIu64 " frames_sampled=%" PRIu64 " frames_published=%" PRIu64
           " frames_skipped=%" PRIu64 " frames_dropped=%" PRIu64 " global_changes=%" PRIu64
           " decode_errors=%" PRIu64 " reconnects=%" PRIu64 " elapsed_s=%.3f fps=%.1f",
           c->stats.read, c->stats.sampled, c->stats.published, c->stats.skipped,
           c->stats.dropped, c->stats.global_changes, c->stats.decode_errors,
           c->stats.reconnects, elapsed,
           elapsed > 0 ? (double)c->stats.published / elapsed : 0.0);
}

static vg_status cap_run(struct vg_svc *svc, void *state)
{
    struct cap *c = state;
    c->started_us = c->status_at_us = vg_mono_us();
    set_online(c, 0);
    vg_status st = cap_source_is_live(c->kind) ? run_live(c) : run_file(c);
    int failed = st != VG_OK && st != VG_ERR_EOF && st != VG_ERR_STOPPED;
    log_summary(c, st);
    set_online(c, 0);
    report(c, VIGIL__V1__CAMERA_STATUS__STATE__OFFLINE, failed ? c->error : NULL);
    /* The end of a file and a stop are normal exits; a file that could not
     * be read is not. report() may have overwritten the detail: restore it. */
    return failed ? vg_errf(st, "%s", c->error) : VG_OK;
}

static void cap_fini(struct vg_svc *svc, void *state)
{
    struct cap *c = state;
    if (!c)
        return;
    cap_recorder_destroy(c->rec);     /* writes what is queued, indexes the last segment */
    cap_kvs_destroy(c->kvs);
    cap_pipeline_destroy(c->pipe);
    free(c);
}

static void init_sampling(struct cap *c)
{
    const struct vg_camera_cfg *cam = c->cam;
    struct cap_sampler_cfg sc = {
        .mode = cam->sample_mode, .fps = cam->fps, .every_n = cam->every_n,
        /* Live sources arrive in real time already: pacing is for files only. */
        .speed = cap_source_is_live(c->kind) ? 0 : cam->speed,
    };
    cap_sampler_init(&c->sampler, &sc);
    cap_gate_init(&c->gate, cam->keepalive_s, cam->publish_all);
}

static void log_configured(const struct cap *c)
{
    const struct vg_camera_cfg *cam = c->cam;
    char sampling[64], publishing[96];
    if (cam->sample_mode == VG_SAMPLE_EVERY_N)
        snprintf(sampling, sizeof(sampling), "1 of every %d frames", cam->every_n);
    else
        snprintf(sampling, sizeof(sampling), "%s%.2f fps",
                 cam->sample_mode == VG_SAMPLE_KEYFRAMES ? "keyframes, at most " : "",
                 cam->fps);
    if (cam->publish_all)
        snprintf(publishing, sizeof(publishing), "every sampled frame published");
    else if (cam->keepalive_s > 0)
        snprintf(publishing, sizeof(publishing),
                 "frames with motion published, a keep-alive every %g s", cam->keepalive_s);
    else
        snprintf(publishing, sizeof(publishing), "frames with motion published, no keep-alive");
    VG_INFO("capture.configured", cam->id,
            "%s %s, %s, speed %g, loop %d, detect %d px, motion %d px, %d motion masks, "
            "max_area %.2f, %s, on %s",
            cap_source_kind_name(c->kind), c->url, sampling, cam->speed, cam->loop,
            cam->detect_width, cam->motion_width, cam->n_motion_masks, cam->motion_max_area,
            publishing, c->subj_frames);
}

/* camera `record`: 1 on, 0 off, -1 (unset) as recording.enabled says
 * (vg_clip_camera_records: the clip links follow the same rule). */
static vg_status init_recording(struct cap *c, const struct vg_config *cfg)
{
    const struct vg_camera_cfg *cam = c->cam;
    if (!vg_clip_camera_records(cfg, cam))
        return VG_OK;
    struct cap_recorder_cfg rc = {
        .camera = cam->id, .dir = cfg->recording.dir, .segment_s = cfg->recording.segment_s,
        .max_age_h = cfg->recording.max_age_h, .max_mb = cfg->recording.max_mb,
    };
    vg_status st = cap_recorder_create(&c->rec, &rc);
    if (st == VG_OK)
        VG_INFO("recording.configured", cam->id,
                "into %s/%s, segments of %d s, kept %d h, at most %d MB", cfg->recording.dir,
                cam->id, rc.segment_s, rc.max_age_h, rc.max_mb);
    return st;
}

static vg_status cap_init(struct vg_svc *svc, void **state)
{
    const struct vg_config *cfg = vg_svc_config(svc);
    struct cap *c = calloc(1, sizeof(*c));
    vg_status st = VG_ERR_NOMEM;
    if (!c) {
        st = vg_errf(VG_ERR_NOMEM, "capture: out of memory");
        goto out;
    }
    c->svc = svc;
    c->bus = vg_svc_bus(svc);
    c->cam = vg_svc_camera(svc);
    c->kind = cap_source_kind_of(c->cam->url);
    vg_cfg_mask_url(c->url, sizeof(c->url), c->cam->url);
    vg_subject(c->subj_frames, sizeof(c->subj_frames), cfg->prefix, "frames", c->cam->id);
    vg_subject(c->subj_status, sizeof(c->subj_status), cfg->prefix, "status", c->cam->id);
    init_sampling(c);
    metrics_init(&c->m);
    cap_source_log_setup(c->cam->id);
    st = cap_pipeline_create(&c->pipe, c->cam);
    if (st == VG_OK)
        st = init_recording(c, cfg);
    if (st == VG_OK)
        st = cap_kvs_create(&c->kvs, cfg, c->cam);
    if (st != VG_OK)
        goto out;
    log_configured(c);
    *state = c;
    c = NULL;
out:
    cap_fini(svc, c);
    return st;
}

const struct vg_service capture_service = {
    .name = "capture",
    .flags = VG_SVC_NEEDS_CAMERA,
    .default_http_addr = "127.0.0.1:9101",
    .init = cap_init,
    .run = cap_run,
    .fini = cap_fini,
};
