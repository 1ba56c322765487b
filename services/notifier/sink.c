#include "sink.h"

#include <stdio.h>
#include <string.h>

vg_status ntf_sink_create(struct ntf_sink **out, const struct vg_sink_cfg *cfg)
{
    if (strcmp(cfg->type, "file") == 0)
        return ntf_sink_file_create(out, cfg);
    if (strcmp(cfg->type, "webhook") == 0)
        return ntf_sink_webhook_create(out, cfg);
    return vg_errf(VG_ERR_CONFIG, "notifier.sinks.%s: unknown type \"%s\" (file, webhook)",
                   cfg->name, cfg->type);
}

void ntf_sink_destroy(struct ntf_sink *s)
{
    if (s)
        s->destroy(s);
}

int ntf_sink_retryable(vg_status st)
{
    return st == VG_ERR_IO || st == VG_ERR_TIMEOUT || st == VG_ERR_UNAVAILABLE ||
           st == VG_ERR_NOMEM;
}

void ntf_sink_base_init(struct ntf_sink *s, const struct vg_sink_cfg *cfg)
{
    snprintf(s->name, sizeof(s->name), "%s", cfg->name);
    snprintf(s->type, sizeof(s->type), "%s", cfg->type);
    s->retries = cfg->retries > 0 ? cfg->retries : 0;
    s->backoff_ms = cfg->backoff_ms > 0 ? cfg->backoff_ms : 0;
    s->timeout_ms = cfg->timeout_ms > 0 ? cfg->timeout_ms : 0;
}
