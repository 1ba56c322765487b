/* Backend "motion": the capture service already found motion boxes on a
 * downscaled grey image; each becomes a label "motion" whose confidence is
 * the fraction of the box's pixels that changed. */
#include <stdio.h>

#include "detect_backends.h"

static vg_status detect(void *state, const Vigil__V1__Frame *frame, struct vg_label *labels,
                        size_t max, size_t *n)
{
    size_t k = 0;
    for (size_t i = 0; i < frame->n_motion && k < max; i++) {
        const Vigil__V1__MotionBox *m = frame->motion[i];
        if (!m || !m->box)
            continue;
        struct vg_label *l = &labels[k++];
        snprintf(l->name, sizeof(l->name), "motion");
        l->confidence = m->fill < 0 ? 0 : m->fill > 1 ? 1 : m->fill;
        l->x = m->box->x;
        l->y = m->box->y;
        l->w = m->box->w;
        l->h = m->box->h;
    }
    *n = k;
    return VG_OK;
}

const struct vg_detector_backend vg_detector_motion = {
    .name = "motion",
    .detect = detect,
};
