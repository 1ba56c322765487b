#include "watch.h"

#include <string.h>

static int watched(const struct vg_camera_cfg *cam, const struct vg_label *l)
{
    if (cam->n_watch == 0)
        return 1;
    for (int i = 0; i < cam->n_watch; i++)
        if (!strcmp(cam->watch[i].label, l->name))
            return l->confidence >= cam->watch[i].min_confidence;
    return 0;
}

size_t disp_watch_filter(const struct vg_camera_cfg *cam, struct vg_label *labels, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++)
        if (watched(cam, &labels[i]))
            labels[kept++] = labels[i];
    return kept;
}
