/* Amazon SNS Publish over vg_aws_call. See sns.h. */
#include "aws/sns.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/sigv4.h"
#include "aws/xml.h"

static const char api[] = "sns.Publish";

/* ---- checks ------------------------------------------------------------- */

/* Number of code points of s, or -1 when it is not valid UTF-8. */
static long utf8_chars(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    long n = 0;
    while (*p) {
        unsigned long c = *p++, min;
        int extra;
        if (c < 0x80)
            extra = 0, min = 0;
        else if (c >= 0xC2 && c <= 0xDF)
            extra = 1, min = 0x80, c &= 0x1F;
        else if (c >= 0xE0 && c <= 0xEF)
            extra = 2, min = 0x800, c &= 0x0F;
        else if (c >= 0xF0 && c <= 0xF4)
            extra = 3, min = 0x10000, c &= 0x07;
        else
            return -1;
        for (int i = 0; i < extra; i++, p++) {
            if ((*p & 0xC0) != 0x80) /* also stops at the NUL */
                return -1;
            c = c << 6 | (*p & 0x3F);
        }
        if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
            return -1;
        n++;
    }
    return n;
}

static vg_status check_phone(const char *phone)
{
    size_t digits = strspn(phone + (phone[0] == '+'), "0123456789");
    if (phone[0] != '+' || phone[1] == '0' || digits < 8 || digits > 15 || phone[1 + digits])
        return vg_errf(VG_ERR_INVALID, "%s: phone number \"%.32s\" is not E.164 ('+' then 8..15 "
                       "digits)", api, phone);
    return VG_OK;
}

static vg_status check_target(const struct vg_sns_message *m)
{
    if (!m->topic_arn == !m->phone_number)
        return vg_errf(VG_ERR_INVALID, "%s: give exactly one of topic_arn and phone_number", api);
    if (m->phone_number) {
        if (m->subject)
            return vg_errf(VG_ERR_INVALID, "%s: SMS messages take no subject", api);
        return check_phone(m->phone_number);
    }
    if (strncmp(m->topic_arn, "arn:", 4) || !strstr(m->topic_arn, ":sns:") ||
        strlen(m->topic_arn) > 1024)
        return vg_errf(VG_ERR_INVALID, "%s: \"%.64s\" is not an SNS topic ARN", api,
                       m->topic_arn);
    size_t len = strlen(m->topic_arn);
    if (len > 5 && !strcmp(m->topic_arn + len - 5, ".fifo"))
        return vg_errf(VG_ERR_INVALID, "%s: FIFO topics need a MessageGroupId, which this "
                       "client does not send", api);
    return VG_OK;
}

static vg_status check_subject(const char *subject)
{
    long n = subject ? utf8_chars(subject) : 0;
    if (n < 0)
        return vg_errf(VG_ERR_INVALID, "%s: subject is not UTF-8", api);
    if (subject && !*subject)
        return vg_errf(VG_ERR_INVALID, "%s: empty subject (use NULL for none)", api);
    if (n > VG_SNS_MAX_SUBJECT)
        return vg_errf(VG_ERR_INVALID, "%s: subject has %ld characters; at most %d", api, n,
                       VG_SNS_MAX_SUBJECT);
    for (const unsigned char *p = (const unsigned char *)subject; p && *p; p++)
        if (*p < 0x20 || *p == 0x7F)
            return vg_errf(VG_ERR_INVALID, "%s: subject holds a line break or control "
                           "character", api);
    return VG_OK;
}

static vg_status check_attr_name(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    if (len == 0 || len > VG_SNS_MAX_ATTR_NAME)
        return vg_errf(VG_ERR_INVALID, "%s: attribute name must have 1..%d characters", api,
                       VG_SNS_MAX_ATTR_NAME);
    if (strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != len ||
        name[0] == '.' || name[len - 1] == '.' || strstr(name, ".."))
        return vg_errf(VG_ERR_INVALID, "%s: attribute name \"%.64s\": only letters, digits, "
                       "'_', '-' and inner single '.'", api, name);
    return VG_OK;
}

static vg_status check_attrs(const struct vg_sns_message *m, size_t *bytes)
{
    vg_status st;
    if (m->n_attrs > VG_SNS_MAX_ATTRS || (m->n_attrs && !m->attrs))
        return vg_errf(VG_ERR_INVALID, "%s: %zu message attributes; at most %d", api,
                       m->n_attrs, VG_SNS_MAX_ATTRS);
    for (size_t i = 0; i < m->n_attrs; i++) {
        const struct vg_sns_attr *at = &m->attrs[i];
        if ((st = check_attr_name(at->name)) != VG_OK)
            return st;
        if (!at->value || !*at->value || utf8_chars(at->value) < 0)
            return vg_errf(VG_ERR_INVALID, "%s: attribute %s: value empty or not UTF-8", api,
                           at->name);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(m->attrs[j].name, at->name))
                return vg_errf(VG_ERR_INVALID, "%s: attribute %s given twice", api, at->name);
        *bytes += strlen(at->name) + strlen("String") + strlen(at->value);
    }
    return VG_OK;
}

static vg_status check_message(const struct vg_sns_message *m)
{
    vg_status st;
    if (!m->message || !*m->message)
        return vg_errf(VG_ERR_INVALID, "%s: empty message", api);
    long chars = utf8_chars(m->message);
    if (chars < 0)
        return vg_errf(VG_ERR_INVALID, "%s: message is not UTF-8", api);
    size_t bytes = strlen(m->message);
    if ((st = check_target(m)) != VG_OK || (st = check_subject(m->subject)) != VG_OK ||
        (st = check_attrs(m, &bytes)) != VG_OK)
        return st;
    if (bytes > VG_SNS_MAX_MESSAGE)
        return vg_errf(VG_ERR_TOO_LARGE, "%s: message and attributes are %zu bytes; at most %d",
                       api, bytes, VG_SNS_MAX_MESSAGE);
    if (m->phone_number && chars > VG_SNS_MAX_SMS_CHARS)
        return vg_errf(VG_ERR_TOO_LARGE, "%s: SMS of %ld characters; at most %d", api, chars,
                       VG_SNS_MAX_SMS_CHARS);
    return VG_OK;
}

/* ---- the form ----------------------------------------------------------- */

struct form {
    FILE *f;
    char *buf;
    size_t len;
    char *enc;                  /* scratch for the encoded value */
    size_t enc_cap;
};

/* "&name=value" with value URI-encoded (the name is already). */
static vg_status put(struct form *fm, const char *name, const char *value)
{
    size_t len = strlen(value), need = 3 * len + 1;
    if (need > fm->enc_cap) {
        char *p = realloc(fm->enc, need);
        if (!p)
            return vg_errf(VG_ERR_NOMEM, "%s: no memory for the request", api);
        fm->enc = p;
        fm->enc_cap = need;
    }
    vg_uri_encode(value, len, 0, fm->enc, fm->enc_cap);
    fprintf(fm->f, "&%s=%s", name, fm->enc);
    return VG_OK;
}

static vg_status build_form(const struct vg_sns_message *m, struct form *fm)
{
    char key[64];
    vg_status st = VG_OK;
    if (!(fm->f = open_memstream(&fm->buf, &fm->len)))
        return vg_errf(VG_ERR_NOMEM, "%s: no memory for the request", api);
    fputs("Action=Publish&Version=2010-03-31", fm->f);
    if (m->topic_arn)
        st = put(fm, "TopicArn", m->topic_arn);
    else
        st = put(fm, "PhoneNumber", m->phone_number);
    if (st == VG_OK && m->subject)
        st = put(fm, "Subject", m->subject);
    if (st == VG_OK)
        st = put(fm, "Message", m->message);
    for (size_t i = 0; st == VG_OK && i < m->n_attrs; i++) {
        snprintf(key, sizeof(key), "MessageAttributes.entry.%zu.Name", i + 1);
        st = put(fm, key, m->attrs[i].name);
        snprintf(key, sizeof(key), "MessageAttributes.entry.%zu.Value.DataType", i + 1);
        if (st == VG_OK)
            st = put(fm, key, "String");
        snprintf(key, sizeof(key), "MessageAttributes.entry.%zu.Value.StringValue", i + 1);
        if (st == VG_OK)
            st = put(fm, key, m->attrs[i].value);
    }
    if (fclose(fm->f) != 0 && st == VG_OK)
        st = vg_errf(VG_ERR_NOMEM, "%s: no memory for the request", api);
    fm->f = NULL;
    return st;
}

vg_status vg_sns_publish(struct vg_aws *a, const struct vg_sns_message *m,
                         char message_id[VG_SNS_MESSAGE_ID_MAX])
{
    struct form fm = {0};
    struct vg_aws_response r = {0};
    char id[VG_SNS_MESSAGE_ID_MAX];
    vg_status st = check_message(m);
    if (st != VG_OK)
        return st;
    if ((st = build_form(m, &fm)) != VG_OK)
        goto out;
    struct vg_aws_request q = {
        .api = api, .service = "sns", .endpoint_id = "SNS",
        .endpoint = m->endpoint && *m->endpoint ? m->endpoint : NULL, .method = "POST", .path = "/",
        .content_type = "application/x-www-form-urlencoded; charset=utf-8",
        .body = fm.buf, .body_len = fm.len,
    };
    if ((st = vg_aws_call(a, &q, &r)) != VG_OK)
        goto out;
    const char *body = r.body ? r.body : "";
    if (!vg_xml_text(body, "MessageId", id, sizeof(id), NULL) || !id[0]) {
        st = vg_errf(VG_ERR_DECODE, "%s: answer has no MessageId: %.200s", api, body);
        goto out;
    }
    memcpy(message_id, id, strlen(id) + 1);
out:
    vg_aws_response_cleanup(&r);
    free(fm.buf);
    free(fm.enc);
    return st;
}
