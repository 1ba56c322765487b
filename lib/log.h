/* JSON-lines logging on stderr: {"ts","level","svc","event","camera","msg"}. */
#ifndef VG_LOG_H
#define VG_LOG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

enum vg_log_level { VG_LOG_DEBUG, VG_LOG_INFO, VG_LOG_WARN, VG_LOG_ERROR };

void vg_log_setup(const char *svc, enum vg_log_level level);
int vg_log_parse_level(const char *s, enum vg_log_level *out); /* 0 on success */
int vg_log_enabled(enum vg_log_level level);

/* event: stable dotted name ("frame.published"); camera may be NULL. */
void vg_log(enum vg_log_level level, const char *event, const char *camera,
            const char *fmt, ...) __attribute__((format(printf, 4, 5)));

#define VG_DEBUG(ev, cam, ...) \
    do { if (vg_log_enabled(VG_LOG_DEBUG)) vg_log(VG_LOG_DEBUG, ev, cam, __VA_ARGS__); } while (0)
#define VG_INFO(ev, cam, ...) vg_log(VG_LOG_INFO, ev, cam, __VA_ARGS__)
#define VG_WARN(ev, cam, ...) vg_log(VG_LOG_WARN, ev, cam, __VA_ARGS__)
#define VG_ERROR(ev, cam, ...) vg_log(VG_LOG_ERROR, ev, cam, __VA_ARGS__)

/* Rate limit (info and above; debug is never limited): per (event, camera)
 * the first `burst` lines of each `interval_ms` are written, the rest are
 * counted in vigil_log_suppressed_total and reported by one
 * {"event":"log.suppressed","suppressed_event":EVENT,"suppressed":N} line
 * once the interval is over. burst 0 turns the limit off. */
#define VG_LOG_RATE_BURST 10
#define VG_LOG_RATE_INTERVAL_MS 10000
void vg_log_set_rate_limit(unsigned burst, unsigned interval_ms);
/* Write the pending "log.suppressed" reports now (also done at exit). */
void vg_log_flush(void);
/* For tests: a monotonic clock in ms (NULL: the real one), and where lines
 * go (NULL: stderr). */
void vg_log_set_clock(int64_t (*now_ms)(void));
void vg_log_set_stream(FILE *f);

/* Append s to out as a JSON string body (no quotes), escaping as needed.
 * Returns the number of bytes written (always < cap, NUL-terminated). */
size_t vg_json_escape(char *out, size_t cap, const char *s);

#endif
