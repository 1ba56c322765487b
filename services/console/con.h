/* What the console's files share (not an API): the state, one request as
 * the handlers see it, and the reply helpers that count and log it. */
#ifndef CON_CON_H
#define CON_CON_H

#include <limits.h>
#include <pthread.h>
#include <stdint.h>

#include <microhttpd.h>

#include "config.h"
#include "status.h"

struct vg_meta_store;
struct vg_snap_store;

#define CON_CACHE_MAX_AGE_S 3600            /* an unused cached clip is deleted after this */
#define CON_CACHE_MAX_BYTES (512LL << 20)   /* and the oldest above this total */

struct console {
    const struct vg_config *cfg;
    struct MHD_Daemon *d;
    int port;

    /* The stores are not promised to be thread-safe (one Redis connection,
     * AWS credentials refreshed in place): one request at a time each. */
    pthread_mutex_t snap_mu;
    struct vg_snap_store *snaps;    /* NULL: no snapshot store configured */
    pthread_mutex_t meta_mu;
    struct vg_meta_store *meta;     /* NULL until it opens (retried per request) */

    int pre_roll_s, length_s;       /* clip defaults: the clips: section */
    char cache_dir[PATH_MAX];       /* <recording.dir>/.clips */
    pthread_mutex_t prune_mu;
    int64_t last_prune_us;
};

/* One request. route names it in vigil_console_requests_total. */
struct con_req {
    struct console *con;
    struct MHD_Connection *c;
    const char *method;
    const char *url;
    const char *route;
    unsigned code;
};

/* Queue r (destroyed here; NULL: a 500) with code, counting the request. */
enum MHD_Result con_queue(struct con_req *q, unsigned code, struct MHD_Response *r);
/* A JSON body (malloc'ed text, freed here). */
enum MHD_Result con_json(struct con_req *q, unsigned code, char *body);
/* {"error": "<message>"}. */
enum MHD_Result con_error(struct con_req *q, unsigned code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* As con_error with a Retry-After header. */
enum MHD_Result con_error_retry(struct con_req *q, unsigned code, int retry_after_s,
                                const char *fmt, ...) __attribute__((format(printf, 4, 5)));
/* The value of a query argument; NULL when absent. */
const char *con_arg(const struct con_req *q, const char *name);
/* A request header; NULL when absent. */
const char *con_header(const struct con_req *q, const char *name);

/* Strict integer parse of a whole argument within [lo, hi]; 0 on success. */
int con_parse_i64(const char *s, int64_t lo, int64_t hi, int64_t *out);

/* The routes (api.c dispatches by path). */
enum MHD_Result con_snapshot(struct con_req *q, const char *key);
enum MHD_Result con_clip(struct con_req *q, const char *file);
enum MHD_Result con_frames(struct con_req *q);
enum MHD_Result con_events(struct con_req *q);
enum MHD_Result con_cameras(struct con_req *q);

/* The MHD access handler (api.c). */
enum MHD_Result con_handle(void *cls, struct MHD_Connection *c, const char *url,
                           const char *method, const char *version, const char *upload,
                           size_t *upload_size, void **req);

/* The metadata store, opened on first use when it was down at start-up;
 * returned with meta_mu held (con_meta_release), NULL (not held) when it
 * still cannot be opened (detail in vg_err_detail). */
struct vg_meta_store *con_meta_acquire(struct console *con);
void con_meta_release(struct console *con);

#endif
