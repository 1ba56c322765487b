/* A sink delivers one alert somewhere (a file, a webhook, ...). The notifier
 * owns retries, backoff and idempotency; a sink only makes one attempt. */
#ifndef NTF_SINK_H
#define NTF_SINK_H

#include <stddef.h>

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

#define NTF_HMAC_HEX_LEN 64

struct ntf_sink {
    char name[32];              /* from the configuration; part of the idempotency key */
    char type[16];              /* "file", "webhook" */
    int retries;                /* attempts after the first */
    int backoff_ms;             /* first retry delay */
    int timeout_ms;             /* longest single attempt (0: not bounded by the sink) */
    /* One attempt. body is the alert as JSON (len bytes, no newline).
     * VG_OK: delivered. Otherwise the status says whether to retry (see
     * ntf_sink_retryable) and vg_err_detail() says why; never a secret. */
    vg_status (*deliver)(struct ntf_sink *s, const char *body, size_t len,
                         const Vigil__V1__Alert *a);
    void (*destroy)(struct ntf_sink *s);
};

/* Create the sink cfg->type names. */
vg_status ntf_sink_create(struct ntf_sink **out, const struct vg_sink_cfg *cfg);
void ntf_sink_destroy(struct ntf_sink *s);

/* Transient failures (I/O, timeout, unavailable, out of memory) are worth
 * retrying; anything else (a 4xx answer, a bad request) is not. */
int ntf_sink_retryable(vg_status st);

/* For sink implementations: copy the common fields from the configuration. */
void ntf_sink_base_init(struct ntf_sink *s, const struct vg_sink_cfg *cfg);

vg_status ntf_sink_file_create(struct ntf_sink **out, const struct vg_sink_cfg *cfg);
vg_status ntf_sink_webhook_create(struct ntf_sink **out, const struct vg_sink_cfg *cfg);

/* Lowercase hex HMAC-SHA256(secret, body): the webhook's X-Vigil-Signature
 * is "sha256=" followed by this. */
vg_status ntf_hmac_sha256_hex(const char *secret, const void *body, size_t len,
                              char out[NTF_HMAC_HEX_LEN + 1]);

#endif
