/* Latest-wins frame slots, one per camera: the NATS callback swaps the newest
 * frame in (dropping the one it replaces), worker threads take from them. A
 * camera is analysed by one worker at a time, so its frames stay in order,
 * and a slow detector makes dispatch skip frames rather than queue them:
 * latency stays bounded and memory flat however long it runs. */
#ifndef DISP_SLOTS_H
#define DISP_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct disp_slots;

struct disp_frame {
    int camera;             /* index into the configuration's cameras */
    uint8_t *data;          /* the encoded Frame message; owned by whoever holds it */
    size_t len;
    int64_t received_us;
};

vg_status disp_slots_create(struct disp_slots **out, int n_cameras);
void disp_slots_destroy(struct disp_slots *s);

/* Take ownership of a copy of data as camera's newest frame. Returns 1 when
 * an unanalysed older frame was dropped to make room. */
int disp_slots_put(struct disp_slots *s, int camera, const void *data, size_t len,
                   int64_t received_us);

/* Wait up to timeout_ms for a frame of a camera no other worker holds
 * (cameras are served round robin). VG_ERR_TIMEOUT when none came,
 * VG_ERR_STOPPED after disp_slots_close. The caller frees f->data and calls
 * disp_slots_done(f->camera). */
vg_status disp_slots_take(struct disp_slots *s, int timeout_ms, struct disp_frame *f);
void disp_slots_done(struct disp_slots *s, int camera);

/* Wake every waiting worker; takes fail with VG_ERR_STOPPED from now on. */
void disp_slots_close(struct disp_slots *s);

/* Frames waiting (for tests and the gauge). */
int disp_slots_pending(struct disp_slots *s);

#endif
