/* vigil-notifier: the service. Streams first (alerts, dead letters), then
 * one worker per sink (worker.c), each with its own durable consumer and
 * thread; the main thread waits for the stop and joins them. */
#include "notifier.h"

#include <curl/curl.h>
#include <stdlib.h>
#include <string.h>

#include "evidence.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define DLQ_MAX_AGE_S (30LL * 86400)
#define DLQ_DUPLICATES_S 600
#define BACKOFF_CAP_MS 30000

/* One attempt must end well inside the ack wait (between attempts the
 * worker tells the server it is still busy), and one whole delivery, quick
 * retries included, inside the lease (twice the ack wait), or another
 * replica could send the same alert while this one still is. */
static vg_status check_budget(const struct vg_config *cfg, const struct vg_sink_cfg *s)
{
    int64_t ack_wait_ms = (int64_t)cfg->notifier.ack_wait_s * 1000;
    int64_t budget = (int64_t)s->timeout_ms * (s->retries + 1);
    for (int i = 0; i < s->retries; i++)
        budget += ntf_backoff_ceiling_ms(s->backoff_ms, BACKOFF_CAP_MS, i);
    if ((int64_t)s->timeout_ms * 3 > ack_wait_ms * 2)
        return vg_errf(VG_ERR_CONFIG, "sink %s: timeout_ms %d is above 2/3 of "
                       "notifier.ack_wait_s %d", s->name, s->timeout_ms,
                       cfg->notifier.ack_wait_s);
    if (s->timeout_ms > 0 && budget > ack_wait_ms * 2)
        return vg_errf(VG_ERR_CONFIG,
                       "sink %s: %d attempt(s) of timeout_ms %d plus backoff take up to %lld ms, "
                       "more than twice notifier.ack_wait_s %d: lower timeout_ms or retries, "
                       "or raise ack_wait_s", s->name, s->retries + 1, s->timeout_ms,
                       (long long)budget, cfg->notifier.ack_wait_s);
    return VG_OK;
}

static vg_status ntf_check(const struct vg_config *cfg)
{
    static struct vg_routing routing;   /* large; --check runs it once */
    /* With no sink every alert would be kept forever and reach nobody. */
    if (cfg->notifier.n_sinks <= 0)
        return vg_errf(VG_ERR_CONFIG, "notifier.sinks: at least one sink is required");
    vg_status rs = vg_routing_load(&routing, cfg);
    if (rs != VG_OK)
        return rs;
    for (int i = 0; i < cfg->notifier.n_sinks; i++) {
        vg_status st = check_budget(cfg, &cfg->notifier.sinks[i]);
        if (st != VG_OK)
            return st;
    }
    return VG_OK;
}

static vg_status ensure_streams(struct ntf *n)
{
    vg_status st = vg_bus_ensure_stream(n->bus, "alerts",
                                        (int64_t)n->cfg->notifier.stream_max_age_h * 3600,
                                        vg_alerts_dup_window_s(n->cfg), n->stream,
                                        sizeof(n->stream));
    /* Dead letters wait for a person, so they are stored too: a plain
     * publish with nobody listening would drop the very alerts we gave up on. */
    if (st == VG_OK)
        st = vg_bus_ensure_stream(n->bus, "dlq", DLQ_MAX_AGE_S, DLQ_DUPLICATES_S,
                                  n->dlq_stream, sizeof(n->dlq_stream));
    return st;
}

/* vigil <= 0.6 had one consumer for all sinks; the per-sink consumers start
 * at its ack floor (bus_consumer.c), after which it is removed. */
static void retire_legacy_consumer(struct ntf *n)
{
    if (!vg_consumer_exists(n->bus, n->stream, NTF_LEGACY_DURABLE))
        return;
    if (vg_consumer_delete(n->bus, n->stream, NTF_LEGACY_DURABLE) == VG_OK)
        VG_INFO("bus.consumer_retired", NULL, "consumer %s/%s replaced by one per sink",
                n->stream, NTF_LEGACY_DURABLE);
    else
        VG_WARN("bus.consumer_retire_failed", NULL, "%s", vg_err_detail());
}

static void ntf_free(struct ntf *n)
{
    if (!n)
        return;
    n->quit = 1;
    for (int i = 0; i < n->n_workers; i++)
        ntf_worker_close(&n->workers[i]);
    ntf_evidence_close(n->evidence);
    if (n->curl_ready)
        curl_global_cleanup();
    if (n->arm_lock_ready)
        pthread_mutex_destroy(&n->arm_lock);
    free(n);
}

static vg_status open_workers(struct ntf *n)
{
    for (int i = 0; i < n->cfg->notifier.n_sinks; i++) {
        struct ntf_worker *w = &n->workers[n->n_workers++];
        vg_status st = ntf_worker_open(n, w, &n->cfg->notifier.sinks[i]);
        if (st != VG_OK)
            return st;
    }
    retire_legacy_consumer(n);
    for (int i = 0; i < n->n_workers; i++) {
        vg_status st = ntf_worker_start(&n->workers[i]);
        if (st != VG_OK)
            return st;
    }
    return VG_OK;
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
    int ack_wait_s = n->cfg->notifier.ack_wait_s > 0 ? n->cfg->notifier.ack_wait_s : 30;
    n->touch_every_us = (int64_t)ack_wait_s * 1000000 / 3;
    n->lease_ms = (int64_t)ack_wait_s * 2000;
    n->keep_us = (int64_t)n->cfg->notifier.stream_max_age_h * 3600 * 1000000;
    n->latency = vg_histogram_get("vigil_notifier_latency_seconds",
                                  "Capture of the frame to delivery of its alert");
    vg_subject(n->subject, sizeof(n->subject), n->cfg->prefix, "alerts", ">");
    vg_subject(n->dlq_subject, sizeof(n->dlq_subject), n->cfg->prefix, "dlq", "notifier");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        st = vg_errf(VG_ERR_HTTP, "curl_global_init failed");
        goto out;
    }
    n->curl_ready = 1;
    if ((st = ntf_check(n->cfg)) != VG_OK ||
        (st = vg_routing_load(&n->routing, n->cfg)) != VG_OK ||
        (st = ntf_evidence_open(&n->evidence, n->cfg)) != VG_OK ||
        (st = ntf_arm_start(n)) != VG_OK || (st = ensure_streams(n)) != VG_OK ||
        (st = open_workers(n)) != VG_OK || (st = ntf_arm_subscribe(n)) != VG_OK)
        goto out;
    vg_svc_set_ready(svc, 1);
    VG_INFO("notifier.started", NULL, "consuming %s from %s with %d sink(s), one consumer each",
            n->subject, n->stream, n->n_workers);
    *state = n;
    n = NULL;
    st = VG_OK;
out:
    /* Workers that started see the stop only at shutdown: on failure here
     * the service is exiting, and ntf_free joins them after the flag. */
    ntf_free(n);
    return st;
}

static vg_status ntf_run(struct vg_svc *svc, void *state)
{
    struct ntf *n = state;
    while (!vg_svc_sleep_ms(svc, 1000))
        ntf_arm_refresh(n);
    /* Unbound before the connection drains: a pull subscription's drain
     * waits for a status message of its last fetch that nobody reads. */
    for (int i = 0; i < n->n_workers; i++)
        ntf_worker_unbind(&n->workers[i]);
    VG_INFO("notifier.stopped", NULL, "intake stopped; in-flight alerts settled");
    return VG_OK;
}

static void ntf_fini(struct vg_svc *svc, void *state)
{
    (void)svc;
    ntf_free(state);
}

const struct vg_service notifier_service = {
    .name = "notifier",
    .flags = VG_SVC_NEEDS_REDIS | VG_SVC_NEEDS_JETSTREAM,
    .default_http_addr = "127.0.0.1:9105",
    .check = ntf_check,
    .init = ntf_init,
    .run = ntf_run,
    .fini = ntf_fini,
};
