/* Face matchers behind one seam (the shape of curl's lib/vtls/, as the
 * detectors and sinks): each matcher is one file with a const ops table
 * that owns its configuration keys (bound from `matchers.<name>` in the
 * YAML), registered in one NULL-terminated list (registry.c).
 *
 * A matcher answers "who is this face?" for one face crop (a JPEG, already
 * cropped around one face by dispatch) and manages its own face library:
 * enrolment of a person from several images, listing, removal. A miss is a
 * normal result (matched = 0), never an error: errors are for a matcher
 * that could not answer (a remote that is down, a library that is
 * missing), and the caller still publishes an unmatched FaceMatch. */
#ifndef VG_FACE_MATCHER_H
#define VG_FACE_MATCHER_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "opts.h"
#include "status.h"

struct vg_redis;

#define VG_FACE_ID_MAX 64           /* person ids, face ids */
#define VG_FACE_MAX_IMAGES 32       /* images per enrolment */

/* A face image as a matcher receives it: the JPEG (remote APIs send it as
 * is) and, decoded once by the caller, its grey pixels. */
struct vg_face_image {
    const uint8_t *jpeg;
    size_t jpeg_len;
    const uint8_t *grey;            /* width * height bytes, row-major */
    int width, height;
};

struct vg_face_match {
    int matched;                    /* 0: nobody known, or below the threshold */
    char person_id[VG_FACE_ID_MAX]; /* the enrolled name (Rekognition: ExternalImageId) */
    char face_id[VG_FACE_ID_MAX];   /* the matcher's id of the face that matched */
    float similarity;               /* 0..1 of the best candidate, matched or not */
};

/* One enrolled face, for listings. */
struct vg_face_entry {
    char person_id[VG_FACE_ID_MAX];
    char face_id[VG_FACE_ID_MAX];
};

/* Where a matcher finds what it shares with the rest of vigil. */
struct vg_face_env {
    const struct vg_config *cfg;
    struct vg_redis *redis;         /* may be NULL (vigilctl without Redis) */
};

#define VG_FACE_CAP_REMOTE 0x1u     /* a paid or network API: quality gates apply */
#define VG_FACE_CAP_GREY 0x2u       /* wants the grey pixels decoded */

struct vg_face_matcher_ops {
    const char *name;
    unsigned caps;
    const struct vg_opt *opts;
    size_t settings_size;
    vg_status (*check)(const void *settings, const char *where);
    vg_status (*init)(void **state, const void *settings, const struct vg_face_env *env);
    vg_status (*match)(void *state, const struct vg_face_image *img, struct vg_face_match *out);
    /* Replace person's faces with these images (all at once: some APIs
     * replace a person's faces on every register call). Optional. */
    vg_status (*enrol)(void *state, const char *person, const struct vg_face_image *imgs,
                       size_t n);
    /* Every enrolled face; *out malloc'ed, caller frees. Optional. */
    vg_status (*list)(void *state, struct vg_face_entry **out, size_t *n);
    /* Forget a person; VG_ERR_NOT_FOUND when unknown. Optional. */
    vg_status (*remove)(void *state, const char *person);
    /* The library changed elsewhere (another replica, vigilctl): reload. Optional. */
    vg_status (*reload)(void *state);
    void (*cleanup)(void *state);
};

extern const struct vg_face_matcher_ops *const vg_face_matchers[];

const struct vg_face_matcher_ops *vg_face_matcher_find(const char *name);
void vg_face_matcher_names(char *out, size_t cap);

/* The configured matcher (facematch.matcher) with its settings bound from
 * `matchers.<name>` (defaults, the map, the environment) and checked;
 * `matchers.<other>` sections must name registered matchers. */
struct vg_face_matcher {
    const struct vg_face_matcher_ops *ops;
    void *settings;
    void *state;
};
/* Bind and check only (--check-config, vigilctl check-config). */
vg_status vg_face_matcher_check(const struct vg_config *cfg);
/* Bind, check and init. */
vg_status vg_face_matcher_open(struct vg_face_matcher **out, const struct vg_face_env *env);
void vg_face_matcher_close(struct vg_face_matcher *m);

#endif
