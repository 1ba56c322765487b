/* bench.gating: how many paid-detector calls a simulated hour of vtest.avi
 * (looped) costs, with vigil's gated chain next to seed 004's fixed
 * sampling, and how many person events each finds.
 *
 *  - gated: the chain [motion, opencv, rekognition] at 5 fps: Rekognition is
 *    called for a frame the [motion, opencv] stages pass (a watched person)
 *    unless it was asked about the camera less than remote_interval_ms of
 *    video time before (then its verdict stands). The free stages are the
 *    real engine on one loop; the interval rule is applied here in video
 *    time, as the chain applies it (tested in integration.detect_deepstack),
 *    for 0 (every passed frame) and the default 3 s.
 *  - seed 004: 1 of every 30 frames at the source rate (vtest: 10 fps),
 *    every one sent to Rekognition, person or not.
 *  - events: 30 s de-duplication windows in which a call sees a person. No
 *    Rekognition here: on the frames each strategy would send, the opencv
 *    detector's whole-frame answer stands in for Rekognition's (so this
 *    compares the strategies, not the detectors).
 * One loop is simulated and scaled to an hour (the clip repeats exactly).
 * Prints figures; never fails on time. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip.h"
#include "config.h"
#include "detect/chain.h"
#include "timeutil.h"

#define SOURCE_FPS 10   /* vtest.avi */
#define CHAIN_FPS 5
#define SEED_EVERY 30
#define WINDOW_S 30

static void die(const char *what)
{
    fprintf(stderr, "bench.gating: %s: %s\n", what, vg_err_detail());
    exit(1);
}

static int has_person(const struct vg_chain_out *o)
{
    for (size_t i = 0; i < o->res.n; i++)
        if (o->res.labels[i].category == VG_CAT_PERSON)
            return 1;
    return 0;
}

static const char yaml[] =
    "cameras:\n"
    "  - id: demo\n"
    "    url: vtest.avi\n"
    "    detectors: [motion, opencv]\n"
    "    watch: [\"person > 0.6\"]\n"
    "  - id: whole\n"
    "    url: vtest.avi\n"
    "    detectors: [opencv]\n"
    "    watch: [\"person > 0.6\"]\n"
    "detectors:\n"
    "  opencv: { threads: 1 }\n";

struct rig {
    struct vg_config cfg;
    struct vg_detect_settings *s;
    struct vg_detect_engine *e;
};

static void rig_up(struct rig *r)
{
    char path[] = "/tmp/vigil-bench-gating-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0 || write(fd, yaml, sizeof(yaml) - 1) != (ssize_t)(sizeof(yaml) - 1))
        die("temp config");
    close(fd);
    if (vg_cfg_load(&r->cfg, path) != VG_OK || vg_detect_settings_load(&r->s, &r->cfg) != VG_OK ||
        vg_detect_engine_create(&r->e, r->s) != VG_OK)
        die("engine");
    unlink(path);
}

/* One pass of strategy over the clip: calls made and windows with a person.
 * interval_s: the remote stage's verdict reuse (gated only). */
static void run(struct rig *r, const struct clip *c, int step, int gated, double interval_s,
                int *calls, int *events, double *loop_s)
{
    struct vg_chain_out *o = malloc(sizeof(*o));
    int last_window = -1;
    double last_call = -1e9;
    *calls = *events = 0;
    for (int i = 0; i < c->n; i += step) {
        double t = (double)i / SOURCE_FPS;
        const struct vg_camera_cfg *cam = &r->cfg.cameras[gated ? 0 : 1];
        struct vg_image img = {c->rgb[i], c->w, c->h, c->jpeg[i], c->jpeg_len[i], 0};
        if (vg_detect_engine_run(r->e, cam, &img, &c->hint[i], 0, o) != VG_OK)
            die("chain");
        int paid = gated ? has_person(o) : 1; /* gated: only what the free stages pass */
        int window = (int)(t / WINDOW_S);
        if (paid && gated && t - last_call < interval_s)
            paid = 0;   /* the verdict of the last call stands: no call */
        else if (paid)
            last_call = t;
        *calls += paid;
        if (has_person(o) && window != last_window) {
            (*events)++;
            last_window = window;
        }
    }
    *loop_s = (double)c->n / SOURCE_FPS;
    free(o);
}

int main(void)
{
    static struct clip c;
    static struct rig r;
    int gated_calls, gated_events, seed_calls, seed_events, every_calls, every_events;
    double loop_s;
    if (clip_load_vtest(&c, "10", 0, CLIP_MAX_FRAMES) == 0 || !clip_motion_hints(&c))
        die("no frames from ffmpeg (vtest.avi: Debian package opencv-doc)");
    rig_up(&r);
    /* Motion hints are per source frame; the chain samples every 2nd (5 fps). */
    int64_t t0 = vg_mono_us();
    run(&r, &c, SOURCE_FPS / CHAIN_FPS, 1, 0, &every_calls, &every_events, &loop_s);
    double gated_s = (double)(vg_mono_us() - t0) / 1e6;
    run(&r, &c, SOURCE_FPS / CHAIN_FPS, 1, r.cfg.dispatch.remote_interval_ms / 1000.0,
        &gated_calls, &gated_events, &loop_s);
    run(&r, &c, SEED_EVERY, 0, 0, &seed_calls, &seed_events, &loop_s);
    double loops = 3600.0 / loop_s;
    printf("gating: vtest.avi %.1f s looped %.1f times = 1 simulated hour\n", loop_s, loops);
    printf("gating: chain [motion, opencv, rekognition] at %d fps, remote_interval_ms 0: "
           "%.0f Rekognition calls/hour (%d of %d sampled frames passed the free stages), "
           "%.0f person events\n", CHAIN_FPS, every_calls * loops, every_calls,
           c.n / (SOURCE_FPS / CHAIN_FPS), every_events * loops);
    printf("gating: the same with remote_interval_ms %d (default): %.0f Rekognition "
           "calls/hour, %.0f person events\n", r.cfg.dispatch.remote_interval_ms,
           gated_calls * loops, gated_events * loops);
    printf("gating: seed 004, 1 of %d frames at %d fps: %.0f Rekognition calls/hour, "
           "%.0f person events\n", SEED_EVERY, SOURCE_FPS, seed_calls * loops,
           seed_events * loops);
    printf("gating: ratio of calls, gated (default) / seed 004 = %.2f, gated without the "
           "interval / seed 004 = %.2f (vtest has people in nearly every frame, the worst case "
           "for a gate; on an empty scene the gate passes nothing and seed 004 still calls "
           "%.0f times an hour); the free stages cost %.1f ms per sampled frame here\n",
           (double)gated_calls / (seed_calls ? seed_calls : 1),
           (double)every_calls / (seed_calls ? seed_calls : 1), seed_calls * loops,
           1000 * gated_s / (c.n / (SOURCE_FPS / CHAIN_FPS)));
    vg_detect_engine_destroy(r.e);
    vg_detect_settings_destroy(r.s);
    clip_free(&c);
    return 0;
}
