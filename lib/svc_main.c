#include "svc.h"

#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "log.h"
#include "timeutil.h"

#define CONNECT_WAIT_MS 15000
#define REDIS_TIMEOUT_MS 1000

static volatile sig_atomic_t stop_requested;

struct vg_svc {
    const struct vg_service *desc;
    struct vg_config cfg;
    const struct vg_camera_cfg *camera;
    struct vg_bus *bus;
    struct vg_redis *redis;
    struct vg_http *http;
    volatile int ready;
};

const struct vg_config *vg_svc_config(const struct vg_svc *svc) { return &svc->cfg; }
struct vg_bus *vg_svc_bus(struct vg_svc *svc) { return svc->bus; }
struct vg_redis *vg_svc_redis(struct vg_svc *svc) { return svc->redis; }
const struct vg_camera_cfg *vg_svc_camera(const struct vg_svc *svc) { return svc->camera; }
int vg_svc_stopping(const struct vg_svc *svc) { return stop_requested != 0; }
void vg_svc_set_ready(struct vg_svc *svc, int ready) { svc->ready = ready; }

int vg_svc_sleep_ms(struct vg_svc *svc, int ms)
{
    int64_t end = vg_mono_us() + (int64_t)ms * 1000;
    for (;;) {
        if (stop_requested)
            return 1;
        int64_t left = end - vg_mono_us();
        if (left <= 0)
            return 0;
        vg_sleep_us(left < 20000 ? left : 20000);
    }
}

static void on_signal(int sig) { stop_requested = 1; }

static int is_ready(void *ctx)
{
    struct vg_svc *svc = ctx;
    return svc->ready && vg_bus_connected(svc->bus);
}

static void usage(const struct vg_service *s, FILE *f)
{
    fprintf(f,
            "usage: vigil-%s [--config FILE] %s[--check-config]\n"
            "  --config FILE    YAML configuration (default: $VIGIL_CONFIG)\n"
            "%s"
            "  --check-config   validate the configuration and exit\n"
            "environment: VIGIL_NATS_URL VIGIL_REDIS_URL VIGIL_HTTP_ADDR VIGIL_PREFIX "
            "VIGIL_LOG_LEVEL\n",
            s->name, (s->flags & VG_SVC_NEEDS_CAMERA) ? "[--camera ID] " : "",
            (s->flags & VG_SVC_NEEDS_CAMERA)
                ? "  --camera ID      camera to capture (default: $VIGIL_CAMERA, or the only one)\n"
                : "");
}

struct args {
    const char *config;
    const char *camera;
    int check_only;
};

/* Returns -1 to continue, else an exit code. */
static int parse_args(const struct vg_service *s, int argc, char **argv, struct args *a)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"camera", required_argument, NULL, 'C'},
        {"check-config", no_argument, NULL, 'k'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    a->config = getenv("VIGIL_CONFIG");
    a->camera = getenv("VIGIL_CAMERA");
    int c;
    while ((c = getopt_long(argc, argv, "c:C:kh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': a->config = optarg; break;
        case 'C': a->camera = optarg; break;
        case 'k': a->check_only = 1; break;
        case 'h': usage(s, stdout); return 0;
        default: usage(s, stderr); return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "vigil-%s: unexpected argument \"%s\"\n", s->name, argv[optind]);
        return 2;
    }
    return -1;
}

static vg_status pick_camera(struct vg_svc *svc, const char *id)
{
    const struct vg_config *cfg = &svc->cfg;
    if (id) {
        svc->camera = vg_cfg_camera(cfg, id);
        if (!svc->camera)
            return vg_errf(VG_ERR_CONFIG, "camera \"%s\" is not in %s", id,
                           cfg->source[0] ? cfg->source : "the configuration");
        return VG_OK;
    }
    if (cfg->n_cameras != 1)
        return vg_errf(VG_ERR_CONFIG, "%d cameras configured: choose one with --camera ID",
                       cfg->n_cameras);
    svc->camera = &cfg->cameras[0];
    return VG_OK;
}

static vg_status setup(struct vg_svc *svc, const struct args *a)
{
    const struct vg_service *s = svc->desc;
    const char *addr = svc->cfg.http_addr[0] ? svc->cfg.http_addr : s->default_http_addr;
    char masked[VG_URL_MAX];
    vg_status st;

    if ((s->flags & VG_SVC_NEEDS_CAMERA) && (st = pick_camera(svc, a->camera)) != VG_OK)
        return st;
    if (addr && strcmp(addr, "off") && (st = vg_http_start(&svc->http, addr, is_ready, svc)))
        return st;
    if ((st = vg_bus_connect_ex(&svc->bus, &svc->cfg, vg_producer(), CONNECT_WAIT_MS,
                                (s->flags & VG_SVC_NEEDS_JETSTREAM) ? VG_BUS_SEND_ASAP : 0)) !=
        VG_OK)
        return st;
    vg_cfg_mask_url(masked, sizeof(masked), svc->cfg.nats_url);
    VG_INFO("nats.connected", NULL, "connected to %s", masked);
    if (s->flags & VG_SVC_NEEDS_REDIS) {
        if ((st = vg_redis_create(&svc->redis, svc->cfg.redis_url, REDIS_TIMEOUT_MS)) != VG_OK)
            return st;
        vg_cfg_mask_url(masked, sizeof(masked), svc->cfg.redis_url);
        /* Not fatal: services degrade (fail open) and reconnect later. */
        if (vg_redis_connect(svc->redis) == VG_OK)
            VG_INFO("redis.connected", NULL, "connected to %s", masked);
        else
            VG_WARN("redis.unavailable", NULL, "%s; continuing, will retry", vg_err_detail());
    }
    return VG_OK;
}

static vg_status wait_for_stop(struct vg_svc *svc)
{
    while (!vg_svc_sleep_ms(svc, 1000))
        ;
    return VG_OK;
}

static void install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
}

int vg_svc_main(const struct vg_service *s, int argc, char **argv)
{
    struct args a = {0};
    void *state = NULL;
    int rc = parse_args(s, argc, argv, &a);
    if (rc >= 0)
        return rc;

    struct vg_svc *svc = calloc(1, sizeof(*svc));
    if (!svc)
        return 1;
    svc->desc = s;
    vg_set_producer(s->name);
    vg_log_setup(s->name, VG_LOG_INFO);
    vg_status st = vg_cfg_load(&svc->cfg, a.config);
    if (st == VG_OK && s->check)
        st = s->check(&svc->cfg);
    if (st != VG_OK) {
        VG_ERROR("config.invalid", NULL, "%s", vg_err_detail());
        fprintf(stderr, "vigil-%s: configuration error: %s\n", s->name, vg_err_detail());
        free(svc);
        return 2;
    }
    enum vg_log_level level = VG_LOG_INFO;
    vg_log_parse_level(svc->cfg.log_level, &level);
    vg_log_setup(s->name, level);
    if (a.check_only) {
        printf("%s: ok\n", a.config ? a.config : "defaults");
        free(svc);
        return 0;
    }
    install_signals();
    VG_INFO("service.starting", NULL, "%s, config %s", vg_producer(),
            a.config ? a.config : "(defaults)");

    st = setup(svc, &a);
    if (st == VG_OK)
        st = s->init(svc, &state);
    if (st == VG_OK) {
        svc->ready = 1;
        st = s->run ? s->run(svc, state) : wait_for_stop(svc);
    }
    if (st != VG_OK && st != VG_ERR_STOPPED) {
        VG_ERROR("service.failed", svc->camera ? svc->camera->id : NULL, "%s: %s",
                 vg_status_str(st), vg_err_detail());
        fprintf(stderr, "vigil-%s: %s\n", s->name, vg_err_detail());
    }
    svc->ready = 0;
    vg_http_stop(svc->http);       /* its /readyz reads the bus freed below */
    vg_bus_destroy(svc->bus);      /* drain first: handlers may still use state */
    if (s->fini)
        s->fini(svc, state);
    vg_redis_destroy(svc->redis);
    VG_INFO("service.stopped", NULL, "exit %d", st == VG_OK || st == VG_ERR_STOPPED ? 0 : 1);
    free(svc);
    return st == VG_OK || st == VG_ERR_STOPPED ? 0 : 1;
}
