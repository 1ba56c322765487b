#include "curl_body.h"

#include <stdlib.h>
#include <string.h>

size_t vg_curl_body_write(char *data, size_t size, size_t nmemb, void *ud)
{
    struct vg_curl_body *b = ud;
    size_t n = size * nmemb;
    if (n > VG_CURL_BODY_MAX - b->len) {
        b->too_large = 1;
        return 0;               /* curl stops with CURLE_WRITE_ERROR */
    }
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        while (cap < b->len + n + 1)
            cap *= 2;
        if (cap > VG_CURL_BODY_MAX + 1)
            cap = VG_CURL_BODY_MAX + 1;
        char *p = realloc(b->data, cap);
        if (!p) {
            b->nomem = 1;
            return 0;
        }
        b->data = p;
        b->cap = cap;
    }
    memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}
