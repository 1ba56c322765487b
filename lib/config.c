#include "config.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "yamltree.h"

#define MAX_CONFIG_BYTES (1024 * 1024)

enum ftype { F_STR, F_INT, F_DBL, F_BOOL, F_MAP, F_LIST };

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
};

struct ctx {
    const char *name;    /* file name for messages */
    struct vg_config *cfg;
};

#define STR(k, s, m) {k, F_STR, offsetof(s, m), sizeof(((s *)0)->m), 0, 0, NULL, NULL}
#define INT(k, s, m, lo, hi) {k, F_INT, offsetof(s, m), 0, lo, hi, NULL, NULL}
#define DBL(k, s, m, lo, hi) {k, F_DBL, offsetof(s, m), 0, lo, hi, NULL, NULL}
#define BOOL(k, s, m) {k, F_BOOL, offsetof(s, m), 0, 0, 0, NULL, NULL}
#define MAP(k, t) {k, F_MAP, 0, 0, 0, 0, t, NULL}
#define LIST(k, fn) {k, F_LIST, 0, 0, 0, 0, NULL, fn}
#define END {NULL, F_STR, 0, 0, 0, 0, NULL, NULL}

/* ---- tables ---------------------------------------------------------- */

static vg_status bind_cameras(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_watch(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_sinks(struct ctx *c, const struct vg_ynode *seq, void *base);
static vg_status bind_rate_limits(struct ctx *c, const struct vg_ynode *seq, void *base);

static const struct field motion_fields[] = {
    INT("width", struct vg_camera_cfg, motion_width, 32, 1920),
    INT("threshold", struct vg_camera_cfg, motion_threshold, 1, 255),
    DBL("min_area", struct vg_camera_cfg, motion_min_area, 0, 1),
    DBL("alpha", struct vg_camera_cfg, motion_alpha, 0.001, 1),
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
    MAP("motion", motion_fields),
    LIST("watch", bind_watch),
    END,
};

static const struct field watch_fields[] = {
    STR("label", struct vg_watch, label),
    DBL("min_confidence", struct vg_watch, min_confidence, 0, 1),
    END,
};

static const struct field sink_fields[] = {
    STR("name", struct vg_sink_cfg, name),
    STR("type", struct vg_sink_cfg, type),
    STR("path", struct vg_sink_cfg, path),
    STR("url", struct vg_sink_cfg, url),
    STR("secret", struct vg_sink_cfg, secret),
    INT("timeout_ms", struct vg_sink_cfg, timeout_ms, 100, 600000),
    INT("retries", struct vg_sink_cfg, retries, 0, 100),
    INT("backoff_ms", struct vg_sink_cfg, backoff_ms, 1, 600000),
    END,
};

static const struct field dispatch_fields[] = {
    STR("detector", struct vg_config, dispatch.detector),
    STR("snapshot_dir", struct vg_config, dispatch.snapshot_dir),
    INT("workers", struct vg_config, dispatch.workers, 1, 64),
    END,
};

static const struct field facematch_fields[] = {
    STR("matcher", struct vg_config, facematch.matcher),
    END,
};

static const struct field dedupe_fields[] = {
    INT("window_s", struct vg_config, dedupe.window_s, 1, 86400),
    END,
};

static const struct field notifier_fields[] = {
    INT("ack_wait_s", struct vg_config, notifier.ack_wait_s, 1, 3600),
    INT("max_deliver", struct vg_config, notifier.max_deliver, 1, 1000),
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

static const struct field top_fields[] = {
    STR("prefix", struct vg_config, prefix),
    STR("log_level", struct vg_config, log_level),
    STR("nats_url", struct vg_config, nats_url),
    STR("redis_url", struct vg_config, redis_url),
    STR("http_addr", struct vg_config, http_addr),
    INT("max_payload", struct vg_config, max_payload, 1024, 64 * 1024 * 1024),
    LIST("cameras", bind_cameras),
    MAP("aws", aws_fields),
    MAP("faces", faces_fields),
    MAP("dispatch", dispatch_fields),
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
    cam->reconnect_max_s = 30;
}

static void sink_defaults(struct vg_sink_cfg *s)
{
    memset(s, 0, sizeof(*s));
    s->timeout_ms = 5000;
    s->retries = 4;
    s->backoff_ms = 200;
}

void vg_cfg_defaults(struct vg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    strcpy(cfg->prefix, "vigil");
    strcpy(cfg->log_level, "info");
    strcpy(cfg->nats_url, "nats://127.0.0.1:4222");
    strcpy(cfg->redis_url, "redis://127.0.0.1:6379");
    cfg->max_payload = 1024 * 1024;
    cfg->aws.connect_timeout_ms = 3000;
    cfg->aws.timeout_ms = 10000;
    cfg->aws.max_attempts = 3;
    strcpy(cfg->faces.collection, "vigil-faces");
    strcpy(cfg->faces.profile_table, "vigil-profiles");
    strcpy(cfg->dispatch.detector, "motion");
    cfg->dispatch.workers = 1;
    strcpy(cfg->facematch.matcher, "none");
    cfg->dedupe.window_s = 30;
    cfg->notifier.ack_wait_s = 30;
    cfg->notifier.max_deliver = 10;
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
        vg_status st;
        char sub[128];
        snprintf(sub, sizeof(sub), "%s%s.", where, key);
        if (f->type == F_MAP)
            st = bind_map(c, v, f->sub, base, sub);
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

static vg_status bind_watch(struct ctx *c, const struct vg_ynode *seq, void *base)
{
    struct vg_camera_cfg *cam = base;
    if (seq->n > VG_MAX_WATCH)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: at most %d watch entries", c->name, seq->line,
                       VG_MAX_WATCH);
    cam->n_watch = 0;
    for (size_t i = 0; i < seq->n; i++) {
        struct vg_watch *w = &cam->watch[cam->n_watch];
        memset(w, 0, sizeof(*w));
        vg_status st = bind_map(c, seq->items[i], watch_fields, w, "watch.");
        if (st != VG_OK)
            return st;
        if (!w->label[0])
            return vg_errf(VG_ERR_CONFIG, "%s:%d: watch entry needs a label", c->name,
                           seq->items[i]->line);
        cam->n_watch++;
    }
    return VG_OK;
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
        vg_status st = bind_map(c, seq->items[i], camera_fields, cam, "cameras.");
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

static vg_status check_sink(struct ctx *c, const struct vg_sink_cfg *s, int line)
{
    if (!s->name[0] || !subject_safe(s->name))
        return vg_errf(VG_ERR_CONFIG, "%s:%d: sink needs a name without spaces or dots",
                       c->name, line);
    if (!strcmp(s->type, "file")) {
        if (!s->path[0])
            return vg_errf(VG_ERR_CONFIG, "%s:%d: file sink \"%s\" needs a path", c->name,
                           line, s->name);
    } else if (!strcmp(s->type, "webhook")) {
        if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8))
            return vg_errf(VG_ERR_CONFIG, "%s:%d: webhook sink \"%s\" needs an http(s) url",
                           c->name, line, s->name);
    } else {
        return vg_errf(VG_ERR_CONFIG, "%s:%d: sink \"%s\" has unknown type \"%s\" "
                       "(known: file, webhook)", c->name, line, s->name, s->type);
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
        sink_defaults(s);
        vg_status st = bind_map(c, seq->items[i], sink_fields, s, "sinks.");
        if (st == VG_OK)
            st = check_sink(c, s, line);
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

vg_status vg_cfg_parse(struct vg_config *cfg, const char *name, const char *text, size_t len)
{
    struct vg_ynode *root = NULL;
    struct ctx c = {.name = name, .cfg = cfg};
    vg_status st = vg_yaml_parse(&root, name, text, len);
    if (st != VG_OK)
        return st;
    st = bind_map(&c, root, top_fields, cfg, "");
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
        (st = env_str("VIGIL_LOG_LEVEL", cfg->log_level, sizeof(cfg->log_level))))
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
    if (strncmp(cfg->nats_url, "nats://", 7) && strncmp(cfg->nats_url, "tls://", 6))
        return vg_errf(VG_ERR_CONFIG, "nats_url \"%s\" must start with nats:// or tls://",
                       cfg->nats_url);
    if (strncmp(cfg->redis_url, "redis://", 8))
        return vg_errf(VG_ERR_CONFIG, "redis_url must start with redis://");
    if (!cfg->aws.access_key_id[0] != !cfg->aws.secret_access_key[0])
        return vg_errf(VG_ERR_CONFIG, "aws.access_key_id and aws.secret_access_key go together");
    if (strcmp(cfg->dispatch.detector, "motion"))
        return vg_errf(VG_ERR_CONFIG, "dispatch.detector \"%s\" is not known (known: motion)",
                       cfg->dispatch.detector);
    if (strcmp(cfg->facematch.matcher, "none"))
        return vg_errf(VG_ERR_CONFIG, "facematch.matcher \"%s\" is not known (known: none)",
                       cfg->facematch.matcher);
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
    if ((st = vg_cfg_apply_env(cfg)) != VG_OK)
        return st;
    return vg_cfg_validate(cfg);
}

const struct vg_camera_cfg *vg_cfg_camera(const struct vg_config *cfg, const char *id)
{
    for (int i = 0; i < cfg->n_cameras; i++)
        if (!strcmp(cfg->cameras[i].id, id))
            return &cfg->cameras[i];
    return NULL;
}

void vg_cfg_mask_url(char *out, size_t cap, const char *url)
{
    const char *scheme = strstr(url, "://");
    const char *at = NULL;
    /* The userinfo ends at the last '@' before the path: passwords may hold '@'. */
    for (const char *q = scheme ? scheme + 3 : ""; *q && *q != '/'; q++)
        if (*q == '@')
            at = q;
    if (!scheme || !at) {
        snprintf(out, cap, "%s", url);
        return;
    }
    const char *colon = memchr(scheme + 3, ':', (size_t)(at - (scheme + 3)));
    const char *user_end = colon ? colon : at;
    snprintf(out, cap, "%.*s%s***%s", (int)(user_end - url), url, colon ? ":" : "", at);
}
