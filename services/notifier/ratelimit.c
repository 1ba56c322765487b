/* Per-sink rate limits ("rate_limit: 10/h"), shared by every replica: a
 * sliding log in Redis (a sorted set of the alert ids sent, scored by
 * time). An alert over the limit is skipped and counted in a "held" record;
 * once the log has room again the worker sends one summary of what was
 * held back, which takes a slot like any alert. Both steps are one Lua call
 * each, so replicas neither overshoot the limit nor send two summaries.
 * Redis down: alerts go out (a limit is a courtesy, losing alerts is not). */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_json.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"
#include "tz.h"

#define HELD_TTL_MS (8LL * 86400 * 1000)
#define SUMMARY_CHECK_US (2 * 1000000LL)
#define SUMMARY_RETRY_US (30 * 1000000LL)

/* KEYS: log, held, held ids. ARGV: now_ms, period_ms, limit, alert_id,
 * camera, label, held_ttl_ms. Returns {1, 0} to send, {0, ms until a slot
 * frees} to hold back. A redelivered alert gets the answer it got before. */
static const char TAKE_LUA[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))\n"
    "if redis.call('ZSCORE', KEYS[1], ARGV[4]) then return {1, 0} end\n"
    "if redis.call('SISMEMBER', KEYS[3], ARGV[4]) == 0 and\n"
    "   redis.call('ZCARD', KEYS[1]) < tonumber(ARGV[3]) then\n"
    "  redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])\n"
    "  redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "  return {1, 0}\n"
    "end\n"
    "if redis.call('SADD', KEYS[3], ARGV[4]) == 1 then\n"
    "  redis.call('HINCRBY', KEYS[2], 'count', 1)\n"
    "  redis.call('HSETNX', KEYS[2], 'first_ms', ARGV[1])\n"
    "  redis.call('HSET', KEYS[2], 'last_ms', ARGV[1], 'camera', ARGV[5], 'label', ARGV[6])\n"
    "  redis.call('PEXPIRE', KEYS[2], ARGV[7])\n"
    "  redis.call('PEXPIRE', KEYS[3], ARGV[7])\n"
    "end\n"
    "local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')\n"
    "local wait = 0\n"
    "if oldest[2] then wait = tonumber(oldest[2]) + tonumber(ARGV[2]) - tonumber(ARGV[1]) end\n"
    "return {0, wait}\n";

/* KEYS: log, held, held ids. ARGV: now_ms, period_ms, limit, summary id.
 * Returns {count, first_ms, last_ms, camera, label} and clears the record
 * when something was held and the log has room; else nil. */
static const char SUMMARY_LUA[] =
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', tonumber(ARGV[1]) - tonumber(ARGV[2]))\n"
    "local n = tonumber(redis.call('HGET', KEYS[2], 'count') or '0')\n"
    "if n == 0 or redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then return nil end\n"
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[4])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[2])\n"
    "local h = redis.call('HMGET', KEYS[2], 'count', 'first_ms', 'last_ms', 'camera', 'label')\n"
    "redis.call('DEL', KEYS[2], KEYS[3])\n"
    "return h\n";

/* A summary that could not be sent puts its count back and gives back the
 * slot it took. KEYS: held, log. */
static const char RESTORE_LUA[] =
    "redis.call('ZREM', KEYS[2], ARGV[7])\n"
    "redis.call('HINCRBY', KEYS[1], 'count', ARGV[1])\n"
    "redis.call('HSETNX', KEYS[1], 'first_ms', ARGV[2])\n"
    "redis.call('HSETNX', KEYS[1], 'last_ms', ARGV[3])\n"
    "redis.call('HSETNX', KEYS[1], 'camera', ARGV[4])\n"
    "redis.call('HSETNX', KEYS[1], 'label', ARGV[5])\n"
    "redis.call('PEXPIRE', KEYS[1], ARGV[6])\n"
    "return 1\n";

struct keys {
    char log[160], held[160], ids[160];
};

static void make_keys(const struct ntf_worker *w, struct keys *k)
{
    const char *p = w->n->cfg->prefix, *s = w->cfg->name;
    snprintf(k->log, sizeof(k->log), "%s:ntf:%s:rate", p, s);
    snprintf(k->held, sizeof(k->held), "%s:ntf:%s:rate:held", p, s);
    snprintf(k->ids, sizeof(k->ids), "%s:ntf:%s:rate:held_ids", p, s);
}

static void period_text(int secs, char *out, size_t cap)
{
    if (secs % 86400 == 0)
        snprintf(out, cap, "%d d", secs / 86400);
    else if (secs % 3600 == 0)
        snprintf(out, cap, "%d h", secs / 3600);
    else if (secs % 60 == 0)
        snprintf(out, cap, "%d min", secs / 60);
    else
        snprintf(out, cap, "%d s", secs);
}

int ntf_rate_take(struct ntf_worker *w, const Vigil__V1__Alert *a, char *note, size_t cap)
{
    const struct vg_sink_cfg *c = w->cfg;
    struct keys k;
    char now[24], period[24], limit[16], ttl[24], per[24];
    redisReply *rep = NULL;
    if (c->rate_count <= 0)
        return 1;
    make_keys(w, &k);
    snprintf(now, sizeof(now), "%lld", (long long)(vg_now_us() / 1000));
    snprintf(period, sizeof(period), "%lld", (long long)c->rate_per_s * 1000);
    snprintf(limit, sizeof(limit), "%d", c->rate_count);
    snprintf(ttl, sizeof(ttl), "%lld", HELD_TTL_MS);
    const char *argv[] = {"EVAL", TAKE_LUA, "3", k.log, k.held, k.ids, now, period, limit,
                          a->alert_id, a->header->camera_id, a->label, ttl};
    if (vg_redis_cmdv(w->redis, &rep, 13, argv) != VG_OK) {
        vg_counter_inc(w->m.rate_unavailable);
        VG_WARN("rate_limit.unavailable", a->header->camera_id,
                "sink %s: %s; alert %s sent without its rate limit", c->name, vg_err_detail(),
                a->alert_id);
        return 1;
    }
    int send = 1;
    long long wait_ms = 0;
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 2) {
        send = rep->element[0]->integer != 0;
        wait_ms = rep->element[1]->integer;
    }
    freeReplyObject(rep);
    if (!send) {
        period_text(c->rate_per_s, per, sizeof(per));
        snprintf(note, cap, "rate limit %s of sink %s: %d sent in the last %s; a slot frees in "
                 "%lld s, then one summary tells of the alerts held back", c->rate_limit,
                 c->name, c->rate_count, per, wait_ms / 1000 + 1);
    }
    return send;
}

struct held {
    long long count, first_ms, last_ms;
    char camera[VG_ID_MAX], label[64];
};

static void str_of(const redisReply *r, char *out, size_t cap)
{
    out[0] = '\0';
    if (r->type == REDIS_REPLY_STRING)
        snprintf(out, cap, "%.*s", (int)r->len, r->str);
}

static long long num_of(const redisReply *r)
{
    return r->type == REDIS_REPLY_STRING ? strtoll(r->str, NULL, 10) : 0;
}

/* The summary's words, escaped for the sink's text. */
static vg_status summary_text(struct ntf_worker *w, const struct held *h, char **title,
                              char **text, char **html)
{
    const struct vg_sink_ops *ops = w->sink->ops;
    enum vg_tpl_escape esc = ops->text_escape ? ops->text_escape(w->cfg->settings)
                                              : VG_TPL_PLAIN;
    char from[32], to[32], line[512];
    vg_tz_format(h->first_ms * 1000, "%H:%M", from, sizeof(from));
    vg_tz_format(h->last_ms * 1000, "%H:%M %Z", to, sizeof(to));
    int n = snprintf(line, sizeof(line),
                     "The rate limit %s of %s held back %lld alert%s between %s and %s; the "
                     "last: %s at %s.", w->cfg->rate_limit, w->cfg->name, h->count,
                     h->count == 1 ? "" : "s", from, to, h->label, h->camera);
    if (n < 0)
        n = 0;
    if ((size_t)n >= sizeof(line))
        n = (int)sizeof(line) - 1;
    struct vg_tpl_buf t = {0}, x = {0}, m = {0};
    char head[96];
    snprintf(head, sizeof(head), "vigil: %lld alert%s held back", h->count,
             h->count == 1 ? "" : "s");
    vg_tpl_put(&t, head, strlen(head), VG_TPL_ONE_LINE);
    vg_tpl_put(&x, line, (size_t)n, esc);
    if (ops->default_html || w->cfg->html[0]) {
        vg_tpl_put(&m, "<p>", 3, VG_TPL_PLAIN);
        vg_tpl_put(&m, line, (size_t)n, VG_TPL_HTML);
        vg_tpl_put(&m, "</p>", 4, VG_TPL_PLAIN);
    }
    if (!m.p && !m.failed && !(m.p = calloc(1, 1)))    /* no html: "" */
        m.failed = 1;
    if (t.failed || x.failed || m.failed || !t.p || !x.p) {
        free(t.p);
        free(x.p);
        free(m.p);
        return vg_errf(VG_ERR_NOMEM, "summary");
    }
    *title = t.p;
    *text = x.p;
    *html = m.p;
    return VG_OK;
}

/* What machine sinks (file, webhook, ...) receive for a summary. */
static char *summary_json(const struct ntf_worker *w, const struct held *h, const char *id,
                          const char *title, const char *text, size_t *len)
{
    char from[NTF_TS_MAX], to[NTF_TS_MAX];
    ntf_format_ts(h->first_ms * 1000, from);
    ntf_format_ts(h->last_ms * 1000, to);
    json_t *o = json_pack("{s:s,s:s,s:s,s:s,s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "kind", "summary",
                          "alert_id", id, "sink", w->cfg->name, "rate_limit", w->cfg->rate_limit,
                          "held_back", (json_int_t)h->count, "first_ts", from, "last_ts", to,
                          "last_camera", h->camera, "last_label", h->label, "title", title,
                          "text", text);
    char *s = o ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    *len = s ? strlen(s) : 0;
    return s;
}

static void restore(struct ntf_worker *w, const struct keys *k, const struct held *h,
                    const char *slot)
{
    char n[24], f[24], l[24], ttl[24];
    redisReply *rep = NULL;
    snprintf(n, sizeof(n), "%lld", h->count);
    snprintf(f, sizeof(f), "%lld", h->first_ms);
    snprintf(l, sizeof(l), "%lld", h->last_ms);
    snprintf(ttl, sizeof(ttl), "%lld", HELD_TTL_MS);
    const char *argv[] = {"EVAL", RESTORE_LUA, "2", k->held, k->log, n, f, l, h->camera, h->label,
                          ttl, slot};
    if (vg_redis_cmdv(w->redis, &rep, 12, argv) == VG_OK)
        freeReplyObject(rep);
}

static void send_summary(struct ntf_worker *w, const struct keys *k, const struct held *h,
                         const char *slot)
{
    char id[VG_ID_MAX + 40];
    char *title = NULL, *text = NULL, *html = NULL, *json = NULL;
    size_t json_len = 0;
    struct vg_sink_result r;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    snprintf(id, sizeof(id), "summary-%s-%lld", w->cfg->name, h->first_ms);
    hdr.camera_id = (char *)h->camera;
    hdr.capture_ts_us = h->last_ms * 1000;
    a.header = &hdr;
    a.alert_id = id;
    a.key = "summary";
    a.label = "summary";
    if (summary_text(w, h, &title, &text, &html) != VG_OK ||
        !(json = summary_json(w, h, id, title, text, &json_len))) {
        vg_sink_fail(&r, VG_SINK_RETRY, "summary: out of memory");
    } else {
        struct vg_sink_alert v = {
            .alert = &a, .kind = VG_SINK_KIND_SUMMARY, .title = title, .text = text,
            .html = html, .json = json, .json_len = json_len, .snapshot_url = "",
            .clip_url = "", .count = (unsigned)h->count, .now_us = vg_now_us(), .delivery = 1,
        };
        vg_sink_deliver(w->sink, &v, &r);
    }
    if (r.verdict == VG_SINK_DELIVERED) {
        vg_counter_inc(w->m.rate_summaries);
        VG_INFO("rate_limit.summary", h->camera, "sink %s: summary of %lld held-back alert(s) sent",
                w->cfg->name, h->count);
    } else {
        restore(w, k, h, slot);
        /* A sink that is down is not asked again every tick. */
        w->rate_next_check_us = vg_mono_us() + SUMMARY_RETRY_US;
        VG_WARN("rate_limit.summary_failed", h->camera, "sink %s: %s; tried again in %lld s",
                w->cfg->name, r.error, SUMMARY_RETRY_US / 1000000);
    }
    free(title);
    free(text);
    free(html);
    free(json);
}

void ntf_rate_tick(struct ntf_worker *w)
{
    const struct vg_sink_cfg *c = w->cfg;
    struct keys k;
    struct held h;
    char now[24], period[24], limit[16], id[VG_ID_MAX + 40];
    redisReply *rep = NULL;
    int64_t mono = vg_mono_us();
    if (c->rate_count <= 0 || mono < w->rate_next_check_us)
        return;
    w->rate_next_check_us = mono + SUMMARY_CHECK_US;
    make_keys(w, &k);
    long long now_ms = (long long)(vg_now_us() / 1000);
    snprintf(now, sizeof(now), "%lld", now_ms);
    snprintf(period, sizeof(period), "%lld", (long long)c->rate_per_s * 1000);
    snprintf(limit, sizeof(limit), "%d", c->rate_count);
    snprintf(id, sizeof(id), "summary:%lld", now_ms);
    const char *argv[] = {"EVAL", SUMMARY_LUA, "3", k.log, k.held, k.ids, now, period, limit, id};
    if (vg_redis_cmdv(w->redis, &rep, 10, argv) != VG_OK)
        return;
    int have = rep->type == REDIS_REPLY_ARRAY && rep->elements == 5;
    if (have) {
        h.count = num_of(rep->element[0]);
        h.first_ms = num_of(rep->element[1]);
        h.last_ms = num_of(rep->element[2]);
        str_of(rep->element[3], h.camera, sizeof(h.camera));
        str_of(rep->element[4], h.label, sizeof(h.label));
    }
    freeReplyObject(rep);
    if (have && h.count > 0)
        send_summary(w, &k, &h, id);
}
