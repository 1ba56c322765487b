/* Message templates: one pass over the source, copying text and filling in
 * {field}s. Checking is rendering without an alert, so the two can never
 * disagree about what a template may contain. */
#include "sink/template.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "opts.h"
#include "timeutil.h"
#include "tz.h"

#define FIELD_MAX 64

static const char *const field_names[] = {
    "camera", "label", "who", "confidence", "time", "date", "display_name", "person_id",
    "profile.<key>", "zones", "snapshot_url", "clip_url", "count", "alert_id", "incident_id",
    "escalation", NULL,
};

static void grow(struct vg_tpl_buf *b, size_t more)
{
    if (b->failed || b->n + more + 1 <= b->cap)
        return;
    size_t cap = b->cap ? b->cap : 128;
    while (cap < b->n + more + 1)
        cap *= 2;
    char *p = realloc(b->p, cap);
    if (!p) {
        b->failed = 1;
        return;
    }
    b->p = p;
    b->cap = cap;
}

static void put_raw(struct vg_tpl_buf *b, const char *s, size_t n)
{
    grow(b, n);
    if (b->failed)
        return;
    memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void vg_tpl_put(struct vg_tpl_buf *b, const char *s, size_t n, enum vg_tpl_escape esc)
{
    static const char md2[] = "_*[]()~`>#+-=|{}.!\\";
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        const char *ent = NULL;
        if (esc == VG_TPL_HTML) {
            switch (c) {
            case '&': ent = "&amp;"; break;
            case '<': ent = "&lt;"; break;
            case '>': ent = "&gt;"; break;
            case '"': ent = "&quot;"; break;
            case '\'': ent = "&#39;"; break;
            default: break;
            }
        }
        if (ent)
            put_raw(b, ent, strlen(ent));
        else if (esc == VG_TPL_MARKDOWN_V2 && c && strchr(md2, c)) {
            put_raw(b, "\\", 1);
            put_raw(b, &c, 1);
        } else if (esc == VG_TPL_ONE_LINE && ((unsigned char)c < 0x20 || c == 0x7f))
            put_raw(b, " ", 1);
        else
            put_raw(b, &c, 1);
    }
}

static void put(struct vg_tpl_buf *b, const char *s, enum vg_tpl_escape esc)
{
    if (s)
        vg_tpl_put(b, s, strlen(s), esc);
}

static const char *profile_value(const Vigil__V1__Alert *a, const char *key)
{
    for (size_t i = 0; i < a->n_profile; i++)
        if (a->profile[i]->key && !strcmp(a->profile[i]->key, key))
            return a->profile[i]->value;
    return NULL;
}

/* Fill in one field; 0 when there is no such field. With no alert (a
 * check) every known field is accepted and renders empty. */
static int field(struct vg_tpl_buf *b, const char *name, const struct vg_tpl_ctx *c,
                 enum vg_tpl_escape esc)
{
    const Vigil__V1__Alert *a = c ? c->alert : NULL;
    char tmp[96];
    if (!strncmp(name, "profile.", 8))
        return name[8] ? (a ? put(b, profile_value(a, name + 8), esc) : (void)0, 1) : 0;
    int known = 0;
    for (int i = 0; field_names[i]; i++)
        known |= !strcmp(name, field_names[i]);
    if (!known)
        return 0;
    if (!a)
        return 1;
    const char *cam = a->header ? a->header->camera_id : NULL;
    int64_t ts = a->header ? a->header->capture_ts_us : 0;
    if (!strcmp(name, "camera"))
        put(b, cam, esc);
    else if (!strcmp(name, "label"))
        put(b, a->label, esc);
    else if (!strcmp(name, "who"))
        put(b, a->display_name && *a->display_name ? a->display_name : a->label, esc);
    else if (!strcmp(name, "confidence")) {
        snprintf(tmp, sizeof(tmp), "%.0f%%", (double)a->confidence * 100.0);
        put(b, tmp, esc);
    } else if (!strcmp(name, "time")) {
        vg_tz_format(ts, "%Y-%m-%d %H:%M:%S %Z", tmp, sizeof(tmp));
        put(b, tmp, esc);
    } else if (!strcmp(name, "date")) {
        vg_tz_format(ts, "%Y-%m-%d", tmp, sizeof(tmp));
        put(b, tmp, esc);
    } else if (!strcmp(name, "display_name"))
        put(b, a->display_name, esc);
    else if (!strcmp(name, "person_id"))
        put(b, a->person_id, esc);
    else if (!strcmp(name, "zones")) {
        for (size_t i = 0; i < a->n_zones; i++) {
            if (i)
                put(b, ", ", esc);
            put(b, a->zones[i], esc);
        }
    } else if (!strcmp(name, "snapshot_url"))
        put(b, c->snapshot_url, esc);
    else if (!strcmp(name, "clip_url"))
        put(b, c->clip_url, esc);
    else if (!strcmp(name, "count")) {
        snprintf(tmp, sizeof(tmp), "%u", c->count ? c->count : 1);
        put(b, tmp, esc);
    } else if (!strcmp(name, "alert_id"))
        put(b, a->alert_id, esc);
    else if (!strcmp(name, "incident_id"))
        put(b, a->incident_id, esc);
    else if (!strcmp(name, "escalation"))
        put(b, a->escalation, esc);
    return 1;
}

static vg_status expand(const char *src, const struct vg_tpl_ctx *c, enum vg_tpl_escape esc,
                        struct vg_tpl_buf *b, const char *where, const char *what)
{
    char known[320];
    const char *p = src ? src : "";
    put_raw(b, "", 0);
    while (*p) {
        size_t lit = strcspn(p, "{}");
        put_raw(b, p, lit);
        p += lit;
        if (!*p)
            break;
        if (p[0] == p[1]) {             /* "{{" or "}}" */
            put_raw(b, p, 1);
            p += 2;
            continue;
        }
        long col = (long)(p - src) + 1;
        if (*p == '}')
            return vg_errf(VG_ERR_CONFIG, "%s: %s template: a lone '}' at column %ld (write "
                           "\"}}\" for a brace)", where, what, col);
        const char *close = strchr(p + 1, '}');
        size_t len = close ? (size_t)(close - p - 1) : 0;
        if (!close || len == 0 || len >= FIELD_MAX || memchr(p + 1, '{', len))
            return vg_errf(VG_ERR_CONFIG, "%s: %s template: '{' at column %ld opens no "
                           "{field} (write \"{{\" for a brace)", where, what, col);
        char name[FIELD_MAX];
        memcpy(name, p + 1, len);
        name[len] = '\0';
        if (!field(b, name, c, esc)) {
            vg_opts_join(field_names, known, sizeof(known));
            return vg_errf(VG_ERR_CONFIG, "%s: %s template: unknown field {%s} (known: %s)",
                           where, what, name, known);
        }
        p = close + 1;
    }
    if (b->failed)
        return vg_errf(VG_ERR_NOMEM, "%s: %s template", where, what);
    return VG_OK;
}

vg_status vg_tpl_check(const char *src, const char *where, const char *what)
{
    struct vg_tpl_buf b = {0};
    vg_status st = expand(src, NULL, VG_TPL_PLAIN, &b, where, what);
    free(b.p);
    return st;
}

vg_status vg_tpl_render(const char *src, const struct vg_tpl_ctx *c, enum vg_tpl_escape esc,
                        char **out)
{
    struct vg_tpl_buf b = {0};
    char where[VG_ID_MAX + 16];
    snprintf(where, sizeof(where), "alert %s",
             c && c->alert && c->alert->alert_id ? c->alert->alert_id : "?");
    vg_status st = expand(src, c, esc, &b, where, "a");
    if (st != VG_OK) {
        free(b.p);
        return st;
    }
    *out = b.p;
    return VG_OK;
}
