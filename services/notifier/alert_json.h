/* The alert as sinks see it: one JSON object, and the checks an Alert must
 * pass before it is delivered anywhere. */
#ifndef NTF_ALERT_JSON_H
#define NTF_ALERT_JSON_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

#define NTF_TS_MAX 32

/* Reject alerts that cannot be delivered safely: no header, an alert_id that
 * is empty or not a short printable token (it becomes an HTTP header and a
 * Redis key), or a camera id that is not a valid NATS subject token. */
vg_status ntf_alert_check(const Vigil__V1__Alert *a);

/* Compact JSON on one line (no newline); *out is malloc'ed, caller frees.
 * VG_ERR_DECODE if a string field is not valid UTF-8. */
vg_status ntf_alert_json(const Vigil__V1__Alert *a, char **out, size_t *len);

/* RFC 3339 UTC with milliseconds, "2024-05-01T12:00:00.123Z". */
void ntf_format_ts(int64_t us, char out[NTF_TS_MAX]);

#endif
