#include "bus.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/rand.h>

#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define MAX_SUBS 16
#define DRAIN_TIMEOUT_MS 10000

struct sub {
    natsSubscription *ns;
    vg_bus_handler handler;
    void *ctx;
    struct vg_counter *dropped;
    int64_t dropped_seen; /* atomic: drops already added to the counter */
};

struct vg_bus {
    natsConnection *nc;
    jsCtx *js;
    size_t max_payload;
    char prefix[32];
    int n_subs;
    struct sub subs[MAX_SUBS];
};

static char producer[160] = "vigil";

void vg_set_producer(const char *svc)
{
    char host[64] = "localhost";
    gethostname(host, sizeof(host) - 1);
    snprintf(producer, sizeof(producer), "%s@%s:%d", svc, host, (int)getpid());
}

const char *vg_producer(void) { return producer; }

void vg_new_id(char out[33])
{
    unsigned char raw[16];
    if (RAND_bytes(raw, sizeof(raw)) != 1) {
        /* The CSPRNG failing is near impossible; fall back to time and pid
         * so ids stay unique enough rather than aborting the pipeline. */
        int64_t t = vg_mono_us() ^ vg_now_us();
        memcpy(raw, &t, sizeof(t));
        int pid = getpid();
        memcpy(raw + 8, &pid, sizeof(pid));
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", raw[i]);
}

void vg_subject(char *out, size_t cap, const char *prefix, const char *kind, const char *camera)
{
    snprintf(out, cap, "%s.%s.%s", prefix, kind, camera);
}

static vg_status nats_err(natsStatus s, const char *what)
{
    const char *last = nats_GetLastError(NULL);
    return vg_errf(VG_ERR_NATS, "%s: %s%s%s", what, natsStatus_GetText(s),
                   last && *last ? ": " : "", last ? last : "");
}

static void on_disconnected(natsConnection *nc, void *closure)
{
    if (natsConnection_IsClosed(nc) || natsConnection_IsDraining(nc))
        return; /* our own shutdown */
    VG_WARN("nats.disconnected", NULL, "lost the NATS connection; reconnecting");
}

static void on_reconnected(natsConnection *nc, void *closure)
{
    VG_INFO("nats.reconnected", NULL, "NATS connection is back");
}

static void on_async_error(natsConnection *nc, natsSubscription *sub, natsStatus err, void *c)
{
    static struct vg_counter *slow;
    if (!slow)
        slow = vg_counter_get("vigil_bus_async_errors_total",
                              "NATS asynchronous errors (slow consumer drops and others)");
    vg_counter_inc(slow);
    int64_t dropped = 0;
    if (sub && err == NATS_SLOW_CONSUMER && natsSubscription_GetDropped(sub, &dropped) == NATS_OK)
        VG_WARN("nats.slow_consumer", NULL, "%s: messages dropped on %s (%lld so far; "
                "see vigil_bus_dropped_messages_total)", natsStatus_GetText(err),
                natsSubscription_GetSubject(sub), (long long)dropped);
    else
        VG_WARN("nats.async_error", NULL, "%s", natsStatus_GetText(err));
}

static vg_status make_options(natsOptions **out, const struct vg_config *cfg, const char *name,
                              unsigned flags)
{
    natsOptions *o = NULL;
    natsStatus s = natsOptions_Create(&o);
    if (s == NATS_OK) s = natsOptions_SetURL(o, cfg->nats_url);
    if (s == NATS_OK) s = natsOptions_SetName(o, name);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(o, -1);
    if (s == NATS_OK) s = natsOptions_SetReconnectWait(o, 500);
    if (s == NATS_OK) s = natsOptions_SetReconnectJitter(o, 100, 1000);
    if (s == NATS_OK) s = natsOptions_SetTimeout(o, 2000);
    /* Keep publishing while reconnecting: buffered, flushed on reconnect. */
    if (s == NATS_OK) s = natsOptions_SetReconnectBufSize(o, 32 * 1024 * 1024);
    if (s == NATS_OK) s = natsOptions_SetDisconnectedCB(o, on_disconnected, NULL);
    if (s == NATS_OK) s = natsOptions_SetReconnectedCB(o, on_reconnected, NULL);
    if (s == NATS_OK) s = natsOptions_SetErrorHandler(o, on_async_error, NULL);
    /* Without it the library holds buffered writes for up to 1 ms, which
     * every JetStream request (publish ack, pull fetch) then waits out. */
    if (s == NATS_OK && (flags & VG_BUS_SEND_ASAP)) s = natsOptions_SetSendAsap(o, true);
    if (s != NATS_OK) {
        natsOptions_Destroy(o);
        return nats_err(s, "nats options");
    }
    *out = o;
    return VG_OK;
}

vg_status vg_bus_connect(struct vg_bus **out, const struct vg_config *cfg, const char *name,
                         int connect_wait_ms)
{
    return vg_bus_connect_ex(out, cfg, name, connect_wait_ms, 0);
}

vg_status vg_bus_connect_ex(struct vg_bus **out, const struct vg_config *cfg, const char *name,
                            int connect_wait_ms, unsigned flags)
{
    natsOptions *opts = NULL;
    struct vg_bus *bus = NULL;
    vg_status st = make_options(&opts, cfg, name, flags);
    if (st != VG_OK)
        return st;
    bus = calloc(1, sizeof(*bus));
    if (!bus) {
        st = VG_ERR_NOMEM;
        goto out;
    }
    bus->max_payload = (size_t)cfg->max_payload;
    snprintf(bus->prefix, sizeof(bus->prefix), "%s", cfg->prefix);
    int64_t deadline = vg_mono_us() + (int64_t)connect_wait_ms * 1000;
    for (;;) {
        natsStatus s = natsConnection_Connect(&bus->nc, opts);
        if (s == NATS_OK)
            break;
        char masked[VG_URL_MAX];
        vg_cfg_mask_url(masked, sizeof(masked), cfg->nats_url);
        st = nats_err(s, masked);
        if (vg_mono_us() >= deadline)
            goto out;
        vg_sleep_us(250000);
    }
    natsStatus s = natsConnection_JetStream(&bus->js, bus->nc, NULL);
    if (s != NATS_OK) {
        st = nats_err(s, "jetstream context");
        goto out;
    }
    int64_t server_max = natsConnection_GetMaxPayload(bus->nc);
    if (server_max > 0 && (size_t)server_max < bus->max_payload)
        bus->max_payload = (size_t)server_max;
    *out = bus;
    bus = NULL;
    st = VG_OK;
out:
    natsOptions_Destroy(opts);
    vg_bus_destroy(bus);
    return st;
}

void vg_bus_destroy(struct vg_bus *bus)
{
    if (!bus)
        return;
    if (bus->nc) {
        /* Drain: stop intake, let in-flight handlers finish, flush, close. */
        if (natsConnection_DrainTimeout(bus->nc, DRAIN_TIMEOUT_MS) == NATS_OK) {
            int64_t deadline = vg_mono_us() + (DRAIN_TIMEOUT_MS + 1000) * 1000LL;
            while (!natsConnection_IsClosed(bus->nc) && vg_mono_us() < deadline)
                vg_sleep_us(10000);
        }
        natsConnection_Close(bus->nc);
    }
    for (int i = 0; i < bus->n_subs; i++)
        natsSubscription_Destroy(bus->subs[i].ns);
    jsCtx_Destroy(bus->js);
    natsConnection_Destroy(bus->nc);
    free(bus);
}

int vg_bus_connected(const struct vg_bus *bus)
{
    return bus && bus->nc && natsConnection_Status(bus->nc) == NATS_CONN_STATUS_CONNECTED;
}

natsConnection *vg_bus_nats(struct vg_bus *bus) { return bus->nc; }
jsCtx *vg_bus_js(struct vg_bus *bus) { return bus->js; }
size_t vg_bus_max_payload(const struct vg_bus *bus) { return bus->max_payload; }

vg_status vg_pb_pack(const ProtobufCMessage *m, size_t max, uint8_t **out, size_t *len)
{
    size_t n = protobuf_c_message_get_packed_size(m);
    if (n > max)
        return vg_errf(VG_ERR_TOO_LARGE, "%s is %zu bytes, limit %zu", m->descriptor->name, n,
                       max);
    uint8_t *buf = malloc(n ? n : 1);
    if (!buf)
        return VG_ERR_NOMEM;
    protobuf_c_message_pack(m, buf);
    *out = buf;
    *len = n;
    return VG_OK;
}

vg_status vg_pb_unpack(const ProtobufCMessageDescriptor *d, const void *data, size_t len,
                       size_t max, ProtobufCMessage **out)
{
    if (len > max)
        return vg_errf(VG_ERR_TOO_LARGE, "%s payload is %zu bytes, limit %zu", d->name, len, max);
    ProtobufCMessage *m = protobuf_c_message_unpack(d, NULL, len, data);
    if (!m)
        return vg_errf(VG_ERR_DECODE, "payload of %zu bytes is not a valid %s", len, d->name);
    *out = m;
    return VG_OK;
}

vg_status vg_bus_publish_raw(struct vg_bus *bus, const char *subject, const void *data, size_t len)
{
    natsStatus s = natsConnection_Publish(bus->nc, subject, data, (int)len);
    return s == NATS_OK ? VG_OK : nats_err(s, subject);
}

vg_status vg_bus_publish(struct vg_bus *bus, const char *subject, const ProtobufCMessage *m)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    vg_status st = vg_pb_pack(m, bus->max_payload, &buf, &len);
    if (st == VG_OK)
        st = vg_bus_publish_raw(bus, subject, buf, len);
    free(buf);
    return st;
}

/* Core NATS drops what a slow subscriber cannot queue; count every dropped
 * message (the async error fires once per episode, so poll here: a drop
 * always leaves a full queue behind it, so a delivery follows). */
static void account_drops(struct sub *s)
{
    int64_t now = 0;
    if (natsSubscription_GetDropped(s->ns, &now) != NATS_OK)
        return;
    int64_t seen = __atomic_load_n(&s->dropped_seen, __ATOMIC_RELAXED);
    while (now > seen) {
        if (__atomic_compare_exchange_n(&s->dropped_seen, &seen, now, 0, __ATOMIC_RELAXED,
                                        __ATOMIC_RELAXED)) {
            vg_counter_add(s->dropped, (uint64_t)(now - seen));
            return;
        }
    }
}

static void on_msg(natsConnection *nc, natsSubscription *ns, natsMsg *msg, void *closure)
{
    struct sub *s = closure;
    account_drops(s);
    s->handler(s->ctx, natsMsg_GetSubject(msg), natsMsg_GetData(msg),
               (size_t)natsMsg_GetDataLength(msg));
    natsMsg_Destroy(msg);
}

vg_status vg_bus_subscribe(struct vg_bus *bus, const char *subject, const char *queue,
                           vg_bus_handler handler, void *ctx)
{
    if (bus->n_subs == MAX_SUBS)
        return vg_errf(VG_ERR_INVALID, "more than %d subscriptions", MAX_SUBS);
    struct sub *s = &bus->subs[bus->n_subs];
    s->handler = handler;
    s->ctx = ctx;
    s->dropped = vg_counter_get("vigil_bus_dropped_messages_total",
                                "Messages the NATS client dropped: the subscriber was too slow");
    s->dropped_seen = 0;
    natsStatus ns = queue
        ? natsConnection_QueueSubscribe(&s->ns, bus->nc, subject, queue, on_msg, s)
        : natsConnection_Subscribe(&s->ns, bus->nc, subject, on_msg, s);
    if (ns != NATS_OK)
        return nats_err(ns, subject);
    /* Frames are large: bound the backlog by bytes, not only by count. */
    natsSubscription_SetPendingLimits(s->ns, 65536, 256 * 1024 * 1024);
    bus->n_subs++;
    return VG_OK;
}

void vg_stream_name(char *out, size_t cap, const char *prefix, const char *kind)
{
    snprintf(out, cap, "%s_%s", prefix, kind);
    for (char *p = out; *p; p++)
        *p = (char)toupper((unsigned char)*p);
}

/* The stream exists: apply vigil's subjects, age and duplicate window to
 * its current configuration, keeping what an operator tuned (replicas,
 * size limits, ...). A refused update leaves a stream that still stores
 * our subjects, so it is a warning, not an error. */
static void update_stream(struct vg_bus *bus, const jsStreamConfig *want)
{
    jsStreamInfo *si = NULL, *updated = NULL;
    jsErrCode jerr = 0;
    if (js_GetStreamInfo(&si, bus->js, want->Name, NULL, &jerr) != NATS_OK || !si->Config) {
        VG_WARN("bus.stream_update_failed", NULL, "stream %s: cannot read its configuration "
                "(error %d)", want->Name, (int)jerr);
        jsStreamInfo_Destroy(si);
        return;
    }
    jsStreamConfig *have = si->Config;
    const char **subjects = have->Subjects;
    int n_subjects = have->SubjectsLen;
    int64_t max_age = have->MaxAge, duplicates = have->Duplicates;
    if (max_age != want->MaxAge || duplicates != want->Duplicates || n_subjects != 1 ||
        strcmp(subjects[0], want->Subjects[0]) != 0) {
        /* The info owns its strings: borrow ours, then put its own back. */
        have->Subjects = want->Subjects;
        have->SubjectsLen = want->SubjectsLen;
        have->MaxAge = want->MaxAge;
        have->Duplicates = want->Duplicates;
        if (js_UpdateStream(&updated, bus->js, have, NULL, &jerr) != NATS_OK)
            VG_WARN("bus.stream_update_failed", NULL, "stream %s kept as is (error %d)",
                    want->Name, (int)jerr);
        have->Subjects = subjects;
        have->SubjectsLen = n_subjects;
        have->MaxAge = max_age;
        have->Duplicates = duplicates;
    }
    jsStreamInfo_Destroy(updated);
    jsStreamInfo_Destroy(si);
}

vg_status vg_bus_ensure_stream(struct vg_bus *bus, const char *kind, int64_t max_age_s,
                               int dup_window_s, char *name_out, size_t cap)
{
    jsStreamConfig sc;
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    char subject[96];
    const char *subjects[1] = {subject};

    vg_stream_name(name_out, cap, bus->prefix, kind);
    vg_subject(subject, sizeof(subject), bus->prefix, kind, ">");
    jsStreamConfig_Init(&sc);
    sc.Name = name_out;
    sc.Subjects = subjects;
    sc.SubjectsLen = 1;
    sc.Storage = js_FileStorage;
    sc.MaxAge = max_age_s * 1000000000LL;
    sc.Duplicates = (int64_t)dup_window_s * 1000000000LL;
    natsStatus s = js_AddStream(&si, bus->js, &sc, NULL, &jerr);
    if (s != NATS_OK && jerr == JSStreamNameExistErr) {
        update_stream(bus, &sc);
        s = NATS_OK;
    }
    jsStreamInfo_Destroy(si);
    if (s != NATS_OK && jerr == JSStreamSubjectOverlapErr)
        return vg_errf(VG_ERR_NATS, "stream %s: another stream already keeps %s", name_out,
                       subject);
    if (s != NATS_OK)
        return vg_errf(VG_ERR_NATS, "stream %s: %s: %s (jetstream error %d)", name_out,
                       natsStatus_GetText(s), nats_GetLastError(NULL), (int)jerr);
    return VG_OK;
}

vg_status vg_bus_js_publish(struct vg_bus *bus, const char *subject, const ProtobufCMessage *m,
                            const char *msg_id)
{
    uint8_t *buf = NULL;
    size_t len = 0;
    jsPubOptions po;
    jsPubAck *pa = NULL;
    jsErrCode jerr = 0;
    vg_status st = vg_pb_pack(m, bus->max_payload, &buf, &len);
    if (st != VG_OK)
        return st;
    jsPubOptions_Init(&po);
    po.MsgId = msg_id;
    po.MaxWait = 5000;
    natsStatus s = js_Publish(&pa, bus->js, subject, buf, (int)len, &po, &jerr);
    if (s != NATS_OK)
        st = vg_errf(VG_ERR_NATS, "jetstream publish %s: %s (error %d)", subject,
                     natsStatus_GetText(s), (int)jerr);
    jsPubAck_Destroy(pa);
    free(buf);
    return st;
}

void vg_header_fill(Vigil__V1__Header *h, const char *camera, int64_t capture_ts_us,
                    const char *trace_id)
{
    /* trace_id storage: the caller's, or a per-thread buffer for a new one. */
    static _Thread_local char fresh[33];
    if (!trace_id) {
        vg_new_id(fresh);
        trace_id = fresh;
    }
    h->camera_id = (char *)camera;
    h->capture_ts_us = capture_ts_us;
    h->trace_id = (char *)trace_id;
    h->producer = (char *)vg_producer();
    h->publish_ts_us = vg_now_us();
}

void vg_header_follow(Vigil__V1__Header *dst, const Vigil__V1__Header *src)
{
    vg_header_fill(dst, src->camera_id, src->capture_ts_us,
                   src->trace_id ? src->trace_id : "");
}

static const Vigil__V1__Header *header_of(const ProtobufCMessage *m)
{
    const ProtobufCFieldDescriptor *f =
        protobuf_c_message_descriptor_get_field_by_name(m->descriptor, "header");
    if (!f || f->type != PROTOBUF_C_TYPE_MESSAGE)
        return NULL;
    return *(const Vigil__V1__Header *const *)((const char *)m + f->offset);
}

ProtobufCMessage *vg_bus_decode(struct vg_bus *bus, const ProtobufCMessageDescriptor *d,
                                const char *subject, const void *data, size_t len,
                                struct vg_counter *malformed)
{
    ProtobufCMessage *m = NULL;
    vg_status st = vg_pb_unpack(d, data, len, bus->max_payload, &m);
    if (st == VG_OK) {
        const Vigil__V1__Header *h = header_of(m);
        if (!h || !h->camera_id || !h->camera_id[0])
            st = vg_errf(VG_ERR_INVALID, "%s without a header camera_id", d->short_name);
    }
    if (st != VG_OK) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        vg_counter_inc(malformed);
        VG_WARN("message.malformed", NULL, "dropped message on %s: %s", subject,
                vg_err_detail());
        return NULL;
    }
    return m;
}

int vg_alerts_dup_window_s(const struct vg_config *cfg)
{
    int64_t max_age = (int64_t)cfg->notifier.stream_max_age_h * 3600;
    int64_t dup = cfg->dedupe.window_s > 600 ? cfg->dedupe.window_s : 600;
    /* Person windows too: two replicas' fail-open greetings of one person. */
    if (cfg->dedupe.person_window_s > dup)
        dup = cfg->dedupe.person_window_s;
    return (int)(max_age > 0 && dup > max_age ? max_age : dup);
}
