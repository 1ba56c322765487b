/* The "rekognition" detector against the AWS fake (tests/fakes/fake_aws.py),
 * through the real seam: a YAML file, vg_detect_settings_load, the engine
 * and the backend's ops table. Labels, instances, parents and categories,
 * seed 004's watch list, faces, the deadline, throttling and config errors. */
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
#include "fake_aws_ctl.h"
#include "fixture.h"
#include "image/jpeg.h"
#include "timeutil.h"

#define IMAGE "/usr/share/doc/opencv-doc/examples/data/HappyFish.jpg"

static struct {
    pid_t pid;
    int port;
    uint8_t *jpeg;
    size_t jpeg_len;
    struct vg_image img;
} g;

static int timeout_ms = 5000, max_attempts = 3;

/* %d: dispatch.detect_timeout_ms, aws.max_attempts; %s: the rekognition keys. */
static const char base_yaml[] =
    "dispatch:\n"
    "  detectors: [rekognition]\n"
    "  detect_timeout_ms: %d\n"
    "aws:\n"
    "  max_attempts: %d\n"
    "cameras:\n"
    "  - id: front\n"
    "    url: /dev/null\n"
    "    label_watch_list: [Human, Pet, Bag, Toy]\n"
    "    label_watch_min_conf: 90\n"
    "detectors:\n"
    "  rekognition:\n"
    "%s";
/* Seed 004's rekog_max_labels and rekog_min_conf. */
#define REK_KEYS "    max_labels: 123\n    min_confidence: 50\n"

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    if (!(g.jpeg = fixture_slurp(IMAGE, &g.jpeg_len)))
        return -1;
    g.img = (struct vg_image){.jpeg = g.jpeg, .jpeg_len = g.jpeg_len};
    if (vg_jpeg_dims(NULL, g.jpeg, g.jpeg_len, &g.img.width, &g.img.height) != VG_OK)
        return -1;
    g.pid = fixture_fake_aws_start(&g.port);
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
    return 0;
}

/* base_yaml with the rekognition keys as a file, loaded; an engine too when
 * want_engine. */
static vg_status rig_up(struct detect_rig *r, const char *keys, int want_engine)
{
    return detect_rig_upf(r, want_engine, base_yaml, timeout_ms, max_attempts, keys);
}

/* The backend called directly, with its own state, as one dispatch worker would. */
static vg_status run_backend(struct detect_rig *r, int want_faces, int64_t deadline_us,
                             struct vg_detect_res *res)
{
    const struct vg_detector_backend *be = vg_detector_find("rekognition");
    assert_non_null(be);
    assert_true(be->caps & VG_DETECT_REMOTE);
    assert_false(be->caps & VG_DETECT_PIXELS);
    return detect_rig_backend(r, "rekognition", &g.img, want_faces, deadline_us, res);
}

static const struct vg_label *find_label(const struct vg_detect_res *res, const char *raw,
                                         int nth)
{
    for (size_t i = 0; i < res->n; i++)
        if (!strcmp(res->labels[i].raw, raw) && nth-- == 0)
            return &res->labels[i];
    return NULL;
}

static int has_parent(const struct vg_label *l, const char *name)
{
    for (int i = 0; i < l->n_parents; i++)
        if (!strcmp(l->parents[i], name))
            return 1;
    return 0;
}

static int near(double a, double b) { return a > b - 1e-4 && a < b + 1e-4; }

/* A house scene as Rekognition describes it (label model 3.0 shapes). */
static const char scene_labels[] =
    "{\"api\":\"DetectLabels\",\"labels\":["
    "{\"Name\":\"Person\",\"Confidence\":99.1,\"Aliases\":[{\"Name\":\"Human\"}],"
    " \"Categories\":[{\"Name\":\"Person Description\"}],\"Instances\":["
    " {\"Confidence\":99.1,\"BoundingBox\":{\"Left\":0.1,\"Top\":0.2,\"Width\":0.2,"
    "  \"Height\":0.6}},"
    " {\"Confidence\":85,\"BoundingBox\":{\"Left\":0.6,\"Top\":0.3,\"Width\":0.1,"
    "  \"Height\":0.4}},"
    " {\"Confidence\":45,\"BoundingBox\":{\"Left\":0.8,\"Top\":0.3,\"Width\":0.1,"
    "  \"Height\":0.4}}]},"
    "{\"Name\":\"Sedan\",\"Confidence\":95,\"Parents\":[{\"Name\":\"Car\"},{\"Name\":\"Vehicle\"},"
    " {\"Name\":\"Transportation\"}],\"Instances\":[{\"Confidence\":95,\"BoundingBox\":"
    " {\"Left\":0.5,\"Top\":0.5,\"Width\":0.4,\"Height\":0.3}}]},"
    "{\"Name\":\"Dog\",\"Confidence\":93,\"Parents\":[{\"Name\":\"Animal\"},{\"Name\":\"Canine\"},"
    " {\"Name\":\"Mammal\"},{\"Name\":\"Carnivore\"},{\"Name\":\"Pet\"}],\"Instances\":["
    " {\"Confidence\":93,\"BoundingBox\":{\"Left\":0.3,\"Top\":0.7,\"Width\":0.1,"
    "  \"Height\":0.1}}]},"
    "{\"Name\":\"Handbag\",\"Confidence\":92,\"Parents\":[{\"Name\":\"Accessories\"},"
    " {\"Name\":\"Bag\"}],\"Instances\":[{\"Confidence\":92,\"BoundingBox\":"
    " {\"Left\":0.15,\"Top\":0.5,\"Width\":0.05,\"Height\":0.05}}]},"
    "{\"Name\":\"Toy\",\"Confidence\":91},"
    "{\"Name\":\"Cardboard\",\"Confidence\":88,\"Parents\":[{\"Name\":\"Box\"}]},"
    "{\"Name\":\"Outdoors\",\"Confidence\":80},"
    "{\"Name\":\"Tree\",\"Confidence\":30}]}";

/* ---- tests ------------------------------------------------------------------ */

static void labels_become_vigil_labels(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, REK_KEYS, 0));
    fake_do("POST", "/_fake/rekognition/next", scene_labels);
    assert_vg_ok(run_backend(&r, 0, 0, &res));

    /* Person: two instances above min_confidence 50 (the 45 one is dropped). */
    const struct vg_label *p = find_label(&res, "Person", 0);
    assert_non_null(p);
    assert_non_null(find_label(&res, "Person", 1));
    assert_null(find_label(&res, "Person", 2));
    assert_int_equal(p->category, VG_CAT_PERSON);
    assert_true(near(p->confidence, 0.991));
    assert_true(near(p->box.x, 0.1) && near(p->box.y, 0.2) && near(p->box.w, 0.2) &&
                near(p->box.h, 0.6));
    assert_true(has_parent(p, "Human"));    /* Rekognition's alias, seed 004's name */

    const struct vg_label *sedan = find_label(&res, "Sedan", 0);
    assert_non_null(sedan);
    assert_int_equal(sedan->category, VG_CAT_VEHICLE);     /* by its parent Car */
    assert_int_equal(sedan->n_parents, 3);
    assert_string_equal(sedan->parents[0], "Car");

    /* Five parents, four kept: the one naming a category (Pet) is among them. */
    const struct vg_label *dog = find_label(&res, "Dog", 0);
    assert_non_null(dog);
    assert_int_equal(dog->category, VG_CAT_PET);
    assert_int_equal(dog->n_parents, VG_LABEL_PARENTS);
    assert_true(has_parent(dog, "Pet") && has_parent(dog, "Animal"));

    const struct vg_label *bag = find_label(&res, "Handbag", 0);
    assert_non_null(bag);
    assert_int_equal(bag->category, VG_CAT_OTHER);
    assert_true(has_parent(bag, "Bag"));

    /* Labels without instances are whole-image labels. */
    const struct vg_label *toy = find_label(&res, "Toy", 0);
    assert_non_null(toy);
    assert_true(toy->box.x == 0 && toy->box.y == 0 && toy->box.w == 0 && toy->box.h == 0);
    assert_true(near(toy->confidence, 0.91));
    assert_int_equal(find_label(&res, "Cardboard", 0)->category, VG_CAT_PACKAGE);
    assert_int_equal(find_label(&res, "Outdoors", 0)->category, VG_CAT_OTHER);
    assert_null(find_label(&res, "Tree", 0));  /* below MinConfidence: AWS drops it */
    assert_int_equal(res.n, 8);
    assert_int_equal(res.n_faces, 0);

    /* What was asked: seed 004's MaxLabels and MinConfidence, in percent. */
    json_t *reqs = fake("GET", "/_fake/requests?api=rekognition.DetectLabels&bodies=1", NULL);
    assert_int_equal(json_array_size(reqs), 1);
    json_t *body = json_loads(json_string_value(json_object_get(json_array_get(reqs, 0),
                                                                "body")), 0, NULL);
    assert_non_null(body);
    assert_int_equal(json_integer_value(json_object_get(body, "MaxLabels")), 123);
    assert_true(near(json_number_value(json_object_get(body, "MinConfidence")), 50));
    json_decref(body);
    json_decref(reqs);
    assert_int_equal(fake_count("rekognition.DetectFaces"), 0);
    detect_rig_down(&r);
}

static void seed_004_watch_list(void **state)
{
    struct detect_rig r;
    struct vg_chain_out out;
    assert_vg_ok(rig_up(&r, REK_KEYS, 1));
    const struct vg_camera_cfg *cam = &r.cfg->cameras[0];
    assert_int_equal(cam->n_watch, 4);
    fake_do("POST", "/_fake/rekognition/next", scene_labels);
    assert_vg_ok(vg_detect_engine_run(r.e, cam, &g.img, NULL, 0, &out));
    assert_string_equal(out.detector, "rekognition");
    assert_int_equal(out.raw, 8);
    assert_false(out.degraded);
    /* Human (the 99.1 person, not the 85 one), Pet (the dog), Bag (the
     * handbag's parent), Toy: each at least label_watch_min_conf 90. */
    assert_int_equal(out.res.n, 4);
    assert_non_null(find_label(&out.res, "Person", 0));
    assert_null(find_label(&out.res, "Person", 1));
    assert_non_null(find_label(&out.res, "Dog", 0));
    assert_non_null(find_label(&out.res, "Handbag", 0));
    assert_non_null(find_label(&out.res, "Toy", 0));

    struct vg_label person = {.raw = "Person", .category = VG_CAT_PERSON, .confidence = 0.95f,
                              .n_parents = 1, .parents = {"Human"}};
    struct vg_watch human = {.label = "Human", .min_confidence = 0.9};
    assert_true(vg_watch_matches(&human, &person));
    person.confidence = 0.89f;
    assert_false(vg_watch_matches(&human, &person));
    detect_rig_down(&r);
}

static void faces_when_a_person_is_seen(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, REK_KEYS, 0));
    /* auto: the default labels hold a Person, so DetectFaces is called. */
    assert_vg_ok(run_backend(&r, 1, 0, &res));
    assert_int_equal(res.n_faces, 1);
    assert_true(near(res.faces[0].box.x, 0.375) && near(res.faces[0].box.y, 0.2) &&
                near(res.faces[0].box.w, 0.25) && near(res.faces[0].box.h, 0.4));
    assert_true(near(res.faces[0].confidence, 0.9999));
    assert_int_equal(fake_count("rekognition.DetectFaces"), 1);

    /* Not asked for faces: no call. */
    assert_vg_ok(run_backend(&r, 0, 0, &res));
    assert_int_equal(res.n_faces, 0);
    assert_int_equal(fake_count("rekognition.DetectFaces"), 1);

    /* No person: no second paid call. */
    fake_do("POST", "/_fake/rekognition/next",
            "{\"api\":\"DetectLabels\",\"labels\":[{\"Name\":\"Car\",\"Confidence\":97}]}");
    assert_vg_ok(run_backend(&r, 1, 0, &res));
    assert_int_equal(res.n_faces, 0);
    assert_int_equal(fake_count("rekognition.DetectFaces"), 1);

    /* Two scripted faces, one hanging over the edge (clipped). */
    fake_do("POST", "/_fake/rekognition/next",
            "{\"api\":\"DetectFaces\",\"faces\":["
            "{\"BoundingBox\":{\"Left\":0.1,\"Top\":0.1,\"Width\":0.1,\"Height\":0.2},"
            " \"Confidence\":97.5},"
            "{\"BoundingBox\":{\"Left\":0.95,\"Top\":0.5,\"Width\":0.1,\"Height\":0.2}}]}");
    assert_vg_ok(run_backend(&r, 1, 0, &res));
    assert_int_equal(res.n_faces, 2);
    assert_true(near(res.faces[0].confidence, 0.975));
    assert_true(near(res.faces[1].box.x, 0.95) && near(res.faces[1].box.w, 0.05));

    /* A DetectFaces failure is a warning: the labels stand. */
    fake_do("POST", "/_fake/fail", "{\"api\":\"rekognition.DetectFaces\",\"count\":3,"
                                   "\"status\":400,\"code\":\"InvalidParameterException\"}");
    assert_vg_ok(run_backend(&r, 1, 0, &res));
    assert_int_equal(res.n_faces, 0);
    assert_non_null(find_label(&res, "Person", 0));
    detect_rig_down(&r);
}

static void faces_on_and_off(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, REK_KEYS "    faces: on\n", 0));
    fake_do("POST", "/_fake/labels", "{\"labels\":[]}");
    assert_vg_ok(run_backend(&r, 1, 0, &res));
    assert_int_equal(res.n, 0);
    assert_int_equal(res.n_faces, 1);   /* on: asked even without a person */
    detect_rig_down(&r);

    assert_vg_ok(rig_up(&r, REK_KEYS "    faces: off\n", 0));
    assert_vg_ok(run_backend(&r, 1, 0, &res));
    assert_int_equal(res.n_faces, 0);
    assert_int_equal(fake_count("rekognition.DetectFaces"), 1);
    detect_rig_down(&r);
}

static void deadline_passed_sends_nothing(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    assert_vg_ok(rig_up(&r, REK_KEYS, 0));
    assert_status(run_backend(&r, 0, vg_now_us() - 1000, &res), VG_ERR_TIMEOUT);
    assert_non_null(strstr(vg_err_detail(), "deadline"));
    assert_int_equal(fake_count("rekognition.*"), 0);
    detect_rig_down(&r);
}

/* The per-attempt timeout is capped at detect_timeout_ms: a hung
 * Rekognition costs about the deadline per attempt, not aws.timeout_ms. */
static void hung_service_bounded_by_deadline(void **state)
{
    struct detect_rig r;
    struct vg_chain_out out;
    timeout_ms = 400;
    max_attempts = 1;
    vg_status st = rig_up(&r, REK_KEYS, 1);
    timeout_ms = 5000;
    max_attempts = 3;
    assert_vg_ok(st);
    fake_do("POST", "/_fake/fail", "{\"api\":\"rekognition.DetectLabels\",\"delay_ms\":3000}");
    int64_t t0 = vg_mono_us();
    assert_status(vg_detect_engine_run(r.e, &r.cfg->cameras[0], &g.img, NULL, 0, &out),
                  VG_ERR_TIMEOUT);
    int64_t ms = (vg_mono_us() - t0) / 1000;
    assert_true(ms >= 350 && ms < 2000);
    detect_rig_down(&r);
}

static void throttling_retried_then_exhausted(void **state)
{
    struct detect_rig r;
    struct vg_chain_out out;
    assert_vg_ok(rig_up(&r, REK_KEYS, 1));
    const struct vg_camera_cfg *cam = &r.cfg->cameras[0];
    fake_do("POST", "/_fake/fail", "{\"api\":\"rekognition.DetectLabels\",\"count\":2,"
                                   "\"status\":400,\"code\":\"ThrottlingException\"}");
    fake_do("POST", "/_fake/rekognition/next", scene_labels);
    assert_vg_ok(vg_detect_engine_run(r.e, cam, &g.img, NULL, 0, &out));
    assert_int_equal(out.raw, 8);       /* the third attempt got the scripted answer */
    assert_int_equal(fake_count("rekognition.DetectLabels"), 3);

    fake_do("POST", "/_fake/fail", "{\"api\":\"rekognition.DetectLabels\",\"count\":5,"
                                   "\"status\":400,\"code\":\"ThrottlingException\"}");
    assert_status(vg_detect_engine_run(r.e, cam, &g.img, NULL, 0, &out), VG_ERR_THROTTLED);
    assert_non_null(strstr(vg_err_detail(), "detector rekognition"));
    assert_non_null(strstr(vg_err_detail(), "ThrottlingException"));
    assert_int_equal(fake_count("rekognition.DetectLabels"), 6);
    detect_rig_down(&r);
}

static void bad_images(void **state)
{
    struct detect_rig r;
    struct vg_detect_res res;
    static const uint8_t gif[] = "GIF89a not a jpeg";
    const struct vg_image saved = g.img;
    assert_vg_ok(rig_up(&r, REK_KEYS, 0));
    g.img.jpeg = gif;
    g.img.jpeg_len = sizeof(gif) - 1;
    assert_status(run_backend(&r, 0, 0, &res), VG_ERR_AWS);
    assert_non_null(strstr(vg_err_detail(), "InvalidImageFormatException"));
    g.img.jpeg = NULL;
    g.img.jpeg_len = 0;
    assert_status(run_backend(&r, 0, 0, &res), VG_ERR_INVALID);
    g.img = saved;
    assert_int_equal(fake_count("rekognition.DetectLabels"), 1);
    detect_rig_down(&r);
}

static void config_errors_name_the_line(void **state)
{
    struct detect_rig r;
    assert_status(rig_up(&r, "    max_labels: 0\n", 0), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "detectors.rekognition.max_labels"));
    assert_non_null(strstr(vg_err_detail(), ":13:"));
    detect_rig_down(&r);
    assert_status(rig_up(&r, "    faces: sometimes\n", 0), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "auto, on, off"));
    detect_rig_down(&r);
    assert_status(rig_up(&r, "    min_confidence: 101\n", 0), VG_ERR_CONFIG);
    detect_rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(labels_become_vigil_labels, reset),
        cmocka_unit_test_setup(seed_004_watch_list, reset),
        cmocka_unit_test_setup(faces_when_a_person_is_seen, reset),
        cmocka_unit_test_setup(faces_on_and_off, reset),
        cmocka_unit_test_setup(deadline_passed_sends_nothing, reset),
        cmocka_unit_test_setup(hung_service_bounded_by_deadline, reset),
        cmocka_unit_test_setup(throttling_retried_then_exhausted, reset),
        cmocka_unit_test_setup(bad_images, reset),
        cmocka_unit_test_setup(config_errors_name_the_line, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
