/* Amazon Rekognition over vg_aws_call. See rekognition.h. */
#include "aws/rekognition.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <openssl/evp.h>

#define FACE_ID_LEN 36

/* ---- checks and the request --------------------------------------------- */

static vg_status check_image(const char *api, const void *image, size_t len)
{
    if (!image || len == 0)
        return vg_errf(VG_ERR_INVALID, "%s: empty image", api);
    if (len > VG_REK_MAX_IMAGE)
        return vg_errf(VG_ERR_TOO_LARGE, "%s: image is %zu bytes; Rekognition accepts at most %d",
                       api, len, VG_REK_MAX_IMAGE);
    return VG_OK;
}

/* Collection ids: [a-zA-Z0-9_.\-]+; external image ids also ':'. 1..255 chars. */
static vg_status check_id(const char *api, const char *what, const char *id, int colon)
{
    if (!id || !*id)
        return vg_errf(VG_ERR_INVALID, "%s: empty %s", api, what);
    size_t len = strlen(id);
    if (len >= VG_REK_ID_MAX)
        return vg_errf(VG_ERR_INVALID, "%s: %s is %zu chars; at most %d", api, what, len,
                       VG_REK_ID_MAX - 1);
    for (const char *p = id; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-' || (colon && c == ':')))
            return vg_errf(VG_ERR_INVALID, "%s: %s \"%.64s\" may only hold letters, digits and "
                           "\"_.-%s\"", api, what, id, colon ? ":" : "");
    }
    return VG_OK;
}

/* Face ids are lower-case UUIDs. */
static vg_status check_face_id(const char *api, const char *id)
{
    int ok = id && strlen(id) == FACE_ID_LEN;
    for (int i = 0; ok && i < FACE_ID_LEN; i++) {
        char c = id[i];
        ok = (i == 8 || i == 13 || i == 18 || i == 23) ? c == '-'
                                                        : (c >= '0' && c <= '9') ||
                                                              (c >= 'a' && c <= 'f');
    }
    if (!ok)
        return vg_errf(VG_ERR_INVALID, "%s: face id \"%.64s\" is not a UUID", api, id ? id : "");
    return VG_OK;
}

/* Base64 of the image, NUL-terminated; the caller frees it. */
static vg_status encode_image(const char *api, const void *image, size_t len, char **out)
{
    vg_status st = check_image(api, image, len);
    if (st != VG_OK)
        return st;
    char *b64 = malloc(4 * ((len + 2) / 3) + 1);
    if (!b64)
        return vg_errf(VG_ERR_NOMEM, "%s: no memory for the image", api);
    EVP_EncodeBlock((unsigned char *)b64, image, (int)len);
    *out = b64;
    return VG_OK;
}

/* Sends req (consumed, may be NULL when building it failed) as operation op;
 * *resp gets the answer's JSON object. */
static vg_status call(struct vg_aws *a, const char *op, json_t *req, json_t **resp)
{
    char api[64], target[96];
    snprintf(api, sizeof(api), "rekognition.%s", op);
    snprintf(target, sizeof(target), "RekognitionService.%s", op);
    struct vg_aws_request q = {
        .api = api, .service = "rekognition", .endpoint_id = "REKOGNITION", .method = "POST",
        .path = "/", .content_type = "application/x-amz-json-1.1", .target = target,
    };
    return vg_aws_call_json(a, &q, req, JSON_COMPACT, resp);
}

/* ---- parsing ------------------------------------------------------------ */

static double num(const json_t *o, const char *key)
{
    return json_number_value(json_object_get(o, key));
}

/* String member key into out ("" when absent); fails when it does not fit. */
static vg_status str(const char *api, const json_t *o, const char *key, char *out, size_t cap)
{
    const json_t *v = json_object_get(o, key);
    out[0] = '\0';
    if (!v)
        return VG_OK;
    if (!json_is_string(v))
        return vg_errf(VG_ERR_DECODE, "%s: %s is not a string", api, key);
    if (json_string_length(v) >= cap)
        return vg_errf(VG_ERR_DECODE, "%s: %s is %zu chars; at most %zu expected", api, key,
                       json_string_length(v), cap - 1);
    memcpy(out, json_string_value(v), json_string_length(v) + 1);
    return VG_OK;
}

static void box(const json_t *o, struct vg_rek_box *b)
{
    b->x = num(o, "Left");
    b->y = num(o, "Top");
    b->w = num(o, "Width");
    b->h = num(o, "Height");
}

/* An array member (NULL when absent or not an array) and how many of its
 * elements to keep. */
static json_t *array(const json_t *o, const char *key, size_t max, size_t *n)
{
    json_t *v = json_object_get(o, key);
    if (!json_is_array(v)) {
        *n = 0;
        return NULL;
    }
    *n = json_array_size(v) < max ? json_array_size(v) : max;
    return v;
}

/* calloc of n elements; n == 0 gives NULL, which is not a failure. */
static vg_status alloc(const char *api, size_t n, size_t size, void **out)
{
    *out = NULL;
    if (n && !(*out = calloc(n, size)))
        return vg_errf(VG_ERR_NOMEM, "%s: no memory for %zu results", api, n);
    return VG_OK;
}

/* A Face object of a collection (FaceId required). */
static vg_status face(const char *api, const json_t *o, struct vg_rek_face *f)
{
    vg_status st;
    if (!json_is_object(o) || !json_is_string(json_object_get(o, "FaceId")))
        return vg_errf(VG_ERR_DECODE, "%s: face without a FaceId", api);
    if ((st = str(api, o, "FaceId", f->face_id, sizeof(f->face_id))) != VG_OK ||
        (st = str(api, o, "ImageId", f->image_id, sizeof(f->image_id))) != VG_OK ||
        (st = str(api, o, "ExternalImageId", f->external_image_id,
                  sizeof(f->external_image_id))) != VG_OK)
        return st;
    f->confidence = num(o, "Confidence");
    box(json_object_get(o, "BoundingBox"), &f->box);
    return VG_OK;
}

/* ---- DetectLabels ------------------------------------------------------- */

static vg_status parse_label(const char *api, const json_t *o, struct vg_rek_label *l)
{
    size_t n;
    vg_status st = str(api, o, "Name", l->name, sizeof(l->name));
    if (st != VG_OK)
        return st;
    l->confidence = num(o, "Confidence");
    json_t *inst = array(o, "Instances", VG_REK_MAX_INSTANCES, &n);
    for (l->n_instances = 0; l->n_instances < n; l->n_instances++) {
        json_t *e = json_array_get(inst, l->n_instances);
        box(json_object_get(e, "BoundingBox"), &l->instances[l->n_instances].box);
        l->instances[l->n_instances].confidence = num(e, "Confidence");
    }
    json_t *par = array(o, "Parents", VG_REK_MAX_PARENTS, &n);
    for (l->n_parents = 0; l->n_parents < n; l->n_parents++)
        if ((st = str(api, json_array_get(par, l->n_parents), "Name", l->parents[l->n_parents],
                      VG_REK_NAME_MAX)) != VG_OK)
            return st;
    return VG_OK;
}

vg_status vg_rek_detect_labels(struct vg_aws *a, const void *image, size_t len,
                               double min_confidence, int max_labels,
                               struct vg_rek_labels *out)
{
    static const char api[] = "rekognition.DetectLabels";
    struct vg_rek_labels res = {0};
    json_t *resp = NULL;
    char *b64 = NULL;
    size_t n;
    vg_status st;

    if (!(min_confidence >= 0 && min_confidence <= 100))
        return vg_errf(VG_ERR_INVALID, "%s: min_confidence %g outside 0..100", api,
                       min_confidence);
    if (max_labels == 0)
        max_labels = VG_REK_MAX_LABELS;
    if (max_labels < 1 || max_labels > VG_REK_MAX_LABELS)
        return vg_errf(VG_ERR_INVALID, "%s: max_labels %d outside 1..%d", api, max_labels,
                       VG_REK_MAX_LABELS);
    if ((st = encode_image(api, image, len, &b64)) != VG_OK)
        return st;
    json_t *req = json_pack("{s:{s:s}, s:i, s:f}", "Image", "Bytes", b64, "MaxLabels",
                            max_labels, "MinConfidence", min_confidence);
    free(b64);
    if ((st = call(a, "DetectLabels", req, &resp)) != VG_OK)
        goto out;
    json_t *labels = array(resp, "Labels", (size_t)max_labels, &n);
    if ((st = alloc(api, n, sizeof(*res.labels), (void **)&res.labels)) != VG_OK)
        goto out;
    for (res.n = 0; res.n < n; res.n++)
        if ((st = parse_label(api, json_array_get(labels, res.n), &res.labels[res.n])) != VG_OK)
            goto out;
    if ((st = str(api, resp, "LabelModelVersion", res.model_version,
                  sizeof(res.model_version))) != VG_OK)
        goto out;
    *out = res;
    res.labels = NULL;
out:
    free(res.labels);
    json_decref(resp);
    return st;
}

void vg_rek_labels_free(struct vg_rek_labels *l)
{
    if (!l)
        return;
    free(l->labels);
    memset(l, 0, sizeof(*l));
}

/* ---- DetectFaces -------------------------------------------------------- */

vg_status vg_rek_detect_faces(struct vg_aws *a, const void *image, size_t len,
                              struct vg_rek_faces *out)
{
    static const char api[] = "rekognition.DetectFaces";
    struct vg_rek_faces res = {0};
    json_t *resp = NULL;
    char *b64 = NULL;
    size_t n;
    vg_status st;

    if ((st = encode_image(api, image, len, &b64)) != VG_OK)
        return st;
    json_t *req = json_pack("{s:{s:s}, s:[s]}", "Image", "Bytes", b64, "Attributes", "DEFAULT");
    free(b64);
    if ((st = call(a, "DetectFaces", req, &resp)) != VG_OK)
        goto out;
    json_t *faces = array(resp, "FaceDetails", VG_REK_MAX_FACES, &n);
    if ((st = alloc(api, n, sizeof(*res.faces), (void **)&res.faces)) != VG_OK)
        goto out;
    for (res.n = 0; res.n < n; res.n++) {
        json_t *e = json_array_get(faces, res.n);
        struct vg_rek_face_detail *f = &res.faces[res.n];
        json_t *pose = json_object_get(e, "Pose"), *quality = json_object_get(e, "Quality");
        box(json_object_get(e, "BoundingBox"), &f->box);
        f->confidence = num(e, "Confidence");
        f->roll = num(pose, "Roll");
        f->yaw = num(pose, "Yaw");
        f->pitch = num(pose, "Pitch");
        f->brightness = num(quality, "Brightness");
        f->sharpness = num(quality, "Sharpness");
    }
    *out = res;
    res.faces = NULL;
out:
    free(res.faces);
    json_decref(resp);
    return st;
}

void vg_rek_faces_free(struct vg_rek_faces *f)
{
    if (!f)
        return;
    free(f->faces);
    memset(f, 0, sizeof(*f));
}

/* ---- CreateCollection --------------------------------------------------- */

vg_status vg_rek_create_collection(struct vg_aws *a, const char *id,
                                   struct vg_rek_collection *out)
{
    static const char api[] = "rekognition.CreateCollection";
    struct vg_rek_collection res = {0};
    json_t *resp = NULL;
    vg_status st = check_id(api, "collection id", id, 0);
    if (st != VG_OK)
        return st;
    st = call(a, "CreateCollection", json_pack("{s:s}", "CollectionId", id), &resp);
    if (st != VG_OK) {
        if (st != VG_ERR_AWS ||
            strcmp(vg_aws_last_error_code(), "ResourceAlreadyExistsException"))
            return st;
        vg_err_clear();
        res.already_existed = 1;
        st = VG_OK;
    } else if ((st = str(api, resp, "CollectionArn", res.arn, sizeof(res.arn))) != VG_OK ||
               (st = str(api, resp, "FaceModelVersion", res.face_model_version,
                         sizeof(res.face_model_version))) != VG_OK) {
        goto out;
    }
    *out = res;
out:
    json_decref(resp);
    return st;
}

/* ---- IndexFaces --------------------------------------------------------- */

vg_status vg_rek_index_faces(struct vg_aws *a, const char *collection, const void *image,
                             size_t len, const char *external_image_id, int max_faces,
                             struct vg_rek_indexed *out)
{
    static const char api[] = "rekognition.IndexFaces";
    struct vg_rek_indexed res = {0};
    json_t *resp = NULL;
    char *b64 = NULL;
    size_t n, n_unindexed;
    vg_status st;

    if ((st = check_id(api, "collection id", collection, 0)) != VG_OK ||
        (external_image_id &&
         (st = check_id(api, "external image id", external_image_id, 1)) != VG_OK))
        return st;
    if (max_faces < 1 || max_faces > VG_REK_MAX_FACES)
        return vg_errf(VG_ERR_INVALID, "%s: max_faces %d outside 1..%d", api, max_faces,
                       VG_REK_MAX_FACES);
    if ((st = encode_image(api, image, len, &b64)) != VG_OK)
        return st;
    json_t *req = json_pack("{s:s, s:{s:s}, s:s*, s:i, s:[s]}", "CollectionId", collection,
                            "Image", "Bytes", b64, "ExternalImageId", external_image_id,
                            "MaxFaces", max_faces, "DetectionAttributes", "DEFAULT");
    free(b64);
    if ((st = call(a, "IndexFaces", req, &resp)) != VG_OK)
        goto out;
    json_t *records = array(resp, "FaceRecords", (size_t)max_faces, &n);
    array(resp, "UnindexedFaces", (size_t)-1, &n_unindexed);
    if ((st = alloc(api, n, sizeof(*res.faces), (void **)&res.faces)) != VG_OK)
        goto out;
    for (res.n = 0; res.n < n; res.n++)
        if ((st = face(api, json_object_get(json_array_get(records, res.n), "Face"),
                       &res.faces[res.n])) != VG_OK)
            goto out;
    res.n_unindexed = n_unindexed;
    if ((st = str(api, resp, "FaceModelVersion", res.face_model_version,
                  sizeof(res.face_model_version))) != VG_OK)
        goto out;
    *out = res;
    res.faces = NULL;
out:
    free(res.faces);
    json_decref(resp);
    return st;
}

void vg_rek_indexed_free(struct vg_rek_indexed *x)
{
    if (!x)
        return;
    free(x->faces);
    memset(x, 0, sizeof(*x));
}

/* ---- SearchFacesByImage ------------------------------------------------- */

/* AWS answers an image without a face with InvalidParameterException,
 * "There are no faces in the image. Should be at least 1." */
static int no_face_error(vg_status st)
{
    return st == VG_ERR_AWS && !strcmp(vg_aws_last_error_code(), "InvalidParameterException") &&
           strcasestr(vg_err_detail(), "no face") != NULL;
}

vg_status vg_rek_search_faces_by_image(struct vg_aws *a, const char *collection,
                                       const void *image, size_t len, double threshold,
                                       int max_faces, struct vg_rek_search *out)
{
    static const char api[] = "rekognition.SearchFacesByImage";
    struct vg_rek_search res = {0};
    json_t *resp = NULL;
    char *b64 = NULL;
    size_t n;
    vg_status st;

    if ((st = check_id(api, "collection id", collection, 0)) != VG_OK)
        return st;
    if (!(threshold >= 0 && threshold <= 100))
        return vg_errf(VG_ERR_INVALID, "%s: threshold %g outside 0..100", api, threshold);
    if (max_faces < 1 || max_faces > VG_REK_MAX_PAGE)
        return vg_errf(VG_ERR_INVALID, "%s: max_faces %d outside 1..%d", api, max_faces,
                       VG_REK_MAX_PAGE);
    if ((st = encode_image(api, image, len, &b64)) != VG_OK)
        return st;
    json_t *req = json_pack("{s:s, s:{s:s}, s:i, s:f}", "CollectionId", collection, "Image",
                            "Bytes", b64, "MaxFaces", max_faces, "FaceMatchThreshold",
                            threshold);
    free(b64);
    st = call(a, "SearchFacesByImage", req, &resp);
    if (no_face_error(st)) {
        vg_err_clear();
        *out = res;
        return VG_OK;
    }
    if (st != VG_OK)
        goto out;
    res.face_found = 1;
    box(json_object_get(resp, "SearchedFaceBoundingBox"), &res.searched_box);
    res.searched_confidence = num(resp, "SearchedFaceConfidence");
    json_t *matches = array(resp, "FaceMatches", (size_t)max_faces, &n);
    if ((st = alloc(api, n, sizeof(*res.matches), (void **)&res.matches)) != VG_OK)
        goto out;
    for (res.n = 0; res.n < n; res.n++) {
        json_t *m = json_array_get(matches, res.n);
        res.matches[res.n].similarity = num(m, "Similarity");
        if ((st = face(api, json_object_get(m, "Face"), &res.matches[res.n].face)) != VG_OK)
            goto out;
    }
    if ((st = str(api, resp, "FaceModelVersion", res.face_model_version,
                  sizeof(res.face_model_version))) != VG_OK)
        goto out;
    *out = res;
    res.matches = NULL;
out:
    free(res.matches);
    json_decref(resp);
    return st;
}

void vg_rek_search_free(struct vg_rek_search *s)
{
    if (!s)
        return;
    free(s->matches);
    memset(s, 0, sizeof(*s));
}

/* ---- ListFaces ---------------------------------------------------------- */

vg_status vg_rek_list_faces(struct vg_aws *a, const char *collection, int max_results,
                            char *next_token, struct vg_rek_face_list *out)
{
    static const char api[] = "rekognition.ListFaces";
    struct vg_rek_face_list res = {0};
    char token[VG_REK_TOKEN_MAX];
    json_t *resp = NULL;
    size_t n;
    vg_status st;

    if ((st = check_id(api, "collection id", collection, 0)) != VG_OK)
        return st;
    if (max_results < 1 || max_results > VG_REK_MAX_PAGE)
        return vg_errf(VG_ERR_INVALID, "%s: max_results %d outside 1..%d", api, max_results,
                       VG_REK_MAX_PAGE);
    if (next_token && strnlen(next_token, VG_REK_TOKEN_MAX) >= VG_REK_TOKEN_MAX)
        return vg_errf(VG_ERR_INVALID, "%s: next_token longer than %d", api,
                       VG_REK_TOKEN_MAX - 1);
    json_t *req = json_pack("{s:s, s:i, s:s*}", "CollectionId", collection, "MaxResults",
                            max_results, "NextToken",
                            next_token && *next_token ? next_token : NULL);
    if ((st = call(a, "ListFaces", req, &resp)) != VG_OK)
        goto out;
    if ((st = str(api, resp, "NextToken", token, sizeof(token))) != VG_OK)
        goto out;
    json_t *faces = array(resp, "Faces", (size_t)max_results, &n);
    if ((st = alloc(api, n, sizeof(*res.faces), (void **)&res.faces)) != VG_OK)
        goto out;
    for (res.n = 0; res.n < n; res.n++)
        if ((st = face(api, json_array_get(faces, res.n), &res.faces[res.n])) != VG_OK)
            goto out;
    if (next_token)
        memcpy(next_token, token, strlen(token) + 1);
    *out = res;
    res.faces = NULL;
out:
    free(res.faces);
    json_decref(resp);
    return st;
}

void vg_rek_face_list_free(struct vg_rek_face_list *l)
{
    if (!l)
        return;
    free(l->faces);
    memset(l, 0, sizeof(*l));
}

/* ---- DeleteFaces -------------------------------------------------------- */

static vg_status delete_request(const char *api, const char *collection,
                                const char *const *ids, size_t n, json_t **out)
{
    vg_status st = check_id(api, "collection id", collection, 0);
    if (st != VG_OK)
        return st;
    if (n < 1 || n > VG_REK_MAX_PAGE)
        return vg_errf(VG_ERR_INVALID, "%s: %zu face ids; 1..%d per call", api, n,
                       VG_REK_MAX_PAGE);
    for (size_t i = 0; i < n; i++)
        if ((st = check_face_id(api, ids[i])) != VG_OK)
            return st;
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < n; i++)
        if (json_array_append_new(arr, json_string(ids[i])) != 0) {
            json_decref(arr);
            arr = NULL;
        }
    *out = arr ? json_pack("{s:s, s:o}", "CollectionId", collection, "FaceIds", arr) : NULL;
    return VG_OK;
}

vg_status vg_rek_delete_faces(struct vg_aws *a, const char *collection,
                              const char *const *face_ids, size_t n,
                              struct vg_rek_deleted *out)
{
    static const char api[] = "rekognition.DeleteFaces";
    struct vg_rek_deleted res = {0};
    json_t *req = NULL, *resp = NULL;
    size_t n_del, n_failed;
    vg_status st;

    if ((st = delete_request(api, collection, face_ids, n, &req)) != VG_OK)
        return st;
    if ((st = call(a, "DeleteFaces", req, &resp)) != VG_OK)
        goto out;
    json_t *deleted = array(resp, "DeletedFaces", n, &n_del);
    array(resp, "UnsuccessfulFaceDeletions", (size_t)-1, &n_failed);
    if ((st = alloc(api, n_del, sizeof(*res.face_ids), (void **)&res.face_ids)) != VG_OK)
        goto out;
    for (res.n = 0; res.n < n_del; res.n++) {
        const char *id = json_string_value(json_array_get(deleted, res.n));
        if (!id || strlen(id) >= VG_REK_FACE_ID_MAX) {
            st = vg_errf(VG_ERR_DECODE, "%s: DeletedFaces[%zu] is not a face id", api, res.n);
            goto out;
        }
        memcpy(res.face_ids[res.n], id, strlen(id) + 1);
    }
    res.n_unsuccessful = n_failed;
    *out = res;
    res.face_ids = NULL;
out:
    free(res.face_ids);
    json_decref(resp);
    return st;
}

void vg_rek_deleted_free(struct vg_rek_deleted *d)
{
    if (!d)
        return;
    free(d->face_ids);
    memset(d, 0, sizeof(*d));
}
