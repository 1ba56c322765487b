/* A camera's detector chain, e.g. [motion, opencv, rekognition]: each stage
 * runs only when the stage before it found something worth a closer look
 * (motion gates the local detector, the local detector gates the paid one).
 * Every stage's labels go through the camera's filters, object masks and
 * zones; the deciding stage's labels then through the watch list.
 *
 * Settings are bound once per process (the detectors: section of the
 * configuration, each backend's own keys); an engine holds one state per
 * backend for one worker thread. */
#ifndef VG_DETECT_CHAIN_H
#define VG_DETECT_CHAIN_H

#include "config.h"
#include "detect/detector.h"
#include "status.h"

struct vg_detect_settings;
struct vg_detect_engine;

/* Bind detectors.<name> for every backend (defaults, YAML, environment),
 * run each backend's check, and check every camera's chain names a known
 * backend. Errors name file:line. */
vg_status vg_detect_settings_load(struct vg_detect_settings **out, const struct vg_config *cfg);
void vg_detect_settings_destroy(struct vg_detect_settings *s);
const void *vg_detect_settings_get(const struct vg_detect_settings *s,
                                   const struct vg_detector_backend *be);

/* Initialise every backend that some camera's chain uses. */
vg_status vg_detect_engine_create(struct vg_detect_engine **out,
                                  const struct vg_detect_settings *s);
void vg_detect_engine_destroy(struct vg_detect_engine *e);

struct vg_chain_out {
    struct vg_detect_res res;   /* the deciding stage's labels that passed the watch list,
                                 * and its face boxes */
    size_t raw;                 /* labels the deciding stage returned */
    const char *detector;       /* the deciding stage */
    int stages_run;
    int gated;                  /* a stage found nothing worth the next one */
    int degraded;               /* a later stage failed; an earlier result stands */
    int reused;                 /* a remote stage's recent verdict on this camera was
                                 * reused instead of a call (dispatch.remote_interval_ms) */
    int faces_searched;         /* the deciding stage looked for faces itself (res.n_faces
                                 * may be 0): dispatch's cascade need not look again */
};

/* Run cam's chain on one image. Fails only when the first stage fails. */
vg_status vg_detect_engine_run(struct vg_detect_engine *e, const struct vg_camera_cfg *cam,
                               const struct vg_image *img, const struct vg_motion_hint *motion,
                               int want_faces, struct vg_chain_out *out);

/* ---- the pieces, exposed for tests ------------------------------------- */

/* 1 when label l satisfies watch entry w (label = category, raw name or a
 * parent, case-insensitive; confidence; zones). */
int vg_watch_matches(const struct vg_watch *w, const struct vg_label *l);
/* Keep the labels cam watches (all of them when its watch list is empty). */
size_t vg_watch_apply(const struct vg_camera_cfg *cam, struct vg_label *labels, size_t n);
/* Drop labels failing cam's filters or lying in an object mask; set zones. */
size_t vg_labels_screen(const struct vg_camera_cfg *cam, struct vg_label *labels, size_t n);
/* Merged, padded regions around motion boxes; returns the count. */
size_t vg_motion_regions(const struct vg_motion_hint *m, double max_area, struct vg_box *out,
                         size_t max);

#endif
