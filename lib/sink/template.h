/* Message templates of the sinks: text with {field} references, filled in
 * from one alert. Fields:
 *   {camera} {label} {who} {confidence} {time} {date} {display_name}
 *   {person_id} {profile.<key>} {zones} {snapshot_url} {clip_url} {count}
 *   {alert_id} {incident_id} {escalation}
 * {who} is the display name of a known person, else the label. {confidence}
 * is a percentage ("87%"); {time} the capture time in the configured time
 * zone ("2026-12-02 14:03:05 CET"); {zones} comma-separated. "{{" and "}}"
 * are literal braces. A field the alert lacks renders empty; a field that
 * does not exist is an error when the configuration is loaded.
 *
 * Field values are escaped for the place the text goes (HTML, Telegram's
 * MarkdownV2); the template's own text is the user's markup and is not. */
#ifndef VG_SINK_TEMPLATE_H
#define VG_SINK_TEMPLATE_H

#include <stddef.h>

#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

enum vg_tpl_escape {
    VG_TPL_PLAIN = 0,       /* values as they are */
    VG_TPL_HTML,            /* & < > " ' as entities */
    VG_TPL_MARKDOWN_V2,     /* Telegram MarkdownV2: _*[]()~`>#+-=|{}.!\ get a backslash */
    VG_TPL_ONE_LINE,        /* values as they are, control characters as spaces (subjects) */
};

/* What a template is filled from. Strings may be NULL (empty). */
struct vg_tpl_ctx {
    const Vigil__V1__Alert *alert;
    const char *snapshot_url;   /* the link the reader can open (resolved at delivery) */
    const char *clip_url;
    unsigned count;             /* sightings in the alert's incident so far (>= 1) */
};

/* VG_OK when src references only known fields and its braces pair up; else
 * VG_ERR_CONFIG with "where: <what> template: unknown field {x} (known: ...)"
 * in the detail. what: "title", "text", "html". */
vg_status vg_tpl_check(const char *src, const char *where, const char *what);

/* Fill src in; *out is malloc'd, NUL-terminated (free it). Errors as
 * vg_tpl_check, or VG_ERR_NOMEM. */
vg_status vg_tpl_render(const char *src, const struct vg_tpl_ctx *c, enum vg_tpl_escape esc,
                        char **out);

/* Append s to a malloc'd buffer with the escaping esc (for sinks that build
 * their own text, such as the rate-limit summary). */
struct vg_tpl_buf {
    char *p;
    size_t n, cap;
    int failed;                 /* out of memory: p is freed at the end */
};
void vg_tpl_put(struct vg_tpl_buf *b, const char *s, size_t n, enum vg_tpl_escape esc);

#endif
