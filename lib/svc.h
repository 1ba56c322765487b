/* vg_svc_main: the shared life of every vigil service:
 * args -> config -> log -> connect -> signals -> init -> loop -> drain. */
#ifndef VG_SVC_H
#define VG_SVC_H

#include "bus.h"
#include "config.h"
#include "redis.h"
#include "status.h"

struct vg_svc;

enum {
    VG_SVC_NEEDS_REDIS = 1 << 0,
    VG_SVC_NEEDS_JETSTREAM = 1 << 1,
    VG_SVC_NEEDS_CAMERA = 1 << 2,   /* takes --camera ID (or the only camera) */
};

struct vg_service {
    const char *name;               /* "dedupe": log svc, metrics prefix, queue group */
    unsigned flags;
    const char *default_http_addr;  /* "127.0.0.1:9104" */
    /* Optional: validate what the service alone reads (its backends' keys)
     * after the configuration loaded, before anything connects; also run by
     * --check. */
    vg_status (*check)(const struct vg_config *cfg);
    /* Subscribe and set up; *state is handed back to run and fini. */
    vg_status (*init)(struct vg_svc *svc, void **state);
    /* Optional: the service's own loop; return when done or when
     * vg_svc_stopping(). NULL: wait for SIGTERM/SIGINT. */
    vg_status (*run)(struct vg_svc *svc, void *state);
    /* After the bus has drained: free state. */
    void (*fini)(struct vg_svc *svc, void *state);
};

int vg_svc_main(const struct vg_service *s, int argc, char **argv);

const struct vg_config *vg_svc_config(const struct vg_svc *svc);
struct vg_bus *vg_svc_bus(struct vg_svc *svc);
struct vg_redis *vg_svc_redis(struct vg_svc *svc);  /* NULL unless NEEDS_REDIS */
const struct vg_camera_cfg *vg_svc_camera(const struct vg_svc *svc); /* NEEDS_CAMERA */
int vg_svc_stopping(const struct vg_svc *svc);
void vg_svc_set_ready(struct vg_svc *svc, int ready);
/* Sleep up to ms, returning early (non-zero) when a stop was requested. */
int vg_svc_sleep_ms(struct vg_svc *svc, int ms);

#endif
