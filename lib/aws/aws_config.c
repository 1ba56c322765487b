#include "aws/aws_config.h"

vg_status vg_aws_from_config(struct vg_aws **out, const struct vg_config *cfg)
{
    return vg_aws_from_config_capped(out, cfg, 0);
}

vg_status vg_aws_from_config_capped(struct vg_aws **out, const struct vg_config *cfg,
                                    int max_timeout_ms)
{
    const struct vg_aws_cfg *c = &cfg->aws;
    struct vg_aws *aws = NULL;
    int timeout = c->timeout_ms;
    if (max_timeout_ms > 0 && (timeout <= 0 || max_timeout_ms < timeout))
        timeout = max_timeout_ms;
    struct vg_aws_opts o = {
        .region = c->region[0] ? c->region : NULL,
        .creds = {
            .access_key_id = c->access_key_id[0] ? c->access_key_id : NULL,
            .secret_access_key = c->secret_access_key[0] ? c->secret_access_key : NULL,
            .profile = c->profile[0] ? c->profile : NULL,
        },
        .connect_timeout_ms = c->connect_timeout_ms < timeout ? c->connect_timeout_ms : timeout,
        .timeout_ms = timeout,
        .max_attempts = c->max_attempts,
    };
    vg_status st = vg_aws_create(&aws, &o);
    for (int i = 0; st == VG_OK && i < c->n_rate_limits; i++)
        st = vg_aws_set_rate_limit(aws, c->rate_limits[i].api, c->rate_limits[i].per_second,
                                   c->rate_limits[i].burst);
    if (st != VG_OK) {
        vg_aws_destroy(aws);
        return st;
    }
    *out = aws;
    return VG_OK;
}
