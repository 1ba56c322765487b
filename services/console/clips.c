/* GET /api/clips/<camera>.mp4?t=<detect_ms>&pre=<s>&dur=<s>: the local clip
 * provider's link (lib/clip/clip_local.c). The clip runs from t - pre for
 * dur seconds, assembled from <recording.dir>/<camera> without re-encoding
 * (lib/clip/assemble.h), cached, and served as an MP4 with range requests
 * (Safari will not play video without them). */
#include "con.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "clip/clip.h"
#include "clip_cache.h"
#include "log.h"
#include "range.h"
#include "timeutil.h"

#define T_MIN_MS 1000000000000LL      /* 2001-09-09: a t below is seconds or garbage */
#define T_MAX_MS 32503680000000LL     /* year 3000 */
#define CLIP_MAX_AGE_S 3600           /* browsers may keep a clip: it never changes */

static void fmt_time(int64_t us, char *out, size_t cap)
{
    time_t s = (time_t)(us / 1000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, cap, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* "<camera>.mp4" -> the configured camera; NULL with a reply when not. */
static const struct vg_camera_cfg *camera_of(struct con_req *q, const char *file,
                                             enum MHD_Result *ret)
{
    char id[VG_ID_MAX];
    size_t n = strlen(file);
    if (n <= 4 || strcmp(file + n - 4, ".mp4") || n - 4 >= sizeof(id)) {
        *ret = con_error(q, 400, "clip path must be /api/clips/<camera>.mp4");
        return NULL;
    }
    memcpy(id, file, n - 4);
    id[n - 4] = '\0';
    for (const char *p = id; *p; p++) {
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-')) {
            *ret = con_error(q, 400, "bad camera id in the clip path (letters, digits, '_' "
                             "and '-' only)");
            return NULL;
        }
    }
    const struct vg_camera_cfg *cam = vg_cfg_camera(q->con->cfg, id);
    if (!cam)
        *ret = con_error(q, 404, "camera %s is not configured", id);
    return cam;
}

static enum MHD_Result bad_arg(struct con_req *q, const char *name, const char *v,
                               const char *want)
{
    return con_error(q, 400, "bad %s \"%.40s\": %s", name, v ? v : "", want);
}

static enum MHD_Result serve(struct con_req *q, int fd, const char *camera, int64_t t_ms)
{
    struct stat sb;
    if (fstat(fd, &sb) != 0) {
        close(fd);
        return con_error(q, 500, "cannot read the clip");
    }
    uint64_t size = (uint64_t)sb.st_size, off = 0, len = size;
    char etag[64], cache[48], disp[128], cr[96];
    snprintf(etag, sizeof(etag), "\"%llx-%llx\"", (unsigned long long)size,
             (unsigned long long)sb.st_ino);
    const char *inm = con_header(q, "If-None-Match");
    if (inm && strstr(inm, etag)) {
        close(fd);
        struct MHD_Response *r = MHD_create_response_from_buffer(0, NULL, MHD_RESPMEM_PERSISTENT);
        if (r)
            MHD_add_response_header(r, "ETag", etag);
        return con_queue(q, 304, r);
    }
    const char *ir = con_header(q, "If-Range");
    enum con_range rg = CON_RANGE_NONE;
    if (!ir || !strcmp(ir, etag))   /* a stale If-Range gets the whole (new) file */
        rg = con_range_parse(con_header(q, "Range"), size, &off, &len);
    if (rg == CON_RANGE_UNSATISFIABLE) {
        close(fd);
        snprintf(cr, sizeof(cr), "bytes */%llu", (unsigned long long)size);
        char msg[] = "{\"error\":\"range not satisfiable\"}";
        struct MHD_Response *r = MHD_create_response_from_buffer(strlen(msg), msg,
                                                                 MHD_RESPMEM_MUST_COPY);
        if (r) {
            MHD_add_response_header(r, "Content-Range", cr);
            MHD_add_response_header(r, "Content-Type", "application/json");
        }
        return con_queue(q, 416, r);
    }
    struct MHD_Response *r = MHD_create_response_from_fd_at_offset64(len, fd, off);
    if (!r) {
        close(fd);
        return con_queue(q, 500, NULL);
    }
    snprintf(cache, sizeof(cache), "private, max-age=%d", CLIP_MAX_AGE_S);
    snprintf(disp, sizeof(disp), "inline; filename=\"%s-%lld.mp4\"", camera, (long long)t_ms);
    MHD_add_response_header(r, "Content-Type", "video/mp4");
    MHD_add_response_header(r, "Accept-Ranges", "bytes");
    MHD_add_response_header(r, "Cache-Control", cache);
    MHD_add_response_header(r, "ETag", etag);
    MHD_add_response_header(r, "Content-Disposition", disp);
    if (rg == CON_RANGE_OK) {
        snprintf(cr, sizeof(cr), "bytes %llu-%llu/%llu", (unsigned long long)off,
                 (unsigned long long)(off + len - 1), (unsigned long long)size);
        MHD_add_response_header(r, "Content-Range", cr);
        return con_queue(q, 206, r);
    }
    return con_queue(q, 200, r);
}

enum MHD_Result con_clip(struct con_req *q, const char *file)
{
    struct console *con = q->con;
    const struct vg_config *cfg = con->cfg;
    enum MHD_Result ret = MHD_NO;
    const struct vg_camera_cfg *cam = camera_of(q, file, &ret);
    if (!cam)
        return ret;
    const char *ts = con_arg(q, "t"), *ps = con_arg(q, "pre"), *ds = con_arg(q, "dur");
    int64_t t_ms, pre = con->pre_roll_s, dur = con->length_s;
    if (!ts)
        return con_error(q, 400, "t (the detection time, ms since the epoch) is required");
    if (con_parse_i64(ts, T_MIN_MS, T_MAX_MS, &t_ms))
        return bad_arg(q, "t", ts, "the detection time in ms since the epoch");
    if (ps && con_parse_i64(ps, 0, VG_CLIP_MAX_PRE_S, &pre))
        return bad_arg(q, "pre", ps, "seconds before t, 0..60");
    if (ds && con_parse_i64(ds, 1, VG_CLIP_MAX_LENGTH_S, &dur))
        return bad_arg(q, "dur", ds, "the clip's length in seconds, 1..600");

    int64_t start_us = t_ms * 1000 - pre * 1000000, end_us = start_us + dur * 1000000;
    int64_t now = vg_now_us();
    char a[32], b[32];
    fmt_time(start_us, a, sizeof(a));
    fmt_time(end_us, b, sizeof(b));
    if (end_us > now) {
        /* The segment being written is read too, but not past its last
         * flushed cluster: a few seconds' margin. */
        int wait_s = (int)((end_us - now + 999999) / 1000000) + 3;
        return con_error_retry(q, 404, wait_s, "the clip of %s from %s to %s is not recorded "
                               "yet: try again in %d s", cam->id, a, b, wait_s);
    }

    char camera_dir[PATH_MAX], name[160];
    if ((size_t)snprintf(camera_dir, sizeof(camera_dir), "%s/%s", cfg->recording.dir,
                         cam->id) >= sizeof(camera_dir))
        return con_error(q, 500, "recording.dir is too long");
    snprintf(name, sizeof(name), "%s-%lld-%lld-%lld", cam->id, (long long)t_ms, (long long)pre,
             (long long)dur);
    /* Until two segments after the end the recording may still fill the
     * clip's tail: a short clip is then not cached. */
    int64_t keep_after = end_us + (int64_t)(2 * cfg->recording.segment_s + 10) * 1000000;
    struct vg_clip_info info = {0};
    int fd = -1, fresh = 0;
    vg_status st = con_cache_open(con, name, camera_dir, start_us, end_us, keep_after, &fd,
                                  &fresh, &info);
    if (st == VG_ERR_NOT_FOUND) {
        int rec = vg_clip_camera_records(cfg, cam);
        return con_error(q, 404, "no recording of %s between %s and %s%s", cam->id, a, b,
                         rec ? "" : " (the camera does not record: its record key or "
                         "recording.enabled)");
    }
    if (st == VG_ERR_INVALID)
        return con_error(q, 400, "%s", vg_err_detail());
    if (st != VG_OK) {
        VG_WARN("clip.failed", cam->id, "%s..%s: %s: %s", a, b, vg_status_str(st),
                vg_err_detail());
        return con_error(q, 500, "the clip of %s from %s to %s could not be assembled (see "
                         "the console's log, event clip.failed)", cam->id, a, b);
    }
    if (fresh) {
        VG_INFO("clip.assembled", cam->id, "%s..%s: %s %dx%d%s", a, b, info.codec, info.width,
                info.height, info.transcoded ? " (transcoded)" : "");
        con_cache_prune(con, CON_CACHE_MAX_AGE_S, CON_CACHE_MAX_BYTES, 0);
    }
    return serve(q, fd, cam->id, t_ms);
}
