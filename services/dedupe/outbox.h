/* How dedupe's alerts reach JetStream: published on
 * <prefix>.alerts.<camera> with the alert id as Nats-Msg-Id, retried with
 * the same id (the stream re-created when it went missing), the pending
 * record (pending.h) cleared once the stream stored it; and the recovery
 * sweep that republishes records a crash (or a long outage) left behind. */
#ifndef DD_OUTBOX_H
#define DD_OUTBOX_H

#include "pending.h"
#include "svc.h"

struct dd_outbox;

vg_status dd_outbox_create(struct dd_outbox **out, struct vg_svc *svc);
void dd_outbox_destroy(struct dd_outbox *o);

/* Create or update the alerts stream. */
vg_status dd_outbox_ensure_stream(struct dd_outbox *o);

/* The pending record of a (its alert_id set) for a deciding script. */
vg_status dd_outbox_stash(struct dd_outbox *o, const Vigil__V1__Alert *a, struct dd_stash *s);

/* a changed after its record was stashed (it joined an incident): the
 * record, if it is still there, now holds a as it is. */
vg_status dd_outbox_restash(struct dd_outbox *o, const Vigil__V1__Alert *a);

/* Publish a with up to 4 tries; pending: a has a pending record, cleared
 * once JetStream stored the alert. A failure leaves the record (if any) to
 * the sweep. */
vg_status dd_outbox_publish(struct dd_outbox *o, const Vigil__V1__Alert *a, int pending);

/* One recovery sweep: claim the pending records that are due and
 * republish them with their own ids. Returns how many were stored. */
int dd_outbox_sweep(struct dd_outbox *o);

#endif
