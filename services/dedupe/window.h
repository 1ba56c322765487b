/* De-duplication windows. A window opens at the first sighting of a key and
 * lasts window_ms; sightings inside it do not extend it.
 *
 * Redis decides (SET NX PX, atomic across replicas). Each replica also keeps
 * the windows it learnt in a bounded table in its own memory:
 *  - a window known to be open (our SET NX succeeded, or failed with the
 *    key's remaining PTTL) answers later sightings from memory until it
 *    closes: one Redis call per key per window, not one per frame;
 *  - while Redis is down, the table is the window: one alert per key per
 *    window per replica, the window aligned to floor(ts / window), and the
 *    alert id derived from key + window start so the alerts of two
 *    replicas collapse in JetStream's duplicate window. */
#ifndef DD_WINDOW_H
#define DD_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include "pending.h"
#include "redis.h"

/* Try to open the window for key, owned by alert_id (SET NX PX, atomic
 * across replicas). *opened = 1: this sighting alerts; 0: suppressed.
 * Errors (Redis down) are returned as is. */
vg_status dd_window_open(struct vg_redis *r, const char *key, int window_ms,
                         const char *alert_id, int *opened);

/* As dd_window_open, in one round trip also returning how long the window
 * stays open in ms (window_ms when we opened it, the key's PTTL when not;
 * <= 0 when unknown). */
vg_status dd_window_open_ttl(struct vg_redis *r, const char *key, int window_ms,
                             const char *alert_id, int *opened, int64_t *ttl_ms);

/* As dd_window_open_ttl; when stash is not NULL and the window opened, the
 * alert's pending record (pending.h) is written in the same atomic call. */
vg_status dd_window_open_stash(struct vg_redis *r, const char *key, int window_ms,
                               const char *alert_id, const struct dd_stash *stash,
                               int *opened, int64_t *ttl_ms);

/* Close a window this alert opened (its alert could not be published), so
 * the next sighting alerts. Leaves a window opened by another alert alone. */
vg_status dd_window_abandon(struct vg_redis *r, const char *key, const char *alert_id);

/* The fail-open alert id: 32 hex chars from key and the window index. */
void dd_window_fail_open_id(char out[33], const char *key, int64_t window_index);

enum dd_verdict {
    DD_SUPPRESS = 0,        /* inside an open window */
    DD_ALERT = 1,           /* Redis opened a window for alert_id */
    DD_ALERT_FAIL_OPEN = 2, /* Redis unavailable: a local window opened */
};

struct dd_windows_stats {
    uint64_t redis_calls;   /* window opens asked of Redis */
    uint64_t cache_hits;    /* sightings suppressed from memory */
    uint64_t table_full;    /* windows not remembered: the table was full */
    size_t entries;         /* open windows in the table (recounted at most once a second) */
};

struct dd_windows;

/* r may be NULL (memory only, as if Redis were down). max_keys caps the
 * table (expired windows are evicted first). */
vg_status dd_windows_create(struct dd_windows **out, struct vg_redis *r, int window_ms,
                            int max_keys);
void dd_windows_destroy(struct dd_windows *w);

/* Decide one sighting of key at ts_us (wall clock, µs; the fail-open window
 * is floor(ts_us / window)). On DD_ALERT / DD_ALERT_FAIL_OPEN alert_id holds
 * the id to publish with. Thread-safe. The same as dd_windows_known_open,
 * then a new id and dd_windows_open without a stash. */
enum dd_verdict dd_windows_check(struct dd_windows *w, const char *key, int64_t ts_us,
                                 char alert_id[33]);

/* The cheap half of a decision: 1 when key is inside a window this replica
 * knows is open (counted as a memory hit). No Redis call. Thread-safe. */
int dd_windows_known_open(struct dd_windows *w, const char *key);

/* As dd_windows_known_open, but not counted: for a caller that only wants
 * to know whether a sighting would be suppressed from memory. */
int dd_windows_is_open(struct dd_windows *w, const char *key);

/* The other half: open key's window for alert_id (chosen by the caller, so
 * the alert can be encoded first). With Redis, stash (may be NULL) is
 * written in the same atomic call when the window opens. Without Redis, a
 * local window, and alert_id is replaced by the derived fail-open id. */
enum dd_verdict dd_windows_open(struct dd_windows *w, const char *key, int64_t ts_us,
                                char alert_id[33], const struct dd_stash *stash);

/* The alert could not be published: forget the window so the next sighting
 * alerts again (in Redis only if it still holds alert_id). */
void dd_windows_release(struct dd_windows *w, const char *key, const char *alert_id,
                        enum dd_verdict v);

void dd_windows_get_stats(struct dd_windows *w, struct dd_windows_stats *out);

/* The counts' growth since the previous call (entries: as get_stats), so
 * callers on several threads can add it to counters without a race. */
void dd_windows_take_growth(struct dd_windows *w, struct dd_windows_stats *out);

#endif
