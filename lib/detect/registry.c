/* The detector registry: adding a backend is one file and one line here. */
#include <stdio.h>
#include <string.h>

#include "detect/detector.h"

extern const struct vg_detector_backend vg_detector_motion;
extern const struct vg_detector_backend vg_detector_opencv;
extern const struct vg_detector_backend vg_detector_rekognition;
extern const struct vg_detector_backend vg_detector_deepstack;

const struct vg_detector_backend *const vg_detector_backends[] = {
    &vg_detector_motion,
    &vg_detector_opencv,
    &vg_detector_rekognition,
    &vg_detector_deepstack,
    NULL,
};

const struct vg_detector_backend *vg_detector_find(const char *name)
{
    for (size_t i = 0; vg_detector_backends[i]; i++)
        if (!strcmp(vg_detector_backends[i]->name, name))
            return vg_detector_backends[i];
    return NULL;
}

void vg_detector_names(char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (size_t i = 0; vg_detector_backends[i] && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s", i ? ", " : "",
                         vg_detector_backends[i]->name);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}
