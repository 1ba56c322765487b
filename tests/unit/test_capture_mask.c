/* motion.masks polygons rasterised at motion resolution. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "mask.h"

#define W 320
#define H 240

static uint8_t out[H][W];

static struct vg_polygon poly(const char *text)
{
    struct vg_polygon p;
    assert_int_equal(vg_polygon_parse(&p, text), VG_OK);
    return p;
}

static long ones(int x0, int y0, int x1, int y1)
{
    long n = 0;
    for (int y = y0; y < y1; y++)
        for (int x = x0; x < x1; x++)
            n += out[y][x];
    return n;
}

static void test_no_masks_is_empty(void **state)
{
    memset(out, 0xff, sizeof(out));
    cap_mask_rasterise(NULL, 0, W, H, &out[0][0]);
    assert_int_equal(ones(0, 0, W, H), 0);
}

static void test_rectangle_covers_its_pixels(void **state)
{
    struct vg_polygon p = poly("0.5,0 1,0 1,0.5 0.5,0.5");     /* top-right quarter */
    cap_mask_rasterise(&p, 1, W, H, &out[0][0]);
    assert_int_equal(ones(W / 2, 0, W, H / 2), (long)(W / 2) * (H / 2));
    assert_int_equal(ones(0, 0, W, H), (long)(W / 2) * (H / 2));
}

static void test_triangle_is_half_its_box(void **state)
{
    struct vg_polygon p = poly("0,0 1,0 0,1");
    cap_mask_rasterise(&p, 1, W, H, &out[0][0]);
    long n = ones(0, 0, W, H);
    assert_true(n > (long)W * H / 2 - W && n < (long)W * H / 2 + W);
    assert_int_equal(out[0][0], 1);
    assert_int_equal(out[H - 1][W - 1], 0);
}

static void test_masks_add_up(void **state)
{
    struct vg_polygon p[2] = {poly("0,0 0.25,0 0.25,1 0,1"), poly("0.75,0 1,0 1,1 0.75,1")};
    cap_mask_rasterise(p, 2, W, H, &out[0][0]);
    assert_int_equal(ones(0, 0, W, H), (long)W / 2 * H);
    assert_int_equal(ones(W / 4, 0, 3 * W / 4, H), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_no_masks_is_empty),
        cmocka_unit_test(test_rectangle_covers_its_pixels),
        cmocka_unit_test(test_triangle_is_half_its_box),
        cmocka_unit_test(test_masks_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
