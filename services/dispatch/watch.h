/* Per-camera watch list: which labels may alert, above which confidence. */
#ifndef DISP_WATCH_H
#define DISP_WATCH_H

#include <stddef.h>

#include "config.h"
#include "detect/detector.h"

/* Keep the labels of cam's watch list that reach its minimum confidence,
 * compacting labels in place; returns the number kept. An empty watch list
 * keeps every label. */
size_t disp_watch_filter(const struct vg_camera_cfg *cam, struct vg_label *labels, size_t n);

#endif
