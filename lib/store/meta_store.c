/* The metadata store seam: the backend of store.metadata, the checks and
 * defaults every record and query goes through, and the frame fetcher. */
#include <stdalign.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "metrics.h"
#include "store/store_internal.h"
#include "timeutil.h"
#include "yamltree.h"

static const struct vg_meta_ops *const meta_types[] = {&vg_meta_redis, &vg_meta_dynamodb, NULL};

static const struct vg_opt meta_common_opts[] = {
    VG_OPT_STR_("type", struct vg_meta_common, type, "redis", NULL, 0,
                "redis (default) or dynamodb"),
    VG_OPT_INT_("fetch_horizon_hrs", struct vg_meta_common, fetch_horizon_hrs, 1, 24 * 366,
                "24", "a query without a time range covers the last this many hours (seed 004)"),
    VG_OPT_INT_("fetch_limit", struct vg_meta_common, fetch_limit, 1, VG_META_LIMIT_MAX, "100",
                "records of a query without a limit (seed 004's fetch_limit)"),
    VG_OPT_END,
};

struct vg_meta_store {
    const struct vg_meta_ops *ops;
    void *state;
    struct vg_meta_common common;
    struct vg_counter *puts, *put_errors;
    alignas(max_align_t) unsigned char settings[VG_STORE_SETTINGS_MAX];
};

static const char *const kind_names[] = {"frame", "identity", "alert", "incident"};

const char *vg_meta_kind_name(enum vg_meta_kind kind)
{
    for (int i = 0; i < 4; i++)
        if ((unsigned)kind == 1u << i)
            return kind_names[i];
    return NULL;
}

enum vg_meta_kind vg_meta_kind_parse(const char *name)
{
    for (int i = 0; name && i < 4; i++)
        if (!strcmp(name, kind_names[i]))
            return (enum vg_meta_kind)(1u << i);
    return (enum vg_meta_kind)0;
}

/* ---- open ---------------------------------------------------------------- */

static const struct vg_meta_ops *find_type(const char *name)
{
    for (int i = 0; meta_types[i]; i++)
        if (!strcmp(meta_types[i]->name, name))
            return meta_types[i];
    return NULL;
}

static vg_status bind(struct vg_meta_store *m, const struct vg_config *cfg,
                      const struct vg_ynode *map, char *where, size_t wcap)
{
    const char *names[8];
    char known[64];
    int n = 0;
    for (; meta_types[n] && n < 7; n++)
        names[n] = meta_types[n]->name;
    names[n] = NULL;
    vg_opts_join(names, known, sizeof(known));
    const char *type = vg_store_map_scalar(map, "type");
    snprintf(where, wcap, "%s:%d: store.metadata", cfg->source[0] ? cfg->source : "config",
             map ? map->line : 0);
    if (!(m->ops = find_type(type ? type : "redis")))
        return vg_errf(VG_ERR_CONFIG, "%s: unknown type \"%s\" (known: %s)", where, type, known);
    if (m->ops->settings_size > sizeof(m->settings))
        return vg_errf(VG_ERR_CONFIG, "%s: settings of %s too large", where, m->ops->name);
    vg_opts_defaults(meta_common_opts, &m->common);
    vg_opts_defaults(m->ops->opts, m->settings);
    vg_status st = map ? vg_opts_bind_pair(meta_common_opts, &m->common, m->ops->opts,
                                           m->settings, map, cfg->source, "store.metadata.")
                       : VG_OK;
    if (st == VG_OK)
        st = vg_opts_apply_env(m->ops->opts, m->settings);
    return st;
}

vg_status vg_meta_store_open(struct vg_meta_store **out, const struct vg_config *cfg,
                             struct vg_redis *redis)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *map = NULL;
    char where[VG_URL_MAX + 64];
    struct vg_meta_store *m = calloc(1, sizeof(*m));
    if (!m)
        return VG_ERR_NOMEM;
    vg_status st = vg_store_section(cfg, "metadata", &root, &map);
    if (st == VG_OK)
        st = bind(m, cfg, map, where, sizeof(where));
    vg_yaml_free(root);
    if (st == VG_OK && (st = m->ops->open(&m->state, m->settings, cfg, redis, where)) != VG_OK) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s", vg_err_detail());
        st = vg_errf(st, "metadata store (%s): %s", m->ops->name, detail);
    }
    if (st != VG_OK) {
        free(m);
        return st;
    }
    m->puts = vg_counter_get("vigil_store_metadata_put_total", "Metadata records stored");
    m->put_errors = vg_counter_get("vigil_store_metadata_errors_total",
                                   "Metadata records the store did not take");
    *out = m;
    return VG_OK;
}

void vg_meta_store_close(struct vg_meta_store *m)
{
    if (!m)
        return;
    if (m->ops->close)
        m->ops->close(m->state);
    free(m);
}

const char *vg_meta_store_type(const struct vg_meta_store *m)
{
    return m ? m->ops->name : "";
}

/* ---- put / query --------------------------------------------------------- */

static int id_ok(const char *id)
{
    size_t n = id ? strlen(id) : 0;
    if (n == 0 || n >= VG_META_ID_MAX)
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)id[i] < 0x21 || id[i] == '|' || id[i] == '#' || id[i] == 0x7f)
            return 0;
    return 1;
}

vg_status vg_meta_put(struct vg_meta_store *m, enum vg_meta_kind kind, const char *camera,
                      int64_t ts_us, const char *id, const char *json)
{
    vg_status st = VG_OK;
    if (!vg_meta_kind_name(kind))
        st = vg_errf(VG_ERR_INVALID, "metadata: unknown kind %d", (int)kind);
    else if (!vg_store_token_ok(camera))
        st = vg_errf(VG_ERR_INVALID, "metadata: camera id \"%.64s\" is not a token of "
                     "A-Z a-z 0-9 _ - .", camera ? camera : "");
    else if (!id_ok(id))
        st = vg_errf(VG_ERR_INVALID, "metadata: id \"%.64s\" must be 1..%d printable bytes "
                     "without '|' or '#'", id ? id : "", VG_META_ID_MAX - 1);
    else if (ts_us < 0 || ts_us > 9999999999999999LL)
        st = vg_errf(VG_ERR_INVALID, "metadata: time %lld out of range", (long long)ts_us);
    else if (!json || !*json)
        st = vg_errf(VG_ERR_INVALID, "metadata: empty record body");
    if (st == VG_OK)
        st = m->ops->put(m->state, kind, camera, ts_us, id, json);
    vg_counter_inc(st == VG_OK ? m->puts : m->put_errors);
    return st;
}

static vg_status make_range(const struct vg_meta_store *m, const struct vg_meta_query *q,
                            struct vg_meta_range *r)
{
    int64_t horizon = (int64_t)m->common.fetch_horizon_hrs * 3600 * 1000000;
    if (!q || !vg_store_token_ok(q->camera))
        return vg_errf(VG_ERR_INVALID, "metadata query: camera id \"%.64s\" missing or not a "
                       "token", q && q->camera ? q->camera : "");
    if (q->from_us < 0 || q->to_us < 0 || q->limit < 0)
        return vg_errf(VG_ERR_INVALID, "metadata query: negative time or limit");
    r->camera = q->camera;
    r->to_us = q->to_us ? q->to_us : vg_now_us();
    r->from_us = q->from_us ? q->from_us : (r->to_us > horizon ? r->to_us - horizon : 0);
    if (r->from_us > r->to_us)
        return vg_errf(VG_ERR_INVALID, "metadata query: from %lld is after to %lld",
                       (long long)r->from_us, (long long)r->to_us);
    r->kinds = q->kinds ? q->kinds & 15u : 15u;
    if (!r->kinds)
        return vg_errf(VG_ERR_INVALID, "metadata query: kinds 0x%x names no kind", q->kinds);
    r->limit = q->limit ? q->limit : m->common.fetch_limit;
    if (r->limit > VG_META_LIMIT_MAX)
        r->limit = VG_META_LIMIT_MAX;
    return VG_OK;
}

vg_status vg_meta_result_add(struct vg_meta_result *out, size_t *cap, enum vg_meta_kind kind,
                             int64_t ts_us, const char *id, const char *json, size_t json_len)
{
    if (out->n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        struct vg_meta_record *r = realloc(out->r, ncap * sizeof(*r));
        if (!r)
            return VG_ERR_NOMEM;
        out->r = r;
        *cap = ncap;
    }
    struct vg_meta_record *rec = &out->r[out->n];
    memset(rec, 0, sizeof(*rec));
    if (!(rec->json = malloc(json_len + 1)))
        return VG_ERR_NOMEM;
    memcpy(rec->json, json, json_len);
    rec->json[json_len] = '\0';
    rec->kind = kind;
    rec->ts_us = ts_us;
    snprintf(rec->id, sizeof(rec->id), "%s", id);
    out->n++;
    return VG_OK;
}

vg_status vg_meta_query(struct vg_meta_store *m, const struct vg_meta_query *q,
                        struct vg_meta_result *out)
{
    struct vg_meta_range r;
    memset(out, 0, sizeof(*out));
    vg_status st = make_range(m, q, &r);
    if (st == VG_OK)
        st = m->ops->query(m->state, &r, out);
    if (st != VG_OK)
        vg_meta_result_free(out);
    return st;
}

void vg_meta_result_free(struct vg_meta_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->r[i].json);
    free(r->r);
    r->r = NULL;
    r->n = 0;
}

/* ---- the frame fetcher --------------------------------------------------- */

/* The frame's identities (records whose trace_id is the frame's), in the
 * order found (newest first, then by index). */
static json_t *identities_of(const struct vg_meta_result *ids, json_t *parsed,
                             const char *trace_id)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && trace_id && i < ids->n; i++) {
        json_t *o = json_array_get(parsed, i);
        const char *t = json_string_value(json_object_get(o, "trace_id"));
        if (t && !strcmp(t, trace_id))
            json_array_append(arr, o);
    }
    return arr;
}

static void add_link(json_t *frame, struct vg_snap_store *snaps)
{
    char url[4096];
    const char *ref = json_string_value(json_object_get(frame, "snapshot_ref"));
    if (!ref || !*ref || !snaps)
        return;
    if (vg_snap_link(snaps, ref, url, sizeof(url)) == VG_OK)
        json_object_set_new(frame, "snapshot_url", json_string(url));
    else
        json_object_set_new(frame, "snapshot_error", json_string(vg_err_detail()));
}

static vg_status build(const struct vg_meta_range *r, const struct vg_meta_result *frames,
                       const struct vg_meta_result *ids, struct vg_snap_store *snaps,
                       char **json)
{
    json_t *parsed_ids = json_array(), *list = json_array();
    json_t *doc = json_pack("{s:s, s:I, s:I}", "camera", r->camera, "from_us",
                            (json_int_t)r->from_us, "to_us", (json_int_t)r->to_us);
    vg_status st = parsed_ids && list && doc ? VG_OK : VG_ERR_NOMEM;
    for (size_t i = 0; st == VG_OK && i < ids->n; i++) {
        json_t *o = json_loads(ids->r[i].json, 0, NULL);
        json_array_append_new(parsed_ids, json_is_object(o) ? o : json_object());
        if (o && !json_is_object(o))
            json_decref(o);
    }
    for (size_t i = 0; st == VG_OK && i < frames->n; i++) {
        const struct vg_meta_record *f = &frames->r[i];
        json_t *o = json_loads(f->json, 0, NULL);
        if (!json_is_object(o)) {       /* not ours to rewrite: keep it, as text */
            json_decref(o);
            o = json_pack("{s:s}", "body", f->json);
        }
        if (!o) {
            st = VG_ERR_NOMEM;
            break;
        }
        json_object_set_new(o, "id", json_string(f->id));
        json_object_set_new(o, "ts_us", json_integer((json_int_t)f->ts_us));
        const char *trace = json_string_value(json_object_get(o, "trace_id"));
        json_object_set_new(o, "identities", identities_of(ids, parsed_ids, trace ? trace : f->id));
        add_link(o, snaps);
        json_array_append_new(list, o);
    }
    if (st == VG_OK) {
        json_object_set(doc, "frames", list);
        if (!(*json = json_dumps(doc, JSON_COMPACT)))
            st = VG_ERR_NOMEM;
    }
    json_decref(parsed_ids);
    json_decref(list);
    json_decref(doc);
    return st;
}

vg_status vg_frames_fetch(struct vg_meta_store *m, struct vg_snap_store *snaps,
                          const struct vg_meta_query *q, char **json)
{
    struct vg_meta_range r, ir;
    struct vg_meta_result frames = {0}, ids = {0};
    *json = NULL;
    vg_status st = make_range(m, q, &r);
    if (st != VG_OK)
        return st;
    r.kinds = VG_META_FRAME;
    if ((st = m->ops->query(m->state, &r, &frames)) != VG_OK) {
        vg_meta_result_free(&frames);   /* a backend may fail after a first page */
        return st;
    }
    /* Identities carry their frame's capture time: the frames' span holds them. */
    if (frames.n > 0) {
        ir = r;
        ir.kinds = VG_META_IDENTITY;
        ir.from_us = frames.r[frames.n - 1].ts_us;
        ir.to_us = frames.r[0].ts_us;
        ir.limit = VG_META_LIMIT_MAX;
        st = m->ops->query(m->state, &ir, &ids);
    }
    if (st == VG_OK)
        st = build(&r, &frames, &ids, snaps, json);
    vg_meta_result_free(&frames);
    vg_meta_result_free(&ids);
    return st;
}
