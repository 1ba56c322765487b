/* inference-dispatch: frames in, detections out. Runs the configured
 * detector on each frame, applies the camera's watch list, stores a
 * snapshot for frames with watched labels and publishes a Detection for
 * every analysed frame. */
#include "dispatch.h"

#include <stdlib.h>
#include <string.h>

#include "detect/detector.h"
#include "log.h"
#include "metrics.h"
#include "snapshot.h"
#include "timeutil.h"
#include "watch.h"

#define MAX_LABELS 64

struct disp {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct vg_detector *detector;
    struct vg_counter *frames, *malformed, *unknown_camera, *detections, *publish_failed,
        *snapshot_failed;
    struct vg_histogram *latency;
};

static void to_box(Vigil__V1__Box *b, const struct vg_label *l)
{
    vigil__v1__box__init(b);
    b->x = l->x;
    b->y = l->y;
    b->w = l->w;
    b->h = l->h;
}

static void store_snapshot(struct disp *d, const Vigil__V1__Frame *f, char *url, size_t cap)
{
    const Vigil__V1__Header *h = f->header;
    if (!d->cfg->dispatch.snapshot_dir[0])
        return;
    if (disp_snapshot_store(d->cfg->dispatch.snapshot_dir, h->camera_id, h->capture_ts_us,
                            h->trace_id, f->jpeg.data, f->jpeg.len, url, cap) != VG_OK) {
        vg_counter_inc(d->snapshot_failed);
        VG_WARN("snapshot.failed", h->camera_id, "%s", vg_err_detail());
    }
}

static void publish_detection(struct disp *d, const Vigil__V1__Frame *f,
                              const struct vg_label *labels, size_t n, size_t raw)
{
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Detection det = VIGIL__V1__DETECTION__INIT;
    Vigil__V1__Label lab[MAX_LABELS];
    Vigil__V1__Label *labp[MAX_LABELS];
    Vigil__V1__Box box[MAX_LABELS];
    char url[2100] = "", subject[256];
    const char *cam = f->header->camera_id;

    for (size_t i = 0; i < n; i++) {
        vigil__v1__label__init(&lab[i]);
        lab[i].name = (char *)labels[i].name;
        lab[i].confidence = labels[i].confidence;
        to_box(&box[i], &labels[i]);
        lab[i].box = &box[i];
        labp[i] = &lab[i];
    }
    if (n > 0)
        store_snapshot(d, f, url, sizeof(url));
    vg_header_follow(&hdr, f->header);
    det.header = &hdr;
    det.frame_seq = f->seq;
    det.detector = (char *)vg_detector_name(d->detector);
    det.n_labels = n;
    det.labels = labp;
    det.raw_labels = (uint32_t)raw;
    det.snapshot_url = url;
    det.width = f->width;
    det.height = f->height;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "detections", cam);
    if (vg_bus_publish(vg_svc_bus(d->svc), subject, &det.base) != VG_OK) {
        vg_counter_inc(d->publish_failed);
        VG_WARN("detection.publish_failed", cam, "%s", vg_err_detail());
        return;
    }
    if (n > 0)
        vg_counter_inc(d->detections);
    vg_histogram_observe_us(d->latency, vg_now_us() - f->header->capture_ts_us);
}

static void on_frame(void *ctx, const char *subject, const void *data, size_t len)
{
    struct disp *d = ctx;
    struct vg_label labels[MAX_LABELS];
    size_t n = 0;
    Vigil__V1__Frame *f = (Vigil__V1__Frame *)vg_bus_decode(
        vg_svc_bus(d->svc), &vigil__v1__frame__descriptor, subject, data, len, d->malformed);
    if (!f)
        return;
    vg_counter_inc(d->frames);
    const char *cam_id = f->header->camera_id;
    const struct vg_camera_cfg *cam = vg_cfg_camera(d->cfg, cam_id);
    if (!cam) {
        vg_counter_inc(d->unknown_camera);
        VG_WARN("frame.unknown_camera", cam_id, "camera is not in the configuration; dropped");
        goto out;
    }
    if (vg_detector_run(d->detector, f, labels, MAX_LABELS, &n) != VG_OK) {
        VG_WARN("detector.failed", cam_id, "%s", vg_err_detail());
        goto out;
    }
    size_t raw = n;
    n = disp_watch_filter(cam, labels, n);
    publish_detection(d, f, labels, n, raw);
out:
    protobuf_c_message_free_unpacked(&f->base, NULL);
}

static vg_status disp_init(struct vg_svc *svc, void **state)
{
    const struct vg_config *cfg = vg_svc_config(svc);
    char subject[128];
    struct disp *d = calloc(1, sizeof(*d));
    if (!d)
        return VG_ERR_NOMEM;
    d->svc = svc;
    d->cfg = cfg;
    d->frames = vg_counter_get("vigil_dispatch_frames_total", "Frames analysed");
    d->malformed = vg_counter_get("vigil_dispatch_malformed_total",
                                  "Messages dropped because they could not be decoded");
    d->unknown_camera = vg_counter_get("vigil_dispatch_unknown_camera_total",
                                       "Frames from cameras not in the configuration");
    d->detections = vg_counter_get("vigil_dispatch_detections_total",
                                   "Detections published with at least one watched label");
    d->publish_failed = vg_counter_get("vigil_dispatch_publish_failed_total",
                                       "Detections that could not be published");
    d->snapshot_failed = vg_counter_get("vigil_dispatch_snapshot_failed_total",
                                        "Snapshots that could not be stored");
    d->latency = vg_histogram_get("vigil_dispatch_latency_seconds",
                                  "Frame capture to detection published");
    vg_status st = vg_detector_create(&d->detector, cfg->dispatch.detector, cfg);
    if (st != VG_OK) {
        free(d);
        return st;
    }
    *state = d;
    vg_subject(subject, sizeof(subject), cfg->prefix, "frames", "*");
    return vg_bus_subscribe(vg_svc_bus(svc), subject, "dispatch", on_frame, d);
}

static void disp_fini(struct vg_svc *svc, void *state)
{
    struct disp *d = state;
    if (!d)
        return;
    vg_detector_destroy(d->detector);
    free(d);
}

const struct vg_service dispatch_service = {
    .name = "dispatch",
    .default_http_addr = "127.0.0.1:9102",
    .init = disp_init,
    .fini = disp_fini,
};
