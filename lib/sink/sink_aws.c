/* What the AWS sinks share; see sink_aws.h. */
#include "sink/sink_aws.h"

#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "aws/aws_config.h"
#include "aws/retry.h"

void vg_sink_aws_endpoint_normalise(const char *in, char *out, size_t cap)
{
    snprintf(out, cap, "%s%s", !in[0] || strstr(in, "://") ? "" : "https://", in);
    for (size_t n = strlen(out); n > 0 && out[n - 1] == '/'; n--)
        out[n - 1] = '\0';
}

vg_status vg_sink_aws_endpoint_check(const char *e, const char *where)
{
    char norm[VG_URL_MAX + 16];
    if (!e[0])
        return VG_OK;
    vg_sink_aws_endpoint_normalise(e, norm, sizeof(norm));
    /* "http://" is "http:" once its slashes are dropped: no host. */
    const char *host = !strncmp(norm, "http://", 7)    ? norm + 7
                       : !strncmp(norm, "https://", 8) ? norm + 8
                                                       : NULL;
    if (!host || !*host || strpbrk(host, "/?#@ \t\r\n"))
        return vg_errf(VG_ERR_CONFIG, "%s: endpoint \"%s\" must be http(s)://host[:port] or a "
                       "host name, without a path", where, e);
    return VG_OK;
}

int vg_sink_aws_attempt_ms(int timeout_ms, int max_attempts)
{
    /* aws_config.c leaves the backoff at the client's defaults; the wait
     * before retry i is at most min(cap, base * 2^i) (retry.c). */
    int64_t backoff = 0, ceiling = VG_AWS_RETRY_BASE_MS;
    if (max_attempts < 1)
        max_attempts = VG_AWS_DEFAULT_MAX_ATTEMPTS;
    for (int i = 0; i + 1 < max_attempts; i++, ceiling *= 2)
        backoff += ceiling < VG_AWS_RETRY_CAP_MS ? ceiling : VG_AWS_RETRY_CAP_MS;
    int64_t each = ((int64_t)timeout_ms - backoff) / max_attempts;
    return each < VG_SINK_AWS_ATTEMPT_MIN_MS ? VG_SINK_AWS_ATTEMPT_MIN_MS : (int)each;
}

vg_status vg_sink_aws_client(struct vg_aws **out, const struct vg_sink_cfg *cfg,
                             const struct vg_config *root)
{
    return vg_aws_from_config_capped(
        out, root, vg_sink_aws_attempt_ms(cfg->timeout_ms, root->aws.max_attempts));
}

enum vg_sink_verdict vg_sink_aws_verdict(vg_status st, const char *code)
{
    if (!code)
        code = "";
    switch (st) {
    case VG_ERR_THROTTLED:      /* still, after the client's own retries */
    case VG_ERR_TIMEOUT:
    case VG_ERR_UNAVAILABLE:    /* network, 5xx */
    case VG_ERR_NOMEM:
    case VG_ERR_DECODE:         /* a 2xx without its id: it may have been taken */
        return VG_SINK_RETRY;
    case VG_ERR_AUTH:
        /* No code: no credentials could be had (the role's endpoint was
         * down); "Expired": the client dropped them and fetches new ones.
         * A refusal (a policy, a wrong key or signature) stays a refusal. */
        return !code[0] || strstr(code, "Expired") ? VG_SINK_RETRY : VG_SINK_PERMANENT;
    case VG_ERR_AWS:
        /* A 4xx that mends by itself: a KMS key's throttling, a timeout. */
        return vg_aws_retry_is_retryable(0, code) || !strncmp(code, "KMSThrottling", 13)
                   ? VG_SINK_RETRY
                   : VG_SINK_PERMANENT;
    default:                    /* INVALID, TOO_LARGE, NOT_FOUND, CONFIG: the alert, the target */
        return VG_SINK_PERMANENT;
    }
}
