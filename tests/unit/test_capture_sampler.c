/* Capture's sampling modes: fps, every_n, keyframes. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "config.h"
#include "sampler.h"

#define FRAME_MS 40     /* a 25 fps source */

static void init(struct cap_sampler *s, int mode, double fps, int every_n)
{
    struct cap_sampler_cfg cfg = {.mode = mode, .fps = fps, .every_n = every_n, .speed = 0};
    cap_sampler_init(s, &cfg);
}

/* Offer n frames from pts 0; key(i) says which are keyframes. Returns how
 * many were taken and stores their indexes. */
static int offer(struct cap_sampler *s, int n, int gop, int *taken, int cap)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        int key = gop > 0 ? i % gop == 0 : 1;
        if (cap_sampler_take(s, (int64_t)i * FRAME_MS, key)) {
            if (k < cap)
                taken[k] = i;
            k++;
        }
    }
    return k;
}

static void test_fps_takes_the_configured_rate(void **state)
{
    struct cap_sampler s;
    int taken[64];
    init(&s, VG_SAMPLE_FPS, 5, 30);
    /* 10 s at 25 fps, sampled at 5 fps: every 5th frame. */
    assert_int_equal(offer(&s, 250, 0, taken, 64), 50);
    for (int i = 0; i < 50; i++)
        assert_int_equal(taken[i], i * 5);
}

static void test_every_n_takes_one_in_n(void **state)
{
    struct cap_sampler s;
    int taken[64];
    init(&s, VG_SAMPLE_EVERY_N, 5, 30);
    /* 795 frames (vtest.avi): 0, 30, ..., 780. */
    assert_int_equal(offer(&s, 795, 0, taken, 64), 27);
    for (int i = 0; i < 27; i++)
        assert_int_equal(taken[i], i * 30);
}

static void test_every_n_ignores_time(void **state)
{
    struct cap_sampler s;
    init(&s, VG_SAMPLE_EVERY_N, 5, 3);
    /* Frames counted, not timed: a stream with no usable timestamps
     * (all at 0) or a gap is still 1 in 3. */
    int n = 0;
    for (int i = 0; i < 30; i++)
        n += cap_sampler_take(&s, i < 15 ? 0 : 100000 + i, 0);
    assert_int_equal(n, 10);
}

static void test_every_n_restarts_after_reset(void **state)
{
    struct cap_sampler s;
    init(&s, VG_SAMPLE_EVERY_N, 5, 10);
    assert_true(cap_sampler_take(&s, 0, 0));
    assert_false(cap_sampler_take(&s, 40, 0));
    cap_sampler_reset(&s);          /* a loop or a reconnect */
    assert_true(cap_sampler_take(&s, 0, 0));
}

static void test_every_n_of_one_takes_all(void **state)
{
    struct cap_sampler s;
    int taken[8];
    init(&s, VG_SAMPLE_EVERY_N, 5, 0);      /* below 1 counts as 1 */
    assert_int_equal(offer(&s, 8, 0, taken, 8), 8);
}

static void test_keyframes_takes_only_keyframes(void **state)
{
    struct cap_sampler s;
    int taken[64];
    init(&s, VG_SAMPLE_KEYFRAMES, 5, 30);
    /* GOP of 25 at 25 fps: a keyframe a second, all of them taken. */
    assert_int_equal(offer(&s, 250, 25, taken, 64), 10);
    for (int i = 0; i < 10; i++)
        assert_int_equal(taken[i], i * 25);
}

static void test_keyframes_still_capped_at_fps(void **state)
{
    struct cap_sampler s;
    int taken[64];
    init(&s, VG_SAMPLE_KEYFRAMES, 5, 30);
    /* MJPEG: every frame is a keyframe; 25 fps comes down to 5. */
    assert_int_equal(offer(&s, 250, 1, taken, 64), 50);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fps_takes_the_configured_rate),
        cmocka_unit_test(test_every_n_takes_one_in_n),
        cmocka_unit_test(test_every_n_ignores_time),
        cmocka_unit_test(test_every_n_restarts_after_reset),
        cmocka_unit_test(test_every_n_of_one_takes_all),
        cmocka_unit_test(test_keyframes_takes_only_keyframes),
        cmocka_unit_test(test_keyframes_still_capped_at_fps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
