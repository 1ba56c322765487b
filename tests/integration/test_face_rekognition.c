/* The "rekognition" face matcher against the SigV4-checking AWS fake
 * (tests/fakes/fake_aws.py), through the seam: a YAML file, vg_cfg_load,
 * vg_face_matcher_open and the matcher's ops table. Enrolment (the
 * collection created on demand, replacement, rollback, bad input), listing
 * across ListFaces pages, matching (a person, nobody, no face), removal,
 * and the ways AWS fails (a missing collection, throttling, a 500).
 *
 * The images are not pictures: the fake only checks the JPEG signature and
 * matches a searched image to the indexed faces whose image had the same
 * SHA-256, so each "photo" is FF D8 FF plus a tag. The marker NOFACE makes
 * the fake see no face in it, TWOFACES a second one. */
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

#include "aws/rekognition.h"
#include "config.h"
#include "detect_rig.h"     /* assert_status, assert_vg_ok, assert_detail */
#include "face/matcher.h"
#include "fake_aws_ctl.h"
#include "fixture.h"

static struct {
    pid_t pid;
    int port;
} g;

/* A face matcher opened from a configuration file. */
struct rig {
    char path[64];
    struct vg_config *cfg;
    struct vg_face_matcher *m;
};

#define IMG(tag) "\xff\xd8\xff\xe0" tag "\xff\xd9"
static const char alice1[] = IMG("alice-1"), alice2[] = IMG("alice-2"),
                  alice3[] = IMG("alice-3"), bob1[] = IMG("bob-1"),
                  stranger[] = IMG("stranger"), faceless[] = IMG("NOFACE wall"),
                  group[] = IMG("TWOFACES alice and bob");

static struct vg_face_image image(const char *bytes, size_t size)
{
    return (struct vg_face_image){.jpeg = (const uint8_t *)bytes, .jpeg_len = size - 1};
}
#define IMAGE(a) image(a, sizeof(a))

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    g.pid = fixture_fake_aws_start(&g.port);
    if (g.port == 0)
        return -1;
    fake_ctl_init(g.port);
    return 0;
}

static int group_teardown(void **state)
{
    fixture_stop(g.pid);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    return 0;
}

/* aws, faces.collection and matchers.rekognition with keys (at least one
 * line); the matcher opened. */
static vg_status rig_up(struct rig *r, const char *keys)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml),
                     "aws:\n  max_attempts: 3\n"
                     "faces:\n  collection: home-faces\n"
                     "matchers:\n  rekognition:\n%s", keys);
    assert_true(n > 0 && (size_t)n < sizeof(yaml));
    memset(r, 0, sizeof(*r));
    snprintf(r->path, sizeof(r->path), "/tmp/vigil-face-XXXXXX");
    int fd = mkstemp(r->path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, (size_t)n), n);
    close(fd);
    assert_non_null(r->cfg = malloc(sizeof(*r->cfg)));
    vg_status st = vg_cfg_load(r->cfg, r->path);
    if (st != VG_OK)
        return st;
    /* The matcher is chosen in the struct: this test needs no facematch
     * section, and vg_cfg_load may still know only "none". */
    snprintf(r->cfg->facematch.matcher, sizeof(r->cfg->facematch.matcher), "rekognition");
    struct vg_face_env env = {.cfg = r->cfg};
    return vg_face_matcher_open(&r->m, &env);
}

static void rig_down(struct rig *r)
{
    vg_face_matcher_close(r->m);
    free(r->cfg);
    unlink(r->path);
}

static vg_status match(struct rig *r, struct vg_face_image img, struct vg_face_match *m)
{
    memset(m, 0x5a, sizeof(*m));    /* nothing left over from the caller */
    return r->m->ops->match(r->m->state, &img, m);
}

static vg_status enrol(struct rig *r, const char *person, const struct vg_face_image *imgs,
                       size_t n)
{
    return r->m->ops->enrol(r->m->state, person, imgs, n);
}

/* How many faces the list holds for person (NULL: all). */
static size_t listed(struct rig *r, const char *person)
{
    struct vg_face_entry *e = NULL;
    size_t n = 0, k = 0;
    assert_vg_ok(r->m->ops->list(r->m->state, &e, &n));
    for (size_t i = 0; i < n; i++)
        k += !person || !strcmp(e[i].person_id, person);
    free(e);
    return k;
}

static void fail_next(const char *api, int count, int status, const char *code)
{
    char body[256];
    snprintf(body, sizeof(body), "{\"api\":\"%s\",\"count\":%d,\"status\":%d,\"code\":\"%s\"}",
             api, count, status, code);
    fake_do("POST", "/_fake/fail", body);
}

static int near(double a, double b) { return a > b - 1e-4 && a < b + 1e-4; }

/* ---- tests ------------------------------------------------------------------ */

static void enrol_list_match_remove(void **state)
{
    struct rig r;
    struct vg_face_match m;
    struct vg_face_entry *e = NULL;
    size_t n = 0;
    const struct vg_face_image two[] = {IMAGE(alice1), IMAGE(alice2)};
    assert_vg_ok(rig_up(&r, "    max_faces: 1\n"));
    assert_true(r.m->ops->caps & VG_FACE_CAP_REMOTE);

    /* The collection does not exist yet: enrolment creates it. */
    assert_vg_ok(enrol(&r, "alice", two, 2));
    assert_int_equal(fake_count("rekognition.CreateCollection"), 1);
    assert_int_equal(fake_count("rekognition.IndexFaces"), 2);
    assert_vg_ok(r.m->ops->list(r.m->state, &e, &n));
    assert_int_equal(n, 2);
    assert_string_equal(e[0].person_id, "alice");
    assert_string_equal(e[1].person_id, "alice");
    assert_int_equal(strlen(e[0].face_id), 36);
    assert_string_not_equal(e[0].face_id, e[1].face_id);

    /* An enrolled photo is alice, with the face that matched. */
    assert_vg_ok(match(&r, IMAGE(alice2), &m));
    assert_int_equal(m.matched, 1);
    assert_string_equal(m.person_id, "alice");
    assert_string_equal(m.face_id, e[1].face_id);
    assert_true(near(m.similarity, 0.99));
    free(e);

    /* What was sent: the collection, the threshold and MaxFaces. */
    json_t *reqs = fake("GET", "/_fake/requests?api=rekognition.SearchFacesByImage&bodies=1",
                        NULL);
    json_t *body = json_loads(json_string_value(json_object_get(json_array_get(reqs, 0),
                                                                "body")), 0, NULL);
    assert_string_equal(json_string_value(json_object_get(body, "CollectionId")), "home-faces");
    assert_true(near(json_number_value(json_object_get(body, "FaceMatchThreshold")), 80));
    assert_int_equal(json_integer_value(json_object_get(body, "MaxFaces")), 1);
    json_decref(body);
    json_decref(reqs);

    /* Somebody else, and a crop without a face: unknown, not errors. */
    assert_vg_ok(match(&r, IMAGE(stranger), &m));
    assert_int_equal(m.matched, 0);
    assert_true(near(m.similarity, 0));
    assert_vg_ok(match(&r, IMAGE(faceless), &m));
    assert_int_equal(m.matched, 0);

    /* Every request was signed and the fake accepted the signature. */
    json_t *all = fake("GET", "/_fake/requests?api=rekognition.*", NULL);
    for (size_t i = 0; i < json_array_size(all); i++)
        assert_true(json_is_true(json_object_get(json_array_get(all, i), "signed_ok")));
    json_decref(all);

    assert_vg_ok(r.m->ops->remove(r.m->state, "alice"));
    assert_int_equal(listed(&r, NULL), 0);
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);
    assert_status(r.m->ops->remove(r.m->state, "alice"), VG_ERR_NOT_FOUND);
    assert_detail("no faces of alice");
    rig_down(&r);
}

static void enrol_replaces_the_person_only(void **state)
{
    struct rig r;
    struct vg_face_match m;
    const struct vg_face_image a12[] = {IMAGE(alice1), IMAGE(alice2)};
    const struct vg_face_image a3[] = {IMAGE(alice3)};
    const struct vg_face_image b1[] = {IMAGE(bob1)};
    assert_vg_ok(rig_up(&r, "    face_match_threshold: 80\n"));
    assert_vg_ok(enrol(&r, "alice", a12, 2));
    assert_vg_ok(enrol(&r, "bob", b1, 1));
    assert_vg_ok(enrol(&r, "alice", a3, 1));
    assert_int_equal(fake_count("rekognition.CreateCollection"), 1);
    assert_int_equal(listed(&r, "alice"), 1);
    assert_int_equal(listed(&r, "bob"), 1);
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);             /* the earlier photos are gone */
    assert_vg_ok(match(&r, IMAGE(alice3), &m));
    assert_int_equal(m.matched, 1);
    assert_string_equal(m.person_id, "alice");
    assert_vg_ok(match(&r, IMAGE(bob1), &m));
    assert_string_equal(m.person_id, "bob");
    rig_down(&r);
}

static void enrol_bad_input(void **state)
{
    struct rig r;
    struct vg_face_match m;
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    const struct vg_face_image bad_second[] = {IMAGE(alice2), IMAGE(faceless)};
    const struct vg_face_image with_group[] = {IMAGE(alice3), IMAGE(group)};
    char long_name[VG_FACE_ID_MAX + 1];
    assert_vg_ok(rig_up(&r, "    max_faces: 3\n"));

    assert_status(enrol(&r, "alice smith", a1, 1), VG_ERR_INVALID);
    assert_detail("ExternalImageId");
    assert_detail("_ . - :");
    assert_status(enrol(&r, "", a1, 1), VG_ERR_INVALID);
    memset(long_name, 'a', VG_FACE_ID_MAX);
    long_name[VG_FACE_ID_MAX] = '\0';
    assert_status(enrol(&r, long_name, a1, 1), VG_ERR_INVALID);
    assert_status(enrol(&r, "alice", a1, 0), VG_ERR_INVALID);
    assert_int_equal(fake_count("rekognition.*"), 0);   /* refused before any call */
    const struct vg_face_image b1[] = {IMAGE(bob1)};
    assert_vg_ok(enrol(&r, "team:bob.s-1_x", b1, 1));   /* every allowed character */
    assert_int_equal(listed(&r, "team:bob.s-1_x"), 1);

    /* A faceless second photo: the first one's face is taken back out and
     * the earlier enrolment stays. */
    assert_vg_ok(enrol(&r, "alice", a1, 1));
    assert_status(enrol(&r, "alice", bad_second, 2), VG_ERR_INVALID);
    assert_detail("image 2: no face");
    assert_int_equal(listed(&r, "alice"), 1);
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_string_equal(m.person_id, "alice");
    assert_vg_ok(match(&r, IMAGE(alice2), &m));
    assert_int_equal(m.matched, 0);

    /* A photo with two faces is refused, not half-used. */
    assert_status(enrol(&r, "alice", with_group, 2), VG_ERR_INVALID);
    assert_detail("image 2 shows more than one face");
    assert_int_equal(listed(&r, "alice"), 1);
    assert_vg_ok(match(&r, IMAGE(alice3), &m));
    assert_int_equal(m.matched, 0);

    assert_status(r.m->ops->remove(r.m->state, "no body"), VG_ERR_INVALID);
    rig_down(&r);
}

/* Listing and removal page through ListFaces (AWS may return fewer faces
 * than MaxResults per page, with a NextToken). */
static void pages_of_faces(void **state)
{
    struct rig r;
    const struct vg_face_image a[] = {IMAGE(alice1), IMAGE(alice2), IMAGE(alice3)};
    const struct vg_face_image b[] = {IMAGE(bob1), IMAGE(stranger)};
    assert_vg_ok(rig_up(&r, "    max_faces: 1\n"));
    assert_vg_ok(enrol(&r, "alice", a, 3));
    assert_vg_ok(enrol(&r, "bob", b, 2));
    fake_do("POST", "/_fake/config", "{\"list_faces_page_max\":2}");
    size_t before = fake_count("rekognition.ListFaces");
    assert_int_equal(listed(&r, NULL), 5);
    assert_int_equal(fake_count("rekognition.ListFaces") - before, 3);
    /* Replacing bob finds his faces on the last page. */
    const struct vg_face_image b2[] = {IMAGE(bob1)};
    assert_vg_ok(enrol(&r, "bob", b2, 1));
    assert_int_equal(listed(&r, "bob"), 1);
    assert_int_equal(listed(&r, "alice"), 3);
    assert_vg_ok(r.m->ops->remove(r.m->state, "alice"));
    assert_int_equal(listed(&r, NULL), 1);
    rig_down(&r);
}

static void missing_collection(void **state)
{
    struct rig r;
    struct vg_face_match m;
    struct vg_face_entry *e = NULL;
    size_t n = 0;
    assert_vg_ok(rig_up(&r, "    collection: not-created\n"));
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_NOT_FOUND);
    assert_detail("collection \"not-created\" does not exist");
    assert_detail("vigilctl faces add");
    assert_status(r.m->ops->list(r.m->state, &e, &n), VG_ERR_NOT_FOUND);
    assert_detail("does not exist");
    assert_null(e);
    assert_status(r.m->ops->remove(r.m->state, "alice"), VG_ERR_NOT_FOUND);
    assert_detail("does not exist");
    assert_int_equal(fake_count("rekognition.CreateCollection"), 0);

    /* Enrolment that cannot create it says so. */
    fail_next("rekognition.CreateCollection", 1, 400, "AccessDeniedException");
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    assert_status(enrol(&r, "alice", a1, 1), VG_ERR_AUTH);
    assert_detail("does not exist and could not be created");
    assert_detail("AccessDeniedException");
    rig_down(&r);
}

static void throttling_and_failures(void **state)
{
    struct rig r;
    struct vg_face_match m;
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    assert_vg_ok(rig_up(&r, "    max_faces: 1\n"));
    assert_vg_ok(enrol(&r, "alice", a1, 1));

    /* lib/aws retries throttling: the caller sees the answer. */
    size_t before = fake_count("rekognition.SearchFacesByImage");
    fail_next("rekognition.SearchFacesByImage", 1, 400, "ThrottlingException");
    fail_next("rekognition.SearchFacesByImage", 1, 400,
              "ProvisionedThroughputExceededException");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_string_equal(m.person_id, "alice");
    assert_int_equal(fake_count("rekognition.SearchFacesByImage") - before, 3);

    /* Throttled on every attempt: an error naming it, nothing matched. */
    fail_next("rekognition.SearchFacesByImage", 3, 400, "ThrottlingException");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_THROTTLED);
    assert_detail("ThrottlingException");
    fail_next("rekognition.SearchFacesByImage", 3, 500, "InternalServerError");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_UNAVAILABLE);
    assert_detail("InternalServerError");
    fail_next("rekognition.IndexFaces", 3, 500, "InternalServerError");
    assert_status(enrol(&r, "bob", (const struct vg_face_image[]){IMAGE(bob1)}, 1),
                  VG_ERR_UNAVAILABLE);
    assert_int_equal(listed(&r, "bob"), 0);

    /* And then it answers again. */
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 1);
    rig_down(&r);
}

static void threshold_decides(void **state)
{
    struct rig r;
    struct vg_face_match m;
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    /* The fake's similarity is 99: a threshold of 99.5 leaves nobody. */
    assert_vg_ok(rig_up(&r, "    face_match_threshold: 99.5\n"));
    assert_vg_ok(enrol(&r, "alice", a1, 1));
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);
    rig_down(&r);
}

/* A face indexed by another tool without an ExternalImageId names nobody. */
static void unnamed_faces_name_nobody(void **state)
{
    struct rig r;
    struct vg_face_match m;
    struct vg_aws *aws = NULL;
    struct vg_rek_indexed x = {0};
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    assert_vg_ok(rig_up(&r, "    max_faces: 1\n"));
    assert_vg_ok(enrol(&r, "alice", a1, 1));
    assert_vg_ok(vg_aws_create(&aws, &(struct vg_aws_opts){0}));
    assert_vg_ok(vg_rek_index_faces(aws, "home-faces", stranger, sizeof(stranger) - 1, NULL, 1,
                                    &x));
    assert_int_equal(x.n, 1);
    vg_rek_indexed_free(&x);
    vg_aws_destroy(aws);
    assert_vg_ok(match(&r, IMAGE(stranger), &m));
    assert_int_equal(m.matched, 0);
    assert_true(near(m.similarity, 0.99));     /* the best candidate, matched or not */
    assert_int_equal(listed(&r, NULL), 2);
    assert_int_equal(listed(&r, ""), 1);
    rig_down(&r);
}

static void config_checked(void **state)
{
    struct rig r;
    assert_status(rig_up(&r, "    face_match_threshold: 150\n"), VG_ERR_CONFIG);
    assert_detail("matchers.rekognition.face_match_threshold");
    rig_down(&r);
    assert_status(rig_up(&r, "    max_faces: 0\n"), VG_ERR_CONFIG);
    rig_down(&r);
    assert_status(rig_up(&r, "    collection: my/faces\n"), VG_ERR_CONFIG);
    assert_detail("matchers.rekognition.collection");
    rig_down(&r);
    assert_status(rig_up(&r, "    colection: x\n"), VG_ERR_CONFIG);
    rig_down(&r);
    /* Without a collection key, faces.collection is the one. */
    assert_vg_ok(rig_up(&r, "    max_faces: 2\n"));
    struct vg_face_match m;
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_NOT_FOUND);
    assert_detail("\"home-faces\"");
    rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(enrol_list_match_remove, reset),
        cmocka_unit_test_setup(enrol_replaces_the_person_only, reset),
        cmocka_unit_test_setup(enrol_bad_input, reset),
        cmocka_unit_test_setup(pages_of_faces, reset),
        cmocka_unit_test_setup(missing_collection, reset),
        cmocka_unit_test_setup(throttling_and_failures, reset),
        cmocka_unit_test_setup(threshold_decides, reset),
        cmocka_unit_test_setup(unnamed_faces_name_nobody, reset),
        cmocka_unit_test_setup(config_checked, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
