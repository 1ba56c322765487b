/* The AWS client as the vigil configuration describes it. */
#ifndef VG_AWS_CONFIG_H
#define VG_AWS_CONFIG_H

#include "aws/client.h"
#include "config.h"

/* Create the client from cfg->aws: region, profile, explicit keys (if any),
 * timeouts, attempts, and the per-API rate limits. */
vg_status vg_aws_from_config(struct vg_aws **out, const struct vg_config *cfg);

#endif
