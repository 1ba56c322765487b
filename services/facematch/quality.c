#include "quality.h"

const char *fm_reject_name(enum fm_reject r)
{
    static const char *const names[] = {"ok", "too_small", "blurred", "low_confidence"};
    return r < FM__REJECTS ? names[r] : "?";
}

double fm_sharpness(const uint8_t *g, int w, int h)
{
    double sum = 0, sum2 = 0;
    long n = 0;
    for (int y = 1; y + 1 < h; y++)
        for (int x = 1; x + 1 < w; x++) {
            const uint8_t *p = g + (long)y * w + x;
            double l = (double)p[-1] + p[1] + p[-w] + p[w] - 4.0 * p[0];
            sum += l;
            sum2 += l * l;
            n++;
        }
    if (n == 0)
        return 0;
    double mean = sum / (double)n;
    return sum2 / (double)n - mean * mean;
}

enum fm_reject fm_quality(const struct vg_config *cfg, const uint8_t *grey, int width,
                          int height, float confidence, double *sharpness)
{
    *sharpness = 0;
    if (width < cfg->facematch.min_face_px || height < cfg->facematch.min_face_px)
        return FM_TOO_SMALL;
    /* 0: the detector did not say (a cascade has no score). */
    if (confidence > 0 && confidence < cfg->facematch.min_confidence)
        return FM_LOW_CONFIDENCE;
    *sharpness = fm_sharpness(grey, width, height);
    if (*sharpness < cfg->facematch.min_sharpness)
        return FM_BLURRED;
    return FM_OK;
}
