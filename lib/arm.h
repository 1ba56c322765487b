/* The arm mode ("off", "home", "away", or a mode the user named in
 * routing.modes): kept in Redis (<prefix>:arm, a hash of mode, previous,
 * set_by, set_ts_us) so every replica and every restart agrees, and
 * announced as an ArmState on <prefix>.control.arm so notifiers switch at
 * once. `vigilctl arm MODE` sets it; the notifier reads it at start, on
 * each announcement and every few seconds in case one was missed. */
#ifndef VG_ARM_H
#define VG_ARM_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "redis.h"
#include "routing.h"
#include "status.h"

struct vg_arm_state {
    char mode[VG_ROUTE_MODE_MAX];
    char previous[VG_ROUTE_MODE_MAX];
    char set_by[128];
    int64_t set_ts_us;
};

/* The stored state; VG_ERR_NOT_FOUND when nobody has armed yet. */
vg_status vg_arm_get(struct vg_redis *r, const char *prefix, struct vg_arm_state *out);

/* Store mode (which the caller checked against the routing's modes) and,
 * when bus is not NULL, announce it. out receives the new state. */
vg_status vg_arm_set(struct vg_redis *r, struct vg_bus *bus, const char *prefix,
                     const char *mode, const char *set_by, struct vg_arm_state *out);

/* "<prefix>.control.arm" */
void vg_arm_subject(char *out, size_t cap, const char *prefix);

#endif
