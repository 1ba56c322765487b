/* The join of a frame's person label with its identities (dedupe/join.h):
 * an identity alert of the frame stands for the held label, in either
 * order of arrival; every face answered without one releases it at once;
 * the wait releases it otherwise, but never under an identity being
 * decided; the table is bounded and hands everything back when closed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "join.h"

#define WAIT_US 1500000LL

static int freed;

static void free_held(void *p)
{
    freed++;
    free(p);
}

static void *held_new(int tag)
{
    int *p = malloc(sizeof(*p));
    assert_non_null(p);
    *p = tag;
    return p;
}

static struct dd_join *join(int max)
{
    struct dd_join *j = NULL;
    freed = 0;
    assert_int_equal(dd_join_create(&j, max, WAIT_US, free_held), VG_OK);
    return j;
}

/* Hold a sighting tagged tag for (cam, trace); asserts it was held. */
static void hold(struct dd_join *j, const char *cam, const char *trace, uint32_t faces,
                 int tag, int64_t now)
{
    void *h = held_new(tag);
    assert_int_equal(dd_join_detection(j, cam, trace, faces, &h, now), DD_JOIN_HELD);
    assert_null(h);     /* the table took it */
}

static int tag_of(void *p)
{
    assert_non_null(p);
    int t = *(int *)p;
    free(p);
    return t;
}

static void identity_stands_for_held_label(void **state)
{
    struct dd_join *j = join(8);
    enum dd_join_verdict v;
    hold(j, "porch", "t1", 1, 7, 0);
    assert_int_equal(dd_join_claim(j, "porch", "t1", 100), 1);
    assert_int_equal(tag_of(dd_join_settle(j, "porch", "t1", 1, 200, &v)), 7);
    assert_int_equal(v, DD_JOIN_COVER);
    void *out[4];
    assert_int_equal(dd_join_expire(j, WAIT_US * 10, out, 4), 0);
    dd_join_destroy(j);
    assert_int_equal(freed, 0);
}

static void identity_first_then_detection_is_covered(void **state)
{
    struct dd_join *j = join(8);
    enum dd_join_verdict v;
    assert_int_equal(dd_join_claim(j, "porch", "t2", 0), 1);
    assert_null(dd_join_settle(j, "porch", "t2", 1, 10, &v));
    void *h = held_new(1);
    assert_int_equal(dd_join_detection(j, "porch", "t2", 1, &h, 20), DD_JOIN_COVER);
    assert_non_null(h);  /* the caller keeps it on anything but HELD */
    free(h);
    dd_join_destroy(j);
}

static void all_faces_answered_releases_at_once(void **state)
{
    struct dd_join *j = join(8);
    hold(j, "porch", "t3", 2, 3, 0);
    assert_null(dd_join_answer(j, "porch", "t3", 10));          /* one of two */
    assert_int_equal(tag_of(dd_join_answer(j, "porch", "t3", 20)), 3);
    struct dd_join_stats st;
    dd_join_get_stats(j, &st);
    assert_int_equal(st.entries, 0);
    dd_join_destroy(j);
}

static void unknown_answers_before_detection(void **state)
{
    struct dd_join *j = join(8);
    /* One face, answered before the detection: nothing to wait for. */
    assert_null(dd_join_answer(j, "yard", "t4", 0));
    void *h = held_new(4);
    assert_int_equal(dd_join_detection(j, "yard", "t4", 1, &h, 10), DD_JOIN_ALONE);
    free(h);
    /* Two faces, one answered before: held, the second releases it. */
    assert_null(dd_join_answer(j, "yard", "t5", 0));
    hold(j, "yard", "t5", 2, 5, 10);
    assert_int_equal(tag_of(dd_join_answer(j, "yard", "t5", 20)), 5);
    dd_join_destroy(j);
}

static void wait_over_releases_label(void **state)
{
    struct dd_join *j = join(8);
    void *out[4];
    hold(j, "porch", "t6", 1, 6, 1000);
    assert_int_equal(dd_join_expire(j, 1000 + WAIT_US - 1, out, 4), 0);
    assert_int_equal(dd_join_expire(j, 1000 + WAIT_US, out, 4), 1);
    assert_int_equal(tag_of(out[0]), 6);
    /* A late identity finds nothing to stand for. */
    enum dd_join_verdict v;
    assert_int_equal(dd_join_claim(j, "porch", "t6", 1000 + WAIT_US + 5), 1);
    assert_null(dd_join_settle(j, "porch", "t6", 1, 1000 + WAIT_US + 6, &v));
    dd_join_destroy(j);
}

static void identity_being_decided_holds_off_the_wait(void **state)
{
    struct dd_join *j = join(8);
    enum dd_join_verdict v;
    void *out[4];
    hold(j, "porch", "t7", 1, 7, 0);
    assert_int_equal(dd_join_claim(j, "porch", "t7", 10), 1);
    /* Redis is slow: the wait passes while the identity is decided. */
    assert_int_equal(dd_join_expire(j, WAIT_US * 2, out, 4), 0);
    void *h = dd_join_settle(j, "porch", "t7", 0, WAIT_US * 2, &v);
    assert_int_equal(v, DD_JOIN_ALONE);
    assert_int_equal(tag_of(h), 7);
    dd_join_destroy(j);
}

static void stood_identity_with_faces_still_pending(void **state)
{
    struct dd_join *j = join(8);
    enum dd_join_verdict v;
    hold(j, "porch", "t8", 2, 8, 0);
    assert_int_equal(dd_join_claim(j, "porch", "t8", 1), 1);
    assert_int_equal(dd_join_claim(j, "porch", "t8", 2), 1);
    /* The first face is unknown (no alert): the other is still pending. */
    assert_null(dd_join_settle(j, "porch", "t8", 0, 3, &v));
    assert_int_equal(tag_of(dd_join_settle(j, "porch", "t8", 1, 4, &v)), 8);
    assert_int_equal(v, DD_JOIN_COVER);
    dd_join_destroy(j);
}

static void not_joinable(void **state)
{
    struct dd_join *j = join(8);
    char long_trace[DD_JOIN_TRACE_MAX + 2];
    memset(long_trace, 'a', sizeof(long_trace) - 1);
    long_trace[sizeof(long_trace) - 1] = '\0';
    void *h = held_new(9);
    assert_int_equal(dd_join_detection(j, "porch", "", 1, &h, 0), DD_JOIN_ALONE);
    assert_int_equal(dd_join_detection(j, "porch", long_trace, 1, &h, 0), DD_JOIN_ALONE);
    assert_int_equal(dd_join_detection(j, "porch", "t9", 0, &h, 0), DD_JOIN_ALONE);
    assert_int_equal(dd_join_claim(j, "porch", "", 0), 0);
    assert_null(dd_join_answer(j, "porch", long_trace, 0));
    /* A second detection of one frame is not joined. */
    hold(j, "porch", "t9", 1, 10, 0);
    assert_int_equal(dd_join_detection(j, "porch", "t9", 1, &h, 1), DD_JOIN_ALONE);
    /* Other cameras' frames with the same trace id are other frames. */
    hold(j, "yard", "t9", 1, 11, 0);
    free(h);
    dd_join_destroy(j);
    assert_int_equal(freed, 2);     /* destroy frees what is still held */
}

static void table_is_bounded(void **state)
{
    struct dd_join *j = join(2);
    struct dd_join_stats st;
    hold(j, "porch", "a", 1, 1, 0);
    hold(j, "porch", "b", 1, 2, 0);
    void *h = held_new(3);
    assert_int_equal(dd_join_detection(j, "porch", "c", 1, &h, 10), DD_JOIN_FULL);
    assert_int_equal(dd_join_claim(j, "porch", "d", 10), 0);
    dd_join_get_stats(j, &st);
    assert_int_equal(st.full, 2);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.held, 2);
    void *out[1];
    /* Taken one at a time when the caller's array is small. */
    assert_int_equal(dd_join_expire(j, WAIT_US, out, 1), 1);
    free(out[0]);
    assert_int_equal(dd_join_expire(j, WAIT_US, out, 1), 1);
    free(out[0]);
    /* An identity-only frame past its wait makes room for a new one. */
    assert_null(dd_join_answer(j, "porch", "e", WAIT_US));
    assert_null(dd_join_answer(j, "porch", "f", WAIT_US));
    assert_int_equal(dd_join_detection(j, "porch", "c", 1, &h, 3 * WAIT_US), DD_JOIN_HELD);
    dd_join_destroy(j);
    assert_int_equal(freed, 1);
}

static void close_hands_back_everything(void **state)
{
    struct dd_join *j = join(64);
    char trace[16];
    void *out[16];
    int total = 0;
    for (int i = 0; i < 20; i++) {
        snprintf(trace, sizeof(trace), "t%d", i);
        hold(j, "porch", trace, 1, i, 0);
    }
    assert_int_equal(dd_join_claim(j, "porch", "t0", 0), 1);
    size_t k;
    do {
        k = dd_join_close(j, out, 16);
        for (size_t i = 0; i < k; i++)
            free(out[i]);
        total += (int)k;
    } while (k == 16);
    assert_int_equal(total, 20);
    enum dd_join_verdict v;
    assert_null(dd_join_settle(j, "porch", "t0", 1, 1, &v));   /* its entry is gone */
    void *h = held_new(99);
    assert_int_equal(dd_join_detection(j, "porch", "new", 1, &h, 1), DD_JOIN_FULL);
    assert_int_equal(dd_join_claim(j, "porch", "new", 1), 0);
    free(h);
    dd_join_destroy(j);
    assert_int_equal(freed, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(identity_stands_for_held_label),
        cmocka_unit_test(identity_first_then_detection_is_covered),
        cmocka_unit_test(all_faces_answered_releases_at_once),
        cmocka_unit_test(unknown_answers_before_detection),
        cmocka_unit_test(wait_over_releases_label),
        cmocka_unit_test(identity_being_decided_holds_off_the_wait),
        cmocka_unit_test(stood_identity_with_faces_still_pending),
        cmocka_unit_test(not_joinable),
        cmocka_unit_test(table_is_bounded),
        cmocka_unit_test(close_hands_back_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
