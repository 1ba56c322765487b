#include "metrics.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_METRICS 1024
#define N_BUCKETS 12

/* Upper bounds in µs; the +Inf bucket is implicit. */
static const int64_t bucket_us[N_BUCKETS] = {
    1000, 5000, 10000, 25000, 50000, 100000, 250000, 500000, 1000000, 2500000, 10000000,
    30000000,
};

enum kind { COUNTER, GAUGE, HISTOGRAM };

struct vg_counter {
    const char *name;
    char *labels;               /* 'detector="opencv"' or NULL; owned */
    const char *help;
    enum kind kind;
    _Atomic int64_t v;
};

struct vg_histogram {
    struct vg_counter base;     /* kind HISTOGRAM; v = count */
    _Atomic int64_t sum_us;
    _Atomic int64_t buckets[N_BUCKETS];
};

static pthread_mutex_t reg_lock = PTHREAD_MUTEX_INITIALIZER;
static struct vg_counter *metrics[MAX_METRICS];
static int n_metrics;

/* Unknown or overflowing registrations get a sink that is never rendered,
 * so callers never check for NULL on a hot path. */
static struct vg_histogram overflow;

static int same_labels(const char *a, const char *b)
{
    return (!a && !b) || (a && b && !strcmp(a, b));
}

static struct vg_counter *get(const char *name, const char *labels, const char *help,
                              enum kind kind)
{
    struct vg_counter *m = NULL;
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < n_metrics; i++) {
        if (!strcmp(metrics[i]->name, name) && same_labels(metrics[i]->labels, labels)) {
            m = metrics[i];
            goto out;
        }
    }
    if (n_metrics == MAX_METRICS) {
        m = &overflow.base;
        goto out;
    }
    if (kind == HISTOGRAM)
        m = calloc(1, sizeof(struct vg_histogram));
    else
        m = calloc(1, sizeof(struct vg_counter));
    if (!m || (labels && !(m->labels = strdup(labels)))) {
        free(m);
        m = &overflow.base;
        goto out;
    }
    m->name = name;
    m->help = help;
    m->kind = kind;
    metrics[n_metrics++] = m;
out:
    pthread_mutex_unlock(&reg_lock);
    return m;
}

struct vg_counter *vg_counter_get(const char *name, const char *help)
{
    return get(name, NULL, help, COUNTER);
}

struct vg_counter *vg_counter_get_labeled(const char *name, const char *labels,
                                          const char *help)
{
    return get(name, labels, help, COUNTER);
}

struct vg_counter *vg_gauge_get(const char *name, const char *help)
{
    return get(name, NULL, help, GAUGE);
}

struct vg_counter *vg_gauge_get_labeled(const char *name, const char *labels, const char *help)
{
    return get(name, labels, help, GAUGE);
}

struct vg_histogram *vg_histogram_get(const char *name, const char *help)
{
    struct vg_counter *m = get(name, NULL, help, HISTOGRAM);
    return m->kind == HISTOGRAM ? (struct vg_histogram *)m : &overflow;
}

void vg_counter_add(struct vg_counter *c, uint64_t n) { atomic_fetch_add(&c->v, (int64_t)n); }
void vg_counter_inc(struct vg_counter *c) { atomic_fetch_add(&c->v, 1); }
void vg_gauge_set(struct vg_counter *g, int64_t v) { atomic_store(&g->v, v); }
uint64_t vg_counter_value(const struct vg_counter *c) { return (uint64_t)atomic_load(&c->v); }

void vg_histogram_observe_us(struct vg_histogram *h, int64_t us)
{
    if (us < 0)
        us = 0;
    for (int i = 0; i < N_BUCKETS; i++)
        if (us <= bucket_us[i])
            atomic_fetch_add(&h->buckets[i], 1);
    atomic_fetch_add(&h->sum_us, us);
    atomic_fetch_add(&h->base.v, 1);
}

struct buf {
    char *p;
    size_t len, cap;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (n < 0)
            return;
        if (b->p && b->len + (size_t)n < b->cap) {
            b->len += (size_t)n;
            return;
        }
        size_t cap = (b->cap ? b->cap * 2 : 4096) + (size_t)n;
        char *p = realloc(b->p, cap);
        if (!p)
            return;
        b->p = p;
        b->cap = cap;
    }
}

static void render_histogram(struct buf *b, struct vg_histogram *h)
{
    const char *name = h->base.name;
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, h->base.help, name);
    for (int i = 0; i < N_BUCKETS; i++)
        put(b, "%s_bucket{le=\"%g\"} %lld\n", name, (double)bucket_us[i] / 1e6,
            (long long)atomic_load(&h->buckets[i]));
    long long count = (long long)atomic_load(&h->base.v);
    put(b, "%s_bucket{le=\"+Inf\"} %lld\n", name, count);
    put(b, "%s_sum %.6f\n%s_count %lld\n", name, (double)atomic_load(&h->sum_us) / 1e6, name,
        count);
}

char *vg_metrics_render(void)
{
    struct buf b = {0};
    put(&b, "%s", "");
    pthread_mutex_lock(&reg_lock);
    for (int i = 0; i < n_metrics; i++) {
        struct vg_counter *m = metrics[i];
        if (m->kind == HISTOGRAM) {
            render_histogram(&b, (struct vg_histogram *)m);
            continue;
        }
        int seen = 0; /* a family (same name, other labels) is rendered once, together */
        for (int j = 0; j < i && !seen; j++)
            seen = !strcmp(metrics[j]->name, m->name);
        if (seen)
            continue;
        put(&b, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
            m->kind == COUNTER ? "counter" : "gauge");
        for (int j = i; j < n_metrics; j++) {
            const struct vg_counter *o = metrics[j];
            if (strcmp(o->name, m->name))
                continue;
            put(&b, "%s%s%s%s %lld\n", o->name, o->labels ? "{" : "",
                o->labels ? o->labels : "", o->labels ? "}" : "", (long long)atomic_load(&o->v));
        }
    }
    pthread_mutex_unlock(&reg_lock);
    return b.p;
}
