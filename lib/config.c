#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "opts.h"
#include "face/matcher.h"
#include "sink/sink.h"
#include "tz.h"
#include "yamltree.h"

#define MAX_CONFIG_BYTES (1024 * 1024)

enum ftype { F_STR, F_INT, F_DBL, F_BOOL, F_MAP, F_LIST, F_ANYMAP, F_ENUM };

struct ctx;
/* Binds a sequence node into the struct at base. */
typedef vg_status (*list_fn)(struct ctx *c, const struct vg_ynode *seq, void *base);

struct field {
    const char *key;
    enum ftype type;
    size_t off;          /* into the struct being bound */
    size_t size;         /* F_STR: buffer size */
    double min, max;     /* F_INT, F_DBL */
    const struct field *sub; /* F_MAP: fields of the nested map (same base) */
    list_fn list;        /* F_LIST */
    const char *const *values; /* F_ENUM: NULL-terminated names, stored as int index */
};

struct ctx {
    const char *name;    /* file name for messages */
    struct vg_config *cfg;
};

#define STR(k, s, m) {k, F_STR, offsetof(s, m), sizeof(((s *)0)->m), 0, 0, NULL, NULL, NULL}
#define INT(k, s, m, lo, hi) {k, F_INT, offsetof(s, m), 0, lo, hi, NULL, NULL, NULL}
#define DBL(k, s, m, lo, hi) {k, F_DBL, offsetof(s, m), 0, lo, hi, NULL, NULL, NULL}
#define BOOL(k, s, m) {k, F_BOOL, offsetof(s, m), 0, 0, 0, NULL, NULL, NULL}
#define ENUM(k, s, m, v) {k, F_ENUM, offsetof(s, m), 0, 0, 0, NULL, NULL, v}
#define MAP(k, t) {k, F_MAP, 0, 0, 0, 0, t, NULL, NULL}
#define LIST(k, fn) {k, F_LIST, 0, 0, 0, 0, NULL, fn, NULL}
/* A map this loader does not bind: its owner does (backend settings, opts.h). */
#define ANYMAP(k) {k, F_ANYMAP, 0, 0, 0, 0, NULL, NULL, NULL}
#define END {NULL, F_STR, 0, 0, 0, 0, NULL, NULL, NULL}

static const char *const sample_modes[] = {"fps", "every_n", "keyframes", NULL};
static const char *const faces_modes[] = {"auto", "on", "off", NULL};

/* ---- tables ---------------------------------------------------------- */

static vg_status bind_cameras(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_watch(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_sinks(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_rate_limits(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_cam_chain(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_default_chain(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_zones(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_object_masks(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_motion_masks(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_filters(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_label_watch_list(struct ctx *c, const struct vg_ynode *seq, void *base);

static const struct field motion_fields[] = {
    INT("width", struct vg_camera_cfg, motion_width, 32, 1920),
    INT("threshold", struct vg_camera_cfg, motion_threshold, 1, 255),
    DBL("min_area", struct vg_camera_cfg, motion_min_area, 0, 1),
    DBL("alpha", struct vg_camera_cfg, motion_alpha, 0.001, 1),
    DBL("max_area", struct vg_camera_cfg, motion_max_area, 0.01, 1),
    LIST("masks", bind_motion_masks),
    END,
};

static const struct field camera_fields[] = {
    STR("id", struct vg_camera_cfg, id),
    STR("url", struct vg_camera_cfg, url),
    DBL("fps", struct vg_camera_cfg, fps, 0.01, 1000),
    DBL("speed", struct vg_camera_cfg, speed, 0, 1000),
    BOOL("loop", struct vg_camera_cfg, loop),
    INT("detect_width", struct vg_camera_cfg, detect_width, 64, 7680),
    INT("jpeg_quality", struct vg_camera_cfg, jpeg_quality, 10, 100),
    INT("reconnect_max_s", struct vg_camera_cfg, reconnect_max_s, 1, 3600),
    ENUM("sample", struct vg_camera_cfg, sample_mode, sample_modes),
    INT("every_n", struct vg_camera_cfg, every_n, 1, 10000),
    DBL("keepalive_s", struct vg_camera_cfg, keepalive_s, 0, 86400),
    BOOL("publish_all", struct vg_camera_cfg, publish_all),
    MAP("motion", motion_fields),
    LIST("detectors", bind_cam_chain),
    LIST("zones", bind_zones),
    LIST("object_masks", bind_object_masks),
    LIST("filters", bind_filters),
    LIST("watch", bind_watch),
    LIST("label_watch_list", bind_label_watch_list),
    DBL("label_watch_min_conf", struct vg_camera_cfg, label_watch_min_conf, 0, 100),
    BOOL("record", struct vg_camera_cfg, record),
    STR("kvs_stream", struct vg_camera_cfg, kvs_stream),
    END,
};

static const struct field filter_fields[] = {
    STR("label", struct vg_filter, label),
    DBL("min_confidence", struct vg_filter, min_confidence, 0, 1),
    DBL("min_area", struct vg_filter, min_area, 0, 1),
    DBL("max_area", struct vg_filter, max_area, 0, 1),
    END,
};

static const struct field watch_fields[] = {
    STR("label", struct vg_watch, label),
    DBL("min_confidence", struct vg_watch, min_confidence, 0, 1),
    END,
};


static const struct field dispatch_fields[] = {
    LIST("detectors", bind_default_chain),
    STR("detector", struct vg_config, dispatch.detectors[0]), /* a chain of one */
    STR("snapshot_dir", struct vg_config, dispatch.snapshot_dir),
    BOOL("snapshot_boxes", struct vg_config, dispatch.snapshot_boxes),
    INT("snapshot_max_age_h", struct vg_config, dispatch.snapshot_max_age_h, 0, 24 * 3650),
    INT("snapshot_max_mb", struct vg_config, dispatch.snapshot_max_mb, 0, 1 << 24),
    INT("workers", struct vg_config, dispatch.workers, 1, 64),
    INT("max_frame_age_ms", struct vg_config, dispatch.max_frame_age_ms, 10, 600000),
    INT("detect_timeout_ms", struct vg_config, dispatch.detect_timeout_ms, 10, 600000),
    INT("remote_interval_ms", struct vg_config, dispatch.remote_interval_ms, 0, 3600000),
    ENUM("faces", struct vg_config, dispatch.faces, faces_modes),
    INT("face_margin_px", struct vg_config, dispatch.face_margin_px, 0, 1000),
    INT("max_faces", struct vg_config, dispatch.max_faces, 0, 16),
    END,
};

static const char *const profile_stores[] = {"redis", "dynamodb", NULL};

static const struct field facematch_fields[] = {
    STR("matcher", struct vg_config, facematch.matcher),
    ENUM("profiles", struct vg_config, facematch.profiles, profile_stores),
    INT("min_face_px", struct vg_config, facematch.min_face_px, 0, 4096),
    DBL("min_sharpness", struct vg_config, facematch.min_sharpness, 0, 100000),
    DBL("min_confidence", struct vg_config, facematch.min_confidence, 0, 1),
    END,
};

static const struct field dedupe_health_fields[] = {
    BOOL("enabled", struct vg_config, dedupe.health.enabled),
    INT("offline_after_s", struct vg_config, dedupe.health.offline_after_s, 1, 86400),
    INT("online_after_s", struct vg_config, dedupe.health.online_after_s, 1, 86400),
    END,
};

static const struct field dedupe_fields[] = {
    INT("window_s", struct vg_config, dedupe.window_s, 1, 86400),
    INT("max_labels_per_detection", struct vg_config, dedupe.max_labels, 1, 1024),
    INT("person_window_s", struct vg_config, dedupe.person_window_s, 1, 86400),
    BOOL("unknown_faces", struct vg_config, dedupe.unknown_faces),
    INT("identity_wait_ms", struct vg_config, dedupe.identity_wait_ms, 0, 10000),
    INT("incident_gap_s", struct vg_config, dedupe.incident_gap_s, 0, 86400),
    MAP("health", dedupe_health_fields),
    END,
};

static const struct field notifier_fields[] = {
    INT("ack_wait_s", struct vg_config, notifier.ack_wait_s, 1, 3600),
    INT("max_deliver", struct vg_config, notifier.max_deliver, 0, 100000),
    INT("batch", struct vg_config, notifier.batch, 1, 256),
    INT("idempotency_ttl_s", struct vg_config, notifier.idempotency_ttl_s, 60, 90 * 86400),
    INT("stream_max_age_h", struct vg_config, notifier.stream_max_age_h, 1, 24 * 365),
    LIST("sinks", bind_sinks),
    END,
};

static const struct field rate_limit_fields[] = {
    STR("api", struct vg_rate_limit_cfg, api),
    DBL("per_second", struct vg_rate_limit_cfg, per_second, 0.001, 100000),
    DBL("burst", struct vg_rate_limit_cfg, burst, 1, 100000),
    END,
};

static const struct field aws_fields[] = {
    STR("region", struct vg_config, aws.region),
    STR("profile", struct vg_config, aws.profile),
    STR("access_key_id", struct vg_config, aws.access_key_id),
    STR("secret_access_key", struct vg_config, aws.secret_access_key),
    INT("connect_timeout_ms", struct vg_config, aws.connect_timeout_ms, 100, 60000),
    INT("timeout_ms", struct vg_config, aws.timeout_ms, 100, 600000),
    INT("max_attempts", struct vg_config, aws.max_attempts, 1, 20),
    LIST("rate_limits", bind_rate_limits),
    END,
};

static const struct field faces_fields[] = {
    STR("collection", struct vg_config, faces.collection),
    STR("profile_table", struct vg_config, faces.profile_table),
    END,
};

static const struct field console_fields[] = {
    STR("addr", struct vg_config, console.addr),
    STR("public_url", struct vg_config, console.public_url),
    END,
};

static const struct field recording_fields[] = {
    BOOL("enabled", struct vg_config, recording.enabled),
    STR("dir", struct vg_config, recording.dir),
    INT("segment_s", struct vg_config, recording.segment_s, 1, 600),
    INT("max_age_h", struct vg_config, recording.max_age_h, 0, 24 * 3650),
    INT("max_mb", struct vg_config, recording.max_mb, 0, 1 << 24),
    END,
};

static const struct field top_fields[] = {
    STR("prefix", struct vg_config, prefix),
    STR("timezone", struct vg_config, timezone),
    ANYMAP("routing"),
    ANYMAP("store"),
    ANYMAP("clips"),
    ANYMAP("kvs"),
    MAP("console", console_fields),
    MAP("recording", recording_fields),
    STR("log_level", struct vg_config, log_level),
    STR("nats_url", struct vg_config, nats_url),
    STR("redis_url", struct vg_config, redis_url),
    STR("http_addr", struct vg_config, http_addr),
    INT("max_payload", struct vg_config, max_payload, 1024, 64 * 1024 * 1024),
    LIST("cameras", bind_cameras),
    MAP("aws", aws_fields),
    MAP("faces", faces_fields),
    MAP("dispatch", dispatch_fields),
    ANYMAP("detectors"),
    ANYMAP("matchers"),
    MAP("facematch", facematch_fields),
    MAP("dedupe", dedupe_fields),
    MAP("notifier", notifier_fields),
    END,
};

/* ---- defaults -------------------------------------------------------- */

static void camera_defaults(struct vg_camera_cfg *cam)
{
    memset(cam, 0, sizeof(*cam));
    cam->fps = 5;
    cam->speed = 1;
    cam->detect_width = 1280;
    cam->jpeg_quality = 80;
    cam->motion_width = 320;
    cam->motion_threshold = 25;
    cam->motion_min_area = 0.002;
    cam->motion_alpha = 0.05;
    cam->motion_max_area = 0.8;
    cam->reconnect_max_s = 30;
    cam->every_n = 30;
    cam->keepalive_s = 10;
    cam->label_watch_min_conf = 90;
    cam->record = -1;
}

void vg_cfg_defaults(struct vg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->prefix, "vigil");
    strcpy(cfg->log_level, "info");
    strcpy(cfg->nats_url, "nats://127.0.0.1:4222");
    strcpy(cfg->redis_url, "redis://127.0.0.1:6379");
    cfg->max_payload = 1024 * 1024;
    strcpy(cfg->console.addr, "127.0.0.1:8080");
    strcpy(cfg->console.public_url, "http://127.0.0.1:8080");
    cfg->recording.enabled = 1;
    strcpy(cfg->recording.dir, "/var/lib/vigil/recordings");
    cfg->recording.segment_s = 10;
    cfg->recording.max_age_h = 24;
    cfg->recording.max_mb = 2048;
    cfg->aws.connect_timeout_ms = 3000;
    cfg->aws.timeout_ms = 10000;
    cfg->aws.max_attempts = 3;
    strcpy(cfg->faces.collection, "vigil-faces");
    strcpy(cfg->faces.profile_table, "vigil-profiles");
    cfg->dispatch.n_detectors = 2;
    strcpy(cfg->dispatch.detectors[0], "motion");
    strcpy(cfg->dispatch.detectors[1], "opencv");
    cfg->dispatch.snapshot_max_age_h = 72;
    cfg->dispatch.snapshot_max_mb = 1024;
    cfg->dispatch.workers = 2;
    cfg->dispatch.max_frame_age_ms = 2000;
    cfg->dispatch.detect_timeout_ms = 2000;
    cfg->dispatch.remote_interval_ms = 3000;
    cfg->dispatch.faces = VG_FACES_AUTO;
    cfg->dispatch.face_margin_px = 25;
    cfg->dispatch.max_faces = 4;
    strcpy(cfg->facematch.matcher, "none");
    cfg->facematch.profiles = VG_PROFILES_REDIS;
    cfg->facematch.min_face_px = 40;
    cfg->facematch.min_sharpness = 15;
    cfg->facematch.min_confidence = 0.5;
    cfg->dedupe.window_s = 30;
    cfg->dedupe.max_labels = 32;
    cfg->dedupe.person_window_s = 3600;
    cfg->dedupe.identity_wait_ms = 1500;
    cfg->dedupe.incident_gap_s = 120;
    cfg->dedupe.health.enabled = 1;
    cfg->dedupe.health.offline_after_s = 30;
    cfg->dedupe.health.online_after_s = 10;
    cfg->notifier.ack_wait_s = 30;
    cfg->notifier.max_deliver = 0;     /* unlimited: redelivered while the stream keeps it */
    cfg->notifier.batch = 16;
    cfg->notifier.idempotency_ttl_s = 7 * 86400;
    cfg->notifier.stream_max_age_h = 24 * 7;
}

/* ---- binding --------------------------------------------------------- */

static vg_status bind_map(struct ctx *c, const struct vg_ynode *map, const struct field *fields,
                          void *base, const char *where);

static vg_status bind_scalar(struct ctx *c, const struct field *f, const struct vg_ynode *v,
                             void *base, const char *where)
{
    char *dst = (char *)base + f->off;
    const char *s = v->scalar;
    char *end = NULL;

    if (v->type != VG_Y_SCALAR)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s must be a single value", c->name, v->line,
                       where, f->key);
    switch (f->type) {
    case F_STR:
        if (strlen(s) >= f->size)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s is longer than %zu characters", c->name,
                           v->line, where, f->key, f->size - 1);
        memcpy(dst, s, strlen(s) + 1);
        return VG_OK;
    case F_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on"))
            *(int *)dst = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off"))
            *(int *)dst = 0;
        else
            return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s must be true or false, not \"%s\"",
                           c->name, v->line, where, f->key, s);
        return VG_OK;
    case F_ENUM:
        for (int i = 0; f->values[i]; i++)
            if (!strcmp(f->values[i], s)) {
                *(int *)dst = i;
                return VG_OK;
            }
        {
            char known[256];
            vg_opts_join(f->values, known, sizeof(known));
            return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s \"%s\" is not one of: %s", c->name,
                           v->line, where, f->key, s, known);
        }
    case F_INT:
    case F_DBL: {
        errno = 0;
        double d = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(d) || (f->type == F_INT && d != floor(d)))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s must be %s, not \"%s\"", c->name,
                           v->line, where, f->key, f->type == F_INT ? "an integer" : "a number", s);
        if (d < f->min || d > f->max)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s = %s is out of range [%g, %g]", c->name,
                           v->line, where, f->key, s, f->min, f->max);
        if (f->type == F_INT)
            *(int *)dst = (int)d;
        else
            *(double *)dst = d;
        return VG_OK;
    }
    default:
        return VG_ERR_INVALID;
    }
}

static vg_status bind_map(struct ctx *c, const struct vg_ynode *map, const struct field *fields,
                          void *base, const char *where)
{
    if (map->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: %s must be a mapping of key: value", c->name,
                       map->line, *where ? where : "the document");
    for (size_t i = 0; i < map->n; i++) {
        const char *key = map->keys[i];
        const struct vg_ynode *v = map->items[i];
        const struct field *f = fields;
        while (f->key && strcmp(f->key, key) != 0)
            f++;
        if (!f->key)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: unknown key \"%s%s\"", c->name,
                           map->key_lines[i], where, key);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(map->keys[j], key))
                return vg_errf(VG_ERR_CONFIG, "%s:%d: \"%s%s\" is given twice (also on line %d)",
                               c->name, map->key_lines[i], where, key, map->key_lines[j]);
        vg_status st;
        char sub[128];
        snprintf(sub, sizeof(sub), "%s%s.", where, key);
        if (f->type == F_MAP)
            st = bind_map(c, v, f->sub, base, sub);
        else if (f->type == F_ANYMAP)
            st = v->type == VG_Y_MAP ? VG_OK
                                     : vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s must be a mapping",
                                               c->name, v->line, where, key);
        else if (f->type == F_LIST) {
            if (v->type != VG_Y_SEQ)
                return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s must be a list", c->name, v->line,
                               where, key);
            st = f->list(c, v, base);
        } else
            st = bind_scalar(c, f, v, base, where);
        if (st != VG_OK)
            return st;
    }
    return VG_OK;
}

/* Subject tokens must not contain separators or wildcards. */
static int subject_safe(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s == '.' || *s == '*' || *s == '>' || *s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

/* ---- polygons, zones, masks ------------------------------------------ */

vg_status vg_polygon_parse(struct vg_polygon *p, const char *text)
{
    float v[2 * VG_MAX_POLY];
    int n = 0;
    const char *s = text;
    memset(p, 0, sizeof(*p));
    while (*s) {
        while (*s == ' ' || *s == ',' || *s == '\t')
            s++;
        if (!*s)
            break;
        if (n == 2 * VG_MAX_POLY)
            return vg_errf(VG_ERR_CONFIG, "a polygon has at most %d points", VG_MAX_POLY);
        char *end = NULL;
        errno = 0;
        double d = strtod(s, &end);
        if (end == s || errno || !isfinite(d))
            return vg_errf(VG_ERR_CONFIG, "polygon \"%s\": \"%.12s\" is not a number", text, s);
        if (d < 0 || d > 1)
            return vg_errf(VG_ERR_CONFIG, "polygon \"%s\": %g is outside 0..1 (coordinates are "
                           "fractions of the image: x / width, y / height)", text, d);
        v[n++] = (float)d;
        s = end;
    }
    if (n % 2)
        return vg_errf(VG_ERR_CONFIG, "polygon \"%s\": an odd number of coordinates", text);
    if (n < 6)
        return vg_errf(VG_ERR_CONFIG, "polygon \"%s\": needs at least 3 points", text);
    p->n = n / 2;
    for (int i = 0; i < p->n; i++) {
        p->x[i] = v[2 * i];
        p->y[i] = v[2 * i + 1];
    }
    return VG_OK;
}

int vg_polygon_contains(const struct vg_polygon *p, float x, float y)
{
    int in = 0;
    for (int i = 0, j = p->n - 1; i < p->n; j = i++) {
        if ((p->y[i] > y) != (p->y[j] > y) &&
            x < (p->x[j] - p->x[i]) * (y - p->y[i]) / (p->y[j] - p->y[i]) + p->x[i])
            in = !in;
    }
    return in;
}

/* A polygon is a string "x,y x,y ..." or a list of [x, y] pairs. */
static vg_status bind_polygon(struct ctx *c, const struct vg_ynode *v, struct vg_polygon *p)
{
    char text[1024] = "";
    if (v->type == VG_Y_SEQ) {
        for (size_t i = 0; i < v->n; i++) {
            const struct vg_ynode *pt = v->items[i];
            if (pt->type != VG_Y_SEQ || pt->n != 2 || pt->items[0]->type != VG_Y_SCALAR ||
                pt->items[1]->type != VG_Y_SCALAR)
                return vg_errf(VG_ERR_CONFIG, "%s:%d: a polygon point is [x, y]", c->name,
                               pt->line);
            size_t used = strlen(text);
            snprintf(text + used, sizeof(text) - used, "%s,%s ", pt->items[0]->scalar,
                     pt->items[1]->scalar);
        }
    } else if (v->type == VG_Y_SCALAR) {
        snprintf(text, sizeof(text), "%s", v->scalar);
    } else {
        return vg_errf(VG_ERR_CONFIG, "%s:%d: a polygon is \"x,y x,y ...\" or a list of [x, y]",
                       c->name, v->line);
    }
    vg_status st = vg_polygon_parse(p, text);
    return st == VG_OK ? st : vg_errf(st, "%s:%d: %s", c->name, v->line, vg_err_detail());
}

static vg_status bind_polygons(struct ctx *c, const struct vg_ynode *seq, struct vg_polygon *out,
                               int *n, const char *what)
{
    if (seq->n > VG_MAX_MASKS)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d %s", c->name, seq->line, VG_MAX_MASKS,
                       what);
    *n = 0;
    for (size_t i = 0; i < seq->n; i++) {
        vg_status st = bind_polygon(c, seq->items[i], &out[i]);
        if (st != VG_OK)
            return st;
        (*n)++;
    }
    return VG_OK;
}

static vg_status bind_object_masks(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    return bind_polygons(c, seq, cam->object_masks, &cam->n_object_masks, "object masks");
}

static vg_status bind_motion_masks(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    return bind_polygons(c, seq, cam->motion_masks, &cam->n_motion_masks, "motion masks");
}

static const struct vg_ynode *map_get(const struct vg_ynode *map, const char *key, int *line)
{
    for (size_t i = 0; map->type == VG_Y_MAP && i < map->n; i++)
        if (!strcmp(map->keys[i], key)) {
            if (line)
                *line = map->key_lines[i];
            return map->items[i];
        }
    return NULL;
}

static vg_status bind_zones(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    if (seq->n > VG_MAX_ZONES)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d zones", c->name, seq->line,
                       VG_MAX_ZONES);
    cam->n_zones = 0;
    for (size_t i = 0; i < seq->n; i++) {
        const struct vg_ynode *z = seq->items[i], *name, *poly;
        struct vg_zone *zone = &cam->zones[i];
        if (z->type != VG_Y_MAP)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: a zone is {name: N, polygon: ...}", c->name,
                           z->line);
        for (size_t k = 0; k < z->n; k++)
            if (strcmp(z->keys[k], "name") && strcmp(z->keys[k], "polygon"))
                return vg_errf(VG_ERR_CONFIG, "%s:%d: unknown key \"zones.%s\"", c->name,
                               z->key_lines[k], z->keys[k]);
        name = map_get(z, "name", NULL);
        poly = map_get(z, "polygon", NULL);
        if (!name || name->type != VG_Y_SCALAR || !subject_safe(name->scalar) ||
            strlen(name->scalar) >= sizeof(zone->name))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: a zone needs a short name without spaces or "
                           "dots", c->name, z->line);
        if (!poly)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: zone \"%s\" needs a polygon", c->name, z->line,
                           name->scalar);
        snprintf(zone->name, sizeof(zone->name), "%s", name->scalar);
        for (int j = 0; j < cam->n_zones; j++)
            if (!strcmp(cam->zones[j].name, zone->name))
                return vg_errf(VG_ERR_CONFIG, "%s:%d: zone \"%s\" is defined twice", c->name,
                               z->line, zone->name);
        vg_status st = bind_polygon(c, poly, &zone->poly);
        if (st != VG_OK)
            return st;
        cam->n_zones++;
    }
    return VG_OK;
}

static vg_status bind_filters(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    if (seq->n > VG_MAX_FILTERS)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d filters", c->name, seq->line,
                       VG_MAX_FILTERS);
    cam->n_filters = 0;
    for (size_t i = 0; i < seq->n; i++) {
        struct vg_filter *f = &cam->filters[i];
        memset(f, 0, sizeof(*f));
        f->max_area = 1;
        vg_status st = bind_map(c, seq->items[i], filter_fields, f, "filters.");
        if (st != VG_OK)
            return st;
        if (!f->label[0] || f->min_area > f->max_area)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: a filter needs a label (or \"*\") and "
                           "min_area <= max_area", c->name, seq->items[i]->line);
        cam->n_filters++;
    }
    return VG_OK;
}

/* ---- chains and watch lists --------------------------------------------- */

static vg_status bind_chain(struct ctx *c, const struct vg_ynode *seq,
                            char (*names)[VG_NAME_MAX], int *n)
{
    if (seq->n < 1 || seq->n > VG_MAX_CHAIN)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: a detector chain has 1 to %d stages", c->name,
                       seq->line, VG_MAX_CHAIN);
    for (size_t i = 0; i < seq->n; i++) {
        const struct vg_ynode *v = seq->items[i];
        if (v->type != VG_Y_SCALAR || !*v->scalar || strlen(v->scalar) >= VG_NAME_MAX)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: a detector chain is a list of backend names",
                           c->name, v->line);
        snprintf(names[i], VG_NAME_MAX, "%s", v->scalar);
    }
    *n = (int)seq->n;
    return VG_OK;
}

static vg_status bind_cam_chain(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    return bind_chain(c, seq, cam->detectors, &cam->n_detectors);
}

static vg_status bind_default_chain(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_config *cfg = base;
    return bind_chain(c, seq, cfg->dispatch.detectors, &cfg->dispatch.n_detectors);
}

static struct vg_watch *new_watch(struct ctx *c, struct vg_camera_cfg *cam, int line)
{
    if (cam->n_watch == VG_MAX_WATCH) {
        vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d watch entries", c->name, line, VG_MAX_WATCH);
        return NULL;
    }
    struct vg_watch *w = &cam->watch[cam->n_watch++];
    memset(w, 0, sizeof(*w));
    return w;
}

/* "person", "person > 0.72" or "person >= 72%" (seed 000's rule as written). */
static vg_status parse_watch_text(struct ctx *c, struct vg_watch *w, const char *text, int line)
{
    const char *op = strchr(text, '>');
    size_t n = op ? (size_t)(op - text) : strlen(text);
    if (strcspn(text, "<=:") < n)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: watch entry \"%s\": the only comparison is "
                       "\">\" (write \"label > 0.72\")", c->name, line, text);
    while (n > 0 && text[n - 1] == ' ')
        n--;
    if (n == 0 || n >= sizeof(w->label))
        return vg_errf(VG_ERR_CONFIG, "%s:%d: watch entry \"%s\" needs a short label", c->name,
                       line, text);
    memcpy(w->label, text, n);
    w->label[n] = '\0';
    if (!op)
        return VG_OK;
    const char *num = op + 1 + (op[1] == '=');
    char *end = NULL;
    errno = 0;
    double d = strtod(num, &end);
    while (end && *end == ' ')
        end++;
    int pct = end && *end == '%';
    if (end == num || errno || !isfinite(d) || (*end && !(pct && !end[1])))
        return vg_errf(VG_ERR_CONFIG, "%s:%d: watch entry \"%s\": write \"label > 0.72\"",
                       c->name, line, text);
    if (pct || d > 1)
        d /= 100; /* percent, as Rekognition and seed 004 write it */
    if (d < 0 || d > 1)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: watch entry \"%s\": confidence is 0..1 (or 0..100%%)",
                       c->name, line, text);
    w->min_confidence = d;
    return VG_OK;
}

static vg_status bind_watch_zones(struct ctx *c, const struct vg_ynode *seq,
                                  const struct vg_camera_cfg *cam, struct vg_watch *w)
{
    if (seq->type != VG_Y_SEQ)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: watch zones is a list of zone names", c->name,
                       seq->line);
    for (size_t i = 0; i < seq->n; i++) {
        const struct vg_ynode *z = seq->items[i];
        int found = -1;
        for (int j = 0; z->type == VG_Y_SCALAR && j < cam->n_zones; j++)
            if (!strcmp(cam->zones[j].name, z->scalar))
                found = j;
        if (found < 0)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: watch names zone \"%s\" that camera \"%s\" "
                           "does not define under zones:", c->name, z->line,
                           z->type == VG_Y_SCALAR ? z->scalar : "?", cam->id);
        w->zones |= 1u << found;
    }
    return VG_OK;
}

/* Entries are a label string (see parse_watch_text) or a map with label,
 * min_confidence and zones. Zones are looked up in the camera, so the camera
 * binds watch after zones (bind_cameras). */
static vg_status bind_watch(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    for (size_t i = 0; i < seq->n; i++) {
        const struct vg_ynode *e = seq->items[i];
        struct vg_watch *w = new_watch(c, cam, e->line);
        vg_status st;
        if (!w)
            return VG_ERR_CONFIG;
        if (e->type == VG_Y_SCALAR) {
            if ((st = parse_watch_text(c, w, e->scalar, e->line)) != VG_OK)
                return st;
            continue;
        }
        if (e->type != VG_Y_MAP)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: a watch entry is \"label > 0.72\" or "
                           "{label: L, min_confidence: C, zones: [...]}", c->name, e->line);
        for (size_t k = 0; k < e->n; k++) {
            const struct vg_ynode *v = e->items[k];
            if (!strcmp(e->keys[k], "zones")) {
                st = bind_watch_zones(c, v, cam, w);
            } else {
                const struct field *f = watch_fields;
                while (f->key && strcmp(f->key, e->keys[k]))
                    f++;
                if (!f->key)
                    return vg_errf(VG_ERR_CONFIG, "%s:%d: unknown key \"watch.%s\"", c->name,
                                   e->key_lines[k], e->keys[k]);
                st = bind_scalar(c, f, v, w, "watch.");
            }
            if (st != VG_OK)
                return st;
        }
        if (!w->label[0])
            return vg_errf(VG_ERR_CONFIG, "%s:%d: watch entry needs a label", c->name, e->line);
    }
    return VG_OK;
}

/* Seed 004's label_watch_list: names whose minimum is label_watch_min_conf
 * (percent), filled in once the whole camera is bound. */
static vg_status bind_label_watch_list(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    for (size_t i = 0; i < seq->n; i++) {
        const struct vg_ynode *e = seq->items[i];
        struct vg_watch *w = new_watch(c, cam, e->line);
        if (!w)
            return VG_ERR_CONFIG;
        if (e->type != VG_Y_SCALAR || !*e->scalar || strlen(e->scalar) >= sizeof(w->label))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: label_watch_list is a list of label names",
                           c->name, e->line);
        snprintf(w->label, sizeof(w->label), "%s", e->scalar);
        w->min_confidence = -1;
    }
    return VG_OK;
}

/* Watch entries name zones, so zones are bound first (binding them again in
 * file order below gives the same result). */
static vg_status bind_camera(struct ctx *c, const struct vg_ynode *map, struct vg_camera_cfg *cam)
{
    const struct vg_ynode *zones = map_get(map, "zones", NULL);
    vg_status st = VG_OK;
    if (zones && zones->type == VG_Y_SEQ)
        st = bind_zones(c, zones, cam);
    if (st == VG_OK)
        st = bind_map(c, map, camera_fields, cam, "cameras.");
    for (int i = 0; st == VG_OK && i < cam->n_watch; i++)
        if (cam->watch[i].min_confidence < 0)
            cam->watch[i].min_confidence = cam->label_watch_min_conf / 100.0;
    return st;
}

static vg_status bind_cameras(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_config *cfg = base;
    if (seq->n > VG_MAX_CAMERAS)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d cameras per file", c->name, seq->line,
                       VG_MAX_CAMERAS);
    cfg->n_cameras = 0;
    for (size_t i = 0; i < seq->n; i++) {
        struct vg_camera_cfg *cam = &cfg->cameras[cfg->n_cameras];
        int line = seq->items[i]->line;
        camera_defaults(cam);
        vg_status st = bind_camera(c, seq->items[i], cam);
        if (st != VG_OK)
            return st;
        if (!subject_safe(cam->id))
            return vg_errf(VG_ERR_CONFIG,
                           "%s:%d: camera id \"%s\" must be non-empty, without spaces, '.', "
                           "'*' or '>'", c->name, line, cam->id);
        if (vg_cfg_camera(cfg, cam->id))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: camera id \"%s\" is used twice", c->name,
                           line, cam->id);
        if (!cam->url[0])
            return vg_errf(VG_ERR_CONFIG, "%s:%d: camera \"%s\" needs a url", c->name, line,
                           cam->id);
        cfg->n_cameras++;
    }
    return VG_OK;
}

static vg_status bind_sinks(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_config *cfg = base;
    if (seq->n > VG_MAX_SINKS)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d sinks", c->name, seq->line,
                       VG_MAX_SINKS);
    cfg->notifier.n_sinks = 0;
    for (size_t i = 0; i < seq->n; i++) {
        struct vg_sink_cfg *s = &cfg->notifier.sinks[i];
        int line = seq->items[i]->line;
        vg_status st = vg_sink_cfg_bind(s, seq->items[i], c->name);
        if (st != VG_OK)
            return st;
        for (size_t j = 0; j < i; j++)
            if (!strcmp(cfg->notifier.sinks[j].name, s->name))
                return vg_errf(VG_ERR_CONFIG, "%s:%d: sink name \"%s\" is used twice",
                               c->name, line, s->name);
        cfg->notifier.n_sinks++;
    }
    return VG_OK;
}

static vg_status bind_rate_limits(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_config *cfg = base;
    if (seq->n > VG_MAX_RATE_LIMITS)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d rate limits", c->name, seq->line,
                       VG_MAX_RATE_LIMITS);
    cfg->aws.n_rate_limits = 0;
    for (size_t i = 0; i < seq->n; i++) {
        struct vg_rate_limit_cfg *r = &cfg->aws.rate_limits[i];
        memset(r, 0, sizeof(*r));
        r->burst = 1;
        vg_status st = bind_map(c, seq->items[i], rate_limit_fields, r, "aws.rate_limits.");
        if (st != VG_OK)
            return st;
        if (!r->api[0] || r->per_second <= 0)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: a rate limit needs api and per_second",
                           c->name, seq->items[i]->line);
        cfg->aws.n_rate_limits++;
    }
    return VG_OK;
}

/* ---- public ---------------------------------------------------------- */

/* dispatch.detector: X (the first form) is the chain [X]. */
static vg_status legacy_detector(struct ctx *c, const struct vg_ynode *root)
{
    const struct vg_ynode *d = map_get(root, "dispatch", NULL);
    int line = 0;
    if (!d || !map_get(d, "detector", &line))
        return VG_OK;
    if (map_get(d, "detectors", NULL))
        return vg_errf(VG_ERR_CONFIG, "%s:%d: dispatch.detector and dispatch.detectors: give "
                       "only the chain (detectors)", c->name, line);
    c->cfg->dispatch.n_detectors = 1;
    return VG_OK;
}

vg_status vg_cfg_parse(struct vg_config *cfg, const char *name, const char *text, size_t len)
{
    struct vg_ynode *root = NULL;
    struct ctx c = {.name = name, .cfg = cfg};
    vg_status st = vg_yaml_parse(&root, name, text, len);
    if (st != VG_OK)
        return st;
    st = bind_map(&c, root, top_fields, cfg, "");
    if (st == VG_OK)
        st = legacy_detector(&c, root);
    vg_yaml_free(root);
    if (st == VG_OK)
        snprintf(cfg->source, sizeof(cfg->source), "%s", name);
    return st;
}

static vg_status read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    vg_status st = VG_ERR_IO;
    if (!f)
        return vg_errf(VG_ERR_CONFIG, "%s: %s", path, strerror(errno));
    buf = malloc(MAX_CONFIG_BYTES + 1);
    if (!buf) {
        st = VG_ERR_NOMEM;
        goto out;
    }
    size_t n = fread(buf, 1, MAX_CONFIG_BYTES + 1, f);
    if (ferror(f)) {
        st = vg_errf(VG_ERR_CONFIG, "%s: %s", path, strerror(errno));
        goto out;
    }
    if (n > MAX_CONFIG_BYTES) {
        st = vg_errf(VG_ERR_CONFIG, "%s: larger than %d bytes", path, MAX_CONFIG_BYTES);
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    st = VG_OK;
out:
    free(buf);
    fclose(f);
    return st;
}

static vg_status env_str(const char *var, char *dst, size_t cap)
{
    const char *v = getenv(var);
    if (!v)
        return VG_OK;
    if (strlen(v) >= cap)
        return vg_errf(VG_ERR_CONFIG, "%s is longer than %zu characters", var, cap - 1);
    memcpy(dst, v, strlen(v) + 1);
    return VG_OK;
}

vg_status vg_cfg_apply_env(struct vg_config *cfg)
{
    vg_status st;
    if ((st = env_str("VIGIL_NATS_URL", cfg->nats_url, sizeof(cfg->nats_url))) ||
        (st = env_str("VIGIL_REDIS_URL", cfg->redis_url, sizeof(cfg->redis_url))) ||
        (st = env_str("VIGIL_HTTP_ADDR", cfg->http_addr, sizeof(cfg->http_addr))) ||
        (st = env_str("VIGIL_PREFIX", cfg->prefix, sizeof(cfg->prefix))) ||
        (st = env_str("VIGIL_LOG_LEVEL", cfg->log_level, sizeof(cfg->log_level))) ||
        (st = env_str("VIGIL_TIMEZONE", cfg->timezone, sizeof(cfg->timezone))) ||
        (st = env_str("VIGIL_CONSOLE_ADDR", cfg->console.addr, sizeof(cfg->console.addr))) ||
        (st = env_str("VIGIL_CONSOLE_URL", cfg->console.public_url,
                      sizeof(cfg->console.public_url))) ||
        (st = env_str("VIGIL_RECORDING_DIR", cfg->recording.dir, sizeof(cfg->recording.dir))))
        return st;
    return VG_OK;
}

vg_status vg_cfg_validate(const struct vg_config *cfg)
{
    enum vg_log_level lvl;
    if (!subject_safe(cfg->prefix))
        return vg_errf(VG_ERR_CONFIG, "prefix \"%s\" must be one subject token (no '.', '*', "
                       "'>' or spaces)", cfg->prefix);
    if (vg_log_parse_level(cfg->log_level, &lvl) != 0)
        return vg_errf(VG_ERR_CONFIG, "log_level \"%s\" must be debug, info, warn or error",
                       cfg->log_level);
    if (strncmp(cfg->nats_url, "nats://", 7) && strncmp(cfg->nats_url, "tls://", 6)) {
        char masked[VG_URL_MAX];
        vg_cfg_mask_url(masked, sizeof(masked), cfg->nats_url);
        return vg_errf(VG_ERR_CONFIG, "nats_url \"%s\" must start with nats:// or tls://",
                       masked);
    }
    if (strncmp(cfg->redis_url, "redis://", 8))
        return vg_errf(VG_ERR_CONFIG, "redis_url must start with redis://");
    if (strncmp(cfg->console.public_url, "http://", 7) &&
        strncmp(cfg->console.public_url, "https://", 8))
        return vg_errf(VG_ERR_CONFIG, "console.public_url \"%s\" must start with http:// or "
                       "https:// (links in alerts start with it)", cfg->console.public_url);
    if (cfg->recording.enabled && !cfg->recording.dir[0])
        return vg_errf(VG_ERR_CONFIG, "recording.dir is empty while recording.enabled is true");
    if (!cfg->aws.access_key_id[0] != !cfg->aws.secret_access_key[0])
        return vg_errf(VG_ERR_CONFIG, "aws.access_key_id and aws.secret_access_key go together");
    if (!vg_face_matcher_find(cfg->facematch.matcher)) {
        char known[256];
        vg_face_matcher_names(known, sizeof(known));
        return vg_errf(VG_ERR_CONFIG, "facematch.matcher \"%s\" is not known (known: %s)",
                       cfg->facematch.matcher, known);
    }
    return VG_OK;
}

vg_status vg_cfg_load(struct vg_config *cfg, const char *path)
{
    char *text = NULL;
    size_t len = 0;
    vg_status st;

    vg_cfg_defaults(cfg);
    if (path) {
        if ((st = read_file(path, &text, &len)) != VG_OK)
            return st;
        st = vg_cfg_parse(cfg, path, text, len);
        free(text);
        if (st != VG_OK)
            return st;
    }
    if ((st = vg_cfg_apply_env(cfg)) != VG_OK || (st = vg_cfg_validate(cfg)) != VG_OK)
        return st;
    /* The process's zone, before any thread starts (tz.h). */
    return vg_tz_set(cfg->timezone);
}

int vg_cfg_chain(const struct vg_config *cfg, const struct vg_camera_cfg *cam,
                 const char (**names)[VG_NAME_MAX])
{
    if (cam && cam->n_detectors > 0) {
        *names = cam->detectors;
        return cam->n_detectors;
    }
    *names = cfg->dispatch.detectors;
    return cfg->dispatch.n_detectors;
}

vg_status vg_cfg_section(const struct vg_config *cfg, const char *key, struct vg_ynode **root,
                         const struct vg_ynode **out)
{
    char *text = NULL;
    size_t len = 0;
    *root = NULL;
    *out = NULL;
    if (!cfg->source[0])
        return VG_OK;
    vg_status st = read_file(cfg->source, &text, &len);
    if (st == VG_OK)
        st = vg_yaml_parse(root, cfg->source, text, len);
    free(text);
    if (st != VG_OK)
        return st;
    *out = map_get(*root, key, NULL);
    return VG_OK;
}

const struct vg_camera_cfg *vg_cfg_camera(const struct vg_config *cfg, const char *id)
{
    for (int i = 0; i < cfg->n_cameras; i++)
        if (!strcmp(cfg->cameras[i].id, id))
            return &cfg->cameras[i];
    return NULL;
}

/* Does s start a URL ("scheme://")? Splits "nats://a:b@h1,nats://a:b@h2". */
static int url_starts(const char *s)
{
    while (*s == ' ')
        s++;
    if (!isalpha((unsigned char)*s))
        return 0;
    while (isalnum((unsigned char)*s) || *s == '+' || *s == '.' || *s == '-')
        s++;
    return !strncmp(s, "://", 3);
}

static void append(char *out, size_t cap, size_t *n, const char *s, size_t len)
{
    if (*n + 1 >= cap)
        return;
    if (len > cap - 1 - *n)
        len = cap - 1 - *n;
    memcpy(out + *n, s, len);
    *n += len;
    out[*n] = '\0';
}

/* One URL of [url, end): "user:pass@" -> "user:***@"; a lone "token@" (NATS
 * token, Redis password-only) -> "***@". */
static void mask_one(char *out, size_t cap, size_t *n, const char *url, const char *end)
{
    const char *scheme = NULL;
    for (const char *q = url; q + 3 <= end && !scheme; q++)
        if (!strncmp(q, "://", 3))
            scheme = q;
    const char *at = NULL;
    /* The userinfo ends at the last '@' before the path: passwords may hold '@'. */
    for (const char *q = scheme ? scheme + 3 : end; q < end && *q != '/'; q++)
        if (*q == '@')
            at = q;
    if (!scheme || !at) {
        append(out, cap, n, url, (size_t)(end - url));
        return;
    }
    const char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
    append(out, cap, n, url, (size_t)((colon ? colon + 1 : scheme + 3) - url));
    append(out, cap, n, "***", 3);
    append(out, cap, n, at, (size_t)(end - at));
}

void vg_cfg_mask_url(char *out, size_t cap, const char *url)
{
    size_t n = 0;
    if (!cap)
        return;
    out[0] = '\0';
    if (!url)
        return;
    const char *seg = url;
    for (const char *q = url;; q++) {
        if (*q == '\0' || (*q == ',' && url_starts(q + 1))) {
            mask_one(out, cap, &n, seg, q);
            if (*q == '\0')
                break;
            append(out, cap, &n, ",", 1);
            seg = q + 1;
        }
    }
}
