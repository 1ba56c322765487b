/* mqtt sink: alerts on an MQTT broker in the shape of Frigate's MQTT API, so
 * Home Assistant automations written for Frigate carry over:
 *   <prefix>/events                  {"type":"new"|"update","before":{..},"after":{..}}
 *   <prefix>/<camera>/<label>        "1" (Frigate: the live object count)
 *   <prefix>/<camera>/<label>/snapshot   the JPEG, retained
 *   <prefix>/available               "online" retained; the will says "offline"
 * and, with ha_discovery, Home Assistant discovery configs (retained) for a
 * binary_sensor and a camera per camera and label, whose state topic gets
 * "ON" per alert (off_delay turns it off).
 *
 * One connection per sink, kept by an I/O thread of ours that runs
 * mosquitto_loop() and reconnects with a growing delay (not
 * mosquitto_loop_start: its loop gives up for good on TLS and auth errors).
 * deliver() runs on the notifier's worker thread: it publishes and waits,
 * at most timeout_ms, for the broker's PUBACK (PUBCOMP at qos 2) of every
 * message before it reports DELIVERED. The two threads share only the
 * fields under `mu`; no libmosquitto call is made while holding it.
 *
 * Refusals that will not go away by themselves (bad password, not
 * authorised, a certificate the broker or we reject) are RETRY with a long
 * retry_after rather than PERMANENT: a dead letter per alert would bury the
 * one cause in noise and lose the alerts for this sink, while held in the
 * stream they go out once the credentials are fixed. */
#include "sink/sink.h"

#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <mosquitto.h>
#include <mqtt_protocol.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "timeutil.h"

#define TOPIC_MAX 512
#define HOST_MAX 256
#define ACK_RING 1024           /* recent PUBACKs: more than one discovery burst (2 x 128 + 1)
                                 * can push out, so a deliver never loses its own */
#define PUBS_MAX 8
#define PAIRS_MAX 128           /* (camera, label) pairs announced to Home Assistant */
#define LOOP_SLICE_MS 200       /* how often the I/O thread looks at the stop flag */
#define BACKOFF_MIN_MS 500
#define BACKOFF_MAX_MS 10000
#define REFUSED_BACKOFF_MS 30000
#define REFUSED_RETRY_AFTER_MS 60000
#define CONNACK_TIMEOUT_MIN_MS 10000
#define GOODBYE_MS 1000

static const char *const protocol_values[] = {"3.1.1", "5", NULL};
enum { PROTO_311, PROTO_5 };

struct mqtt_settings {
    char url[512];
    char topic_prefix[128];
    char client_id[128];
    char username[128];
    char password[256];
    char ca_file[512];
    char cert_file[512];
    char key_file[512];
    char ha_prefix[128];
    int protocol;
    int qos;
    int keepalive_s;
    int ha_off_delay_s;
    int retain;
    int snapshot;
    int ha_discovery;
    int insecure_skip_verify;
};

static const struct vg_opt mqtt_opts[] = {
    VG_OPT_STR_("url", struct mqtt_settings, url, "", "URL", 0,
                "mqtt://host[:1883] or mqtts://host[:8883]; credentials go in username/password"),
    VG_OPT_STR_("topic_prefix", struct mqtt_settings, topic_prefix, "vigil", NULL, 0,
                "first level of every topic (Frigate: \"frigate\")"),
    VG_OPT_STR_("client_id", struct mqtt_settings, client_id, "", NULL, 0,
                "\"\": vigil-notifier-<sink>-<pid>"),
    VG_OPT_STR_("username", struct mqtt_settings, username, "", "USERNAME", 0,
                "broker user; \"\": anonymous"),
    VG_OPT_STR_("password", struct mqtt_settings, password, "", "PASSWORD", 1,
                "broker password; or VIGIL_SINK_<NAME>_PASSWORD(_FILE)"),
    VG_OPT_STR_("ca_file", struct mqtt_settings, ca_file, "", NULL, 0,
                "mqtts: PEM CA bundle that signed the broker's certificate; \"\": the system's"),
    VG_OPT_STR_("cert_file", struct mqtt_settings, cert_file, "", NULL, 0,
                "mqtts: client certificate (PEM), with key_file"),
    VG_OPT_STR_("key_file", struct mqtt_settings, key_file, "", NULL, 0,
                "mqtts: the client certificate's private key (PEM, unencrypted)"),
    VG_OPT_BOOL_("insecure_skip_verify", struct mqtt_settings, insecure_skip_verify, "false",
                 "mqtts: accept any certificate and host name (tests only)"),
    VG_OPT_ENUM_("protocol", struct mqtt_settings, protocol, protocol_values, "3.1.1",
                 "MQTT version; 5 also reports refused publishes (not authorised)"),
    VG_OPT_INT_("qos", struct mqtt_settings, qos, 0, 2, "1",
                "0: handed to the socket; 1, 2: confirmed by the broker"),
    VG_OPT_BOOL_("retain", struct mqtt_settings, retain, "false",
                 "retain the events messages"),
    VG_OPT_INT_("keepalive_s", struct mqtt_settings, keepalive_s, 5, 3600, "30",
                "MQTT keepalive; the broker publishes the will after 1.5 times this"),
    VG_OPT_BOOL_("snapshot", struct mqtt_settings, snapshot, "true",
                 "publish the JPEG on <prefix>/<camera>/<label>/snapshot, retained"),
    VG_OPT_BOOL_("ha_discovery", struct mqtt_settings, ha_discovery, "false",
                 "publish Home Assistant discovery configs (retained)"),
    VG_OPT_STR_("ha_prefix", struct mqtt_settings, ha_prefix, "homeassistant", NULL, 0,
                "Home Assistant's discovery prefix"),
    VG_OPT_INT_("ha_off_delay_s", struct mqtt_settings, ha_off_delay_s, 1, 86400, "60",
                "the binary sensors turn off this long after the last alert"),
    VG_OPT_END,
};

enum link {
    LINK_CONNECTING = 0,    /* an attempt is under way (or about to be) */
    LINK_UP,                /* CONNACK accepted */
    LINK_DOWN,              /* the last attempt failed or the connection dropped */
    LINK_REFUSED,           /* the broker or TLS refused us: credentials, certificates */
};

struct pair {
    char camera[VG_ID_MAX];
    char label[VG_NAME_MAX];
};

struct ack {
    int mid;
    int reason;             /* MQTT v5 reason code; 0 with 3.1.1 */
};

struct mqtt {
    struct mosquitto *mosq;
    const struct mqtt_settings *set;
    int timeout_ms;
    char name[32];
    char host[HOST_MAX];
    int port;
    int tls;
    char origin[HOST_MAX + 16];     /* mqtts://host:port, safe to log */
    char avail_topic[TOPIC_MAX];
    char status_topic[TOPIC_MAX];   /* <ha_prefix>/status: Home Assistant's birth message */
    pthread_t io;
    int io_started;

    pthread_mutex_t mu;
    pthread_cond_t cv;              /* link, acks or stop changed */
    /* under mu */
    enum link link;
    int stop;
    int announce;                   /* (re)publish availability and discovery */
    char why[200];                  /* why the link is not up, for errors */
    struct ack acks[ACK_RING];
    unsigned n_acks;
    struct pair pairs[PAIRS_MAX];
    int n_pairs;
};

static pthread_once_t lib_once = PTHREAD_ONCE_INIT;
static int lib_rc = MOSQ_ERR_SUCCESS;

static void lib_init(void) { lib_rc = mosquitto_lib_init(); }

/* ---- small helpers ---- */

static int64_t mono_ms(void) { return vg_mono_us() / 1000; }

static void abs_deadline(struct timespec *ts, int64_t at_ms)
{
    ts->tv_sec = (time_t)(at_ms / 1000);
    ts->tv_nsec = (long)(at_ms % 1000) * 1000000L;
}

/* Wait on cv until at_ms (monotonic); mu held. */
static void wait_until(struct mqtt *m, int64_t at_ms)
{
    struct timespec ts;
    abs_deadline(&ts, at_ms);
    pthread_cond_timedwait(&m->cv, &m->mu, &ts);
}

/* One topic level from outside input: the wildcards, the separator and
 * anything but printable ASCII become '_'. */
static void topic_level(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; s && *s && n + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        out[n++] = (c <= 0x20 || c >= 0x7f || c == '/' || c == '+' || c == '#') ? '_' : (char)c;
    }
    if (n == 0 && cap > 1)
        out[n++] = '_';
    out[n] = '\0';
}

/* Home Assistant's node and object ids: [a-zA-Z0-9_-] only. */
static void ha_id(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '_' || c == '-';
        out[n++] = ok ? (char)c : '_';
    }
    out[n] = '\0';
}

static const char *label_of(const Vigil__V1__Alert *a)
{
    return a->label && a->label[0] ? a->label : "unknown";
}

/* ---- the link, as the I/O thread's callbacks see it ---- */

/* 3.1.1 CONNACK 3 and the v5 codes for busy, unavailable or rate-limited
 * servers pass; the rest (version, identifier, credentials, not
 * authorised, banned) need someone to change something. */
static int connack_transient(int rc)
{
    return rc == 3 || rc == MQTT_RC_SERVER_UNAVAILABLE || rc == MQTT_RC_SERVER_BUSY ||
           rc == MQTT_RC_QUOTA_EXCEEDED || rc == MQTT_RC_CONNECTION_RATE_EXCEEDED;
}

static const char *connack_text(const struct mqtt *m, int rc)
{
    return m->set->protocol == PROTO_5 ? mosquitto_reason_string(rc) : mosquitto_connack_string(rc);
}

static void on_connect(struct mosquitto *mosq, void *ud, int rc)
{
    struct mqtt *m = ud;
    (void)mosq;
    pthread_mutex_lock(&m->mu);
    if (rc == 0) {
        m->link = LINK_UP;
        m->announce = 1;
        m->why[0] = '\0';
    } else {
        m->link = connack_transient(rc) ? LINK_DOWN : LINK_REFUSED;
        snprintf(m->why, sizeof(m->why), "the broker refused the connection: %s (CONNACK %d)",
                 connack_text(m, rc), rc);
    }
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void on_disconnect(struct mosquitto *mosq, void *ud, int rc)
{
    struct mqtt *m = ud;
    (void)mosq;
    pthread_mutex_lock(&m->mu);
    if (m->link == LINK_UP || m->link == LINK_CONNECTING) {
        m->link = LINK_DOWN;
        snprintf(m->why, sizeof(m->why), "connection lost: %s", mosquitto_strerror(rc));
    }
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

static void on_publish(struct mosquitto *mosq, void *ud, int mid, int reason,
                       const mosquitto_property *props)
{
    struct mqtt *m = ud;
    (void)mosq;
    (void)props;
    pthread_mutex_lock(&m->mu);
    m->acks[m->n_acks % ACK_RING] = (struct ack){mid, reason};
    m->n_acks++;
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
}

/* Home Assistant says "online" on <ha_prefix>/status when it starts: it may
 * have lost the retained configs (a broker without persistence). */
static void on_message(struct mosquitto *mosq, void *ud, const struct mosquitto_message *msg)
{
    struct mqtt *m = ud;
    (void)mosq;
    if (!msg->topic || strcmp(msg->topic, m->status_topic) != 0 || msg->payloadlen != 6 ||
        memcmp(msg->payload, "online", 6) != 0)
        return;
    pthread_mutex_lock(&m->mu);
    m->announce = 1;
    pthread_mutex_unlock(&m->mu);
}

/* libmosquitto explains TLS failures only in its log ("certificate verify
 * failed"): keep the last error line for our messages. Its log lines never
 * carry the password. */
static void on_log(struct mosquitto *mosq, void *ud, int level, const char *line)
{
    struct mqtt *m = ud;
    (void)mosq;
    if (!(level & MOSQ_LOG_ERR) || !line)
        return;
    pthread_mutex_lock(&m->mu);
    if (m->link != LINK_UP)
        snprintf(m->why, sizeof(m->why), "%s", line);
    pthread_mutex_unlock(&m->mu);
}

/* ---- publishing ---- */

struct pubs {
    int mids[PUBS_MAX];
    int n;
};

/* One message; its mid joins p (NULL: fire and forget). 0 on success, else
 * r says why. */
static int publish(struct mqtt *m, struct pubs *p, const char *topic, const void *payload,
                   size_t len, int retain, struct vg_sink_result *r)
{
    int mid = 0;
    if (len > MQTT_MAX_PAYLOAD) {
        vg_sink_fail(r, VG_SINK_PERMANENT, "publish %s: %zu bytes is over MQTT's limit", topic,
                     len);
        return -1;
    }
    int rc = mosquitto_publish(m->mosq, &mid, topic, (int)len, payload, m->set->qos,
                               retain != 0);
    if (rc != MOSQ_ERR_SUCCESS) {
        int permanent = rc == MOSQ_ERR_PAYLOAD_SIZE || rc == MOSQ_ERR_MALFORMED_UTF8 ||
                        rc == MOSQ_ERR_OVERSIZE_PACKET || rc == MOSQ_ERR_INVAL;
        vg_sink_fail(r, permanent ? VG_SINK_PERMANENT : VG_SINK_RETRY, "publish %s to %s: %s",
                     topic, m->origin, mosquitto_strerror(rc));
        return -1;
    }
    if (p && p->n < PUBS_MAX)
        p->mids[p->n++] = mid;
    return 0;
}

/* The reason code of mid's acknowledgement, or -1 while there is none; mu held. */
static int acked(const struct mqtt *m, int mid)
{
    unsigned n = m->n_acks < ACK_RING ? m->n_acks : ACK_RING;
    for (unsigned i = 0; i < n; i++) {
        const struct ack *a = &m->acks[(m->n_acks - 1 - i) % ACK_RING];
        if (a->mid == mid)
            return a->reason;
    }
    return -1;
}

/* MQTT v5 refusals of one publish (3.1.1 brokers drop those silently). */
static void publish_refused(const struct mqtt *m, int reason, struct vg_sink_result *r)
{
    int auth = reason == MQTT_RC_NOT_AUTHORIZED;
    int transient = auth || reason == MQTT_RC_QUOTA_EXCEEDED || reason == MQTT_RC_SERVER_BUSY ||
                    reason == MQTT_RC_IMPLEMENTATION_SPECIFIC || reason == MQTT_RC_UNSPECIFIED;
    vg_sink_fail(r, transient ? VG_SINK_RETRY : VG_SINK_PERMANENT,
                 "%s refused the publish: %s (reason %d)%s", m->origin,
                 mosquitto_reason_string(reason), reason,
                 auth ? "; check the broker's ACL for this user" : "");
    if (auth)
        r->retry_after_ms = REFUSED_RETRY_AFTER_MS;
}

/* Every message of p acknowledged by deadline, or r says why not. */
static void wait_acks(struct mqtt *m, const struct pubs *p, int64_t deadline,
                      struct vg_sink_result *r)
{
    int done = 0, reason = 0;
    pthread_mutex_lock(&m->mu);
    for (;;) {
        for (done = 0; done < p->n; done++) {
            int rc = acked(m, p->mids[done]);
            if (rc < 0)
                break;
            if (rc >= 0x80 && !reason)
                reason = rc;
        }
        if (done == p->n || m->link != LINK_UP || m->stop || mono_ms() >= deadline)
            break;
        wait_until(m, deadline);
    }
    enum link lk = m->link;
    char why[sizeof(m->why)];
    snprintf(why, sizeof(why), "%s", m->why);
    pthread_mutex_unlock(&m->mu);
    if (done == p->n) {
        if (reason)
            publish_refused(m, reason, r);
        return;
    }
    /* libmosquitto sends the unacknowledged ones again after a reconnect,
     * and the notifier will too: at least once, as documented. */
    if (lk != LINK_UP)
        vg_sink_fail(r, VG_SINK_RETRY, "%s: %s before the broker confirmed %d of %d messages",
                     m->origin, why[0] ? why : "connection lost", p->n - done, p->n);
    else
        vg_sink_fail(r, VG_SINK_RETRY, "%s: no acknowledgement of %d of %d messages within %d ms",
                     m->origin, p->n - done, p->n, m->timeout_ms);
}

/* Up by deadline (a first connection may still be under way), else r
 * says why. A link known to be down fails at once: no alert waits for a
 * dead broker. */
static int wait_link(struct mqtt *m, int64_t deadline, struct vg_sink_result *r)
{
    pthread_mutex_lock(&m->mu);
    while (m->link == LINK_CONNECTING && !m->stop && mono_ms() < deadline)
        wait_until(m, deadline);
    enum link lk = m->link;
    char why[sizeof(m->why)];
    snprintf(why, sizeof(why), "%s", m->why);
    pthread_mutex_unlock(&m->mu);
    if (lk == LINK_UP)
        return 1;
    if (lk == LINK_REFUSED) {
        vg_sink_fail(r, VG_SINK_RETRY, "%s: %s", m->origin, why);
        r->retry_after_ms = REFUSED_RETRY_AFTER_MS;
    } else {
        vg_sink_fail(r, VG_SINK_RETRY, "not connected to %s: %s", m->origin,
                     why[0] ? why : (lk == LINK_CONNECTING ? "still connecting" : "down"));
    }
    return 0;
}

/* ---- JSON ---- */

struct builder {
    json_t *o;
    int failed;
};

static void put(struct builder *b, const char *key, json_t *v)
{
    if (!b->o || json_object_set_new(b->o, key, v) != 0)
        b->failed = 1;
}

static json_t *str_or_null(const char *s) { return s && *s ? json_string(s) : json_null(); }

/* Confidences are floats: 0.9, not 0.89999997615814209. */
static double round4(float f) { return isfinite(f) ? round((double)f * 1e4) / 1e4 : 0.0; }

static json_t *zones(const Vigil__V1__Alert *a)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < a->n_zones; i++)
        if (json_array_append_new(arr, json_string(a->zones[i] ? a->zones[i] : "")) != 0) {
            json_decref(arr);
            return NULL;
        }
    return arr;
}

static json_t *profile(const Vigil__V1__Alert *a)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < a->n_profile; i++) {
        const Vigil__V1__Alert__ProfileEntry *e = a->profile[i];
        if (json_object_set_new(o, e->key ? e->key : "", json_string(e->value ? e->value : "")))
        {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

static const char *event_id(const Vigil__V1__Alert *a)
{
    return a->incident_id && a->incident_id[0] ? a->incident_id : a->alert_id;
}

/* One side of an event: Frigate's fields for the tracked object, then
 * vigil's own. before=1 for the "before" of a face escalation: the person
 * was not yet known (sub_label null), so before/after comparisons work. */
static json_t *event_object(const struct vg_sink_alert *v, int before)
{
    const Vigil__V1__Alert *a = v->alert;
    double t = (double)a->header->capture_ts_us / 1e6;
    int known = !before && a->display_name && a->display_name[0];
    struct builder b = {json_object(), 0};
    put(&b, "id", json_string(event_id(a)));
    put(&b, "camera", json_string(a->header->camera_id));
    put(&b, "frame_time", json_real(t));
    put(&b, "label", json_string(label_of(a)));
    put(&b, "sub_label", known ? json_string(a->display_name) : json_null());
    put(&b, "top_score", json_real(round4(a->confidence)));
    put(&b, "score", json_real(round4(a->confidence)));
    put(&b, "false_positive", json_false());
    put(&b, "start_time", json_real(t));
    put(&b, "end_time", json_null());
    put(&b, "current_zones", zones(a));
    put(&b, "entered_zones", zones(a));
    put(&b, "has_snapshot", json_boolean(v->snapshot || v->snapshot_url[0]));
    put(&b, "has_clip", json_boolean(v->clip_url[0]));
    put(&b, "alert_id", json_string(a->alert_id));
    put(&b, "incident_id", str_or_null(a->incident_id));
    put(&b, "escalation", str_or_null(a->escalation));
    put(&b, "person_id", str_or_null(a->person_id));
    put(&b, "snapshot_url", str_or_null(v->snapshot_url));
    put(&b, "clip_url", str_or_null(v->clip_url));
    put(&b, "profile", profile(a));
    if (b.failed) {
        json_decref(b.o);
        return NULL;
    }
    return b.o;
}

/* json_dumps of o (consumed); NULL on failure. */
static char *dump(json_t *o)
{
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(16)) : NULL;
    json_decref(o);
    return s;
}

/* "new" for an alert, "update" for one that escalates its incident (a
 * face recognised, a new category); id is the incident's, so an update
 * names the same id as the incident's first alert. */
static char *event_json(const struct vg_sink_alert *v)
{
    int update = v->alert->escalation && v->alert->escalation[0];
    int face = update && !strcmp(v->alert->escalation, "face_recognised");
    struct builder b = {json_object(), 0};
    put(&b, "type", json_string(update ? "update" : "new"));
    put(&b, "before", event_object(v, face));
    put(&b, "after", event_object(v, 0));
    put(&b, "title", json_string(v->title));
    put(&b, "text", json_string(v->text));
    if (b.failed) {
        json_decref(b.o);
        return NULL;
    }
    return dump(b.o);
}

static json_t *ha_device(const struct mqtt *m, const char *camera)
{
    char id[TOPIC_MAX];
    char raw[TOPIC_MAX];
    snprintf(raw, sizeof(raw), "%s_%s", m->set->topic_prefix, camera);
    ha_id(id, sizeof(id), raw);
    return json_pack("{s:[s],s:s,s:s,s:s}", "identifiers", id, "name", camera, "manufacturer",
                     "vigil", "model", "camera");
}

/* Discovery config of a binary_sensor (camera=1: a camera entity) for one
 * camera and label. Keys are the documented discovery keys only. */
static char *ha_config(const struct mqtt *m, const struct pair *pr, int camera, char *topic,
                       size_t cap)
{
    /* Sized so no topic can be cut: prefixes < 128, camera < 64, label < 32. */
    char cam[VG_ID_MAX], lab[VG_NAME_MAX], node[200], obj[VG_NAME_MAX], uid[TOPIC_MAX];
    char raw[TOPIC_MAX], state[TOPIC_MAX];
    topic_level(cam, sizeof(cam), pr->camera);
    topic_level(lab, sizeof(lab), pr->label);
    snprintf(raw, sizeof(raw), "%s_%s", m->set->topic_prefix, pr->camera);
    ha_id(node, sizeof(node), raw);
    ha_id(obj, sizeof(obj), pr->label);
    snprintf(raw, sizeof(raw), "%s_%s_%s_%s", m->set->topic_prefix, pr->camera, pr->label,
             camera ? "snapshot" : "occupancy");
    ha_id(uid, sizeof(uid), raw);
    snprintf(state, sizeof(state), "%s/%s/%s/%s", m->set->topic_prefix, cam, lab,
             camera ? "snapshot" : "state");
    snprintf(topic, cap, "%s/%s/%s/%s%s/config", m->set->ha_prefix,
             camera ? "camera" : "binary_sensor", node, obj, camera ? "_snapshot" : "");

    struct builder b = {json_object(), 0};
    char name[VG_NAME_MAX + 16];
    snprintf(name, sizeof(name), "%s%s", pr->label, camera ? " snapshot" : "");
    put(&b, "name", json_string(name));
    put(&b, "unique_id", json_string(uid));
    put(&b, camera ? "topic" : "state_topic", json_string(state));
    put(&b, "availability_topic", json_string(m->avail_topic));
    if (!camera) {
        put(&b, "payload_on", json_string("ON"));
        put(&b, "payload_off", json_string("OFF"));
        put(&b, "device_class", json_string(strcmp(pr->label, "motion") ? "occupancy" : "motion"));
        put(&b, "off_delay", json_integer(m->set->ha_off_delay_s));
    }
    put(&b, "device", ha_device(m, pr->camera));
    if (b.failed) {
        json_decref(b.o);
        return NULL;
    }
    return dump(b.o);
}

/* The pair's discovery configs, retained; mids join p when given. */
static int announce_pair(struct mqtt *m, const struct pair *pr, struct pubs *p,
                         struct vg_sink_result *r)
{
    char topic[TOPIC_MAX];
    for (int camera = 0; camera <= (m->set->snapshot ? 1 : 0); camera++) {
        char *cfg = ha_config(m, pr, camera, topic, sizeof(topic));
        if (!cfg) {
            vg_sink_fail(r, VG_SINK_PERMANENT, "discovery config for %s/%s: not valid UTF-8",
                         pr->camera, pr->label);
            return -1;
        }
        int rc = publish(m, p, topic, cfg, strlen(cfg), 1, r);
        free(cfg);
        if (rc)
            return -1;
    }
    return 0;
}

/* Remember a pair; 1 when it is new (announce it), 0 when known. A full
 * table announces every time rather than never. */
static int remember_pair(struct mqtt *m, const char *camera, const char *label)
{
    int fresh = 1;
    pthread_mutex_lock(&m->mu);
    for (int i = 0; i < m->n_pairs && fresh; i++)
        if (!strcmp(m->pairs[i].camera, camera) && !strcmp(m->pairs[i].label, label))
            fresh = 0;
    if (fresh && m->n_pairs < PAIRS_MAX) {
        struct pair *pr = &m->pairs[m->n_pairs++];
        snprintf(pr->camera, sizeof(pr->camera), "%s", camera);
        snprintf(pr->label, sizeof(pr->label), "%s", label);
    }
    pthread_mutex_unlock(&m->mu);
    return fresh;
}

/* After each CONNACK (and Home Assistant's birth message): "online", and
 * the discovery configs of every pair known so far. I/O thread. */
static void announce_all(struct mqtt *m)
{
    struct vg_sink_result r;
    publish(m, NULL, m->avail_topic, "online", 6, 1, &r);
    if (!m->set->ha_discovery)
        return;
    for (int i = 0;; i++) {
        struct pair pr;
        pthread_mutex_lock(&m->mu);
        int have = i < m->n_pairs;
        if (have)
            pr = m->pairs[i];
        pthread_mutex_unlock(&m->mu);
        if (!have || announce_pair(m, &pr, NULL, &r) != 0)
            break;
    }
    mosquitto_subscribe(m->mosq, NULL, m->status_topic, 0);
}

/* ---- the I/O thread ---- */

/* Sleep ms unless stopped; non-zero when stopping. */
static int io_pause(struct mqtt *m, int64_t ms)
{
    int64_t until = mono_ms() + ms;
    pthread_mutex_lock(&m->mu);
    while (!m->stop && mono_ms() < until)
        wait_until(m, until);
    int stop = m->stop;
    pthread_mutex_unlock(&m->mu);
    return stop;
}

/* A failed attempt or loop: note why (unless a callback or the library's
 * log said better; `why` overrides both) and log the change once, not every
 * attempt. TLS failures count as refusals: a certificate does not fix
 * itself. Returns the delay before the next attempt. */
static int64_t io_failed(struct mqtt *m, int rc, const char *why, int64_t *backoff, int *logged)
{
    char text[sizeof(m->why)];
    pthread_mutex_lock(&m->mu);
    int unexplained = m->link == LINK_UP || m->link == LINK_CONNECTING;
    if (rc == MOSQ_ERR_TLS)
        m->link = LINK_REFUSED;
    else if (unexplained)
        m->link = LINK_DOWN;
    if (why)
        snprintf(m->why, sizeof(m->why), "%s", why);
    else if (!m->why[0] || (unexplained && rc != MOSQ_ERR_TLS))
        snprintf(m->why, sizeof(m->why), "%s", mosquitto_strerror(rc));
    enum link lk = m->link;
    snprintf(text, sizeof(text), "%s", m->why);
    pthread_cond_broadcast(&m->cv);
    pthread_mutex_unlock(&m->mu);
    if (!*logged) {
        if (lk == LINK_REFUSED)
            VG_ERROR("sink.mqtt_refused", NULL, "sink %s: %s: %s; trying again every %d s",
                     m->name, m->origin, text, REFUSED_BACKOFF_MS / 1000);
        else
            VG_WARN("sink.mqtt_down", NULL, "sink %s: %s: %s; reconnecting", m->name, m->origin,
                    text);
        *logged = 1;
    }
    if (lk == LINK_REFUSED)
        return REFUSED_BACKOFF_MS;
    int64_t d = *backoff;
    *backoff = *backoff * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : *backoff * 2;
    return d;
}

/* Start an attempt: the socket connect does not block (the CONNACK comes
 * in the loop). */
static int io_connect(struct mqtt *m, int first)
{
    pthread_mutex_lock(&m->mu);
    m->link = LINK_CONNECTING;
    m->why[0] = '\0';
    pthread_mutex_unlock(&m->mu);
    if (first)
        return mosquitto_connect_async(m->mosq, m->host, m->port, m->set->keepalive_s);
    return mosquitto_reconnect_async(m->mosq);
}

/* Tell subscribers we leave ("offline": a clean DISCONNECT suppresses the
 * will), wait briefly for its PUBACK, disconnect. */
static void io_goodbye(struct mqtt *m)
{
    struct vg_sink_result r;
    struct pubs p = {{0}, 0};
    pthread_mutex_lock(&m->mu);
    int up = m->link == LINK_UP;
    pthread_mutex_unlock(&m->mu);
    if (!up)
        return;
    if (publish(m, &p, m->avail_topic, "offline", 7, 1, &r) == 0) {
        int64_t until = mono_ms() + GOODBYE_MS;
        for (int done = 0; !done && mono_ms() < until;) {
            if (mosquitto_loop(m->mosq, 50, 1) != MOSQ_ERR_SUCCESS)
                break;
            pthread_mutex_lock(&m->mu);
            done = m->set->qos == 0 || acked(m, p.mids[0]) >= 0;
            pthread_mutex_unlock(&m->mu);
        }
    }
    mosquitto_disconnect(m->mosq);
    for (int i = 0; i < 10 && mosquitto_loop(m->mosq, 50, 1) == MOSQ_ERR_SUCCESS; i++)
        ;
}

static int64_t connack_timeout_ms(const struct mqtt *m)
{
    return m->timeout_ms > CONNACK_TIMEOUT_MIN_MS ? m->timeout_ms : CONNACK_TIMEOUT_MIN_MS;
}

static void *io_main(void *arg)
{
    struct mqtt *m = arg;
    int64_t backoff = BACKOFF_MIN_MS, delay = 0, started = 0;
    int first = 1, sock_open = 0, logged = 0;
    char why[64];
    for (;;) {
        if (!sock_open) {
            if (!first && io_pause(m, delay))
                break;
            int rc = io_connect(m, first);
            first = 0;
            started = mono_ms();
            if (rc != MOSQ_ERR_SUCCESS) {
                delay = io_failed(m, rc, NULL, &backoff, &logged);
                continue;
            }
            sock_open = 1;
        }
        int rc = mosquitto_loop(m->mosq, LOOP_SLICE_MS, 1);
        pthread_mutex_lock(&m->mu);
        int stop = m->stop, announce = m->link == LINK_UP && m->announce;
        enum link lk = m->link;
        if (announce)
            m->announce = 0;
        pthread_mutex_unlock(&m->mu);
        if (stop)
            break;
        const char *override = NULL;
        if (rc == MOSQ_ERR_SUCCESS && lk == LINK_CONNECTING &&
            mono_ms() - started > connack_timeout_ms(m)) {
            /* The broker took the socket but never answered. */
            snprintf(why, sizeof(why), "no CONNACK within %lld ms",
                     (long long)connack_timeout_ms(m));
            override = why;
            rc = MOSQ_ERR_NO_CONN;
        }
        if (rc != MOSQ_ERR_SUCCESS) {
            sock_open = 0;
            delay = io_failed(m, rc, override, &backoff, &logged);
            continue;
        }
        if (announce) {
            VG_INFO("sink.mqtt_connected", NULL, "sink %s: connected to %s", m->name, m->origin);
            backoff = BACKOFF_MIN_MS;
            logged = 0;
            announce_all(m);
        }
    }
    if (sock_open)
        io_goodbye(m);
    return NULL;
}

/* ---- deliver ---- */

static void deliver_summary(struct mqtt *m, const struct vg_sink_alert *a, struct pubs *p,
                            struct vg_sink_result *r)
{
    char topic[TOPIC_MAX];
    char *body = dump(json_pack("{s:s,s:s,s:s}", "type", "summary", "title", a->title, "text",
                                a->text));
    if (!body) {
        vg_sink_fail(r, VG_SINK_PERMANENT, "summary: not valid UTF-8");
        return;
    }
    snprintf(topic, sizeof(topic), "%s/summary", m->set->topic_prefix);
    publish(m, p, topic, body, strlen(body), m->set->retain, r);
    free(body);
}

/* Snapshot first, so an automation woken by the event finds the picture. */
static void deliver_alert(struct mqtt *m, const struct vg_sink_alert *a, struct pubs *p,
                          struct vg_sink_result *r)
{
    char cam[VG_ID_MAX], lab[VG_NAME_MAX], topic[TOPIC_MAX];
    const char *prefix = m->set->topic_prefix;
    const Vigil__V1__Alert *al = a->alert;
    topic_level(cam, sizeof(cam), al->header->camera_id);
    topic_level(lab, sizeof(lab), label_of(al));

    if (m->set->snapshot && a->snapshot && a->snapshot_len) {
        snprintf(topic, sizeof(topic), "%s/%s/%s/snapshot", prefix, cam, lab);
        if (publish(m, p, topic, a->snapshot, a->snapshot_len, 1, r))
            return;
    }
    snprintf(topic, sizeof(topic), "%s/%s/%s", prefix, cam, lab);
    if (publish(m, p, topic, "1", 1, 0, r))
        return;
    if (m->set->ha_discovery) {
        struct pair pr;
        snprintf(pr.camera, sizeof(pr.camera), "%s", al->header->camera_id);
        snprintf(pr.label, sizeof(pr.label), "%s", label_of(al));
        if (remember_pair(m, pr.camera, pr.label) && announce_pair(m, &pr, p, r))
            return;
        snprintf(topic, sizeof(topic), "%s/%s/%s/state", prefix, cam, lab);
        if (publish(m, p, topic, "ON", 2, 0, r))
            return;
    }
    char *body = event_json(a);
    if (!body) {
        vg_sink_fail(r, VG_SINK_PERMANENT, "alert %s: event JSON (not valid UTF-8?)",
                     al->alert_id);
        return;
    }
    snprintf(topic, sizeof(topic), "%s/events", prefix);
    publish(m, p, topic, body, strlen(body), m->set->retain, r);
    free(body);
}

static void mqtt_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *r)
{
    struct mqtt *m = state;
    struct pubs p = {{0}, 0};
    int64_t deadline = mono_ms() + m->timeout_ms;
    if (!wait_link(m, deadline, r))
        return;
    if (a->kind == VG_SINK_KIND_SUMMARY)
        deliver_summary(m, a, &p, r);
    else
        deliver_alert(m, a, &p, r);
    if (r->verdict != VG_SINK_DELIVERED)
        return;
    wait_acks(m, &p, deadline, r);
}

/* ---- configuration and life ---- */

/* "mqtt(s)://host[:port][/]" or "[v6]"; 0 on success. */
static int parse_url(const char *url, char *host, size_t cap, int *port, int *tls)
{
    const char *p;
    if (!strncmp(url, "mqtt://", 7))
        *tls = 0, p = url + 7;
    else if (!strncmp(url, "mqtts://", 8))
        *tls = 1, p = url + 8;
    else
        return -1;
    *port = *tls ? 8883 : 1883;
    size_t n = strcspn(p, "/?#");
    if (n == 0 || memchr(p, '@', n))
        return -1;
    const char *end = p + n, *colon = NULL;
    if (*p == '[') {
        const char *close = memchr(p, ']', n);
        if (!close)
            return -1;
        if ((size_t)(close - p - 1) >= cap || close == p + 1)
            return -1;
        snprintf(host, cap, "%.*s", (int)(close - p - 1), p + 1);
        colon = close + 1 < end && close[1] == ':' ? close + 1 : NULL;
        if (!colon && close + 1 != end)
            return -1;
    } else {
        colon = memchr(p, ':', n);
        size_t hn = colon ? (size_t)(colon - p) : n;
        if (hn == 0 || hn >= cap)
            return -1;
        snprintf(host, cap, "%.*s", (int)hn, p);
    }
    if (colon) {
        char *e = NULL;
        long v = strtol(colon + 1, &e, 10);
        if (e != end || v < 1 || v > 65535)
            return -1;
        *port = (int)v;
    }
    return (*end == '\0' || !strcmp(end, "/")) ? 0 : -1;
}

static int prefix_ok(const char *s)
{
    size_t n = strlen(s);
    return n > 0 && !strpbrk(s, "+#") && s[0] != '/' && s[n - 1] != '/' && !strstr(s, "//");
}

static vg_status mqtt_check(const void *settings, const char *where)
{
    const struct mqtt_settings *s = settings;
    char host[HOST_MAX];
    int port, tls;
    /* The URL is not quoted back: it may hold credentials by mistake. */
    if (parse_url(s->url, host, sizeof(host), &port, &tls))
        return vg_errf(VG_ERR_CONFIG, "%s: an mqtt sink needs url mqtt://host[:port] or "
                       "mqtts://host[:port] (no user:password@: use username and password)",
                       where);
    if (!prefix_ok(s->topic_prefix))
        return vg_errf(VG_ERR_CONFIG, "%s: topic_prefix \"%s\" must be a topic without + or # "
                       "and without leading, trailing or double /", where, s->topic_prefix);
    if (s->ha_discovery && !prefix_ok(s->ha_prefix))
        return vg_errf(VG_ERR_CONFIG, "%s: ha_prefix \"%s\" must be a topic without + or # "
                       "and without leading, trailing or double /", where, s->ha_prefix);
    if (s->password[0] && !s->username[0])
        return vg_errf(VG_ERR_CONFIG, "%s: password needs a username", where);
    if (!s->cert_file[0] != !s->key_file[0])
        return vg_errf(VG_ERR_CONFIG, "%s: cert_file and key_file go together", where);
    if (!tls && (s->ca_file[0] || s->cert_file[0] || s->insecure_skip_verify))
        return vg_errf(VG_ERR_CONFIG, "%s: ca_file, cert_file and insecure_skip_verify need an "
                       "mqtts:// url", where);
    return VG_OK;
}

static vg_status setup_tls(struct mqtt *m)
{
    const struct mqtt_settings *s = m->set;
    const char *ca = s->ca_file[0] ? s->ca_file : NULL;
    /* Without a CA file, the system's store (Debian: hashed /etc/ssl/certs). */
    int rc = mosquitto_tls_set(m->mosq, ca, ca ? NULL : "/etc/ssl/certs",
                               s->cert_file[0] ? s->cert_file : NULL,
                               s->key_file[0] ? s->key_file : NULL, NULL);
    if (rc != MOSQ_ERR_SUCCESS)
        return vg_errf(VG_ERR_CONFIG, "sink %s: TLS files (ca_file %s, cert_file %s, key_file "
                       "%s): %s", m->name, ca ? ca : "system", s->cert_file[0] ? s->cert_file
                       : "none", s->key_file[0] ? s->key_file : "none", mosquitto_strerror(rc));
    if (s->insecure_skip_verify) {
        mosquitto_tls_opts_set(m->mosq, 0 /* SSL_VERIFY_NONE */, NULL, NULL);
        mosquitto_tls_insecure_set(m->mosq, true);
    }
    return VG_OK;
}

static vg_status setup_client(struct mqtt *m)
{
    const struct mqtt_settings *s = m->set;
    int rc = MOSQ_ERR_SUCCESS;
    mosquitto_threaded_set(m->mosq, true);
    if (s->protocol == PROTO_5)
        rc = mosquitto_int_option(m->mosq, MOSQ_OPT_PROTOCOL_VERSION, MQTT_PROTOCOL_V5);
    if (rc == MOSQ_ERR_SUCCESS && s->username[0])
        rc = mosquitto_username_pw_set(m->mosq, s->username, s->password[0] ? s->password : NULL);
    if (rc == MOSQ_ERR_SUCCESS)
        rc = mosquitto_will_set(m->mosq, m->avail_topic, 7, "offline", s->qos, true);
    if (rc != MOSQ_ERR_SUCCESS)
        return vg_errf(VG_ERR_CONFIG, "sink %s: client options: %s", m->name,
                       mosquitto_strerror(rc));
    mosquitto_connect_callback_set(m->mosq, on_connect);
    mosquitto_disconnect_callback_set(m->mosq, on_disconnect);
    mosquitto_publish_v5_callback_set(m->mosq, on_publish);
    mosquitto_message_callback_set(m->mosq, on_message);
    mosquitto_log_callback_set(m->mosq, on_log);
    return m->tls ? setup_tls(m) : VG_OK;
}

static int canonical(const char *label)
{
    static const char *const names[] = {"person", "pet", "vehicle", "package", NULL};
    for (int i = 0; names[i]; i++)
        if (!strcmp(label, names[i]))
            return 1;
    return 0;
}

/* Home Assistant learns of the configured cameras at once: "person" for
 * each, and the categories on its watch list; other pairs when an alert
 * first names them. */
static void seed_pairs(struct mqtt *m, const struct vg_config *root)
{
    for (int i = 0; i < root->n_cameras; i++) {
        const struct vg_camera_cfg *c = &root->cameras[i];
        remember_pair(m, c->id, "person");
        for (int j = 0; j < c->n_watch; j++)
            if (canonical(c->watch[j].label))
                remember_pair(m, c->id, c->watch[j].label);
    }
}

static void mqtt_cleanup(void *state)
{
    struct mqtt *m = state;
    if (!m)
        return;
    if (m->io_started) {
        pthread_mutex_lock(&m->mu);
        m->stop = 1;
        pthread_cond_broadcast(&m->cv);
        pthread_mutex_unlock(&m->mu);
        pthread_join(m->io, NULL);
    }
    mosquitto_destroy(m->mosq);
    pthread_cond_destroy(&m->cv);
    pthread_mutex_destroy(&m->mu);
    free(m);
}

static vg_status mqtt_state_new(struct mqtt **out, const struct vg_sink_cfg *cfg)
{
    pthread_condattr_t ca;
    struct mqtt *m = calloc(1, sizeof(*m));
    if (!m)
        return vg_errf(VG_ERR_NOMEM, "mqtt sink state");
    pthread_mutex_init(&m->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&m->cv, &ca);
    pthread_condattr_destroy(&ca);
    m->set = (const struct mqtt_settings *)cfg->settings;
    m->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 5000;
    snprintf(m->name, sizeof(m->name), "%s", cfg->name);
    *out = m;
    return VG_OK;
}

static vg_status mqtt_init(void **state, const struct vg_sink_cfg *cfg,
                           const struct vg_config *root)
{
    struct mqtt *m = NULL;
    char client_id[160];
    vg_status st = mqtt_state_new(&m, cfg);
    if (st != VG_OK)
        return st;
    pthread_once(&lib_once, lib_init);
    if (lib_rc != MOSQ_ERR_SUCCESS) {
        st = vg_errf(VG_ERR_IO, "mosquitto_lib_init: %s", mosquitto_strerror(lib_rc));
        goto out;
    }
    if (parse_url(m->set->url, m->host, sizeof(m->host), &m->port, &m->tls)) {
        st = vg_errf(VG_ERR_CONFIG, "sink %s: bad url", m->name);
        goto out;
    }
    snprintf(m->origin, sizeof(m->origin), "%s://%s%s%s:%d", m->tls ? "mqtts" : "mqtt",
             strchr(m->host, ':') ? "[" : "", m->host, strchr(m->host, ':') ? "]" : "", m->port);
    snprintf(m->avail_topic, sizeof(m->avail_topic), "%s/available", m->set->topic_prefix);
    snprintf(m->status_topic, sizeof(m->status_topic), "%s/status", m->set->ha_prefix);
    if (m->set->client_id[0])
        snprintf(client_id, sizeof(client_id), "%s", m->set->client_id);
    else
        snprintf(client_id, sizeof(client_id), "vigil-notifier-%s-%ld", m->name, (long)getpid());
    if (!(m->mosq = mosquitto_new(client_id, true, m))) {
        st = vg_errf(VG_ERR_NOMEM, "sink %s: mosquitto_new: %s", m->name, strerror(errno));
        goto out;
    }
    if ((st = setup_client(m)) != VG_OK)
        goto out;
    if (m->set->ha_discovery)
        seed_pairs(m, root);
    if (pthread_create(&m->io, NULL, io_main, m) != 0) {
        st = vg_errf(VG_ERR_IO, "sink %s: I/O thread: %s", m->name, strerror(errno));
        goto out;
    }
    m->io_started = 1;
    *state = m;
    m = NULL;
out:
    mqtt_cleanup(m);
    return st;
}

const struct vg_sink_ops vg_sink_mqtt = {
    .name = "mqtt",
    .caps = VG_SINK_CAP_SNAPSHOT,
    .default_incidents = VG_SINK_INCIDENTS_ALL,
    .opts = mqtt_opts,
    .settings_size = sizeof(struct mqtt_settings),
    .default_timeout_ms = 5000,
    .check = mqtt_check,
    .init = mqtt_init,
    .deliver = mqtt_deliver,
    .cleanup = mqtt_cleanup,
};
