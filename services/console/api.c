/* The console's HTTP API: one access handler that routes by path, and the
 * reply helpers every route uses, so each request is counted
 * (vigil_console_requests_total{route,code}) and logged (debug) once. */
#include "con.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "log.h"
#include "metrics.h"
#include "store/meta_store.h"
#include "timeutil.h"

static void count(const struct con_req *q, unsigned code)
{
    char labels[96];
    snprintf(labels, sizeof(labels), "route=\"%s\",code=\"%u\"", q->route, code);
    vg_counter_inc(vg_counter_get_labeled("vigil_console_requests_total", labels,
                                          "Console API requests by route and status code"));
    VG_DEBUG("http.request", NULL, "%s %s -> %u", q->method, q->url, code);
}

enum MHD_Result con_queue(struct con_req *q, unsigned code, struct MHD_Response *r)
{
    if (!r) {
        static char oom[] = "{\"error\":\"out of memory\"}";
        code = 500;
        r = MHD_create_response_from_buffer(strlen(oom), oom, MHD_RESPMEM_PERSISTENT);
        if (!r)
            return MHD_NO;
        MHD_add_response_header(r, "Content-Type", "application/json");
    }
    q->code = code;
    count(q, code);
    enum MHD_Result ret = MHD_queue_response(q->c, code, r);
    MHD_destroy_response(r);
    return ret;
}

/* A JSON body (malloc'ed, taken over) as an uncacheable response; NULL when
 * out of memory (body freed). */
static struct MHD_Response *json_response(char *body)
{
    struct MHD_Response *r =
        body ? MHD_create_response_from_buffer(strlen(body), body, MHD_RESPMEM_MUST_FREE) : NULL;
    if (!r) {
        free(body);
        return NULL;
    }
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    return r;
}

enum MHD_Result con_json(struct con_req *q, unsigned code, char *body)
{
    struct MHD_Response *r = json_response(body);
    return con_queue(q, r ? code : 500, r);
}

static enum MHD_Result verror(struct con_req *q, unsigned code, int retry_after_s,
                              const char *fmt, va_list ap)
{
    char msg[1024];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    json_t *o = json_pack("{s:s}", "error", msg);
    struct MHD_Response *r = json_response(o ? json_dumps(o, JSON_COMPACT) : NULL);
    json_decref(o);
    if (!r)
        return con_queue(q, 500, NULL);
    if (retry_after_s > 0) {
        char ra[16];
        snprintf(ra, sizeof(ra), "%d", retry_after_s);
        MHD_add_response_header(r, "Retry-After", ra);
    }
    return con_queue(q, code, r);
}

enum MHD_Result con_error(struct con_req *q, unsigned code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = verror(q, code, 0, fmt, ap);
    va_end(ap);
    return ret;
}

enum MHD_Result con_error_retry(struct con_req *q, unsigned code, int retry_after_s,
                                const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    enum MHD_Result ret = verror(q, code, retry_after_s, fmt, ap);
    va_end(ap);
    return ret;
}

const char *con_arg(const struct con_req *q, const char *name)
{
    return MHD_lookup_connection_value(q->c, MHD_GET_ARGUMENT_KIND, name);
}

const char *con_header(const struct con_req *q, const char *name)
{
    return MHD_lookup_connection_value(q->c, MHD_HEADER_KIND, name);
}

int con_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out)
{
    char *end;
    if (!s || !*s || (*s != '-' && (*s < '0' || *s > '9')))
        return -1;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

struct vg_meta_store *con_meta_acquire(struct console *con)
{
    pthread_mutex_lock(&con->meta_mu);
    if (!con->meta) {
        vg_status st = vg_meta_store_open(&con->meta, con->cfg, NULL);
        if (st != VG_OK) {
            char detail[512];
            snprintf(detail, sizeof(detail), "%s", vg_err_detail());
            con->meta = NULL;
            pthread_mutex_unlock(&con->meta_mu);
            VG_WARN("meta.unavailable", NULL, "metadata store: %s", detail);
            vg_errf(st, "%s", detail);
            return NULL;
        }
        VG_INFO("meta.opened", NULL, "metadata store %s", vg_meta_store_type(con->meta));
    }
    return con->meta;
}

void con_meta_release(struct console *con)
{
    pthread_mutex_unlock(&con->meta_mu);
}

static int prefixed(const char *url, const char *prefix, const char **rest)
{
    size_t n = strlen(prefix);
    if (strncmp(url, prefix, n) != 0)
        return 0;
    *rest = url + n;
    return 1;
}

enum MHD_Result con_handle(void *cls, struct MHD_Connection *c, const char *url,
                           const char *method, const char *version, const char *upload,
                           size_t *upload_size, void **req)
{
    enum route { OTHER, SNAPSHOTS, SNAPSHOT_REF, CLIPS, FRAMES, EVENTS, CAMERAS };
    static const char *const names[] = {"other", "snapshots", "snapshots", "clips", "frames",
                                        "events", "cameras"};
    (void)version;
    (void)upload;
    (void)upload_size;
    (void)req;
    const char *rest = NULL;
    enum route rt = OTHER;
    if (prefixed(url, "/api/snapshots/", &rest))
        rt = SNAPSHOTS;
    else if (!strcmp(url, "/api/snapshots"))
        rt = SNAPSHOT_REF;
    else if (prefixed(url, "/api/clips/", &rest))
        rt = CLIPS;
    else if (!strcmp(url, "/api/frames"))
        rt = FRAMES;
    else if (!strcmp(url, "/api/events"))
        rt = EVENTS;
    else if (!strcmp(url, "/api/cameras"))
        rt = CAMERAS;
    struct con_req q = {.con = cls, .c = c, .method = method, .url = url, .route = names[rt]};
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return con_error(&q, 405, "method %s not allowed: the console's API is read-only "
                         "(GET, HEAD)", method);
    switch (rt) {
    case SNAPSHOTS: return con_snapshot(&q, rest);
    case SNAPSHOT_REF: return con_snapshot(&q, NULL);
    case CLIPS: return con_clip(&q, rest);
    case FRAMES: return con_frames(&q);
    case EVENTS: return con_events(&q);
    case CAMERAS: return con_cameras(&q);
    case OTHER: break;
    }
    return con_error(&q, 404, "no such endpoint: %.200s (see docs/console.md)", url);
}
