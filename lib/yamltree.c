#include "yamltree.h"

#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#define MAX_DEPTH 16
#define MAX_NODES 100000

struct builder {
    yaml_parser_t parser;
    const char *name;
    size_t nodes;
};

static struct vg_ynode *node_new(enum vg_ynode_type type, int line)
{
    struct vg_ynode *n = calloc(1, sizeof(*n));
    if (n) {
        n->type = type;
        n->line = line;
    }
    return n;
}

void vg_yaml_free(struct vg_ynode *n)
{
    if (!n)
        return;
    free(n->scalar);
    for (size_t i = 0; i < n->n; i++) {
        if (n->keys)
            free(n->keys[i]);
        vg_yaml_free(n->items[i]);
    }
    free(n->keys);
    free(n->key_lines);
    free(n->items);
    free(n);
}

/* Append value (and key for maps); takes ownership of both. */
static int node_append(struct vg_ynode *parent, char *key, int key_line, struct vg_ynode *value)
{
    size_t n = parent->n + 1;
    struct vg_ynode **items = realloc(parent->items, n * sizeof(*items));
    if (!items)
        return -1;
    parent->items = items;
    if (parent->type == VG_Y_MAP) {
        char **keys = realloc(parent->keys, n * sizeof(*keys));
        if (!keys)
            return -1;
        parent->keys = keys;
        int *lines = realloc(parent->key_lines, n * sizeof(*lines));
        if (!lines)
            return -1;
        parent->key_lines = lines;
        keys[n - 1] = key;
        lines[n - 1] = key_line;
    }
    items[n - 1] = value;
    parent->n = n;
    return 0;
}

static vg_status parse_node(struct builder *b, yaml_event_t *ev, int depth, struct vg_ynode **out);

static vg_status next_event(struct builder *b, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&b->parser, ev))
        return vg_errf(VG_ERR_CONFIG, "%s:%zu: %s", b->name,
                       b->parser.problem_mark.line + 1,
                       b->parser.problem ? b->parser.problem : "YAML syntax error");
    return VG_OK;
}

static vg_status parse_children(struct builder *b, struct vg_ynode *parent, int depth)
{
    for (;;) {
        yaml_event_t ev;
        vg_status st = next_event(b, &ev);
        if (st != VG_OK)
            return st;
        if (ev.type == YAML_MAPPING_END_EVENT || ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return VG_OK;
        }
        char *key = NULL;
        int key_line = (int)ev.start_mark.line + 1;
        if (parent->type == VG_Y_MAP) {
            if (ev.type != YAML_SCALAR_EVENT) {
                yaml_event_delete(&ev);
                return vg_errf(VG_ERR_CONFIG, "%s:%d: mapping keys must be plain scalars",
                               b->name, key_line);
            }
            key = strdup((const char *)ev.data.scalar.value);
            yaml_event_delete(&ev);
            if (!key)
                return VG_ERR_NOMEM;
            st = next_event(b, &ev);
            if (st != VG_OK) {
                free(key);
                return st;
            }
        }
        struct vg_ynode *child = NULL;
        st = parse_node(b, &ev, depth + 1, &child);
        if (st == VG_OK && node_append(parent, key, key_line, child) != 0)
            st = VG_ERR_NOMEM;
        if (st != VG_OK) {
            free(key);
            vg_yaml_free(child);
            return st;
        }
    }
}

/* ev is the first event of the node; it is consumed. */
static vg_status parse_node(struct builder *b, yaml_event_t *ev, int depth, struct vg_ynode **out)
{
    int line = (int)ev->start_mark.line + 1;
    struct vg_ynode *n = NULL;
    vg_status st = VG_OK;

    if (depth > MAX_DEPTH || ++b->nodes > MAX_NODES) {
        yaml_event_delete(ev);
        return vg_errf(VG_ERR_CONFIG, "%s:%d: document too deep or too large", b->name, line);
    }
    switch (ev->type) {
    case YAML_SCALAR_EVENT:
        n = node_new(VG_Y_SCALAR, line);
        if (n && !(n->scalar = strdup((const char *)ev->data.scalar.value)))
            st = VG_ERR_NOMEM;
        break;
    case YAML_MAPPING_START_EVENT:
    case YAML_SEQUENCE_START_EVENT:
        n = node_new(ev->type == YAML_MAPPING_START_EVENT ? VG_Y_MAP : VG_Y_SEQ, line);
        break;
    case YAML_ALIAS_EVENT:
        st = vg_errf(VG_ERR_CONFIG, "%s:%d: YAML aliases are not supported", b->name, line);
        break;
    default:
        st = vg_errf(VG_ERR_CONFIG, "%s:%d: unexpected YAML event", b->name, line);
        break;
    }
    yaml_event_delete(ev);
    if (st == VG_OK && !n)
        st = VG_ERR_NOMEM;
    if (st == VG_OK && n->type != VG_Y_SCALAR)
        st = parse_children(b, n, depth);
    if (st != VG_OK) {
        vg_yaml_free(n);
        return st;
    }
    *out = n;
    return VG_OK;
}

vg_status vg_yaml_parse(struct vg_ynode **out, const char *name, const char *text, size_t len)
{
    struct builder b = {.name = name};
    struct vg_ynode *root = NULL;
    vg_status st = VG_OK;
    yaml_event_t ev;

    if (!yaml_parser_initialize(&b.parser))
        return VG_ERR_NOMEM;
    yaml_parser_set_input_string(&b.parser, (const unsigned char *)text, len);
    /* Skip STREAM-START and DOCUMENT-START; an empty file is an empty map. */
    for (;;) {
        st = next_event(&b, &ev);
        if (st != VG_OK)
            goto out;
        if (ev.type == YAML_STREAM_START_EVENT || ev.type == YAML_DOCUMENT_START_EVENT) {
            yaml_event_delete(&ev);
            continue;
        }
        break;
    }
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        root = node_new(VG_Y_MAP, 1);
        st = root ? VG_OK : VG_ERR_NOMEM;
        goto out;
    }
    st = parse_node(&b, &ev, 0, &root);
out:
    yaml_parser_delete(&b.parser);
    if (st != VG_OK) {
        vg_yaml_free(root);
        return st;
    }
    *out = root;
    return VG_OK;
}
