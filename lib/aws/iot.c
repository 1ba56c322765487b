/* AWS IoT data plane Publish over vg_aws_call. See iot.h. */
#include "aws/iot.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char api[] = "iotdata.Publish";

static vg_status check_topic(const char *topic)
{
    size_t len = topic ? strlen(topic) : 0, slashes = 0;
    if (len == 0 || len > VG_IOT_MAX_TOPIC)
        return vg_errf(VG_ERR_INVALID, "%s: topic must have 1..%d bytes", api, VG_IOT_MAX_TOPIC);
    if (strpbrk(topic, "+#"))
        return vg_errf(VG_ERR_INVALID, "%s: topic \"%.64s\" holds a wildcard ('+' or '#')", api,
                       topic);
    if (topic[0] == '$') {
        if (strncmp(topic, "$aws/things/", 12) && strncmp(topic, "$aws/rules/", 11))
            return vg_errf(VG_ERR_INVALID, "%s: topic \"%.64s\": '$' topics are reserved "
                           "(only $aws/things/... and $aws/rules/... may be published)", api,
                           topic);
        return VG_OK;
    }
    for (const char *p = topic; *p; p++)
        slashes += *p == '/';
    if (slashes > 7)
        return vg_errf(VG_ERR_INVALID, "%s: topic \"%.64s\" has %zu levels; at most 8", api,
                       topic, slashes + 1);
    return VG_OK;
}

/* "scheme://host[:port]" of the data plane. */
static vg_status resolve(const struct vg_aws *a, const char *endpoint, char *out, size_t cap)
{
    if (endpoint && *endpoint) {
        int n = snprintf(out, cap, "%s%s", strstr(endpoint, "://") ? "" : "https://", endpoint);
        if (n < 0 || (size_t)n >= cap)
            return vg_errf(VG_ERR_CONFIG, "%s: endpoint longer than %zu", api, cap - 1);
        for (size_t len = (size_t)n; len > 0 && out[len - 1] == '/'; len--)
            out[len - 1] = '\0';
        return VG_OK;
    }
    const char *e = getenv("AWS_ENDPOINT_URL_IOT_DATA_PLANE");
    if (!e || !*e)
        e = getenv("AWS_ENDPOINT_URL");
    if (!e || !*e)
        return vg_errf(VG_ERR_CONFIG, "%s: no IoT data endpoint: pass the account's "
                       "xxxx-ats.iot.<region>.amazonaws.com or set "
                       "AWS_ENDPOINT_URL_IOT_DATA_PLANE", api);
    vg_aws_endpoint(a, "IOT_DATA_PLANE", "iotdata", NULL, out, cap);
    return VG_OK;
}

vg_status vg_iot_publish(struct vg_aws *a, const char *endpoint, const char *topic, int qos,
                         const void *payload, size_t len)
{
    char base[1024], path[8 + 3 * VG_IOT_MAX_TOPIC + 1], query[8];
    struct vg_aws_response r = {0};
    vg_status st = check_topic(topic);
    if (st != VG_OK)
        return st;
    if (qos != 0 && qos != 1)
        return vg_errf(VG_ERR_INVALID, "%s: qos %d; 0 or 1", api, qos);
    if (len > VG_IOT_MAX_PAYLOAD)
        return vg_errf(VG_ERR_TOO_LARGE, "%s: payload is %zu bytes; at most %d", api, len,
                       VG_IOT_MAX_PAYLOAD);
    if (len && !payload)
        return vg_errf(VG_ERR_INVALID, "%s: no payload", api);
    if ((st = resolve(a, endpoint, base, sizeof(base))) != VG_OK)
        return st;
    memcpy(path, "/topics/", 8);
    if (vg_uri_encode(topic, strlen(topic), 0, path + 8, sizeof(path) - 8) == (size_t)-1)
        return vg_errf(VG_ERR_INVALID, "%s: topic too long once encoded", api);
    snprintf(query, sizeof(query), "qos=%d", qos);
    struct vg_aws_request q = {
        .api = api, .service = "iotdata", .endpoint_id = "IOT_DATA_PLANE", .endpoint = base,
        .method = "POST", .path = path, .query = query,
        .content_type = "application/octet-stream", .body = payload, .body_len = len,
    };
    st = vg_aws_call(a, &q, &r);
    vg_aws_response_cleanup(&r);
    return st;
}
