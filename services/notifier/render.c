/* The alert as a sink receives it: the JSON every sink can send, a title and
 * a sentence for people, and the snapshot bytes for sinks that attach them.
 * (Per-sink templates replace the fixed title and text later.) */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "alert_json.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define SNAPSHOT_MAX (8u << 20)

static const char *str(const char *s) { return s ? s : ""; }

static char *dup_printf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *dup_printf(const char *fmt, ...)
{
    char *out = NULL;
    va_list ap;
    va_start(ap, fmt);
    if (vasprintf(&out, fmt, ap) < 0)
        out = NULL;
    va_end(ap);
    return out;
}

/* Only local snapshots (file://) are read here; a missing one is no error:
 * the alert still goes out, without the picture. */
static uint8_t *read_snapshot(const char *url, size_t *len)
{
    *len = 0;
    if (strncmp(url, "file://", 7) != 0)
        return NULL;
    FILE *f = fopen(url + 7, "rb");
    if (!f)
        return NULL;
    uint8_t *buf = malloc(SNAPSHOT_MAX);
    size_t n = buf ? fread(buf, 1, SNAPSHOT_MAX, f) : 0;
    int too_big = fgetc(f) != EOF;
    fclose(f);
    if (!buf || n == 0 || too_big) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

vg_status ntf_render(struct ntf_rendered *r, const Vigil__V1__Alert *a, unsigned caps)
{
    char ts[NTF_TS_MAX];
    size_t json_len = 0;
    memset(r, 0, sizeof(*r));
    vg_status st = ntf_alert_json(a, &r->json, &json_len);
    if (st != VG_OK)
        return st;
    const char *who = a->display_name && *a->display_name ? a->display_name : str(a->label);
    const char *cam = a->header->camera_id;
    ntf_format_ts(a->header->capture_ts_us, ts);
    r->title = dup_printf("%s at %s", who, cam);
    r->text = dup_printf("%s seen on %s at %s (confidence %.0f%%)", who, cam, ts,
                         (double)a->confidence * 100.0);
    if (!r->title || !r->text) {
        ntf_render_free(r);
        return vg_errf(VG_ERR_NOMEM, "rendering alert %s", a->alert_id);
    }
    struct vg_sink_alert *v = &r->view;
    v->alert = a;
    v->title = r->title;
    v->text = r->text;
    v->json = r->json;
    v->json_len = json_len;
    v->snapshot_url = str(a->snapshot_url);
    v->clip_url = str(a->clip_url);
    if (caps & VG_SINK_CAP_SNAPSHOT)
        v->snapshot = r->snapshot = read_snapshot(v->snapshot_url, &v->snapshot_len);
    return VG_OK;
}

void ntf_render_free(struct ntf_rendered *r)
{
    free(r->json);
    free(r->title);
    free(r->text);
    free(r->snapshot);
    memset(r, 0, sizeof(*r));
}
