/* Alert -> JSON as sinks receive it, the checks that keep bad alerts out,
 * and the webhook signature. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "alert_json.h"

struct fixture {
    Vigil__V1__Alert a;
    Vigil__V1__Header h;
    Vigil__V1__Box box;
};

static void fill(struct fixture *f)
{
    vigil__v1__alert__init(&f->a);
    vigil__v1__header__init(&f->h);
    vigil__v1__box__init(&f->box);
    f->h.camera_id = "front-door";
    f->h.capture_ts_us = 1700000000123456;      /* 2023-11-14T22:13:20.123456Z */
    f->h.trace_id = "0123456789abcdef0123456789abcdef";
    f->h.producer = "dedupe@host:42";
    f->box.x = 0.25f;
    f->box.y = 0.5f;
    f->box.w = 0.125f;
    f->box.h = 0.75f;
    f->a.header = &f->h;
    f->a.alert_id = "a1b2c3";
    f->a.key = "front-door/label/person";
    f->a.label = "person";
    f->a.confidence = 0.9f;
    f->a.box = &f->box;
    f->a.person_id = "p-7";
    f->a.display_name = "Zoë \"Z\" Smith";
    f->a.snapshot_url = "file:///var/lib/vigil/s.jpg";
    f->a.clip_url = "http://127.0.0.1:9106/clip?cam=front-door&t=1";
    f->a.window_s = 30;
    f->a.frame_seq = 12345678901ULL;
    f->a.fail_open = 1;
}

static json_t *render(const Vigil__V1__Alert *a)
{
    char *text = NULL;
    size_t len = 0;
    assert_int_equal(ntf_alert_json(a, &text, &len), VG_OK);
    assert_int_equal(strlen(text), len);
    assert_null(strchr(text, '\n'));            /* one outbox line per alert */
    json_error_t err;
    json_t *o = json_loads(text, 0, &err);
    assert_non_null(o);
    free(text);
    return o;
}

static void assert_str(json_t *o, const char *key, const char *want)
{
    json_t *v = json_object_get(o, key);
    assert_true(json_is_string(v));
    assert_string_equal(json_string_value(v), want);
}

static void test_fields(void **state)
{
    struct fixture f;
    fill(&f);
    json_t *o = render(&f.a);
    assert_str(o, "alert_id", "a1b2c3");
    assert_str(o, "camera", "front-door");
    assert_str(o, "label", "person");
    assert_str(o, "person_id", "p-7");
    assert_str(o, "display_name", "Zoë \"Z\" Smith");
    assert_str(o, "snapshot_url", "file:///var/lib/vigil/s.jpg");
    assert_str(o, "clip_url", "http://127.0.0.1:9106/clip?cam=front-door&t=1");
    assert_str(o, "key", "front-door/label/person");
    assert_str(o, "capture_ts", "2023-11-14T22:13:20.123Z");
    assert_str(o, "trace_id", "0123456789abcdef0123456789abcdef");
    assert_str(o, "producer", "dedupe@host:42");
    assert_true(json_real_value(json_object_get(o, "confidence")) == 0.9);
    assert_int_equal(json_integer_value(json_object_get(o, "window_s")), 30);
    assert_int_equal(json_integer_value(json_object_get(o, "frame_seq")), 12345678901LL);
    assert_true(json_is_true(json_object_get(o, "fail_open")));
    json_t *box = json_object_get(o, "box");
    assert_true(json_real_value(json_object_get(box, "x")) == 0.25);
    assert_true(json_real_value(json_object_get(box, "y")) == 0.5);
    assert_true(json_real_value(json_object_get(box, "w")) == 0.125);
    assert_true(json_real_value(json_object_get(box, "h")) == 0.75);
    json_decref(o);
}

static void test_optional_fields(void **state)
{
    struct fixture f;
    fill(&f);
    f.a.box = NULL;
    f.h.capture_ts_us = 0;
    f.a.person_id = "";
    f.a.fail_open = 0;
    json_t *o = render(&f.a);
    assert_true(json_is_null(json_object_get(o, "box")));
    assert_true(json_is_null(json_object_get(o, "capture_ts")));
    assert_str(o, "person_id", "");
    assert_true(json_is_false(json_object_get(o, "fail_open")));
    json_decref(o);
}

/* A known person's alert: face_id and the profile as an object of strings,
 * so a template can say "Welcome {display_name}, your song: {profile.song}". */
static void test_identity_fields(void **state)
{
    struct fixture f;
    Vigil__V1__Alert__ProfileEntry e[3], *p[3] = {&e[0], &e[1], &e[2]};
    const char *kv[3][2] = {{"song", "Last Christmas"}, {"Bio", "Neighbour, \"waves\""},
                            {"allergy", ""}};
    fill(&f);
    for (int i = 0; i < 3; i++) {
        vigil__v1__alert__profile_entry__init(&e[i]);
        e[i].key = (char *)kv[i][0];
        e[i].value = (char *)kv[i][1];
    }
    f.a.face_id = "f-0123";
    f.a.profile = p;
    f.a.n_profile = 3;
    json_t *o = render(&f.a);
    assert_str(o, "person_id", "p-7");
    assert_str(o, "display_name", "Zoë \"Z\" Smith");
    assert_str(o, "face_id", "f-0123");
    json_t *prof = json_object_get(o, "profile");
    assert_true(json_is_object(prof));
    assert_int_equal(json_object_size(prof), 3);
    assert_str(prof, "song", "Last Christmas");
    assert_str(prof, "Bio", "Neighbour, \"waves\"");
    assert_str(prof, "allergy", "");
    json_decref(o);
}

/* An alert that is not about a known person: no face_id, no profile. */
static void test_identity_absent(void **state)
{
    struct fixture f;
    fill(&f);
    f.a.person_id = "";
    f.a.display_name = "";
    json_t *o = render(&f.a);
    assert_null(json_object_get(o, "face_id"));
    assert_null(json_object_get(o, "profile"));
    assert_str(o, "person_id", "");
    assert_str(o, "display_name", "");
    json_decref(o);
}

static void test_profile_invalid_utf8(void **state)
{
    struct fixture f;
    Vigil__V1__Alert__ProfileEntry e, *p[1] = {&e};
    char *text = NULL;
    size_t len = 0;
    fill(&f);
    vigil__v1__alert__profile_entry__init(&e);
    f.a.profile = p;
    f.a.n_profile = 1;
    e.key = "song";
    e.value = "bad \xc3\x28";
    assert_int_equal(ntf_alert_json(&f.a, &text, &len), VG_ERR_DECODE);
    assert_null(text);
    e.key = "bad \xff key";
    e.value = "fine";
    assert_int_equal(ntf_alert_json(&f.a, &text, &len), VG_ERR_DECODE);
    assert_null(text);
}

static void test_invalid_utf8(void **state)
{
    struct fixture f;
    char *text = NULL;
    size_t len = 0;
    fill(&f);
    f.a.display_name = "bad \xff\xfe name";
    assert_int_equal(ntf_alert_json(&f.a, &text, &len), VG_ERR_DECODE);
    assert_null(text);
}

static void test_format_ts(void **state)
{
    char ts[NTF_TS_MAX];
    ntf_format_ts(0, ts);
    assert_string_equal(ts, "1970-01-01T00:00:00.000Z");
    ntf_format_ts(1700000000999999, ts);
    assert_string_equal(ts, "2023-11-14T22:13:20.999Z");
    ntf_format_ts(-1000, ts);                   /* 1 ms before the epoch */
    assert_string_equal(ts, "1969-12-31T23:59:59.999Z");
}

static void test_check(void **state)
{
    struct fixture f;
    fill(&f);
    assert_int_equal(ntf_alert_check(&f.a), VG_OK);
    f.a.alert_id = "";
    assert_int_equal(ntf_alert_check(&f.a), VG_ERR_INVALID);
    f.a.alert_id = "id\r\nX-Evil: 1";           /* would become an HTTP header */
    assert_int_equal(ntf_alert_check(&f.a), VG_ERR_INVALID);
    f.a.alert_id = "a1b2c3";
    f.h.camera_id = "cam.*";                    /* not one subject token */
    assert_int_equal(ntf_alert_check(&f.a), VG_ERR_INVALID);
    f.h.camera_id = "";
    assert_int_equal(ntf_alert_check(&f.a), VG_ERR_INVALID);
    f.a.header = NULL;
    assert_int_equal(ntf_alert_check(&f.a), VG_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields),       cmocka_unit_test(test_optional_fields),
        cmocka_unit_test(test_invalid_utf8), cmocka_unit_test(test_format_ts),
        cmocka_unit_test(test_check),        cmocka_unit_test(test_identity_fields),
        cmocka_unit_test(test_identity_absent), cmocka_unit_test(test_profile_invalid_utf8),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
