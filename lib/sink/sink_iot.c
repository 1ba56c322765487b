/* iot sink: the alert JSON published to an AWS IoT Core MQTT topic through
 * the data plane's HTTPS Publish (lib/aws/iot.h), for rules, devices and
 * dashboards that subscribe (seed 002 publishes its result JSON this way).
 *
 * The topic may hold {camera} and {label}, filled in per alert
 * ("vigil/{camera}/alerts"); a value that would break the topic (a '/', an
 * MQTT wildcard '+' or '#', a '$') becomes '_'. The topic is checked against
 * IoT's rules at load with a sample camera, and at start with every
 * configured camera. qos 1 (the default) means IoT acknowledges the message
 * to us before Publish answers; subscribers get it at least once.
 *
 * Classification as the sns sink: throttling left after the client's own
 * retries, timeouts, network and 5xx are transient; an answer that the
 * request is wrong (InvalidRequestException, a refused signature or policy,
 * a payload over 128 KiB) is permanent, with AWS's code and message. */
#include "sink/sink.h"
#include "sink/sink_aws.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/client.h"
#include "aws/iot.h"

#define TOPIC_BUF (VG_IOT_MAX_TOPIC * 2 + 1)   /* room to say "too long" after expanding */
#define SAMPLE_CAMERA "front-door"
#define SAMPLE_LABEL "person"
#define LONGEST_LABEL "vehicle"                 /* of the canonical labels */

struct iot_settings {
    char topic[VG_IOT_MAX_TOPIC + 1];
    char endpoint[VG_URL_MAX];
    int qos;
};

static const struct vg_opt iot_opts[] = {
    VG_OPT_STR_("topic", struct iot_settings, topic, "vigil/{camera}/alerts", "TOPIC", 0,
                "MQTT topic; {camera} and {label} are filled in"),
    VG_OPT_INT_("qos", struct iot_settings, qos, 0, 1, "1",
                "0: at most once; 1: IoT acknowledges the message before Publish answers"),
    VG_OPT_STR_("endpoint", struct iot_settings, endpoint, "", "ENDPOINT", 0,
                "the account's data endpoint xxxx-ats.iot.<region>.amazonaws.com; else "
                "AWS_ENDPOINT_URL_IOT_DATA_PLANE or AWS_ENDPOINT_URL"),
    VG_OPT_END,
};

struct iot {
    struct vg_aws *aws;         /* this sink's own client: one worker thread uses it */
    const struct iot_settings *set;
    char endpoint[VG_URL_MAX];  /* normalised; "" for the environment's */
};

/* ---- the topic --------------------------------------------------------------- */

/* A value as one topic level. */
static void put_level(char *out, size_t cap, size_t *n, const char *v)
{
    for (; v && *v && *n + 1 < cap; v++) {
        unsigned char c = (unsigned char)*v;
        out[(*n)++] = c < 0x20 || c == 0x7f || strchr("/+#$", c) ? '_' : (char)c;
    }
}

/* The topic with {camera} and {label} filled in; VG_ERR_CONFIG for any
 * other brace. */
static vg_status expand(const char *tpl, const char *camera, const char *label, char *out,
                        size_t cap)
{
    size_t n = 0;
    for (const char *p = tpl; *p; p++) {
        if (!strncmp(p, "{camera}", 8)) {
            put_level(out, cap, &n, camera);
            p += 7;
        } else if (!strncmp(p, "{label}", 7)) {
            put_level(out, cap, &n, label);
            p += 6;
        } else if (*p == '{' || *p == '}') {
            return vg_errf(VG_ERR_CONFIG, "topic \"%s\": only {camera} and {label} may be "
                           "filled in (at \"%.16s\")", tpl, p);
        } else if (n + 1 < cap) {
            out[n++] = *p;
        }
    }
    out[n] = '\0';
    return VG_OK;
}

/* The rules of lib/aws/iot.h, here so that a bad topic fails at load. */
static vg_status topic_rules(const char *topic)
{
    size_t len = strlen(topic), slashes = 0;
    if (len == 0)
        return vg_errf(VG_ERR_CONFIG, "topic is empty");
    if (len > VG_IOT_MAX_TOPIC)
        return vg_errf(VG_ERR_CONFIG, "topic \"%.64s...\" is longer than the %d bytes IoT "
                       "takes", topic, VG_IOT_MAX_TOPIC);
    if (strpbrk(topic, "+#"))
        return vg_errf(VG_ERR_CONFIG, "topic \"%s\": '+' and '#' are wildcards, for "
                       "subscribing only", topic);
    if (topic[0] == '$') {
        if (strncmp(topic, "$aws/things/", 12) && strncmp(topic, "$aws/rules/", 11))
            return vg_errf(VG_ERR_CONFIG, "topic \"%s\": '$' topics are reserved (only "
                           "$aws/things/... and $aws/rules/... may be published)", topic);
        return VG_OK;
    }
    for (const char *p = topic; *p; p++)
        slashes += *p == '/';
    if (slashes > 7)
        return vg_errf(VG_ERR_CONFIG, "topic \"%s\" has %zu levels; IoT takes at most 8", topic,
                       slashes + 1);
    return VG_OK;
}

static vg_status topic_check(const char *tpl, const char *camera, const char *label,
                             const char *where)
{
    char topic[TOPIC_BUF];
    vg_status st = expand(tpl, camera, label, topic, sizeof(topic));
    if (st == VG_OK)
        st = topic_rules(topic);
    if (st != VG_OK)
        return vg_errf(st, "%s: %s", where, vg_err_detail());
    return VG_OK;
}

/* ---- checks ---------------------------------------------------------------- */

static int env_set(const char *name)
{
    const char *v = getenv(name);
    return v && *v;
}

static vg_status iot_check(const void *settings, const char *where)
{
    const struct iot_settings *s = settings;
    char at[256];
    snprintf(at, sizeof(at), "%s: with camera \"" SAMPLE_CAMERA "\"", where);
    vg_status st = topic_check(s->topic, SAMPLE_CAMERA, SAMPLE_LABEL, at);
    if (st != VG_OK || (st = vg_sink_aws_endpoint_check(s->endpoint, where)) != VG_OK)
        return st;
    /* IoT has no region-wide endpoint: each account has its own. */
    if (!s->endpoint[0] && !env_set("AWS_ENDPOINT_URL_IOT_DATA_PLANE") &&
        !env_set("AWS_ENDPOINT_URL"))
        return vg_errf(VG_ERR_CONFIG, "%s: an iot sink needs endpoint, the account's data "
                       "endpoint (aws iot describe-endpoint --endpoint-type iot:Data-ATS), or "
                       "AWS_ENDPOINT_URL_IOT_DATA_PLANE or AWS_ENDPOINT_URL in the environment",
                       where);
    return VG_OK;
}

/* ---- delivery -------------------------------------------------------------- */

static void iot_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *r)
{
    struct iot *s = state;
    const Vigil__V1__Alert *al = a->alert;
    char topic[TOPIC_BUF];
    vg_status st = expand(s->set->topic, al->header ? al->header->camera_id : "",
                          a->kind == VG_SINK_KIND_SUMMARY ? "summary" : al->label, topic,
                          sizeof(topic));
    if (st == VG_OK)
        st = vg_iot_publish(s->aws, s->endpoint[0] ? s->endpoint : NULL, topic, s->set->qos,
                            a->json, a->json_len);
    if (st != VG_OK)
        vg_sink_fail(r, vg_sink_aws_verdict(st, vg_aws_last_error_code()), "topic %s: %s",
                     topic, vg_err_detail());
}

/* ---- life ------------------------------------------------------------------ */

static vg_status iot_init(void **state, const struct vg_sink_cfg *cfg,
                          const struct vg_config *root)
{
    char where[128];
    /* Camera ids are known now: a long one could push the topic past 256 bytes. */
    for (int i = 0; i < root->n_cameras; i++) {
        snprintf(where, sizeof(where), "with camera \"%s\"", root->cameras[i].id);
        vg_status st = topic_check(((const struct iot_settings *)cfg->settings)->topic,
                                   root->cameras[i].id, LONGEST_LABEL, where);
        if (st != VG_OK)
            return st;
    }
    struct iot *s = calloc(1, sizeof(*s));
    if (!s)
        return vg_errf(VG_ERR_NOMEM, "iot sink state");
    s->set = (const struct iot_settings *)cfg->settings;
    vg_sink_aws_endpoint_normalise(s->set->endpoint, s->endpoint, sizeof(s->endpoint));
    vg_status st = vg_sink_aws_client(&s->aws, cfg, root);
    if (st != VG_OK) {
        free(s);
        return st;
    }
    *state = s;
    return VG_OK;
}

static void iot_cleanup(void *state)
{
    struct iot *s = state;
    if (!s)
        return;
    vg_aws_destroy(s->aws);
    free(s);
}

const struct vg_sink_ops vg_sink_iot = {
    .name = "iot",
    .default_incidents = VG_SINK_INCIDENTS_ALL,        /* a machine channel */
    .opts = iot_opts,
    .settings_size = sizeof(struct iot_settings),
    .default_timeout_ms = 10000,
    .check = iot_check,
    .init = iot_init,
    .deliver = iot_deliver,
    .cleanup = iot_cleanup,
};
