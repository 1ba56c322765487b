/* bench.detect_opencv: what the opencv detector costs on vtest.avi.
 *
 *  1. HOG people on whole frames at 640 and 1280 px width (max_width 0:
 *     really at that width) against HOG on crops around the motion regions
 *     (lib/image/motion.h on the same frames, merged as the chain merges
 *     them), each next to a JPEG decode of the same frame in the same run;
 *  2. frames analysed per second by the [motion, opencv] chain with default
 *     settings on two threads, one engine each, motion gating included.
 *
 * OpenCV's own threads are set to 1 (detectors.opencv.threads), so a figure
 * is one core's. Arguments key=value set more detectors.opencv keys, for
 * tuning (bench_detect_opencv hog_scale=1.1). Prints figures and exits 0; it
 * fails only when something does not run at all (timings on shared machines
 * are noise). */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "config.h"
#include "detect/chain.h"
#include "detect/detector.h"
#include "image/jpeg.h"
#include "image/motion.h"
#include "opts.h"
#include "timeutil.h"

static void die(const char *what)
{
    fprintf(stderr, "bench.detect_opencv: %s: %s\n", what, vg_err_detail());
    exit(1);
}

/* vtest.avi at fps, scaled to width w (0: native), with motion hints. */
static struct clip *load(const char *fps, int w, int max)
{
    struct clip *c = clip_create();
    if (!c || clip_load_vtest(c, fps, w, max) == 0)
        die("no frames from ffmpeg (vtest.avi: Debian package opencv-doc)");
    if (!clip_motion_hints(c))
        die("motion");
    return c;
}

/* ---- 1: per-frame cost ------------------------------------------------------------ */

static const struct vg_detector_backend *be;
static char **extra;     /* key=value from the command line */
static int n_extra;

static void set(void *s, const char *key, const char *value)
{
    for (const struct vg_opt *o = be->opts; o->key; o++)
        if (!strcmp(o->key, key)) {
            if (vg_opts_set(o, s, value, "bench ") != VG_OK)
                die(key);
            return;
        }
    fprintf(stderr, "bench.detect_opencv: no key %s\n", key);
    exit(1);
}

static void *open_backend(const char *regions, const char *max_width, void **settings)
{
    void *s = calloc(1, be->opts_size), *state = NULL;
    const char *kv[][2] = {{"faces", "false"}, {"regions", regions}, {"max_width", max_width},
                           {"threads", "1"}};
    vg_opts_defaults(be->opts, s);
    for (size_t k = 0; k < sizeof(kv) / sizeof(kv[0]); k++)
        set(s, kv[k][0], kv[k][1]);
    for (int k = 0; k < n_extra; k++) {
        char key[64];
        const char *eq = strchr(extra[k], '=');
        snprintf(key, sizeof(key), "%.*s", eq ? (int)(eq - extra[k]) : 0, extra[k]);
        set(s, key, eq ? eq + 1 : "");
    }
    if (be->check(s) != VG_OK || be->init(&state, s, NULL) != VG_OK)
        die("opencv init");
    *settings = s;
    return state;
}

/* ms per frame of HOG over the clip's frames with motion (crops: on their regions). */
static double hog_ms(const struct clip *c, const char *regions, const char *max_width,
                     double *area, int *persons)
{
    void *s, *state = open_backend(regions, max_width, &s);
    struct vg_detect_res *res = malloc(sizeof(*res));
    int frames = 0;
    int64_t spent = 0;
    *area = 0, *persons = 0;
    for (int i = 1; i < c->n; i++) {
        struct vg_box reg[VG_DETECT_MAX_REGIONS];
        size_t n = vg_motion_regions(&c->hint[i], 0.8, reg, VG_DETECT_MAX_REGIONS);
        struct vg_image img = {.rgb = c->rgb[i], .width = c->w, .height = c->h};
        struct vg_detect_req req = {.img = &img, .regions = reg, .n_regions = n};
        if (n == 0)
            continue;
        for (size_t k = 0; k < n; k++)
            *area += (double)reg[k].w * reg[k].h;
        memset(res, 0, sizeof(*res));
        int64_t t0 = vg_mono_us();
        if (be->detect(state, &req, res) != VG_OK)
            die("detect");
        spent += vg_mono_us() - t0;
        frames++;
        *persons += res->n > 0;
    }
    *area /= frames ? frames : 1;
    free(res);
    be->cleanup(state);
    free(s);
    return frames ? spent / 1000.0 / frames : 0;
}

static double decode_ms(const struct clip *c)
{
    struct vg_jpeg *j = NULL;
    int64_t t0;
    if (vg_jpeg_create(&j) != VG_OK)
        die("jpeg");
    t0 = vg_mono_us();
    for (int i = 0; i < c->n; i++) {
        uint8_t *px = NULL;
        int w, h;
        if (vg_jpeg_decode_rgb(j, c->jpeg[i], c->jpeg_len[i], 0, &px, &w, &h) != VG_OK)
            die("decode");
        free(px);
    }
    double ms = (vg_mono_us() - t0) / 1000.0 / c->n;
    vg_jpeg_destroy(j);
    return ms;
}

static void per_frame(int width)
{
    struct clip *c = load("1", width, 40);
    double area, dec;
    int pw, pc;
    dec = decode_ms(c);
    double whole = hog_ms(c, "whole", "0", &area, &pw);
    double crops = hog_ms(c, "crops", "0", &area, &pc);
    printf("HOG %4dx%-4d whole frame %7.1f ms (%5.1fx JPEG decode %.2f ms), person in %d\n",
           c->w, c->h, whole, whole / dec, dec, pw);
    printf("HOG %4dx%-4d motion crops %6.1f ms (%5.1fx JPEG decode), %.0f%% of the frame, "
           "person in %d; crops %.1fx faster\n", c->w, c->h, crops, crops / dec, 100 * area, pc,
           crops > 0 ? whole / crops : 0);
    clip_destroy(c);
}

/* ---- 2: two threads, one engine each ------------------------------------------------ */

struct worker {
    pthread_t thread;
    struct vg_detect_engine *engine;
    const struct vg_config *cfg;
    const struct clip *c;
    int first, analysed, gated, persons;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct vg_chain_out *out = malloc(sizeof(*out));
    for (int i = w->first; i < w->c->n; i += 2) {
        struct vg_image img = {.rgb = w->c->rgb[i], .width = w->c->w, .height = w->c->h};
        if (vg_detect_engine_run(w->engine, &w->cfg->cameras[0], &img, &w->c->hint[i], 0, out) !=
            VG_OK)
            die("chain");
        w->analysed++;
        w->gated += out->gated;
        w->persons += out->res.n > 0;
    }
    free(out);
    return NULL;
}

static void two_threads(void)
{
    static struct vg_config cfg;
    struct vg_detect_settings *s = NULL;
    struct worker w[2];
    char path[] = "/tmp/vigil-bench-opencv-XXXXXX";
    char yaml[1024];
    int used = snprintf(yaml, sizeof(yaml), "dispatch: {detectors: [motion, opencv]}\n"
                        "cameras:\n  - {id: vtest, url: " CLIP_VTEST ", watch: [person]}\n"
                        "detectors:\n  opencv:\n    threads: 1\n");
    for (int k = 0; k < n_extra && used < (int)sizeof(yaml); k++) {
        const char *eq = strchr(extra[k], '=');
        used += snprintf(yaml + used, sizeof(yaml) - (size_t)used, "    %.*s: %s\n",
                         eq ? (int)(eq - extra[k]) : 0, extra[k], eq ? eq + 1 : "");
    }
    int fd = mkstemp(path);
    if (fd < 0 || used >= (int)sizeof(yaml) || write(fd, yaml, (size_t)used) != (ssize_t)used)
        die("temp config");
    close(fd);
    if (vg_cfg_load(&cfg, path) != VG_OK || vg_detect_settings_load(&s, &cfg) != VG_OK)
        die("config");
    struct clip *c = load("5", 0, 400);
    memset(w, 0, sizeof(w));
    for (int t = 0; t < 2; t++) {
        w[t].cfg = &cfg, w[t].c = c, w[t].first = t;
        if (vg_detect_engine_create(&w[t].engine, s) != VG_OK)
            die("engine");
    }
    int64_t t0 = vg_mono_us();
    for (int t = 0; t < 2; t++)
        pthread_create(&w[t].thread, NULL, worker_main, &w[t]);
    for (int t = 0; t < 2; t++)
        pthread_join(w[t].thread, NULL);
    double secs = (vg_mono_us() - t0) / 1e6;
    int n = w[0].analysed + w[1].analysed, gated = w[0].gated + w[1].gated;
    int persons = w[0].persons + w[1].persons;
    printf("chain [motion, opencv], 2 threads, vtest %dx%d at 5 fps: %d frames in %.2f s = "
           "%.1f frames/s analysed (%d gated by motion), person in %d (%.0f%%)\n", c->w, c->h,
           n, secs, n / secs, gated, persons, 100.0 * persons / n);
    for (int t = 0; t < 2; t++)
        vg_detect_engine_destroy(w[t].engine);
    vg_detect_settings_destroy(s);
    unlink(path);
    clip_destroy(c);
}

int main(int argc, char **argv)
{
    extra = argv + 1;
    n_extra = argc - 1;
    if (access(CLIP_VTEST, R_OK) != 0) {
        fprintf(stderr, "bench.detect_opencv: %s missing (Debian package opencv-doc)\n",
                CLIP_VTEST);
        return 1;
    }
    be = vg_detector_find("opencv");
    if (!be)
        die("no opencv backend");
    per_frame(640);
    per_frame(1280);
    two_threads();
    return 0;
}
