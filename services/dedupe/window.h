/* De-duplication windows in Redis. A window opens at the first sighting of
 * a key and lasts window_ms; sightings inside it do not extend it. */
#ifndef DD_WINDOW_H
#define DD_WINDOW_H

#include "redis.h"

/* Try to open the window for key, owned by alert_id (SET NX PX, atomic
 * across replicas). *opened = 1: this sighting alerts; 0: suppressed.
 * Errors (Redis down) are returned as is: the caller decides to fail open. */
vg_status dd_window_open(struct vg_redis *r, const char *key, int window_ms,
                         const char *alert_id, int *opened);

/* Close a window this alert opened (its alert could not be published), so
 * the next sighting alerts. Leaves a window opened by another alert alone. */
vg_status dd_window_abandon(struct vg_redis *r, const char *key, const char *alert_id);

#endif
