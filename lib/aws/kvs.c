/* Kinesis Video Streams HLS URLs over vg_aws_call. See kvs.h. */
#include "aws/kvs.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "timeutil.h"

#define CACHE_SLOTS 64
#define CACHE_KEY_MAX 1536
#define ARCHIVED_MEDIA_ENV "AWS_ENDPOINT_URL_KINESIS_VIDEO_ARCHIVED_MEDIA"

static const char *const api_names[] = {
    "PUT_MEDIA", "GET_MEDIA", "LIST_FRAGMENTS", "GET_MEDIA_FOR_FRAGMENT_LIST",
    "GET_HLS_STREAMING_SESSION_URL", "GET_DASH_STREAMING_SESSION_URL", "GET_CLIP",
    "GET_IMAGES",
};
static const char *const modes[] = {"LIVE", "LIVE_REPLAY", "ON_DEMAND"};
static const char *const selectors[] = {"SERVER_TIMESTAMP", "PRODUCER_TIMESTAMP"};

/* ---- checks ------------------------------------------------------------- */

static vg_status check_stream(const char *api, const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len < 1 || len > 256 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") != len)
        return vg_errf(VG_ERR_INVALID, "%s: stream name \"%.64s\" must be 1..256 of "
                       "[a-zA-Z0-9_.-]", api, name ? name : "");
    return VG_OK;
}

static vg_status check_range(const char *api, const struct vg_kvs_hls_opts *o)
{
    if (o->start_us < 0 || o->end_us < 0)
        return vg_errf(VG_ERR_INVALID, "%s: negative timestamp", api);
    if (o->mode == VG_KVS_LIVE && (o->start_us || o->end_us))
        return vg_errf(VG_ERR_INVALID, "%s: LIVE playback takes no start or end", api);
    if (o->mode == VG_KVS_LIVE_REPLAY && !o->start_us)
        return vg_errf(VG_ERR_INVALID, "%s: LIVE_REPLAY playback needs a start", api);
    if (o->mode == VG_KVS_ON_DEMAND && (!o->start_us || !o->end_us))
        return vg_errf(VG_ERR_INVALID, "%s: ON_DEMAND playback needs a start and an end", api);
    if (o->end_us && o->end_us <= o->start_us)
        return vg_errf(VG_ERR_INVALID, "%s: end must be later than start", api);
    if (o->end_us && o->end_us - o->start_us > VG_KVS_MAX_RANGE_US)
        return vg_errf(VG_ERR_INVALID, "%s: end must be within 24 hours of start", api);
    return VG_OK;
}

static vg_status check_hls(const char *api, const struct vg_kvs_hls_opts *o)
{
    vg_status st = check_stream(api, o->stream_name);
    if (st != VG_OK)
        return st;
    if ((unsigned)o->mode > (unsigned)VG_KVS_ON_DEMAND ||
        (unsigned)o->selector > (unsigned)VG_KVS_PRODUCER_TIMESTAMP)
        return vg_errf(VG_ERR_INVALID, "%s: unknown playback mode or fragment selector", api);
    if (o->expires_s && (o->expires_s < VG_KVS_MIN_EXPIRES || o->expires_s > VG_KVS_MAX_EXPIRES))
        return vg_errf(VG_ERR_INVALID, "%s: expires %d s outside %d..%d", api, o->expires_s,
                       VG_KVS_MIN_EXPIRES, VG_KVS_MAX_EXPIRES);
    if (o->max_fragments < 0 || o->max_fragments > VG_KVS_MAX_FRAGMENTS)
        return vg_errf(VG_ERR_INVALID, "%s: max_fragments %d outside 1..%d", api,
                       o->max_fragments, VG_KVS_MAX_FRAGMENTS);
    return check_range(api, o);
}

/* ---- one JSON call ------------------------------------------------------ */

/* POST req (consumed; NULL when building failed) to path; *resp gets the
 * answer's JSON object. endpoint NULL: the control plane. */
static vg_status call(struct vg_aws *a, const char *api, const char *endpoint, const char *path,
                      json_t *req, json_t **resp)
{
    struct vg_aws_request q = {
        .api = api, .service = "kinesisvideo", .endpoint_id = "KINESIS_VIDEO",
        .endpoint = endpoint, .method = "POST", .path = path, .content_type = "application/json",
    };
    /* 13 significant digits: seconds since the epoch with exact milliseconds. */
    return vg_aws_call_json(a, &q, req, JSON_COMPACT | JSON_REAL_PRECISION(13), resp);
}

/* String member key of o into out. */
static vg_status take_str(const char *api, json_t *o, const char *key, char *out, size_t cap)
{
    const char *v = json_string_value(json_object_get(o, key));
    if (!v || !*v)
        return vg_errf(VG_ERR_DECODE, "%s: answer has no %s", api, key);
    size_t len = strlen(v);
    if (len >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "%s: %s is %zu bytes; room for %zu", api, key, len,
                       cap ? cap - 1 : 0);
    memcpy(out, v, len + 1);
    return VG_OK;
}

/* ---- GetDataEndpoint ---------------------------------------------------- */

vg_status vg_kvs_get_data_endpoint(struct vg_aws *a, const char *stream_name,
                                   const char *api_name, char *endpoint, size_t cap)
{
    static const char api[] = "kinesisvideo.GetDataEndpoint";
    json_t *resp = NULL;
    size_t i, n = sizeof(api_names) / sizeof(*api_names);
    vg_status st = check_stream(api, stream_name);
    if (st != VG_OK)
        return st;
    for (i = 0; api_name && i < n && strcmp(api_name, api_names[i]); i++)
        ;
    if (!api_name || i == n)
        return vg_errf(VG_ERR_INVALID, "%s: unknown APIName \"%s\"", api,
                       api_name ? api_name : "");
    json_t *req = json_pack("{s:s, s:s}", "StreamName", stream_name, "APIName", api_name);
    if ((st = call(a, api, NULL, "/getDataEndpoint", req, &resp)) == VG_OK)
        st = take_str(api, resp, "DataEndpoint", endpoint, cap);
    json_decref(resp);
    return st;
}

/* ---- GetHLSStreamingSessionURL ------------------------------------------ */

static json_t *seconds(int64_t us)
{
    return json_real((double)(us / 1000) / 1000.0);
}

static json_t *hls_request(const struct vg_kvs_hls_opts *o)
{
    json_t *sel = json_pack("{s:s}", "FragmentSelectorType", selectors[o->selector]);
    if (sel && o->start_us) {
        json_t *range = json_object();
        json_object_set_new(range, "StartTimestamp", seconds(o->start_us));
        if (o->end_us)
            json_object_set_new(range, "EndTimestamp", seconds(o->end_us));
        json_object_set_new(sel, "TimestampRange", range);
    }
    json_t *req = json_pack("{s:s, s:s, s:o, s:i}", "StreamName", o->stream_name,
                            "PlaybackMode", modes[o->mode], "HLSFragmentSelector", sel,
                            "Expires", o->expires_s ? o->expires_s : VG_KVS_MIN_EXPIRES);
    if (req && o->max_fragments)
        json_object_set_new(req, "MaxMediaPlaylistFragmentResults",
                            json_integer(o->max_fragments));
    return req;
}

vg_status vg_kvs_get_hls_url(struct vg_aws *a, const char *endpoint,
                             const struct vg_kvs_hls_opts *o, char *url, size_t cap)
{
    static const char api[] = "kinesisvideo.GetHLSStreamingSessionURL";
    char base[VG_KVS_ENDPOINT_MAX];
    json_t *resp = NULL;
    vg_status st = check_hls(api, o);
    if (st != VG_OK)
        return st;
    const char *env = getenv(ARCHIVED_MEDIA_ENV);
    if (env && *env)
        endpoint = env;
    if (!endpoint || (strncmp(endpoint, "https://", 8) && strncmp(endpoint, "http://", 7)))
        return vg_errf(VG_ERR_INVALID, "%s: data endpoint \"%.64s\" is not an http(s) URL", api,
                       endpoint ? endpoint : "");
    size_t len = strlen(endpoint);
    while (len > 0 && endpoint[len - 1] == '/')
        len--;
    if (len >= sizeof(base))
        return vg_errf(VG_ERR_INVALID, "%s: data endpoint longer than %zu", api,
                       sizeof(base) - 1);
    memcpy(base, endpoint, len);
    base[len] = '\0';
    if ((st = call(a, api, base, "/getHLSStreamingSessionURL", hls_request(o), &resp)) == VG_OK)
        st = take_str(api, resp, "HLSStreamingSessionURL", url, cap);
    json_decref(resp);
    return st;
}

/* ---- the data endpoint cache -------------------------------------------- */

struct slot {
    char key[CACHE_KEY_MAX];    /* "<control-plane endpoint>\n<region>\n<stream>" */
    char endpoint[VG_KVS_ENDPOINT_MAX];
    int64_t at_us;              /* monotonic; 0 = empty */
};

static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;
static struct slot cache[CACHE_SLOTS];

/* 0 when the key does not fit (then nothing is cached). */
static int cache_key(const struct vg_aws *a, const char *stream, char key[CACHE_KEY_MAX])
{
    char base[1024];
    vg_aws_endpoint(a, "KINESIS_VIDEO", "kinesisvideo", NULL, base, sizeof(base));
    int n = snprintf(key, CACHE_KEY_MAX, "%s\n%s\n%s", base, vg_aws_region(a), stream);
    return n > 0 && n < CACHE_KEY_MAX;
}

static int cache_get(const char *key, char endpoint[VG_KVS_ENDPOINT_MAX])
{
    int64_t now = vg_mono_us(), ttl = (int64_t)VG_KVS_ENDPOINT_TTL_S * 1000000;
    int hit = 0;
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS && !hit; i++)
        if (cache[i].at_us && now - cache[i].at_us < ttl && !strcmp(cache[i].key, key)) {
            memcpy(endpoint, cache[i].endpoint, VG_KVS_ENDPOINT_MAX);
            hit = 1;
        }
    pthread_mutex_unlock(&cache_lock);
    return hit;
}

/* Into the slot with this key, else the oldest (empty slots are oldest). */
static void cache_put(const char *key, const char *endpoint)
{
    pthread_mutex_lock(&cache_lock);
    struct slot *s = &cache[0];
    for (int i = 0; i < CACHE_SLOTS; i++) {
        if (cache[i].at_us && !strcmp(cache[i].key, key)) {
            s = &cache[i];
            break;
        }
        if (cache[i].at_us < s->at_us)
            s = &cache[i];
    }
    snprintf(s->key, sizeof(s->key), "%s", key);
    snprintf(s->endpoint, sizeof(s->endpoint), "%s", endpoint);
    s->at_us = vg_mono_us();
    pthread_mutex_unlock(&cache_lock);
}

static void cache_drop(const char *key)
{
    pthread_mutex_lock(&cache_lock);
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (cache[i].at_us && !strcmp(cache[i].key, key))
            cache[i].at_us = 0;
    pthread_mutex_unlock(&cache_lock);
}

vg_status vg_kvs_clip_url_opts(struct vg_aws *a, const struct vg_kvs_hls_opts *o, char *url,
                               size_t cap)
{
    char key[CACHE_KEY_MAX], endpoint[VG_KVS_ENDPOINT_MAX];
    vg_status st = check_hls("kinesisvideo.GetHLSStreamingSessionURL", o);
    if (st != VG_OK)
        return st;
    int cacheable = cache_key(a, o->stream_name, key);
    if (!cacheable || !cache_get(key, endpoint)) {
        st = vg_kvs_get_data_endpoint(a, o->stream_name, "GET_HLS_STREAMING_SESSION_URL",
                                      endpoint, sizeof(endpoint));
        if (st != VG_OK)
            return st;
        if (cacheable)
            cache_put(key, endpoint);
    }
    st = vg_kvs_get_hls_url(a, endpoint, o, url, cap);
    if (st != VG_OK && cacheable)
        cache_drop(key);
    return st;
}

vg_status vg_kvs_clip_url(struct vg_aws *a, const char *stream, int64_t start_us,
                          int64_t end_us, int expires_s, enum vg_kvs_playback mode,
                          char *url, size_t cap)
{
    struct vg_kvs_hls_opts o = {
        .stream_name = stream, .mode = mode, .selector = VG_KVS_SERVER_TIMESTAMP,
        .start_us = start_us, .end_us = end_us, .expires_s = expires_s,
    };
    return vg_kvs_clip_url_opts(a, &o, url, cap);
}
