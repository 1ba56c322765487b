/* DynamoDB against dynalite behind the SigV4-checking proxy. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "aws/client.h"
#include "aws/dynamodb.h"
#include "emulators.h"
#include "fixture.h"

#define FRAMES "vigil-frames"
#define PROFILES "rekognition-collection"   /* the seed workshop's profile table */

static struct {
    pid_t dynalite, proxy;
    int proxy_port;
    struct vg_aws *aws;
} g;

static int start_all(void)
{
    int ddb_port = fixture_free_port();
    char url[64];
    int64_t t0 = vg_mono_us();
    if ((g.dynalite = fixture_dynalite_start(ddb_port)) <= 0)
        return -1;
    int64_t t1 = vg_mono_us();
    if ((g.proxy = fixture_sigv4_proxy_start("dynamodb", ddb_port, NULL, &g.proxy_port)) <= 0)
        return -1;
    fprintf(stderr, "timing: dynalite %lld ms, proxy %lld ms\n", (long long)(t1 - t0) / 1000,
            (long long)(vg_mono_us() - t1) / 1000);
    fixture_aws_test_env();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", g.proxy_port);
    setenv("AWS_ENDPOINT_URL_DYNAMODB", url, 1);
    struct vg_aws_opts o = {.timeout_ms = 10000};
    return vg_aws_create(&g.aws, &o) == VG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    vg_aws_destroy(g.aws);
    fixture_stop(g.proxy);
    fixture_stop(g.dynalite);
    memset(&g, 0, sizeof(g));   /* cmocka may call it again after a failed setup */
    return 0;
}

/* On failure, stops what did start. */
static int setup(void **state)
{
    if (start_all() == 0)
        return 0;
    teardown(state);
    return -1;
}

static int ensure_tables(void **state)
{
    if (vg_ddb_create_table(g.aws, FRAMES, "camera", "S", "ts", "N", 30000) != VG_OK ||
        vg_ddb_create_table(g.aws, PROFILES, "FaceId", "S", NULL, NULL, 30000) != VG_OK)
        return -1;
    return 0;
}

static void put_frame(const char *camera, int64_t ts, const char *label)
{
    json_t *item = json_object();
    assert_int_equal(vg_ddb_set_s(item, "camera", camera), VG_OK);
    assert_int_equal(vg_ddb_set_n(item, "ts", ts), VG_OK);
    assert_int_equal(vg_ddb_set_s(item, "label", label), VG_OK);
    assert_int_equal(vg_ddb_set_nf(item, "confidence", 87.5), VG_OK);
    assert_int_equal(vg_ddb_put_item(g.aws, FRAMES, item), VG_OK);
    json_decref(item);
}

/* ---- tests --------------------------------------------------------------- */

static void create_tables_is_idempotent(void **state)
{
    int64_t t0 = vg_mono_us();
    char status[32];
    assert_int_equal(vg_ddb_create_table(g.aws, FRAMES, "camera", "S", "ts", "N", 30000), VG_OK);
    assert_int_equal(vg_ddb_create_table(g.aws, PROFILES, "FaceId", "S", NULL, NULL, 30000),
                     VG_OK);
    fprintf(stderr, "timing: two tables ACTIVE after %lld ms\n",
            (long long)(vg_mono_us() - t0) / 1000);
    assert_int_equal(vg_ddb_create_table(g.aws, FRAMES, "camera", "S", "ts", "N", 30000), VG_OK);
    assert_int_equal(vg_ddb_table_status(g.aws, PROFILES, status, sizeof(status)), VG_OK);
    assert_string_equal(status, "ACTIVE");
    assert_int_equal(vg_ddb_table_status(g.aws, "no-such-table", status, sizeof(status)),
                     VG_ERR_NOT_FOUND);
    assert_int_equal(vg_ddb_create_table(g.aws, "x", "k", "S", NULL, NULL, 0), VG_ERR_INVALID);
    assert_int_equal(vg_ddb_create_table(g.aws, "t-ok", "k", "Q", NULL, NULL, 0),
                     VG_ERR_INVALID);
}

static void profile_put_and_get(void **state)
{
    const char *face = "a1b2c3d4-0000-4000-8000-00000000f00d";
    json_t *item = json_object(), *key = json_object(), *got = NULL;
    assert_int_equal(vg_ddb_set_s(item, "FaceId", face), VG_OK);
    assert_int_equal(vg_ddb_set_s(item, "Name", "Ada Lovelace"), VG_OK);
    assert_int_equal(vg_ddb_set_s(item, "Bio", "Visits on Tuesdays \xe2\x98\x95"), VG_OK);
    assert_int_equal(vg_ddb_put_item(g.aws, PROFILES, item), VG_OK);

    assert_int_equal(vg_ddb_set_s(key, "FaceId", face), VG_OK);
    assert_int_equal(vg_ddb_get_item(g.aws, PROFILES, key, 1, &got), VG_OK);
    assert_string_equal(vg_ddb_get_s(got, "Name"), "Ada Lovelace");
    assert_string_equal(vg_ddb_get_s(got, "Bio"), "Visits on Tuesdays \xe2\x98\x95");
    assert_true(json_equal(got, item));
    json_decref(got);
    json_decref(key);
    json_decref(item);
}

static void missing_item_is_not_found(void **state)
{
    json_t *key = json_object(), *got = NULL;
    assert_int_equal(vg_ddb_set_s(key, "FaceId", "nobody"), VG_OK);
    assert_int_equal(vg_ddb_get_item(g.aws, PROFILES, key, 0, &got), VG_ERR_NOT_FOUND);
    assert_null(got);
    assert_int_equal(vg_ddb_get_item(g.aws, "no-such-table", key, 0, &got), VG_ERR_NOT_FOUND);
    assert_string_equal(vg_aws_last_error_code(), "ResourceNotFoundException");
    json_decref(key);
}

static void query_recent_frames_newest_first(void **state)
{
    for (int i = 0; i < 10; i++)
        put_frame("porch", 1700000000000 + i, i % 2 ? "person" : "car");
    for (int i = 0; i < 3; i++)
        put_frame("garage", 1700000000000 + i, "cat");
    json_t *pk = vg_ddb_s("porch"), *since = vg_ddb_n(1700000000003), *items = NULL,
           *last = NULL;
    struct vg_ddb_query q = {.table = FRAMES, .pk_name = "camera", .pk = pk, .sk_name = "ts",
                             .since = since, .limit = 4};
    assert_int_equal(vg_ddb_query(g.aws, &q, &items, &last), VG_OK);
    assert_int_equal(json_array_size(items), 4);
    for (size_t i = 0; i < 4; i++) {
        int64_t ts = 0;
        json_t *it = json_array_get(items, i);
        assert_int_equal(vg_ddb_get_n(it, "ts", &ts), VG_OK);
        assert_int_equal(ts, 1700000000009 - (int64_t)i);
        assert_string_equal(vg_ddb_get_s(it, "camera"), "porch");
    }
    assert_non_null(last);

    /* The next page goes down to the bound and ends there. */
    json_decref(items);
    q.start_key = last;
    assert_int_equal(vg_ddb_query(g.aws, &q, &items, NULL), VG_OK);
    assert_int_equal(json_array_size(items), 3);
    int64_t oldest = 0;
    assert_int_equal(vg_ddb_get_n(json_array_get(items, 2), "ts", &oldest), VG_OK);
    assert_int_equal(oldest, 1700000000003);
    json_decref(items);
    json_decref(last);

    /* No bound, oldest first: the whole partition of another camera. */
    json_decref(pk);
    pk = vg_ddb_s("garage");
    struct vg_ddb_query all = {.table = FRAMES, .pk_name = "camera", .pk = pk,
                               .oldest_first = 1, .consistent = 1};
    assert_int_equal(vg_ddb_query(g.aws, &all, &items, &last), VG_OK);
    assert_int_equal(json_array_size(items), 3);
    assert_null(last);
    int64_t first = 0;
    assert_int_equal(vg_ddb_get_n(json_array_get(items, 0), "ts", &first), VG_OK);
    assert_int_equal(first, 1700000000000);
    assert_string_equal(vg_ddb_get_s(json_array_get(items, 0), "label"), "cat");
    json_decref(items);
    json_decref(pk);
    json_decref(since);
}

static void wrong_secret_is_auth_error(void **state)
{
    struct vg_aws *bad = NULL;
    struct vg_aws_opts o = {.creds = {.access_key_id = FIXTURE_AWS_KEY,
                                      .secret_access_key = "not/the/secret"}};
    json_t *key = json_object(), *got = NULL;
    assert_int_equal(vg_ddb_set_s(key, "FaceId", "x"), VG_OK);
    assert_int_equal(vg_aws_create(&bad, &o), VG_OK);
    assert_int_equal(vg_ddb_get_item(bad, PROFILES, key, 0, &got), VG_ERR_AUTH);
    assert_string_equal(vg_aws_last_error_code(), "InvalidSignatureException");
    vg_aws_destroy(bad);
    json_decref(key);
}

static void attribute_helpers(void **state)
{
    json_t *item = json_object();
    int64_t n = 0;
    double d = 0;
    assert_int_equal(vg_ddb_set_n(item, "big", INT64_MIN), VG_OK);
    assert_int_equal(vg_ddb_set_s(item, "s", "12"), VG_OK);
    assert_int_equal(vg_ddb_set_nf(item, "f", 0.1), VG_OK);
    assert_int_equal(vg_ddb_get_n(item, "big", &n), VG_OK);
    assert_true(n == INT64_MIN);
    assert_int_equal(vg_ddb_get_nf(item, "f", &d), VG_OK);
    assert_true(d == 0.1);
    assert_int_equal(vg_ddb_get_n(item, "f", &n), VG_ERR_DECODE);
    assert_int_equal(vg_ddb_get_n(item, "s", &n), VG_ERR_DECODE);
    assert_int_equal(vg_ddb_get_n(item, "absent", &n), VG_ERR_NOT_FOUND);
    assert_null(vg_ddb_get_s(item, "big"));
    assert_int_equal(vg_ddb_set_s(item, "null", NULL), VG_ERR_INVALID);
    json_decref(item);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(attribute_helpers),
        cmocka_unit_test(create_tables_is_idempotent),
        cmocka_unit_test_setup(profile_put_and_get, ensure_tables),
        cmocka_unit_test_setup(missing_item_is_not_found, ensure_tables),
        cmocka_unit_test_setup(query_recent_frames_newest_first, ensure_tables),
        cmocka_unit_test_setup(wrong_secret_is_auth_error, ensure_tables),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
