/* What the store seams' backends implement (not for services: they use
 * snapshot_store.h and meta_store.h). Each backend is one file with a const
 * ops table that owns its configuration keys (opts.h), bound from its map
 * under store.snapshots / store.metadata. */
#ifndef VG_STORE_INTERNAL_H
#define VG_STORE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "opts.h"
#include "store/meta_store.h"
#include "store/snapshot_store.h"

#define VG_STORE_SETTINGS_MAX 4096  /* bytes of one backend's settings struct */

struct vg_ynode;

/* ---- snapshots ------------------------------------------------------------ */

struct vg_snap_ops {
    const char *name;                   /* store.snapshots.type */
    const char *ref_scheme;             /* "fs:" or "s3://" */
    const struct vg_opt *opts;
    size_t settings_size;
    /* settings: bound from the map (defaults first); where names the place
     * for errors ("config.yaml:12: store.snapshots"). */
    vg_status (*open)(void **state, void *settings, const struct vg_config *cfg,
                      const char *where);
    void (*close)(void *state);
    /* key: frames/<camera>/<yyyy>/<mm>/<dd>/<hh>/<trace_id>.jpg, checked. */
    vg_status (*put)(void *state, const char *key, const uint8_t *jpeg, size_t len, char *ref,
                     size_t cap);
    /* ref: starts with ref_scheme (the registry checked that much). */
    vg_status (*get)(void *state, const char *ref, size_t max_bytes, uint8_t **data,
                     size_t *len);
    vg_status (*link)(void *state, const char *ref, char *url, size_t cap);
    vg_status (*prune)(void *state, size_t *removed);   /* NULL: nothing to do */
};

extern const struct vg_snap_ops vg_snap_fs;
extern const struct vg_snap_ops vg_snap_s3;

/* ---- metadata ------------------------------------------------------------- */

/* The keys every metadata store has (seed 004's fetcher settings). */
struct vg_meta_common {
    char type[32];
    int fetch_horizon_hrs;
    int fetch_limit;
};

/* A query after the registry filled in the defaults: from_us <= to_us, limit
 * 1..VG_META_LIMIT_MAX, kinds a non-zero mask. */
struct vg_meta_range {
    const char *camera;
    int64_t from_us, to_us;
    unsigned kinds;
    int limit;
};

struct vg_meta_ops {
    const char *name;
    const struct vg_opt *opts;
    size_t settings_size;
    vg_status (*open)(void **state, void *settings, const struct vg_config *cfg,
                      struct vg_redis *redis, const char *where);
    void (*close)(void *state);
    /* camera and id were checked (tokens without '|' or '#'). */
    vg_status (*put)(void *state, enum vg_meta_kind kind, const char *camera, int64_t ts_us,
                     const char *id, const char *json);
    /* Newest first, at most q->limit records of q->kinds; out is empty on entry. */
    vg_status (*query)(void *state, const struct vg_meta_range *q, struct vg_meta_result *out);
};

extern const struct vg_meta_ops vg_meta_redis;
extern const struct vg_meta_ops vg_meta_dynamodb;

/* Append one record (copies id and json) to out. */
vg_status vg_meta_result_add(struct vg_meta_result *out, size_t *cap, enum vg_meta_kind kind,
                             int64_t ts_us, const char *id, const char *json, size_t json_len);

/* ---- shared --------------------------------------------------------------- */

/* The map store.<name> of the config (NULL in *map when absent), its root to
 * free with vg_yaml_free. */
vg_status vg_store_section(const struct vg_config *cfg, const char *name,
                           struct vg_ynode **root, const struct vg_ynode **map);
/* The scalar map[key], or NULL. */
const char *vg_store_map_scalar(const struct vg_ynode *map, const char *key);

/* A camera id or trace id fit for a key: 1..128 of [A-Za-z0-9_.-], not
 * starting with '.'. */
int vg_store_token_ok(const char *s);

#endif
