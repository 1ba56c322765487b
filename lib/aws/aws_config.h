/* The AWS client as the vigil configuration describes it. */
#ifndef VG_AWS_CONFIG_H
#define VG_AWS_CONFIG_H

#include "aws/client.h"
#include "config.h"

/* Create the client from cfg->aws: region, profile, explicit keys (if any),
 * timeouts, attempts, and the per-API rate limits. */
vg_status vg_aws_from_config(struct vg_aws **out, const struct vg_config *cfg);
/* The same, each attempt capped at max_timeout_ms (0: no cap): a caller with
 * a deadline (a detector stage) must not wait out the general AWS timeout. */
vg_status vg_aws_from_config_capped(struct vg_aws **out, const struct vg_config *cfg,
                                    int max_timeout_ms);

#endif
