/* The console's cache of assembled clips: <recording.dir>/.clips/<name>.mp4.
 * A clip is assembled once (a per-file lock, so parallel requests for the
 * same link wait for the first instead of assembling it again, also across
 * console processes on one disk) and reused; unused clips are pruned by age
 * and the cache by total size. */
#ifndef CON_CLIP_CACHE_H
#define CON_CLIP_CACHE_H

#include <stdint.h>

#include "clip/assemble.h"
#include "status.h"

struct console;

/* An open descriptor of the clip named name (no directory, no ".."), made
 * from camera_dir's recording for [start_us, end_us) when not cached.
 * *fresh: 1 when assembled by this call (info then filled in). A clip that
 * ends early while the recording may still grow (end_us less than
 * keep_after_us ago) is served but not kept. Errors as vg_clip_assemble. */
vg_status con_cache_open(struct console *con, const char *name, const char *camera_dir,
                         int64_t start_us, int64_t end_us, int64_t keep_after_us, int *fd,
                         int *fresh, struct vg_clip_info *info);

/* Delete clips unused for max_age_s, then the least recently used above
 * max_bytes, and leftovers (.tmp of a crashed assembly, idle lock files).
 * Runs at most once a minute unless force. */
void con_cache_prune(struct console *con, int64_t max_age_s, int64_t max_bytes, int force);

#endif
