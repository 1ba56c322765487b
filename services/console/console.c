/* vigil-console: the service. The framework serves /metrics, /healthz and
 * /readyz on http_addr as for every service; the API listens on its own
 * address (console.addr), one thread per connection because a clip request
 * may take a few seconds to assemble and must not hold up the others. */
#include "console.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/clip.h"
#include "clip_cache.h"
#include "con.h"
#include "http.h"
#include "log.h"
#include "store/meta_store.h"
#include "store/snapshot_store.h"

#define CONNECTION_LIMIT 64u
#define PER_IP_LIMIT 32u
#define CONNECTION_TIMEOUT_S 30u
#define PRUNE_EVERY_MS 60000
#define DEFAULT_PRE_S 5
#define DEFAULT_LENGTH_S 30

static vg_status con_check(const struct vg_config *cfg)
{
    struct sockaddr_in sa;
    vg_status st = vg_http_parse_addr(cfg->console.addr, "console.addr", &sa);
    if (st != VG_OK)
        return st;
    if (!cfg->recording.dir[0])
        return vg_errf(VG_ERR_CONFIG, "recording.dir is empty: the console assembles clips "
                       "from it");
    return VG_OK;
}

/* The clip defaults for links without pre/dur: the clips: section's. */
static void clip_defaults(struct console *con)
{
    struct vg_clip_provider *p = NULL;
    con->pre_roll_s = DEFAULT_PRE_S;
    con->length_s = DEFAULT_LENGTH_S;
    if (vg_clip_open(&p, con->cfg) != VG_OK) {
        VG_WARN("clips.config", NULL, "clips: %s; clip defaults %d s before, %d s long",
                vg_err_detail(), con->pre_roll_s, con->length_s);
        return;
    }
    const struct vg_clip_common *c = vg_clip_common(p);
    con->pre_roll_s = c->pre_roll_s;
    con->length_s = c->length_s;
    vg_clip_close(p);
}

static vg_status start_http(struct console *con)
{
    struct sockaddr_in sa;
    vg_status st = vg_http_parse_addr(con->cfg->console.addr, "console.addr", &sa);
    if (st != VG_OK)
        return st;
    con->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                                  MHD_USE_ERROR_LOG,
                              0, NULL, NULL, con_handle, con, MHD_OPTION_SOCK_ADDR,
                              (struct sockaddr *)&sa, MHD_OPTION_CONNECTION_LIMIT,
                              CONNECTION_LIMIT, MHD_OPTION_PER_IP_CONNECTION_LIMIT, PER_IP_LIMIT,
                              MHD_OPTION_CONNECTION_TIMEOUT, CONNECTION_TIMEOUT_S,
                              MHD_OPTION_END);
    if (!con->d)
        return vg_errf(VG_ERR_IO, "console: cannot listen on %s (console.addr, "
                       "VIGIL_CONSOLE_ADDR)", con->cfg->console.addr);
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(con->d, MHD_DAEMON_INFO_BIND_PORT);
    con->port = info ? info->port : 0;
    return VG_OK;
}

static void con_free(struct console *con)
{
    if (!con)
        return;
    if (con->d)
        MHD_stop_daemon(con->d);
    vg_meta_store_close(con->meta);
    vg_snap_store_close(con->snaps);
    pthread_mutex_destroy(&con->snap_mu);
    pthread_mutex_destroy(&con->meta_mu);
    pthread_mutex_destroy(&con->prune_mu);
    free(con);
}

static vg_status con_init(struct vg_svc *svc, void **state)
{
    struct console *con = calloc(1, sizeof(*con));
    if (!con)
        return VG_ERR_NOMEM;
    con->cfg = vg_svc_config(svc);
    pthread_mutex_init(&con->snap_mu, NULL);
    pthread_mutex_init(&con->meta_mu, NULL);
    pthread_mutex_init(&con->prune_mu, NULL);
    vg_status st = VG_OK;
    if ((size_t)snprintf(con->cache_dir, sizeof(con->cache_dir), "%s/.clips",
                         con->cfg->recording.dir) >= sizeof(con->cache_dir))
        st = vg_errf(VG_ERR_CONFIG, "recording.dir is too long");
    if (st == VG_OK && vg_snap_store_configured(con->cfg))
        st = vg_snap_store_open(&con->snaps, con->cfg);
    if (st != VG_OK) {
        con_free(con);
        return st;
    }
    if (!con->snaps)
        VG_INFO("snapshots.none", NULL, "no snapshot store configured: /api/snapshots answers "
                "404");
    /* The metadata store may be down now: requests open it later. */
    if (con_meta_acquire(con))
        con_meta_release(con);
    clip_defaults(con);
    con_cache_prune(con, CON_CACHE_MAX_AGE_S, CON_CACHE_MAX_BYTES, 1);
    if ((st = start_http(con)) != VG_OK) {
        con_free(con);
        return st;
    }
    VG_INFO("console.listening", NULL, "API on %s (port %d), public URL %s; snapshots %s, "
            "clips from %s", con->cfg->console.addr, con->port, con->cfg->console.public_url,
            con->snaps ? vg_snap_store_type(con->snaps) : "none", con->cfg->recording.dir);
    *state = con;
    return VG_OK;
}

/* The cache is also pruned while nobody asks for clips (by age). */
static vg_status con_run(struct vg_svc *svc, void *state)
{
    struct console *con = state;
    while (!vg_svc_sleep_ms(svc, PRUNE_EVERY_MS))
        con_cache_prune(con, CON_CACHE_MAX_AGE_S, CON_CACHE_MAX_BYTES, 1);
    return VG_OK;
}

static void con_fini(struct vg_svc *svc, void *state)
{
    (void)svc;
    con_free(state);
}

const struct vg_service console_service = {
    .name = "console",
    .flags = 0,
    .default_http_addr = "127.0.0.1:9106",
    .check = con_check,
    .init = con_init,
    .run = con_run,
    .fini = con_fini,
};
