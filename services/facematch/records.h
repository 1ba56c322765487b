/* Identities kept in the metadata store (lib/store/meta_store.h): who was
 * seen in which frame, joined to the frame's record by trace id in the
 * frame fetcher. Best effort: a store that is down costs the record only. */
#ifndef FM_RECORDS_H
#define FM_RECORDS_H

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

struct fm_records;

/* *out is NULL (and VG_OK) when the store cannot be reached now. */
vg_status fm_records_open(struct fm_records **out, const struct vg_config *cfg);
void fm_records_close(struct fm_records *r);

/* Thread-safe; r may be NULL. */
void fm_records_identity(struct fm_records *r, const Vigil__V1__FaceMatch *m);

#endif
