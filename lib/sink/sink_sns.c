/* sns sink: Amazon SNS Publish (lib/aws/sns.h), to a topic (email, SMS,
 * HTTPS, SQS, Lambda subscribers) or as an SMS straight to one phone number.
 *
 * Topic messages carry the title as Subject (email subscribers see it; cut
 * below SNS's 100 characters) and String message attributes camera, label,
 * person_id (when known) and kind ("alert" / "summary") so subscriptions can
 * filter (a filter policy {"label": ["person"]} mails only people). An SMS
 * gets no subject and no filter attributes (there is no subscription), the
 * AWS.SNS.SMS.SMSType attribute instead, and its text is cut to the 1600
 * characters SNS takes in one SMS publish; SNS splits it into segments that
 * are each billed.
 *
 * Links the reader can open (http(s) clip and snapshot URLs) are appended
 * when the text does not show them already.
 *
 * The AWS client retries throttling and 5xx itself (with backoff); what is
 * left is classified: throttling, timeouts, network and 5xx transient; an
 * answer that the request is wrong (InvalidParameter, NotFound,
 * AuthorizationError) permanent, with AWS's code and message. */
#include "sink/sink.h"
#include "sink/sink_aws.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/client.h"
#include "aws/sns.h"

#define TOPIC_ARN_MAX 1024
#define PHONE_MAX 24
#define N_ATTRS 4
#define LINKS_MAX (2 * VG_URL_MAX + 32)
#define SUBJECT_BUF (VG_SNS_MAX_SUBJECT * 4 + 1)

static const char *const sms_types[] = {"transactional", "promotional", NULL};
static const char *const sms_type_values[] = {"Transactional", "Promotional"};

struct sns_settings {
    char topic_arn[TOPIC_ARN_MAX + 1];
    char phone_number[PHONE_MAX];
    char endpoint[VG_URL_MAX];
    int sms_type;
};

static const struct vg_opt sns_opts[] = {
    VG_OPT_STR_("topic_arn", struct sns_settings, topic_arn, "", "TOPIC_ARN", 0,
                "the topic to publish to (arn:aws:sns:<region>:<account>:<name>)"),
    VG_OPT_STR_("phone_number", struct sns_settings, phone_number, "", "PHONE_NUMBER", 1,
                "or an SMS to this E.164 number (+14155550123); not logged"),
    VG_OPT_STR_("endpoint", struct sns_settings, endpoint, "", "ENDPOINT", 0,
                "scheme://host[:port] instead of AWS_ENDPOINT_URL_SNS, AWS_ENDPOINT_URL, "
                "sns.<region>.amazonaws.com"),
    VG_OPT_ENUM_("sms_type", struct sns_settings, sms_type, sms_types, "transactional",
                 "SMS only: transactional (delivery first) or promotional (cheaper)"),
    VG_OPT_END,
};

struct sns {
    struct vg_aws *aws;         /* this sink's own client: one worker thread uses it */
    const struct sns_settings *set;
    char endpoint[VG_URL_MAX];  /* normalised; "" for the usual resolution */
    char target[272];           /* the topic's name or the masked number, for errors */
};

/* ---- checks ---------------------------------------------------------------- */

/* E.164 as SNS takes it: '+', then 8..15 digits, the first not 0. */
static int phone_ok(const char *p)
{
    size_t digits = strspn(p + 1, "0123456789");
    return p[0] == '+' && p[1] != '0' && digits >= 8 && digits <= 15 && !p[1 + digits];
}

/* arn:<partition>:sns:<region>:<account>:<name>, a standard topic. */
static int topic_arn_ok(const char *arn)
{
    const char *part[6];
    int n = 0;
    for (const char *p = arn; n < 6; p++) {
        part[n++] = p;
        if (!(p = strchr(p, ':')))
            break;
    }
    size_t len = strlen(arn);
    return n == 6 && !strncmp(arn, "arn:", 4) && !strncmp(part[2], "sns:", 4) &&
           part[1][0] != ':' && part[3][0] != ':' && part[4][0] != ':' && *part[5] &&
           !strchr(part[5], ':') && !(len > 5 && !strcmp(arn + len - 5, ".fifo"));
}

static vg_status sns_check(const void *settings, const char *where)
{
    const struct sns_settings *s = settings;
    if (!s->topic_arn[0] == !s->phone_number[0])
        return vg_errf(VG_ERR_CONFIG, "%s: an sns sink needs exactly one of topic_arn (a "
                       "topic) and phone_number (an SMS)", where);
    if (s->phone_number[0] && !phone_ok(s->phone_number))
        return vg_errf(VG_ERR_CONFIG, "%s: phone_number is not E.164: '+', the country code "
                       "and the number, 8..15 digits, no spaces (+14155550123)", where);
    if (s->topic_arn[0] && !topic_arn_ok(s->topic_arn))
        return vg_errf(VG_ERR_CONFIG, "%s: topic_arn \"%.80s\" is not the ARN of a standard SNS "
                       "topic (arn:aws:sns:<region>:<account>:<name>; FIFO topics are not "
                       "supported)", where, s->topic_arn);
    return vg_sink_aws_endpoint_check(s->endpoint, where);
}

/* ---- text ------------------------------------------------------------------ */

static int utf8_lead(unsigned char c) { return (c & 0xC0) != 0x80; }

static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += utf8_lead((unsigned char)*s);
    return n;
}

/* Bytes of the longest prefix of s with at most max_chars characters and
 * max_bytes bytes that ends on a character boundary. */
static size_t utf8_prefix(const char *s, size_t max_chars, size_t max_bytes)
{
    size_t i = 0;
    for (size_t chars = 0; s[i] && chars < max_chars; chars++) {
        size_t j = i + 1;
        while (s[j] && !utf8_lead((unsigned char)s[j]))
            j++;
        if (j > max_bytes)
            break;
        i = j;
    }
    return i;
}

/* The title as a Subject: one line, under 100 characters ("…" when cut);
 * "" when there is none. */
static void make_subject(const char *title, char out[SUBJECT_BUF])
{
    static const char mark[] = "\xe2\x80\xa6"; /* U+2026 */
    size_t n = utf8_prefix(title, VG_SNS_MAX_SUBJECT, SUBJECT_BUF - 1);
    int cut = title[n] != '\0';
    if (cut)
        n = utf8_prefix(title, VG_SNS_MAX_SUBJECT - 1, SUBJECT_BUF - sizeof(mark));
    memcpy(out, title, n);
    while (n > 0 && out[n - 1] == ' ')
        n--;
    if (cut)
        memcpy(out + n, mark, sizeof(mark) - 1), n += sizeof(mark) - 1;
    out[n] = '\0';
    /* The template's own text may hold a tab or a line break. */
    for (char *p = out; *p; p++)
        if ((unsigned char)*p < 0x20 || *p == 0x7f)
            *p = ' ';
}

/* "\nClip: <url>\nSnapshot: <url>" for the links the text lacks. */
static void make_links(const struct vg_sink_alert *a, const char *text, char *out, size_t cap)
{
    size_t n = 0;
    out[0] = '\0';
    if (vg_sink_is_http_url(a->clip_url) && !strstr(text, a->clip_url))
        n += (size_t)snprintf(out + n, cap - n, "\nClip: %s", a->clip_url);
    if (n < cap && vg_sink_is_http_url(a->snapshot_url) && !strstr(text, a->snapshot_url))
        snprintf(out + n, cap - n, "\nSnapshot: %s", a->snapshot_url);
}

/* The text (the title when it rendered empty) cut to fit, then the links.
 * An SMS is cut with "..." rather than "…": one character outside the GSM
 * alphabet makes every segment UCS-2, 70 characters instead of 160. */
static char *make_message(const struct sns *s, const struct vg_sink_alert *a, size_t attr_bytes)
{
    int sms = s->set->phone_number[0] != '\0';
    const char *text = a->text[0] ? a->text : a->title;
    const char *mark = sms ? "..." : "\xe2\x80\xa6";
    size_t max_chars = sms ? VG_SNS_MAX_SMS_CHARS : SIZE_MAX;
    size_t max_bytes = VG_SNS_MAX_MESSAGE - attr_bytes;
    char links[LINKS_MAX];

    make_links(a, text, links, sizeof(links));
    if (sms && utf8_chars(links) * 2 > max_chars)
        links[0] = '\0';        /* pre-signed URLs too long for a text message */
    size_t lchars = utf8_chars(links), lbytes = strlen(links);
    size_t keep = utf8_prefix(text, max_chars - lchars, max_bytes - lbytes);
    int cut = text[keep] != '\0';
    if (cut)
        keep = utf8_prefix(text, max_chars - lchars - utf8_chars(mark),
                           max_bytes - lbytes - strlen(mark));
    const char *l = keep || cut ? links : links + (links[0] == '\n');
    char *out = malloc(keep + strlen(mark) + lbytes + 1);
    if (!out)
        return NULL;
    memcpy(out, text, keep);
    snprintf(out + keep, strlen(mark) + lbytes + 1, "%s%s", cut ? mark : "", l);
    return out;
}

/* String attributes for filter policies (topics), SMSType (SMS). */
static size_t make_attrs(const struct sns *s, const struct vg_sink_alert *a,
                         struct vg_sns_attr at[N_ATTRS], size_t *bytes)
{
    const Vigil__V1__Alert *al = a->alert;
    int summary = a->kind == VG_SINK_KIND_SUMMARY;
    const struct vg_sns_attr all[N_ATTRS] = {
        {"camera", al->header ? al->header->camera_id : NULL},
        {"label", al->label},
        {"person_id", summary ? NULL : al->person_id},
        {"kind", summary ? "summary" : "alert"},
    };
    size_t n = 0;
    if (s->set->phone_number[0])
        at[n++] = (struct vg_sns_attr){"AWS.SNS.SMS.SMSType", sms_type_values[s->set->sms_type]};
    else
        for (size_t i = 0; i < N_ATTRS; i++)
            if (all[i].value && all[i].value[0])   /* SNS refuses empty values */
                at[n++] = all[i];
    *bytes = 0;
    for (size_t i = 0; i < n; i++)
        *bytes += strlen(at[i].name) + strlen("String") + strlen(at[i].value);
    return n;
}

/* ---- delivery -------------------------------------------------------------- */

static void sns_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *r)
{
    struct sns *s = state;
    struct vg_sns_attr attrs[N_ATTRS];
    char subject[SUBJECT_BUF] = "", id[VG_SNS_MESSAGE_ID_MAX];
    size_t attr_bytes = 0;
    size_t n_attrs = make_attrs(s, a, attrs, &attr_bytes);
    char *message = make_message(s, a, attr_bytes);

    if (!message) {
        vg_sink_fail(r, VG_SINK_RETRY, "%s: out of memory", s->target);
        return;
    }
    if (s->set->topic_arn[0])
        make_subject(a->title, subject);
    struct vg_sns_message m = {
        .topic_arn = s->set->topic_arn[0] ? s->set->topic_arn : NULL,
        .phone_number = s->set->phone_number[0] ? s->set->phone_number : NULL,
        .subject = subject[0] ? subject : NULL,
        .message = message,
        .attrs = attrs,
        .n_attrs = n_attrs,
        .endpoint = s->endpoint,
    };
    vg_status st = vg_sns_publish(s->aws, &m, id);
    free(message);
    if (st != VG_OK)
        vg_sink_fail(r, vg_sink_aws_verdict(st, vg_aws_last_error_code()), "%s: %s", s->target,
                     vg_err_detail());
}

/* ---- life ------------------------------------------------------------------ */

/* "+14*******23": enough to tell numbers apart in a log, not to dial. */
static void mask_phone(const char *p, char *out, size_t cap)
{
    size_t n = strlen(p), i = 0;
    for (; i < n && i + 1 < cap; i++)
        out[i] = i < 3 || i + 2 >= n ? p[i] : '*';
    out[i] = '\0';
}

static vg_status sns_init(void **state, const struct vg_sink_cfg *cfg,
                          const struct vg_config *root)
{
    struct sns *s = calloc(1, sizeof(*s));
    if (!s)
        return vg_errf(VG_ERR_NOMEM, "sns sink state");
    s->set = (const struct sns_settings *)cfg->settings;
    vg_sink_aws_endpoint_normalise(s->set->endpoint, s->endpoint, sizeof(s->endpoint));
    if (s->set->topic_arn[0]) {
        const char *name = strrchr(s->set->topic_arn, ':');
        snprintf(s->target, sizeof(s->target), "topic %.256s",
                 name ? name + 1 : s->set->topic_arn);
    } else {
        char masked[PHONE_MAX];
        mask_phone(s->set->phone_number, masked, sizeof(masked));
        snprintf(s->target, sizeof(s->target), "SMS to %s", masked);
    }
    vg_status st = vg_sink_aws_client(&s->aws, cfg, root);
    if (st != VG_OK) {
        free(s);
        return st;
    }
    *state = s;
    return VG_OK;
}

static void sns_cleanup(void *state)
{
    struct sns *s = state;
    if (!s)
        return;
    vg_aws_destroy(s->aws);
    free(s);
}

const struct vg_sink_ops vg_sink_sns = {
    .name = "sns",
    .default_incidents = VG_SINK_INCIDENTS_ESCALATE,   /* mail and phones reach people */
    .opts = sns_opts,
    .settings_size = sizeof(struct sns_settings),
    .default_timeout_ms = 10000,
    .check = sns_check,
    .init = sns_init,
    .deliver = sns_deliver,
    .cleanup = sns_cleanup,
};
