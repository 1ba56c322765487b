#include "health.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "health_state.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"
#include "window.h"

struct cam {
    const char *id;             /* the configuration's, which outlives us */
    struct dd_cam_state s;
    int unsynced;               /* reported fail-open: Redis does not know yet */
    int64_t reported_ts;        /* the episode time of what was reported */
};

struct dd_health {
    pthread_mutex_t lock;       /* cams[].s: status handler vs tick */
    const struct vg_config *cfg;
    struct vg_redis *r;
    struct dd_outbox *ob;
    struct dd_cam_limits lim;
    int n;
    struct cam cams[VG_MAX_CAMERAS];
    struct vg_counter *offline_alerts, *online_alerts, *statuses, *elsewhere, *failed,
        *cameras_down;
};

/* One transition to report, copied out of the lock. */
struct job {
    struct cam *c;
    enum dd_cam_want want;
    int reported;
    int64_t ts;                 /* the episode (offline) or up stretch (online) began */
    int64_t for_us;             /* and how long ago */
    const char *reason;
};

/* What the transition script answers. */
enum { ALREADY = 0, MOVED = 1, NOTHING_TO_REPORT = 2 };

/* Move the state hash to the job's kind and write the alert's pending
 * record (MOVED), unless that transition was already alerted or this view
 * is older than the hash (ALREADY), or an online one has no offline one
 * before it (NOTHING_TO_REPORT). */
static const char transition_script[] = DD_PENDING_LUA
    "local cur = redis.call('HGET', KEYS[1], 'kind') "
    "local ts = redis.call('HGET', KEYS[1], 'ts') "
    "if cur == ARGV[2] then return 0 end "
    "if ARGV[2] == 'online' and cur ~= 'offline' then return 2 end "
    "if ts and tonumber(ts) > tonumber(ARGV[3]) then return 0 end "
    "redis.call('HSET', KEYS[1], 'kind', ARGV[2], 'ts', ARGV[3], 'alert_id', ARGV[1]) "
    "stash(KEYS[2], KEYS[3], ARGV[1], ARGV[4], ARGV[5], ARGV[6]) "
    "return 1";

/* After a fail-open alert: tell the hash, unless it knows something newer. */
static const char sync_script[] =
    "local ts = redis.call('HGET', KEYS[1], 'ts') "
    "if ts and tonumber(ts) >= tonumber(ARGV[2]) then return 0 end "
    "redis.call('HSET', KEYS[1], 'kind', ARGV[1], 'ts', ARGV[2], 'alert_id', ARGV[3]) "
    "return 1";

vg_status dd_health_create(struct dd_health **out, const struct vg_config *cfg,
                           struct vg_redis *r, struct dd_outbox *ob)
{
    struct dd_health *h = calloc(1, sizeof(*h));
    if (!h)
        return VG_ERR_NOMEM;
    pthread_mutex_init(&h->lock, NULL);
    h->cfg = cfg;
    h->r = r;
    h->ob = ob;
    h->lim.offline_after_us = (int64_t)cfg->dedupe.health.offline_after_s * 1000000;
    h->lim.online_after_us = (int64_t)cfg->dedupe.health.online_after_s * 1000000;
    h->n = cfg->n_cameras;
    for (int i = 0; i < h->n; i++)
        h->cams[i].id = cfg->cameras[i].id;
    h->offline_alerts = vg_counter_get_labeled("vigil_dedupe_health_alerts_total",
                                               "kind=\"camera_offline\"",
                                               "Camera health alerts published");
    h->online_alerts = vg_counter_get_labeled("vigil_dedupe_health_alerts_total",
                                              "kind=\"camera_online\"",
                                              "Camera health alerts published");
    h->statuses = vg_counter_get("vigil_dedupe_health_statuses_total",
                                 "CameraStatus messages of configured cameras considered");
    h->elsewhere = vg_counter_get("vigil_dedupe_health_elsewhere_total",
                                  "Health transitions another replica (or run) had alerted");
    h->failed = vg_counter_get("vigil_dedupe_publish_failed_total",
                               "Alerts that JetStream did not accept");
    h->cameras_down = vg_gauge_get("vigil_dedupe_cameras_offline",
                                   "Cameras this replica last knew reported offline");
    /* Capture reports every 10 s: a shorter hold-down would call a healthy
     * camera stalled between two of its reports. */
    if (cfg->dedupe.health.offline_after_s <= 10)
        VG_WARN("health.config", NULL, "dedupe.health.offline_after_s = %d is not longer than "
                "capture's 10 s status interval: healthy cameras may be reported stalled",
                cfg->dedupe.health.offline_after_s);
    *out = h;
    return VG_OK;
}

void dd_health_destroy(struct dd_health *h)
{
    if (!h)
        return;
    pthread_mutex_destroy(&h->lock);
    free(h);
}

void dd_health_on_status(struct dd_health *h, const Vigil__V1__CameraStatus *cs, int64_t now)
{
    if (!h)
        return;
    const char *id = cs->header->camera_id;
    /* The capture time identifies the episode across replicas; a status
     * without one falls back to this replica's clock. */
    int64_t ts = cs->header->capture_ts_us > 0 ? cs->header->capture_ts_us : vg_now_us();
    for (int i = 0; i < h->n; i++) {
        if (strcmp(h->cams[i].id, id))
            continue;
        vg_counter_inc(h->statuses);
        pthread_mutex_lock(&h->lock);
        dd_cam_status(&h->cams[i].s, &h->lim, (int)cs->state, cs->frames_read, ts, now);
        pthread_mutex_unlock(&h->lock);
        return;
    }
}

static void fill_alert(struct dd_health *h, const struct job *j, Vigil__V1__Alert *a,
                       Vigil__V1__Header *hdr, char *key, size_t cap, char *alert_id)
{
    int offline = j->want == DD_CAM_WANT_OFFLINE;
    snprintf(key, cap, "%s:dd:%s:health:%s", h->cfg->prefix, j->c->id,
             offline ? "offline" : "online");
    vg_header_fill(hdr, j->c->id, j->ts, NULL);
    a->header = hdr;
    a->alert_id = alert_id;
    a->key = key;
    a->label = offline ? "camera_offline" : "camera_online";
    a->confidence = 1.0f;
    a->window_s = 0;            /* no dedupe window: one alert per transition */
}

static void state_key(struct dd_health *h, const struct cam *c, char *out, size_t cap)
{
    snprintf(out, cap, "%s:dd:%s:health:state", h->cfg->prefix, c->id);
}

/* The hash learns of a fail-open alert once Redis is back. */
static void sync(struct dd_health *h, struct cam *c, const char *kind)
{
    char key[256];
    redisReply *reply = NULL;
    state_key(h, c, key, sizeof(key));
    if (vg_redis_cmd(h->r, &reply, "EVAL %s 1 %s %s %lld %s", sync_script, key, kind,
                     (long long)c->reported_ts, "fail-open") != VG_OK)
        return;
    freeReplyObject(reply);
    c->unsynced = 0;
}

/* Ask Redis whether this replica alerts the transition: *answer MOVED
 * (yes, and the pending record is written), ALREADY or NOTHING_TO_REPORT. */
static vg_status transition(struct dd_health *h, const struct job *j, const Vigil__V1__Alert *a,
                            const char *kind, int *answer)
{
    char key[256];
    struct dd_stash stash;
    redisReply *reply = NULL;
    state_key(h, j->c, key, sizeof(key));
    vg_status st = dd_outbox_stash(h->ob, a, &stash);
    if (st == VG_OK)
        st = vg_redis_cmd(h->r, &reply, "EVAL %s 3 %s %s %s %s %s %lld %b %lld %d",
                          transition_script, key, stash.key, stash.set, a->alert_id, kind,
                          (long long)j->ts, (const void *)stash.data, stash.len,
                          (long long)stash.ttl_ms, DD_PENDING_GRACE_MS);
    dd_stash_cleanup(&stash);
    if (st != VG_OK)
        return st;
    if (reply->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(reply);
        return vg_errf(VG_ERR_REDIS, "redis health %s: unexpected reply", key);
    }
    *answer = (int)reply->integer;
    freeReplyObject(reply);
    return VG_OK;
}

static void alerted(struct dd_health *h, const struct job *j, const Vigil__V1__Alert *a)
{
    int offline = j->want == DD_CAM_WANT_OFFLINE;
    vg_counter_inc(offline ? h->offline_alerts : h->online_alerts);
    if (offline)
        VG_WARN("camera.offline", j->c->id, "%s for %.0f s: %s alert %s%s", j->reason,
                (double)j->for_us / 1e6, a->label, a->alert_id,
                a->fail_open ? " fail-open" : "");
    else
        VG_INFO("camera.online", j->c->id, "up for %.0f s: %s alert %s%s",
                (double)j->for_us / 1e6, a->label, a->alert_id,
                a->fail_open ? " fail-open" : "");
}

/* Redis is down: this replica alerts on its own. Returns what it reported. */
static int report_fail_open(struct dd_health *h, const struct job *j, Vigil__V1__Alert *a)
{
    int want = j->want == DD_CAM_WANT_OFFLINE ? DD_CAM_OFFLINE : DD_CAM_ONLINE;
    /* No offline alert this replica knows of: nothing to be back from. */
    if (want == DD_CAM_ONLINE && j->reported != DD_CAM_OFFLINE)
        return want;
    dd_window_fail_open_id(a->alert_id, a->key, j->ts);
    a->fail_open = 1;
    if (dd_outbox_publish(h->ob, a, 0) != VG_OK) {
        vg_counter_inc(h->failed);
        VG_ERROR("alert.publish_failed", j->c->id, "%s: %s; tried again in a second", a->key,
                 vg_err_detail());
        return j->reported;     /* the same derived id next time */
    }
    alerted(h, j, a);
    j->c->unsynced = 1;
    j->c->reported_ts = j->ts;
    return want;
}

/* Report one transition; returns what this camera now counts as reported. */
static int report(struct dd_health *h, const struct job *j)
{
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    char key[256], alert_id[33];
    int want = j->want == DD_CAM_WANT_OFFLINE ? DD_CAM_OFFLINE : DD_CAM_ONLINE;
    const char *kind = want == DD_CAM_OFFLINE ? "offline" : "online";
    int answer = ALREADY;

    vg_new_id(alert_id);
    fill_alert(h, j, &a, &hdr, key, sizeof(key), alert_id);
    if (h->r && j->c->unsynced)
        sync(h, j->c, j->reported == DD_CAM_OFFLINE ? "offline" : "online");
    if (!h->r || transition(h, j, &a, kind, &answer) != VG_OK)
        return report_fail_open(h, j, &a);
    if (answer != MOVED) {
        if (answer == ALREADY) {
            vg_counter_inc(h->elsewhere);
            VG_DEBUG("health.elsewhere", j->c->id, "%s: already alerted", a.label);
        }
        return want;
    }
    if (dd_outbox_publish(h->ob, &a, 1) != VG_OK) {
        /* The record stays: the sweep stores the alert when JetStream can. */
        vg_counter_inc(h->failed);
        VG_ERROR("alert.publish_failed", j->c->id, "%s: %s; left to the recovery sweep",
                 a.key, vg_err_detail());
        return want;
    }
    alerted(h, j, &a);
    return want;
}

void dd_health_tick(struct dd_health *h, int64_t now)
{
    int down = 0;
    if (!h)
        return;
    for (int i = 0; i < h->n; i++) {
        struct cam *c = &h->cams[i];
        struct job j = {.c = c};
        pthread_mutex_lock(&h->lock);
        j.want = dd_cam_decide(&c->s, &h->lim, now);
        j.reported = c->s.reported;
        j.ts = j.want == DD_CAM_WANT_OFFLINE ? c->s.down_ts : c->s.up_ts;
        j.for_us = now - (j.want == DD_CAM_WANT_OFFLINE ? c->s.down_us : c->s.up_us);
        j.reason = dd_cam_reason(&c->s, &h->lim, now);
        pthread_mutex_unlock(&h->lock);
        /* Redis and JetStream are asked outside the lock: statuses keep
         * flowing meanwhile. Only this thread writes reported. */
        if (j.want != DD_CAM_WANT_NOTHING) {
            int reported = report(h, &j);
            pthread_mutex_lock(&h->lock);
            c->s.reported = reported;
            pthread_mutex_unlock(&h->lock);
        }
        down += c->s.reported == DD_CAM_OFFLINE;
    }
    vg_gauge_set(h->cameras_down, down);
}
