#include "image/draw.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

struct vg_rect vg_rect_from_box(float x, float y, float w, float h, int margin, int img_w,
                                int img_h)
{
    struct vg_rect r = {0, 0, 0, 0};
    if (!(w > 0 && h > 0) || img_w <= 0 || img_h <= 0)
        return r;
    int x0 = clampi((int)floorf(x * (float)img_w) - margin, 0, img_w);
    int y0 = clampi((int)floorf(y * (float)img_h) - margin, 0, img_h);
    int x1 = clampi((int)ceilf((x + w) * (float)img_w) + margin, 0, img_w);
    int y1 = clampi((int)ceilf((y + h) * (float)img_h) + margin, 0, img_h);
    if (x1 > x0 && y1 > y0)
        r = (struct vg_rect){x0, y0, x1 - x0, y1 - y0};
    return r;
}

vg_status vg_rgb_crop(const uint8_t *rgb, int img_w, int img_h, struct vg_rect r, uint8_t **out)
{
    if (!rgb || r.w <= 0 || r.h <= 0 || r.x < 0 || r.y < 0 || r.x + r.w > img_w ||
        r.y + r.h > img_h)
        return vg_errf(VG_ERR_INVALID, "crop %dx%d+%d+%d outside %dx%d", r.w, r.h, r.x, r.y,
                       img_w, img_h);
    uint8_t *buf = malloc((size_t)r.w * r.h * 3);
    if (!buf)
        return vg_errf(VG_ERR_NOMEM, "crop: out of memory");
    for (int row = 0; row < r.h; row++)
        memcpy(buf + (size_t)row * r.w * 3, rgb + ((size_t)(r.y + row) * img_w + r.x) * 3,
               (size_t)r.w * 3);
    *out = buf;
    return VG_OK;
}

static void fill(uint8_t *rgb, int img_w, int img_h, int x0, int y0, int x1, int y1,
                 const uint8_t c[3])
{
    x0 = clampi(x0, 0, img_w), x1 = clampi(x1, 0, img_w);
    y0 = clampi(y0, 0, img_h), y1 = clampi(y1, 0, img_h);
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            memcpy(rgb + ((size_t)y * img_w + x) * 3, c, 3);
}

void vg_rgb_draw_rect(uint8_t *rgb, int img_w, int img_h, struct vg_rect r, int t, uint8_t red,
                      uint8_t green, uint8_t blue)
{
    const uint8_t c[3] = {red, green, blue};
    if (!rgb || r.w <= 0 || r.h <= 0 || t <= 0)
        return;
    fill(rgb, img_w, img_h, r.x, r.y, r.x + r.w, r.y + t, c);
    fill(rgb, img_w, img_h, r.x, r.y + r.h - t, r.x + r.w, r.y + r.h, c);
    fill(rgb, img_w, img_h, r.x, r.y, r.x + t, r.y + r.h, c);
    fill(rgb, img_w, img_h, r.x + r.w - t, r.y, r.x + r.w, r.y + r.h, c);
}
