/* Internal to the notifier. One worker per sink, each with its own durable
 * JetStream consumer "notifier-<sink>" on the alerts stream and its own
 * thread, so a slow or dead sink never delays another:
 *   notifier.c  the service: streams, sinks, workers, their threads
 *   worker.c    one sink's loop: fetch, deliver, settle, keep leases alive
 *   deliver.c   one alert to one sink: claim, attempts, outcome
 *   gate.c      whether the sink gets it at all: routing, incidents, rate limit
 *   ratelimit.c the per-sink rate limit and its summary
 *   arm_watch.c the arm mode, from Redis and <prefix>.control.arm
 *   claim.c     the Redis lease and done mark (no parallel or repeated sends)
 *   dlq.c       dead letters, and the server's max-deliveries advisory
 *   render.c    the alert as sinks receive it */
#ifndef NTF_NTF_H
#define NTF_NTF_H

#include <pthread.h>
#include <stdint.h>

#include <nats/nats.h>

#include "backoff.h"
#include "bus_consumer.h"
#include "config.h"
#include "metrics.h"
#include "redis.h"
#include "routing.h"
#include "sink/sink.h"
#include "svc.h"

#define NTF_SUBJECT_MAX 160
#define NTF_LEGACY_DURABLE "notifier"   /* the one consumer of vigil <= 0.6 */
#define NTF_REPLAY_HEADER "Vigil-Only-Sink"

/* Counters per sink (label sink="<name>"). */
struct ntf_metrics {
    struct vg_counter *alerts;
    struct vg_counter *delivered;
    struct vg_counter *duplicates;
    struct vg_counter *redelivered;     /* handed back for a later delivery */
    struct vg_counter *claimed_elsewhere;
    struct vg_counter *dead_letters;
    struct vg_counter *sink_failures;
    struct vg_counter *malformed;
    struct vg_counter *idem_unavailable;
    struct vg_counter *skipped_replays; /* a replay meant for another sink */
    struct vg_counter *skipped[5];      /* by reason: rule, arm_mode, quiet_hours,
                                         * rate_limit, incident (ntf_skip_reasons) */
    struct vg_counter *rate_summaries;
    struct vg_counter *rate_unavailable;
};

extern const char *const ntf_skip_reasons[];

/* An alert a sink does not get, and why (Delivery.reason and .note). */
struct ntf_skip {
    const char *reason;
    char note[VG_ROUTE_NOTE_MAX];
};

struct ntf;

struct ntf_worker {
    struct ntf *n;
    int index;                          /* in notifier.sinks (routing's sink bits) */
    int64_t rate_next_check_us;         /* the next look for a summary to send */
    struct vg_sink *sink;
    const struct vg_sink_cfg *cfg;
    struct vg_consumer *consumer;
    struct vg_redis *redis;             /* its own: sinks do not queue on one connection */
    struct ntf_metrics m;
    struct ntf_backoff backoff;
    pthread_t thread;
    int started;
    char durable[64];                   /* notifier-<sink> */
    char token[200];                    /* this replica's lease value */
    /* Fetched messages not settled yet: ntf_keepalive sends InProgress for
     * them every third of the ack wait so the server does not hand them to
     * another replica while this one is busy with an earlier one. */
    natsMsg **unsettled;
    int n_unsettled;
    int64_t touched_us;
};

struct ntf {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct vg_bus *bus;
    int n_workers;
    struct ntf_worker workers[VG_MAX_SINKS];
    struct vg_histogram *latency;
    struct vg_routing routing;
    struct ntf_evidence *evidence;      /* snapshot store + clip provider */
    pthread_mutex_t arm_lock;
    int arm_lock_ready;
    int arm_mode;                       /* index into routing.modes */
    int64_t arm_set_ts_us;              /* when it was set (the newer setting wins) */
    int64_t arm_refreshed_us;
    struct vg_counter *arm_gauges[VG_ROUTE_MAX_MODES];
    struct vg_counter *arm_unknown;
    int curl_ready;
    _Atomic int quit;                   /* workers stop (start-up failed, shutting down) */
    int64_t touch_every_us;
    int64_t lease_ms;                   /* 2 x ack wait */
    int64_t keep_us;                    /* how long the stream keeps an alert (0: forever) */
    char subject[NTF_SUBJECT_MAX];      /* <prefix>.alerts.> */
    char dlq_subject[NTF_SUBJECT_MAX];  /* <prefix>.dlq.notifier */
    char stream[64];                    /* <PREFIX>_ALERTS */
    char dlq_stream[64];                /* <PREFIX>_DLQ */
};

/* worker.c */
vg_status ntf_worker_open(struct ntf *n, struct ntf_worker *w, const struct vg_sink_cfg *cfg);
vg_status ntf_worker_start(struct ntf_worker *w);
void ntf_worker_join(struct ntf_worker *w);
/* Join, then drop the consumer binding (the durable stays on the server). */
void ntf_worker_unbind(struct ntf_worker *w);
void ntf_worker_close(struct ntf_worker *w);
/* Reset the server's redelivery timer of the unsettled messages, at most once
 * per touch_every_us. */
void ntf_keepalive(struct ntf_worker *w);

/* deliver.c: deliver one message to the worker's sink and settle it. */
void ntf_handle_msg(struct ntf_worker *w, natsMsg *msg);
/* Give a message back at once (stopping, not started). */
void ntf_hand_back_now(struct ntf_worker *w, natsMsg *msg);

/* gate.c: 1 when the sink does not get the alert (s says why). Before
 * the claim: routing and the incidents policy (no Redis); after it: the
 * one escalation per incident and the rate limit. */
int ntf_gate_before_claim(struct ntf_worker *w, const Vigil__V1__Alert *a, struct ntf_skip *s);
int ntf_gate_after_claim(struct ntf_worker *w, const Vigil__V1__Alert *a, struct ntf_skip *s);
/* A dead-lettered escalation gives its incident's one escalation back. */
void ntf_gate_forget(struct ntf_worker *w, const Vigil__V1__Alert *a);

/* ratelimit.c: 1 to send; 0 held back (note says why). */
int ntf_rate_take(struct ntf_worker *w, const Vigil__V1__Alert *a, char *note, size_t cap);
/* From the worker's loop: send the summary of held-back alerts when due. */
void ntf_rate_tick(struct ntf_worker *w);

/* arm_watch.c */
vg_status ntf_arm_start(struct ntf *n);     /* the mode from config and Redis */
vg_status ntf_arm_subscribe(struct ntf *n); /* then <prefix>.control.arm */
int ntf_arm_mode(struct ntf *n);
void ntf_arm_refresh(struct ntf *n);    /* from the main loop; reads Redis every few s */

/* claim.c */
enum ntf_claim {
    NTF_CLAIMED,            /* ours to send */
    NTF_DONE,               /* already delivered to this sink */
    NTF_HELD,               /* another replica is sending it now */
    NTF_UNKNOWN,            /* Redis unavailable: send without protection */
};
enum ntf_claim ntf_claim(struct ntf_worker *w, const char *alert_id, int64_t *held_ms);
/* After success: the done mark (TTL notifier.idempotency_ttl_s), lease released. */
vg_status ntf_claim_done(struct ntf_worker *w, const char *alert_id);
/* After a failure: release our lease so a redelivery need not wait for it. */
void ntf_claim_release(struct ntf_worker *w, const char *alert_id);

/* dlq.c. The msg id makes every path that dead-letters one alert for one
 * sink store it once. */
vg_status ntf_dlq_publish(struct ntf *n, const void *data, size_t len, const char *msg_id,
                          const char *sink, const char *alert_id, const char *error);
/* Subscribe to the max-deliveries advisory of a worker's consumer. */
vg_status ntf_dlq_watch_advisories(struct ntf_worker *w);

/* render.c: the alert as a sink receives it; free with ntf_render_free. */
struct ntf_rendered {
    struct vg_sink_alert view;
    char *json;
    char *title;
    char *text;
    char *html;
    uint8_t *snapshot;
    struct ntf_links *links;
};
/* Links and snapshot bytes come from ev (evidence.h), resolved now. */
struct ntf_evidence;
vg_status ntf_render(struct ntf_rendered *r, const Vigil__V1__Alert *a,
                     const struct vg_sink_cfg *cfg, struct ntf_evidence *ev, unsigned count);
void ntf_render_free(struct ntf_rendered *r);

#endif
