/* One alert to one sink: decode, claim, attempt (with a few quick retries),
 * then settle the JetStream message:
 *   delivered            done mark, ack
 *   already done         ack (a redelivery after a crash or a lost ack)
 *   claimed elsewhere    nak with the lease's remaining time
 *   transient failure    nak with a growing delay (Retry-After honoured), for
 *                        as long as the stream keeps the alert; near the end
 *                        of that, or at max_deliver, dead-lettered instead
 *   permanent failure    dead-lettered, then term
 *   malformed            dead-lettered once (all sinks share the msg id), term */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_json.h"
#include "bus.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define NAK_TROUBLE_MS 5000     /* after NATS trouble, do not spin on the message */
#define BACKOFF_CAP_MS 30000

struct job {
    natsMsg *msg;
    struct vg_js_meta meta;
    const Vigil__V1__Alert *a;
    const char *camera;
    const void *raw;            /* the protobuf bytes, for the dead-letter queue */
    size_t raw_len;
};

/* ---- outcomes ---- */

static void publish_delivery(struct ntf_worker *w, const struct job *j,
                             Vigil__V1__Delivery__Outcome outcome, unsigned attempts,
                             const char *error, int64_t latency_us, int64_t retry_in_ms)
{
    Vigil__V1__Delivery d = VIGIL__V1__DELIVERY__INIT;
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    char subject[NTF_SUBJECT_MAX];

    vg_header_follow(&h, j->a->header);
    d.header = &h;
    d.alert_id = j->a->alert_id;
    d.sink = (char *)w->cfg->name;
    d.sink_type = (char *)w->cfg->type;
    d.outcome = outcome;
    d.attempts = attempts;
    d.error = (char *)(error ? error : "");
    d.latency_us = latency_us;
    d.delivery = (uint32_t)j->meta.delivered;
    d.retry_in_ms = retry_in_ms;
    vg_subject(subject, sizeof(subject), w->n->cfg->prefix, "deliveries", j->camera);
    if (vg_bus_publish(w->n->bus, subject, &d.base) != VG_OK)
        VG_WARN("delivery.publish_failed", j->camera, "alert %s sink %s: %s", j->a->alert_id,
                w->cfg->name, vg_err_detail());
}

/* A plain ack, not AckSync: one that is lost only brings a redelivery, and
 * the done mark skips it (AckSync would cost two round trips per alert). */
static void ack(struct ntf_worker *w, const struct job *j)
{
    natsStatus ns = natsMsg_Ack(j->msg, NULL);
    if (ns != NATS_OK)
        VG_WARN("alert.ack_failed", j->camera,
                "alert %s sink %s: ack failed (%s); a redelivery will be skipped as done",
                j->a ? j->a->alert_id : "?", w->cfg->name, vg_nats_error(ns));
}

static void delivered(struct ntf_worker *w, const struct job *j, unsigned attempts)
{
    int64_t capture = j->a->header->capture_ts_us;
    int64_t latency = capture > 0 ? vg_now_us() - capture : 0;
    ntf_claim_done(w, j->a->alert_id);
    ack(w, j);
    if (latency > 0)
        vg_histogram_observe_us(w->n->latency, latency);
    vg_counter_inc(w->m.delivered);
    VG_INFO("alert.delivered", j->camera,
            "alert %s to %s (%s), delivery %llu, attempts %u, %.3f s after capture",
            j->a->alert_id, w->cfg->name, w->cfg->type, (unsigned long long)j->meta.delivered,
            attempts, (double)latency / 1e6);
    publish_delivery(w, j, VIGIL__V1__DELIVERY__OUTCOME__DELIVERED, attempts, NULL, latency, 0);
}

/* A dead letter is acknowledged only once the DLQ stream stored it. */
static void dead_letter(struct ntf_worker *w, const struct job *j, unsigned attempts,
                        const char *error)
{
    char id[VG_ID_MAX + 40];
    snprintf(id, sizeof(id), "%s:%s", j->a->alert_id, w->cfg->name);
    if (ntf_dlq_publish(w->n, j->raw, j->raw_len, id, w->cfg->name, j->a->alert_id, error) !=
        VG_OK) {
        VG_ERROR("dlq.failed", j->camera, "alert %s sink %s: %s; it stays in the stream",
                 j->a->alert_id, w->cfg->name, vg_err_detail());
        natsMsg_NakWithDelay(j->msg, NAK_TROUBLE_MS, NULL);
        return;
    }
    natsMsg_Term(j->msg, NULL);
    ntf_gate_forget(w, j->a);
    vg_counter_inc(w->m.dead_letters);
    VG_ERROR("alert.dead_lettered", j->camera, "alert %s sink %s, delivery %llu: %s",
             j->a->alert_id, w->cfg->name, (unsigned long long)j->meta.delivered, error);
    publish_delivery(w, j, VIGIL__V1__DELIVERY__OUTCOME__DEAD_LETTERED, attempts, error, 0, 0);
}

/* The server would drop the message after this delivery (max_deliver), or
 * the stream will soon age it out: the last chance to keep it. */
static const char *last_chance(const struct ntf_worker *w, const struct job *j, int64_t delay_ms)
{
    int max = w->n->cfg->notifier.max_deliver;
    if (max > 0 && j->meta.delivered >= (uint64_t)max)
        return "delivery limit (notifier.max_deliver) reached";
    if (w->n->keep_us > 0 && j->meta.stored_us > 0 &&
        vg_now_us() + delay_ms * 1000 * 2 > j->meta.stored_us + w->n->keep_us)
        return "the alerts stream is about to age it out (notifier.stream_max_age_h)";
    return NULL;
}

static void retry_later(struct ntf_worker *w, const struct job *j, unsigned attempts,
                        const struct vg_sink_result *r)
{
    int64_t delay = vg_sink_redeliver_ms(w->cfg, (unsigned)j->meta.delivered, r->retry_after_ms);
    const char *why = last_chance(w, j, delay);
    ntf_claim_release(w, j->a->alert_id);
    if (why) {
        char err[VG_SINK_ERROR_MAX + 128];
        snprintf(err, sizeof(err), "%s; last error: %s", why, r->error);
        dead_letter(w, j, attempts, err);
        return;
    }
    natsMsg_NakWithDelay(j->msg, delay, NULL);
    vg_counter_inc(w->m.redelivered);
    VG_WARN("alert.retry_later", j->camera,
            "alert %s sink %s, delivery %llu: %s; next delivery in %.1f s%s", j->a->alert_id,
            w->cfg->name, (unsigned long long)j->meta.delivered, r->error, (double)delay / 1e3,
            r->retry_after_ms ? " (Retry-After)" : "");
    publish_delivery(w, j, VIGIL__V1__DELIVERY__OUTCOME__RETRYING, attempts, r->error, 0, delay);
}

const char *const ntf_skip_reasons[] = {"rule", "arm_mode", "quiet_hours", "rate_limit",
                                        "incident", NULL};

/* Not for this sink, on purpose: acknowledged, counted, and recorded. */
static void skipped(struct ntf_worker *w, const struct job *j, const struct ntf_skip *s)
{
    Vigil__V1__Delivery d = VIGIL__V1__DELIVERY__INIT;
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    char subject[NTF_SUBJECT_MAX];
    ack(w, j);
    for (int i = 0; ntf_skip_reasons[i]; i++)
        if (!strcmp(ntf_skip_reasons[i], s->reason))
            vg_counter_inc(w->m.skipped[i]);
    VG_INFO("alert.skipped", j->camera, "alert %s not sent to %s (%s): %s", j->a->alert_id,
            w->cfg->name, s->reason, s->note);
    vg_header_follow(&h, j->a->header);
    d.header = &h;
    d.alert_id = j->a->alert_id;
    d.sink = (char *)w->cfg->name;
    d.sink_type = (char *)w->cfg->type;
    d.outcome = VIGIL__V1__DELIVERY__OUTCOME__SKIPPED;
    d.delivery = (uint32_t)j->meta.delivered;
    d.error = "";
    d.reason = (char *)s->reason;
    d.note = (char *)s->note;
    vg_subject(subject, sizeof(subject), w->n->cfg->prefix, "deliveries", j->camera);
    if (vg_bus_publish(w->n->bus, subject, &d.base) != VG_OK)
        VG_WARN("delivery.publish_failed", j->camera, "alert %s sink %s: %s", j->a->alert_id,
                w->cfg->name, vg_err_detail());
}

/* ---- attempts ---- */

/* Sleep, keeping the unsettled messages alive; non-zero when stopping. */
static int pause_ms(struct ntf_worker *w, int64_t ms)
{
    while (ms > 0) {
        int slice = ms > 1000 ? 1000 : (int)ms;
        if (vg_svc_sleep_ms(w->n->svc, slice))
            return 1;
        ms -= slice;
        ntf_keepalive(w);
    }
    return vg_svc_stopping(w->n->svc);
}

/* The first attempt, then quick retries of transient failures. Returns 0,
 * or 1 when a stop cut the retries short (r holds the last failure). */
static int attempt(struct ntf_worker *w, const struct job *j, const struct vg_sink_alert *v,
                   struct vg_sink_result *r, unsigned *attempts)
{
    for (int i = 0;; i++) {
        ntf_keepalive(w);
        vg_sink_deliver(w->sink, v, r);
        *attempts = (unsigned)i + 1;
        if (r->verdict == VG_SINK_DELIVERED)
            return 0;
        vg_counter_inc(w->m.sink_failures);
        VG_WARN("sink.failed", j->camera, "alert %s sink %s attempt %d of %d: %s",
                j->a->alert_id, w->cfg->name, i + 1, w->cfg->retries + 1, r->error);
        if (r->verdict != VG_SINK_RETRY || i >= w->cfg->retries || r->retry_after_ms > 0)
            return 0;
        if (pause_ms(w, ntf_backoff_delay_ms(&w->backoff, w->cfg->backoff_ms, BACKOFF_CAP_MS, i)))
            return 1;
    }
}

static void deliver(struct ntf_worker *w, const struct job *j)
{
    struct ntf_rendered rd;
    struct vg_sink_result r;
    unsigned attempts = 0;
    int64_t held_ms = 0;
    struct ntf_skip skip;

    if (ntf_gate_before_claim(w, j->a, &skip)) {
        skipped(w, j, &skip);
        return;
    }
    switch (ntf_claim(w, j->a->alert_id, &held_ms)) {
    case NTF_DONE:
        ack(w, j);
        vg_counter_inc(w->m.duplicates);
        VG_INFO("alert.duplicate", j->camera, "alert %s already delivered to %s; skipped",
                j->a->alert_id, w->cfg->name);
        publish_delivery(w, j, VIGIL__V1__DELIVERY__OUTCOME__DUPLICATE, 0, NULL, 0, 0);
        return;
    case NTF_HELD:
        /* Another replica is sending it right now (it outlived its ack
         * wait): look again when its lease runs out. */
        natsMsg_NakWithDelay(j->msg, held_ms + 100, NULL);
        vg_counter_inc(w->m.claimed_elsewhere);
        VG_INFO("alert.claimed_elsewhere", j->camera,
                "alert %s sink %s is being sent by another replica; looking again in %.1f s",
                j->a->alert_id, w->cfg->name, (double)held_ms / 1e3);
        return;
    case NTF_CLAIMED:
    case NTF_UNKNOWN:
        break;
    }
    if (ntf_gate_after_claim(w, j->a, &skip)) {
        ntf_claim_release(w, j->a->alert_id);
        skipped(w, j, &skip);
        return;
    }
    vg_status st = ntf_render(&rd, j->a, w->cfg, w->n->evidence,
                                j->a->incident_count);
    if (st != VG_OK) {
        ntf_claim_release(w, j->a->alert_id);
        dead_letter(w, j, 0, vg_err_detail());
        return;
    }
    rd.view.now_us = vg_now_us();
    rd.view.delivery = (unsigned)j->meta.delivered;
    int stopped = attempt(w, j, &rd.view, &r, &attempts);
    ntf_render_free(&rd);
    if (r.verdict == VG_SINK_DELIVERED)
        delivered(w, j, attempts);
    else if (stopped) {
        ntf_claim_release(w, j->a->alert_id);
        natsMsg_Nak(j->msg, NULL);
    } else if (r.verdict == VG_SINK_RETRY)
        retry_later(w, j, attempts, &r);
    else {
        ntf_claim_release(w, j->a->alert_id);
        dead_letter(w, j, attempts, r.error);
    }
}

/* ---- one message ---- */

static vg_status decode(struct ntf_worker *w, struct job *j, Vigil__V1__Alert **out)
{
    ProtobufCMessage *m = NULL;
    if (j->raw_len == 0)
        return vg_errf(VG_ERR_DECODE, "empty message");
    vg_status st = vg_pb_unpack(&vigil__v1__alert__descriptor, j->raw, j->raw_len,
                                (size_t)w->n->cfg->max_payload, &m);
    if (st == VG_OK && (st = ntf_alert_check((Vigil__V1__Alert *)m)) != VG_OK)
        protobuf_c_message_free_unpacked(m, NULL);
    if (st == VG_OK)
        *out = (Vigil__V1__Alert *)m;
    return st;
}

/* Every sink's consumer sees a malformed message; the msg id derived from
 * its stream sequence stores one dead letter for all of them. */
static void reject(struct ntf_worker *w, const struct job *j, const char *why)
{
    char id[48];
    vg_counter_inc(w->m.malformed);
    VG_WARN("alert.malformed", NULL, "%s: %zu bytes: %s", natsMsg_GetSubject(j->msg), j->raw_len,
            why);
    snprintf(id, sizeof(id), "malformed-%llu", (unsigned long long)j->meta.stream_seq);
    if (ntf_dlq_publish(w->n, j->raw, j->raw_len, id, "", "", why) != VG_OK) {
        VG_ERROR("dlq.failed", NULL, "malformed message kept in the stream: %s", vg_err_detail());
        natsMsg_NakWithDelay(j->msg, NAK_TROUBLE_MS, NULL);
        return;
    }
    natsMsg_Term(j->msg, NULL);
}

/* `vigilctl dlq replay --sink S` republishes with this header: the other
 * sinks already have the alert. */
static int replay_for_other_sink(struct ntf_worker *w, natsMsg *msg)
{
    const char *only = NULL;
    return natsMsgHeader_Get(msg, NTF_REPLAY_HEADER, &only) == NATS_OK && only && *only &&
           strcmp(only, w->cfg->name) != 0;
}

void ntf_handle_msg(struct ntf_worker *w, natsMsg *msg)
{
    Vigil__V1__Alert *a = NULL;
    struct job j = {.msg = msg};
    int len = natsMsg_GetDataLength(msg);
    j.raw = natsMsg_GetData(msg);
    j.raw_len = len > 0 ? (size_t)len : 0;
    if (vg_js_meta(msg, &j.meta) != VG_OK)
        j.meta.delivered = 1;

    if (replay_for_other_sink(w, msg)) {
        vg_counter_inc(w->m.skipped_replays);
        natsMsg_Ack(msg, NULL);
        return;
    }
    if (decode(w, &j, &a) != VG_OK) {
        char why[512];
        snprintf(why, sizeof(why), "%s", vg_err_detail());
        reject(w, &j, why);
        return;
    }
    j.a = a;
    j.camera = a->header->camera_id;
    vg_counter_inc(w->m.alerts);
    deliver(w, &j);
    protobuf_c_message_free_unpacked(&a->base, NULL);
}

void ntf_hand_back_now(struct ntf_worker *w, natsMsg *msg)
{
    (void)w;
    natsMsg_Nak(msg, NULL);
}
