/* Alert sinks behind one seam (the shape of curl's lib/vtls/): each sink type
 * is one file with a const ops table that owns its configuration keys,
 * registered in one NULL-terminated list (registry.c). A sink makes one
 * attempt to hand one rendered alert to somewhere (a file, a webhook, ...)
 * and says how it went: delivered, a transient failure worth trying again
 * (optionally with the wait the remote asked for), or a permanent failure.
 * Retries, redelivery, idempotency and dead letters belong to the notifier;
 * the keys every sink shares (timeout, quick retries, redelivery backoff)
 * belong to this seam (sink_config.c). */
#ifndef VG_SINK_SINK_H
#define VG_SINK_SINK_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "opts.h"
#include "sink/template.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

#define VG_SINK_ERROR_MAX 384

enum vg_sink_kind {
    VG_SINK_KIND_ALERT = 0,         /* an alert */
    VG_SINK_KIND_SUMMARY,           /* "N alerts were held back by the rate limit": only
                                     * title and text mean anything; alert is a stand-in
                                     * (label "summary", the last held-back camera) */
};

/* An alert as a sink receives it. Strings are never NULL (empty instead).
 * title, text and html are the sink's templates filled in (template.h):
 * title plain on one line, text escaped for the sink's text_escape, html
 * HTML-escaped ("" when the sink has no html template). */
struct vg_sink_alert {
    const Vigil__V1__Alert *alert;  /* the fields (header, key, label, ...) */
    enum vg_sink_kind kind;
    const char *title;              /* one line: "person at front_door" */
    const char *text;               /* a sentence for people */
    const char *html;               /* the text as HTML, or "" */
    const char *json;               /* the alert as one JSON object, no newline */
    size_t json_len;
    const uint8_t *snapshot;        /* JPEG bytes, NULL when not available */
    size_t snapshot_len;
    const char *snapshot_url;
    const char *clip_url;
    unsigned count;                 /* sightings in the alert's incident so far (>= 1) */
    int64_t now_us;                 /* wall clock of this attempt (signed timestamps) */
    unsigned delivery;              /* 1 on the first delivery, 2 on the first redelivery, ... */
};

enum vg_sink_verdict {
    VG_SINK_DELIVERED = 0,
    VG_SINK_RETRY,          /* transient: timeout, refused, 408, 429, 5xx, disk full */
    VG_SINK_PERMANENT,      /* will not change by trying again: a 4xx, a bad alert */
};

struct vg_sink_result {
    enum vg_sink_verdict verdict;
    int64_t retry_after_ms;         /* RETRY: the wait the remote asked for; 0: none */
    char error[VG_SINK_ERROR_MAX];  /* why, for logs and dead letters; never a secret */
};

/* Capability bits. */
#define VG_SINK_CAP_SNAPSHOT 0x1u   /* wants the snapshot bytes */

/* Which alerts of a camera's incident a sink receives (sink key
 * "incidents"): every one, only the first, or the first and at most one
 * escalation (a face recognised, a new category). */
enum vg_sink_incidents {
    VG_SINK_INCIDENTS_DEFAULT = 0,  /* the type's default_incidents */
    VG_SINK_INCIDENTS_ALL,
    VG_SINK_INCIDENTS_FIRST,
    VG_SINK_INCIDENTS_ESCALATE,
};

struct vg_sink_ops {
    const char *name;               /* the configuration's "type" */
    unsigned caps;
    /* Templates when the configuration gives none (NULL: the seam's
     * "{who} at {camera}" and "{who} seen on {camera} at {time} (confidence
     * {confidence})"; no html). */
    const char *default_title;
    const char *default_text;
    const char *default_html;
    /* How field values in text are escaped; NULL: VG_TPL_PLAIN. */
    enum vg_tpl_escape (*text_escape)(const void *settings);
    /* For people's channels (phones) ESCALATE, for machines ALL; 0: ALL. */
    enum vg_sink_incidents default_incidents;
    const struct vg_opt *opts;      /* its own keys, bound into settings */
    size_t settings_size;           /* <= VG_SINK_SETTINGS_MAX */
    int default_timeout_ms;         /* 0: no network timeout (a local file) */
    /* Validate bound settings; where is "file:line: sink NAME" for errors. */
    vg_status (*check)(const void *settings, const char *where);
    /* State for one configured sink; cfg->settings holds the bound settings;
     * root is the whole configuration (aws, prefix, ...), never NULL. */
    vg_status (*init)(void **state, const struct vg_sink_cfg *cfg, const struct vg_config *root);
    /* One attempt, at most cfg->timeout_ms long. */
    void (*deliver)(void *state, const struct vg_sink_alert *a, struct vg_sink_result *r);
    void (*cleanup)(void *state);
};

/* The registry: every sink type, NULL-terminated. */
extern const struct vg_sink_ops *const vg_sink_types[];

/* The type named name; NULL when there is none. */
const struct vg_sink_ops *vg_sink_find(const char *name);
/* "file, webhook" into out, for "unknown type" errors. */
void vg_sink_type_names(char *out, size_t cap);

/* Bind one entry of notifier.sinks: the common keys and the type's own keys
 * from one map, defaults first, then VIGIL_SINK_<NAME>_<VAR> (and its _FILE
 * form) from the environment, then the type's check. Used by the loader. */
vg_status vg_sink_cfg_bind(struct vg_sink_cfg *s, const struct vg_ynode *map, const char *file);

/* One configured sink, ready to deliver. */
struct vg_sink {
    const struct vg_sink_cfg *cfg;  /* name, type, timeouts; owned by the config */
    const struct vg_sink_ops *ops;
    void *state;
};

vg_status vg_sink_open(struct vg_sink **out, const struct vg_sink_cfg *cfg,
                       const struct vg_config *root);
void vg_sink_close(struct vg_sink *s);
/* One attempt; the result is always filled in. */
void vg_sink_deliver(struct vg_sink *s, const struct vg_sink_alert *a, struct vg_sink_result *r);

/* For sink implementations: fill r (printf-style error). */
void vg_sink_fail(struct vg_sink_result *r, enum vg_sink_verdict v, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* The redelivery delay after `delivery` failed deliveries (1 = the first):
 * min_s doubling up to max_s, or the remote's retry_after_ms when it asked
 * for longer (never more than an hour). */
int64_t vg_sink_redeliver_ms(const struct vg_sink_cfg *cfg, unsigned delivery,
                             int64_t retry_after_ms);

/* For logs and errors: url without user:password@, path, query or fragment,
 * "https://user:pw@host:8443/hook/T0KEN?x=1" -> "https://host:8443". */
void vg_sink_url_origin(char *out, size_t cap, const char *url);

/* 1 when url is an http:// or https:// URL (a link a reader can open). */
int vg_sink_is_http_url(const char *url);

/* 1 when url's host (after "scheme://") is this machine: localhost,
 * 127.0.0.1 or [::1], with or without a port. */
int vg_sink_url_is_loopback(const char *url);

/* Lowercase hex HMAC-SHA256(secret, "<ts>.<body>"): the webhook's
 * X-Vigil-Signature is "sha256=" + this, X-Vigil-Timestamp is ts. */
#define VG_SINK_HMAC_HEX_LEN 64
vg_status vg_sink_sign(const char *secret, int64_t ts, const void *body, size_t len,
                       char out[VG_SINK_HMAC_HEX_LEN + 1]);

#endif
