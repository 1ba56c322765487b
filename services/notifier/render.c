/* The alert as a sink receives it: the JSON every sink can send, a title and
 * a sentence for people, and the snapshot bytes for sinks that attach them.
 * Title, text and html are the sink's templates (sink/template.h) filled in. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "alert_json.h"
#include "evidence.h"
#include "log.h"
#include "ntf.h"
#include "timeutil.h"

static const char *str(const char *s) { return s ? s : ""; }

static const char DEFAULT_TITLE[] = "{who} at {camera}";
static const char DEFAULT_TEXT[] = "{who} seen on {camera} at {time} (confidence {confidence})";

static vg_status fill(const char *src, const struct vg_tpl_ctx *c, enum vg_tpl_escape esc,
                      char **out)
{
    return vg_tpl_render(src ? src : "", c, esc, out);
}

vg_status ntf_render(struct ntf_rendered *r, const Vigil__V1__Alert *a,
                     const struct vg_sink_cfg *cfg, struct ntf_evidence *ev, unsigned count)
{
    const struct vg_sink_ops *ops = cfg->ops;
    size_t json_len = 0;
    memset(r, 0, sizeof(*r));
    if (!(r->links = malloc(sizeof(*r->links))))
        return vg_errf(VG_ERR_NOMEM, "render: out of memory");
    ntf_evidence_links(ev, a, r->links);
    /* Sinks and the alert JSON see the links resolved now, never a path. */
    Vigil__V1__Alert linked = *a;
    linked.snapshot_url = r->links->snapshot;
    linked.clip_url = r->links->clip;
    vg_status st = ntf_alert_json(&linked, &r->json, &json_len);
    if (st != VG_OK) {
        ntf_render_free(r);
        return st;
    }
    struct vg_sink_alert *v = &r->view;
    v->snapshot_url = str(r->links->snapshot);
    v->clip_url = str(r->links->clip);
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
        v->snapshot = r->snapshot = ntf_evidence_snapshot(ev, a, &v->snapshot_len);
    return VG_OK;
}

void ntf_render_free(struct ntf_rendered *r)
{
    free(r->json);
    free(r->title);
    free(r->text);
    free(r->html);
    free(r->snapshot);
    free(r->links);
    memset(r, 0, sizeof(*r));
}
