/* The AWS call: endpoint resolution, SigV4 signing, timeouts, retries with
 * exponential backoff and full jitter inside a retry budget, a client-side
 * token bucket per API, bounded response bodies, and AWS errors translated
 * to vg_status with the error code and message in the detail.
 * One struct vg_aws per process, shared by its threads. */
#ifndef VG_AWS_CLIENT_H
#define VG_AWS_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "aws/credentials.h"
#include "aws/sigv4.h"
#include "status.h"

struct vg_aws_opts {
    const char *region;         /* NULL: AWS_REGION, AWS_DEFAULT_REGION, the profile's
                                 * region, else "us-east-1" */
    struct vg_aws_cred_opts creds;
    int connect_timeout_ms;     /* 0: 3000 */
    int timeout_ms;             /* whole attempt; 0: 10000 */
    int max_attempts;           /* 0: 3 (first try + 2 retries) */
    int retry_base_ms;          /* 0: 100 */
    int retry_cap_ms;           /* 0: 20000 */
    size_t max_response;        /* 0: 16 MiB */
};

struct vg_aws;

vg_status vg_aws_create(struct vg_aws **out, const struct vg_aws_opts *o);
void vg_aws_destroy(struct vg_aws *a);
const char *vg_aws_region(const struct vg_aws *a);
struct vg_aws_cred_provider *vg_aws_credentials(struct vg_aws *a);

/* At most per_second calls of api on average, bursts of up to burst; callers
 * wait for a token (up to the attempt timeout, then VG_ERR_THROTTLED). */
vg_status vg_aws_set_rate_limit(struct vg_aws *a, const char *api, double per_second,
                                double burst);

struct vg_aws_request {
    const char *api;            /* "rekognition.DetectLabels": logs, rate limits */
    const char *service;        /* SigV4 signing name: "rekognition", "s3", ... */
    const char *endpoint_id;    /* AWS_ENDPOINT_URL_<ID> suffix: "REKOGNITION", "S3", ... */
    const char *host;           /* default host; NULL: "<service>.<region>.amazonaws.com" */
    const char *endpoint;       /* "scheme://host[:port]" that overrides all (KVS data) */
    const char *method;         /* "POST" */
    const char *path;           /* URI-encoded; NULL: "/" */
    const char *query;          /* URI-encoded, NULL for none */
    const char *content_type;   /* NULL for none */
    const char *target;         /* X-Amz-Target, JSON protocols */
    const struct vg_sigv4_header *headers; /* extra request headers, signed */
    size_t n_headers;
    const void *body;
    size_t body_len;
    int anonymous;              /* no signature (STS AssumeRoleWithWebIdentity) */
};

struct vg_aws_response {
    long status;
    char *body;                 /* NUL-terminated; free with vg_aws_response_cleanup */
    size_t len;
    char request_id[128];
    char content_type[128];
    char etag[160];
    char last_modified[64];     /* HTTP date, as sent */
    int64_t content_length;     /* from the header, -1 when absent */
};

/* One API call. On VG_OK, out holds a 2xx response. On failure out is left
 * empty and the detail reads "<api>: <Code>: <message> (HTTP <status>)";
 * statuses: VG_ERR_THROTTLED, VG_ERR_AUTH, VG_ERR_NOT_FOUND (404 / *NotFound*),
 * VG_ERR_TIMEOUT, VG_ERR_UNAVAILABLE (network, 5xx), VG_ERR_TOO_LARGE, VG_ERR_AWS. */
vg_status vg_aws_call(struct vg_aws *a, const struct vg_aws_request *r,
                      struct vg_aws_response *out);
void vg_aws_response_cleanup(struct vg_aws_response *r);

/* The JSON protocols' round trip: req (consumed; NULL means building it
 * failed) is serialised with jansson's dump_flags as r's body, and *resp
 * (may be NULL) gets the answer, which must be a JSON object; an empty
 * answer counts as {}. r->body is ignored. */
vg_status vg_aws_call_json(struct vg_aws *a, const struct vg_aws_request *r, json_t *req,
                           size_t dump_flags, json_t **resp);

/* "scheme://host[:port]" for a service, honouring AWS_ENDPOINT_URL_<ID> and
 * AWS_ENDPOINT_URL; default_host NULL as in the request. */
void vg_aws_endpoint(const struct vg_aws *a, const char *endpoint_id, const char *service,
                     const char *default_host, char *out, size_t cap);

/* The AWS error code of a failed call on this thread ("" if none), e.g.
 * "ResourceNotFoundException", for callers that treat some codes as normal. */
const char *vg_aws_last_error_code(void);

#endif
