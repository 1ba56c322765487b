#include "pending.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"

#define ID_MAX DD_PENDING_ID_MAX

static void names(char *key, size_t key_cap, char *set, size_t set_cap, const char *prefix,
                  const char *alert_id)
{
    if (key)
        snprintf(key, key_cap, "%s:dd:pending:%s", prefix, alert_id);
    if (set)
        snprintf(set, set_cap, "%s:dd:pending", prefix);
}

vg_status dd_stash_init(struct dd_stash *s, const char *prefix, const char *alert_id,
                        const ProtobufCMessage *alert, size_t max, int64_t ttl_ms)
{
    memset(s, 0, sizeof(*s));
    names(s->key, sizeof(s->key), s->set, sizeof(s->set), prefix, alert_id);
    snprintf(s->alert_id, sizeof(s->alert_id), "%s", alert_id);
    s->ttl_ms = ttl_ms > 0 ? ttl_ms : 1;
    return vg_pb_pack(alert, max, &s->data, &s->len);
}

void dd_stash_cleanup(struct dd_stash *s)
{
    free(s->data);
    s->data = NULL;
    s->len = 0;
}

vg_status dd_pending_replace(struct vg_redis *r, const struct dd_stash *s, int *replaced)
{
    redisReply *reply = NULL;
    vg_status st = vg_redis_cmd(r, &reply, "SET %s %b XX KEEPTTL", s->key, (const void *)s->data,
                                s->len);
    if (st != VG_OK)
        return st;
    /* OK when replaced; nil when there was no record. */
    *replaced = reply->type == REDIS_REPLY_STATUS && !strcmp(reply->str, "OK");
    freeReplyObject(reply);
    return VG_OK;
}

vg_status dd_pending_clear(struct vg_redis *r, const char *prefix, const char *alert_id)
{
    static const char script[] =
        "redis.call('DEL', KEYS[1]) return redis.call('ZREM', KEYS[2], ARGV[1])";
    char key[192], set[64];
    redisReply *reply = NULL;
    names(key, sizeof(key), set, sizeof(set), prefix, alert_id);
    vg_status st = vg_redis_cmd(r, &reply, "EVAL %s 2 %s %s %s", script, key, set, alert_id);
    if (st == VG_OK)
        freeReplyObject(reply);
    return st;
}

/* Due ids get a new due time (the lease) and come back with their bytes,
 * as a flat list id, bytes, id, bytes... */
static const char claim_script[] =
    "local t = redis.call('TIME') "
    "local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000) "
    "local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, "
    "tonumber(ARGV[3])) "
    "local out = {} "
    "for _, id in ipairs(ids) do "
    "  local v = false "
    "  if #id <= tonumber(ARGV[4]) then v = redis.call('GET', ARGV[1] .. id) end "
    "  if v then "
    "    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id) "
    "    out[#out + 1] = id "
    "    out[#out + 1] = v "
    "  else redis.call('ZREM', KEYS[1], id) end "
    "end "
    "return out";

static vg_status take_items(const redisReply *reply, struct dd_pending_item *items, int max,
                            int *n)
{
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements % 2 ||
        reply->elements / 2 > (size_t)max)
        return vg_errf(VG_ERR_REDIS, "redis pending claim: unexpected reply");
    int got = 0;
    for (size_t i = 0; i < reply->elements; i += 2) {
        const redisReply *id = reply->element[i], *v = reply->element[i + 1];
        if (id->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING ||
            id->len > ID_MAX)
            continue;
        struct dd_pending_item *it = &items[got];
        memcpy(it->alert_id, id->str, id->len);
        it->alert_id[id->len] = '\0';
        it->data = malloc(v->len ? v->len : 1);
        if (!it->data) {
            dd_pending_items_free(items, got);
            return VG_ERR_NOMEM;
        }
        memcpy(it->data, v->str, v->len);
        it->len = v->len;
        got++;
    }
    *n = got;
    return VG_OK;
}

vg_status dd_pending_claim(struct vg_redis *r, const char *prefix, int max, int lease_ms,
                           struct dd_pending_item *items, int *n)
{
    char set[64], key_prefix[128];
    redisReply *reply = NULL;
    if (max > DD_PENDING_BATCH)
        max = DD_PENDING_BATCH;
    names(NULL, 0, set, sizeof(set), prefix, "");
    snprintf(key_prefix, sizeof(key_prefix), "%s:dd:pending:", prefix);
    vg_status st = vg_redis_cmd(r, &reply, "EVAL %s 1 %s %s %d %d %d", claim_script, set,
                                key_prefix, lease_ms, max, ID_MAX);
    if (st != VG_OK)
        return st;
    st = take_items(reply, items, max, n);
    freeReplyObject(reply);
    return st;
}

void dd_pending_items_free(struct dd_pending_item *items, int n)
{
    for (int i = 0; i < n; i++) {
        free(items[i].data);
        items[i].data = NULL;
    }
}

int64_t dd_pending_count(struct vg_redis *r, const char *prefix)
{
    char set[64];
    redisReply *reply = NULL;
    names(NULL, 0, set, sizeof(set), prefix, "");
    if (vg_redis_cmd(r, &reply, "ZCARD %s", set) != VG_OK)
        return -1;
    int64_t n = reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    freeReplyObject(reply);
    return n;
}
