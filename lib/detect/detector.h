/* Object detector backends behind one interface. A backend turns a Frame
 * into labels; the dispatcher applies watch lists, zones and thresholds. */
#ifndef VG_DETECTOR_H
#define VG_DETECTOR_H

#include <stddef.h>

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

#define VG_LABEL_NAME_MAX 32

struct vg_label {
    char name[VG_LABEL_NAME_MAX];
    float confidence;       /* 0..1 */
    float x, y, w, h;       /* normalised box; all 0 for whole-image labels */
};

struct vg_detector;

/* name: the backend, as in dispatch.detector ("motion"). */
vg_status vg_detector_create(struct vg_detector **out, const char *name,
                             const struct vg_config *cfg);
void vg_detector_destroy(struct vg_detector *d);
const char *vg_detector_name(const struct vg_detector *d);

/* Detect into labels[0..max); *n gets the count. Safe to call from one
 * thread at a time per detector. */
vg_status vg_detector_run(struct vg_detector *d, const Vigil__V1__Frame *frame,
                          struct vg_label *labels, size_t max, size_t *n);

#endif
