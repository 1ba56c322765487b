/* Profiles of known people, looked up after a match ("Alice is here — her
 * song: Last Christmas"): string attributes such as display_name, Bio, song.
 * Two stores behind one small ops table each (facematch.profiles):
 *   redis     hash <prefix>:faces:profile:<person_id> (the default)
 *   dynamodb  seed 002's table faces.profile_table, one item per FaceId
 *             (the matcher's id of an enrolled face) with ExternalImageId. */
#ifndef VG_FACE_PROFILES_H
#define VG_FACE_PROFILES_H

#include <stddef.h>

#include "face/matcher.h"
#include "status.h"

#define VG_PROFILE_MAX_FIELDS 16
#define VG_PROFILE_KEY_MAX 64
#define VG_PROFILE_VALUE_MAX 512

struct vg_profile {
    size_t n;
    char key[VG_PROFILE_MAX_FIELDS][VG_PROFILE_KEY_MAX];
    char value[VG_PROFILE_MAX_FIELDS][VG_PROFILE_VALUE_MAX];
};

/* Set (or replace) key; VG_ERR_TOO_LARGE when full or too long. */
vg_status vg_profile_set(struct vg_profile *p, const char *key, const char *value);
/* The value of key, or NULL. */
const char *vg_profile_get(const struct vg_profile *p, const char *key);

struct vg_profile_store_ops {
    const char *name;
    vg_status (*init)(void **state, const struct vg_face_env *env);
    /* The profile of a match: VG_ERR_NOT_FOUND when there is none. */
    vg_status (*get)(void *state, const char *person_id, const char *face_id,
                     struct vg_profile *out);
    /* Store person's profile, for each of the person's enrolled face ids. */
    vg_status (*put)(void *state, const char *person_id, const char *const *face_ids,
                     size_t n_faces, const struct vg_profile *p);
    /* Forget it (face ids as for put). */
    vg_status (*remove)(void *state, const char *person_id, const char *const *face_ids,
                        size_t n_faces);
    void (*cleanup)(void *state);
};

extern const struct vg_profile_store_ops vg_profiles_redis;
extern const struct vg_profile_store_ops vg_profiles_dynamodb;

struct vg_profiles {
    const struct vg_profile_store_ops *ops;
    void *state;
};

/* The store facematch.profiles names. */
vg_status vg_profiles_open(struct vg_profiles **out, const struct vg_face_env *env);
void vg_profiles_close(struct vg_profiles *p);

#endif
