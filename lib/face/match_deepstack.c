/* Matcher "deepstack": the face recognition API that CodeProject.AI Server
 * and DeepStack share, over HTTP with multipart forms (as the "deepstack"
 * detector, lib/detect/detect_deepstack.c):
 *
 *   POST {url}/v1/vision/face/recognize  image, min_confidence
 *        -> {"success": true, "predictions": [{"userid", "confidence",
 *            "x_min", "y_min", "x_max", "y_max"}, ...]}
 *   POST {url}/v1/vision/face/register   userid, image1 .. imageN
 *        -> {"success": true, "message": "face added"}
 *   POST {url}/v1/vision/face/list       -> {"success": true, "faces": ["alice", ...]}
 *   POST {url}/v1/vision/face/delete     userid -> {"success": true}
 *
 * Every form also carries api_key when one is set.
 *
 * Keys, under matchers.deepstack:
 *   url             http://127.0.0.1:32168  CodeProject.AI Server's port; DeepStack
 *                   listens on 5000 in its container (often published as 80).
 *                   Environment VIGIL_MATCHER_DEEPSTACK_URL.
 *   api_key         ""    DeepStack's API-KEY, sent as the api_key form field;
 *                   sensitive; VIGIL_MATCHER_DEEPSTACK_API_KEY (or _FILE).
 *   min_confidence  0.67  0..1, DeepStack's own default for recognition; sent to
 *                   the server and applied again here, so a known person below
 *                   it is unknown, not the nearest name.
 *   timeout_ms      5000  one HTTP call (register trains the server's model
 *                   and may need more with many images).
 *
 * match: the prediction with the highest confidence decides; userid
 * "unknown" (the servers' word for a face they do not know), no
 * predictions (no face found) or a confidence below min_confidence are a
 * normal miss (matched 0). The servers have no face ids: face_id is "".
 *
 * enrol: ONE register call with all of the person's images. Both servers'
 * register replaces the faces stored for that userid with the images of the
 * call, so registering image by image would keep only the last one; one call
 * also makes enrolment replace earlier enrolments, as the seam wants.
 *
 * remove: the servers' delete answers success for a userid they never had,
 * so the list is asked first to tell VG_ERR_NOT_FOUND.
 *
 * Errors: CodeProject.AI answers failures with HTTP 200 and {"success":
 * false, "error": "..."} (VG_ERR_HTTP with that text); DeepStack uses
 * statuses: 400 VG_ERR_INVALID, 401/403 VG_ERR_AUTH (a wrong api_key), 404
 * and 5xx VG_ERR_UNAVAILABLE (404: the face module is not enabled; it is not
 * VG_ERR_NOT_FOUND, which remove keeps for "no such person"), others
 * VG_ERR_HTTP, each with the body's "error" or an excerpt. No answer in time
 * is VG_ERR_TIMEOUT, a refused connection VG_ERR_UNAVAILABLE, an answer over
 * 1 MiB VG_ERR_TOO_LARGE, one that is not the documented JSON VG_ERR_DECODE.
 *
 * Every op is safe to call from several threads: a call takes the idle curl
 * handle (kept for connection reuse) or, when another call has it, makes
 * its own. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <jansson.h>

#include "config.h"
#include "face/matcher.h"
#include "curl_body.h"
#include "log.h"

#define EXCERPT_MAX 160             /* answer bytes quoted in an error */
#define IMAGE_MAX (10 * 1024 * 1024)/* one image sent */
#define LIST_MAX 100000             /* names a listing holds */
#define CONNECT_TIMEOUT_MAX_MS 3000
#define RECOGNIZE_PATH "/v1/vision/face/recognize"
#define REGISTER_PATH "/v1/vision/face/register"
#define LIST_PATH "/v1/vision/face/list"
#define DELETE_PATH "/v1/vision/face/delete"
#define UNKNOWN "unknown"

struct ds_settings {
    char url[VG_URL_MAX];
    char api_key[256];
    double min_confidence;
    int timeout_ms;
};

static const struct vg_opt ds_opts[] = {
    VG_OPT_STR_("url", struct ds_settings, url, "http://127.0.0.1:32168",
                "VIGIL_MATCHER_DEEPSTACK_URL", 0,
                "server base URL (CodeProject.AI: 32168; DeepStack: 80 or 5000)"),
    VG_OPT_STR_("api_key", struct ds_settings, api_key, "", "VIGIL_MATCHER_DEEPSTACK_API_KEY", 1,
                "DeepStack API key, sent as the api_key form field"),
    VG_OPT_DBL_("min_confidence", struct ds_settings, min_confidence, 0, 1, "0.67",
                "smallest recognition confidence that names a person, 0..1"),
    VG_OPT_INT_("timeout_ms", struct ds_settings, timeout_ms, 100, 600000, "5000",
                "one HTTP call"),
    VG_OPT_END,
};

struct ds_state {
    const struct ds_settings *s;
    char base[VG_URL_MAX];      /* url without trailing '/' */
    char origin[VG_URL_MAX];    /* url with any password masked: for messages */
    pthread_mutex_t lock;
    CURL *idle;                 /* the handle kept between calls */
};

/* One call's form: what goes in besides api_key. */
struct req {
    const char *path;
    const char *userid;                 /* NULL: none */
    const struct vg_face_image *imgs;   /* NULL: none */
    size_t n;
    int numbered;                       /* image1..imageN (register), else image */
    int min_confidence;                 /* send min_confidence */
};


/* ---- one HTTP call ----------------------------------------------------------- */

static CURL *handle_take(struct ds_state *d)
{
    pthread_mutex_lock(&d->lock);
    CURL *h = d->idle;
    d->idle = NULL;
    pthread_mutex_unlock(&d->lock);
    return h ? h : curl_easy_init();
}

static void handle_give(struct ds_state *d, CURL *h)
{
    /* The handle must not keep pointers to this call's form and headers. */
    curl_easy_setopt(h, CURLOPT_MIMEPOST, NULL);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
    pthread_mutex_lock(&d->lock);
    if (!d->idle) {
        d->idle = h;
        h = NULL;
    }
    pthread_mutex_unlock(&d->lock);
    curl_easy_cleanup(h);
}

static vg_status add_field(curl_mime *mime, const char *name, const void *data, size_t len,
                           const char *filename)
{
    curl_mimepart *part = curl_mime_addpart(mime);
    if (!part || curl_mime_name(part, name) != CURLE_OK ||
        curl_mime_data(part, data, len) != CURLE_OK)
        return vg_errf(VG_ERR_NOMEM, "multipart field %s", name);
    /* Images are file uploads: without a filename the servers see a plain
     * value and find no image. */
    if (filename && (curl_mime_filename(part, filename) != CURLE_OK ||
                     curl_mime_type(part, "image/jpeg") != CURLE_OK))
        return vg_errf(VG_ERR_NOMEM, "multipart field %s", name);
    return VG_OK;
}

static vg_status add_images(curl_mime *mime, const struct req *q)
{
    char name[32], file[48];
    for (size_t i = 0; i < q->n; i++) {
        const struct vg_face_image *img = &q->imgs[i];
        if (!img->jpeg || img->jpeg_len == 0)
            return vg_errf(VG_ERR_INVALID, "deepstack: image %zu is empty", i + 1);
        if (img->jpeg_len > IMAGE_MAX)
            return vg_errf(VG_ERR_TOO_LARGE, "deepstack: image %zu is %zu bytes; at most %d",
                           i + 1, img->jpeg_len, IMAGE_MAX);
        if (q->numbered)
            snprintf(name, sizeof(name), "image%zu", i + 1);
        else
            snprintf(name, sizeof(name), "image");
        snprintf(file, sizeof(file), "face%zu.jpg", i + 1);
        vg_status st = add_field(mime, name, img->jpeg, img->jpeg_len, file);
        if (st != VG_OK)
            return st;
    }
    return VG_OK;
}

static vg_status build_form(const struct ds_state *d, CURL *h, const struct req *q,
                            curl_mime **out)
{
    char conf[32];
    curl_mime *mime = curl_mime_init(h);
    vg_status st = mime ? VG_OK : vg_errf(VG_ERR_NOMEM, "multipart form");
    if (st == VG_OK)
        st = add_images(mime, q);
    if (st == VG_OK && q->userid)
        st = add_field(mime, "userid", q->userid, CURL_ZERO_TERMINATED, NULL);
    snprintf(conf, sizeof(conf), "%.4f", d->s->min_confidence);
    if (st == VG_OK && q->min_confidence)
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
                                 const struct vg_curl_body *b, const char *errbuf)
{
    if (b->nomem)
        return vg_errf(VG_ERR_NOMEM, "%s%s: no memory for the answer", d->origin, path);
    if (b->too_large)
        return vg_errf(VG_ERR_TOO_LARGE, "%s%s: answer larger than %d bytes", d->origin, path,
                       VG_CURL_BODY_MAX);
    if (rc == CURLE_OPERATION_TIMEDOUT)
        return vg_errf(VG_ERR_TIMEOUT, "%s%s: no answer within %d ms", d->origin, path,
                       d->s->timeout_ms);
    return vg_errf(VG_ERR_UNAVAILABLE, "%s%s: %s", d->origin, path,
                   errbuf[0] ? errbuf : curl_easy_strerror(rc));
}

/* POST the form of q; on VG_OK *http holds the status and b the answer. */
static vg_status post(struct ds_state *d, const struct req *q, struct vg_curl_body *b, long *http)
{
    char url[VG_URL_MAX + 32], errbuf[CURL_ERROR_SIZE] = "";
    curl_mime *mime = NULL;
    struct curl_slist *headers = NULL;
    long timeout = d->s->timeout_ms;
    CURL *h = handle_take(d);
    if (!h)
        return vg_errf(VG_ERR_NOMEM, "deepstack: no curl handle");
    vg_status st = build_form(d, h, q, &mime);
    /* "Expect:" spares the 100-continue round trip curl adds to big bodies. */
    if (st == VG_OK && !(headers = curl_slist_append(NULL, "Expect:")))
        st = vg_errf(VG_ERR_NOMEM, "request headers");
    if (st != VG_OK)
        goto out;
    snprintf(url, sizeof(url), "%s%s", d->base, q->path);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_MIMEPOST, mime);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "vigil/1");
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS,
                     timeout < CONNECT_TIMEOUT_MAX_MS ? timeout : (long)CONNECT_TIMEOUT_MAX_MS);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, vg_curl_body_write);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, b);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    CURLcode rc = curl_easy_perform(h);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, NULL);
    if (rc != CURLE_OK)
        st = transport_error(d, q->path, rc, b, errbuf);
    else
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, http);
out:
    handle_give(d, h);
    curl_mime_free(mime);
    curl_slist_free_all(headers);
    return st;
}

/* ---- the answer ------------------------------------------------------------------ */

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

static vg_status http_error(const struct ds_state *d, const char *path, const struct vg_curl_body *b,
                            long http)
{
    char text[EXCERPT_MAX + 1];
    error_text(b, text, sizeof(text));
    vg_status st = http == 401 || http == 403 ? VG_ERR_AUTH
                   : http == 400             ? VG_ERR_INVALID
                   : http == 404 || http >= 500 ? VG_ERR_UNAVAILABLE
                                             : VG_ERR_HTTP;
    const char *hint = st == VG_ERR_AUTH ? " (check matchers.deepstack.api_key)"
                       : http == 404     ? " (is the server's face recognition module enabled?)"
                                         : "";
    return vg_errf(st, "%s%s: HTTP %ld%s%s%s", d->origin, path, http, text[0] ? ": " : "",
                   text, hint);
}

/* The answer of a successful call as a JSON object with success true. */
static vg_status parse_answer(const struct ds_state *d, const char *path, const struct vg_curl_body *b,
                              json_t **out)
{
    json_error_t err;
    json_t *j = json_loadb(b->data ? b->data : "", b->len, 0, &err);
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
    *out = j;
    return VG_OK;
}

/* One endpoint, start to finish: post, check the status, parse. */
static vg_status call(struct ds_state *d, const struct req *q, json_t **out)
{
    struct vg_curl_body b = {0};
    long http = 0;
    vg_status st = post(d, q, &b, &http);
    if (st == VG_OK && http != 200)
        st = http_error(d, q->path, &b, http);
    if (st == VG_OK)
        st = parse_answer(d, q->path, &b, out);
    free(b.data);
    return st;
}

/* ---- names ------------------------------------------------------------------------- */

static vg_status check_person(const char *person)
{
    size_t n = person ? strlen(person) : 0;
    int ok = n > 0 && n < VG_FACE_ID_MAX && strcasecmp(person, UNKNOWN) != 0;
    for (size_t i = 0; ok && i < n; i++)
        ok = (unsigned char)person[i] >= 0x20 && person[i] != 0x7f;
    if (!ok)
        return vg_errf(VG_ERR_INVALID, "deepstack: person name \"%.64s\" is not allowed: 1..%d "
                       "characters without control characters, and not \"%s\" (the servers' "
                       "word for a face they do not know)", person ? person : "",
                       VG_FACE_ID_MAX - 1, UNKNOWN);
    return VG_OK;
}

/* ---- match --------------------------------------------------------------------------- */

/* The prediction with the highest confidence; NULL when there is none. */
static vg_status best_prediction(const struct ds_state *d, const json_t *preds,
                                 const json_t **best)
{
    double top = -1;
    *best = NULL;
    for (size_t i = 0; i < json_array_size(preds); i++) {
        const json_t *p = json_array_get(preds, i);
        const json_t *c = json_object_get(p, "confidence");
        if (!json_is_string(json_object_get(p, "userid")) || !json_is_number(c))
            return vg_errf(VG_ERR_DECODE, "%s%s: prediction %zu needs a userid (string) and a "
                           "confidence (number)", d->origin, RECOGNIZE_PATH, i);
        if (json_number_value(c) > top) {
            top = json_number_value(c);
            *best = p;
        }
    }
    return VG_OK;
}

static vg_status ds_match(void *state, const struct vg_face_image *img,
                          struct vg_face_match *out)
{
    struct ds_state *d = state;
    struct vg_face_match m = {0};
    const json_t *best = NULL;
    json_t *root = NULL;
    if (!img || !img->jpeg || img->jpeg_len == 0)
        return vg_errf(VG_ERR_INVALID, "deepstack needs the face crop's JPEG");
    struct req q = {.path = RECOGNIZE_PATH, .imgs = img, .n = 1, .min_confidence = 1};
    vg_status st = call(d, &q, &root);
    json_t *preds = json_object_get(root, "predictions");
    if (st == VG_OK && preds && !json_is_array(preds) && !json_is_null(preds))
        st = vg_errf(VG_ERR_DECODE, "%s%s: predictions is not an array", d->origin,
                     RECOGNIZE_PATH);
    if (st == VG_OK)
        st = best_prediction(d, preds, &best);
    if (st != VG_OK || !best)
        goto out;
    const char *userid = json_string_value(json_object_get(best, "userid"));
    double conf = json_number_value(json_object_get(best, "confidence"));
    m.similarity = conf <= 0 ? 0 : conf >= 1 ? 1 : (float)conf;
    if (!strcmp(userid, UNKNOWN) || conf < d->s->min_confidence)
        goto out;
    if (!*userid || strlen(userid) >= VG_FACE_ID_MAX) {
        st = vg_errf(VG_ERR_DECODE, "%s%s: userid \"%.40s\" is empty or longer than %d "
                     "characters: not a vigil person", d->origin, RECOGNIZE_PATH, userid,
                     VG_FACE_ID_MAX - 1);
        goto out;
    }
    m.matched = 1;
    snprintf(m.person_id, sizeof(m.person_id), "%s", userid);
out:
    json_decref(root);
    if (st == VG_OK)
        *out = m;
    return st;
}

/* ---- enrol, list, remove --------------------------------------------------------------- */

static vg_status ds_enrol(void *state, const char *person, const struct vg_face_image *imgs,
                          size_t n)
{
    json_t *root = NULL;
    vg_status st = check_person(person);
    if (st == VG_OK && (n == 0 || n > VG_FACE_MAX_IMAGES))
        st = vg_errf(VG_ERR_INVALID, "deepstack: %zu images; enrol from 1..%d", n,
                     VG_FACE_MAX_IMAGES);
    /* All images in one register call: see the top of this file. */
    struct req q = {.path = REGISTER_PATH, .userid = person, .imgs = imgs, .n = n,
                    .numbered = 1};
    if (st == VG_OK)
        st = call(state, &q, &root);
    json_decref(root);
    return st;
}

/* The listed names; every element must be a string. */
static vg_status list_names(struct ds_state *d, json_t **root, json_t **faces)
{
    struct req q = {.path = LIST_PATH};
    vg_status st = call(d, &q, root);
    if (st != VG_OK)
        return st;
    json_t *f = json_object_get(*root, "faces");
    if (!json_is_array(f)) {
        json_decref(*root);
        *root = NULL;
        return vg_errf(VG_ERR_DECODE, "%s%s: faces is %s", d->origin, LIST_PATH,
                       f ? "not an array" : "missing");
    }
    for (size_t i = 0; i < json_array_size(f); i++)
        if (!json_is_string(json_array_get(f, i))) {
            json_decref(*root);
            *root = NULL;
            return vg_errf(VG_ERR_DECODE, "%s%s: faces[%zu] is not a string", d->origin,
                           LIST_PATH, i);
        }
    if (json_array_size(f) > LIST_MAX) {
        json_decref(*root);
        *root = NULL;
        return vg_errf(VG_ERR_TOO_LARGE, "%s%s: more than %d people", d->origin, LIST_PATH,
                       LIST_MAX);
    }
    *faces = f;
    return VG_OK;
}

static vg_status ds_list(void *state, struct vg_face_entry **out, size_t *n)
{
    json_t *root = NULL, *faces = NULL;
    struct vg_face_entry *e = NULL;
    size_t k = 0;
    vg_status st = list_names(state, &root, &faces);
    if (st == VG_OK && json_array_size(faces) &&
        !(e = calloc(json_array_size(faces), sizeof(*e))))
        st = vg_errf(VG_ERR_NOMEM, "deepstack: no memory for %zu people",
                     json_array_size(faces));
    for (size_t i = 0; st == VG_OK && i < json_array_size(faces); i++) {
        const char *name = json_string_value(json_array_get(faces, i));
        if (!*name || strlen(name) >= VG_FACE_ID_MAX) {
            VG_WARN("face.list_skipped", NULL, "deepstack: userid \"%.40s\" is empty or longer "
                    "than %d characters: not a vigil person", name, VG_FACE_ID_MAX - 1);
            continue;
        }
        snprintf(e[k++].person_id, VG_FACE_ID_MAX, "%s", name);
    }
    json_decref(root);
    if (st != VG_OK) {
        free(e);
        return st;
    }
    *out = e;
    *n = k;
    return VG_OK;
}

static vg_status ds_remove(void *state, const char *person)
{
    struct ds_state *d = state;
    json_t *root = NULL, *faces = NULL;
    int known = 0;
    size_t len = person ? strlen(person) : 0;
    if (len == 0 || len >= VG_FACE_ID_MAX)
        return vg_errf(VG_ERR_INVALID, "deepstack: person name of %zu characters; 1..%d",
                       len, VG_FACE_ID_MAX - 1);
    /* delete answers success for a userid never registered: ask the list. */
    vg_status st = list_names(d, &root, &faces);
    for (size_t i = 0; st == VG_OK && i < json_array_size(faces); i++)
        known |= !strcmp(json_string_value(json_array_get(faces, i)), person);
    json_decref(root);
    root = NULL;
    if (st == VG_OK && !known)
        st = vg_errf(VG_ERR_NOT_FOUND, "deepstack: %s is not enrolled at %s", person,
                     d->origin);
    struct req q = {.path = DELETE_PATH, .userid = person};
    if (st == VG_OK)
        st = call(d, &q, &root);
    json_decref(root);
    return st;
}

/* ---- the matcher ---------------------------------------------------------------------- */

static vg_status ds_check(const void *settings, const char *where)
{
    const struct ds_settings *s = settings;
    if (strncmp(s->url, "http://", 7) && strncmp(s->url, "https://", 8))
        return vg_errf(VG_ERR_CONFIG, "%s.url \"%.64s\" must start with http:// or https://",
                       where, s->url);
    return VG_OK;
}

static void curl_init_once(void) { curl_global_init(CURL_GLOBAL_DEFAULT); }

static vg_status ds_init(void **state, const void *settings, const struct vg_face_env *env)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    const struct ds_settings *s = settings;
    (void)env;
    pthread_once(&once, curl_init_once);
    struct ds_state *d = calloc(1, sizeof(*d));
    if (!d)
        return vg_errf(VG_ERR_NOMEM, "no memory for the deepstack matcher");
    if (pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        return vg_errf(VG_ERR_NOMEM, "deepstack matcher: no mutex");
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

static void ds_cleanup(void *state)
{
    struct ds_state *d = state;
    if (!d)
        return;
    curl_easy_cleanup(d->idle);
    pthread_mutex_destroy(&d->lock);
    free(d);
}

const struct vg_face_matcher_ops vg_face_deepstack = {
    .name = "deepstack",
    .caps = VG_FACE_CAP_REMOTE,
    .opts = ds_opts,
    .settings_size = sizeof(struct ds_settings),
    .check = ds_check,
    .init = ds_init,
    .match = ds_match,
    .enrol = ds_enrol,
    .list = ds_list,
    .remove = ds_remove,
    .cleanup = ds_cleanup,
};
