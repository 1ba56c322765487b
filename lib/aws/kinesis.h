/* Amazon Kinesis Data Streams PutRecord (JSON 1.1 protocol) on top of
 * vg_aws_call_json. Everything Kinesis would refuse for its shape (stream
 * name or ARN, partition key, record size) is refused locally, before a
 * request, with VG_ERR_INVALID or VG_ERR_TOO_LARGE. AWS errors keep their
 * code and message in vg_err_detail() and vg_aws_last_error_code():
 *   ResourceNotFoundException                 VG_ERR_NOT_FOUND
 *   ProvisionedThroughputExceededException,
 *   KMSThrottlingException                    VG_ERR_THROTTLED
 *   AccessDeniedException, signature errors   VG_ERR_AUTH
 *   ValidationException, InvalidArgument...   VG_ERR_AWS
 *   network, 5xx                              VG_ERR_UNAVAILABLE / VG_ERR_TIMEOUT */
#ifndef VG_AWS_KINESIS_H
#define VG_AWS_KINESIS_H

#include <stddef.h>

#include "aws/client.h"
#include "status.h"

#define VG_KINESIS_RECORD_MAX 1048576   /* bytes of data plus partition key (1 MiB) */
#define VG_KINESIS_KEY_MAX 256          /* partition key, characters (UTF-16 units) */
#define VG_KINESIS_NAME_MAX 128         /* stream name: [a-zA-Z0-9_.-], 1..128 */
#define VG_KINESIS_ARN_MAX 2048
#define VG_KINESIS_SEQ_MAX 130          /* sequence number: up to 129 digits, NUL */
#define VG_KINESIS_SHARD_MAX 129        /* shard id: up to 128 chars, NUL */

struct vg_kinesis_stream {
    const char *name;           /* StreamName; exactly one of name and arn */
    const char *arn;            /* StreamARN "arn:<partition>:kinesis:<region>:<12 digits>:
                                 * stream/<name>"; the name in it is sent as StreamName
                                 * too (AWS accepts both when they agree) */
    const char *endpoint;       /* "scheme://host[:port]" that overrides the endpoint
                                 * resolution (AWS_ENDPOINT_URL_KINESIS, AWS_ENDPOINT_URL,
                                 * kinesis.<region>.amazonaws.com); NULL or "": that */
};

struct vg_kinesis_put {
    char sequence_number[VG_KINESIS_SEQ_MAX];
    char shard_id[VG_KINESIS_SHARD_MAX];
};

/* VG_OK or VG_ERR_INVALID with the reason in the detail. */
vg_status vg_kinesis_check_name(const char *name);
/* region (may be NULL) receives the ARN's region, name (may be NULL) its
 * stream name; both buffers at least cap bytes. */
vg_status vg_kinesis_check_arn(const char *arn, char *region, char *name, size_t cap);
/* 1..VG_KINESIS_KEY_MAX characters of valid UTF-8. */
vg_status vg_kinesis_check_key(const char *key);
/* Characters of key as Kinesis counts them (UTF-16 code units); -1 when key
 * is not valid UTF-8. */
long vg_kinesis_key_chars(const char *key);

/* PutRecord: data (0..VG_KINESIS_RECORD_MAX - strlen(partition_key) bytes,
 * any bytes) under partition_key. out (may be NULL) receives the sequence
 * number and shard, only on VG_OK. Thread-safe. */
vg_status vg_kinesis_put_record(struct vg_aws *a, const struct vg_kinesis_stream *s,
                                const void *data, size_t len, const char *partition_key,
                                struct vg_kinesis_put *out);

#endif
