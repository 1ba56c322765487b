/* Routing rules: loading the "routing" section and deciding one alert for
 * one sink, with the reason when it is not sent. */
#include "routing.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "opts.h"
#include "tz.h"
#include "yamltree.h"

static const char *const builtin_modes[] = {"off", "home", "away", NULL};
static const char *const day_names[] = {"sun", "mon", "tue", "wed", "thu", "fri", "sat", NULL};

struct ld {
    struct vg_routing *r;
    const struct vg_config *cfg;
    const char *file;
};

/* ---- loading ---- */

static vg_status add_mode(struct vg_routing *r, const char *name, const char *file, int line)
{
    if (vg_routing_mode(r, name) >= 0)
        return VG_OK;
    size_t len = strlen(name);
    if (len == 0 || len >= VG_ROUTE_MODE_MAX || strspn(name, "abcdefghijklmnopqrstuvwxyz"
                                                       "0123456789_-") != len)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: mode \"%s\" must be 1..%d of a-z, "
                       "0-9, '_' and '-'", file, line, name, VG_ROUTE_MODE_MAX - 1);
    if (r->n_modes >= VG_ROUTE_MAX_MODES)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: at most %d modes", file, line,
                       VG_ROUTE_MAX_MODES);
    snprintf(r->modes[r->n_modes++], VG_ROUTE_MODE_MAX, "%s", name);
    return VG_OK;
}

/* Each scalar of a sequence, or of a comma-separated scalar, in turn. */
typedef vg_status (*item_fn)(struct ld *l, void *ud, const char *item, int line);

static vg_status each_item(struct ld *l, const struct vg_ynode *n, const char *what, item_fn fn,
                           void *ud)
{
    char buf[256];
    if (n->type == VG_Y_SEQ) {
        for (size_t i = 0; i < n->n; i++) {
            if (n->items[i]->type != VG_Y_SCALAR)
                return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: %s takes names", l->file,
                               n->items[i]->line, what);
            vg_status st = fn(l, ud, n->items[i]->scalar, n->items[i]->line);
            if (st != VG_OK)
                return st;
        }
        return VG_OK;
    }
    if (n->type != VG_Y_SCALAR)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: %s takes a list", l->file, n->line, what);
    const char *p = n->scalar;
    while (*p) {
        size_t len = strcspn(p, ",");
        const char *s = p;
        while (len && *s == ' ')
            s++, len--;
        while (len && s[len - 1] == ' ')
            len--;
        if (len >= sizeof(buf))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: an item of %s is too long (%zu "
                           "bytes)", l->file, n->line, what, len);
        if (len) {
            memcpy(buf, s, len);
            buf[len] = '\0';
            vg_status st = fn(l, ud, buf, n->line);
            if (st != VG_OK)
                return st;
        }
        p += strcspn(p, ",");
        if (*p)
            p++;
    }
    return VG_OK;
}

struct list_ud {
    struct vg_route_list *list;
    const char *what;
};

static vg_status add_list_item(struct ld *l, void *ud, const char *item, int line)
{
    struct list_ud *u = ud;
    if (u->list->n >= VG_ROUTE_MAX_ITEMS)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: at most %d %s in a rule", l->file, line,
                       VG_ROUTE_MAX_ITEMS, u->what);
    if (strlen(item) >= VG_ID_MAX)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: %s \"%s\" is too long", l->file, line,
                       u->what, item);
    snprintf(u->list->item[u->list->n++], VG_ID_MAX, "%s", item);
    return VG_OK;
}

static vg_status add_camera(struct ld *l, void *ud, const char *item, int line)
{
    if (!vg_cfg_camera(l->cfg, item))
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: camera \"%s\" is not configured",
                       l->file, line, item);
    return add_list_item(l, ud, item, line);
}

static vg_status add_rule_mode(struct ld *l, void *ud, const char *item, int line)
{
    unsigned *modes = ud;
    int m = vg_routing_mode(l->r, item);
    if (m < 0) {
        char known[256];
        vg_routing_mode_names(l->r, known, sizeof(known));
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: unknown mode \"%s\" (modes: %s; name "
                       "your own in routing.modes)", l->file, line, item, known);
    }
    *modes |= 1u << m;
    return VG_OK;
}

static vg_status add_sink(struct ld *l, void *ud, const char *item, int line)
{
    uint32_t *sinks = ud;
    for (int i = 0; i < l->cfg->notifier.n_sinks; i++)
        if (!strcmp(l->cfg->notifier.sinks[i].name, item)) {
            *sinks |= 1u << i;
            return VG_OK;
        }
    return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: sink \"%s\" is not in notifier.sinks",
                   l->file, line, item);
}

static vg_status add_mode_item(struct ld *l, void *ud, const char *item, int line)
{
    (void)ud;
    return add_mode(l->r, item, l->file, line);
}

static vg_status add_day(struct ld *l, void *ud, const char *item, int line)
{
    unsigned *days = ud;
    if (!strcmp(item, "weekdays")) {
        *days |= 0x3e;
        return VG_OK;
    }
    if (!strcmp(item, "weekend")) {
        *days |= 0x41;
        return VG_OK;
    }
    for (int i = 0; day_names[i]; i++)
        if (!strncmp(item, day_names[i], 3) && strlen(item) >= 3) {
            *days |= 1u << i;
            return VG_OK;
        }
    return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: \"%s\" is not a day (mon .. sun, weekdays, "
                   "weekend)", l->file, line, item);
}

static vg_status parse_hhmm(struct ld *l, const struct vg_ynode *n, int *out)
{
    int h, m, used = 0;
    if (n->type != VG_Y_SCALAR || sscanf(n->scalar, "%d:%d%n", &h, &m, &used) != 2 ||
        n->scalar[used] || h < 0 || h > 24 || m < 0 || m > 59 || (h == 24 && m))
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: a time is \"HH:MM\" (00:00 .. 24:00)",
                       l->file, n->line);
    *out = h * 60 + m;
    return VG_OK;
}

/* days / from / to of one map (a rule, or its quiet_hours). */
static vg_status span_key(struct ld *l, struct vg_route_span *s, const char *key,
                          const struct vg_ynode *v, int *handled)
{
    *handled = 1;
    if (!strcmp(key, "days")) {
        s->set = 1;
        return each_item(l, v, "days", add_day, &s->days);
    }
    if (!strcmp(key, "from")) {
        s->set = 1;
        return parse_hhmm(l, v, &s->from_min);
    }
    if (!strcmp(key, "to")) {
        s->set = 1;
        return parse_hhmm(l, v, &s->to_min);
    }
    *handled = 0;
    return VG_OK;
}

static vg_status load_quiet(struct ld *l, struct vg_route_span *s, const struct vg_ynode *n)
{
    if (n->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: quiet_hours is a map (days, from, to)",
                       l->file, n->line);
    for (size_t i = 0; i < n->n; i++) {
        int handled;
        vg_status st = span_key(l, s, n->keys[i], n->items[i], &handled);
        if (st != VG_OK)
            return st;
        if (!handled)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: quiet_hours has days, from and to, "
                           "not \"%s\"", l->file, n->key_lines[i], n->keys[i]);
    }
    return VG_OK;
}

static vg_status rule_key(struct ld *l, struct vg_route_rule *ru, const char *key,
                          const struct vg_ynode *v, int line)
{
    struct list_ud u = {NULL, key};
    int handled;
    vg_status st = span_key(l, &ru->when, key, v, &handled);
    if (handled)
        return st;
    if (!strcmp(key, "name")) {
        if (v->type != VG_Y_SCALAR || strlen(v->scalar) >= sizeof(ru->name))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: a rule's name is a short text",
                           l->file, line);
        snprintf(ru->name, sizeof(ru->name), "%s", v->scalar);
        return VG_OK;
    }
    if (!strcmp(key, "modes"))
        return each_item(l, v, key, add_rule_mode, &ru->modes);
    if (!strcmp(key, "sinks"))
        return each_item(l, v, key, add_sink, &ru->sinks);
    if (!strcmp(key, "quiet_hours"))
        return load_quiet(l, &ru->quiet, v);
    if (!strcmp(key, "persons")) {
        static const char *const values[] = {"any", "known", "unknown", NULL};
        for (int i = 0; v->type == VG_Y_SCALAR && values[i]; i++)
            if (!strcmp(v->scalar, values[i])) {
                ru->persons = i;
                return VG_OK;
            }
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: persons is any, known or unknown",
                       l->file, line);
    }
    if (!strcmp(key, "cameras")) {
        u.list = &ru->cameras;
        return each_item(l, v, key, add_camera, &u);
    }
    if (!strcmp(key, "labels"))
        u.list = &ru->labels;
    else if (!strcmp(key, "person_ids"))
        u.list = &ru->person_ids;
    else if (!strcmp(key, "zones"))
        u.list = &ru->zones;
    else
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: a rule has no key \"%s\" (name, modes, "
                       "cameras, labels, persons, person_ids, zones, days, from, to, "
                       "quiet_hours, sinks)", l->file, line, key);
    return each_item(l, v, key, add_list_item, &u);
}

static vg_status load_rule(struct ld *l, const struct vg_ynode *n)
{
    struct vg_routing *r = l->r;
    if (n->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: a rule is a map", l->file, n->line);
    if (r->n_rules >= VG_ROUTE_MAX_RULES)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: at most %d rules", l->file, n->line,
                       VG_ROUTE_MAX_RULES);
    struct vg_route_rule *ru = &r->rules[r->n_rules];
    memset(ru, 0, sizeof(*ru));
    ru->line = n->line;
    snprintf(ru->name, sizeof(ru->name), "rule %d", r->n_rules + 1);
    for (size_t i = 0; i < n->n; i++) {
        vg_status st = rule_key(l, ru, n->keys[i], n->items[i], n->key_lines[i]);
        if (st != VG_OK)
            return st;
    }
    if (!ru->sinks)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing: %s sends to no sink (sinks: [...])",
                       l->file, n->line, ru->name);
    if (ru->when.set && !ru->when.days)
        ru->when.days = 0x7f;
    if (ru->quiet.set && !ru->quiet.days)
        ru->quiet.days = 0x7f;
    r->routed |= ru->sinks;
    r->n_rules++;
    return VG_OK;
}

static vg_status load_section(struct ld *l, const struct vg_ynode *n)
{
    struct vg_routing *r = l->r;
    const struct vg_ynode *rules = NULL, *mode = NULL;
    vg_status st;
    if (n->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing is a map (mode, modes, rules)", l->file,
                       n->line);
    for (size_t i = 0; i < n->n; i++) {
        const char *k = n->keys[i];
        if (!strcmp(k, "modes")) {
            if ((st = each_item(l, n->items[i], "modes", add_mode_item, NULL)) != VG_OK)
                return st;
        } else if (!strcmp(k, "rules"))
            rules = n->items[i];
        else if (!strcmp(k, "mode"))
            mode = n->items[i];
        else
            return vg_errf(VG_ERR_CONFIG, "%s:%d: routing has mode, modes and rules, not \"%s\"",
                           l->file, n->key_lines[i], k);
    }
    if (mode) {
        r->default_mode = mode->type == VG_Y_SCALAR ? vg_routing_mode(r, mode->scalar) : -1;
        if (r->default_mode < 0) {
            char known[256];
            vg_routing_mode_names(r, known, sizeof(known));
            return vg_errf(VG_ERR_CONFIG, "%s:%d: routing.mode must be one of %s", l->file,
                           mode->line, known);
        }
    }
    if (rules && rules->type != VG_Y_SEQ)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: routing.rules is a list", l->file, rules->line);
    for (size_t i = 0; rules && i < rules->n; i++)
        if ((st = load_rule(l, rules->items[i])) != VG_OK)
            return st;
    return VG_OK;
}

vg_status vg_routing_load(struct vg_routing *r, const struct vg_config *cfg)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *sec = NULL;
    memset(r, 0, sizeof(*r));
    for (int i = 0; builtin_modes[i]; i++)
        snprintf(r->modes[r->n_modes++], VG_ROUTE_MODE_MAX, "%s", builtin_modes[i]);
    r->default_mode = 1;    /* home */
    vg_status st = vg_cfg_section(cfg, "routing", &root, &sec);
    if (st == VG_OK && sec) {
        struct ld l = {r, cfg, cfg->source};
        st = load_section(&l, sec);
    }
    vg_yaml_free(root);
    return st;
}

int vg_routing_mode(const struct vg_routing *r, const char *name)
{
    for (int i = 0; name && i < r->n_modes; i++)
        if (!strcmp(r->modes[i], name))
            return i;
    return -1;
}

void vg_routing_mode_names(const struct vg_routing *r, char *out, size_t cap)
{
    const char *names[VG_ROUTE_MAX_MODES + 1];
    for (int i = 0; i < r->n_modes; i++)
        names[i] = r->modes[i];
    names[r->n_modes] = NULL;
    vg_opts_join(names, out, cap);
}

/* ---- deciding ---- */

int vg_route_span_holds(const struct vg_route_span *s, const struct tm *tm)
{
    if (!s->set)
        return 1;
    int m = tm->tm_hour * 60 + tm->tm_min;
    unsigned today = 1u << tm->tm_wday, yesterday = 1u << ((tm->tm_wday + 6) % 7);
    if (s->from_min == s->to_min)       /* the whole day */
        return (s->days & today) != 0;
    if (s->from_min < s->to_min)
        return (s->days & today) && m >= s->from_min && m < s->to_min;
    /* Over midnight: the evening of a listed day, or the morning after one. */
    return ((s->days & today) && m >= s->from_min) || ((s->days & yesterday) && m < s->to_min);
}

static int in_list(const struct vg_route_list *l, const char *s)
{
    if (l->n == 0)
        return 1;
    for (int i = 0; s && i < l->n; i++)
        if (!strcmp(l->item[i], s))
            return 1;
    return 0;
}

static void list_text(const struct vg_route_list *l, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    for (int i = 0; i < l->n && n < cap; i++)
        n += (size_t)snprintf(out + n, cap - n, "%s%s", i ? ", " : "", l->item[i]);
}

static void span_text(const struct vg_route_span *s, char *out, size_t cap)
{
    char days[40] = "";
    size_t n = 0;
    if (s->days != 0x7f)
        for (int i = 0; i < 7; i++)
            if (s->days & (1u << i))
                n += (size_t)snprintf(days + n, sizeof(days) - n, "%s%s", n ? "," : "",
                                      day_names[i]);
    snprintf(out, cap, "%s%s%02d:%02d-%02d:%02d", days, days[0] ? " " : "", s->from_min / 60,
             s->from_min % 60, s->to_min / 60, s->to_min % 60);
}

/* Why rule ru does not take alert a, or NULL when its filters match. */
static const char *filter_miss(const struct vg_route_rule *ru, const Vigil__V1__Alert *a,
                               char *why, size_t cap)
{
    char list[200];
    const char *cam = a->header ? a->header->camera_id : "";
    int known = a->person_id && *a->person_id;
    if (!in_list(&ru->cameras, cam)) {
        list_text(&ru->cameras, list, sizeof(list));
        snprintf(why, cap, "camera %s is not one of %s", cam, list);
    } else if (!in_list(&ru->labels, a->label)) {
        list_text(&ru->labels, list, sizeof(list));
        snprintf(why, cap, "label %s is not one of %s", a->label, list);
    } else if ((ru->persons == VG_ROUTE_KNOWN && !known) ||
               (ru->persons == VG_ROUTE_UNKNOWN && known)) {
        snprintf(why, cap, "it wants %s people, this is %s",
                 ru->persons == VG_ROUTE_KNOWN ? "known" : "unknown",
                 known ? a->person_id : "nobody known");
    } else if (ru->person_ids.n && !(known && in_list(&ru->person_ids, a->person_id))) {
        list_text(&ru->person_ids, list, sizeof(list));
        snprintf(why, cap, "person %s is not one of %s", known ? a->person_id : "(unknown)",
                 list);
    } else {
        int hit = ru->zones.n == 0;
        for (size_t i = 0; !hit && i < a->n_zones; i++)
            hit = in_list(&ru->zones, a->zones[i]);
        if (hit)
            return NULL;
        list_text(&ru->zones, list, sizeof(list));
        snprintf(why, cap, "no zone of it is among %s", list);
    }
    return why;
}

enum stage { ST_MODE, ST_FILTER, ST_SCHEDULE, ST_QUIET, ST_SEND };

/* A note may be cut at VG_ROUTE_NOTE_MAX; that is fine for a sentence. */
static void note(struct vg_route_verdict *v, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void note(struct vg_route_verdict *v, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->note, sizeof(v->note), fmt, ap);
    va_end(ap);
}

void vg_route(const struct vg_routing *r, int sink, const char *sink_name, int mode,
              const Vigil__V1__Alert *a, int64_t now_us, struct vg_route_verdict *v)
{
    char why[200], span[64];
    struct tm tm;
    int best = -1;
    memset(v, 0, sizeof(*v));
    v->send = 1;
    if (sink < 0 || sink >= 32 || !(r->routed & (1u << sink)))
        return;
    int64_t ts = a->header && a->header->capture_ts_us > 0 ? a->header->capture_ts_us : now_us;
    vg_tz_local(ts, &tm);
    for (int i = 0; i < r->n_rules; i++) {
        const struct vg_route_rule *ru = &r->rules[i];
        enum stage st;
        if (!(ru->sinks & (1u << sink)))
            continue;
        if (ru->modes && (mode < 0 || !(ru->modes & (1u << mode))))
            st = ST_MODE;
        else if (filter_miss(ru, a, why, sizeof(why)))
            st = ST_FILTER;
        else if (!vg_route_span_holds(&ru->when, &tm))
            st = ST_SCHEDULE;
        else if (ru->quiet.set && vg_route_span_holds(&ru->quiet, &tm))
            st = ST_QUIET;
        else {
            memset(v, 0, sizeof(*v));
            v->send = 1;
            snprintf(v->rule, sizeof(v->rule), "%s", ru->name);
            return;
        }
        if ((int)st <= best)
            continue;
        best = (int)st;
        v->send = 0;
        switch (st) {
        case ST_MODE: {
            char modes[160];
            size_t n = 0;
            modes[0] = '\0';
            for (int m = 0; m < r->n_modes && n < sizeof(modes); m++)
                if (ru->modes & (1u << m))
                    n += (size_t)snprintf(modes + n, sizeof(modes) - n, "%s%s", n ? ", " : "",
                                          r->modes[m]);
            v->reason = "arm_mode";
            note(v, "arm mode is %s; %s sends to %s only in %s",
                     mode >= 0 ? r->modes[mode] : "unknown", ru->name, sink_name, modes);
            break;
        }
        case ST_FILTER:
            v->reason = "rule";
            note(v, "%s: %s", ru->name, why);
            break;
        case ST_SCHEDULE:
            span_text(&ru->when, span, sizeof(span));
            v->reason = "rule";
            note(v, "%s applies %s; it was %s %02d:%02d", ru->name,
                     span, day_names[tm.tm_wday], tm.tm_hour, tm.tm_min);
            break;
        case ST_QUIET:
            span_text(&ru->quiet, span, sizeof(span));
            v->reason = "quiet_hours";
            note(v, "%s: quiet hours %s (it was %02d:%02d)",
                     ru->name, span, tm.tm_hour, tm.tm_min);
            break;
        case ST_SEND:
            break;
        }
    }
}
