/* What dispatch keeps of an analysed frame: its snapshot in the snapshot
 * store (lib/store/snapshot_store.h) and its enriched record in the metadata
 * store (lib/store/meta_store.h) — camera, capture time, labels with
 * confidences, boxes and zones, the snapshot reference — the frames seed
 * 004's frame fetcher serves. A store that fails costs the record, never
 * the detection. */
#ifndef DISP_EVIDENCE_H
#define DISP_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

struct disp_evidence;
struct vg_snap_store;

/* Snapshots are stored when the configuration has a `store.snapshots`
 * section or the legacy dispatch.snapshot_dir; frame records always (the
 * metadata store defaults to Redis). */
vg_status disp_evidence_open(struct disp_evidence **out, const struct vg_config *cfg);
void disp_evidence_close(struct disp_evidence *e);

/* NULL when snapshots are not stored. */
struct vg_snap_store *disp_evidence_snaps(struct disp_evidence *e);

/* Store jpeg for the frame of h; ref gets its reference ("" on failure,
 * counted and logged). */
void disp_evidence_snapshot(struct disp_evidence *e, const Vigil__V1__Header *h,
                            const uint8_t *jpeg, size_t len, char *ref, size_t cap);

/* The frame record of a published Detection (thread-safe). */
void disp_evidence_frame(struct disp_evidence *e, const Vigil__V1__Detection *det);

/* Retention pass of the snapshot store. */
void disp_evidence_prune(struct disp_evidence *e);

#endif
