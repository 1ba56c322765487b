/* The backend table behind detector.h; one file per backend. */
#ifndef VG_DETECT_BACKENDS_H
#define VG_DETECT_BACKENDS_H

#include "detector.h"

struct vg_detector_backend {
    const char *name;
    vg_status (*create)(void **state, const struct vg_config *cfg);  /* optional */
    vg_status (*detect)(void *state, const Vigil__V1__Frame *frame, struct vg_label *labels,
                        size_t max, size_t *n);
    void (*destroy)(void *state);                                     /* optional */
};

extern const struct vg_detector_backend vg_detector_motion;

#endif
