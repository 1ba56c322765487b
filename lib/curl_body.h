/* A libcurl answer collected into memory up to a cap: the write callback
 * every HTTP backend needs (DeepStack detector and face matcher, ...). */
#ifndef VG_CURL_BODY_H
#define VG_CURL_BODY_H

#include <stddef.h>

#define VG_CURL_BODY_MAX (1024 * 1024)  /* answer bytes read before we hang up */

/* Zero-initialise; data is NUL-terminated once anything arrived. */
struct vg_curl_body {
    char *data;
    size_t len, cap;
    int too_large, nomem;       /* why the callback stopped curl (CURLE_WRITE_ERROR) */
};

/* CURLOPT_WRITEFUNCTION with CURLOPT_WRITEDATA = struct vg_curl_body *. */
size_t vg_curl_body_write(char *data, size_t size, size_t nmemb, void *ud);

#endif
