#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

static char svc_name[32] = "vigil";
static enum vg_log_level min_level = VG_LOG_INFO;
static const char *const level_names[] = {"debug", "info", "warn", "error"};

void vg_log_setup(const char *svc, enum vg_log_level level)
{
    snprintf(svc_name, sizeof(svc_name), "%s", svc);
    min_level = level;
}

int vg_log_parse_level(const char *s, enum vg_log_level *out)
{
    for (int i = 0; i < 4; i++) {
        if (strcmp(s, level_names[i]) == 0) {
            *out = (enum vg_log_level)i;
            return 0;
        }
    }
    return -1;
}

int vg_log_enabled(enum vg_log_level level) { return level >= min_level; }

size_t vg_json_escape(char *out, size_t cap, const char *s)
{
    size_t n = 0;
    if (cap == 0)
        return 0;
    for (; s && *s && n + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            out[n++] = '\\';
            out[n++] = (char)c;
        } else if (c == '\n') {
            out[n++] = '\\';
            out[n++] = 'n';
        } else if (c < 0x20) {
            n += (size_t)snprintf(out + n, cap - n, "\\u%04x", c);
        } else {
            out[n++] = (char)c;
        }
    }
    out[n] = '\0';
    return n;
}

void vg_log(enum vg_log_level level, const char *event, const char *camera,
            const char *fmt, ...)
{
    if (level < min_level)
        return;
    char msg[1024], emsg[2048], ecam[160], line[2600], ts[40];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    vg_json_escape(emsg, sizeof(emsg), msg);

    struct timeval tv;
    struct tm tm;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    size_t k = strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(ts + k, sizeof(ts) - k, ".%03dZ", (int)(tv.tv_usec / 1000));

    int n;
    if (camera && *camera) {
        vg_json_escape(ecam, sizeof(ecam), camera);
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"%s\",\"event\":\"%s\","
                     "\"camera\":\"%s\",\"msg\":\"%s\"}\n",
                     ts, level_names[level], svc_name, event, ecam, emsg);
    } else {
        n = snprintf(line, sizeof(line),
                     "{\"ts\":\"%s\",\"level\":\"%s\",\"svc\":\"%s\",\"event\":\"%s\","
                     "\"msg\":\"%s\"}\n",
                     ts, level_names[level], svc_name, event, emsg);
    }
    if (n > 0)
        fwrite(line, 1, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1, stderr);
}
