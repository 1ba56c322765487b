/* A configured sink's life, and what every sink shares. */
#include "sink/sink.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define RETRY_AFTER_MAX_MS (3600LL * 1000)

vg_status vg_sink_open(struct vg_sink **out, const struct vg_sink_cfg *cfg,
                       const struct vg_config *root)
{
    if (!cfg->ops)
        return vg_errf(VG_ERR_CONFIG, "sink %s: type %s is not bound", cfg->name, cfg->type);
    struct vg_sink *s = calloc(1, sizeof(*s));
    if (!s)
        return vg_errf(VG_ERR_NOMEM, "sink %s", cfg->name);
    s->cfg = cfg;
    s->ops = cfg->ops;
    vg_status st = s->ops->init(&s->state, cfg, root);
    if (st != VG_OK) {
        free(s);
        return vg_errf(st, "sink %s (%s): %s", cfg->name, cfg->type, vg_err_detail());
    }
    *out = s;
    return VG_OK;
}

void vg_sink_close(struct vg_sink *s)
{
    if (!s)
        return;
    if (s->ops->cleanup)
        s->ops->cleanup(s->state);
    free(s);
}

void vg_sink_deliver(struct vg_sink *s, const struct vg_sink_alert *a, struct vg_sink_result *r)
{
    r->verdict = VG_SINK_DELIVERED;
    r->retry_after_ms = 0;
    r->error[0] = '\0';
    s->ops->deliver(s->state, a, r);
}

void vg_sink_fail(struct vg_sink_result *r, enum vg_sink_verdict v, const char *fmt, ...)
{
    va_list ap;
    r->verdict = v;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof(r->error), fmt, ap);
    va_end(ap);
}

int64_t vg_sink_redeliver_ms(const struct vg_sink_cfg *cfg, unsigned delivery,
                             int64_t retry_after_ms)
{
    int64_t max_ms = (int64_t)cfg->redeliver_max_s * 1000;
    int64_t d = (int64_t)cfg->redeliver_min_s * 1000;
    for (unsigned i = 1; i < delivery && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    if (retry_after_ms > RETRY_AFTER_MAX_MS)
        retry_after_ms = RETRY_AFTER_MAX_MS;
    return retry_after_ms > d ? retry_after_ms : d;
}

void vg_sink_url_origin(char *out, size_t cap, const char *url)
{
    const char *p = strstr(url, "://");
    const char *host = p ? p + 3 : url;
    size_t n = strcspn(host, "/?#");
    const char *at = memchr(host, '@', n);
    if (at) {
        n -= (size_t)(at + 1 - host);
        host = at + 1;
    }
    snprintf(out, cap, "%.*s%.*s", p ? (int)(p + 3 - url) : 0, url, (int)n, host);
}

int vg_sink_is_http_url(const char *url)
{
    return url && (!strncmp(url, "https://", 8) || !strncmp(url, "http://", 7));
}

int vg_sink_url_is_loopback(const char *url)
{
    static const char *const names[] = {"localhost", "127.0.0.1", "[::1]"};
    const char *host = strstr(url, "://");
    if (!host)
        return 0;
    host += 3;
    size_t len = strcspn(host, "/?#");
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        size_t k = strlen(names[i]);
        if (len >= k && !strncasecmp(host, names[i], k) && (len == k || host[k] == ':'))
            return 1;
    }
    return 0;
}
