/* vigil-notifier: the life of the service and its JetStream consumer loop.
 * The durable pull consumer "notifier" on stream VIGIL_ALERTS is created (or
 * updated) explicitly and then bound to, because a consumer that the NATS
 * library creates itself is deleted again when the subscription drains, and
 * its unacknowledged alerts with it. */
#include "notifier.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define FETCH_WAIT_MS 1000
#define BATCH_DEFAULT 10
#define BATCH_MAX 256
#define RESUBSCRIBE_EVERY 5     /* consecutive fetch failures */
#define LOG_FETCH_EVERY 30
#define CONSUMER_CHECK_US (30LL * 1000000)
#define DLQ_MAX_AGE_S (30LL * 86400)
#define DLQ_DUPLICATES_S 600

static void make_metrics(struct ntf_metrics *m)
{
    m->alerts = vg_counter_get("vigil_notifier_alerts_total", "Alerts received from the stream");
    m->delivered = vg_counter_get("vigil_notifier_delivered_total", "Alerts delivered to a sink");
    m->duplicates = vg_counter_get("vigil_notifier_duplicates_total",
                                   "Redelivered alerts skipped because a sink already had them");
    m->dead_letters = vg_counter_get("vigil_notifier_dead_letters_total",
                                     "Alerts given up for a sink and sent to the dead-letter queue");
    m->sink_failures = vg_counter_get("vigil_notifier_sink_failures_total",
                                      "Failed delivery attempts, retries included");
    m->malformed = vg_counter_get("vigil_notifier_malformed_total",
                                  "Messages on the alert stream that are not valid alerts");
    m->idem_unavailable = vg_counter_get("vigil_notifier_idempotency_unavailable_total",
                                         "Idempotency checks or records lost because Redis was unavailable");
    m->latency = vg_histogram_get("vigil_notifier_latency_seconds",
                                  "Capture of the frame to delivery of its alert");
}

static vg_status check_sinks(const struct vg_config *cfg)
{
    int n = cfg->notifier.n_sinks;
    /* With no sink every alert would be acknowledged and silently dropped. */
    if (n <= 0)
        return vg_errf(VG_ERR_CONFIG, "notifier.sinks: at least one sink is required");
    for (int i = 0; i < n; i++)
        for (int k = i + 1; k < n; k++)
            if (strcmp(cfg->notifier.sinks[i].name, cfg->notifier.sinks[k].name) == 0)
                return vg_errf(VG_ERR_CONFIG, "notifier.sinks: name \"%s\" used twice",
                               cfg->notifier.sinks[i].name);
    return VG_OK;
}

static vg_status make_sinks(struct ntf *n)
{
    vg_status st = check_sinks(n->cfg);
    int64_t ack_wait_ms = (int64_t)n->cfg->notifier.ack_wait_s * 1000;
    for (int i = 0; st == VG_OK && i < n->cfg->notifier.n_sinks; i++) {
        st = ntf_sink_create(&n->sinks[i], &n->cfg->notifier.sinks[i]);
        if (st != VG_OK)
            break;
        n->n_sinks++;
        struct ntf_sink *s = n->sinks[i];
        /* One attempt must end before the ack wait runs out, or the server
         * hands the alert to another replica while we are still sending. */
        if ((int64_t)s->timeout_ms * 3 > ack_wait_ms * 2)
            VG_WARN("sink.config", NULL, "sink %s: timeout_ms %d is above 2/3 of ack_wait_s %d",
                    s->name, s->timeout_ms, n->cfg->notifier.ack_wait_s);
    }
    return st;
}

static void consumer_config(const struct ntf *n, jsConsumerConfig *cc)
{
    jsConsumerConfig_Init(cc);
    cc->Durable = NTF_DURABLE;
    cc->DeliverPolicy = js_DeliverAll;
    cc->AckPolicy = js_AckExplicit;
    cc->AckWait = (int64_t)n->cfg->notifier.ack_wait_s * 1000000000;
    cc->MaxDeliver = n->cfg->notifier.max_deliver > 0 ? n->cfg->notifier.max_deliver : -1;
    cc->FilterSubject = n->subject;
}

static int consumer_differs(const jsConsumerConfig *have, const jsConsumerConfig *want)
{
    return have->AckWait != want->AckWait || have->MaxDeliver != want->MaxDeliver ||
           !have->FilterSubject || strcmp(have->FilterSubject, want->FilterSubject) != 0;
}

/* Create the durable consumer, or apply changed settings to it. */
static vg_status ensure_consumer(struct ntf *n)
{
    jsCtx *js = vg_bus_js(n->bus);
    jsConsumerInfo *ci = NULL;
    jsConsumerConfig cc;
    jsErrCode jerr = 0;

    consumer_config(n, &cc);
    natsStatus ns = js_GetConsumerInfo(&ci, js, n->stream, NTF_DURABLE, NULL, &jerr);
    if (ns == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr)
        ns = js_AddConsumer(NULL, js, n->stream, &cc, NULL, &jerr);
    else if (ns == NATS_OK && consumer_differs(ci->Config, &cc)) {
        /* Change only what vigil owns; keep what an operator tuned
         * (MaxAckPending, replicas, ...). Fields are put back before the
         * info (which owns its strings) is destroyed. */
        jsConsumerConfig *have = ci->Config;
        const char *filter = have->FilterSubject;
        int64_t ack_wait = have->AckWait, max_deliver = have->MaxDeliver;
        have->AckWait = cc.AckWait;
        have->MaxDeliver = cc.MaxDeliver;
        have->FilterSubject = cc.FilterSubject;
        ns = js_UpdateConsumer(NULL, js, n->stream, have, NULL, &jerr);
        have->FilterSubject = filter;
        have->AckWait = ack_wait;
        have->MaxDeliver = max_deliver;
    }
    jsConsumerInfo_Destroy(ci);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "consumer %s/%s: %s (jetstream error %d)", n->stream,
                       NTF_DURABLE, ntf_nats_error(ns), (int)jerr);
    return VG_OK;
}

static vg_status subscribe(struct ntf *n)
{
    jsSubOptions so;
    jsErrCode jerr = 0;
    vg_status st = vg_bus_ensure_stream(n->bus, "alerts",
                                        (int64_t)n->cfg->notifier.stream_max_age_h * 3600,
                                        vg_alerts_dup_window_s(n->cfg), n->stream,
                                        sizeof(n->stream));
    /* Dead letters wait for a person, so they are stored too: a plain
     * publish with nobody listening would drop the very alerts we gave up on. */
    if (st == VG_OK)
        st = vg_bus_ensure_stream(n->bus, "dlq", DLQ_MAX_AGE_S, DLQ_DUPLICATES_S,
                                  n->dlq_stream, sizeof(n->dlq_stream));
    if (st == VG_OK)
        st = ensure_consumer(n);
    if (st != VG_OK)
        return st;
    jsSubOptions_Init(&so);
    so.Stream = n->stream;
    so.Consumer = NTF_DURABLE;
    natsStatus ns = js_PullSubscribe(&n->sub, vg_bus_js(n->bus), n->subject, NTF_DURABLE, NULL,
                                     &so, &jerr);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "pull subscribe %s: %s (jetstream error %d)", n->subject,
                       ntf_nats_error(ns), (int)jerr);
    return VG_OK;
}

static void ntf_free(struct ntf *n)
{
    if (!n)
        return;
    for (int i = 0; i < n->n_sinks; i++)
        ntf_sink_destroy(n->sinks[i]);
    natsSubscription_Destroy(n->sub);
    if (n->curl_ready)
        curl_global_cleanup();
    free(n);
}

static vg_status ntf_init(struct vg_svc *svc, void **state)
{
    vg_status st = VG_ERR_NOMEM;
    struct ntf *n = calloc(1, sizeof(*n));
    if (!n)
        goto out;
    n->svc = svc;
    n->cfg = vg_svc_config(svc);
    n->bus = vg_svc_bus(svc);
    n->redis = vg_svc_redis(svc);
    n->touch_every_us = (int64_t)(n->cfg->notifier.ack_wait_s > 0 ? n->cfg->notifier.ack_wait_s : 30)
                        * 1000000 / 3;
    ntf_backoff_init(&n->backoff, 0);
    make_metrics(&n->m);
    vg_subject(n->subject, sizeof(n->subject), n->cfg->prefix, "alerts", ">");
    vg_subject(n->dlq_subject, sizeof(n->dlq_subject), n->cfg->prefix, "dlq", "notifier");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        st = vg_errf(VG_ERR_HTTP, "curl_global_init failed");
        goto out;
    }
    n->curl_ready = 1;
    if ((st = make_sinks(n)) != VG_OK || (st = subscribe(n)) != VG_OK)
        goto out;
    vg_svc_set_ready(svc, 1);
    VG_INFO("notifier.started", NULL, "consuming %s as %s/%s with %d sink(s)", n->subject,
            n->stream, NTF_DURABLE, n->n_sinks);
    *state = n;
    n = NULL;
    st = VG_OK;
out:
    ntf_free(n);
    return st;
}

/* Once a stop is requested, messages not yet started go straight back to
 * the server (nak) so another replica can take them now; the one in hand
 * finishes its current attempts. */
static void handle_batch(struct ntf *n, natsMsgList *list)
{
    n->touched_us = vg_mono_us();
    for (int i = 0; i < list->Count; i++) {
        n->unsettled = list->Msgs + i;
        n->n_unsettled = list->Count - i;
        if (vg_svc_stopping(n->svc))
            ntf_hand_back(n, list->Msgs[i], NULL, NULL);
        else
            ntf_handle_msg(n, list->Msgs[i]);
    }
    n->unsettled = NULL;
    n->n_unsettled = 0;
}

static vg_status resubscribe(struct ntf *n)
{
    natsSubscription_Destroy(n->sub);
    n->sub = NULL;
    vg_status st = subscribe(n);
    if (st == VG_OK)
        VG_INFO("bus.resubscribed", NULL, "pull consumer %s/%s bound again", n->stream, NTF_DURABLE);
    else
        VG_WARN("bus.resubscribe_failed", NULL, "%s", vg_err_detail());
    return st;
}

/* NATS is reconnecting, or the consumer went away (server restarted without
 * its store): keep trying, say so now and then, and rebind after a while. */
static vg_status fetch_failed(struct ntf *n, natsStatus ns, jsErrCode jerr, int *errors)
{
    if (ns == NATS_CONNECTION_CLOSED)
        return vg_errf(VG_ERR_NATS, "fetch %s: connection closed", n->subject);
    (*errors)++;
    vg_svc_set_ready(n->svc, 0);
    if (*errors == 1 || *errors % LOG_FETCH_EVERY == 0)
        VG_WARN("bus.fetch_failed", NULL, "fetch from %s/%s (%d in a row): %s (jetstream error %d)",
                n->stream, NTF_DURABLE, *errors, ntf_nats_error(ns), (int)jerr);
    vg_svc_sleep_ms(n->svc, 1000);
    if ((!n->sub || *errors % RESUBSCRIBE_EVERY == 0) && vg_bus_connected(n->bus) &&
        !vg_svc_stopping(n->svc))
        resubscribe(n);
    return VG_OK;
}

/* A pull on a consumer that no longer exists (the server lost its store, or
 * someone deleted it) just times out, like an idle stream; so when idle,
 * look now and then and rebind if it is gone. */
static void check_consumer(struct ntf *n, int64_t *checked_us)
{
    jsConsumerInfo *ci = NULL;
    jsErrCode jerr = 0;
    int64_t now = vg_mono_us();
    if (now - *checked_us < CONSUMER_CHECK_US)
        return;
    *checked_us = now;
    natsStatus ns = js_GetConsumerInfo(&ci, vg_bus_js(n->bus), n->stream, NTF_DURABLE, NULL,
                                       &jerr);
    jsConsumerInfo_Destroy(ci);
    if (ns == NATS_NOT_FOUND || jerr == JSConsumerNotFoundErr || jerr == JSStreamNotFoundErr) {
        VG_WARN("bus.consumer_lost", NULL, "consumer %s/%s is gone; creating it again",
                n->stream, NTF_DURABLE);
        resubscribe(n);
    }
}

static void fetch_ok(struct ntf *n, int *errors)
{
    if (*errors > 0)
        VG_INFO("bus.fetch_resumed", NULL, "fetching again after %d failure(s)", *errors);
    *errors = 0;
    vg_svc_set_ready(n->svc, 1);
}

static vg_status ntf_run(struct vg_svc *svc, void *state)
{
    struct ntf *n = state;
    int batch = n->cfg->notifier.batch > 0 ? n->cfg->notifier.batch : BATCH_DEFAULT;
    int errors = 0;
    int64_t checked_us = vg_mono_us();
    if (batch > BATCH_MAX)
        batch = BATCH_MAX;

    while (!vg_svc_stopping(svc)) {
        natsMsgList list = {0};
        jsErrCode jerr = 0;
        natsStatus ns = n->sub ? natsSubscription_Fetch(&list, n->sub, batch, FETCH_WAIT_MS, &jerr)
                               : NATS_INVALID_SUBSCRIPTION;
        /* While disconnected a fetch just times out: that is no success. */
        if (ns == NATS_OK || (ns == NATS_TIMEOUT && vg_bus_connected(n->bus))) {
            fetch_ok(n, &errors);
            if (ns == NATS_TIMEOUT)
                check_consumer(n, &checked_us);
        } else {
            vg_status st = fetch_failed(n, ns, jerr, &errors);
            if (st != VG_OK)
                return st;
        }
        if (list.Count > 0)
            handle_batch(n, &list);
        natsMsgList_Destroy(&list);
    }
    /* Our pull subscription is not drained with the connection: a sync
     * subscription's drain waits for a status message of the last fetch that
     * nobody reads, and would hold shutdown for the whole drain timeout.
     * The consumer is bound, not created here, so this does not delete it. */
    if (n->sub)
        natsSubscription_Unsubscribe(n->sub);
    VG_INFO("notifier.stopped", NULL, "intake stopped; in-flight alerts settled");
    return VG_OK;
}

static void ntf_fini(struct vg_svc *svc, void *state)
{
    ntf_free(state);
}

const struct vg_service notifier_service = {
    .name = "notifier",
    .flags = VG_SVC_NEEDS_REDIS | VG_SVC_NEEDS_JETSTREAM,
    .default_http_addr = "127.0.0.1:9105",
    .init = ntf_init,
    .run = ntf_run,
    .fini = ntf_fini,
};
