/* The keys every sink has, whatever its type, and the binding of one
 * notifier.sinks entry: common keys and the type's own keys share one map. */
#include "sink/sink.h"

#include <ctype.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "yamltree.h"

static const char *const incident_values[] = {"default", "all", "first", "escalate", NULL};

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
    VG_OPT_ENUM_("incidents", struct vg_sink_cfg, incidents, incident_values, "default",
                 "alerts of one incident sent: all, first, or escalate (the first and at "
                 "most one escalation); default: escalate for phones and mail, all for the rest"),
    VG_OPT_STR_("rate_limit", struct vg_sink_cfg, rate_limit, "", NULL, 0,
                "at most N alerts per period, \"10/h\" (s, min, h, d); one summary tells "
                "of the alerts it held back"),
    VG_OPT_STR_("title", struct vg_sink_cfg, title, "", NULL, 0,
                "title template (subject, headline); \"\": the type's default"),
    VG_OPT_STR_("text", struct vg_sink_cfg, text, "", NULL, 0,
                "text template; \"\": the type's default"),
    VG_OPT_STR_("html", struct vg_sink_cfg, html, "", NULL, 0,
                "HTML template (smtp); \"\": the type's default"),
    VG_OPT_END,
};

static int key_line(const struct vg_ynode *map, const char *key)
{
    for (size_t i = 0; map->key_lines && i < map->n; i++)
        if (!strcmp(map->keys[i], key))
            return map->key_lines[i];
    return map->line;
}

/* "10/h", "5/min", "100/d", "1/30s" into count and period. */
static vg_status parse_rate(struct vg_sink_cfg *s, const char *where)
{
    static const struct {
        const char *unit;
        int secs;
    } units[] = {{"s", 1}, {"sec", 1}, {"min", 60}, {"m", 60}, {"h", 3600}, {"hour", 3600},
                 {"d", 86400}, {"day", 86400}};
    char *end = NULL;
    s->rate_count = s->rate_per_s = 0;
    if (!s->rate_limit[0])
        return VG_OK;
    long n = strtol(s->rate_limit, &end, 10);
    if (end == s->rate_limit || *end != '/' || n < 1 || n > 100000)
        goto bad;
    const char *p = end + 1;
    long mult = 1;
    if (*p >= '0' && *p <= '9') {
        mult = strtol(p, &end, 10);
        if (mult < 1 || mult > 86400)
            goto bad;
        p = end;
    }
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
        if (!strcmp(p, units[i].unit) && mult * units[i].secs <= 7 * 86400) {
            s->rate_count = (int)n;
            s->rate_per_s = (int)(mult * units[i].secs);
            return VG_OK;
        }
bad:
    return vg_errf(VG_ERR_CONFIG, "%s: rate_limit \"%s\" is not N/period (\"10/h\", "
                   "\"5/min\", \"100/d\", \"2/30s\"; at most a week)", where, s->rate_limit);
}

static vg_status check_templates(struct vg_sink_cfg *s, const struct vg_ynode *map,
                                 const char *file)
{
    char where[160];
    const struct {
        const char *key;
        const char *src;
        int *line;
    } t[] = {{"title", s->title, &s->title_line},
             {"text", s->text, &s->text_line},
             {"html", s->html, &s->html_line}};
    for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
        *t[i].line = key_line(map, t[i].key);
        snprintf(where, sizeof(where), "%s:%d: sink %s", file, *t[i].line, s->name);
        vg_status st = vg_tpl_check(t[i].src, where, t[i].key);
        if (st != VG_OK)
            return st;
    }
    return VG_OK;
}

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
    if (s->incidents == VG_SINK_INCIDENTS_DEFAULT)
        s->incidents = s->ops->default_incidents ? (int)s->ops->default_incidents
                                                 : VG_SINK_INCIDENTS_ALL;
    snprintf(where, sizeof(where), "%s:%d: sink %s", file, key_line(map, "rate_limit"), s->name);
    if ((st = parse_rate(s, where)) != VG_OK || (st = check_templates(s, map, file)) != VG_OK)
        return st;
    env_prefix(prefix, sizeof(prefix), s->name);
    if ((st = vg_opts_apply_env_prefixed(s->ops->opts, s->settings, prefix)) != VG_OK)
        return st;
    snprintf(where, sizeof(where), "%s:%d: sink %s", file, line, s->name);
    return s->ops->check ? s->ops->check(s->settings, where) : VG_OK;
}
