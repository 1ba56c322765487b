/* file sink: a JSON-lines outbox. Each alert is one line, appended with a
 * single write() on an O_APPEND descriptor and fsync'ed before we report
 * success, so a crash never loses an acknowledged alert and concurrent
 * writers (several replicas on one host) never interleave inside a line. */
#include "sink/sink.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct file_settings {
    char path[VG_URL_MAX];
};

static const struct vg_opt file_opts[] = {
    VG_OPT_STR_("path", struct file_settings, path, "", "PATH", 0,
                "the JSON-lines outbox; parent directories are created"),
    VG_OPT_END,
};

static vg_status make_parents(const char *path)
{
    char dir[VG_URL_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, 0750) != 0 && errno != EEXIST)
            return vg_errf(VG_ERR_IO, "mkdir %s: %s", dir, strerror(errno));
        *p = '/';
    }
    return VG_OK;
}

/* A new file's directory entry must reach the disk too, or a crash right
 * after creation could lose the file together with its first line. */
static void sync_parent(const char *path)
{
    char dir[VG_URL_MAX];
    snprintf(dir, sizeof(dir), "%s", path);
    char *slash = strrchr(dir, '/');
    if (!slash)
        snprintf(dir, sizeof(dir), ".");
    else if (slash == dir)
        dir[1] = '\0';
    else
        *slash = '\0';
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
}

static vg_status open_outbox(const char *path, int *out)
{
    int flags = O_WRONLY | O_APPEND | O_CLOEXEC;
    int fd = open(path, flags);
    if (fd < 0 && errno == ENOENT) {
        vg_status st = make_parents(path);
        if (st != VG_OK)
            return st;
        fd = open(path, flags | O_CREAT, 0640);
        if (fd >= 0)
            sync_parent(path);
    }
    if (fd < 0)
        return vg_errf(VG_ERR_IO, "open %s: %s", path, strerror(errno));
    *out = fd;
    return VG_OK;
}

/* A short write (disk full) would leave half a line; cut it off again when
 * nobody has appended after us, so the outbox stays parseable. */
static void undo_partial(int fd, size_t written)
{
    struct stat sb;
    off_t end = lseek(fd, 0, SEEK_CUR);
    if (end < 0 || fstat(fd, &sb) != 0 || sb.st_size != end)
        return;
    (void)ftruncate(fd, end - (off_t)written);
}

static vg_status append_line(int fd, const char *path, const char *line, size_t n)
{
    ssize_t w;
    do
        w = write(fd, line, n);
    while (w < 0 && errno == EINTR);
    if (w < 0)
        return vg_errf(VG_ERR_IO, "write %s: %s", path, strerror(errno));
    if ((size_t)w != n) {
        undo_partial(fd, (size_t)w);
        return vg_errf(VG_ERR_IO, "write %s: short write (%zd of %zu bytes)", path, w, n);
    }
    if (fsync(fd) != 0)
        return vg_errf(VG_ERR_IO, "fsync %s: %s", path, strerror(errno));
    return VG_OK;
}

/* A full or failing disk may recover (someone frees space): transient. */
static void file_deliver(void *state, const struct vg_sink_alert *a, struct vg_sink_result *r)
{
    const struct file_settings *f = state;
    char *line = malloc(a->json_len + 1);
    int fd = -1;
    vg_status st = VG_ERR_NOMEM;

    if (!line)
        goto out;
    memcpy(line, a->json, a->json_len);
    line[a->json_len] = '\n';
    /* Opened per alert: alerts are rare, and this follows log rotation and
     * recreates a deleted outbox instead of writing into an unlinked file. */
    st = open_outbox(f->path, &fd);
    if (st == VG_OK)
        st = append_line(fd, f->path, line, a->json_len + 1);
    if (fd >= 0 && close(fd) != 0 && st == VG_OK)
        st = vg_errf(VG_ERR_IO, "close %s: %s", f->path, strerror(errno));
out:
    free(line);
    if (st != VG_OK)
        vg_sink_fail(r, VG_SINK_RETRY, "%s", st == VG_ERR_NOMEM ? "out of memory" : vg_err_detail());
}

static vg_status file_check(const void *settings, const char *where)
{
    const struct file_settings *f = settings;
    if (!f->path[0])
        return vg_errf(VG_ERR_CONFIG, "%s: a file sink needs a path", where);
    return VG_OK;
}

/* The settings live in the configuration, which outlives the sink. */
static vg_status file_init(void **state, const struct vg_sink_cfg *cfg,
                          const struct vg_config *root)
{
    (void)root;
    *state = (void *)cfg->settings;
    return VG_OK;
}

const struct vg_sink_ops vg_sink_file = {
    .name = "file",
    .opts = file_opts,
    .settings_size = sizeof(struct file_settings),
    .default_timeout_ms = 0,
    .check = file_check,
    .init = file_init,
    .deliver = file_deliver,
};
