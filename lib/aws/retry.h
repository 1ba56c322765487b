/* Retry policy of the AWS client, after the SDKs' "standard" mode:
 * which answers are retried, full-jitter backoff, a retry budget that stops
 * retry storms when a service is down, and client-side token buckets per
 * API so a burst of frames cannot exceed the account's TPS quota. */
#ifndef VG_AWS_RETRY_H
#define VG_AWS_RETRY_H

#include <pthread.h>
#include <stdint.h>

#include "status.h"

#define VG_AWS_MAX_RATE_LIMITS 32
#define VG_AWS_RETRY_QUOTA 500      /* tokens in the retry budget */
#define VG_AWS_RETRY_COST 5         /* a retry takes this many */
#define VG_AWS_RETRY_TIMEOUT_COST 10 /* a retry after a timeout, this many */
/* The client's defaults (struct vg_aws_opts, 0 values): attempts, and the
 * backoff before retry i at most min(cap, base * 2^i). */
#define VG_AWS_DEFAULT_MAX_ATTEMPTS 3
#define VG_AWS_RETRY_BASE_MS 100
#define VG_AWS_RETRY_CAP_MS 20000

struct vg_aws_bucket {
    char api[64];
    double rate, burst, tokens;
    int64_t last_us;
};

struct vg_aws_retry {
    pthread_mutex_t lock;
    int quota;
    int n_buckets;
    struct vg_aws_bucket buckets[VG_AWS_MAX_RATE_LIMITS];
};

void vg_aws_retry_init(struct vg_aws_retry *r);
void vg_aws_retry_cleanup(struct vg_aws_retry *r);

/* 1 when the answer (HTTP status, AWS error code) is worth another try. */
int vg_aws_retry_is_retryable(long http, const char *code);
int vg_aws_retry_is_throttle(long http, const char *code);

/* Full jitter: uniform in [0, min(cap, base * 2^attempt)]. */
int64_t vg_aws_retry_delay_ms(int base_ms, int cap_ms, int attempt);

/* Take from the retry budget; 0 when it is spent (then do not retry). */
int vg_aws_retry_acquire(struct vg_aws_retry *r, int after_timeout);
/* A call succeeded: refund (a retried success gives its cost back). */
void vg_aws_retry_success(struct vg_aws_retry *r, int was_retried);

vg_status vg_aws_retry_set_rate(struct vg_aws_retry *r, const char *api, double per_second,
                                double burst);
/* Wait for a token of api's bucket (no bucket: at once); VG_ERR_THROTTLED
 * when none comes within timeout_ms. */
vg_status vg_aws_retry_take_rate(struct vg_aws_retry *r, const char *api, int timeout_ms);

#endif
