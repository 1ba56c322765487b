/* vigil-notifier: delivers the alerts of the JetStream stream VIGIL_ALERTS to
 * the configured sinks, at least once per sink, with retries, idempotency
 * keys in Redis and dead letters on <prefix>.dlq.notifier. */
#ifndef NTF_NOTIFIER_H
#define NTF_NOTIFIER_H

#include "svc.h"

extern const struct vg_service notifier_service;

#endif
