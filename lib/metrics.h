/* Process-wide Prometheus metrics: counters, gauges and latency histograms. */
#ifndef VG_METRICS_H
#define VG_METRICS_H

#include <stddef.h>
#include <stdint.h>

struct vg_counter;
struct vg_histogram;

/* Register (or find) a metric. name is the full Prometheus name, e.g.
 * "vigil_dispatch_frames_total"; the strings must outlive the process. */
struct vg_counter *vg_counter_get(const char *name, const char *help);
/* A counter of a family with labels, e.g. ("vigil_detector_calls_total",
 * "detector=\"opencv\""); the labels text is copied. */
struct vg_counter *vg_counter_get_labeled(const char *name, const char *labels,
                                          const char *help);
struct vg_counter *vg_gauge_get(const char *name, const char *help);
/* A gauge of a family with labels ("vigil_notifier_arm_mode", "mode=\"away\""). */
struct vg_counter *vg_gauge_get_labeled(const char *name, const char *labels, const char *help);
void vg_counter_add(struct vg_counter *c, uint64_t n);
void vg_counter_inc(struct vg_counter *c);
void vg_gauge_set(struct vg_counter *g, int64_t v);
uint64_t vg_counter_value(const struct vg_counter *c);

/* Latency histogram in seconds, fixed buckets from 1 ms to 30 s. */
struct vg_histogram *vg_histogram_get(const char *name, const char *help);
void vg_histogram_observe_us(struct vg_histogram *h, int64_t us);

/* Prometheus text exposition into a malloc'ed string. */
char *vg_metrics_render(void);

#endif
