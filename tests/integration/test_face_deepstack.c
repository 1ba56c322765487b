/* The "deepstack" face matcher against tests/fakes/fake_deepstack.py (its
 * face recognition API), through the seam: a YAML file, vg_cfg_load,
 * vg_face_matcher_open and the matcher's ops table. Enrolment in one
 * register call, listing, recognition (a person, "unknown", no face, below
 * min_confidence), removal, the API key, and every way a server fails
 * (CodeProject.AI's success false with HTTP 200, 400, 403, 404, 500,
 * garbage, a huge answer, a hang, nobody listening).
 *
 * The images are not pictures: the fake only checks the JPEG signature and
 * recognises an image whose SHA-256 was registered, so each "photo" is
 * FF D8 FF plus a tag. The marker NOFACE makes the fake find no face. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "config.h"
#include "detect_rig.h"     /* assert_status, assert_vg_ok, assert_detail */
#include "face/matcher.h"
#include "fake_aws_ctl.h"   /* fake(): the control-API helper, any fake's port */
#include "fixture.h"
#include "opts.h"
#include "timeutil.h"

static struct {
    pid_t pid;
    int port;
} g;

struct rig {
    char path[64];
    struct vg_config *cfg;
    struct vg_face_matcher *m;
};

#define IMG(tag) "\xff\xd8\xff\xe0" tag "\xff\xd9"
static const char alice1[] = IMG("alice-1"), alice2[] = IMG("alice-2"),
                  alice3[] = IMG("alice-3"), bob1[] = IMG("bob-1"),
                  stranger[] = IMG("stranger"), faceless[] = IMG("NOFACE wall");

static struct vg_face_image image(const char *bytes, size_t size)
{
    return (struct vg_face_image){.jpeg = (const uint8_t *)bytes, .jpeg_len = size - 1};
}
#define IMAGE(a) image(a, sizeof(a))

/* ---- fixtures ------------------------------------------------------------- */

static void clear_env(void)
{
    unsetenv("VIGIL_MATCHER_DEEPSTACK_URL");
    unsetenv("VIGIL_MATCHER_DEEPSTACK_API_KEY");
    unsetenv("VIGIL_MATCHER_DEEPSTACK_API_KEY_FILE");
}

static int group_setup(void **state)
{
    clear_env();
    g.pid = fixture_fake_start("fake_deepstack.py", NULL, &g.port);
    if (g.port == 0)
        return -1;
    fake_ctl_init(g.port);
    return 0;
}

static int group_teardown(void **state)
{
    fixture_stop(g.pid);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    clear_env();
    return 0;
}

/* matchers.deepstack with url (the fake) plus keys; the matcher opened. */
static vg_status rig_up(struct rig *r, const char *keys)
{
    char yaml[2048];
    int n = snprintf(yaml, sizeof(yaml),
                     "matchers:\n  deepstack:\n    url: http://127.0.0.1:%d/\n%s", g.port, keys);
    assert_true(n > 0 && (size_t)n < sizeof(yaml));
    memset(r, 0, sizeof(*r));
    snprintf(r->path, sizeof(r->path), "/tmp/vigil-face-XXXXXX");
    int fd = mkstemp(r->path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, (size_t)n), n);
    close(fd);
    assert_non_null(r->cfg = malloc(sizeof(*r->cfg)));
    vg_status st = vg_cfg_load(r->cfg, r->path);
    if (st != VG_OK)
        return st;
    /* Chosen in the struct: vg_cfg_load may still know only "none". */
    snprintf(r->cfg->facematch.matcher, sizeof(r->cfg->facematch.matcher), "deepstack");
    struct vg_face_env env = {.cfg = r->cfg};
    return vg_face_matcher_open(&r->m, &env);
}

static void rig_down(struct rig *r)
{
    vg_face_matcher_close(r->m);
    free(r->cfg);
    unlink(r->path);
}

static vg_status match(struct rig *r, struct vg_face_image img, struct vg_face_match *m)
{
    memset(m, 0x5a, sizeof(*m));
    return r->m->ops->match(r->m->state, &img, m);
}

static vg_status enrol(struct rig *r, const char *person, const struct vg_face_image *imgs,
                       size_t n)
{
    return r->m->ops->enrol(r->m->state, person, imgs, n);
}

static vg_status list(struct rig *r, char *names, size_t cap)
{
    struct vg_face_entry *e = NULL;
    size_t n = 0, used = 0;
    vg_status st = r->m->ops->list(r->m->state, &e, &n);
    names[0] = '\0';
    for (size_t i = 0; st == VG_OK && i < n; i++) {
        assert_string_equal(e[i].face_id, "");
        used += (size_t)snprintf(names + used, cap - used, "%s%s", i ? "," : "",
                                 e[i].person_id);
        assert_true(used < cap);
    }
    free(e);
    return st;
}

static void script(const char *json) { fake_do("POST", "/_fake/next", json); }

static size_t count(const char *endpoint) { return fake_count_by("endpoint", endpoint); }

static int near(double a, double b) { return a > b - 1e-4 && a < b + 1e-4; }

/* The text value of a form field of the last request to endpoint; "" if absent. */
static void last_field(const char *endpoint, const char *name, char *out, size_t cap)
{
    char path[128];
    snprintf(path, sizeof(path), "/_fake/requests?endpoint=%s", endpoint);
    json_t *reqs = fake("GET", path, NULL);
    json_t *f = json_object_get(json_object_get(json_array_get(reqs, json_array_size(reqs) - 1),
                                                "fields"), name);
    const char *v = json_string_value(json_object_get(f, "value"));
    snprintf(out, cap, "%s", v ? v : "");
    json_decref(reqs);
}

/* ---- tests ------------------------------------------------------------------ */

static void enrol_list_match_remove(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char names[256], v[64];
    const struct vg_face_image two[] = {IMAGE(alice1), IMAGE(alice2)};
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    assert_true(r.m->ops->caps & VG_FACE_CAP_REMOTE);

    assert_vg_ok(enrol(&r, "alice", two, 2));
    /* One register call with both photos as image1, image2 (file uploads). */
    assert_int_equal(count("register"), 1);
    json_t *reqs = fake("GET", "/_fake/requests?endpoint=register", NULL);
    json_t *fields = json_object_get(json_array_get(reqs, 0), "fields");
    assert_string_equal(json_string_value(json_object_get(json_object_get(fields, "userid"),
                                                          "value")), "alice");
    for (int i = 1; i <= 2; i++) {
        char name[16];
        snprintf(name, sizeof(name), "image%d", i);
        json_t *img = json_object_get(fields, name);
        assert_non_null(img);
        assert_true(json_is_string(json_object_get(img, "filename")));
        assert_string_equal(json_string_value(json_object_get(img, "content_type")),
                            "image/jpeg");
    }
    assert_null(json_object_get(fields, "api_key"));
    json_decref(reqs);
    json_t *faces = fake("GET", "/_fake/faces", NULL);
    assert_int_equal(json_integer_value(json_object_get(json_object_get(faces, "alice"),
                                                        "images")), 2);
    json_decref(faces);

    assert_vg_ok(list(&r, names, sizeof(names)));
    assert_string_equal(names, "alice");

    assert_vg_ok(match(&r, IMAGE(alice2), &m));
    assert_int_equal(m.matched, 1);
    assert_string_equal(m.person_id, "alice");
    assert_string_equal(m.face_id, "");
    assert_true(near(m.similarity, 0.9));
    last_field("recognize", "min_confidence", v, sizeof(v));
    assert_string_equal(v, "0.6700");

    /* Somebody else ("unknown") and a crop without a face: misses. */
    assert_vg_ok(match(&r, IMAGE(stranger), &m));
    assert_int_equal(m.matched, 0);
    assert_true(near(m.similarity, 0));
    assert_vg_ok(match(&r, IMAGE(faceless), &m));
    assert_int_equal(m.matched, 0);

    assert_vg_ok(r.m->ops->remove(r.m->state, "alice"));
    last_field("delete", "userid", v, sizeof(v));
    assert_string_equal(v, "alice");
    assert_vg_ok(list(&r, names, sizeof(names)));
    assert_string_equal(names, "");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);
    /* Not enrolled: said without a delete call (the servers would answer success). */
    assert_status(r.m->ops->remove(r.m->state, "alice"), VG_ERR_NOT_FOUND);
    assert_detail("alice is not enrolled");
    assert_int_equal(count("delete"), 1);
    rig_down(&r);
}

static void enrol_replaces(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char names[256];
    const struct vg_face_image a12[] = {IMAGE(alice1), IMAGE(alice2)};
    const struct vg_face_image a3[] = {IMAGE(alice3)};
    const struct vg_face_image b1[] = {IMAGE(bob1)};
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    assert_vg_ok(enrol(&r, "alice", a12, 2));
    assert_vg_ok(enrol(&r, "bob", b1, 1));
    assert_vg_ok(enrol(&r, "alice", a3, 1));
    assert_vg_ok(list(&r, names, sizeof(names)));
    assert_string_equal(names, "alice,bob");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);
    assert_vg_ok(match(&r, IMAGE(alice3), &m));
    assert_string_equal(m.person_id, "alice");
    assert_vg_ok(match(&r, IMAGE(bob1), &m));
    assert_string_equal(m.person_id, "bob");
    rig_down(&r);
}

static void min_confidence(void **state)
{
    struct rig r;
    struct vg_face_match m;
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    fake_do("POST", "/_fake/config", "{\"match_confidence\":0.6}");
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    assert_vg_ok(enrol(&r, "alice", a1, 1));
    assert_vg_ok(match(&r, IMAGE(alice1), &m));    /* 0.6 < 0.67: the server says unknown */
    assert_int_equal(m.matched, 0);
    rig_down(&r);

    assert_vg_ok(rig_up(&r, "    min_confidence: 0.5\n"));
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 1);
    assert_true(near(m.similarity, 0.6));

    /* A server that names somebody below the threshold anyway: unknown here;
     * the most confident prediction decides. */
    script("{\"endpoint\":\"recognize\",\"predictions\":[{\"userid\":\"bob\",\"confidence\":0.4,"
           "\"x_min\":0,\"y_min\":0,\"x_max\":5,\"y_max\":5}]}");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);
    assert_true(near(m.similarity, 0.4));
    script("{\"endpoint\":\"recognize\",\"predictions\":["
           "{\"userid\":\"bob\",\"confidence\":0.7},{\"userid\":\"alice\",\"confidence\":0.95},"
           "{\"userid\":\"unknown\",\"confidence\":0}]}");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_string_equal(m.person_id, "alice");
    assert_true(near(m.similarity, 0.95));
    rig_down(&r);
}

static void bad_input(void **state)
{
    struct rig r;
    char long_name[VG_FACE_ID_MAX + 1];
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    const struct vg_face_image with_faceless[] = {IMAGE(alice2), IMAGE(faceless)};
    struct vg_face_image empty = {0};
    struct vg_face_match m;
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    assert_status(enrol(&r, "unknown", a1, 1), VG_ERR_INVALID);
    assert_detail("\"unknown\"");
    assert_status(enrol(&r, "", a1, 1), VG_ERR_INVALID);
    assert_status(enrol(&r, "tab\there", a1, 1), VG_ERR_INVALID);
    memset(long_name, 'a', VG_FACE_ID_MAX);
    long_name[VG_FACE_ID_MAX] = '\0';
    assert_status(enrol(&r, long_name, a1, 1), VG_ERR_INVALID);
    assert_status(enrol(&r, "alice", a1, 0), VG_ERR_INVALID);
    assert_status(enrol(&r, "alice", &empty, 1), VG_ERR_INVALID);
    assert_status(match(&r, empty, &m), VG_ERR_INVALID);
    assert_int_equal(count("register") + count("recognize"), 0);
    assert_vg_ok(enrol(&r, "Alice Smith", a1, 1));  /* DeepStack takes any text */

    /* The server refuses a faceless photo (DeepStack: 400): the earlier
     * enrolment stays. */
    assert_status(enrol(&r, "Alice Smith", with_faceless, 2), VG_ERR_INVALID);
    assert_detail("No face found in image image2");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_string_equal(m.person_id, "Alice Smith");
    /* CodeProject.AI says the same with HTTP 200 and success false. */
    fake_do("POST", "/_fake/config", "{\"mode\":\"codeproject\"}");
    assert_status(enrol(&r, "Alice Smith", with_faceless, 2), VG_ERR_HTTP);
    assert_detail("the server failed: No face found in image image2");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_string_equal(m.person_id, "Alice Smith");
    rig_down(&r);
}

static void api_key(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char names[64];
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    fake_do("POST", "/_fake/config", "{\"api_key\":\"s3cret\"}");
    assert_vg_ok(rig_up(&r, "    api_key: wrong\n"));
    assert_status(enrol(&r, "alice", a1, 1), VG_ERR_AUTH);
    assert_detail("HTTP 403");
    assert_detail("Incorrect api key");
    assert_detail("matchers.deepstack.api_key");
    assert_null(strstr(vg_err_detail(), "wrong"));
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_AUTH);
    assert_status(list(&r, names, sizeof(names)), VG_ERR_AUTH);
    assert_status(r.m->ops->remove(r.m->state, "alice"), VG_ERR_AUTH);
    char text[128] = "";
    for (const struct vg_opt *o = r.m->ops->opts; o->key; o++)
        if (!strcmp(o->key, "api_key"))
            vg_opts_format(o, r.m->settings, text, sizeof(text));
    assert_string_equal(text, "api_key=***");
    rig_down(&r);

    setenv("VIGIL_MATCHER_DEEPSTACK_API_KEY", "s3cret", 1);
    assert_vg_ok(rig_up(&r, "    api_key: wrong\n"));
    assert_vg_ok(enrol(&r, "alice", a1, 1));
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_string_equal(m.person_id, "alice");
    assert_vg_ok(list(&r, names, sizeof(names)));
    assert_vg_ok(r.m->ops->remove(r.m->state, "alice"));
    rig_down(&r);
}

static void server_errors(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char names[64];
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    /* CodeProject.AI: HTTP 200, success false. */
    script("{\"endpoint\":\"recognize\",\"success\":false,"
           "\"error\":\"Unable to load the face model\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_HTTP);
    assert_detail("the server failed: Unable to load the face model");
    script("{\"endpoint\":\"recognize\",\"status\":400,\"error\":\"Invalid image\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_INVALID);
    assert_detail("HTTP 400: Invalid image");
    script("{\"endpoint\":\"recognize\",\"status\":500,"
           "\"body\":\"<html>Internal\\nServer Error</html>\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_UNAVAILABLE);
    assert_detail("/v1/vision/face/recognize: HTTP 500: <html>Internal Server Error</html>");
    script("{\"endpoint\":\"recognize\",\"status\":404,\"body\":\"\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_UNAVAILABLE);
    assert_detail("face recognition module enabled");
    script("{\"endpoint\":\"register\",\"status\":500,\"error\":\"disk full\"}");
    assert_status(enrol(&r, "alice", a1, 1), VG_ERR_UNAVAILABLE);
    assert_detail("disk full");
    script("{\"endpoint\":\"list\",\"success\":false,\"error\":\"database locked\"}");
    assert_status(list(&r, names, sizeof(names)), VG_ERR_HTTP);
    assert_detail("database locked");
    /* remove: the list fails, so nothing is deleted and it is not NOT_FOUND. */
    script("{\"endpoint\":\"list\",\"status\":500}");
    assert_status(r.m->ops->remove(r.m->state, "alice"), VG_ERR_UNAVAILABLE);
    assert_int_equal(count("delete"), 0);
    assert_vg_ok(enrol(&r, "alice", a1, 1));
    script("{\"endpoint\":\"delete\",\"success\":false,\"error\":\"busy\"}");
    assert_status(r.m->ops->remove(r.m->state, "alice"), VG_ERR_HTTP);
    assert_detail("busy");
    rig_down(&r);
}

static void garbage_and_huge_answers(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char names[64];
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    script("{\"endpoint\":\"recognize\",\"body\":\"{\\\"success\\\": tru\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_DECODE);
    assert_detail("not a JSON object");
    script("{\"endpoint\":\"recognize\",\"body\":\"\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_DECODE);
    script("{\"endpoint\":\"recognize\",\"body\":\"[1,2]\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_DECODE);
    script("{\"endpoint\":\"recognize\","
           "\"body\":\"{\\\"success\\\":true,\\\"predictions\\\":\\\"alice\\\"}\"}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_DECODE);
    assert_detail("predictions is not an array");
    script("{\"endpoint\":\"recognize\",\"predictions\":[{\"confidence\":0.9}]}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_DECODE);
    assert_detail("prediction 0 needs a userid");
    script("{\"endpoint\":\"recognize\",\"predictions\":[{\"userid\":\"alice\","
           "\"confidence\":\"high\"}]}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_DECODE);
    script("{\"endpoint\":\"recognize\",\"huge_bytes\":3000000}");
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_TOO_LARGE);
    assert_detail("larger than 1048576 bytes");
    script("{\"endpoint\":\"list\",\"body\":\"{\\\"success\\\":true,\\\"faces\\\":{}}\"}");
    assert_status(list(&r, names, sizeof(names)), VG_ERR_DECODE);
    assert_detail("faces is not an array");
    script("{\"endpoint\":\"list\","
           "\"body\":\"{\\\"success\\\":true,\\\"faces\\\":[\\\"a\\\",3]}\"}");
    assert_status(list(&r, names, sizeof(names)), VG_ERR_DECODE);
    assert_detail("faces[1] is not a string");
    script("{\"endpoint\":\"list\",\"body\":\"{\\\"success\\\":true}\"}");
    assert_status(list(&r, names, sizeof(names)), VG_ERR_DECODE);
    assert_detail("faces is missing");
    /* No predictions at all is nobody; and it still works after all that. */
    script("{\"endpoint\":\"recognize\",\"body\":\"{\\\"success\\\":true}\"}");
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);
    assert_vg_ok(match(&r, IMAGE(alice1), &m));
    assert_int_equal(m.matched, 0);
    rig_down(&r);
}

static void hang_and_nobody_listening(void **state)
{
    struct rig r;
    struct vg_face_match m;
    char url[64];
    assert_vg_ok(rig_up(&r, "    timeout_ms: 300\n"));
    script("{\"endpoint\":\"recognize\",\"delay_ms\":3000}");
    int64_t t0 = vg_mono_us();
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_TIMEOUT);
    assert_true((vg_mono_us() - t0) / 1000 < 1500);
    assert_detail("no answer within 300 ms");
    rig_down(&r);

    /* The environment's url overrides the file's. */
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", fixture_free_port());
    setenv("VIGIL_MATCHER_DEEPSTACK_URL", url, 1);
    vg_status st = rig_up(&r, "    timeout_ms: 1000\n");
    unsetenv("VIGIL_MATCHER_DEEPSTACK_URL");
    assert_vg_ok(st);
    assert_status(match(&r, IMAGE(alice1), &m), VG_ERR_UNAVAILABLE);
    assert_detail(url);
    rig_down(&r);
}

struct worker {
    struct rig *r;
    int ok;
};

static void *match_many(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < 10; i++) {
        struct vg_face_match m = {0};
        struct vg_face_image img = i % 2 ? IMAGE(stranger) : IMAGE(alice1);
        if (w->r->m->ops->match(w->r->m->state, &img, &m) == VG_OK &&
            m.matched == !(i % 2) && (!m.matched || !strcmp(m.person_id, "alice")))
            w->ok++;
    }
    return NULL;
}

/* Several threads at once: each call has a curl handle of its own. */
static void concurrent_matches(void **state)
{
    struct rig r;
    pthread_t t[4];
    struct worker w[4];
    const struct vg_face_image a1[] = {IMAGE(alice1)};
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    assert_vg_ok(enrol(&r, "alice", a1, 1));
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){.r = &r};
        assert_int_equal(pthread_create(&t[i], NULL, match_many, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].ok, 10);
    }
    assert_int_equal(count("recognize"), 40);
    rig_down(&r);
}

/* A listed name that is no vigil id is left out, not truncated. */
static void odd_names_listed(void **state)
{
    struct rig r;
    char names[128];
    assert_vg_ok(rig_up(&r, "    timeout_ms: 3000\n"));
    script("{\"endpoint\":\"list\",\"body\":\"{\\\"success\\\":true,\\\"faces\\\":"
           "[\\\"alice\\\",\\\"\\\",\\\""
           "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
           "\\\",\\\"bob\\\"]}\"}");
    assert_vg_ok(list(&r, names, sizeof(names)));
    assert_string_equal(names, "alice,bob");
    rig_down(&r);
}

static void config_checked(void **state)
{
    struct rig r;
    assert_status(rig_up(&r, "    min_confidence: 67\n"), VG_ERR_CONFIG);
    assert_detail("matchers.deepstack.min_confidence");
    rig_down(&r);
    assert_status(rig_up(&r, "    timeout_ms: 5\n"), VG_ERR_CONFIG);
    rig_down(&r);
    setenv("VIGIL_MATCHER_DEEPSTACK_URL", "ftp://example.com", 1);
    assert_status(rig_up(&r, "    timeout_ms: 3000\n"), VG_ERR_CONFIG);
    assert_detail("matchers.deepstack.url");
    assert_detail("http://");
    unsetenv("VIGIL_MATCHER_DEEPSTACK_URL");
    rig_down(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(enrol_list_match_remove, reset),
        cmocka_unit_test_setup(enrol_replaces, reset),
        cmocka_unit_test_setup(min_confidence, reset),
        cmocka_unit_test_setup(bad_input, reset),
        cmocka_unit_test_setup(api_key, reset),
        cmocka_unit_test_setup(server_errors, reset),
        cmocka_unit_test_setup(garbage_and_huge_answers, reset),
        cmocka_unit_test_setup(hang_and_nobody_listening, reset),
        cmocka_unit_test_setup(concurrent_matches, reset),
        cmocka_unit_test_setup(odd_names_listed, reset),
        cmocka_unit_test_setup(config_checked, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
