/* facematch's own parts: the quality gates (size, sharpness, confidence) on
 * synthetic crops, and the redis profile store against a real redis-server
 * (replace on put, missing profile, fields beyond the limit, Redis down). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "face/profiles.h"
#include "fixture.h"
#include "quality.h"

static uint8_t *checkerboard(int w, int h, int cell)
{
    uint8_t *g = malloc((size_t)w * h);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            g[y * w + x] = ((x / cell + y / cell) & 1) ? 220 : 30;
    return g;
}

static void test_quality_gates(void **state)
{
    struct vg_config cfg;
    double sharp = 0;
    vg_cfg_defaults(&cfg);
    uint8_t *sharp_img = checkerboard(80, 80, 4);
    uint8_t *flat = calloc(80 * 80, 1);
    memset(flat, 128, 80 * 80);

    assert_int_equal(fm_quality(&cfg, sharp_img, 80, 80, 0.9f, &sharp), FM_OK);
    assert_true(sharp > cfg.facematch.min_sharpness);
    assert_int_equal(fm_quality(&cfg, sharp_img, 30, 80, 0.9f, &sharp), FM_TOO_SMALL);
    assert_int_equal(fm_quality(&cfg, sharp_img, 80, 80, 0.2f, &sharp), FM_LOW_CONFIDENCE);
    assert_int_equal(fm_quality(&cfg, sharp_img, 80, 80, 0.0f, &sharp), FM_OK); /* unscored */
    assert_int_equal(fm_quality(&cfg, flat, 80, 80, 0.9f, &sharp), FM_BLURRED);
    assert_true(sharp < 1e-9);
    assert_true(fm_sharpness(flat, 2, 2) == 0);
    assert_string_equal(fm_reject_name(FM_BLURRED), "blurred");
    free(sharp_img);
    free(flat);
}

static void test_redis_profiles(void **state)
{
    struct fixture_redis fx;
    struct vg_config cfg;
    struct vg_profiles *p = NULL;
    struct vg_profile in = {0}, out;
    vg_cfg_defaults(&cfg);
    assert_int_equal(fixture_redis_up(&fx), 0);
    struct vg_face_env env = {.cfg = &cfg, .redis = fx.r};
    assert_int_equal(vg_profiles_open(&p, &env), VG_OK);
    assert_string_equal(p->ops->name, "redis");

    assert_int_equal(p->ops->get(p->state, "alice", "", &out), VG_ERR_NOT_FOUND);
    assert_int_equal(vg_profile_set(&in, "display_name", "Alice"), VG_OK);
    assert_int_equal(vg_profile_set(&in, "song", "Last Christmas"), VG_OK);
    assert_int_equal(vg_profile_set(&in, "song", "Jingle Bells"), VG_OK);  /* replaces */
    assert_int_equal(in.n, 2);
    assert_int_equal(p->ops->put(p->state, "alice", NULL, 0, &in), VG_OK);
    assert_int_equal(p->ops->get(p->state, "alice", "", &out), VG_OK);
    assert_string_equal(vg_profile_get(&out, "song"), "Jingle Bells");
    assert_string_equal(vg_profile_get(&out, "display_name"), "Alice");

    struct vg_profile fewer = {0};
    assert_int_equal(vg_profile_set(&fewer, "display_name", "Al"), VG_OK);
    assert_int_equal(p->ops->put(p->state, "alice", NULL, 0, &fewer), VG_OK);
    assert_int_equal(p->ops->get(p->state, "alice", "", &out), VG_OK);
    assert_int_equal(out.n, 1);                                 /* put replaces the profile */
    assert_null(vg_profile_get(&out, "song"));

    struct vg_profile full = {0};
    char k[16];
    for (int i = 0; i < VG_PROFILE_MAX_FIELDS; i++) {
        snprintf(k, sizeof(k), "k%d", i);
        assert_int_equal(vg_profile_set(&full, k, "v"), VG_OK);
    }
    assert_int_equal(vg_profile_set(&full, "one-too-many", "v"), VG_ERR_TOO_LARGE);
    char big[VG_PROFILE_VALUE_MAX + 1];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(vg_profile_set(&fewer, "bio", big), VG_ERR_TOO_LARGE);

    assert_int_equal(p->ops->remove(p->state, "alice", NULL, 0), VG_OK);
    assert_int_equal(p->ops->get(p->state, "alice", "", &out), VG_ERR_NOT_FOUND);

    fixture_stop(fx.redis);                                     /* the store goes down */
    vg_status st = p->ops->get(p->state, "alice", "", &out);
    assert_true(st == VG_ERR_UNAVAILABLE || st == VG_ERR_REDIS);
    vg_profiles_close(p);
    vg_redis_destroy(fx.r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quality_gates),
        cmocka_unit_test(test_redis_profiles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
