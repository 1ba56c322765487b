/* The "dynamodb" metadata store (seed 004's table of analysed frames, with
 * alerts and incidents beside them): table vigil-metadata, partition key
 * camera (S), sort key sk (S) = "<ts_us, 16 digits>#<kind>#<id>", so one
 * Query of camera + sk BETWEEN gives a time range, newest first; attributes
 * kind, ts (N, µs), id, body (the JSON text) and expires_at (N, epoch
 * seconds: the table's TTL attribute, now + ttl_h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_config.h"
#include "aws/dynamodb.h"
#include "store/store_internal.h"
#include "timeutil.h"

struct ddb_settings {
    char table[256];
    int ttl_h;
    int create_table;
};

static const struct vg_opt ddb_opts[] = {
    VG_OPT_STR_("table", struct ddb_settings, table, "vigil-metadata", "VIGIL_METADATA_TABLE", 0,
                "the table (pk camera S, sk sk S, TTL on expires_at; deploy/aws)"),
    VG_OPT_INT_("ttl_h", struct ddb_settings, ttl_h, 1, 24 * 3660, "168",
                "expires_at = now + this; DynamoDB's TTL deletes the item after it (a week)"),
    VG_OPT_BOOL_("create_table", struct ddb_settings, create_table, "false",
                 "create the table at start when missing (tests, emulators)"),
    VG_OPT_END,
};

struct ddb_store {
    struct ddb_settings o;
    struct vg_aws *aws;
};

static vg_status dd_open(void **state, void *settings, const struct vg_config *cfg,
                         struct vg_redis *redis, const char *where)
{
    const struct ddb_settings *o = settings;
    (void)redis;
    if (!o->table[0])
        return vg_errf(VG_ERR_CONFIG, "%s: dynamodb needs table", where);
    struct ddb_store *s = calloc(1, sizeof(*s));
    if (!s)
        return VG_ERR_NOMEM;
    s->o = *o;
    vg_status st = vg_aws_from_config(&s->aws, cfg);
    if (st == VG_OK && o->create_table)
        st = vg_ddb_create_table(s->aws, o->table, "camera", "S", "sk", "S", 30000);
    if (st != VG_OK) {
        vg_aws_destroy(s->aws);
        free(s);
        return st;
    }
    *state = s;
    return VG_OK;
}

static void dd_close(void *state)
{
    struct ddb_store *s = state;
    if (!s)
        return;
    vg_aws_destroy(s->aws);
    free(s);
}

static vg_status dd_put(void *state, enum vg_meta_kind kind, const char *camera, int64_t ts_us,
                        const char *id, const char *json)
{
    struct ddb_store *s = state;
    char sk[128];
    const char *name = vg_meta_kind_name(kind);
    snprintf(sk, sizeof(sk), "%016lld#%s#%s", (long long)ts_us, name, id);
    json_t *item = json_object();
    vg_status st = item ? VG_OK : VG_ERR_NOMEM;
    if (st == VG_OK)
        st = vg_ddb_set_s(item, "camera", camera);
    if (st == VG_OK)
        st = vg_ddb_set_s(item, "sk", sk);
    if (st == VG_OK)
        st = vg_ddb_set_s(item, "kind", name);
    if (st == VG_OK)
        st = vg_ddb_set_n(item, "ts", ts_us);
    if (st == VG_OK)
        st = vg_ddb_set_s(item, "id", id);
    if (st == VG_OK)
        st = vg_ddb_set_s(item, "body", json);
    if (st == VG_OK)
        st = vg_ddb_set_n(item, "expires_at", vg_now_us() / 1000000 + (int64_t)s->o.ttl_h * 3600);
    if (st == VG_OK)
        st = vg_ddb_put_item(s->aws, s->o.table, item);
    json_decref(item);
    if (st != VG_OK && st != VG_ERR_NOMEM) {
        char detail[512];
        snprintf(detail, sizeof(detail), "%s", vg_err_detail());
        return vg_errf(st, "metadata put %s %s/%s into %s: %s", name, camera, id, s->o.table,
                       detail);
    }
    return st;
}

/* One item into out when its kind is asked for. */
static vg_status take(const json_t *item, unsigned kinds, int64_t now_s,
                      struct vg_meta_result *out, size_t *cap)
{
    int64_t ts = 0, expires = 0;
    const char *kname = vg_ddb_get_s(item, "kind"), *id = vg_ddb_get_s(item, "id");
    const char *body = vg_ddb_get_s(item, "body");
    enum vg_meta_kind kind = vg_meta_kind_parse(kname);
    if (!kind || !(kind & kinds) || !id || !body || vg_ddb_get_n(item, "ts", &ts) != VG_OK)
        return VG_OK;   /* not ours, or not asked for */
    /* TTL deletes within days of expiry, not at it: expired items are hidden. */
    if (vg_ddb_get_n(item, "expires_at", &expires) == VG_OK && expires < now_s)
        return VG_OK;
    return vg_meta_result_add(out, cap, kind, ts, id, body, strlen(body));
}

/* Pages at most per query: Limit counts the items DynamoDB reads before
 * kinds are filtered here, so a sparse kind takes several pages; bounded. */
#define MAX_PAGES 20

static vg_status dd_query(void *state, const struct vg_meta_range *q, struct vg_meta_result *out)
{
    struct ddb_store *s = state;
    char lo[40], hi[40];
    size_t cap = 0;
    int64_t now_s = vg_now_us() / 1000000;
    /* "#" sorts before every digit and letter, "~" after them: the bounds
     * take in every kind and id of the first and last microsecond. */
    snprintf(lo, sizeof(lo), "%016lld#", (long long)q->from_us);
    snprintf(hi, sizeof(hi), "%016lld#~", (long long)q->to_us);
    json_t *pk = vg_ddb_s(q->camera), *since = vg_ddb_s(lo), *until = vg_ddb_s(hi);
    json_t *start = NULL;
    vg_status st = pk && since && until ? VG_OK : VG_ERR_NOMEM;
    /* All kinds: the limit is exact; a subset: read more per page. */
    int page = q->kinds == 15u ? q->limit : (q->limit < 100 ? 100 : q->limit);
    for (int p = 0; st == VG_OK && p < MAX_PAGES && out->n < (size_t)q->limit; p++) {
        json_t *items = NULL, *last = NULL;
        struct vg_ddb_query dq = {.table = s->o.table, .pk_name = "camera", .pk = pk,
                                  .sk_name = "sk", .since = since, .until = until,
                                  .limit = page, .start_key = start};
        st = vg_ddb_query(s->aws, &dq, &items, &last);
        json_decref(start);
        start = last;
        size_t i;
        json_t *item;
        json_array_foreach(items, i, item) {
            if (st != VG_OK || out->n >= (size_t)q->limit)
                break;
            st = take(item, q->kinds, now_s, out, &cap);
        }
        json_decref(items);
        if (!start)
            break;
    }
    json_decref(start);
    json_decref(pk);
    json_decref(since);
    json_decref(until);
    return st;
}

const struct vg_meta_ops vg_meta_dynamodb = {
    .name = "dynamodb",
    .opts = ddb_opts,
    .settings_size = sizeof(struct ddb_settings),
    .open = dd_open,
    .close = dd_close,
    .put = dd_put,
    .query = dd_query,
};
