/* The clip provider registry and the binding of `clips:`: the common keys
 * and the provider's own share one map. See clip.h. */
#include "clip/clip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yamltree.h"

extern const struct vg_clip_ops vg_clip_local;
extern const struct vg_clip_ops vg_clip_kvs;

const struct vg_clip_ops *const vg_clip_providers[] = {
    &vg_clip_local,
    &vg_clip_kvs,
    NULL,
};

static const struct vg_opt common_opts[] = {
    {"type", VG_OPT_STR, offsetof(struct vg_clip_common, type),
     sizeof(((struct vg_clip_common *)0)->type), 0, 0, "local", NULL, "VIGIL_CLIPS_TYPE", 0,
     "clip provider: local (the console, from the recording) or kvs (Kinesis Video HLS)"},
    VG_OPT_INT_("pre_roll_s", struct vg_clip_common, pre_roll_s, 0, VG_CLIP_MAX_PRE_S, "5",
                "the clip starts this many seconds before the detection"),
    VG_OPT_INT_("length_s", struct vg_clip_common, length_s, 1, VG_CLIP_MAX_LENGTH_S, "30",
                "the clip's length in seconds, from its start"),
    VG_OPT_END,
};

struct vg_clip_provider {
    const struct vg_clip_ops *ops;
    struct vg_clip_common common;
    void *settings;
    void *state;
};

const struct vg_clip_ops *vg_clip_provider_find(const char *name)
{
    for (int i = 0; vg_clip_providers[i]; i++)
        if (!strcmp(vg_clip_providers[i]->name, name))
            return vg_clip_providers[i];
    return NULL;
}

static void names(char *out, size_t cap)
{
    const char *list[8];
    int n = 0;
    for (; vg_clip_providers[n] && n < 7; n++)
        list[n] = vg_clip_providers[n]->name;
    list[n] = NULL;
    vg_opts_join(list, out, cap);
}

static const char *map_scalar(const struct vg_ynode *map, const char *key)
{
    for (size_t i = 0; map && map->type == VG_Y_MAP && i < map->n; i++)
        if (!strcmp(map->keys[i], key) && map->items[i]->type == VG_Y_SCALAR)
            return map->items[i]->scalar;
    return NULL;
}

/* The type first (it decides which table the other keys belong to), then
 * both tables over the one map, then the environment. */
static vg_status bind(struct vg_clip_provider *p, const struct vg_config *cfg)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *map = NULL;
    const char *file = cfg->source[0] ? cfg->source : "configuration";
    char known[128], where[VG_URL_MAX + 32];

    vg_status st = vg_cfg_section(cfg, "clips", &root, &map);
    if (st != VG_OK)
        return st;
    vg_opts_defaults(common_opts, &p->common);
    const char *type = map_scalar(map, "type");
    const char *env = getenv("VIGIL_CLIPS_TYPE");
    if (env && *env)
        type = env;
    if (type && strlen(type) < sizeof(p->common.type))
        snprintf(p->common.type, sizeof(p->common.type), "%s", type);
    names(known, sizeof(known));
    if (!(p->ops = vg_clip_provider_find(type ? type : p->common.type))) {
        st = vg_errf(VG_ERR_CONFIG, "%s: clips.type \"%.32s\": no such clip provider (known: %s)",
                     file, type ? type : "", known);
        goto out;
    }
    if (p->ops->settings_size && !(p->settings = calloc(1, p->ops->settings_size))) {
        st = VG_ERR_NOMEM;
        goto out;
    }
    if (p->ops->opts)
        vg_opts_defaults(p->ops->opts, p->settings);
    if ((st = vg_opts_bind_pair(common_opts, &p->common, p->ops->opts, p->settings, map, file,
                                "clips.")) != VG_OK ||
        (st = vg_opts_apply_env(common_opts, &p->common)) != VG_OK ||
        (st = vg_opts_apply_env(p->ops->opts, p->settings)) != VG_OK)
        goto out;
    snprintf(where, sizeof(where), "%s: clips (type %s)", file, p->ops->name);
    if (p->ops->check)
        st = p->ops->check(p->settings, where);
out:
    vg_yaml_free(root);
    return st;
}

vg_status vg_clip_open(struct vg_clip_provider **out, const struct vg_config *cfg)
{
    struct vg_clip_provider *p = calloc(1, sizeof(*p));
    if (!p)
        return VG_ERR_NOMEM;
    vg_status st = bind(p, cfg);
    if (st == VG_OK && (st = p->ops->init(&p->state, p->settings, cfg)) != VG_OK)
        st = vg_errf(st, "clips %s: %s", p->ops->name, vg_err_detail());
    if (st != VG_OK) {
        free(p->settings);
        free(p);
        return st;
    }
    *out = p;
    return VG_OK;
}

void vg_clip_close(struct vg_clip_provider *p)
{
    if (!p)
        return;
    if (p->ops->cleanup)
        p->ops->cleanup(p->state);
    free(p->settings);
    free(p);
}

const char *vg_clip_type(const struct vg_clip_provider *p)
{
    return p->ops->name;
}

const struct vg_clip_common *vg_clip_common(const struct vg_clip_provider *p)
{
    return &p->common;
}

vg_status vg_clip_link(struct vg_clip_provider *p, const struct vg_camera_cfg *cam,
                       int64_t detect_us, char *url, size_t cap)
{
    if (!p || !cam || detect_us <= 0 || !url || !cap)
        return vg_errf(VG_ERR_INVALID, "clip link: no provider, camera or detection time");
    return p->ops->link(p->state, &p->common, cam, detect_us, url, cap);
}

int vg_clip_covers(struct vg_clip_provider *p, const struct vg_camera_cfg *cam)
{
    return p && cam && p->ops->covers(p->state, cam);
}

int vg_clip_camera_records(const struct vg_config *cfg, const struct vg_camera_cfg *cam)
{
    return cam->record > 0 || (cam->record < 0 && cfg->recording.enabled);
}
