/* The "local" face matcher (LBPH, lib/face/match_local.c) with real faces,
 * through the seam (YAML, vg_face_matcher_open, the ops table), its model in
 * a redis-server of the test's own (or a file).
 *
 * The faces come from Debian packages, installed by scripts/deps (which
 * runs scripts/face-testdata); nothing is committed:
 *
 *   kphotoalbum's demo album ($VIGIL_FACE_DATA, default
 *   /var/cache/vigil-testdata/faces, kphotoalbum/...):
 *     movie/01..68.jpg  the frames of demo/movie.avi, a 4.5 s webcam clip
 *                       (160x120) of one man, Jesper K. Pedersen (the album's
 *                       index.xml tags it "Jesper"), looking at the camera.
 *                       Enrolled from frames 1, 5, .., 29; recognised on the
 *                       held-out frames 35..68 (frames 30..34 left out as a
 *                       gap).
 *     demo/jesper_2.jpg, new_wave_2.jpg, cold_water.jpg
 *                       photos of the same man years apart (young; in
 *                       sunglasses): reported, not asserted (see below).
 *     demo/anne_helene.jpg  another person (Anne Helene).
 *   opencv-doc's HTML documentation (/usr/share/doc/opencv-doc/opencv4/html):
 *     05.jpg, 12.jpg     two women (tutorial figures)
 *     227943776_1.jpg, 230501201_1.jpg  two men
 *     example.jpg        a young man with glasses (largest of its 3 panels)
 *     2.jpg, 3.jpg       face-landmark results: every face the cascade finds
 *                        (16 and 10 people, landmark dots drawn on them)
 *     Cascade_Classifier_Tutorial_Result_Haar.jpg / _LBP.jpg
 *                        one woman at a webcam in two frames, the tutorial's
 *                        detection circles drawn over her face in other
 *                        colours: enrolled as a second person from the
 *                        first; whether the second is recognised is printed,
 *                        not asserted (it is not: the drawn circles and a
 *                        turn of the head are enough to lose her).
 *
 * Every face is found and cropped as dispatch does it: OpenCV's frontal-face
 * cascade (vg_face_finder_run), the box grown by 25 px (face_margin_px),
 * JPEG at quality 90, and the grey pixels decoded by the caller
 * (VG_FACE_CAP_GREY).
 *
 * The accuracy test prints the true accept rate on the held-out frames, the
 * false accept rate on the other people, the same man's photos from other
 * years (LBPH does not carry across such changes of lighting, age and
 * camera: the figure is printed for the docs, not asserted), the time of
 * one match and the model bytes per face. */
#include <math.h>
#include <pthread.h>
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

#include "config.h"
#include "detect/face_finder.h"
#include "detect_rig.h"     /* assert_status, assert_vg_ok, assert_detail */
#include "face/matcher.h"
#include "fixture.h"
#include "image/draw.h"
#include "image/jpeg.h"
#include "metrics.h"
#include "timeutil.h"

#define DATA_DEFAULT "/var/cache/vigil-testdata/faces"
#define OPENCV_HTML "/usr/share/doc/opencv-doc/opencv4/html/"
#define KEY "vigil:faces:local:model"
#define MARGIN 25           /* dispatch.face_margin_px's default */
#define CROP_QUALITY 90     /* as dispatch encodes crops */
#define MAX_CROPS 64
#define ENROL_LAST 29       /* frames 1, 5, .., 29 */
#define HELD_FIRST 35       /* frames 35..68 */
#define FRAMES 68

extern const struct vg_face_matcher_ops vg_face_local;

struct crop {
    uint8_t *jpeg, *grey;
    size_t len;
    int w, h;
    char what[80];
};

struct set {
    struct crop c[MAX_CROPS];
    size_t n;
};

static struct {
    struct fixture_redis fx;
    int loaded;
    struct set enrol, held, photos, others, woman_enrol, woman_test;
} g;

/* ---- the faces --------------------------------------------------------------------- */

static const char *data_dir(void)
{
    const char *d = getenv("VIGIL_FACE_DATA");
    return d && *d ? d : DATA_DEFAULT;
}

static int by_width(const void *a, const void *b)
{
    const struct vg_face_box *x = a, *y = b;
    return (x->box.w < y->box.w) - (x->box.w > y->box.w);
}

/* Crop face f of rgb as dispatch does; appended to s. */
static void add_crop(struct set *s, const uint8_t *rgb, int w, int h, const struct vg_face_box *f,
                     const char *what)
{
    uint8_t *crop = NULL;
    struct crop *c = &s->c[s->n];
    assert_true(s->n < MAX_CROPS);
    struct vg_rect r = vg_rect_from_box(f->box.x, f->box.y, f->box.w, f->box.h, MARGIN, w, h);
    assert_vg_ok(vg_rgb_crop(rgb, w, h, r, &crop));
    assert_vg_ok(vg_jpeg_encode_rgb(NULL, crop, r.w, r.h, CROP_QUALITY, &c->jpeg, &c->len));
    assert_vg_ok(vg_jpeg_decode_grey(NULL, c->jpeg, c->len, 0, &c->grey, &c->w, &c->h));
    snprintf(c->what, sizeof(c->what), "%s", what);
    s->n++;
    free(crop);
}

/* The faces the cascade finds in a JPEG: the largest (all 0) or all. */
static void faces_of(struct vg_face_finder *ff, const char *path, const char *package, int all,
                     struct set *s)
{
    size_t len = 0, n = 0;
    uint8_t *jpeg = fixture_slurp(path, &len), *rgb = NULL;
    int w = 0, h = 0;
    struct vg_face_box faces[VG_DETECT_MAX_FACES];
    char what[80];
    if (!jpeg)
        fail_msg("%s is missing: it comes with the Debian package %s (scripts/deps installs "
                 "it%s)", path, package,
                 strcmp(package, "kphotoalbum") ? "" : " by running scripts/face-testdata");
    assert_vg_ok(vg_jpeg_decode_rgb(NULL, jpeg, len, 0, &rgb, &w, &h));
    struct vg_image img = {.rgb = rgb, .width = w, .height = h};
    assert_vg_ok(vg_face_finder_run(ff, &img, NULL, 0, faces, VG_DETECT_MAX_FACES, &n));
    if (n == 0)
        fail_msg("no face found in %s (package %s changed?)", path, package);
    qsort(faces, n, sizeof(faces[0]), by_width);
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    for (size_t i = 0; i < (all ? n : 1); i++) {
        snprintf(what, sizeof(what), "%s face %zu", base, i + 1);
        add_crop(s, rgb, w, h, &faces[i], what);
    }
    free(rgb);
    free(jpeg);
}

static void set_free(struct set *s)
{
    for (size_t i = 0; i < s->n; i++) {
        free(s->c[i].jpeg);
        free(s->c[i].grey);
    }
    s->n = 0;
}

static void data_up(void)
{
    struct vg_face_finder *ff = NULL;
    char path[1024];
    const char *kpa_others[] = {"anne_helene.jpg", NULL};
    const char *photos[] = {"jesper_2.jpg", "new_wave_2.jpg", "cold_water.jpg", NULL};
    const char *cv_one[] = {"05.jpg", "12.jpg", "227943776_1.jpg", "230501201_1.jpg",
                            "example.jpg", NULL};
    const char *cv_all[] = {"2.jpg", "3.jpg", NULL};
    if (g.loaded)
        return;
    set_free(&g.enrol);     /* what an earlier, failed attempt left */
    set_free(&g.held);
    set_free(&g.photos);
    set_free(&g.others);
    set_free(&g.woman_enrol);
    set_free(&g.woman_test);
    if (vg_face_finder_create(&ff, NULL) != VG_OK)
        fail_msg("%s (Debian package opencv-data, installed by scripts/deps)", vg_err_detail());
    snprintf(path, sizeof(path), "%s/kphotoalbum/VERSION", data_dir());
    if (access(path, R_OK) != 0)
        fail_msg("%s is missing: the test faces come from the Debian package kphotoalbum; run "
                 "scripts/face-testdata (scripts/deps does) or point VIGIL_FACE_DATA at them",
                 path);
    for (int i = 1; i <= FRAMES; i++) {
        snprintf(path, sizeof(path), "%s/kphotoalbum/movie/%02d.jpg", data_dir(), i);
        if (i <= ENROL_LAST && i % 4 == 1)
            faces_of(ff, path, "kphotoalbum", 0, &g.enrol);
        else if (i >= HELD_FIRST)
            faces_of(ff, path, "kphotoalbum", 0, &g.held);
    }
    for (int i = 0; photos[i]; i++) {
        snprintf(path, sizeof(path), "%s/kphotoalbum/demo/%s", data_dir(), photos[i]);
        faces_of(ff, path, "kphotoalbum", 0, &g.photos);
    }
    for (int i = 0; kpa_others[i]; i++) {
        snprintf(path, sizeof(path), "%s/kphotoalbum/demo/%s", data_dir(), kpa_others[i]);
        faces_of(ff, path, "kphotoalbum", 0, &g.others);
    }
    for (int i = 0; cv_one[i]; i++) {
        snprintf(path, sizeof(path), OPENCV_HTML "%s", cv_one[i]);
        faces_of(ff, path, "opencv-doc", 0, &g.others);
    }
    for (int i = 0; cv_all[i]; i++) {
        snprintf(path, sizeof(path), OPENCV_HTML "%s", cv_all[i]);
        faces_of(ff, path, "opencv-doc", 1, &g.others);
    }
    faces_of(ff, OPENCV_HTML "Cascade_Classifier_Tutorial_Result_Haar.jpg", "opencv-doc", 0,
             &g.woman_enrol);
    faces_of(ff, OPENCV_HTML "Cascade_Classifier_Tutorial_Result_LBP.jpg", "opencv-doc", 0,
             &g.woman_test);
    vg_face_finder_destroy(ff);
    g.loaded = 1;
}

static struct vg_face_image image(const struct crop *c)
{
    return (struct vg_face_image){.jpeg = c->jpeg, .jpeg_len = c->len, .grey = c->grey,
                                  .width = c->w, .height = c->h};
}

/* Up to max images of s (from its first). */
static size_t images(const struct set *s, struct vg_face_image *out, size_t max)
{
    size_t n = s->n < max ? s->n : max;
    for (size_t i = 0; i < n; i++)
        out[i] = image(&s->c[i]);
    return n;
}

/* ---- the matcher --------------------------------------------------------------------- */

struct rig {
    char path[64];
    struct vg_config *cfg;
    struct vg_face_matcher *m;
};

/* matchers.local with keys (YAML lines under it, each "    key: value\n"),
 * the model in the test's Redis (redis 1) or nowhere (0). */
static vg_status rig_open(struct rig *r, const char *keys, int redis)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml), "matchers:\n  local:%s\n%s", *keys ? "" : " {}", keys);
    assert_true(n > 0 && (size_t)n < sizeof(yaml));
    memset(r, 0, sizeof(*r));
    snprintf(r->path, sizeof(r->path), "/tmp/vigil-local-XXXXXX");
    int fd = mkstemp(r->path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, (size_t)n), n);
    close(fd);
    assert_non_null(r->cfg = malloc(sizeof(*r->cfg)));
    vg_status st = vg_cfg_load(r->cfg, r->path);
    if (st != VG_OK)
        return st;
    snprintf(r->cfg->facematch.matcher, sizeof(r->cfg->facematch.matcher), "local");
    struct vg_face_env env = {.cfg = r->cfg, .redis = redis ? g.fx.r : NULL};
    return vg_face_matcher_open(&r->m, &env);
}

static void rig_up(struct rig *r, const char *keys)
{
    assert_vg_ok(rig_open(r, keys, 1));
    assert_true(r->m->ops->caps & VG_FACE_CAP_GREY);
}

static void rig_down(struct rig *r)
{
    vg_face_matcher_close(r->m);
    free(r->cfg);
    unlink(r->path);
    r->m = NULL;
}

static vg_status match(struct rig *r, const struct crop *c, struct vg_face_match *m)
{
    struct vg_face_image img = image(c);
    memset(m, 0x5a, sizeof(*m));
    return r->m->ops->match(r->m->state, &img, m);
}

static vg_status enrol(struct rig *r, const char *person, const struct set *s, size_t max)
{
    struct vg_face_image imgs[VG_FACE_MAX_IMAGES];
    size_t n = images(s, imgs, max < VG_FACE_MAX_IMAGES ? max : VG_FACE_MAX_IMAGES);
    return r->m->ops->enrol(r->m->state, person, imgs, n);
}

/* "jesper:8,woman:1" of r's listing. */
static void listing(struct rig *r, char *out, size_t cap)
{
    struct vg_face_entry *e = NULL;
    size_t n = 0, used = 0, run = 0;
    assert_vg_ok(r->m->ops->list(r->m->state, &e, &n));
    out[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(strncmp(e[i].face_id, "lbph-", 5), 0);
        for (size_t j = 0; j < i; j++)
            assert_false(!strcmp(e[i].person_id, e[j].person_id) &&
                         !strcmp(e[i].face_id, e[j].face_id));
        run++;
        if (i + 1 == n || strcmp(e[i].person_id, e[i + 1].person_id)) {
            used += (size_t)snprintf(out + used, cap - used, "%s%s:%zu", used ? "," : "",
                                     e[i].person_id, run);
            run = 0;
        }
        assert_true(used < cap);
    }
    free(e);
}

static void expect_person(struct rig *r, const struct crop *c, const char *person)
{
    struct vg_face_match m;
    assert_vg_ok(match(r, c, &m));
    if (!person) {
        if (m.matched)
            fail_msg("%s: matched %s (similarity %.3f), wanted unknown", c->what, m.person_id,
                     m.similarity);
        return;
    }
    if (!m.matched || strcmp(m.person_id, person))
        fail_msg("%s: %s (similarity %.3f), wanted %s", c->what,
                 m.matched ? m.person_id : "unknown", m.similarity, person);
}

/* ---- Redis ------------------------------------------------------------------------------ */

static int group_setup(void **state)
{
    unsetenv("VIGIL_MATCHER_LOCAL_MODEL_FILE");
    return fixture_redis_up(&g.fx);
}

static int group_teardown(void **state)
{
    fixture_redis_down(&g.fx);
    set_free(&g.enrol);
    set_free(&g.held);
    set_free(&g.photos);
    set_free(&g.others);
    set_free(&g.woman_enrol);
    set_free(&g.woman_test);
    return 0;
}

static int flush(void **state)
{
    redisReply *r = NULL;
    assert_vg_ok(vg_redis_cmd(g.fx.r, &r, "FLUSHALL"));
    freeReplyObject(r);
    return 0;
}

static uint8_t *stored(size_t *len)
{
    redisReply *r = NULL;
    uint8_t *b = NULL;
    assert_vg_ok(vg_redis_cmd(g.fx.r, &r, "GET %s", KEY));
    *len = 0;
    if (r->type == REDIS_REPLY_STRING) {
        assert_non_null(b = malloc(r->len ? r->len : 1));
        memcpy(b, r->str, r->len);
        *len = r->len;
    }
    freeReplyObject(r);
    return b;
}

static void store(const void *b, size_t len)
{
    redisReply *r = NULL;
    assert_vg_ok(vg_redis_cmd(g.fx.r, &r, "SET %s %b", KEY, b, len));
    freeReplyObject(r);
}

static uint64_t counter(const char *name)
{
    return vg_counter_value(vg_counter_get(name, "test"));
}

/* ---- accuracy ------------------------------------------------------------------------------ */

/* The distance a similarity stands for: similarity = 2^(-d / threshold). */
static double distance_of(float similarity, double threshold)
{
    return similarity > 0 ? -threshold * log2((double)similarity) : INFINITY;
}

static void accuracy(void **state)
{
    const double threshold = 0.5;   /* the default */
    struct rig r;
    struct vg_face_match m;
    size_t accepted = 0, false_accepts = 0, photos = 0;
    double gmax = 0, gsum = 0, imin = INFINITY;
    data_up();
    rig_up(&r, "");
    assert_vg_ok(enrol(&r, "jesper", &g.enrol, g.enrol.n));
    assert_vg_ok(enrol(&r, "woman", &g.woman_enrol, 1));

    int64_t t0 = vg_mono_us();
    for (size_t i = 0; i < g.held.n; i++) {
        assert_vg_ok(match(&r, &g.held.c[i], &m));
        double dist = distance_of(m.similarity, threshold);
        gsum += dist;
        gmax = dist > gmax ? dist : gmax;
        if (m.matched) {
            assert_true(m.similarity >= 0.5f);
            assert_string_equal(m.person_id, "jesper");
            accepted++;
        }
    }
    double match_ms = (double)(vg_mono_us() - t0) / 1000.0 / (double)g.held.n;
    for (size_t i = 0; i < g.others.n; i++) {
        assert_vg_ok(match(&r, &g.others.c[i], &m));
        double dist = distance_of(m.similarity, threshold);
        imin = dist < imin ? dist : imin;
        if (m.matched) {
            false_accepts++;
            print_message("false accept: %s as %s (distance %.3f)\n", g.others.c[i].what,
                          m.person_id, dist);
        } else {
            assert_true(m.similarity < 0.5f);
            assert_string_equal(m.person_id, "");
        }
    }
    for (size_t i = 0; i < g.photos.n; i++) {
        assert_vg_ok(match(&r, &g.photos.c[i], &m));
        photos += m.matched && !strcmp(m.person_id, "jesper");
        print_message("other years: %s: %s, distance %.3f\n", g.photos.c[i].what,
                      m.matched ? m.person_id : "unknown", distance_of(m.similarity, threshold));
    }
    assert_vg_ok(match(&r, &g.woman_test.c[0], &m));
    print_message("the tutorial's woman, her other frame: %s, distance %.3f\n",
                  m.matched ? m.person_id : "unknown", distance_of(m.similarity, threshold));
    size_t len = 0;
    free(stored(&len));
    print_message("local matcher, threshold %.2f (size 100, grid 8), enrolled from %zu frames:\n"
                  "  true accept  %zu/%zu held-out frames (%.1f%%), genuine distance mean %.3f "
                  "max %.3f\n"
                  "  false accept %zu/%zu faces of other people (%.1f%%), nearest impostor "
                  "%.3f\n"
                  "  same man, photos from other years: %zu/%zu accepted\n"
                  "  one match (decode-free crop, features + %zu faces): %.2f ms; model %zu "
                  "bytes for %zu faces (%zu per face)\n",
                  threshold, g.enrol.n, accepted, g.held.n, 100.0 * (double)accepted /
                  (double)g.held.n, gsum / (double)g.held.n, gmax, false_accepts, g.others.n,
                  100.0 * (double)false_accepts / (double)g.others.n, imin, photos,
                  g.photos.n, g.enrol.n + 1, match_ms, len, g.enrol.n + 1,
                  (len - 32) / (g.enrol.n + 1));
    assert_true(g.held.n >= 30 && g.others.n >= 30);
    assert_true(accepted * 10 >= g.held.n * 9);     /* at least 90 % */
    assert_int_equal(false_accepts, 0);
    expect_person(&r, &g.woman_enrol.c[0], "woman");
    rig_down(&r);
}

/* Match time against a larger model: 25 people of 20 faces (the clip's
 * frames under other names), printed, never asserted. */
static void match_time(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char name[32];
    struct set frames = {.n = 0};
    data_up();
    rig_up(&r, "");
    for (size_t i = 0; i < g.held.n && frames.n < 20; i++)
        frames.c[frames.n++] = g.held.c[i];
    for (int p = 0; p < 25; p++) {
        snprintf(name, sizeof(name), "person-%02d", p);
        assert_vg_ok(enrol(&r, name, &frames, 20));
    }
    int64_t t0 = vg_mono_us();
    for (size_t i = 0; i < g.others.n; i++)
        assert_vg_ok(match(&r, &g.others.c[i], &m));
    double ms = (double)(vg_mono_us() - t0) / 1000.0 / (double)g.others.n;
    size_t len = 0;
    free(stored(&len));
    print_message("local matcher: one match against 500 faces %.2f ms; model %zu bytes\n", ms,
                  len);
    rig_down(&r);
}

/* ---- the library ---------------------------------------------------------------------------- */

static void enrol_replaces_list_remove(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char names[256];
    data_up();
    assert_ptr_equal(vg_face_matcher_find("local"), &vg_face_local);
    rig_up(&r, "");
    listing(&r, names, sizeof(names));
    assert_string_equal(names, "");
    assert_vg_ok(match(&r, &g.held.c[0], &m));     /* an empty model: unknown */
    assert_int_equal(m.matched, 0);
    assert_true(m.similarity == 0);

    assert_vg_ok(enrol(&r, "jesper", &g.enrol, g.enrol.n));
    assert_vg_ok(enrol(&r, "woman", &g.woman_enrol, 1));
    listing(&r, names, sizeof(names));
    assert_string_equal(names, "jesper:8,woman:1");
    assert_vg_ok(match(&r, &g.held.c[0], &m));
    assert_int_equal(m.matched, 1);
    assert_int_equal(strncmp(m.face_id, "lbph-", 5), 0);

    /* Enrolment replaces: three frames now, not eight plus three. */
    assert_vg_ok(enrol(&r, "jesper", &g.enrol, 3));
    listing(&r, names, sizeof(names));
    assert_string_equal(names, "woman:1,jesper:3");

    assert_vg_ok(r.m->ops->remove(r.m->state, "jesper"));
    listing(&r, names, sizeof(names));
    assert_string_equal(names, "woman:1");
    expect_person(&r, &g.held.c[0], NULL);
    assert_status(r.m->ops->remove(r.m->state, "jesper"), VG_ERR_NOT_FOUND);
    assert_detail("jesper");

    /* A JPEG alone (no grey pixels): the matcher decodes it itself. */
    assert_vg_ok(enrol(&r, "jesper", &g.enrol, g.enrol.n));
    struct vg_face_image img = image(&g.held.c[3]);
    img.grey = NULL;
    img.width = img.height = 0;
    assert_vg_ok(r.m->ops->match(r.m->state, &img, &m));
    assert_int_equal(m.matched, 1);
    assert_string_equal(m.person_id, "jesper");
    rig_down(&r);
}

static void bad_input(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char names[256], long_name[80];
    data_up();
    rig_up(&r, "");
    assert_vg_ok(enrol(&r, "jesper", &g.enrol, 2));
    memset(long_name, 'a', sizeof(long_name) - 1);
    long_name[sizeof(long_name) - 1] = '\0';
    const char *bad_names[] = {"", "unknown", "Unknown", "a\nb", long_name};
    for (size_t i = 0; i < sizeof(bad_names) / sizeof(bad_names[0]); i++) {
        assert_status(enrol(&r, bad_names[i], &g.enrol, 1), VG_ERR_INVALID);
        assert_detail("not allowed");
    }
    assert_status(r.m->ops->enrol(r.m->state, "x", NULL, 0), VG_ERR_INVALID);
    struct vg_face_image many[VG_FACE_MAX_IMAGES + 1];
    for (size_t i = 0; i <= VG_FACE_MAX_IMAGES; i++)
        many[i] = image(&g.enrol.c[0]);
    assert_status(r.m->ops->enrol(r.m->state, "x", many, VG_FACE_MAX_IMAGES + 1),
                  VG_ERR_INVALID);

    /* Not a JPEG: the second image spoils the call, nothing is stored. */
    static const uint8_t junk[] = "\xff\xd8\xff\xe0 this is not a JPEG";
    struct vg_face_image two[2] = {image(&g.enrol.c[0]), {.jpeg = junk, .jpeg_len = 30}};
    assert_status(r.m->ops->enrol(r.m->state, "bob", two, 2), VG_ERR_DECODE);
    assert_detail("image 2 of 2");
    assert_status(r.m->ops->match(r.m->state, &two[1], &m), VG_ERR_DECODE);
    struct vg_face_image none = {0};
    assert_status(r.m->ops->match(r.m->state, &none, &m), VG_ERR_INVALID);

    /* A crop too small to hold a face: refused for enrolment, unknown in a match. */
    uint8_t tiny[12 * 12];
    memset(tiny, 128, sizeof(tiny));
    struct vg_face_image small = {.grey = tiny, .width = 12, .height = 12};
    assert_status(r.m->ops->enrol(r.m->state, "bob", &small, 1), VG_ERR_INVALID);
    assert_detail("at least 20 px");
    uint64_t before = counter("vigil_face_local_too_small_total");
    assert_vg_ok(r.m->ops->match(r.m->state, &small, &m));
    assert_int_equal(m.matched, 0);
    assert_int_equal(counter("vigil_face_local_too_small_total"), before + 1);
    listing(&r, names, sizeof(names));
    assert_string_equal(names, "jesper:2");
    rig_down(&r);
}

/* ---- replicas, files, limits --------------------------------------------------------------- */

static void replicas_reload(void **state)
{
    struct rig a, b, c;
    struct vg_face_match m;
    data_up();
    rig_up(&a, "");
    rig_up(&b, "    check_interval_s: 0\n");
    rig_up(&c, "    check_interval_s: 1\n");
    assert_vg_ok(enrol(&a, "jesper", &g.enrol, g.enrol.n));
    /* b looks only when told (the control subject's reload). */
    expect_person(&b, &g.held.c[0], NULL);
    assert_vg_ok(b.m->ops->reload(b.m->state));
    expect_person(&b, &g.held.c[0], "jesper");
    /* c notices the new generation by itself within check_interval_s. */
    vg_sleep_us(1100 * 1000);
    expect_person(&c, &g.held.c[0], "jesper");
    /* b enrols a second person on top of a's model: both are kept. */
    assert_vg_ok(enrol(&b, "woman", &g.woman_enrol, 1));
    assert_vg_ok(a.m->ops->reload(a.m->state));
    expect_person(&a, &g.woman_enrol.c[0], "woman");
    expect_person(&a, &g.held.c[1], "jesper");
    assert_vg_ok(a.m->ops->remove(a.m->state, "jesper"));
    vg_sleep_us(1100 * 1000);
    assert_vg_ok(match(&c, &g.held.c[0], &m));
    assert_int_equal(m.matched, 0);
    rig_down(&a);
    rig_down(&b);
    rig_down(&c);
}

/* Two threads of two "processes" enrol different people at once: the
 * compare-and-set keeps both. */
struct racer {
    struct rig *r;
    const char *person;
    vg_status st;
    char why[256];      /* the thread's own error detail (it is thread-local) */
};

static void *race(void *arg)
{
    struct racer *x = arg;
    for (int i = 0; i < 5 && x->st == VG_OK; i++)
        x->st = enrol(x->r, x->person, &g.enrol, 2);
    if (x->st != VG_OK)
        snprintf(x->why, sizeof(x->why), "%s", vg_err_detail());
    return NULL;
}

static void concurrent_writers(void **state)
{
    struct rig a, b;
    char names[256];
    pthread_t ta, tb;
    data_up();
    rig_up(&a, "");
    rig_up(&b, "");
    struct racer ra = {&a, "alpha", VG_OK, ""}, rb = {&b, "beta", VG_OK, ""};
    assert_int_equal(pthread_create(&ta, NULL, race, &ra), 0);
    assert_int_equal(pthread_create(&tb, NULL, race, &rb), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    if (ra.st != VG_OK || rb.st != VG_OK)
        fail_msg("enrolling in two threads: alpha %s, beta %s", ra.why, rb.why);
    assert_vg_ok(a.m->ops->reload(a.m->state));
    listing(&a, names, sizeof(names));
    assert_true(!strcmp(names, "alpha:2,beta:2") || !strcmp(names, "beta:2,alpha:2"));
    rig_down(&a);
    rig_down(&b);
}

/* Matches on four threads while the model is reloaded and re-enrolled. */
struct matcher_thread {
    struct rig *r;
    int errors;
};

static void *matching(void *arg)
{
    struct matcher_thread *t = arg;
    struct vg_face_match m;
    for (int i = 0; i < 40; i++)
        t->errors += match(t->r, &g.held.c[(size_t)i % g.held.n], &m) != VG_OK;
    return NULL;
}

static void concurrent_matches(void **state)
{
    struct rig r;
    pthread_t th[4];
    struct matcher_thread t[4];
    data_up();
    rig_up(&r, "");
    assert_vg_ok(enrol(&r, "jesper", &g.enrol, g.enrol.n));
    for (int i = 0; i < 4; i++) {
        t[i] = (struct matcher_thread){&r, 0};
        assert_int_equal(pthread_create(&th[i], NULL, matching, &t[i]), 0);
    }
    for (int i = 0; i < 5; i++) {
        assert_vg_ok(r.m->ops->reload(r.m->state));
        assert_vg_ok(enrol(&r, "jesper", &g.enrol, (size_t)(2 + i)));
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(t[i].errors, 0);
    }
    rig_down(&r);
}

static void model_file(void **state)
{
    struct rig a, b;
    char dir[] = "/tmp/vigil-local-dir-XXXXXX", keys[256], path[128], names[256];
    data_up();
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/faces.model", dir);
    snprintf(keys, sizeof(keys), "    model_file: %s\n    check_interval_s: 0\n", path);
    assert_vg_ok(rig_open(&a, keys, 0));
    assert_vg_ok(rig_open(&b, keys, 0));
    assert_vg_ok(enrol(&a, "jesper", &g.enrol, g.enrol.n));
    assert_vg_ok(b.m->ops->reload(b.m->state));
    expect_person(&b, &g.held.c[5], "jesper");
    assert_vg_ok(b.m->ops->remove(b.m->state, "jesper"));
    assert_vg_ok(a.m->ops->reload(a.m->state));
    listing(&a, names, sizeof(names));
    assert_string_equal(names, "");
    rig_down(&a);
    rig_down(&b);
    /* Garbage in the file: a clear error, no crash. */
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    fputs("not a model at all", f);
    fclose(f);
    assert_vg_ok(rig_open(&a, keys, 0));
    assert_status(a.m->ops->reload(a.m->state), VG_ERR_DECODE);
    assert_detail(path);
    rig_down(&a);
    snprintf(names, sizeof(names), "%s.lock", path);
    unlink(names);
    unlink(path);
    rmdir(dir);
}

static void no_redis_no_file(void **state)
{
    struct rig r;
    assert_status(rig_open(&r, "", 0), VG_ERR_CONFIG);
    assert_detail("model_file");
    rig_down(&r);
}

static void limits(void **state)
{
    struct rig r;
    char names[256];
    data_up();
    rig_up(&r, "    max_people: 1\n    max_samples: 4\n");
    assert_status(enrol(&r, "jesper", &g.enrol, 5), VG_ERR_TOO_LARGE);
    assert_detail("max_samples 4");
    assert_vg_ok(enrol(&r, "jesper", &g.enrol, 4));
    assert_status(enrol(&r, "woman", &g.woman_enrol, 1), VG_ERR_TOO_LARGE);
    assert_detail("max_people 1");
    listing(&r, names, sizeof(names));
    assert_string_equal(names, "jesper:4");
    rig_down(&r);

    /* A stored model over max_model_mb is refused before it is read. */
    size_t big = (size_t)3 << 20;
    uint8_t *junk = calloc(1, big);
    assert_non_null(junk);
    store(junk, big);
    free(junk);
    rig_up(&r, "    max_model_mb: 2\n    max_people: 10\n    max_samples: 10\n");
    assert_status(r.m->ops->reload(r.m->state), VG_ERR_TOO_LARGE);
    assert_detail("max_model_mb 2");
    rig_down(&r);
}

static void options(void **state)
{
    struct rig r;
    assert_status(rig_open(&r, "    threshold: 3\n", 1), VG_ERR_CONFIG);
    assert_detail("threshold");
    rig_down(&r);
    assert_status(rig_open(&r, "    size: 16\n", 1), VG_ERR_CONFIG);
    rig_down(&r);
    assert_status(rig_open(&r, "    thresold: 0.4\n", 1), VG_ERR_CONFIG);
    rig_down(&r);
    assert_status(rig_open(&r, "    grid: 16\n", 1), VG_ERR_CONFIG);
    assert_detail("max_model_mb");
    rig_down(&r);
    assert_status(rig_open(&r, "    model_file: relative/path\n", 1), VG_ERR_CONFIG);
    assert_detail("absolute");
    rig_down(&r);
}

/* ---- a damaged model --------------------------------------------------------------------- */

static uint32_t crc32_le(const uint8_t *p, size_t n)
{
    uint32_t c = 0xffffffffu;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
    }
    return c ^ 0xffffffffu;
}

/* The header's checksum made right again, so the deeper checks are reached. */
static void fix_crc(uint8_t *b, size_t len)
{
    if (len < 32)
        return;
    uint32_t c = crc32_le(b + 32, len - 32);
    for (int i = 0; i < 4; i++)
        b[28 + i] = (uint8_t)(c >> (8 * i));
}

struct damage {
    const char *what, *detail;
};

static void damaged(struct rig *r, const uint8_t *b, size_t len, const char *detail)
{
    uint64_t before = counter("vigil_face_local_model_corrupt_total");
    store(b, len);
    assert_status(r->m->ops->reload(r->m->state), VG_ERR_DECODE);
    assert_detail(KEY);
    if (detail && !strstr(vg_err_detail(), detail))
        fail_msg("wanted \"%s\" in: %s", detail, vg_err_detail());
    assert_int_equal(counter("vigil_face_local_model_corrupt_total"), before + 1);
}

static void corrupt_model(void **state)
{
    struct rig a, b;
    size_t len = 0;
    data_up();
    rig_up(&a, "    check_interval_s: 0\n");
    assert_vg_ok(enrol(&a, "jesper", &g.enrol, 3));
    assert_vg_ok(enrol(&a, "woman", &g.woman_enrol, 1));
    uint8_t *good = stored(&len), *bad = malloc(len);
    assert_non_null(good);
    assert_non_null(bad);

    damaged(&a, good, len / 2, "checksum");
    damaged(&a, good, 31, "header");
    damaged(&a, (const uint8_t *)"garbage garbage garbage garbage garbage", 39, "header");
    memcpy(bad, good, len);
    bad[4] = 2;                         /* a format version from the future */
    damaged(&a, bad, len, "format version 2");
    memcpy(bad, good, len);
    bad[len - 1] ^= 0x40;               /* one bit of one count */
    damaged(&a, bad, len, "checksum");
    fix_crc(bad, len);
    damaged(&a, bad, len, "do not add up");
    memcpy(bad, good, len);
    bad[18] = 40;                       /* grid 40 */
    fix_crc(bad, len);
    damaged(&a, bad, len, "out of range");
    memcpy(bad, good, len);
    bad[24] = 9;                        /* more faces than the bytes hold */
    fix_crc(bad, len);
    damaged(&a, bad, len, "faces of");
    damaged(&a, (const uint8_t *)"", 0, "empty");

    /* The model in memory stays in use after a failed reload. */
    expect_person(&a, &g.held.c[0], "jesper");
    /* Enrolment does not overwrite what it cannot read. */
    assert_status(enrol(&a, "bob", &g.woman_enrol, 1), VG_ERR_DECODE);
    /* A replica started on the damaged model answers with the reason. */
    rig_up(&b, "    check_interval_s: 0\n");
    struct vg_face_match m;
    assert_status(match(&b, &g.held.c[0], &m), VG_ERR_DECODE);
    assert_detail("empty");

    /* A little fuzzing: random damage never crashes, loads or is refused. */
    store(good, len);
    assert_vg_ok(b.m->ops->reload(b.m->state));
    srand(8);
    for (int i = 0; i < 300; i++) {
        size_t n = (size_t)rand() % 4 == 0 ? (size_t)rand() % len : len;
        memcpy(bad, good, len);
        for (int k = 0, flips = 1 + rand() % 4; n > 0 && k < flips; k++)
            bad[(size_t)rand() % n] ^= (uint8_t)(1 + rand() % 255);
        if (i % 2)
            fix_crc(bad, n);
        store(bad, n);
        vg_status st = b.m->ops->reload(b.m->state);
        if (st != VG_OK && st != VG_ERR_DECODE)
            fail_msg("fuzz %d: %s: %s", i, vg_status_str(st), vg_err_detail());
        assert_vg_ok(match(&b, &g.held.c[0], &m));  /* the last good model, or the new one */
    }
    /* The good model again. */
    store(good, len);
    assert_vg_ok(b.m->ops->reload(b.m->state));
    expect_person(&b, &g.held.c[0], "jesper");
    free(good);
    free(bad);
    rig_down(&a);
    rig_down(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(accuracy, flush),
        cmocka_unit_test_setup(enrol_replaces_list_remove, flush),
        cmocka_unit_test_setup(bad_input, flush),
        cmocka_unit_test_setup(replicas_reload, flush),
        cmocka_unit_test_setup(concurrent_writers, flush),
        cmocka_unit_test_setup(concurrent_matches, flush),
        cmocka_unit_test_setup(model_file, flush),
        cmocka_unit_test_setup(no_redis_no_file, flush),
        cmocka_unit_test_setup(limits, flush),
        cmocka_unit_test_setup(options, flush),
        cmocka_unit_test_setup(corrupt_model, flush),
        cmocka_unit_test_setup(match_time, flush),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
