/* Motion detection on a small grey image: a running-average background, a
 * per-pixel threshold, changed pixels grouped on a grid of 8x8 cells so one
 * moving person becomes one box, boxes below a minimum area dropped. Boxes
 * that are moving (they also changed since the previous frame) are learnt
 * 16x slower, so people leave no trails; boxes that stand still fade into
 * the background at the normal rate. Whatever was in the very first frame and
 * then leaves shows as a "ghost" box until the background has learnt the spot
 * (a few times 1/alpha frames).
 * Two things are not motion: changed pixels under the ignore mask
 * (vg_motion_set_mask: a tree in the wind, a busy road, a TV), and a change
 * of most of the image at once (vg_motion_set_max_area: the IR filter
 * switching at dusk, a bumped camera, auto-exposure), after which the
 * background is re-learnt from that frame.
 * All memory is allocated by vg_motion_create; feeding a frame allocates
 * nothing. Not thread-safe: one instance per camera. */
#ifndef VG_IMAGE_MOTION_H
#define VG_IMAGE_MOTION_H

#include <stdint.h>

#include "status.h"

#define VG_MOTION_MAX_BOXES 32
#define VG_MOTION_MIN_DIM 8
#define VG_MOTION_MAX_DIM 4096

/* Normalised to the image: 0..1 from the top-left corner. */
struct vg_motion_box {
    float x, y, w, h;
    float fill;             /* fraction of the box's pixels that changed, 0..1 */
};

struct vg_motion_result {
    float score;            /* fraction of the whole image that changed, 0..1
                             * (masked pixels never count as changed) */
    int learning;           /* 1: this frame only (re)initialised the background */
    int global_change;      /* 1: more than max_area changed: no boxes, background re-learnt */
    int n_boxes;            /* boxes[0..n_boxes), largest area first */
    struct vg_motion_box boxes[VG_MOTION_MAX_BOXES];
};

struct vg_motion;

/* width, height: size of the grey frames that will be fed (8..4096).
 * threshold: per-pixel |frame - background| above which a pixel changed (1..255).
 * min_area: smallest box kept, as a fraction of the image area (0..1).
 * alpha: background learning rate per frame (0..1; 0 = never adapt). */
vg_status vg_motion_create(struct vg_motion **out, int width, int height, int threshold,
                           double min_area, double alpha);
void vg_motion_destroy(struct vg_motion *m);

/* Forget the background: the next frame re-initialises it (after a seek,
 * a reconnect or a camera move, where the old background is meaningless). */
void vg_motion_reset(struct vg_motion *m);

/* Ignore change where mask[y * stride + x] is non-zero (mask: width x height
 * bytes as given to create). The mask is copied; NULL watches every pixel
 * again. Takes effect from the next frame. */
vg_status vg_motion_set_mask(struct vg_motion *m, const uint8_t *mask, int stride);

/* A frame where more than max_area (0..1) of the watched (unmasked) pixels
 * changed is a global change, not motion: it reports no boxes and becomes
 * the background. 1 (the default) turns the rule off. */
vg_status vg_motion_set_max_area(struct vg_motion *m, double max_area);

/* Compare one frame (width x height bytes, rows stride bytes apart) against
 * the background, then blend it into the background. The first frame after
 * create or reset only initialises the background and reports no motion. */
vg_status vg_motion_feed(struct vg_motion *m, const uint8_t *grey, int stride,
                         struct vg_motion_result *res);

#endif
