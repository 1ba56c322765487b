/* Camera incidents: one stretch of a camera's activity, from the alert that
 * opens it until no sighting came for dedupe.incident_gap_s (docs/incidents.md).
 *
 * Redis holds each camera's current incident, so replicas share it:
 *
 * "<prefix>:dd:<camera>:incident"         hash: id (the first alert's id),
 *     opened / last (capture µs of the first / latest sighting), trace (of
 *     the latest), started / touched (Redis ms: when it opened, when a
 *     sighting last reached it), count, alerts, labels / persons / names
 *     (JSON arrays, in order of appearance), best_conf / best_snap /
 *     best_label, escalation (the latest), closed ("0" / "1")
 * "<prefix>:dd:<camera>:incident:alerts"  hash: alert id -> "escalation|count"
 *     for every alert that joined it, so a join is done once per alert
 *
 * Both live 2 * gap + 30 s after their last change. Three small scripts
 * change them: join (an alert opens or joins the camera's incident), flush
 * (a replica's suppressed sightings of the last second, in one call) and
 * close (marks it closed once gap + DD_INCIDENT_SETTLE_MS passed without a
 * sighting; only the first caller is told it closed it).
 *
 * Suppressed sightings cost no Redis call: dd_incidents_sighting adds them
 * up per camera in memory, and dd_incidents_tick flushes each camera at
 * most once a second, closes what is over and publishes an Incident on
 * <prefix>.incidents.<camera> after each open, join, flush and close (the
 * publish function is the caller's). Thread-safe. */
#ifndef DD_INCIDENT_H
#define DD_INCIDENT_H

#include <stddef.h>
#include <stdint.h>

#include <hiredis/hiredis.h>

#include "config.h"
#include "redis.h"
#include "vigil/v1/vigil.pb-c.h"

/* Labels and people an incident lists; later new ones are counted as
 * sightings but neither listed nor escalated. */
#define DD_INCIDENT_LIST_MAX 32
/* A replica flushes a camera's suppressed sightings at most this often. */
#define DD_INCIDENT_FLUSH_MS 1000
/* An incident is closed this long after its gap, so that sightings other
 * replicas still hold in memory (at most one flush period) reach it first. */
#define DD_INCIDENT_SETTLE_MS 1500

#define DD_ESCALATION_FACE "face_recognised"
#define DD_ESCALATION_CATEGORY "new_category"

/* One incident as a script answered it; strings point into the reply that
 * the containing answer owns ("" for fields Redis did not have). */
struct dd_incident {
    char *id;                   /* "": no incident */
    int open;
    int64_t opened_ts_us, last_seen_ts_us;
    uint64_t count;
    uint32_t alerts;
    float best_confidence;
    char *best_snapshot_url, *best_label, *escalation, *trace_id;
    size_t n_labels, n_persons;
    char *labels[DD_INCIDENT_LIST_MAX];
    char *person_ids[DD_INCIDENT_LIST_MAX], *display_names[DD_INCIDENT_LIST_MAX];
};

enum dd_incident_kind {
    DD_INCIDENT_OPENED = 1,     /* the alert opened the camera's incident */
    DD_INCIDENT_JOINED = 2,     /* it joined the open one */
    DD_INCIDENT_ALREADY = 3,    /* it had joined before: nothing changed */
};

/* What an alert about to be published brings to its incident. */
struct dd_incident_alert {
    const char *alert_id, *label, *person_id, *display_name, *trace_id, *snapshot_url;
    int64_t ts_us;              /* capture time */
    float confidence;
};

struct dd_incident_join {
    enum dd_incident_kind kind;
    char *escalation;           /* this alert's: "", face_recognised, new_category */
    uint64_t count;             /* sightings so far, this alert included */
    struct dd_incident now;     /* the incident after the join */
    struct dd_incident ended;   /* id "" unless the join found the camera's previous
                                 * incident over but not closed, and closed it */
    redisReply *reply;
};

/* A replica's suppressed sightings of one camera since its last flush. */
struct dd_incident_batch {
    uint64_t count;
    int64_t first_age_ms, last_age_ms;  /* how long ago the first / latest came */
    int64_t last_ts_us;         /* latest capture time */
    const char *trace_id;       /* of that sighting */
    float best_confidence;      /* < 0: none */
    const char *best_snapshot_url, *best_label;
};

/* What flush and close answer. */
struct dd_incident_answer {
    int code;                   /* flush: 1 applied, 0 no open incident to add to;
                                 * close: 2 closed now (by this call), 1 not yet
                                 * (due_in_ms), 0 none open */
    int64_t due_in_ms;
    struct dd_incident st;      /* flush 1 / close 2: the incident */
    redisReply *reply;
};

/* The scripts, one round trip each. gap_ms > 0. */
vg_status dd_incident_join_alert(struct vg_redis *r, const char *prefix, const char *camera,
                                 const struct dd_incident_alert *a, int64_t gap_ms,
                                 struct dd_incident_join *out);
void dd_incident_join_cleanup(struct dd_incident_join *j);
vg_status dd_incident_flush(struct vg_redis *r, const char *prefix, const char *camera,
                            const struct dd_incident_batch *b, int64_t gap_ms,
                            struct dd_incident_answer *out);
vg_status dd_incident_close(struct vg_redis *r, const char *prefix, const char *camera,
                            int64_t gap_ms, struct dd_incident_answer *out);
void dd_incident_answer_cleanup(struct dd_incident_answer *a);

/* The Incident message of st (strings shared with st and camera). */
void dd_incident_message(const struct dd_incident *st, const char *camera,
                         Vigil__V1__Incident *m, Vigil__V1__Header *h);

/* ---- the service's side: memory, tick, messages ------------------------- */

typedef vg_status (*dd_incident_publish_fn)(void *ctx, const char *camera,
                                           const Vigil__V1__Incident *m);

struct dd_incidents;

/* cfg->dedupe.incident_gap_s > 0; r may be NULL (then nothing is an
 * incident). Every configured camera is asked about at the first tick, so
 * an incident a stopped replica left open is closed too. */
vg_status dd_incidents_create(struct dd_incidents **out, const struct vg_config *cfg,
                              struct vg_redis *r, dd_incident_publish_fn publish, void *ctx);
void dd_incidents_destroy(struct dd_incidents *inc);

/* A suppressed sighting, received at now (monotonic µs). Memory only.
 * NULL inc is ignored. */
void dd_incidents_sighting(struct dd_incidents *inc, const Vigil__V1__Header *h,
                           const char *label, float confidence, const char *snapshot_url,
                           int64_t now);

/* a is about to be published from a window it opened in Redis: join (or
 * open) its camera's incident. On VG_OK a's incident_id, escalation and
 * incident_count point into *j: keep j until a is published, then hand it
 * to dd_incidents_joined. */
vg_status dd_incidents_join(struct dd_incidents *inc, Vigil__V1__Alert *a,
                            struct dd_incident_join *j);
/* After the alert's publish: the Incident message(s), logs and counts;
 * cleans j up. */
void dd_incidents_joined(struct dd_incidents *inc, const char *camera,
                         struct dd_incident_join *j);

/* Flush what is due (everything when final), close what is over. Call a
 * few times a second from one thread. */
void dd_incidents_tick(struct dd_incidents *inc, int64_t now, int final);

#endif
