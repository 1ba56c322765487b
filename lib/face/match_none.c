/* none: no face library; every face is unknown. The default until a
 * matcher is configured, so consumers of identities still see each face. */
#include "face/matcher.h"

static vg_status none_init(void **state, const void *settings, const struct vg_face_env *env)
{
    (void)settings;
    (void)env;
    *state = NULL;
    return VG_OK;
}

static vg_status none_match(void *state, const struct vg_face_image *img,
                            struct vg_face_match *out)
{
    (void)state;
    (void)img;
    out->matched = 0;
    return VG_OK;
}

const struct vg_face_matcher_ops vg_face_none = {
    .name = "none",
    .init = none_init,
    .match = none_match,
};
