/* The "deepstack" detector against tests/fakes/fake_deepstack.py, through
 * the real seam: a YAML file, vg_detect_settings_load, the engine and the
 * backend's ops table. Predictions to labels, the form it sends, faces, the
 * API key, every way a server fails (CodeProject.AI's success false, 400,
 * 403, 500, a hang past the deadline, garbage, a huge answer, nobody
 * listening) and the chain falling back to motion. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "detect/chain.h"
#include "detect/detector.h"
#include "detect_rig.h"
#include "fake_aws_ctl.h"   /* fake(): the control-API helper, any fake's port */
#include "fixture.h"
#include "image/jpeg.h"
#include "opts.h"
#include "timeutil.h"

#define IMAGE "/usr/share/doc/opencv-doc/examples/data/HappyFish.jpg"

static struct {
    pid_t pid;
    int port;
    uint8_t *jpeg;
    size_t jpeg_len;
    struct vg_image img;        /* width and height given */
    int detect_timeout_ms;
} g;

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    if (!(g.jpeg = fixture_slurp(IMAGE, &g.jpeg_len)))
        return -1;
    g.img = (struct vg_image){.jpeg = g.jpeg, .jpeg_len = g.jpeg_len, .width = 400,
                              .height = 300};
    unsetenv("VIGIL_DEEPSTACK_URL");
    unsetenv("VIGIL_DEEPSTACK_API_KEY");
    unsetenv("VIGIL_DEEPSTACK_API_KEY_FILE");
    g.pid = fixture_fake_start("fake_deepstack.py", NULL, &g.port);
    if (g.port == 0)
        return -1;
    fake_ctl_init(g.port);
    return 0;
}

static int group_teardown(void **state)
{
    fixture_stop(g.pid);
    free(g.jpeg);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    g.detect_timeout_ms = 5000;
    unsetenv("VIGIL_DEEPSTACK_API_KEY");
    return 0;
}

/* A file with the chain, the camera and detectors.deepstack: url (the fake)
 * plus keys; loaded, and an engine when want_engine. */
static vg_status rig_up(struct detect_rig *r, const char *chain, const char *keys,
                        int want_engine)
{
    return detect_rig_upf(r, want_engine,
                          "dispatch:\n  detectors: %s\n  detect_timeout_ms: %d\n"
                          "cameras:\n  - id: door\n    url: /dev/null\n"
                          "detectors:\n  deepstack:\n    url: http://127.0.0.1:%d/\n%s",
                          chain, g.detect_timeout_ms, g.port, keys);
}

static vg_status run_backend(struct detect_rig *r, const struct vg_image *img, int want_faces,
                             int64_t deadline_us, struct vg_detect_res *res)
{
    return detect_rig_backend(r, "deepstack", img, want_faces, deadline_us, res);
}

/* One scripted answer: POST /_fake/next. */
static void script(const char *json) { fake_do("POST", "/_fake/next", json); }

static size_t count(const char *endpoint) { return fake_count_by("endpoint", endpoint); }

static int near(double a, double b) { return a > b - 1e-4 && a < b + 1e-4; }

static const char scene[] =
    "{\"predictions\":["
    "{\"label\":\"person\",\"confidence\":0.91,\"x_min\":40,\"y_min\":30,\"x_max\":140,"
    " \"y_max\":270},"
    "{\"label\":\"dog\",\"confidence\":0.8,\"x_min\":200,\"y_min\":150,\"x_max\":300,"
    " \"y_max\":300},"
    "{\"label\":\"backpack\",\"confidence\":0.7,\"x_min\":0,\"y_min\":0,\"x_max\":20,"
    " \"y_max\":30},"
    "{\"label\":\"truck\",\"confidence\":0.5,\"x_min\":350,\"y_min\":100,\"x_max\":500,"
    " \"y_max\":200},"
    "{\"label\":\"car\",\"confidence\":0.3,\"x_min\":0,\"y_min\":0,\"x_max\":10,\"y_max\":10},"
    "{\"label\":\"potted plant\",\"confidence\":0.6,\"x_min\":10,\"y_min\":10,\"x_max\":50,"
    " \"y_max\":50}]}";

/* ---- tests ------------------------------------------------------------------ */

static void predictions_become_labels(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, "[deepstack]", "", 0));
    script(scene);
    assert_vg_ok(run_backend(&r, &g.img, 0, 0, &res));
    assert_int_equal(res.n, 5);     /* car (0.3) is below min_confidence 0.45 */
    assert_string_equal(res.labels[0].raw, "person");
    assert_int_equal(res.labels[0].category, VG_CAT_PERSON);
    assert_true(near(res.labels[0].confidence, 0.91));
    assert_true(near(res.labels[0].box.x, 0.1) && near(res.labels[0].box.y, 0.1) &&
                near(res.labels[0].box.w, 0.25) && near(res.labels[0].box.h, 0.8));
    assert_int_equal(res.labels[1].category, VG_CAT_PET);
    assert_true(near(res.labels[1].box.h, 0.5));
    assert_int_equal(res.labels[2].category, VG_CAT_PACKAGE);
    assert_int_equal(res.labels[3].category, VG_CAT_VEHICLE);
    assert_true(near(res.labels[3].box.x, 0.875) && near(res.labels[3].box.w, 0.125));
    assert_string_equal(res.labels[4].raw, "potted plant");
    assert_int_equal(res.labels[4].category, VG_CAT_OTHER);
    assert_int_equal(res.n_faces, 0);

    /* The form: the JPEG as a file upload, min_confidence, no api_key. */
    json_t *reqs = fake("GET", "/_fake/requests?endpoint=detection", NULL);
    assert_int_equal(json_array_size(reqs), 1);
    json_t *fields = json_object_get(json_array_get(reqs, 0), "fields");
    json_t *image = json_object_get(fields, "image");
    assert_int_equal(json_integer_value(json_object_get(image, "len")), (json_int_t)g.jpeg_len);
    assert_string_equal(json_string_value(json_object_get(image, "content_type")), "image/jpeg");
    assert_true(json_is_string(json_object_get(image, "filename")));
    assert_string_equal(json_string_value(json_object_get(json_object_get(fields,
                        "min_confidence"), "value")), "0.4500");
    assert_null(json_object_get(fields, "api_key"));
    json_decref(reqs);
    detect_rig_down(&r);
}

static void size_read_from_jpeg(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    struct vg_image img = {.jpeg = g.jpeg, .jpeg_len = g.jpeg_len};
    int w = 0, h = 0;
    assert_vg_ok(vg_jpeg_dims(NULL, g.jpeg, g.jpeg_len, &w, &h));
    assert_vg_ok(rig_up(&r, "[deepstack]", "    min_confidence: 0.2\n", 0));
    assert_vg_ok(run_backend(&r, &img, 0, 0, &res));  /* the fake's default person */
    assert_int_equal(res.n, 1);
    assert_true(near(res.labels[0].box.x, 10.0 / w) && near(res.labels[0].box.w, 100.0 / w));
    assert_true(near(res.labels[0].box.y, 20.0 / h));
    detect_rig_down(&r);
}

static void faces(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, "[deepstack]", "", 0));
    /* auto: a person was found, so the face endpoint is asked. */
    script("{\"endpoint\":\"face\",\"predictions\":[{\"confidence\":0.97,\"x_min\":80,"
           "\"y_min\":30,\"x_max\":120,\"y_max\":90},{\"confidence\":0.2,\"x_min\":0,"
           "\"y_min\":0,\"x_max\":10,\"y_max\":10}]}");
    assert_vg_ok(run_backend(&r, &g.img, 1, 0, &res));
    assert_int_equal(res.n_faces, 1);
    assert_true(near(res.faces[0].box.x, 0.2) && near(res.faces[0].box.w, 0.1) &&
                near(res.faces[0].box.h, 0.2));
    assert_true(near(res.faces[0].confidence, 0.97));
    assert_int_equal(count("face"), 1);
    /* No person: no face call. */
    script("{\"predictions\":[{\"label\":\"cat\",\"confidence\":0.9,\"x_min\":1,\"y_min\":1,"
           "\"x_max\":50,\"y_max\":50}]}");
    assert_vg_ok(run_backend(&r, &g.img, 1, 0, &res));
    assert_int_equal(res.n_faces, 0);
    assert_int_equal(count("face"), 1);
    /* A failing face call is a warning: the labels stand. */
    script("{\"endpoint\":\"face\",\"status\":404,\"error\":\"face module not enabled\"}");
    assert_vg_ok(run_backend(&r, &g.img, 1, 0, &res));
    assert_int_equal(res.n, 1);
    assert_int_equal(res.n_faces, 0);
    detect_rig_down(&r);

    assert_vg_ok(rig_up(&r, "[deepstack]", "    faces: off\n", 0));
    assert_vg_ok(run_backend(&r, &g.img, 1, 0, &res));
    assert_int_equal(count("face"), 2);
    detect_rig_down(&r);
    assert_vg_ok(rig_up(&r, "[deepstack]", "    faces: on\n", 0));
    script("{\"predictions\":[]}");
    assert_vg_ok(run_backend(&r, &g.img, 1, 0, &res));
    assert_int_equal(res.n_faces, 1);   /* on: asked without a person too */
    detect_rig_down(&r);
}

static void api_key(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    char path[] = "/tmp/vigil-ds-key-XXXXXX";
    fake_do("POST", "/_fake/config", "{\"api_key\":\"s3cret\"}");
    assert_vg_ok(rig_up(&r, "[deepstack]", "    api_key: wrong\n", 0));
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_AUTH);
    assert_detail("HTTP 403");
    assert_detail("Incorrect api key");
    assert_null(strstr(vg_err_detail(), "wrong"));
    /* The key never shows in formatted settings. */
    const struct vg_detector_backend *be = vg_detector_find("deepstack");
    char text[128] = "";
    for (const struct vg_opt *o = be->opts; o->key; o++)
        if (!strcmp(o->key, "api_key"))
            vg_opts_format(o, vg_detect_settings_get(r.s, be), text, sizeof(text));
    assert_string_equal(text, "api_key=***");
    detect_rig_down(&r);

    setenv("VIGIL_DEEPSTACK_API_KEY", "s3cret", 1);
    assert_vg_ok(rig_up(&r, "[deepstack]", "    api_key: wrong\n", 0));
    assert_vg_ok(run_backend(&r, &g.img, 0, 0, &res));
    detect_rig_down(&r);
    unsetenv("VIGIL_DEEPSTACK_API_KEY");

    /* The _FILE form: a mounted secret, trailing newline dropped. */
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "s3cret\n", 7), 7);
    close(fd);
    setenv("VIGIL_DEEPSTACK_API_KEY_FILE", path, 1);
    assert_vg_ok(rig_up(&r, "[deepstack]", "", 0));
    assert_vg_ok(run_backend(&r, &g.img, 0, 0, &res));
    assert_int_equal(res.n, 1);
    detect_rig_down(&r);
    unsetenv("VIGIL_DEEPSTACK_API_KEY_FILE");
    unlink(path);
}

static void server_errors(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, "[deepstack]", "", 0));
    /* CodeProject.AI: HTTP 200, success false. */
    script("{\"success\":false,\"error\":\"Unable to load the YOLO model\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_HTTP);
    assert_detail("Unable to load the YOLO model");
    /* and its answer to a request without an image */
    fake_do("POST", "/_fake/config", "{\"mode\":\"codeproject\"}");
    struct vg_image empty = g.img;
    empty.jpeg_len = 0;
    assert_status(run_backend(&r, &empty, 0, 0, &res), VG_ERR_INVALID); /* refused here */
    assert_int_equal(count("detection"), 1);

    script("{\"status\":400,\"error\":\"Invalid image\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_INVALID);
    assert_detail("HTTP 400: Invalid image");
    script("{\"status\":500,\"body\":\"<html>Internal\\nServer Error</html>\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_UNAVAILABLE);
    assert_detail("HTTP 500: <html>Internal Server Error</html>");
    script("{\"status\":404,\"body\":\"\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_NOT_FOUND);
    detect_rig_down(&r);
}

static void garbage_and_huge_answers(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, "[deepstack]", "", 0));
    script("{\"body\":\"{\\\"success\\\": tru\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_DECODE);
    script("{\"body\":\"\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_DECODE);
    script("{\"body\":\"[1,2,3]\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_DECODE);
    script("{\"body\":\"{\\\"success\\\":true,\\\"predictions\\\":\\\"none\\\"}\"}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_DECODE);
    assert_detail("predictions is not an array");
    script("{\"predictions\":[{\"label\":\"person\",\"confidence\":0.9,\"x_min\":\"10\","
           "\"y_min\":0,\"x_max\":5,\"y_max\":5}]}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_DECODE);
    assert_detail("prediction 0: x_min is not a number");
    script("{\"huge_bytes\":3000000}");
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_TOO_LARGE);
    /* Boxes outside the image are dropped, partly outside clipped; the
     * answer without predictions is no labels. */
    script("{\"predictions\":[{\"label\":\"person\",\"confidence\":0.9,\"x_min\":500,"
           "\"y_min\":0,\"x_max\":600,\"y_max\":50},{\"label\":\"person\",\"confidence\":0.9,"
           "\"x_min\":300,\"y_min\":-20,\"x_max\":500,\"y_max\":150}]}");
    assert_vg_ok(run_backend(&r, &g.img, 0, 0, &res));
    assert_int_equal(res.n, 1);
    assert_true(near(res.labels[0].box.x, 0.75) && near(res.labels[0].box.w, 0.25) &&
                near(res.labels[0].box.y, 0) && near(res.labels[0].box.h, 0.5));
    script("{\"body\":\"{\\\"success\\\":true}\"}");
    assert_vg_ok(run_backend(&r, &g.img, 0, 0, &res));
    assert_int_equal(res.n, 0);
    /* Still working after all that. */
    assert_vg_ok(run_backend(&r, &g.img, 0, 0, &res));
    assert_int_equal(res.n, 1);
    detect_rig_down(&r);
}

/* A hanging server costs the stage its deadline, not the server's delay. */
static void hang_bounded_by_deadline(void **state)
{
    struct detect_rig r;
    struct vg_chain_out out;
    g.detect_timeout_ms = 300;
    assert_vg_ok(rig_up(&r, "[deepstack]", "", 1));
    script("{\"delay_ms\":4000}");
    int64_t t0 = vg_mono_us();
    assert_status(vg_detect_engine_run(r.e, &r.cfg->cameras[0], &g.img, NULL, 0, &out),
                  VG_ERR_TIMEOUT);
    int64_t ms = (vg_mono_us() - t0) / 1000;
    assert_true(ms >= 250 && ms < 1500);
    assert_detail("detector deepstack");
    detect_rig_down(&r);

    /* timeout_ms caps the call without a deadline too. */
    g.detect_timeout_ms = 5000;
    assert_vg_ok(rig_up(&r, "[deepstack]", "    timeout_ms: 200\n", 0));
    struct vg_detect_res res;
    script("{\"delay_ms\":4000}");
    t0 = vg_mono_us();
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_TIMEOUT);
    assert_true((vg_mono_us() - t0) / 1000 < 1500);
    /* Past the deadline nothing is sent. */
    size_t before = count("detection");
    assert_status(run_backend(&r, &g.img, 0, vg_now_us() - 1, &res), VG_ERR_TIMEOUT);
    assert_int_equal(count("detection"), before);
    detect_rig_down(&r);
}

static void nobody_listening(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    char url[64];
    /* The environment's url overrides the file's. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fixture_free_port());
    setenv("VIGIL_DEEPSTACK_URL", url, 1);
    vg_status st = rig_up(&r, "[deepstack]", "", 0);
    unsetenv("VIGIL_DEEPSTACK_URL");
    assert_vg_ok(st);
    assert_status(run_backend(&r, &g.img, 0, 0, &res), VG_ERR_UNAVAILABLE);
    assert_detail(url);
    assert_int_equal(count("detection"), 0);
    detect_rig_down(&r);
}

static void chain_falls_back_to_motion(void **state)
{
    struct detect_rig r;
    struct vg_chain_out out;
    struct vg_motion_hint m = {.score = 0.1f, .n = 1, .boxes = {{0.1f, 0.2f, 0.3f, 0.5f}},
                               .fill = {0.6f}};
    assert_vg_ok(rig_up(&r, "[motion, deepstack]", "", 1));
    script("{\"status\":500,\"error\":\"server exploded\"}");
    assert_vg_ok(vg_detect_engine_run(r.e, &r.cfg->cameras[0], &g.img, &m, 0, &out));
    assert_true(out.degraded);
    assert_string_equal(out.detector, "motion");
    assert_int_equal(out.stages_run, 1);
    assert_int_equal(out.res.n, 1);
    assert_int_equal(out.res.labels[0].category, VG_CAT_MOTION);
    assert_int_equal(count("detection"), 1);

    /* And when it answers, it decides. */
    assert_vg_ok(vg_detect_engine_run(r.e, &r.cfg->cameras[0], &g.img, &m, 0, &out));
    assert_false(out.degraded);
    assert_string_equal(out.detector, "deepstack");
    assert_int_equal(out.res.n, 1);
    assert_string_equal(out.res.labels[0].raw, "person");
    detect_rig_down(&r);
}

/* dispatch.remote_interval_ms: a remote stage asked about a camera recently
 * is not asked again; its verdict stands, in the frames' own time. */
static void remote_verdict_reused(void **state)
{
    struct detect_rig r;
    struct vg_chain_out out;
    struct vg_motion_hint m = {.score = 0.1f, .n = 1, .boxes = {{0.1f, 0.2f, 0.3f, 0.5f}},
                               .fill = {0.6f}};
    struct vg_image img = g.img;
    const int64_t t0 = 1700000000000000LL;
    assert_vg_ok(rig_up(&r, "[motion, deepstack]", "", 1));
    r.cfg->dispatch.remote_interval_ms = 3000;
    const struct vg_camera_cfg *cam = &r.cfg->cameras[0];
    img.capture_ts_us = t0;
    assert_vg_ok(vg_detect_engine_run(r.e, cam, &img, &m, 0, &out));
    assert_false(out.reused);
    assert_string_equal(out.detector, "deepstack");
    assert_int_equal(count("detection"), 1);
    img.capture_ts_us = t0 + 1000000;   /* 1 s later: the person verdict stands */
    assert_vg_ok(vg_detect_engine_run(r.e, cam, &img, &m, 0, &out));
    assert_true(out.reused);
    assert_string_equal(out.detector, "motion");
    assert_int_equal(out.res.n, 1);
    assert_int_equal(count("detection"), 1);
    img.capture_ts_us = t0 + 3500000;   /* past the interval: asked again, says nobody */
    script("{\"predictions\":[]}");
    assert_vg_ok(vg_detect_engine_run(r.e, cam, &img, &m, 0, &out));
    assert_false(out.reused);
    assert_int_equal(out.res.n, 0);
    assert_int_equal(count("detection"), 2);
    img.capture_ts_us = t0 + 4500000;   /* the "nobody" verdict stands too */
    assert_vg_ok(vg_detect_engine_run(r.e, cam, &img, &m, 0, &out));
    assert_true(out.reused && out.gated);
    assert_int_equal(out.res.n, 0);
    assert_int_equal(count("detection"), 2);
    detect_rig_down(&r);
}

static void config_checked(void **state)
{
    struct detect_rig r;
    assert_status(rig_up(&r, "[deepstack]", "    min_confidence: 45\n", 0), VG_ERR_CONFIG);
    assert_detail("detectors.deepstack.min_confidence");
    detect_rig_down(&r);
    assert_status(rig_up(&r, "[deepstack]", "    faces: maybe\n", 0), VG_ERR_CONFIG);
    detect_rig_down(&r);
    setenv("VIGIL_DEEPSTACK_URL", "ftp://example.com", 1);
    assert_status(rig_up(&r, "[deepstack]", "", 0), VG_ERR_CONFIG);
    assert_detail("http://");
    unsetenv("VIGIL_DEEPSTACK_URL");
    detect_rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(predictions_become_labels, reset),
        cmocka_unit_test_setup(remote_verdict_reused, reset),
        cmocka_unit_test_setup(size_read_from_jpeg, reset),
        cmocka_unit_test_setup(faces, reset),
        cmocka_unit_test_setup(api_key, reset),
        cmocka_unit_test_setup(server_errors, reset),
        cmocka_unit_test_setup(garbage_and_huge_answers, reset),
        cmocka_unit_test_setup(hang_bounded_by_deadline, reset),
        cmocka_unit_test_setup(nobody_listening, reset),
        cmocka_unit_test_setup(chain_falls_back_to_motion, reset),
        cmocka_unit_test_setup(config_checked, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
