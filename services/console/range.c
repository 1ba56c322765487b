#include "range.h"

#include <ctype.h>
#include <string.h>

/* Digits into *v; returns the byte after them, or NULL for none / overflow. */
static const char *digits(const char *p, uint64_t *v)
{
    const char *start = p;
    *v = 0;
    for (; isdigit((unsigned char)*p); p++) {
        if (*v > (UINT64_MAX - 9) / 10)
            return NULL;
        *v = *v * 10 + (uint64_t)(*p - '0');
    }
    return p == start ? NULL : p;
}

static const char *skip_ws(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

enum con_range con_range_parse(const char *header, uint64_t size, uint64_t *off, uint64_t *len)
{
    uint64_t a = 0, b = 0;
    if (!header || strncmp(header, "bytes=", 6) != 0)
        return CON_RANGE_NONE;
    const char *p = skip_ws(header + 6);
    /* Several ranges would need multipart/byteranges; the whole file is a
     * valid answer to them, and no browser asks for them to play video. */
    if (strchr(p, ','))
        return CON_RANGE_NONE;
    if (*p == '-') {                    /* suffix: the last n bytes */
        if (!(p = digits(p + 1, &b)) || *skip_ws(p))
            return CON_RANGE_NONE;
        if (b == 0 || size == 0)
            return CON_RANGE_UNSATISFIABLE;
        *len = b < size ? b : size;
        *off = size - *len;
        return CON_RANGE_OK;
    }
    if (!(p = digits(p, &a)) || *p != '-')
        return CON_RANGE_NONE;
    p++;
    if (*skip_ws(p) == '\0') {
        b = UINT64_MAX;
    } else if (!(p = digits(p, &b)) || *skip_ws(p) || b < a) {
        return CON_RANGE_NONE;
    }
    if (a >= size)
        return CON_RANGE_UNSATISFIABLE;
    if (b >= size)
        b = size - 1;
    *off = a;
    *len = b - a + 1;
    return CON_RANGE_OK;
}
