/* One status enum for all of vigil, with a per-thread detail text. */
#ifndef VG_STATUS_H
#define VG_STATUS_H

#include <stdarg.h>

typedef enum {
    VG_OK = 0,
    VG_ERR_NOMEM,
    VG_ERR_INVALID,     /* bad argument or malformed input */
    VG_ERR_CONFIG,      /* configuration rejected */
    VG_ERR_IO,          /* file or socket error */
    VG_ERR_NOT_FOUND,
    VG_ERR_TIMEOUT,
    VG_ERR_TOO_LARGE,   /* a size limit was exceeded */
    VG_ERR_DECODE,      /* protobuf / JSON / JPEG could not be decoded */
    VG_ERR_NATS,
    VG_ERR_REDIS,
    VG_ERR_HTTP,
    VG_ERR_MEDIA,       /* FFmpeg demux/decode error */
    VG_ERR_UNAVAILABLE, /* a dependency is down; try again later */
    VG_ERR_STOPPED,     /* shutdown was requested */
    VG_ERR_EOF,         /* end of a finite source */
    VG_ERR_AWS,         /* an AWS service answered with an error (code in the detail) */
    VG_ERR_THROTTLED,   /* throttled (429, ThrottlingException...) after all retries */
    VG_ERR_AUTH,        /* no usable credentials, or the signature/credentials were refused */
    VG_ERR__LAST        /* append above; never renumber */
} vg_status;

const char *vg_status_str(vg_status st);

/* Record a detail text for the calling thread and return st, so call sites
 * read `return vg_errf(VG_ERR_IO, "open %s: %s", path, strerror(errno));`. */
vg_status vg_errf(vg_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
vg_status vg_verrf(vg_status st, const char *fmt, va_list ap);

/* Detail text of the last vg_errf on this thread ("" if none). */
const char *vg_err_detail(void);
void vg_err_clear(void);

#endif
