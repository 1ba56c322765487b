/* Backend "deepstack": the HTTP API that CodeProject.AI Server and DeepStack
 * share. POST {url}/v1/vision/detection with a multipart form (field "image"
 * = the frame's JPEG, "min_confidence", and "api_key" when one is set); the
 * answer is {"success": true, "predictions": [{"label", "confidence", "x_min",
 * "y_min", "x_max", "y_max"}, ...]} in pixels, normalised here by the image
 * size. Face boxes come from POST {url}/v1/vision/face (same predictions
 * without labels). Needs only the JPEG.
 *
 * Keys, under detectors.deepstack:
 *   url             http://127.0.0.1:32168  CodeProject.AI Server's port; DeepStack
 *                   listens on 5000 inside its container, usually published as 80
 *                   (docker -p 80:5000). Environment VIGIL_DEEPSTACK_URL.
 *   api_key         ""     DeepStack's API-KEY, sent as the api_key form field;
 *                   sensitive; VIGIL_DEEPSTACK_API_KEY or VIGIL_DEEPSTACK_API_KEY_FILE.
 *                   CodeProject.AI has no keys and ignores it.
 *   min_confidence  0.45   0..1, sent to the server and applied again here.
 *   timeout_ms      5000   one HTTP call; the time left to the stage's deadline
 *                   caps it further.
 *   faces           auto   auto: /v1/vision/face when dispatch wants faces and a
 *                   person was found; on: whenever dispatch wants faces; off: never.
 *
 * Errors: CodeProject.AI answers failures with HTTP 200 and {"success": false,
 * "error": "..."} (VG_ERR_HTTP with that text); DeepStack uses statuses: 400
 * VG_ERR_INVALID, 401/403 VG_ERR_AUTH (a wrong api_key), 404 VG_ERR_NOT_FOUND
 * (the endpoint's module is not enabled), 5xx VG_ERR_UNAVAILABLE, others
 * VG_ERR_HTTP, each with the body's "error" or an excerpt of it. No answer
 * in time is VG_ERR_TIMEOUT, a refused connection VG_ERR_UNAVAILABLE, an
 * answer over 1 MiB VG_ERR_TOO_LARGE, one that is not the expected JSON
 * VG_ERR_DECODE. A failed face call is a warning: the labels stand.
 *
 * Labels (COCO class names, as both servers' default models use them, and a
 * few names of CodeProject.AI's custom models), case-insensitive:
 *   person   person
 *   pet      cat dog bird horse sheep cow. COCO has no "pet": every animal it
 *            knows that turns up at a house is counted as one (a horse at a farm
 *            door is as worth an alert as a dog); bear, elephant, zebra and
 *            giraffe stay "other". A watch list wanting only dogs names "dog".
 *   vehicle  car truck bus motorcycle bicycle (+ vehicle, van, motorbike)
 *   package  backpack handbag suitcase (+ package): COCO has no parcel; these are
 *            the things left at a door it can see.
 *   other    everything else, raw name kept ("chair", "potted plant").
 * Face predictions are face boxes (res->faces), not labels. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "detect/detector.h"
#include "image/jpeg.h"
#include "curl_body.h"
#include "log.h"
#include "timeutil.h"

#define EXCERPT_MAX 160             /* answer bytes quoted in an error */
#define CONNECT_TIMEOUT_MAX_MS 3000
#define DETECTION_PATH "/v1/vision/detection"
#define FACE_PATH "/v1/vision/face"

enum faces_mode { FACES_AUTO, FACES_ON, FACES_OFF };
static const char *const faces_modes[] = {"auto", "on", "off", NULL};

struct ds_settings {
    char url[VG_URL_MAX];
    char api_key[256];
    double min_confidence;
    int timeout_ms;
    int faces;                  /* enum faces_mode */
};

static const struct vg_opt ds_opts[] = {
    VG_OPT_STR_("url", struct ds_settings, url, "http://127.0.0.1:32168", "VIGIL_DEEPSTACK_URL",
                0, "server base URL (CodeProject.AI: 32168; DeepStack: 80 or 5000)"),
    VG_OPT_STR_("api_key", struct ds_settings, api_key, "", "VIGIL_DEEPSTACK_API_KEY", 1,
                "DeepStack API key, sent as the api_key form field"),
    VG_OPT_DBL_("min_confidence", struct ds_settings, min_confidence, 0, 1, "0.45",
                "smallest prediction confidence kept, 0..1"),
    VG_OPT_INT_("timeout_ms", struct ds_settings, timeout_ms, 100, 600000, "5000",
                "one HTTP call, also capped by the stage's deadline"),
    VG_OPT_ENUM_("faces", struct ds_settings, faces, faces_modes, "auto",
                 "/v1/vision/face: auto (when a person was found), on, off"),
    VG_OPT_END,
};

struct name_category {
    const char *name;
    enum vg_category cat;
};

/* The table documented at the top of this file. */
static const struct name_category categories[] = {
    {"person", VG_CAT_PERSON},
    {"cat", VG_CAT_PET},            {"dog", VG_CAT_PET},          {"bird", VG_CAT_PET},
    {"horse", VG_CAT_PET},          {"sheep", VG_CAT_PET},        {"cow", VG_CAT_PET},
    {"car", VG_CAT_VEHICLE},        {"truck", VG_CAT_VEHICLE},    {"bus", VG_CAT_VEHICLE},
    {"motorcycle", VG_CAT_VEHICLE}, {"bicycle", VG_CAT_VEHICLE},  {"vehicle", VG_CAT_VEHICLE},
    {"van", VG_CAT_VEHICLE},        {"motorbike", VG_CAT_VEHICLE},
    {"backpack", VG_CAT_PACKAGE},   {"handbag", VG_CAT_PACKAGE},  {"suitcase", VG_CAT_PACKAGE},
    {"package", VG_CAT_PACKAGE},
    {NULL, VG_CAT_OTHER},
};


struct ds_state {
    const struct ds_settings *s;
    CURL *curl;                 /* kept between frames for connection reuse */
    struct vg_jpeg *jpeg;       /* only for images without known dimensions */
    char base[VG_URL_MAX];      /* url without trailing '/' */
    char origin[VG_URL_MAX];    /* url with any password masked: for messages */
    struct vg_curl_body body;
    char errbuf[CURL_ERROR_SIZE];
};

struct dims {
    double w, h;
};

static enum vg_category category_of(const char *label)
{
    for (const struct name_category *c = categories; c->name; c++)
        if (!strcasecmp(c->name, label))
            return c->cat;
    return VG_CAT_OTHER;
}

/* ---- one HTTP call -------------------------------------------------------- */

/* The call's timeout: timeout_ms, or less when the deadline is nearer. */
static vg_status call_timeout(const struct ds_state *d, const struct vg_detect_req *req,
                              const char *path, long *out)
{
    long ms = d->s->timeout_ms;
    if (req->deadline_us) {
        int64_t left = (req->deadline_us - vg_now_us()) / 1000;
        if (left <= 0)
            return vg_errf(VG_ERR_TIMEOUT, "%s%s: deadline passed before the call", d->origin,
                           path);
        if (left < ms)
            ms = (long)left;
    }
    *out = ms;
    return VG_OK;
}

static vg_status add_field(curl_mime *mime, const char *name, const void *data, size_t len,
                           const char *filename)
{
    curl_mimepart *part = curl_mime_addpart(mime);
    if (!part || curl_mime_name(part, name) != CURLE_OK ||
        curl_mime_data(part, data, len) != CURLE_OK)
        return vg_errf(VG_ERR_NOMEM, "multipart field %s", name);
    /* DeepStack reads "image" as a file upload: without a filename it is
     * a plain value and the server finds no image. */
    if (filename && (curl_mime_filename(part, filename) != CURLE_OK ||
                     curl_mime_type(part, "image/jpeg") != CURLE_OK))
        return vg_errf(VG_ERR_NOMEM, "multipart field %s", name);
    return VG_OK;
}

static vg_status build_form(struct ds_state *d, const struct vg_detect_req *req,
                            curl_mime **out)
{
    char conf[32];
    curl_mime *mime = curl_mime_init(d->curl);
    vg_status st = mime ? VG_OK : vg_errf(VG_ERR_NOMEM, "multipart form");
    snprintf(conf, sizeof(conf), "%.4f", d->s->min_confidence);
    if (st == VG_OK)
        st = add_field(mime, "image", req->img->jpeg, req->img->jpeg_len, "frame.jpg");
    if (st == VG_OK)
        st = add_field(mime, "min_confidence", conf, CURL_ZERO_TERMINATED, NULL);
    if (st == VG_OK && d->s->api_key[0])
        st = add_field(mime, "api_key", d->s->api_key, CURL_ZERO_TERMINATED, NULL);
    if (st != VG_OK) {
        curl_mime_free(mime);
        return st;
    }
    *out = mime;
    return VG_OK;
}

static vg_status transport_error(const struct ds_state *d, const char *path, CURLcode rc,
                                 long timeout)
{
    if (d->body.nomem)
        return vg_errf(VG_ERR_NOMEM, "%s%s: no memory for the answer", d->origin, path);
    if (d->body.too_large)
        return vg_errf(VG_ERR_TOO_LARGE, "%s%s: answer larger than %d bytes", d->origin, path,
                       VG_CURL_BODY_MAX);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return vg_errf(VG_ERR_TIMEOUT, "%s%s: no answer within %ld ms", d->origin, path,
                       timeout);
    return vg_errf(VG_ERR_UNAVAILABLE, "%s%s: %s", d->origin, path,
                   d->errbuf[0] ? d->errbuf : curl_easy_strerror(rc));
}

/* POST the form to path; on VG_OK *http holds the status and d->body the answer. */
static vg_status post(struct ds_state *d, const struct vg_detect_req *req, const char *path,
                      long *http)
{
    char url[VG_URL_MAX + 32];
    curl_mime *mime = NULL;
    struct curl_slist *headers = NULL;
    long timeout = 0;
    vg_status st = call_timeout(d, req, path, &timeout);
    if (st != VG_OK || (st = build_form(d, req, &mime)) != VG_OK)
        goto out;
    /* "Expect:" spares the 100-continue round trip curl adds to big bodies. */
    if (!(headers = curl_slist_append(NULL, "Expect:"))) {
        st = vg_errf(VG_ERR_NOMEM, "request headers");
        goto out;
    }
    snprintf(url, sizeof(url), "%s%s", d->base, path);
    CURL *c = d->curl;
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "vigil/1");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < CONNECT_TIMEOUT_MAX_MS ? timeout : (long)CONNECT_TIMEOUT_MAX_MS);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, vg_curl_body_write);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &d->body);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, d->errbuf);
    d->body.len = 0;
    d->body.too_large = d->body.nomem = 0;
    d->errbuf[0] = '\0';
    CURLcode rc = curl_easy_perform(c);
    if (rc != CURLE_OK)
        st = transport_error(d, path, rc, timeout);
    else
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, http);
out:
    /* The handle must not keep pointers to this call's form and headers. */
    curl_easy_setopt(d->curl, CURLOPT_MIMEPOST, NULL);
    curl_easy_setopt(d->curl, CURLOPT_HTTPHEADER, NULL);
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    return st;
}

/* ---- the answer ------------------------------------------------------------- */

/* The answer's "error" text if it is JSON with one, else its first bytes,
 * control characters blanked. */
static void error_text(const struct vg_curl_body *b, char *out, size_t cap)
{
    json_t *j = b->len ? json_loadb(b->data, b->len, 0, NULL) : NULL;
    const char *e = json_string_value(json_object_get(j, "error"));
    size_t n = 0;
    if (e) {
        snprintf(out, cap, "%s", e);
    } else {
        for (; n + 1 < cap && n < b->len && n < EXCERPT_MAX; n++) {
            unsigned char c = (unsigned char)b->data[n];
            out[n] = (c < 0x20 || c == 0x7f) ? ' ' : (char)c;
        }
        out[n] = '\0';
    }
    json_decref(j);
}

static vg_status http_error(const struct ds_state *d, const char *path, long http)
{
    char text[EXCERPT_MAX + 1];
    error_text(&d->body, text, sizeof(text));
    vg_status st = http == 401 || http == 403 ? VG_ERR_AUTH
                   : http == 400             ? VG_ERR_INVALID
                   : http == 404             ? VG_ERR_NOT_FOUND
                   : http >= 500             ? VG_ERR_UNAVAILABLE
                                             : VG_ERR_HTTP;
    const char *hint = st == VG_ERR_AUTH        ? " (check detectors.deepstack.api_key)"
                       : st == VG_ERR_NOT_FOUND ? " (is the server's module for it enabled?)"
                                                : "";
    return vg_errf(st, "%s%s: HTTP %ld%s%s%s", d->origin, path, http, text[0] ? ": " : "",
                   text, hint);
}

/* The predictions array of a successful answer (borrowed from *root, which
 * the caller frees); NULL predictions when the answer has none. */
static vg_status parse_answer(const struct ds_state *d, const char *path, json_t **root,
                              json_t **preds)
{
    json_error_t err;
    json_t *j = json_loadb(d->body.data ? d->body.data : "", d->body.len, 0, &err);
    if (!json_is_object(j)) {
        json_decref(j);
        return vg_errf(VG_ERR_DECODE, "%s%s: the answer is not a JSON object%s%s", d->origin,
                       path, j ? "" : ": ", j ? "" : err.text);
    }
    if (!json_is_true(json_object_get(j, "success"))) {
        const char *e = json_string_value(json_object_get(j, "error"));
        vg_status st = vg_errf(VG_ERR_HTTP, "%s%s: the server failed: %.200s", d->origin, path,
                               e ? e : "success is not true and no error given");
        json_decref(j);
        return st;
    }
    json_t *p = json_object_get(j, "predictions");
    if (p && !json_is_array(p) && !json_is_null(p)) {
        json_decref(j);
        return vg_errf(VG_ERR_DECODE, "%s%s: predictions is not an array", d->origin, path);
    }
    *root = j;
    *preds = json_is_array(p) ? p : NULL;
    return VG_OK;
}

/* One prediction's confidence and box, normalised by the image size;
 * *kept 0 when nothing of the box is inside the image. */
static vg_status prediction(const struct ds_state *d, const char *path, const json_t *p,
                            size_t i, const struct dims *dm, struct vg_box *b, double *conf,
                            int *kept)
{
    static const char *const keys[] = {"x_min", "y_min", "x_max", "y_max", "confidence"};
    double v[5];
    for (int k = 0; k < 5; k++) {
        const json_t *n = json_object_get(p, keys[k]);
        if (!json_is_number(n))
            return vg_errf(VG_ERR_DECODE, "%s%s: prediction %zu: %s is not a number", d->origin,
                           path, i, keys[k]);
        v[k] = json_number_value(n);
    }
    *b = (struct vg_box){(float)(v[0] / dm->w), (float)(v[1] / dm->h),
                         (float)((v[2] - v[0]) / dm->w), (float)((v[3] - v[1]) / dm->h)};
    *conf = v[4];
    *kept = vg_box_clip(b);
    return VG_OK;
}

static vg_status add_labels(const struct ds_state *d, const json_t *preds, const struct dims *dm,
                            struct vg_detect_res *res)
{
    for (size_t i = 0; i < json_array_size(preds); i++) {
        const json_t *p = json_array_get(preds, i);
        const char *label = json_string_value(json_object_get(p, "label"));
        struct vg_box b;
        double conf;
        int kept;
        if (!label || !*label)
            return vg_errf(VG_ERR_DECODE, "%s%s: prediction %zu has no label", d->origin,
                           DETECTION_PATH, i);
        vg_status st = prediction(d, DETECTION_PATH, p, i, dm, &b, &conf, &kept);
        if (st != VG_OK)
            return st;
        if (kept && conf >= d->s->min_confidence)
            vg_detect_res_add(res, label, category_of(label), (float)conf, &b);
    }
    return VG_OK;
}

static vg_status add_faces(const struct ds_state *d, const json_t *preds, const struct dims *dm,
                           struct vg_detect_res *res)
{
    for (size_t i = 0; i < json_array_size(preds) && res->n_faces < VG_DETECT_MAX_FACES; i++) {
        struct vg_face_box *f = &res->faces[res->n_faces];
        double conf;
        int kept;
        vg_status st = prediction(d, FACE_PATH, json_array_get(preds, i), i, dm, &f->box, &conf,
                                  &kept);
        if (st != VG_OK)
            return st;
        if (kept && conf >= d->s->min_confidence) {
            f->confidence = conf >= 1 ? 1 : (float)conf;
            res->n_faces++;
        }
    }
    return VG_OK;
}

typedef vg_status (*add_fn)(const struct ds_state *d, const json_t *preds,
                            const struct dims *dm, struct vg_detect_res *res);

/* One endpoint, start to finish: post, check, parse, add. */
static vg_status call(struct ds_state *d, const struct vg_detect_req *req, const char *path,
                      const struct dims *dm, add_fn add, struct vg_detect_res *res)
{
    json_t *root = NULL, *preds = NULL;
    long http = 0;
    vg_status st = post(d, req, path, &http);
    if (st != VG_OK)
        goto out;
    if (http != 200) {
        st = http_error(d, path, http);
        goto out;
    }
    if ((st = parse_answer(d, path, &root, &preds)) != VG_OK)
        goto out;
    st = add(d, preds, dm, res);
out:
    json_decref(root);
    return st;
}

/* ---- the backend -------------------------------------------------------------- */

static vg_status image_dims(struct ds_state *d, const struct vg_image *img, struct dims *dm)
{
    int w = img->width, h = img->height;
    if (w <= 0 || h <= 0) {
        vg_status st = d->jpeg ? VG_OK : vg_jpeg_create(&d->jpeg);
        if (st == VG_OK)
            st = vg_jpeg_dims(d->jpeg, img->jpeg, img->jpeg_len, &w, &h);
        if (st != VG_OK)
            return vg_errf(st, "deepstack: the frame's size is unknown: %s", vg_err_detail());
    }
    if (w <= 0 || h <= 0)
        return vg_errf(VG_ERR_DECODE, "deepstack: the frame is %dx%d", w, h);
    dm->w = w;
    dm->h = h;
    return VG_OK;
}

static int has_person(const struct vg_detect_res *res)
{
    for (size_t i = 0; i < res->n; i++)
        if (res->labels[i].category == VG_CAT_PERSON)
            return 1;
    return 0;
}

/* A face call with less time than this left is not started. */
#define FACE_MIN_TIME_US 50000

static vg_status detect(void *state, const struct vg_detect_req *req, struct vg_detect_res *res)
{
    struct ds_state *d = state;
    struct dims dm;
    if (!req->img || !req->img->jpeg || req->img->jpeg_len == 0)
        return vg_errf(VG_ERR_INVALID, "deepstack needs the frame's JPEG");
    vg_status st = image_dims(d, req->img, &dm);
    if (st == VG_OK)
        st = call(d, req, DETECTION_PATH, &dm, add_labels, res);
    if (st != VG_OK || !req->want_faces || d->s->faces == FACES_OFF ||
        (d->s->faces == FACES_AUTO && !has_person(res)))
        return st;
    /* The labels stand without face boxes (dispatch's own face finder can
     * still crop faces): no time left or a failed face call only means no
     * face boxes from here. */
    if (req->deadline_us && vg_now_us() >= req->deadline_us - FACE_MIN_TIME_US)
        return VG_OK;
    if (call(d, req, FACE_PATH, &dm, add_faces, res) == VG_OK) {
        res->faces_searched = 1;
    } else {
        res->n_faces = 0;
        VG_WARN("detector.faces_failed", req->cam ? req->cam->id : NULL, "deepstack: %s",
                vg_err_detail());
    }
    return VG_OK;
}

static vg_status check(const void *settings)
{
    const struct ds_settings *s = settings;
    if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8))
        return vg_errf(VG_ERR_CONFIG, "detectors.deepstack.url \"%.64s\" must start with "
                       "http:// or https://", s->url);
    return VG_OK;
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static vg_status init(void **state, const void *settings, const struct vg_config *cfg)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    const struct ds_settings *s = settings;
    struct ds_state *d = calloc(1, sizeof(*d));
    pthread_once(&once, curl_init_once);
    if (!d || !(d->curl = curl_easy_init())) {
        free(d);
        return vg_errf(VG_ERR_NOMEM, "no memory for the deepstack state");
    }
    d->s = s;
    size_t n = strlen(s->url);
    while (n > 0 && s->url[n - 1] == '/')
        n--;
    snprintf(d->base, sizeof(d->base), "%.*s", (int)n, s->url);
    vg_cfg_mask_url(d->origin, sizeof(d->origin), d->base);
    *state = d;
    return VG_OK;
}

static void cleanup(void *state)
{
    struct ds_state *d = state;
    if (!d)
        return;
    curl_easy_cleanup(d->curl);
    vg_jpeg_destroy(d->jpeg);
    free(d->body.data);
    free(d);
}

const struct vg_detector_backend vg_detector_deepstack = {
    .name = "deepstack",
    .summary = "CodeProject.AI Server / DeepStack over HTTP (/v1/vision/detection, /face)",
    .caps = VG_DETECT_REMOTE | VG_DETECT_FACES,
    .opts = ds_opts,
    .opts_size = sizeof(struct ds_settings),
    .check = check,
    .init = init,
    .detect = detect,
    .cleanup = cleanup,
};
