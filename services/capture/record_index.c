#include "record_index.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define LINE_MAX_LEN 256

int cap_rec_index_line(char *buf, size_t cap, const struct cap_rec_segment *seg)
{
    int n = snprintf(buf, cap, "%" PRId64 " %" PRId64 " %" PRId64 " %s %s %dx%d\n",
                     seg->start_ms, seg->duration_ms, seg->bytes, seg->file,
                     seg->codec[0] ? seg->codec : "unknown", seg->width, seg->height);
    return n < 0 || (size_t)n >= cap ? -1 : n;
}

int cap_rec_index_parse(const char *line, struct cap_rec_segment *seg)
{
    memset(seg, 0, sizeof(*seg));
    char file[sizeof(seg->file) + 1], codec[sizeof(seg->codec) + 1];
    int used = 0;
    /* Widths one past the fields' room: a longer token fails the check below. */
    if (sscanf(line, "%" SCNd64 " %" SCNd64 " %" SCNd64 " %40s %32s %dx%d%n", &seg->start_ms,
               &seg->duration_ms, &seg->bytes, file, codec, &seg->width, &seg->height,
               &used) != 7)
        return -1;
    if (strlen(file) >= sizeof(seg->file) || strlen(codec) >= sizeof(seg->codec))
        return -1;
    if (line[used] != '\0' && line[used] != '\n')
        return -1;
    memcpy(seg->file, file, strlen(file) + 1);
    memcpy(seg->codec, codec, strlen(codec) + 1);
    return 0;
}

vg_status cap_rec_index_append(const char *cam_dir, const struct cap_rec_segment *seg)
{
    char path[4096], line[LINE_MAX_LEN];
    int n = cap_rec_index_line(line, sizeof(line), seg);
    if (n < 0 || snprintf(path, sizeof(path), "%s/" CAP_REC_INDEX, cam_dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return vg_errf(VG_ERR_IO, "%s/" CAP_REC_INDEX ": %s", cam_dir, strerror(errno));
    }
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return vg_errf(VG_ERR_IO, "%s: %s", path, strerror(errno));
    /* One write of the whole line: concurrent readers see all of it or none. */
    ssize_t w = write(fd, line, (size_t)n);
    int err = w < 0 ? errno : w != n ? ENOSPC : 0;
    if (close(fd) < 0 && !err)
        err = errno;
    if (err) {
        errno = err;
        return vg_errf(VG_ERR_IO, "%s: %s", path, strerror(err));
    }
    return VG_OK;
}

/* ---- retention ------------------------------------------------------------- */

struct seg_file {
    char name[40];
    int64_t start_ms;
    int64_t end_ms;         /* from the index, else the modification time */
    int64_t bytes;
    int indexed;
    int removed;
};

struct seg_list {
    struct seg_file *v;
    size_t n, cap;
};

/* "<digits>.mkv" -> start_ms; -1 for any other name. */
static int64_t segment_start(const char *name)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(name, &end, 10);
    if (errno || end == name || strcmp(end, ".mkv") != 0 || v < 0)
        return -1;
    return v;
}

static vg_status list_segments(const char *cam_dir, struct seg_list *l)
{
    DIR *d = opendir(cam_dir);
    if (!d)
        return vg_errf(VG_ERR_IO, "%s: %s", cam_dir, strerror(errno));
    vg_status st = VG_OK;
    for (struct dirent *e; (e = readdir(d)) != NULL;) {
        int64_t start = segment_start(e->d_name);
        struct stat sb;
        if (start < 0 || strlen(e->d_name) >= sizeof(l->v->name) ||
            fstatat(dirfd(d), e->d_name, &sb, 0) != 0 || !S_ISREG(sb.st_mode))
            continue;
        if (l->n == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 64;
            struct seg_file *v = realloc(l->v, cap * sizeof(*v));
            if (!v) {
                st = vg_errf(VG_ERR_NOMEM, "%s: out of memory", cam_dir);
                break;
            }
            l->v = v;
            l->cap = cap;
        }
        struct seg_file *f = &l->v[l->n++];
        memset(f, 0, sizeof(*f));
        memcpy(f->name, e->d_name, strlen(e->d_name) + 1);     /* length checked above */
        f->start_ms = start;
        f->bytes = (int64_t)sb.st_size;
        f->end_ms = (int64_t)sb.st_mtim.tv_sec * 1000 + sb.st_mtim.tv_nsec / 1000000;
    }
    closedir(d);
    return st;
}

static int by_start(const void *a, const void *b)
{
    const struct seg_file *x = a, *y = b;
    return x->start_ms < y->start_ms ? -1 : x->start_ms > y->start_ms;
}

static struct seg_file *find(struct seg_list *l, const char *name)
{
    for (size_t i = 0; i < l->n; i++)
        if (!strcmp(l->v[i].name, name))
            return &l->v[i];
    return NULL;
}

/* The index's end times replace the files' modification times. */
static void read_index_ends(const char *index_path, struct seg_list *l)
{
    FILE *f = fopen(index_path, "re");
    if (!f)
        return;
    char line[LINE_MAX_LEN];
    struct cap_rec_segment seg;
    while (fgets(line, sizeof(line), f)) {
        struct seg_file *sf = cap_rec_index_parse(line, &seg) == 0 ? find(l, seg.file) : NULL;
        if (sf) {
            sf->indexed = 1;
            sf->end_ms = seg.start_ms + seg.duration_ms;
        }
    }
    fclose(f);
}

/* Copy the index without the lines of removed or missing files. */
static vg_status rewrite_index(const char *cam_dir, const char *index_path, struct seg_list *l)
{
    char tmp[4096];
    snprintf(tmp, sizeof(tmp), "%s/" CAP_REC_INDEX_TMP, cam_dir);
    FILE *in = fopen(index_path, "re");
    if (!in)
        return errno == ENOENT ? VG_OK : vg_errf(VG_ERR_IO, "%s: %s", index_path, strerror(errno));
    FILE *out = fopen(tmp, "we");
    if (!out) {
        vg_status st = vg_errf(VG_ERR_IO, "%s: %s", tmp, strerror(errno));
        fclose(in);
        return st;
    }
    char line[LINE_MAX_LEN];
    struct cap_rec_segment seg;
    int err = 0;
    while (fgets(line, sizeof(line), in)) {
        struct seg_file *sf = cap_rec_index_parse(line, &seg) == 0 ? find(l, seg.file) : NULL;
        if (sf && !sf->removed && fputs(line, out) == EOF)
            err = errno;
    }
    fclose(in);
    if (fflush(out) != 0 && !err)
        err = errno;
    if (fclose(out) != 0 && !err)
        err = errno;
    if (!err && rename(tmp, index_path) != 0)
        err = errno;
    if (err) {
        unlink(tmp);
        return vg_errf(VG_ERR_IO, "%s: %s", index_path, strerror(err));
    }
    return VG_OK;
}

vg_status cap_rec_retention(const char *cam_dir, const struct cap_rec_retention *rt,
                            int *removed, int64_t *removed_bytes)
{
    struct seg_list l = {0};
    char index_path[4096];
    *removed = 0;
    *removed_bytes = 0;
    snprintf(index_path, sizeof(index_path), "%s/" CAP_REC_INDEX, cam_dir);
    vg_status st = list_segments(cam_dir, &l);
    if (st != VG_OK)
        goto out;
    read_index_ends(index_path, &l);
    qsort(l.v, l.n, sizeof(*l.v), by_start);
    int64_t total = 0;
    for (size_t i = 0; i < l.n; i++)
        total += l.v[i].bytes;
    int64_t cutoff = rt->max_age_h > 0 ? rt->now_ms - (int64_t)rt->max_age_h * 3600 * 1000 : 0;
    int64_t budget = rt->max_mb > 0 ? (int64_t)rt->max_mb * 1024 * 1024 : INT64_MAX;
    int first_err = 0;
    for (size_t i = 0; i < l.n; i++) {
        struct seg_file *f = &l.v[i];
        if (rt->keep && !strcmp(f->name, rt->keep))
            continue;
        if (!(cutoff && f->end_ms < cutoff) && total <= budget)
            continue;
        char path[4096];
        snprintf(path, sizeof(path), "%s/%s", cam_dir, f->name);
        if (unlink(path) != 0 && errno != ENOENT) {
            if (!first_err)
                first_err = errno;
            continue;
        }
        f->removed = 1;
        total -= f->bytes;
        (*removed)++;
        *removed_bytes += f->bytes;
    }
    if (*removed > 0)
        st = rewrite_index(cam_dir, index_path, &l);
    if (st == VG_OK && first_err)
        st = vg_errf(VG_ERR_IO, "%s: deleting old segments: %s", cam_dir, strerror(first_err));
out:
    free(l.v);
    return st;
}
