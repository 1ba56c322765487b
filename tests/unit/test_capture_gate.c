/* Capture's publish gate: which sampled frames are encoded and published. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "gate.h"

static struct vg_motion_result quiet(void)
{
    struct vg_motion_result m;
    memset(&m, 0, sizeof(m));
    return m;
}

static struct vg_motion_result moving(void)
{
    struct vg_motion_result m = quiet();
    m.n_boxes = 1;
    m.score = 0.05f;
    m.boxes[0] = (struct vg_motion_box){0.1f, 0.1f, 0.2f, 0.3f, 0.6f};
    return m;
}

/* Offer a frame at pts_ms; publish it when the gate says so. */
static enum cap_verdict offer(struct cap_gate *g, const struct vg_motion_result *m,
                              int64_t pts_ms)
{
    enum cap_verdict v = cap_gate_decide(g, m, pts_ms);
    if (cap_verdict_publishes(v))
        cap_gate_published(g, pts_ms);
    return v;
}

static void test_still_scene_gets_first_frame_and_keepalives(void **state)
{
    struct cap_gate g;
    struct vg_motion_result m = quiet();
    int published = 0;
    cap_gate_init(&g, 10, 0);
    m.learning = 1;
    assert_int_equal(offer(&g, &m, 0), CAP_PUBLISH_SCENE);
    m.learning = 0;
    published++;
    /* 60 s at 5 fps: one keep-alive every 10 s, at 10, 20, ... 60. */
    for (int64_t t = 200; t <= 60000; t += 200) {
        enum cap_verdict v = offer(&g, &m, t);
        if (cap_verdict_publishes(v)) {
            assert_int_equal(v, CAP_PUBLISH_KEEPALIVE);
            assert_int_equal(t % 10000, 0);
            published++;
        } else {
            assert_int_equal(v, CAP_SKIP_NO_MOTION);
        }
    }
    assert_int_equal(published, 7);
}

static void test_motion_is_published_and_delays_keepalive(void **state)
{
    struct cap_gate g;
    struct vg_motion_result q = quiet(), mv = moving();
    cap_gate_init(&g, 10, 0);
    assert_int_equal(offer(&g, &q, 0), CAP_PUBLISH_SCENE);
    assert_int_equal(offer(&g, &mv, 8000), CAP_PUBLISH_MOTION);
    /* The keep-alive counts from the last frame published, motion or not. */
    assert_int_equal(offer(&g, &q, 12000), CAP_SKIP_NO_MOTION);
    assert_int_equal(offer(&g, &q, 18000), CAP_PUBLISH_KEEPALIVE);
}

static void test_keepalive_zero_never(void **state)
{
    struct cap_gate g;
    struct vg_motion_result q = quiet();
    cap_gate_init(&g, 0, 0);
    assert_int_equal(offer(&g, &q, 0), CAP_PUBLISH_SCENE);
    for (int64_t t = 1000; t < 3600 * 1000; t += 1000)
        assert_int_equal(offer(&g, &q, t), CAP_SKIP_NO_MOTION);
}

static void test_publish_all(void **state)
{
    struct cap_gate g;
    struct vg_motion_result q = quiet();
    cap_gate_init(&g, 10, 1);
    for (int64_t t = 0; t < 2000; t += 200)
        assert_int_equal(offer(&g, &q, t), CAP_PUBLISH_ALL);
}

static void test_global_change_is_skipped(void **state)
{
    struct cap_gate g;
    struct vg_motion_result q = quiet();
    cap_gate_init(&g, 10, 0);
    offer(&g, &q, 0);
    q.global_change = 1;
    assert_int_equal(offer(&g, &q, 200), CAP_SKIP_GLOBAL_CHANGE);
    /* ...unless a keep-alive is due anyway. */
    assert_int_equal(offer(&g, &q, 10000), CAP_PUBLISH_KEEPALIVE);
}

static void test_reset_publishes_the_scene_again(void **state)
{
    struct cap_gate g;
    struct vg_motion_result q = quiet();
    cap_gate_init(&g, 10, 0);
    offer(&g, &q, 0);
    assert_int_equal(offer(&g, &q, 200), CAP_SKIP_NO_MOTION);
    cap_gate_reset(&g);         /* reconnect, loop */
    assert_int_equal(offer(&g, &q, 400), CAP_PUBLISH_SCENE);
    /* A failed publish is not recorded: the next frame tries again. */
    cap_gate_reset(&g);
    assert_int_equal(cap_gate_decide(&g, &q, 600), CAP_PUBLISH_SCENE);
    assert_int_equal(cap_gate_decide(&g, &q, 800), CAP_PUBLISH_SCENE);
}

static void test_clock_going_back_is_a_keepalive(void **state)
{
    struct cap_gate g;
    struct vg_motion_result q = quiet();
    cap_gate_init(&g, 10, 0);
    offer(&g, &q, 50000);
    assert_int_equal(offer(&g, &q, 1000), CAP_PUBLISH_KEEPALIVE);
    assert_int_equal(offer(&g, &q, 1200), CAP_SKIP_NO_MOTION);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_still_scene_gets_first_frame_and_keepalives),
        cmocka_unit_test(test_motion_is_published_and_delays_keepalive),
        cmocka_unit_test(test_keepalive_zero_never),
        cmocka_unit_test(test_publish_all),
        cmocka_unit_test(test_global_change_is_skipped),
        cmocka_unit_test(test_reset_publishes_the_scene_again),
        cmocka_unit_test(test_clock_going_back_is_a_keepalive),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
