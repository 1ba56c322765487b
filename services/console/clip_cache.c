#include "clip_cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "con.h"
#include "log.h"
#include "metrics.h"
#include "timeutil.h"

#define PRUNE_EVERY_US (60LL * 1000000)
#define LEFTOVER_AGE_S (15 * 60)    /* a .tmp or .lock this old belongs to nobody */

static vg_status ensure_dir(const char *dir)
{
    if (mkdir(dir, 0750) == 0 || errno == EEXIST)
        return VG_OK;
    return vg_errf(VG_ERR_IO, "clip cache %s: %s", dir, strerror(errno));
}

/* The lock of path: held on return (fd), on the lock file that is still the
 * one at lock_path (a holder removes it when done, so a waiter that got the
 * lock of a removed file takes the new one instead). */
static vg_status lock_path(const char *lock, int *out)
{
    for (;;) {
        int fd = open(lock, O_CREAT | O_RDWR | O_CLOEXEC, 0640);
        if (fd < 0)
            return vg_errf(VG_ERR_IO, "clip cache lock %s: %s", lock, strerror(errno));
        if (flock(fd, LOCK_EX) != 0) {
            int e = errno;
            close(fd);
            if (e == EINTR)
                continue;
            return vg_errf(VG_ERR_IO, "clip cache lock %s: %s", lock, strerror(e));
        }
        struct stat a, b;
        if (fstat(fd, &a) == 0 && stat(lock, &b) == 0 && a.st_ino == b.st_ino &&
            a.st_dev == b.st_dev) {
            *out = fd;
            return VG_OK;
        }
        close(fd);
    }
}

/* A cached clip: opened, and its mtime moved to now (age = time unused). */
static int open_cached(const char *path)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd >= 0)
        futimens(fd, NULL);
    return fd;
}

static void count_hit(void)
{
    vg_counter_inc(vg_counter_get("vigil_console_clip_cache_hits_total",
                                  "Clip requests served from the cache"));
}

vg_status con_cache_open(struct console *con, const char *name, const char *camera_dir,
                         int64_t start_us, int64_t end_us, int64_t keep_after_us, int *fd,
                         int *fresh, struct vg_clip_info *info)
{
    char path[PATH_MAX], lock[PATH_MAX + 8];
    *fresh = 0;
    if ((size_t)snprintf(path, sizeof(path), "%s/%s.mp4", con->cache_dir, name) >=
        sizeof(path))
        return vg_errf(VG_ERR_INVALID, "clip cache path too long");
    snprintf(lock, sizeof(lock), "%s.lock", path);
    if ((*fd = open_cached(path)) >= 0) {
        count_hit();
        return VG_OK;
    }
    vg_status st = ensure_dir(con->cache_dir);
    int lfd = -1;
    if (st == VG_OK)
        st = lock_path(lock, &lfd);
    if (st != VG_OK)
        return st;
    /* Another request may have made it while this one waited. */
    if ((*fd = open_cached(path)) >= 0) {
        count_hit();
        unlink(lock);
        close(lfd);
        return VG_OK;
    }
    int64_t t0 = vg_mono_us();
    st = vg_clip_assemble(camera_dir, start_us, end_us, path, info);
    if (st == VG_OK) {
        vg_histogram_observe_us(vg_histogram_get("vigil_console_clip_assembly_seconds",
                                                 "Time to assemble a clip"),
                                vg_mono_us() - t0);
        *fd = open(path, O_RDONLY | O_CLOEXEC);
        if (*fd < 0)
            st = vg_errf(VG_ERR_IO, "clip %s: %s", path, strerror(errno));
        else
            *fresh = 1;
        /* Short because the recording has not caught up yet: the next
         * request must assemble it again, so it is not kept. The open
         * descriptor still serves this one. */
        if (*fd >= 0 && info && info->end_us < end_us - 1500000 && vg_now_us() < keep_after_us)
            unlink(path);
    }
    unlink(lock);
    close(lfd);
    return st;
}

struct entry {
    char name[256];
    time_t mtime;
    int64_t size;
};

static int by_mtime(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    return x->mtime < y->mtime ? -1 : x->mtime > y->mtime;
}

static int ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* A lock file nobody holds (a crashed assembler's, or one left between
 * unlink and close) and that is old: safe to remove. */
static int idle_lock(int dfd, const char *name)
{
    int fd = openat(dfd, name, O_RDWR | O_CLOEXEC);
    if (fd < 0)
        return 0;
    int idle = flock(fd, LOCK_EX | LOCK_NB) == 0;
    close(fd);
    return idle;
}

void con_cache_prune(struct console *con, int64_t max_age_s, int64_t max_bytes, int force)
{
    int64_t now_us = vg_mono_us();
    pthread_mutex_lock(&con->prune_mu);
    if (!force && con->last_prune_us && now_us - con->last_prune_us < PRUNE_EVERY_US) {
        pthread_mutex_unlock(&con->prune_mu);
        return;
    }
    con->last_prune_us = now_us;
    DIR *d = opendir(con->cache_dir);
    if (!d) {
        pthread_mutex_unlock(&con->prune_mu);
        return;
    }
    struct entry *e = NULL;
    size_t n = 0, cap = 0, removed = 0;
    int64_t total = 0;
    time_t now = time(NULL);
    struct dirent *de;
    while ((de = readdir(d))) {
        struct stat sb;
        if (de->d_name[0] == '.' || fstatat(dirfd(d), de->d_name, &sb, 0) != 0 ||
            !S_ISREG(sb.st_mode))
            continue;
        int old = now - sb.st_mtime > LEFTOVER_AGE_S;
        if (ends_with(de->d_name, ".tmp") || ends_with(de->d_name, ".lock")) {
            if (old && (ends_with(de->d_name, ".tmp") || idle_lock(dirfd(d), de->d_name)))
                unlinkat(dirfd(d), de->d_name, 0);
            continue;
        }
        if (!ends_with(de->d_name, ".mp4") || strlen(de->d_name) >= sizeof(e->name))
            continue;
        if (max_age_s > 0 && now - sb.st_mtime > max_age_s) {
            if (unlinkat(dirfd(d), de->d_name, 0) == 0)
                removed++;
            continue;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct entry *ne = realloc(e, ncap * sizeof(*e));
            if (!ne)
                break;
            e = ne;
            cap = ncap;
        }
        snprintf(e[n].name, sizeof(e[n].name), "%s", de->d_name);
        e[n].mtime = sb.st_mtime;
        e[n].size = (int64_t)sb.st_blocks * 512;
        total += e[n].size;
        n++;
    }
    if (max_bytes > 0 && total > max_bytes) {
        qsort(e, n, sizeof(*e), by_mtime);
        for (size_t i = 0; i < n && total > max_bytes; i++) {
            if (unlinkat(dirfd(d), e[i].name, 0) == 0) {
                total -= e[i].size;
                removed++;
            }
        }
    }
    closedir(d);
    free(e);
    pthread_mutex_unlock(&con->prune_mu);
    if (removed) {
        vg_counter_add(vg_counter_get("vigil_console_clip_cache_pruned_total",
                                      "Cached clips deleted by age or size"), removed);
        VG_INFO("clip.cache_pruned", NULL, "%zu cached clip(s) deleted", removed);
    }
}
