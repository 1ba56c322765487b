/* facematch: each FaceCrop in, one FaceMatch out. The configured matcher
 * (lib/face/, facematch.matcher) says who it is; the profile store
 * (facematch.profiles) adds what we know about them. A miss, a crop that
 * fails the quality gates, a matcher or profile store that is down: all are
 * answered with a FaceMatch (unmatched, or matched without a profile),
 * counted and logged, never dropped, so dedupe and outside consumers see
 * every face. `<prefix>.control.faces` (vigilctl after enrolment) makes
 * every replica reload its face library. */
#include "facematch.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "face/matcher.h"
#include "face/profiles.h"
#include "image/jpeg.h"
#include "log.h"
#include "metrics.h"
#include "quality.h"
#include "records.h"
#include "timeutil.h"

#define MAX_CROP_PIXELS (2048 * 2048)

struct fm {
    struct vg_svc *svc;
    const struct vg_config *cfg;
    struct vg_face_matcher *matcher;
    struct vg_profiles *profiles;
    struct vg_jpeg *jpeg;
    struct fm_records *records;     /* NULL: no metadata store reachable at start */
    pthread_mutex_t lock;           /* the matcher: matching vs reloading */
    struct vg_counter *crops, *malformed, *matched, *unknown, *publish_failed, *errors,
        *reloads, *no_profile, *profile_errors, *rejected[FM__REJECTS];
    struct vg_histogram *latency;
};

struct answer {
    struct vg_face_match m;
    struct vg_profile profile;
    int have_profile;
};

static void look_up_profile(struct fm *fm, const char *cam, struct answer *a)
{
    if (!fm->profiles)
        return;
    vg_status st = fm->profiles->ops->get(fm->profiles->state, a->m.person_id, a->m.face_id,
                                          &a->profile);
    if (st == VG_OK) {
        a->have_profile = 1;
        return;
    }
    if (st == VG_ERR_NOT_FOUND) {
        vg_counter_inc(fm->no_profile);
        VG_INFO("profile.missing", cam, "%s has no profile", a->m.person_id);
    } else {
        vg_counter_inc(fm->profile_errors);
        VG_WARN("profile.failed", cam, "%s: %s", a->m.person_id, vg_err_detail());
    }
}

/* Decode (when the matcher wants pixels or a gate needs them), gate, match. */
static void identify(struct fm *fm, const Vigil__V1__FaceCrop *crop, struct answer *a)
{
    const char *cam = crop->header->camera_id;
    const struct vg_face_matcher_ops *ops = fm->matcher->ops;
    struct vg_face_image img = {.jpeg = crop->jpeg.data, .jpeg_len = crop->jpeg.len};
    uint8_t *grey = NULL;
    int remote = (ops->caps & VG_FACE_CAP_REMOTE) != 0;

    if (remote || (ops->caps & VG_FACE_CAP_GREY)) {
        if (vg_jpeg_decode_grey(fm->jpeg, crop->jpeg.data, crop->jpeg.len, MAX_CROP_PIXELS, &grey,
                                &img.width, &img.height) != VG_OK) {
            vg_counter_inc(fm->malformed);
            VG_WARN("face.bad_image", cam, "frame %llu face %u: %s",
                    (unsigned long long)crop->frame_seq, crop->index, vg_err_detail());
            return;
        }
        img.grey = grey;
    }
    if (remote) {
        double sharpness = 0;
        enum fm_reject r = fm_quality(fm->cfg, grey, img.width, img.height, crop->confidence,
                                      &sharpness);
        if (r != FM_OK) {
            vg_counter_inc(fm->rejected[r]);
            VG_DEBUG("face.skipped", cam, "frame %llu face %u: %s (%dx%d, sharpness %.1f)",
                     (unsigned long long)crop->frame_seq, crop->index, fm_reject_name(r),
                     img.width, img.height, sharpness);
            free(grey);
            return;
        }
    }
    pthread_mutex_lock(&fm->lock);
    vg_status st = ops->match(fm->matcher->state, &img, &a->m);
    pthread_mutex_unlock(&fm->lock);
    free(grey);
    if (st != VG_OK) {
        memset(&a->m, 0, sizeof(a->m));
        vg_counter_inc(fm->errors);
        VG_WARN("match.failed", cam, "%s: %s", ops->name, vg_err_detail());
        return;
    }
    if (a->m.matched)
        look_up_profile(fm, cam, a);
}

static void publish(struct fm *fm, const Vigil__V1__FaceCrop *crop, const struct answer *a)
{
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__FaceMatch out = VIGIL__V1__FACE_MATCH__INIT;
    Vigil__V1__FaceMatch__ProfileEntry entries[VG_PROFILE_MAX_FIELDS];
    Vigil__V1__FaceMatch__ProfileEntry *ep[VG_PROFILE_MAX_FIELDS];
    char subj[256];
    const char *name = a->have_profile ? vg_profile_get(&a->profile, "display_name") : NULL;

    vg_header_follow(&hdr, crop->header);
    out.header = &hdr;
    out.frame_seq = crop->frame_seq;
    out.index = crop->index;
    out.matched = a->m.matched;
    out.similarity = a->m.similarity;
    out.matcher = (char *)fm->matcher->ops->name;
    out.box = crop->box;
    out.snapshot_ref = crop->snapshot_ref;
    if (a->m.matched) {
        out.person_id = (char *)a->m.person_id;
        out.face_id = (char *)a->m.face_id;
        out.display_name = (char *)(name && *name ? name : a->m.person_id);
    }
    for (size_t i = 0; a->have_profile && i < a->profile.n; i++) {
        vigil__v1__face_match__profile_entry__init(&entries[i]);
        entries[i].key = (char *)a->profile.key[i];
        entries[i].value = (char *)a->profile.value[i];
        ep[i] = &entries[i];
        out.n_profile = i + 1;
    }
    out.profile = ep;
    vg_subject(subj, sizeof(subj), fm->cfg->prefix, "identities", crop->header->camera_id);
    if (vg_bus_publish(vg_svc_bus(fm->svc), subj, &out.base) != VG_OK) {
        vg_counter_inc(fm->publish_failed);
        VG_WARN("identity.publish_failed", crop->header->camera_id, "%s", vg_err_detail());
        return;
    }
    vg_counter_inc(a->m.matched ? fm->matched : fm->unknown);
    fm_records_identity(fm->records, &out);
    if (a->m.matched)
        VG_INFO("face.matched", crop->header->camera_id, "%s (%.2f) by %s", out.display_name,
                (double)a->m.similarity, out.matcher);
    vg_histogram_observe_us(fm->latency, vg_now_us() - crop->header->capture_ts_us);
}

static void on_face(void *ctx, const char *subject, const void *data, size_t len)
{
    struct fm *fm = ctx;
    struct answer a;
    Vigil__V1__FaceCrop *crop = (Vigil__V1__FaceCrop *)vg_bus_decode(
        vg_svc_bus(fm->svc), &vigil__v1__face_crop__descriptor, subject, data, len,
        fm->malformed);
    if (!crop)
        return;
    vg_counter_inc(fm->crops);
    memset(&a, 0, sizeof(a));
    if (crop->jpeg.len > 0)
        identify(fm, crop, &a);
    publish(fm, crop, &a);
    protobuf_c_message_free_unpacked(&crop->base, NULL);
}

/* Any message on <prefix>.control.faces: the face library changed. */
static void on_control(void *ctx, const char *subject, const void *data, size_t len)
{
    struct fm *fm = ctx;
    (void)data;
    (void)len;
    if (!fm->matcher->ops->reload)
        return;
    pthread_mutex_lock(&fm->lock);
    vg_status st = fm->matcher->ops->reload(fm->matcher->state);
    pthread_mutex_unlock(&fm->lock);
    vg_counter_inc(fm->reloads);
    if (st == VG_OK)
        VG_INFO("faces.reloaded", NULL, "%s: face library reloaded (%s)",
                fm->matcher->ops->name, subject);
    else
        VG_WARN("faces.reload_failed", NULL, "%s: %s", fm->matcher->ops->name, vg_err_detail());
}

static void make_metrics(struct fm *fm)
{
    fm->crops = vg_counter_get("vigil_facematch_crops_total", "Face crops received");
    fm->malformed = vg_counter_get("vigil_facematch_malformed_total",
                                   "Messages or crops that could not be decoded");
    fm->matched = vg_counter_get("vigil_facematch_matched_total", "Faces matched to a person");
    fm->unknown = vg_counter_get("vigil_facematch_unknown_total",
                                 "Faces answered unknown (no match, skipped or failed)");
    fm->publish_failed = vg_counter_get("vigil_facematch_publish_failed_total",
                                        "Identities that could not be published");
    fm->errors = vg_counter_get("vigil_facematch_matcher_errors_total",
                                "Crops the matcher could not answer (answered unknown)");
    fm->reloads = vg_counter_get("vigil_facematch_reloads_total", "Face library reloads");
    fm->no_profile = vg_counter_get("vigil_facematch_profiles_missing_total",
                                    "Matches without a profile");
    fm->profile_errors = vg_counter_get("vigil_facematch_profile_errors_total",
                                        "Profile look-ups that failed (store down)");
    for (int r = FM_TOO_SMALL; r < FM__REJECTS; r++) {
        char labels[48];
        snprintf(labels, sizeof(labels), "reason=\"%s\"", fm_reject_name((enum fm_reject)r));
        fm->rejected[r] = vg_counter_get_labeled("vigil_facematch_skipped_total", labels,
                                                 "Crops not sent to a remote matcher");
    }
    fm->latency = vg_histogram_get("vigil_facematch_latency_seconds",
                                   "Frame capture to identity published");
}

static vg_status fm_check(const struct vg_config *cfg)
{
    return vg_face_matcher_check(cfg);
}

static vg_status fm_init(struct vg_svc *svc, void **state)
{
    char subject[128];
    struct fm *fm = calloc(1, sizeof(*fm));
    if (!fm)
        return VG_ERR_NOMEM;
    *state = fm;
    fm->svc = svc;
    fm->cfg = vg_svc_config(svc);
    pthread_mutex_init(&fm->lock, NULL);
    make_metrics(fm);
    struct vg_face_env env = {.cfg = fm->cfg, .redis = vg_svc_redis(svc)};
    vg_status st = vg_jpeg_create(&fm->jpeg);
    if (st == VG_OK)
        st = vg_face_matcher_open(&fm->matcher, &env);
    if (st == VG_OK)
        st = fm_records_open(&fm->records, fm->cfg);
    if (st != VG_OK)
        return st;
    /* Profiles only matter when someone can be recognised. */
    if (strcmp(fm->matcher->ops->name, "none") && vg_profiles_open(&fm->profiles, &env) != VG_OK)
        VG_WARN("profile.unavailable", NULL, "%s; matches go out without profiles",
                vg_err_detail());
    VG_INFO("facematch.started", NULL, "matcher %s, profiles %s", fm->matcher->ops->name,
            fm->profiles ? fm->profiles->ops->name : "none");
    vg_subject(subject, sizeof(subject), fm->cfg->prefix, "control", "faces");
    if ((st = vg_bus_subscribe(vg_svc_bus(svc), subject, NULL, on_control, fm)) != VG_OK)
        return st;
    vg_subject(subject, sizeof(subject), fm->cfg->prefix, "faces", "*");
    return vg_bus_subscribe(vg_svc_bus(svc), subject, "facematch", on_face, fm);
}

static void fm_fini(struct vg_svc *svc, void *state)
{
    struct fm *fm = state;
    (void)svc;
    if (!fm)
        return;
    vg_face_matcher_close(fm->matcher);
    vg_profiles_close(fm->profiles);
    fm_records_close(fm->records);
    vg_jpeg_destroy(fm->jpeg);
    pthread_mutex_destroy(&fm->lock);
    free(fm);
}

const struct vg_service facematch_service = {
    .name = "facematch",
    .flags = VG_SVC_NEEDS_REDIS,
    .default_http_addr = "127.0.0.1:9103",
    .check = fm_check,
    .init = fm_init,
    .fini = fm_fini,
};
