/* vg_aws_call: one AWS API call with signing, retries and limits. See client.h. */
#include "aws/client.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "aws/retry.h"
#include "aws/xml.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define MAX_HEADERS 24
#define POOL_MAX 8

struct vg_aws {
    char region[64];
    struct vg_aws_opts o;
    struct vg_aws_cred_provider *creds;
    struct vg_aws_retry retry;
    pthread_mutex_t pool_lock;
    CURL *pool[POOL_MAX];
    int n_pool;
    struct vg_counter *calls, *retries, *failures, *throttled;
};

static _Thread_local char last_code[128];

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

const char *vg_aws_last_error_code(void) { return last_code; }
const char *vg_aws_region(const struct vg_aws *a) { return a->region; }
struct vg_aws_cred_provider *vg_aws_credentials(struct vg_aws *a) { return a->creds; }

static void resolve_region(struct vg_aws *a, const struct vg_aws_opts *o)
{
    const char *r = o->region && *o->region ? o->region : getenv("AWS_REGION");
    if (!r || !*r)
        r = getenv("AWS_DEFAULT_REGION");
    if ((!r || !*r) &&
        vg_aws_profile_region(o->creds.profile, a->region, sizeof(a->region)) == VG_OK)
        return;
    snprintf(a->region, sizeof(a->region), "%s", r && *r ? r : "us-east-1");
}

vg_status vg_aws_create(struct vg_aws **out, const struct vg_aws_opts *o)
{
    static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
    struct vg_aws *a = calloc(1, sizeof(*a));
    if (!a)
        return VG_ERR_NOMEM;
    a->o = *o;
    if (!a->o.connect_timeout_ms) a->o.connect_timeout_ms = 3000;
    if (!a->o.timeout_ms) a->o.timeout_ms = 10000;
    if (!a->o.max_attempts) a->o.max_attempts = VG_AWS_DEFAULT_MAX_ATTEMPTS;
    if (!a->o.retry_base_ms) a->o.retry_base_ms = VG_AWS_RETRY_BASE_MS;
    if (!a->o.retry_cap_ms) a->o.retry_cap_ms = VG_AWS_RETRY_CAP_MS;
    if (!a->o.max_response) a->o.max_response = 16u << 20;
    resolve_region(a, o);
    pthread_once(&curl_once, curl_init_once);
    struct vg_aws_cred_opts co = o->creds;
    co.region = a->region;
    vg_status st = vg_aws_creds_create(&a->creds, &co);
    if (st != VG_OK) {
        free(a);
        return st;
    }
    vg_aws_retry_init(&a->retry);
    pthread_mutex_init(&a->pool_lock, NULL);
    a->calls = vg_counter_get("vigil_aws_calls_total", "AWS API calls, retries excluded");
    a->retries = vg_counter_get("vigil_aws_retries_total", "AWS API calls retried");
    a->failures = vg_counter_get("vigil_aws_failures_total", "AWS API calls that failed");
    a->throttled = vg_counter_get("vigil_aws_throttled_total",
                                  "AWS answers that were throttling errors");
    *out = a;
    return VG_OK;
}

void vg_aws_destroy(struct vg_aws *a)
{
    if (!a)
        return;
    for (int i = 0; i < a->n_pool; i++)
        curl_easy_cleanup(a->pool[i]);
    vg_aws_retry_cleanup(&a->retry);
    pthread_mutex_destroy(&a->pool_lock);
    vg_aws_creds_destroy(a->creds);
    free(a);
}

vg_status vg_aws_set_rate_limit(struct vg_aws *a, const char *api, double per_second,
                                double burst)
{
    return vg_aws_retry_set_rate(&a->retry, api, per_second, burst);
}

void vg_aws_endpoint(const struct vg_aws *a, const char *endpoint_id, const char *service,
                     const char *default_host, char *out, size_t cap)
{
    char var[96];
    snprintf(var, sizeof(var), "AWS_ENDPOINT_URL_%s", endpoint_id ? endpoint_id : "");
    const char *e = endpoint_id ? getenv(var) : NULL;
    if (!e || !*e)
        e = getenv("AWS_ENDPOINT_URL");
    if (e && *e) {
        size_t len = strlen(e);
        while (len > 0 && e[len - 1] == '/')
            len--;
        snprintf(out, cap, "%.*s", (int)len, e);
    } else if (default_host) {
        snprintf(out, cap, "https://%s", default_host);
    } else {
        snprintf(out, cap, "https://%s.%s.amazonaws.com", service, a->region);
    }
}

/* ---- curl handles -------------------------------------------------------- */

static CURL *handle_get(struct vg_aws *a)
{
    CURL *c = NULL;
    pthread_mutex_lock(&a->pool_lock);
    if (a->n_pool > 0)
        c = a->pool[--a->n_pool];
    pthread_mutex_unlock(&a->pool_lock);
    if (c)
        curl_easy_reset(c);
    else
        c = curl_easy_init();
    return c;
}

static void handle_put(struct vg_aws *a, CURL *c)
{
    pthread_mutex_lock(&a->pool_lock);
    if (a->n_pool < POOL_MAX) {
        a->pool[a->n_pool++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&a->pool_lock);
    if (c)
        curl_easy_cleanup(c);
}

/* ---- one attempt --------------------------------------------------------- */

struct sink {
    struct vg_aws_response *r;
    size_t cap;
    int too_large;
    char error_type[128];       /* x-amzn-ErrorType */
};

static size_t on_body(char *data, size_t size, size_t n, void *ctx)
{
    struct sink *s = ctx;
    size_t add = size * n;
    if (s->r->len + add > s->cap) {
        s->too_large = 1;
        return 0;
    }
    char *p = realloc(s->r->body, s->r->len + add + 1);
    if (!p)
        return 0;
    memcpy(p + s->r->len, data, add);
    s->r->body = p;
    s->r->len += add;
    p[s->r->len] = '\0';
    return add;
}

/* Copy a header's value (trimmed) into out when line is "name: value". */
static int header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nlen = strlen(name);
    if (len <= nlen + 1 || strncasecmp(line, name, nlen) || line[nlen] != ':')
        return 0;
    const char *v = line + nlen + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    snprintf(out, cap, "%.*s", (int)(end - v), v);
    return 1;
}

static size_t on_header(char *data, size_t size, size_t n, void *ctx)
{
    struct sink *s = ctx;
    struct vg_aws_response *r = s->r;
    size_t len = size * n;
    char tmp[64];
    if (!header_value(data, len, "x-amzn-RequestId", r->request_id, sizeof(r->request_id)) &&
        !header_value(data, len, "x-amz-request-id", r->request_id, sizeof(r->request_id)) &&
        !header_value(data, len, "content-type", r->content_type, sizeof(r->content_type)) &&
        !header_value(data, len, "etag", r->etag, sizeof(r->etag)) &&
        !header_value(data, len, "last-modified", r->last_modified, sizeof(r->last_modified)) &&
        !header_value(data, len, "x-amzn-ErrorType", s->error_type, sizeof(s->error_type)) &&
        header_value(data, len, "content-length", tmp, sizeof(tmp)))
        r->content_length = strtoll(tmp, NULL, 10);
    return len;
}

struct prepared {
    char url[4096];
    char host[1024];
    struct curl_slist *headers;
};

static vg_status add_header(struct prepared *p, const char *name, const char *value)
{
    char line[8192];
    int len = snprintf(line, sizeof(line), "%s: %s", name, value);
    if (len < 0 || (size_t)len >= sizeof(line))
        return vg_errf(VG_ERR_TOO_LARGE, "header %s is longer than %zu bytes", name,
                       sizeof(line) - 1);
    struct curl_slist *l = curl_slist_append(p->headers, line);
    if (!l)
        return VG_ERR_NOMEM;
    p->headers = l;
    return VG_OK;
}

/* Sign the request with fresh credentials and the current time. */
static vg_status prepare(struct vg_aws *a, const struct vg_aws_request *r, struct prepared *p)
{
    struct vg_sigv4_header h[MAX_HEADERS];
    struct vg_aws_creds c = {0};
    char base[1024], date[17], payload[65], auth[2048];
    size_t n = 0;
    vg_status st = VG_OK;

    if (r->endpoint)
        snprintf(base, sizeof(base), "%s", r->endpoint);
    else
        vg_aws_endpoint(a, r->endpoint_id, r->service, r->host, base, sizeof(base));
    const char *hostp = strstr(base, "://");
    snprintf(p->host, sizeof(p->host), "%s", hostp ? hostp + 3 : base);
    p->host[strcspn(p->host, "/")] = '\0';
    /* curl leaves a scheme's default port out of Host: sign what it sends. */
    size_t hlen = strlen(p->host);
    int https = !strncmp(base, "https://", 8);
    const char *dflt = https ? ":443" : ":80";
    if (hlen > strlen(dflt) && !strcmp(p->host + hlen - strlen(dflt), dflt))
        p->host[hlen - strlen(dflt)] = '\0';
    snprintf(p->url, sizeof(p->url), "%s%s%s%s", base, r->path ? r->path : "/",
             r->query && *r->query ? "?" : "", r->query && *r->query ? r->query : "");
    if (r->n_headers + 6 > MAX_HEADERS)
        return vg_errf(VG_ERR_INVALID, "%s: too many headers", r->api);
    vg_amz_date(vg_now_us(), date);
    vg_sha256_hex(r->body ? r->body : "", r->body_len, payload);
    h[n++] = (struct vg_sigv4_header){"host", p->host};
    h[n++] = (struct vg_sigv4_header){"x-amz-date", date};
    if (!strcmp(r->service, "s3"))  /* S3 requires the payload hash header */
        h[n++] = (struct vg_sigv4_header){"x-amz-content-sha256", payload};
    if (r->content_type)
        h[n++] = (struct vg_sigv4_header){"content-type", r->content_type};
    if (r->target)
        h[n++] = (struct vg_sigv4_header){"x-amz-target", r->target};
    for (size_t i = 0; i < r->n_headers; i++)
        h[n++] = r->headers[i];
    if (!r->anonymous) {
        if ((st = vg_aws_creds_get(a->creds, &c)) != VG_OK)
            return st;
        if (c.session_token[0])
            h[n++] = (struct vg_sigv4_header){"x-amz-security-token", c.session_token};
        struct vg_sigv4_request sr = {
            .method = r->method, .path = r->path, .query = r->query, .headers = h,
            .n_headers = n, .payload_sha256 = payload, .region = a->region,
            .service = r->service, .amz_date = date,
        };
        st = vg_sigv4_authorization(&sr, &c, auth, sizeof(auth));
        if (st == VG_OK)
            st = add_header(p, "Authorization", auth);
    }
    for (size_t i = 1; st == VG_OK && i < n; i++) /* host: curl sends its own, identical */
        st = add_header(p, h[i].name, h[i].value);
    /* curl would add "Expect: 100-continue" to larger bodies: an extra
     * round trip for every image, and a header we did not sign. */
    if (st == VG_OK)
        st = add_header(p, "Expect", "");
    /* h[] points into c (the session token): wipe only once it is copied. */
    OPENSSL_cleanse(&c, sizeof(c));
    return st;
}

static void setup_curl(struct vg_aws *a, CURL *c, const struct vg_aws_request *r,
                       struct prepared *p, struct sink *s)
{
    curl_easy_setopt(c, CURLOPT_URL, p->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, p->headers);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)a->o.connect_timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)a->o.timeout_ms);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, s);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, s);
    if (!strcmp(r->method, "HEAD"))
        curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    else if (!strcmp(r->method, "GET"))
        curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
    else {
        curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, r->method);
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, r->body ? (const char *)r->body : "");
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
    }
}

/* ---- errors -------------------------------------------------------------- */

/* Code and message of an AWS error answer, JSON or XML. */
static void parse_error(const struct vg_aws_response *r, const char *error_type, char *code,
                        size_t ccap, char *msg, size_t mcap)
{
    code[0] = msg[0] = '\0';
    if (error_type[0])
        snprintf(code, ccap, "%.*s", (int)strcspn(error_type, ":"), error_type);
    if (!r->body)
        return;
    json_t *j = json_loadb(r->body, r->len, 0, NULL);
    if (j) {
        const char *t = json_string_value(json_object_get(j, "__type"));
        const char *m = json_string_value(json_object_get(j, "message"));
        if (!m)
            m = json_string_value(json_object_get(j, "Message"));
        if (t && !code[0]) {
            const char *hash = strrchr(t, '#');
            snprintf(code, ccap, "%s", hash ? hash + 1 : t);
        }
        if (m)
            snprintf(msg, mcap, "%s", m);
        json_decref(j);
        return;
    }
    if (!code[0])
        vg_xml_text(r->body, "Code", code, ccap, NULL);
    vg_xml_text(r->body, "Message", msg, mcap, NULL);
}

static vg_status classify(long http, const char *code)
{
    if (vg_aws_retry_is_throttle(http, code))
        return VG_ERR_THROTTLED;
    if (http == 404 || strstr(code, "NotFound") || !strcmp(code, "NoSuchKey") ||
        !strcmp(code, "NoSuchBucket"))
        return VG_ERR_NOT_FOUND;
    if (http == 401 || http == 403 || strstr(code, "Signature") || strstr(code, "Token") ||
        strstr(code, "AccessDenied") || strstr(code, "UnrecognizedClient") ||
        strstr(code, "InvalidClientTokenId") || strstr(code, "AuthFailure"))
        return VG_ERR_AUTH;
    if (http >= 500)
        return VG_ERR_UNAVAILABLE;
    return VG_ERR_AWS;
}

/* ---- the call ------------------------------------------------------------ */

struct outcome {
    vg_status st;
    int retryable;
    int expired_creds;
};

static struct outcome attempt(struct vg_aws *a, const struct vg_aws_request *r,
                              struct vg_aws_response *resp)
{
    struct outcome o = {VG_OK, 0, 0};
    struct prepared p = {0};
    struct sink s = {.r = resp, .cap = a->o.max_response};
    CURL *c = NULL;

    memset(resp, 0, sizeof(*resp));
    resp->content_length = -1;
    last_code[0] = '\0';
    if ((o.st = prepare(a, r, &p)) != VG_OK)
        goto out;
    if (!(c = handle_get(a))) {
        o.st = VG_ERR_NOMEM;
        goto out;
    }
    setup_curl(a, c, r, &p, &s);
    CURLcode cc = curl_easy_perform(c);
    if (cc != CURLE_OK) {
        o.st = s.too_large ? vg_errf(VG_ERR_TOO_LARGE, "%s: response larger than %zu bytes",
                                     r->api, s.cap)
             : cc == CURLE_OPERATION_TIMEDOUT
                 ? vg_errf(VG_ERR_TIMEOUT, "%s: %s", r->api, curl_easy_strerror(cc))
                 : vg_errf(VG_ERR_UNAVAILABLE, "%s: %s", r->api, curl_easy_strerror(cc));
        o.retryable = !s.too_large;
        goto out;
    }
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &resp->status);
    if (resp->status >= 200 && resp->status < 300)
        goto out;
    char code[128], msg[512];
    parse_error(resp, s.error_type, code, sizeof(code), msg, sizeof(msg));
    snprintf(last_code, sizeof(last_code), "%s", code);
    o.st = classify(resp->status, code);
    o.retryable = vg_aws_retry_is_retryable(resp->status, code);
    o.expired_creds = strstr(code, "ExpiredToken") != NULL;
    if (o.st == VG_ERR_THROTTLED)
        vg_counter_inc(a->throttled);
    vg_errf(o.st, "%s: %s: %s (HTTP %ld%s%s)", r->api, code[0] ? code : "error",
            msg[0] ? msg : "no message", resp->status, resp->request_id[0] ? ", request " : "",
            resp->request_id);
out:
    if (c)
        handle_put(a, c);
    curl_slist_free_all(p.headers);
    if (o.st != VG_OK)
        vg_aws_response_cleanup(resp);
    return o;
}

vg_status vg_aws_call(struct vg_aws *a, const struct vg_aws_request *r,
                      struct vg_aws_response *out)
{
    struct vg_aws_response resp;
    struct outcome o = {VG_OK, 0, 0};
    last_code[0] = '\0';
    vg_counter_inc(a->calls);
    for (int i = 0; i < a->o.max_attempts; i++) {
        if (vg_aws_retry_take_rate(&a->retry, r->api, a->o.timeout_ms) != VG_OK)
            return vg_errf(VG_ERR_THROTTLED, "%s: client-side rate limit: no token within "
                           "%d ms", r->api, a->o.timeout_ms);
        o = attempt(a, r, &resp);
        if (o.st == VG_OK) {
            vg_aws_retry_success(&a->retry, i > 0);
            *out = resp;
            return VG_OK;
        }
        if (o.expired_creds)
            vg_aws_creds_invalidate(a->creds);
        if (!o.retryable || i + 1 == a->o.max_attempts ||
            !vg_aws_retry_acquire(&a->retry, o.st == VG_ERR_TIMEOUT))
            break;
        int64_t delay = vg_aws_retry_delay_ms(a->o.retry_base_ms, a->o.retry_cap_ms, i);
        vg_counter_inc(a->retries);
        VG_WARN("aws.retry", NULL, "%s (attempt %d of %d, next in %lld ms)", vg_err_detail(),
                i + 1, a->o.max_attempts, (long long)delay);
        vg_sleep_us(delay * 1000);
    }
    vg_counter_inc(a->failures);
    return o.st;
}

void vg_aws_response_cleanup(struct vg_aws_response *r)
{
    if (!r)
        return;
    free(r->body);
    r->body = NULL;
    r->len = 0;
}

vg_status vg_aws_call_json(struct vg_aws *a, const struct vg_aws_request *r, json_t *req,
                           size_t dump_flags, json_t **resp)
{
    struct vg_aws_response out = {0};
    json_error_t err;
    if (!req)
        return vg_errf(VG_ERR_INVALID, "%s: could not build the request (invalid UTF-8?)",
                       r->api);
    char *body = json_dumps(req, dump_flags);
    json_decref(req);
    if (!body)
        return vg_errf(VG_ERR_NOMEM, "%s: could not serialise the request", r->api);
    struct vg_aws_request q = *r;
    q.body = body;
    q.body_len = strlen(body);
    vg_status st = vg_aws_call(a, &q, &out);
    free(body);
    if (st != VG_OK || !resp) {
        vg_aws_response_cleanup(&out);
        return st;
    }
    json_t *j = json_loadb(out.len ? out.body : "{}", out.len ? out.len : 2, 0, &err);
    vg_aws_response_cleanup(&out);
    if (!json_is_object(j)) {
        json_decref(j);
        return vg_errf(VG_ERR_DECODE, "%s: answer is not a JSON object: %s", r->api, err.text);
    }
    *resp = j;
    return VG_OK;
}
