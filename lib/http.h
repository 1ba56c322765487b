/* The small HTTP endpoint every service serves: /metrics, /healthz, /readyz. */
#ifndef VG_HTTP_H
#define VG_HTTP_H

#include "status.h"

struct vg_http;

/* Returns 1 when the service is ready (connected and subscribed). */
typedef int (*vg_ready_fn)(void *ctx);

struct sockaddr_in;

/* "host:port" (IPv4, "localhost", "" or 0.0.0.0 for any; port 0 picks a
 * free one) into sa; errors name the address as what ("console.addr"). */
vg_status vg_http_parse_addr(const char *addr, const char *what, struct sockaddr_in *sa);

/* addr is "host:port" (port 0 picks a free one). */
vg_status vg_http_start(struct vg_http **out, const char *addr, vg_ready_fn ready, void *ctx);
void vg_http_stop(struct vg_http *h);
int vg_http_port(const struct vg_http *h);

#endif
