#include "window.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "bus.h"
#include "timeutil.h"

#define KEY_MAX 256

vg_status dd_window_open(struct vg_redis *r, const char *key, int window_ms,
                         const char *alert_id, int *opened)
{
    redisReply *reply = NULL;
    vg_status st = vg_redis_cmd(r, &reply, "SET %s %s NX PX %d", key, alert_id, window_ms);
    if (st != VG_OK)
        return st;
    /* OK when set; nil when the key already exists. */
    *opened = reply->type == REDIS_REPLY_STATUS && !strcmp(reply->str, "OK");
    freeReplyObject(reply);
    return VG_OK;
}

vg_status dd_window_open_ttl(struct vg_redis *r, const char *key, int window_ms,
                             const char *alert_id, int *opened, int64_t *ttl_ms)
{
    return dd_window_open_stash(r, key, window_ms, alert_id, NULL, opened, ttl_ms);
}

vg_status dd_window_open_stash(struct vg_redis *r, const char *key, int window_ms,
                               const char *alert_id, const struct dd_stash *stash,
                               int *opened, int64_t *ttl_ms)
{
    /* SET NX and, when the window was already open, its remaining time:
     * one round trip, so a suppressed sighting can be cached too. */
    static const char script[] =
        "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
        "return {1, tonumber(ARGV[2])} end "
        "return {0, redis.call('PTTL', KEYS[1])}";
    /* The same, and the alert's pending record with the window: a crash
     * after this call leaves the alert to the recovery sweep. */
    static const char stash_script[] = DD_PENDING_LUA
        "if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then "
        "stash(KEYS[2], KEYS[3], ARGV[1], ARGV[3], ARGV[4], ARGV[5]) "
        "return {1, tonumber(ARGV[2])} end "
        "return {0, redis.call('PTTL', KEYS[1])}";
    redisReply *reply = NULL;
    vg_status st;
    if (stash)
        st = vg_redis_cmd(r, &reply, "EVAL %s 3 %s %s %s %s %d %b %lld %d", stash_script, key,
                          stash->key, stash->set, alert_id, window_ms, (const void *)stash->data,
                          stash->len, (long long)stash->ttl_ms, DD_PENDING_GRACE_MS);
    else
        st = vg_redis_cmd(r, &reply, "EVAL %s 1 %s %s %d", script, key, alert_id, window_ms);
    if (st != VG_OK)
        return st;
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(reply);
        return vg_errf(VG_ERR_REDIS, "redis window %s: unexpected reply", key);
    }
    *opened = reply->element[0]->integer == 1;
    *ttl_ms = reply->element[1]->integer;
    freeReplyObject(reply);
    return VG_OK;
}

vg_status dd_window_abandon(struct vg_redis *r, const char *key, const char *alert_id)
{
    static const char script[] =
        "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
        "return 0";
    redisReply *reply = NULL;
    vg_status st = vg_redis_cmd(r, &reply, "EVAL %s 1 %s %s", script, key, alert_id);
    if (st == VG_OK)
        freeReplyObject(reply);
    return st;
}

void dd_window_fail_open_id(char out[33], const char *key, int64_t window_index)
{
    char in[KEY_MAX + 32];
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int n = 0;
    int len = snprintf(in, sizeof(in), "fail-open\n%s\n%" PRId64, key, window_index);
    if (len < 0 || (size_t)len >= sizeof(in))
        len = (int)sizeof(in) - 1;
    if (EVP_Digest(in, (size_t)len, md, &n, EVP_sha256(), NULL) != 1 || n < 16) {
        /* Practically impossible; FNV-1a keeps the id deterministic. */
        uint64_t h = 1469598103934665603ULL;
        for (int i = 0; i < len; i++)
            h = (h ^ (unsigned char)in[i]) * 1099511628211ULL;
        memcpy(md, &h, 8);
        h = h * 1099511628211ULL ^ (uint64_t)window_index;
        memcpy(md + 8, &h, 8);
    }
    for (int i = 0; i < 16; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* The table: open addressing, linear probing, no deletion in place (an
 * expired or released entry stays as a placeholder until the next purge),
 * slots = twice the key cap so probes stay short. */
struct entry {
    uint64_t hash;
    int64_t end_us;         /* monotonic; the window is open while now < end */
    int used;
    char key[KEY_MAX];
};

struct dd_windows {
    pthread_mutex_t lock;
    struct vg_redis *r;
    int64_t window_us;
    size_t max_keys, n_slots, n_used;
    struct entry *slots;
    struct entry *scratch;  /* max_keys entries, for purges */
    struct dd_windows_stats stats;
    struct dd_windows_stats taken;  /* stats at the last dd_windows_take_growth */
    int64_t counted_at;     /* stats.entries is recounted at most once a second */
};

static uint64_t hash_key(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static struct entry *probe(struct dd_windows *w, const char *key, uint64_t h)
{
    size_t mask = w->n_slots - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct entry *e = &w->slots[i];
        if (!e->used || (e->hash == h && !strcmp(e->key, key)))
            return e;
    }
}

/* Drop expired windows. Called with the lock held. */
static void purge(struct dd_windows *w, int64_t now)
{
    size_t n = 0;
    for (size_t i = 0; i < w->n_slots; i++)
        if (w->slots[i].used && w->slots[i].end_us > now && n < w->max_keys)
            w->scratch[n++] = w->slots[i];
    memset(w->slots, 0, w->n_slots * sizeof(*w->slots));
    w->n_used = n;
    for (size_t i = 0; i < n; i++)
        *probe(w, w->scratch[i].key, w->scratch[i].hash) = w->scratch[i];
}

/* Remember key open until end_us. Called with the lock held. */
static void remember(struct dd_windows *w, const char *key, int64_t end_us, int64_t now)
{
    uint64_t h = hash_key(key);
    struct entry *e = probe(w, key, h);
    if (!e->used) {
        if (w->n_used >= w->max_keys) {
            purge(w, now);
            e = probe(w, key, h);
        }
        if (w->n_used >= w->max_keys) {
            w->stats.table_full++;
            return;
        }
        e->used = 1;
        e->hash = h;
        snprintf(e->key, sizeof(e->key), "%s", key);
        w->n_used++;
    }
    e->end_us = end_us;
}

static int is_open(struct dd_windows *w, const char *key, int64_t now)
{
    struct entry *e = probe(w, key, hash_key(key));
    return e->used && e->end_us > now;
}

vg_status dd_windows_create(struct dd_windows **out, struct vg_redis *r, int window_ms,
                            int max_keys)
{
    if (window_ms <= 0 || max_keys <= 0)
        return vg_errf(VG_ERR_INVALID, "dedupe windows: window %d ms, %d keys", window_ms,
                       max_keys);
    struct dd_windows *w = calloc(1, sizeof(*w));
    if (!w)
        return VG_ERR_NOMEM;
    w->r = r;
    w->window_us = (int64_t)window_ms * 1000;
    w->max_keys = (size_t)max_keys;
    for (w->n_slots = 16; w->n_slots < 2 * w->max_keys; w->n_slots *= 2)
        ;
    w->slots = calloc(w->n_slots, sizeof(*w->slots));
    w->scratch = calloc(w->max_keys, sizeof(*w->scratch));
    if (!w->slots || !w->scratch) {
        dd_windows_destroy(w);
        return VG_ERR_NOMEM;
    }
    pthread_mutex_init(&w->lock, NULL);
    *out = w;
    return VG_OK;
}

void dd_windows_destroy(struct dd_windows *w)
{
    if (!w)
        return;
    if (w->slots && w->scratch)
        pthread_mutex_destroy(&w->lock);
    free(w->slots);
    free(w->scratch);
    free(w);
}

int dd_windows_known_open(struct dd_windows *w, const char *key)
{
    int64_t now = vg_mono_us();
    pthread_mutex_lock(&w->lock);
    int open = is_open(w, key, now);
    if (open)
        w->stats.cache_hits++;
    pthread_mutex_unlock(&w->lock);
    return open;
}

int dd_windows_is_open(struct dd_windows *w, const char *key)
{
    int64_t now = vg_mono_us();
    pthread_mutex_lock(&w->lock);
    int open = is_open(w, key, now);
    pthread_mutex_unlock(&w->lock);
    return open;
}

enum dd_verdict dd_windows_check(struct dd_windows *w, const char *key, int64_t ts_us,
                                 char alert_id[33])
{
    if (dd_windows_known_open(w, key))
        return DD_SUPPRESS;
    vg_new_id(alert_id);
    return dd_windows_open(w, key, ts_us, alert_id, NULL);
}

enum dd_verdict dd_windows_open(struct dd_windows *w, const char *key, int64_t ts_us,
                                char alert_id[33], const struct dd_stash *stash)
{
    int64_t now = vg_mono_us();
    int open;
    if (w->r) {
        int opened = 0;
        int64_t ttl_ms = 0;
        int64_t window_ms = w->window_us / 1000;
        pthread_mutex_lock(&w->lock);
        w->stats.redis_calls++;
        pthread_mutex_unlock(&w->lock);
        if (dd_window_open_stash(w->r, key, (int)window_ms, alert_id, stash, &opened,
                                 &ttl_ms) == VG_OK) {
            if (ttl_ms > window_ms)
                ttl_ms = window_ms;
            pthread_mutex_lock(&w->lock);
            if (ttl_ms > 0)
                remember(w, key, now + ttl_ms * 1000, now);
            pthread_mutex_unlock(&w->lock);
            return opened ? DD_ALERT : DD_SUPPRESS;
        }
    }

    /* Redis is unavailable: this replica's memory is the window, aligned so
     * replicas derive the same alert id for the same window. */
    if (ts_us <= 0)
        ts_us = vg_now_us();
    int64_t index = ts_us / w->window_us;
    int64_t left = (index + 1) * w->window_us - ts_us;
    pthread_mutex_lock(&w->lock);
    open = is_open(w, key, now);
    if (!open)
        remember(w, key, now + left, now);
    pthread_mutex_unlock(&w->lock);
    if (open)
        return DD_SUPPRESS;
    dd_window_fail_open_id(alert_id, key, index);
    return DD_ALERT_FAIL_OPEN;
}

void dd_windows_release(struct dd_windows *w, const char *key, const char *alert_id,
                        enum dd_verdict v)
{
    pthread_mutex_lock(&w->lock);
    struct entry *e = probe(w, key, hash_key(key));
    if (e->used)
        e->end_us = 0;
    pthread_mutex_unlock(&w->lock);
    if (v == DD_ALERT && w->r)
        dd_window_abandon(w->r, key, alert_id);
}

/* Called with the lock held. */
static void recount(struct dd_windows *w)
{
    int64_t now = vg_mono_us();
    if (now - w->counted_at >= 1000000 || w->counted_at == 0) {
        w->stats.entries = 0;
        for (size_t i = 0; i < w->n_slots; i++)
            w->stats.entries += w->slots[i].used && w->slots[i].end_us > now;
        w->counted_at = now;
    }
}

void dd_windows_get_stats(struct dd_windows *w, struct dd_windows_stats *out)
{
    pthread_mutex_lock(&w->lock);
    recount(w);
    *out = w->stats;
    pthread_mutex_unlock(&w->lock);
}

void dd_windows_take_growth(struct dd_windows *w, struct dd_windows_stats *out)
{
    pthread_mutex_lock(&w->lock);
    recount(w);
    out->redis_calls = w->stats.redis_calls - w->taken.redis_calls;
    out->cache_hits = w->stats.cache_hits - w->taken.cache_hits;
    out->table_full = w->stats.table_full - w->taken.table_full;
    out->entries = w->stats.entries;
    w->taken = w->stats;
    pthread_mutex_unlock(&w->lock);
}
