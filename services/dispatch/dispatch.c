/* inference-dispatch: frames in, detections out. The NATS callback only
 * swaps each frame into its camera's latest-wins slot; worker threads run
 * the camera's detector chain off the NATS thread (analyse.c) and publish a
 * Detection for every frame they analysed. */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "disp.h"
#include "log.h"
#include "evidence.h"
#include "timeutil.h"

#define TAKE_WAIT_MS 200
#define PRUNE_EVERY_S 60

static int camera_index(const struct vg_config *cfg, const char *subject)
{
    const char *cam = strrchr(subject, '.');
    for (int i = 0; cam && i < cfg->n_cameras; i++)
        if (!strcmp(cfg->cameras[i].id, cam + 1))
            return i;
    return -1;
}

static void on_frame(void *ctx, const char *subject, const void *data, size_t len)
{
    struct disp *d = ctx;
    int cam = camera_index(d->cfg, subject);
    if (cam < 0) {
        vg_counter_inc(d->unknown_camera);
        VG_WARN("frame.unknown_camera", NULL, "%s: camera is not in the configuration; dropped",
                subject);
        return;
    }
    if (len > vg_bus_max_payload(vg_svc_bus(d->svc))) {
        vg_counter_inc(d->malformed);
        return;
    }
    if (disp_slots_put(d->slots, cam, data, len, vg_now_us()))
        vg_counter_inc(d->superseded);
}

static void *worker_main(void *arg)
{
    struct disp_worker *w = arg;
    struct disp_frame fr;
    vg_status st;
    while ((st = disp_slots_take(w->d->slots, TAKE_WAIT_MS, &fr)) != VG_ERR_STOPPED) {
        if (st != VG_OK)
            continue;
        disp_analyse(w, &fr);
        free(fr.data);
        disp_slots_done(w->d->slots, fr.camera);
    }
    return NULL;
}

static void register_metrics(struct disp *d)
{
    d->frames = vg_counter_get("vigil_dispatch_frames_total", "Frames analysed");
    d->malformed = vg_counter_get("vigil_dispatch_malformed_total",
                                  "Messages dropped because they could not be decoded");
    d->unknown_camera = vg_counter_get("vigil_dispatch_unknown_camera_total",
                                       "Frames from cameras not in the configuration");
    d->superseded = vg_counter_get_labeled("vigil_dispatch_frames_dropped_total",
                                           "reason=\"superseded\"",
                                           "Frames dropped without analysis");
    d->stale = vg_counter_get_labeled("vigil_dispatch_frames_dropped_total", "reason=\"stale\"",
                                      "Frames dropped without analysis");
    d->bad_image = vg_counter_get("vigil_dispatch_bad_image_total",
                                  "Frames whose JPEG was empty, corrupt or too large");
    d->detect_failed = vg_counter_get("vigil_dispatch_detect_failed_total",
                                      "Frames whose first detector stage failed");
    d->detections = vg_counter_get("vigil_dispatch_detections_total",
                                   "Detections published with at least one watched label");
    d->publish_failed = vg_counter_get("vigil_dispatch_publish_failed_total",
                                       "Detections or face crops that could not be published");
    d->faces_published = vg_counter_get("vigil_dispatch_faces_total", "Face crops published");
    d->latency = vg_histogram_get("vigil_dispatch_latency_seconds",
                                  "Frame capture to detection published");
    d->analyse_time = vg_histogram_get("vigil_dispatch_analyse_seconds",
                                       "Time to decode and run the detector chain on one frame");
}

/* Pixels are decoded only when something will look at them. */
static int chain_needs_pixels(const struct vg_config *cfg)
{
    for (int c = -1; c < cfg->n_cameras; c++) {
        const char(*chain)[VG_NAME_MAX];
        int n = vg_cfg_chain(cfg, c < 0 ? NULL : &cfg->cameras[c], &chain);
        for (int i = 0; i < n; i++) {
            const struct vg_detector_backend *be = vg_detector_find(chain[i]);
            if (be && (be->caps & VG_DETECT_PIXELS))
                return 1;
        }
    }
    return 0;
}

static vg_status start_workers(struct disp *d)
{
    for (int i = 0; i < d->n_workers; i++) {
        struct disp_worker *w = &d->workers[i];
        vg_status st;
        w->d = d;
        if ((st = vg_detect_engine_create(&w->engine, d->settings)) != VG_OK ||
            (st = vg_jpeg_create(&w->jpeg)) != VG_OK ||
            (d->faces_on && (st = vg_face_finder_create(&w->faces, NULL)) != VG_OK))
            return st;
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0)
            return vg_errf(VG_ERR_NOMEM, "dispatch: cannot start worker thread");
        w->started = 1;
    }
    return VG_OK;
}

static void stop_workers(struct disp *d)
{
    if (d->slots)
        disp_slots_close(d->slots);
    for (int i = 0; i < d->n_workers; i++) {
        struct disp_worker *w = &d->workers[i];
        if (w->started)
            pthread_join(w->thread, NULL);
        w->started = 0;
        vg_detect_engine_destroy(w->engine);
        vg_jpeg_destroy(w->jpeg);
        vg_face_finder_destroy(w->faces);
        w->engine = NULL, w->jpeg = NULL, w->faces = NULL;
    }
}

static vg_status disp_check(const struct vg_config *cfg)
{
    struct vg_detect_settings *s = NULL;
    vg_status st = vg_detect_settings_load(&s, cfg);
    vg_detect_settings_destroy(s);
    return st;
}

static void disp_free(struct disp *d)
{
    if (!d)
        return;
    stop_workers(d);
    disp_slots_destroy(d->slots);
    disp_evidence_close(d->evidence);
    vg_detect_settings_destroy(d->settings);
    free(d);
}

static vg_status disp_init(struct vg_svc *svc, void **state)
{
    const struct vg_config *cfg = vg_svc_config(svc);
    char subject[128];
    struct disp *d = calloc(1, sizeof(*d));
    vg_status st;
    if (!d)
        return VG_ERR_NOMEM;
    d->svc = svc;
    d->cfg = cfg;
    d->n_workers = cfg->dispatch.workers;
    d->faces_on = cfg->dispatch.faces == VG_FACES_ON ||
                  (cfg->dispatch.faces == VG_FACES_AUTO && strcmp(cfg->facematch.matcher, "none"));
    d->needs_pixels = d->faces_on || cfg->dispatch.snapshot_boxes || chain_needs_pixels(cfg);
    register_metrics(d);
    if ((st = vg_detect_settings_load(&d->settings, cfg)) != VG_OK ||
        (st = disp_slots_create(&d->slots, cfg->n_cameras)) != VG_OK ||
        (st = disp_evidence_open(&d->evidence, cfg)) != VG_OK ||
        (st = start_workers(d)) != VG_OK) {
        disp_free(d);
        return st;
    }
    vg_subject(subject, sizeof(subject), cfg->prefix, "frames", "*");
    if ((st = vg_bus_subscribe(vg_svc_bus(svc), subject, "dispatch", on_frame, d)) != VG_OK) {
        disp_free(d);   /* workers stop here, while the bus still exists */
        return st;
    }
    *state = d;
    return VG_OK;
}

/* The service's loop: prune now and then; on stop, let the workers finish
 * the frames they hold (they publish on the bus, which is drained after). */
static vg_status disp_run(struct vg_svc *svc, void *state)
{
    struct disp *d = state;
    int64_t next_prune = 0;
    do {
        if (vg_now_us() >= next_prune) {
            disp_evidence_prune(d->evidence);
            next_prune = vg_now_us() + (int64_t)PRUNE_EVERY_S * 1000000;
        }
    } while (!vg_svc_sleep_ms(svc, 1000));
    stop_workers(d);
    return VG_OK;
}

static void disp_fini(struct vg_svc *svc, void *state) { disp_free(state); }

const struct vg_service dispatch_service = {
    .name = "dispatch",
    .default_http_addr = "127.0.0.1:9102",
    .check = disp_check,
    .init = disp_init,
    .run = disp_run,
    .fini = disp_fini,
};
