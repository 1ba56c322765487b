/* Motion detection on synthetic grey frames. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "image/motion.h"

#define W 320
#define H 240
#define BG 60
#define FG 200

static uint8_t frame[H][W];

/* A textured but static background, so the test is not trivially flat. */
static void draw_background(void)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            frame[y][x] = (uint8_t)(BG + ((x / 16 + y / 16) % 2) * 10);
}

static void draw_square(int x0, int y0, int size)
{
    for (int y = y0; y < y0 + size; y++)
        for (int x = x0; x < x0 + size; x++)
            frame[y][x] = FG;
}

static struct vg_motion *make(void)
{
    struct vg_motion *m = NULL;
    assert_int_equal(vg_motion_create(&m, W, H, 25, 0.002, 0.05), VG_OK);
    assert_non_null(m);
    return m;
}

static void feed(struct vg_motion *m, struct vg_motion_result *res)
{
    assert_int_equal(vg_motion_feed(m, &frame[0][0], W, res), VG_OK);
}

static void test_static_scene_has_no_motion(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    assert_int_equal(res.learning, 1);
    for (int i = 0; i < 10; i++) {
        feed(m, &res);
        assert_int_equal(res.learning, 0);
        assert_int_equal(res.n_boxes, 0);
        assert_true(res.score == 0.0f);
    }
    vg_motion_destroy(m);
}

static void test_first_frame_only_learns(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    draw_square(100, 100, 40);
    feed(m, &res);
    assert_int_equal(res.learning, 1);
    assert_int_equal(res.n_boxes, 0);
    assert_true(res.score == 0.0f);
    vg_motion_destroy(m);
}

static void test_moving_square_is_one_box(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    const int size = 40, y0 = 80;
    draw_background();
    feed(m, &res);
    for (int step = 0; step < 5; step++) {
        int x0 = 20 + step * 50;
        draw_background();
        draw_square(x0, y0, size);
        feed(m, &res);
        assert_int_equal(res.n_boxes, 1);
        assert_true(res.score > 0.0f);
        /* One frame of the square moves the background only 5% of the way
         * (60 -> 67 grey), so the spot it left is below the threshold and
         * leaves no trail: the box is the square where it is now. */
        const struct vg_motion_box *b = &res.boxes[0];
        assert_float_equal(b->x, (float)x0 / W, 0.005f);
        assert_float_equal(b->y, (float)y0 / H, 0.005f);
        assert_float_equal(b->w, (float)size / W, 0.005f);
        assert_float_equal(b->h, (float)size / H, 0.005f);
        assert_true(b->fill > 0.0f && b->fill <= 1.0f);
    }
    vg_motion_destroy(m);
}

static void test_slow_walker_leaves_no_trail(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    const int size = 32, y0 = 100;
    draw_background();
    feed(m, &res);
    /* 3 px per frame: each spot is covered for ~10 frames. Were it learnt
     * at the full rate, the square would smear into a long box. */
    for (int step = 0; step < 60; step++) {
        int x0 = 10 + step * 3;
        draw_background();
        draw_square(x0, y0, size);
        feed(m, &res);
        assert_int_equal(res.n_boxes, 1);
        assert_true(res.boxes[0].w <= (float)(size + 8) / W);
        assert_float_equal(res.boxes[0].x + res.boxes[0].w, (float)(x0 + size) / W, 0.01f);
    }
    vg_motion_destroy(m);
}

static void test_box_matches_square(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_square(120, 60, 48);
    feed(m, &res);
    assert_int_equal(res.n_boxes, 1);
    const struct vg_motion_box *b = &res.boxes[0];
    const float tol = 0.005f;
    assert_float_equal(b->x, 120.0f / W, tol);
    assert_float_equal(b->y, 60.0f / H, tol);
    assert_float_equal(b->w, 48.0f / W, tol);
    assert_float_equal(b->h, 48.0f / H, tol);
    assert_float_equal(b->fill, 1.0f, 0.001f);
    assert_float_equal(res.score, 48.0f * 48.0f / (W * H), 0.0001f);
    vg_motion_destroy(m);
}

static void test_small_noise_is_ignored(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    /* A 5x5 blob is well below 0.2% of 320x240, and scattered single
     * pixels never make a cell count as moving. */
    draw_square(200, 150, 5);
    for (int i = 0; i < 40; i++)
        frame[(i * 37) % H][(i * 91) % W] = FG;
    feed(m, &res);
    assert_true(res.score > 0.0f);
    assert_int_equal(res.n_boxes, 0);
    vg_motion_destroy(m);
}

static void test_two_squares_are_two_boxes(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_square(30, 40, 50);    /* larger one: reported first */
    draw_square(220, 150, 36);
    feed(m, &res);
    assert_int_equal(res.n_boxes, 2);
    assert_float_equal(res.boxes[0].x, 30.0f / W, 0.005f);
    assert_float_equal(res.boxes[0].y, 40.0f / H, 0.005f);
    assert_float_equal(res.boxes[1].x, 220.0f / W, 0.005f);
    assert_float_equal(res.boxes[1].y, 150.0f / H, 0.005f);
    vg_motion_destroy(m);
}

static void test_nearby_parts_merge(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    /* Head and body of one "person" with a 6-pixel gap between them. */
    draw_square(100, 60, 16);
    draw_square(96, 82, 24);
    feed(m, &res);
    assert_int_equal(res.n_boxes, 1);
    assert_float_equal(res.boxes[0].y, 60.0f / H, 0.005f);
    assert_float_equal(res.boxes[0].h, 46.0f / H, 0.005f);
    assert_true(res.boxes[0].fill < 1.0f);
    vg_motion_destroy(m);
}

static void test_boxes_are_capped_largest_first(void **state)
{
    struct vg_motion *m = NULL;
    struct vg_motion_result res;
    assert_int_equal(vg_motion_create(&m, W, H, 25, 0.0, 0.05), VG_OK);
    draw_background();
    feed(m, &res);
    /* 8 x 6 = 48 blobs, 40 px apart: more than the cap. */
    for (int gy = 0; gy < 6; gy++)
        for (int gx = 0; gx < 8; gx++)
            draw_square(4 + gx * 40, 4 + gy * 40, 8 + (gx + gy) % 3);
    feed(m, &res);
    assert_int_equal(res.n_boxes, VG_MOTION_MAX_BOXES);
    for (int i = 1; i < res.n_boxes; i++)
        assert_true(res.boxes[i - 1].w * res.boxes[i - 1].h >=
                    res.boxes[i].w * res.boxes[i].h - 1e-6f);
    vg_motion_destroy(m);
}

static void test_reset_relearns(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_square(100, 100, 40);
    vg_motion_reset(m);
    feed(m, &res);
    assert_int_equal(res.learning, 1);
    assert_int_equal(res.n_boxes, 0);
    feed(m, &res);
    assert_int_equal(res.n_boxes, 0);
    vg_motion_destroy(m);
}

/* ---- motion masks ------------------------------------------------------ */

static uint8_t mask[H][W];

static void mask_rect(int x0, int y0, int w, int h)
{
    for (int y = y0; y < y0 + h; y++)
        memset(&mask[y][x0], 1, (size_t)w);
}

static struct vg_motion *make_masked(void)
{
    struct vg_motion *m = make();
    memset(mask, 0, sizeof(mask));
    mask_rect(160, 0, 160, 120);            /* the top-right quarter is ignored */
    assert_int_equal(vg_motion_set_mask(m, &mask[0][0], W), VG_OK);
    return m;
}

static void test_change_inside_mask_is_ignored(void **state)
{
    struct vg_motion *m = make_masked();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_square(200, 30, 48);               /* inside the mask */
    feed(m, &res);
    assert_int_equal(res.n_boxes, 0);
    assert_true(res.score == 0.0f);         /* masked pixels are not in the score either */
    vg_motion_destroy(m);
}

static void test_change_outside_mask_is_a_box(void **state)
{
    struct vg_motion *m = make_masked();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_square(200, 30, 48);               /* inside: ignored */
    draw_square(40, 150, 48);               /* outside: seen */
    feed(m, &res);
    assert_int_equal(res.n_boxes, 1);
    assert_float_equal(res.boxes[0].x, 40.0f / W, 0.005f);
    assert_float_equal(res.boxes[0].y, 150.0f / H, 0.005f);
    assert_float_equal(res.score, 48.0f * 48.0f / (W * H), 0.0001f);
    vg_motion_destroy(m);
}

static void test_box_across_mask_edge_is_clipped(void **state)
{
    struct vg_motion *m = make_masked();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_square(120, 40, 64);               /* x 120..183: 24 px under the mask */
    feed(m, &res);
    assert_int_equal(res.n_boxes, 1);
    assert_float_equal(res.boxes[0].x, 120.0f / W, 0.005f);
    assert_float_equal(res.boxes[0].w, 40.0f / W, 0.005f);
    vg_motion_destroy(m);
}

static void test_clearing_mask_watches_everything(void **state)
{
    struct vg_motion *m = make_masked();
    struct vg_motion_result res;
    assert_int_equal(vg_motion_set_mask(m, NULL, 0), VG_OK);
    draw_background();
    feed(m, &res);
    draw_square(200, 30, 48);
    feed(m, &res);
    assert_int_equal(res.n_boxes, 1);
    assert_int_equal(vg_motion_set_mask(m, &mask[0][0], W - 1), VG_ERR_INVALID);
    assert_int_equal(vg_motion_set_mask(NULL, NULL, 0), VG_ERR_INVALID);
    vg_motion_destroy(m);
}

/* ---- global change ------------------------------------------------------ */

static void brighten(int by)
{
    for (int y = 0; y < H; y++)
        for (int x = 0; x < W; x++)
            frame[y][x] = (uint8_t)(frame[y][x] + by);
}

static struct vg_motion *make_with_max_area(double max_area)
{
    struct vg_motion *m = make();
    assert_int_equal(vg_motion_set_max_area(m, max_area), VG_OK);
    return m;
}

static void test_brightness_jump_is_not_motion(void **state)
{
    struct vg_motion *m = make_with_max_area(0.8);
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_background();
    brighten(80);                           /* the lights came on */
    feed(m, &res);
    assert_int_equal(res.global_change, 1);
    assert_int_equal(res.n_boxes, 0);
    assert_true(res.score > 0.8f);          /* the score still says what changed */
    /* The bright scene is the background now: still frames are quiet... */
    for (int i = 0; i < 5; i++) {
        feed(m, &res);
        assert_int_equal(res.global_change, 0);
        assert_int_equal(res.n_boxes, 0);
    }
    /* ...and motion in it is found again. */
    draw_square(100, 100, 40);
    feed(m, &res);
    assert_int_equal(res.global_change, 0);
    assert_int_equal(res.n_boxes, 1);
    assert_float_equal(res.boxes[0].x, 100.0f / W, 0.005f);
    vg_motion_destroy(m);
}

static void test_large_motion_below_max_area_is_motion(void **state)
{
    struct vg_motion *m = make_with_max_area(0.8);
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    draw_square(0, 0, 200);                 /* 200x200 = 52% of 320x240 */
    feed(m, &res);
    assert_int_equal(res.global_change, 0);
    assert_int_equal(res.n_boxes, 1);
    vg_motion_destroy(m);
}

static void test_max_area_counts_watched_pixels(void **state)
{
    struct vg_motion *m = make_with_max_area(0.8);
    struct vg_motion_result res;
    memset(mask, 0, sizeof(mask));
    mask_rect(0, 0, W / 2, H);              /* left half ignored */
    assert_int_equal(vg_motion_set_mask(m, &mask[0][0], W), VG_OK);
    draw_background();
    feed(m, &res);
    draw_background();
    brighten(80);                           /* half the image, but all that is watched */
    feed(m, &res);
    assert_int_equal(res.global_change, 1);
    assert_int_equal(res.n_boxes, 0);
    vg_motion_destroy(m);
}

static void test_max_area_off_by_default(void **state)
{
    struct vg_motion *m = make();
    struct vg_motion_result res;
    draw_background();
    feed(m, &res);
    brighten(80);
    feed(m, &res);
    assert_int_equal(res.global_change, 0);
    assert_int_equal(res.n_boxes, 1);       /* one box: the whole picture */
    assert_true(res.boxes[0].w > 0.99f && res.boxes[0].h > 0.99f);
    assert_int_equal(vg_motion_set_max_area(m, 0.0), VG_ERR_INVALID);
    assert_int_equal(vg_motion_set_max_area(m, 1.5), VG_ERR_INVALID);
    vg_motion_destroy(m);
}

static void test_bad_arguments(void **state)
{
    struct vg_motion *m = NULL;
    assert_int_equal(vg_motion_create(&m, 4, 4, 25, 0.002, 0.05), VG_ERR_INVALID);
    assert_int_equal(vg_motion_create(&m, W, H, 0, 0.002, 0.05), VG_ERR_INVALID);
    assert_int_equal(vg_motion_create(&m, W, H, 25, 1.5, 0.05), VG_ERR_INVALID);
    assert_int_equal(vg_motion_create(&m, W, H, 25, 0.002, -1), VG_ERR_INVALID);
    assert_null(m);
    vg_motion_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_static_scene_has_no_motion),
        cmocka_unit_test(test_first_frame_only_learns),
        cmocka_unit_test(test_moving_square_is_one_box),
        cmocka_unit_test(test_slow_walker_leaves_no_trail),
        cmocka_unit_test(test_box_matches_square),
        cmocka_unit_test(test_small_noise_is_ignored),
        cmocka_unit_test(test_two_squares_are_two_boxes),
        cmocka_unit_test(test_nearby_parts_merge),
        cmocka_unit_test(test_boxes_are_capped_largest_first),
        cmocka_unit_test(test_reset_relearns),
        cmocka_unit_test(test_change_inside_mask_is_ignored),
        cmocka_unit_test(test_change_outside_mask_is_a_box),
        cmocka_unit_test(test_box_across_mask_edge_is_clipped),
        cmocka_unit_test(test_clearing_mask_watches_everything),
        cmocka_unit_test(test_brightness_jump_is_not_motion),
        cmocka_unit_test(test_large_motion_below_max_area_is_motion),
        cmocka_unit_test(test_max_area_counts_watched_pixels),
        cmocka_unit_test(test_max_area_off_by_default),
        cmocka_unit_test(test_bad_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
