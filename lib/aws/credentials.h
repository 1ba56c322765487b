/* AWS credentials: the SDKs' default provider chain, cached and refreshed
 * before expiry, safe to share between threads. Secrets are never logged. */
#ifndef VG_AWS_CREDENTIALS_H
#define VG_AWS_CREDENTIALS_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

struct vg_aws_creds {
    char access_key_id[128];
    char secret_access_key[128];
    char session_token[4096];   /* "" for long-term keys */
    int64_t expires_us;         /* wall clock; 0 = does not expire */
    char source[32];            /* "config", "env", "profile", "web-identity", "container", "imds" */
};

/* Where the chain looks, in this order (the first that yields wins):
 *  1. explicit keys (opts)
 *  2. environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *  3. shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and
 *     AWS_CONFIG_FILE (~/.aws/config), profile AWS_PROFILE (default "default")
 *  4. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN
 *     (+ AWS_ROLE_SESSION_NAME) through STS AssumeRoleWithWebIdentity
 *  5. container: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (169.254.170.2) or
 *     AWS_CONTAINER_CREDENTIALS_FULL_URI, with AWS_CONTAINER_AUTHORIZATION_TOKEN
 *     or AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE
 *  6. EC2 instance metadata, IMDSv2 (token PUT, then GET), unless
 *     AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides
 *     the address (tests). */
struct vg_aws_cred_opts {
    const char *access_key_id;      /* explicit, from the vigil config; may be NULL */
    const char *secret_access_key;
    const char *session_token;
    const char *profile;            /* NULL: AWS_PROFILE or "default" */
    const char *region;             /* for the STS call of web identity */
    int timeout_ms;                 /* per HTTP call of the chain; 0 = 2000 */
};

struct vg_aws_cred_provider;

vg_status vg_aws_creds_create(struct vg_aws_cred_provider **out, const struct vg_aws_cred_opts *o);
void vg_aws_creds_destroy(struct vg_aws_cred_provider *p);

/* Current credentials: cached; temporary ones are refreshed when they
 * expire within 5 minutes (another thread waiting meanwhile gets the
 * refreshed copy). VG_ERR_AUTH with the sources tried when none yields. */
vg_status vg_aws_creds_get(struct vg_aws_cred_provider *p, struct vg_aws_creds *out);

/* The region of a profile in the shared config file (AWS_CONFIG_FILE or
 * ~/.aws/config); profile NULL: AWS_PROFILE or "default". VG_ERR_NOT_FOUND
 * when it has none. */
vg_status vg_aws_profile_region(const char *profile, char *out, size_t cap);

/* Drop the cache so the next get reloads (after an ExpiredToken answer). */
void vg_aws_creds_invalidate(struct vg_aws_cred_provider *p);

#endif
