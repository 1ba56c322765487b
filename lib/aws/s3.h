/* Amazon S3 (REST-XML) on top of vg_aws_call: objects up to one request
 * (no multipart), bounded reads, bucket creation, pre-signed GET URLs.
 *
 * Addressing: virtual-hosted "<bucket>.s3.<region>.amazonaws.com" on AWS;
 * path style "<endpoint>/<bucket>/<key>" when AWS_ENDPOINT_URL_S3 or
 * AWS_ENDPOINT_URL points elsewhere (emulators) or the bucket name has dots
 * (the wildcard TLS certificate does not cover them). */
#ifndef VG_AWS_S3_H
#define VG_AWS_S3_H

#include <stddef.h>
#include <stdint.h>

#include "aws/client.h"
#include "status.h"

#define VG_S3_MAX_KEY 1024      /* bytes of a key, before encoding */

/* What HEAD tells about an object. */
struct vg_s3_object_info {
    int64_t size;               /* bytes */
    char etag[160];             /* as S3 sends it, quotes included */
    char content_type[128];
    int64_t last_modified;      /* seconds since the epoch; -1 when the answer lacks it */
};

/* An object read into memory. */
struct vg_s3_object {
    uint8_t *data;              /* malloc'ed, owned; NUL-terminated for convenience */
    size_t len;
    char content_type[128];
    char etag[160];
};

/* VG_OK when bucket is a valid bucket name (3..63 of a-z 0-9 . -, starting and
 * ending with a letter or digit, no ".."); key must be 1..VG_S3_MAX_KEY bytes. */
vg_status vg_s3_check_bucket(const char *bucket);
vg_status vg_s3_check_key(const char *key);

/* PutObject. content_type NULL: "application/octet-stream". sse: "AES256",
 * "aws:kms" or NULL (the bucket default). etag (may be NULL) gets the new
 * object's ETag. */
vg_status vg_s3_put_object(struct vg_aws *aws, const char *bucket, const char *key,
                           const void *data, size_t len, const char *content_type,
                           const char *sse, char *etag, size_t etag_cap);
/* The same with SSE-KMS under a given key: kms_key_id (an id, ARN or alias;
 * NULL or "": the account's aws/s3 key) needs sse "aws:kms". */
vg_status vg_s3_put_object_kms(struct vg_aws *aws, const char *bucket, const char *key,
                               const void *data, size_t len, const char *content_type,
                               const char *sse, const char *kms_key_id, char *etag,
                               size_t etag_cap);

/* GetObject into memory, reading at most max_bytes + 1 bytes (a ranged GET):
 * VG_ERR_TOO_LARGE when the object is larger than max_bytes, VG_ERR_NOT_FOUND
 * when it (or the bucket) is missing. On VG_OK out owns the data; free it
 * with vg_s3_object_cleanup (or free(out->data)). */
vg_status vg_s3_get_object(struct vg_aws *aws, const char *bucket, const char *key,
                           size_t max_bytes, struct vg_s3_object *out);
void vg_s3_object_cleanup(struct vg_s3_object *o);

/* HeadObject; VG_ERR_NOT_FOUND when missing. */
vg_status vg_s3_head_object(struct vg_aws *aws, const char *bucket, const char *key,
                            struct vg_s3_object_info *out);

/* CreateBucket in the client's region (LocationConstraint unless
 * us-east-1). A bucket we already own is VG_OK. */
vg_status vg_s3_create_bucket(struct vg_aws *aws, const char *bucket);

/* A pre-signed GET URL for the object, valid expires_s seconds (1..604800)
 * from now, signed with the client's current credentials. */
vg_status vg_s3_presign_get(struct vg_aws *aws, const char *bucket, const char *key,
                            int expires_s, char *url, size_t cap);

#endif
