#include "sampler.h"

#include "config.h"

/* A timestamp this far behind the schedule is a new start (a loop, a
 * camera restart), not a late frame. */
#define JUMP_BACK_US 1000000LL
/* Pacing that has fallen this far behind real time (slow machine) starts
 * again from the current frame rather than bursting to catch up; a wait this
 * long means the timestamps jumped ahead, not that the file is slow. */
#define MAX_LAG_US 1000000LL
#define MAX_WAIT_US 10000000LL

void cap_sampler_init(struct cap_sampler *s, const struct cap_sampler_cfg *cfg)
{
    s->mode = cfg->mode;
    s->interval_us = cfg->fps > 0 ? (int64_t)(1e6 / cfg->fps) : 0;
    s->tolerance_us = s->interval_us / 4 < 5000 ? s->interval_us / 4 : 5000;
    s->every_n = cfg->every_n > 1 ? cfg->every_n : 1;
    s->speed = cfg->speed > 0 ? cfg->speed : 0;
    cap_sampler_reset(s);
}

void cap_sampler_reset(struct cap_sampler *s)
{
    s->seen = 0;
    s->have_next = 0;
    s->next_us = 0;
    s->have_clock = 0;
    s->wall0_us = s->pts0_us = 0;
}

static int take_on_schedule(struct cap_sampler *s, int64_t pts_ms)
{
    int64_t pts = pts_ms * 1000;
    if (!s->have_next || pts < s->next_us - s->interval_us - JUMP_BACK_US) {
        s->next_us = pts;
        s->have_next = 1;
    }
    if (pts < s->next_us - s->tolerance_us)
        return 0;
    /* Advance by whole intervals, so the long-run rate is exactly fps even
     * when frame times do not divide the interval. */
    s->next_us += s->interval_us;
    if (s->next_us <= pts)      /* a gap in the source: do not burst to catch up */
        s->next_us = pts + s->interval_us;
    return 1;
}

int cap_sampler_take(struct cap_sampler *s, int64_t pts_ms, int key)
{
    switch (s->mode) {
    case VG_SAMPLE_EVERY_N:
        /* Counted in frames, not time: the first frame, then every Nth. */
        return s->seen++ % (uint64_t)s->every_n == 0;
    case VG_SAMPLE_KEYFRAMES:
        return key && take_on_schedule(s, pts_ms);
    default:
        return take_on_schedule(s, pts_ms);
    }
}

int64_t cap_sampler_wait_us(struct cap_sampler *s, int64_t pts_ms, int64_t now_us)
{
    if (s->speed <= 0)
        return 0;
    int64_t pts = pts_ms * 1000;
    if (s->have_clock) {
        int64_t wait = s->wall0_us + (int64_t)((double)(pts - s->pts0_us) / s->speed) - now_us;
        if (wait >= -MAX_LAG_US && wait <= MAX_WAIT_US)
            return wait > 0 ? wait : 0;
    }
    s->have_clock = 1;
    s->wall0_us = now_us;
    s->pts0_us = pts;
    return 0;
}
