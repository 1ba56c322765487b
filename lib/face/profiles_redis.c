/* Profiles in Redis: one hash per person, <prefix>:faces:profile:<person>. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "face/profiles.h"
#include "redis.h"

struct rp {
    struct vg_redis *r;
    char prefix[32];
};

static void key(const struct rp *s, const char *person, char *out, size_t cap)
{
    snprintf(out, cap, "%s:faces:profile:%s", s->prefix, person);
}

static vg_status rp_init(void **state, const struct vg_face_env *env)
{
    if (!env->redis)
        return vg_errf(VG_ERR_CONFIG, "the redis profile store needs redis_url");
    struct rp *s = calloc(1, sizeof(*s));
    if (!s)
        return VG_ERR_NOMEM;
    s->r = env->redis;
    snprintf(s->prefix, sizeof(s->prefix), "%s", env->cfg->prefix);
    *state = s;
    return VG_OK;
}

static vg_status rp_get(void *state, const char *person, const char *face_id,
                        struct vg_profile *out)
{
    struct rp *s = state;
    char k[256];
    redisReply *r = NULL;
    (void)face_id;
    memset(out, 0, sizeof(*out));
    key(s, person, k, sizeof(k));
    vg_status st = vg_redis_cmd(s->r, &r, "HGETALL %s", k);
    if (st != VG_OK)
        return st;
    for (size_t i = 0; r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2)
        if (r->element[i]->type == REDIS_REPLY_STRING &&
            r->element[i + 1]->type == REDIS_REPLY_STRING &&
            vg_profile_set(out, r->element[i]->str, r->element[i + 1]->str) != VG_OK)
            break;      /* the first fields stand; the store is ours, so rare */
    int empty = r->type != REDIS_REPLY_ARRAY || r->elements == 0;
    freeReplyObject(r);
    return empty ? vg_errf(VG_ERR_NOT_FOUND, "no profile for %s", person) : VG_OK;
}

static vg_status rp_remove(void *state, const char *person, const char *const *face_ids,
                           size_t n)
{
    struct rp *s = state;
    char k[256];
    redisReply *r = NULL;
    (void)face_ids;
    (void)n;
    key(s, person, k, sizeof(k));
    vg_status st = vg_redis_cmd(s->r, &r, "DEL %s", k);
    freeReplyObject(r);
    return st;
}

/* Replace: the old hash goes, the new fields come, in one transaction. */
static vg_status rp_put(void *state, const char *person, const char *const *face_ids, size_t n,
                        const struct vg_profile *p)
{
    struct rp *s = state;
    char k[256];
    const char *argv[2 + 2 * VG_PROFILE_MAX_FIELDS];
    redisReply *r = NULL;
    vg_status st = rp_remove(state, person, face_ids, n);
    if (st != VG_OK || p->n == 0)
        return st;
    key(s, person, k, sizeof(k));
    size_t argc = 0;
    argv[argc++] = "HSET";
    argv[argc++] = k;
    for (size_t i = 0; i < p->n; i++) {
        argv[argc++] = p->key[i];
        argv[argc++] = p->value[i];
    }
    st = vg_redis_cmdv(s->r, &r, (int)argc, argv);
    freeReplyObject(r);
    return st;
}

static void rp_cleanup(void *state) { free(state); }

const struct vg_profile_store_ops vg_profiles_redis = {
    .name = "redis",
    .init = rp_init,
    .get = rp_get,
    .put = rp_put,
    .remove = rp_remove,
    .cleanup = rp_cleanup,
};
