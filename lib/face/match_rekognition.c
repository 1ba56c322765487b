/* Matcher "rekognition": Amazon Rekognition face collections. A face crop is
 * answered by SearchFacesByImage; the best FaceMatch's Face.ExternalImageId
 * is the person, its FaceId the face, Similarity / 100 the similarity.
 * Enrolment is IndexFaces with ExternalImageId = the person, one face per
 * image. Signing, retries (throttling included), rate limits and the 5 MB
 * image check belong to lib/aws; this file turns collections into vigil's
 * people.
 *
 * Keys, under matchers.rekognition:
 *   collection            ""   the collection id; "" takes faces.collection
 *                              ("vigil-faces"), the one vigilctl has always used
 *   face_match_threshold  80   FaceMatchThreshold in PERCENT (Rekognition's own
 *                              default), 0..100: below it a face is unknown
 *   max_faces             1    MaxFaces of SearchFacesByImage, 1..4096; only
 *                              the best is used, more only cost response bytes
 *
 * Results: no face in the crop (InvalidParameterException "There are no faces
 * in the image") and no FaceMatches are both a normal miss (matched 0). A
 * collection that does not exist is VG_ERR_NOT_FOUND naming it (the caller
 * counts the error and publishes the face unmatched); AWS errors keep lib/aws's
 * "<api>: <Code>: <message>" detail. FaceMatches without an ExternalImageId
 * (faces indexed by other tools) name nobody and are skipped.
 *
 * People: vigil's person id is the ExternalImageId, so a name must be what
 * AWS allows there ([a-zA-Z0-9_.:-]) and fit vigil's ids (at most
 * VG_FACE_ID_MAX - 1 = 63 characters, less than AWS's 255).
 *
 * Enrolment replaces: the person's earlier faces (found with ListFaces, which
 * cannot filter by ExternalImageId, so the whole collection is paged through)
 * are deleted only after every new image was indexed; when one image fails
 * (no face, several faces, an AWS error) the faces indexed by this call are
 * deleted again and the earlier ones stay. A collection that does not exist
 * is created (CreateCollection: the operator role has it, the facematch role
 * only has SearchFacesByImage, so match never creates anything). An image in
 * which Rekognition sees several faces is refused: IndexFaces with MaxFaces 1
 * would index the largest, which need not be the person being enrolled.
 * QualityFilter is Rekognition's default, AUTO.
 *
 * Every op is safe to call from several threads: the state is read-only after
 * init and the AWS client is thread-safe. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "aws/aws_config.h"
#include "aws/client.h"
#include "aws/rekognition.h"
#include "face/matcher.h"
#include "log.h"

#define LIST_PAGE 1000              /* ListFaces MaxResults */
#define LIST_MAX 100000             /* faces a listing holds before it gives up */
#define DELETE_BATCH VG_REK_MAX_PAGE

struct rek_settings {
    char collection[128];
    double face_match_threshold;    /* percent */
    int max_faces;
};

static const struct vg_opt rek_opts[] = {
    VG_OPT_STR_("collection", struct rek_settings, collection, "", NULL, 0,
                "collection id; empty: faces.collection"),
    VG_OPT_DBL_("face_match_threshold", struct rek_settings, face_match_threshold, 0, 100, "80",
                "FaceMatchThreshold in percent (80 = similarity 0.80)"),
    VG_OPT_INT_("max_faces", struct rek_settings, max_faces, 1, VG_REK_MAX_PAGE, "1",
                "SearchFacesByImage MaxFaces"),
    VG_OPT_END,
};

struct rek_state {
    const struct rek_settings *s;
    char collection[128];
    struct vg_aws *aws;
};

/* Face ids, grown as ListFaces pages come in. */
struct ids {
    char (*id)[VG_REK_FACE_ID_MAX];
    size_t n, cap;
};

/* ---- names ---------------------------------------------------------------- */

static int id_char(char c, int colon)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '.' || c == '-' || (colon && c == ':');
}

static int valid_id(const char *s, size_t max, int colon)
{
    size_t n = strlen(s);
    if (n == 0 || n > max)
        return 0;
    for (; *s; s++)
        if (!id_char(*s, colon))
            return 0;
    return 1;
}

/* An ExternalImageId already known to fit a vigil id. */
static void copy_person(char dst[VG_FACE_ID_MAX], const char *ext)
{
    size_t n = strnlen(ext, VG_FACE_ID_MAX - 1);
    memcpy(dst, ext, n);
    dst[n] = '\0';
}

static vg_status check_person(const char *person)
{
    if (!person || !valid_id(person, VG_FACE_ID_MAX - 1, 1))
        return vg_errf(VG_ERR_INVALID, "rekognition: person name \"%.64s\" is not allowed: it "
                       "becomes the face's ExternalImageId, so it may only hold letters, digits "
                       "and _ . - : (1..%d characters)", person ? person : "",
                       VG_FACE_ID_MAX - 1);
    return VG_OK;
}

/* ---- collection errors ------------------------------------------------------- */

static int collection_missing(vg_status st)
{
    return st == VG_ERR_NOT_FOUND && !strcmp(vg_aws_last_error_code(), "ResourceNotFoundException");
}

static vg_status missing_error(const struct rek_state *r)
{
    return vg_errf(VG_ERR_NOT_FOUND, "rekognition: collection \"%s\" does not exist in %s "
                   "(enrolling a person creates it: vigilctl faces add; or vigilctl faces "
                   "create-collection)", r->collection, vg_aws_region(r->aws));
}

/* ---- listing ------------------------------------------------------------------ */

typedef vg_status (*face_fn)(const struct vg_rek_face *f, void *ctx);

/* Every face of the collection, page by page. A missing collection is
 * left for the caller to tell by collection_missing(). */
static vg_status each_face(struct rek_state *r, face_fn fn, void *ctx)
{
    char token[VG_REK_TOKEN_MAX] = "";
    vg_status st;
    do {
        struct vg_rek_face_list page = {0};
        if ((st = vg_rek_list_faces(r->aws, r->collection, LIST_PAGE, token, &page)) != VG_OK)
            return st;
        for (size_t i = 0; st == VG_OK && i < page.n; i++)
            st = fn(&page.faces[i], ctx);
        vg_rek_face_list_free(&page);
    } while (st == VG_OK && token[0]);
    return st;
}

static vg_status ids_add(struct ids *ids, const char *id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 16;
        if (cap > LIST_MAX)
            cap = LIST_MAX;
        if (ids->n >= cap)
            return vg_errf(VG_ERR_TOO_LARGE, "rekognition: more than %d faces", LIST_MAX);
        void *p = realloc(ids->id, cap * sizeof(*ids->id));
        if (!p)
            return vg_errf(VG_ERR_NOMEM, "rekognition: no memory for %zu face ids", cap);
        ids->id = p;
        ids->cap = cap;
    }
    snprintf(ids->id[ids->n++], VG_REK_FACE_ID_MAX, "%s", id);
    return VG_OK;
}

struct person_ctx {
    const char *person;
    struct ids *ids;
};

static vg_status add_if_person(const struct vg_rek_face *f, void *ctx)
{
    struct person_ctx *p = ctx;
    return strcmp(f->external_image_id, p->person) ? VG_OK : ids_add(p->ids, f->face_id);
}

static vg_status person_faces(struct rek_state *r, const char *person, struct ids *out)
{
    struct person_ctx ctx = {person, out};
    return each_face(r, add_if_person, &ctx);
}

/* DeleteFaces in batches. */
static vg_status delete_ids(struct rek_state *r, const struct ids *ids)
{
    const char *batch[DELETE_BATCH];
    for (size_t at = 0; at < ids->n;) {
        size_t k = 0;
        for (; k < DELETE_BATCH && at + k < ids->n; k++)
            batch[k] = ids->id[at + k];
        struct vg_rek_deleted d = {0};
        vg_status st = vg_rek_delete_faces(r->aws, r->collection, batch, k, &d);
        vg_rek_deleted_free(&d);
        if (st != VG_OK)
            return collection_missing(st) ? missing_error(r) : st;
        at += k;
    }
    return VG_OK;
}

/* ---- match -------------------------------------------------------------------- */

static vg_status rek_match(void *state, const struct vg_face_image *img,
                           struct vg_face_match *out)
{
    struct rek_state *r = state;
    struct vg_rek_search res = {0};
    struct vg_face_match m = {0};
    if (!img || !img->jpeg || img->jpeg_len == 0)
        return vg_errf(VG_ERR_INVALID, "rekognition needs the face crop's JPEG");
    vg_status st = vg_rek_search_faces_by_image(r->aws, r->collection, img->jpeg, img->jpeg_len,
                                                r->s->face_match_threshold, r->s->max_faces,
                                                &res);
    if (st != VG_OK)
        return collection_missing(st) ? missing_error(r) : st;
    /* Best first; the first one that names somebody decides. */
    for (size_t i = 0; i < res.n && !m.matched; i++) {
        const struct vg_rek_match *fm = &res.matches[i];
        if (i == 0)
            m.similarity = (float)(fm->similarity / 100);
        if (!fm->face.external_image_id[0])
            continue;
        if (strlen(fm->face.external_image_id) >= VG_FACE_ID_MAX) {
            st = vg_errf(VG_ERR_DECODE, "rekognition: face %s of collection \"%s\" has an "
                         "ExternalImageId longer than %d characters (\"%.40s...\"): not a "
                         "vigil person", fm->face.face_id, r->collection, VG_FACE_ID_MAX - 1,
                         fm->face.external_image_id);
            break;
        }
        m.matched = 1;
        m.similarity = (float)(fm->similarity / 100);
        copy_person(m.person_id, fm->face.external_image_id);
        snprintf(m.face_id, sizeof(m.face_id), "%s", fm->face.face_id);
    }
    vg_rek_search_free(&res);
    if (st == VG_OK)
        *out = m;
    return st;
}

/* ---- enrol -------------------------------------------------------------------- */

/* One image's face into added; the image must show exactly one face. */
static vg_status index_one(struct rek_state *r, const char *person,
                           const struct vg_face_image *img, size_t i, struct ids *added)
{
    struct vg_rek_indexed x = {0};
    if (!img->jpeg || img->jpeg_len == 0)
        return vg_errf(VG_ERR_INVALID, "rekognition: image %zu is empty", i + 1);
    vg_status st = vg_rek_index_faces(r->aws, r->collection, img->jpeg, img->jpeg_len, person,
                                      1, &x);
    if (st == VG_OK && x.n > 0)
        st = ids_add(added, x.faces[0].face_id);
    if (st == VG_OK && x.n == 0)
        st = vg_errf(VG_ERR_INVALID, "rekognition: image %zu: no face Rekognition could index "
                     "(none found, or too small, blurred or dark for its quality filter)", i + 1);
    else if (st == VG_OK && x.n_unindexed > 0)
        st = vg_errf(VG_ERR_INVALID, "rekognition: image %zu shows more than one face (%zu "
                     "more besides the largest); enrol from images of %s alone", i + 1,
                     x.n_unindexed, person);
    else if (st != VG_OK && collection_missing(st))
        st = missing_error(r);
    vg_rek_indexed_free(&x);
    return st;
}

/* The person's current faces; a missing collection is created (empty). */
static vg_status old_faces(struct rek_state *r, const char *person, struct ids *old)
{
    vg_status st = person_faces(r, person, old);
    if (!collection_missing(st))
        return st;
    struct vg_rek_collection c = {0};
    if ((st = vg_rek_create_collection(r->aws, r->collection, &c)) != VG_OK)
        return vg_errf(st, "rekognition: collection \"%s\" does not exist and could not be "
                       "created (create it with vigilctl faces create-collection, with "
                       "rekognition:CreateCollection allowed): %s", r->collection,
                       vg_err_detail());
    VG_INFO("face.collection_created", NULL, "rekognition: created collection %s (%s)",
            r->collection, c.arn);
    return VG_OK;
}

static vg_status rek_enrol(void *state, const char *person, const struct vg_face_image *imgs,
                           size_t n)
{
    struct rek_state *r = state;
    struct ids old = {0}, added = {0};
    vg_status st = check_person(person);
    if (st == VG_OK && (n == 0 || n > VG_FACE_MAX_IMAGES))
        st = vg_errf(VG_ERR_INVALID, "rekognition: %zu images; enrol from 1..%d", n,
                     VG_FACE_MAX_IMAGES);
    if (st == VG_OK)
        st = old_faces(r, person, &old);
    for (size_t i = 0; st == VG_OK && i < n; i++)
        st = index_one(r, person, &imgs[i], i, &added);
    if (st != VG_OK && added.n > 0) {
        /* Undo this call's faces; the error to report is the first one. */
        char detail[1024];
        snprintf(detail, sizeof(detail), "%s", vg_err_detail());
        if (delete_ids(r, &added) != VG_OK)
            VG_WARN("face.enrol_undo_failed", NULL, "rekognition: %zu faces of %s indexed "
                    "before the failure stay in %s: %s", added.n, person, r->collection,
                    vg_err_detail());
        vg_errf(st, "%s", detail);
    }
    if (st == VG_OK && (st = delete_ids(r, &old)) != VG_OK)
        st = vg_errf(st, "rekognition: %s's %zu new faces are indexed, but the %zu earlier ones "
                     "could not be deleted (enrol again to replace them): %s", person, added.n,
                     old.n, vg_err_detail());
    free(old.id);
    free(added.id);
    return st;
}

/* ---- list and remove -------------------------------------------------------------- */

struct list_ctx {
    struct vg_face_entry *e;
    size_t n, cap;
};

static vg_status add_entry(const struct vg_rek_face *f, void *ctx)
{
    struct list_ctx *l = ctx;
    if (strlen(f->external_image_id) >= VG_FACE_ID_MAX) {
        VG_WARN("face.list_skipped", NULL, "rekognition: face %s: ExternalImageId longer than "
                "%d characters is not a vigil person", f->face_id, VG_FACE_ID_MAX - 1);
        return VG_OK;
    }
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        if (l->n >= LIST_MAX)
            return vg_errf(VG_ERR_TOO_LARGE, "rekognition: more than %d faces to list",
                           LIST_MAX);
        void *p = realloc(l->e, cap * sizeof(*l->e));
        if (!p)
            return vg_errf(VG_ERR_NOMEM, "rekognition: no memory for %zu faces", cap);
        l->e = p;
        l->cap = cap;
    }
    struct vg_face_entry *e = &l->e[l->n++];
    copy_person(e->person_id, f->external_image_id);
    snprintf(e->face_id, sizeof(e->face_id), "%s", f->face_id);
    return VG_OK;
}

static vg_status rek_list(void *state, struct vg_face_entry **out, size_t *n)
{
    struct list_ctx l = {0};
    vg_status st = each_face(state, add_entry, &l);
    if (st != VG_OK) {
        free(l.e);
        return collection_missing(st) ? missing_error(state) : st;
    }
    *out = l.e;
    *n = l.n;
    return VG_OK;
}

static vg_status rek_remove(void *state, const char *person)
{
    struct rek_state *r = state;
    struct ids ids = {0};
    vg_status st = check_person(person);
    if (st == VG_OK)
        st = person_faces(r, person, &ids);
    if (collection_missing(st))
        st = missing_error(r);
    if (st == VG_OK && ids.n == 0)
        st = vg_errf(VG_ERR_NOT_FOUND, "rekognition: no faces of %s in collection \"%s\"",
                     person, r->collection);
    if (st == VG_OK)
        st = delete_ids(r, &ids);
    free(ids.id);
    return st;
}

/* ---- the matcher -------------------------------------------------------------------- */

static vg_status rek_check(const void *settings, const char *where)
{
    const struct rek_settings *s = settings;
    if (s->collection[0] && !valid_id(s->collection, sizeof(s->collection) - 1, 0))
        return vg_errf(VG_ERR_CONFIG, "%s.collection \"%.64s\" may only hold letters, digits "
                       "and _ . -", where, s->collection);
    return VG_OK;
}

static vg_status rek_init(void **state, const void *settings, const struct vg_face_env *env)
{
    const struct rek_settings *s = settings;
    const char *coll = s->collection[0] ? s->collection : env->cfg->faces.collection;
    if (!valid_id(coll, sizeof(((struct rek_state *)0)->collection) - 1, 0))
        return vg_errf(VG_ERR_CONFIG, "faces.collection \"%.64s\" is not a Rekognition "
                       "collection id (letters, digits and _ . -, 1..127 characters)", coll);
    struct rek_state *r = calloc(1, sizeof(*r));
    if (!r)
        return vg_errf(VG_ERR_NOMEM, "no memory for the rekognition matcher");
    r->s = s;
    snprintf(r->collection, sizeof(r->collection), "%s", coll);
    vg_status st = vg_aws_from_config(&r->aws, env->cfg);
    if (st != VG_OK) {
        free(r);
        return st;
    }
    *state = r;
    return VG_OK;
}

static void rek_cleanup(void *state)
{
    struct rek_state *r = state;
    if (!r)
        return;
    vg_aws_destroy(r->aws);
    free(r);
}

const struct vg_face_matcher_ops vg_face_rekognition = {
    .name = "rekognition",
    .caps = VG_FACE_CAP_REMOTE,
    .opts = rek_opts,
    .settings_size = sizeof(struct rek_settings),
    .check = rek_check,
    .init = rek_init,
    .match = rek_match,
    .enrol = rek_enrol,
    .list = rek_list,
    .remove = rek_remove,
    .cleanup = rek_cleanup,
};
