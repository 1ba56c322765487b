/* A small YAML document tree that keeps each node's line, for config errors. */
#ifndef VG_YAMLTREE_H
#define VG_YAMLTREE_H

#include <stddef.h>

#include "status.h"

enum vg_ynode_type { VG_Y_SCALAR, VG_Y_MAP, VG_Y_SEQ };

struct vg_ynode {
    enum vg_ynode_type type;
    int line;                   /* 1-based */
    char *scalar;               /* VG_Y_SCALAR */
    size_t n;                   /* VG_Y_MAP: pairs; VG_Y_SEQ: items */
    char **keys;                /* VG_Y_MAP */
    int *key_lines;             /* VG_Y_MAP */
    struct vg_ynode **items;    /* values (map) or items (seq) */
};

/* Parse one document. Errors carry "name:line: ..." in the detail. */
vg_status vg_yaml_parse(struct vg_ynode **out, const char *name, const char *text, size_t len);
void vg_yaml_free(struct vg_ynode *n);

#endif
