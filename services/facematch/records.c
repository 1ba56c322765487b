#include "records.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "metrics.h"
#include "store/meta_store.h"

struct fm_records {
    struct vg_meta_store *meta;
    struct vg_counter *stored, *failed;
};

vg_status fm_records_open(struct fm_records **out, const struct vg_config *cfg)
{
    struct vg_meta_store *meta = NULL;
    *out = NULL;
    vg_status st = vg_meta_store_open(&meta, cfg, NULL);
    if (st == VG_ERR_CONFIG || st == VG_ERR_INVALID)
        return st;
    if (st != VG_OK) {
        VG_WARN("metadata.unavailable", NULL, "identities are not kept: %s", vg_err_detail());
        return VG_OK;
    }
    struct fm_records *r = calloc(1, sizeof(*r));
    if (!r) {
        vg_meta_store_close(meta);
        return vg_errf(VG_ERR_NOMEM, "facematch: out of memory");
    }
    r->meta = meta;
    r->stored = vg_counter_get("vigil_facematch_records_stored_total",
                               "Identities written to the metadata store");
    r->failed = vg_counter_get("vigil_facematch_records_failed_total",
                               "Identities the metadata store did not take");
    *out = r;
    return VG_OK;
}

void fm_records_close(struct fm_records *r)
{
    if (!r)
        return;
    vg_meta_store_close(r->meta);
    free(r);
}

static const char *s(const char *v) { return v ? v : ""; }

void fm_records_identity(struct fm_records *r, const Vigil__V1__FaceMatch *m)
{
    const Vigil__V1__Header *h = m->header;
    char id[64];
    if (!r || !h || !h->trace_id)
        return;
    int n = snprintf(id, sizeof(id), "%s-%u", h->trace_id, m->index);
    if (n < 0 || (size_t)n >= sizeof(id))
        return;     /* trace ids are short; a foreign one that is not is not kept */
    json_t *box = m->box ? json_pack("{s:f,s:f,s:f,s:f}", "x", (double)m->box->x, "y",
                                     (double)m->box->y, "w", (double)m->box->w, "h",
                                     (double)m->box->h)
                         : json_null();
    json_t *o = json_pack("{s:s,s:s,s:I,s:i,s:b,s:s,s:s,s:s,s:f,s:s,s:o*}", "camera",
                          s(h->camera_id), "trace_id", h->trace_id, "capture_ts_us",
                          (json_int_t)h->capture_ts_us, "index", (int)m->index, "matched",
                          (int)m->matched, "person_id", s(m->person_id), "display_name",
                          s(m->display_name), "face_id", s(m->face_id), "similarity",
                          (double)m->similarity, "matcher", s(m->matcher), "box", box);
    char *json = o ? json_dumps(o, JSON_COMPACT) : NULL;
    json_decref(o);
    vg_status st = VG_ERR_NOMEM;
    if (json) {
        st = vg_meta_put(r->meta, VG_META_IDENTITY, h->camera_id, h->capture_ts_us, id, json);
    }
    free(json);
    if (st == VG_OK) {
        vg_counter_inc(r->stored);
    } else {
        vg_counter_inc(r->failed);
        VG_WARN("metadata.failed", h->camera_id, "identity %s: %s", id,
                json ? vg_err_detail() : "out of memory");
    }
}
