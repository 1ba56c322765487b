/* Amazon SNS Publish (query protocol): to a topic, or an SMS to a phone
 * number. Everything AWS would refuse for its shape is refused locally,
 * before a request, with VG_ERR_INVALID or VG_ERR_TOO_LARGE. */
#ifndef VG_AWS_SNS_H
#define VG_AWS_SNS_H

#include <stddef.h>

#include "aws/client.h"
#include "status.h"

#define VG_SNS_MAX_ATTRS 10         /* message attributes per message */
#define VG_SNS_MAX_MESSAGE 262144   /* bytes of message plus attribute names, types, values */
#define VG_SNS_MAX_SMS_CHARS 1600   /* characters of one SMS publish */
#define VG_SNS_MAX_SUBJECT 99       /* "less than 100 characters" */
#define VG_SNS_MAX_ATTR_NAME 256
#define VG_SNS_MESSAGE_ID_MAX 128

/* A String message attribute. Names: letters, digits, '_', '-', '.', no
 * leading, trailing or doubled '.'; values non-empty. */
struct vg_sns_attr {
    const char *name;
    const char *value;
};

struct vg_sns_message {
    const char *topic_arn;      /* exactly one of topic_arn and phone_number; standard
                                 * topics (FIFO ones need a MessageGroupId: refused) */
    const char *phone_number;   /* E.164: '+' then 8..15 digits, the first not 0 */
    const char *subject;        /* topics only (email subscribers); NULL for none; no
                                 * control characters */
    const char *message;        /* UTF-8, non-empty */
    const struct vg_sns_attr *attrs;
    size_t n_attrs;             /* 0..VG_SNS_MAX_ATTRS */
    const char *endpoint;       /* "scheme://host[:port]" (no path) that overrides the
                                 * endpoint resolution (AWS_ENDPOINT_URL_SNS,
                                 * AWS_ENDPOINT_URL, sns.<region>.amazonaws.com); NULL or
                                 * "": that resolution */
};

/* Publish; message_id receives the id SNS gave the message. Thread-safe;
 * message_id written only on VG_OK. An unknown topic is VG_ERR_NOT_FOUND. */
vg_status vg_sns_publish(struct vg_aws *a, const struct vg_sns_message *m,
                         char message_id[VG_SNS_MESSAGE_ID_MAX]);

#endif
