/* Amazon Rekognition (JSON 1.1 protocol) with parsed results: labels, faces,
 * face collections. Built on vg_aws_call, so retries, throttling, limits and
 * error translation are the client's; the AWS code and message stay in
 * vg_err_detail(). Every function is thread-safe and writes *out only on
 * VG_OK.
 *
 * Images are the encoded bytes (JPEG or PNG), 1 .. VG_REK_MAX_IMAGE bytes;
 * larger ones fail with VG_ERR_TOO_LARGE before anything is sent.
 *
 * Ownership: each result struct holds one heap array (labels, faces,
 * matches...) that its _free function releases; the _free functions accept
 * NULL and zeroed structs and leave the struct zeroed, so they may be called
 * twice. Strings inside the elements are fixed arrays. */
#ifndef VG_AWS_REKOGNITION_H
#define VG_AWS_REKOGNITION_H

#include <stddef.h>

#include "aws/client.h"
#include "status.h"

#define VG_REK_MAX_IMAGE 5242880    /* raw image bytes Rekognition accepts */
#define VG_REK_MAX_LABELS 256       /* labels kept from one DetectLabels */
#define VG_REK_MAX_INSTANCES 32     /* boxes kept per label */
#define VG_REK_MAX_PARENTS 8        /* parent names kept per label */
#define VG_REK_MAX_FACES 100        /* DetectFaces and IndexFaces return at most 100 */
#define VG_REK_MAX_PAGE 4096        /* search MaxFaces, list MaxResults, ids to delete */
#define VG_REK_NAME_MAX 128         /* label names */
#define VG_REK_ID_MAX 256           /* collection and external image ids: 1..255 chars */
#define VG_REK_FACE_ID_MAX 40       /* face and image ids are UUIDs (36 chars) */
#define VG_REK_VERSION_MAX 16
#define VG_REK_ARN_MAX 2048
#define VG_REK_TOKEN_MAX 256        /* ListFaces NextToken: at most 255 chars */

/* A box as ratios of the image's width and height (Left, Top, Width, Height). */
struct vg_rek_box {
    double x, y, w, h;
};

/* ---- DetectLabels ------------------------------------------------------- */

struct vg_rek_instance {
    struct vg_rek_box box;
    double confidence;
};

struct vg_rek_label {
    char name[VG_REK_NAME_MAX];
    double confidence;                                  /* 0..100 */
    size_t n_instances;                                 /* kept, <= VG_REK_MAX_INSTANCES */
    struct vg_rek_instance instances[VG_REK_MAX_INSTANCES];
    size_t n_parents;                                   /* kept, <= VG_REK_MAX_PARENTS */
    char parents[VG_REK_MAX_PARENTS][VG_REK_NAME_MAX];
};

struct vg_rek_labels {
    size_t n;
    struct vg_rek_label *labels;                        /* owned; vg_rek_labels_free */
    char model_version[VG_REK_VERSION_MAX];
};

/* Labels with confidence >= min_confidence (0..100), highest first, at most
 * max_labels (1..VG_REK_MAX_LABELS; 0 means VG_REK_MAX_LABELS). Instances and
 * parents beyond their maxima are dropped (they come highest confidence first). */
vg_status vg_rek_detect_labels(struct vg_aws *a, const void *image, size_t len,
                               double min_confidence, int max_labels,
                               struct vg_rek_labels *out);
void vg_rek_labels_free(struct vg_rek_labels *l);

/* ---- DetectFaces -------------------------------------------------------- */

struct vg_rek_face_detail {
    struct vg_rek_box box;
    double confidence;                  /* that this is a face, 0..100 */
    double roll, yaw, pitch;            /* pose, degrees */
    double brightness, sharpness;       /* quality, 0..100 */
};

struct vg_rek_faces {
    size_t n;
    struct vg_rek_face_detail *faces;   /* owned; vg_rek_faces_free */
};

/* Faces in the image (the DEFAULT attributes), at most VG_REK_MAX_FACES. */
vg_status vg_rek_detect_faces(struct vg_aws *a, const void *image, size_t len,
                              struct vg_rek_faces *out);
void vg_rek_faces_free(struct vg_rek_faces *f);

/* ---- collections -------------------------------------------------------- */

/* A face stored in a collection. */
struct vg_rek_face {
    char face_id[VG_REK_FACE_ID_MAX];
    char image_id[VG_REK_FACE_ID_MAX];
    char external_image_id[VG_REK_ID_MAX];  /* "" when none was given */
    double confidence;
    struct vg_rek_box box;
};

struct vg_rek_collection {
    char arn[VG_REK_ARN_MAX];               /* as AWS gives it, without "arn:"
                                             * ("aws:rekognition:<region>:..."); ""
                                             * when already_existed */
    char face_model_version[VG_REK_VERSION_MAX]; /* "" when already_existed */
    int already_existed;
};

/* Creates collection id ([a-zA-Z0-9_.-], 1..255 chars). A collection that
 * already exists is not an error: VG_OK with already_existed = 1 (then the
 * ARN and model version are not known), so services can call this at every
 * start. */
vg_status vg_rek_create_collection(struct vg_aws *a, const char *id,
                                   struct vg_rek_collection *out);

struct vg_rek_indexed {
    size_t n;
    struct vg_rek_face *faces;              /* owned; vg_rek_indexed_free */
    size_t n_unindexed;                     /* faces detected but not indexed */
    char face_model_version[VG_REK_VERSION_MAX];
};

/* Indexes up to max_faces (1..VG_REK_MAX_FACES) faces of the image under
 * external_image_id ([a-zA-Z0-9_.:-], 1..255 chars; NULL for none). An image
 * without faces gives VG_OK with n = 0. */
vg_status vg_rek_index_faces(struct vg_aws *a, const char *collection, const void *image,
                             size_t len, const char *external_image_id, int max_faces,
                             struct vg_rek_indexed *out);
void vg_rek_indexed_free(struct vg_rek_indexed *x);

struct vg_rek_match {
    struct vg_rek_face face;
    double similarity;                      /* 0..100 */
};

struct vg_rek_search {
    int face_found;                         /* 0: the image has no face; nothing else set */
    struct vg_rek_box searched_box;         /* the (largest) face that was searched */
    double searched_confidence;
    size_t n;
    struct vg_rek_match *matches;           /* owned; vg_rek_search_free; best first */
    char face_model_version[VG_REK_VERSION_MAX];
};

/* Faces of the collection like the largest face in the image, similarity >=
 * threshold (0..100), at most max_faces (1..VG_REK_MAX_PAGE). An image with
 * no face (InvalidParameterException "There are no faces in the image") is
 * VG_OK with face_found = 0, n = 0. */
vg_status vg_rek_search_faces_by_image(struct vg_aws *a, const char *collection,
                                       const void *image, size_t len, double threshold,
                                       int max_faces, struct vg_rek_search *out);
void vg_rek_search_free(struct vg_rek_search *s);

struct vg_rek_face_list {
    size_t n;
    struct vg_rek_face *faces;              /* owned; vg_rek_face_list_free */
};

/* One page of the collection's faces, at most max_results (1..VG_REK_MAX_PAGE).
 * next_token: NULL, or a VG_REK_TOKEN_MAX buffer holding "" for the first page
 * or the token of the previous call; on VG_OK it receives the next page's
 * token, "" after the last page. */
vg_status vg_rek_list_faces(struct vg_aws *a, const char *collection, int max_results,
                            char *next_token, struct vg_rek_face_list *out);
void vg_rek_face_list_free(struct vg_rek_face_list *l);

struct vg_rek_deleted {
    size_t n;
    char (*face_ids)[VG_REK_FACE_ID_MAX];   /* owned; vg_rek_deleted_free */
    size_t n_unsuccessful;                  /* ids the service could not delete */
};

/* Deletes faces (1..VG_REK_MAX_PAGE ids, each a face id UUID) from the
 * collection; ids that were not in it are simply not in out->face_ids. */
vg_status vg_rek_delete_faces(struct vg_aws *a, const char *collection,
                              const char *const *face_ids, size_t n,
                              struct vg_rek_deleted *out);
void vg_rek_deleted_free(struct vg_rek_deleted *d);

#endif
