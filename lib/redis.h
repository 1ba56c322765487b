/* Redis connection with AUTH, timeouts and lazy reconnect. Thread-safe:
 * commands are serialised on one connection. */
#ifndef VG_REDIS_H
#define VG_REDIS_H

#include <hiredis/hiredis.h>

#include "status.h"

struct vg_redis;

/* url: redis://[[user]:password@]host[:port][/db]. Does not connect yet. */
vg_status vg_redis_create(struct vg_redis **out, const char *url, int timeout_ms);
void vg_redis_destroy(struct vg_redis *r);

/* Connect now (used at start so a wrong address shows early). */
vg_status vg_redis_connect(struct vg_redis *r);
int vg_redis_connected(struct vg_redis *r);

/* Run a command. After a failure the connection is dropped and the next call
 * reconnects, at most once per second; in between, calls fail fast with
 * VG_ERR_UNAVAILABLE. On VG_OK *out is a reply to free with freeReplyObject;
 * a Redis error reply becomes VG_ERR_REDIS with its text in the detail. */
vg_status vg_redis_cmd(struct vg_redis *r, redisReply **out, const char *fmt, ...);
/* The same with the arguments as strings (a variable number of them). */
vg_status vg_redis_cmdv(struct vg_redis *r, redisReply **out, int argc, const char **argv);

#endif
