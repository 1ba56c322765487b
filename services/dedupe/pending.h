/* Pending alerts: an alert's encoded bytes are kept in Redis from the call
 * that decides it (a window opened, a camera's health changed) until
 * JetStream has stored it, so a crash in between leaves a record that any
 * replica's recovery sweep republishes with the same alert id (JetStream's
 * duplicate window stores it once).
 *
 * "<prefix>:dd:pending:<alert_id>"  the encoded Alert (TTL: the alerts
 *                                   stream's max age: an older alert
 *                                   would be dropped from the stream anyway)
 * "<prefix>:dd:pending"             sorted set of alert ids, scored by when
 *                                   a sweep may take them (ms, Redis clock,
 *                                   so replicas' clocks need not agree)
 *
 * The record is written inside the deciding script (DD_PENDING_LUA), never
 * on its own: the window and its alert exist together or not at all. */
#ifndef DD_PENDING_H
#define DD_PENDING_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#include "redis.h"

/* The publisher's head start: a sweep takes a record this long after it was
 * written (a live replica normally clears it within milliseconds). */
#define DD_PENDING_GRACE_MS 5000
/* A claimed record is due again after this (its claimer may die too, or
 * JetStream may still refuse): longer than one publish attempt (5 s). */
#define DD_PENDING_LEASE_MS 10000
/* Records claimed per sweep. */
#define DD_PENDING_BATCH 32

/* One record, ready to be written by a deciding script. */
struct dd_stash {
    char key[192];              /* <prefix>:dd:pending:<alert_id> */
    char set[64];               /* <prefix>:dd:pending */
    char alert_id[33];
    uint8_t *data;              /* the encoded Alert */
    size_t len;
    int64_t ttl_ms;
};

/* Lua defining stash(key, set, id, bytes, ttl_ms, grace_ms), prepended to
 * the scripts that write a record atomically with their own decision. */
#define DD_PENDING_LUA                                                              \
    "local function stash(key, set, id, bytes, ttl_ms, grace_ms) "                  \
    "local t = redis.call('TIME') "                                                 \
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "       \
    "redis.call('SET', key, bytes, 'PX', ttl_ms) "                                 \
    "redis.call('ZADD', set, now + tonumber(grace_ms), id) end "

/* Encode alert (at most max bytes) into s for alert_id. */
vg_status dd_stash_init(struct dd_stash *s, const char *prefix, const char *alert_id,
                        const ProtobufCMessage *alert, size_t max, int64_t ttl_ms);
void dd_stash_cleanup(struct dd_stash *s);

/* Replace the bytes of a record that still exists (SET XX KEEPTTL): the
 * alert gained fields after its record was written (its incident). A
 * record already cleared or expired stays gone; *replaced says which. */
vg_status dd_pending_replace(struct vg_redis *r, const struct dd_stash *s, int *replaced);

/* The alert is stored in JetStream: forget its record (one round trip). */
vg_status dd_pending_clear(struct vg_redis *r, const char *prefix, const char *alert_id);

/* Longer ids in the set are not ours: the claim drops them. */
#define DD_PENDING_ID_MAX 64

struct dd_pending_item {
    char alert_id[DD_PENDING_ID_MAX + 1];
    uint8_t *data;
    size_t len;
};

/* Claim up to max (<= DD_PENDING_BATCH) records that are due: each moves
 * lease_ms into the future in the same atomic call, so two replicas never
 * claim one record at once, and a claimer that dies leaves it due again.
 * Ids whose bytes expired are forgotten. Free with dd_pending_items_free. */
vg_status dd_pending_claim(struct vg_redis *r, const char *prefix, int max, int lease_ms,
                           struct dd_pending_item *items, int *n);
void dd_pending_items_free(struct dd_pending_item *items, int n);

/* Records waiting (due or not); -1 when Redis cannot tell. */
int64_t dd_pending_count(struct vg_redis *r, const char *prefix);

#endif
