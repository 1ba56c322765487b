/* The HTTP exchanges of the credential sources (libcurl, one easy handle per
 * call, bounded body) and the ISO 8601 times their answers carry. */
#include <ctype.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "aws/cred_internal.h"

struct sink {
    char *buf;
    size_t len;
    int too_large;
};

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sink *s = arg;
    size_t n = size * nmemb;
    if (s->len + n > CRED_HTTP_MAX_BODY) {
        s->too_large = 1;
        return 0;
    }
    memcpy(s->buf + s->len, data, n);
    s->len += n;
    return n;
}

static int setup(CURL *h, const struct cred_http_req *r, struct curl_slist *hdrs,
                 struct sink *s, char *errbuf)
{
    int ok = curl_easy_setopt(h, CURLOPT_URL, r->url) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, (long)r->timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)r->timeout_ms) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, r->method) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_WRITEDATA, s) == CURLE_OK;
    ok &= curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf) == CURLE_OK;
#if LIBCURL_VERSION_NUM >= 0x075500
    ok &= curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https") == CURLE_OK;
#endif
    if (r->no_proxy)
        ok &= curl_easy_setopt(h, CURLOPT_NOPROXY, "*") == CURLE_OK;
    if (r->body) {
        ok &= curl_easy_setopt(h, CURLOPT_POSTFIELDS, r->body) == CURLE_OK;
        ok &= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, (long)strlen(r->body)) == CURLE_OK;
    } else if (strcmp(r->method, "GET") != 0) {
        /* PUT/POST without a body: send Content-Length: 0, read nothing. */
        ok &= curl_easy_setopt(h, CURLOPT_POSTFIELDS, "") == CURLE_OK;
        ok &= curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE, 0L) == CURLE_OK;
    }
    return ok;
}

int vg_cred_http(const struct cred_http_req *r, struct cred_http_resp *resp, char *why,
                 size_t cap)
{
    CURL *h = NULL;
    struct curl_slist *hdrs = NULL, *t;
    struct sink s = {0};
    char errbuf[CURL_ERROR_SIZE] = "";
    int rc = -1;

    /* No "Expect: 100-continue" round trip on the POSTs. */
    if (!(hdrs = curl_slist_append(NULL, "Expect:")))
        goto nomem;
    for (size_t i = 0; i < r->n_headers; i++) {
        if (!(t = curl_slist_append(hdrs, r->headers[i])))
            goto nomem;
        hdrs = t;
    }
    if (!(s.buf = malloc(CRED_HTTP_MAX_BODY + 1)) || !(h = curl_easy_init()))
        goto nomem;
    if (!setup(h, r, hdrs, &s, errbuf)) {
        snprintf(why, cap, "curl setup failed");
        goto out;
    }
    CURLcode cc = curl_easy_perform(h);
    if (cc != CURLE_OK) {
        snprintf(why, cap, "%s", s.too_large ? "answer larger than 64 KiB"
                                 : errbuf[0] ? errbuf : curl_easy_strerror(cc));
        goto out;
    }
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    s.buf[s.len] = '\0';
    resp->body = s.buf;
    resp->len = s.len;
    s.buf = NULL;
    rc = 0;
    goto out;
nomem:
    snprintf(why, cap, "out of memory");
out:
    if (s.buf)
        vg_cred_free_secret(s.buf, CRED_HTTP_MAX_BODY + 1);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(h);
    return rc;
}

void vg_cred_http_cleanup(struct cred_http_resp *resp)
{
    vg_cred_free_secret(resp->body, resp->len);
    resp->body = NULL;
    resp->len = 0;
}

/* n digits at *p, advancing it; -1 if they are not all there. */
static int digits(const char **p, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++, (*p)++) {
        if (!isdigit((unsigned char)**p))
            return -1;
        v = v * 10 + (**p - '0');
    }
    return v;
}

static int expect(const char **p, char c)
{
    if (**p != c)
        return 0;
    (*p)++;
    return 1;
}

/* Trailing "Z", "+hh:mm" or "-hh:mm" as seconds east of UTC; 1 on success. */
static int zone_offset(const char *p, long *off)
{
    if ((p[0] == 'Z' || p[0] == 'z') && !p[1]) {
        *off = 0;
        return 1;
    }
    if (p[0] != '+' && p[0] != '-')
        return 0;
    const char *q = p + 1;
    int hh = digits(&q, 2);
    expect(&q, ':');
    int mm = digits(&q, 2);
    if (hh < 0 || mm < 0 || *q || hh > 23 || mm > 59)
        return 0;
    *off = (p[0] == '-' ? -1 : 1) * (hh * 3600L + mm * 60L);
    return 1;
}

int64_t vg_cred_parse_time(const char *s)
{
    const char *p = s;
    struct tm tm = {0};
    int64_t frac_us = 0, scale = 100000;
    long off = 0;

    if (!s)
        return -1;
    tm.tm_year = digits(&p, 4) - 1900;
    tm.tm_mon = expect(&p, '-') ? digits(&p, 2) - 1 : -1;
    tm.tm_mday = expect(&p, '-') ? digits(&p, 2) : -1;
    tm.tm_hour = (expect(&p, 'T') || expect(&p, 't')) ? digits(&p, 2) : -1;
    tm.tm_min = expect(&p, ':') ? digits(&p, 2) : -1;
    tm.tm_sec = expect(&p, ':') ? digits(&p, 2) : -1;
    if (tm.tm_year < 70 || tm.tm_mon < 0 || tm.tm_mon > 11 || tm.tm_mday < 1 ||
        tm.tm_mday > 31 || tm.tm_hour < 0 || tm.tm_hour > 23 || tm.tm_min < 0 ||
        tm.tm_min > 59 || tm.tm_sec < 0 || tm.tm_sec > 60)
        return -1;
    if (expect(&p, '.')) {
        if (!isdigit((unsigned char)*p))
            return -1;
        for (; isdigit((unsigned char)*p); p++, scale /= 10)
            frac_us += (*p - '0') * scale;
    }
    if (!zone_offset(p, &off))
        return -1;
    time_t t = timegm(&tm);
    if (t == (time_t)-1)
        return -1;
    return ((int64_t)t - off) * 1000000 + frac_us;
}
