/* AWS IoT Core data plane: publish one MQTT message over HTTPS. */
#ifndef VG_AWS_IOT_H
#define VG_AWS_IOT_H

#include <stddef.h>

#include "aws/client.h"
#include "status.h"

#define VG_IOT_MAX_TOPIC 256        /* bytes */
#define VG_IOT_MAX_PAYLOAD 131072   /* bytes of one message */

/* Publish payload (0..VG_IOT_MAX_PAYLOAD bytes) on topic with qos 0 or 1.
 * endpoint: the account's data endpoint, "xxxx-ats.iot.<region>.amazonaws.com"
 * (aws iot describe-endpoint --endpoint-type iot:Data-ATS) with or without
 * "https://"; NULL: AWS_ENDPOINT_URL_IOT_DATA_PLANE, else AWS_ENDPOINT_URL,
 * else VG_ERR_CONFIG (there is no region-wide default). Topics: 1..256 bytes,
 * no '+' or '#', at most 7 '/'; reserved '$' topics only under "$aws/things/"
 * (shadows, jobs) and "$aws/rules/" (Basic Ingest). Thread-safe. */
vg_status vg_iot_publish(struct vg_aws *a, const char *endpoint, const char *topic, int qos,
                         const void *payload, size_t len);

#endif
