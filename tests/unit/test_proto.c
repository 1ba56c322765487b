/* Messages: round trips through the wire format, and the size limits that
 * keep a hostile or broken publisher from costing us memory. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"
#include "metrics.h"

static void frame_round_trip(void **state)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Frame f = VIGIL__V1__FRAME__INIT;
    Vigil__V1__Box box = VIGIL__V1__BOX__INIT;
    Vigil__V1__MotionBox mb = VIGIL__V1__MOTION_BOX__INIT, *mbp = &mb;
    uint8_t jpeg[3000];
    for (size_t i = 0; i < sizeof(jpeg); i++)
        jpeg[i] = (uint8_t)i;
    vg_header_fill(&h, "porch", 1700000000123456, NULL);
    f.header = &h;
    f.seq = 42;
    f.width = 640;
    f.height = 360;
    f.jpeg.data = jpeg;
    f.jpeg.len = sizeof(jpeg);
    box.x = 0.25f;
    box.w = 0.5f;
    mb.box = &box;
    mb.fill = 0.3f;
    f.n_motion = 1;
    f.motion = &mbp;

    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(vg_pb_pack(&f.base, 1 << 20, &buf, &len), VG_OK);
    ProtobufCMessage *m = NULL;
    assert_int_equal(vg_pb_unpack(&vigil__v1__frame__descriptor, buf, len, 1 << 20, &m), VG_OK);
    Vigil__V1__Frame *g = (Vigil__V1__Frame *)m;
    assert_string_equal(g->header->camera_id, "porch");
    assert_int_equal(strlen(g->header->trace_id), 32);
    assert_string_equal(g->header->trace_id, h.trace_id);
    assert_true(g->header->capture_ts_us == 1700000000123456);
    assert_int_equal(g->seq, 42);
    assert_int_equal(g->jpeg.len, sizeof(jpeg));
    assert_memory_equal(g->jpeg.data, jpeg, sizeof(jpeg));
    assert_int_equal(g->n_motion, 1);
    assert_true(g->motion[0]->box->w == 0.5f);
    protobuf_c_message_free_unpacked(m, NULL);
    free(buf);
}

static void alert_round_trip(void **state)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    vg_header_fill(&h, "door", 5, "00112233445566778899aabbccddeeff");
    a.header = &h;
    a.alert_id = "abc";
    a.label = "person";
    a.confidence = 0.9f;
    a.fail_open = 1;
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(vg_pb_pack(&a.base, 4096, &buf, &len), VG_OK);
    ProtobufCMessage *m = NULL;
    assert_int_equal(vg_pb_unpack(&vigil__v1__alert__descriptor, buf, len, 4096, &m), VG_OK);
    Vigil__V1__Alert *b = (Vigil__V1__Alert *)m;
    assert_string_equal(b->alert_id, "abc");
    assert_string_equal(b->header->trace_id, "00112233445566778899aabbccddeeff");
    assert_true(b->fail_open);
    protobuf_c_message_free_unpacked(m, NULL);
    free(buf);
}

static void limits_are_enforced(void **state)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Frame f = VIGIL__V1__FRAME__INIT;
    static uint8_t big[2048];
    vg_header_fill(&h, "c", 1, NULL);
    f.header = &h;
    f.jpeg.data = big;
    f.jpeg.len = sizeof(big);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(vg_pb_pack(&f.base, 1024, &buf, &len), VG_ERR_TOO_LARGE);
    assert_null(buf);
    assert_int_equal(vg_pb_pack(&f.base, 4096, &buf, &len), VG_OK);
    ProtobufCMessage *m = NULL;
    assert_int_equal(vg_pb_unpack(&vigil__v1__frame__descriptor, buf, len, 1024, &m),
                     VG_ERR_TOO_LARGE);
    assert_null(m);
    free(buf);
}

static void garbage_is_a_decode_error(void **state)
{
    static const uint8_t junk[] = {0xff, 0xff, 0xff, 0xff, 0x0f, 0x12, 0x34};
    ProtobufCMessage *m = NULL;
    assert_int_equal(vg_pb_unpack(&vigil__v1__frame__descriptor, junk, sizeof(junk), 1024, &m),
                     VG_ERR_DECODE);
    assert_null(m);
    /* A truncated valid message is also rejected. */
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Detection d = VIGIL__V1__DETECTION__INIT;
    vg_header_fill(&h, "cam", 1, NULL);
    d.header = &h;
    d.detector = "motion";
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(vg_pb_pack(&d.base, 4096, &buf, &len), VG_OK);
    assert_int_equal(vg_pb_unpack(&vigil__v1__detection__descriptor, buf, len - 3, 4096, &m),
                     VG_ERR_DECODE);
    free(buf);
}

static void ids_are_unique_hex(void **state)
{
    char a[33], b[33];
    vg_new_id(a);
    vg_new_id(b);
    assert_int_equal(strlen(a), 32);
    assert_int_equal(strspn(a, "0123456789abcdef"), 32);
    assert_string_not_equal(a, b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(frame_round_trip),
        cmocka_unit_test(alert_round_trip),
        cmocka_unit_test(limits_are_enforced),
        cmocka_unit_test(garbage_is_a_decode_error),
        cmocka_unit_test(ids_are_unique_hex),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
