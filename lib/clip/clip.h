/* Clip providers behind one seam (the shape of the sinks and face
 * matchers): each provider is one file with a const ops table that owns its
 * configuration keys, bound from the `clips:` YAML section next to the
 * common keys (type, pre_roll_s, length_s), registered in one
 * NULL-terminated list (clip.c).
 *
 * A provider turns "camera C, detection at T" into a link a person can open
 * minutes later: the console's clip URL (local, assembled from the rolling
 * recording on request, assemble.h) or a Kinesis Video Streams HLS session
 * (kvs). The link is resolved when an alert is delivered, never stored. */
#ifndef VG_CLIP_CLIP_H
#define VG_CLIP_CLIP_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "opts.h"
#include "status.h"

#define VG_CLIP_URL_MAX 4096        /* room for a KVS session URL */
#define VG_CLIP_MAX_PRE_S 60
#define VG_CLIP_MAX_LENGTH_S 600

/* The common keys of `clips:`. */
struct vg_clip_common {
    char type[16];                  /* a registered provider: "local", "kvs" */
    int pre_roll_s;                 /* the clip starts this long before the detection */
    int length_s;                   /* and lasts this long from there */
};

struct vg_clip_ops {
    const char *name;
    const struct vg_opt *opts;      /* the provider's own keys in `clips:` */
    size_t settings_size;
    vg_status (*check)(const void *settings, const char *where);       /* optional */
    vg_status (*init)(void **state, const void *settings, const struct vg_config *cfg);
    /* c: the bound common keys (the clip is detect_us - pre_roll_s .. + length_s). */
    vg_status (*link)(void *state, const struct vg_clip_common *c,
                      const struct vg_camera_cfg *cam, int64_t detect_us, char *url,
                      size_t cap);
    /* 1 when cam has clips with this provider at all (it records; it has a
     * stream): link answers VG_ERR_NOT_FOUND for the others. */
    int (*covers)(void *state, const struct vg_camera_cfg *cam);
    void (*cleanup)(void *state);   /* optional */
};

extern const struct vg_clip_ops *const vg_clip_providers[];
const struct vg_clip_ops *vg_clip_provider_find(const char *name);

struct vg_clip_provider;

/* Bind the `clips:` section (no section: local with the defaults), check
 * and init the provider. */
vg_status vg_clip_open(struct vg_clip_provider **out, const struct vg_config *cfg);
void vg_clip_close(struct vg_clip_provider *p);
const char *vg_clip_type(const struct vg_clip_provider *p);
/* The bound common keys (pre-roll and length, e.g. for the console's defaults). */
const struct vg_clip_common *vg_clip_common(const struct vg_clip_provider *p);

/* The link for camera's clip around a detection at detect_us (from detect_us
 * - pre_roll_s to + length_s), resolved when an alert is delivered.
 * VG_ERR_NOT_FOUND: the camera has no recording (record off / no
 * kvs_stream); VG_ERR_TOO_LARGE when the link does not fit in cap. */
vg_status vg_clip_link(struct vg_clip_provider *p, const struct vg_camera_cfg *cam,
                       int64_t detect_us, char *url, size_t cap);

/* Whether cam has clips with p (so a failed link is an error, not a camera
 * without clips). */
int vg_clip_covers(struct vg_clip_provider *p, const struct vg_camera_cfg *cam);

/* Whether cam records locally: cam->record 1, or -1 with recording.enabled. */
int vg_clip_camera_records(const struct vg_config *cfg, const struct vg_camera_cfg *cam);

#endif
