/* vigilctl arm [MODE]: show or set the arm mode (arm.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "arm.h"
#include "ctl.h"
#include "routing.h"
#include "tz.h"

static void print_state(const struct vg_arm_state *s)
{
    char when[64];
    vg_tz_format(s->set_ts_us, "%Y-%m-%d %H:%M:%S %Z", when, sizeof(when));
    printf("%s (set by %s at %s; before: %s)\n", s->mode, s->set_by[0] ? s->set_by : "?", when,
           s->previous[0] ? s->previous : "-");
}

static int run(struct ctl *c, struct vg_redis *r, const struct vg_routing *rt, const char *mode)
{
    struct vg_arm_state s;
    char known[256], by[128], host[64] = "";
    vg_routing_mode_names(rt, known, sizeof(known));
    if (!mode) {
        vg_status st = vg_arm_get(r, c->cfg.prefix, &s);
        if (st == VG_ERR_NOT_FOUND) {
            printf("%s (routing.mode: nobody has armed yet)\n", rt->modes[rt->default_mode]);
            return 0;
        }
        if (st != VG_OK) {
            fprintf(stderr, "vigilctl arm: %s\n", vg_err_detail());
            return 1;
        }
        print_state(&s);
        return 0;
    }
    if (vg_routing_mode(rt, mode) < 0) {
        fprintf(stderr, "vigilctl arm: \"%s\" is not a mode (modes: %s; name your own in "
                "routing.modes)\n", mode, known);
        return 2;
    }
    gethostname(host, sizeof(host) - 1);
    snprintf(by, sizeof(by), "vigilctl@%s", host[0] ? host : "?");
    /* Announced when NATS is reachable; stored in Redis either way, where
     * the notifiers look every few seconds. */
    if (ctl_connect(c) != VG_OK)
        fprintf(stderr, "vigilctl arm: NATS: %s; notifiers pick the mode up from Redis "
                "within seconds\n", vg_err_detail());
    if (vg_arm_set(r, c->bus, c->cfg.prefix, mode, by, &s) != VG_OK) {
        fprintf(stderr, "vigilctl arm: %s\n", vg_err_detail());
        return 1;
    }
    if (c->bus)
        natsConnection_FlushTimeout(vg_bus_nats(c->bus), 2000);
    print_state(&s);
    return 0;
}

int ctl_cmd_arm(struct ctl *c, int argc, char **argv)
{
    struct vg_routing *rt = calloc(1, sizeof(*rt));
    struct vg_redis *r = NULL;
    int rc = 1;
    if (argc > 2 || (argc == 2 && argv[1][0] == '-')) {
        fprintf(stderr, "usage: vigilctl arm [MODE]\n");
        free(rt);
        return 2;
    }
    if (!rt)
        return 1;
    if (vg_routing_load(rt, &c->cfg) != VG_OK) {
        fprintf(stderr, "vigilctl arm: configuration error: %s\n", vg_err_detail());
        rc = 2;
    } else if (vg_redis_create(&r, c->cfg.redis_url, 2000) != VG_OK) {
        fprintf(stderr, "vigilctl arm: %s\n", vg_err_detail());
    } else {
        rc = run(c, r, rt, argc == 2 ? argv[1] : NULL);
    }
    vg_redis_destroy(r);
    free(rt);
    return rc;
}
