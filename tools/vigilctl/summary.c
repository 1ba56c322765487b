/* vigilctl summary URL...: scrape the services' /metrics and print what the
 * pipeline did: frames, detections, alerts, suppressed, deliveries, and the
 * latency of each stage measured from the frame's capture time. */
#include <curl/curl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "detect/detector.h"

#define MAX_BODY (1u << 20)

struct body {
    char *p;
    size_t len;
};

static size_t on_data(char *data, size_t size, size_t n, void *ctx)
{
    struct body *b = ctx;
    size_t add = size * n;
    if (b->len + add > MAX_BODY)
        return 0; /* aborts the transfer: metrics pages are small */
    char *p = realloc(b->p, b->len + add + 1);
    if (!p)
        return 0;
    memcpy(p + b->len, data, add);
    b->p = p;
    b->len += add;
    p[b->len] = '\0';
    return add;
}

static char *fetch(const char *url)
{
    struct body b = {0};
    CURL *c = curl_easy_init();
    if (!c)
        return NULL;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 3000L);
    CURLcode rc = curl_easy_perform(c);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "vigilctl summary: %s: %s\n", url, curl_easy_strerror(rc));
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* Value of the sample line starting with `name ` (or name{...}), summed over
 * every page; NAN when no page has it. */
static double metric(char **pages, int n, const char *name)
{
    double sum = NAN;
    size_t len = strlen(name);
    for (int i = 0; i < n; i++) {
        for (const char *p = pages[i]; p && *p;) {
            const char *value = NULL;
            if (!strncmp(p, name, len) && p[len] == ' ')
                value = p + len + 1;
            else if (!strncmp(p, name, len) && p[len] == '{' && (value = strstr(p, "} ")))
                value += 2;     /* a labelled sample: every label set counts */
            if (value)
                sum = (isnan(sum) ? 0 : sum) + strtod(value, NULL);
            p = strchr(p, '\n');
            p = p ? p + 1 : NULL;
        }
    }
    return sum;
}

/* Smallest bucket bound that holds q of the observations. */
static double quantile(char **pages, int n, const char *hist, double q)
{
    static const char *const bounds[] = {"0.001", "0.005", "0.01", "0.025", "0.05", "0.1",
                                         "0.25", "0.5", "1", "2.5", "10", "30"};
    char name[160];
    snprintf(name, sizeof(name), "%s_count", hist);
    double count = metric(pages, n, name);
    if (isnan(count) || count == 0)
        return NAN;
    for (size_t i = 0; i < sizeof(bounds) / sizeof(bounds[0]); i++) {
        snprintf(name, sizeof(name), "%s_bucket{le=\"%s\"}", hist, bounds[i]);
        if (metric(pages, n, name) >= q * count)
            return atof(bounds[i]);
    }
    return INFINITY;
}

static void count_line(char **pages, int n, const char *what, const char *name)
{
    double v = metric(pages, n, name);
    if (isnan(v))
        printf("  %-22s %10s\n", what, "-");
    else
        printf("  %-22s %10.0f\n", what, v);
}

static void latency_line(char **pages, int n, const char *stage, const char *hist)
{
    char name[160];
    snprintf(name, sizeof(name), "%s_count", hist);
    double count = metric(pages, n, name);
    snprintf(name, sizeof(name), "%s_sum", hist);
    double sum = metric(pages, n, name);
    if (isnan(count) || count == 0) {
        printf("  %-26s %10s\n", stage, "-");
        return;
    }
    printf("  %-26s mean %8.1f ms   p95 <= %6.0f ms   (n=%.0f)\n", stage, 1000 * sum / count,
           1000 * quantile(pages, n, hist, 0.95), count);
}

/* Per detector stage: calls, frames the gate spared it, failures. */
static void stage_lines(char **pages, int n)
{
    char calls[128], skipped[128], errors[128], timeouts[128];
    printf("detector stages            calls    skipped (gated)   errors  timeouts\n");
    for (size_t i = 0; vg_detector_backends[i]; i++) {
        const char *b = vg_detector_backends[i]->name;
        snprintf(calls, sizeof(calls), "vigil_detector_calls_total{detector=\"%s\"}", b);
        snprintf(skipped, sizeof(skipped), "vigil_detector_skipped_total{detector=\"%s\"}", b);
        snprintf(errors, sizeof(errors), "vigil_detector_errors_total{detector=\"%s\"}", b);
        snprintf(timeouts, sizeof(timeouts), "vigil_detector_timeouts_total{detector=\"%s\"}",
                 b);
        double c = metric(pages, n, calls), sk = metric(pages, n, skipped);
        if ((isnan(c) || c == 0) && (isnan(sk) || sk == 0))
            continue;   /* not in any chain */
        printf("  %-22s %9.0f %18.0f %8.0f %9.0f\n", b, c, sk, metric(pages, n, errors),
               metric(pages, n, timeouts));
    }
}

int ctl_cmd_summary(struct ctl *c, int argc, char **argv)
{
    int n = argc - 1;
    char **pages = calloc((size_t)(n > 0 ? n : 1), sizeof(char *));
    if (!pages)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    for (int i = 0; i < n; i++) {
        char url[512];
        snprintf(url, sizeof(url), "http://%s/metrics", argv[i + 1]);
        pages[i] = fetch(url);
    }
    printf("vigil summary\n");
    count_line(pages, n, "frames analysed", "vigil_dispatch_frames_total");
    count_line(pages, n, "detections", "vigil_dispatch_detections_total");
    count_line(pages, n, "alerts", "vigil_dedupe_alerts_total");
    count_line(pages, n, "suppressed", "vigil_dedupe_suppressed_total");
    count_line(pages, n, "alerts fail-open", "vigil_dedupe_fail_open_total");
    count_line(pages, n, "deliveries", "vigil_notifier_delivered_total");
    count_line(pages, n, "dead letters", "vigil_notifier_dead_letters_total");
    count_line(pages, n, "malformed dropped", "vigil_dispatch_malformed_total");
    count_line(pages, n, "frames superseded",
               "vigil_dispatch_frames_dropped_total{reason=\"superseded\"}");
    count_line(pages, n, "frames too old", "vigil_dispatch_frames_dropped_total{reason=\"stale\"}");
    stage_lines(pages, n);
    printf("latency from frame capture\n");
    latency_line(pages, n, "-> detection (dispatch)", "vigil_dispatch_latency_seconds");
    latency_line(pages, n, "-> alert stored (dedupe)", "vigil_dedupe_latency_seconds");
    latency_line(pages, n, "-> delivered (notifier)", "vigil_notifier_latency_seconds");
    for (int i = 0; i < n; i++)
        free(pages[i]);
    free(pages);
    curl_global_cleanup();
    return 0;
}
