/* The snapshot store seam (store.snapshots): frame JPEGs kept by a backend
 * and named by a reference ("ref") that messages carry instead of a link:
 *   fs  fs:frames/<camera>/<yyyy>/<mm>/<dd>/<hh>/<trace_id>.jpg   (<dir>/<key>)
 *   s3  s3://<bucket>/<prefix>frames/<camera>/<yyyy>/<mm>/<dd>/<hh>/<trace_id>.jpg
 * (UTC capture time). Links are made from refs when a person needs one
 * (delivery, console), so they never go stale in a stored message. */
#ifndef VG_STORE_SNAPSHOT_STORE_H
#define VG_STORE_SNAPSHOT_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct vg_config;
struct vg_snap_store;

#define VG_SNAP_REF_MAX 1280    /* a ref fits in this (s3: bucket + prefix + key) */

/* The store of the config's store.snapshots (type fs|s3); a config without
 * one is fs with the legacy dispatch.snapshot_* values. */
vg_status vg_snap_store_open(struct vg_snap_store **out, const struct vg_config *cfg);
void vg_snap_store_close(struct vg_snap_store *s);
/* 1 when the config asks for snapshots: a store.snapshots section, or the
 * legacy dispatch.snapshot_dir set (fs needs a directory; open fails
 * without one, so callers that treat "no snapshots" as normal ask first). */
int vg_snap_store_configured(const struct vg_config *cfg);
const char *vg_snap_store_type(const struct vg_snap_store *s);

/* Store one frame; ref gets its reference. camera and trace_id must be
 * tokens of [A-Za-z0-9_-] (and '.' inside, never ".."): VG_ERR_INVALID. */
vg_status vg_snap_put(struct vg_snap_store *s, const char *camera, int64_t capture_ts_us,
                      const char *trace_id, const uint8_t *jpeg, size_t len, char *ref,
                      size_t cap);

/* The bytes (attachments, console): VG_ERR_NOT_FOUND, VG_ERR_TOO_LARGE over
 * max_bytes, VG_ERR_INVALID for a ref of another store or one that escapes
 * the store (.., /abs). *data is malloc'ed (free it). */
vg_status vg_snap_get(struct vg_snap_store *s, const char *ref, size_t max_bytes,
                      uint8_t **data, size_t *len);

/* A link a person can open: fs -> <console.public_url>/api/snapshots/<key>;
 * s3 -> pre-signed GET, expiry = presign_expiry_s (default 1800, seed 004),
 * never longer than the signing credentials have left. */
vg_status vg_snap_link(struct vg_snap_store *s, const char *ref, char *url, size_t cap);

/* Retention pass: fs by age and total size; s3: nothing (lifecycle rules in
 * the template). *removed gets the number of snapshots deleted. */
vg_status vg_snap_prune(struct vg_snap_store *s, size_t *removed);

/* ---- helpers shared by the backends and the console ---------------------- */

/* The key of a frame: frames/<camera>/<yyyy>/<mm>/<dd>/<hh>/<trace_id>.jpg. */
vg_status vg_snap_key(const char *camera, int64_t capture_ts_us, const char *trace_id,
                      char *key, size_t cap);
/* VG_OK when key is a relative path of safe segments (no "..", no leading
 * '/', no empty segment, no '\\' or control bytes) under frames/. */
vg_status vg_snap_check_key(const char *key);
/* The fs store's key of a console path ("/api/snapshots/<key>" is served as
 * vg_snap_get of "fs:<key>"): writes "fs:<key>" into ref. */
vg_status vg_snap_ref_of_key(const char *key, char *ref, size_t cap);

#endif
