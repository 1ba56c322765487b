/* Which decoded frames to analyse, and when. Three modes (sample:):
 *   fps        frames picked at the configured rate of source time;
 *   every_n    1 of every N decoded frames (seed 004's "capture rate");
 *   keyframes  keyframes only (the source tells the decoder to skip the
 *              rest), still at most fps of them per second, so an all-key
 *              stream such as MJPEG is not analysed at its full rate.
 * Files are paced to real time times `speed` (0 = as fast as possible). */
#ifndef CAP_SAMPLER_H
#define CAP_SAMPLER_H

#include <stdint.h>

struct cap_sampler {
    int mode;               /* enum vg_sample_mode */
    int64_t interval_us;    /* 1 / fps */
    int64_t tolerance_us;   /* pts jitter accepted when a frame is due */
    int every_n;
    uint64_t seen;          /* every_n: frames offered since the reset */
    double speed;
    int have_next;
    int64_t next_us;        /* source time the next sample is due */
    int have_clock;
    int64_t wall0_us, pts0_us; /* pacing: this monotonic time shows this pts */
};

struct cap_sampler_cfg {
    int mode;               /* enum vg_sample_mode */
    double fps;             /* fps and keyframes */
    int every_n;            /* every_n; values below 1 count as 1 */
    double speed;
};

void cap_sampler_init(struct cap_sampler *s, const struct cap_sampler_cfg *cfg);
/* Forget the schedule (after a seek, a loop or a reconnect): the next frame
 * offered is taken. */
void cap_sampler_reset(struct cap_sampler *s);
/* Non-zero when the frame at pts_ms should be analysed. key: the frame is a
 * keyframe (keyframes mode refuses the others, in case a decoder ignored the
 * request to skip them). */
int cap_sampler_take(struct cap_sampler *s, int64_t pts_ms, int key);
/* How long to wait before showing the frame at pts_ms so a file plays at
 * `speed`; 0 when it is due or speed is 0. now_us: monotonic clock. */
int64_t cap_sampler_wait_us(struct cap_sampler *s, int64_t pts_ms, int64_t now_us);

#endif
