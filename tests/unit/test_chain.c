/* The detector chain's pieces: watch lists in every documented form (seed
 * 004's label_watch_list + label_watch_min_conf in percent, seed 000's
 * "person > 0.72", maps with zones), filters, object masks, zones, motion
 * regions, and the chain itself on the motion stage. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "detect/chain.h"
#include "detect_rig.h"

static struct vg_config cfg;

static const struct vg_camera_cfg *parse_camera(const char *text)
{
    vg_cfg_defaults(&cfg);
    vg_status st = vg_cfg_parse(&cfg, "test.yaml", text, strlen(text));
    if (st != VG_OK)
        fail_msg("parse: %s", vg_err_detail());
    assert_int_equal(cfg.n_cameras, 1);
    return &cfg.cameras[0];
}

static void parse_fails(const char *text, const char *expect)
{
    vg_cfg_defaults(&cfg);
    assert_int_equal(vg_cfg_parse(&cfg, "test.yaml", text, strlen(text)), VG_ERR_CONFIG);
    if (!strstr(vg_err_detail(), expect))
        fail_msg("detail \"%s\" lacks \"%s\"", vg_err_detail(), expect);
}

static struct vg_label label(const char *raw, enum vg_category cat, float conf, float x,
                             float y, float w, float h)
{
    struct vg_label l;
    memset(&l, 0, sizeof(l));
    snprintf(l.raw, sizeof(l.raw), "%s", raw);
    l.category = cat;
    l.confidence = conf;
    l.box = (struct vg_box){x, y, w, h};
    return l;
}

static void seed_004_watch_list_in_percent(void **state)
{
    const struct vg_camera_cfg *cam = parse_camera(
        "cameras:\n"
        "  - id: door\n"
        "    url: x.avi\n"
        "    label_watch_list: [Human, Pet, Bag, Toy]\n"
        "    label_watch_min_conf: 90\n");
    assert_int_equal(cam->n_watch, 4);
    assert_string_equal(cam->watch[0].label, "Human");
    assert_float_equal(cam->watch[0].min_confidence, 0.90, 1e-9);
    /* Rekognition's "Person" with parent/alias "Human" is watched by "Human". */
    struct vg_label l = label("Person", VG_CAT_PERSON, 0.95f, 0.1f, 0.1f, 0.2f, 0.5f);
    snprintf(l.parents[0], sizeof(l.parents[0]), "Human");
    l.n_parents = 1;
    assert_true(vg_watch_matches(&cam->watch[0], &l));
    l.confidence = 0.89f;
    assert_false(vg_watch_matches(&cam->watch[0], &l));
    /* "Toy" is no category: it matches the raw name, case-insensitively. */
    struct vg_label toy = label("toy", VG_CAT_OTHER, 0.99f, 0, 0, 0, 0);
    assert_true(vg_watch_matches(&cam->watch[3], &toy));
}

static void seed_000_rule_as_written(void **state)
{
    const struct vg_camera_cfg *cam = parse_camera(
        "cameras:\n"
        "  - id: door\n"
        "    url: x.avi\n"
        "    watch: [\"person > 0.72\", \"pet >= 80%\", vehicle]\n");
    assert_int_equal(cam->n_watch, 3);
    assert_string_equal(cam->watch[0].label, "person");
    assert_float_equal(cam->watch[0].min_confidence, 0.72, 1e-9);
    assert_float_equal(cam->watch[1].min_confidence, 0.80, 1e-9);
    assert_float_equal(cam->watch[2].min_confidence, 0, 1e-9);
    struct vg_label p = label("Human", VG_CAT_PERSON, 0.73f, 0, 0, 0, 0);
    assert_true(vg_watch_matches(&cam->watch[0], &p));
    p.confidence = 0.71f;
    assert_false(vg_watch_matches(&cam->watch[0], &p));
    parse_fails("cameras:\n  - {id: a, url: x, watch: [\"person > lots\"]}\n",
                "write \"label > 0.72\"");
}

static const char *zoned =
    "cameras:\n"
    "  - id: door\n"
    "    url: x.avi\n"
    "    watch:\n"
    "      - { label: person, min_confidence: 0.5, zones: [porch] }\n"
    "      - pet\n"
    "    zones:\n"
    "      - { name: porch, polygon: \"0,0.5 1,0.5 1,1 0,1\" }\n"
    "      - { name: street, polygon: [[0, 0], [1, 0], [1, 0.5], [0, 0.5]] }\n"
    "    object_masks: [\"0.8,0 1,0 1,1 0.8,1\"]\n"
    "    filters:\n"
    "      - { label: person, min_area: 0.01, max_area: 0.5 }\n"
    "      - { label: \"*\", min_confidence: 0.3 }\n";

static void zones_masks_filters(void **state)
{
    const struct vg_camera_cfg *cam = parse_camera(zoned);
    assert_int_equal(cam->n_zones, 2);
    assert_int_equal(cam->zones[1].poly.n, 4);
    assert_int_equal(cam->watch[0].zones, 1u << 0);
    struct vg_label l[6] = {
        label("person", VG_CAT_PERSON, 0.9f, 0.2f, 0.4f, 0.1f, 0.3f),  /* feet at y .7: porch */
        label("person", VG_CAT_PERSON, 0.9f, 0.2f, 0.1f, 0.1f, 0.3f),  /* feet at y .4: street */
        label("person", VG_CAT_PERSON, 0.9f, 0.85f, 0.4f, 0.1f, 0.3f), /* in the object mask */
        label("person", VG_CAT_PERSON, 0.9f, 0.1f, 0.1f, 0.05f, 0.1f), /* area .005: too small */
        label("dog", VG_CAT_PET, 0.2f, 0.1f, 0.6f, 0.1f, 0.1f),        /* below "*" 0.3 */
        label("dog", VG_CAT_PET, 0.6f, 0.1f, 0.6f, 0.1f, 0.1f),
    };
    size_t n = vg_labels_screen(cam, l, 6);
    assert_int_equal(n, 3);
    assert_int_equal(l[0].zones, 1u << 0);
    assert_int_equal(l[1].zones, 1u << 1);
    assert_string_equal(l[2].raw, "dog");
    /* The watch list wants people on the porch: the one in the street goes. */
    n = vg_watch_apply(cam, l, n);
    assert_int_equal(n, 2);
    assert_int_equal(l[0].zones, 1u << 0);
    assert_int_equal(l[1].category, VG_CAT_PET);
}

static void zone_errors_name_the_line(void **state)
{
    parse_fails("cameras:\n  - id: a\n    url: x\n    watch: [{label: person, zones: [gate]}]\n",
                "test.yaml:4: watch names zone \"gate\"");
    parse_fails("cameras:\n  - id: a\n    url: x\n    zones: [{name: z, polygon: \"0,0 1,1\"}]\n",
                "needs at least 3 points");
    parse_fails("cameras:\n  - id: a\n    url: x\n    zones: [{name: z, polygon: \"0,0 640,0 "
                "640,480\"}]\n", "x / width");
    parse_fails("cameras:\n  - id: a\n    url: x\n    object_masks: [3]\n",
                "test.yaml:4: polygon");
    parse_fails("cameras:\n  - id: a\n    url: x\n    sample: sometimes\n",
                "sample \"sometimes\" is not one of: fps, every_n, keyframes");
}

static void big_motion_is_not_motion(void **state)
{
    const struct vg_camera_cfg *cam =
        parse_camera("cameras:\n  - {id: a, url: x, motion: {max_area: 0.5}}\n");
    struct vg_label l[2] = {
        label("motion", VG_CAT_MOTION, 0.9f, 0, 0, 0.9f, 0.9f),
        label("motion", VG_CAT_MOTION, 0.5f, 0.1f, 0.1f, 0.2f, 0.2f),
    };
    assert_int_equal(vg_labels_screen(cam, l, 2), 1);
    assert_float_equal(l[0].box.w, 0.2f, 1e-6);
}

static void regions_merge_and_pad(void **state)
{
    struct vg_motion_hint m = {.n = 3};
    struct vg_box out[VG_DETECT_MAX_REGIONS];
    m.boxes[0] = (struct vg_box){0.10f, 0.10f, 0.10f, 0.20f};
    m.boxes[1] = (struct vg_box){0.18f, 0.15f, 0.10f, 0.20f}; /* overlaps the first */
    m.boxes[2] = (struct vg_box){0.70f, 0.70f, 0.10f, 0.10f};
    size_t n = vg_motion_regions(&m, 0.8, out, VG_DETECT_MAX_REGIONS);
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++) {
        assert_true(out[i].x >= 0 && out[i].x + out[i].w <= 1.0001f);
        assert_true(out[i].y >= 0 && out[i].y + out[i].h <= 1.0001f);
    }
    /* Padded: the merged region holds both boxes with room around them. */
    const struct vg_box *a = out[0].x < 0.5f ? &out[0] : &out[1];
    assert_true(a->x < 0.10f && a->x + a->w > 0.28f && a->y < 0.10f && a->y + a->h > 0.35f);
}

static void chain_runs_motion_stage(void **state)
{
    struct detect_rig r;
    assert_vg_ok(detect_rig_up(&r, "dispatch: {detectors: [motion]}\n"
                                   "cameras:\n  - {id: a, url: x, detectors: [motion], "
                                   "watch: [\"motion > 0.3\"]}\n", 1));
    struct vg_motion_hint m = {.n = 2};
    m.boxes[0] = (struct vg_box){0.1f, 0.1f, 0.2f, 0.2f};
    m.fill[0] = 0.6f;
    m.boxes[1] = (struct vg_box){0.5f, 0.5f, 0.2f, 0.2f};
    m.fill[1] = 0.1f;
    struct vg_image img = {.width = 320, .height = 240};
    struct vg_chain_out *out = malloc(sizeof(*out));
    assert_vg_ok(vg_detect_engine_run(r.e, &r.cfg->cameras[0], &img, &m, 0, out));
    assert_string_equal(out->detector, "motion");
    assert_int_equal(out->raw, 2);
    assert_int_equal(out->res.n, 1);  /* the 0.1 fill is below the watch's 0.3 */
    assert_int_equal(out->stages_run, 1);
    free(out);
    detect_rig_down(&r);
}

static void unknown_detector_lists_the_known(void **state)
{
    struct vg_detect_settings *s = NULL;
    vg_cfg_defaults(&cfg);
    const char *text = "dispatch: {detectors: [motion]}\n"
                       "cameras:\n  - {id: a, url: x, detectors: [motion, yolo9000]}\n";
    assert_int_equal(vg_cfg_parse(&cfg, "t.yaml", text, strlen(text)), VG_OK);
    assert_int_equal(vg_detect_settings_load(&s, &cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "camera \"a\": detector \"yolo9000\" is not known"));
    assert_non_null(strstr(vg_err_detail(), "known: motion"));
}

/* What review found: each once a silent failure. */
static void edge_cases(void **state)
{
    /* A person cut off by the frame's bottom edge still stands in a zone there. */
    const struct vg_camera_cfg *cam = parse_camera(
        "cameras:\n  - id: a\n    url: x\n"
        "    zones: [{name: porch, polygon: \"0.05,0.55 0.6,0.55 0.6,1 0.05,1\"}]\n"
        "    filters: [{label: \"*\", min_confidence: 0.4}]\n");
    struct vg_label l[3] = {
        label("person", VG_CAT_PERSON, 0.9f, 0.2f, 0.6f, 0.2f, 0.4f),   /* bottom at y = 1 */
        label("motion", VG_CAT_MOTION, 0.2f, 0.1f, 0.1f, 0.1f, 0.1f),   /* "*" is not for motion */
        label("dog", VG_CAT_PET, 0.5f, 0.1f, 0.1f, 0.1f, 0.1f),
    };
    l[2].confidence = vg_unit(0.0f / 0.0f);    /* NaN from a remote answer: 0 */
    assert_float_equal(l[2].confidence, 0, 0);
    assert_int_equal(vg_labels_screen(cam, l, 3), 2);
    assert_int_equal(l[0].zones, 1u << 0);
    assert_int_equal(l[1].category, VG_CAT_MOTION);
    parse_fails("cameras:\n  - {id: a, url: x, watch: [\"person < 0.5\"]}\n",
                "the only comparison is \">\"");
    parse_fails("cameras:\n  - id: a\n    url: x\n    fps: 5\n    fps: 6\n",
                "test.yaml:5: \"cameras.fps\" is given twice (also on line 4)");
}

/* The annotated example is what users copy: it must load, detectors and all. */
static void example_config_is_valid(void **state)
{
    char path[1024];
    const char *src = getenv("VIGIL_SOURCE_DIR");
    struct vg_detect_settings *s = NULL;
    snprintf(path, sizeof(path), "%s/config/vigil.example.yaml", src ? src : ".");
    if (vg_cfg_load(&cfg, path) != VG_OK)
        fail_msg("%s", vg_err_detail());
    if (vg_detect_settings_load(&s, &cfg) != VG_OK)
        fail_msg("%s", vg_err_detail());
    assert_int_equal(cfg.cameras[0].n_zones, 1);
    vg_detect_settings_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(seed_004_watch_list_in_percent),
        cmocka_unit_test(seed_000_rule_as_written),
        cmocka_unit_test(zones_masks_filters),
        cmocka_unit_test(zone_errors_name_the_line),
        cmocka_unit_test(big_motion_is_not_motion),
        cmocka_unit_test(regions_merge_and_pad),
        cmocka_unit_test(chain_runs_motion_stage),
        cmocka_unit_test(unknown_detector_lists_the_known),
        cmocka_unit_test(example_config_is_valid),
        cmocka_unit_test(edge_cases),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
