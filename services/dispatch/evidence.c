#include "evidence.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "metrics.h"
#include "store/meta_store.h"
#include "store/snapshot_store.h"

struct disp_evidence {
    struct vg_snap_store *snaps;    /* NULL: snapshots are not stored */
    struct vg_meta_store *meta;     /* NULL: it could not be opened (logged) */
    struct vg_counter *snap_failed, *pruned, *meta_failed, *meta_stored;
};

vg_status disp_evidence_open(struct disp_evidence **out, const struct vg_config *cfg)
{
    struct disp_evidence *e = calloc(1, sizeof(*e));
    if (!e)
        return vg_errf(VG_ERR_NOMEM, "dispatch: out of memory");
    e->snap_failed = vg_counter_get("vigil_dispatch_snapshot_failed_total",
                                    "Snapshots that could not be stored");
    e->pruned = vg_counter_get("vigil_dispatch_snapshots_pruned_total",
                               "Snapshots deleted by age or total size");
    e->meta_failed = vg_counter_get("vigil_dispatch_metadata_failed_total",
                                    "Frame records the metadata store did not take");
    e->meta_stored = vg_counter_get("vigil_dispatch_metadata_stored_total",
                                    "Frame records written to the metadata store");
    if (vg_snap_store_configured(cfg)) {
        vg_status st = vg_snap_store_open(&e->snaps, cfg);
        if (st != VG_OK) {      /* a configuration error: refuse to start */
            disp_evidence_close(e);
            return st;
        }
    }
    /* The metadata store is a convenience for browsing: without it (Redis
     * down at start) detections still flow; the store reconnects itself. */
    vg_status st = vg_meta_store_open(&e->meta, cfg, NULL);
    if (st != VG_OK) {
        if (st == VG_ERR_CONFIG || st == VG_ERR_INVALID) {
            disp_evidence_close(e);
            return st;
        }
        VG_WARN("metadata.unavailable", NULL, "frame records are not kept: %s",
                vg_err_detail());
        e->meta = NULL;
    }
    VG_INFO("evidence.configured", NULL, "snapshots: %s, frame records: %s",
            e->snaps ? vg_snap_store_type(e->snaps) : "not stored",
            e->meta ? vg_meta_store_type(e->meta) : "not kept");
    *out = e;
    return VG_OK;
}

void disp_evidence_close(struct disp_evidence *e)
{
    if (!e)
        return;
    vg_snap_store_close(e->snaps);
    vg_meta_store_close(e->meta);
    free(e);
}

struct vg_snap_store *disp_evidence_snaps(struct disp_evidence *e) { return e->snaps; }

void disp_evidence_snapshot(struct disp_evidence *e, const Vigil__V1__Header *h,
                            const uint8_t *jpeg, size_t len, char *ref, size_t cap)
{
    ref[0] = '\0';
    if (!e->snaps)
        return;
    if (vg_snap_put(e->snaps, h->camera_id, h->capture_ts_us, h->trace_id, jpeg, len, ref,
                    cap) != VG_OK) {
        vg_counter_inc(e->snap_failed);
        VG_WARN("snapshot.failed", h->camera_id, "%s", vg_err_detail());
        ref[0] = '\0';
    }
}

static json_t *box_json(const Vigil__V1__Box *b)
{
    if (!b)
        return json_null();
    return json_pack("{s:f,s:f,s:f,s:f}", "x", (double)b->x, "y", (double)b->y, "w",
                     (double)b->w, "h", (double)b->h);
}

static int has(json_t *arr, const char *s)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
        if (!strcmp(json_string_value(v), s))
            return 1;
    return 0;
}

/* {"camera", "trace_id", "capture_ts_us", "frame_seq", "detector", "width",
 *  "height", "labels": [{"label", "raw", "confidence", "box", "zones"}],
 *  "zones", "snapshot_ref"} */
static char *frame_json(const Vigil__V1__Detection *det)
{
    const Vigil__V1__Header *h = det->header;
    json_t *labels = json_array(), *zones = json_array();
    for (size_t i = 0; labels && zones && i < det->n_labels; i++) {
        const Vigil__V1__Label *l = det->labels[i];
        json_t *lz = json_array();
        for (size_t z = 0; lz && z < l->n_zones; z++) {
            json_array_append_new(lz, json_string(l->zones[z]));
            if (!has(zones, l->zones[z]))
                json_array_append_new(zones, json_string(l->zones[z]));
        }
        json_array_append_new(labels, json_pack("{s:s,s:s,s:f,s:o,s:o*}", "label", l->name,
                                                "raw", l->raw_name ? l->raw_name : "",
                                                "confidence", (double)l->confidence, "box",
                                                box_json(l->box), "zones", lz));
    }
    json_t *o = json_pack("{s:s,s:s,s:I,s:I,s:s,s:i,s:i,s:o*,s:o*,s:s}", "camera", h->camera_id,
                          "trace_id", h->trace_id, "capture_ts_us", (json_int_t)h->capture_ts_us,
                          "frame_seq", (json_int_t)det->frame_seq, "detector",
                          det->detector ? det->detector : "", "width", (int)det->width,
                          "height", (int)det->height, "labels", labels, "zones", zones,
                          "snapshot_ref", det->snapshot_ref ? det->snapshot_ref : "");
    char *text = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    return text;
}

void disp_evidence_frame(struct disp_evidence *e, const Vigil__V1__Detection *det)
{
    const Vigil__V1__Header *h = det->header;
    if (!e->meta || !h || !det->n_labels)
        return;         /* frames where nothing was seen are not worth a record */
    char *json = frame_json(det);
    vg_status st = VG_ERR_NOMEM;
    if (json) {
        st = vg_meta_put(e->meta, VG_META_FRAME, h->camera_id, h->capture_ts_us, h->trace_id,
                         json);
    }
    free(json);
    if (st == VG_OK) {
        vg_counter_inc(e->meta_stored);
        return;
    }
    vg_counter_inc(e->meta_failed);
    VG_WARN("metadata.failed", h->camera_id, "frame %s: %s", h->trace_id,
            json ? vg_err_detail() : "out of memory");
}

void disp_evidence_prune(struct disp_evidence *e)
{
    size_t removed = 0;
    if (!e->snaps)
        return;
    if (vg_snap_prune(e->snaps, &removed) != VG_OK)
        VG_WARN("snapshot.prune_failed", NULL, "%s", vg_err_detail());
    else if (removed)
        VG_INFO("snapshot.pruned", NULL, "%zu snapshots removed", removed);
    vg_counter_add(e->pruned, removed);
}
