/* The metadata routes: GET /api/frames (seed 004's frame fetcher,
 * vg_frames_fetch), GET /api/events (alerts and incidents) and
 * GET /api/cameras (what is configured). */
#include "con.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "clip/clip.h"
#include "log.h"
#include "store/meta_store.h"
#include "store/snapshot_store.h"
#include "timeutil.h"

#define MAX_HORIZON_HRS (24 * 366)
#define MS_MAX 32503680000000LL     /* year 3000 */

/* The query of a request: camera, from/to (ms) or horizon_hrs, limit.
 * Returns 0, or -1 after replying 400/404 into *ret. */
static int parse_query(struct con_req *q, struct vg_meta_query *mq, enum MHD_Result *ret)
{
    const char *cam = con_arg(q, "camera"), *from = con_arg(q, "from"), *to = con_arg(q, "to");
    const char *hz = con_arg(q, "horizon_hrs"), *lim = con_arg(q, "limit");
    int64_t v;
    memset(mq, 0, sizeof(*mq));
    if (!cam || !*cam) {
        *ret = con_error(q, 400, "camera is required (?camera=<id>)");
        return -1;
    }
    if (!vg_cfg_camera(q->con->cfg, cam)) {
        *ret = con_error(q, 404, "camera %.64s is not configured", cam);
        return -1;
    }
    mq->camera = cam;
    if (from) {
        if (con_parse_i64(from, 0, MS_MAX, &v)) {
            *ret = con_error(q, 400, "bad from \"%.40s\": ms since the epoch", from);
            return -1;
        }
        mq->from_us = v * 1000;
    }
    if (to) {
        if (con_parse_i64(to, 1, MS_MAX, &v)) {
            *ret = con_error(q, 400, "bad to \"%.40s\": ms since the epoch", to);
            return -1;
        }
        mq->to_us = v * 1000;
    }
    if (hz) {
        if (con_parse_i64(hz, 1, MAX_HORIZON_HRS, &v)) {
            *ret = con_error(q, 400, "bad horizon_hrs \"%.40s\": hours, 1..%d", hz,
                             MAX_HORIZON_HRS);
            return -1;
        }
        if (from) {
            *ret = con_error(q, 400, "give from or horizon_hrs, not both");
            return -1;
        }
        if (!mq->to_us)
            mq->to_us = vg_now_us();
        mq->from_us = mq->to_us - v * 3600 * 1000000;
    }
    if (mq->from_us && mq->to_us && mq->from_us > mq->to_us) {
        *ret = con_error(q, 400, "from is after to");
        return -1;
    }
    if (lim && con_parse_i64(lim, 1, VG_META_LIMIT_MAX, &v) == 0) {
        mq->limit = (int)v;
    } else if (lim) {
        *ret = con_error(q, 400, "bad limit \"%.40s\": 1..%d", lim, VG_META_LIMIT_MAX);
        return -1;
    }
    return 0;
}

/* "alert,incident" -> a mask; 0 for an unknown name. */
static unsigned parse_kinds(const char *s)
{
    unsigned mask = 0;
    char name[32];
    while (*s) {
        size_t n = strcspn(s, ",");
        if (n == 0 || n >= sizeof(name))
            return 0;
        memcpy(name, s, n);
        name[n] = '\0';
        enum vg_meta_kind k = vg_meta_kind_parse(name);
        if (!k)
            return 0;
        mask |= (unsigned)k;
        s += n;
        if (*s == ',')
            s++;
    }
    return mask;
}

static enum MHD_Result store_error(struct con_req *q, vg_status st, const char *detail)
{
    if (st == VG_ERR_INVALID)
        return con_error(q, 400, "%s", detail);
    VG_WARN("meta.query_failed", NULL, "%s: %s", vg_status_str(st), detail);
    return con_error(q, 503, "the metadata store did not answer (see the console's log, event "
                     "meta.query_failed)");
}

enum MHD_Result con_frames(struct con_req *q)
{
    struct console *con = q->con;
    struct vg_meta_query mq;
    enum MHD_Result ret = MHD_NO;
    char detail[512];
    if (parse_query(q, &mq, &ret))
        return ret;
    struct vg_meta_store *m = con_meta_acquire(con);
    if (!m) {
        snprintf(detail, sizeof(detail), "%s", vg_err_detail());
        return store_error(q, VG_ERR_UNAVAILABLE, detail);
    }
    char *json = NULL;
    /* snap_mu inside meta_mu, in this order only: the links are signed while
     * the frames are built. */
    pthread_mutex_lock(&con->snap_mu);
    vg_status st = vg_frames_fetch(m, con->snaps, &mq, &json);
    snprintf(detail, sizeof(detail), "%s", vg_err_detail());
    pthread_mutex_unlock(&con->snap_mu);
    con_meta_release(con);
    if (st != VG_OK)
        return store_error(q, st, detail);
    return con_json(q, 200, json);
}

enum MHD_Result con_events(struct con_req *q)
{
    struct console *con = q->con;
    struct vg_meta_query mq;
    enum MHD_Result ret = MHD_NO;
    char detail[512];
    if (parse_query(q, &mq, &ret))
        return ret;
    const char *ks = con_arg(q, "kinds");
    mq.kinds = VG_META_ALERT | VG_META_INCIDENT;
    if (ks && !(mq.kinds = parse_kinds(ks)))
        return con_error(q, 400, "bad kinds \"%.60s\": a comma list of frame, identity, alert, "
                         "incident", ks);
    struct vg_meta_store *m = con_meta_acquire(con);
    if (!m) {
        snprintf(detail, sizeof(detail), "%s", vg_err_detail());
        return store_error(q, VG_ERR_UNAVAILABLE, detail);
    }
    struct vg_meta_result res = {0};
    vg_status st = vg_meta_query(m, &mq, &res);
    snprintf(detail, sizeof(detail), "%s", vg_err_detail());
    con_meta_release(con);
    if (st != VG_OK)
        return store_error(q, st, detail);
    json_t *list = json_array();
    for (size_t i = 0; list && i < res.n; i++) {
        const struct vg_meta_record *r = &res.r[i];
        json_t *body = json_loads(r->json, JSON_DECODE_ANY, NULL);
        if (!body)
            body = json_string(r->json);    /* not JSON: kept as the text it is */
        json_array_append_new(list, json_pack("{s:s, s:s, s:I, s:o}", "kind",
                                              vg_meta_kind_name(r->kind), "id", r->id, "ts_us",
                                              (json_int_t)r->ts_us, "body", body));
    }
    vg_meta_result_free(&res);
    json_t *doc = json_pack("{s:s, s:o}", "camera", mq.camera, "events", list);
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return con_json(q, 200, text);
}

enum MHD_Result con_cameras(struct con_req *q)
{
    const struct vg_config *cfg = q->con->cfg;
    json_t *list = json_array();
    for (int i = 0; list && i < cfg->n_cameras; i++) {
        const struct vg_camera_cfg *c = &cfg->cameras[i];
        json_array_append_new(list, json_pack("{s:s, s:b, s:o}", "id", c->id, "record",
                                              vg_clip_camera_records(cfg, c), "kvs_stream",
                                              c->kvs_stream[0] ? json_string(c->kvs_stream)
                                                               : json_null()));
    }
    json_t *doc = json_pack("{s:o, s:s}", "cameras", list, "snapshots",
                            q->con->snaps ? vg_snap_store_type(q->con->snaps) : "none");
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    return con_json(q, 200, text);
}
