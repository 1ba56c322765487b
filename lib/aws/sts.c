/* AWS STS GetCallerIdentity over vg_aws_call. See sts.h. */
#include "aws/sts.h"

#include <string.h>

#include "aws/xml.h"

vg_status vg_sts_get_caller_identity(struct vg_aws *a, struct vg_sts_identity *out)
{
    static const char api[] = "sts.GetCallerIdentity";
    static const char body[] = "Action=GetCallerIdentity&Version=2011-06-15";
    struct vg_sts_identity id = {0};
    struct vg_aws_response r = {0};
    struct vg_aws_request q = {
        .api = api, .service = "sts", .endpoint_id = "STS", .method = "POST", .path = "/",
        .content_type = "application/x-www-form-urlencoded; charset=utf-8",
        .body = body, .body_len = sizeof(body) - 1,
    };
    vg_status st = vg_aws_call(a, &q, &r);
    if (st != VG_OK)
        return st;
    /* The elements sit in <GetCallerIdentityResult>; they appear nowhere else. */
    const char *xml = r.body ? r.body : "";
    if (!vg_xml_text(xml, "Account", id.account, sizeof(id.account), NULL) ||
        !vg_xml_text(xml, "Arn", id.arn, sizeof(id.arn), NULL) ||
        !vg_xml_text(xml, "UserId", id.user_id, sizeof(id.user_id), NULL))
        st = vg_errf(VG_ERR_DECODE, "%s: answer lacks Account, Arn or UserId (or one is too "
                     "long): %.200s", api, xml);
    else
        *out = id;
    vg_aws_response_cleanup(&r);
    return st;
}
