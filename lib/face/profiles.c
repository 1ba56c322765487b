#include "face/profiles.h"

#include <stdlib.h>
#include <string.h>

vg_status vg_profile_set(struct vg_profile *p, const char *key, const char *value)
{
    if (strlen(key) >= VG_PROFILE_KEY_MAX || strlen(value) >= VG_PROFILE_VALUE_MAX)
        return vg_errf(VG_ERR_TOO_LARGE, "profile %s: key up to %d, value up to %d bytes", key,
                       VG_PROFILE_KEY_MAX - 1, VG_PROFILE_VALUE_MAX - 1);
    size_t i = 0;
    while (i < p->n && strcmp(p->key[i], key))
        i++;
    if (i == p->n) {
        if (p->n == VG_PROFILE_MAX_FIELDS)
            return vg_errf(VG_ERR_TOO_LARGE, "a profile has at most %d fields",
                           VG_PROFILE_MAX_FIELDS);
        p->n++;
    }
    strcpy(p->key[i], key);
    strcpy(p->value[i], value);
    return VG_OK;
}

const char *vg_profile_get(const struct vg_profile *p, const char *key)
{
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->key[i], key))
            return p->value[i];
    return NULL;
}

vg_status vg_profiles_open(struct vg_profiles **out, const struct vg_face_env *env)
{
    struct vg_profiles *p = calloc(1, sizeof(*p));
    if (!p)
        return VG_ERR_NOMEM;
    p->ops = env->cfg->facematch.profiles == VG_PROFILES_DYNAMODB ? &vg_profiles_dynamodb
                                                                  : &vg_profiles_redis;
    vg_status st = p->ops->init(&p->state, env);
    if (st != VG_OK) {
        const char *name = p->ops->name;
        free(p);
        return vg_errf(st, "profiles (%s): %s", name, vg_err_detail());
    }
    *out = p;
    return VG_OK;
}

void vg_profiles_close(struct vg_profiles *p)
{
    if (!p)
        return;
    if (p->ops->cleanup)
        p->ops->cleanup(p->state);
    free(p);
}
