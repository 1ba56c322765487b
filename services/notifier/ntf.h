/* Internal to the notifier: the state shared by the consumer loop
 * (notifier.c) and the delivery of one alert (deliver.c). */
#ifndef NTF_NTF_H
#define NTF_NTF_H

#include <stdint.h>

#include <nats/nats.h>

#include "backoff.h"
#include "config.h"
#include "metrics.h"
#include "sink.h"
#include "svc.h"

#define NTF_DURABLE "notifier"
#define NTF_BACKOFF_CAP_MS 30000
#define NTF_SUBJECT_MAX 160

struct ntf_metrics {
    struct vg_counter *alerts;
    struct vg_counter *delivered;
    struct vg_counter *duplicates;
    struct vg_counter *dead_letters;
    struct vg_counter *sink_failures;
    struct vg_counter *malformed;
    struct vg_counter *idem_unavailable;
    struct vg_histogram *latency;
};

struct ntf {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct vg_bus *bus;
    struct vg_redis *redis;
    natsSubscription *sub;
    int n_sinks;
    struct ntf_sink *sinks[VG_MAX_SINKS];
    struct ntf_backoff backoff;
    struct ntf_metrics m;
    int curl_ready;
    char subject[NTF_SUBJECT_MAX];      /* <prefix>.alerts.> */
    char dlq_subject[NTF_SUBJECT_MAX];  /* <prefix>.dlq.notifier */
    char stream[64];                    /* <PREFIX>_ALERTS */
    char dlq_stream[64];                /* <PREFIX>_DLQ */
    /* Fetched messages not settled yet. While one alert retries, the server
     * must not redeliver these to another replica: ntf_keepalive sends
     * InProgress for all of them every third of the ack wait. */
    natsMsg **unsettled;
    int n_unsettled;
    int64_t touched_us;
    int64_t touch_every_us;
};

/* Deliver one alert message to every sink, then settle it: ack when every
 * sink delivered or dead-lettered, nak when it must be tried again (stop
 * requested mid-retry, NATS trouble), term when it is malformed. */
void ntf_handle_msg(struct ntf *n, natsMsg *msg);

/* Give a message back for a later delivery (nak), or dead-letter it when this
 * was its last permitted delivery. camera and alert_id may be NULL (not
 * decoded yet); then nothing is logged unless it is dead-lettered. */
void ntf_hand_back(struct ntf *n, natsMsg *msg, const char *camera, const char *alert_id);

/* The NATS library's detail text for the calling thread's last error, or the
 * text of ns when there is none. */
const char *ntf_nats_error(natsStatus ns);

/* Reset the server's redelivery timer of the unsettled messages, at most once
 * per touch_every_us. */
void ntf_keepalive(struct ntf *n);

#endif
