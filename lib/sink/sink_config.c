/* The keys every sink has, whatever its type, and the binding of one
 * notifier.sinks entry: common keys and the type's own keys share one map. */
#include "sink/sink.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "yamltree.h"

static const struct vg_opt common_opts[] = {
    VG_OPT_STR_("name", struct vg_sink_cfg, name, "", NULL, 0,
                "unique; names the sink's JetStream consumer and its idempotency keys"),
    VG_OPT_STR_("type", struct vg_sink_cfg, type, "", NULL, 0, "a registered sink type"),
    VG_OPT_INT_("timeout_ms", struct vg_sink_cfg, timeout_ms, 0, 600000, "0",
                "longest single attempt (0: the type's default)"),
    VG_OPT_INT_("retries", struct vg_sink_cfg, retries, 0, 10, "2",
                "quick retries of a transient failure before handing the alert back"),
    VG_OPT_INT_("backoff_ms", struct vg_sink_cfg, backoff_ms, 1, 60000, "200",
                "first quick-retry delay; doubles, with full jitter"),
    VG_OPT_INT_("redeliver_min_s", struct vg_sink_cfg, redeliver_min_s, 1, 3600, "2",
                "first JetStream redelivery delay after a transient failure; doubles"),
    VG_OPT_INT_("redeliver_max_s", struct vg_sink_cfg, redeliver_max_s, 1, 86400, "300",
                "longest redelivery delay (a Retry-After may ask for up to an hour)"),
    VG_OPT_END,
};

/* Sink names become part of durable consumer names and Redis keys. */
static int name_ok(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_' && *s != '-')
            return 0;
    return 1;
}

static const char *map_scalar(const struct vg_ynode *map, const char *key)
{
    for (size_t i = 0; map && map->type == VG_Y_MAP && i < map->n; i++)
        if (!strcmp(map->keys[i], key) && map->items[i]->type == VG_Y_SCALAR)
            return map->items[i]->scalar;
    return NULL;
}

/* "VIGIL_SINK_" + the name in upper case, '-' as '_', + "_". */
static void env_prefix(char *out, size_t cap, const char *name)
{
    size_t n = (size_t)snprintf(out, cap, "VIGIL_SINK_");
    for (; *name && n + 2 < cap; name++)
        out[n++] = *name == '-' ? '_' : (char)toupper((unsigned char)*name);
    out[n++] = '_';
    out[n] = '\0';
}

vg_status vg_sink_cfg_bind(struct vg_sink_cfg *s, const struct vg_ynode *map, const char *file)
{
    char known[256], where[160], prefix[64];
    const char *type = map_scalar(map, "type");
    int line = map ? map->line : 0;

    memset(s, 0, sizeof(*s));
    s->line = line;
    if (!map || map->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: a sink must be a mapping (name, type, ...)", file,
                       line);
    vg_sink_type_names(known, sizeof(known));
    if (!type)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: sink needs a type (known: %s)", file, line, known);
    if (!(s->ops = vg_sink_find(type)))
        return vg_errf(VG_ERR_CONFIG, "%s:%d: sink \"%s\" has unknown type \"%s\" (known: %s)",
                       file, line, map_scalar(map, "name") ? map_scalar(map, "name") : "?",
                       type, known);
    if (s->ops->settings_size > sizeof(s->settings))
        return vg_errf(VG_ERR_CONFIG, "sink type %s: settings too large", type);
    vg_opts_defaults(common_opts, s);
    vg_opts_defaults(s->ops->opts, s->settings);
    vg_status st = vg_opts_bind_pair(common_opts, s, s->ops->opts, s->settings, map, file,
                                     "sinks.");
    if (st != VG_OK)
        return st;
    if (!name_ok(s->name))
        return vg_errf(VG_ERR_CONFIG,
                       "%s:%d: sink needs a name of letters, digits, '-' and '_' (\"%s\")", file,
                       line, s->name);
    if (s->timeout_ms == 0)
        s->timeout_ms = s->ops->default_timeout_ms;
    if (s->redeliver_max_s < s->redeliver_min_s)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: sink %s: redeliver_max_s %d is below "
                       "redeliver_min_s %d", file, line, s->name, s->redeliver_max_s,
                       s->redeliver_min_s);
    env_prefix(prefix, sizeof(prefix), s->name);
    if ((st = vg_opts_apply_env_prefixed(s->ops->opts, s->settings, prefix)) != VG_OK)
        return st;
    snprintf(where, sizeof(where), "%s:%d: sink %s", file, line, s->name);
    return s->ops->check ? s->ops->check(s->settings, where) : VG_OK;
}
