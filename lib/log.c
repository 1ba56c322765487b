#include "log.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "metrics.h"

static char svc_name[32] = "vigil";
static enum vg_log_level min_level = VG_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

/* ---- rate limiting ----------------------------------------------------
 * Per (event, camera): the first `burst` lines of each interval are
 * written, the rest counted; one "log.suppressed" line reports them once
 * the interval is over. A fixed open-addressed table under one mutex, so
 * no allocation per line; a key that finds no slot is written unlimited
 * (losing a line would be worse than a few extra ones). */
#define RL_SLOTS 256
#define RL_PROBES 8
#define RL_EVENT_MAX 64
#define RL_CAMERA_MAX 64
#define RL_SWEEP_MS 1000
#define RL_REPORTS_MAX 16 /* reports written per sweep; the rest wait */

struct rl_slot {
    uint64_t hash; /* 0: free */
    int64_t window_start_ms;
    uint32_t written, suppressed;
    char event[RL_EVENT_MAX];
    char camera[RL_CAMERA_MAX];
};

/* A report taken out of the table, written after the lock is dropped. */
struct rl_report {
    char event[RL_EVENT_MAX];
    char camera[RL_CAMERA_MAX];
    uint32_t suppressed;
};

static pthread_mutex_t rl_lock = PTHREAD_MUTEX_INITIALIZER;
static struct rl_slot rl_table[RL_SLOTS];
static unsigned rl_burst = VG_LOG_RATE_BURST;
static int64_t rl_interval_ms = VG_LOG_RATE_INTERVAL_MS;
static int64_t rl_next_sweep_ms;
static int64_t (*rl_clock)(void);
static FILE *log_stream;
static struct vg_counter *suppressed_total;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;

static void flush_at_exit(void) { vg_log_flush(); }

static void init_once_fn(void)
{
    suppressed_total = vg_counter_get("vigil_log_suppressed_total",
                                      "Log lines not written by the per-event rate limit");
    atexit(flush_at_exit);
}

static int64_t mono_ms(void)
{
    if (rl_clock)
        return rl_clock();
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static FILE *out_stream(void) { return log_stream ? log_stream : stderr; }

static void reset_table(void)
{
    pthread_mutex_lock(&rl_lock);
    memset(rl_table, 0, sizeof(rl_table));
    rl_next_sweep_ms = 0;
    pthread_mutex_unlock(&rl_lock);
}

/* A new setup starts fresh windows, after reporting what the old ones held. */
void vg_log_setup(const char *svc, enum vg_log_level level)
{
    pthread_once(&init_once, init_once_fn);
    vg_log_flush();
    reset_table();
    snprintf(svc_name, sizeof(svc_name), "%s", svc);
    min_level = level;
}

void vg_log_set_rate_limit(unsigned burst, unsigned interval_ms)
{
    pthread_mutex_lock(&rl_lock);
    __atomic_store_n(&rl_burst, burst, __ATOMIC_RELAXED);
    rl_interval_ms = interval_ms ? interval_ms : 1;
    pthread_mutex_unlock(&rl_lock);
    reset_table();
}

void vg_log_set_clock(int64_t (*now_ms)(void)) { rl_clock = now_ms; }
void vg_log_set_stream(FILE *f) { log_stream = f; }

int vg_log_parse_level(const char *s, enum vg_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum vg_log_level)i;
            return 0;
        }
    }
    return -1;
}

int vg_log_enabled(enum vg_log_level level) { return level >= min_level; }

size_t vg_json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (; s && *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

static uint64_t key_hash(const char *event, const char *camera)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (const char *p = event; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    h = (h ^ 0xff) * 1099511628211ULL; /* separator: ("a","bc") != ("ab","c") */
    for (const char *p = camera; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ULL;
    return h ? h : 1;
}

static int slot_is(const struct rl_slot *s, uint64_t h, const char *event, const char *camera)
{
    return s->hash == h && !strcmp(s->event, event) && !strcmp(s->camera, camera);
}

/* Move a finished window's count into r (if any) and start a new window. */
static int roll(struct rl_slot *s, int64_t now, struct rl_report *r)
{
    int reported = 0;
    if (s->suppressed && r) {
        memcpy(r->event, s->event, sizeof(r->event));
        memcpy(r->camera, s->camera, sizeof(r->camera));
        r->suppressed = s->suppressed;
        reported = 1;
    }
    s->window_start_ms = now;
    s->written = 0;
    s->suppressed = 0;
    return reported;
}

/* Reports of finished windows, at most cap of them; caller holds rl_lock. */
static int sweep(int64_t now, struct rl_report *r, int cap, int all)
{
    int n = 0;
    for (int i = 0; i < RL_SLOTS && n < cap; i++) {
        struct rl_slot *s = &rl_table[i];
        if (s->hash && s->suppressed && (all || now - s->window_start_ms >= rl_interval_ms))
            n += roll(s, now, &r[n]);
    }
    return n;
}

/* 1: write the line, 0: counted instead. *n_reports reports to write. */
static int admit(const char *event, const char *camera, struct rl_report *r, int *n_reports)
{
    if (!__atomic_load_n(&rl_burst, __ATOMIC_RELAXED) || strlen(event) >= RL_EVENT_MAX ||
        strlen(camera) >= RL_CAMERA_MAX)
        return 1;
    uint64_t h = key_hash(event, camera);
    int64_t now = mono_ms();
    int write = 1;
    pthread_mutex_lock(&rl_lock);
    struct rl_slot *s = NULL, *reuse = NULL;
    for (int i = 0; i < RL_PROBES && !s; i++) {
        struct rl_slot *c = &rl_table[(h + (uint64_t)i) % RL_SLOTS];
        if (slot_is(c, h, event, camera))
            s = c;
        else if (!reuse && (!c->hash || (!c->suppressed &&
                                         now - c->window_start_ms >= rl_interval_ms)))
            reuse = c; /* free, or idle with nothing left to report */
    }
    if (!s && reuse) {
        s = reuse;
        s->hash = h;
        snprintf(s->event, sizeof(s->event), "%s", event);
        snprintf(s->camera, sizeof(s->camera), "%s", camera);
        roll(s, now, NULL);
    }
    if (s) {
        if (now - s->window_start_ms >= rl_interval_ms)
            *n_reports += roll(s, now, &r[*n_reports]);
        if (s->written < rl_burst)
            s->written++;
        else {
            s->suppressed++;
            write = 0;
        }
    }
    if (now >= rl_next_sweep_ms) {
        rl_next_sweep_ms = now + RL_SWEEP_MS;
        *n_reports += sweep(now, r + *n_reports, RL_REPORTS_MAX - *n_reports, 0);
    }
    pthread_mutex_unlock(&rl_lock);
    if (!write && suppressed_total)
        vg_counter_inc(suppressed_total);
    return write;
}

static void timestamp(char ts[40])
{
    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(ts, 40, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, 40 - k, ".%03dZ", (int)(tv.tv_usec / 1000));
}

static void write_line(const char *line, int n, size_t cap)
{
    if (n > 0)
        fwrite(line, 1, (size_t)n < cap ? (size_t)n : cap - 1, out_stream());
}

static void write_reports(const struct rl_report *r, int n)
{
    char ts[40], ecam[160], camf[180], line[800];
    long secs = (long)((rl_interval_ms + 999) / 1000);
    for (int i = 0; i < n; i++) {
        timestamp(ts);
        camf[0] = '\0';
        if (r[i].camera[0]) {
            vg_json_escape(ecam, sizeof(ecam), r[i].camera);
            snprintf(camf, sizeof(camf), "\"camera\":\"%s\",", ecam);
        }
        int k = snprintf(line, sizeof(line),
                         "{\"ts\":\"%s\",\"level\":\"warn\",\"svc\":\"%s\","
                         "\"event\":\"log.suppressed\",%s\"suppressed_event\":\"%s\","
                         "\"suppressed\":%u,\"msg\":\"%s: %u more lines in the last %ld s\"}\n",
                         ts, svc_name, camf, r[i].event, r[i].suppressed, r[i].event,
                         r[i].suppressed, secs);
        write_line(line, k, sizeof(line));
    }
}

void vg_log_flush(void)
{
    struct rl_report r[RL_REPORTS_MAX];
    int n;
    do {
        pthread_mutex_lock(&rl_lock);
        n = sweep(mono_ms(), r, RL_REPORTS_MAX, 1);
        pthread_mutex_unlock(&rl_lock);
        write_reports(r, n);
    } while (n == RL_REPORTS_MAX);
}

void vg_log(enum vg_log_level level, const char *event, const char *camera,
            const char *fmt, ...)
{
    if (level < min_level)
        return;
    struct rl_report reports[RL_REPORTS_MAX] = {0};
    int n_reports = 0;
    int write = level == VG_LOG_DEBUG ||
                admit(event, camera ? camera : "", reports, &n_reports);
    write_reports(reports, n_reports);
    if (!write)
        return;

    char msg[1024], emsg[2048], ecam[160], line[2600], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    vg_json_escape(emsg, sizeof(emsg), msg);
    timestamp(ts);

    int n;
    if (camera && *camera) {
        vg_json_escape(ecam, sizeof(ecam), camera);
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"%s\",\"event\":\"%s\","
                     "\"camera\":\"%s\",\"msg\":\"%s\"}\n",
                     ts, level_names[level], svc_name, event, ecam, emsg);
    } else {
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"%s\",\"event\":\"%s\","
                     "\"msg\":\"%s\"}\n",
                     ts, level_names[level], svc_name, event, emsg);
    }
    write_line(line, n, sizeof(line));
}
