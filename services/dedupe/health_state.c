#include "health_state.h"

#include "vigil/v1/vigil.pb-c.h"

#define ONLINE VIGIL__V1__CAMERA_STATUS__STATE__ONLINE

static int is_up(const struct dd_cam_state *c, const struct dd_cam_limits *l, int64_t now)
{
    return c->state == ONLINE && now - c->progress_us < l->offline_after_us;
}

/* Bring the episode up to now: an up stretch starts or ends, a down episode
 * starts, or ends once the camera has been up for online_after. */
static void refresh(struct dd_cam_state *c, const struct dd_cam_limits *l, int64_t now)
{
    if (is_up(c, l, now)) {
        if (!c->up_us) {
            c->up_us = now;     /* only a status makes a camera up: it is the last one */
            c->up_ts = c->status_ts;
        }
        if (c->down_us && now - c->up_us >= l->online_after_us)
            c->down_us = 0;
        return;
    }
    c->up_us = 0;
    if (c->down_us)
        return;                 /* flaps inside one episode keep its start */
    if (c->state == ONLINE) {
        /* Stalled (or silent): the trouble began after the last progress. */
        c->down_us = c->progress_us;
        c->down_ts = c->progress_ts;
    } else {
        c->down_us = c->status_us;
        c->down_ts = c->status_ts;
    }
}

void dd_cam_status(struct dd_cam_state *c, const struct dd_cam_limits *l, int state,
                   uint64_t frames_read, int64_t ts, int64_t now)
{
    int was_online = c->heard && c->state == ONLINE;
    if (!c->heard) {
        /* Watched from now: a camera that never shows progress is stalled
         * offline_after from its first status. */
        c->progress_us = now;
        c->progress_ts = ts;
    }
    /* Progress: frames were read since the last status (a restarted capture
     * counts from 0 again), or the source just (re)opened. */
    if (state == ONLINE && (!was_online || (frames_read > 0 && frames_read != c->frames))) {
        c->progress_us = now;
        c->progress_ts = ts;
    }
    c->heard = 1;
    c->state = state;
    c->frames = frames_read;
    c->status_us = now;
    c->status_ts = ts;
    refresh(c, l, now);
}

enum dd_cam_want dd_cam_decide(struct dd_cam_state *c, const struct dd_cam_limits *l,
                               int64_t now)
{
    if (!c->heard)
        return DD_CAM_WANT_NOTHING;
    refresh(c, l, now);
    if (c->reported != DD_CAM_OFFLINE && !c->up_us && c->down_us &&
        now - c->down_us >= l->offline_after_us)
        return DD_CAM_WANT_OFFLINE;
    /* From UNKNOWN too: an offline alert of an earlier life or of another
     * replica may be waiting for its online one (the caller asks Redis). */
    if (c->reported != DD_CAM_ONLINE && c->up_us && now - c->up_us >= l->online_after_us)
        return DD_CAM_WANT_ONLINE;
    return DD_CAM_WANT_NOTHING;
}

const char *dd_cam_reason(const struct dd_cam_state *c, const struct dd_cam_limits *l,
                          int64_t now)
{
    switch (c->state) {
    case VIGIL__V1__CAMERA_STATUS__STATE__OFFLINE:
        return "offline";
    case VIGIL__V1__CAMERA_STATUS__STATE__RECONNECTING:
        return "reconnecting";
    case VIGIL__V1__CAMERA_STATUS__STATE__CONNECTING:
        return "connecting";
    case ONLINE:
        return now - c->status_us >= l->offline_after_us ? "no status" : "no frames";
    default:
        return "unknown state";
    }
}
