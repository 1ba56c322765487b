#include "backoff.h"

#include <unistd.h>

#include "timeutil.h"

/* splitmix64: tiny, fast, and good enough to spread retries; not for secrets. */
static uint64_t next_u64(struct ntf_backoff *b)
{
    uint64_t z = (b->state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

void ntf_backoff_init(struct ntf_backoff *b, uint64_t seed)
{
    if (seed == 0)
        seed = (uint64_t)vg_now_us() ^ ((uint64_t)vg_mono_us() << 20) ^ (uint64_t)getpid();
    b->state = seed;
}

int64_t ntf_backoff_ceiling_ms(int base_ms, int cap_ms, int attempt)
{
    if (base_ms <= 0 || cap_ms <= 0)
        return 0;
    if (attempt < 0)
        attempt = 0;
    int64_t ceiling = base_ms;
    /* Doubling stops at the cap, so this cannot overflow for any attempt. */
    for (int i = 0; i < attempt && ceiling < cap_ms; i++)
        ceiling *= 2;
    return ceiling < cap_ms ? ceiling : cap_ms;
}

int64_t ntf_backoff_delay_ms(struct ntf_backoff *b, int base_ms, int cap_ms, int attempt)
{
    int64_t ceiling = ntf_backoff_ceiling_ms(base_ms, cap_ms, attempt);
    if (ceiling <= 0)
        return 0;
    /* Modulo bias is below 2^-32 for any ceiling that fits an int. */
    return (int64_t)(next_u64(b) % (uint64_t)(ceiling + 1));
}
