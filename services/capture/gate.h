/* Which sampled frames are worth a JPEG. Motion is computed on every
 * sampled frame (a small grey image, cheap); scaling the frame to detect
 * size, encoding it and publishing it are most of capture's cost, so they
 * are done only for frames that carry something: motion, the scene after a
 * (re)start, and a keep-alive every keepalive_s of source time so the
 * console and the detectors still see a quiet scene. publish_all turns the
 * gate off. */
#ifndef CAP_GATE_H
#define CAP_GATE_H

#include <stdint.h>

#include "image/motion.h"

enum cap_verdict {
    CAP_PUBLISH_ALL,            /* publish_all: every sampled frame */
    CAP_PUBLISH_SCENE,          /* first frame since start, reconnect, loop or a new size */
    CAP_PUBLISH_MOTION,         /* motion boxes */
    CAP_PUBLISH_KEEPALIVE,      /* nothing published for keepalive_s */
    CAP_SKIP_NO_MOTION,
    CAP_SKIP_GLOBAL_CHANGE,     /* the light or the camera changed, not the scene */
};

struct cap_gate {
    int64_t keepalive_ms;       /* 0 = never */
    int publish_all;
    int have_last;
    int64_t last_ms;            /* source time of the last frame published */
};

void cap_gate_init(struct cap_gate *g, double keepalive_s, int publish_all);
/* Forget what was published (a new start, reconnect or loop): the next frame
 * is the scene. */
void cap_gate_reset(struct cap_gate *g);
enum cap_verdict cap_gate_decide(const struct cap_gate *g, const struct vg_motion_result *m,
                                 int64_t pts_ms);
/* Record that the frame at pts_ms went out (not when publishing failed, so
 * the next frame tries again). */
void cap_gate_published(struct cap_gate *g, int64_t pts_ms);

int cap_verdict_publishes(enum cap_verdict v);
const char *cap_verdict_name(enum cap_verdict v);

#endif
