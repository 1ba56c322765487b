/* The "redis" metadata store: one sorted set per camera,
 * <prefix>:meta:<camera>, score = ts_us (exact in a double until the year
 * 2255), member "<kind>|<id>|<json>". Each put adds the record and applies
 * retention in one round trip (a Lua script, atomic): records older than
 * ttl_h go, then the oldest beyond max_records, and the key's EXPIRE is
 * refreshed so a camera that goes quiet leaves nothing behind. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "redis.h"
#include "store/store_internal.h"
#include "timeutil.h"

struct redis_settings {
    char url[VG_URL_MAX];
    int ttl_h;
    int max_records;
};

static const struct vg_opt redis_opts[] = {
    VG_OPT_STR_("url", struct redis_settings, url, "", NULL, 1,
                "redis://...; \"\": the config's redis_url"),
    VG_OPT_INT_("ttl_h", struct redis_settings, ttl_h, 1, 24 * 3660, "168",
                "records older than this are dropped (a week)"),
    VG_OPT_INT_("max_records", struct redis_settings, max_records, 10, 10000000, "10000",
                "per camera: the oldest beyond this are dropped"),
    VG_OPT_END,
};

struct redis_store {
    struct vg_redis *r;
    int own;                    /* r was created here */
    char prefix[32];
    int64_t ttl_s;
    int max_records;
};

/* KEYS[1] the set; ARGV: score, member, cutoff score, max records, ttl s. */
/* A record with the same kind, id and time replaces the one before (an
 * incident's state is put again as it grows): members at that score with
 * the same "<kind>|<id>|" go first. */
static const char put_script[] =
    "for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], ARGV[1], ARGV[1])) do\n"
    "  if string.sub(m, 1, #ARGV[6]) == ARGV[6] then redis.call('ZREM', KEYS[1], m) end\n"
    "end\n"
    "redis.call('ZADD', KEYS[1], ARGV[1], ARGV[2])\n"
    "redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. ARGV[3])\n"
    "local over = redis.call('ZCARD', KEYS[1]) - tonumber(ARGV[4])\n"
    "if over > 0 then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, over - 1) end\n"
    "redis.call('EXPIRE', KEYS[1], ARGV[5])\n"
    "return over > 0 and over or 0\n";

static vg_status rs_open(void **state, void *settings, const struct vg_config *cfg,
                         struct vg_redis *redis, const char *where)
{
    const struct redis_settings *o = settings;
    struct redis_store *s = calloc(1, sizeof(*s));
    if (!s)
        return VG_ERR_NOMEM;
    snprintf(s->prefix, sizeof(s->prefix), "%s", cfg->prefix);
    s->ttl_s = (int64_t)o->ttl_h * 3600;
    s->max_records = o->max_records;
    if (redis && !o->url[0]) {
        s->r = redis;
    } else {
        const char *url = o->url[0] ? o->url : cfg->redis_url;
        if (!url[0]) {
            free(s);
            return vg_errf(VG_ERR_CONFIG, "%s: redis needs url (or redis_url)", where);
        }
        vg_status st = vg_redis_create(&s->r, url, 2000);
        if (st != VG_OK) {
            free(s);
            return st;
        }
        s->own = 1;
        /* A server down at start is not fatal: commands reconnect. */
        if (vg_redis_connect(s->r) != VG_OK)
            VG_WARN("metadata.unavailable", NULL, "redis metadata store: %s (retrying)",
                    vg_err_detail());
    }
    *state = s;
    return VG_OK;
}

static void rs_close(void *state)
{
    struct redis_store *s = state;
    if (!s)
        return;
    if (s->own)
        vg_redis_destroy(s->r);
    free(s);
}

static vg_status rs_put(void *state, enum vg_meta_kind kind, const char *camera, int64_t ts_us,
                        const char *id, const char *json)
{
    struct redis_store *s = state;
    char key[256], score[32], cutoff[32], max[16], ttl[24], same[96];
    const char *name = vg_meta_kind_name(kind);
    size_t mlen = strlen(name) + strlen(id) + strlen(json) + 3;
    char *member = malloc(mlen);
    redisReply *reply = NULL;
    if (!member)
        return VG_ERR_NOMEM;
    snprintf(member, mlen, "%s|%s|%s", name, id, json);
    snprintf(key, sizeof(key), "%s:meta:%s", s->prefix, camera);
    snprintf(score, sizeof(score), "%lld", (long long)ts_us);
    snprintf(cutoff, sizeof(cutoff), "%lld", (long long)(vg_now_us() - s->ttl_s * 1000000));
    snprintf(max, sizeof(max), "%d", s->max_records);
    snprintf(ttl, sizeof(ttl), "%lld", (long long)s->ttl_s);
    snprintf(same, sizeof(same), "%s|%s|", name, id);
    const char *argv[] = {"EVAL", put_script, "1", key, score, member, cutoff, max, ttl, same};
    vg_status st = vg_redis_cmdv(s->r, &reply, 10, argv);
    free(member);
    freeReplyObject(reply);
    if (st != VG_OK) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s", vg_err_detail());
        return vg_errf(st, "metadata put %s %s/%s: %s", name, camera, id, detail);
    }
    return VG_OK;
}

/* "<kind>|<id>|<json>" into its parts; 0 when malformed. */
static int parse_member(const char *m, size_t len, enum vg_meta_kind *kind, char *id,
                        size_t idcap, const char **json, size_t *jlen)
{
    const char *a = memchr(m, '|', len);
    const char *b = a ? memchr(a + 1, '|', len - (size_t)(a + 1 - m)) : NULL;
    char name[16];
    if (!a || !b || a - m >= (long)sizeof(name) || (size_t)(b - a - 1) >= idcap)
        return 0;
    snprintf(name, sizeof(name), "%.*s", (int)(a - m), m);
    snprintf(id, idcap, "%.*s", (int)(b - a - 1), a + 1);
    *kind = vg_meta_kind_parse(name);
    *json = b + 1;
    *jlen = len - (size_t)(b + 1 - m);
    return *kind != 0;
}

static int seen_before(const struct vg_meta_result *out, enum vg_meta_kind kind, const char *id)
{
    for (size_t i = 0; i < out->n; i++)
        if (out->r[i].kind == kind && !strcmp(out->r[i].id, id))
            return 1;
    return 0;
}

/* Pages read at most per query: a mask that matches little in a busy set
 * gives up after this many pages rather than reading the whole week. */
#define MAX_PAGES 20

static vg_status rs_query(void *state, const struct vg_meta_range *q, struct vg_meta_result *out)
{
    struct redis_store *s = state;
    char key[256], from[32], to[32], offset[24], count[16];
    size_t cap = 0;
    int page = q->limit < 100 ? 100 : q->limit;
    snprintf(key, sizeof(key), "%s:meta:%s", s->prefix, q->camera);
    snprintf(from, sizeof(from), "%lld", (long long)q->from_us);
    snprintf(to, sizeof(to), "%lld", (long long)q->to_us);
    snprintf(count, sizeof(count), "%d", page);
    for (int p = 0; p < MAX_PAGES && out->n < (size_t)q->limit; p++) {
        redisReply *r = NULL;
        snprintf(offset, sizeof(offset), "%lld", (long long)p * page);
        const char *argv[] = {"ZREVRANGEBYSCORE", key, to, from, "WITHSCORES", "LIMIT", offset,
                              count};
        vg_status st = vg_redis_cmdv(s->r, &r, 8, argv);
        if (st != VG_OK)
            return st;
        size_t got = r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
        for (size_t i = 0; st == VG_OK && i < got && out->n < (size_t)q->limit; i++) {
            const redisReply *mem = r->element[2 * i], *sc = r->element[2 * i + 1];
            enum vg_meta_kind kind;
            char id[VG_META_ID_MAX];
            const char *json;
            size_t jlen;
            if (mem->type != REDIS_REPLY_STRING || sc->type != REDIS_REPLY_STRING ||
                !parse_member(mem->str, mem->len, &kind, id, sizeof(id), &json, &jlen) ||
                !(kind & q->kinds) || seen_before(out, kind, id))
                continue;   /* a redelivered record was stored twice: the newest stands */
            st = vg_meta_result_add(out, &cap, kind, strtoll(sc->str, NULL, 10), id, json, jlen);
        }
        freeReplyObject(r);
        if (st != VG_OK)
            return st;
        if (got < (size_t)page)
            break;
    }
    return VG_OK;
}

const struct vg_meta_ops vg_meta_redis = {
    .name = "redis",
    .opts = redis_opts,
    .settings_size = sizeof(struct redis_settings),
    .open = rs_open,
    .close = rs_close,
    .put = rs_put,
    .query = rs_query,
};
