/* Alerts and incidents kept in the metadata store (lib/store/meta_store.h)
 * for the console and the frame fetcher: a record per alert, and the latest
 * state of each incident (one record per incident id, replaced as it grows).
 * Best effort: a store that is down costs the record, never the alert. */
#ifndef DD_RECORDS_H
#define DD_RECORDS_H

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

struct dd_records;

/* *out is NULL (and VG_OK) when the store cannot be reached now; a
 * configuration error fails. */
vg_status dd_records_open(struct dd_records **out, const struct vg_config *cfg);
void dd_records_close(struct dd_records *r);

/* Thread-safe; r may be NULL. */
void dd_records_alert(struct dd_records *r, const Vigil__V1__Alert *a);
void dd_records_incident(struct dd_records *r, const char *camera, const Vigil__V1__Incident *m);

#endif
