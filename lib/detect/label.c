/* Labels and boxes shared by every detector backend. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "detect/detector.h"

static const char *const category_names[VG_CAT__LAST] = {
    [VG_CAT_OTHER] = "other",     [VG_CAT_PERSON] = "person",   [VG_CAT_PET] = "pet",
    [VG_CAT_VEHICLE] = "vehicle", [VG_CAT_PACKAGE] = "package", [VG_CAT_FACE] = "face",
    [VG_CAT_MOTION] = "motion",
};

const char *vg_category_name(enum vg_category c)
{
    return c >= 0 && c < VG_CAT__LAST ? category_names[c] : "other";
}

int vg_category_parse(const char *s)
{
    for (int i = 0; i < VG_CAT__LAST; i++)
        if (!strcasecmp(category_names[i], s))
            return i;
    return -1;
}

float vg_unit(float v)
{
    return !(v >= 0) ? 0 : v > 1 ? 1 : v; /* NaN (a remote answer, a hostile frame) is 0 */
}

int vg_box_clip(struct vg_box *b)
{
    float x0 = b->x < 0 ? 0 : b->x, y0 = b->y < 0 ? 0 : b->y;
    float x1 = b->x + b->w > 1 ? 1 : b->x + b->w, y1 = b->y + b->h > 1 ? 1 : b->y + b->h;
    if (!(x1 > x0) || !(y1 > y0)) {
        memset(b, 0, sizeof(*b));
        return 0;
    }
    b->x = x0, b->y = y0, b->w = x1 - x0, b->h = y1 - y0;
    return 1;
}

struct vg_label *vg_detect_res_add(struct vg_detect_res *res, const char *raw,
                                   enum vg_category cat, float confidence,
                                   const struct vg_box *box)
{
    if (res->n >= VG_DETECT_MAX_LABELS)
        return NULL;
    struct vg_label *l = &res->labels[res->n++];
    memset(l, 0, sizeof(*l));
    snprintf(l->raw, sizeof(l->raw), "%s", raw);
    l->category = cat;
    l->confidence = vg_unit(confidence);
    if (box) {
        l->box = *box;
        vg_box_clip(&l->box);
    }
    return l;
}
