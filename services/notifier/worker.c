/* One sink's worker: its own durable consumer and thread. */
#include <stdio.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define FETCH_WAIT_MS 1000
#define BATCH_DEFAULT 10
#define BATCH_MAX 256
#define REDIS_TIMEOUT_MS 1000

static struct vg_counter *counter(const char *sink, const char *name, const char *help)
{
    char labels[64];
    snprintf(labels, sizeof(labels), "sink=\"%s\"", sink);
    return vg_counter_get_labeled(name, labels, help);
}

static void make_metrics(struct ntf_metrics *m, const char *s)
{
    m->alerts = counter(s, "vigil_notifier_alerts_total", "Alerts taken from the stream");
    m->delivered = counter(s, "vigil_notifier_delivered_total", "Alerts delivered");
    m->duplicates = counter(s, "vigil_notifier_duplicates_total",
                            "Redelivered alerts skipped because the sink already had them");
    m->redelivered = counter(s, "vigil_notifier_retry_later_total",
                             "Transient failures handed back to JetStream for a later delivery");
    m->claimed_elsewhere = counter(s, "vigil_notifier_claimed_elsewhere_total",
                                   "Deliveries deferred: another replica held the alert's lease");
    m->dead_letters = counter(s, "vigil_notifier_dead_letters_total",
                              "Alerts given up for the sink and sent to the dead-letter queue");
    m->sink_failures = counter(s, "vigil_notifier_sink_failures_total",
                               "Failed delivery attempts, quick retries included");
    m->malformed = counter(s, "vigil_notifier_malformed_total",
                           "Messages on the alert stream that are not valid alerts");
    m->idem_unavailable = counter(s, "vigil_notifier_idempotency_unavailable_total",
                                  "Claims or done marks lost because Redis was unavailable");
    m->skipped_replays = counter(s, "vigil_notifier_replays_skipped_total",
                                 "Replayed dead letters meant for another sink");
    for (int i = 0; ntf_skip_reasons[i]; i++) {
        char labels[128];
        snprintf(labels, sizeof(labels), "sink=\"%s\",reason=\"%s\"", s, ntf_skip_reasons[i]);
        m->skipped[i] = vg_counter_get_labeled("vigil_notifier_skipped_total", labels,
                                               "Alerts not sent to the sink on purpose, by reason");
    }
    m->rate_summaries = counter(s, "vigil_notifier_rate_summaries_total",
                                "Summaries of alerts a rate limit held back");
    m->rate_unavailable = counter(s, "vigil_notifier_rate_limit_unavailable_total",
                                  "Alerts sent without their rate limit because Redis was down");
}

/* A sink's new consumer starts where the old single consumer stood
 * (upgrade), else where another sink's stands (a sink added later gets new
 * alerts, not the stream's whole history). */
static void siblings(const struct ntf *n, const struct vg_sink_cfg *self, char names[][64],
                     const char **out)
{
    int k = 0;
    out[k++] = NTF_LEGACY_DURABLE;
    for (int i = 0; i < n->cfg->notifier.n_sinks && k < 7; i++)
        if (&n->cfg->notifier.sinks[i] != self) {
            snprintf(names[k], 64, "notifier-%s", n->cfg->notifier.sinks[i].name);
            out[k] = names[k];
            k++;
        }
    out[k] = NULL;
}

vg_status ntf_worker_open(struct ntf *n, struct ntf_worker *w, const struct vg_sink_cfg *cfg)
{
    char names[8][64];
    const char *like[8];
    siblings(n, cfg, names, like);
    struct vg_consumer_opts o = {
        .stream = n->stream,
        .durable = w->durable,
        .filter = n->subject,
        .ack_wait_s = n->cfg->notifier.ack_wait_s,
        .max_deliver = n->cfg->notifier.max_deliver,
        .start_like = like,
    };
    w->n = n;
    w->cfg = cfg;
    w->index = (int)(cfg - n->cfg->notifier.sinks);
    snprintf(w->durable, sizeof(w->durable), "notifier-%s", cfg->name);
    snprintf(w->token, sizeof(w->token), "%s/%s", vg_producer(), cfg->name);
    ntf_backoff_init(&w->backoff, 0);
    make_metrics(&w->m, cfg->name);
    vg_status st = vg_sink_open(&w->sink, cfg, n->cfg);
    if (st == VG_OK)
        st = vg_redis_create(&w->redis, n->cfg->redis_url, REDIS_TIMEOUT_MS);
    if (st == VG_OK)
        st = vg_consumer_open(&w->consumer, n->bus, &o);
    if (st == VG_OK)
        st = ntf_dlq_watch_advisories(w);
    return st;
}

void ntf_keepalive(struct ntf_worker *w)
{
    int64_t now = vg_mono_us();
    if (now - w->touched_us < w->n->touch_every_us)
        return;
    w->touched_us = now;
    for (int i = 0; i < w->n_unsettled; i++)
        natsMsg_InProgress(w->unsettled[i], NULL);
}

/* Once a stop is requested, messages not yet started go straight back to
 * the server so another replica can take them now; the one in hand
 * finishes its current attempt. */
static void handle_batch(struct ntf_worker *w, natsMsgList *list)
{
    w->touched_us = vg_mono_us();
    for (int i = 0; i < list->Count; i++) {
        w->unsettled = list->Msgs + i;
        w->n_unsettled = list->Count - i;
        if (vg_svc_stopping(w->n->svc))
            ntf_hand_back_now(w, list->Msgs[i]);
        else
            ntf_handle_msg(w, list->Msgs[i]);
    }
    w->unsettled = NULL;
    w->n_unsettled = 0;
}

static void *worker_main(void *arg)
{
    struct ntf_worker *w = arg;
    int batch = w->n->cfg->notifier.batch > 0 ? w->n->cfg->notifier.batch : BATCH_DEFAULT;
    if (batch > BATCH_MAX)
        batch = BATCH_MAX;
    while (!vg_svc_stopping(w->n->svc) && !w->n->quit) {
        natsMsgList list;
        vg_status st = vg_consumer_fetch(w->consumer, &list, batch, FETCH_WAIT_MS);
        if (st == VG_ERR_NATS) {
            VG_ERROR("bus.closed", NULL, "sink %s: %s", w->cfg->name, vg_err_detail());
            break;
        }
        if (st != VG_OK) {
            vg_svc_sleep_ms(w->n->svc, 1000);
            continue;
        }
        if (list.Count > 0)
            handle_batch(w, &list);
        natsMsgList_Destroy(&list);
        ntf_rate_tick(w);
    }
    return NULL;
}

vg_status ntf_worker_start(struct ntf_worker *w)
{
    int rc = pthread_create(&w->thread, NULL, worker_main, w);
    if (rc != 0)
        return vg_errf(VG_ERR_NOMEM, "sink %s: thread: %s", w->cfg->name, strerror(rc));
    w->started = 1;
    return VG_OK;
}

void ntf_worker_join(struct ntf_worker *w)
{
    if (w->started)
        pthread_join(w->thread, NULL);
    w->started = 0;
}

void ntf_worker_unbind(struct ntf_worker *w)
{
    ntf_worker_join(w);
    vg_consumer_close(w->consumer);
    w->consumer = NULL;
}

void ntf_worker_close(struct ntf_worker *w)
{
    ntf_worker_unbind(w);
    vg_sink_close(w->sink);
    vg_redis_destroy(w->redis);
    w->sink = NULL;
    w->redis = NULL;
}
