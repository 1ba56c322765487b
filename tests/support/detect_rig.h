/* The detector chain as dispatch builds it, for cmocka tests: YAML text as a
 * temp file, vg_cfg_load, vg_detect_settings_load and, when asked, one
 * engine; a backend called directly on the rig's settings. Status checks
 * that print the status name and its detail. Header-only, like fixture.h. */
#ifndef VG_TEST_DETECT_RIG_H
#define VG_TEST_DETECT_RIG_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "detect/chain.h"
#include "detect/detector.h"

#define assert_status(expr, want)                                                            \
    do {                                                                                     \
        vg_status st_ = (expr);                                                              \
        if (st_ != (want))                                                                   \
            fail_msg("%s: %s, wanted %s: %s", #expr, vg_status_str(st_),                     \
                     vg_status_str(want), vg_err_detail());                                  \
    } while (0)
#define assert_vg_ok(expr) assert_status(expr, VG_OK)
#define assert_detail(text) assert_non_null(strstr(vg_err_detail(), text))

/* A configuration file, its settings and (want_engine) one engine. */
struct detect_rig {
    char path[64];
    struct vg_config *cfg;
    struct vg_detect_settings *s;
    struct vg_detect_engine *e;
};

/* The first failing step's status (config tests expect VG_ERR_CONFIG);
 * detect_rig_down() in every case. */
static inline vg_status detect_rig_up(struct detect_rig *r, const char *yaml, int want_engine)
{
    size_t len = strlen(yaml);
    memset(r, 0, sizeof(*r));
    snprintf(r->path, sizeof(r->path), "/tmp/vigil-rig-XXXXXX");
    int fd = mkstemp(r->path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, len), (ssize_t)len);
    close(fd);
    assert_non_null(r->cfg = malloc(sizeof(*r->cfg)));
    vg_status st = vg_cfg_load(r->cfg, r->path);
    if (st == VG_OK)
        st = vg_detect_settings_load(&r->s, r->cfg);
    if (st == VG_OK && want_engine)
        st = vg_detect_engine_create(&r->e, r->s);
    return st;
}

__attribute__((format(printf, 3, 4)))
static inline vg_status detect_rig_upf(struct detect_rig *r, int want_engine, const char *fmt,
                                       ...)
{
    char yaml[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(yaml, sizeof(yaml), fmt, ap);
    va_end(ap);
    assert_true(n >= 0 && (size_t)n < sizeof(yaml));
    return detect_rig_up(r, yaml, want_engine);
}

static inline void detect_rig_down(struct detect_rig *r)
{
    vg_detect_engine_destroy(r->e);
    vg_detect_settings_destroy(r->s);
    free(r->cfg);
    unlink(r->path);
}

/* Backend name called directly with its own state on the rig's settings and
 * first camera, as one dispatch worker would. */
static inline vg_status detect_rig_backend(struct detect_rig *r, const char *name,
                                           const struct vg_image *img, int want_faces,
                                           int64_t deadline_us, struct vg_detect_res *res)
{
    const struct vg_detector_backend *be = vg_detector_find(name);
    void *state = NULL;
    assert_non_null(be);
    assert_vg_ok(be->init(&state, vg_detect_settings_get(r->s, be), r->cfg));
    struct vg_detect_req req = {.img = img, .cam = &r->cfg->cameras[0],
                                .want_faces = want_faces, .deadline_us = deadline_us};
    memset(res, 0, sizeof(*res));
    vg_status st = be->detect(state, &req, res);
    be->cleanup(state);
    return st;
}

#endif
