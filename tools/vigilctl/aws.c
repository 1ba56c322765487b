/* vigilctl aws whoami, vigilctl faces create-collection | index | list:
 * the operator's AWS commands (seed 002's first two workshop steps). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_config.h"
#include "aws/dynamodb.h"
#include "aws/rekognition.h"
#include "aws/sts.h"
#include "ctl.h"

#define MAX_IMAGE_FILE (VG_REK_MAX_IMAGE + 1)
#define MAX_PROFILE_FIELDS 32

static int fail(const char *what)
{
    fprintf(stderr, "vigilctl %s: %s\n", what, vg_err_detail());
    return 1;
}

static int cmd_whoami(struct ctl *c, struct vg_aws *aws)
{
    struct vg_sts_identity id;
    struct vg_aws_creds creds;
    if (vg_aws_creds_get(vg_aws_credentials(aws), &creds) != VG_OK)
        return fail("aws whoami");
    if (vg_sts_get_caller_identity(aws, &id) != VG_OK)
        return fail("aws whoami");
    printf("{\"account\":\"%s\",\"arn\":\"%s\",\"user_id\":\"%s\",\"region\":\"%s\","
           "\"credentials\":\"%s\"}\n", id.account, id.arn, id.user_id, vg_aws_region(aws),
           creds.source);
    return 0;
}

static int cmd_create_collection(struct ctl *c, struct vg_aws *aws, const char *name)
{
    struct vg_rek_collection col;
    if (vg_rek_create_collection(aws, name, &col) != VG_OK)
        return fail("faces create-collection");
    if (col.already_existed)
        printf("{\"collection\":\"%s\",\"created\":false}\n", name);
    else
        printf("{\"collection\":\"%s\",\"created\":true,\"arn\":\"%s\","
               "\"face_model_version\":\"%s\"}\n", name, col.arn, col.face_model_version);
    return 0;
}

static vg_status read_image(const char *path, uint8_t **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg_errf(VG_ERR_IO, "%s: %s", path, strerror(errno));
    uint8_t *buf = malloc(MAX_IMAGE_FILE);
    size_t n = buf ? fread(buf, 1, MAX_IMAGE_FILE, f) : 0;
    fclose(f);
    if (!buf)
        return VG_ERR_NOMEM;
    if (n >= MAX_IMAGE_FILE) {
        free(buf);
        return vg_errf(VG_ERR_TOO_LARGE, "%s: larger than Rekognition's %d bytes", path,
                       VG_REK_MAX_IMAGE);
    }
    *out = buf;
    *len = n;
    return VG_OK;
}

/* The profile item: FaceId, ExternalImageId, and each key=value given. */
static vg_status profile_item(const char *face_id, const char *external_id, char **fields,
                              int n, json_t **out)
{
    json_t *item = json_object();
    vg_status st = item ? VG_OK : VG_ERR_NOMEM;
    if (st == VG_OK)
        st = vg_ddb_set_s(item, "FaceId", face_id);
    if (st == VG_OK)
        st = vg_ddb_set_s(item, "ExternalImageId", external_id);
    for (int i = 0; st == VG_OK && i < n; i++) {
        char *eq = strchr(fields[i], '=');
        if (!eq || eq == fields[i]) {
            st = vg_errf(VG_ERR_INVALID, "--profile %s: expected key=value", fields[i]);
            break;
        }
        *eq = '\0';
        if (!strcmp(fields[i], "FaceId"))
            st = vg_errf(VG_ERR_INVALID, "--profile: FaceId is set from the indexed face");
        else
            st = vg_ddb_set_s(item, fields[i], eq + 1);
        *eq = '=';
    }
    if (st != VG_OK) {
        json_decref(item);
        return st;
    }
    *out = item;
    return VG_OK;
}

struct index_args {
    const char *collection, *image, *external_id, *table;
    char *profile[MAX_PROFILE_FIELDS];
    int n_profile;
};

static int cmd_index(struct vg_aws *aws, const struct index_args *a)
{
    uint8_t *img = NULL;
    size_t len = 0;
    struct vg_rek_indexed idx = {0};
    json_t *item = NULL;
    int rc = 1;
    if (read_image(a->image, &img, &len) != VG_OK ||
        vg_rek_index_faces(aws, a->collection, img, len, a->external_id, 1, &idx) != VG_OK) {
        rc = fail("faces index");
        goto out;
    }
    if (idx.n == 0) {
        fprintf(stderr, "vigilctl faces index: no face found in %s (%zu unindexed)\n",
                a->image, idx.n_unindexed);
        goto out;
    }
    if (profile_item(idx.faces[0].face_id, a->external_id, (char **)a->profile, a->n_profile,
                     &item) != VG_OK ||
        vg_ddb_put_item(aws, a->table, item) != VG_OK) {
        fprintf(stderr, "vigilctl faces index: face %s indexed, but its profile was not "
                "stored in %s\n", idx.faces[0].face_id, a->table);
        rc = fail("faces index");
        goto out;
    }
    printf("{\"face_id\":\"%s\",\"external_image_id\":\"%s\",\"collection\":\"%s\","
           "\"profile_table\":\"%s\",\"confidence\":%.2f}\n", idx.faces[0].face_id,
           a->external_id, a->collection, a->table, idx.faces[0].confidence);
    rc = 0;
out:
    json_decref(item);
    vg_rek_indexed_free(&idx);
    free(img);
    return rc;
}

static int cmd_list(struct vg_aws *aws, const char *collection)
{
    char token[VG_REK_TOKEN_MAX] = "";
    do {
        struct vg_rek_face_list page;
        if (vg_rek_list_faces(aws, collection, 1000, token, &page) != VG_OK)
            return fail("faces list");
        for (size_t i = 0; i < page.n; i++)
            printf("{\"face_id\":\"%s\",\"external_image_id\":\"%s\",\"image_id\":\"%s\","
                   "\"confidence\":%.2f}\n", page.faces[i].face_id,
                   page.faces[i].external_image_id, page.faces[i].image_id,
                   page.faces[i].confidence);
        vg_rek_face_list_free(&page);
    } while (token[0]);
    return 0;
}

static int cmd_profile(struct vg_aws *aws, const char *table, const char *face_id)
{
    json_t *key = json_object(), *item = NULL;
    int rc = 1;
    if (!key || vg_ddb_set_s(key, "FaceId", face_id) != VG_OK ||
        vg_ddb_get_item(aws, table, key, 1, &item) != VG_OK) {
        rc = fail("faces profile");
        goto out;
    }
    /* Plain JSON for people and scripts: {"FaceId":"...","Bio":"..."} */
    json_t *plain = json_object();
    const char *name;
    json_t *attr;
    json_object_foreach(item, name, attr) {
        const char *v = vg_ddb_get_s(item, name);
        json_object_set_new(plain, name, v ? json_string(v) : json_deep_copy(attr));
    }
    char *text = json_dumps(plain, JSON_COMPACT | JSON_SORT_KEYS);
    if (text)
        printf("%s\n", text);
    free(text);
    json_decref(plain);
    rc = 0;
out:
    json_decref(item);
    json_decref(key);
    return rc;
}

static int faces_command(struct ctl *c, struct vg_aws *aws, int argc, char **argv)
{
    static const struct option opts[] = {
        {"collection", required_argument, NULL, 'c'}, {"image", required_argument, NULL, 'i'},
        {"external-id", required_argument, NULL, 'e'}, {"profile", required_argument, NULL, 'p'},
        {"table", required_argument, NULL, 't'}, {NULL, 0, NULL, 0},
    };
    struct index_args a = {.collection = c->cfg.faces.collection,
                           .table = c->cfg.faces.profile_table};
    const char *sub = argc > 1 ? argv[1] : "";
    int ch;
    argc--, argv++;     /* parse after the subcommand; 0 restarts glibc's getopt */
    optind = 0;
    while ((ch = getopt_long(argc, argv, "c:i:e:p:t:", opts, NULL)) != -1) {
        switch (ch) {
        case 'c': a.collection = optarg; break;
        case 'i': a.image = optarg; break;
        case 'e': a.external_id = optarg; break;
        case 't': a.table = optarg; break;
        case 'p':
            if (a.n_profile == MAX_PROFILE_FIELDS) {
                fprintf(stderr, "vigilctl faces: at most %d --profile\n", MAX_PROFILE_FIELDS);
                return 2;
            }
            a.profile[a.n_profile++] = optarg;
            break;
        default: return 2;
        }
    }
    if (!strcmp(sub, "create-collection"))
        return cmd_create_collection(c, aws, optind < argc ? argv[optind] : a.collection);
    if (!strcmp(sub, "create-table")) {
        const char *table = optind < argc ? argv[optind] : a.table;
        if (vg_ddb_create_table(aws, table, "FaceId", "S", NULL, NULL, 0) != VG_OK)
            return fail("faces create-table");
        printf("{\"profile_table\":\"%s\",\"status\":\"ACTIVE\"}\n", table);
        return 0;
    }
    if (!strcmp(sub, "list"))
        return cmd_list(aws, a.collection);
    if (!strcmp(sub, "profile") && optind < argc)
        return cmd_profile(aws, a.table, argv[optind]);
    if (!strcmp(sub, "index")) {
        if (!a.image || !a.external_id) {
            fprintf(stderr, "usage: vigilctl faces index --image FILE --external-id NAME "
                    "[--collection C] [--table T] [--profile key=value ...]\n");
            return 2;
        }
        return cmd_index(aws, &a);
    }
    fprintf(stderr, "usage: vigilctl faces create-collection [NAME] | create-table [NAME] | "
            "index ... | list [--collection C] | profile FACE_ID [--table T]\n");
    return 2;
}

int ctl_cmd_aws(struct ctl *c, int argc, char **argv)
{
    struct vg_aws *aws = NULL;
    int rc = 2;
    int is_faces = !strcmp(argv[0], "faces");
    if (!is_faces && (argc < 2 || strcmp(argv[1], "whoami"))) {
        fprintf(stderr, "usage: vigilctl aws whoami\n");
        return 2;
    }
    if (vg_aws_from_config(&aws, &c->cfg) != VG_OK)
        return fail(argv[0]);
    rc = is_faces ? faces_command(c, aws, argc, argv) : cmd_whoami(c, aws);
    vg_aws_destroy(aws);
    return rc;
}
