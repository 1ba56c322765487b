/* The configured time zone (top-level "timezone", seed 004's setting): the
 * one the templates' {time} and the routing schedules use. It is the
 * process's zone (TZ), set once at start-up before threads exist, so
 * localtime_r in any thread sees it and DST comes from the system's tzdata. */
#ifndef VG_TZ_H
#define VG_TZ_H

#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "status.h"

/* Use the IANA zone name ("Europe/Berlin", "UTC"); "" keeps the system's.
 * VG_ERR_CONFIG when the zone is unknown to the system's tzdata. */
vg_status vg_tz_set(const char *name);

/* Local time of us (µs since the epoch) in the configured zone. */
void vg_tz_local(int64_t us, struct tm *out);

/* strftime of us in the configured zone into out ("" on failure). */
void vg_tz_format(int64_t us, const char *fmt, char *out, size_t cap);

#endif
