/* Latest-wins slots: a newer frame replaces an unanalysed one (counted as a
 * drop), a camera is held by one worker at a time, cameras are served round
 * robin, and closing wakes every waiting worker. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "slots.h"

static void newest_wins(void **state)
{
    struct disp_slots *s = NULL;
    struct disp_frame f;
    assert_int_equal(disp_slots_create(&s, 2), VG_OK);
    assert_int_equal(disp_slots_put(s, 0, "one", 3, 1), 0);
    assert_int_equal(disp_slots_put(s, 0, "two", 3, 2), 1);
    assert_int_equal(disp_slots_put(s, 0, "three", 5, 3), 1);
    assert_int_equal(disp_slots_pending(s), 1);
    assert_int_equal(disp_slots_take(s, 10, &f), VG_OK);
    assert_int_equal(f.camera, 0);
    assert_int_equal(f.len, 5);
    assert_memory_equal(f.data, "three", 5);
    assert_int_equal(f.received_us, 3);
    free(f.data);
    assert_int_equal(disp_slots_take(s, 10, &f), VG_ERR_TIMEOUT);
    disp_slots_done(s, 0);
    disp_slots_destroy(s);
}

static void busy_camera_waits_round_robin(void **state)
{
    struct disp_slots *s = NULL;
    struct disp_frame a, b, c;
    assert_int_equal(disp_slots_create(&s, 3), VG_OK);
    disp_slots_put(s, 0, "a0", 2, 0);
    assert_int_equal(disp_slots_take(s, 10, &a), VG_OK);
    /* Camera 0 is being analysed: its next frame waits; camera 1 and 2 go first. */
    disp_slots_put(s, 0, "a1", 2, 0);
    disp_slots_put(s, 1, "b0", 2, 0);
    disp_slots_put(s, 2, "c0", 2, 0);
    assert_int_equal(disp_slots_take(s, 10, &b), VG_OK);
    assert_int_equal(disp_slots_take(s, 10, &c), VG_OK);
    assert_int_equal(b.camera, 1);
    assert_int_equal(c.camera, 2);
    struct disp_frame x;
    assert_int_equal(disp_slots_take(s, 10, &x), VG_ERR_TIMEOUT);
    disp_slots_done(s, 0);
    assert_int_equal(disp_slots_take(s, 10, &x), VG_OK);
    assert_int_equal(x.camera, 0);
    assert_memory_equal(x.data, "a1", 2);
    free(a.data), free(b.data), free(c.data), free(x.data);
    disp_slots_destroy(s);
}

static void *waiter(void *arg)
{
    struct disp_frame f;
    return (void *)(intptr_t)disp_slots_take(arg, 10000, &f);
}

static void close_wakes_workers(void **state)
{
    struct disp_slots *s = NULL;
    pthread_t t[2];
    void *rc;
    assert_int_equal(disp_slots_create(&s, 1), VG_OK);
    for (int i = 0; i < 2; i++)
        pthread_create(&t[i], NULL, waiter, s);
    disp_slots_close(s);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], &rc);
        assert_int_equal((intptr_t)rc, VG_ERR_STOPPED);
    }
    disp_slots_put(s, 0, "late", 4, 0);  /* the NATS drain may still deliver: kept, freed */
    disp_slots_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(newest_wins),
        cmocka_unit_test(busy_camera_waits_round_robin),
        cmocka_unit_test(close_wakes_workers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
