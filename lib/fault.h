/* Test hooks: die on purpose at a named point, so a test can prove what a
 * crash there leaves behind (e.g. dedupe's pending alerts). Compiled into
 * every build and inert unless the environment variable VIGIL_FAULT names
 * the point (a comma-separated list: VIGIL_FAULT=dedupe.after_window).
 * Never set it in production. The points are listed in
 * docs/configuration.md ("Test hooks"). */
#ifndef VG_FAULT_H
#define VG_FAULT_H

/* When VIGIL_FAULT names point: log "fault.injected" and SIGKILL this
 * process, as `kill -9` would (no cleanup, no flush, no drain). */
void vg_fault_point(const char *point);

/* 1 when VIGIL_FAULT names point (for tests of the hook itself). */
int vg_fault_armed(const char *point);

#endif
