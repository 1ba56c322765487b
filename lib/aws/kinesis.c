/* Amazon Kinesis Data Streams PutRecord over vg_aws_call_json. See kinesis.h. */
#include "aws/kinesis.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#define API "kinesis.PutRecord"
#define TARGET "Kinesis_20131202.PutRecord"

/* ---- checks -------------------------------------------------------------- */

static int name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-';
}

vg_status vg_kinesis_check_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len < 1 || len > VG_KINESIS_NAME_MAX)
        return vg_errf(VG_ERR_INVALID, API ": stream name must be 1..%d characters",
                       VG_KINESIS_NAME_MAX);
    for (size_t i = 0; i < len; i++)
        if (!name_char(name[i]))
            return vg_errf(VG_ERR_INVALID, API ": stream name \"%.64s\" may only hold letters, "
                           "digits and \"_.-\"", name);
    return VG_OK;
}

/* Copy field [start, end) into out (cap bytes); 0 when it does not fit. */
static int take(const char *start, const char *end, char *out, size_t cap)
{
    size_t n = (size_t)(end - start);
    if (!out)
        return 1;
    if (n >= cap)
        return 0;
    memcpy(out, start, n);
    out[n] = '\0';
    return 1;
}

/* arn:<partition>:kinesis:<region>:<12 digits>:stream/<name> (AWS's pattern
 * is arn:aws.*:kinesis:.*:\d{12}:stream/\S+; the name must also be a valid
 * stream name, since it is sent as StreamName). */
vg_status vg_kinesis_check_arn(const char *arn, char *region, char *name, size_t cap)
{
    const char *f[6];
    int n = 0;
    size_t len = arn ? strlen(arn) : 0;
    if (len < 1 || len > VG_KINESIS_ARN_MAX)
        return vg_errf(VG_ERR_INVALID, API ": stream ARN must be 1..%d characters",
                       VG_KINESIS_ARN_MAX);
    for (const char *p = arn; p && n < 6; p = strchr(p, ':'), p = p ? p + 1 : NULL)
        f[n++] = p;
    int ok = n == 6 && !strncmp(arn, "arn:aws", 7) && !strncmp(f[2], "kinesis:", 8) &&
             f[3] < f[4] - 1 && f[5] - f[4] == 13 && strspn(f[4], "0123456789") == 12 &&
             !strncmp(f[5], "stream/", 7);
    if (ok && vg_kinesis_check_name(f[5] + 7) != VG_OK)
        ok = 0;
    if (!ok)
        return vg_errf(VG_ERR_INVALID, API ": \"%.160s\" is not a stream ARN "
                       "(arn:aws:kinesis:<region>:<account>:stream/<name>)", arn);
    if (!take(f[3], f[4] - 1, region, cap) || !take(f[5] + 7, arn + len, name, cap))
        return vg_errf(VG_ERR_INVALID, API ": stream ARN parts longer than %zu bytes", cap);
    return VG_OK;
}

/* Length of the UTF-8 sequence led by c, 0 for a byte that cannot lead one. */
static int utf8_len(unsigned char c)
{
    return c < 0x80 ? 1 : c >= 0xc2 && c < 0xe0 ? 2 : c >= 0xe0 && c < 0xf0 ? 3
                                                   : c >= 0xf0 && c < 0xf5  ? 4 : 0;
}

/* Kinesis is a Java service: a "character" there is a UTF-16 unit, so a
 * character outside the BMP (an emoji) counts twice. */
long vg_kinesis_key_chars(const char *key)
{
    long units = 0;
    for (const unsigned char *p = (const unsigned char *)key; *p;) {
        int n = utf8_len(*p);
        if (!n)
            return -1;
        for (int i = 1; i < n; i++)
            if ((p[i] & 0xc0) != 0x80)
                return -1;
        /* Overlong 3-byte forms and surrogates, overlong 4-byte forms. */
        if ((n == 3 && ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0))) ||
            (n == 4 && ((p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))))
            return -1;
        units += n == 4 ? 2 : 1;
        p += n;
    }
    return units;
}

vg_status vg_kinesis_check_key(const char *key)
{
    long chars = key ? vg_kinesis_key_chars(key) : 0;
    if (chars < 0)
        return vg_errf(VG_ERR_INVALID, API ": partition key is not valid UTF-8");
    if (chars < 1 || chars > VG_KINESIS_KEY_MAX)
        return vg_errf(VG_ERR_INVALID, API ": partition key has %ld characters; 1..%d allowed",
                       chars, VG_KINESIS_KEY_MAX);
    return VG_OK;
}

static vg_status check_stream(const struct vg_kinesis_stream *s, char *name, size_t cap)
{
    int has_name = s->name && *s->name, has_arn = s->arn && *s->arn;
    if (has_name == has_arn)
        return vg_errf(VG_ERR_INVALID, API ": give exactly one of a stream name and an ARN");
    if (has_arn)
        return vg_kinesis_check_arn(s->arn, NULL, name, cap);
    vg_status st = vg_kinesis_check_name(s->name);
    if (st == VG_OK)
        snprintf(name, cap, "%s", s->name);
    return st;
}

/* ---- the call ------------------------------------------------------------ */

/* {"StreamName", ["StreamARN",] "PartitionKey", "Data": base64}; NULL when
 * out of memory or a string is not UTF-8 (the key was checked). */
static json_t *request(const struct vg_kinesis_stream *s, const char *name, const void *data,
                       size_t len, const char *key)
{
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (!b64)
        return NULL;
    EVP_EncodeBlock((unsigned char *)b64, data, (int)len);  /* len <= 1 MiB: fits an int */
    json_t *req = json_pack("{s:s, s:s, s:s}", "StreamName", name, "PartitionKey", key,
                            "Data", b64);
    free(b64);
    if (req && s->arn && *s->arn && json_object_set_new(req, "StreamARN", json_string(s->arn))) {
        json_decref(req);
        return NULL;
    }
    return req;
}

static vg_status parse(json_t *answer, struct vg_kinesis_put *out)
{
    const char *seq = json_string_value(json_object_get(answer, "SequenceNumber"));
    const char *shard = json_string_value(json_object_get(answer, "ShardId"));
    if (!seq || !*seq || !shard || !*shard || strlen(seq) >= sizeof(out->sequence_number) ||
        strlen(shard) >= sizeof(out->shard_id))
        return vg_errf(VG_ERR_DECODE, API ": answer lacks a SequenceNumber or ShardId");
    snprintf(out->sequence_number, sizeof(out->sequence_number), "%s", seq);
    snprintf(out->shard_id, sizeof(out->shard_id), "%s", shard);
    return VG_OK;
}

vg_status vg_kinesis_put_record(struct vg_aws *a, const struct vg_kinesis_stream *s,
                                const void *data, size_t len, const char *partition_key,
                                struct vg_kinesis_put *out)
{
    char name[VG_KINESIS_NAME_MAX + 1];
    struct vg_kinesis_put got;
    json_t *answer = NULL;
    vg_status st = check_stream(s, name, sizeof(name));
    if (st == VG_OK)
        st = vg_kinesis_check_key(partition_key);
    if (st != VG_OK)
        return st;
    size_t key_len = strlen(partition_key);
    if (len > VG_KINESIS_RECORD_MAX - key_len)
        return vg_errf(VG_ERR_TOO_LARGE, API ": record is %zu bytes of data and %zu of "
                       "partition key; Kinesis takes at most %d together", len, key_len,
                       VG_KINESIS_RECORD_MAX);
    if (!data && len)
        return vg_errf(VG_ERR_INVALID, API ": no data");
    struct vg_aws_request r = {
        .api = API, .service = "kinesis", .endpoint_id = "KINESIS",
        .endpoint = s->endpoint && *s->endpoint ? s->endpoint : NULL, .method = "POST",
        .path = "/", .content_type = "application/x-amz-json-1.1", .target = TARGET,
    };
    st = vg_aws_call_json(a, &r, request(s, name, data ? data : "", len, partition_key),
                          JSON_COMPACT, &answer);
    if (st != VG_OK)
        return st;
    st = parse(answer, &got);
    json_decref(answer);
    if (st == VG_OK && out)
        *out = got;
    return st;
}
