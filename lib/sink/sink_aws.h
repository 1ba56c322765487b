/* What the AWS sinks (sns, iot, kinesis) share: the rule of their endpoint
 * key, an AWS client whose attempts fit in one sink attempt, and how a
 * failure left after the client's own retries is classified. */
#ifndef VG_SINK_SINK_AWS_H
#define VG_SINK_SINK_AWS_H

#include <stddef.h>

#include "aws/client.h"
#include "config.h"
#include "sink/sink.h"
#include "status.h"

/* No AWS attempt gets less than this, however short the sink's timeout. */
#define VG_SINK_AWS_ATTEMPT_MIN_MS 1000

/* An endpoint as the client takes it: "https://" added to a bare host,
 * trailing '/' dropped; "" stays "" (the usual resolution). */
void vg_sink_aws_endpoint_normalise(const char *in, char *out, size_t cap);

/* VG_OK for "", "http(s)://host[:port]" (a trailing '/' allowed) or a bare
 * host; else VG_ERR_CONFIG naming where. A path would not be signed (each
 * request signs its own), and user@ would be signed as part of the host. */
vg_status vg_sink_aws_endpoint_check(const char *e, const char *where);

/* The timeout of each of the client's max_attempts attempts so that all of
 * them, with the longest backoff between them, end within timeout_ms; at
 * least VG_SINK_AWS_ATTEMPT_MIN_MS. max_attempts < 1: the client's default. */
int vg_sink_aws_attempt_ms(int timeout_ms, int max_attempts);

/* The sink's own client (one worker thread uses it) from root->aws, each
 * attempt capped so that one sink attempt stays within cfg->timeout_ms. */
vg_status vg_sink_aws_client(struct vg_aws **out, const struct vg_sink_cfg *cfg,
                             const struct vg_config *root);

/* The verdict on st, the failure of an AWS call, and code, its AWS error
 * code (vg_aws_last_error_code(); "" when the answer had none). */
enum vg_sink_verdict vg_sink_aws_verdict(vg_status st, const char *code);

#endif
