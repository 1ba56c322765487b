/* S3 against s3rver behind the SigV4-checking proxy: every request the
 * client makes, and every pre-signed URL, has its signature verified. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <ftw.h>

#include "aws/client.h"
#include "aws/s3.h"
#include "timeutil.h"
#include "emulators.h"
#include "fixture.h"
#include "http_get.h"
#include "image/jpeg.h"

#define BUCKET "vigil-frames"

static struct {
    pid_t s3rver, proxy;
    int proxy_port;
    char dir[64];
    struct vg_aws *aws;
    uint8_t *jpeg;
    size_t jpeg_len;
} g;

/* A 320x240 JPEG with gradients and noise, so it does not compress to nothing. */
static void make_jpeg(void)
{
    enum { W = 320, H = 240 };
    static uint8_t y[W * H], u[(W / 2) * (H / 2)], v[(W / 2) * (H / 2)];
    uint32_t seed = 12345;
    for (int i = 0; i < W * H; i++) {
        seed = seed * 1103515245u + 12345u;
        y[i] = (uint8_t)((i % W) * 255 / W / 2 + (i / W) * 255 / H / 4 + (seed >> 27));
    }
    for (int i = 0; i < (W / 2) * (H / 2); i++) {
        u[i] = (uint8_t)(96 + i % 64);
        v[i] = (uint8_t)(160 - i % 48);
    }
    const uint8_t *planes[3] = {y, u, v};
    const int strides[3] = {W, W / 2, W / 2};
    assert_int_equal(vg_jpeg_encode_yuv420(NULL, planes, strides, W, H, 90, &g.jpeg,
                                           &g.jpeg_len), VG_OK);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int start_all(void)
{
    int s3_port = fixture_free_port();
    char url[64];
    snprintf(g.dir, sizeof(g.dir), "/tmp/vigil-s3rver-XXXXXX");
    if (!mkdtemp(g.dir))
        return -1;
    int64_t t0 = vg_mono_us();
    if ((g.s3rver = fixture_s3rver_start(s3_port, g.dir)) <= 0)
        return -1;
    int64_t t1 = vg_mono_us();
    g.proxy = fixture_sigv4_proxy_start("s3", s3_port, "S3RVER", &g.proxy_port);
    if (g.proxy <= 0)
        return -1;
    fprintf(stderr, "timing: s3rver %lld ms, proxy %lld ms\n", (long long)(t1 - t0) / 1000,
            (long long)(vg_mono_us() - t1) / 1000);
    fixture_aws_test_env();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", g.proxy_port);
    setenv("AWS_ENDPOINT_URL_S3", url, 1);
    struct vg_aws_opts o = {.timeout_ms = 10000};
    return vg_aws_create(&g.aws, &o) == VG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    vg_aws_destroy(g.aws);
    fixture_stop(g.proxy);
    fixture_stop(g.s3rver);
    if (g.dir[0])
        nftw(g.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(g.jpeg);
    memset(&g, 0, sizeof(g));   /* cmocka may call it again after a failed setup */
    return 0;
}

/* On failure, stops what did start. */
static int setup(void **state)
{
    make_jpeg();
    if (start_all() == 0)
        return 0;
    teardown(state);
    return -1;
}

static int ensure_bucket(void **state)
{
    return vg_s3_create_bucket(g.aws, BUCKET) == VG_OK ? 0 : -1;
}

/* ---- tests --------------------------------------------------------------- */

static void create_bucket_is_idempotent(void **state)
{
    assert_int_equal(vg_s3_create_bucket(g.aws, "vigil-idempotent"), VG_OK);
    assert_int_equal(vg_s3_create_bucket(g.aws, "vigil-idempotent"), VG_OK);
}

static void put_head_get_jpeg(void **state)
{
    const char *key = "porch/2026-11-21/frame 0001.jpg";
    char etag[160];
    struct vg_s3_object_info info;
    struct vg_s3_object obj;
    assert_int_equal(vg_s3_put_object(g.aws, BUCKET, key, g.jpeg, g.jpeg_len, "image/jpeg",
                                      "AES256", etag, sizeof(etag)), VG_OK);
    assert_true(strlen(etag) > 2);

    assert_int_equal(vg_s3_head_object(g.aws, BUCKET, key, &info), VG_OK);
    assert_int_equal(info.size, (int64_t)g.jpeg_len);
    assert_string_equal(info.content_type, "image/jpeg");
    assert_string_equal(info.etag, etag);
    /* Last-Modified is "now", to the second. */
    assert_true(info.last_modified > vg_now_us() - 600LL * 1000000);
    assert_true(info.last_modified < vg_now_us() + 600LL * 1000000);

    assert_int_equal(vg_s3_get_object(g.aws, BUCKET, key, 1 << 20, &obj), VG_OK);
    assert_int_equal(obj.len, g.jpeg_len);
    assert_memory_equal(obj.data, g.jpeg, g.jpeg_len);
    assert_string_equal(obj.content_type, "image/jpeg");
    int w = 0, h = 0;
    assert_int_equal(vg_jpeg_dims(NULL, obj.data, obj.len, &w, &h), VG_OK);
    assert_int_equal(w, 320);
    assert_int_equal(h, 240);
    vg_s3_object_cleanup(&obj);
}

static void get_is_bounded(void **state)
{
    const char *key = "bounded.jpg";
    struct vg_s3_object obj;
    assert_int_equal(vg_s3_put_object(g.aws, BUCKET, key, g.jpeg, g.jpeg_len, "image/jpeg",
                                      NULL, NULL, 0), VG_OK);
    assert_int_equal(vg_s3_get_object(g.aws, BUCKET, key, 1024, &obj), VG_ERR_TOO_LARGE);
    assert_int_equal(vg_s3_get_object(g.aws, BUCKET, key, g.jpeg_len - 1, &obj),
                     VG_ERR_TOO_LARGE);
    assert_int_equal(vg_s3_get_object(g.aws, BUCKET, key, g.jpeg_len, &obj), VG_OK);
    assert_int_equal(obj.len, g.jpeg_len);
    vg_s3_object_cleanup(&obj);
}

static void missing_key_is_not_found(void **state)
{
    struct vg_s3_object obj;
    struct vg_s3_object_info info;
    assert_int_equal(vg_s3_get_object(g.aws, BUCKET, "no/such/key.jpg", 1 << 20, &obj),
                     VG_ERR_NOT_FOUND);
    assert_int_equal(vg_s3_head_object(g.aws, BUCKET, "no/such/key.jpg", &info),
                     VG_ERR_NOT_FOUND);
    assert_int_equal(vg_s3_get_object(g.aws, "vigil-no-such-bucket", "k", 1 << 20, &obj),
                     VG_ERR_NOT_FOUND);
}

/* Keys with characters that must be encoded, signed as sent. */
static void odd_keys_round_trip(void **state)
{
    const char *keys[] = {"a+b=c&d.jpg", "caf\xc3\xa9/\xe2\x9c\x93 ok", "x/y/z~_-.!*'()@$,;:"};
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        struct vg_s3_object obj;
        assert_int_equal(vg_s3_put_object(g.aws, BUCKET, keys[i], keys[i], strlen(keys[i]),
                                          "text/plain", NULL, NULL, 0), VG_OK);
        assert_int_equal(vg_s3_get_object(g.aws, BUCKET, keys[i], 4096, &obj), VG_OK);
        assert_int_equal(obj.len, strlen(keys[i]));
        assert_memory_equal(obj.data, keys[i], obj.len);
        vg_s3_object_cleanup(&obj);
    }
}

static void presigned_get_is_verified(void **state)
{
    const char *key = "clips/presigned one.jpg";
    char url[4096];
    struct buf b = {0};
    assert_int_equal(vg_s3_put_object(g.aws, BUCKET, key, g.jpeg, g.jpeg_len, "image/jpeg",
                                      NULL, NULL, 0), VG_OK);
    assert_int_equal(vg_s3_presign_get(g.aws, BUCKET, key, 300, url, sizeof(url)), VG_OK);
    assert_non_null(strstr(url, "X-Amz-Signature="));
    assert_int_equal(http_get(url, &b), 200);
    assert_int_equal(b.len, g.jpeg_len);
    assert_memory_equal(b.data, g.jpeg, g.jpeg_len);
    free(b.data);

    /* The same URL with one signature digit changed. */
    char *sig = strstr(url, "X-Amz-Signature=") + strlen("X-Amz-Signature=");
    sig[0] = sig[0] == '0' ? '1' : '0';
    memset(&b, 0, sizeof(b));
    assert_int_equal(http_get(url, &b), 403);
    assert_non_null(strstr(b.data, "<Code>SignatureDoesNotMatch</Code>"));
    assert_non_null(strstr(b.data, "sigv4-proxy"));
    free(b.data);
}

static void expired_presigned_url_is_refused(void **state)
{
    char url[4096];
    struct buf b = {0};
    assert_int_equal(vg_s3_put_object(g.aws, BUCKET, "short.jpg", g.jpeg, g.jpeg_len,
                                      "image/jpeg", NULL, NULL, 0), VG_OK);
    assert_int_equal(vg_s3_presign_get(g.aws, BUCKET, "short.jpg", 1, url, sizeof(url)), VG_OK);
    vg_sleep_us(2100000);
    assert_int_equal(http_get(url, &b), 403);
    assert_non_null(strstr(b.data, "<Code>AccessDenied</Code>"));
    assert_non_null(strstr(b.data, "sigv4-proxy"));  /* refused by the proxy */
    free(b.data);
}

static void wrong_secret_is_auth_error(void **state)
{
    struct vg_aws *bad = NULL;
    struct vg_aws_opts o = {.creds = {.access_key_id = FIXTURE_AWS_KEY,
                                      .secret_access_key = "not/the/secret"}};
    struct vg_s3_object_info info;
    assert_int_equal(vg_aws_create(&bad, &o), VG_OK);
    assert_int_equal(vg_s3_put_object(bad, BUCKET, "x.jpg", g.jpeg, g.jpeg_len, "image/jpeg",
                                      NULL, NULL, 0), VG_ERR_AUTH);
    assert_string_equal(vg_aws_last_error_code(), "SignatureDoesNotMatch");
    assert_int_equal(vg_s3_head_object(bad, BUCKET, "bounded.jpg", &info), VG_ERR_AUTH);
    vg_aws_destroy(bad);
}

static void names_are_validated(void **state)
{
    char key[VG_S3_MAX_KEY + 2];
    struct vg_s3_object_info info;
    /* Segments shorter than a file name, for s3rver's file store. */
    for (size_t i = 0; i < sizeof(key) - 1; i++)
        key[i] = i % 128 == 127 ? '/' : 'k';
    key[sizeof(key) - 1] = '\0';
    assert_int_equal(vg_s3_head_object(g.aws, BUCKET, key, &info), VG_ERR_INVALID);
    key[VG_S3_MAX_KEY] = '\0';
    assert_int_equal(vg_s3_head_object(g.aws, BUCKET, key, &info), VG_ERR_NOT_FOUND);
    const char *bad[] = {"ab", "Upper-case", "under_score", "-dash", "dot.", "a..b",
                         "0123456789012345678901234567890123456789012345678901234567890123"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(vg_s3_create_bucket(g.aws, bad[i]), VG_ERR_INVALID);
    assert_int_equal(vg_s3_put_object(g.aws, BUCKET, "k", "x", 1, NULL, "rot13", NULL, 0),
                     VG_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(create_bucket_is_idempotent),
        cmocka_unit_test_setup(put_head_get_jpeg, ensure_bucket),
        cmocka_unit_test_setup(get_is_bounded, ensure_bucket),
        cmocka_unit_test_setup(missing_key_is_not_found, ensure_bucket),
        cmocka_unit_test_setup(odd_keys_round_trip, ensure_bucket),
        cmocka_unit_test_setup(presigned_get_is_verified, ensure_bucket),
        cmocka_unit_test_setup(expired_presigned_url_is_refused, ensure_bucket),
        cmocka_unit_test_setup(wrong_secret_is_auth_error, ensure_bucket),
        cmocka_unit_test_setup(names_are_validated, ensure_bucket),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
