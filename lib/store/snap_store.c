/* The snapshot store seam: the backend of store.snapshots, the key layout
 * and the checks every ref goes through before a backend sees it. */
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "metrics.h"
#include "store/store_internal.h"
#include "yamltree.h"

static const struct vg_snap_ops *const snap_types[] = {&vg_snap_fs, &vg_snap_s3, NULL};

struct snap_common {
    char type[32];
};

static const struct vg_opt snap_common_opts[] = {
    VG_OPT_STR_("type", struct snap_common, type, "fs", NULL, 0, "fs (default) or s3"),
    VG_OPT_END,
};

struct vg_snap_store {
    const struct vg_snap_ops *ops;
    void *state;
    struct vg_counter *puts, *put_errors, *pruned;
    alignas(max_align_t) unsigned char settings[VG_STORE_SETTINGS_MAX];
};

/* ---- shared helpers ------------------------------------------------------ */

int vg_store_token_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 128 || s[0] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '-' || c == '.'))
            return 0;
    }
    return strstr(s, "..") == NULL;
}

const char *vg_store_map_scalar(const struct vg_ynode *map, const char *key)
{
    for (size_t i = 0; map && map->type == VG_Y_MAP && i < map->n; i++)
        if (!strcmp(map->keys[i], key) && map->items[i]->type == VG_Y_SCALAR)
            return map->items[i]->scalar;
    return NULL;
}

vg_status vg_store_section(const struct vg_config *cfg, const char *name,
                           struct vg_ynode **root, const struct vg_ynode **map)
{
    const struct vg_ynode *store = NULL;
    *map = NULL;
    vg_status st = vg_cfg_section(cfg, "store", root, &store);
    if (st != VG_OK || !store)
        return st;
    if (store->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: store must be a mapping (snapshots, metadata)",
                       cfg->source, store->line);
    for (size_t i = 0; i < store->n; i++) {
        if (strcmp(store->keys[i], "snapshots") && strcmp(store->keys[i], "metadata"))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: store.%s: unknown key (known: snapshots, "
                           "metadata)", cfg->source,
                           store->key_lines ? store->key_lines[i] : store->line,
                           store->keys[i]);
        if (!strcmp(store->keys[i], name))
            *map = store->items[i];
    }
    if (*map && (*map)->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: store.%s must be a mapping (type: ...)",
                       cfg->source, (*map)->line, name);
    return VG_OK;
}

vg_status vg_snap_key(const char *camera, int64_t capture_ts_us, const char *trace_id,
                      char *key, size_t cap)
{
    if (!vg_store_token_ok(camera))
        return vg_errf(VG_ERR_INVALID, "snapshot: camera id \"%.64s\" is not a token of "
                       "A-Z a-z 0-9 _ - . (no leading '.', no \"..\")", camera ? camera : "");
    if (!vg_store_token_ok(trace_id))
        return vg_errf(VG_ERR_INVALID, "snapshot: trace id \"%.64s\" is not a token of "
                       "A-Z a-z 0-9 _ - . (no leading '.', no \"..\")",
                       trace_id ? trace_id : "");
    if (capture_ts_us < 0)
        return vg_errf(VG_ERR_INVALID, "snapshot: negative capture time");
    time_t secs = (time_t)(capture_ts_us / 1000000);
    struct tm tm;
    gmtime_r(&secs, &tm);
    int n = snprintf(key, cap, "frames/%s/%04d/%02d/%02d/%02d/%s.jpg", camera,
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, trace_id);
    if (n < 0 || (size_t)n >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot: key longer than %zu bytes", cap);
    return VG_OK;
}

vg_status vg_snap_check_key(const char *key)
{
    if (!key || strncmp(key, "frames/", 7) != 0)
        return vg_errf(VG_ERR_INVALID, "snapshot key \"%.80s\" is not under frames/",
                       key ? key : "");
    if (strlen(key) > 512)
        return vg_errf(VG_ERR_INVALID, "snapshot key longer than 512 bytes");
    /* Segment by segment: no empty, "." or ".." one, only the token bytes. */
    for (const char *seg = key; *seg;) {
        size_t n = strcspn(seg, "/");
        if (n == 0 || (n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.'))
            return vg_errf(VG_ERR_INVALID, "snapshot key \"%.80s\" escapes the store", key);
        for (size_t i = 0; i < n; i++) {
            char c = seg[i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-' || c == '.'))
                return vg_errf(VG_ERR_INVALID, "snapshot key \"%.80s\": byte 0x%02x not "
                               "allowed", key, (unsigned char)c);
        }
        seg += n;
        if (*seg == '/' && !*++seg)
            return vg_errf(VG_ERR_INVALID, "snapshot key \"%.80s\" ends with '/'", key);
    }
    if (strstr(key, "..") != NULL)
        return vg_errf(VG_ERR_INVALID, "snapshot key \"%.80s\" escapes the store", key);
    return VG_OK;
}

vg_status vg_snap_ref_of_key(const char *key, char *ref, size_t cap)
{
    vg_status st = vg_snap_check_key(key);
    if (st != VG_OK)
        return st;
    int n = snprintf(ref, cap, "fs:%s", key);
    return n < 0 || (size_t)n >= cap ? vg_errf(VG_ERR_TOO_LARGE, "snapshot ref too long") : VG_OK;
}

/* ---- the seam ------------------------------------------------------------ */

static const struct vg_snap_ops *find_type(const char *name)
{
    for (int i = 0; snap_types[i]; i++)
        if (!strcmp(snap_types[i]->name, name))
            return snap_types[i];
    return NULL;
}

static vg_status bind(struct vg_snap_store *s, const struct vg_config *cfg,
                      const struct vg_ynode *map, char *where, size_t wcap)
{
    struct snap_common common;
    const char *names[8];
    char known[64];
    int n = 0;
    for (; snap_types[n] && n < 7; n++)
        names[n] = snap_types[n]->name;
    names[n] = NULL;
    vg_opts_join(names, known, sizeof(known));
    const char *type = vg_store_map_scalar(map, "type");
    snprintf(where, wcap, "%s:%d: store.snapshots", cfg->source[0] ? cfg->source : "config",
             map ? map->line : 0);
    if (!(s->ops = find_type(type ? type : "fs")))
        return vg_errf(VG_ERR_CONFIG, "%s: unknown type \"%s\" (known: %s)", where, type, known);
    if (s->ops->settings_size > sizeof(s->settings))
        return vg_errf(VG_ERR_CONFIG, "%s: settings of %s too large", where, s->ops->name);
    memset(&common, 0, sizeof(common));
    vg_opts_defaults(snap_common_opts, &common);
    vg_opts_defaults(s->ops->opts, s->settings);
    vg_status st = map ? vg_opts_bind_pair(snap_common_opts, &common, s->ops->opts, s->settings,
                                           map, cfg->source, "store.snapshots.")
                       : VG_OK;
    if (st == VG_OK)
        st = vg_opts_apply_env(s->ops->opts, s->settings);
    return st;
}

vg_status vg_snap_store_open(struct vg_snap_store **out, const struct vg_config *cfg)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *map = NULL;
    char where[VG_URL_MAX + 64];
    struct vg_snap_store *s = calloc(1, sizeof(*s));
    if (!s)
        return VG_ERR_NOMEM;
    vg_status st = vg_store_section(cfg, "snapshots", &root, &map);
    if (st == VG_OK)
        st = bind(s, cfg, map, where, sizeof(where));
    vg_yaml_free(root);
    if (st == VG_OK && (st = s->ops->open(&s->state, s->settings, cfg, where)) != VG_OK) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s", vg_err_detail());
        st = vg_errf(st, "snapshot store (%s): %s", s->ops->name, detail);
    }
    if (st != VG_OK) {
        free(s);
        return st;
    }
    s->puts = vg_counter_get("vigil_store_snapshots_put_total", "Snapshots stored");
    s->put_errors = vg_counter_get("vigil_store_snapshot_errors_total",
                                   "Snapshots that could not be stored");
    s->pruned = vg_counter_get("vigil_store_snapshots_pruned_total",
                               "Snapshots deleted by retention");
    *out = s;
    return VG_OK;
}

int vg_snap_store_configured(const struct vg_config *cfg)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *map = NULL;
    vg_status st = vg_store_section(cfg, "snapshots", &root, &map);
    int yes = st != VG_OK || map != NULL || cfg->dispatch.snapshot_dir[0];
    vg_yaml_free(root);
    return yes;     /* a broken section counts: open then says what is wrong */
}

void vg_snap_store_close(struct vg_snap_store *s)
{
    if (!s)
        return;
    if (s->ops->close)
        s->ops->close(s->state);
    free(s);
}

const char *vg_snap_store_type(const struct vg_snap_store *s)
{
    return s ? s->ops->name : "";
}

vg_status vg_snap_put(struct vg_snap_store *s, const char *camera, int64_t capture_ts_us,
                      const char *trace_id, const uint8_t *jpeg, size_t len, char *ref,
                      size_t cap)
{
    char key[512];
    vg_status st = vg_snap_key(camera, capture_ts_us, trace_id, key, sizeof(key));
    if (st == VG_OK && (!jpeg || len == 0))
        st = vg_errf(VG_ERR_INVALID, "snapshot: empty image");
    if (st == VG_OK)
        st = s->ops->put(s->state, key, jpeg, len, ref, cap);
    vg_counter_inc(st == VG_OK ? s->puts : s->put_errors);
    return st;
}

/* A ref this store may resolve: its scheme, no NUL tricks, bounded. */
static vg_status check_ref(const struct vg_snap_store *s, const char *ref)
{
    size_t n = strlen(s->ops->ref_scheme);
    if (!ref || strncmp(ref, s->ops->ref_scheme, n) != 0)
        return vg_errf(VG_ERR_INVALID, "snapshot ref \"%.80s\" is not one of the %s store (%s...)",
                       ref ? ref : "", s->ops->name, s->ops->ref_scheme);
    if (strlen(ref) >= VG_SNAP_REF_MAX)
        return vg_errf(VG_ERR_INVALID, "snapshot ref longer than %d bytes", VG_SNAP_REF_MAX - 1);
    return VG_OK;
}

vg_status vg_snap_get(struct vg_snap_store *s, const char *ref, size_t max_bytes,
                      uint8_t **data, size_t *len)
{
    vg_status st = check_ref(s, ref);
    return st != VG_OK ? st : s->ops->get(s->state, ref, max_bytes, data, len);
}

vg_status vg_snap_link(struct vg_snap_store *s, const char *ref, char *url, size_t cap)
{
    vg_status st = check_ref(s, ref);
    return st != VG_OK ? st : s->ops->link(s->state, ref, url, cap);
}

vg_status vg_snap_prune(struct vg_snap_store *s, size_t *removed)
{
    size_t n = 0;
    vg_status st = s->ops->prune ? s->ops->prune(s->state, &n) : VG_OK;
    vg_counter_add(s->pruned, n);
    if (removed)
        *removed = n;
    return st;
}
