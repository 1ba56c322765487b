/* The "fs" snapshot store: frame JPEGs under a directory, one per trace id. */
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

#endif
