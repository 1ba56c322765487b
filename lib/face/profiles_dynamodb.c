/* Profiles in DynamoDB, as seed 002 keeps them: the table faces.profile_table
 * has one item per enrolled face, keyed by FaceId (the matcher's face id),
 * with ExternalImageId (the person) and any string attributes (Bio,
 * display_name, song, ...). A match is looked up by its face id. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_config.h"
#include "aws/dynamodb.h"
#include "face/profiles.h"

struct dp {
    struct vg_aws *aws;
    char table[128];
};

static vg_status dp_init(void **state, const struct vg_face_env *env)
{
    struct dp *s = calloc(1, sizeof(*s));
    if (!s)
        return VG_ERR_NOMEM;
    snprintf(s->table, sizeof(s->table), "%s", env->cfg->faces.profile_table);
    vg_status st = vg_aws_from_config(&s->aws, env->cfg);
    if (st != VG_OK) {
        free(s);
        return st;
    }
    *state = s;
    return VG_OK;
}

static json_t *face_key(const char *face_id)
{
    json_t *k = json_object();
    if (k && vg_ddb_set_s(k, "FaceId", face_id) != VG_OK) {
        json_decref(k);
        k = NULL;
    }
    return k;
}

static vg_status dp_get(void *state, const char *person, const char *face_id,
                        struct vg_profile *out)
{
    struct dp *s = state;
    json_t *item = NULL, *k = face_key(face_id && *face_id ? face_id : person);
    const char *name;
    json_t *v;
    memset(out, 0, sizeof(*out));
    if (!k)
        return VG_ERR_NOMEM;
    vg_status st = vg_ddb_get_item(s->aws, s->table, k, 0, &item);
    json_decref(k);
    if (st != VG_OK)
        return st;
    json_object_foreach(item, name, v) {
        const char *text = vg_ddb_get_s(item, name);
        if (text && strcmp(name, "FaceId") && vg_profile_set(out, name, text) != VG_OK)
            break;
    }
    json_decref(item);
    return VG_OK;
}

static vg_status dp_put(void *state, const char *person, const char *const *face_ids, size_t n,
                        const struct vg_profile *p)
{
    struct dp *s = state;
    vg_status st = VG_OK;
    for (size_t i = 0; st == VG_OK && i < n; i++) {
        json_t *item = face_key(face_ids[i]);
        if (!item)
            return VG_ERR_NOMEM;
        st = vg_ddb_set_s(item, "ExternalImageId", person);
        for (size_t f = 0; st == VG_OK && f < p->n; f++)
            st = vg_ddb_set_s(item, p->key[f], p->value[f]);
        if (st == VG_OK)
            st = vg_ddb_put_item(s->aws, s->table, item);
        json_decref(item);
    }
    return st;
}

static vg_status dp_remove(void *state, const char *person, const char *const *face_ids,
                           size_t n)
{
    struct dp *s = state;
    vg_status st = VG_OK;
    (void)person;
    for (size_t i = 0; st == VG_OK && i < n; i++) {
        json_t *k = face_key(face_ids[i]);
        if (!k)
            return VG_ERR_NOMEM;
        st = vg_ddb_delete_item(s->aws, s->table, k);
        json_decref(k);
    }
    return st;
}

static void dp_cleanup(void *state)
{
    struct dp *s = state;
    if (!s)
        return;
    vg_aws_destroy(s->aws);
    free(s);
}

const struct vg_profile_store_ops vg_profiles_dynamodb = {
    .name = "dynamodb",
    .init = dp_init,
    .get = dp_get,
    .put = dp_put,
    .remove = dp_remove,
    .cleanup = dp_cleanup,
};
