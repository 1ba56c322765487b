#include "status.h"

#include <stdio.h>
#include <string.h>

static _Thread_local char detail[1024];

static const char *const names[VG_ERR__LAST] = {
    [VG_OK] = "ok",
    [VG_ERR_NOMEM] = "out of memory",
    [VG_ERR_INVALID] = "invalid input",
    [VG_ERR_CONFIG] = "configuration error",
    [VG_ERR_IO] = "i/o error",
    [VG_ERR_NOT_FOUND] = "not found",
    [VG_ERR_TIMEOUT] = "timeout",
    [VG_ERR_TOO_LARGE] = "too large",
    [VG_ERR_DECODE] = "decode error",
    [VG_ERR_NATS] = "nats error",
    [VG_ERR_REDIS] = "redis error",
    [VG_ERR_HTTP] = "http error",
    [VG_ERR_MEDIA] = "media error",
    [VG_ERR_UNAVAILABLE] = "unavailable",
    [VG_ERR_STOPPED] = "stopped",
    [VG_ERR_EOF] = "end of stream",
    [VG_ERR_AWS] = "aws error",
    [VG_ERR_THROTTLED] = "throttled",
    [VG_ERR_AUTH] = "not authorized",
};

const char *vg_status_str(vg_status st)
{
    if ((int)st < 0 || st >= VG_ERR__LAST || !names[st])
        return "unknown status";
    return names[st];
}

vg_status vg_verrf(vg_status st, const char *fmt, va_list ap)
{
    /* Through a copy: callers may pass vg_err_detail() itself as an argument
     * to add context ("detector x: <detail>"). */
    char tmp[sizeof(detail)];
    vsnprintf(tmp, sizeof(tmp), fmt, ap);
    memcpy(detail, tmp, sizeof(detail));
    return st;
}

vg_status vg_errf(vg_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vg_verrf(st, fmt, ap);
    va_end(ap);
    return st;
}

const char *vg_err_detail(void) { return detail; }
void vg_err_clear(void) { detail[0] = '\0'; }
