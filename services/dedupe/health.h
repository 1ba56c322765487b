/* Camera health alerts: camera_offline when a configured camera is down
 * (health_state.h: OFFLINE/RECONNECTING/CONNECTING, a stalled stream, or
 * no status at all) for dedupe.health.offline_after_s, and camera_online
 * once it has been up for online_after_s after that; published as Alerts
 * on <prefix>.alerts.<camera> through the outbox, like any alert.
 *
 * Every replica watches every camera (a plain subscription to
 * <prefix>.status.*); Redis decides who alerts. The hash
 * "<prefix>:dd:<camera>:health:state" {kind, ts, alert_id} holds the last
 * transition alerted; one script moves it, and writes the alert's pending
 * record, only when the kind changes (and online only after offline), so
 * each transition alerts once across replicas and restarts. When Redis is
 * down each replica alerts on its own, marked fail_open, with an id derived
 * from the key and the episode's capture time (the same in every replica,
 * so the copies collapse in JetStream); when Redis is back the replica
 * writes what it alerted into the hash unless something newer is there. */
#ifndef DD_HEALTH_H
#define DD_HEALTH_H

#include <stdint.h>

#include "config.h"
#include "outbox.h"
#include "redis.h"

struct dd_health;

/* r may be NULL (fail-open only). */
vg_status dd_health_create(struct dd_health **out, const struct vg_config *cfg,
                           struct vg_redis *r, struct dd_outbox *ob);
void dd_health_destroy(struct dd_health *h);

/* A status of a configured camera (decoded and checked by the caller),
 * received at now (monotonic µs). Thread-safe; NULL h is ignored. */
void dd_health_on_status(struct dd_health *h, const Vigil__V1__CameraStatus *cs, int64_t now);

/* Decide and alert what changed; call about once a second. */
void dd_health_tick(struct dd_health *h, int64_t now);

#endif
