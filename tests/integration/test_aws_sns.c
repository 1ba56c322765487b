/* SNS Publish against the AWS fake: topic messages with subject and
 * attributes as the fake parsed them, SMS, local refusals, unknown topics. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "aws/client.h"
#include "aws/sns.h"
#include "fake_aws_ctl.h"
#include "fixture.h"

#define TOPIC "arn:aws:sns:us-east-1:123456789012:vigil-alerts"

static struct {
    struct fake_env f;
} g;

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    return fake_env_start(&g.f);
}

static int group_teardown(void **state)
{
    fake_env_stop(&g.f);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    fake_do("POST", "/_fake/topics", "{\"arn\":\"" TOPIC "\"}");
    return 0;
}

/* The messages the fake accepted, oldest first. */
static json_t *published(void)
{
    return fake("GET", "/_fake/sns", NULL);
}

/* ---- tests ----------------------------------------------------------------- */

static void topic_with_subject_and_attributes(void **state)
{
    const char *text = "Person at the front door (98.5%) & a parcel: 'a=b+c' ✓\nline two";
    struct vg_sns_attr attrs[] = {{"camera", "front-door"}, {"severity", "high & urgent"},
                                  {"event.kind", "person"}};
    struct vg_sns_message m = {.topic_arn = TOPIC, .subject = "vigil: person at front-door",
                               .message = text, .attrs = attrs, .n_attrs = 3};
    char id[VG_SNS_MESSAGE_ID_MAX];
    assert_int_equal(vg_sns_publish(g.f.aws, &m, id), VG_OK);
    assert_int_equal(strlen(id), 36);

    json_t *all = published(), *msg = json_array_get(all, 0);
    assert_int_equal(json_array_size(all), 1);
    assert_string_equal(json_string_value(json_object_get(msg, "MessageId")), id);
    assert_string_equal(json_string_value(json_object_get(msg, "TopicArn")), TOPIC);
    assert_string_equal(json_string_value(json_object_get(msg, "Subject")),
                        "vigil: person at front-door");
    assert_string_equal(json_string_value(json_object_get(msg, "Message")), text);
    json_t *at = json_object_get(msg, "MessageAttributes");
    assert_int_equal(json_object_size(at), 3);
    json_t *sev = json_object_get(at, "severity");
    assert_string_equal(json_string_value(json_object_get(sev, "DataType")), "String");
    assert_string_equal(json_string_value(json_object_get(sev, "StringValue")), "high & urgent");
    assert_string_equal(json_string_value(json_object_get(json_object_get(at, "camera"),
                                                          "StringValue")), "front-door");
    json_decref(all);
}

static void sms(void **state)
{
    struct vg_sns_attr attrs[] = {{"AWS.SNS.SMS.SMSType", "Transactional"}};
    struct vg_sns_message m = {.phone_number = "+14155550123", .message = "vigil: person at "
                               "front-door", .attrs = attrs, .n_attrs = 1};
    char id[VG_SNS_MESSAGE_ID_MAX];
    assert_int_equal(vg_sns_publish(g.f.aws, &m, id), VG_OK);
    json_t *all = published(), *msg = json_array_get(all, 0);
    assert_string_equal(json_string_value(json_object_get(msg, "PhoneNumber")), "+14155550123");
    assert_true(json_is_null(json_object_get(msg, "TopicArn")));
    assert_true(json_is_null(json_object_get(msg, "Subject")));
    json_decref(all);
}

static vg_status publish(const struct vg_sns_message *m)
{
    char id[VG_SNS_MESSAGE_ID_MAX] = "untouched";
    vg_status st = vg_sns_publish(g.f.aws, m, id);
    if (st != VG_OK)
        assert_string_equal(id, "untouched");
    return st;
}

static void bad_messages_refused_locally(void **state)
{
    const char *bad_phones[] = {"4155550123", "+12", "+1415555012a", "+0123456789",
                                "+1234567890123456", "+", "", "+1 415 555 0123"};
    for (size_t i = 0; i < sizeof(bad_phones) / sizeof(*bad_phones); i++) {
        struct vg_sns_message m = {.phone_number = bad_phones[i], .message = "x"};
        assert_int_equal(publish(&m), VG_ERR_INVALID);
        assert_non_null(strstr(vg_err_detail(), "E.164"));
    }
    struct vg_sns_message both = {.topic_arn = TOPIC, .phone_number = "+14155550123",
                                  .message = "x"};
    struct vg_sns_message none = {.message = "x"};
    struct vg_sns_message sms_subject = {.phone_number = "+14155550123", .subject = "s",
                                         .message = "x"};
    struct vg_sns_message empty = {.topic_arn = TOPIC, .message = ""};
    struct vg_sns_message not_arn = {.topic_arn = "vigil-alerts", .message = "x"};
    struct vg_sns_message fifo = {.topic_arn = TOPIC ".fifo", .message = "x"};
    assert_int_equal(publish(&fifo), VG_ERR_INVALID);
    struct vg_sns_message bad_utf8 = {.topic_arn = TOPIC, .message = "caf\xe9"};
    struct vg_sns_message subject_nl = {.topic_arn = TOPIC, .subject = "a\nb", .message = "x"};
    assert_int_equal(publish(&both), VG_ERR_INVALID);
    assert_int_equal(publish(&none), VG_ERR_INVALID);
    assert_int_equal(publish(&sms_subject), VG_ERR_INVALID);
    assert_int_equal(publish(&empty), VG_ERR_INVALID);
    assert_int_equal(publish(&not_arn), VG_ERR_INVALID);
    assert_int_equal(publish(&bad_utf8), VG_ERR_INVALID);
    assert_int_equal(publish(&subject_nl), VG_ERR_INVALID);

    char subject[101];
    memset(subject, 's', 100);
    subject[100] = '\0';
    struct vg_sns_message long_subject = {.topic_arn = TOPIC, .subject = subject, .message = "x"};
    assert_int_equal(publish(&long_subject), VG_ERR_INVALID);

    struct vg_sns_attr eleven[11], bad_name[] = {{".camera", "x"}}, dup[] = {{"a", "1"},
                                                                            {"a", "2"}},
                      empty_value[] = {{"camera", ""}};
    for (int i = 0; i < 11; i++)
        eleven[i] = (struct vg_sns_attr){i % 2 ? "odd" : "even", "v"};
    struct vg_sns_message attrs = {.topic_arn = TOPIC, .message = "x", .attrs = eleven,
                                   .n_attrs = 11};
    assert_int_equal(publish(&attrs), VG_ERR_INVALID);
    attrs.attrs = bad_name, attrs.n_attrs = 1;
    assert_int_equal(publish(&attrs), VG_ERR_INVALID);
    attrs.attrs = dup, attrs.n_attrs = 2;
    assert_int_equal(publish(&attrs), VG_ERR_INVALID);
    attrs.attrs = empty_value, attrs.n_attrs = 1;
    assert_int_equal(publish(&attrs), VG_ERR_INVALID);

    char *big = malloc(VG_SNS_MAX_MESSAGE + 2);
    memset(big, 'm', VG_SNS_MAX_MESSAGE + 1);
    big[VG_SNS_MAX_MESSAGE + 1] = '\0';
    struct vg_sns_message huge = {.topic_arn = TOPIC, .message = big};
    assert_int_equal(publish(&huge), VG_ERR_TOO_LARGE);
    big[VG_SNS_MAX_SMS_CHARS + 1] = '\0';
    struct vg_sns_message long_sms = {.phone_number = "+14155550123", .message = big};
    assert_int_equal(publish(&long_sms), VG_ERR_TOO_LARGE);
    assert_non_null(strstr(vg_err_detail(), "1601 characters"));
    free(big);

    assert_int_equal(fake_count("sns.*"), 0);
}

static void limits_are_inclusive(void **state)
{
    char subject[100], *big = malloc(VG_SNS_MAX_MESSAGE + 1);
    memset(subject, 's', 99);
    subject[99] = '\0';
    memset(big, 'm', VG_SNS_MAX_MESSAGE);
    big[VG_SNS_MAX_MESSAGE] = '\0';
    struct vg_sns_message m = {.topic_arn = TOPIC, .subject = subject, .message = big};
    assert_int_equal(publish(&m), VG_OK);
    free(big);
    char sms_text[VG_SNS_MAX_SMS_CHARS * 2 + 1] = "";
    for (int i = 0; i < VG_SNS_MAX_SMS_CHARS; i++)
        strcat(sms_text, "é"); /* 1600 characters, 3200 bytes */
    struct vg_sns_message s = {.phone_number = "+4915123456789", .message = sms_text};
    assert_int_equal(publish(&s), VG_OK);
    assert_int_equal(fake_count("sns.Publish"), 2);
}

static void unknown_topic_not_found(void **state)
{
    struct vg_sns_message m = {.topic_arn = "arn:aws:sns:eu-west-1:999999999999:nope",
                               .message = "x"};
    assert_int_equal(publish(&m), VG_ERR_NOT_FOUND);
    assert_non_null(strstr(vg_err_detail(), "NotFound"));
    assert_non_null(strstr(vg_err_detail(), "Topic does not exist"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(topic_with_subject_and_attributes, reset),
        cmocka_unit_test_setup(sms, reset),
        cmocka_unit_test_setup(bad_messages_refused_locally, reset),
        cmocka_unit_test_setup(limits_are_inclusive, reset),
        cmocka_unit_test_setup(unknown_topic_not_found, reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
