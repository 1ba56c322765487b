/* Clip links: the `clips:` section (type, pre_roll_s, length_s and the
 * provider's own keys), the local link's format, and the cameras that do
 * not record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clip/clip.h"
#include "config.h"

#define DETECT_US 1700000000123456LL

static struct vg_config cfg;
static char path[64];

/* Load cfg from this YAML text, written to a file that stays until the next
 * load (sections are re-read from it when a provider opens). */
static vg_status load(const char *yaml)
{
    if (path[0])
        unlink(path);
    snprintf(path, sizeof(path), "/tmp/vigil-cliplinks-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    return vg_cfg_load(&cfg, path);
}

static const char cameras[] =
    "cameras:\n"
    "  - {id: porch, url: rtsp://cam/1}\n"
    "  - {id: yard, url: rtsp://cam/2, record: false}\n"
    "  - {id: gate, url: rtsp://cam/3, record: true}\n";

static void local_link_format(void **state)
{
    char yaml[1024], url[VG_CLIP_URL_MAX];
    struct vg_clip_provider *p = NULL;
    snprintf(yaml, sizeof(yaml), "%sconsole: {public_url: \"https://vigil.example.org/\"}\n"
             "clips: {pre_roll_s: 8, length_s: 45}\n", cameras);
    assert_int_equal(load(yaml), VG_OK);
    assert_int_equal(vg_clip_open(&p, &cfg), VG_OK);
    assert_string_equal(vg_clip_type(p), "local");
    assert_int_equal(vg_clip_common(p)->pre_roll_s, 8);
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&cfg, "porch"), DETECT_US, url, sizeof(url)),
                     VG_OK);
    assert_string_equal(url, "https://vigil.example.org/api/clips/porch.mp4"
                             "?t=1700000000123&pre=8&dur=45");
    /* too small a buffer: an error, never a cut link */
    char small[32];
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&cfg, "gate"), DETECT_US, small,
                                  sizeof(small)), VG_ERR_TOO_LARGE);
    vg_clip_close(p);
}

static void defaults_without_a_section(void **state)
{
    char url[VG_CLIP_URL_MAX];
    struct vg_clip_provider *p = NULL;
    assert_int_equal(load(cameras), VG_OK);
    assert_int_equal(vg_clip_open(&p, &cfg), VG_OK);
    assert_string_equal(vg_clip_type(p), "local");
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&cfg, "gate"), DETECT_US, url, sizeof(url)),
                     VG_OK);
    assert_string_equal(url, "http://127.0.0.1:8080/api/clips/gate.mp4?t=1700000000123&pre=5"
                             "&dur=30");
    vg_clip_close(p);
}

static void cameras_that_do_not_record(void **state)
{
    char yaml[1024], url[VG_CLIP_URL_MAX] = "keep";
    struct vg_clip_provider *p = NULL;
    assert_int_equal(load(cameras), VG_OK);
    assert_int_equal(vg_clip_open(&p, &cfg), VG_OK);
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&cfg, "yard"), DETECT_US, url, sizeof(url)),
                     VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "camera yard does not record"));
    vg_clip_close(p);

    /* recording off for all: only a camera with record: true has a clip */
    snprintf(yaml, sizeof(yaml), "%srecording: {enabled: false}\n", cameras);
    assert_int_equal(load(yaml), VG_OK);
    assert_int_equal(vg_clip_open(&p, &cfg), VG_OK);
    assert_false(vg_clip_camera_records(&cfg, vg_cfg_camera(&cfg, "porch")));
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&cfg, "porch"), DETECT_US, url, sizeof(url)),
                     VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "recording.enabled"));
    assert_int_equal(vg_clip_link(p, vg_cfg_camera(&cfg, "gate"), DETECT_US, url, sizeof(url)),
                     VG_OK);
    vg_clip_close(p);
}

static void bad_sections(void **state)
{
    static const struct {
        const char *yaml, *detail;
    } cases[] = {
        {"clips: {type: vhs}\n", "no such clip provider (known: local, kvs)"},
        {"clips: {pre_roll_s: 61}\n", "pre_roll_s"},
        {"clips: {length_s: 0}\n", "length_s"},
        {"clips: {length_s: 601}\n", "length_s"},
        {"clips: {expires_s: 600}\n", "unknown key \"clips.expires_s\""},   /* a kvs key */
        {"clips: {type: kvs, expires_s: 100}\n", "expires_s"},
        {"clips: {type: kvs, playback: live}\n", "playback"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(*cases); i++) {
        struct vg_clip_provider *p = NULL;
        assert_int_equal(load(cases[i].yaml), VG_OK);
        assert_int_equal(vg_clip_open(&p, &cfg), VG_ERR_CONFIG);
        if (!strstr(vg_err_detail(), cases[i].detail))
            fail_msg("%s: \"%s\" lacks \"%s\"", cases[i].yaml, vg_err_detail(),
                     cases[i].detail);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(local_link_format),
        cmocka_unit_test(defaults_without_a_section),
        cmocka_unit_test(cameras_that_do_not_record),
        cmocka_unit_test(bad_sections),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    if (path[0])
        unlink(path);
    return rc;
}
