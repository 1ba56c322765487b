#ifndef VG_TIMEUTIL_H
#define VG_TIMEUTIL_H

#include <stdint.h>

int64_t vg_now_us(void);    /* wall clock, µs since the epoch */
int64_t vg_mono_us(void);   /* monotonic clock, µs */
void vg_sleep_us(int64_t us);

#endif
