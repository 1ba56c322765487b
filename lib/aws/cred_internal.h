/* Internal to the credential chain (credentials.c, cred_files.c, cred_http.c,
 * cred_remote.c): the per-resolution context and the sources' common shape. */
#ifndef VG_AWS_CRED_INTERNAL_H
#define VG_AWS_CRED_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "aws/credentials.h"
#include "status.h"

#define CRED_WHY_CAP 160            /* one source's reason in the chain summary */
#define CRED_HTTP_MAX_BODY (64 * 1024)
#define CRED_IMDS_TIMEOUT_MS 1000

/* What one walk of the chain works from: the options, with the environment
 * folded in where the header says so. */
struct cred_ctx {
    const char *access_key_id;      /* explicit keys, may be NULL */
    const char *secret_access_key;
    const char *session_token;
    const char *profile;            /* resolved: opts, AWS_PROFILE, "default" */
    const char *region;             /* resolved: opts, AWS_REGION, AWS_DEFAULT_REGION, us-east-1 */
    int timeout_ms;                 /* resolved: opts or 2000 */
};

/* A source fills *out and returns 1, or returns 0 with why set ("not
 * configured" or what went wrong). out may be partly written on 0. */
typedef int (*cred_source_fn)(const struct cred_ctx *c, struct vg_aws_creds *out, char *why,
                              size_t cap);

int vg_cred_src_profile(const struct cred_ctx *c, struct vg_aws_creds *out, char *why, size_t cap);
int vg_cred_src_web_identity(const struct cred_ctx *c, struct vg_aws_creds *out, char *why,
                             size_t cap);
int vg_cred_src_container(const struct cred_ctx *c, struct vg_aws_creds *out, char *why,
                          size_t cap);
int vg_cred_src_imds(const struct cred_ctx *c, struct vg_aws_creds *out, char *why, size_t cap);

/* getenv that treats "" as unset. */
const char *vg_cred_env(const char *name);

/* Fill out from the three strings (token may be NULL), checking lengths.
 * Returns 1, or 0 with why set. */
int vg_cred_fill(struct vg_aws_creds *out, const char *source, const char *key_id,
                 const char *secret, const char *token, int64_t expires_us, char *why,
                 size_t cap);

/* Whole file into a NUL-terminated heap buffer of at most max bytes.
 * Returns 0, or -1 with errno set (EFBIG when larger than max). */
int vg_cred_read_file(const char *path, size_t max, char **out, size_t *len);
/* Zero and free a buffer that may hold secrets. */
void vg_cred_free_secret(char *buf, size_t len);

/* "2026-11-21T06:00:00Z", "...:00.123Z", "...:00+01:00" to wall-clock µs; -1 if malformed. */
int64_t vg_cred_parse_time(const char *s);

/* One HTTP exchange with a bounded body. */
struct cred_http_req {
    const char *method;             /* "GET", "PUT", "POST" */
    const char *url;
    const char *const *headers;     /* "Name: value" lines */
    size_t n_headers;
    const char *body;               /* NULL for none */
    int timeout_ms;                 /* connect and total */
    int no_proxy;                   /* link-local and loopback services */
};

struct cred_http_resp {
    long status;
    char *body;                     /* NUL-terminated; vg_cred_http_cleanup */
    size_t len;
};

/* 0 with any HTTP status in resp, or -1 with why set (network, timeout, size). */
int vg_cred_http(const struct cred_http_req *r, struct cred_http_resp *resp, char *why,
                 size_t cap);
void vg_cred_http_cleanup(struct cred_http_resp *resp);

#endif
