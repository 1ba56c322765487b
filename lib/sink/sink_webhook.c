/* webhook sink: POST the alert JSON with X-Vigil-Alert-Id (receivers
 * de-duplicate on it: delivery is at least once) and, with a secret,
 *   X-Vigil-Timestamp: <unix seconds>
 *   X-Vigil-Signature: sha256=<hex HMAC-SHA256(secret, "<timestamp>.<body>")>
 * so a receiver can verify the sender and refuse a captured request replayed
 * later (a timestamp older than a few minutes).
 * 2xx is success; 408, 425, 429, 5xx and network errors are transient (a
 * Retry-After is passed on); any other answer means the receiver rejected the
 * alert and trying again is futile. Webhook URLs often carry tokens in their
 * path, so logs name only the origin. */
#include "sink/sink.h"

#include <curl/curl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define BODY_MAX (64 * 1024)    /* response bytes read before we hang up */
#define SNIPPET_MAX 160         /* response bytes quoted in an error */
#define CONNECT_TIMEOUT_MAX_MS 10000

struct webhook_settings {
    char url[VG_URL_MAX];
    char secret[256];
};

static const struct vg_opt webhook_opts[] = {
    VG_OPT_STR_("url", struct webhook_settings, url, "", "URL", 1,
                "http(s) endpoint; may carry a token, so only its origin is logged"),
    VG_OPT_STR_("secret", struct webhook_settings, secret, "", "SECRET", 1,
                "HMAC-SHA256 key for X-Vigil-Signature; or VIGIL_SINK_<NAME>_SECRET(_FILE)"),
    VG_OPT_END,
};

struct webhook {
    CURL *curl;                 /* kept between alerts for connection reuse */
    const struct webhook_settings *set;
    int timeout_ms;
    char name[32];
    char origin[VG_URL_MAX];    /* scheme://host[:port], safe to log */
};

struct response {
    size_t seen;
    int capped;
    size_t n;
    char snippet[SNIPPET_MAX + 1];
    int64_t retry_after_ms;
};

vg_status vg_sink_sign(const char *secret, int64_t ts, const void *body, size_t len,
                       char out[VG_SINK_HMAC_HEX_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t keylen = strlen(secret);
    char prefix[32];
    size_t plen = (size_t)snprintf(prefix, sizeof(prefix), "%lld.", (long long)ts);
    unsigned char *msg = malloc(plen + len + 1);
    if (!msg)
        return vg_errf(VG_ERR_NOMEM, "HMAC-SHA256: %zu bytes", plen + len);
    memcpy(msg, prefix, plen);
    if (len)
        memcpy(msg + plen, body, len);
    int ok = keylen <= 0x7fffffff &&
             HMAC(EVP_sha256(), secret, (int)keylen, msg, plen + len, mac, &maclen) &&
             maclen == 32;
    free(msg);
    if (!ok)
        return vg_errf(VG_ERR_INVALID, "HMAC-SHA256 failed");
    for (unsigned int i = 0; i < maclen; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    return VG_OK;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
    struct response *r = ud;
    size_t n = size * nmemb;
    size_t keep = SNIPPET_MAX - r->n;
    if (keep > n)
        keep = n;
    for (size_t i = 0; i < keep; i++) {
        unsigned char c = (unsigned char)data[i];
        r->snippet[r->n++] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
    }
    r->snippet[r->n] = '\0';
    r->seen += n;
    if (r->seen > BODY_MAX) {
        r->capped = 1;
        return 0;               /* makes curl stop with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Retry-After: delay-seconds or an HTTP-date (RFC 9110, 10.2.3). */
static int64_t parse_retry_after(const char *v, size_t n)
{
    char buf[64];
    struct tm tm;
    while (n && (*v == ' ' || *v == '\t'))
        v++, n--;
    while (n && (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' '))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return 0;
    memcpy(buf, v, n);
    buf[n] = '\0';
    char *end = NULL;
    long long secs = strtoll(buf, &end, 10);
    if (end != buf && *end == '\0')
        return secs > 0 ? secs * 1000 : 0;
    memset(&tm, 0, sizeof(tm));
    end = strptime(buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
    if (!end || *end)
        return 0;
    int64_t at = (int64_t)timegm(&tm) - (int64_t)time(NULL);
    return at > 0 ? at * 1000 : 0;
}

static size_t on_header(char *data, size_t size, size_t nmemb, void *ud)
{
    struct response *r = ud;
    size_t n = size * nmemb;
    static const char name[] = "retry-after:";
    if (n > sizeof(name) - 1 && strncasecmp(data, name, sizeof(name) - 1) == 0)
        r->retry_after_ms = parse_retry_after(data + sizeof(name) - 1, n - (sizeof(name) - 1));
    return n;
}

static int add_header(struct curl_slist **h, const char *line)
{
    struct curl_slist *t = curl_slist_append(*h, line);
    if (!t)
        return 0;
    *h = t;
    return 1;
}

static vg_status build_headers(const struct webhook *w, const struct vg_sink_alert *a,
                               struct curl_slist **out)
{
    char line[160], hex[VG_SINK_HMAC_HEX_LEN + 1];
    struct curl_slist *h = NULL;
    int64_t ts = a->now_us / 1000000;
    /* "Expect:" stops curl from waiting for 100-continue on larger bodies. */
    int ok = add_header(&h, "Content-Type: application/json") && add_header(&h, "Expect:") &&
             add_header(&h, "User-Agent: vigil-notifier/1");
    snprintf(line, sizeof(line), "X-Vigil-Alert-Id: %s", a->alert->alert_id);
    ok = ok && add_header(&h, line);
    snprintf(line, sizeof(line), "X-Vigil-Delivery: %u", a->delivery);
    ok = ok && add_header(&h, line);
    if (ok && w->set->secret[0]) {
        vg_status st = vg_sink_sign(w->set->secret, ts, a->json, a->json_len, hex);
        if (st != VG_OK) {
            curl_slist_free_all(h);
            return st;
        }
        snprintf(line, sizeof(line), "X-Vigil-Timestamp: %lld", (long long)ts);
        ok = add_header(&h, line);
        snprintf(line, sizeof(line), "X-Vigil-Signature: sha256=%s", hex);
        ok = ok && add_header(&h, line);
    }
    if (!ok) {
        curl_slist_free_all(h);
        return vg_errf(VG_ERR_NOMEM, "webhook %s: headers", w->name);
    }
    *out = h;
    return VG_OK;
}

static void set_request(struct webhook *w, const struct vg_sink_alert *a,
                        struct curl_slist *headers, struct response *r, char *errbuf)
{
    CURL *c = w->curl;
    long timeout = w->timeout_ms;
    curl_easy_setopt(c, CURLOPT_URL, w->set->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, a->json);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)a->json_len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < CONNECT_TIMEOUT_MAX_MS ? timeout : (long)CONNECT_TIMEOUT_MAX_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

static void classify(struct webhook *w, CURLcode rc, const struct response *r,
                     const char *errbuf, struct vg_sink_result *res)
{
    long code = 0;
    /* Hanging up on an oversized answer still leaves us its status code. */
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && r->capped)) {
        vg_sink_fail(res, VG_SINK_RETRY, "POST %s: %s", w->origin,
                     errbuf[0] ? errbuf : curl_easy_strerror(rc));
        return;
    }
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300)
        return;
    int transient = code >= 500 || code == 408 || code == 425 || code == 429;
    vg_sink_fail(res, transient ? VG_SINK_RETRY : VG_SINK_PERMANENT, "POST %s: HTTP %ld%s%s",
                 w->origin, code, r->n ? ": " : "", r->snippet);
    if (transient)
        res->retry_after_ms = r->retry_after_ms;
}

static void webhook_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *res)
{
    struct webhook *w = state;
    struct curl_slist *headers = NULL;
    struct response r = {0};
    char errbuf[CURL_ERROR_SIZE] = "";

    if (build_headers(w, a, &headers) != VG_OK) {
        vg_sink_fail(res, VG_SINK_RETRY, "%s", vg_err_detail());
        return;
    }
    set_request(w, a, headers, &r, errbuf);
    classify(w, curl_easy_perform(w->curl), &r, errbuf, res);
    /* The handle must not keep pointers into this call's stack. */
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(w->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, NULL);
    curl_easy_setopt(w->curl, CURLOPT_HEADERDATA, NULL);
    curl_slist_free_all(headers);
}

static void webhook_cleanup(void *state)
{
    struct webhook *w = state;
    if (!w)
        return;
    curl_easy_cleanup(w->curl);
    free(w);
}

static vg_status webhook_check(const void *settings, const char *where)
{
    const struct webhook_settings *s = settings;
    if (!vg_sink_is_http_url(s->url))
        return vg_errf(VG_ERR_CONFIG, "%s: a webhook sink needs an http(s) url", where);
    return VG_OK;
}

static vg_status webhook_init(void **state, const struct vg_sink_cfg *cfg,
                             const struct vg_config *root)
{
    (void)root;
    struct webhook *w = calloc(1, sizeof(*w));
    if (!w || !(w->curl = curl_easy_init())) {
        free(w);
        return vg_errf(VG_ERR_NOMEM, "curl handle");
    }
    w->set = (const struct webhook_settings *)cfg->settings;
    w->timeout_ms = cfg->timeout_ms;
    snprintf(w->name, sizeof(w->name), "%s", cfg->name);
    vg_sink_url_origin(w->origin, sizeof(w->origin), w->set->url);
    *state = w;
    return VG_OK;
}

const struct vg_sink_ops vg_sink_webhook = {
    .name = "webhook",
    .opts = webhook_opts,
    .settings_size = sizeof(struct webhook_settings),
    .default_timeout_ms = 5000,
    .check = webhook_check,
    .init = webhook_init,
    .deliver = webhook_deliver,
    .cleanup = webhook_cleanup,
};
