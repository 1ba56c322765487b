/* dedupe: detections and identities in, alerts out. One alert per key
 * (camera + label, or camera + person) per window, decided atomically in
 * Redis so replicas agree; windows known to be open are answered from
 * memory (window.h). When Redis is down each replica falls back to windows
 * in its own memory: one alert per key per window per replica, marked
 * fail_open, with an id derived from key and window so replicas' copies
 * collapse in JetStream. Alerts go to JetStream.
 *
 * Between opening a window and storing its alert nothing is lost: the
 * publish is retried with the same msg id (a stream that disappeared is
 * re-created before the next try); when every try failed the window is
 * released (in Redis only if it still holds our alert id) so the next
 * sighting alerts. */
#include "dedupe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "timeutil.h"
#include "window.h"

#define PUBLISH_TRIES 4
/* Windows remembered per replica (cache and fail-open fallback). */
#define DD_MAX_LOCAL_WINDOWS 4096
/* The duplicate window of the alerts stream: at least this long, and at
 * least one dedupe window so two replicas' fail-open copies collapse. */

struct dd {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct dd_windows *win;
    struct dd_windows_stats seen;   /* totals already added to the counters */
    int max_labels;
    int64_t stream_max_age_s;
    int dup_window_s;
    struct vg_counter *sightings, *alerts, *suppressed, *fail_open, *malformed,
        *publish_failed, *unmatched, *released, *labels_dropped, *unknown_camera,
        *bad_confidence, *stream_recreated;
    struct vg_counter *redis_calls, *memory_hits, *local_windows, *table_full;
    struct vg_histogram *latency;
};

/* What one sighting would alert about. */
struct sighting {
    const Vigil__V1__Header *header;
    uint64_t frame_seq;
    const char *label;
    float confidence;
    Vigil__V1__Box *box;
    const char *person_id;
    const char *display_name;
    const char *snapshot_url;
    char key[256];
};

static vg_status ensure_stream(struct dd *d)
{
    char stream[64];
    vg_status st = vg_bus_ensure_stream(vg_svc_bus(d->svc), "alerts", d->stream_max_age_s,
                                        d->dup_window_s, stream, sizeof(stream));
    if (st != VG_OK)
        VG_WARN("bus.stream_failed", NULL, "%s", vg_err_detail());
    return st;
}

static vg_status publish_alert(struct dd *d, const struct sighting *s, const char *alert_id,
                               int fail_open)
{
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    char subject[256];
    vg_header_follow(&hdr, s->header);
    a.header = &hdr;
    a.alert_id = (char *)alert_id;
    a.key = (char *)s->key;
    a.label = (char *)s->label;
    a.confidence = s->confidence;
    a.box = s->box;
    a.person_id = (char *)(s->person_id ? s->person_id : "");
    a.display_name = (char *)(s->display_name ? s->display_name : "");
    a.snapshot_url = (char *)(s->snapshot_url ? s->snapshot_url : "");
    a.window_s = (uint32_t)d->cfg->dedupe.window_s;
    a.frame_seq = s->frame_seq;
    a.fail_open = fail_open;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "alerts", s->header->camera_id);
    /* The same msg id on every try: JetStream stores the alert once. Even
     * while stopping (the drain still delivers detections) each sighting
     * gets its first try; only the waits between retries are cut short. */
    vg_status st = VG_ERR_STOPPED;
    for (int i = 0; i < PUBLISH_TRIES; i++) {
        if ((st = vg_bus_js_publish(vg_svc_bus(d->svc), subject, &a.base, alert_id)) == VG_OK)
            return VG_OK;
        if (i + 1 == PUBLISH_TRIES || vg_svc_stopping(d->svc))
            break;
        vg_sleep_us(200000LL << i);
        /* Connected but refused (no responders, stream gone): re-create the
         * stream rather than wait for someone else to. */
        if (vg_bus_connected(vg_svc_bus(d->svc)) && ensure_stream(d) == VG_OK)
            vg_counter_inc(d->stream_recreated);
    }
    return st;
}

/* The window module keeps running totals; the counters take the growth. */
static void update_window_metrics(struct dd *d)
{
    struct dd_windows_stats ws;
    dd_windows_get_stats(d->win, &ws);
    vg_counter_add(d->redis_calls, ws.redis_calls - d->seen.redis_calls);
    vg_counter_add(d->memory_hits, ws.cache_hits - d->seen.cache_hits);
    vg_counter_add(d->table_full, ws.table_full - d->seen.table_full);
    vg_gauge_set(d->local_windows, (int64_t)ws.entries);
    d->seen = ws;
}

/* The fail-open window is aligned on the capture time when it is plausible
 * (replicas then agree for the same frame), else on this replica's clock. */
static int64_t window_ts(const Vigil__V1__Header *h)
{
    int64_t now = vg_now_us(), ts = h->capture_ts_us;
    return ts > 0 && llabs(ts - now) < 3600LL * 1000000 ? ts : now;
}

static void handle_sighting(struct dd *d, struct sighting *s)
{
    char alert_id[33];
    const char *cam = s->header->camera_id;

    vg_counter_inc(d->sightings);
    enum dd_verdict v = dd_windows_check(d->win, s->key, window_ts(s->header), alert_id);
    update_window_metrics(d);
    if (v == DD_SUPPRESS) {
        vg_counter_inc(d->suppressed);
        VG_DEBUG("alert.suppressed", cam, "%s inside its window", s->key);
        return;
    }
    int fail_open = v == DD_ALERT_FAIL_OPEN;
    if (fail_open) {
        vg_counter_inc(d->fail_open);
        VG_WARN("dedupe.fail_open", cam, "redis unavailable: %s alerts from a local window",
                s->key);
    }
    if (publish_alert(d, s, alert_id, fail_open) != VG_OK) {
        vg_counter_inc(d->publish_failed);
        VG_ERROR("alert.publish_failed", cam, "%s: %s; window released", s->key,
                 vg_err_detail());
        dd_windows_release(d->win, s->key, alert_id, v);
        vg_counter_inc(d->released);
        return;
    }
    vg_counter_inc(d->alerts);
    vg_histogram_observe_us(d->latency, vg_now_us() - s->header->capture_ts_us);
    VG_INFO("alert.published", cam, "%s alert %s (%s %.2f)%s", s->key, alert_id, s->label,
            s->confidence, fail_open ? " fail-open" : "");
}

static int confidence_ok(struct dd *d, float c, const char *cam, const char *what)
{
    if (!isnan(c) && c >= 0.0f && c <= 1.0f)
        return 1;
    vg_counter_inc(d->bad_confidence);
    VG_DEBUG("message.rejected", cam, "%s confidence %f outside 0..1", what, (double)c);
    return 0;
}

static int camera_known(struct dd *d, const char *cam, const char *subject)
{
    if (vg_cfg_camera(d->cfg, cam))
        return 1;
    vg_counter_inc(d->unknown_camera);
    VG_DEBUG("message.unknown_camera", cam, "dropped message on %s: camera not configured",
             subject);
    return 0;
}

static void on_detection(void *ctx, const char *subject, const void *data, size_t len)
{
    struct dd *d = ctx;
    Vigil__V1__Detection *det = (Vigil__V1__Detection *)vg_bus_decode(
        vg_svc_bus(d->svc), &vigil__v1__detection__descriptor, subject, data, len,
        d->malformed);
    if (!det)
        return;
    if (!camera_known(d, det->header->camera_id, subject))
        goto out;
    /* Bounded work: at most max_labels labels (the best-of loop is
     * quadratic), labels with a confidence outside 0..1 never compete. */
    size_t n = det->n_labels;
    if (n > (size_t)d->max_labels) {
        vg_counter_add(d->labels_dropped, n - (size_t)d->max_labels);
        n = (size_t)d->max_labels;
    }
    for (size_t i = 0; i < n; i++)
        if (!confidence_ok(d, det->labels[i]->confidence, det->header->camera_id, "label"))
            det->labels[i]->confidence = NAN;
    /* One sighting per distinct label: the most confident instance. */
    for (size_t i = 0; i < n; i++) {
        const Vigil__V1__Label *l = det->labels[i];
        int best = !isnan(l->confidence) && l->name;
        for (size_t j = 0; j < n && best; j++) {
            const Vigil__V1__Label *o = det->labels[j];
            if (j != i && !isnan(o->confidence) && !strcmp(o->name, l->name) &&
                (o->confidence > l->confidence || (o->confidence == l->confidence && j < i)))
                best = 0;
        }
        if (!best)
            continue;
        struct sighting s = {
            .header = det->header,
            .frame_seq = det->frame_seq,
            .label = l->name,
            .confidence = l->confidence,
            .box = l->box,
            .snapshot_url = det->snapshot_url,
        };
        snprintf(s.key, sizeof(s.key), "%s:dd:%s:label:%s", d->cfg->prefix,
                 det->header->camera_id, l->name);
        handle_sighting(d, &s);
    }
out:
    protobuf_c_message_free_unpacked(&det->base, NULL);
}

static void on_identity(void *ctx, const char *subject, const void *data, size_t len)
{
    struct dd *d = ctx;
    Vigil__V1__FaceMatch *m = (Vigil__V1__FaceMatch *)vg_bus_decode(
        vg_svc_bus(d->svc), &vigil__v1__face_match__descriptor, subject, data, len,
        d->malformed);
    if (!m)
        return;
    if (!camera_known(d, m->header->camera_id, subject) ||
        !confidence_ok(d, m->similarity, m->header->camera_id, "similarity"))
        goto out;
    /* An unknown face is already covered by the person/motion detection
     * of the same frame; only known people get their own alert key. */
    if (!m->matched || !m->person_id || !m->person_id[0]) {
        vg_counter_inc(d->unmatched);
        goto out;
    }
    struct sighting s = {
        .header = m->header,
        .frame_seq = m->frame_seq,
        .label = "face",
        .confidence = m->similarity,
        .box = m->box,
        .person_id = m->person_id,
        .display_name = m->display_name,
        .snapshot_url = m->snapshot_url,
    };
    snprintf(s.key, sizeof(s.key), "%s:dd:%s:person:%s", d->cfg->prefix,
             m->header->camera_id, m->person_id);
    handle_sighting(d, &s);
out:
    protobuf_c_message_free_unpacked(&m->base, NULL);
}

static void register_metrics(struct dd *d)
{
    d->sightings = vg_counter_get("vigil_dedupe_sightings_total", "Sightings considered");
    d->alerts = vg_counter_get("vigil_dedupe_alerts_total", "Alerts published to JetStream");
    d->suppressed = vg_counter_get("vigil_dedupe_suppressed_total",
                                   "Sightings suppressed inside an open window");
    d->fail_open = vg_counter_get("vigil_dedupe_fail_open_total",
                                  "Alerts from a local window because Redis was unavailable");
    d->malformed = vg_counter_get("vigil_dedupe_malformed_total",
                                  "Messages dropped because they could not be decoded");
    d->publish_failed = vg_counter_get("vigil_dedupe_publish_failed_total",
                                       "Alerts that JetStream did not accept");
    d->unmatched = vg_counter_get("vigil_dedupe_unmatched_faces_total",
                                  "Identities without a known person (no alert of their own)");
    d->released = vg_counter_get("vigil_dedupe_windows_released_total",
                                 "Windows released because their alert was not stored");
    d->labels_dropped = vg_counter_get("vigil_dedupe_labels_dropped_total",
                                       "Labels beyond the per-detection limit, not considered");
    d->unknown_camera = vg_counter_get("vigil_dedupe_unknown_camera_total",
                                       "Messages dropped: camera not in the configuration");
    d->bad_confidence = vg_counter_get("vigil_dedupe_bad_confidence_total",
                                       "Labels and matches dropped: confidence outside 0..1");
    d->stream_recreated = vg_counter_get("vigil_dedupe_stream_ensured_total",
                                         "Alerts stream re-created or checked after a refusal");
    d->redis_calls = vg_counter_get("vigil_dedupe_redis_window_calls_total",
                                    "Window opens asked of Redis");
    d->memory_hits = vg_counter_get("vigil_dedupe_memory_hits_total",
                                    "Sightings suppressed from memory, without Redis");
    d->local_windows = vg_gauge_get("vigil_dedupe_local_windows",
                                    "Windows held in this replica's memory");
    d->table_full = vg_counter_get("vigil_dedupe_local_table_full_total",
                                   "Windows not remembered because the local table was full");
    d->latency = vg_histogram_get("vigil_dedupe_latency_seconds",
                                  "Frame capture to alert stored in JetStream");
}

static vg_status dd_init(struct vg_svc *svc, void **state)
{
    char subject[128];
    vg_status st;
    struct dd *d = calloc(1, sizeof(*d));
    if (!d)
        return VG_ERR_NOMEM;
    d->svc = svc;
    d->cfg = vg_svc_config(svc);
    register_metrics(d);
    *state = d;
    d->max_labels = d->cfg->dedupe.max_labels;
    d->stream_max_age_s = (int64_t)d->cfg->notifier.stream_max_age_h * 3600;
    d->dup_window_s = vg_alerts_dup_window_s(d->cfg);
    st = dd_windows_create(&d->win, vg_svc_redis(svc), d->cfg->dedupe.window_s * 1000,
                           DD_MAX_LOCAL_WINDOWS);
    if (st != VG_OK)
        return st;
    if ((st = ensure_stream(d)) != VG_OK)
        return st;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "detections", "*");
    if ((st = vg_bus_subscribe(vg_svc_bus(svc), subject, "dedupe", on_detection, d)) != VG_OK)
        return st;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "identities", "*");
    return vg_bus_subscribe(vg_svc_bus(svc), subject, "dedupe", on_identity, d);
}

static void dd_fini(struct vg_svc *svc, void *state)
{
    struct dd *d = state;
    if (d)
        dd_windows_destroy(d->win);
    free(d);
}

const struct vg_service dedupe_service = {
    .name = "dedupe",
    .flags = VG_SVC_NEEDS_REDIS | VG_SVC_NEEDS_JETSTREAM,
    .default_http_addr = "127.0.0.1:9104",
    .init = dd_init,
    .fini = dd_fini,
};
