#include "detector.h"

#include <stdlib.h>
#include <string.h>

#include "detect_backends.h"

static const struct vg_detector_backend *const backends[] = {
    &vg_detector_motion,
};

struct vg_detector {
    const struct vg_detector_backend *be;
    void *state;
};

vg_status vg_detector_create(struct vg_detector **out, const char *name,
                             const struct vg_config *cfg)
{
    const struct vg_detector_backend *be = NULL;
    for (size_t i = 0; i < sizeof(backends) / sizeof(backends[0]); i++)
        if (!strcmp(backends[i]->name, name))
            be = backends[i];
    if (!be)
        return vg_errf(VG_ERR_CONFIG, "unknown detector \"%s\"", name);
    struct vg_detector *d = calloc(1, sizeof(*d));
    if (!d)
        return VG_ERR_NOMEM;
    d->be = be;
    vg_status st = be->create ? be->create(&d->state, cfg) : VG_OK;
    if (st != VG_OK) {
        free(d);
        return st;
    }
    *out = d;
    return VG_OK;
}

void vg_detector_destroy(struct vg_detector *d)
{
    if (!d)
        return;
    if (d->be->destroy)
        d->be->destroy(d->state);
    free(d);
}

const char *vg_detector_name(const struct vg_detector *d) { return d->be->name; }

vg_status vg_detector_run(struct vg_detector *d, const Vigil__V1__Frame *frame,
                          struct vg_label *labels, size_t max, size_t *n)
{
    *n = 0;
    return d->be->detect(d->state, frame, labels, max, n);
}
