/* Watch lists: only listed labels at or above their minimum confidence. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "watch.h"

static void filters_by_label_and_confidence(void **state)
{
    struct vg_camera_cfg cam;
    memset(&cam, 0, sizeof(cam));
    cam.n_watch = 2;
    strcpy(cam.watch[0].label, "person");
    cam.watch[0].min_confidence = 0.72;
    strcpy(cam.watch[1].label, "package");
    cam.watch[1].min_confidence = 0.5;
    struct vg_label l[5] = {
        {.name = "person", .confidence = 0.9f},
        {.name = "person", .confidence = 0.6f},
        {.name = "vehicle", .confidence = 0.99f},
        {.name = "package", .confidence = 0.5f},
        {.name = "package", .confidence = 0.49f},
    };
    size_t n = disp_watch_filter(&cam, l, 5);
    assert_int_equal(n, 2);
    assert_string_equal(l[0].name, "person");
    assert_true(l[0].confidence > 0.8f);
    assert_string_equal(l[1].name, "package");
}

static void empty_watch_list_keeps_all(void **state)
{
    struct vg_camera_cfg cam;
    memset(&cam, 0, sizeof(cam));
    struct vg_label l[2] = {{.name = "motion", .confidence = 0.1f}, {.name = "pet"}};
    assert_int_equal(disp_watch_filter(&cam, l, 2), 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(filters_by_label_and_confidence),
        cmocka_unit_test(empty_watch_list_keeps_all),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
