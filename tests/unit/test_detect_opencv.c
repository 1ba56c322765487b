/* The opencv detector on real parts: people in vtest.avi (Debian's
 * opencv-doc), a generated clip with motion and no people, a tiny Darknet
 * network this test writes itself (decoding, not accuracy), bad files and bad
 * images, and the [motion, opencv] chain from a YAML file. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include <math.h>

#include "clip.h"
#include "config.h"
#include "detect/chain.h"
#include "detect/detector.h"
#include "detect_rig.h"
#include "image/jpeg.h"
#include "image/motion.h"
#include "opts.h"
#include "timeutil.h"

static const struct vg_detector_backend *be;
static char tmpdir[] = "/tmp/vigil-opencv-XXXXXX";

/* ---- frames ------------------------------------------------------------------- */

/* vtest.avi at fps, at most max frames (see clip.h). */
static struct clip *vtest(const char *fps, int max)
{
    struct clip *c = clip_create();
    assert_non_null(c);
    if (access(CLIP_VTEST, R_OK) != 0)
        fail_msg("%s missing (Debian package opencv-doc, scripts/deps)", CLIP_VTEST);
    clip_load_vtest(c, fps, 0, max);
    return c;
}

/* ---- settings and state --------------------------------------------------------- */

static void *settings_new(void)
{
    void *s = calloc(1, be->opts_size);
    assert_non_null(s);
    vg_opts_defaults(be->opts, s);
    return s;
}

static void set(void *s, const char *key, const char *value)
{
    for (const struct vg_opt *o = be->opts; o->key; o++)
        if (!strcmp(o->key, key)) {
            assert_vg_ok(vg_opts_set(o, s, value, "test "));
            return;
        }
    fail_msg("no key %s", key);
}

static void *open_state(void *s)
{
    void *state = NULL;
    assert_vg_ok(be->check(s));
    assert_vg_ok(be->init(&state, s, NULL));
    return state;
}

static vg_status run(void *state, const uint8_t *rgb, int w, int h, const struct vg_box *regions,
                     size_t n, struct vg_detect_res *res)
{
    struct vg_image img = {.rgb = rgb, .width = w, .height = h};
    struct vg_detect_req req = {.img = &img, .regions = regions, .n_regions = n,
                                .want_faces = 1, .deadline_us = vg_now_us() + 60000000};
    memset(res, 0, sizeof(*res));
    return be->detect(state, &req, res);
}

/* Print person labels where there should be none, for the failure message. */
static void show_persons(const char *clip, int frame, const struct vg_detect_res *res)
{
    for (size_t i = 0; i < res->n; i++) {
        const struct vg_label *l = &res->labels[i];
        if (l->category == VG_CAT_PERSON)
            printf("  %s frame %d: person %.2f at %.2f,%.2f %.2fx%.2f\n", clip, frame,
                   l->confidence, l->box.x, l->box.y, l->box.w, l->box.h);
    }
}

static int count_category(const struct vg_detect_res *res, enum vg_category cat, float min_conf)
{
    int n = 0;
    for (size_t i = 0; i < res->n; i++)
        n += res->labels[i].category == cat && res->labels[i].confidence >= min_conf;
    return n;
}

static char *tmp_path(const char *name)
{
    static char path[4][256];
    static int k;
    char *p = path[k++ % 4];
    snprintf(p, sizeof(path[0]), "%s/%s", tmpdir, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    fclose(f);
}

/* ---- people on vtest ---------------------------------------------------------------- */

static void finds_people_in_vtest(void **unused)
{
    struct clip *f = vtest("1/2", 40);
    void *s = settings_new();
    set(s, "faces", "false");
    void *state = open_state(s);
    struct vg_detect_res *res = malloc(sizeof(*res));
    int with_person = 0;
    int n = f->n;
    assert_true(n >= 30);
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++) {
        assert_vg_ok(run(state, f->rgb[i], f->w, f->h, NULL, 0, res));
        with_person += count_category(res, VG_CAT_PERSON, 0) > 0;
        for (size_t k = 0; k < res->n; k++) {
            const struct vg_label *l = &res->labels[k];
            assert_string_equal(l->raw, "person");
            assert_true(l->box.w > 0 && l->box.h > 0 && l->box.x + l->box.w <= 1.0001f &&
                        l->box.y + l->box.h <= 1.0001f);
        }
    }
    double share = (double)with_person / n;
    printf("vtest whole frames %dx%d: person in %d of %d frames (%.0f%%), %.0f ms/frame\n", f->w,
           f->h, with_person, n, 100 * share, (vg_mono_us() - t0) / 1000.0 / n);
    /* Measured 88%: whole-frame HOG misses the people under ~128 px. */
    assert_true(share >= 0.75);
    free(res);
    be->cleanup(state);
    free(s);
    clip_destroy(f);
}

/* ---- motion without people ------------------------------------------------------------ */

/* A 640x480 scene: a sine texture whose brightness ramps, bright and dark
 * rectangles and discs that move across it, a striped bar that slides.
 * Everything a motion detector fires on; nothing shaped like a person. */
static void draw_scene(uint8_t *rgb, int w, int h, int t)
{
    double light = 0.6 + 0.4 * sin(t * 0.3);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            double v = 110 + 60 * sin(x * 0.05) * cos(y * 0.04);
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = (uint8_t)(v * light);
            p[1] = (uint8_t)(v * light * 0.9);
            p[2] = (uint8_t)(v * light * 0.7);
        }
    for (int k = 0; k < 3; k++) {
        int cx = (40 + t * (12 + 7 * k) + 150 * k) % w, cy = 80 + 130 * k;
        int r = 30 + 10 * k;
        for (int y = cy - r; y < cy + r; y++)
            for (int x = cx - r; x < cx + r; x++) {
                if (x < 0 || y < 0 || x >= w || y >= h)
                    continue;
                int disc = k % 2 && (x - cx) * (x - cx) + (y - cy) * (y - cy) > r * r;
                if (disc)
                    continue;
                uint8_t *p = rgb + ((size_t)y * w + x) * 3;
                p[0] = (uint8_t)(k == 1 ? 20 : 230), p[1] = (uint8_t)(40 * k), p[2] = 200;
            }
    }
    for (int y = 400; y < 440; y++)
        for (int x = 0; x < w; x++) {
            uint8_t *p = rgb + ((size_t)y * w + x) * 3;
            p[0] = p[1] = p[2] = ((x + t * 9) / 12) % 2 ? 240 : 15;
        }
}

/* Person labels in a clip, on whole frames and on crops around its motion. */
static int persons_in(void *state, const char *clip, struct clip *f, int *crops)
{
    struct vg_detect_res *res = malloc(sizeof(*res));
    int persons = 0;
    assert_true(clip_motion_hints(f));
    for (int i = 0; i < f->n; i++) {
        struct vg_box regions[VG_DETECT_MAX_REGIONS];
        size_t n = vg_motion_regions(&f->hint[i], 0.8, regions, VG_DETECT_MAX_REGIONS);
        for (int pass = 0; pass < (n ? 2 : 1); pass++) {
            assert_vg_ok(run(state, f->rgb[i], f->w, f->h, pass ? regions : NULL, pass ? n : 0,
                             res));
            show_persons(clip, i, res);
            persons += count_category(res, VG_CAT_PERSON, 0);
        }
        *crops += n > 0;
    }
    free(res);
    return persons;
}

static void no_person_in_motion_without_people(void **unused)
{
    enum { W = 640, H = 480 };
    struct clip *drawn = clip_create(), *ts = clip_create(), *mb = clip_create();
    void *s = settings_new();
    void *state = open_state(s);
    int crops = 0;
    assert_true(drawn && ts && mb);
    for (int t = 0; t < 24; t++) {
        drawn->rgb[t] = malloc((size_t)W * H * 3);
        draw_scene(drawn->rgb[t], W, H, t);
    }
    drawn->n = 24, drawn->w = W, drawn->h = H;
    /* ffmpeg's moving test patterns too. */
    assert_int_equal(clip_load_cmd(ts, "ffmpeg -v error -nostdin -f lavfi -i testsrc2=size="
                                   "640x480:rate=2 -frames:v 20 -f image2pipe -vcodec mjpeg "
                                   "-q:v 3 -", 20), 20);
    assert_int_equal(clip_load_cmd(mb, "ffmpeg -v error -nostdin -f lavfi -i mandelbrot=size="
                                   "640x480:rate=2 -frames:v 20 -f image2pipe -vcodec mjpeg "
                                   "-q:v 3 -", 20), 20);
    int persons = persons_in(state, "drawn", drawn, &crops) +
                  persons_in(state, "testsrc2", ts, &crops) +
                  persons_in(state, "mandelbrot", mb, &crops);
    printf("no-people clips: %d frames (%d also as motion crops), %d person labels at the "
           "default hog_min_confidence\n", drawn->n + ts->n + mb->n, crops, persons);
    assert_int_equal(persons, 0);
    clip_destroy(drawn);
    clip_destroy(ts);
    clip_destroy(mb);
    be->cleanup(state);
    free(s);
}

/* ---- faces ------------------------------------------------------------------------------ */

static uint8_t *read_jpeg(const char *path, int *w, int *h)
{
    static uint8_t buf[1 << 20];
    uint8_t *px = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("%s missing (Debian package opencv-doc)", path);
    size_t len = fread(buf, 1, sizeof(buf), f);
    fclose(f);
    assert_vg_ok(vg_jpeg_decode_rgb(NULL, buf, len, 0, &px, w, h));
    return px;
}

/* messi5.jpg (opencv-doc): one player facing the camera, face ~30 px. */
static void faces_when_wanted(void **unused)
{
    int w, h;
    uint8_t *rgb = read_jpeg("/usr/share/doc/opencv-doc/examples/data/messi5.jpg", &w, &h);
    void *s = settings_new();
    set(s, "pets", "true");
    void *state = open_state(s);
    struct vg_detect_res *res = malloc(sizeof(*res));
    assert_vg_ok(run(state, rgb, w, h, NULL, 0, res));
    int faces = count_category(res, VG_CAT_FACE, 0);
    printf("messi5.jpg %dx%d: %zu labels, %d face labels, %zu face boxes\n", w, h, res->n, faces,
           res->n_faces);
    for (size_t i = 0; i < res->n; i++)
        printf("  %s %.2f at %.0f,%.0f %.0fx%.0f px\n", res->labels[i].raw,
               res->labels[i].confidence, res->labels[i].box.x * w, res->labels[i].box.y * h,
               res->labels[i].box.w * w, res->labels[i].box.h * h);
    assert_int_equal((size_t)faces, res->n_faces);
    /* His face: about 37x37 px at 227,94 (OpenCV's own cascade sample). */
    int his = 0;
    for (size_t i = 0; i < res->n_faces; i++) {
        const struct vg_box *b = &res->faces[i].box;
        his += fabsf(b->x * w - 227) < 10 && fabsf(b->y * h - 94) < 10 &&
               fabsf(b->w * w - 37) < 10;
    }
    assert_int_equal(his, 1);
    /* Not wanted: no face search at all. */
    struct vg_image img = {.rgb = rgb, .width = w, .height = h};
    struct vg_detect_req req = {.img = &img};
    memset(res, 0, sizeof(*res));
    assert_vg_ok(be->detect(state, &req, res));
    assert_int_equal(res->n_faces, 0);
    assert_int_equal(count_category(res, VG_CAT_FACE, 0), 0);
    free(res);
    be->cleanup(state);
    free(s);
    free(rgb);
}

/* ---- a tiny Darknet network ------------------------------------------------------------ */

/* A 32x32 input, one 32x32 convolution (zero weights: its outputs are its
 * biases) and a [yolo] layer with one anchor of 16x16 px over the 1x1 grid.
 * OpenCV's yolo layer turns the 7 outputs (tx, ty, tw, th, obj, c0, c1) into
 * cx = sigmoid(tx), cy = sigmoid(ty), w = exp(tw) * 16 / 32,
 * h = exp(th) * 16 / 32 and class probabilities sigmoid(obj) * sigmoid(c). */
static const char tiny_cfg[] =
    "[net]\nwidth=32\nheight=32\nchannels=3\n\n"
    "[convolutional]\nbatch_normalize=0\nfilters=7\nsize=32\nstride=1\npad=0\n"
    "activation=linear\n\n"
    "[yolo]\nmask=0\nanchors=16,16\nclasses=2\nnum=1\n";

static double logit(double p) { return log(p / (1 - p)); }

static void write_tiny_weights(const char *path, size_t keep)
{
    const size_t nweights = 7 * 3 * 32 * 32;
    size_t len = 20 + (7 + nweights) * sizeof(float);
    uint8_t *buf = calloc(1, len);
    int32_t ver[3] = {0, 2, 0};         /* 0.2: "seen" is a uint64 */
    uint64_t seen = 0;
    float bias[7] = {(float)logit(0.3), (float)logit(0.6), (float)log(0.8), (float)log(0.4),
                     4.0f, -4.0f, 4.0f};
    memcpy(buf, ver, sizeof(ver));
    memcpy(buf + 12, &seen, sizeof(seen));
    memcpy(buf + 20, bias, sizeof(bias));
    write_file(path, buf, keep ? keep : len);
    free(buf);
}

static void *tiny_settings(void)
{
    void *s = settings_new();
    write_file(tmp_path("tiny.cfg"), tiny_cfg, strlen(tiny_cfg));
    write_tiny_weights(tmp_path("tiny.weights"), 0);
    write_file(tmp_path("tiny.names"), "parcel\ndog\n", 11);
    set(s, "people", "false");
    set(s, "faces", "false");
    set(s, "model", tmp_path("tiny.weights"));
    set(s, "config", tmp_path("tiny.cfg"));
    set(s, "classes", tmp_path("tiny.names"));
    set(s, "input_width", "32");
    return s;
}

static void darknet_output_decoded(void **unused)
{
    enum { W = 320, H = 240 };
    void *s = tiny_settings();
    void *state = open_state(s);
    struct vg_detect_res *res = malloc(sizeof(*res));
    uint8_t *rgb = calloc(1, (size_t)W * H * 3);
    assert_vg_ok(run(state, rgb, W, H, NULL, 0, res));
    assert_int_equal(res->n, 1);
    const struct vg_label *l = &res->labels[0];
    assert_string_equal(l->raw, "dog");
    assert_int_equal(l->category, VG_CAT_PET);
    /* sigmoid(4)^2 */
    assert_float_equal(l->confidence, 0.9647f, 0.002f);
    /* cx 0.3, cy 0.6, w 0.4, h 0.2 (plain resize: normalised stays normalised) */
    assert_float_equal(l->box.x, 0.1f, 0.01f);
    assert_float_equal(l->box.y, 0.5f, 0.01f);
    assert_float_equal(l->box.w, 0.4f, 0.01f);
    assert_float_equal(l->box.h, 0.2f, 0.01f);
    /* In crops mode the box is found in each crop and mapped back: a crop of
     * the right half puts it at 0.5 + 0.1 * 0.5 across. */
    be->cleanup(state);
    set(s, "regions", "crops");
    state = open_state(s);
    struct vg_box right = {0.5f, 0, 0.5f, 1};
    assert_vg_ok(run(state, rgb, W, H, &right, 1, res));
    assert_int_equal(res->n, 1);
    assert_float_equal(res->labels[0].box.x, 0.55f, 0.01f);
    assert_float_equal(res->labels[0].box.w, 0.2f, 0.01f);
    assert_float_equal(res->labels[0].box.y, 0.5f, 0.01f);
    free(rgb);
    free(res);
    be->cleanup(state);
    free(s);
}

/* ---- a tiny ONNX network ---------------------------------------------------------------- */

/* tests/unit/make_tiny_onnx.py writes a 320x320 YOLOv5-shaped model whose
 * output [1, 4, 85] is its constant rows whatever the image (cx, cy, w, h in
 * input pixels, objectness, 80 COCO class scores):
 *   dog  140,160 120x90   obj 0.9 x 0.95 (cat 0.6 second)  -> 0.855
 *   dog  146,163 120x90   obj 0.8 x 0.9, IoU 0.85 with it   -> 0.72, NMS drops it
 *   car   60,120  40x30   obj 0.3 x 0.9                     -> 0.27, below 0.5
 *   car  280,227.5 80x65  obj 0.8 x 0.875, 10 px into the padding -> 0.7
 * A 640x360 image letterboxed into 320x320 is scaled by 0.5 and shifted down
 * 70 px, so image = (input - (0, 70)) / 0.5. */
static const char *source_dir(void)
{
    static char dir[1024];
    const char *env = getenv("VIGIL_SOURCE_DIR");
    if (env && env[0])
        return env;
    /* Run by hand: this file's own (absolute, as CMake compiles it) path. */
    snprintf(dir, sizeof(dir), "%s", __FILE__);
    char *cut = strstr(dir, "/tests/unit/");
    if (cut)
        *cut = '\0';
    return dir;
}

/* Debian's python3-onnx (scripts/deps) is for /usr/bin/python3, not for
 * whichever python3 is first on PATH. */
static int make_tiny_onnx(const char *out)
{
    char cmd[2048];
    if (system("/usr/bin/python3 -c 'import onnx' >/dev/null 2>&1") != 0)
        return 0;
    snprintf(cmd, sizeof(cmd), "/usr/bin/python3 '%s/tests/unit/make_tiny_onnx.py' '%s'",
             source_dir(), out);
    if (system(cmd) != 0)
        fail_msg("%s failed", cmd);
    return 1;
}

static void assert_label(const struct vg_label *l, const char *raw, enum vg_category cat,
                         float conf, float x, float y, float w, float h)
{
    /* The rows are float32 constants; mapping them back is a few operations:
     * the error is ~1e-6. 1e-4 (0.06 px of 640) still catches any wrong
     * letterbox (its 70 px shift is 0.19 of the height) or input size. */
    const float tol = 1e-4f;
    printf("  %s %.4f at %.4f,%.4f %.4fx%.4f\n", l->raw, l->confidence, l->box.x, l->box.y,
           l->box.w, l->box.h);
    assert_string_equal(l->raw, raw);
    assert_int_equal(l->category, cat);
    assert_float_equal(l->confidence, conf, tol);
    assert_float_equal(l->box.x, x, tol);
    assert_float_equal(l->box.y, y, tol);
    assert_float_equal(l->box.w, w, tol);
    assert_float_equal(l->box.h, h, tol);
}

static void onnx_output_decoded(void **unused)
{
    enum { W = 640, H = 360 };
    char *model = tmp_path("tiny.onnx");
    if (!make_tiny_onnx(model)) {
        printf("SKIP onnx_output_decoded: /usr/bin/python3 cannot import onnx (Debian package "
               "python3-onnx, scripts/deps)\n");
        skip();
    }
    void *s = settings_new();
    set(s, "people", "false");
    set(s, "faces", "false");
    set(s, "model", model);             /* framework auto: from .onnx */
    set(s, "input_width", "320");
    void *state = open_state(s);
    struct vg_detect_res *res = malloc(sizeof(*res));
    uint8_t *rgb = malloc((size_t)W * H * 3);
    for (size_t i = 0; i < (size_t)W * H * 3; i++)
        rgb[i] = (uint8_t)(i * 7 % 251);
    assert_vg_ok(run(state, rgb, W, H, NULL, 0, res));
    printf("tiny ONNX on %dx%d: %zu labels\n", W, H, res->n);
    assert_int_equal(res->n, 2);
    /* dog: input 80..200 x 115..205 -> image 160..400 x 90..270 */
    assert_label(&res->labels[0], "dog", VG_CAT_PET, 0.855f, 0.25f, 0.25f, 0.375f, 0.5f);
    /* car: input 240..320 x 195..260 -> image 480..640 x 250..380, cut at 360 */
    assert_label(&res->labels[1], "car", VG_CAT_VEHICLE, 0.7f, 0.75f, 250.0f / H, 0.25f,
                 110.0f / H);
    /* Portrait, 360x640: the padding is now left and right, 70 px each.
     * dog -> image 20..260 x 230..410; car: only input 240..250 is image. */
    assert_vg_ok(run(state, rgb, H, W, NULL, 0, res));
    assert_int_equal(res->n, 2);
    assert_label(&res->labels[0], "dog", VG_CAT_PET, 0.855f, 20.0f / H, 230.0f / W, 240.0f / H,
                 180.0f / W);
    assert_label(&res->labels[1], "car", VG_CAT_VEHICLE, 0.7f, 340.0f / H, 390.0f / W,
                 20.0f / H, 130.0f / W);
    be->cleanup(state);

    /* The two rows missing above were dropped by the threshold and by NMS,
     * not lost in decoding: with both relaxed they come back, in place. */
    set(s, "min_confidence", "0.2");
    set(s, "nms", "0.9");
    state = open_state(s);
    assert_vg_ok(run(state, rgb, W, H, NULL, 0, res));
    assert_int_equal(res->n, 4);
    assert_label(&res->labels[1], "dog", VG_CAT_PET, 0.72f, 172.0f / W, 96.0f / H, 0.375f, 0.5f);
    assert_label(&res->labels[3], "car", VG_CAT_VEHICLE, 0.27f, 80.0f / W, 70.0f / H,
                 80.0f / W, 60.0f / H);
    free(rgb);
    free(res);
    be->cleanup(state);
    free(s);
}

/* ---- bad files ------------------------------------------------------------------------- */

static void init_fails(void *s, const char *expect)
{
    void *state = NULL;
    vg_status st = be->check(s);
    if (st == VG_OK)
        st = be->init(&state, s, NULL);
    if (st != VG_ERR_CONFIG)
        fail_msg("expected a config error with \"%s\", got %s", expect, vg_status_str(st));
    if (!strstr(vg_err_detail(), expect))
        fail_msg("detail \"%s\" lacks \"%s\"", vg_err_detail(), expect);
    printf("  rejected: %s\n", vg_err_detail());
    assert_null(state);
}

static void bad_model_files_fail_clearly(void **unused)
{
    void *s = tiny_settings();
    char *missing = tmp_path("nope.onnx");
    set(s, "model", missing);
    init_fails(s, missing);                                     /* missing: at check */

    set(s, "model", tmp_path("tiny.bin"));
    write_file(tmp_path("tiny.bin"), "x", 1);
    init_fails(s, "cannot tell the framework");

    set(s, "model", tmp_path("tiny.weights"));
    write_tiny_weights(tmp_path("tiny.weights"), 400);          /* truncated */
    init_fails(s, tmp_path("tiny.weights"));
    write_tiny_weights(tmp_path("tiny.weights"), 0);

    const char *bad_cfg = "[net]\nwidth=32\n[convolutional]\nfilters=-3\n";
    write_file(tmp_path("bad.cfg"), bad_cfg, strlen(bad_cfg));
    set(s, "config", tmp_path("bad.cfg"));
    init_fails(s, tmp_path("tiny.weights"));                    /* corrupt cfg */
    set(s, "config", "");
    init_fails(s, "needs config");

    write_file(tmp_path("junk.onnx"), "\x08\x07garbage-not-protobuf\xff\xfe", 24);
    set(s, "model", tmp_path("junk.onnx"));
    init_fails(s, tmp_path("junk.onnx"));                       /* corrupt ONNX */
    uint8_t noise[4096];
    uint32_t x = 12345;
    for (size_t i = 0; i < sizeof(noise); i++) {
        x = x * 1103515245u + 12345u;
        noise[i] = (uint8_t)(x >> 24);
    }
    write_file(tmp_path("noise.onnx"), noise, sizeof(noise));
    set(s, "model", tmp_path("noise.onnx"));
    init_fails(s, tmp_path("noise.onnx"));                      /* random bytes */

    set(s, "model", tmp_path("tiny.weights"));
    set(s, "config", tmp_path("tiny.cfg"));
    write_file(tmp_path("bin.names"), "dog\n\x01\x02\x03\n", 8);
    set(s, "classes", tmp_path("bin.names"));
    init_fails(s, tmp_path("bin.names"));                       /* not a names file */

    set(s, "classes", tmp_path("tiny.names"));
    set(s, "faces", "true");
    set(s, "face_cascade", tmp_path("tiny.cfg"));
    init_fails(s, "not an OpenCV cascade");
    free(s);
}

/* ---- bad images ------------------------------------------------------------------------ */

static void bad_images_and_deadlines(void **unused)
{
    void *s = settings_new();
    void *state = open_state(s);
    struct vg_detect_res *res = malloc(sizeof(*res));
    uint8_t tiny[8 * 8 * 3];
    memset(tiny, 128, sizeof(tiny));
    assert_int_equal(run(state, NULL, 0, 0, NULL, 0, res), VG_ERR_INVALID);
    assert_int_equal(run(state, tiny, 0, 8, NULL, 0, res), VG_ERR_INVALID);
    assert_vg_ok(run(state, tiny, 8, 8, NULL, 0, res));
    assert_int_equal(res->n, 0);
    assert_vg_ok(run(state, tiny, 1, 1, NULL, 0, res));
    /* Regions that collapse to nothing, or lie outside the image. */
    struct vg_box odd[2] = {{0.5f, 0.5f, 0.0f, 0.0f}, {2.0f, 2.0f, 0.5f, 0.5f}};
    assert_vg_ok(run(state, tiny, 8, 8, odd, 2, res));
    assert_int_equal(res->n, 0);

    struct vg_image img = {.rgb = tiny, .width = 8, .height = 8};
    struct vg_detect_req req = {.img = &img, .deadline_us = vg_now_us() - 1};
    assert_int_equal(be->detect(state, &req, res), VG_ERR_TIMEOUT);
    assert_non_null(strstr(vg_err_detail(), "deadline"));
    free(res);
    be->cleanup(state);
    free(s);
}

/* ---- the chain: [motion, opencv] from a YAML file ------------------------------------------ */

static void chain_motion_then_opencv(void **unused)
{
    struct detect_rig r;
    struct vg_chain_out *out = malloc(sizeof(*out));
    char want[128];
    assert_vg_ok(detect_rig_up(&r, "dispatch: {detectors: [motion, opencv]}\n"
                                   "cameras:\n"
                                   "  - id: vtest\n"
                                   "    url: " CLIP_VTEST "\n"
                                   "    watch: [person]\n"
                                   "detectors:\n"
                                   "  opencv:\n"
                                   "    faces: false\n", 1));
    struct clip *f = vtest("2", 60);
    int n = f->n;
    assert_true(n >= 50);
    assert_true(clip_motion_hints(f));
    int moving = 0, person = 0, gated = 0;
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++) {
        struct vg_image img = {.rgb = f->rgb[i], .width = f->w, .height = f->h};
        assert_vg_ok(vg_detect_engine_run(r.e, &r.cfg->cameras[0], &img, &f->hint[i], 0, out));
        gated += out->gated;
        if (out->stages_run == 2) {
            moving++;
            assert_string_equal(out->detector, "opencv");
            person += out->res.n > 0 && out->res.labels[0].category == VG_CAT_PERSON;
        }
    }
    printf("chain [motion, opencv] on vtest: %d frames, %d gated, %d analysed, person in %d "
           "(%.0f%%), %.1f ms/frame\n", n, gated, moving, person,
           moving ? 100.0 * person / moving : 0.0, (vg_mono_us() - t0) / 1000.0 / n);
    assert_true(gated >= 1);                /* the first frame only learns */
    assert_true(moving >= n / 2);
    /* Measured 86% (the crops are scaled up: people are found down to ~85 px). */
    assert_true(person >= moving * 3 / 4);
    clip_destroy(f);
    detect_rig_down(&r);

    /* The backend's own keys are checked with file:line. */
    assert_status(detect_rig_up(&r, "dispatch: {detectors: [motion, opencv]}\n"
                                    "detectors:\n  opencv:\n    hog_strid: 8\n", 0),
                  VG_ERR_CONFIG);
    snprintf(want, sizeof(want), "%s:4: unknown key \"detectors.opencv.hog_strid\"", r.path);
    assert_detail(want);
    detect_rig_down(&r);
    assert_status(detect_rig_up(&r, "dispatch: {detectors: [motion, opencv]}\n"
                                    "detectors:\n  opencv: {model: /nonexistent/yolo.onnx}\n", 0),
                  VG_ERR_CONFIG);
    assert_detail("/nonexistent/yolo.onnx");
    detect_rig_down(&r);
    free(out);
}

static void registered_with_its_caps(void **unused)
{
    assert_non_null(be);
    assert_int_equal(be->caps, VG_DETECT_LOCAL | VG_DETECT_PIXELS | VG_DETECT_FACES);
    char names[256];
    vg_detector_names(names, sizeof(names));
    assert_non_null(strstr(names, "motion, opencv"));
    for (const struct vg_opt *o = be->opts; o->key; o++)
        assert_true(o->help && o->help[0]);
}

static int setup(void **unused)
{
    be = vg_detector_find("opencv");
    return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **unused)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(registered_with_its_caps),
        cmocka_unit_test(bad_images_and_deadlines),
        cmocka_unit_test(darknet_output_decoded),
        cmocka_unit_test(onnx_output_decoded),
        cmocka_unit_test(bad_model_files_fail_clearly),
        cmocka_unit_test(no_person_in_motion_without_people),
        cmocka_unit_test(faces_when_wanted),
        cmocka_unit_test(finds_people_in_vtest),
        cmocka_unit_test(chain_motion_then_opencv),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
