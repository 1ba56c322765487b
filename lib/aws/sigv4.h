/* AWS Signature Version 4: header signing and query-string pre-signing.
 * Pure functions over the request's parts, so tests can use AWS's published
 * examples. */
#ifndef VG_AWS_SIGV4_H
#define VG_AWS_SIGV4_H

#include <stddef.h>
#include <stdint.h>

#include "aws/credentials.h"
#include "status.h"

#define VG_SIGV4_MAX_HEADERS 24

struct vg_sigv4_header {
    const char *name;           /* any case; signed lower-cased */
    const char *value;          /* trimmed and inner spaces collapsed when signed */
};

struct vg_sigv4_request {
    const char *method;         /* "GET", "POST", ... */
    const char *path;           /* already URI-encoded, e.g. "/my%20key"; "" = "/" */
    const char *query;          /* already encoded "a=1&b=2" in any order; NULL or "" */
    const struct vg_sigv4_header *headers; /* must include host; x-amz-date added if missing */
    size_t n_headers;
    const char *payload_sha256; /* hex; NULL: computed from body */
    const uint8_t *body;
    size_t body_len;
    const char *region;
    const char *service;        /* signing name: "s3", "rekognition", ... */
    const char *amz_date;       /* "YYYYMMDDTHHMMSSZ" */
};

/* The Authorization header value. */
vg_status vg_sigv4_authorization(const struct vg_sigv4_request *r, const struct vg_aws_creds *c,
                                 char *out, size_t cap);

/* A pre-signed URL "scheme://host/path?...&X-Amz-Signature=..." valid for
 * expires_s seconds (1 .. 604800). r->query holds any extra parameters;
 * r->headers only host (signed), r->body unused (UNSIGNED-PAYLOAD). */
vg_status vg_sigv4_presign(const struct vg_sigv4_request *r, const struct vg_aws_creds *c,
                           const char *scheme, int expires_s, char *out, size_t cap);

/* Helpers shared with the callers. */
void vg_sha256_hex(const void *data, size_t len, char out[65]);
/* RFC 3986 encoding as SigV4 wants it; keep_slash for paths. Returns the
 * length written, or (size_t)-1 when out is too small. */
size_t vg_uri_encode(const char *in, size_t len, int keep_slash, char *out, size_t cap);
/* "YYYYMMDDTHHMMSSZ" for a wall-clock time in µs. */
void vg_amz_date(int64_t now_us, char out[17]);

#endif
