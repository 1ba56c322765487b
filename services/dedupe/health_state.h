/* The health of one camera as one replica sees it, from its CameraStatus
 * messages and the clock: no I/O, so it is tested with a made-up clock.
 *
 * Up:   the last status says ONLINE and frames made progress (frames_read
 *       grew, or the state just became ONLINE) within offline_after.
 * Down: anything else: OFFLINE, RECONNECTING or CONNECTING, or a stalled
 *       stream (ONLINE but frames_read stuck), or no status at all (capture
 *       gone), each counted from when it started.
 *
 * Hold-downs, so a camera that flaps alerts once and not on every
 * reconnect: a down episode starts at the first sign of trouble and ends
 * only after the camera has been up for online_after without a break, so
 * flaps shorter than that stay one episode. It wants an offline alert once
 * it is down and the episode has lasted offline_after, and an online alert
 * once it has been up for online_after since an offline one. A camera is
 * watched from its first status on. */
#ifndef DD_HEALTH_STATE_H
#define DD_HEALTH_STATE_H

#include <stdint.h>

enum dd_cam_report {
    DD_CAM_UNKNOWN = 0,     /* nothing reported or adopted yet */
    DD_CAM_ONLINE,
    DD_CAM_OFFLINE,
};

enum dd_cam_want {
    DD_CAM_WANT_NOTHING = 0,
    DD_CAM_WANT_OFFLINE,
    DD_CAM_WANT_ONLINE,
};

struct dd_cam_limits {
    int64_t offline_after_us;
    int64_t online_after_us;
};

/* Times ending in _us are this replica's monotonic clock; _ts are the
 * wall-clock capture times in the status headers, the same for every
 * replica, so they identify an episode across replicas. */
struct dd_cam_state {
    int heard;                  /* a status arrived */
    int state;                  /* of the last status (Vigil__V1__CameraStatus__State) */
    uint64_t frames;            /* frames_read of the last status */
    int64_t status_us;          /* the last status arrived */
    int64_t status_ts;
    int64_t progress_us;        /* the last progress */
    int64_t progress_ts;
    int64_t down_us;            /* the current down episode began; 0: none */
    int64_t down_ts;
    int64_t up_us;              /* the current unbroken up stretch began; 0: down now */
    int64_t up_ts;
    int reported;               /* enum dd_cam_report, set by the caller */
};

/* A status message at now (its header's capture time ts). */
void dd_cam_status(struct dd_cam_state *c, const struct dd_cam_limits *l, int state,
                   uint64_t frames_read, int64_t ts, int64_t now);

/* What the camera needs reported at now. The caller reports it (or learns
 * it was reported elsewhere) and sets c->reported. */
enum dd_cam_want dd_cam_decide(struct dd_cam_state *c, const struct dd_cam_limits *l,
                               int64_t now);

/* Why the camera is down at now, for logs: "offline", "reconnecting",
 * "connecting", "no status", "no frames". */
const char *dd_cam_reason(const struct dd_cam_state *c, const struct dd_cam_limits *l,
                          int64_t now);

#endif
