/* Backend-owned configuration keys (the shape of Mosquitto's plugin options
 * and Redis's static_configs[]): a backend lists its keys in a const table
 * with type, bounds, default, enum values, environment variable and a
 * sensitive flag; the loader binds a YAML map into the backend's own
 * settings struct. Defaults live in the table, not in the services. */
#ifndef VG_OPTS_H
#define VG_OPTS_H

#include <stddef.h>

#include "status.h"

struct vg_ynode;

enum vg_opt_type { VG_OPT_STR, VG_OPT_INT, VG_OPT_DBL, VG_OPT_BOOL, VG_OPT_ENUM };

struct vg_opt {
    const char *key;
    enum vg_opt_type type;
    size_t off;                 /* into the settings struct */
    size_t size;                /* VG_OPT_STR: buffer size */
    double min, max;            /* VG_OPT_INT, VG_OPT_DBL */
    const char *def;            /* default as text ("" / NULL: empty or 0) */
    const char *const *values;  /* VG_OPT_ENUM: NULL-terminated; stored as int index */
    const char *env;            /* environment variable that overrides; NULL: none */
    int sensitive;              /* never printed or logged */
    const char *help;           /* one line, for docs */
};

#define VG_OPT_STR_(k, s, m, d, env, sens, help) \
    {k, VG_OPT_STR, offsetof(s, m), sizeof(((s *)0)->m), 0, 0, d, NULL, env, sens, help}
#define VG_OPT_INT_(k, s, m, lo, hi, d, help) \
    {k, VG_OPT_INT, offsetof(s, m), 0, lo, hi, d, NULL, NULL, 0, help}
#define VG_OPT_DBL_(k, s, m, lo, hi, d, help) \
    {k, VG_OPT_DBL, offsetof(s, m), 0, lo, hi, d, NULL, NULL, 0, help}
#define VG_OPT_BOOL_(k, s, m, d, help) \
    {k, VG_OPT_BOOL, offsetof(s, m), 0, 0, 0, d, NULL, NULL, 0, help}
#define VG_OPT_ENUM_(k, s, m, vals, d, help) \
    {k, VG_OPT_ENUM, offsetof(s, m), 0, 0, 0, d, vals, NULL, 0, help}
#define VG_OPT_END {NULL, VG_OPT_STR, 0, 0, 0, 0, NULL, NULL, NULL, 0, NULL}

/* Write every default into base (which must be zeroed or fully owned). */
void vg_opts_defaults(const struct vg_opt *opts, void *base);

/* Bind a YAML map (NULL: nothing) into base. Unknown keys, wrong types and
 * out-of-range values fail with "file:line: where.key ..." in the detail. */
vg_status vg_opts_bind(const struct vg_opt *opts, const struct vg_ynode *map, void *base,
                       const char *file, const char *where);

/* As vg_opts_bind for a map whose keys belong to one of two tables (a
 * seam's common keys and a backend's own): each key goes to its table. */
vg_status vg_opts_bind_pair(const struct vg_opt *a, void *abase, const struct vg_opt *b,
                            void *bbase, const struct vg_ynode *map, const char *file,
                            const char *where);

/* As vg_opts_apply_env with each row's variable name prefixed
 * ("VIGIL_SINK_HOOK_" + "SECRET"), for backends configured more than once. */
vg_status vg_opts_apply_env_prefixed(const struct vg_opt *opts, void *base, const char *prefix);

/* Apply the rows' environment variables, then the "<env>_FILE" form (a
 * secret read from a file, trailing newline dropped). */
vg_status vg_opts_apply_env(const struct vg_opt *opts, void *base);

/* Defaults, then the map, then the environment. */
vg_status vg_opts_load(const struct vg_opt *opts, const struct vg_ynode *map, void *base,
                       const char *file, const char *where);

/* "key=value" of one row into out, "***" for sensitive ones. */
void vg_opts_format(const struct vg_opt *opt, const void *base, char *out, size_t cap);

/* "a, b, c" of a NULL-terminated list into out (for "not one of" errors). */
void vg_opts_join(const char *const *values, char *out, size_t cap);

/* Parse one scalar for a row (used by bind and env); where names the place. */
vg_status vg_opts_set(const struct vg_opt *opt, void *base, const char *text, const char *where);

#endif
