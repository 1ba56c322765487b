/* dispatch's state, shared by its modules (dispatch.c: life and workers;
 * analyse.c: one frame; faces.c: face crops; evidence.c: snapshots and frame records). */
#ifndef DISP_H
#define DISP_H

#include <pthread.h>

#include "detect/chain.h"
#include "detect/face_finder.h"
#include "image/jpeg.h"
#include "metrics.h"
#include "slots.h"
#include "svc.h"

#define DISP_MAX_WORKERS 64

struct disp;

struct disp_worker {
    struct disp *d;
    pthread_t thread;
    int started;
    struct vg_detect_engine *engine;
    struct vg_jpeg *jpeg;
    struct vg_face_finder *faces;   /* only when face crops are on */
};

struct disp {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct vg_detect_settings *settings;
    struct disp_slots *slots;
    int faces_on;
    int needs_pixels;
    int n_workers;
    struct disp_worker workers[DISP_MAX_WORKERS];
    struct disp_evidence *evidence;     /* snapshot + metadata stores */
    struct vg_counter *frames, *malformed, *unknown_camera, *superseded, *stale, *bad_image,
        *detect_failed, *detections, *publish_failed, *faces_published;
    struct vg_histogram *latency, *analyse_time;
};

/* Analyse one frame taken from the slots (frees nothing: the caller does). */
void disp_analyse(struct disp_worker *w, const struct disp_frame *fr);

/* Publish FaceCrops for the person labels of one analysed frame; returns
 * how many were published. */
struct vg_chain_out;
uint32_t disp_publish_faces(struct disp_worker *w, const Vigil__V1__Frame *f,
                            const struct vg_image *img, const struct vg_chain_out *out,
                            const char *snapshot_ref);

#endif
