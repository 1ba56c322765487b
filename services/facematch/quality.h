/* Quality before identity: a crop too small, too blurred or found with too
 * little confidence would only buy a paid matcher's "no match" (or worse, a
 * wrong one). The gates apply to remote matchers (VG_FACE_CAP_REMOTE). */
#ifndef FM_QUALITY_H
#define FM_QUALITY_H

#include <stdint.h>

#include "config.h"

enum fm_reject { FM_OK = 0, FM_TOO_SMALL, FM_BLURRED, FM_LOW_CONFIDENCE, FM__REJECTS };

const char *fm_reject_name(enum fm_reject r);   /* "too_small", ... */

/* Variance of the 4-neighbour Laplacian over the grey image: low for blur
 * (no edges), higher for a sharp face. 0 for images under 3x3. */
double fm_sharpness(const uint8_t *grey, int width, int height);

/* The first gate the crop fails, FM_OK when it passes all. */
enum fm_reject fm_quality(const struct vg_config *cfg, const uint8_t *grey, int width,
                          int height, float confidence, double *sharpness);

#endif
