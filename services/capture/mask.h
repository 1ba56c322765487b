/* motion.masks: the camera's polygons (normalised 0..1) rasterised into the
 * byte mask the motion module ignores change under, at motion resolution. */
#ifndef CAP_MASK_H
#define CAP_MASK_H

#include <stdint.h>

#include "config.h"

/* out: w x h bytes, row r at out + r * w; 1 where the centre of the pixel
 * lies inside any of the n polygons, else 0. */
void cap_mask_rasterise(const struct vg_polygon *polys, int n, int w, int h, uint8_t *out);

#endif
