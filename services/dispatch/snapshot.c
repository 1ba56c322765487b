#include "snapshot.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
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
    if (fd < 0 && errno == ENOENT && make_parents(path) == VG_OK) /* pruned an instant ago */
        fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
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

/* ---- pruning ---------------------------------------------------------- */

/* Snapshots per prune pass at most: a directory larger than this is pruned
 * over several passes (the oldest first in each). */
#define PRUNE_MAX_FILES 200000
#define DEPTH_MAX 4

struct entry {
    char *path;
    int64_t mtime;
    uint64_t size;
};

struct scan {
    struct entry *e;
    size_t n, cap;
    uint64_t total;
};

static int ends_with_jpg(const char *name)
{
    size_t n = strlen(name);
    return n > 4 && !strcmp(name + n - 4, ".jpg");
}

static vg_status add_entry(struct scan *s, const char *path, const struct stat *sb)
{
    if (s->n == PRUNE_MAX_FILES)
        return VG_OK;
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 256;
        struct entry *e = realloc(s->e, cap * sizeof(*e));
        if (!e)
            return vg_errf(VG_ERR_NOMEM, "prune: out of memory");
        s->e = e;
        s->cap = cap;
    }
    if (!(s->e[s->n].path = strdup(path)))
        return vg_errf(VG_ERR_NOMEM, "prune: out of memory");
    s->e[s->n].mtime = (int64_t)sb->st_mtime;
    s->e[s->n].size = (uint64_t)sb->st_size;
    s->total += (uint64_t)sb->st_size;
    s->n++;
    return VG_OK;
}

static vg_status walk(struct scan *s, const char *dir, int depth)
{
    char path[4096];
    struct dirent *de;
    struct stat sb;
    vg_status st = VG_OK;
    DIR *d = opendir(dir);
    if (!d)
        return errno == ENOENT ? VG_OK : vg_errf(VG_ERR_IO, "opendir %s: %s", dir, strerror(errno));
    while (st == VG_OK && (de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path) ||
            lstat(path, &sb) != 0)
            continue;
        if (S_ISDIR(sb.st_mode) && depth < DEPTH_MAX)
            st = walk(s, path, depth + 1);
        else if (S_ISREG(sb.st_mode) && ends_with_jpg(de->d_name))
            st = add_entry(s, path, &sb);
    }
    closedir(d);
    if (depth > 0)
        rmdir(dir); /* fails, harmlessly, unless it is empty */
    return st;
}

static int by_mtime(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

vg_status disp_snapshot_prune(const char *dir, int64_t max_age_s, uint64_t max_bytes,
                              size_t *removed)
{
    struct scan s = {0};
    size_t gone = 0;
    int64_t cutoff = max_age_s > 0 ? (int64_t)time(NULL) - max_age_s : INT64_MIN;
    vg_status st = walk(&s, dir, 0);
    if (st == VG_OK && s.n > 0) {
        qsort(s.e, s.n, sizeof(*s.e), by_mtime);
        for (size_t i = 0; i < s.n; i++) {
            int old = s.e[i].mtime < cutoff, over = max_bytes && s.total > max_bytes;
            if (!old && !over)
                break; /* sorted oldest first: the rest are newer and fit */
            if (unlink(s.e[i].path) == 0) {
                s.total -= s.e[i].size;
                gone++;
            }
        }
    }
    for (size_t i = 0; i < s.n; i++)
        free(s.e[i].path);
    free(s.e);
    if (st == VG_OK)
        *removed = gone;
    return st;
}
