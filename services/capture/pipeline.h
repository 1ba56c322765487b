/* Per-frame image work in two steps: motion (scale to a small grey image,
 * compare with the background; every sampled frame) and, only for frames
 * that will be published, scale to YUV 4:2:0 at detect resolution and
 * encode JPEG. Scalers, buffers and the motion mask are built for the first
 * frame and rebuilt only when the source's size or format changes. */
#ifndef CAP_PIPELINE_H
#define CAP_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include <libavutil/frame.h>

#include "config.h"
#include "image/motion.h"
#include "status.h"

struct cap_output {
    uint8_t *jpeg;          /* malloc'ed; the caller frees it */
    size_t jpeg_len;
    int width, height;      /* of the JPEG */
    struct vg_motion_result motion;
};

struct cap_pipeline;

vg_status cap_pipeline_create(struct cap_pipeline **out, const struct vg_camera_cfg *cam);
void cap_pipeline_destroy(struct cap_pipeline *p);

/* Motion for one decoded frame into *motion (the camera's motion masks and
 * max_area applied). */
vg_status cap_pipeline_motion(struct cap_pipeline *p, const AVFrame *frame,
                              struct vg_motion_result *motion);

/* The JPEG of a frame already given to cap_pipeline_motion: sets jpeg,
 * jpeg_len, width and height of out (motion is the caller's). */
vg_status cap_pipeline_encode(struct cap_pipeline *p, const AVFrame *frame,
                              struct cap_output *out);

/* Re-learn the motion background from the next frame (after a seek or reconnect). */
void cap_pipeline_reset_motion(struct cap_pipeline *p);

/* The size the JPEG and motion image get for a width x height source:
 * never upscaled, aspect kept, even dimensions. */
void cap_scaled_size(int src_w, int src_h, int max_w, int *w, int *h);

#endif
