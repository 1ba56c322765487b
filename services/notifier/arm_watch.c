/* The arm mode as this notifier sees it: read from Redis at start, switched
 * by ArmState announcements on <prefix>.control.arm, and read again every
 * few seconds so a missed announcement (NATS down) heals. Shown in
 * /metrics as vigil_notifier_arm_mode{mode="..."} 1 for the current one. */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "arm.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define REFRESH_US (5 * 1000000LL)

/* Announcements (NATS thread) and Redis reads (main thread) race: the
 * newer setting wins, by the time it was set. */
static void set_mode(struct ntf *n, int mode, int64_t set_ts_us, const char *by, const char *how)
{
    pthread_mutex_lock(&n->arm_lock);
    int old = n->arm_mode;
    if (set_ts_us < n->arm_set_ts_us) {
        pthread_mutex_unlock(&n->arm_lock);
        return;
    }
    n->arm_mode = mode;
    n->arm_set_ts_us = set_ts_us;
    for (int i = 0; i < n->routing.n_modes; i++)
        vg_gauge_set(n->arm_gauges[i], i == mode);
    pthread_mutex_unlock(&n->arm_lock);
    if (old != mode)
        VG_INFO("arm.mode", NULL, "arm mode %s (was %s), set by %s, %s", n->routing.modes[mode],
                old >= 0 ? n->routing.modes[old] : "-", by && *by ? by : "?", how);
}

static void adopt(struct ntf *n, const char *name, int64_t set_ts_us, const char *by,
                  const char *how)
{
    int m = vg_routing_mode(&n->routing, name);
    if (m < 0) {
        char known[256];
        vg_routing_mode_names(&n->routing, known, sizeof(known));
        vg_counter_inc(n->arm_unknown);
        VG_WARN("arm.unknown_mode", NULL, "arm mode \"%s\" (%s) is not one of %s; keeping %s",
                name, how, known, n->routing.modes[ntf_arm_mode(n)]);
        return;
    }
    set_mode(n, m, set_ts_us, by, how);
}

int ntf_arm_mode(struct ntf *n)
{
    pthread_mutex_lock(&n->arm_lock);
    int m = n->arm_mode;
    pthread_mutex_unlock(&n->arm_lock);
    return m;
}

void ntf_arm_refresh(struct ntf *n)
{
    struct vg_arm_state s;
    int64_t now = vg_mono_us();
    if (now - n->arm_refreshed_us < REFRESH_US)
        return;
    n->arm_refreshed_us = now;
    vg_status st = vg_arm_get(vg_svc_redis(n->svc), n->cfg->prefix, &s);
    if (st == VG_OK)
        adopt(n, s.mode, s.set_ts_us, s.set_by, "from redis");
}

static void on_arm(void *ctx, const char *subject, const void *data, size_t len)
{
    struct ntf *n = ctx;
    ProtobufCMessage *m = NULL;
    (void)subject;
    if (vg_pb_unpack(&vigil__v1__arm_state__descriptor, data, len, 4096, &m) != VG_OK) {
        vg_counter_inc(n->arm_unknown);
        VG_WARN("arm.malformed", NULL, "%zu bytes on the arm subject: %s", len, vg_err_detail());
        return;
    }
    Vigil__V1__ArmState *a = (Vigil__V1__ArmState *)m;
    adopt(n, a->mode, a->set_ts_us, a->set_by, "announced");
    protobuf_c_message_free_unpacked(m, NULL);
}

vg_status ntf_arm_start(struct ntf *n)
{
    char labels[64];
    struct vg_arm_state s;
    pthread_mutex_init(&n->arm_lock, NULL);
    n->arm_lock_ready = 1;
    n->arm_mode = -1;
    n->arm_unknown = vg_counter_get("vigil_notifier_arm_rejected_total",
                                    "Arm announcements with an unknown mode or malformed");
    for (int i = 0; i < n->routing.n_modes; i++) {
        snprintf(labels, sizeof(labels), "mode=\"%s\"", n->routing.modes[i]);
        n->arm_gauges[i] = vg_gauge_get_labeled("vigil_notifier_arm_mode", labels,
                                                "1 for the current arm mode");
    }
    n->arm_set_ts_us = INT64_MIN;
    set_mode(n, n->routing.default_mode, INT64_MIN, "routing.mode", "the configured default");
    n->arm_refreshed_us = vg_mono_us();
    if (vg_arm_get(vg_svc_redis(n->svc), n->cfg->prefix, &s) == VG_OK)
        adopt(n, s.mode, s.set_ts_us, s.set_by, "from redis");
    return VG_OK;
}

/* Last in start-up: nothing may fail (and free n) after it. */
vg_status ntf_arm_subscribe(struct ntf *n)
{
    char subject[NTF_SUBJECT_MAX];
    vg_arm_subject(subject, sizeof(subject), n->cfg->prefix);
    return vg_bus_subscribe(n->bus, subject, NULL, on_arm, n);
}
