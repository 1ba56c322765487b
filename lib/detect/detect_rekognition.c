/* Backend "rekognition": Amazon Rekognition DetectLabels on the frame's JPEG
 * (no pixels needed), and DetectFaces for face boxes. Signing, retries,
 * throttling, client-side rate limits and the 5 MB image check belong to
 * lib/aws; this file turns Rekognition's vocabulary into vigil's labels.
 *
 * Keys, under detectors.rekognition:
 *   max_labels      123   MaxLabels, 1..256 (seed 004's rekog_max_labels)
 *   min_confidence  50    MinConfidence in PERCENT, 0..100, as Rekognition takes
 *                         it (seed 004's rekog_min_conf). vigil's own confidences
 *                         (watch lists, filters, labels) are 0..1: 50 here is 0.50
 *                         there. Instances below it are dropped too.
 *   faces           auto  auto: DetectFaces when dispatch wants faces and the labels
 *                         hold a person (no second paid call for a frame with only a
 *                         car); on: whenever dispatch wants faces; off: never (the
 *                         dispatch's local face finder crops faces then).
 *
 * Labels: a Label with Instances gives one vigil label per instance, with the
 * instance's box and confidence; a Label without instances is a whole-image
 * label (box all 0) with the label's confidence. The raw name is kept; parents
 * go to vg_label.parents (at most VG_LABEL_PARENTS: synonyms first, then the
 * parents that name a category, then the rest in Rekognition's order).
 * Labels past VG_DETECT_MAX_LABELS are dropped; Rekognition sends the most
 * confident first. The whole image is sent: motion regions are not used.
 *
 * Synonyms: label model 3.0 reports "Person" with the alias "Human" where
 * older models reported both labels, and seed 004's watch list names "Human".
 * lib/aws/rekognition.c does not return Aliases, so the synonyms are this
 * table's: Person <-> Human.
 *
 * Categories (case-insensitive; the name first, then each parent in order):
 *   person   Person Human People Man Woman Boy Girl Child Baby Adult
 *   pet      Pet Dog Cat Puppy Kitten
 *   vehicle  Vehicle Car Automobile Truck Pickup Truck Van Bus Motorcycle Bicycle
 *            Scooter Moped Suv
 *   package  Package Parcel Box Cardboard Carton
 *   face     Face
 *   other    everything else ("Toy", "Yard", "Outdoors")
 * So "Sedan" (parents Car, Vehicle, Transportation) is a vehicle and a dog
 * breed (parents Dog, Pet, Animal...) a pet. Not mapped, on purpose:
 * Animal, Mammal, Bird, Canine, Feline, Wildlife: a fox, a deer or the
 * pigeons are animals, not someone's pet, and alerting on them as "pet" would
 * be noise; a watch list that wants them names "Animal", which still matches
 * as a raw name or a parent. Transportation: it is also the parent of boats,
 * aircraft and trains. Bag, Backpack, Handbag, Luggage: Rekognition has a
 * real Package label, so bags stay raw names (seed 004 watches "Bag" by name).
 *
 * Deadline: no call starts past req->deadline_us. The AWS client has no
 * per-call timeout, so each state's client caps every attempt at
 * min(aws.timeout_ms, dispatch.detect_timeout_ms); with retries a call can
 * still run up to aws.max_attempts such attempts plus backoff, and the chain
 * then counts the stage as timed out.
 *
 * One AWS client is shared by the worker threads' states (the client is
 * thread-safe, and its token buckets and retry budget must see the whole
 * process to keep it inside the account's quota). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/client.h"
#include "aws/aws_config.h"
#include "aws/rekognition.h"
#include "detect/detector.h"
#include "log.h"
#include "timeutil.h"

enum faces_mode { FACES_AUTO, FACES_ON, FACES_OFF };
static const char *const faces_modes[] = {"auto", "on", "off", NULL};

struct rek_settings {
    int max_labels;
    double min_confidence;      /* percent */
    int faces;                  /* enum faces_mode */
};

static const struct vg_opt rek_opts[] = {
    VG_OPT_INT_("max_labels", struct rek_settings, max_labels, 1, VG_REK_MAX_LABELS, "123",
                "DetectLabels MaxLabels (seed 004: rekog_max_labels)"),
    VG_OPT_DBL_("min_confidence", struct rek_settings, min_confidence, 0, 100, "50",
                "DetectLabels MinConfidence in percent (50 = vigil's 0.50)"),
    VG_OPT_ENUM_("faces", struct rek_settings, faces, faces_modes, "auto",
                 "DetectFaces: auto (when a person was found), on, off"),
    VG_OPT_END,
};

struct name_category {
    const char *name;
    enum vg_category cat;
};

/* The table documented at the top of this file. */
static const struct name_category categories[] = {
    {"Person", VG_CAT_PERSON},   {"Human", VG_CAT_PERSON},     {"People", VG_CAT_PERSON},
    {"Man", VG_CAT_PERSON},      {"Woman", VG_CAT_PERSON},     {"Boy", VG_CAT_PERSON},
    {"Girl", VG_CAT_PERSON},     {"Child", VG_CAT_PERSON},     {"Baby", VG_CAT_PERSON},
    {"Adult", VG_CAT_PERSON},
    {"Pet", VG_CAT_PET},         {"Dog", VG_CAT_PET},          {"Cat", VG_CAT_PET},
    {"Puppy", VG_CAT_PET},       {"Kitten", VG_CAT_PET},
    {"Vehicle", VG_CAT_VEHICLE}, {"Car", VG_CAT_VEHICLE},      {"Automobile", VG_CAT_VEHICLE},
    {"Truck", VG_CAT_VEHICLE},   {"Pickup Truck", VG_CAT_VEHICLE}, {"Van", VG_CAT_VEHICLE},
    {"Bus", VG_CAT_VEHICLE},     {"Motorcycle", VG_CAT_VEHICLE}, {"Bicycle", VG_CAT_VEHICLE},
    {"Scooter", VG_CAT_VEHICLE}, {"Moped", VG_CAT_VEHICLE},    {"Suv", VG_CAT_VEHICLE},
    {"Package", VG_CAT_PACKAGE}, {"Parcel", VG_CAT_PACKAGE},   {"Box", VG_CAT_PACKAGE},
    {"Cardboard", VG_CAT_PACKAGE}, {"Carton", VG_CAT_PACKAGE},
    {"Face", VG_CAT_FACE},
    {NULL, VG_CAT_OTHER},
};

/* Synonyms Rekognition reports as Aliases (see the top of this file). */
static const char *const synonyms[][2] = {
    {"Person", "Human"},
    {"Human", "Person"},
};

struct rek_state {
    const struct rek_settings *s;
    struct vg_aws *aws;
    int shared;                 /* aws is the process-wide client */
};

/* The process-wide client, made from the first configuration that asks. */
static struct {
    pthread_mutex_t lock;
    struct vg_aws *aws;
    const struct vg_config *cfg;
    int users;
} shared_client = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* ---- the client -------------------------------------------------------------- */

/* vg_aws_from_config with each attempt capped at the detector deadline: a
 * hung Rekognition must not hold a dispatch worker for aws.timeout_ms
 * (10 s by default) when the frame is stale after 2. */
static vg_status make_client(const struct vg_config *cfg, struct vg_aws **out)
{
    return vg_aws_from_config_capped(out, cfg, cfg->dispatch.detect_timeout_ms);
}

/* The shared client for cfg; a private one when another configuration (a
 * test's second engine) already holds the shared one. */
static vg_status client_get(struct rek_state *r, const struct vg_config *cfg)
{
    vg_status st = VG_OK;
    pthread_mutex_lock(&shared_client.lock);
    if (!shared_client.aws && (st = make_client(cfg, &shared_client.aws)) == VG_OK)
        shared_client.cfg = cfg;
    if (st == VG_OK && shared_client.cfg == cfg) {
        shared_client.users++;
        r->aws = shared_client.aws;
        r->shared = 1;
    }
    pthread_mutex_unlock(&shared_client.lock);
    if (st == VG_OK && !r->shared)
        st = make_client(cfg, &r->aws);
    return st;
}

static void client_put(struct rek_state *r)
{
    if (!r->shared) {
        vg_aws_destroy(r->aws);
        return;
    }
    pthread_mutex_lock(&shared_client.lock);
    if (--shared_client.users == 0) {
        vg_aws_destroy(shared_client.aws);
        shared_client.aws = NULL;
        shared_client.cfg = NULL;
    }
    pthread_mutex_unlock(&shared_client.lock);
}

/* ---- labels ------------------------------------------------------------------ */

static int category_of(const char *name)
{
    for (const struct name_category *c = categories; c->name; c++)
        if (!strcasecmp(c->name, name))
            return (int)c->cat;
    return -1;
}

static enum vg_category label_category(const struct vg_rek_label *l)
{
    int cat = category_of(l->name);
    for (size_t i = 0; cat < 0 && i < l->n_parents; i++)
        cat = category_of(l->parents[i]);
    return cat < 0 ? VG_CAT_OTHER : (enum vg_category)cat;
}

static void add_parent(struct vg_label *dst, const char *name)
{
    if (dst->n_parents >= VG_LABEL_PARENTS || !strcasecmp(dst->raw, name))
        return;
    for (int i = 0; i < dst->n_parents; i++)
        if (!strcasecmp(dst->parents[i], name))
            return;
    snprintf(dst->parents[dst->n_parents++], VG_LABEL_NAME_MAX, "%s", name);
}

/* Synonyms, then the parents that name a category (what watch lists name),
 * then the rest: Rekognition may give more parents than vigil keeps. */
static void copy_parents(struct vg_label *dst, const struct vg_rek_label *l)
{
    for (size_t i = 0; i < sizeof(synonyms) / sizeof(synonyms[0]); i++)
        if (!strcasecmp(l->name, synonyms[i][0]))
            add_parent(dst, synonyms[i][1]);
    for (size_t i = 0; i < l->n_parents; i++)
        if (category_of(l->parents[i]) >= 0)
            add_parent(dst, l->parents[i]);
    for (size_t i = 0; i < l->n_parents; i++)
        add_parent(dst, l->parents[i]);
}

static void add_label(struct vg_detect_res *res, const struct vg_rek_label *l,
                      enum vg_category cat, double percent, const struct vg_box *box)
{
    struct vg_label *dst = vg_detect_res_add(res, l->name, cat, (float)(percent / 100), box);
    if (dst)
        copy_parents(dst, l);
}

static void map_labels(const struct rek_settings *s, const struct vg_rek_labels *in,
                       struct vg_detect_res *res)
{
    for (size_t i = 0; i < in->n; i++) {
        const struct vg_rek_label *l = &in->labels[i];
        enum vg_category cat = label_category(l);
        if (l->n_instances == 0)
            add_label(res, l, cat, l->confidence, NULL);
        for (size_t k = 0; k < l->n_instances; k++) {
            const struct vg_rek_instance *ins = &l->instances[k];
            struct vg_box b = {(float)ins->box.x, (float)ins->box.y, (float)ins->box.w,
                               (float)ins->box.h};
            /* An instance without a box left is not an object we can place. */
            if (ins->confidence >= s->min_confidence && vg_box_clip(&b))
                add_label(res, l, cat, ins->confidence, &b);
        }
    }
}

/* ---- faces ------------------------------------------------------------------- */

static int has_person(const struct vg_detect_res *res)
{
    for (size_t i = 0; i < res->n; i++)
        if (res->labels[i].category == VG_CAT_PERSON)
            return 1;
    return 0;
}

static int wants_faces(const struct rek_settings *s, const struct vg_detect_req *req,
                       const struct vg_detect_res *res)
{
    if (!req->want_faces || s->faces == FACES_OFF)
        return 0;
    return s->faces == FACES_ON || has_person(res);
}

static vg_status add_faces(struct rek_state *r, const struct vg_detect_req *req,
                           struct vg_detect_res *res)
{
    struct vg_rek_faces f = {0};
    vg_status st = vg_rek_detect_faces(r->aws, req->img->jpeg, req->img->jpeg_len, &f);
    for (size_t i = 0; st == VG_OK && i < f.n && res->n_faces < VG_DETECT_MAX_FACES; i++) {
        const struct vg_rek_face_detail *d = &f.faces[i];
        struct vg_face_box *out = &res->faces[res->n_faces];
        out->box = (struct vg_box){(float)d->box.x, (float)d->box.y, (float)d->box.w,
                                   (float)d->box.h};
        out->confidence = d->confidence <= 0 ? 0 : d->confidence >= 100 ? 1
                                                  : (float)(d->confidence / 100);
        if (vg_box_clip(&out->box))
            res->n_faces++;
    }
    vg_rek_faces_free(&f);
    return st;
}

/* ---- the backend -------------------------------------------------------------- */

static vg_status check_deadline(const struct vg_detect_req *req, const char *what)
{
    if (req->deadline_us && vg_now_us() >= req->deadline_us)
        return vg_errf(VG_ERR_TIMEOUT, "deadline passed before %s was sent", what);
    return VG_OK;
}

static vg_status detect(void *state, const struct vg_detect_req *req, struct vg_detect_res *res)
{
    struct rek_state *r = state;
    struct vg_rek_labels labels = {0};
    vg_status st;

    if (!req->img || !req->img->jpeg || req->img->jpeg_len == 0)
        return vg_errf(VG_ERR_INVALID, "rekognition needs the frame's JPEG");
    if ((st = check_deadline(req, "DetectLabels")) != VG_OK)
        return st;
    st = vg_rek_detect_labels(r->aws, req->img->jpeg, req->img->jpeg_len, r->s->min_confidence,
                              r->s->max_labels, &labels);
    if (st != VG_OK)
        goto out;
    map_labels(r->s, &labels, res);
    /* The labels stand without face boxes (dispatch's own face finder can
     * still crop faces): no time left or a DetectFaces failure only means no
     * face boxes from here. */
    if (!wants_faces(r->s, req, res) || check_deadline(req, "DetectFaces") != VG_OK)
        goto out;
    if (add_faces(r, req, res) == VG_OK)
        res->faces_searched = 1;
    else
        VG_WARN("detector.faces_failed", req->cam ? req->cam->id : NULL, "rekognition: %s",
                vg_err_detail());
out:
    vg_rek_labels_free(&labels);
    return st;
}

static vg_status init(void **state, const void *settings, const struct vg_config *cfg)
{
    struct rek_state *r = calloc(1, sizeof(*r));
    if (!r)
        return vg_errf(VG_ERR_NOMEM, "no memory for the rekognition state");
    r->s = settings;
    vg_status st = client_get(r, cfg);
    if (st != VG_OK) {
        free(r);
        return st;
    }
    *state = r;
    return VG_OK;
}

static void cleanup(void *state)
{
    struct rek_state *r = state;
    if (!r)
        return;
    client_put(r);
    free(r);
}

const struct vg_detector_backend vg_detector_rekognition = {
    .name = "rekognition",
    .summary = "Amazon Rekognition DetectLabels (and DetectFaces for face boxes)",
    .caps = VG_DETECT_REMOTE | VG_DETECT_FACES,
    .opts = rek_opts,
    .opts_size = sizeof(struct rek_settings),
    .init = init,
    .detect = detect,
    .cleanup = cleanup,
};
