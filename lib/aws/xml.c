#include "aws/xml.h"

#include <stdio.h>
#include <string.h>

static const struct {
    const char *entity;
    char c;
} entities[] = {{"&amp;", '&'}, {"&lt;", '<'}, {"&gt;", '>'}, {"&quot;", '"'}, {"&apos;", '\''}};

/* Copy [p, end) into out decoding the five XML entities; 0 if it did not fit. */
static int decode(const char *p, const char *end, char *out, size_t cap)
{
    size_t n = 0;
    while (p < end) {
        char c = *p++;
        if (c == '&') {
            for (size_t i = 0; i < sizeof(entities) / sizeof(entities[0]); i++) {
                size_t len = strlen(entities[i].entity);
                if ((size_t)(end - p + 1) >= len && !strncmp(p - 1, entities[i].entity, len)) {
                    c = entities[i].c;
                    p += len - 1;
                    break;
                }
            }
        }
        if (n + 1 >= cap)
            return 0;
        out[n++] = c;
    }
    out[n] = '\0';
    return 1;
}

int vg_xml_text(const char *xml, const char *name, char *out, size_t cap, const char **from)
{
    char open[96], close[96];
    const char *start = from && *from ? *from : xml;
    snprintf(open, sizeof(open), "<%s>", name);
    snprintf(close, sizeof(close), "</%s>", name);
    const char *p = strstr(start, open);
    if (!p)
        return 0;
    p += strlen(open);
    const char *end = strstr(p, close);
    if (!end || !decode(p, end, out, cap))
        return 0;
    if (from)
        *from = end + strlen(close);
    return 1;
}
