/* Whether a sink should get an alert at all, before it is sent: the
 * routing rules in the current arm mode, the sink's incidents policy, and
 * its rate limit. Every "no" carries a reason and a sentence, which go into
 * the Delivery record so "why did I not get this?" has an answer. */
#include <stdio.h>
#include <string.h>

#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define ESCALATION_TTL_S (2 * 86400)

static int first_of_incident(const Vigil__V1__Alert *a)
{
    return !a->incident_id || !*a->incident_id || !strcmp(a->incident_id, a->alert_id);
}

int ntf_gate_before_claim(struct ntf_worker *w, const Vigil__V1__Alert *a, struct ntf_skip *s)
{
    struct vg_route_verdict v;
    memset(s, 0, sizeof(*s));
    vg_route(&w->n->routing, w->index, w->cfg->name, ntf_arm_mode(w->n), a, vg_now_us(), &v);
    if (!v.send) {
        s->reason = v.reason;
        snprintf(s->note, sizeof(s->note), "%s", v.note);
        return 1;
    }
    if (w->cfg->incidents == VG_SINK_INCIDENTS_ALL || first_of_incident(a))
        return 0;
    if (w->cfg->incidents == VG_SINK_INCIDENTS_ESCALATE && a->escalation && *a->escalation)
        return 0;   /* decided after the claim: at most one per incident */
    s->reason = "incident";
    snprintf(s->note, sizeof(s->note), "part of incident %s, and sink %s takes only %s",
             a->incident_id, w->cfg->name,
             w->cfg->incidents == VG_SINK_INCIDENTS_FIRST
                 ? "its first alert (incidents: first)"
                 : "its first alert and one escalation (incidents: escalate)");
    return 1;
}

/* The one escalation an "escalate" sink gets of an incident: the first
 * alert id to take the mark keeps it (a redelivery of that alert passes).
 * Returns 1 when another alert holds it. Redis down: 0, rather one update
 * too many than none. */
static const char ESCALATE_LUA[] =
    "local v = redis.call('GET', KEYS[1])\n"
    "if v and v ~= ARGV[1] then return 1 end\n"
    "if ARGV[3] == '1' then redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2]) end\n"
    "return 0\n";

static void escalation_key(const struct ntf_worker *w, const Vigil__V1__Alert *a, char *key,
                           size_t cap)
{
    snprintf(key, cap, "%s:ntf:%s:escalated:%s", w->n->cfg->prefix, w->cfg->name,
             a->incident_id);
}

static int escalated_already(struct ntf_worker *w, const Vigil__V1__Alert *a, struct ntf_skip *s)
{
    s->reason = "incident";
    snprintf(s->note, sizeof(s->note), "incident %s escalated to sink %s once already (%s now); "
             "one update per incident", a->incident_id, w->cfg->name, a->escalation);
    return 1;
}

static int escalation(struct ntf_worker *w, const Vigil__V1__Alert *a, int take)
{
    char key[256], ttl[16];
    redisReply *rep = NULL;
    escalation_key(w, a, key, sizeof(key));
    snprintf(ttl, sizeof(ttl), "%d", ESCALATION_TTL_S);
    const char *argv[] = {"EVAL", ESCALATE_LUA, "1", key, a->alert_id, ttl, take ? "1" : "0"};
    if (vg_redis_cmdv(w->redis, &rep, 7, argv) != VG_OK)
        return 0;
    int taken = rep->type == REDIS_REPLY_INTEGER && rep->integer == 1;
    freeReplyObject(rep);
    return taken;
}

/* A dead-lettered escalation gives the incident's one back: a later
 * escalation (or a replay of this one) may still reach the sink. */
static const char FORGET_LUA[] =
    "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end\n"
    "return 0\n";

void ntf_gate_forget(struct ntf_worker *w, const Vigil__V1__Alert *a)
{
    char key[256];
    redisReply *rep = NULL;
    if (w->cfg->incidents != VG_SINK_INCIDENTS_ESCALATE || first_of_incident(a))
        return;
    escalation_key(w, a, key, sizeof(key));
    const char *argv[] = {"EVAL", FORGET_LUA, "1", key, a->alert_id};
    if (vg_redis_cmdv(w->redis, &rep, 5, argv) == VG_OK)
        freeReplyObject(rep);
}

int ntf_gate_after_claim(struct ntf_worker *w, const Vigil__V1__Alert *a, struct ntf_skip *s)
{
    memset(s, 0, sizeof(*s));
    int escalating = w->cfg->incidents == VG_SINK_INCIDENTS_ESCALATE && !first_of_incident(a);
    /* Looked at first, taken only once the rate limit let the alert
     * through: a held-back escalation must not use up the incident's one. */
    if (escalating && escalation(w, a, 0)) {
        return escalated_already(w, a, s);
    }
    if (!ntf_rate_take(w, a, s->note, sizeof(s->note))) {
        s->reason = "rate_limit";
        return 1;
    }
    if (escalating && escalation(w, a, 1)) {
        return escalated_already(w, a, s);
    }
    return 0;
}
