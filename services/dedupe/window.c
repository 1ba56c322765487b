#include "window.h"

#include <string.h>

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
