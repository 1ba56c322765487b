#include "opts.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "yamltree.h"

#define SECRET_FILE_MAX 65536

static vg_status set_number(const struct vg_opt *o, void *dst, const char *s, const char *where)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(s, &end);
    if (!*s || *end || errno || !isfinite(d) || (o->type == VG_OPT_INT && d != floor(d)))
        return vg_errf(VG_ERR_CONFIG, "%s%s must be %s, not \"%s\"", where, o->key,
                       o->type == VG_OPT_INT ? "an integer" : "a number", s);
    if (d < o->min || d > o->max)
        return vg_errf(VG_ERR_CONFIG, "%s%s = %s is out of range [%g, %g]", where, o->key, s,
                       o->min, o->max);
    if (o->type == VG_OPT_INT)
        *(int *)dst = (int)d;
    else
        *(double *)dst = d;
    return VG_OK;
}

void vg_opts_join(const char *const *values, char *out, size_t cap)
{
    size_t used = 0;
    out[0] = '\0';
    for (int i = 0; values[i] && used < cap; i++) {
        int n = snprintf(out + used, cap - used, "%s%s", i ? ", " : "", values[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

static vg_status set_enum(const struct vg_opt *o, void *dst, const char *s, const char *where)
{
    char known[256];
    for (int i = 0; o->values[i]; i++)
        if (!strcasecmp(o->values[i], s)) {
            *(int *)dst = i;
            return VG_OK;
        }
    vg_opts_join(o->values, known, sizeof(known));
    return vg_errf(VG_ERR_CONFIG, "%s%s \"%s\" is not one of: %s", where, o->key, s, known);
}

vg_status vg_opts_set(const struct vg_opt *o, void *base, const char *s, const char *where)
{
    char *dst = (char *)base + o->off;
    switch (o->type) {
    case VG_OPT_STR:
        if (strlen(s) >= o->size)
            return vg_errf(VG_ERR_CONFIG, "%s%s is longer than %zu characters", where, o->key,
                           o->size - 1);
        memcpy(dst, s, strlen(s) + 1);
        return VG_OK;
    case VG_OPT_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "yes") || !strcmp(s, "on") || !strcmp(s, "1"))
            *(int *)dst = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "no") || !strcmp(s, "off") ||
                 !strcmp(s, "0"))
            *(int *)dst = 0;
        else
            return vg_errf(VG_ERR_CONFIG, "%s%s must be true or false, not \"%s\"", where,
                           o->key, s);
        return VG_OK;
    case VG_OPT_INT:
    case VG_OPT_DBL:
        return set_number(o, dst, s, where);
    case VG_OPT_ENUM:
        return set_enum(o, dst, s, where);
    }
    return VG_ERR_INVALID;
}

void vg_opts_defaults(const struct vg_opt *opts, void *base)
{
    for (const struct vg_opt *o = opts; o && o->key; o++) {
        char *dst = (char *)base + o->off;
        const char *d = o->def ? o->def : "";
        if (o->type == VG_OPT_STR) {
            snprintf(dst, o->size, "%s", d);
        } else if (!*d) {
            if (o->type == VG_OPT_DBL)
                *(double *)dst = 0;
            else
                *(int *)dst = 0;
        } else if (vg_opts_set(o, base, d, "default ") != VG_OK) {
            /* A table bug, not a user error: fail loudly in tests. */
            fprintf(stderr, "vigil: bad default for %s: %s\n", o->key, vg_err_detail());
            abort();
        }
    }
}

static const struct vg_opt *find(const struct vg_opt *opts, const char *key)
{
    for (const struct vg_opt *o = opts; o && o->key; o++)
        if (!strcmp(o->key, key))
            return o;
    return NULL;
}

vg_status vg_opts_bind_pair(const struct vg_opt *a, void *abase, const struct vg_opt *b,
                            void *bbase, const struct vg_ynode *map, const char *file,
                            const char *where)
{
    char at[160];
    if (!map)
        return VG_OK;
    if (map->type != VG_Y_MAP)
        return vg_errf(VG_ERR_CONFIG, "%s:%d: %s must be a mapping of key: value", file,
                       map->line, where);
    for (size_t i = 0; i < map->n; i++) {
        void *base = abase;
        const struct vg_opt *o = find(a, map->keys[i]);
        const struct vg_ynode *v = map->items[i];
        if (!o && (o = find(b, map->keys[i])))
            base = bbase;
        if (!o)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: unknown key \"%s%s\"", file,
                           map->key_lines[i], where, map->keys[i]);
        for (size_t j = 0; j < i; j++)
            if (!strcmp(map->keys[j], map->keys[i]))
                return vg_errf(VG_ERR_CONFIG, "%s:%d: \"%s%s\" is given twice (also on line %d)",
                               file, map->key_lines[i], where, o->key, map->key_lines[j]);
        if (v->type != VG_Y_SCALAR)
            return vg_errf(VG_ERR_CONFIG, "%s:%d: %s%s must be a single value", file, v->line,
                           where, o->key);
        snprintf(at, sizeof(at), "%s:%d: %s", file, v->line, where);
        vg_status st = vg_opts_set(o, base, v->scalar, at);
        if (st != VG_OK)
            return st;
    }
    return VG_OK;
}

vg_status vg_opts_bind(const struct vg_opt *opts, const struct vg_ynode *map, void *base,
                       const char *file, const char *where)
{
    return vg_opts_bind_pair(opts, base, NULL, NULL, map, file, where);
}

static vg_status read_secret(const char *var, const char *path, char **out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg_errf(VG_ERR_CONFIG, "%s: %s: %s", var, path, strerror(errno));
    char *buf = malloc(SECRET_FILE_MAX + 1);
    size_t n = buf ? fread(buf, 1, SECRET_FILE_MAX + 1, f) : 0;
    fclose(f);
    if (!buf)
        return VG_ERR_NOMEM;
    if (n > SECRET_FILE_MAX) {
        free(buf);
        return vg_errf(VG_ERR_CONFIG, "%s: %s is larger than %d bytes", var, path,
                       SECRET_FILE_MAX);
    }
    while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    *out = buf;
    return VG_OK;
}

vg_status vg_opts_apply_env_prefixed(const struct vg_opt *opts, void *base, const char *prefix)
{
    char var[160], file_var[176];
    for (const struct vg_opt *o = opts; o && o->key; o++) {
        if (!o->env)
            continue;
        snprintf(var, sizeof(var), "%s%s", prefix ? prefix : "", o->env);
        const char *v = getenv(var);
        if (v) {
            vg_status st = vg_opts_set(o, base, v, "environment ");
            if (st != VG_OK)
                return vg_errf(st, "%s: %s", var, vg_err_detail());
        }
        snprintf(file_var, sizeof(file_var), "%s_FILE", var);
        const char *path = getenv(file_var);
        if (path) {
            char *text = NULL;
            vg_status st = read_secret(file_var, path, &text);
            if (st == VG_OK && (st = vg_opts_set(o, base, text, "")) != VG_OK)
                st = vg_errf(st, "%s: %s", file_var, vg_err_detail());
            free(text);
            if (st != VG_OK)
                return st;
        }
    }
    return VG_OK;
}

vg_status vg_opts_apply_env(const struct vg_opt *opts, void *base)
{
    return vg_opts_apply_env_prefixed(opts, base, NULL);
}

vg_status vg_opts_load(const struct vg_opt *opts, const struct vg_ynode *map, void *base,
                       const char *file, const char *where)
{
    vg_opts_defaults(opts, base);
    vg_status st = vg_opts_bind(opts, map, base, file, where);
    return st == VG_OK ? vg_opts_apply_env(opts, base) : st;
}

void vg_opts_format(const struct vg_opt *o, const void *base, char *out, size_t cap)
{
    const char *src = (const char *)base + o->off;
    if (o->sensitive) {
        snprintf(out, cap, "%s=%s", o->key, *src ? "***" : "");
        return;
    }
    switch (o->type) {
    case VG_OPT_STR:
        snprintf(out, cap, "%s=%s", o->key, src);
        break;
    case VG_OPT_INT:
        snprintf(out, cap, "%s=%d", o->key, *(const int *)src);
        break;
    case VG_OPT_BOOL:
        snprintf(out, cap, "%s=%s", o->key, *(const int *)src ? "true" : "false");
        break;
    case VG_OPT_DBL:
        snprintf(out, cap, "%s=%g", o->key, *(const double *)src);
        break;
    case VG_OPT_ENUM:
        snprintf(out, cap, "%s=%s", o->key, o->values[*(const int *)src]);
        break;
    }
}
