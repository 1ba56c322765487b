/* The message bus: NATS connection with reconnect, protobuf publish/subscribe
 * with payload limits, queue groups, and JetStream for alerts. */
#ifndef VG_BUS_H
#define VG_BUS_H

#include <stddef.h>
#include <stdint.h>

#include <nats/nats.h>
#include <protobuf-c/protobuf-c.h>

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

struct vg_bus;

/* Called on a NATS library thread for each message received. */
typedef void (*vg_bus_handler)(void *ctx, const char *subject, const void *data, size_t len);

/* Connect to cfg->nats_url; name shows up in the server's connection list.
 * Retries the first connect for up to connect_wait_ms, then reconnects forever. */
vg_status vg_bus_connect(struct vg_bus **out, const struct vg_config *cfg, const char *name,
                         int connect_wait_ms);
/* As vg_bus_connect; flags VG_BUS_SEND_ASAP: write each message at once
 * instead of coalescing for up to 1 ms (for request/reply-bound services:
 * JetStream publishers and pull consumers). */
#define VG_BUS_SEND_ASAP 0x1u
vg_status vg_bus_connect_ex(struct vg_bus **out, const struct vg_config *cfg, const char *name,
                            int connect_wait_ms, unsigned flags);
/* Drain subscriptions (in-flight handlers finish), flush, close. NULL ok. */
void vg_bus_destroy(struct vg_bus *bus);

int vg_bus_connected(const struct vg_bus *bus);

/* "<prefix>.<kind>.<camera>" into out; camera "*" or ">" for wildcards. */
void vg_subject(char *out, size_t cap, const char *prefix, const char *kind, const char *camera);

/* Encode m (refusing payloads above cfg->max_payload) and publish on core NATS. */
vg_status vg_bus_publish(struct vg_bus *bus, const char *subject, const ProtobufCMessage *m);
vg_status vg_bus_publish_raw(struct vg_bus *bus, const char *subject, const void *data, size_t len);

/* Subscribe; queue NULL for a plain subscription. Handlers of one subscription
 * run one at a time, in order. */
vg_status vg_bus_subscribe(struct vg_bus *bus, const char *subject, const char *queue,
                           vg_bus_handler handler, void *ctx);

/* JetStream: create (or update) the file-backed stream that keeps
 * "<prefix>.<kind>.>", named "<PREFIX>_<KIND>" (VIGIL_ALERTS, VIGIL_DLQ), so
 * installations with different prefixes can share one NATS. dup_window_s is
 * how long a Nats-Msg-Id is remembered. The name is written to name_out. */
vg_status vg_bus_ensure_stream(struct vg_bus *bus, const char *kind, int64_t max_age_s,
                               int dup_window_s, char *name_out, size_t cap);
/* The alerts stream's duplicate window, the same for every service that
 * creates the stream: at least 10 minutes, at least one dedupe window, label
 * or person (the fail-open copies of one window from two replicas are at
 * most one window apart), at most the stream's max age (JetStream's rule). */
int vg_alerts_dup_window_s(const struct vg_config *cfg);
/* "<PREFIX>_<KIND>" in upper case. */
void vg_stream_name(char *out, size_t cap, const char *prefix, const char *kind);
/* Publish to JetStream and wait for the ack; msg_id deduplicates retries. */
vg_status vg_bus_js_publish(struct vg_bus *bus, const char *subject, const ProtobufCMessage *m,
                            const char *msg_id);

natsConnection *vg_bus_nats(struct vg_bus *bus);
jsCtx *vg_bus_js(struct vg_bus *bus);
size_t vg_bus_max_payload(const struct vg_bus *bus);

/* Encode with a hard limit; *out is malloc'ed, caller frees. */
vg_status vg_pb_pack(const ProtobufCMessage *m, size_t max, uint8_t **out, size_t *len);
/* Decode with a hard limit; free the result with protobuf_c_message_free_unpacked. */
vg_status vg_pb_unpack(const ProtobufCMessageDescriptor *d, const void *data, size_t len,
                       size_t max, ProtobufCMessage **out);

/* Fill a header for a message about a frame; trace may be NULL (new id). */
void vg_header_fill(Vigil__V1__Header *h, const char *camera, int64_t capture_ts_us,
                    const char *trace_id);
/* Copy the identifying fields of src into dst (strings are shared, not copied). */
void vg_header_follow(Vigil__V1__Header *dst, const Vigil__V1__Header *src);

/* Identity used in Header.producer, "<svc>@<host>:<pid>"; set by vg_svc_main. */
void vg_set_producer(const char *svc);
const char *vg_producer(void);

/* 32 lowercase hex chars + NUL. */
void vg_new_id(char out[33]);



struct vg_counter;
/* Decode a received vigil message: enforces the payload limit and that the
 * message has a header with a camera id. On failure logs "message.malformed",
 * bumps `malformed` and returns NULL. Free with protobuf_c_message_free_unpacked. */
ProtobufCMessage *vg_bus_decode(struct vg_bus *bus, const ProtobufCMessageDescriptor *d,
                                const char *subject, const void *data, size_t len,
                                struct vg_counter *malformed);
#endif
