/* dedupe: detections and identities in, alerts out. One alert per key
 * (camera + label, or camera + person) per window, decided atomically in
 * Redis so replicas agree. When Redis is down it fails open: every sighting
 * alerts (marked fail_open) rather than losing one. Alerts go to JetStream. */
#include "dedupe.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "timeutil.h"
#include "window.h"

#define PUBLISH_TRIES 3

struct dd {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct vg_counter *sightings, *alerts, *suppressed, *fail_open, *malformed,
        *publish_failed, *unmatched;
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
    }
    return st;
}

static void handle_sighting(struct dd *d, struct sighting *s)
{
    char alert_id[33];
    int opened = 0, fail_open = 0;
    const char *cam = s->header->camera_id;

    vg_counter_inc(d->sightings);
    vg_new_id(alert_id);
    if (dd_window_open(vg_svc_redis(d->svc), s->key, d->cfg->dedupe.window_s * 1000, alert_id,
                       &opened) != VG_OK) {
        fail_open = opened = 1;
        vg_counter_inc(d->fail_open);
        VG_WARN("dedupe.fail_open", cam, "alerting %s without dedupe: %s", s->key,
                vg_err_detail());
    }
    if (!opened) {
        vg_counter_inc(d->suppressed);
        VG_DEBUG("alert.suppressed", cam, "%s inside its window", s->key);
        return;
    }
    if (publish_alert(d, s, alert_id, fail_open) != VG_OK) {
        vg_counter_inc(d->publish_failed);
        VG_ERROR("alert.publish_failed", cam, "%s: %s", s->key, vg_err_detail());
        if (!fail_open)
            dd_window_abandon(vg_svc_redis(d->svc), s->key, alert_id);
        return;
    }
    vg_counter_inc(d->alerts);
    vg_histogram_observe_us(d->latency, vg_now_us() - s->header->capture_ts_us);
    VG_INFO("alert.published", cam, "%s alert %s (%s %.2f)%s", s->key, alert_id, s->label,
            s->confidence, fail_open ? " fail-open" : "");
}

static void on_detection(void *ctx, const char *subject, const void *data, size_t len)
{
    struct dd *d = ctx;
    Vigil__V1__Detection *det = (Vigil__V1__Detection *)vg_bus_decode(
        vg_svc_bus(d->svc), &vigil__v1__detection__descriptor, subject, data, len,
        d->malformed);
    if (!det)
        return;
    /* One sighting per distinct label: the most confident instance. */
    for (size_t i = 0; i < det->n_labels; i++) {
        const Vigil__V1__Label *l = det->labels[i];
        int best = 1;
        for (size_t j = 0; j < det->n_labels && best; j++) {
            const Vigil__V1__Label *o = det->labels[j];
            if (j != i && !strcmp(o->name, l->name) &&
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
                                  "Sightings alerted without dedupe because Redis failed");
    d->malformed = vg_counter_get("vigil_dedupe_malformed_total",
                                  "Messages dropped because they could not be decoded");
    d->publish_failed = vg_counter_get("vigil_dedupe_publish_failed_total",
                                       "Alerts that JetStream did not accept");
    d->unmatched = vg_counter_get("vigil_dedupe_unmatched_faces_total",
                                  "Identities without a known person (no alert of their own)");
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
    char stream[64];
    st = vg_bus_ensure_stream(vg_svc_bus(svc), "alerts",
                              (int64_t)d->cfg->notifier.stream_max_age_h * 3600, 600, stream,
                              sizeof(stream));
    if (st != VG_OK)
        return st;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "detections", "*");
    if ((st = vg_bus_subscribe(vg_svc_bus(svc), subject, "dedupe", on_detection, d)) != VG_OK)
        return st;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "identities", "*");
    return vg_bus_subscribe(vg_svc_bus(svc), subject, "dedupe", on_identity, d);
}

static void dd_fini(struct vg_svc *svc, void *state) { free(state); }

const struct vg_service dedupe_service = {
    .name = "dedupe",
    .flags = VG_SVC_NEEDS_REDIS | VG_SVC_NEEDS_JETSTREAM,
    .default_http_addr = "127.0.0.1:9104",
    .init = dd_init,
    .fini = dd_fini,
};
