/* The "fs" snapshot store: frame JPEGs under a directory, one per trace id,
 * pruned by age and total size. (The store seam of a later issue replaces
 * this one file.) */
#ifndef DISP_SNAPSHOT_H
#define DISP_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Write jpeg to <dir>/<camera>/<yyyy-mm-dd>/<trace_id>.jpg and put its
 * file:// URL in url. */
vg_status disp_snapshot_store(const char *dir, const char *camera, int64_t capture_ts_us,
                              const char *trace_id, const uint8_t *jpeg, size_t len,
                              char *url, size_t url_cap);

/* Delete snapshots (*.jpg under dir) modified more than max_age_s ago
 * (0: no age limit), then the oldest until the rest take at most max_bytes
 * (0: no size limit); empty day folders go too. *removed gets the count. */
vg_status disp_snapshot_prune(const char *dir, int64_t max_age_s, uint64_t max_bytes,
                              size_t *removed);

#endif
