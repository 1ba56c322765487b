/* The default credential chain, its cache and the provider handle. The
 * sources that read files live in cred_files.c, the HTTP ones in
 * cred_remote.c. */
#include "aws/credentials.h"

#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/cred_internal.h"
#include "log.h"
#include "timeutil.h"

#define REFRESH_MARGIN_US (5LL * 60 * 1000000)
#define RETRY_PAUSE_US (10LL * 1000000)
#define DEFAULT_TIMEOUT_MS 2000

struct vg_aws_cred_provider {
    pthread_mutex_t mu;
    char *access_key_id;        /* copies of the explicit options */
    char *secret_access_key;
    char *session_token;
    char *profile;
    char *region;
    int timeout_ms;
    struct vg_aws_creds cached;
    int have_cached;
    int last_source;            /* index in chain[] that yielded last, -1 none */
    int64_t retry_after_us;     /* after a failed refresh, keep the cache until then */
    int curl_inited;
};

static int src_explicit(const struct cred_ctx *c, struct vg_aws_creds *out, char *why,
                        size_t cap);
static int src_env(const struct cred_ctx *c, struct vg_aws_creds *out, char *why, size_t cap);

static const struct {
    const char *label;
    cred_source_fn fn;
} chain[] = {
    {"config", src_explicit},
    {"env", src_env},
    {"profile", vg_cred_src_profile},
    {"web identity", vg_cred_src_web_identity},
    {"container", vg_cred_src_container},
    {"imds", vg_cred_src_imds},
};
#define N_SOURCES (sizeof(chain) / sizeof(chain[0]))

const char *vg_cred_env(const char *name)
{
    const char *v = getenv(name);
    return v && *v ? v : NULL;
}

static int copy_field(char *dst, size_t cap, const char *src, const char *what, char *why,
                      size_t why_cap)
{
    size_t n = src ? strlen(src) : 0;
    if (n >= cap) {
        snprintf(why, why_cap, "%s longer than %zu bytes", what, cap - 1);
        return 0;
    }
    memcpy(dst, src ? src : "", n + 1);
    return 1;
}

int vg_cred_fill(struct vg_aws_creds *out, const char *source, const char *key_id,
                 const char *secret, const char *token, int64_t expires_us, char *why,
                 size_t cap)
{
    if (!key_id || !*key_id || !secret || !*secret) {
        snprintf(why, cap, "%s", key_id && *key_id ? "secret access key missing"
                                                   : "access key id missing");
        return 0;
    }
    if (!copy_field(out->access_key_id, sizeof(out->access_key_id), key_id, "access key id",
                    why, cap) ||
        !copy_field(out->secret_access_key, sizeof(out->secret_access_key), secret,
                    "secret access key", why, cap) ||
        !copy_field(out->session_token, sizeof(out->session_token), token, "session token",
                    why, cap))
        return 0;
    out->expires_us = expires_us;
    snprintf(out->source, sizeof(out->source), "%s", source);
    return 1;
}

static int src_explicit(const struct cred_ctx *c, struct vg_aws_creds *out, char *why,
                        size_t cap)
{
    if (!c->access_key_id && !c->secret_access_key) {
        snprintf(why, cap, "not set");
        return 0;
    }
    return vg_cred_fill(out, "config", c->access_key_id, c->secret_access_key,
                        c->session_token, 0, why, cap);
}

static int src_env(const struct cred_ctx *c, struct vg_aws_creds *out, char *why, size_t cap)
{
    const char *id = vg_cred_env("AWS_ACCESS_KEY_ID");
    const char *secret = vg_cred_env("AWS_SECRET_ACCESS_KEY");
    if (!id && !secret) {
        snprintf(why, cap, "not set");
        return 0;
    }
    if (!id || !secret) {
        snprintf(why, cap, "%s not set", id ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
        return 0;
    }
    return vg_cred_fill(out, "env", id, secret, vg_cred_env("AWS_SESSION_TOKEN"), 0, why, cap);
}

static char *dup_opt(const char *s, int *failed)
{
    if (!s || !*s)
        return NULL;
    char *d = strdup(s);
    if (!d)
        *failed = 1;
    return d;
}

static void free_secret_str(char *s)
{
    if (s)
        vg_cred_free_secret(s, strlen(s));
}

vg_status vg_aws_creds_create(struct vg_aws_cred_provider **out, const struct vg_aws_cred_opts *o)
{
    static const struct vg_aws_cred_opts none = {0};
    struct vg_aws_cred_provider *p = NULL;
    int failed = 0;

    if (!out)
        return vg_errf(VG_ERR_INVALID, "vg_aws_creds_create: out is NULL");
    if (!o)
        o = &none;
    if (o->timeout_ms < 0)
        return vg_errf(VG_ERR_INVALID, "aws credentials: timeout_ms %d < 0", o->timeout_ms);
    if (!(p = calloc(1, sizeof(*p))))
        return vg_errf(VG_ERR_NOMEM, "aws credentials: out of memory");
    pthread_mutex_init(&p->mu, NULL);
    p->access_key_id = dup_opt(o->access_key_id, &failed);
    p->secret_access_key = dup_opt(o->secret_access_key, &failed);
    p->session_token = dup_opt(o->session_token, &failed);
    p->profile = dup_opt(o->profile, &failed);
    p->region = dup_opt(o->region, &failed);
    p->timeout_ms = o->timeout_ms ? o->timeout_ms : DEFAULT_TIMEOUT_MS;
    p->last_source = -1;
    if (failed) {
        vg_aws_creds_destroy(p);
        return vg_errf(VG_ERR_NOMEM, "aws credentials: out of memory");
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        vg_aws_creds_destroy(p);
        return vg_errf(VG_ERR_HTTP, "aws credentials: curl_global_init failed");
    }
    p->curl_inited = 1;
    *out = p;
    return VG_OK;
}

void vg_aws_creds_destroy(struct vg_aws_cred_provider *p)
{
    if (!p)
        return;
    if (p->curl_inited)
        curl_global_cleanup();
    pthread_mutex_destroy(&p->mu);
    free_secret_str(p->access_key_id);
    free_secret_str(p->secret_access_key);
    free_secret_str(p->session_token);
    free(p->profile);
    free(p->region);
    vg_cred_free_secret((char *)p, sizeof(*p));
}

static void make_ctx(const struct vg_aws_cred_provider *p, struct cred_ctx *c)
{
    const char *region = p->region ? p->region : vg_cred_env("AWS_REGION");
    if (!region)
        region = vg_cred_env("AWS_DEFAULT_REGION");
    c->access_key_id = p->access_key_id;
    c->secret_access_key = p->secret_access_key;
    c->session_token = p->session_token;
    c->profile = p->profile ? p->profile : vg_cred_env("AWS_PROFILE");
    if (!c->profile)
        c->profile = "default";
    c->region = region ? region : "us-east-1";
    c->timeout_ms = p->timeout_ms;
}

static void append_reason(char *sum, size_t cap, size_t *n, const struct cred_ctx *c, size_t i,
                          const char *why)
{
    int k;
    if (*n >= cap)
        return;
    if (i == 2)
        k = snprintf(sum + *n, cap - *n, "%sprofile \"%s\" (%s)", *n ? ", " : "", c->profile, why);
    else
        k = snprintf(sum + *n, cap - *n, "%s%s (%s)", *n ? ", " : "", chain[i].label, why);
    *n += k > 0 ? (size_t)k : 0;
}

/* Walk the chain from the top; first is tried first (the source that
 * yielded last time, when refreshing). */
static vg_status resolve(const struct vg_aws_cred_provider *p, int first,
                         struct vg_aws_creds *out, int *which)
{
    struct cred_ctx c;
    char why[CRED_WHY_CAP], first_why[CRED_WHY_CAP] = "", sum[1024];
    size_t n = 0;

    make_ctx(p, &c);
    if (first >= 0) {
        memset(out, 0, sizeof(*out));
        if (chain[first].fn(&c, out, first_why, sizeof(first_why))) {
            *which = first;
            return VG_OK;
        }
    }
    for (size_t i = 0; i < N_SOURCES; i++) {
        if ((int)i == first) {
            append_reason(sum, sizeof(sum), &n, &c, i, first_why);
            continue;
        }
        memset(out, 0, sizeof(*out));
        why[0] = '\0';
        if (chain[i].fn(&c, out, why, sizeof(why))) {
            *which = (int)i;
            return VG_OK;
        }
        append_reason(sum, sizeof(sum), &n, &c, i, why);
    }
    explicit_bzero(out, sizeof(*out));
    return vg_errf(VG_ERR_AUTH, "no AWS credentials: tried %s", sum);
}

static int fresh(const struct vg_aws_creds *c, int64_t now)
{
    return c->expires_us == 0 || c->expires_us - now > REFRESH_MARGIN_US;
}

/* Called with p->mu held. */
static int needs_refresh(const struct vg_aws_cred_provider *p, int64_t now)
{
    if (!p->have_cached)
        return 1;
    if (fresh(&p->cached, now))
        return 0;
    /* Inside the margin: refresh, unless one just failed and the copy still works. */
    return now >= p->retry_after_us || p->cached.expires_us <= now;
}

static void log_loaded(const struct vg_aws_creds *c)
{
    size_t n = strlen(c->access_key_id);
    const char *tail = c->access_key_id + (n > 4 ? n - 4 : n);
    if (c->expires_us)
        VG_INFO("aws.credentials_loaded", NULL, "source %s, key ...%s, expires in %lld s",
                c->source, tail, (long long)((c->expires_us - vg_now_us()) / 1000000));
    else
        VG_INFO("aws.credentials_loaded", NULL, "source %s, key ...%s", c->source, tail);
}

/* Called with p->mu held. */
static vg_status refresh_locked(struct vg_aws_cred_provider *p, int64_t now)
{
    struct vg_aws_creds fetched;
    int which = -1;
    vg_status st = resolve(p, p->last_source, &fetched, &which);

    if (st == VG_OK) {
        if (fetched.expires_us && fetched.expires_us <= vg_now_us()) {
            st = vg_errf(VG_ERR_AUTH, "aws credentials from %s already expired",
                         fetched.source);
        } else {
            /* A source that hands back the same credentials while they are
             * inside the refresh margin (a fast local clock) would otherwise
             * be asked again on every call: pause as after a failure. */
            int same = p->have_cached && !fresh(&fetched, now) &&
                       !strcmp(fetched.access_key_id, p->cached.access_key_id);
            p->cached = fetched;
            p->have_cached = 1;
            p->last_source = which;
            p->retry_after_us = same ? now + RETRY_PAUSE_US : 0;
            log_loaded(&p->cached);
        }
    }
    explicit_bzero(&fetched, sizeof(fetched));
    if (st != VG_OK && p->have_cached && p->cached.expires_us > now) {
        p->retry_after_us = now + RETRY_PAUSE_US;
        VG_WARN("aws.credentials_refresh_failed", NULL,
                "keeping %s credentials for %lld s more: %s", p->cached.source,
                (long long)((p->cached.expires_us - now) / 1000000), vg_err_detail());
        return VG_OK;
    }
    return st;
}

vg_status vg_aws_creds_get(struct vg_aws_cred_provider *p, struct vg_aws_creds *out)
{
    vg_status st = VG_OK;
    if (!p || !out)
        return vg_errf(VG_ERR_INVALID, "vg_aws_creds_get: NULL argument");
    pthread_mutex_lock(&p->mu);
    int64_t now = vg_now_us();
    if (needs_refresh(p, now))
        st = refresh_locked(p, now);
    if (st == VG_OK)
        *out = p->cached;
    pthread_mutex_unlock(&p->mu);
    return st;
}

void vg_aws_creds_invalidate(struct vg_aws_cred_provider *p)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    explicit_bzero(&p->cached, sizeof(p->cached));
    p->have_cached = 0;
    p->last_source = -1;
    p->retry_after_us = 0;
    pthread_mutex_unlock(&p->mu);
}
