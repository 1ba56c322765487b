#include "detect/chain.h"

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "metrics.h"
#include "timeutil.h"
#include "yamltree.h"

#define MAX_BACKENDS 16
/* Motion boxes are grown by this share of their size on each side before
 * they are merged into regions: a person's head and feet often move less
 * than the torso. */
#define REGION_PAD 0.25f

/* A remote stage's last verdict on a camera: while it is younger than
 * dispatch.remote_interval_ms, the stage is not asked again. Shared by the
 * workers (a camera moves between them), hence atomics. */
struct verdict {
    _Atomic int64_t at_us;          /* 0: none yet */
    _Atomic int passed;
};

struct vg_detect_settings {
    const struct vg_config *cfg;
    size_t n;
    void *settings[MAX_BACKENDS];   /* by registry index; NULL for backends without keys */
    int used[MAX_BACKENDS];         /* named in some camera's chain */
    struct verdict *verdicts;       /* [camera][stage] */
};

struct stage_metrics {
    struct vg_counter *calls, *skipped, *errors, *timeouts, *reused;
};

struct vg_detect_engine {
    const struct vg_detect_settings *s;
    void *state[MAX_BACKENDS];
    int ready[MAX_BACKENDS];
    struct stage_metrics m[MAX_BACKENDS];
    struct vg_detect_res cur;       /* a stage's result: per worker, not per frame */
};

static int backend_index(const struct vg_detector_backend *be)
{
    for (int i = 0; vg_detector_backends[i]; i++)
        if (vg_detector_backends[i] == be)
            return i;
    return -1;
}

static vg_status check_chains(struct vg_detect_settings *s)
{
    const struct vg_config *cfg = s->cfg;
    char names[256];
    for (int c = -1; c < cfg->n_cameras; c++) {
        const struct vg_camera_cfg *cam = c < 0 ? NULL : &cfg->cameras[c];
        const char(*chain)[VG_NAME_MAX];
        int n = vg_cfg_chain(cfg, cam, &chain);
        for (int i = 0; i < n; i++) {
            const struct vg_detector_backend *be = vg_detector_find(chain[i]);
            if (!be) {
                vg_detector_names(names, sizeof(names));
                return vg_errf(VG_ERR_CONFIG, "%s%s%sdetector \"%s\" is not known (known: %s)",
                               cam ? "camera \"" : "dispatch.", cam ? cam->id : "",
                               cam ? "\": " : "", chain[i], names);
            }
            if (c >= 0 || cfg->n_cameras == 0)
                s->used[backend_index(be)] = 1;
        }
    }
    return VG_OK;
}

static vg_status bind_backends(struct vg_detect_settings *s, const struct vg_ynode *section)
{
    const char *file = s->cfg->source[0] ? s->cfg->source : "configuration";
    char where[64], names[256];
    for (size_t i = 0; section && i < section->n; i++)
        if (!vg_detector_find(section->keys[i])) {
            vg_detector_names(names, sizeof(names));
            return vg_errf(VG_ERR_CONFIG, "%s:%d: detectors.%s: no such detector (known: %s)",
                           file, section->key_lines[i], section->keys[i], names);
        }
    for (size_t i = 0; i < s->n; i++) {
        const struct vg_detector_backend *be = vg_detector_backends[i];
        const struct vg_ynode *node = NULL;
        for (size_t k = 0; section && k < section->n; k++)
            if (!strcmp(section->keys[k], be->name))
                node = section->items[k];
        if (!be->opts) {
            if (node && node->type == VG_Y_MAP && node->n > 0)
                return vg_errf(VG_ERR_CONFIG, "%s:%d: detector %s has no settings", file,
                               node->line, be->name);
            continue;
        }
        if (!(s->settings[i] = calloc(1, be->opts_size)))
            return VG_ERR_NOMEM;
        snprintf(where, sizeof(where), "detectors.%s.", be->name);
        vg_status st = vg_opts_load(be->opts, node, s->settings[i], file, where);
        /* Only the backends a chain uses must make sense (a model file that
         * exists, a URL...): an unused section may stay half-written. */
        if (st == VG_OK && be->check && s->used[i])
            st = be->check(s->settings[i]);
        if (st != VG_OK)
            return st;
    }
    return VG_OK;
}

vg_status vg_detect_settings_load(struct vg_detect_settings **out, const struct vg_config *cfg)
{
    struct vg_ynode *root = NULL;
    const struct vg_ynode *section = NULL;
    struct vg_detect_settings *s = calloc(1, sizeof(*s));
    vg_status st = VG_ERR_NOMEM;
    if (!s)
        goto out;
    s->cfg = cfg;
    while (vg_detector_backends[s->n] && s->n < MAX_BACKENDS)
        s->n++;
    if (!(s->verdicts = calloc((size_t)(cfg->n_cameras + 1) * VG_MAX_CHAIN, sizeof(*s->verdicts))))
        goto out;
    if ((st = check_chains(s)) != VG_OK || (st = vg_cfg_section(cfg, "detectors", &root, &section)))
        goto out;
    if ((st = bind_backends(s, section)) != VG_OK)
        goto out;
    *out = s;
    s = NULL;
out:
    vg_yaml_free(root);
    vg_detect_settings_destroy(s);
    return st;
}

void vg_detect_settings_destroy(struct vg_detect_settings *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->n; i++)
        free(s->settings[i]);
    free(s->verdicts);
    free(s);
}

const void *vg_detect_settings_get(const struct vg_detect_settings *s,
                                   const struct vg_detector_backend *be)
{
    int i = backend_index(be);
    return i < 0 ? NULL : s->settings[i];
}

static struct vg_counter *stage_counter(const char *family, const char *help, const char *name)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "detector=\"%s\"", name);
    return vg_counter_get_labeled(family, labels, help);
}

vg_status vg_detect_engine_create(struct vg_detect_engine **out,
                                  const struct vg_detect_settings *s)
{
    struct vg_detect_engine *e = calloc(1, sizeof(*e));
    if (!e)
        return VG_ERR_NOMEM;
    e->s = s;
    for (size_t i = 0; i < s->n; i++) {
        const struct vg_detector_backend *be = vg_detector_backends[i];
        struct stage_metrics *m = &e->m[i];
        m->calls = stage_counter("vigil_detector_calls_total", "Detector stage calls", be->name);
        m->skipped = stage_counter("vigil_detector_skipped_total",
                                   "Frames a stage did not see because the one before found "
                                   "nothing worth it", be->name);
        m->errors = stage_counter("vigil_detector_errors_total", "Detector stage failures",
                                  be->name);
        m->timeouts = stage_counter("vigil_detector_timeouts_total",
                                    "Detector stage calls past their deadline", be->name);
        m->reused = stage_counter("vigil_detector_reused_total",
                                  "Frames that took a remote stage's recent verdict on the same "
                                  "camera instead of a call (dispatch.remote_interval_ms)",
                                  be->name);
        if (!s->used[i])
            continue;
        vg_status st = be->init ? be->init(&e->state[i], s->settings[i], s->cfg) : VG_OK;
        if (st != VG_OK) {
            vg_status wrapped = vg_errf(st, "detector %s: %s", be->name, vg_err_detail());
            vg_detect_engine_destroy(e);
            return wrapped;
        }
        e->ready[i] = 1;
    }
    *out = e;
    return VG_OK;
}

void vg_detect_engine_destroy(struct vg_detect_engine *e)
{
    if (!e)
        return;
    for (size_t i = 0; i < e->s->n; i++)
        if (e->ready[i] && vg_detector_backends[i]->cleanup)
            vg_detector_backends[i]->cleanup(e->state[i]);
    free(e);
}

/* ---- label screening ------------------------------------------------------ */

static int names_label(const char *name, const struct vg_label *l)
{
    if (!strcasecmp(name, vg_category_name(l->category)) || !strcasecmp(name, l->raw))
        return 1;
    for (int i = 0; i < l->n_parents; i++)
        if (!strcasecmp(name, l->parents[i]))
            return 1;
    return 0;
}

int vg_watch_matches(const struct vg_watch *w, const struct vg_label *l)
{
    return names_label(w->label, l) && l->confidence >= w->min_confidence &&
           (!w->zones || (w->zones & l->zones));
}

size_t vg_watch_apply(const struct vg_camera_cfg *cam, struct vg_label *labels, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int ok = cam->n_watch == 0;
        for (int k = 0; k < cam->n_watch && !ok; k++)
            ok = vg_watch_matches(&cam->watch[k], &labels[i]);
        if (ok)
            labels[kept++] = labels[i];
    }
    return kept;
}

static int has_box(const struct vg_label *l) { return l->box.w > 0 && l->box.h > 0; }

static int passes_filters(const struct vg_camera_cfg *cam, const struct vg_label *l)
{
    double area = (double)l->box.w * l->box.h;
    for (int i = 0; i < cam->n_filters; i++) {
        const struct vg_filter *f = &cam->filters[i];
        /* "*" means every object label; motion boxes are filtered only by name
         * (their "confidence" is the share of changed pixels, not a score). */
        if (!strcmp(f->label, "*") ? l->category == VG_CAT_MOTION : !names_label(f->label, l))
            continue;
        if (l->confidence < f->min_confidence)
            return 0;
        if (has_box(l) && (area < f->min_area || area > f->max_area))
            return 0;
    }
    return 1;
}

size_t vg_labels_screen(const struct vg_camera_cfg *cam, struct vg_label *labels, size_t n)
{
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        struct vg_label *l = &labels[i];
        /* Frigate's rule: where an object stands is the bottom centre of its box. */
        float px = l->box.x + l->box.w / 2, py = l->box.y + l->box.h;
        /* A box clipped at the frame's bottom stands at y = 1, which no
         * polygon contains by the even-odd rule: count it just inside. */
        px = px > 0.999999f ? 0.999999f : px;
        py = py > 0.999999f ? 0.999999f : py;
        int masked = 0;
        if (!passes_filters(cam, l))
            continue;
        if (l->category == VG_CAT_MOTION &&
            (double)l->box.w * l->box.h > cam->motion_max_area)
            continue;   /* an IR switch or a bump, not something moving */
        for (int k = 0; has_box(l) && k < cam->n_object_masks && !masked; k++)
            masked = vg_polygon_contains(&cam->object_masks[k], px, py);
        if (masked)
            continue;
        l->zones = 0;
        for (int z = 0; has_box(l) && z < cam->n_zones; z++)
            if (vg_polygon_contains(&cam->zones[z].poly, px, py))
                l->zones |= 1u << z;
        labels[kept++] = *l;
    }
    return kept;
}

/* ---- motion regions --------------------------------------------------------- */

static int overlap(const struct vg_box *a, const struct vg_box *b)
{
    return a->x < b->x + b->w && b->x < a->x + a->w && a->y < b->y + b->h && b->y < a->y + a->h;
}

static void unite(struct vg_box *a, const struct vg_box *b)
{
    float x1 = a->x + a->w > b->x + b->w ? a->x + a->w : b->x + b->w;
    float y1 = a->y + a->h > b->y + b->h ? a->y + a->h : b->y + b->h;
    a->x = a->x < b->x ? a->x : b->x;
    a->y = a->y < b->y ? a->y : b->y;
    a->w = x1 - a->x;
    a->h = y1 - a->y;
}

size_t vg_motion_regions(const struct vg_motion_hint *m, double max_area, struct vg_box *out,
                         size_t max)
{
    size_t n = 0;
    for (size_t i = 0; m && i < m->n && n < max; i++) {
        struct vg_box b = m->boxes[i];
        if ((double)b.w * b.h > max_area)
            continue;
        b.x -= b.w * REGION_PAD, b.y -= b.h * REGION_PAD;
        b.w *= 1 + 2 * REGION_PAD, b.h *= 1 + 2 * REGION_PAD;
        if (vg_box_clip(&b))
            out[n++] = b;
    }
    /* Merge until no two regions overlap: a handful of boxes, quadratic is fine. */
    for (int merged = 1; merged;) {
        merged = 0;
        for (size_t i = 0; i < n && !merged; i++)
            for (size_t j = i + 1; j < n && !merged; j++)
                if (overlap(&out[i], &out[j])) {
                    unite(&out[i], &out[j]);
                    out[j] = out[--n];
                    merged = 1;
                }
    }
    return n;
}

/* ---- running the chain ------------------------------------------------------ */

/* Does this stage's screened result earn the next stage a look? */
static int worth_next(const struct vg_camera_cfg *cam, const struct vg_detect_res *r)
{
    for (size_t i = 0; i < r->n; i++) {
        const struct vg_label *l = &r->labels[i];
        if (l->category == VG_CAT_MOTION)
            return 1;
        int ok = cam->n_watch == 0;
        for (int k = 0; k < cam->n_watch && !ok; k++)
            ok = vg_watch_matches(&cam->watch[k], l);
        if (ok)
            return 1;
    }
    return 0;
}

/* Verdicts age in the camera's time: the frames' capture times. */
static int64_t frame_time(const struct vg_image *img)
{
    return img->capture_ts_us ? img->capture_ts_us : vg_now_us();
}

static struct verdict *verdict_of(const struct vg_detect_settings *s,
                                  const struct vg_camera_cfg *cam, int stage)
{
    ptrdiff_t c = cam - s->cfg->cameras;
    if (c < 0 || c >= s->cfg->n_cameras || stage >= VG_MAX_CHAIN)
        return NULL;    /* a camera from another configuration (tests): no memory */
    return &s->verdicts[c * VG_MAX_CHAIN + stage];
}

/* A remote stage asked about this camera less than remote_interval_ms ago:
 * its verdict stands for this frame too. Passed: the previous stage's labels
 * (already in out) are the result; rejected: nothing is. */
static int reuse_verdict(struct vg_detect_engine *e, int idx, struct verdict *v, int64_t now,
                         struct vg_chain_out *out)
{
    int64_t interval_us = (int64_t)e->s->cfg->dispatch.remote_interval_ms * 1000;
    int64_t at = atomic_load(&v->at_us);
    if (!(vg_detector_backends[idx]->caps & VG_DETECT_REMOTE) || interval_us <= 0 || at == 0 ||
        now - at >= interval_us || now < at)
        return 0;
    out->reused = 1;
    if (!atomic_load(&v->passed)) {
        out->res.n = 0;
        out->gated = 1;
    }
    return 1;
}

/* Faces from any backend, made safe: boxes clipped, confidences 0..1. */
static void clean_faces(struct vg_detect_res *res)
{
    size_t kept = 0;
    for (size_t i = 0; i < res->n_faces && i < VG_DETECT_MAX_FACES; i++) {
        struct vg_face_box f = res->faces[i];
        f.confidence = vg_unit(f.confidence);
        if (vg_box_clip(&f.box))
            res->faces[kept++] = f;
    }
    res->n_faces = kept;
}

static vg_status run_stage(struct vg_detect_engine *e, int idx, struct vg_detect_req *req,
                           struct vg_detect_res *res)
{
    const struct vg_detector_backend *be = vg_detector_backends[idx];
    memset(res, 0, sizeof(*res));
    req->deadline_us = vg_now_us() + (int64_t)e->s->cfg->dispatch.detect_timeout_ms * 1000;
    vg_counter_inc(e->m[idx].calls);
    vg_status st = be->detect(e->state[idx], req, res);
    /* A result that came in late is still a result: count it, keep it (a
     * local stage cannot be interrupted, a remote one already was). */
    if (st == VG_ERR_TIMEOUT || (st == VG_OK && vg_now_us() > req->deadline_us))
        vg_counter_inc(e->m[idx].timeouts);
    else if (st != VG_OK)
        vg_counter_inc(e->m[idx].errors);
    if (st != VG_OK)
        return vg_errf(st, "detector %s: %s", be->name, vg_err_detail());
    clean_faces(res);
    return VG_OK;
}

static void count_skipped(struct vg_detect_engine *e, const char (*chain)[VG_NAME_MAX], int from,
                          int n)
{
    for (int k = from; k < n; k++) {
        int skip = backend_index(vg_detector_find(chain[k]));
        if (skip >= 0)
            vg_counter_inc(e->m[skip].skipped);
    }
}

vg_status vg_detect_engine_run(struct vg_detect_engine *e, const struct vg_camera_cfg *cam,
                               const struct vg_image *img, const struct vg_motion_hint *motion,
                               int want_faces, struct vg_chain_out *out)
{
    const char(*chain)[VG_NAME_MAX];
    int n = vg_cfg_chain(e->s->cfg, cam, &chain);
    struct vg_box regions[VG_DETECT_MAX_REGIONS];
    struct vg_detect_res *cur = &e->cur;
    struct vg_detect_req req = {.img = img, .cam = cam, .motion = motion,
                                .want_faces = want_faces};
    vg_status st = VG_OK;
    memset(out, 0, sizeof(*out));
    for (int i = 0; i < n; i++) {
        int idx = backend_index(vg_detector_find(chain[i]));
        if (idx < 0 || !e->ready[idx]) {
            st = vg_errf(VG_ERR_CONFIG, "detector %s is not initialised", chain[i]);
            break;
        }
        struct verdict *v = verdict_of(e->s, cam, i);
        if (i > 0 && v && reuse_verdict(e, idx, v, frame_time(img), out)) {
            vg_counter_inc(e->m[idx].reused);
            count_skipped(e, chain, i + 1, n);
            break;  /* out holds the previous stage's result, or nothing */
        }
        vg_status sst = run_stage(e, idx, &req, cur);
        if (sst != VG_OK) {
            if (i == 0)
                st = sst;
            else
                out->degraded = 1;  /* the earlier stage's result stands */
            count_skipped(e, chain, i + 1, n);
            VG_WARN("detector.failed", cam->id, "%s%s", vg_err_detail(),
                    i ? "; using the previous stage's result" : "");
            break;
        }
        size_t raw = cur->n;
        cur->n = vg_labels_screen(cam, cur->labels, cur->n);
        out->res = *cur;
        out->raw = raw;
        out->detector = vg_detector_backends[idx]->name;
        out->stages_run = i + 1;
        out->faces_searched = cur->faces_searched;
        int worth = worth_next(cam, cur);
        if (v && (vg_detector_backends[idx]->caps & VG_DETECT_REMOTE)) {
            atomic_store(&v->passed, worth);
            atomic_store(&v->at_us, frame_time(img));
        }
        if (i + 1 < n && !worth) {
            out->gated = 1;
            count_skipped(e, chain, i + 1, n);
            break;
        }
        if (!strcmp(chain[i], "motion")) {
            req.n_regions = vg_motion_regions(motion, cam->motion_max_area, regions,
                                              VG_DETECT_MAX_REGIONS);
            req.regions = regions;
        }
    }
    if (st == VG_OK)
        out->res.n = vg_watch_apply(cam, out->res.labels, out->res.n);
    return st;
}
