/* The "s3" snapshot store: PutObject with server-side encryption into seed
 * 004's layout, s3://<bucket>/<prefix>frames/<camera>/<yyyy>/<mm>/<dd>/<hh>/
 * <trace_id>.jpg; private objects (no ACL header: the bucket enforces owner
 * ownership and blocks public access), read back for attachments, linked by
 * pre-signed GET. Retention is the bucket's lifecycle rule (deploy/aws). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_config.h"
#include "aws/s3.h"
#include "store/store_internal.h"
#include "timeutil.h"

static const char *const sse_values[] = {"AES256", "aws:kms", NULL};

struct s3_settings {
    char bucket[64];
    char prefix[256];
    int sse;
    char kms_key_id[256];
    int presign_expiry_s;
};

static const struct vg_opt s3_opts[] = {
    VG_OPT_STR_("bucket", struct s3_settings, bucket, "", "VIGIL_SNAPSHOT_BUCKET", 0,
                "the snapshot bucket (required)"),
    VG_OPT_STR_("prefix", struct s3_settings, prefix, "", NULL, 0,
                "put before frames/ in every key (\"site-a/\"); \"\": none"),
    VG_OPT_ENUM_("sse", struct s3_settings, sse, sse_values, "AES256",
                 "server-side encryption of each object: AES256 (SSE-S3) or aws:kms"),
    VG_OPT_STR_("kms_key_id", struct s3_settings, kms_key_id, "", NULL, 0,
                "KMS key (id, ARN or alias) for sse aws:kms; \"\": the account's aws/s3 key"),
    VG_OPT_INT_("presign_expiry_s", struct s3_settings, presign_expiry_s, 1, 604800, "1800",
                "lifetime of a pre-signed snapshot link (seed 004: 1800), never longer than "
                "the signing credentials have left"),
    VG_OPT_END,
};

struct s3_store {
    struct s3_settings o;
    struct vg_aws *aws;
};

static vg_status check_prefix(const char *p, const char *where)
{
    if (!*p)
        return VG_OK;
    if (p[0] == '/' || strstr(p, "..") || strstr(p, "//") || p[strlen(p) - 1] != '/')
        return vg_errf(VG_ERR_CONFIG, "%s: prefix \"%s\" must be relative, end with '/', "
                       "without \"..\" or \"//\"", where, p);
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c < 0x21 || *c == '\\' || (unsigned char)*c > 0x7e)
            return vg_errf(VG_ERR_CONFIG, "%s: prefix \"%s\": printable ASCII only", where, p);
    return VG_OK;
}

static vg_status s3_open(void **state, void *settings, const struct vg_config *cfg,
                         const char *where)
{
    const struct s3_settings *o = settings;
    if (!o->bucket[0])
        return vg_errf(VG_ERR_CONFIG, "%s: s3 needs bucket", where);
    if (vg_s3_check_bucket(o->bucket) != VG_OK)
        return vg_errf(VG_ERR_CONFIG, "%s: %s", where, vg_err_detail());
    vg_status st = check_prefix(o->prefix, where);
    if (st != VG_OK)
        return st;
    if (o->kms_key_id[0] && strcmp(sse_values[o->sse], "aws:kms"))
        return vg_errf(VG_ERR_CONFIG, "%s: kms_key_id needs sse: aws:kms", where);
    struct s3_store *s = calloc(1, sizeof(*s));
    if (!s)
        return VG_ERR_NOMEM;
    s->o = *o;
    if ((st = vg_aws_from_config(&s->aws, cfg)) != VG_OK) {
        free(s);
        return st;
    }
    *state = s;
    return VG_OK;
}

static void s3_close(void *state)
{
    struct s3_store *s = state;
    if (!s)
        return;
    vg_aws_destroy(s->aws);
    free(s);
}

static vg_status s3_put(void *state, const char *key, const uint8_t *jpeg, size_t len,
                        char *ref, size_t cap)
{
    struct s3_store *s = state;
    char full[VG_S3_MAX_KEY + 1], detail[768];
    if ((size_t)snprintf(full, sizeof(full), "%s%s", s->o.prefix, key) >= sizeof(full))
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot key longer than %d bytes", VG_S3_MAX_KEY);
    if ((size_t)snprintf(ref, cap, "s3://%s/%s", s->o.bucket, full) >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot ref longer than %zu bytes", cap);
    vg_status st = vg_s3_put_object_kms(s->aws, s->o.bucket, full, jpeg, len, "image/jpeg",
                                        sse_values[s->o.sse], s->o.kms_key_id, NULL, 0);
    if (st == VG_OK)
        return VG_OK;
    ref[0] = '\0';
    snprintf(detail, sizeof(detail), "%s", vg_err_detail());
    const char *code = vg_aws_last_error_code();
    if (!strcmp(code, "AccessDenied") || !strcmp(code, "AllAccessDisabled"))
        return vg_errf(st, "s3.PutObject s3://%s/%s: access denied (%s): the role needs "
                       "s3:PutObject on arn:aws:s3:::%s/%sframes/*%s (%s)", s->o.bucket, full,
                       code, s->o.bucket, s->o.prefix,
                       s->o.sse == 1 ? " and kms:GenerateDataKey on the key" : "", detail);
    return vg_errf(st, "s3.PutObject s3://%s/%s: %s (%s)", s->o.bucket, full,
                   code[0] ? code : vg_status_str(st), detail);
}

/* The key of one of our refs: s3://<our bucket>/<our prefix><checked key>. */
static vg_status ref_key(const struct s3_store *s, const char *ref, const char **full)
{
    const char *p = ref + 5;
    size_t bl = strlen(s->o.bucket), pl = strlen(s->o.prefix);
    if (strncmp(p, s->o.bucket, bl) != 0 || p[bl] != '/')
        return vg_errf(VG_ERR_INVALID, "snapshot ref \"%.120s\" is not of bucket %s", ref,
                       s->o.bucket);
    p += bl + 1;
    if (strncmp(p, s->o.prefix, pl) != 0)
        return vg_errf(VG_ERR_INVALID, "snapshot ref \"%.120s\" is not under prefix \"%s\"",
                       ref, s->o.prefix);
    vg_status st = vg_snap_check_key(p + pl);
    if (st == VG_OK)
        *full = p;
    return st;
}

static vg_status s3_get(void *state, const char *ref, size_t max_bytes, uint8_t **data,
                        size_t *len)
{
    struct s3_store *s = state;
    struct vg_s3_object obj;
    const char *full = NULL;
    vg_status st = ref_key(s, ref, &full);
    if (st != VG_OK)
        return st;
    if ((st = vg_s3_get_object(s->aws, s->o.bucket, full, max_bytes, &obj)) != VG_OK)
        return st;
    *data = obj.data;
    *len = obj.len;
    return VG_OK;
}

/* Seed 004's expiry, cut to what the signing credentials have left: a URL
 * signed by a session that ends sooner stops working when the session does,
 * whatever X-Amz-Expires says. */
static vg_status link_expiry(struct s3_store *s, int *expires_s)
{
    struct vg_aws_creds c;
    vg_status st = vg_aws_creds_get(vg_aws_credentials(s->aws), &c);
    if (st != VG_OK)
        return st;
    int64_t exp_us = c.expires_us;
    memset(&c, 0, sizeof(c));
    *expires_s = s->o.presign_expiry_s;
    if (exp_us > 0) {
        int64_t left = (exp_us - vg_now_us()) / 1000000;
        if (left < 1)
            return vg_errf(VG_ERR_AUTH, "s3 link: the signing credentials have expired");
        if (left < *expires_s)
            *expires_s = (int)left;
    }
    return VG_OK;
}

static vg_status s3_link(void *state, const char *ref, char *url, size_t cap)
{
    struct s3_store *s = state;
    const char *full = NULL;
    int expires_s = 0;
    vg_status st = ref_key(s, ref, &full);
    if (st == VG_OK)
        st = link_expiry(s, &expires_s);
    if (st == VG_OK)
        st = vg_s3_presign_get(s->aws, s->o.bucket, full, expires_s, url, cap);
    return st;
}

const struct vg_snap_ops vg_snap_s3 = {
    .name = "s3",
    .ref_scheme = "s3://",
    .opts = s3_opts,
    .settings_size = sizeof(struct s3_settings),
    .open = s3_open,
    .close = s3_close,
    .put = s3_put,
    .get = s3_get,
    .link = s3_link,
    .prune = NULL,
};
