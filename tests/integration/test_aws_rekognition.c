/* Rekognition against the AWS fake (tests/fakes/fake_aws.py), which checks
 * every signature: collections, labels, faces, local refusals, error
 * translation and retries. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "aws/client.h"
#include "aws/rekognition.h"
#include "fake_aws_ctl.h"
#include "fixture.h"

#define DATA_DIR "/usr/share/doc/opencv-doc/examples/data/"
#define COLL "vigil-faces"

static struct {
    struct fake_env f;
    void *face_img, *other_img;
    size_t face_len, other_len;
} g;

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    g.face_img = fixture_slurp(DATA_DIR "lena.jpg", &g.face_len);
    if (!g.face_img)
        g.face_img = fixture_slurp(DATA_DIR "HappyFish.jpg", &g.face_len);
    g.other_img = fixture_slurp(DATA_DIR "baboon.jpg", &g.other_len);
    if (!g.face_img || !g.other_img)
        return -1;
    return fake_env_start(&g.f);
}

static int group_teardown(void **state)
{
    fake_env_stop(&g.f);
    free(g.face_img);
    free(g.other_img);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    return 0;
}

/* A JPEG-looking buffer in which the fake finds no face. */
static const char no_face[] = "\xff\xd8\xff\xe0 NOFACE NOLABELS";

/* ---- tests ----------------------------------------------------------------- */

static void collection_lifecycle(void **state)
{
    struct vg_rek_collection col;
    struct vg_rek_indexed idx;
    struct vg_rek_face_list list;
    struct vg_rek_search s;
    struct vg_rek_deleted del;
    char token[VG_REK_TOKEN_MAX] = "";

    assert_int_equal(vg_rek_create_collection(g.f.aws, COLL, &col), VG_OK);
    assert_false(col.already_existed);
    assert_non_null(strstr(col.arn, "collection/" COLL));
    assert_string_equal(col.face_model_version, "6.0");
    assert_int_equal(vg_rek_create_collection(g.f.aws, COLL, &col), VG_OK);
    assert_true(col.already_existed);

    assert_int_equal(vg_rek_index_faces(g.f.aws, COLL, g.face_img, g.face_len, "cam-1:alice", 1,
                                        &idx), VG_OK);
    assert_int_equal(idx.n, 1);
    assert_int_equal(strlen(idx.faces[0].face_id), 36);
    assert_string_equal(idx.faces[0].external_image_id, "cam-1:alice");
    assert_true(idx.faces[0].confidence > 90);
    assert_true(idx.faces[0].box.w > 0 && idx.faces[0].box.h > 0);

    assert_int_equal(vg_rek_list_faces(g.f.aws, COLL, 100, token, &list), VG_OK);
    assert_int_equal(list.n, 1);
    assert_string_equal(list.faces[0].face_id, idx.faces[0].face_id);
    assert_string_equal(list.faces[0].external_image_id, "cam-1:alice");
    assert_string_equal(token, "");
    vg_rek_face_list_free(&list);

    assert_int_equal(vg_rek_search_faces_by_image(g.f.aws, COLL, g.face_img, g.face_len, 80, 5,
                                                  &s), VG_OK);
    assert_true(s.face_found);
    assert_int_equal(s.n, 1);
    assert_true(s.matches[0].similarity >= 90);
    assert_string_equal(s.matches[0].face.face_id, idx.faces[0].face_id);
    assert_string_equal(s.matches[0].face.external_image_id, "cam-1:alice");
    assert_true(s.searched_confidence > 90 && s.searched_box.w > 0);
    vg_rek_search_free(&s);

    assert_int_equal(vg_rek_search_faces_by_image(g.f.aws, COLL, g.other_img, g.other_len, 80, 5,
                                                  &s), VG_OK);
    assert_true(s.face_found);
    assert_int_equal(s.n, 0);
    vg_rek_search_free(&s);

    const char *ids[] = {idx.faces[0].face_id};
    assert_int_equal(vg_rek_delete_faces(g.f.aws, COLL, ids, 1, &del), VG_OK);
    assert_int_equal(del.n, 1);
    assert_string_equal(del.face_ids[0], idx.faces[0].face_id);
    assert_int_equal(del.n_unsuccessful, 0);
    vg_rek_deleted_free(&del);
    assert_int_equal(vg_rek_delete_faces(g.f.aws, COLL, ids, 1, &del), VG_OK);
    assert_int_equal(del.n, 0);
    assert_int_equal(del.n_unsuccessful, 1);
    vg_rek_deleted_free(&del);
    vg_rek_deleted_free(&del); /* twice is fine */
    vg_rek_indexed_free(&idx);

    assert_int_equal(vg_rek_list_faces(g.f.aws, COLL, 100, NULL, &list), VG_OK);
    assert_int_equal(list.n, 0);
    assert_null(list.faces);
    vg_rek_face_list_free(&list);
}

static void list_pages(void **state)
{
    struct vg_rek_collection col;
    struct vg_rek_indexed idx;
    struct vg_rek_face_list list;
    char token[VG_REK_TOKEN_MAX] = "";
    assert_int_equal(vg_rek_create_collection(g.f.aws, COLL, &col), VG_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(vg_rek_index_faces(g.f.aws, COLL, g.face_img, g.face_len, NULL, 1, &idx),
                         VG_OK);
        assert_string_equal(idx.faces[0].external_image_id, "");
        vg_rek_indexed_free(&idx);
    }
    assert_int_equal(vg_rek_list_faces(g.f.aws, COLL, 2, token, &list), VG_OK);
    assert_int_equal(list.n, 2);
    assert_string_not_equal(token, "");
    vg_rek_face_list_free(&list);
    assert_int_equal(vg_rek_list_faces(g.f.aws, COLL, 2, token, &list), VG_OK);
    assert_int_equal(list.n, 1);
    assert_string_equal(token, "");
    vg_rek_face_list_free(&list);
}

static void search_without_face_is_no_match(void **state)
{
    struct vg_rek_collection col;
    struct vg_rek_search s;
    struct vg_rek_indexed idx;
    assert_int_equal(vg_rek_create_collection(g.f.aws, COLL, &col), VG_OK);
    memset(&s, 0x5a, sizeof(s));
    assert_int_equal(vg_rek_search_faces_by_image(g.f.aws, COLL, no_face, sizeof(no_face) - 1,
                                                  80, 5, &s), VG_OK);
    assert_false(s.face_found);
    assert_int_equal(s.n, 0);
    assert_null(s.matches);
    assert_int_equal(vg_rek_index_faces(g.f.aws, COLL, no_face, sizeof(no_face) - 1, "x", 1,
                                        &idx), VG_OK);
    assert_int_equal(idx.n, 0);
    vg_rek_indexed_free(&idx);
}

static void detect_labels(void **state)
{
    struct vg_rek_labels l;
    assert_int_equal(vg_rek_detect_labels(g.f.aws, g.face_img, g.face_len, 50, 10, &l), VG_OK);
    assert_int_equal(l.n, 1); /* Package (40) is below 50 */
    assert_string_equal(l.labels[0].name, "Person");
    assert_true(l.labels[0].confidence > 98 && l.labels[0].confidence < 99);
    assert_int_equal(l.labels[0].n_instances, 1);
    const struct vg_rek_box *b = &l.labels[0].instances[0].box;
    assert_true(b->x == 0.35 && b->y == 0.1 && b->w == 0.3 && b->h == 0.8);
    assert_string_equal(l.model_version, "3.0");
    vg_rek_labels_free(&l);

    assert_int_equal(vg_rek_detect_labels(g.f.aws, g.face_img, g.face_len, 0, 0, &l), VG_OK);
    assert_int_equal(l.n, 2);
    vg_rek_labels_free(&l);

    fake_do("POST", "/_fake/labels",
            "{\"labels\":[{\"Name\":\"Car\",\"Confidence\":91.5,"
            "\"Parents\":[{\"Name\":\"Vehicle\"},"
            "{\"Name\":\"Transportation\"}],\"Instances\":[{\"Confidence\":91.5,\"BoundingBox\":"
            "{\"Left\":0.1,\"Top\":0.2,\"Width\":0.3,\"Height\":0.4}},{\"Confidence\":80,"
            "\"BoundingBox\":{\"Left\":0.5,\"Top\":0.5,\"Width\":0.1,\"Height\":0.1}}]}]}");
    assert_int_equal(vg_rek_detect_labels(g.f.aws, g.face_img, g.face_len, 0, 5, &l), VG_OK);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.labels[0].name, "Car");
    assert_int_equal(l.labels[0].n_parents, 2);
    assert_string_equal(l.labels[0].parents[0], "Vehicle");
    assert_string_equal(l.labels[0].parents[1], "Transportation");
    assert_int_equal(l.labels[0].n_instances, 2);
    assert_true(l.labels[0].instances[1].box.x == 0.5 && l.labels[0].instances[1].confidence == 80);
    vg_rek_labels_free(&l);

    assert_int_equal(vg_rek_detect_labels(g.f.aws, no_face, sizeof(no_face) - 1, 0, 5, &l), VG_OK);
    assert_int_equal(l.n, 0);
    vg_rek_labels_free(&l);
}

static void detect_faces(void **state)
{
    struct vg_rek_faces f;
    assert_int_equal(vg_rek_detect_faces(g.f.aws, g.face_img, g.face_len, &f), VG_OK);
    assert_int_equal(f.n, 1);
    assert_true(f.faces[0].box.x == 0.375 && f.faces[0].box.y == 0.2 &&
                f.faces[0].box.w == 0.25 && f.faces[0].box.h == 0.4);
    assert_true(f.faces[0].confidence > 99);
    assert_true(f.faces[0].yaw == -1.5 && f.faces[0].sharpness == 90);
    vg_rek_faces_free(&f);
    assert_int_equal(vg_rek_detect_faces(g.f.aws, no_face, sizeof(no_face) - 1, &f), VG_OK);
    assert_int_equal(f.n, 0);
    vg_rek_faces_free(&f);
}

static void bad_input_refused_locally(void **state)
{
    size_t big = VG_REK_MAX_IMAGE + 1;
    char *img = calloc(1, big);
    struct vg_rek_labels l;
    struct vg_rek_search s;
    struct vg_rek_indexed idx;
    struct vg_rek_collection col;
    struct vg_rek_deleted del;
    char long_id[300];
    assert_non_null(img);
    memcpy(img, "\xff\xd8", 2);
    assert_int_equal(vg_rek_detect_labels(g.f.aws, img, big, 50, 10, &l), VG_ERR_TOO_LARGE);
    assert_non_null(strstr(vg_err_detail(), "image is 5242881 bytes; Rekognition accepts at "
                                            "most 5242880"));
    assert_int_equal(vg_rek_search_faces_by_image(g.f.aws, COLL, img, big, 80, 1, &s),
                     VG_ERR_TOO_LARGE);
    assert_int_equal(vg_rek_detect_labels(g.f.aws, img, 0, 50, 10, &l), VG_ERR_INVALID);
    assert_int_equal(vg_rek_detect_labels(g.f.aws, NULL, 10, 50, 10, &l), VG_ERR_INVALID);
    assert_int_equal(vg_rek_detect_labels(g.f.aws, img, 10, 101, 10, &l), VG_ERR_INVALID);
    assert_int_equal(vg_rek_detect_labels(g.f.aws, img, 10, 50, VG_REK_MAX_LABELS + 1, &l),
                     VG_ERR_INVALID);
    free(img);

    assert_int_equal(vg_rek_create_collection(g.f.aws, "bad/id", &col), VG_ERR_INVALID);
    assert_int_equal(vg_rek_create_collection(g.f.aws, "", &col), VG_ERR_INVALID);
    assert_int_equal(vg_rek_create_collection(g.f.aws, "a:b", &col), VG_ERR_INVALID);
    memset(long_id, 'a', 256);
    long_id[256] = '\0';
    assert_int_equal(vg_rek_create_collection(g.f.aws, long_id, &col), VG_ERR_INVALID);
    long_id[255] = '\0'; /* 255 is the limit: accepted */
    assert_int_equal(vg_rek_create_collection(g.f.aws, long_id, &col), VG_OK);
    assert_int_equal(vg_rek_index_faces(g.f.aws, COLL, g.face_img, g.face_len, "a b", 1, &idx),
                     VG_ERR_INVALID);
    assert_int_equal(vg_rek_index_faces(g.f.aws, COLL, g.face_img, g.face_len, "x", 0, &idx),
                     VG_ERR_INVALID);
    const char *ids[] = {"not-a-uuid"};
    assert_int_equal(vg_rek_delete_faces(g.f.aws, COLL, ids, 1, &del), VG_ERR_INVALID);
    assert_int_equal(vg_rek_delete_faces(g.f.aws, COLL, ids, 0, &del), VG_ERR_INVALID);
    /* Only the valid 255-char create reached the fake. */
    assert_int_equal(fake_count("rekognition.*"), 1);
}

static void unknown_collection_not_found(void **state)
{
    struct vg_rek_search s;
    struct vg_rek_face_list list;
    assert_int_equal(vg_rek_search_faces_by_image(g.f.aws, "no-such-collection", g.face_img,
                                                  g.face_len, 80, 1, &s), VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "ResourceNotFoundException"));
    assert_string_equal(vg_aws_last_error_code(), "ResourceNotFoundException");
    assert_int_equal(vg_rek_list_faces(g.f.aws, "no-such-collection", 10, NULL, &list),
                     VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "does not exist"));
}

static void throttling_retried(void **state)
{
    struct vg_rek_labels l;
    fake_do("POST", "/_fake/fail", "{\"api\":\"rekognition.DetectLabels\",\"count\":2,"
                                   "\"status\":400,\"code\":\"ThrottlingException\"}");
    assert_int_equal(vg_rek_detect_labels(g.f.aws, g.face_img, g.face_len, 50, 10, &l), VG_OK);
    assert_int_equal(l.n, 1);
    vg_rek_labels_free(&l);
    assert_int_equal(fake_count("rekognition.DetectLabels"), 3);

    fake_do("POST", "/_fake/fail", "{\"api\":\"rekognition.DetectLabels\",\"count\":5,"
                                   "\"status\":400,\"code\":\"ThrottlingException\"}");
    assert_int_equal(vg_rek_detect_labels(g.f.aws, g.face_img, g.face_len, 50, 10, &l),
                     VG_ERR_THROTTLED);
    assert_non_null(strstr(vg_err_detail(), "ThrottlingException"));
    assert_int_equal(fake_count("rekognition.DetectLabels"), 6);
}

static void server_error_retried(void **state)
{
    struct vg_rek_faces f;
    fake_do("POST", "/_fake/fail", "{\"api\":\"rekognition.DetectFaces\",\"count\":1,"
                                   "\"status\":500,\"code\":\"InternalServerError\"}");
    assert_int_equal(vg_rek_detect_faces(g.f.aws, g.face_img, g.face_len, &f), VG_OK);
    assert_int_equal(f.n, 1);
    vg_rek_faces_free(&f);
    assert_int_equal(fake_count("rekognition.DetectFaces"), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(collection_lifecycle, reset),
        cmocka_unit_test_setup(list_pages, reset),
        cmocka_unit_test_setup(search_without_face_is_no_match, reset),
        cmocka_unit_test_setup(detect_labels, reset),
        cmocka_unit_test_setup(detect_faces, reset),
        cmocka_unit_test_setup(bad_input_refused_locally, reset),
        cmocka_unit_test_setup(unknown_collection_not_found, reset),
        cmocka_unit_test_setup(throttling_retried, reset),
        cmocka_unit_test_setup(server_error_retried, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
