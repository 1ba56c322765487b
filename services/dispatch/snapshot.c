#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* mkdir -p for the directory part of path. */
static vg_status make_parents(char *path)
{
    for (char *p = path + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        int rc = mkdir(path, 0755);
        int err = errno;
        *p = '/';
        if (rc != 0 && err != EEXIST)
            return vg_errf(VG_ERR_IO, "mkdir %.*s: %s", (int)(p - path), path, strerror(err));
    }
    return VG_OK;
}

/* Trace ids come from the message: keep only hex so they cannot escape dir. */
static int safe_token(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s == '/' || *s == '.' || *s == '\\')
            return 0;
    return 1;
}

vg_status disp_snapshot_store(const char *dir, const char *camera, int64_t capture_ts_us,
                              const char *trace_id, const uint8_t *jpeg, size_t len,
                              char *url, size_t url_cap)
{
    char path[2048], day[16];
    time_t secs = (time_t)(capture_ts_us / 1000000);
    struct tm tm;
    if (!safe_token(camera) || !safe_token(trace_id))
        return vg_errf(VG_ERR_INVALID, "unsafe camera or trace id for a file name");
    gmtime_r(&secs, &tm);
    strftime(day, sizeof(day), "%Y-%m-%d", &tm);
    int n = snprintf(path, sizeof(path), "%s/%s/%s/%s.jpg", dir, camera, day, trace_id);
    if (n < 0 || (size_t)n >= sizeof(path))
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot path too long");
    vg_status st = make_parents(path);
    if (st != VG_OK)
        return st;
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return vg_errf(VG_ERR_IO, "open %s: %s", path, strerror(errno));
    ssize_t w = write(fd, jpeg, len);
    int err = errno;
    close(fd);
    if (w < 0 || (size_t)w != len)
        return vg_errf(VG_ERR_IO, "write %s: %s", path, w < 0 ? strerror(err) : "short write");
    snprintf(url, url_cap, "file://%s", path);
    return VG_OK;
}
