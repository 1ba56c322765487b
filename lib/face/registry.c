/* Every face matcher, in one NULL-terminated list. Adding one is one file
 * with its ops table and one line here. */
#include "face/matcher.h"

#include <string.h>

extern const struct vg_face_matcher_ops vg_face_none;
extern const struct vg_face_matcher_ops vg_face_local;
extern const struct vg_face_matcher_ops vg_face_rekognition;
extern const struct vg_face_matcher_ops vg_face_deepstack;

const struct vg_face_matcher_ops *const vg_face_matchers[] = {
    &vg_face_none,
    &vg_face_local,
    &vg_face_rekognition,
    &vg_face_deepstack,
    NULL,
};

const struct vg_face_matcher_ops *vg_face_matcher_find(const char *name)
{
    for (int i = 0; vg_face_matchers[i]; i++)
        if (!strcmp(vg_face_matchers[i]->name, name))
            return vg_face_matchers[i];
    return NULL;
}

void vg_face_matcher_names(char *out, size_t cap)
{
    const char *names[16];
    int n = 0;
    for (; vg_face_matchers[n] && n < 15; n++)
        names[n] = vg_face_matchers[n]->name;
    names[n] = NULL;
    vg_opts_join(names, out, cap);
}
