/* Small operations on packed RGB24 images (stride = width * 3): crop a
 * normalised box with a margin, draw a box outline. */
#ifndef VG_IMAGE_DRAW_H
#define VG_IMAGE_DRAW_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* A pixel rectangle inside an image. */
struct vg_rect {
    int x, y, w, h;
};

/* The pixel rectangle of normalised box (x, y, w, h) grown by margin pixels
 * on every side and clipped to the image; w or h 0 when nothing is left. */
struct vg_rect vg_rect_from_box(float x, float y, float w, float h, int margin, int img_w,
                                int img_h);

/* Copy r out of rgb into a new malloc'ed RGB24 buffer (*out). */
vg_status vg_rgb_crop(const uint8_t *rgb, int img_w, int img_h, struct vg_rect r, uint8_t **out);

/* Draw r's outline, thickness px wide, in colour (r, g, b), clipped. */
void vg_rgb_draw_rect(uint8_t *rgb, int img_w, int img_h, struct vg_rect r, int thickness,
                      uint8_t red, uint8_t green, uint8_t blue);

#endif
