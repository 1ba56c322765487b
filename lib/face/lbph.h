/* Local binary pattern histograms (LBPH) of a grey face, the features of the
 * "local" face matcher (match_local.c). Written from the published method
 * (Ojala, Pietikäinen, Mäenpää 2002: LBP(8,1) with uniform patterns; Ahonen,
 * Hadid, Pietikäinen 2004: a grid of cell histograms compared with the
 * chi-square distance), no other dependency than vigil's status.
 *
 *   1. The face rectangle of the grey image is resampled to size x size
 *      (area averaging where it shrinks, bilinear where it grows; samples
 *      outside the image repeat the edge), then blurred with a 3x3 binomial
 *      kernel (takes the edge off JPEG blocking and sensor noise).
 *   2. Each inner pixel gets its LBP(8,1) code: 8 neighbours on a circle of
 *      radius 1 (the diagonal ones interpolated bilinearly), bit p set when
 *      neighbour p >= the centre.
 *   3. Codes map to 59 bins: the 58 "uniform" patterns (at most two 0/1
 *      transitions around the circle) one bin each, every other code bin 58.
 *   4. The (size-2) x (size-2) code image is cut into grid x grid cells, one
 *      59-bin histogram each: the feature is grid * grid * 59 counts.
 *
 * Two features compare by the chi-square distance of their cell
 * histograms, each normalised to sum 1: sum over bins of (a-b)^2 / (a+b),
 * averaged over the cells, so it lies in 0..2 whatever the grid. */
#ifndef VG_FACE_LBPH_H
#define VG_FACE_LBPH_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define VG_LBPH_BINS 59
#define VG_LBPH_SIZE_MIN 32
#define VG_LBPH_SIZE_MAX 256
#define VG_LBPH_GRID_MIN 2
#define VG_LBPH_GRID_MAX 16

struct vg_lbph_params {
    int size;       /* the face is resampled to size x size, VG_LBPH_SIZE_MIN..MAX */
    int grid;       /* grid x grid cells, VG_LBPH_GRID_MIN..MAX */
};

/* A rectangle in pixels of the source image (may reach outside it). */
struct vg_lbph_rect {
    float x, y, w, h;
};

/* Counts in one feature: grid * grid * VG_LBPH_BINS. 0 for bad params. */
size_t vg_lbph_dim(const struct vg_lbph_params *p);
int vg_lbph_params_ok(const struct vg_lbph_params *p);

/* Pixels of the code image in cell (cx, cy): what its counts sum to. */
uint32_t vg_lbph_cell_area(const struct vg_lbph_params *p, int cx, int cy);

/* The feature of face rectangle r of a grey image (w x h, stride w) into
 * counts[vg_lbph_dim(p)]. VG_ERR_INVALID for bad params, an empty image or
 * a rectangle smaller than 1 pixel. */
vg_status vg_lbph_features(const struct vg_lbph_params *p, const uint8_t *grey, int w, int h,
                           struct vg_lbph_rect r, uint16_t *counts);

/* Counts to cell-normalised histograms (out[dim]); cells whose counts do not
 * sum to their area (a damaged feature) make it return -1, else 0. */
int vg_lbph_normalise(const struct vg_lbph_params *p, const uint16_t *counts, float *out);

/* Chi-square distance (0..2) of two normalised features of params p. Stops
 * early and returns a value > limit once the distance is known to exceed
 * limit (pass a large limit for the exact value). */
float vg_lbph_chi2(const struct vg_lbph_params *p, const float *a, const float *b, float limit);

#endif
