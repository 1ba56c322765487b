/* Recordings for the clip tests and benchmark, made with the ffmpeg command
 * line the way services/capture/record.c lays them out: <dir>/<start_ms>.mkv
 * segments (each from a keyframe, timestamps from 0) and an `index` of the
 * closed ones; plus ffprobe readers for the clips. Header-only. */
#ifndef VG_TEST_CLIP_RIG_H
#define VG_TEST_CLIP_RIG_H

#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jansson.h>

/* The stdout of cmd (malloc'ed, NUL-terminated), NULL when it failed. */
static inline char *rig_run(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    if (!p)
        return NULL;
    size_t len = 0, cap = 1 << 16;
    char *buf = malloc(cap);
    for (size_t got; buf && (got = fread(buf + len, 1, cap - len - 1, p)) > 0;) {
        len += got;
        if (len + 1 == cap) {
            char *t = realloc(buf, cap *= 2);
            if (!t) {
                free(buf);
                buf = NULL;
            }
            buf = t;
        }
    }
    int rc = pclose(p);
    if (!buf || rc != 0) {
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

static inline int rig_sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static inline int rig_sh(const char *fmt, ...)
{
    char cmd[4096];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(cmd))
        return -1;
    return system(cmd);
}

static inline double rig_duration_s(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "ffprobe -v error -show_entries format=duration -of "
             "default=nw=1:nk=1 '%s'", path);
    char *out = rig_run(cmd);
    double d = out ? atof(out) : -1;
    free(out);
    return d;
}

/* Segments of `input` (ffmpeg input options, e.g. "-f lavfi -i testsrc2=...") encoded with
 * `codec` (e.g. "-c:v libx264 -g 25"), seg_s long, total_s in all, into dir from t0_ms on.
 * The first n_indexed get index lines ending in desc ("h264 640x360"; -1: all but the
 * newest, which stays open). Their
 * start times go into starts_ms (room for max); returns the count, -1 on failure. */
static inline int rig_segments(const char *dir, int64_t t0_ms, const char *input,
                               const char *codec, int seg_s, int total_s, int n_indexed,
                               const char *desc, int64_t *starts_ms, int max)
{
    char raw[1100], from[1200], to[1200], line[1400], name[64];
    snprintf(raw, sizeof(raw), "%s/.raw", dir);
    /* The segment list gives each segment's start in the encoded timeline. */
    if (rig_sh("mkdir -p '%s' && ffmpeg -v error -y %s -t %d %s -f segment -segment_time %d "
               "-segment_format matroska -segment_list '%s/list.csv' -segment_list_type csv "
               "-reset_timestamps 1 '%s/%%d.mkv'", raw, input, total_s, codec, seg_s, raw,
               raw) != 0)
        return -1;
    snprintf(line, sizeof(line), "%s/list.csv", raw);
    FILE *list = fopen(line, "r");
    if (!list)
        return -1;
    int n = 0;
    double start, stop, last_end = 0;
    while (n < max && fscanf(list, "%63[^,],%lf,%lf\n", name, &start, &stop) == 3) {
        snprintf(from, sizeof(from), "%s/%s", raw, name);
        starts_ms[n] = t0_ms + (int64_t)(start * 1000 + 0.5);
        snprintf(to, sizeof(to), "%s/%lld.mkv", dir, (long long)starts_ms[n]);
        if (rename(from, to) != 0) {
            fclose(list);
            return -1;
        }
        last_end = stop;
        n++;
    }
    fclose(list);
    if (n_indexed < 0)
        n_indexed = n - 1;
    snprintf(line, sizeof(line), "%s/index", dir);
    FILE *f = fopen(line, "a");
    if (!f)
        return -1;
    for (int i = 0; i < n_indexed && i < n; i++) {
        snprintf(to, sizeof(to), "%s/%lld.mkv", dir, (long long)starts_ms[i]);
        struct stat sb;
        stat(to, &sb);
        int64_t end = i + 1 < n ? starts_ms[i + 1] : t0_ms + (int64_t)(last_end * 1000 + 0.5);
        fprintf(f, "%lld %lld %lld %lld.mkv %s\n", (long long)starts_ms[i],
                (long long)(end - starts_ms[i]), (long long)sb.st_size, (long long)starts_ms[i],
                desc);
    }
    fclose(f);
    rig_sh("rm -rf '%s'", raw);
    return n;
}

/* ffprobe -show_streams -show_format of path, parsed. */
static inline json_t *rig_probe(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "ffprobe -v error -show_streams -show_format -of json '%s'",
             path);
    char *out = rig_run(cmd);
    json_t *j = out ? json_loads(out, 0, NULL) : NULL;
    free(out);
    return j;
}

static inline const char *rig_stream_str(json_t *probe, const char *key)
{
    return json_string_value(json_object_get(json_array_get(json_object_get(probe, "streams"),
                                                            0), key));
}

static inline long long rig_stream_int(json_t *probe, const char *key)
{
    return json_integer_value(json_object_get(json_array_get(json_object_get(probe, "streams"),
                                                             0), key));
}

static inline double rig_format_duration(json_t *probe)
{
    const char *d = json_string_value(json_object_get(json_object_get(probe, "format"),
                                                      "duration"));
    return d ? atof(d) : -1;
}

/* Sizes of the first packets of path's video stream (in decoding order); returns how many. */
static inline int rig_packet_sizes(const char *path, long *sizes, int max)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "ffprobe -v error -select_streams v:0 -show_entries "
             "packet=size -of csv=p=0 '%s'", path);
    char *out = rig_run(cmd), *save = NULL;
    int n = 0;
    for (char *t = out ? strtok_r(out, "\n", &save) : NULL; t && n < max;
         t = strtok_r(NULL, "\n", &save))
        sizes[n++] = atol(t);
    free(out);
    return n;
}

/* 1 when every frame of path decodes without an error or warning. */
static inline int rig_decodes_clean(const char *path)
{
    char cmd[1200];
    snprintf(cmd, sizeof(cmd), "ffmpeg -nostdin -v warning -xerror -i '%s' -f null - 2>&1",
             path);
    char *out = rig_run(cmd);
    int ok = out && !out[0];
    if (out && out[0])
        fprintf(stderr, "%s: %s", path, out);
    free(out);
    return ok;
}

/* The top-level MP4 boxes of path in order ("ftyp moov mdat ..."), into out. */
static inline void rig_top_boxes(const char *path, char *out, size_t cap)
{
    FILE *f = fopen(path, "rb");
    size_t used = 0;
    out[0] = '\0';
    unsigned char h[16];
    while (f && fread(h, 1, 8, f) == 8 && used + 6 < cap) {
        uint64_t size = ((uint64_t)h[0] << 24) | ((uint64_t)h[1] << 16) | ((uint64_t)h[2] << 8) | h[3];
        uint64_t hdr = 8;
        if (size == 1) {
            if (fread(h + 8, 1, 8, f) != 8)
                break;
            size = 0;
            for (int i = 8; i < 16; i++)
                size = size << 8 | h[i];
            hdr = 16;
        }
        used += (size_t)snprintf(out + used, cap - used, "%s%.4s", used ? " " : "", h + 4);
        if (size < hdr || fseeko(f, (off_t)(size - hdr), SEEK_CUR) != 0)
            break;
    }
    if (f)
        fclose(f);
}

#endif
