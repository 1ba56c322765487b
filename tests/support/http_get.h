/* A plain libcurl GET, as a browser or the reader of an alert would open a
 * link: the status and the body, nothing signed. Header-only, like
 * fixture.h; include after cmocka.h. */
#ifndef VG_TEST_HTTP_GET_H
#define VG_TEST_HTTP_GET_H

#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

struct buf {
    char *data;     /* NUL-terminated; the caller frees */
    size_t len;
};

static size_t buf_append(char *p, size_t size, size_t n, void *ctx)
{
    struct buf *b = ctx;
    char *q = realloc(b->data, b->len + size * n + 1);
    if (!q)
        return 0;
    memcpy(q + b->len, p, size * n);
    b->data = q;
    b->len += size * n;
    q[b->len] = '\0';
    return size * n;
}

/* The HTTP status of GET url, its body appended to *b. */
static long http_get(const char *url, struct buf *b)
{
    long status = 0;
    CURL *c = curl_easy_init();
    assert_non_null(c);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, buf_append);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 10000L);
    assert_int_equal(curl_easy_perform(c), CURLE_OK);
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

#endif
