/* Dead letters: a copy of the alert on <prefix>.dlq.notifier, kept in the
 * stream <PREFIX>_DLQ (30 days) with headers saying which sink gave up and
 * why, until `vigilctl dlq replay` brings it back. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "ntf.h"

#define DLQ_WAIT_MS 5000
#define HEADER_VALUE_MAX 400

static void header_value(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    out[n] = '\0';
}

static natsStatus set_header(natsMsg *m, const char *key, const char *value)
{
    char v[HEADER_VALUE_MAX];
    header_value(v, sizeof(v), value);
    return *v ? natsMsgHeader_Set(m, key, v) : NATS_OK;
}

vg_status ntf_dlq_publish(struct ntf *n, const void *data, size_t len, const char *msg_id,
                          const char *sink, const char *alert_id, const char *error)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = DLQ_WAIT_MS;
    po.MsgId = msg_id;

    natsStatus ns = natsMsg_Create(&m, n->dlq_subject, NULL, data, (int)len);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Vigil-Stage", "notifier");
    if (ns == NATS_OK)
        ns = set_header(m, "Vigil-Sink", sink);
    if (ns == NATS_OK)
        ns = set_header(m, "Vigil-Alert-Id", alert_id);
    if (ns == NATS_OK)
        ns = set_header(m, "Vigil-Error", error);
    if (ns == NATS_OK)
        ns = js_PublishMsg(NULL, vg_bus_js(n->bus), m, &po, &jerr);
    natsMsg_Destroy(m);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "publish %s: %s (jetstream error %d)", n->dlq_subject,
                       vg_nats_error(ns), (int)jerr);
    return VG_OK;
}

/* With a max_deliver set, a message whose last delivery timed out (the
 * replica died) is dropped by the server without a word to any client,
 * except this advisory: fetch the alert from the stream and dead-letter it. */
static void on_max_deliveries(void *ctx, uint64_t seq)
{
    struct ntf_worker *w = ctx;
    struct ntf *n = w->n;
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    char id[VG_ID_MAX + 48], alert_id[VG_ID_MAX + 1] = "";

    natsStatus ns = js_GetMsg(&m, vg_bus_js(n->bus), n->stream, seq, NULL, &jerr);
    if (ns != NATS_OK) {
        VG_ERROR("alert.dropped", NULL, "stream seq %llu reached max_deliver for sink %s and "
                 "could not be read back: %s", (unsigned long long)seq, w->cfg->name,
                 vg_nats_error(ns));
        return;
    }
    const void *data = natsMsg_GetData(m);
    int len = natsMsg_GetDataLength(m);
    ProtobufCMessage *pm = NULL;
    if (len > 0 && vg_pb_unpack(&vigil__v1__alert__descriptor, data, (size_t)len,
                                (size_t)n->cfg->max_payload, &pm) == VG_OK) {
        const Vigil__V1__Alert *a = (const Vigil__V1__Alert *)pm;
        if (a->alert_id)
            snprintf(alert_id, sizeof(alert_id), "%s", a->alert_id);
        protobuf_c_message_free_unpacked(pm, NULL);
    }
    if (alert_id[0])
        snprintf(id, sizeof(id), "%s:%s", alert_id, w->cfg->name);
    else
        snprintf(id, sizeof(id), "seq-%llu:%s", (unsigned long long)seq, w->cfg->name);
    if (ntf_dlq_publish(n, data, len > 0 ? (size_t)len : 0, id, w->cfg->name, alert_id,
                        "delivery limit (notifier.max_deliver) reached") == VG_OK) {
        vg_counter_inc(w->m.dead_letters);
        VG_ERROR("alert.dead_lettered", NULL, "alert %s (stream seq %llu) sink %s: delivery "
                 "limit reached", alert_id[0] ? alert_id : "?", (unsigned long long)seq,
                 w->cfg->name);
    } else {
        VG_ERROR("dlq.failed", NULL, "stream seq %llu sink %s: %s", (unsigned long long)seq,
                 w->cfg->name, vg_err_detail());
    }
    natsMsg_Destroy(m);
}

vg_status ntf_dlq_watch_advisories(struct ntf_worker *w)
{
    return vg_consumer_on_max_deliveries(w->consumer, on_max_deliveries, w);
}
