/* JPEG encode -> decode round trip and the decoder's limits. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image/jpeg.h"

#define W 96
#define H 64

/* Planes with strides wider than the image, as FFmpeg hands them out. */
#define YSTRIDE 128
#define CSTRIDE 64

static uint8_t yplane[H * YSTRIDE], uplane[(H / 2) * CSTRIDE], vplane[(H / 2) * CSTRIDE];

static uint8_t luma(int x, int y) { return (uint8_t)(16 + (x * 200) / W + (y * 30) / H); }

static void make_gradient(void)
{
    memset(yplane, 0xEE, sizeof(yplane));   /* padding must not leak into the image */
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            yplane[y * YSTRIDE + x] = luma(x, y);
    memset(uplane, 128, sizeof(uplane));
    memset(vplane, 128, sizeof(vplane));
}

static void encode(struct vg_jpeg *j, uint8_t **out, size_t *len)
{
    const uint8_t *planes[3] = {yplane, uplane, vplane};
    const int strides[3] = {YSTRIDE, CSTRIDE, CSTRIDE};
    make_gradient();
    assert_int_equal(vg_jpeg_encode_yuv420(j, planes, strides, W, H, 90, out, len), VG_OK);
    assert_non_null(*out);
    assert_true(*len > 100);
    assert_int_equal((*out)[0], 0xFF);
    assert_int_equal((*out)[1], 0xD8);
}

static void test_round_trip_grey(void **state)
{
    struct vg_jpeg *j = NULL;
    uint8_t *jpg = NULL, *pix = NULL;
    size_t len = 0;
    int w = 0, h = 0;
    assert_int_equal(vg_jpeg_create(&j), VG_OK);
    encode(j, &jpg, &len);
    assert_int_equal(vg_jpeg_decode_grey(j, jpg, len, 0, &pix, &w, &h), VG_OK);
    assert_int_equal(w, W);
    assert_int_equal(h, H);
    int worst = 0;
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++) {
            int d = abs((int)pix[y * W + x] - (int)luma(x, y));
            if (d > worst)
                worst = d;
        }
    assert_true(worst <= 6);
    free(pix);
    free(jpg);
    vg_jpeg_destroy(j);
}

static void test_round_trip_rgb_without_handle(void **state)
{
    uint8_t *jpg = NULL, *pix = NULL;
    size_t len = 0;
    int w = 0, h = 0;
    encode(NULL, &jpg, &len);
    assert_int_equal(vg_jpeg_decode_rgb(NULL, jpg, len, 0, &pix, &w, &h), VG_OK);
    assert_int_equal(w, W);
    assert_int_equal(h, H);
    /* Neutral chroma: R, G and B all follow the luma gradient. */
    const uint8_t *p = &pix[(H / 2 * W + W / 2) * 3];
    assert_true(abs((int)p[0] - (int)p[1]) <= 4 && abs((int)p[1] - (int)p[2]) <= 4);
    assert_true(abs((int)p[1] - (int)luma(W / 2, H / 2)) <= 6);
    free(pix);
    free(jpg);
}

static void test_handle_is_reusable(void **state)
{
    struct vg_jpeg *j = NULL;
    assert_int_equal(vg_jpeg_create(&j), VG_OK);
    for (int i = 0; i < 5; i++) {
        uint8_t *jpg = NULL;
        size_t len = 0;
        int w = 0, h = 0;
        encode(j, &jpg, &len);
        assert_int_equal(vg_jpeg_dims(j, jpg, len, &w, &h), VG_OK);
        assert_int_equal(w, W);
        free(jpg);
    }
    vg_jpeg_destroy(j);
    vg_jpeg_destroy(NULL);
}

static void test_too_many_pixels_refused(void **state)
{
    uint8_t *jpg = NULL, *pix = NULL;
    size_t len = 0;
    int w = 0, h = 0;
    encode(NULL, &jpg, &len);
    assert_int_equal(vg_jpeg_decode_grey(NULL, jpg, len, (size_t)W * H - 1, &pix, &w, &h),
                     VG_ERR_TOO_LARGE);
    assert_null(pix);

    /* A header claiming 60000 x 60000 must be refused from the header alone. */
    for (size_t i = 0; i + 8 < len; i++) {
        if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {   /* SOF0: len(2) prec(1) h(2) w(2) */
            jpg[i + 5] = 0xEA; jpg[i + 6] = 0x60;
            jpg[i + 7] = 0xEA; jpg[i + 8] = 0x60;
            break;
        }
    }
    assert_int_equal(vg_jpeg_dims(NULL, jpg, len, &w, &h), VG_OK);
    assert_int_equal(w, 60000);
    assert_int_equal(vg_jpeg_decode_rgb(NULL, jpg, len, 0, &pix, &w, &h), VG_ERR_TOO_LARGE);
    assert_null(pix);
    free(jpg);
}

static void test_garbage_is_a_decode_error(void **state)
{
    uint8_t junk[256];
    uint8_t *pix = NULL;
    int w = 0, h = 0;
    for (size_t i = 0; i < sizeof(junk); i++)
        junk[i] = (uint8_t)(i * 7 + 3);
    assert_int_equal(vg_jpeg_decode_grey(NULL, junk, sizeof(junk), 0, &pix, &w, &h),
                     VG_ERR_DECODE);
    assert_null(pix);
    assert_int_equal(vg_jpeg_decode_grey(NULL, junk, 0, 0, &pix, &w, &h), VG_ERR_DECODE);
    /* A real SOI marker followed by garbage. */
    junk[0] = 0xFF;
    junk[1] = 0xD8;
    assert_int_equal(vg_jpeg_decode_rgb(NULL, junk, sizeof(junk), 0, &pix, &w, &h),
                     VG_ERR_DECODE);
    assert_null(pix);
}

static void test_bad_encode_arguments(void **state)
{
    const uint8_t *planes[3] = {yplane, uplane, vplane};
    const int strides[3] = {YSTRIDE, CSTRIDE, CSTRIDE};
    uint8_t *jpg = NULL;
    size_t len = 0;
    assert_int_equal(vg_jpeg_encode_yuv420(NULL, planes, strides, 0, H, 80, &jpg, &len),
                     VG_ERR_INVALID);
    assert_int_equal(vg_jpeg_encode_yuv420(NULL, planes, strides, W, H, 101, &jpg, &len),
                     VG_ERR_INVALID);
    assert_null(jpg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_round_trip_grey),
        cmocka_unit_test(test_round_trip_rgb_without_handle),
        cmocka_unit_test(test_handle_is_reusable),
        cmocka_unit_test(test_too_many_pixels_refused),
        cmocka_unit_test(test_garbage_is_a_decode_error),
        cmocka_unit_test(test_bad_encode_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
