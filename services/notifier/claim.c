/* Idempotency without a race. Before an attempt a replica claims the alert
 * for its sink: a lease "<prefix>:ntf:<alert>:<sink>:lease" holding the
 * replica's token for twice the ack wait (a replica that stalls longer is
 * presumed dead; its redelivery then waits out the lease). After success
 * the done mark "<prefix>:ntf:<alert>:<sink>" is written and the lease
 * dropped in one script, so a redelivery (after a crash, an ack that was
 * lost, a second replica) is skipped. Not covered: the remote accepted and
 * the process died before the done mark was written; then the alert is sent
 * again with the same X-Vigil-Alert-Id, for the receiver to de-duplicate. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "ntf.h"

#define IDEM_TTL_DEFAULT_S 86400
#define KEY_MAX (VG_ID_MAX * 2 + 96)

/* -1: done; 0: claimed (or already ours); > 0: held by another, ms left. */
static const char claim_lua[] =
    "if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end "
    "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end "
    "if redis.call('GET', KEYS[2]) == ARGV[1] then "
    "  redis.call('PEXPIRE', KEYS[2], ARGV[2]) return 0 end "
    "local t = redis.call('PTTL', KEYS[2]) "
    "if t < 1 then return 1 end return t";

static const char done_lua[] =
    "redis.call('SET', KEYS[1], '1', 'EX', ARGV[2]) "
    "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end "
    "return 1";

static const char release_lua[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end "
    "return 0";

static void keys(const struct ntf_worker *w, const char *alert_id, char *done, char *lease)
{
    snprintf(done, KEY_MAX, "%s:ntf:%s:%s", w->n->cfg->prefix, alert_id, w->cfg->name);
    snprintf(lease, KEY_MAX, "%s:ntf:%s:%s:lease", w->n->cfg->prefix, alert_id, w->cfg->name);
}

static void unavailable(struct ntf_worker *w, const char *alert_id, const char *what)
{
    vg_counter_inc(w->m.idem_unavailable);
    VG_WARN("idempotency.unavailable", NULL, "alert %s sink %s: %s: %s", alert_id, w->cfg->name,
            what, vg_err_detail());
}

enum ntf_claim ntf_claim(struct ntf_worker *w, const char *alert_id, int64_t *held_ms)
{
    char done[KEY_MAX], lease[KEY_MAX];
    redisReply *r = NULL;
    *held_ms = 0;
    if (!w->redis)
        return NTF_UNKNOWN;
    keys(w, alert_id, done, lease);
    vg_status st = vg_redis_cmd(w->redis, &r, "EVAL %s 2 %s %s %s %lld", claim_lua, done,
                                lease, w->token, (long long)w->n->lease_ms);
    if (st != VG_OK || r->type != REDIS_REPLY_INTEGER) {
        freeReplyObject(r);
        unavailable(w, alert_id, "claim before delivery");
        return NTF_UNKNOWN;
    }
    long long v = r->integer;
    freeReplyObject(r);
    if (v < 0)
        return NTF_DONE;
    if (v == 0)
        return NTF_CLAIMED;
    *held_ms = v;
    return NTF_HELD;
}

vg_status ntf_claim_done(struct ntf_worker *w, const char *alert_id)
{
    char done[KEY_MAX], lease[KEY_MAX];
    redisReply *r = NULL;
    int ttl = w->n->cfg->notifier.idempotency_ttl_s > 0 ? w->n->cfg->notifier.idempotency_ttl_s
                                                        : IDEM_TTL_DEFAULT_S;
    if (!w->redis)
        return VG_ERR_UNAVAILABLE;
    keys(w, alert_id, done, lease);
    vg_status st = vg_redis_cmd(w->redis, &r, "EVAL %s 2 %s %s %s %d", done_lua, done, lease,
                                w->token, ttl);
    freeReplyObject(r);
    if (st != VG_OK)
        unavailable(w, alert_id, "recording the delivery");
    return st;
}

void ntf_claim_release(struct ntf_worker *w, const char *alert_id)
{
    char done[KEY_MAX], lease[KEY_MAX];
    redisReply *r = NULL;
    if (!w->redis)
        return;
    keys(w, alert_id, done, lease);
    if (vg_redis_cmd(w->redis, &r, "EVAL %s 1 %s %s", release_lua, lease, w->token) == VG_OK)
        freeReplyObject(r);
}
