#include "records.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store/meta_store.h"

struct dd_records {
    struct vg_meta_store *meta;
    struct vg_counter *stored, *failed;
};

vg_status dd_records_open(struct dd_records **out, const struct vg_config *cfg)
{
    struct vg_meta_store *meta = NULL;
    *out = NULL;
    vg_status st = vg_meta_store_open(&meta, cfg, NULL);
    if (st == VG_ERR_CONFIG || st == VG_ERR_INVALID)
        return st;
    if (st != VG_OK) {
        VG_WARN("metadata.unavailable", NULL, "alerts and incidents are not kept: %s",
                vg_err_detail());
        return VG_OK;
    }
    struct dd_records *r = calloc(1, sizeof(*r));
    if (!r) {
        vg_meta_store_close(meta);
        return vg_errf(VG_ERR_NOMEM, "dedupe: out of memory");
    }
    r->meta = meta;
    r->stored = vg_counter_get("vigil_dedupe_records_stored_total",
                               "Alerts and incident states written to the metadata store");
    r->failed = vg_counter_get("vigil_dedupe_records_failed_total",
                               "Alerts and incident states the metadata store did not take");
    *out = r;
    return VG_OK;
}

void dd_records_close(struct dd_records *r)
{
    if (!r)
        return;
    vg_meta_store_close(r->meta);
    free(r);
}

static json_t *strings(char **v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; a && i < n; i++)
        json_array_append_new(a, json_string(v[i] ? v[i] : ""));
    return a;
}

static const char *s(const char *v) { return v ? v : ""; }

static void put(struct dd_records *r, enum vg_meta_kind kind, const char *camera, int64_t ts_us,
                const char *id, json_t *o)
{
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    vg_status st = VG_ERR_NOMEM;
    json_decref(o);
    if (json) {
        st = vg_meta_put(r->meta, kind, camera, ts_us, id, json);
    }
    free(json);
    if (st == VG_OK) {
        vg_counter_inc(r->stored);
        return;
    }
    vg_counter_inc(r->failed);
    VG_WARN("metadata.failed", camera, "%s %s: %s", vg_meta_kind_name(kind), id,
            json ? vg_err_detail() : "out of memory");
}

void dd_records_alert(struct dd_records *r, const Vigil__V1__Alert *a)
{
    const Vigil__V1__Header *h = a->header;
    if (!r || !h || !a->alert_id || !a->alert_id[0])
        return;
    json_t *box = a->box ? json_pack("{s:f,s:f,s:f,s:f}", "x", (double)a->box->x, "y",
                                     (double)a->box->y, "w", (double)a->box->w, "h",
                                     (double)a->box->h)
                         : json_null();
    json_t *o = json_pack(
        "{s:s,s:s,s:s,s:I,s:s,s:s,s:f,s:o*,s:s,s:s,s:o*,s:s,s:s,s:i,s:s,s:b}", "alert_id",
        a->alert_id, "camera", s(h->camera_id), "trace_id", s(h->trace_id), "capture_ts_us",
        (json_int_t)h->capture_ts_us, "key", s(a->key), "label", s(a->label), "confidence",
        (double)a->confidence, "box", box, "person_id", s(a->person_id), "display_name",
        s(a->display_name), "zones", strings(a->zones, a->n_zones), "incident_id",
        s(a->incident_id), "escalation", s(a->escalation), "window_s", (int)a->window_s,
        "snapshot_ref", s(a->snapshot_ref), "fail_open", (int)a->fail_open);
    put(r, VG_META_ALERT, h->camera_id, h->capture_ts_us, a->alert_id, o);
}

void dd_records_incident(struct dd_records *r, const char *camera, const Vigil__V1__Incident *m)
{
    if (!r || !m->incident_id || !m->incident_id[0])
        return;
    json_t *o = json_pack(
        "{s:s,s:s,s:b,s:I,s:I,s:I,s:o*,s:o*,s:o*,s:i,s:s,s:f,s:s,s:s}", "incident_id",
        m->incident_id, "camera", camera, "open", (int)m->open, "opened_ts_us",
        (json_int_t)m->opened_ts_us, "last_seen_ts_us", (json_int_t)m->last_seen_ts_us, "count",
        (json_int_t)m->count, "labels", strings(m->labels, m->n_labels), "person_ids",
        strings(m->person_ids, m->n_person_ids), "display_names",
        strings(m->display_names, m->n_display_names), "alerts", (int)m->alerts,
        "best_snapshot_ref", s(m->best_snapshot_ref), "best_confidence",
        (double)m->best_confidence, "best_label", s(m->best_label), "escalation",
        s(m->escalation));
    /* Keyed by the incident's start: each update replaces the same record. */
    put(r, VG_META_INCIDENT, camera, m->opened_ts_us, m->incident_id, o);
}
