/* Backend "motion": capture already found motion boxes on a downscaled grey
 * image; each becomes a label "motion" whose confidence is the fraction of
 * the box's pixels that changed. Free, instant: the usual first stage that
 * gates the others. */
#include "detect/detector.h"

static vg_status detect(void *state, const struct vg_detect_req *req, struct vg_detect_res *res)
{
    const struct vg_motion_hint *m = req->motion;
    for (size_t i = 0; m && i < m->n; i++)
        vg_detect_res_add(res, "motion", VG_CAT_MOTION, m->fill[i], &m->boxes[i]);
    return VG_OK;
}

const struct vg_detector_backend vg_detector_motion = {
    .name = "motion",
    .summary = "capture's motion boxes as labels \"motion\" (the free first stage)",
    .caps = VG_DETECT_LOCAL,
    .detect = detect,
};
