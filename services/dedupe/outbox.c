#include "outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define PUBLISH_TRIES 4
/* The sweep tries each record twice (the stream re-created in between),
 * then leaves it to the next lease: a sweep never waits out an outage. */
#define SWEEP_TRIES 2

struct dd_outbox {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    int64_t stream_max_age_s;
    int dup_window_s;
    struct vg_counter *stream_recreated, *recovered, *invalid, *waiting;
};

vg_status dd_outbox_create(struct dd_outbox **out, struct vg_svc *svc)
{
    struct dd_outbox *o = calloc(1, sizeof(*o));
    if (!o)
        return VG_ERR_NOMEM;
    o->svc = svc;
    o->cfg = vg_svc_config(svc);
    o->stream_max_age_s = (int64_t)o->cfg->notifier.stream_max_age_h * 3600;
    o->dup_window_s = vg_alerts_dup_window_s(o->cfg);
    o->stream_recreated = vg_counter_get("vigil_dedupe_stream_ensured_total",
                                         "Alerts stream re-created or checked after a refusal");
    o->recovered = vg_counter_get("vigil_dedupe_alerts_recovered_total",
                                  "Pending alerts republished by the recovery sweep");
    o->invalid = vg_counter_get("vigil_dedupe_pending_invalid_total",
                                "Pending records dropped because they could not be decoded");
    o->waiting = vg_gauge_get("vigil_dedupe_pending_alerts",
                              "Alerts decided but not yet known stored (at the last sweep)");
    *out = o;
    return VG_OK;
}

void dd_outbox_destroy(struct dd_outbox *o) { free(o); }

vg_status dd_outbox_ensure_stream(struct dd_outbox *o)
{
    char stream[64];
    vg_status st = vg_bus_ensure_stream(vg_svc_bus(o->svc), "alerts", o->stream_max_age_s,
                                        o->dup_window_s, stream, sizeof(stream));
    if (st != VG_OK)
        VG_WARN("bus.stream_failed", NULL, "%s", vg_err_detail());
    return st;
}

vg_status dd_outbox_stash(struct dd_outbox *o, const Vigil__V1__Alert *a, struct dd_stash *s)
{
    return dd_stash_init(s, o->cfg->prefix, a->alert_id, &a->base,
                         vg_bus_max_payload(vg_svc_bus(o->svc)), o->stream_max_age_s * 1000);
}

vg_status dd_outbox_restash(struct dd_outbox *o, const Vigil__V1__Alert *a)
{
    struct dd_stash stash;
    int replaced = 0;
    vg_status st = dd_outbox_stash(o, a, &stash);
    if (st == VG_OK)
        st = dd_pending_replace(vg_svc_redis(o->svc), &stash, &replaced);
    dd_stash_cleanup(&stash);
    return st;
}

static vg_status publish_tries(struct dd_outbox *o, const Vigil__V1__Alert *a, int tries)
{
    char subject[256];
    struct vg_bus *bus = vg_svc_bus(o->svc);
    vg_subject(subject, sizeof(subject), o->cfg->prefix, "alerts", a->header->camera_id);
    /* The same msg id on every try: JetStream stores the alert once. Even
     * while stopping (the drain still delivers detections) each alert gets
     * its first try; only the waits between retries are cut short. */
    vg_status st = VG_ERR_STOPPED;
    for (int i = 0; i < tries; i++) {
        if ((st = vg_bus_js_publish(bus, subject, &a->base, a->alert_id)) == VG_OK)
            return VG_OK;
        if (i + 1 == tries || vg_svc_stopping(o->svc))
            break;
        vg_sleep_us(200000LL << i);
        /* Connected but refused (no responders, stream gone): re-create the
         * stream rather than wait for someone else to. */
        if (vg_bus_connected(bus) && dd_outbox_ensure_stream(o) == VG_OK)
            vg_counter_inc(o->stream_recreated);
    }
    return st;
}

static void clear(struct dd_outbox *o, const char *alert_id)
{
    /* Not fatal: a record left behind is republished by a sweep with the
     * same id, and JetStream's duplicate window drops the copy. */
    if (dd_pending_clear(vg_svc_redis(o->svc), o->cfg->prefix, alert_id) != VG_OK)
        VG_DEBUG("alert.pending_left", NULL, "alert %s: %s", alert_id, vg_err_detail());
}

vg_status dd_outbox_publish(struct dd_outbox *o, const Vigil__V1__Alert *a, int pending)
{
    vg_status st = publish_tries(o, a, PUBLISH_TRIES);
    if (st == VG_OK && pending) {
        /* Test hook: a crash after the stream stored the alert but before
         * its record is cleared; the sweep's copy must collapse. */
        vg_fault_point("dedupe.after_publish");
        clear(o, a->alert_id);
    }
    return st;
}

/* A camera id fit to be a subject token (the bytes came from Redis). */
static int token_ok(const char *s)
{
    if (!s || !*s)
        return 0;
    for (; *s; s++)
        if (*s == '.' || *s == '*' || *s == '>' || *s <= ' ' || *s == 0x7f)
            return 0;
    return 1;
}

/* Why a claimed record cannot be republished, or NULL. */
static const char *invalid(const Vigil__V1__Alert *a, const char *alert_id)
{
    if (!a->alert_id || strcmp(a->alert_id, alert_id))
        return "its alert id does not match its key";
    if (!a->header || !token_ok(a->header->camera_id))
        return "no usable camera id";
    return NULL;
}

/* 1: stored; 0: dropped or left for later (*stop: JetStream refused, so
 * the rest of the batch waits for its lease too). */
static int recover_one(struct dd_outbox *o, const struct dd_pending_item *it, int *stop)
{
    Vigil__V1__Alert *a = NULL;
    const char *why = NULL, *cam = NULL;
    int stored = 0;
    if (vg_pb_unpack(&vigil__v1__alert__descriptor, it->data, it->len,
                     vg_bus_max_payload(vg_svc_bus(o->svc)), (ProtobufCMessage **)&a) != VG_OK)
        why = vg_err_detail();
    else
        why = invalid(a, it->alert_id);
    if (why) {
        vg_counter_inc(o->invalid);
        VG_ERROR("alert.pending_invalid", NULL, "pending alert %s dropped: %s", it->alert_id,
                 why);
        clear(o, it->alert_id);
        goto out;
    }
    cam = a->header->camera_id;
    if (publish_tries(o, a, SWEEP_TRIES) != VG_OK) {
        VG_WARN("alert.recovery_failed", cam, "alert %s: %s; tried again in %d s", a->alert_id,
                vg_err_detail(), DD_PENDING_LEASE_MS / 1000);
        *stop = 1;
        goto out;
    }
    vg_counter_inc(o->recovered);
    VG_INFO("alert.recovered", cam, "%s alert %s (%s) stored by the recovery sweep", a->key,
            a->alert_id, a->label);
    clear(o, a->alert_id);
    stored = 1;
out:
    if (a)
        protobuf_c_message_free_unpacked(&a->base, NULL);
    return stored;
}

int dd_outbox_sweep(struct dd_outbox *o)
{
    struct vg_redis *r = vg_svc_redis(o->svc);
    struct dd_pending_item items[DD_PENDING_BATCH];
    int n = 0, stored = 0, stop = 0;
    if (!r)
        return 0;
    vg_status st = dd_pending_claim(r, o->cfg->prefix, DD_PENDING_BATCH, DD_PENDING_LEASE_MS,
                                    items, &n);
    if (st != VG_OK) {
        /* Redis down: nothing to recover from (dedupe is failing open). */
        if (st != VG_ERR_UNAVAILABLE)
            VG_WARN("recovery.failed", NULL, "%s", vg_err_detail());
        return 0;
    }
    for (int i = 0; i < n && !stop && !vg_svc_stopping(o->svc); i++)
        stored += recover_one(o, &items[i], &stop);
    dd_pending_items_free(items, n);
    int64_t waiting = dd_pending_count(r, o->cfg->prefix);
    if (waiting >= 0)
        vg_gauge_set(o->waiting, waiting);
    return stored;
}
