/* The "fs" snapshot store: frame JPEGs at <dir>/<key>, written atomically
 * (temp file + rename, so the console never serves half a file), linked
 * through the console (<console.public_url>/api/snapshots/<key>: the reader's
 * phone cannot open a path of the server's disk), pruned by age and total
 * size. dir "" falls back to the legacy dispatch.snapshot_dir. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "aws/sigv4.h"
#include "store/store_internal.h"

struct fs_settings {
    char dir[VG_URL_MAX];
    int max_age_h;      /* -1: dispatch.snapshot_max_age_h */
    int max_mb;         /* -1: dispatch.snapshot_max_mb */
};

static const struct vg_opt fs_opts[] = {
    VG_OPT_STR_("dir", struct fs_settings, dir, "", "VIGIL_SNAPSHOT_DIR", 0,
                "directory of the frames/ tree; \"\": dispatch.snapshot_dir (legacy)"),
    VG_OPT_INT_("max_age_h", struct fs_settings, max_age_h, -1, 24 * 3650, "-1",
                "delete snapshots older than this (0: no age limit; -1: "
                "dispatch.snapshot_max_age_h, 72)"),
    VG_OPT_INT_("max_mb", struct fs_settings, max_mb, -1, 1 << 24, "-1",
                "delete the oldest above this total (0: no cap; -1: dispatch.snapshot_max_mb, "
                "1024)"),
    VG_OPT_END,
};

struct fs_store {
    char dir[VG_URL_MAX];
    char public_url[VG_URL_MAX];
    int64_t max_age_s;
    uint64_t max_bytes;
};

static vg_status fs_open(void **state, void *settings, const struct vg_config *cfg,
                         const char *where)
{
    const struct fs_settings *o = settings;
    const char *dir = o->dir[0] ? o->dir : cfg->dispatch.snapshot_dir;
    if (!dir[0])
        return vg_errf(VG_ERR_CONFIG, "%s: fs needs dir (or the legacy dispatch.snapshot_dir)",
                       where);
    struct fs_store *s = calloc(1, sizeof(*s));
    if (!s)
        return VG_ERR_NOMEM;
    snprintf(s->dir, sizeof(s->dir), "%s", dir);
    size_t n = strlen(s->dir);
    while (n > 1 && s->dir[n - 1] == '/')
        s->dir[--n] = '\0';
    snprintf(s->public_url, sizeof(s->public_url), "%s", cfg->console.public_url);
    n = strlen(s->public_url);
    while (n > 0 && s->public_url[n - 1] == '/')
        s->public_url[--n] = '\0';
    int age_h = o->max_age_h >= 0 ? o->max_age_h : cfg->dispatch.snapshot_max_age_h;
    int mb = o->max_mb >= 0 ? o->max_mb : cfg->dispatch.snapshot_max_mb;
    s->max_age_s = (int64_t)age_h * 3600;
    s->max_bytes = (uint64_t)mb << 20;
    *state = s;
    return VG_OK;
}

static void fs_close(void *state) { free(state); }

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

static vg_status write_all(int fd, const uint8_t *p, size_t len)
{
    while (len > 0) {
        ssize_t w = write(fd, p, len);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return VG_ERR_IO;
        p += w;
        len -= (size_t)w;
    }
    return VG_OK;
}

static vg_status fs_put(void *state, const char *key, const uint8_t *jpeg, size_t len,
                        char *ref, size_t cap)
{
    struct fs_store *s = state;
    char path[VG_URL_MAX + 600], tmp[VG_URL_MAX + 640];
    int n = snprintf(path, sizeof(path), "%s/%s", s->dir, key);
    if (n < 0 || (size_t)n >= sizeof(path))
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot path too long");
    /* Unique per thread: two workers may put the same key (a redelivered frame). */
    snprintf(tmp, sizeof(tmp), "%s.%ld-%lu.tmp", path, (long)getpid(),
             (unsigned long)pthread_self());
    if ((size_t)snprintf(ref, cap, "fs:%s", key) >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot ref longer than %zu bytes", cap);
    vg_status st = make_parents(path);
    if (st != VG_OK)
        return st;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0 && errno == ENOENT && make_parents(path) == VG_OK) /* pruned an instant ago */
        fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0)
        return vg_errf(VG_ERR_IO, "snapshot: open %s: %s", tmp, strerror(errno));
    st = write_all(fd, jpeg, len);
    int err = errno;
    if (close(fd) != 0 && st == VG_OK) {
        st = VG_ERR_IO;
        err = errno;
    }
    if (st == VG_OK && rename(tmp, path) != 0) {
        st = VG_ERR_IO;
        err = errno;
    }
    if (st != VG_OK) {
        unlink(tmp);
        return vg_errf(VG_ERR_IO, "snapshot: write %s: %s", path, strerror(err));
    }
    return VG_OK;
}

static vg_status fs_get(void *state, const char *ref, size_t max_bytes, uint8_t **data,
                        size_t *len)
{
    struct fs_store *s = state;
    const char *key = ref + 3;
    char path[VG_URL_MAX + 600];
    struct stat sb;
    vg_status st = vg_snap_check_key(key);
    if (st != VG_OK)
        return st;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", s->dir, key) >= sizeof(path))
        return vg_errf(VG_ERR_INVALID, "snapshot path too long");
    /* O_NOFOLLOW: a link planted in the tree does not lead out of it. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT || errno == ENOTDIR
                   ? vg_errf(VG_ERR_NOT_FOUND, "snapshot %s: not found (pruned?)", ref)
                   : vg_errf(VG_ERR_IO, "snapshot: open %s: %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return vg_errf(VG_ERR_NOT_FOUND, "snapshot %s: not a file", ref);
    }
    if ((uint64_t)sb.st_size > max_bytes) {
        close(fd);
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot %s: %lld bytes, more than %zu", ref,
                       (long long)sb.st_size, max_bytes);
    }
    size_t want = (size_t)sb.st_size, got = 0;
    uint8_t *buf = malloc(want + 1);
    if (!buf) {
        close(fd);
        return VG_ERR_NOMEM;
    }
    while (got < want) {
        ssize_t r = read(fd, buf + got, want - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    close(fd);
    if (got != want) {
        free(buf);
        return vg_errf(VG_ERR_IO, "snapshot: short read of %s", path);
    }
    buf[got] = 0;
    *data = buf;
    *len = got;
    return VG_OK;
}

static vg_status fs_link(void *state, const char *ref, char *url, size_t cap)
{
    struct fs_store *s = state;
    const char *key = ref + 3;
    char enc[1600];
    vg_status st = vg_snap_check_key(key);
    if (st != VG_OK)
        return st;
    /* The key's bytes are safe already; encoding keeps it so if that changes. */
    if (vg_uri_encode(key, strlen(key), 1, enc, sizeof(enc)) == (size_t)-1)
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot key too long for a link");
    int n = snprintf(url, cap, "%s/api/snapshots/%s", s->public_url, enc);
    if (n < 0 || (size_t)n >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "snapshot link longer than %zu bytes", cap);
    return VG_OK;
}

/* ---- pruning ---------------------------------------------------------- */

/* Snapshots per prune pass at most: a directory larger than this is pruned
 * over several passes (the oldest first in each). */
#define PRUNE_MAX_FILES 200000
/* frames/<camera>/<yyyy>/<mm>/<dd>/<hh>/<id>.jpg: files six folders down;
 * the legacy <camera>/<yyyy-mm-dd>/<id>.jpg are found as well. */
#define DEPTH_MAX 7

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
    if (x->mtime != y->mtime)
        return x->mtime < y->mtime ? -1 : 1;
    return strcmp(x->path, y->path);    /* same second: stable order */
}

static vg_status fs_prune(void *state, size_t *removed)
{
    struct fs_store *s = state;
    struct scan sc = {0};
    size_t gone = 0;
    *removed = 0;
    if (s->max_age_s <= 0 && !s->max_bytes)
        return VG_OK;   /* no limits: no need to walk the tree */
    int64_t cutoff = s->max_age_s > 0 ? (int64_t)time(NULL) - s->max_age_s : INT64_MIN;
    vg_status st = walk(&sc, s->dir, 0);
    if (st == VG_OK && sc.n > 0) {
        qsort(sc.e, sc.n, sizeof(*sc.e), by_mtime);
        for (size_t i = 0; i < sc.n; i++) {
            int old = sc.e[i].mtime < cutoff, over = s->max_bytes && sc.total > s->max_bytes;
            if (!old && !over)
                break; /* sorted oldest first: the rest are newer and fit */
            if (unlink(sc.e[i].path) == 0) {
                sc.total -= sc.e[i].size;
                gone++;
            }
        }
    }
    for (size_t i = 0; i < sc.n; i++)
        free(sc.e[i].path);
    free(sc.e);
    *removed = gone;
    return st;
}

const struct vg_snap_ops vg_snap_fs = {
    .name = "fs",
    .ref_scheme = "fs:",
    .opts = fs_opts,
    .settings_size = sizeof(struct fs_settings),
    .open = fs_open,
    .close = fs_close,
    .put = fs_put,
    .get = fs_get,
    .link = fs_link,
    .prune = fs_prune,
};
