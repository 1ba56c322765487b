#include "arm.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "timeutil.h"

static void arm_key(char *out, size_t cap, const char *prefix)
{
    snprintf(out, cap, "%s:arm", prefix);
}

void vg_arm_subject(char *out, size_t cap, const char *prefix)
{
    snprintf(out, cap, "%s.control.arm", prefix);
}

static void copy_field(const redisReply *v, char *out, size_t cap)
{
    if (v && v->type == REDIS_REPLY_STRING)
        snprintf(out, cap, "%.*s", (int)v->len, v->str);
}

vg_status vg_arm_get(struct vg_redis *r, const char *prefix, struct vg_arm_state *out)
{
    char key[96];
    redisReply *rep = NULL;
    memset(out, 0, sizeof(*out));
    arm_key(key, sizeof(key), prefix);
    vg_status st = vg_redis_cmd(r, &rep, "HMGET %s mode previous set_by set_ts_us", key);
    if (st != VG_OK)
        return st;
    if (rep->type != REDIS_REPLY_ARRAY || rep->elements != 4 ||
        rep->element[0]->type != REDIS_REPLY_STRING) {
        freeReplyObject(rep);
        return vg_errf(VG_ERR_NOT_FOUND, "no arm mode set yet (%s)", key);
    }
    copy_field(rep->element[0], out->mode, sizeof(out->mode));
    copy_field(rep->element[1], out->previous, sizeof(out->previous));
    copy_field(rep->element[2], out->set_by, sizeof(out->set_by));
    if (rep->element[3]->type == REDIS_REPLY_STRING)
        out->set_ts_us = strtoll(rep->element[3]->str, NULL, 10);
    freeReplyObject(rep);
    return VG_OK;
}

/* Set and read back the previous mode in one step, so two people arming at
 * once each see what they replaced. */
static const char SET_LUA[] =
    "local prev = redis.call('HGET', KEYS[1], 'mode') or ''\n"
    "redis.call('HSET', KEYS[1], 'mode', ARGV[1], 'previous', prev, 'set_by', ARGV[2],"
    " 'set_ts_us', ARGV[3])\n"
    "return prev\n";

vg_status vg_arm_set(struct vg_redis *r, struct vg_bus *bus, const char *prefix,
                     const char *mode, const char *set_by, struct vg_arm_state *out)
{
    char key[96], ts[32], subject[96];
    redisReply *rep = NULL;
    memset(out, 0, sizeof(*out));
    arm_key(key, sizeof(key), prefix);
    out->set_ts_us = vg_now_us();
    snprintf(ts, sizeof(ts), "%lld", (long long)out->set_ts_us);
    snprintf(out->mode, sizeof(out->mode), "%s", mode);
    snprintf(out->set_by, sizeof(out->set_by), "%s", set_by);
    const char *argv[] = {"EVAL", SET_LUA, "1", key, mode, set_by, ts};
    vg_status st = vg_redis_cmdv(r, &rep, 7, argv);
    if (st != VG_OK)
        return st;
    copy_field(rep, out->previous, sizeof(out->previous));
    freeReplyObject(rep);
    if (!bus)
        return VG_OK;
    Vigil__V1__ArmState m = VIGIL__V1__ARM_STATE__INIT;
    m.mode = out->mode;
    m.previous = out->previous;
    m.set_by = out->set_by;
    m.set_ts_us = out->set_ts_us;
    vg_arm_subject(subject, sizeof(subject), prefix);
    return vg_bus_publish(bus, subject, &m.base);
}
