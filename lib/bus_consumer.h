/* Durable JetStream pull consumers: the plumbing every at-least-once reader
 * of a stream needs (the notifier has one per sink). The consumer is created
 * (or its vigil-owned settings updated) explicitly and then bound to,
 * because a consumer that the NATS library creates itself is deleted again
 * when the subscription drains, and its unacknowledged messages with it.
 * A fetch rides out NATS reconnects and a consumer that disappeared (the
 * server lost its store, someone deleted it): it is created again. */
#ifndef VG_BUS_CONSUMER_H
#define VG_BUS_CONSUMER_H

#include <stdint.h>

#include <nats/nats.h>

#include "bus.h"
#include "status.h"

struct vg_consumer_opts {
    const char *stream;         /* "VIGIL_ALERTS" */
    const char *durable;        /* "notifier-hook" */
    const char *filter;         /* "vigil.alerts.>" */
    int ack_wait_s;
    int max_deliver;            /* 0: unlimited (redelivered while the stream keeps it) */
    /* When the consumer does not exist yet: start where the first of these
     * that exists stands (its ack floor), so a replacement or an added
     * reader neither loses nor replays history. NULL-terminated; NULL or
     * none existing: start at the beginning of the stream. */
    const char *const *start_like;
};

struct vg_consumer;

vg_status vg_consumer_open(struct vg_consumer **out, struct vg_bus *bus,
                           const struct vg_consumer_opts *o);
/* Unbinds; the durable consumer and its pending messages stay on the server. */
void vg_consumer_close(struct vg_consumer *c);

/* Up to batch messages, waiting up to wait_ms. VG_OK: list filled (maybe
 * empty: idle). VG_ERR_UNAVAILABLE: the server could not be reached or the
 * consumer was gone (already being re-created): wait a little and call
 * again. VG_ERR_NATS: the connection is closed for good. */
vg_status vg_consumer_fetch(struct vg_consumer *c, natsMsgList *list, int batch, int wait_ms);

/* The server's advisory that one of this consumer's messages reached
 * max_deliver (it will not be delivered again): cb gets its stream sequence,
 * on a NATS library thread. */
vg_status vg_consumer_on_max_deliveries(struct vg_consumer *c,
                                        void (*cb)(void *ctx, uint64_t stream_seq), void *ctx);

const char *vg_consumer_name(const struct vg_consumer *c);

/* Delete a durable consumer (NATS_NOT_FOUND is not an error). */
vg_status vg_consumer_delete(struct vg_bus *bus, const char *stream, const char *durable);
/* 1 when the durable consumer exists. */
int vg_consumer_exists(struct vg_bus *bus, const char *stream, const char *durable);

/* What JetStream says about a delivered message. */
struct vg_js_meta {
    uint64_t stream_seq;
    uint64_t delivered;         /* 1 on the first delivery */
    int64_t stored_us;          /* when the stream stored it (wall clock) */
};
vg_status vg_js_meta(natsMsg *m, struct vg_js_meta *out);

/* The NATS library's detail text for the calling thread's last error, or the
 * text of ns when there is none. */
const char *vg_nats_error(natsStatus ns);

#endif
