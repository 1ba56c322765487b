/* dedupe: detections and identities in, alerts out. One alert per key
 * (camera + label, or camera + person) per window, decided atomically in
 * Redis so replicas agree; windows known to be open are answered from
 * memory (window.h). When Redis is down each replica falls back to windows
 * in its own memory: one alert per key per window per replica, marked
 * fail_open, with an id derived from key and window so replicas' copies
 * collapse in JetStream. Alerts go to JetStream (outbox.h).
 *
 * Between opening a window and storing its alert nothing is lost, not even
 * in a crash: the call that opens the window in Redis also stores the
 * encoded alert as pending (pending.h); the publish is retried with the
 * same msg id and clears the record once JetStream stored the alert. A
 * record left behind (the process died, or JetStream refused every try) is
 * republished by the recovery sweep that every replica runs, with the same
 * id, and the window stays: the next sighting is still suppressed. A
 * fail-open alert has no record: when it cannot be stored its local window
 * is released so the next sighting alerts.
 *
 * Camera health (health.h) rides along: every replica sees every
 * CameraStatus and alerts camera_offline / camera_online through the same
 * outbox. */
#include "dedupe.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "health.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "timeutil.h"
#include "window.h"

/* Windows remembered per replica (cache and fail-open fallback). */
#define DD_MAX_LOCAL_WINDOWS 4096
/* The recovery sweep's period (it also runs once at start). */
#define SWEEP_EVERY_US (2 * 1000000LL)

struct dd {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct dd_windows *win;
    struct dd_outbox *out;
    struct dd_health *health;       /* NULL: dedupe.health.enabled is false */
    struct dd_windows_stats seen;   /* totals already added to the counters */
    int max_labels;
    struct vg_counter *sightings, *alerts, *suppressed, *fail_open, *malformed,
        *publish_failed, *unmatched, *released, *labels_dropped, *unknown_camera,
        *bad_confidence;
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

/* The alert a sighting would raise; strings are shared with s. */
static void fill_alert(struct dd *d, const struct sighting *s, Vigil__V1__Alert *a,
                       Vigil__V1__Header *hdr, char *alert_id)
{
    vg_header_follow(hdr, s->header);
    a->header = hdr;
    a->alert_id = alert_id;
    a->key = (char *)s->key;
    a->label = (char *)s->label;
    a->confidence = s->confidence;
    a->box = s->box;
    a->person_id = (char *)(s->person_id ? s->person_id : "");
    a->display_name = (char *)(s->display_name ? s->display_name : "");
    a->snapshot_url = (char *)(s->snapshot_url ? s->snapshot_url : "");
    a->window_s = (uint32_t)d->cfg->dedupe.window_s;
    a->frame_seq = s->frame_seq;
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

/* Open the window of a sighting no open window is known for. The alert is
 * encoded first: its pending record goes to Redis in the same call. */
static vg_status open_window(struct dd *d, const struct sighting *s, Vigil__V1__Alert *a,
                             enum dd_verdict *v)
{
    struct dd_stash stash;
    vg_status st = dd_outbox_stash(d->out, a, &stash);
    if (st == VG_OK)
        *v = dd_windows_open(d->win, s->key, window_ts(s->header), a->alert_id, &stash);
    dd_stash_cleanup(&stash);
    return st;
}

static void published(struct dd *d, const struct sighting *s, const Vigil__V1__Alert *a)
{
    vg_counter_inc(d->alerts);
    vg_histogram_observe_us(d->latency, vg_now_us() - s->header->capture_ts_us);
    VG_INFO("alert.published", s->header->camera_id, "%s alert %s (%s %.2f)%s", s->key,
            a->alert_id, s->label, s->confidence, a->fail_open ? " fail-open" : "");
}

static void not_published(struct dd *d, const struct sighting *s, const Vigil__V1__Alert *a,
                          enum dd_verdict v)
{
    vg_counter_inc(d->publish_failed);
    if (v == DD_ALERT) {
        /* The window stays and so does the pending record: the sweep stores
         * this alert once JetStream takes it, and the window's later
         * sightings are still suppressed. */
        VG_ERROR("alert.publish_failed", s->header->camera_id,
                 "%s: %s; left to the recovery sweep", s->key, vg_err_detail());
        return;
    }
    VG_ERROR("alert.publish_failed", s->header->camera_id, "%s: %s; window released", s->key,
             vg_err_detail());
    dd_windows_release(d->win, s->key, a->alert_id, v);
    vg_counter_inc(d->released);
}

static void handle_sighting(struct dd *d, struct sighting *s)
{
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    char alert_id[33];
    enum dd_verdict v = DD_SUPPRESS;
    const char *cam = s->header->camera_id;

    vg_counter_inc(d->sightings);
    /* The busy scene: a window this replica knows is open costs no Redis
     * call and no encoding. */
    if (!dd_windows_known_open(d->win, s->key)) {
        vg_new_id(alert_id);
        fill_alert(d, s, &a, &hdr, alert_id);
        if (open_window(d, s, &a, &v) != VG_OK) {
            vg_counter_inc(d->publish_failed);
            VG_ERROR("alert.publish_failed", cam, "%s: %s", s->key, vg_err_detail());
            return;
        }
    }
    update_window_metrics(d);
    if (v == DD_SUPPRESS) {
        vg_counter_inc(d->suppressed);
        VG_DEBUG("alert.suppressed", cam, "%s inside its window", s->key);
        return;
    }
    a.fail_open = v == DD_ALERT_FAIL_OPEN;
    if (a.fail_open) {
        vg_counter_inc(d->fail_open);
        VG_WARN("dedupe.fail_open", cam, "redis unavailable: %s alerts from a local window",
                s->key);
    } else {
        /* Test hook: a crash between the window and the publish. */
        vg_fault_point("dedupe.after_window");
    }
    if (dd_outbox_publish(d->out, &a, v == DD_ALERT) == VG_OK)
        published(d, s, &a);
    else
        not_published(d, s, &a, v);
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

/* Every replica sees every status (no queue group): health needs the
 * whole story of each camera; Redis picks who alerts. */
static void on_status(void *ctx, const char *subject, const void *data, size_t len)
{
    struct dd *d = ctx;
    Vigil__V1__CameraStatus *cs = (Vigil__V1__CameraStatus *)vg_bus_decode(
        vg_svc_bus(d->svc), &vigil__v1__camera_status__descriptor, subject, data, len,
        d->malformed);
    if (!cs)
        return;
    if (camera_known(d, cs->header->camera_id, subject))
        dd_health_on_status(d->health, cs, vg_mono_us());
    protobuf_c_message_free_unpacked(&cs->base, NULL);
}

static vg_status subscribe(struct dd *d, const char *kind, const char *queue,
                           vg_bus_handler handler)
{
    char subject[128];
    vg_subject(subject, sizeof(subject), d->cfg->prefix, kind, "*");
    return vg_bus_subscribe(vg_svc_bus(d->svc), subject, queue, handler, d);
}

static vg_status dd_init(struct vg_svc *svc, void **state)
{
    vg_status st;
    struct dd *d = calloc(1, sizeof(*d));
    if (!d)
        return VG_ERR_NOMEM;
    d->svc = svc;
    d->cfg = vg_svc_config(svc);
    register_metrics(d);
    *state = d;
    d->max_labels = d->cfg->dedupe.max_labels;
    st = dd_windows_create(&d->win, vg_svc_redis(svc), d->cfg->dedupe.window_s * 1000,
                           DD_MAX_LOCAL_WINDOWS);
    if (st == VG_OK)
        st = dd_outbox_create(&d->out, svc);
    if (st == VG_OK)
        st = dd_outbox_ensure_stream(d->out);
    if (st == VG_OK && d->cfg->dedupe.health.enabled)
        st = dd_health_create(&d->health, d->cfg, vg_svc_redis(svc), d->out);
    if (st == VG_OK)
        st = subscribe(d, "detections", "dedupe", on_detection);
    if (st == VG_OK)
        st = subscribe(d, "identities", "dedupe", on_identity);
    if (st == VG_OK && d->health)
        st = subscribe(d, "status", NULL, on_status);
    return st;
}

/* The service's clock: the recovery sweep at start and every 2 s, camera
 * health every second. Detections and identities are handled on the NATS
 * threads meanwhile. */
static vg_status dd_run(struct vg_svc *svc, void *state)
{
    struct dd *d = state;
    int64_t next_sweep = 0;
    do {
        if (vg_mono_us() >= next_sweep) {
            dd_outbox_sweep(d->out);
            next_sweep = vg_mono_us() + SWEEP_EVERY_US;
        }
        if (d->health)
            dd_health_tick(d->health, vg_mono_us());
    } while (!vg_svc_sleep_ms(svc, 1000));
    return VG_OK;
}

static void dd_fini(struct vg_svc *svc, void *state)
{
    struct dd *d = state;
    if (!d)
        return;
    dd_health_destroy(d->health);
    dd_outbox_destroy(d->out);
    dd_windows_destroy(d->win);
    free(d);
}

const struct vg_service dedupe_service = {
    .name = "dedupe",
    .flags = VG_SVC_NEEDS_REDIS | VG_SVC_NEEDS_JETSTREAM,
    .default_http_addr = "127.0.0.1:9104",
    .init = dd_init,
    .run = dd_run,
    .fini = dd_fini,
};
