#include "incident.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define KEY_MAX 256
#define LABEL_MAX 256
#define TRACE_MAX 65
/* A camera the tick could not ask (Redis down) is asked again after this. */
#define RETRY_US 1000000LL

/* ---- the scripts ---------------------------------------------------------- */

/* Shared by the scripts. Times in the hash: capture µs kept as the strings
 * they came as (Lua's numbers would print them rounded), Redis ms as
 * integers. state() is the reply shape read_state() parses. */
#define INC_LUA                                                                     \
    "local function now_ms() local t = redis.call('TIME') "                         \
    "return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) end "        \
    "local function list(h, f) local v = redis.call('HGET', h, f) "                 \
    "if v then return cjson.decode(v) end return {} end "                           \
    "local function has(l, x) for _, v in ipairs(l) do "                            \
    "if v == x then return true end end return false end "                          \
    "local function state(h) "                                                      \
    "local v = redis.call('HMGET', h, 'id', 'opened', 'last', 'count', 'alerts', "  \
    "'best_conf', 'best_snap', 'best_label', 'escalation', 'closed', 'trace') "     \
    "v[12] = list(h, 'labels') v[13] = list(h, 'persons') v[14] = list(h, 'names') " \
    "return v end "                                                                 \
    "local function saw(h, ts, trace, at) "                                         \
    "local last = redis.call('HGET', h, 'last') "                                   \
    "if not last or tonumber(ts) >= tonumber(last) then "                           \
    "redis.call('HSET', h, 'last', ts, 'trace', trace) end "                        \
    "if at > tonumber(redis.call('HGET', h, 'touched') or '0') then "              \
    "redis.call('HSET', h, 'touched', string.format('%d', at)) end end "           \
    "local function better(h, conf, snap, label) "                                  \
    "if tonumber(conf) > tonumber(redis.call('HGET', h, 'best_conf') or '-1') then " \
    "redis.call('HSET', h, 'best_conf', conf, 'best_snap', snap, 'best_label', label) " \
    "end end "                                                                      \
    "local function keep(ttl) for _, k in ipairs(KEYS) do "                         \
    "redis.call('PEXPIRE', k, ttl) end end "

/* KEYS: hash, alerts. ARGV: alert id, label, person id, display name,
 * capture µs, trace, confidence, snapshot, gap ms, ttl ms, list max.
 * Reply: {kind, escalation, count, state, ended state or {}}. */
static const char join_script[] = INC_LUA
    "local h, joined, id = KEYS[1], KEYS[2], ARGV[1] "
    "local seen = redis.call('HGET', joined, id) "
    "if seen then "
    "  local bar = string.find(seen, '|', 1, true) "
    "  return {3, string.sub(seen, 1, bar - 1), tonumber(string.sub(seen, bar + 1)), "
    "          state(h), {}} "
    "end "
    "local now, gap, max = now_ms(), tonumber(ARGV[9]), tonumber(ARGV[11]) "
    "local closed = redis.call('HGET', h, 'closed') "
    "local open = closed == '0' and "
    "  now - tonumber(redis.call('HGET', h, 'touched') or '0') <= gap "
    "local ended = {} "
    "if closed and not open then "
    "  if closed == '0' then redis.call('HSET', h, 'closed', '1') ended = state(h) end "
    "  redis.call('DEL', h, joined) "
    "end "
    "local kind, esc, count = 1, '', 1 "
    "if not open then "
    "  local persons, names = {}, {} "
    "  if ARGV[3] ~= '' then persons = {ARGV[3]} names = {ARGV[4]} end "
    "  redis.call('HSET', h, 'id', id, 'opened', ARGV[5], 'last', ARGV[5], 'trace', ARGV[6], "
    "    'started', string.format('%d', now), 'touched', string.format('%d', now), "
    "    'count', 1, 'alerts', 1, 'labels', cjson.encode({ARGV[2]}), "
    "    'persons', cjson.encode(persons), 'names', cjson.encode(names), "
    "    'best_conf', ARGV[7], 'best_snap', ARGV[8], 'best_label', ARGV[2], "
    "    'escalation', '', 'closed', '0') "
    "else "
    "  kind = 2 "
    "  count = redis.call('HINCRBY', h, 'count', 1) "
    "  redis.call('HINCRBY', h, 'alerts', 1) "
    "  local persons, names, labels = list(h, 'persons'), list(h, 'names'), list(h, 'labels') "
    "  if ARGV[3] ~= '' and not has(persons, ARGV[3]) and #persons < max then "
    "    persons[#persons + 1] = ARGV[3] names[#names + 1] = ARGV[4] "
    "    redis.call('HSET', h, 'persons', cjson.encode(persons), 'names', cjson.encode(names)) "
    "    esc = 'face_recognised' "
    "  end "
    "  if not has(labels, ARGV[2]) and #labels < max then "
    "    labels[#labels + 1] = ARGV[2] "
    "    redis.call('HSET', h, 'labels', cjson.encode(labels)) "
    "    if esc == '' then esc = 'new_category' end "
    "  end "
    "  if esc ~= '' then redis.call('HSET', h, 'escalation', esc) end "
    "  saw(h, ARGV[5], ARGV[6], now) "
    "  better(h, ARGV[7], ARGV[8], ARGV[2]) "
    "end "
    "redis.call('HSET', joined, id, esc .. '|' .. count) "
    "keep(ARGV[10]) "
    "return {kind, esc, count, state(h), ended}";

/* KEYS: hash, alerts. ARGV: count, first age ms, latest age ms, latest
 * capture µs, its trace, best confidence ('' none), its snapshot and label,
 * gap ms, ttl ms. The batch joins the open incident if its first sighting
 * came within the gap and its latest not before the incident began.
 * Reply: {1, state} or {0}. */
static const char flush_script[] = INC_LUA
    "local h = KEYS[1] "
    "if redis.call('HGET', h, 'closed') ~= '0' then return {0} end "
    "local now = now_ms() "
    "local first, last = now - tonumber(ARGV[2]), now - tonumber(ARGV[3]) "
    "if first - tonumber(redis.call('HGET', h, 'touched')) > tonumber(ARGV[9]) or "
    "   last < tonumber(redis.call('HGET', h, 'started')) then return {0} end "
    "redis.call('HINCRBY', h, 'count', ARGV[1]) "
    "saw(h, ARGV[4], ARGV[5], last) "
    "if ARGV[6] ~= '' then better(h, ARGV[6], ARGV[7], ARGV[8]) end "
    "keep(ARGV[10]) "
    "return {1, state(h)}";

/* KEYS: hash, alerts. ARGV: gap ms, settle ms, ttl ms.
 * Reply: {2, 0, state} (closed by this call), {1, ms until due}, {0, 0}. */
static const char close_script[] = INC_LUA
    "local h = KEYS[1] "
    "if redis.call('HGET', h, 'closed') ~= '0' then return {0, 0} end "
    "local due = tonumber(redis.call('HGET', h, 'touched')) + tonumber(ARGV[1]) + "
    "  tonumber(ARGV[2]) "
    "local now = now_ms() "
    "if now < due then return {1, due - now} end "
    "redis.call('HSET', h, 'closed', '1') "
    "keep(ARGV[3]) "
    "return {2, 0, state(h)}";

static void keys(char *hash, char *alerts, const char *prefix, const char *camera)
{
    snprintf(hash, KEY_MAX, "%s:dd:%s:incident", prefix, camera);
    snprintf(alerts, KEY_MAX, "%s:dd:%s:incident:alerts", prefix, camera);
}

static long long ttl_ms(int64_t gap_ms) { return (long long)(2 * gap_ms + 30000); }

static char empty[] = "";

static char *str_at(const redisReply *r, size_t i)
{
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements)
        return empty;
    const redisReply *e = r->element[i];
    return e->type == REDIS_REPLY_STRING ? e->str : empty;
}

static size_t read_list(const redisReply *r, size_t i, char **out)
{
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_ARRAY)
        return 0;
    const redisReply *l = r->element[i];
    size_t n = 0;
    for (size_t k = 0; k < l->elements && n < DD_INCIDENT_LIST_MAX; k++)
        if (l->element[k]->type == REDIS_REPLY_STRING)
            out[n++] = l->element[k]->str;
    return n;
}

/* The state() array r into st; st->id is "" when r is not one. */
static void read_state(const redisReply *r, struct dd_incident *st)
{
    memset(st, 0, sizeof(*st));
    st->id = str_at(r, 0);
    st->opened_ts_us = strtoll(str_at(r, 1), NULL, 10);
    st->last_seen_ts_us = strtoll(str_at(r, 2), NULL, 10);
    st->count = strtoull(str_at(r, 3), NULL, 10);
    st->alerts = (uint32_t)strtoul(str_at(r, 4), NULL, 10);
    st->best_confidence = strtof(str_at(r, 5), NULL);
    st->best_snapshot_url = str_at(r, 6);
    st->best_label = str_at(r, 7);
    st->escalation = str_at(r, 8);
    const char *flag = str_at(r, 9);
    st->open = flag[0] == '0' && !flag[1];
    st->trace_id = str_at(r, 10);
    st->n_labels = read_list(r, 11, st->labels);
    st->n_persons = read_list(r, 12, st->person_ids);
    /* Names are kept beside persons; a short list leaves the rest "". */
    size_t n_names = read_list(r, 13, st->display_names);
    for (size_t k = n_names; k < st->n_persons; k++)
        st->display_names[k] = empty;
}

static int int_at(const redisReply *r, size_t i, long long *v)
{
    if (r->type != REDIS_REPLY_ARRAY || i >= r->elements ||
        r->element[i]->type != REDIS_REPLY_INTEGER)
        return 0;
    *v = r->element[i]->integer;
    return 1;
}

vg_status dd_incident_join_alert(struct vg_redis *r, const char *prefix, const char *camera,
                                 const struct dd_incident_alert *a, int64_t gap_ms,
                                 struct dd_incident_join *out)
{
    char hash[KEY_MAX], alerts[KEY_MAX], conf[32];
    redisReply *reply = NULL;
    long long kind = 0, count = 0;
    keys(hash, alerts, prefix, camera);
    snprintf(conf, sizeof(conf), "%.6f", (double)a->confidence);
    vg_status st = vg_redis_cmd(
        r, &reply, "EVAL %s 2 %s %s %s %s %s %s %lld %s %s %s %lld %lld %d", join_script, hash,
        alerts, a->alert_id, a->label, a->person_id ? a->person_id : "",
        a->display_name ? a->display_name : "", (long long)a->ts_us,
        a->trace_id ? a->trace_id : "", conf, a->snapshot_url ? a->snapshot_url : "",
        (long long)gap_ms, ttl_ms(gap_ms), DD_INCIDENT_LIST_MAX);
    if (st != VG_OK)
        return st;
    if (!int_at(reply, 0, &kind) || kind < DD_INCIDENT_OPENED || kind > DD_INCIDENT_ALREADY ||
        !int_at(reply, 2, &count) || reply->elements != 5) {
        freeReplyObject(reply);
        return vg_errf(VG_ERR_REDIS, "redis incident %s: unexpected reply", hash);
    }
    memset(out, 0, sizeof(*out));
    out->kind = (enum dd_incident_kind)kind;
    out->escalation = str_at(reply, 1);
    out->count = count > 0 ? (uint64_t)count : 0;
    read_state(reply->element[3], &out->now);
    read_state(reply->element[4], &out->ended);
    out->reply = reply;
    return VG_OK;
}

void dd_incident_join_cleanup(struct dd_incident_join *j)
{
    if (j->reply)
        freeReplyObject(j->reply);
    j->reply = NULL;
}

vg_status dd_incident_flush(struct vg_redis *r, const char *prefix, const char *camera,
                            const struct dd_incident_batch *b, int64_t gap_ms,
                            struct dd_incident_answer *out)
{
    char hash[KEY_MAX], alerts[KEY_MAX], conf[32] = "";
    redisReply *reply = NULL;
    long long code = 0;
    keys(hash, alerts, prefix, camera);
    if (b->best_confidence >= 0)
        snprintf(conf, sizeof(conf), "%.6f", (double)b->best_confidence);
    vg_status st = vg_redis_cmd(
        r, &reply, "EVAL %s 2 %s %s %llu %lld %lld %lld %s %s %s %s %lld %lld", flush_script,
        hash, alerts, (unsigned long long)b->count, (long long)b->first_age_ms,
        (long long)b->last_age_ms, (long long)b->last_ts_us, b->trace_id ? b->trace_id : "",
        conf, b->best_snapshot_url ? b->best_snapshot_url : "",
        b->best_label ? b->best_label : "", (long long)gap_ms, ttl_ms(gap_ms));
    if (st != VG_OK)
        return st;
    if (!int_at(reply, 0, &code) || (code == 1 && reply->elements != 2)) {
        freeReplyObject(reply);
        return vg_errf(VG_ERR_REDIS, "redis incident flush %s: unexpected reply", hash);
    }
    memset(out, 0, sizeof(*out));
    out->code = (int)code;
    if (code == 1)
        read_state(reply->element[1], &out->st);
    out->reply = reply;
    return VG_OK;
}

vg_status dd_incident_close(struct vg_redis *r, const char *prefix, const char *camera,
                            int64_t gap_ms, struct dd_incident_answer *out)
{
    char hash[KEY_MAX], alerts[KEY_MAX];
    redisReply *reply = NULL;
    long long code = 0, due = 0;
    keys(hash, alerts, prefix, camera);
    vg_status st = vg_redis_cmd(r, &reply, "EVAL %s 2 %s %s %lld %d %lld", close_script, hash,
                                alerts, (long long)gap_ms, DD_INCIDENT_SETTLE_MS,
                                ttl_ms(gap_ms));
    if (st != VG_OK)
        return st;
    if (!int_at(reply, 0, &code) || !int_at(reply, 1, &due) ||
        (code == 2 && reply->elements != 3)) {
        freeReplyObject(reply);
        return vg_errf(VG_ERR_REDIS, "redis incident close %s: unexpected reply", hash);
    }
    memset(out, 0, sizeof(*out));
    out->code = (int)code;
    out->due_in_ms = due;
    if (code == 2)
        read_state(reply->element[2], &out->st);
    out->reply = reply;
    return VG_OK;
}

void dd_incident_answer_cleanup(struct dd_incident_answer *a)
{
    if (a->reply)
        freeReplyObject(a->reply);
    a->reply = NULL;
}

void dd_incident_message(const struct dd_incident *st, const char *camera,
                         Vigil__V1__Incident *m, Vigil__V1__Header *h)
{
    vigil__v1__header__init(h);
    vg_header_fill(h, camera, st->last_seen_ts_us, st->trace_id[0] ? st->trace_id : NULL);
    vigil__v1__incident__init(m);
    m->header = h;
    m->incident_id = st->id;
    m->open = st->open;
    m->opened_ts_us = st->opened_ts_us;
    m->last_seen_ts_us = st->last_seen_ts_us;
    m->count = st->count;
    m->n_labels = st->n_labels;
    m->labels = (char **)st->labels;
    m->n_person_ids = st->n_persons;
    m->person_ids = (char **)st->person_ids;
    m->n_display_names = st->n_persons;
    m->display_names = (char **)st->display_names;
    m->alerts = st->alerts;
    m->best_snapshot_ref = st->best_snapshot_url; /* a store ref (Redis field kept) */
    m->best_confidence = st->best_confidence;
    m->best_label = st->best_label;
    m->escalation = st->escalation;
}

/* ---- the service's side --------------------------------------------------- */

/* A camera's suppressed sightings since its last flush. */
struct acc {
    uint64_t count;
    int64_t first_us, last_us;  /* monotonic: when the first / latest came */
    int64_t last_ts_us;         /* latest capture time */
    char trace_id[TRACE_MAX];
    float best;                 /* < 0: none */
    char best_label[LABEL_MAX];
    char best_snap[VG_URL_MAX];
};

struct cam {
    const char *id;             /* the configuration's, which outlives us */
    struct acc acc;
    int known;                  /* may have an open incident: the tick asks at check_at */
    int64_t check_at;           /* monotonic µs */
    int64_t flushed_at;         /* the last Incident this replica published for it */
};

struct dd_incidents {
    pthread_mutex_t lock;       /* cams[]: handlers vs tick */
    const struct vg_config *cfg;
    struct vg_redis *r;
    int64_t gap_ms;
    dd_incident_publish_fn publish;
    void *ctx;
    int n;
    struct cam *cams;
    struct vg_counter *opened, *joined, *escalations[2], *closed, *dropped, *failed;
};

static void acc_reset(struct acc *a)
{
    a->count = 0;
    a->first_us = a->last_us = a->last_ts_us = 0;
    a->trace_id[0] = '\0';
    a->best = -1.0f;
    a->best_label[0] = a->best_snap[0] = '\0';
}

vg_status dd_incidents_create(struct dd_incidents **out, const struct vg_config *cfg,
                              struct vg_redis *r, dd_incident_publish_fn publish, void *ctx)
{
    if (cfg->dedupe.incident_gap_s <= 0)
        return vg_errf(VG_ERR_INVALID, "dedupe incidents: gap %d s", cfg->dedupe.incident_gap_s);
    struct dd_incidents *inc = calloc(1, sizeof(*inc));
    if (!inc)
        return VG_ERR_NOMEM;
    inc->cams = calloc(cfg->n_cameras > 0 ? (size_t)cfg->n_cameras : 1, sizeof(*inc->cams));
    if (!inc->cams) {
        free(inc);
        return VG_ERR_NOMEM;
    }
    pthread_mutex_init(&inc->lock, NULL);
    inc->cfg = cfg;
    inc->r = r;
    inc->gap_ms = (int64_t)cfg->dedupe.incident_gap_s * 1000;
    inc->publish = publish;
    inc->ctx = ctx;
    inc->n = cfg->n_cameras;
    for (int i = 0; i < inc->n; i++) {
        inc->cams[i].id = cfg->cameras[i].id;
        acc_reset(&inc->cams[i].acc);
        /* Asked at the first tick: an incident left open by a replica that
         * stopped is closed by whoever is left. */
        inc->cams[i].known = 1;
    }
    inc->opened = vg_counter_get("vigil_dedupe_incidents_opened_total",
                                 "Incidents opened (by their first alert)");
    inc->joined = vg_counter_get("vigil_dedupe_incidents_joined_total",
                                 "Alerts that joined an open incident");
    inc->escalations[0] = vg_counter_get_labeled("vigil_dedupe_incidents_escalations_total",
                                                 "kind=\"" DD_ESCALATION_FACE "\"",
                                                 "Alerts that escalated their incident");
    inc->escalations[1] = vg_counter_get_labeled("vigil_dedupe_incidents_escalations_total",
                                                 "kind=\"" DD_ESCALATION_CATEGORY "\"",
                                                 "Alerts that escalated their incident");
    inc->closed = vg_counter_get("vigil_dedupe_incidents_closed_total",
                                 "Incidents closed after their gap");
    inc->dropped = vg_counter_get("vigil_dedupe_incident_sightings_unattached_total",
                                  "Suppressed sightings that came while no incident was open");
    inc->failed = vg_counter_get("vigil_dedupe_incident_failed_total",
                                 "Incident calls to Redis that failed (retried, or the alert "
                                 "went out without incident)");
    *out = inc;
    return VG_OK;
}

void dd_incidents_destroy(struct dd_incidents *inc)
{
    if (!inc)
        return;
    pthread_mutex_destroy(&inc->lock);
    free(inc->cams);
    free(inc);
}

static struct cam *cam_of(struct dd_incidents *inc, const char *id)
{
    const struct vg_camera_cfg *c = id ? vg_cfg_camera(inc->cfg, id) : NULL;
    return c ? &inc->cams[c - inc->cfg->cameras] : NULL;
}

/* The hot path of a busy scene: a few compares and, now and then, a copy. */
void dd_incidents_sighting(struct dd_incidents *inc, const Vigil__V1__Header *h,
                           const char *label, float confidence, const char *snapshot_url,
                           int64_t now)
{
    struct cam *c = inc ? cam_of(inc, h->camera_id) : NULL;
    if (!c)
        return;
    const char *trace = h->trace_id ? h->trace_id : "";
    size_t tlen = strnlen(trace, TRACE_MAX);
    pthread_mutex_lock(&inc->lock);
    struct acc *a = &c->acc;
    if (!a->count++)
        a->first_us = now;
    a->last_us = now;
    if (h->capture_ts_us >= a->last_ts_us && tlen < TRACE_MAX) {
        a->last_ts_us = h->capture_ts_us;
        memcpy(a->trace_id, trace, tlen + 1);
    }
    /* A URL too long to copy whole is not the best snapshot. */
    if (confidence > a->best && strlen(label) < LABEL_MAX &&
        (!snapshot_url || strlen(snapshot_url) < VG_URL_MAX)) {
        a->best = confidence;
        snprintf(a->best_label, sizeof(a->best_label), "%s", label);
        snprintf(a->best_snap, sizeof(a->best_snap), "%s", snapshot_url ? snapshot_url : "");
    }
    pthread_mutex_unlock(&inc->lock);
}

/* The camera has (or had) an incident this replica just heard of: ask
 * whether it is over once its gap and the settle time passed. */
static void learnt(struct dd_incidents *inc, struct cam *c, int64_t now, int published)
{
    pthread_mutex_lock(&inc->lock);
    c->known = 1;
    c->check_at = now + (inc->gap_ms + DD_INCIDENT_SETTLE_MS) * 1000;
    if (published)
        c->flushed_at = now;
    pthread_mutex_unlock(&inc->lock);
}

static void emit(struct dd_incidents *inc, const char *camera, const struct dd_incident *st)
{
    Vigil__V1__Incident m;
    Vigil__V1__Header h;
    dd_incident_message(st, camera, &m, &h);
    if (inc->publish(inc->ctx, camera, &m) != VG_OK)
        VG_WARN("incident.publish_failed", camera, "incident %s: %s", st->id, vg_err_detail());
}

static void closed(struct dd_incidents *inc, const char *camera, const struct dd_incident *st)
{
    vg_counter_inc(inc->closed);
    VG_INFO("incident.closed", camera, "incident %s closed: %" PRIu64 " sightings, %u alerts, "
            "%.0f s", st->id, st->count, st->alerts,
            (double)(st->last_seen_ts_us - st->opened_ts_us) / 1e6);
    emit(inc, camera, st);
}

vg_status dd_incidents_join(struct dd_incidents *inc, Vigil__V1__Alert *a,
                            struct dd_incident_join *j)
{
    const Vigil__V1__Header *h = a->header;
    if (!inc || !inc->r || !cam_of(inc, h->camera_id))
        return VG_ERR_INVALID;
    struct dd_incident_alert in = {
        .alert_id = a->alert_id,
        .label = a->label,
        .person_id = a->person_id,
        .display_name = a->display_name,
        .trace_id = h->trace_id,
        .snapshot_url = a->snapshot_ref,
        .ts_us = h->capture_ts_us > 0 ? h->capture_ts_us : vg_now_us(),
        .confidence = a->confidence,
    };
    vg_status st = dd_incident_join_alert(inc->r, inc->cfg->prefix, h->camera_id, &in,
                                          inc->gap_ms, j);
    if (st != VG_OK) {
        vg_counter_inc(inc->failed);
        VG_WARN("incident.join_failed", h->camera_id, "alert %s goes out without incident: %s",
                a->alert_id, vg_err_detail());
        return st;
    }
    a->incident_id = j->now.id;
    a->escalation = j->escalation;
    a->incident_count = j->count > UINT32_MAX ? UINT32_MAX : (uint32_t)j->count;
    return VG_OK;
}

void dd_incidents_joined(struct dd_incidents *inc, const char *camera,
                         struct dd_incident_join *j)
{
    struct cam *c = cam_of(inc, camera);
    if (j->ended.id[0])
        closed(inc, camera, &j->ended);
    if (j->kind == DD_INCIDENT_OPENED) {
        vg_counter_inc(inc->opened);
        VG_INFO("incident.opened", camera, "incident %s opened by a %s alert", j->now.id,
                j->now.best_label);
    } else if (j->kind == DD_INCIDENT_JOINED) {
        vg_counter_inc(inc->joined);
        if (j->escalation[0]) {
            vg_counter_inc(inc->escalations[strcmp(j->escalation, DD_ESCALATION_FACE) != 0]);
            VG_INFO("incident.escalated", camera, "incident %s: %s (alert %" PRIu64 " of %"
                    PRIu64 " sightings)", j->now.id, j->escalation, (uint64_t)j->now.alerts,
                    j->count);
        }
    }
    /* An alert that had joined before changed nothing: no message. */
    if (j->kind != DD_INCIDENT_ALREADY) {
        emit(inc, camera, &j->now);
        if (c)
            learnt(inc, c, vg_mono_us(), 1);
    }
    dd_incident_join_cleanup(j);
}

/* Take the camera's batch if it is due (under the lock). */
static int take(struct dd_incidents *inc, struct cam *c, int64_t now, int final,
                struct acc *out)
{
    int due = 0;
    pthread_mutex_lock(&inc->lock);
    if (c->acc.count &&
        (final || now - c->flushed_at >= (int64_t)DD_INCIDENT_FLUSH_MS * 1000)) {
        *out = c->acc;
        acc_reset(&c->acc);
        c->flushed_at = now;
        due = 1;
    }
    pthread_mutex_unlock(&inc->lock);
    return due;
}

/* Redis refused the batch: add it back to what came meanwhile. */
static void put_back(struct dd_incidents *inc, struct cam *c, const struct acc *b)
{
    pthread_mutex_lock(&inc->lock);
    struct acc *a = &c->acc;
    if (!a->count) {
        *a = *b;
    } else {
        a->count += b->count;
        a->first_us = b->first_us;
        if (b->last_ts_us > a->last_ts_us) {
            a->last_ts_us = b->last_ts_us;
            memcpy(a->trace_id, b->trace_id, sizeof(a->trace_id));
        }
        if (b->best > a->best) {
            a->best = b->best;
            memcpy(a->best_label, b->best_label, sizeof(a->best_label));
            memcpy(a->best_snap, b->best_snap, sizeof(a->best_snap));
        }
    }
    pthread_mutex_unlock(&inc->lock);
}

static void flush_one(struct dd_incidents *inc, struct cam *c, int64_t now, int final)
{
    struct acc b;
    struct dd_incident_answer ans;
    if (!take(inc, c, now, final, &b))
        return;
    struct dd_incident_batch batch = {
        .count = b.count,
        .first_age_ms = (now - b.first_us) / 1000,
        .last_age_ms = (now - b.last_us) / 1000,
        .last_ts_us = b.last_ts_us,
        .trace_id = b.trace_id,
        .best_confidence = b.best,
        .best_snapshot_url = b.best_snap,
        .best_label = b.best_label,
    };
    if (dd_incident_flush(inc->r, inc->cfg->prefix, c->id, &batch, inc->gap_ms, &ans) !=
        VG_OK) {
        vg_counter_inc(inc->failed);
        VG_DEBUG("incident.flush_failed", c->id, "%" PRIu64 " sightings kept: %s", b.count,
                 vg_err_detail());
        if (!final)
            put_back(inc, c, &b);
        return;
    }
    if (ans.code == 1) {
        emit(inc, c->id, &ans.st);
        learnt(inc, c, now, 0);
    } else {
        vg_counter_add(inc->dropped, b.count);
        VG_DEBUG("incident.unattached", c->id, "%" PRIu64 " sightings: no open incident",
                 b.count);
    }
    dd_incident_answer_cleanup(&ans);
}

static void close_one(struct dd_incidents *inc, struct cam *c, int64_t now)
{
    struct dd_incident_answer ans;
    pthread_mutex_lock(&inc->lock);
    int due = c->known && now >= c->check_at;
    pthread_mutex_unlock(&inc->lock);
    if (!due)
        return;
    int64_t next = 0;
    if (dd_incident_close(inc->r, inc->cfg->prefix, c->id, inc->gap_ms, &ans) != VG_OK) {
        vg_counter_inc(inc->failed);
        next = now + RETRY_US;
    } else {
        if (ans.code == 2)
            closed(inc, c->id, &ans.st);
        else if (ans.code == 1)
            next = now + ans.due_in_ms * 1000;
        dd_incident_answer_cleanup(&ans);
    }
    pthread_mutex_lock(&inc->lock);
    /* A join or flush meanwhile may have learnt of a newer incident. */
    if (c->check_at <= now) {
        c->known = next != 0;
        c->check_at = next;
    }
    pthread_mutex_unlock(&inc->lock);
}

void dd_incidents_tick(struct dd_incidents *inc, int64_t now, int final)
{
    if (!inc || !inc->r)
        return;
    for (int i = 0; i < inc->n; i++) {
        flush_one(inc, &inc->cams[i], now, final);
        if (!final)
            close_one(inc, &inc->cams[i], now);
    }
}
