/* Exponential backoff with full jitter: the delay before retry `attempt`
 * (0 = first retry) is uniform in [0, min(cap, base * 2^attempt)], so many
 * clients retrying the same failed endpoint spread out instead of arriving
 * in waves. */
#ifndef NTF_BACKOFF_H
#define NTF_BACKOFF_H

#include <stdint.h>

/* Embedded random state (one per thread that draws delays). */
struct ntf_backoff {
    uint64_t state;
};

/* seed 0: seed from the clocks and the pid. */
void ntf_backoff_init(struct ntf_backoff *b, uint64_t seed);

/* min(cap_ms, base_ms * 2^attempt), without overflow; 0 if base_ms <= 0. */
int64_t ntf_backoff_ceiling_ms(int base_ms, int cap_ms, int attempt);

/* A jittered delay in [0, ntf_backoff_ceiling_ms(base_ms, cap_ms, attempt)]. */
int64_t ntf_backoff_delay_ms(struct ntf_backoff *b, int base_ms, int cap_ms, int attempt);

#endif
