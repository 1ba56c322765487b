/* One alert: decode, deliver to every sink with retries and idempotency,
 * dead-letter what cannot be delivered, then settle the JetStream message. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_json.h"
#include "bus.h"
#include "log.h"
#include "ntf.h"
#include "redis.h"
#include "timeutil.h"

#define IDEM_TTL_DEFAULT_S 86400
#define DLQ_WAIT_MS 5000
#define NAK_DELAY_MS 5000       /* after NATS trouble, do not spin on the message */
#define HEADER_VALUE_MAX 400

/* Whether a sink is finished with the alert, or it must come back later. */
enum fate { FATE_DONE, FATE_HANDBACK };

/* The alert being delivered. */
struct job {
    natsMsg *msg;
    const Vigil__V1__Alert *a;
    const char *camera;
    const char *raw;            /* the protobuf bytes, for the dead-letter queue */
    size_t raw_len;
    char *body;                 /* the alert as JSON */
    size_t body_len;
};

/* ---- dead-letter queue ---- */

static void header_value(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? ' ' : *s;
    out[n] = '\0';
}

static natsStatus build_dlq_msg(natsMsg **out, const char *subject, const void *data,
                                size_t len, const char *sink, const char *error)
{
    char err[HEADER_VALUE_MAX];
    natsMsg *m = NULL;
    header_value(err, sizeof(err), error);
    natsStatus ns = natsMsg_Create(&m, subject, NULL, data, (int)len);
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Vigil-Stage", "notifier");
    if (ns == NATS_OK && sink && *sink)
        ns = natsMsgHeader_Set(m, "Vigil-Sink", sink);
    if (ns == NATS_OK && *err)
        ns = natsMsgHeader_Set(m, "Vigil-Error", err);
    if (ns != NATS_OK) {
        natsMsg_Destroy(m);
        return ns;
    }
    *out = m;
    return NATS_OK;
}

/* Dead letters are published to JetStream (stream <PREFIX>_DLQ, ensured at
 * start) and the alert is acked only after the stream stored them. */
static vg_status dlq_publish(struct ntf *n, const void *data, size_t len, const char *msg_id,
                             const char *sink, const char *error)
{
    natsMsg *m = NULL;
    jsErrCode jerr = 0;
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = DLQ_WAIT_MS;
    po.MsgId = msg_id;          /* a retried dead letter is stored once */

    natsStatus ns = build_dlq_msg(&m, n->dlq_subject, data, len, sink, error);
    if (ns == NATS_OK)
        ns = js_PublishMsg(NULL, vg_bus_js(n->bus), m, &po, &jerr);
    natsMsg_Destroy(m);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "publish %s: %s (jetstream error %d)", n->dlq_subject,
                       ntf_nats_error(ns), (int)jerr);
    return VG_OK;
}

/* ---- settling the message ---- */

/* The server silently drops a message after max_deliver deliveries, so the
 * last delivery must never be handed back. Returns the stream sequence. */
static int last_delivery(const struct ntf *n, natsMsg *msg, uint64_t *seq)
{
    jsMsgMetaData *meta = NULL;
    int last = 0;
    *seq = 0;
    if (natsMsg_GetMetaData(&meta, msg) == NATS_OK) {
        *seq = meta->Sequence.Stream;
        last = n->cfg->notifier.max_deliver > 0 &&
               meta->NumDelivered >= (uint64_t)n->cfg->notifier.max_deliver;
    }
    jsMsgMetaData_Destroy(meta);
    return last;
}

void ntf_hand_back(struct ntf *n, natsMsg *msg, const char *camera, const char *alert_id)
{
    uint64_t seq = 0;
    if (last_delivery(n, msg, &seq)) {
        char id[48];
        int len = natsMsg_GetDataLength(msg);
        snprintf(id, sizeof(id), "notifier-last-%llu", (unsigned long long)seq);
        if (dlq_publish(n, natsMsg_GetData(msg), len > 0 ? (size_t)len : 0, id, "",
                        "delivery limit reached") == VG_OK) {
            vg_counter_inc(n->m.dead_letters);
            VG_ERROR("alert.dead_lettered", camera,
                     "alert %s (stream seq %llu): last permitted delivery could not finish",
                     alert_id ? alert_id : "?", (unsigned long long)seq);
            natsMsg_Term(msg, NULL);
            return;
        }
    }
    /* Stopping: nak now so another replica takes it at once. NATS trouble:
     * wait a little, so the message does not spin. */
    if (vg_svc_stopping(n->svc))
        natsMsg_Nak(msg, NULL);
    else
        natsMsg_NakWithDelay(msg, NAK_DELAY_MS, NULL);
    if (alert_id)
        VG_WARN("alert.handed_back", camera, "alert %s will be delivered again later", alert_id);
}

static void settle(struct ntf *n, const struct job *j, enum fate f)
{
    if (f == FATE_HANDBACK) {
        ntf_hand_back(n, j->msg, j->camera, j->a->alert_id);
        return;
    }
    jsErrCode jerr = 0;
    natsStatus ns = natsMsg_AckSync(j->msg, NULL, &jerr);
    if (ns != NATS_OK)
        VG_WARN("alert.ack_failed", j->camera,
                "alert %s: ack failed (%s); a redelivery will be skipped as a duplicate",
                j->a->alert_id, ntf_nats_error(ns));
}

/* ---- idempotency ---- */

static void idem_key(char *out, size_t cap, const struct ntf *n, const struct job *j,
                     const struct ntf_sink *s)
{
    snprintf(out, cap, "%s:ntf:%s:%s", n->cfg->prefix, j->a->alert_id, s->name);
}

static void idem_unavailable(struct ntf *n, const struct job *j, const char *what)
{
    vg_counter_inc(n->m.idem_unavailable);
    VG_WARN("idempotency.unavailable", j->camera,
            "alert %s: %s: %s; delivering without duplicate protection", j->a->alert_id, what,
            vg_err_detail());
}

/* 1: delivered before; 0: not yet; -1: unknown because Redis is down. */
static int already_delivered(struct ntf *n, const struct job *j, const char *key)
{
    redisReply *r = NULL;
    vg_status st = n->redis ? vg_redis_cmd(n->redis, &r, "EXISTS %s", key)
                            : vg_errf(VG_ERR_UNAVAILABLE, "no redis");
    if (st != VG_OK) {
        idem_unavailable(n, j, "idempotency check");
        return -1;
    }
    int seen = r->type == REDIS_REPLY_INTEGER && r->integer > 0;
    freeReplyObject(r);
    return seen;
}

/* known_down: the check before delivery already failed and was reported. */
static void remember(struct ntf *n, const struct job *j, const char *key, int known_down)
{
    redisReply *r = NULL;
    int ttl = n->cfg->notifier.idempotency_ttl_s;
    if (ttl <= 0)
        ttl = IDEM_TTL_DEFAULT_S;
    vg_status st = n->redis ? vg_redis_cmd(n->redis, &r, "SET %s 1 EX %d", key, ttl)
                            : vg_errf(VG_ERR_UNAVAILABLE, "no redis");
    if (st != VG_OK && !known_down)
        idem_unavailable(n, j, "recording the delivery");
    freeReplyObject(r);
}

/* ---- outcomes ---- */

static void publish_delivery(struct ntf *n, const struct job *j, const struct ntf_sink *s,
                             Vigil__V1__Delivery__Outcome outcome, unsigned attempts,
                             const char *error, int64_t latency_us)
{
    Vigil__V1__Delivery d = VIGIL__V1__DELIVERY__INIT;
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    char subject[NTF_SUBJECT_MAX];

    vg_header_follow(&h, j->a->header);     /* our producer, now as publish time */
    d.header = &h;
    d.alert_id = j->a->alert_id;
    d.sink = (char *)s->name;
    d.sink_type = (char *)s->type;
    d.outcome = outcome;
    d.attempts = attempts;
    d.error = (char *)(error ? error : "");
    d.latency_us = latency_us;
    vg_subject(subject, sizeof(subject), n->cfg->prefix, "deliveries", j->camera);
    if (vg_bus_publish(n->bus, subject, &d.base) != VG_OK)
        VG_WARN("delivery.publish_failed", j->camera, "alert %s sink %s: %s", j->a->alert_id,
                s->name, vg_err_detail());
}

static void delivered(struct ntf *n, const struct job *j, const struct ntf_sink *s,
                      unsigned attempts)
{
    int64_t capture = j->a->header->capture_ts_us;
    int64_t latency = capture > 0 ? vg_now_us() - capture : 0;
    if (latency > 0)
        vg_histogram_observe_us(n->m.latency, latency);
    vg_counter_inc(n->m.delivered);
    VG_INFO("alert.delivered", j->camera, "alert %s to %s (%s), attempts %u, %.3f s after capture",
            j->a->alert_id, s->name, s->type, attempts, (double)latency / 1e6);
    publish_delivery(n, j, s, VIGIL__V1__DELIVERY__OUTCOME__DELIVERED, attempts, NULL, latency);
}

static void duplicate(struct ntf *n, const struct job *j, const struct ntf_sink *s)
{
    vg_counter_inc(n->m.duplicates);
    VG_INFO("alert.duplicate", j->camera, "alert %s already delivered to %s; skipped",
            j->a->alert_id, s->name);
    publish_delivery(n, j, s, VIGIL__V1__DELIVERY__OUTCOME__DUPLICATE, 0, NULL, 0);
}

static enum fate dead_letter(struct ntf *n, const struct job *j, const struct ntf_sink *s,
                             unsigned attempts, const char *error)
{
    char id[VG_ID_MAX + 40];
    snprintf(id, sizeof(id), "%s:%s", j->a->alert_id, s->name);
    if (dlq_publish(n, j->raw, j->raw_len, id, s->name, error) != VG_OK) {
        VG_ERROR("dlq.failed", j->camera, "alert %s sink %s: %s", j->a->alert_id, s->name,
                 vg_err_detail());
        return FATE_HANDBACK;
    }
    vg_counter_inc(n->m.dead_letters);
    VG_ERROR("alert.dead_lettered", j->camera, "alert %s sink %s gave up after %u attempt(s): %s",
             j->a->alert_id, s->name, attempts, error);
    publish_delivery(n, j, s, VIGIL__V1__DELIVERY__OUTCOME__DEAD_LETTERED, attempts, error, 0);
    return FATE_DONE;
}

/* ---- attempts ---- */

/* Sleep, keeping the unsettled messages alive; non-zero when stopping. */
static int pause_ms(struct ntf *n, int64_t ms)
{
    if (vg_svc_stopping(n->svc))
        return 1;
    while (ms > 0) {
        int slice = ms > 1000 ? 1000 : (int)ms;
        if (vg_svc_sleep_ms(n->svc, slice))
            return 1;
        ms -= slice;
        ntf_keepalive(n);
    }
    return 0;
}

/* First attempt always; retries while the failure is transient, the sink's
 * retries last and no stop was requested (VG_ERR_STOPPED then). */
static vg_status attempt(struct ntf *n, struct ntf_sink *s, const struct job *j,
                         unsigned *attempts, char *err, size_t errcap)
{
    for (int i = 0;; i++) {
        ntf_keepalive(n);
        vg_status st = s->deliver(s, j->body, j->body_len, j->a);
        *attempts = (unsigned)i + 1;
        if (st == VG_OK)
            return VG_OK;
        snprintf(err, errcap, "%s", vg_err_detail());
        vg_counter_inc(n->m.sink_failures);
        VG_WARN("sink.failed", j->camera, "alert %s sink %s attempt %d of %d: %s",
                j->a->alert_id, s->name, i + 1, s->retries + 1, err);
        if (!ntf_sink_retryable(st) || i >= s->retries)
            return st;
        if (pause_ms(n, ntf_backoff_delay_ms(&n->backoff, s->backoff_ms, NTF_BACKOFF_CAP_MS, i)))
            return VG_ERR_STOPPED;
    }
}

static enum fate deliver_to_sink(struct ntf *n, struct ntf_sink *s, const struct job *j)
{
    char key[NTF_SUBJECT_MAX + 2 * VG_ID_MAX], err[512] = "";
    unsigned attempts = 0;

    idem_key(key, sizeof(key), n, j, s);
    int seen = already_delivered(n, j, key);
    if (seen == 1) {
        duplicate(n, j, s);
        return FATE_DONE;
    }
    vg_status st = attempt(n, s, j, &attempts, err, sizeof(err));
    if (st == VG_OK) {
        remember(n, j, key, seen < 0);
        delivered(n, j, s, attempts);
        return FATE_DONE;
    }
    if (st == VG_ERR_STOPPED)
        return FATE_HANDBACK;
    return dead_letter(n, j, s, attempts, err);
}

/* ---- one message ---- */

static vg_status decode(struct ntf *n, struct job *j, Vigil__V1__Alert **out)
{
    ProtobufCMessage *m = NULL;
    if (j->raw_len == 0)
        return vg_errf(VG_ERR_DECODE, "empty message");
    vg_status st = vg_pb_unpack(&vigil__v1__alert__descriptor, j->raw, j->raw_len,
                                (size_t)n->cfg->max_payload, &m);
    if (st == VG_OK)
        st = ntf_alert_check((Vigil__V1__Alert *)m);
    if (st == VG_OK)
        st = ntf_alert_json((Vigil__V1__Alert *)m, &j->body, &j->body_len);
    if (st != VG_OK) {
        if (m)
            protobuf_c_message_free_unpacked(m, NULL);
        return st;
    }
    *out = (Vigil__V1__Alert *)m;
    return VG_OK;
}

/* Malformed messages can never be delivered: park them in the dead-letter
 * queue and tell the server not to redeliver them. */
static void reject(struct ntf *n, const struct job *j, const char *why)
{
    vg_counter_inc(n->m.malformed);
    VG_WARN("alert.malformed", NULL, "%s: %zu bytes: %s", natsMsg_GetSubject(j->msg), j->raw_len,
            why);
    if (dlq_publish(n, j->raw, j->raw_len, NULL, "", why) != VG_OK) {
        VG_ERROR("dlq.failed", NULL, "malformed message kept in the stream: %s", vg_err_detail());
        natsMsg_NakWithDelay(j->msg, NAK_DELAY_MS, NULL);
        return;
    }
    natsMsg_Term(j->msg, NULL);
}

void ntf_handle_msg(struct ntf *n, natsMsg *msg)
{
    Vigil__V1__Alert *a = NULL;
    struct job j = {.msg = msg};
    int len = natsMsg_GetDataLength(msg);
    j.raw = natsMsg_GetData(msg);
    j.raw_len = len > 0 ? (size_t)len : 0;

    if (decode(n, &j, &a) != VG_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", vg_err_detail());
        reject(n, &j, why);
        goto out;
    }
    j.a = a;
    j.camera = a->header->camera_id;
    vg_counter_inc(n->m.alerts);
    enum fate f = FATE_DONE;
    for (int i = 0; i < n->n_sinks; i++)
        if (deliver_to_sink(n, n->sinks[i], &j) == FATE_HANDBACK)
            f = FATE_HANDBACK;
    settle(n, &j, f);
out:
    free(j.body);
    if (a)
        protobuf_c_message_free_unpacked(&a->base, NULL);
}

const char *ntf_nats_error(natsStatus ns)
{
    const char *last = nats_GetLastError(NULL);
    return last && *last ? last : natsStatus_GetText(ns);
}

void ntf_keepalive(struct ntf *n)
{
    int64_t now = vg_mono_us();
    if (now - n->touched_us < n->touch_every_us)
        return;
    n->touched_us = now;
    for (int i = 0; i < n->n_unsettled; i++)
        natsMsg_InProgress(n->unsettled[i], NULL);
}
