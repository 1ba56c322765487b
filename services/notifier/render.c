/* The alert as a sink receives it: the JSON every sink can send, a title and
 * a sentence for people, and the snapshot bytes for sinks that attach them.
 * Title, text and html are the sink's templates (sink/template.h) filled in. */
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert_json.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"

#define SNAPSHOT_MAX (8u << 20)

static const char *str(const char *s) { return s ? s : ""; }

/* The file a file:// snapshot names, when it lies inside the snapshot
 * directory: an alert is data from the bus, and its URL must not make a
 * sink mail or post any file this process can read (secrets included). */
static int inside_snapshot_dir(const char *path, const char *dir, char *real, size_t cap)
{
    char base[PATH_MAX];
    if (!dir || !dir[0] || cap < PATH_MAX || !realpath(dir, base) || !realpath(path, real))
        return 0;
    size_t n = strlen(base);
    return strncmp(real, base, n) == 0 && real[n] == '/';
}

/* Only local snapshots (file://) under dispatch.snapshot_dir, and only
 * JPEGs, are read here; anything else is no error: the alert still goes
 * out, without the picture. */
static uint8_t *read_snapshot(const char *url, const char *dir, size_t *len)
{
    char real[PATH_MAX];
    *len = 0;
    if (strncmp(url, "file://", 7) != 0 || !inside_snapshot_dir(url + 7, dir, real, sizeof(real)))
        return NULL;
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    uint8_t *buf = malloc(SNAPSHOT_MAX);
    size_t n = buf ? fread(buf, 1, SNAPSHOT_MAX, f) : 0;
    int too_big = fgetc(f) != EOF;
    fclose(f);
    if (!buf || n < 3 || too_big || buf[0] != 0xFF || buf[1] != 0xD8 || buf[2] != 0xFF) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

static const char DEFAULT_TITLE[] = "{who} at {camera}";
static const char DEFAULT_TEXT[] = "{who} seen on {camera} at {time} (confidence {confidence})";

static vg_status fill(const char *src, const struct vg_tpl_ctx *c, enum vg_tpl_escape esc,
                      char **out)
{
    return vg_tpl_render(src ? src : "", c, esc, out);
}

vg_status ntf_render(struct ntf_rendered *r, const Vigil__V1__Alert *a,
                     const struct vg_sink_cfg *cfg, const char *snapshot_dir, unsigned count)
{
    const struct vg_sink_ops *ops = cfg->ops;
    size_t json_len = 0;
    memset(r, 0, sizeof(*r));
    vg_status st = ntf_alert_json(a, &r->json, &json_len);
    if (st != VG_OK)
        return st;
    struct vg_sink_alert *v = &r->view;
    v->snapshot_url = str(a->snapshot_url);
    v->clip_url = str(a->clip_url);
    v->count = count ? count : 1;
    struct vg_tpl_ctx c = {a, v->snapshot_url, v->clip_url, v->count};
    const char *title = cfg->title[0] ? cfg->title : ops->default_title ? ops->default_title
                                                                        : DEFAULT_TITLE;
    const char *text = cfg->text[0] ? cfg->text : ops->default_text ? ops->default_text
                                                                     : DEFAULT_TEXT;
    const char *html = cfg->html[0] ? cfg->html : ops->default_html;
    enum vg_tpl_escape text_esc = ops->text_escape ? ops->text_escape(cfg->settings)
                                                   : VG_TPL_PLAIN;
    if ((st = fill(title, &c, VG_TPL_ONE_LINE, &r->title)) != VG_OK ||
        (st = fill(text, &c, text_esc, &r->text)) != VG_OK ||
        (st = fill(html, &c, VG_TPL_HTML, &r->html)) != VG_OK) {
        ntf_render_free(r);
        return st;
    }
    v->alert = a;
    v->kind = VG_SINK_KIND_ALERT;
    v->title = r->title;
    v->text = r->text;
    v->html = r->html;
    v->json = r->json;
    v->json_len = json_len;
    if (ops->caps & VG_SINK_CAP_SNAPSHOT)
        v->snapshot = r->snapshot = read_snapshot(v->snapshot_url, snapshot_dir,
                                                  &v->snapshot_len);
    return VG_OK;
}

void ntf_render_free(struct ntf_rendered *r)
{
    free(r->json);
    free(r->title);
    free(r->text);
    free(r->html);
    free(r->snapshot);
    memset(r, 0, sizeof(*r));
}
