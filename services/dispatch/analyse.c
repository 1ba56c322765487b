/* One frame: decode, run the camera's detector chain, publish the Detection,
 * store a snapshot when labels passed the watch list, crop faces. */
#include <stdlib.h>
#include <string.h>

#include "disp.h"
#include "image/draw.h"
#include "log.h"
#include "evidence.h"
#include "store/snapshot_store.h"
#include "timeutil.h"

#define SNAPSHOT_QUALITY 85
/* Frames larger than this are refused before decoding (8K). */
#define MAX_FRAME_PIXELS ((size_t)7680 * 4320)

static void motion_hint(const Vigil__V1__Frame *f, struct vg_motion_hint *m)
{
    memset(m, 0, sizeof(*m));
    m->score = f->motion_score;
    for (size_t i = 0; i < f->n_motion && m->n < VG_DETECT_MAX_REGIONS; i++) {
        const Vigil__V1__MotionBox *b = f->motion[i];
        if (!b || !b->box)
            continue;
        m->boxes[m->n] = (struct vg_box){b->box->x, b->box->y, b->box->w, b->box->h};
        m->fill[m->n] = b->fill;
        if (vg_box_clip(&m->boxes[m->n]))
            m->n++;
    }
}

/* The snapshot: the frame as it came, or re-encoded with the boxes drawn. */
static void store_snapshot(struct disp_worker *w, const Vigil__V1__Frame *f,
                           const struct vg_image *img, const struct vg_chain_out *out,
                           char *url, size_t cap)
{
    struct disp *d = w->d;
    const Vigil__V1__Header *h = f->header;
    const uint8_t *jpeg = f->jpeg.data;
    size_t len = f->jpeg.len;
    uint8_t *drawn = NULL, *encoded = NULL;
    if (!disp_evidence_snaps(d->evidence))
        return;
    if (d->cfg->dispatch.snapshot_boxes && img->rgb) {
        size_t bytes = (size_t)img->width * img->height * 3;
        if ((drawn = malloc(bytes))) {
            memcpy(drawn, img->rgb, bytes);
            int t = img->width >= 960 ? 3 : 2;
            for (size_t i = 0; i < out->res.n; i++) {
                const struct vg_box *b = &out->res.labels[i].box;
                vg_rgb_draw_rect(drawn, img->width, img->height,
                                 vg_rect_from_box(b->x, b->y, b->w, b->h, 0, img->width,
                                                  img->height),
                                 t, 255, 48, 48);
            }
            if (vg_jpeg_encode_rgb(w->jpeg, drawn, img->width, img->height, SNAPSHOT_QUALITY,
                                   &encoded, &len) == VG_OK)
                jpeg = encoded;
            else
                len = f->jpeg.len;
        }
    }
    disp_evidence_snapshot(d->evidence, h, jpeg, len, url, cap);
    free(drawn);
    free(encoded);
}

static void publish_detection(struct disp_worker *w, const Vigil__V1__Frame *f,
                              const struct vg_camera_cfg *cam, const struct vg_chain_out *out,
                              const char *url, uint32_t faces)
{
    struct disp *d = w->d;
    size_t n = out->res.n;
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Detection det = VIGIL__V1__DETECTION__INIT;
    Vigil__V1__Label lab[VG_DETECT_MAX_LABELS];
    Vigil__V1__Label *labp[VG_DETECT_MAX_LABELS];
    Vigil__V1__Box box[VG_DETECT_MAX_LABELS];
    char *zones[VG_DETECT_MAX_LABELS][VG_MAX_ZONES];
    char subject[256];

    for (size_t i = 0; i < n; i++) {
        const struct vg_label *l = &out->res.labels[i];
        vigil__v1__label__init(&lab[i]);
        vigil__v1__box__init(&box[i]);
        lab[i].name = (char *)(l->category == VG_CAT_OTHER ? l->raw
                                                           : vg_category_name(l->category));
        lab[i].raw_name = (char *)l->raw;
        lab[i].confidence = l->confidence;
        box[i].x = l->box.x, box[i].y = l->box.y, box[i].w = l->box.w, box[i].h = l->box.h;
        lab[i].box = &box[i];
        for (int z = 0; z < cam->n_zones; z++)
            if (l->zones & (1u << z))
                zones[i][lab[i].n_zones++] = (char *)cam->zones[z].name;
        lab[i].zones = zones[i];
        labp[i] = &lab[i];
    }
    vg_header_follow(&hdr, f->header);
    det.header = &hdr;
    det.frame_seq = f->seq;
    det.detector = (char *)(out->detector ? out->detector : "");
    det.n_labels = n;
    det.labels = labp;
    det.raw_labels = (uint32_t)out->raw;
    det.snapshot_ref = (char *)url;
    det.width = f->width;
    det.height = f->height;
    det.stages_run = (uint32_t)out->stages_run;
    det.gated = out->gated;
    det.degraded = out->degraded;
    det.reused = out->reused;
    det.faces = faces;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "detections", cam->id);
    vg_status pub = vg_bus_publish(vg_svc_bus(d->svc), subject, &det.base);
    /* After the detection is out (a slow store must not delay it); kept
     * even when the bus refused it. */
    disp_evidence_frame(d->evidence, &det);
    if (pub != VG_OK) {
        vg_counter_inc(d->publish_failed);
        VG_WARN("detection.publish_failed", cam->id, "%s", vg_err_detail());
        return;
    }
    if (n > 0)
        vg_counter_inc(d->detections);
    vg_histogram_observe_us(d->latency, vg_now_us() - f->header->capture_ts_us);
}

/* Check the frame before spending a detector on it. */
static Vigil__V1__Frame *accept_frame(struct disp_worker *w, const struct disp_frame *fr,
                                      const struct vg_camera_cfg *cam)
{
    struct disp *d = w->d;
    char subject[160];
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "frames", cam->id);
    Vigil__V1__Frame *f = (Vigil__V1__Frame *)vg_bus_decode(
        vg_svc_bus(d->svc), &vigil__v1__frame__descriptor, subject, fr->data, fr->len,
        d->malformed);
    if (!f)
        return NULL;
    if (strcmp(f->header->camera_id, cam->id)) {
        vg_counter_inc(d->unknown_camera);
        VG_WARN("frame.unknown_camera", f->header->camera_id,
                "frame on the subject of camera %s claims another camera; dropped", cam->id);
    } else if (vg_now_us() - f->header->capture_ts_us >
               (int64_t)d->cfg->dispatch.max_frame_age_ms * 1000) {
        vg_counter_inc(d->stale);   /* analysing it would only add latency */
    } else if (f->jpeg.len == 0) {
        vg_counter_inc(d->bad_image);
        VG_WARN("frame.bad_image", cam->id, "frame %llu has no image",
                (unsigned long long)f->seq);
    } else {
        return f;
    }
    protobuf_c_message_free_unpacked(&f->base, NULL);
    return NULL;
}

void disp_analyse(struct disp_worker *w, const struct disp_frame *fr)
{
    struct disp *d = w->d;
    const struct vg_camera_cfg *cam = &d->cfg->cameras[fr->camera];
    struct vg_chain_out *out = NULL;
    struct vg_image img = {0};
    struct vg_motion_hint motion;
    uint8_t *rgb = NULL;
    char url[VG_SNAP_REF_MAX] = "";
    int64_t t0 = vg_now_us();
    Vigil__V1__Frame *f = accept_frame(w, fr, cam);
    if (!f)
        return;
    img.jpeg = f->jpeg.data;
    img.jpeg_len = f->jpeg.len;
    img.capture_ts_us = f->header->capture_ts_us;
    if (d->needs_pixels) {
        vg_status st = vg_jpeg_decode_rgb(w->jpeg, f->jpeg.data, f->jpeg.len, MAX_FRAME_PIXELS,
                                          &rgb, &img.width, &img.height);
        if (st != VG_OK) {
            vg_counter_inc(d->bad_image);
            VG_WARN("frame.bad_image", cam->id, "frame %llu: %s", (unsigned long long)f->seq,
                    vg_err_detail());
            goto out;
        }
        img.rgb = rgb;
    } else if (vg_jpeg_dims(w->jpeg, f->jpeg.data, f->jpeg.len, &img.width, &img.height) !=
               VG_OK) {
        /* The size the JPEG says, not the message: boxes are normalised by it. */
        vg_counter_inc(d->bad_image);
        VG_WARN("frame.bad_image", cam->id, "frame %llu: %s", (unsigned long long)f->seq,
                vg_err_detail());
        goto out;
    }
    vg_counter_inc(d->frames);
    motion_hint(f, &motion);
    if (!(out = malloc(sizeof(*out))))
        goto out;
    if (vg_detect_engine_run(w->engine, cam, &img, &motion, d->faces_on, out) != VG_OK) {
        vg_counter_inc(d->detect_failed);
        goto out;
    }
    if (out->res.n > 0)
        store_snapshot(w, f, &img, out, url, sizeof(url));
    /* Faces first: the Detection says how many crops of this frame (same
     * trace id) went to facematch, so dedupe knows whether to wait for
     * their identities before alerting the person. */
    uint32_t faces = d->faces_on && img.rgb ? disp_publish_faces(w, f, &img, out, url) : 0;
    publish_detection(w, f, cam, out, url, faces);
    vg_histogram_observe_us(d->analyse_time, vg_now_us() - t0);
out:
    free(out);
    free(rgb);
    protobuf_c_message_free_unpacked(&f->base, NULL);
}
