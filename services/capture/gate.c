#include "gate.h"

void cap_gate_init(struct cap_gate *g, double keepalive_s, int publish_all)
{
    g->keepalive_ms = keepalive_s > 0 ? (int64_t)(keepalive_s * 1000.0 + 0.5) : 0;
    g->publish_all = publish_all;
    cap_gate_reset(g);
}

void cap_gate_reset(struct cap_gate *g)
{
    g->have_last = 0;
    g->last_ms = 0;
}

/* Source time, not the wall clock: a file read at speed 0 gets the same
 * keep-alives as the camera it was recorded from. A timestamp that went
 * backwards (a camera restarting its clock) is due at once. */
static int keepalive_due(const struct cap_gate *g, int64_t pts_ms)
{
    return g->keepalive_ms > 0 &&
           (pts_ms - g->last_ms >= g->keepalive_ms || pts_ms < g->last_ms);
}

enum cap_verdict cap_gate_decide(const struct cap_gate *g, const struct vg_motion_result *m,
                                 int64_t pts_ms)
{
    if (g->publish_all)
        return CAP_PUBLISH_ALL;
    if (!g->have_last || m->learning)
        return CAP_PUBLISH_SCENE;
    if (m->n_boxes > 0)
        return CAP_PUBLISH_MOTION;
    if (keepalive_due(g, pts_ms))
        return CAP_PUBLISH_KEEPALIVE;
    return m->global_change ? CAP_SKIP_GLOBAL_CHANGE : CAP_SKIP_NO_MOTION;
}

void cap_gate_published(struct cap_gate *g, int64_t pts_ms)
{
    g->have_last = 1;
    g->last_ms = pts_ms;
}

int cap_verdict_publishes(enum cap_verdict v)
{
    return v != CAP_SKIP_NO_MOTION && v != CAP_SKIP_GLOBAL_CHANGE;
}

const char *cap_verdict_name(enum cap_verdict v)
{
    switch (v) {
    case CAP_PUBLISH_ALL: return "all";
    case CAP_PUBLISH_SCENE: return "scene";
    case CAP_PUBLISH_MOTION: return "motion";
    case CAP_PUBLISH_KEEPALIVE: return "keepalive";
    case CAP_SKIP_NO_MOTION: return "no_motion";
    case CAP_SKIP_GLOBAL_CHANGE: return "global_change";
    }
    return "unknown";
}
