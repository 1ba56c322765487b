/* Object detectors behind one seam (the shape of curl's lib/vtls/): each
 * backend is one file with a const ops table that owns its configuration
 * keys, registered in one NULL-terminated list (registry.c). A detector gets
 * decoded pixels (and the JPEG they came from, for remote APIs), the camera's
 * settings, optional regions of interest and a deadline; it returns labels
 * with the raw name, the canonical category, a confidence and a box, and
 * optionally face boxes. The chain (chain.h) gates, filters and maps zones. */
#ifndef VG_DETECT_DETECTOR_H
#define VG_DETECT_DETECTOR_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "opts.h"
#include "status.h"

#define VG_LABEL_NAME_MAX 48
#define VG_LABEL_PARENTS 4
#define VG_DETECT_MAX_LABELS 64
#define VG_DETECT_MAX_FACES 16
#define VG_DETECT_MAX_REGIONS 16

/* Canonical categories (ARCHITECTURE.md, "Labels"). Append only. */
enum vg_category {
    VG_CAT_OTHER = 0,   /* a raw label with no canonical meaning ("Toy", "chair") */
    VG_CAT_PERSON,
    VG_CAT_PET,
    VG_CAT_VEHICLE,
    VG_CAT_PACKAGE,
    VG_CAT_FACE,
    VG_CAT_MOTION,
    VG_CAT__LAST
};

const char *vg_category_name(enum vg_category c);      /* "person", ..., "other" */
/* "person" -> VG_CAT_PERSON; -1 when s names no category. Case-insensitive. */
int vg_category_parse(const char *s);

/* A normalised box: 0..1 from the top-left corner of the image. */
struct vg_box {
    float x, y, w, h;
};

struct vg_label {
    char raw[VG_LABEL_NAME_MAX];        /* the backend's own name: "Human", "dog", "car" */
    char parents[VG_LABEL_PARENTS][VG_LABEL_NAME_MAX]; /* backend's parents/aliases */
    int n_parents;
    enum vg_category category;
    float confidence;                   /* 0..1 */
    struct vg_box box;                  /* all 0 for whole-image labels */
    uint32_t zones;                     /* bit i: inside the camera's zone i (chain sets it) */
};

struct vg_face_box {
    struct vg_box box;
    float confidence;                   /* 0..1 */
};

/* What a detector sees. rgb is packed RGB24 (stride = width * 3); jpeg is the
 * same image encoded, so remote backends send it without re-encoding. */
struct vg_image {
    const uint8_t *rgb;
    int width, height;
    const uint8_t *jpeg;
    size_t jpeg_len;
    int64_t capture_ts_us;      /* when the frame was captured (vg_now_us clock); 0: now */
};

/* Motion as capture saw it: boxes and the changed share of the image. */
struct vg_motion_hint {
    float score;
    size_t n;
    struct vg_box boxes[VG_DETECT_MAX_REGIONS];
    float fill[VG_DETECT_MAX_REGIONS];
};

struct vg_detect_req {
    const struct vg_image *img;
    const struct vg_camera_cfg *cam;
    const struct vg_motion_hint *motion;
    /* Regions worth looking at (merged motion boxes); n_regions 0 = whole image. */
    const struct vg_box *regions;
    size_t n_regions;
    int want_faces;                     /* also report face boxes if the backend can */
    int64_t deadline_us;                /* vg_now_us() clock; 0 = none */
};

struct vg_detect_res {
    size_t n;
    struct vg_label labels[VG_DETECT_MAX_LABELS];
    size_t n_faces;
    struct vg_face_box faces[VG_DETECT_MAX_FACES];
    int faces_searched;     /* the backend looked for faces (n_faces may still be 0) */
};

/* Capability bits. */
enum {
    VG_DETECT_LOCAL = 1 << 0,       /* runs in-process, no account */
    VG_DETECT_REMOTE = 1 << 1,      /* calls a service (cost, latency, outages) */
    VG_DETECT_FACES = 1 << 2,       /* can report face boxes */
    VG_DETECT_PIXELS = 1 << 3,      /* needs decoded rgb (else the JPEG is enough) */
};

struct vg_detector_backend {
    const char *name;                   /* "opencv": config key and chain entry */
    const char *summary;                /* one line for docs and "unknown" errors */
    unsigned caps;
    const struct vg_opt *opts;          /* its keys under detectors.<name>; NULL: none */
    size_t opts_size;                   /* bytes of its settings struct */
    /* Cross-field checks after the keys were bound (paths exist, url scheme...). */
    vg_status (*check)(const void *settings);
    /* Per worker thread: one state each, so backends need not be thread-safe. */
    vg_status (*init)(void **state, const void *settings, const struct vg_config *cfg);
    vg_status (*detect)(void *state, const struct vg_detect_req *req, struct vg_detect_res *res);
    void (*cleanup)(void *state);       /* NULL ok; state may be NULL */
};

/* The registry: NULL-terminated. */
extern const struct vg_detector_backend *const vg_detector_backends[];

const struct vg_detector_backend *vg_detector_find(const char *name);
/* "motion, opencv, rekognition, deepstack" into out, for error messages. */
void vg_detector_names(char *out, size_t cap);

/* Add a label to res (ignored when full); returns it or NULL. */
struct vg_label *vg_detect_res_add(struct vg_detect_res *res, const char *raw,
                                   enum vg_category cat, float confidence,
                                   const struct vg_box *box);

/* v clamped to 0..1; NaN becomes 0. */
float vg_unit(float v);

/* Clamp a box to the unit square; returns 0 when nothing is left of it. */
int vg_box_clip(struct vg_box *b);

#endif
