/* GET /api/snapshots/<key>: a frame of the snapshot store. The fs store's
 * links point here (its files are on this host); the bytes come through the
 * seam, which refuses keys that escape the store. An s3 store's links are
 * pre-signed S3 URLs; /api/snapshots?ref=s3://... redirects to a fresh one
 * (for a UI that holds refs). */
#include "con.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "store/snapshot_store.h"

#define SNAP_MAX_BYTES (16u << 20)
#define SNAP_MAX_AGE_S 86400    /* a snapshot never changes: its key names its trace */

/* FNV-1a of the bytes: a strong enough validator for files that never change. */
static void etag_of(const uint8_t *p, size_t n, char *out, size_t cap)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 1099511628211ULL;
    snprintf(out, cap, "\"%016llx-%zx\"", (unsigned long long)h, n);
}

static enum MHD_Result serve_bytes(struct con_req *q, const char *key, uint8_t *data, size_t len)
{
    char etag[48], cache[48];
    etag_of(data, len, etag, sizeof(etag));
    const char *inm = con_header(q, "If-None-Match");
    struct MHD_Response *r;
    unsigned code = 200;
    if (inm && (strstr(inm, etag) || !strcmp(inm, "*"))) {
        free(data);
        r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        code = 304;
    } else {
        r = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (!r)
            free(data);
    }
    if (r) {
        snprintf(cache, sizeof(cache), "private, max-age=%d", SNAP_MAX_AGE_S);
        MHD_add_response_header(r, "Content-Type", "image/jpeg");
        MHD_add_response_header(r, "Cache-Control", cache);
        MHD_add_response_header(r, "ETag", etag);
        MHD_add_response_header(r, "X-Content-Type-Options", "nosniff");
    }
    (void)key;
    return con_queue(q, code, r);
}

static enum MHD_Result get_fs(struct con_req *q, const char *ref, const char *shown)
{
    struct console *con = q->con;
    uint8_t *data = NULL;
    size_t len = 0;
    pthread_mutex_lock(&con->snap_mu);
    vg_status st = vg_snap_get(con->snaps, ref, SNAP_MAX_BYTES, &data, &len);
    char detail[512];
    snprintf(detail, sizeof(detail), "%s", vg_err_detail());
    pthread_mutex_unlock(&con->snap_mu);
    switch (st) {
    case VG_OK:
        return serve_bytes(q, shown, data, len);
    case VG_ERR_NOT_FOUND:
        return con_error(q, 404, "snapshot %.300s not found: deleted by retention "
                         "(store.snapshots max_age_h / max_mb) or never stored", shown);
    case VG_ERR_INVALID:
        return con_error(q, 400, "bad snapshot key: %s", detail);
    case VG_ERR_TOO_LARGE:
        return con_error(q, 413, "snapshot %.300s is larger than %u bytes", shown,
                         SNAP_MAX_BYTES);
    default:
        VG_WARN("snapshot.failed", NULL, "%s: %s", shown, detail);
        return con_error(q, 500, "snapshot %.300s could not be read (see the console's log, "
                         "event snapshot.failed)", shown);
    }
}

static enum MHD_Result redirect(struct con_req *q, const char *ref)
{
    struct console *con = q->con;
    char url[4096];
    pthread_mutex_lock(&con->snap_mu);
    vg_status st = vg_snap_link(con->snaps, ref, url, sizeof(url));
    char detail[512];
    snprintf(detail, sizeof(detail), "%s", vg_err_detail());
    pthread_mutex_unlock(&con->snap_mu);
    if (st == VG_ERR_INVALID)
        return con_error(q, 400, "bad snapshot ref: %s", detail);
    if (st != VG_OK) {
        VG_WARN("snapshot.link_failed", NULL, "%s", detail);
        return con_error(q, st == VG_ERR_AUTH ? 503 : 500, "cannot sign a link to the "
                         "snapshot (see the console's log, event snapshot.link_failed)");
    }
    struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
    if (r) {
        MHD_add_response_header(r, "Location", url);
        /* The link expires: never let a cache keep the redirect longer. */
        MHD_add_response_header(r, "Cache-Control", "no-store");
    }
    return con_queue(q, 302, r);
}

enum MHD_Result con_snapshot(struct con_req *q, const char *key)
{
    struct console *con = q->con;
    char ref[VG_SNAP_REF_MAX];
    if (!con->snaps)
        return con_error(q, 404, "this console has no snapshot store (configure "
                         "store.snapshots or dispatch.snapshot_dir)");
    const char *type = vg_snap_store_type(con->snaps);
    if (!key) {                         /* /api/snapshots?ref=<ref> */
        const char *r = con_arg(q, "ref");
        if (!r || !*r)
            return con_error(q, 400, "give a key (/api/snapshots/frames/...) or ?ref=");
        if (!strncmp(r, "fs:", 3))
            return get_fs(q, r, r + 3);
        return redirect(q, r);
    }
    if (!*key)
        return con_error(q, 400, "snapshot key missing: /api/snapshots/frames/<camera>/...");
    if (vg_snap_ref_of_key(key, ref, sizeof(ref)) != VG_OK)
        return con_error(q, 400, "bad snapshot key: %s", vg_err_detail());
    if (strcmp(type, "fs") != 0)
        return con_error(q, 404, "snapshot store is %s: its links are pre-signed URLs; the "
                         "console serves keys of an fs store only (or ?ref=<%s ref>)", type,
                         type);
    return get_fs(q, ref, key);
}
