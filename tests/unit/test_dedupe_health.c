/* Camera health as one replica decides it, on a made-up clock: a stalled
 * stream, a camera that goes away and returns, one that flaps, a blip
 * shorter than the hold-down, silence, a restarted capture; and the
 * dedupe.health configuration keys. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "config.h"
#include "health_state.h"
#include "vigil/v1/vigil.pb-c.h"

#define S 1000000LL
#define T0 (1000 * S)           /* the monotonic clock is never 0 */
#define ON VIGIL__V1__CAMERA_STATUS__STATE__ONLINE
#define OFF VIGIL__V1__CAMERA_STATUS__STATE__OFFLINE
#define RECON VIGIL__V1__CAMERA_STATUS__STATE__RECONNECTING

static const struct dd_cam_limits lim = {.offline_after_us = 3 * S, .online_after_us = 2 * S};

/* A camera and what it was alerted about, in order ("-" offline, "+"
 * online), as the service would after each tick. */
struct sim {
    struct dd_cam_state c;
    char alerts[16];
    int64_t at[16];
    int n;
    uint64_t frames;
};

static void status(struct sim *m, int state, int64_t t, int progress)
{
    if (progress)
        m->frames += 10;
    dd_cam_status(&m->c, &lim, state, m->frames, 1700000000 * S + t, T0 + t);
}

static void tick(struct sim *m, int64_t t)
{
    enum dd_cam_want w = dd_cam_decide(&m->c, &lim, T0 + t);
    if (w == DD_CAM_WANT_NOTHING)
        return;
    if (w == DD_CAM_WANT_ONLINE && m->c.reported != DD_CAM_OFFLINE) {
        m->c.reported = DD_CAM_ONLINE;      /* nothing to be back from */
        return;
    }
    m->alerts[m->n] = w == DD_CAM_WANT_OFFLINE ? '-' : '+';
    m->at[m->n++] = t;
    m->c.reported = w == DD_CAM_WANT_OFFLINE ? DD_CAM_OFFLINE : DD_CAM_ONLINE;
}

/* Every 0.5 s from..to: a status from f(t) (or none when it returns 0),
 * and a tick every whole second. */
typedef int (*plan_fn)(int64_t t, int *state, int *progress);

static void play(struct sim *m, plan_fn f, int64_t to)
{
    for (int64_t t = 0; t <= to; t += S / 2) {
        int state = 0, progress = 0;
        if (f(t, &state, &progress))
            status(m, state, t, progress);
        if (t % S == 0)
            tick(m, t);
    }
}

static int stalls(int64_t t, int *state, int *progress)
{
    *state = ON;
    *progress = t < 6 * S || t >= 14 * S;   /* frames stop from 6 s to 14 s */
    return 1;
}

static void stalled_stream_alerts_once_each_way(void **state)
{
    struct sim m = {0};
    play(&m, stalls, 22 * S);
    assert_int_equal(m.n, 2);
    assert_memory_equal(m.alerts, "-+", 2);
    /* Last progress at 5.5 s: offline once 3 s passed, not before. */
    assert_true(m.at[0] >= 5 * S + S / 2 + lim.offline_after_us && m.at[0] <= 10 * S);
    /* Progress again at 14 s: online 2 s later. */
    assert_true(m.at[1] >= 16 * S && m.at[1] <= 17 * S);
}

static int goes_away(int64_t t, int *state, int *progress)
{
    if (t >= 5 * S && t < 13 * S) {
        *state = OFF;
        return t == 5 * S;                  /* one OFFLINE, then silence */
    }
    *state = ON;
    *progress = 1;
    return 1;
}

static void camera_that_goes_away_and_returns(void **state)
{
    struct sim m = {0};
    play(&m, goes_away, 22 * S);
    assert_int_equal(m.n, 2);
    assert_memory_equal(m.alerts, "-+", 2);
    assert_true(m.at[0] >= 8 * S && m.at[0] <= 9 * S);
    assert_true(m.at[1] >= 15 * S && m.at[1] <= 16 * S);
}

static int flaps(int64_t t, int *state, int *progress)
{
    int flapping = t >= 4 * S && t < 14 * S;
    *state = flapping && (t / S) % 2 == 0 ? OFF : ON;
    *progress = *state == ON;
    return 1;
}

static void flapping_camera_alerts_once_each_way(void **state)
{
    struct sim m = {0};
    play(&m, flaps, 24 * S);
    assert_int_equal(m.n, 2);
    assert_memory_equal(m.alerts, "-+", 2);
    /* Offline once the episode (from 4 s) lasted 3 s; online only once the
     * camera stayed up for 2 s: its last up stretch began at 13 s. */
    assert_true(m.at[0] >= 7 * S && m.at[0] <= 9 * S);
    assert_true(m.at[1] >= 15 * S);
}

static int blips(int64_t t, int *state, int *progress)
{
    *state = t >= 4 * S && t < 5 * S ? RECON : ON;
    *progress = *state == ON;
    return 1;
}

static void blip_shorter_than_the_hold_down_is_no_alert(void **state)
{
    struct sim m = {0};
    play(&m, blips, 20 * S);
    assert_int_equal(m.n, 0);
    assert_int_equal(m.c.reported, DD_CAM_ONLINE);  /* adopted, never alerted */
}

static int falls_silent(int64_t t, int *state, int *progress)
{
    *state = ON;
    *progress = 1;
    return t < 3 * S;                       /* capture killed at 3 s */
}

static void silence_counts_as_offline(void **state)
{
    struct sim m = {0};
    play(&m, falls_silent, 10 * S);
    assert_string_equal(dd_cam_reason(&m.c, &lim, T0 + 10 * S), "no status");
    assert_int_equal(m.n, 1);
    assert_int_equal(m.alerts[0], '-');
    assert_true(m.at[0] >= 5 * S + S / 2 && m.at[0] <= 7 * S);
}

static void restarted_capture_counts_as_progress(void **state)
{
    struct dd_cam_state c = {0};
    dd_cam_status(&c, &lim, ON, 5000, 1, T0);
    dd_cam_status(&c, &lim, ON, 12, 2, T0 + 2 * S);     /* counters start again */
    dd_cam_status(&c, &lim, ON, 40, 3, T0 + 4 * S);
    assert_int_equal(dd_cam_decide(&c, &lim, T0 + 6 * S), DD_CAM_WANT_ONLINE);
    c.reported = DD_CAM_ONLINE;
    assert_int_equal(dd_cam_decide(&c, &lim, T0 + 6 * S), DD_CAM_WANT_NOTHING);
    /* The same count twice is no progress: stalled 3 s after 40 arrived. */
    dd_cam_status(&c, &lim, ON, 40, 4, T0 + 6 * S);
    assert_int_equal(dd_cam_decide(&c, &lim, T0 + 6 * S + S / 2), DD_CAM_WANT_NOTHING);
    assert_int_equal(dd_cam_decide(&c, &lim, T0 + 7 * S), DD_CAM_WANT_OFFLINE);
    assert_int_equal(c.down_ts, 3);         /* the episode is named by the last progress */
    assert_string_equal(dd_cam_reason(&c, &lim, T0 + 7 * S), "no frames");
}

static void unheard_camera_is_not_judged(void **state)
{
    struct dd_cam_state c = {0};
    assert_int_equal(dd_cam_decide(&c, &lim, T0 + 3600 * S), DD_CAM_WANT_NOTHING);
}

static vg_status parse(struct vg_config *cfg, const char *text)
{
    vg_cfg_defaults(cfg);
    return vg_cfg_parse(cfg, "test.yaml", text, strlen(text));
}

static void configuration_keys(void **state)
{
    static struct vg_config cfg;
    assert_int_equal(parse(&cfg, ""), VG_OK);
    assert_int_equal(cfg.dedupe.health.enabled, 1);
    assert_int_equal(cfg.dedupe.health.offline_after_s, 30);
    assert_int_equal(cfg.dedupe.health.online_after_s, 10);
    assert_int_equal(parse(&cfg, "dedupe:\n  health:\n    enabled: false\n"
                                 "    offline_after_s: 60\n    online_after_s: 5\n"),
                     VG_OK);
    assert_int_equal(cfg.dedupe.health.enabled, 0);
    assert_int_equal(cfg.dedupe.health.offline_after_s, 60);
    assert_int_equal(cfg.dedupe.health.online_after_s, 5);
    assert_int_not_equal(parse(&cfg, "dedupe:\n  health:\n    offline_after_s: 0\n"), VG_OK);
    assert_non_null(strstr(vg_err_detail(), "test.yaml:3: dedupe.health.offline_after_s = 0 "
                                            "is out of range"));
    assert_int_not_equal(parse(&cfg, "dedupe:\n  health:\n    offline_s: 3\n"), VG_OK);
    assert_non_null(strstr(vg_err_detail(), "unknown key \"dedupe.health.offline_s\""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(stalled_stream_alerts_once_each_way),
        cmocka_unit_test(camera_that_goes_away_and_returns),
        cmocka_unit_test(flapping_camera_alerts_once_each_way),
        cmocka_unit_test(blip_shorter_than_the_hold_down_is_no_alert),
        cmocka_unit_test(silence_counts_as_offline),
        cmocka_unit_test(restarted_capture_counts_as_progress),
        cmocka_unit_test(unheard_camera_is_not_judged),
        cmocka_unit_test(configuration_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
