/* LBPH features and their chi-square distance: see lbph.h for the method. */
#include "face/lbph.h"

#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#define DIAG 0.70710678f    /* sin 45°: the diagonal neighbours of LBP(8,1) */

size_t vg_lbph_dim(const struct vg_lbph_params *p)
{
    return vg_lbph_params_ok(p) ? (size_t)p->grid * (size_t)p->grid * VG_LBPH_BINS : 0;
}

int vg_lbph_params_ok(const struct vg_lbph_params *p)
{
    return p && p->size >= VG_LBPH_SIZE_MIN && p->size <= VG_LBPH_SIZE_MAX &&
           p->grid >= VG_LBPH_GRID_MIN && p->grid <= VG_LBPH_GRID_MAX;
}

/* Cell i of n code pixels cut into g: [i*n/g, (i+1)*n/g). */
static int cell_lo(int i, int n, int g) { return i * n / g; }

uint32_t vg_lbph_cell_area(const struct vg_lbph_params *p, int cx, int cy)
{
    int n = p->size - 2, g = p->grid;
    return (uint32_t)(cell_lo(cx + 1, n, g) - cell_lo(cx, n, g)) *
           (uint32_t)(cell_lo(cy + 1, n, g) - cell_lo(cy, n, g));
}

/* ---- uniform patterns -------------------------------------------------------------- */

static uint8_t uniform_bin[256];

static void uniform_fill(void)
{
    int next = 0;
    for (int code = 0; code < 256; code++) {
        unsigned rot = ((unsigned)code >> 1 | (unsigned)code << 7) & 0xffu;
        int transitions = __builtin_popcount((unsigned)code ^ rot);
        uniform_bin[code] = (uint8_t)(transitions <= 2 ? next++ : VG_LBPH_BINS - 1);
    }
}

static void uniform_init(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, uniform_fill);
}

/* ---- resampling ---------------------------------------------------------------------- */

/* One axis: output i reads source samples first[i] .. first[i] + n - 1
 * (clamped to the image) with weights w[i * n ..]. */
struct taps {
    int n;
    int *first;
    float *w;
};

static void taps_free(struct taps *t)
{
    free(t->first);
    free(t->w);
}

/* Source interval [start, start + len) onto out samples: area weights when
 * shrinking (each output averages what it covers), bilinear when growing. */
static vg_status taps_make(struct taps *t, float start, float len, int out)
{
    float scale = len / (float)out;
    t->n = scale > 1 ? (int)ceilf(scale) + 1 : 2;
    t->first = calloc((size_t)out, sizeof(*t->first));
    t->w = calloc((size_t)out * (size_t)t->n, sizeof(*t->w));
    if (!t->first || !t->w)
        return vg_errf(VG_ERR_NOMEM, "lbph: no memory to resample");
    for (int i = 0; i < out; i++) {
        float *w = t->w + (size_t)i * (size_t)t->n;
        if (scale > 1) {
            float a = start + (float)i * scale, b = a + scale;
            t->first[i] = (int)floorf(a);
            for (int k = 0; k < t->n; k++) {
                float lo = fmaxf(a, (float)(t->first[i] + k));
                float hi = fminf(b, (float)(t->first[i] + k + 1));
                w[k] = hi > lo ? (hi - lo) / scale : 0;
            }
        } else {
            float c = start + ((float)i + 0.5f) * scale - 0.5f;
            t->first[i] = (int)floorf(c);
            w[1] = c - (float)t->first[i];
            w[0] = 1 - w[1];
        }
    }
    return VG_OK;
}

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* r of grey (w x h) resampled to out (s x s floats), separably. */
static vg_status resample(const uint8_t *grey, int w, int h, struct vg_lbph_rect r, int s,
                          float *out)
{
    struct taps tx = {0}, ty = {0};
    float *rows = NULL;
    vg_status st = taps_make(&tx, r.x, r.w, s);
    if (st == VG_OK)
        st = taps_make(&ty, r.y, r.h, s);
    if (st != VG_OK)
        goto out;
    int y_lo = clampi(ty.first[0], 0, h - 1);
    int y_hi = clampi(ty.first[s - 1] + ty.n - 1, 0, h - 1);
    rows = malloc((size_t)(y_hi - y_lo + 1) * (size_t)s * sizeof(*rows));
    if (!rows) {
        st = vg_errf(VG_ERR_NOMEM, "lbph: no memory to resample");
        goto out;
    }
    for (int y = y_lo; y <= y_hi; y++) {
        const uint8_t *src = grey + (size_t)y * (size_t)w;
        float *dst = rows + (size_t)(y - y_lo) * (size_t)s;
        for (int i = 0; i < s; i++) {
            const float *wt = tx.w + (size_t)i * (size_t)tx.n;
            float v = 0;
            for (int k = 0; k < tx.n; k++)
                v += wt[k] * src[clampi(tx.first[i] + k, 0, w - 1)];
            dst[i] = v;
        }
    }
    for (int j = 0; j < s; j++) {
        const float *wt = ty.w + (size_t)j * (size_t)ty.n;
        for (int i = 0; i < s; i++) {
            float v = 0;
            for (int k = 0; k < ty.n; k++) {
                int y = clampi(ty.first[j] + k, 0, h - 1);
                v += wt[k] * rows[(size_t)(y - y_lo) * (size_t)s + (size_t)i];
            }
            out[(size_t)j * (size_t)s + (size_t)i] = v;
        }
    }
out:
    taps_free(&tx);
    taps_free(&ty);
    free(rows);
    return st;
}

/* 3x3 binomial blur of img (s x s) in place, edges repeated; tmp s*s. */
static void blur(float *img, float *tmp, int s)
{
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            const float *row = img + (size_t)y * (size_t)s;
            tmp[(size_t)y * (size_t)s + (size_t)x] =
                (row[x > 0 ? x - 1 : 0] + 2 * row[x] + row[x < s - 1 ? x + 1 : s - 1]) / 4;
        }
    for (int y = 0; y < s; y++)
        for (int x = 0; x < s; x++) {
            size_t up = (size_t)(y > 0 ? y - 1 : 0) * (size_t)s;
            size_t down = (size_t)(y < s - 1 ? y + 1 : s - 1) * (size_t)s;
            img[(size_t)y * (size_t)s + (size_t)x] =
                (tmp[up + (size_t)x] + 2 * tmp[(size_t)y * (size_t)s + (size_t)x] +
                 tmp[down + (size_t)x]) / 4;
        }
}

/* ---- codes and histograms --------------------------------------------------------------- */

/* Neighbour p of LBP(8,1), counter-clockwise from the right: the pixel to
 * its upper left (dx, dy) and the bilinear weights of that pixel's 2 x 2. */
struct neighbour {
    int dx, dy;
    float w00, w01, w10, w11;
};

static void neighbours_init(struct neighbour nb[8])
{
    static const float ox[8] = {1, DIAG, 0, -DIAG, -1, -DIAG, 0, DIAG};
    static const float oy[8] = {0, -DIAG, -1, -DIAG, 0, DIAG, 1, DIAG};
    for (int p = 0; p < 8; p++) {
        float fx = floorf(ox[p]), fy = floorf(oy[p]);
        float tx = ox[p] - fx, ty = oy[p] - fy;
        nb[p].dx = (int)fx;
        nb[p].dy = (int)fy;
        nb[p].w00 = (1 - tx) * (1 - ty);
        nb[p].w01 = tx * (1 - ty);
        nb[p].w10 = (1 - tx) * ty;
        nb[p].w11 = tx * ty;
    }
}

static int lbp_code(const float *img, int s, int x, int y, const struct neighbour nb[8])
{
    float c = img[(size_t)y * (size_t)s + (size_t)x];
    int code = 0;
    for (int p = 0; p < 8; p++) {
        const float *q = img + (size_t)(y + nb[p].dy) * (size_t)s + (size_t)(x + nb[p].dx);
        float v = nb[p].w00 * q[0];
        if (nb[p].w01 > 0)
            v += nb[p].w01 * q[1];
        if (nb[p].w10 > 0)
            v += nb[p].w10 * q[s];
        if (nb[p].w11 > 0)
            v += nb[p].w11 * q[s + 1];
        /* Axis neighbours are exact pixels; the tolerance keeps a flat
         * patch's interpolated diagonals from flickering around c. */
        if (v >= c - 1e-3f)
            code |= 1 << p;
    }
    return code;
}

vg_status vg_lbph_features(const struct vg_lbph_params *p, const uint8_t *grey, int w, int h,
                           struct vg_lbph_rect r, uint16_t *counts)
{
    if (!vg_lbph_params_ok(p))
        return vg_errf(VG_ERR_INVALID, "lbph: size %d grid %d out of range",
                       p ? p->size : 0, p ? p->grid : 0);
    if (!grey || w <= 0 || h <= 0 || !(r.w >= 1) || !(r.h >= 1))
        return vg_errf(VG_ERR_INVALID, "lbph: no image or an empty face rectangle");
    int s = p->size, n = s - 2, g = p->grid;
    float *img = malloc((size_t)s * (size_t)s * sizeof(*img));
    float *tmp = malloc((size_t)s * (size_t)s * sizeof(*tmp));
    vg_status st = img && tmp ? resample(grey, w, h, r, s, img)
                              : vg_errf(VG_ERR_NOMEM, "lbph: no memory for the face");
    if (st == VG_OK) {
        struct neighbour nb[8];
        uniform_init();
        neighbours_init(nb);
        blur(img, tmp, s);
        memset(counts, 0, vg_lbph_dim(p) * sizeof(*counts));
        for (int cy = 0; cy < g; cy++)
            for (int cx = 0; cx < g; cx++) {
                uint16_t *hist = counts + ((size_t)cy * (size_t)g + (size_t)cx) * VG_LBPH_BINS;
                for (int y = cell_lo(cy, n, g); y < cell_lo(cy + 1, n, g); y++)
                    for (int x = cell_lo(cx, n, g); x < cell_lo(cx + 1, n, g); x++)
                        hist[uniform_bin[lbp_code(img, s, x + 1, y + 1, nb)]]++;
            }
    }
    free(img);
    free(tmp);
    return st;
}

int vg_lbph_normalise(const struct vg_lbph_params *p, const uint16_t *counts, float *out)
{
    for (int cy = 0; cy < p->grid; cy++)
        for (int cx = 0; cx < p->grid; cx++) {
            size_t off = ((size_t)cy * (size_t)p->grid + (size_t)cx) * VG_LBPH_BINS;
            uint32_t area = vg_lbph_cell_area(p, cx, cy), sum = 0;
            for (int b = 0; b < VG_LBPH_BINS; b++)
                sum += counts[off + (size_t)b];
            if (sum != area || area == 0)
                return -1;
            for (int b = 0; b < VG_LBPH_BINS; b++)
                out[off + (size_t)b] = (float)counts[off + (size_t)b] / (float)area;
        }
    return 0;
}

float vg_lbph_chi2(const struct vg_lbph_params *p, const float *a, const float *b, float limit)
{
    int cells = p->grid * p->grid;
    float sum = 0, stop = limit * (float)cells;
    for (int c = 0; c < cells; c++) {
        const float *x = a + (size_t)c * VG_LBPH_BINS, *y = b + (size_t)c * VG_LBPH_BINS;
        for (int k = 0; k < VG_LBPH_BINS; k++) {
            float t = x[k] + y[k];
            if (t > 0) {
                float d = x[k] - y[k];
                sum += d * d / t;
            }
        }
        if (sum > stop)
            return sum / (float)cells;
    }
    return sum / (float)cells;
}
