/* Which decoded frames to analyse, and when: frames are picked at the
 * configured rate of source time, and files are paced to real time times
 * `speed` (0 = as fast as possible). */
#ifndef CAP_SAMPLER_H
#define CAP_SAMPLER_H

#include <stdint.h>

struct cap_sampler {
    int64_t interval_us;    /* 1 / fps */
    int64_t tolerance_us;   /* pts jitter accepted when a frame is due */
    double speed;
    int have_next;
    int64_t next_us;        /* source time the next sample is due */
    int have_clock;
    int64_t wall0_us, pts0_us; /* pacing: this monotonic time shows this pts */
};

void cap_sampler_init(struct cap_sampler *s, double fps, double speed);
/* Forget the schedule (after a seek, a loop or a reconnect). */
void cap_sampler_reset(struct cap_sampler *s);
/* Non-zero when the frame at pts_ms should be analysed. */
int cap_sampler_take(struct cap_sampler *s, int64_t pts_ms);
/* How long to wait before showing the frame at pts_ms so a file plays at
 * `speed`; 0 when it is due or speed is 0. now_us: monotonic clock. */
int64_t cap_sampler_wait_us(struct cap_sampler *s, int64_t pts_ms, int64_t now_us);

#endif
