/* kinesis sink: each alert as one record of an Amazon Kinesis data stream
 * (PutRecord, lib/aws/kinesis.h), for machines downstream: the Lambda
 * consumers of seeds 003 and 004 read the stream. The record's data is the
 * alert JSON exactly as the webhook and file sinks send it; its partition
 * key is a small template of {camera} and {label} ("{camera}" by default),
 * so one camera's alerts stay in order on one shard.
 * Throttling (the shard's or the KMS key's), 5xx, timeouts and network
 * errors are transient; an unknown stream, a refused signature or
 * permission and a request Kinesis finds invalid are permanent, with AWS's
 * code and message in the error. */
#include "sink/sink.h"
#include "sink/sink_aws.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/client.h"
#include "aws/kinesis.h"

#define KEY_TEMPLATE_MAX 512
/* Room for VG_KINESIS_KEY_MAX characters: at most 3 bytes per UTF-16 unit. */
#define KEY_BUF (3 * VG_KINESIS_KEY_MAX + 1)

struct kinesis_settings {
    char stream_name[VG_KINESIS_NAME_MAX + 1];
    char stream_arn[VG_KINESIS_ARN_MAX + 1];
    char endpoint[VG_URL_MAX];
    char partition_key[KEY_TEMPLATE_MAX];
};

_Static_assert(sizeof(struct kinesis_settings) <= VG_SINK_SETTINGS_MAX,
               "kinesis settings must fit VG_SINK_SETTINGS_MAX");

static const struct vg_opt kinesis_opts[] = {
    VG_OPT_STR_("stream_name", struct kinesis_settings, stream_name, "", "STREAM_NAME", 0,
                "the data stream's name; or stream_arn"),
    VG_OPT_STR_("stream_arn", struct kinesis_settings, stream_arn, "", "STREAM_ARN", 0,
                "or its ARN (arn:aws:kinesis:<region>:<account>:stream/<name>)"),
    VG_OPT_STR_("endpoint", struct kinesis_settings, endpoint, "", "ENDPOINT", 0,
                "http(s)://host[:port] or a host name instead of AWS_ENDPOINT_URL_KINESIS, "
                "AWS_ENDPOINT_URL, kinesis.<region>.amazonaws.com (kinesalite)"),
    VG_OPT_STR_("partition_key", struct kinesis_settings, partition_key, "{camera}", NULL, 0,
                "the record's partition key: text with {camera} and {label}; cut to 256 "
                "characters"),
    VG_OPT_END,
};

struct kinesis {
    struct vg_aws *aws;         /* this sink's own client: one worker thread uses it */
    const struct kinesis_settings *set;
    char endpoint[VG_URL_MAX];  /* normalised; "" for the usual resolution */
    char stream[VG_KINESIS_NAME_MAX + 16];   /* "stream <name>", for errors */
};

/* ---- the partition key ----------------------------------------------------- */

enum key_part { KEY_END, KEY_TEXT, KEY_CAMERA, KEY_LABEL, KEY_BAD };

/* The part of the template at *p: a run of text (with "{{" and "}}" as one
 * brace each), a field, the end, or KEY_BAD (an unknown field or a lone
 * brace). *p moves past it; text parts give their bytes in *s and *n, one
 * brace of a pair counted as text. */
static enum key_part next_part(const char **p, const char **s, size_t *n)
{
    const char *q = *p;
    if (!*q)
        return KEY_END;
    if ((q[0] == '{' && q[1] == '{') || (q[0] == '}' && q[1] == '}')) {
        *s = q, *n = 1, *p = q + 2;
        return KEY_TEXT;
    }
    if (*q == '{') {
        static const struct { const char *name; enum key_part part; } fields[] = {
            {"{camera}", KEY_CAMERA}, {"{label}", KEY_LABEL}};
        for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); i++)
            if (!strncmp(q, fields[i].name, strlen(fields[i].name))) {
                *p = q + strlen(fields[i].name);
                return fields[i].part;
            }
        return KEY_BAD;
    }
    if (*q == '}')
        return KEY_BAD;
    *s = q, *n = strcspn(q, "{}"), *p = q + *n;
    return KEY_TEXT;
}

static vg_status check_key_template(const char *t, const char *where)
{
    enum key_part k;
    const char *s = NULL;
    size_t n = 0;
    if (!*t)
        return vg_errf(VG_ERR_CONFIG, "%s: partition_key is empty (\"{camera}\" keeps each "
                       "camera's alerts in order)", where);
    if (vg_kinesis_key_chars(t) < 0)
        return vg_errf(VG_ERR_CONFIG, "%s: partition_key is not valid UTF-8", where);
    for (const char *p = t; (k = next_part(&p, &s, &n)) != KEY_END;)
        if (k == KEY_BAD)
            return vg_errf(VG_ERR_CONFIG, "%s: partition_key \"%s\": only {camera} and {label} "
                           "may be used (\"{{\" and \"}}\" for braces)", where, t);
    return VG_OK;
}

static void put(char *out, size_t *len, const char *s, size_t n)
{
    size_t room = KEY_BUF - 1 - *len;
    if (n > room)
        n = room;
    memcpy(out + *len, s, n);
    *len += n;
}

/* Cut s to VG_KINESIS_KEY_MAX UTF-16 units on a character boundary: the key
 * only chooses a shard, so a long camera name must not stop the alert. */
static void cut_key(char *s)
{
    size_t units = 0;
    for (char *p = s; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c & 0xc0) == 0x80)
            continue;           /* a continuation byte */
        units += c >= 0xf0 ? 2 : 1;
        if (units > VG_KINESIS_KEY_MAX) {
            *p = '\0';
            return;
        }
    }
}

static void expand_key(const char *t, const struct vg_sink_alert *a, char out[KEY_BUF])
{
    const Vigil__V1__Alert *al = a->alert;
    const char *camera = al->header && al->header->camera_id ? al->header->camera_id : "";
    const char *label = al->label ? al->label : "";
    const char *s = NULL;
    size_t n = 0, len = 0;
    enum key_part k;
    for (const char *p = t; (k = next_part(&p, &s, &n)) != KEY_END && k != KEY_BAD;) {
        if (k == KEY_CAMERA)
            s = camera, n = strlen(camera);
        else if (k == KEY_LABEL)
            s = label, n = strlen(label);
        put(out, &len, s, n);
    }
    out[len] = '\0';
    cut_key(out);
}

/* ---- checks ---------------------------------------------------------------- */

static vg_status kinesis_check(const void *settings, const char *where)
{
    const struct kinesis_settings *s = settings;
    if (!s->stream_name[0] == !s->stream_arn[0])
        return vg_errf(VG_ERR_CONFIG, "%s: a kinesis sink needs exactly one of stream_name "
                       "and stream_arn", where);
    if (s->stream_name[0] && vg_kinesis_check_name(s->stream_name) != VG_OK)
        return vg_errf(VG_ERR_CONFIG, "%s: stream_name \"%s\" must be 1..%d letters, digits, "
                       "'_', '.' or '-'", where, s->stream_name, VG_KINESIS_NAME_MAX);
    if (s->stream_arn[0] && vg_kinesis_check_arn(s->stream_arn, NULL, NULL, 0) != VG_OK)
        return vg_errf(VG_ERR_CONFIG, "%s: stream_arn \"%.160s\" is not a stream ARN "
                       "(arn:aws:kinesis:<region>:<account>:stream/<name>)", where,
                       s->stream_arn);
    vg_status st = vg_sink_aws_endpoint_check(s->endpoint, where);
    return st == VG_OK ? check_key_template(s->partition_key, where) : st;
}

/* ---- delivery -------------------------------------------------------------- */

static void kinesis_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *r)
{
    struct kinesis *k = state;
    char key[KEY_BUF];
    expand_key(k->set->partition_key, a, key);
    if (!key[0]) {
        vg_sink_fail(r, VG_SINK_PERMANENT, "%s: partition key \"%s\" is empty for this alert "
                     "(no camera or label)", k->stream, k->set->partition_key);
        return;
    }
    struct vg_kinesis_stream s = {
        .name = k->set->stream_name, .arn = k->set->stream_arn, .endpoint = k->endpoint,
    };
    vg_status st = vg_kinesis_put_record(k->aws, &s, a->json, a->json_len, key, NULL);
    if (st != VG_OK)
        vg_sink_fail(r, vg_sink_aws_verdict(st, vg_aws_last_error_code()), "%s: %s", k->stream,
                     vg_err_detail());
}

/* ---- life ------------------------------------------------------------------ */

/* A stream ARN names its region; a request signed for another one would be
 * refused by AWS on every alert, so say so at start. */
static vg_status check_region(const struct kinesis *k, const char *sink)
{
    char region[VG_KINESIS_ARN_MAX + 1];
    if (!k->set->stream_arn[0] ||
        vg_kinesis_check_arn(k->set->stream_arn, region, NULL, sizeof(region)) != VG_OK ||
        !strcmp(region, vg_aws_region(k->aws)))
        return VG_OK;
    return vg_errf(VG_ERR_CONFIG, "sink %s: stream_arn is in region %s, but AWS requests are "
                   "signed for %s (aws.region, AWS_REGION)", sink, region,
                   vg_aws_region(k->aws));
}

static void kinesis_cleanup(void *state)
{
    struct kinesis *k = state;
    if (!k)
        return;
    vg_aws_destroy(k->aws);
    free(k);
}

static vg_status kinesis_init(void **state, const struct vg_sink_cfg *cfg,
                              const struct vg_config *root)
{
    struct kinesis *k = calloc(1, sizeof(*k));
    if (!k)
        return vg_errf(VG_ERR_NOMEM, "kinesis sink state");
    k->set = (const struct kinesis_settings *)cfg->settings;
    vg_sink_aws_endpoint_normalise(k->set->endpoint, k->endpoint, sizeof(k->endpoint));
    const char *name = k->set->stream_name[0] ? k->set->stream_name
                                              : strrchr(k->set->stream_arn, '/') + 1;
    snprintf(k->stream, sizeof(k->stream), "stream %s", name);
    vg_status st = vg_sink_aws_client(&k->aws, cfg, root);
    if (st == VG_OK)
        st = check_region(k, cfg->name);
    if (st != VG_OK) {
        kinesis_cleanup(k);
        return st;
    }
    *state = k;
    return VG_OK;
}

const struct vg_sink_ops vg_sink_kinesis = {
    .name = "kinesis",
    .default_incidents = VG_SINK_INCIDENTS_ALL,     /* a machine channel */
    .opts = kinesis_opts,
    .settings_size = sizeof(struct kinesis_settings),
    .default_timeout_ms = 5000,
    .check = kinesis_check,
    .init = kinesis_init,
    .deliver = kinesis_deliver,
    .cleanup = kinesis_cleanup,
};
