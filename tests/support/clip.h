/* Real video for detector tests and benchmarks: frames of a clip through the
 * ffmpeg command line (MJPEG on a pipe, split at each end-of-image marker),
 * kept as JPEG and decoded RGB, with motion hints computed the way capture
 * computes them (lib/image/motion.h on a 320-wide grey image). Header-only,
 * like fixture.h. */
#ifndef VG_TEST_CLIP_H
#define VG_TEST_CLIP_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "detect/detector.h"
#include "image/jpeg.h"
#include "image/motion.h"

#define CLIP_VTEST "/usr/share/doc/opencv-doc/examples/data/vtest.avi"
#define CLIP_MAX_FRAMES 800
#define CLIP_MAX_JPEG (4 << 20)
#define CLIP_MOTION_W 320

struct clip {
    int n, w, h;
    uint8_t *jpeg[CLIP_MAX_FRAMES];
    size_t jpeg_len[CLIP_MAX_FRAMES];
    uint8_t *rgb[CLIP_MAX_FRAMES];
    struct vg_motion_hint hint[CLIP_MAX_FRAMES];
};

static inline void clip_keep(struct clip *c, const uint8_t *buf, size_t len)
{
    uint8_t *px = NULL;
    uint8_t *copy = malloc(len);
    if (!copy || vg_jpeg_decode_rgb(NULL, buf, len, 0, &px, &c->w, &c->h) != VG_OK) {
        free(copy);
        return;
    }
    memcpy(copy, buf, len);
    c->jpeg[c->n] = copy;
    c->jpeg_len[c->n] = len;
    c->rgb[c->n++] = px;
}

/* Frames of a command's MJPEG output (e.g. "ffmpeg ... -f image2pipe
 * -vcodec mjpeg -"), at most max; returns the count. */
static inline int clip_load_cmd(struct clip *c, const char *cmd, int max)
{
    uint8_t *buf = malloc(CLIP_MAX_JPEG);
    size_t len = 0;
    int ch, prev = -1;
    FILE *p = popen(cmd, "r");
    memset(c, 0, sizeof(*c));
    if (max > CLIP_MAX_FRAMES)
        max = CLIP_MAX_FRAMES;
    while (p && buf && (ch = getc(p)) != EOF && c->n < max && len < CLIP_MAX_JPEG) {
        buf[len++] = (uint8_t)ch;
        if (prev == 0xFF && ch == 0xD9) {
            clip_keep(c, buf, len);
            len = 0;
        }
        prev = ch;
    }
    if (p)
        pclose(p);
    free(buf);
    return c->n;
}

/* vtest.avi at fps ("5", "10", ...), scaled to width (0: as it is). */
static inline int clip_load_vtest(struct clip *c, const char *fps, int width, int max)
{
    char cmd[512], scale[32] = "";
    if (width)
        snprintf(scale, sizeof(scale), ",scale=%d:-2", width);
    snprintf(cmd, sizeof(cmd), "ffmpeg -v error -nostdin -i %s -vf fps=%s%s -frames:v %d "
             "-f image2pipe -vcodec mjpeg -q:v 3 -", CLIP_VTEST, fps, scale, max);
    return clip_load_cmd(c, cmd, max);
}

static inline void clip_free(struct clip *c)
{
    for (int i = 0; i < c->n; i++) {
        free(c->jpeg[i]);
        free(c->rgb[i]);
    }
    c->n = 0;
}

/* A clip on the heap (a few hundred KB: keep it off the stack), and its end. */
static inline struct clip *clip_create(void)
{
    return calloc(1, sizeof(struct clip));
}

static inline void clip_destroy(struct clip *c)
{
    if (!c)
        return;
    clip_free(c);
    free(c);
}

/* Motion as capture computes it: a CLIP_MOTION_W-wide grey image, default
 * threshold, minimum area and learning rate. Returns 0 on failure. */
static inline int clip_motion_hints(struct clip *c)
{
    int mw = CLIP_MOTION_W, mh = c->h * CLIP_MOTION_W / (c->w ? c->w : 1), ok = 1;
    uint8_t *grey = malloc((size_t)mw * (mh > 0 ? mh : 1));
    struct vg_motion *m = NULL;
    if (!grey || mh < VG_MOTION_MIN_DIM || vg_motion_create(&m, mw, mh, 25, 0.002, 0.05)) {
        free(grey);
        return 0;
    }
    for (int i = 0; i < c->n; i++) {
        struct vg_motion_result r;
        for (int y = 0; y < mh; y++)
            for (int x = 0; x < mw; x++) {
                const uint8_t *p =
                    c->rgb[i] + ((size_t)(y * c->h / mh) * c->w + (size_t)x * c->w / mw) * 3;
                grey[y * mw + x] = (uint8_t)((p[0] * 77 + p[1] * 150 + p[2] * 29) >> 8);
            }
        if (vg_motion_feed(m, grey, mw, &r) != VG_OK) {
            ok = 0;
            break;
        }
        struct vg_motion_hint *h = &c->hint[i];
        memset(h, 0, sizeof(*h));
        h->score = r.score;
        for (int k = 0; k < r.n_boxes && h->n < VG_DETECT_MAX_REGIONS; k++) {
            h->boxes[h->n] =
                (struct vg_box){r.boxes[k].x, r.boxes[k].y, r.boxes[k].w, r.boxes[k].h};
            h->fill[h->n++] = r.boxes[k].fill;
        }
    }
    vg_motion_destroy(m);
    free(grey);
    return ok;
}

#endif
