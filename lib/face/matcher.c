/* The configured face matcher: its settings from `matchers.<name>`. */
#include "face/matcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yamltree.h"

static vg_status bind(const struct vg_config *cfg, const struct vg_face_matcher_ops **ops_out,
                      void **settings_out)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *section = NULL, *node = NULL;
    const char *file = cfg->source[0] ? cfg->source : "configuration";
    const char *name = cfg->facematch.matcher[0] ? cfg->facematch.matcher : "none";
    char names[256], where[VG_URL_MAX + 64];
    void *settings = NULL;

    vg_face_matcher_names(names, sizeof(names));
    const struct vg_face_matcher_ops *ops = vg_face_matcher_find(name);
    if (!ops)
        return vg_errf(VG_ERR_CONFIG, "facematch.matcher \"%s\": no such matcher (known: %s)",
                       name, names);
    vg_status st = vg_cfg_section(cfg, "matchers", &root, &section);
    for (size_t i = 0; st == VG_OK && section && i < section->n; i++) {
        if (!vg_face_matcher_find(section->keys[i]))
            st = vg_errf(VG_ERR_CONFIG, "%s:%d: matchers.%s: no such matcher (known: %s)", file,
                         section->key_lines[i], section->keys[i], names);
        else if (!strcmp(section->keys[i], name))
            node = section->items[i];
    }
    if (st == VG_OK && !ops->opts && node && node->type == VG_Y_MAP && node->n > 0)
        st = vg_errf(VG_ERR_CONFIG, "%s:%d: matcher %s has no settings", file, node->line, name);
    if (st == VG_OK && ops->opts) {
        snprintf(where, sizeof(where), "matchers.%s.", name);
        if (!(settings = calloc(1, ops->settings_size)))
            st = VG_ERR_NOMEM;
        else
            st = vg_opts_load(ops->opts, node, settings, file, where);
        snprintf(where, sizeof(where), "%s: matchers.%s", file, name);
        if (st == VG_OK && ops->check)
            st = ops->check(settings, where);
    }
    vg_yaml_free(root);
    if (st != VG_OK) {
        free(settings);
        return st;
    }
    *ops_out = ops;
    *settings_out = settings;
    return VG_OK;
}

vg_status vg_face_matcher_check(const struct vg_config *cfg)
{
    const struct vg_face_matcher_ops *ops = NULL;
    void *settings = NULL;
    vg_status st = bind(cfg, &ops, &settings);
    free(settings);
    return st;
}

vg_status vg_face_matcher_open(struct vg_face_matcher **out, const struct vg_face_env *env)
{
    struct vg_face_matcher *m = calloc(1, sizeof(*m));
    if (!m)
        return VG_ERR_NOMEM;
    vg_status st = bind(env->cfg, &m->ops, &m->settings);
    if (st == VG_OK && (st = m->ops->init(&m->state, m->settings, env)) != VG_OK)
        st = vg_errf(st, "matcher %s: %s", m->ops->name, vg_err_detail());
    if (st != VG_OK) {
        free(m->settings);
        free(m);
        return st;
    }
    *out = m;
    return VG_OK;
}

void vg_face_matcher_close(struct vg_face_matcher *m)
{
    if (!m)
        return;
    if (m->ops->cleanup)
        m->ops->cleanup(m->state);
    free(m->settings);
    free(m);
}
