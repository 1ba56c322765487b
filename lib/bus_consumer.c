#include "bus_consumer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"

#define REBIND_EVERY 5              /* consecutive fetch failures */
#define LOG_EVERY 30
#define IDLE_CHECK_US (30LL * 1000000)

struct vg_consumer {
    struct vg_bus *bus;
    natsSubscription *sub;
    natsSubscription *advisory;
    void (*on_max)(void *ctx, uint64_t seq);
    void *on_max_ctx;
    char stream[64];
    char durable[64];
    char filter[160];
    char start_like[8][64];
    int n_start_like;
    int ack_wait_s;
    int max_deliver;
    int errors;                     /* consecutive failed fetches */
    int64_t checked_us;             /* last look for a vanished consumer while idle */
};

const char *vg_nats_error(natsStatus ns)
{
    const char *last = nats_GetLastError(NULL);
    return last && *last ? last : natsStatus_GetText(ns);
}

const char *vg_consumer_name(const struct vg_consumer *c) { return c->durable; }

static void consumer_config(const struct vg_consumer *c, jsConsumerConfig *cc)
{
    jsConsumerConfig_Init(cc);
    cc->Durable = c->durable;
    cc->DeliverPolicy = js_DeliverAll;
    cc->AckPolicy = js_AckExplicit;
    cc->AckWait = (int64_t)c->ack_wait_s * 1000000000;
    cc->MaxDeliver = c->max_deliver > 0 ? c->max_deliver : -1;
    cc->FilterSubject = c->filter;
}

static int differs(const jsConsumerConfig *have, const jsConsumerConfig *want)
{
    return have->AckWait != want->AckWait || have->MaxDeliver != want->MaxDeliver ||
           !have->FilterSubject || strcmp(have->FilterSubject, want->FilterSubject) != 0;
}

/* A new consumer starts after the ack floor of the first existing one of
 * start_like (its predecessor, or a sibling reading the same stream). */
static void start_like_sibling(struct vg_consumer *c, jsConsumerConfig *cc)
{
    for (int i = 0; i < c->n_start_like; i++) {
        jsConsumerInfo *pi = NULL;
        jsErrCode jerr = 0;
        if (js_GetConsumerInfo(&pi, vg_bus_js(c->bus), c->stream, c->start_like[i], NULL,
                               &jerr) != NATS_OK)
            continue;
        /* A consumer that has acknowledged nothing yet reports floor 0;
         * where it was told to start is its floor then. */
        uint64_t floor = pi->AckFloor.Stream;
        const jsConsumerConfig *pc = pi->Config;
        if (pc && pc->DeliverPolicy == js_DeliverByStartSequence && pc->OptStartSeq > floor + 1)
            floor = pc->OptStartSeq - 1;
        cc->DeliverPolicy = js_DeliverByStartSequence;
        cc->OptStartSeq = floor + 1;
        VG_INFO("bus.consumer_created", NULL, "consumer %s/%s starts at stream seq %llu, "
                "where %s stands", c->stream, c->durable, (unsigned long long)cc->OptStartSeq,
                c->start_like[i]);
        jsConsumerInfo_Destroy(pi);
        return;
    }
}

static vg_status ensure(struct vg_consumer *c)
{
    jsCtx *js = vg_bus_js(c->bus);
    jsConsumerInfo *ci = NULL;
    jsConsumerConfig cc;
    jsErrCode jerr = 0;

    consumer_config(c, &cc);
    natsStatus ns = js_GetConsumerInfo(&ci, js, c->stream, c->durable, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr) {
        start_like_sibling(c, &cc);
        ns = js_AddConsumer(NULL, js, c->stream, &cc, NULL, &jerr);
    } else if (ns == NATS_OK && differs(ci->Config, &cc)) {
        /* Change only what vigil owns; keep what an operator tuned
         * (MaxAckPending, replicas, ...). Fields are put back before the
         * info (which owns its strings) is destroyed. */
        jsConsumerConfig *have = ci->Config;
        const char *filter = have->FilterSubject;
        int64_t ack_wait = have->AckWait, max_deliver = have->MaxDeliver;
        have->AckWait = cc.AckWait;
        have->MaxDeliver = cc.MaxDeliver;
        have->FilterSubject = cc.FilterSubject;
        ns = js_UpdateConsumer(NULL, js, c->stream, have, NULL, &jerr);
        have->FilterSubject = filter;
        have->AckWait = ack_wait;
        have->MaxDeliver = max_deliver;
    }
    jsConsumerInfo_Destroy(ci);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "consumer %s/%s: %s (jetstream error %d)", c->stream,
                       c->durable, vg_nats_error(ns), (int)jerr);
    return VG_OK;
}

static vg_status bind(struct vg_consumer *c)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    vg_status st = ensure(c);
    if (st != VG_OK)
        return st;
    jsSubOptions_Init(&so);
    so.Stream = c->stream;
    so.Consumer = c->durable;
    natsStatus ns = js_PullSubscribe(&c->sub, vg_bus_js(c->bus), c->filter, c->durable, NULL,
                                     &so, &jerr);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "pull subscribe %s as %s: %s (jetstream error %d)",
                       c->filter, c->durable, vg_nats_error(ns), (int)jerr);
    return VG_OK;
}

static void rebind(struct vg_consumer *c)
{
    /* Not drained: a sync subscription's drain waits for the status message
     * of the last fetch that nobody reads. Bound, not created here, so this
     * does not delete the consumer. */
    if (c->sub)
        natsSubscription_Unsubscribe(c->sub);
    natsSubscription_Destroy(c->sub);
    c->sub = NULL;
    if (bind(c) == VG_OK)
        VG_INFO("bus.resubscribed", NULL, "pull consumer %s/%s bound again", c->stream,
                c->durable);
    else
        VG_WARN("bus.resubscribe_failed", NULL, "%s", vg_err_detail());
}

vg_status vg_consumer_open(struct vg_consumer **out, struct vg_bus *bus,
                           const struct vg_consumer_opts *o)
{
    struct vg_consumer *c = calloc(1, sizeof(*c));
    if (!c)
        return vg_errf(VG_ERR_NOMEM, "consumer %s", o->durable);
    c->bus = bus;
    snprintf(c->stream, sizeof(c->stream), "%s", o->stream);
    snprintf(c->durable, sizeof(c->durable), "%s", o->durable);
    snprintf(c->filter, sizeof(c->filter), "%s", o->filter);
    for (int i = 0; o->start_like && o->start_like[i] && i < 8; i++)
        snprintf(c->start_like[c->n_start_like++], sizeof(c->start_like[0]), "%s",
                 o->start_like[i]);
    c->ack_wait_s = o->ack_wait_s > 0 ? o->ack_wait_s : 30;
    c->max_deliver = o->max_deliver;
    c->checked_us = vg_mono_us();
    vg_status st = bind(c);
    if (st != VG_OK) {
        vg_consumer_close(c);
        return st;
    }
    *out = c;
    return VG_OK;
}

void vg_consumer_close(struct vg_consumer *c)
{
    if (!c)
        return;
    if (c->advisory) {
        natsSubscription_Unsubscribe(c->advisory);
        natsSubscription_Destroy(c->advisory);
    }
    if (c->sub)
        natsSubscription_Unsubscribe(c->sub);
    natsSubscription_Destroy(c->sub);
    free(c);
}

/* A pull on a consumer that no longer exists just times out, like an idle
 * stream; so when idle, look now and then and bind again if it is gone. */
static void check_idle(struct vg_consumer *c)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    int64_t now = vg_mono_us();
    if (now - c->checked_us < IDLE_CHECK_US)
        return;
    c->checked_us = now;
    natsStatus ns = js_GetConsumerInfo(&ci, vg_bus_js(c->bus), c->stream, c->durable, NULL,
                                       &jerr);
    jsConsumerInfo_Destroy(ci);
    if (ns == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr) {
        VG_WARN("bus.consumer_lost", NULL, "consumer %s/%s is gone; creating it again",
                c->stream, c->durable);
        rebind(c);
    }
}

vg_status vg_consumer_fetch(struct vg_consumer *c, natsMsgList *list, int batch, int wait_ms)
{
    jsErrCode jerr = 0;
    memset(list, 0, sizeof(*list));
    natsStatus ns = c->sub ? natsSubscription_Fetch(list, c->sub, batch, wait_ms, &jerr)
                           : NATS_INVALID_SUBSCRIPTION;
    /* While disconnected a fetch just times out: that is no success. */
    if (ns == NATS_OK || (ns == NATS_TIMEOUT && vg_bus_connected(c->bus))) {
        if (c->errors > 0)
            VG_INFO("bus.fetch_resumed", NULL, "%s/%s: fetching again after %d failure(s)",
                    c->stream, c->durable, c->errors);
        c->errors = 0;
        if (ns == NATS_TIMEOUT)
            check_idle(c);
        return VG_OK;
    }
    natsMsgList_Destroy(list);
    memset(list, 0, sizeof(*list));
    if (ns == NATS_CONNECTION_CLOSED)
        return vg_errf(VG_ERR_NATS, "fetch %s/%s: connection closed", c->stream, c->durable);
    c->errors++;
    if (c->errors == 1 || c->errors % LOG_EVERY == 0)
        VG_WARN("bus.fetch_failed", NULL, "fetch from %s/%s (%d in a row): %s (jetstream error %d)",
                c->stream, c->durable, c->errors, vg_nats_error(ns), (int)jerr);
    if ((!c->sub || c->errors % REBIND_EVERY == 0) && vg_bus_connected(c->bus))
        rebind(c);
    return vg_errf(VG_ERR_UNAVAILABLE, "fetch %s/%s: %s", c->stream, c->durable,
                   vg_nats_error(ns));
}

static void on_advisory(natsConnection *nc, natsSubscription *sub, natsMsg *m, void *closure)
{
    struct vg_consumer *c = closure;
    json_error_t err;
    (void)nc;
    (void)sub;
    json_t *j = json_loadb(natsMsg_GetData(m), (size_t)natsMsg_GetDataLength(m), 0, &err);
    json_t *seq = j ? json_object_get(j, "stream_seq") : NULL;
    if (json_is_integer(seq) && json_integer_value(seq) > 0)
        c->on_max(c->on_max_ctx, (uint64_t)json_integer_value(seq));
    else
        VG_WARN("bus.advisory_malformed", NULL, "%s: %d bytes", natsMsg_GetSubject(m),
                natsMsg_GetDataLength(m));
    json_decref(j);
    natsMsg_Destroy(m);
}

vg_status vg_consumer_on_max_deliveries(struct vg_consumer *c,
                                        void (*cb)(void *ctx, uint64_t stream_seq), void *ctx)
{
    char subject[256];
    snprintf(subject, sizeof(subject), "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.%s.%s",
             c->stream, c->durable);
    c->on_max = cb;
    c->on_max_ctx = ctx;
    natsStatus ns = natsConnection_Subscribe(&c->advisory, vg_bus_nats(c->bus), subject,
                                             on_advisory, c);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "subscribe %s: %s", subject, vg_nats_error(ns));
    return VG_OK;
}

vg_status vg_consumer_delete(struct vg_bus *bus, const char *stream, const char *durable)
{
    jsErrCode jerr = 0;
    natsStatus ns = js_DeleteConsumer(vg_bus_js(bus), stream, durable, NULL, &jerr);
    if (ns == NATS_OK || ns == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr)
        return VG_OK;
    return vg_errf(VG_ERR_NATS, "delete consumer %s/%s: %s (jetstream error %d)", stream,
                   durable, vg_nats_error(ns), (int)jerr);
}

int vg_consumer_exists(struct vg_bus *bus, const char *stream, const char *durable)
{
    jsConsumerInfo *ci = NULL;
    natsStatus ns = js_GetConsumerInfo(&ci, vg_bus_js(bus), stream, durable, NULL, NULL);
    jsConsumerInfo_Destroy(ci);
    return ns == NATS_OK;
}

vg_status vg_js_meta(natsMsg *m, struct vg_js_meta *out)
{
    jsMsgMetaData *meta = NULL;
    memset(out, 0, sizeof(*out));
    natsStatus ns = natsMsg_GetMetaData(&meta, m);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "message metadata: %s", natsStatus_GetText(ns));
    out->stream_seq = meta->Sequence.Stream;
    out->delivered = meta->NumDelivered;
    out->stored_us = meta->Timestamp / 1000;
    jsMsgMetaData_Destroy(meta);
    return VG_OK;
}
