#include "redis.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "timeutil.h"

#define RECONNECT_INTERVAL_US 1000000

struct vg_redis {
    pthread_mutex_t lock;
    redisContext *ctx;
    char host[256];
    int port;
    int db;
    char user[128];
    char password[256];
    int timeout_ms;
    int64_t next_attempt_us;    /* monotonic; no reconnect before this */
    int was_connected;
};

static vg_status parse_url(struct vg_redis *r, const char *url)
{
    const char *p = url + strlen("redis://");
    /* The userinfo ends at the last '@' of the authority: passwords may hold '@'. */
    const char *at = NULL;
    for (const char *q = p; *q && *q != '/'; q++)
        if (*q == '@')
            at = q;
    if (strncmp(url, "redis://", 8))
        return vg_errf(VG_ERR_CONFIG, "redis url must start with redis://");
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        size_t ulen = (size_t)((colon ? colon : at) - p);
        if (ulen >= sizeof(r->user))
            return vg_errf(VG_ERR_CONFIG, "redis url: user name too long");
        memcpy(r->user, p, ulen);
        if (colon) {
            size_t plen = (size_t)(at - colon - 1);
            if (plen >= sizeof(r->password))
                return vg_errf(VG_ERR_CONFIG, "redis url: password too long");
            memcpy(r->password, colon + 1, plen);
        }
        p = at + 1;
    }
    size_t hlen = strcspn(p, ":/");
    if (hlen == 0 || hlen >= sizeof(r->host))
        return vg_errf(VG_ERR_CONFIG, "redis url: missing or long host");
    memcpy(r->host, p, hlen);
    p += hlen;
    r->port = 6379;
    if (*p == ':') {
        char *end;
        long port = strtol(p + 1, &end, 10);
        if (port <= 0 || port > 65535)
            return vg_errf(VG_ERR_CONFIG, "redis url: bad port");
        r->port = (int)port;
        p = end;
    }
    if (*p == '/' && p[1])
        r->db = atoi(p + 1);
    return VG_OK;
}

vg_status vg_redis_create(struct vg_redis **out, const char *url, int timeout_ms)
{
    struct vg_redis *r = calloc(1, sizeof(*r));
    if (!r)
        return VG_ERR_NOMEM;
    vg_status st = parse_url(r, url);
    if (st != VG_OK) {
        free(r);
        return st;
    }
    pthread_mutex_init(&r->lock, NULL);
    r->timeout_ms = timeout_ms > 0 ? timeout_ms : 1000;
    *out = r;
    return VG_OK;
}

void vg_redis_destroy(struct vg_redis *r)
{
    if (!r)
        return;
    if (r->ctx)
        redisFree(r->ctx);
    pthread_mutex_destroy(&r->lock);
    memset(r->password, 0, sizeof(r->password));
    free(r);
}

static vg_status check_reply(redisContext *c, redisReply *reply, const char *what)
{
    if (!reply)
        return vg_errf(VG_ERR_UNAVAILABLE, "redis %s: %s", what, c->errstr);
    vg_status st = VG_OK;
    if (reply->type == REDIS_REPLY_ERROR)
        st = vg_errf(VG_ERR_REDIS, "redis %s: %s", what, reply->str);
    freeReplyObject(reply);
    return st;
}

/* Called with the lock held. */
static vg_status connect_locked(struct vg_redis *r)
{
    struct timeval tv = {.tv_sec = r->timeout_ms / 1000, .tv_usec = (r->timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(r->host, r->port, tv);
    vg_status st;
    r->next_attempt_us = vg_mono_us() + RECONNECT_INTERVAL_US;
    if (!c)
        return VG_ERR_NOMEM;
    if (c->err) {
        st = vg_errf(VG_ERR_UNAVAILABLE, "redis %s:%d: %s", r->host, r->port, c->errstr);
        goto fail;
    }
    redisSetTimeout(c, tv);
    if (r->password[0]) {
        redisReply *rep = r->user[0]
            ? redisCommand(c, "AUTH %s %s", r->user, r->password)
            : redisCommand(c, "AUTH %s", r->password);
        if ((st = check_reply(c, rep, "AUTH")) != VG_OK)
            goto fail;
    }
    if (r->db && (st = check_reply(c, redisCommand(c, "SELECT %d", r->db), "SELECT")) != VG_OK)
        goto fail;
    r->ctx = c;
    if (r->was_connected)
        VG_INFO("redis.reconnected", NULL, "redis %s:%d is back", r->host, r->port);
    r->was_connected = 1;
    return VG_OK;
fail:
    redisFree(c);
    return st;
}

vg_status vg_redis_connect(struct vg_redis *r)
{
    pthread_mutex_lock(&r->lock);
    vg_status st = r->ctx ? VG_OK : connect_locked(r);
    pthread_mutex_unlock(&r->lock);
    return st;
}

int vg_redis_connected(struct vg_redis *r)
{
    pthread_mutex_lock(&r->lock);
    int ok = r->ctx != NULL;
    pthread_mutex_unlock(&r->lock);
    return ok;
}

/* One command with the connection locked: connect if due, send, classify.
 * send() issues it on the context (redisvCommand or redisCommandArgv). */
static vg_status run_locked(struct vg_redis *r, redisReply **out,
                            redisReply *(*send)(redisContext *c, void *arg), void *arg)
{
    vg_status st = VG_OK;
    redisReply *reply = NULL;
    pthread_mutex_lock(&r->lock);
    if (!r->ctx) {
        if (vg_mono_us() < r->next_attempt_us) {
            st = vg_errf(VG_ERR_UNAVAILABLE, "redis %s:%d: not connected", r->host, r->port);
            goto out;
        }
        if ((st = connect_locked(r)) != VG_OK)
            goto out;
    }
    reply = send(r->ctx, arg);
    if (!reply) {
        st = vg_errf(VG_ERR_UNAVAILABLE, "redis %s:%d: %s", r->host, r->port, r->ctx->errstr);
        VG_WARN("redis.disconnected", NULL, "%s", vg_err_detail());
        redisFree(r->ctx);
        r->ctx = NULL;
        r->next_attempt_us = vg_mono_us() + RECONNECT_INTERVAL_US;
        goto out;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        st = vg_errf(VG_ERR_REDIS, "redis: %s", reply->str);
        freeReplyObject(reply);
        goto out;
    }
    *out = reply;
out:
    pthread_mutex_unlock(&r->lock);
    return st;
}

struct fmt_args {
    const char *fmt;
    va_list *ap;
};

static redisReply *send_fmt(redisContext *c, void *arg)
{
    struct fmt_args *a = arg;
    return redisvCommand(c, a->fmt, *a->ap);
}

vg_status vg_redis_cmd(struct vg_redis *r, redisReply **out, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    struct fmt_args a = {fmt, &ap};
    vg_status st = run_locked(r, out, send_fmt, &a);
    va_end(ap);
    return st;
}

struct argv_args {
    int argc;
    const char **argv;
};

static redisReply *send_argv(redisContext *c, void *arg)
{
    struct argv_args *a = arg;
    return redisCommandArgv(c, a->argc, a->argv, NULL);
}

vg_status vg_redis_cmdv(struct vg_redis *r, redisReply **out, int argc, const char **argv)
{
    struct argv_args a = {argc, argv};
    return run_locked(r, out, send_argv, &a);
}
