#include "mask.h"

#include <string.h>

/* Point-in-polygon at every pixel centre: O(pixels x points), but it runs
 * once per motion geometry (320x240 x 8 polygons of 32 points is ~20 M
 * tests, a few ms), never per frame. */
void cap_mask_rasterise(const struct vg_polygon *polys, int n, int w, int h, uint8_t *out)
{
    memset(out, 0, (size_t)w * (size_t)h);
    for (int y = 0; y < h; y++) {
        float fy = ((float)y + 0.5f) / (float)h;
        uint8_t *row = out + (size_t)y * (size_t)w;
        for (int x = 0; x < w; x++) {
            float fx = ((float)x + 0.5f) / (float)w;
            for (int i = 0; i < n && !row[x]; i++)
                row[x] = (uint8_t)vg_polygon_contains(&polys[i], fx, fy);
        }
    }
}
