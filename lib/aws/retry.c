#include "aws/retry.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "timeutil.h"

static const char *const throttle_codes[] = {
    "Throttling", "ThrottlingException", "ThrottledException", "RequestThrottledException",
    "TooManyRequestsException", "ProvisionedThroughputExceededException",
    "TransactionInProgressException", "RequestLimitExceeded", "BandwidthLimitExceeded",
    "LimitExceededException", "RequestThrottled", "SlowDown", "PriorRequestNotComplete",
    "EC2ThrottledException", "Throttled", "ClientLimitExceededException",
    "KMSThrottlingException",   /* Kinesis: the stream's KMS key is throttled */
};

static const char *const transient_codes[] = {
    "RequestTimeout", "RequestTimeoutException", "InternalError", "InternalFailure",
    "InternalServerError", "InternalServerErrorException", "ServiceUnavailable",
    "ServiceUnavailableException", "ExpiredToken", "ExpiredTokenException",
};

static int in(const char *code, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(code, list[i]))
            return 1;
    return 0;
}

int vg_aws_retry_is_throttle(long http, const char *code)
{
    return http == 429 || in(code, throttle_codes, sizeof(throttle_codes) / sizeof(*throttle_codes));
}

int vg_aws_retry_is_retryable(long http, const char *code)
{
    return vg_aws_retry_is_throttle(http, code) || http == 500 || http == 502 || http == 503 ||
           http == 504 || in(code, transient_codes, sizeof(transient_codes) / sizeof(*transient_codes));
}

int64_t vg_aws_retry_delay_ms(int base_ms, int cap_ms, int attempt)
{
    int64_t ceiling = base_ms;
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    if (ceiling > cap_ms)
        ceiling = cap_ms;
    uint32_t rnd = 0;
    if (RAND_bytes((unsigned char *)&rnd, sizeof(rnd)) != 1)
        rnd = (uint32_t)vg_mono_us();
    return (int64_t)((double)rnd / 4294967295.0 * (double)ceiling);
}

void vg_aws_retry_init(struct vg_aws_retry *r)
{
    memset(r, 0, sizeof(*r));
    pthread_mutex_init(&r->lock, NULL);
    r->quota = VG_AWS_RETRY_QUOTA;
}

void vg_aws_retry_cleanup(struct vg_aws_retry *r) { pthread_mutex_destroy(&r->lock); }

int vg_aws_retry_acquire(struct vg_aws_retry *r, int after_timeout)
{
    int cost = after_timeout ? VG_AWS_RETRY_TIMEOUT_COST : VG_AWS_RETRY_COST;
    pthread_mutex_lock(&r->lock);
    int ok = r->quota >= cost;
    if (ok)
        r->quota -= cost;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

void vg_aws_retry_success(struct vg_aws_retry *r, int was_retried)
{
    pthread_mutex_lock(&r->lock);
    r->quota += was_retried ? VG_AWS_RETRY_COST : 1;
    if (r->quota > VG_AWS_RETRY_QUOTA)
        r->quota = VG_AWS_RETRY_QUOTA;
    pthread_mutex_unlock(&r->lock);
}

vg_status vg_aws_retry_set_rate(struct vg_aws_retry *r, const char *api, double per_second,
                                double burst)
{
    if (per_second <= 0 || burst < 1)
        return vg_errf(VG_ERR_INVALID, "rate limit for %s: rate must be > 0 and burst >= 1", api);
    vg_status st = VG_OK;
    pthread_mutex_lock(&r->lock);
    struct vg_aws_bucket *b = NULL;
    for (int i = 0; i < r->n_buckets && !b; i++)
        if (!strcmp(r->buckets[i].api, api))
            b = &r->buckets[i];
    if (!b && r->n_buckets < VG_AWS_MAX_RATE_LIMITS)
        b = &r->buckets[r->n_buckets++];
    if (b) {
        snprintf(b->api, sizeof(b->api), "%s", api);
        b->rate = per_second;
        b->burst = b->tokens = burst;
        b->last_us = vg_mono_us();
    } else {
        st = vg_errf(VG_ERR_TOO_LARGE, "more than %d rate limits", VG_AWS_MAX_RATE_LIMITS);
    }
    pthread_mutex_unlock(&r->lock);
    return st;
}

/* µs until a token is there (0: taken now). Called with the lock held. */
static int64_t try_take(struct vg_aws_bucket *b)
{
    int64_t now = vg_mono_us();
    b->tokens += (double)(now - b->last_us) / 1e6 * b->rate;
    if (b->tokens > b->burst)
        b->tokens = b->burst;
    b->last_us = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 0;
    }
    return (int64_t)((1 - b->tokens) / b->rate * 1e6) + 1;
}

vg_status vg_aws_retry_take_rate(struct vg_aws_retry *r, const char *api, int timeout_ms)
{
    int64_t deadline = vg_mono_us() + (int64_t)timeout_ms * 1000;
    for (;;) {
        int64_t wait = 0;
        pthread_mutex_lock(&r->lock);
        for (int i = 0; i < r->n_buckets; i++)
            if (!strcmp(r->buckets[i].api, api))
                wait = try_take(&r->buckets[i]);
        pthread_mutex_unlock(&r->lock);
        if (wait == 0)
            return VG_OK;
        if (vg_mono_us() + wait > deadline)
            return VG_ERR_THROTTLED;
        vg_sleep_us(wait);
    }
}
