/* The two messages capture publishes: Frame and CameraStatus. */
#ifndef CAP_PUBLISH_H
#define CAP_PUBLISH_H

#include <stdint.h>

#include "bus.h"
#include "pipeline.h"

struct cap_frame_meta {
    const char *camera;
    uint64_t seq;
    int64_t capture_ts_us;  /* wall clock when the frame was decoded */
    int64_t pts_ms;         /* position in the source */
};

vg_status cap_publish_frame(struct vg_bus *bus, const char *subject,
                            const struct cap_frame_meta *meta, const struct cap_output *out);

struct cap_status_report {
    Vigil__V1__CameraStatus__State state;
    const char *source;     /* URL with credentials masked */
    const char *error;      /* NULL when there is none */
    uint64_t frames_read;
    uint64_t frames_published;
    double fps;             /* frames published per second lately */
};

vg_status cap_publish_status(struct vg_bus *bus, const char *subject, const char *camera,
                             const struct cap_status_report *r);

#endif
