/* The segments of a camera's recording: `<start_ms>.mkv` files and the
 * `index` of closed ones (services/capture/record.c writes both). */
#include "clip/assemble_int.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INDEX_LINE_MAX 1024

/* "<digits>.mkv" -> start in ms; -1 for any other name. */
static int64_t seg_name_ms(const char *name)
{
    int64_t ms = 0;
    const char *p = name;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (ms > INT64_MAX / 10 / 1000)
            return -1;
        ms = ms * 10 + (*p - '0');
    }
    return p > name && !strcmp(p, ".mkv") ? ms : -1;
}

static int by_start(const void *a, const void *b)
{
    const struct clip_seg *x = a, *y = b;
    return x->start_us < y->start_us ? -1 : x->start_us > y->start_us;
}

/* Durations of the index's lines by start: each found file gets its end. */
static void apply_index(const char *dir, struct clip_seg *s, size_t n)
{
    char path[PATH_MAX], line[INDEX_LINE_MAX], file[256], codec[32];
    long long start_ms, dur_ms, bytes;
    int w, h;
    snprintf(path, sizeof(path), "%s/index", dir);
    FILE *f = fopen(path, "r");
    if (!f)
        return;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "%lld %lld %lld %255s %31s %dx%d", &start_ms, &dur_ms, &bytes, file,
                   codec, &w, &h) < 4 || dur_ms < 0)
            continue;
        int64_t ms = seg_name_ms(file);
        for (size_t i = 0; ms >= 0 && i < n; i++)
            if (s[i].start_us == ms * 1000) {
                s[i].end_us = s[i].start_us + (int64_t)dur_ms * 1000;
                s[i].indexed = 1;
            }
    }
    fclose(f);
}

vg_status clip_segments_list(const char *dir, struct clip_seg **out, size_t *n_out)
{
    struct clip_seg *s = NULL;
    size_t n = 0, cap = 0;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) {
            *out = NULL;
            *n_out = 0;
            return VG_OK;
        }
        return vg_errf(VG_ERR_IO, "recording %s: %s", dir, strerror(errno));
    }
    for (struct dirent *e; (e = readdir(d));) {
        int64_t ms = seg_name_ms(e->d_name);
        if (ms < 0)
            continue;
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 64;
            struct clip_seg *t = realloc(s, ncap * sizeof(*s));
            if (!t) {
                closedir(d);
                free(s);
                return VG_ERR_NOMEM;
            }
            s = t;
            cap = ncap;
        }
        memset(&s[n], 0, sizeof(s[n]));
        s[n].start_us = ms * 1000;
        s[n].end_us = INT64_MAX;
        if ((size_t)snprintf(s[n].path, sizeof(s[n].path), "%s/%s", dir, e->d_name) >=
            sizeof(s[n].path))
            continue;
        n++;
    }
    closedir(d);
    if (n)
        qsort(s, n, sizeof(*s), by_start);
    apply_index(dir, s, n);
    /* A segment not in the index (the open one, or one a crash left) runs
     * until the next one starts. */
    for (size_t i = 0; i + 1 < n; i++)
        if (!s[i].indexed)
            s[i].end_us = s[i + 1].start_us;
    *out = s;
    *n_out = n;
    return VG_OK;
}

void clip_format_time(int64_t us, char *out, size_t cap)
{
    time_t t = (time_t)(us / 1000000);
    struct tm tm;
    char buf[32];
    if (us < 0 || !gmtime_r(&t, &tm) || !strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm)) {
        snprintf(out, cap, "%lld us", (long long)us);
        return;
    }
    snprintf(out, cap, "%s.%03dZ", buf, (int)(us / 1000 % 1000));
}
