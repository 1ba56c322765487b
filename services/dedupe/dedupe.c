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
 * Identities: a known face alerts as camera + person, an unknown one (when
 * dedupe.unknown_faces) as camera + "unknown", with their own window
 * (dedupe.person_window_s). The person label of a frame whose faces went
 * to facematch is held (join.h) for up to dedupe.identity_wait_ms: an
 * identity alert of the same frame stands for it (and opens the label's
 * window, in Redis, so other replicas' copies are suppressed too);
 * otherwise it is handled alone once every face is answered or the wait is
 * over. Detections without faces take the path they always took.
 *
 * Incidents (incident.h): an alert from a window opened in Redis opens or
 * joins its camera's incident before it is published (incident_id,
 * escalation, incident_count); suppressed sightings are added up in memory
 * and flushed to the incident once a second per camera, so they still cost
 * no Redis call each. Fail-open alerts have no incident.
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
#include "incident.h"
#include "join.h"
#include "log.h"
#include "metrics.h"
#include "outbox.h"
#include "records.h"
#include "timeutil.h"
#include "window.h"

/* Windows remembered per replica (cache and fail-open fallback). */
#define DD_MAX_LOCAL_WINDOWS 4096
#define DD_MAX_PERSON_WINDOWS 1024
/* Frames whose person label waits for identities, per replica. */
#define DD_MAX_HELD 1024
/* Profile entries copied into an alert; the rest are counted and dropped. */
#define DD_MAX_PROFILE 64
/* The recovery sweep's period (it also runs once at start), camera
 * health's, and the loop's tick (held sightings leave within a tick of
 * their wait). */
#define SWEEP_EVERY_US (2 * 1000000LL)
#define HEALTH_EVERY_US (1000000LL)
#define TICK_MS 50

#define PERSON "person"
#define UNKNOWN "unknown"

struct dd {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct dd_windows *win;         /* labels: dedupe.window_s */
    struct dd_windows *pwin;        /* people: dedupe.person_window_s */
    struct dd_join *join;           /* person labels waiting for their identities */
    struct dd_outbox *out;
    struct dd_health *health;       /* NULL: dedupe.health.enabled is false */
    struct dd_incidents *inc;       /* NULL: dedupe.incident_gap_s is 0 */
    struct dd_records *records;     /* NULL: no metadata store reachable at start */
    size_t win_entries, pwin_entries;   /* for the local windows gauge */
    uint64_t join_full_seen;            /* run loop only */
    int max_labels;
    int64_t wait_us;
    struct vg_counter *sightings, *alerts, *suppressed, *fail_open, *malformed,
        *publish_failed, *unmatched, *released, *labels_dropped, *unknown_camera,
        *bad_confidence, *profile_dropped;
    struct vg_counter *redis_calls, *memory_hits, *local_windows, *table_full;
    struct vg_counter *person_held, *person_combined, *alone[3], *join_full, *holding;
    struct vg_histogram *latency;
};

/* Why a held person sighting is handled on its own. */
enum alone_why { ALONE_ANSWERED, ALONE_WAITED, ALONE_STOPPING };

/* What one sighting would alert about. */
struct sighting {
    const Vigil__V1__Header *header;
    uint64_t frame_seq;
    const char *label;
    float confidence;
    Vigil__V1__Box *box;
    const char *person_id;
    const char *display_name;
    const char *face_id;
    const char *snapshot_url;
    char **zones;                   /* the label's zones (identities: none) */
    size_t n_zones;
    Vigil__V1__Alert__ProfileEntry **profile;
    size_t n_profile;
    int window_s;
    char key[256];
};

/* A person label sighting held for its frame's identities: a copy of what
 * its alert needs (the Detection is freed when its handler returns). */
struct held {
    char camera_id[VG_ID_MAX];
    char trace_id[DD_JOIN_TRACE_MAX + 1];
    int64_t capture_ts_us;
    uint64_t frame_seq;
    float confidence;
    int has_box;
    Vigil__V1__Box box;
    char *snapshot_url;             /* NULL: none */
    size_t n_zones;
    char zone_names[VG_MAX_ZONES][VG_NAME_MAX];
    char *zones[VG_MAX_ZONES];
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
    a->face_id = (char *)(s->face_id ? s->face_id : "");
    a->snapshot_ref = (char *)(s->snapshot_url ? s->snapshot_url : ""); /* a store ref */
    a->zones = s->zones;
    a->n_zones = s->n_zones;
    a->profile = s->profile;
    a->n_profile = s->n_profile;
    a->window_s = (uint32_t)(s->window_s ? s->window_s : d->cfg->dedupe.window_s);
    a->frame_seq = s->frame_seq;
}

/* The window module keeps running totals; the counters take the growth
 * (handlers run on several threads). Only the table a sighting used can
 * have changed. */
static void update_window_metrics(struct dd *d, struct dd_windows *w)
{
    struct dd_windows_stats ws;
    dd_windows_take_growth(w, &ws);
    vg_counter_add(d->redis_calls, ws.redis_calls);
    vg_counter_add(d->memory_hits, ws.cache_hits);
    vg_counter_add(d->table_full, ws.table_full);
    __atomic_store_n(w == d->win ? &d->win_entries : &d->pwin_entries, ws.entries,
                     __ATOMIC_RELAXED);
    vg_gauge_set(d->local_windows, (int64_t)(__atomic_load_n(&d->win_entries, __ATOMIC_RELAXED) +
                                             __atomic_load_n(&d->pwin_entries, __ATOMIC_RELAXED)));
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
static vg_status open_window(struct dd *d, struct dd_windows *w, const struct sighting *s,
                             Vigil__V1__Alert *a, enum dd_verdict *v)
{
    struct dd_stash stash;
    vg_status st = dd_outbox_stash(d->out, a, &stash);
    if (st == VG_OK)
        *v = dd_windows_open(w, s->key, window_ts(s->header), a->alert_id, &stash);
    dd_stash_cleanup(&stash);
    return st;
}

static void published(struct dd *d, const struct sighting *s, const Vigil__V1__Alert *a)
{
    vg_counter_inc(d->alerts);
    dd_records_alert(d->records, a);
    vg_histogram_observe_us(d->latency, vg_now_us() - s->header->capture_ts_us);
    VG_INFO("alert.published", s->header->camera_id, "%s alert %s (%s %.2f)%s%s%s%s%s", s->key,
            a->alert_id, s->label, s->confidence, a->fail_open ? " fail-open" : "",
            a->incident_id[0] ? " incident " : "", a->incident_id,
            a->escalation[0] ? " " : "", a->escalation);
}

static void not_published(struct dd *d, struct dd_windows *w, const struct sighting *s,
                          const Vigil__V1__Alert *a, enum dd_verdict v)
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
    dd_windows_release(w, s->key, a->alert_id, v);
    vg_counter_inc(d->released);
}

/* Decide a sighting against windows w: 1 when it alerts (a is filled in,
 * *v says how), 0 when it is suppressed, -1 when its alert could not be
 * encoded. Strings of a are shared with s; hdr and alert_id are its. */
static int decide(struct dd *d, struct dd_windows *w, const struct sighting *s,
                  Vigil__V1__Alert *a, Vigil__V1__Header *hdr, char alert_id[33],
                  enum dd_verdict *v)
{
    const char *cam = s->header->camera_id;

    *v = DD_SUPPRESS;
    vg_counter_inc(d->sightings);
    /* The busy scene: a window this replica knows is open costs no Redis
     * call and no encoding. */
    if (!dd_windows_known_open(w, s->key)) {
        vg_new_id(alert_id);
        fill_alert(d, s, a, hdr, alert_id);
        if (open_window(d, w, s, a, v) != VG_OK) {
            vg_counter_inc(d->publish_failed);
            VG_ERROR("alert.publish_failed", cam, "%s: %s", s->key, vg_err_detail());
            return -1;
        }
    }
    update_window_metrics(d, w);
    if (*v == DD_SUPPRESS) {
        vg_counter_inc(d->suppressed);
        dd_incidents_sighting(d->inc, s->header, s->label, s->confidence, s->snapshot_url,
                              vg_mono_us());
        VG_DEBUG("alert.suppressed", cam, "%s inside its window", s->key);
        return 0;
    }
    a->fail_open = *v == DD_ALERT_FAIL_OPEN;
    if (a->fail_open) {
        vg_counter_inc(d->fail_open);
        VG_WARN("dedupe.fail_open", cam, "redis unavailable: %s alerts from a local window",
                s->key);
    } else {
        /* Test hook: a crash between the window and the publish. */
        vg_fault_point("dedupe.after_window");
    }
    return 1;
}

/* An alert from a window opened in Redis joins its camera's incident
 * first; its pending record is brought up to date so a recovery sweep
 * republishes it as joined. A fail-open alert has no incident. */
static void publish(struct dd *d, struct dd_windows *w, const struct sighting *s,
                    Vigil__V1__Alert *a, enum dd_verdict v)
{
    struct dd_incident_join j;
    int joined = v == DD_ALERT && d->inc && dd_incidents_join(d->inc, a, &j) == VG_OK;
    if (joined && dd_outbox_restash(d->out, a) != VG_OK)
        VG_DEBUG("incident.restash_failed", s->header->camera_id,
                 "alert %s: the pending record keeps the alert without incident: %s",
                 a->alert_id, vg_err_detail());
    /* Test hook: a crash after the join; the sweep's copy must carry it. */
    if (joined)
        vg_fault_point("dedupe.after_incident");
    if (dd_outbox_publish(d->out, a, v == DD_ALERT) == VG_OK)
        published(d, s, a);
    else
        not_published(d, w, s, a, v);
    if (joined)
        dd_incidents_joined(d->inc, s->header->camera_id, &j);
}

static void handle_sighting(struct dd *d, struct dd_windows *w, const struct sighting *s)
{
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    char alert_id[33];
    enum dd_verdict v;
    if (decide(d, w, s, &a, &hdr, alert_id, &v) == 1)
        publish(d, w, s, &a, v);
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

/* ---- person labels held for their identities (join.h) ----------------- */

static void held_free(void *p)
{
    struct held *h = p;
    if (h)
        free(h->snapshot_url);
    free(h);
}

/* NULL when out of memory, or when the snapshot URL is longer than a URL
 * may be (a held copy stays small: the table's memory is bounded). */
static struct held *held_create(const Vigil__V1__Detection *det, const struct sighting *s)
{
    if (s->snapshot_url && strlen(s->snapshot_url) >= VG_URL_MAX)
        return NULL;
    struct held *h = calloc(1, sizeof(*h));
    if (!h)
        return NULL;
    snprintf(h->camera_id, sizeof(h->camera_id), "%s", det->header->camera_id);
    snprintf(h->trace_id, sizeof(h->trace_id), "%s", det->header->trace_id);
    h->capture_ts_us = det->header->capture_ts_us;
    h->frame_seq = s->frame_seq;
    h->confidence = s->confidence;
    if (s->box) {
        h->has_box = 1;
        vigil__v1__box__init(&h->box);
        h->box.x = s->box->x, h->box.y = s->box->y, h->box.w = s->box->w, h->box.h = s->box->h;
    }
    memcpy(h->key, s->key, sizeof(h->key));
    /* Zones are the camera's (short names, at most VG_MAX_ZONES): others
     * are not copied. */
    for (size_t i = 0; i < s->n_zones && h->n_zones < VG_MAX_ZONES; i++)
        if (s->zones[i] && strlen(s->zones[i]) < VG_NAME_MAX) {
            memcpy(h->zone_names[h->n_zones], s->zones[i], strlen(s->zones[i]) + 1);
            h->zones[h->n_zones] = h->zone_names[h->n_zones];
            h->n_zones++;
        }
    if (s->snapshot_url && s->snapshot_url[0] && !(h->snapshot_url = strdup(s->snapshot_url))) {
        free(h);
        return NULL;
    }
    return h;
}

static void person_key(struct dd *d, char *key, size_t cap, const char *camera)
{
    snprintf(key, cap, "%s:dd:%s:label:" PERSON, d->cfg->prefix, camera);
}

/* A held sighting an identity alert stood for: it raises nothing itself. */
static void combined(struct dd *d, const char *camera, const char *key, const char *by)
{
    vg_counter_inc(d->sightings);
    vg_counter_inc(d->person_combined);
    VG_DEBUG("alert.combined", camera, "%s stood for by %s", key, by);
}

/* A held sighting handled on its own, as any label sighting. Frees it. */
static void alone(struct dd *d, struct held *h, enum alone_why why)
{
    static const char *const whys[] = {"every face answered, none alerted",
                                       "no identity alerted in time", "stopping"};
    if (!h)
        return;
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    hdr.camera_id = h->camera_id;
    hdr.capture_ts_us = h->capture_ts_us;
    hdr.trace_id = h->trace_id;
    struct sighting s = {
        .header = &hdr,
        .frame_seq = h->frame_seq,
        .label = PERSON,
        .confidence = h->confidence,
        .box = h->has_box ? &h->box : NULL,
        .snapshot_url = h->snapshot_url,
        .zones = h->zones,
        .n_zones = h->n_zones,
    };
    memcpy(s.key, h->key, sizeof(s.key));
    vg_counter_inc(d->alone[why]);
    VG_DEBUG("person.alone", h->camera_id, "%s of trace %s: %s", h->key, h->trace_id,
             whys[why]);
    handle_sighting(d, d->win, &s);
    held_free(h);
}

/* 1: the person sighting s of det is held for the frame's identities (or
 * one of them already stood for it); 0: the caller handles it now. */
static int hold_person(struct dd *d, const Vigil__V1__Detection *det, const struct sighting *s)
{
    const char *cam = det->header->camera_id;
    /* A window known open suppresses it anyway: no need to wait. */
    if (d->wait_us <= 0 || vg_svc_stopping(d->svc) || dd_windows_is_open(d->win, s->key))
        return 0;
    void *h = held_create(det, s);
    if (!h)
        return 0;
    switch (dd_join_detection(d->join, cam, det->header->trace_id, det->faces, &h,
                              vg_mono_us())) {
    case DD_JOIN_HELD:
        vg_counter_inc(d->person_held);
        VG_DEBUG("person.held", cam, "%s of trace %s waits for %u face(s)", s->key,
                 det->header->trace_id, det->faces);
        return 1;
    case DD_JOIN_COVER:
        combined(d, cam, s->key, "an identity of the same frame");
        held_free(h);
        return 1;
    default:
        held_free(h);
        return 0;
    }
}

/* Held sightings whose wait is over (or all of them when stopping). */
static void release_held(struct dd *d, int64_t now, int stopping)
{
    void *out[16];
    size_t k;
    do {
        k = stopping ? dd_join_close(d->join, out, 16) : dd_join_expire(d->join, now, out, 16);
        for (size_t i = 0; i < k; i++)
            alone(d, out[i], stopping ? ALONE_STOPPING : ALONE_WAITED);
    } while (k == 16);
}

static void update_join_metrics(struct dd *d)
{
    struct dd_join_stats js;
    dd_join_get_stats(d->join, &js);
    vg_counter_add(d->join_full, js.full - d->join_full_seen);
    d->join_full_seen = js.full;
    vg_gauge_set(d->holding, (int64_t)js.held);
}

/* ---- detections ---------------------------------------------------------- */

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
            .snapshot_url = det->snapshot_ref,
            .zones = l->zones,
            .n_zones = l->n_zones < VG_MAX_ZONES ? l->n_zones : VG_MAX_ZONES,
        };
        snprintf(s.key, sizeof(s.key), "%s:dd:%s:label:%s", d->cfg->prefix,
                 det->header->camera_id, l->name);
        /* Faces of this frame went to facematch: its identities may stand
         * for the person label. Without faces, nothing changes. */
        if (det->faces && !strcmp(l->name, PERSON) && hold_person(d, det, &s))
            continue;
        handle_sighting(d, d->win, &s);
    }
out:
    protobuf_c_message_free_unpacked(&det->base, NULL);
}

/* ---- identities ---------------------------------------------------------- */

/* The FaceMatch's profile as Alert entries (strings shared with m), at most
 * DD_MAX_PROFILE of them. */
static vg_status copy_profile(struct dd *d, const Vigil__V1__FaceMatch *m,
                              Vigil__V1__Alert__ProfileEntry **entries,
                              Vigil__V1__Alert__ProfileEntry ***ptrs, size_t *n)
{
    size_t k = m->n_profile < DD_MAX_PROFILE ? m->n_profile : DD_MAX_PROFILE;
    *n = 0;
    if (m->n_profile > k) {
        vg_counter_add(d->profile_dropped, m->n_profile - k);
        VG_DEBUG("identity.profile_capped", m->header->camera_id,
                 "%s: %zu profile entries, %d kept", m->person_id, m->n_profile,
                 DD_MAX_PROFILE);
    }
    if (!k)
        return VG_OK;
    *entries = calloc(k, sizeof(**entries));
    *ptrs = calloc(k, sizeof(**ptrs));
    if (!*entries || !*ptrs)
        return VG_ERR_NOMEM;
    for (size_t i = 0; i < k; i++) {
        Vigil__V1__Alert__ProfileEntry *e = &(*entries)[i];
        vigil__v1__alert__profile_entry__init(e);
        e->key = m->profile[i]->key;
        e->value = m->profile[i]->value;
        (*ptrs)[i] = e;
    }
    *n = k;
    return VG_OK;
}

/* An identity that stands for the camera's person label of this moment
 * opens (or finds open) the label's window, in Redis, so a held copy of the
 * label here or on another replica is suppressed when it is decided. by:
 * the identity's alert, NULL when it was suppressed. */
static void cover_person_label(struct dd *d, const Vigil__V1__Header *h, const char *by)
{
    char key[256], id[33];
    person_key(d, key, sizeof(key), h->camera_id);
    if (dd_windows_is_open(d->win, key))
        return;
    if (by)
        snprintf(id, sizeof(id), "%s", by);
    else
        vg_new_id(id);
    dd_windows_open(d->win, key, window_ts(h), id, NULL);
    update_window_metrics(d, d->win);
}

/* An identity that raises no alert still answers one of its frame's faces:
 * the frame's held person label goes out once every face is answered. */
static void answered(struct dd *d, const Vigil__V1__FaceMatch *m)
{
    alone(d, dd_join_answer(d->join, m->header->camera_id, m->header->trace_id, vg_mono_us()),
          ALONE_ANSWERED);
}

/* A face that alerts: camera + person (known) or camera + unknown. */
static void identity_sighting(struct dd *d, const Vigil__V1__FaceMatch *m, int known)
{
    const Vigil__V1__Header *h = m->header;
    const char *cam = h->camera_id;
    Vigil__V1__Alert__ProfileEntry *entries = NULL, **profile = NULL;
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    char alert_id[33] = "";
    enum dd_verdict v;
    struct sighting s = {
        .header = h,
        .frame_seq = m->frame_seq,
        .label = PERSON,
        .confidence = m->similarity,
        .box = m->box,
        .person_id = known ? m->person_id : NULL,
        .display_name = known ? m->display_name : NULL,
        .face_id = known ? m->face_id : NULL,
        .snapshot_url = m->snapshot_ref,
        .window_s = d->cfg->dedupe.person_window_s,
    };
    int n = snprintf(s.key, sizeof(s.key), "%s:dd:%s:person:%s", d->cfg->prefix, cam,
                     known ? m->person_id : UNKNOWN);
    if (n < 0 || (size_t)n >= sizeof(s.key)) {
        vg_counter_inc(d->malformed);
        VG_DEBUG("message.rejected", cam, "person_id of %zu bytes: too long for a key",
                 strlen(m->person_id));
        answered(d, m);
        goto out;
    }
    if (known && copy_profile(d, m, &entries, &profile, &s.n_profile) != VG_OK) {
        vg_counter_inc(d->publish_failed);
        VG_ERROR("alert.publish_failed", cam, "%s: no memory for its profile", s.key);
        answered(d, m);
        goto out;
    }
    s.profile = profile;
    /* Claimed first: the frame's held person label cannot time out while
     * this identity is decided. */
    int claimed = dd_join_claim(d->join, cam, h->trace_id, vg_mono_us());
    int r = decide(d, d->pwin, &s, &a, &hdr, alert_id, &v);
    /* A known person stands for the frame's person label whether greeted
     * now or earlier in the person window; an unknown face only when it
     * alerts now (another stranger within the hour still gets the person
     * alert a label would have raised). */
    int stood = r == 1 || (r == 0 && known);
    if (stood)
        cover_person_label(d, h, r == 1 ? alert_id : NULL);
    if (claimed) {
        enum dd_join_verdict jv;
        struct held *held = dd_join_settle(d->join, cam, h->trace_id, stood, vg_mono_us(), &jv);
        if (held && jv == DD_JOIN_COVER) {
            char by[300];
            snprintf(by, sizeof(by), r == 1 ? "identity alert %s" : "%s (inside its window)",
                     r == 1 ? alert_id : s.key);
            combined(d, cam, held->key, by);
            held_free(held);
        } else {
            alone(d, held, ALONE_ANSWERED);
        }
    }
    if (r == 1)
        publish(d, d->pwin, &s, &a, v);
out:
    free(entries);
    free(profile);
}

static void on_identity(void *ctx, const char *subject, const void *data, size_t len)
{
    struct dd *d = ctx;
    Vigil__V1__FaceMatch *m = (Vigil__V1__FaceMatch *)vg_bus_decode(
        vg_svc_bus(d->svc), &vigil__v1__face_match__descriptor, subject, data, len,
        d->malformed);
    if (!m)
        return;
    if (!camera_known(d, m->header->camera_id, subject))
        goto out;
    if (!confidence_ok(d, m->similarity, m->header->camera_id, "similarity")) {
        answered(d, m);
        goto out;
    }
    /* "unknown" is the unknown face's key: no person may have it. */
    int known = m->matched && m->person_id && m->person_id[0] && strcmp(m->person_id, UNKNOWN);
    if (!known)
        vg_counter_inc(d->unmatched);
    if (known || d->cfg->dedupe.unknown_faces)
        identity_sighting(d, m, known);
    else
        answered(d, m);
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
                                  "Identities without a known person");
    d->released = vg_counter_get("vigil_dedupe_windows_released_total",
                                 "Windows released because their alert was not stored");
    d->labels_dropped = vg_counter_get("vigil_dedupe_labels_dropped_total",
                                       "Labels beyond the per-detection limit, not considered");
    d->unknown_camera = vg_counter_get("vigil_dedupe_unknown_camera_total",
                                       "Messages dropped: camera not in the configuration");
    d->bad_confidence = vg_counter_get("vigil_dedupe_bad_confidence_total",
                                       "Labels and matches dropped: confidence outside 0..1");
    d->profile_dropped = vg_counter_get("vigil_dedupe_profile_entries_dropped_total",
                                        "Profile entries beyond 64 per identity, not alerted");
    d->redis_calls = vg_counter_get("vigil_dedupe_redis_window_calls_total",
                                    "Window opens asked of Redis");
    d->memory_hits = vg_counter_get("vigil_dedupe_memory_hits_total",
                                    "Sightings suppressed from memory, without Redis");
    d->local_windows = vg_gauge_get("vigil_dedupe_local_windows",
                                    "Windows held in this replica's memory");
    d->table_full = vg_counter_get("vigil_dedupe_local_table_full_total",
                                   "Windows not remembered because the local table was full");
    d->person_held = vg_counter_get("vigil_dedupe_person_held_total",
                                    "Person label sightings held for their frame's identities");
    d->person_combined = vg_counter_get(
        "vigil_dedupe_person_combined_total",
        "Person label sightings an identity alert of the same frame stood for");
    static const char *const whys[] = {"why=\"answered\"", "why=\"waited\"",
                                       "why=\"stopping\""};
    for (int i = 0; i < 3; i++)
        d->alone[i] = vg_counter_get_labeled("vigil_dedupe_person_alone_total", whys[i],
                                             "Held person label sightings handled on their own");
    d->join_full = vg_counter_get("vigil_dedupe_person_hold_full_total",
                                  "Person sightings and identities not joined: table full");
    d->holding = vg_gauge_get("vigil_dedupe_person_holding",
                              "Person label sightings waiting for identities now");
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

/* Incidents go out on core NATS: each message carries the whole state, so
 * a consumer that missed one is up to date with the next. */
static vg_status publish_incident(void *ctx, const char *camera, const Vigil__V1__Incident *m)
{
    struct dd *d = ctx;
    char subject[256];
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "incidents", camera);
    vg_status st = vg_bus_publish(vg_svc_bus(d->svc), subject, &m->base);
    dd_records_incident(d->records, camera, m);     /* after: a slow store must not delay it */
    return st;
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
    d->wait_us = (int64_t)d->cfg->dedupe.identity_wait_ms * 1000;
    st = dd_windows_create(&d->win, vg_svc_redis(svc), d->cfg->dedupe.window_s * 1000,
                           DD_MAX_LOCAL_WINDOWS);
    if (st == VG_OK)
        st = dd_windows_create(&d->pwin, vg_svc_redis(svc),
                               d->cfg->dedupe.person_window_s * 1000, DD_MAX_PERSON_WINDOWS);
    if (st == VG_OK)
        st = dd_join_create(&d->join, DD_MAX_HELD, d->wait_us, held_free);
    if (st == VG_OK)
        st = dd_outbox_create(&d->out, svc);
    if (st == VG_OK)
        st = dd_outbox_ensure_stream(d->out);
    if (st == VG_OK && d->cfg->dedupe.health.enabled)
        st = dd_health_create(&d->health, d->cfg, vg_svc_redis(svc), d->out);
    if (st == VG_OK)
        st = dd_records_open(&d->records, d->cfg);
    if (st == VG_OK && d->cfg->dedupe.incident_gap_s > 0)
        st = dd_incidents_create(&d->inc, d->cfg, vg_svc_redis(svc), publish_incident, d);
    if (st == VG_OK)
        st = subscribe(d, "detections", "dedupe", on_detection);
    if (st == VG_OK)
        st = subscribe(d, "identities", "dedupe", on_identity);
    if (st == VG_OK && d->health)
        st = subscribe(d, "status", NULL, on_status);
    return st;
}

/* The service's clock: held person labels whose wait is over every tick,
 * incidents every tick (each camera's sightings flushed at most once a
 * second, incidents over closed), the recovery sweep at start and every
 * 2 s, camera health every second.
 * Detections and identities are handled on the NATS threads meanwhile.
 * When stopping, every held label is decided before the bus drains (and
 * detections that come during the drain are not held). */
static vg_status dd_run(struct vg_svc *svc, void *state)
{
    struct dd *d = state;
    int64_t next_sweep = 0, next_health = 0;
    do {
        int64_t now = vg_mono_us();
        release_held(d, now, 0);
        dd_incidents_tick(d->inc, vg_mono_us(), 0);
        if (now >= next_sweep) {
            dd_outbox_sweep(d->out);
            next_sweep = vg_mono_us() + SWEEP_EVERY_US;
        }
        if (now >= next_health) {
            if (d->health)
                dd_health_tick(d->health, vg_mono_us());
            update_join_metrics(d);
            next_health = now + HEALTH_EVERY_US;
        }
    } while (!vg_svc_sleep_ms(svc, TICK_MS));
    release_held(d, vg_mono_us(), 1);
    /* What the last second's sightings added, before the bus drains. */
    dd_incidents_tick(d->inc, vg_mono_us(), 1);
    return VG_OK;
}

static void dd_fini(struct vg_svc *svc, void *state)
{
    struct dd *d = state;
    if (!d)
        return;
    dd_incidents_destroy(d->inc);
    dd_records_close(d->records);
    dd_health_destroy(d->health);
    dd_outbox_destroy(d->out);
    dd_join_destroy(d->join);
    dd_windows_destroy(d->pwin);
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
