#include "http.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "metrics.h"

struct vg_http {
    struct MHD_Daemon *d;
    vg_ready_fn ready;
    void *ctx;
    int port;
};

static enum MHD_Result reply(struct MHD_Connection *c, unsigned code, const char *type,
                             char *body, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), body, mode);
    if (!r)
        return MHD_NO;
    MHD_add_response_header(r, "Content-Type", type);
    enum MHD_Result ret = MHD_queue_response(c, code, r);
    MHD_destroy_response(r);
    return ret;
}

static enum MHD_Result handle(void *cls, struct MHD_Connection *c, const char *url,
                              const char *method, const char *version, const char *upload,
                              size_t *upload_size, void **req)
{
    struct vg_http *h = cls;
    if (strcmp(method, "GET") && strcmp(method, "HEAD"))
        return reply(c, 405, "text/plain", "method not allowed\n", MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/metrics")) {
        char *text = vg_metrics_render();
        if (!text)
            return reply(c, 500, "text/plain", "out of memory\n", MHD_RESPMEM_PERSISTENT);
        return reply(c, 200, "text/plain; version=0.0.4", text, MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/healthz"))
        return reply(c, 200, "text/plain", "ok\n", MHD_RESPMEM_PERSISTENT);
    if (!strcmp(url, "/readyz")) {
        if (h->ready && !h->ready(h->ctx))
            return reply(c, 503, "text/plain", "not ready\n", MHD_RESPMEM_PERSISTENT);
        return reply(c, 200, "text/plain", "ready\n", MHD_RESPMEM_PERSISTENT);
    }
    return reply(c, 404, "text/plain", "not found\n", MHD_RESPMEM_PERSISTENT);
}

vg_status vg_http_parse_addr(const char *addr, const char *what, struct sockaddr_in *sa)
{
    char host[64];
    const char *colon = strrchr(addr, ':');
    memset(sa, 0, sizeof(*sa));
    sa->sin_family = AF_INET;
    if (!colon || (size_t)(colon - addr) >= sizeof(host))
        return vg_errf(VG_ERR_CONFIG, "%s \"%s\" must be host:port", what, addr);
    memcpy(host, addr, (size_t)(colon - addr));
    host[colon - addr] = '\0';
    char *end;
    long port = strtol(colon + 1, &end, 10);
    if (*end || port < 0 || port > 65535)
        return vg_errf(VG_ERR_CONFIG, "%s \"%s\": bad port", what, addr);
    sa->sin_port = htons((uint16_t)port);
    if (!*host || !strcmp(host, "0.0.0.0"))
        sa->sin_addr.s_addr = htonl(INADDR_ANY);
    else if (!strcmp(host, "localhost"))
        sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    else if (inet_pton(AF_INET, host, &sa->sin_addr) != 1)
        return vg_errf(VG_ERR_CONFIG, "%s \"%s\": host must be an IPv4 address",
                       what, addr);
    return VG_OK;
}

vg_status vg_http_start(struct vg_http **out, const char *addr, vg_ready_fn ready, void *ctx)
{
    struct sockaddr_in sa;
    vg_status st = vg_http_parse_addr(addr, "http address", &sa);
    if (st != VG_OK)
        return st;
    struct vg_http *h = calloc(1, sizeof(*h));
    if (!h)
        return VG_ERR_NOMEM;
    h->ready = ready;
    h->ctx = ctx;
    h->d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, NULL, NULL,
                            handle, h, MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&sa,
                            MHD_OPTION_CONNECTION_LIMIT, 64u,
                            MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_END);
    if (!h->d) {
        free(h);
        return vg_errf(VG_ERR_IO, "http: cannot listen on %s", addr);
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : 0;
    *out = h;
    return VG_OK;
}

void vg_http_stop(struct vg_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    free(h);
}

int vg_http_port(const struct vg_http *h) { return h->port; }
