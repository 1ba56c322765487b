/* face-match: answers every FaceCrop with a FaceMatch. With matcher "none"
 * (the default until a matching backend is configured) every crop is
 * answered "not matched", so consumers of identities see each face. */
#include "facematch.h"

#include <stdlib.h>

#include "log.h"
#include "metrics.h"
#include "timeutil.h"

struct fm {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct vg_counter *crops, *malformed, *matched, *publish_failed;
    struct vg_histogram *latency;
};

static void on_face(void *ctx, const char *subject, const void *data, size_t len)
{
    struct fm *fm = ctx;
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__FaceMatch out = VIGIL__V1__FACE_MATCH__INIT;
    char subj[256];
    Vigil__V1__FaceCrop *crop = (Vigil__V1__FaceCrop *)vg_bus_decode(
        vg_svc_bus(fm->svc), &vigil__v1__face_crop__descriptor, subject, data, len,
        fm->malformed);
    if (!crop)
        return;
    vg_counter_inc(fm->crops);
    vg_header_follow(&hdr, crop->header);
    out.header = &hdr;
    out.frame_seq = crop->frame_seq;
    out.index = crop->index;
    out.matched = 0;
    out.matcher = (char *)fm->cfg->facematch.matcher;
    out.box = crop->box;
    out.snapshot_url = crop->snapshot_url;
    vg_subject(subj, sizeof(subj), fm->cfg->prefix, "identities", crop->header->camera_id);
    if (vg_bus_publish(vg_svc_bus(fm->svc), subj, &out.base) != VG_OK) {
        vg_counter_inc(fm->publish_failed);
        VG_WARN("identity.publish_failed", crop->header->camera_id, "%s", vg_err_detail());
    } else {
        vg_histogram_observe_us(fm->latency, vg_now_us() - crop->header->capture_ts_us);
    }
    protobuf_c_message_free_unpacked(&crop->base, NULL);
}

static vg_status fm_init(struct vg_svc *svc, void **state)
{
    char subject[128];
    struct fm *fm = calloc(1, sizeof(*fm));
    if (!fm)
        return VG_ERR_NOMEM;
    fm->svc = svc;
    fm->cfg = vg_svc_config(svc);
    fm->crops = vg_counter_get("vigil_facematch_crops_total", "Face crops received");
    fm->malformed = vg_counter_get("vigil_facematch_malformed_total",
                                   "Messages dropped because they could not be decoded");
    fm->matched = vg_counter_get("vigil_facematch_matched_total", "Faces matched to a person");
    fm->publish_failed = vg_counter_get("vigil_facematch_publish_failed_total",
                                        "Identities that could not be published");
    fm->latency = vg_histogram_get("vigil_facematch_latency_seconds",
                                   "Frame capture to identity published");
    *state = fm;
    vg_subject(subject, sizeof(subject), fm->cfg->prefix, "faces", "*");
    return vg_bus_subscribe(vg_svc_bus(svc), subject, "facematch", on_face, fm);
}

static void fm_fini(struct vg_svc *svc, void *state) { free(state); }

const struct vg_service facematch_service = {
    .name = "facematch",
    .default_http_addr = "127.0.0.1:9103",
    .init = fm_init,
    .fini = fm_fini,
};
