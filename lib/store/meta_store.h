/* The metadata store seam (store.metadata): records of what vigil saw and
 * said, by camera and time, newest first:
 *   frame     dispatch: an analysed frame (camera, capture_ts_us, trace_id,
 *             labels [{label, raw, confidence, box{x,y,w,h}}], zones,
 *             snapshot_ref, detector)
 *   identity  facematch: trace_id, person_id, display_name, similarity, box
 *   alert     dedupe: the alert
 *   incident  dedupe
 * Backends: redis (default; one ZSET per camera) and dynamodb (one table,
 * pk camera + sk "<ts_us %016>#<kind>#<id>"). Both keep records ttl_h hours
 * (default 168); redis also at most max_records per camera. */
#ifndef VG_STORE_META_STORE_H
#define VG_STORE_META_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct vg_config;
struct vg_redis;
struct vg_snap_store;

enum vg_meta_kind { VG_META_FRAME = 1, VG_META_IDENTITY = 2, VG_META_ALERT = 4, VG_META_INCIDENT = 8 };

#define VG_META_ID_MAX 64       /* ids are 1..63 bytes without '|' or '#' */
#define VG_META_LIMIT_MAX 1000  /* a query returns at most this many records */

struct vg_meta_store;

/* The store of the config's store.metadata (type redis|dynamodb; none:
 * redis). redis may be NULL: the redis backend then connects to
 * cfg->redis_url itself. The caller keeps redis alive until close. */
vg_status vg_meta_store_open(struct vg_meta_store **out, const struct vg_config *cfg,
                             struct vg_redis *redis);
void vg_meta_store_close(struct vg_meta_store *m);
const char *vg_meta_store_type(const struct vg_meta_store *m);

/* Store one record; json is its body (a JSON text, stored as is). */
vg_status vg_meta_put(struct vg_meta_store *m, enum vg_meta_kind kind, const char *camera,
                      int64_t ts_us, const char *id, const char *json);

struct vg_meta_query {
    const char *camera;      /* required */
    int64_t from_us, to_us;  /* 0,0: the last fetch_horizon_hrs (24) up to now;
                              * to_us 0 alone: now; from_us 0 alone: to_us - horizon */
    unsigned kinds;          /* mask of enum vg_meta_kind; 0 = all */
    int limit;               /* 0: fetch_limit (default 100); capped at 1000 */
};
struct vg_meta_record { enum vg_meta_kind kind; int64_t ts_us; char id[64]; char *json; };
struct vg_meta_result { struct vg_meta_record *r; size_t n; };  /* newest first */

vg_status vg_meta_query(struct vg_meta_store *m, const struct vg_meta_query *q,
                        struct vg_meta_result *out);
void vg_meta_result_free(struct vg_meta_result *r);

/* The frame fetcher API (seed 004) the console serves: frames (with their
 * identities merged in by trace_id, and each snapshot ref turned into a link
 * through snaps, may be NULL), newest first, as a JSON text
 * {"camera":..,"from_us":..,"to_us":..,"frames":[...]} (malloc'ed). */
vg_status vg_frames_fetch(struct vg_meta_store *m, struct vg_snap_store *snaps,
                          const struct vg_meta_query *q, char **json);

/* "frame", "identity", "alert", "incident"; NULL for another value. */
const char *vg_meta_kind_name(enum vg_meta_kind kind);
/* The kind of a name; 0 when unknown. */
enum vg_meta_kind vg_meta_kind_parse(const char *name);

#endif
