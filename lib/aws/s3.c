/* Amazon S3 objects and buckets over vg_aws_call. See s3.h. */
#include "aws/s3.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "timeutil.h"

#define S3_PATH_MAX (VG_S3_MAX_KEY * 3 + 64 + 3)

/* Where one bucket/key lives. */
struct target {
    char host[384];             /* the AWS host, when no endpoint override applies */
    char base[1024];            /* "scheme://host[:port]" actually used */
    char path[S3_PATH_MAX];     /* URI-encoded, as sent and as signed */
};

vg_status vg_s3_check_bucket(const char *b)
{
    size_t len = b ? strlen(b) : 0;
    if (len < 3 || len > 63)
        return vg_errf(VG_ERR_INVALID, "s3: bucket name must be 3..63 characters");
    for (size_t i = 0; i < len; i++) {
        char c = b[i];
        if (!(islower((unsigned char)c) || isdigit((unsigned char)c) || c == '.' || c == '-'))
            return vg_errf(VG_ERR_INVALID, "s3: bucket %s: only a-z, 0-9, '.' and '-'", b);
    }
    if (!isalnum((unsigned char)b[0]) || !isalnum((unsigned char)b[len - 1]) ||
        strstr(b, ".."))
        return vg_errf(VG_ERR_INVALID, "s3: bucket %s: must start and end with a letter or "
                       "digit, no '..'", b);
    return VG_OK;
}

vg_status vg_s3_check_key(const char *key)
{
    size_t len = key ? strlen(key) : 0;
    if (len == 0 || len > VG_S3_MAX_KEY)
        return vg_errf(VG_ERR_INVALID, "s3: key must be 1..%d bytes, not %zu", VG_S3_MAX_KEY,
                       len);
    return VG_OK;
}

/* Resolve host, endpoint and path for bucket (and key, may be NULL). */
static vg_status make_target(struct vg_aws *aws, const char *bucket, const char *key,
                             struct target *t)
{
    char regional[128], aws_base[160], enc[VG_S3_MAX_KEY * 3 + 1] = "";
    vg_status st = vg_s3_check_bucket(bucket);
    if (st == VG_OK && key)
        st = vg_s3_check_key(key);
    if (st != VG_OK)
        return st;
    if (key && vg_uri_encode(key, strlen(key), 1, enc, sizeof(enc)) == (size_t)-1)
        return vg_errf(VG_ERR_TOO_LARGE, "s3: key too long once encoded");
    snprintf(regional, sizeof(regional), "s3.%s.amazonaws.com", vg_aws_region(aws));
    snprintf(aws_base, sizeof(aws_base), "https://%s", regional);
    vg_aws_endpoint(aws, "S3", "s3", regional, t->base, sizeof(t->base));
    /* An emulator only knows path style; so do dotted names, which the
     * wildcard certificate of the virtual hosts does not cover. */
    if (strcmp(t->base, aws_base) != 0 || strchr(bucket, '.')) {
        snprintf(t->host, sizeof(t->host), "%s", regional);
        snprintf(t->path, sizeof(t->path), "/%s%s%s", bucket, key ? "/" : "", enc);
    } else {
        snprintf(t->host, sizeof(t->host), "%s.%s", bucket, regional);
        snprintf(t->base, sizeof(t->base), "https://%s", t->host);
        snprintf(t->path, sizeof(t->path), "/%s", enc);
    }
    return VG_OK;
}

struct call {
    const char *api, *method, *content_type;
    const struct vg_sigv4_header *headers;
    size_t n_headers;
    const void *body;
    size_t body_len;
};

static vg_status s3_call(struct vg_aws *aws, const struct target *t, const struct call *c,
                         struct vg_aws_response *resp)
{
    struct vg_aws_request r = {
        .api = c->api, .service = "s3", .endpoint_id = "S3", .host = t->host,
        .method = c->method, .path = t->path, .content_type = c->content_type,
        .headers = c->headers, .n_headers = c->n_headers, .body = c->body,
        .body_len = c->body_len,
    };
    return vg_aws_call(aws, &r, resp);
}

vg_status vg_s3_put_object_kms(struct vg_aws *aws, const char *bucket, const char *key,
                               const void *data, size_t len, const char *content_type,
                               const char *sse, const char *kms_key_id, char *etag,
                               size_t etag_cap)
{
    struct target t;
    struct vg_aws_response resp;
    struct vg_sigv4_header h[] = {{"x-amz-server-side-encryption", sse},
                                  {"x-amz-server-side-encryption-aws-kms-key-id", kms_key_id}};
    vg_status st = make_target(aws, bucket, key, &t);
    if (st != VG_OK)
        return st;
    if (sse && strcmp(sse, "AES256") && strcmp(sse, "aws:kms"))
        return vg_errf(VG_ERR_INVALID, "s3: server-side encryption %s: use AES256 or aws:kms",
                       sse);
    int with_kms_key = kms_key_id && *kms_key_id;
    if (with_kms_key && (!sse || strcmp(sse, "aws:kms")))
        return vg_errf(VG_ERR_INVALID, "s3: a KMS key id needs server-side encryption aws:kms");
    struct call c = {.api = "s3.PutObject", .method = "PUT",
                     .content_type = content_type ? content_type : "application/octet-stream",
                     .headers = h, .n_headers = sse ? (with_kms_key ? 2u : 1u) : 0u,
                     .body = data, .body_len = len};
    if ((st = s3_call(aws, &t, &c, &resp)) != VG_OK)
        return st;
    if (etag && etag_cap)
        snprintf(etag, etag_cap, "%s", resp.etag);
    vg_aws_response_cleanup(&resp);
    return VG_OK;
}

vg_status vg_s3_put_object(struct vg_aws *aws, const char *bucket, const char *key,
                           const void *data, size_t len, const char *content_type,
                           const char *sse, char *etag, size_t etag_cap)
{
    return vg_s3_put_object_kms(aws, bucket, key, data, len, content_type, sse, NULL, etag,
                                etag_cap);
}

/* Take the body of resp into o (the client allocated it with malloc). */
static vg_status take_body(struct vg_aws_response *resp, struct vg_s3_object *o)
{
    memset(o, 0, sizeof(*o));
    o->data = (uint8_t *)resp->body;
    o->len = resp->len;
    resp->body = NULL;
    resp->len = 0;
    if (!o->data && !(o->data = calloc(1, 1)))
        return VG_ERR_NOMEM;
    snprintf(o->content_type, sizeof(o->content_type), "%s", resp->content_type);
    snprintf(o->etag, sizeof(o->etag), "%s", resp->etag);
    return VG_OK;
}

static vg_status not_found(vg_status st, const char *op, const char *bucket, const char *key)
{
    if (st != VG_ERR_NOT_FOUND)
        return st;
    char detail[256];
    snprintf(detail, sizeof(detail), "%s", vg_err_detail());
    return vg_errf(st, "%s s3://%s/%s: not found (%s)", op, bucket, key, detail);
}

vg_status vg_s3_get_object(struct vg_aws *aws, const char *bucket, const char *key,
                           size_t max_bytes, struct vg_s3_object *out)
{
    struct target t;
    struct vg_aws_response resp;
    struct vg_s3_object o;
    char range[48];
    vg_status st = make_target(aws, bucket, key, &t);
    if (st != VG_OK)
        return st;
    /* One byte more than allowed tells "larger" without reading it all. */
    snprintf(range, sizeof(range), "bytes=0-%zu", max_bytes);
    struct vg_sigv4_header h[] = {{"range", range}};
    struct call c = {.api = "s3.GetObject", .method = "GET", .headers = h, .n_headers = 1};
    st = s3_call(aws, &t, &c, &resp);
    if (st != VG_OK && !strcmp(vg_aws_last_error_code(), "InvalidRange")) {
        c.n_headers = 0;    /* no byte 0: the object is empty */
        st = s3_call(aws, &t, &c, &resp);
    }
    if (st != VG_OK)
        return not_found(st, "s3.GetObject", bucket, key);
    if (resp.len > max_bytes) {
        vg_aws_response_cleanup(&resp);
        return vg_errf(VG_ERR_TOO_LARGE, "s3.GetObject s3://%s/%s: larger than %zu bytes",
                       bucket, key, max_bytes);
    }
    st = take_body(&resp, &o);
    vg_aws_response_cleanup(&resp);
    if (st != VG_OK)
        return st;
    *out = o;
    return VG_OK;
}

void vg_s3_object_cleanup(struct vg_s3_object *o)
{
    if (!o)
        return;
    free(o->data);
    o->data = NULL;
    o->len = 0;
}

/* "Wed, 21 Oct 2015 07:28:00 GMT" to µs since the epoch; -1 if absent. */
static int64_t http_date_us(const char *s)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    const char *end = s[0] ? strptime(s, "%a, %d %b %Y %H:%M:%S GMT", &tm) : NULL;
    return end ? (int64_t)timegm(&tm) * 1000000 : -1;
}

vg_status vg_s3_head_object(struct vg_aws *aws, const char *bucket, const char *key,
                            struct vg_s3_object_info *out)
{
    struct target t;
    struct vg_aws_response resp;
    vg_status st = make_target(aws, bucket, key, &t);
    if (st != VG_OK)
        return st;
    struct call c = {.api = "s3.HeadObject", .method = "HEAD"};
    if ((st = s3_call(aws, &t, &c, &resp)) != VG_OK)
        return not_found(st, "s3.HeadObject", bucket, key);
    struct vg_s3_object_info info = {.size = resp.content_length,
                                     .last_modified = http_date_us(resp.last_modified)};
    snprintf(info.etag, sizeof(info.etag), "%s", resp.etag);
    snprintf(info.content_type, sizeof(info.content_type), "%s", resp.content_type);
    vg_aws_response_cleanup(&resp);
    *out = info;
    return VG_OK;
}

/* BucketAlreadyExists means "taken": ours when HeadBucket lets us in. */
static vg_status bucket_is_ours(struct vg_aws *aws, const struct target *t)
{
    struct vg_aws_response resp;
    struct call c = {.api = "s3.HeadBucket", .method = "HEAD"};
    vg_status st = s3_call(aws, t, &c, &resp);
    vg_aws_response_cleanup(&resp);
    return st;
}

vg_status vg_s3_create_bucket(struct vg_aws *aws, const char *bucket)
{
    struct target t;
    struct vg_aws_response resp;
    char body[256] = "", detail[512];
    vg_status st = make_target(aws, bucket, NULL, &t);
    if (st != VG_OK)
        return st;
    const char *region = vg_aws_region(aws);
    if (strcmp(region, "us-east-1") != 0)
        snprintf(body, sizeof(body),
                 "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                 "<LocationConstraint>%s</LocationConstraint></CreateBucketConfiguration>",
                 region);
    struct call c = {.api = "s3.CreateBucket", .method = "PUT",
                     .content_type = body[0] ? "application/xml" : NULL, .body = body,
                     .body_len = strlen(body)};
    st = s3_call(aws, &t, &c, &resp);
    if (st == VG_OK) {
        vg_aws_response_cleanup(&resp);
        return VG_OK;
    }
    const char *code = vg_aws_last_error_code();
    if (!strcmp(code, "BucketAlreadyOwnedByYou"))
        return VG_OK;
    if (strcmp(code, "BucketAlreadyExists") != 0)
        return st;
    snprintf(detail, sizeof(detail), "%s", vg_err_detail());
    if (bucket_is_ours(aws, &t) == VG_OK)
        return VG_OK;
    return vg_errf(st, "%s", detail);
}

/* Split "scheme://host[:port]..." */
static void split_base(const char *base, char *scheme, size_t scap, char *host, size_t hcap)
{
    const char *p = strstr(base, "://");
    snprintf(scheme, scap, "%.*s", p ? (int)(p - base) : 5, p ? base : "https");
    snprintf(host, hcap, "%s", p ? p + 3 : base);
    host[strcspn(host, "/")] = '\0';
}

vg_status vg_s3_presign_get(struct vg_aws *aws, const char *bucket, const char *key,
                            int expires_s, char *url, size_t cap)
{
    struct target t;
    struct vg_aws_creds c;
    char scheme[16], host[1024], date[17];
    vg_status st = make_target(aws, bucket, key, &t);
    if (st != VG_OK)
        return st;
    if ((st = vg_aws_creds_get(vg_aws_credentials(aws), &c)) != VG_OK)
        return st;
    split_base(t.base, scheme, sizeof(scheme), host, sizeof(host));
    vg_amz_date(vg_now_us(), date);
    struct vg_sigv4_header h[] = {{"host", host}};
    struct vg_sigv4_request r = {.method = "GET", .path = t.path, .headers = h, .n_headers = 1,
                                 .region = vg_aws_region(aws), .service = "s3",
                                 .amz_date = date};
    st = vg_sigv4_presign(&r, &c, scheme, expires_s, url, cap);
    OPENSSL_cleanse(&c, sizeof(c));
    return st;
}
