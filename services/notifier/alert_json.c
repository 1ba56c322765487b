#include "alert_json.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"

static int token_ok(const char *s, size_t max, const char *forbidden)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n >= max)
        return 0;
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c >= 0x7f || strchr(forbidden, c))
            return 0;
    }
    return 1;
}

vg_status ntf_alert_check(const Vigil__V1__Alert *a)
{
    if (!a->header)
        return vg_errf(VG_ERR_INVALID, "alert has no header");
    if (!token_ok(a->alert_id, VG_ID_MAX, ""))
        return vg_errf(VG_ERR_INVALID, "alert_id is empty or not a printable token");
    if (!token_ok(a->header->camera_id, VG_ID_MAX, ".*>"))
        return vg_errf(VG_ERR_INVALID, "alert %s: camera_id is not a subject token", a->alert_id);
    return VG_OK;
}

void ntf_format_ts(int64_t us, char out[NTF_TS_MAX])
{
    /* Floor division so times before 1970 still format correctly. */
    time_t sec = (time_t)(us / 1000000 - (us % 1000000 < 0));
    int ms = (int)(((us % 1000000) + 1000000) % 1000000 / 1000);
    struct tm tm;
    if (!gmtime_r(&sec, &tm)) {
        snprintf(out, NTF_TS_MAX, "1970-01-01T00:00:00.000Z");
        return;
    }
    size_t k = strftime(out, NTF_TS_MAX, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out + k, NTF_TS_MAX - k, ".%03dZ", ms);
}

/* Confidences and boxes are floats; rounding to 4 places keeps the JSON
 * readable (0.9, not 0.89999997615814209). */
static double round4(float f)
{
    if (!isfinite(f))
        return 0.0;
    return round((double)f * 10000.0) / 10000.0;
}

/* Adds fields in order and remembers whether any failed: json_string
 * returns NULL for invalid UTF-8, and set_new then fails (and frees nothing). */
struct builder {
    json_t *o;
    int failed;
};

static void put(struct builder *b, const char *key, json_t *v)
{
    if (json_object_set_new(b->o, key, v) != 0)
        b->failed = 1;
}

static json_t *str(const char *s) { return json_string(s ? s : ""); }

static json_t *box(const Vigil__V1__Box *b)
{
    if (!b)
        return json_null();
    return json_pack("{s:f,s:f,s:f,s:f}", "x", round4(b->x), "y", round4(b->y), "w",
                     round4(b->w), "h", round4(b->h));
}

static json_t *capture_ts(int64_t us)
{
    char ts[NTF_TS_MAX];
    if (us <= 0)
        return json_null();
    ntf_format_ts(us, ts);
    return json_string(ts);
}

/* The known person's profile as an object of strings; a key given twice
 * keeps its last value (as a protobuf map does). NULL: invalid UTF-8. */
static json_t *profile(const Vigil__V1__Alert *a)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < a->n_profile; i++) {
        const Vigil__V1__Alert__ProfileEntry *e = a->profile[i];
        json_t *v = str(e->value);
        if (!v || json_object_set_new(o, e->key ? e->key : "", v) != 0) {
            json_decref(o);
            return NULL;
        }
    }
    return o;
}

/* What was seen, in the order a person reads it, then where it came from.
 * Who it was (person_id, display_name) is always there, empty for anything
 * but a known person; face_id and profile only when the alert has them. */
static void build(struct builder *b, const Vigil__V1__Alert *a)
{
    const Vigil__V1__Header *h = a->header;
    put(b, "alert_id", str(a->alert_id));
    put(b, "camera", str(h->camera_id));
    put(b, "label", str(a->label));
    put(b, "confidence", json_real(round4(a->confidence)));
    put(b, "box", box(a->box));
    put(b, "person_id", str(a->person_id));
    put(b, "display_name", str(a->display_name));
    if (a->face_id && a->face_id[0])
        put(b, "face_id", str(a->face_id));
    if (a->n_profile)
        put(b, "profile", profile(a));
    if (a->n_zones) {
        json_t *z = json_array();
        for (size_t i = 0; z && i < a->n_zones; i++)
            if (json_array_append_new(z, str(a->zones[i])) != 0)
                b->failed = 1;
        put(b, "zones", z);
    }
    if (a->incident_id && a->incident_id[0])
        put(b, "incident_id", str(a->incident_id));
    if (a->escalation && a->escalation[0])
        put(b, "escalation", str(a->escalation));
    if (a->incident_count)
        put(b, "incident_count", json_integer((json_int_t)a->incident_count));
    put(b, "snapshot_url", str(a->snapshot_url));
    put(b, "clip_url", str(a->clip_url));
    put(b, "snapshot_ref", str(a->snapshot_ref));
    put(b, "key", str(a->key));
    put(b, "window_s", json_integer((json_int_t)a->window_s));
    put(b, "frame_seq", json_integer((json_int_t)a->frame_seq));
    put(b, "fail_open", json_boolean(a->fail_open));
    put(b, "capture_ts", capture_ts(h->capture_ts_us));
    put(b, "trace_id", str(h->trace_id));
    put(b, "producer", str(h->producer));
}

vg_status ntf_alert_json(const Vigil__V1__Alert *a, char **out, size_t *len)
{
    vg_status st = VG_ERR_NOMEM;
    struct builder b = {0};
    char *text = NULL;

    if (!a->header) {
        st = vg_errf(VG_ERR_INVALID, "alert has no header");
        goto out;
    }
    if (!(b.o = json_object()))
        goto out;
    build(&b, a);
    /* Numbers cannot fail but for memory; strings fail on invalid UTF-8. */
    if (b.failed) {
        st = vg_errf(VG_ERR_DECODE, "alert %s: a text field is not valid UTF-8", a->alert_id);
        goto out;
    }
    text = json_dumps(b.o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(6));
    if (!text)
        goto out;
    *len = strlen(text);
    *out = text;
    text = NULL;
    st = VG_OK;
out:
    free(text);
    json_decref(b.o);
    return st;
}
