/* webhook sink: POST the alert JSON, optionally signed with
 * X-Vigil-Signature: sha256=<hex HMAC-SHA256(secret, body)>.
 * 2xx is success; 408, 429, 5xx and network errors are worth retrying; any
 * other answer means the receiver rejected the alert and retrying is futile.
 * Webhook URLs often carry tokens in their path, so logs name only the origin. */
#include "sink.h"

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BODY_MAX (64 * 1024)    /* response bytes read before we hang up */
#define SNIPPET_MAX 160         /* response bytes quoted in an error */
#define DEFAULT_TIMEOUT_MS 5000
#define CONNECT_TIMEOUT_MAX_MS 10000

struct webhook_sink {
    struct ntf_sink base;       /* first member: the notifier only sees this */
    CURL *curl;                 /* kept between alerts for connection reuse */
    char url[VG_URL_MAX];
    char origin[VG_URL_MAX];    /* scheme://host[:port], safe to log */
    char secret[256];
};

struct response {
    size_t seen;
    int capped;
    size_t n;
    char snippet[SNIPPET_MAX + 1];
};

vg_status ntf_hmac_sha256_hex(const char *secret, const void *body, size_t len,
                              char out[NTF_HMAC_HEX_LEN + 1])
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    size_t keylen = strlen(secret);
    if (keylen > (size_t)0x7fffffff ||
        !HMAC(EVP_sha256(), secret, (int)keylen, body, len, mac, &maclen) || maclen != 32)
        return vg_errf(VG_ERR_INVALID, "HMAC-SHA256 failed");
    for (unsigned int i = 0; i < maclen; i++)
        snprintf(out + 2 * i, 3, "%02x", mac[i]);
    return VG_OK;
}

/* "https://user:pw@host:8443/hook/T0KEN?x=1" -> "https://host:8443". */
static void url_origin(char *out, size_t cap, const char *url)
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

static vg_status build_headers(struct webhook_sink *w, const char *body, size_t len,
                               const Vigil__V1__Alert *a, struct curl_slist **out)
{
    char line[128], hex[NTF_HMAC_HEX_LEN + 1];
    struct curl_slist *h = NULL, *t;
    /* "Expect:" stops curl from waiting for 100-continue on larger bodies. */
    const char *fixed[] = {"Content-Type: application/json", "Expect:",
                           "User-Agent: vigil-notifier/1"};
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++) {
        if (!(t = curl_slist_append(h, fixed[i])))
            goto nomem;
        h = t;
    }
    snprintf(line, sizeof(line), "X-Vigil-Alert-Id: %s", a->alert_id);
    if (!(t = curl_slist_append(h, line)))
        goto nomem;
    h = t;
    if (w->secret[0]) {
        vg_status st = ntf_hmac_sha256_hex(w->secret, body, len, hex);
        if (st != VG_OK) {
            curl_slist_free_all(h);
            return st;
        }
        snprintf(line, sizeof(line), "X-Vigil-Signature: sha256=%s", hex);
        if (!(t = curl_slist_append(h, line)))
            goto nomem;
        h = t;
    }
    *out = h;
    return VG_OK;
nomem:
    curl_slist_free_all(h);
    return vg_errf(VG_ERR_NOMEM, "webhook %s: headers", w->base.name);
}

static void set_request(struct webhook_sink *w, const char *body, size_t len,
                        struct curl_slist *headers, struct response *r, char *errbuf)
{
    CURL *c = w->curl;
    long timeout = w->base.timeout_ms;
    curl_easy_setopt(c, CURLOPT_URL, w->url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < CONNECT_TIMEOUT_MAX_MS ? timeout : (long)CONNECT_TIMEOUT_MAX_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
}

static vg_status classify(struct webhook_sink *w, CURLcode rc, const struct response *r,
                          const char *errbuf)
{
    long code = 0;
    /* Hanging up on an oversized answer still leaves us its status code. */
    if (rc != CURLE_OK && !(rc == CURLE_WRITE_ERROR && r->capped)) {
        const char *why = errbuf[0] ? errbuf : curl_easy_strerror(rc);
        return vg_errf(rc == CURLE_OPERATION_TIMEDOUT ? VG_ERR_TIMEOUT : VG_ERR_IO,
                       "POST %s: %s", w->origin, why);
    }
    curl_easy_getinfo(w->curl, CURLINFO_RESPONSE_CODE, &code);
    if (code >= 200 && code < 300)
        return VG_OK;
    vg_status st = (code >= 500 || code == 408 || code == 429) ? VG_ERR_UNAVAILABLE : VG_ERR_HTTP;
    return vg_errf(st, "POST %s: HTTP %ld%s%s", w->origin, code, r->n ? ": " : "", r->snippet);
}

static vg_status webhook_deliver(struct ntf_sink *s, const char *body, size_t len,
                                 const Vigil__V1__Alert *a)
{
    struct webhook_sink *w = (struct webhook_sink *)s;
    struct curl_slist *headers = NULL;
    struct response r = {0};
    char errbuf[CURL_ERROR_SIZE] = "";

    vg_status st = build_headers(w, body, len, a, &headers);
    if (st != VG_OK)
        goto out;
    set_request(w, body, len, headers, &r, errbuf);
    st = classify(w, curl_easy_perform(w->curl), &r, errbuf);
out:
    /* The handle must not keep pointers into this call's stack. */
    curl_easy_setopt(w->curl, CURLOPT_HTTPHEADER, NULL);
    curl_easy_setopt(w->curl, CURLOPT_ERRORBUFFER, NULL);
    curl_easy_setopt(w->curl, CURLOPT_WRITEDATA, NULL);
    curl_slist_free_all(headers);
    return st;
}

static void webhook_destroy(struct ntf_sink *s)
{
    struct webhook_sink *w = (struct webhook_sink *)s;
    curl_easy_cleanup(w->curl);
    OPENSSL_cleanse(w->secret, sizeof(w->secret));
    free(w);
}

vg_status ntf_sink_webhook_create(struct ntf_sink **out, const struct vg_sink_cfg *cfg)
{
    if (strncmp(cfg->url, "http://", 7) != 0 && strncmp(cfg->url, "https://", 8) != 0)
        return vg_errf(VG_ERR_CONFIG, "notifier.sinks.%s: webhook url must be http(s)://",
                       cfg->name);
    struct webhook_sink *w = calloc(1, sizeof(*w));
    if (!w || !(w->curl = curl_easy_init())) {
        free(w);
        return vg_errf(VG_ERR_NOMEM, "webhook sink %s", cfg->name);
    }
    ntf_sink_base_init(&w->base, cfg);
    if (w->base.timeout_ms == 0)
        w->base.timeout_ms = DEFAULT_TIMEOUT_MS;
    snprintf(w->url, sizeof(w->url), "%s", cfg->url);
    url_origin(w->origin, sizeof(w->origin), cfg->url);
    snprintf(w->secret, sizeof(w->secret), "%s", cfg->secret);
    w->base.deliver = webhook_deliver;
    w->base.destroy = webhook_destroy;
    *out = &w->base;
    return VG_OK;
}
