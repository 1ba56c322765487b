/* vigilctl faces add|list|remove|profile|test: one enrolment CLI for every
 * face matcher (facematch.matcher) and profile store (facematch.profiles).
 * Each photo must show exactly one face: it is found with the frontal-face
 * cascade and cropped with dispatch's margin, so the library holds the same
 * kind of crop that facematch later receives. After a change every
 * facematch replica is told to reload (<prefix>.control.faces). */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "ctl.h"
#include "detect/face_finder.h"
#include "detect/imdecode.h"
#include "face/matcher.h"
#include "face/profiles.h"
#include "image/draw.h"
#include "image/jpeg.h"
#include "redis.h"

#define IMAGE_MAX_BYTES (20u << 20)
#define IMAGE_MAX_PIXELS (40u * 1000 * 1000)
#define CROP_QUALITY 90
#define MAX_FACES_IN_TEST 16

struct faces_ctx {
    struct ctl *c;
    struct vg_redis *redis;
    struct vg_face_matcher *m;
    struct vg_profiles *profiles;
    struct vg_face_finder *finder;
    struct vg_jpeg *jpeg;
};

/* One face crop as the matcher receives it. */
struct crop {
    uint8_t *jpeg;
    size_t jpeg_len;
    uint8_t *grey;
    int width, height;
    struct vg_box box;
};

static void crop_free(struct crop *c)
{
    free(c->jpeg);
    free(c->grey);
    memset(c, 0, sizeof(*c));
}

static int fail(const char *what)
{
    fprintf(stderr, "vigilctl faces %s: %s\n", what, vg_err_detail());
    return 1;
}

static vg_status read_image(const char *path, uint8_t **data, size_t *len)
{
    struct stat sb;
    if (stat(path, &sb) != 0)
        return vg_errf(VG_ERR_IO, "%s: cannot read it", path);
    if ((size_t)sb.st_size > IMAGE_MAX_BYTES)
        return vg_errf(VG_ERR_TOO_LARGE, "%s: %lld bytes is larger than %u MB", path,
                       (long long)sb.st_size, IMAGE_MAX_BYTES >> 20);
    FILE *f = fopen(path, "rb");
    uint8_t *buf = f ? malloc((size_t)sb.st_size + 1) : NULL;
    size_t n = buf ? fread(buf, 1, (size_t)sb.st_size, f) : 0;
    if (f)
        fclose(f);
    if (!buf || n != (size_t)sb.st_size) {
        free(buf);
        return vg_errf(VG_ERR_IO, "%s: cannot read it", path);
    }
    if (!vg_image_kind(buf, n)) {
        free(buf);
        return vg_errf(VG_ERR_DECODE, "%s: not a JPEG or PNG image", path);
    }
    *data = buf;
    *len = n;
    return VG_OK;
}

/* Crop one found face the way dispatch does, as JPEG and grey. */
static vg_status make_crop(struct faces_ctx *x, const uint8_t *rgb, int w, int h,
                           const struct vg_face_box *fb, struct crop *out)
{
    uint8_t *pix = NULL;
    struct vg_rect r = vg_rect_from_box(fb->box.x, fb->box.y, fb->box.w, fb->box.h,
                                        x->c->cfg.dispatch.face_margin_px, w, h);
    memset(out, 0, sizeof(*out));
    out->box = fb->box;
    vg_status st = vg_rgb_crop(rgb, w, h, r, &pix);
    if (st == VG_OK)
        st = vg_jpeg_encode_rgb(x->jpeg, pix, r.w, r.h, CROP_QUALITY, &out->jpeg,
                                &out->jpeg_len);
    if (st == VG_OK)
        st = vg_jpeg_decode_grey(x->jpeg, out->jpeg, out->jpeg_len, IMAGE_MAX_PIXELS,
                                 &out->grey, &out->width, &out->height);
    free(pix);
    if (st != VG_OK)
        crop_free(out);
    return st;
}

/* The faces of one photo: up to max crops, *n how many faces were found. */
static vg_status find_faces(struct faces_ctx *x, const char *path, struct crop *crops,
                            size_t max, size_t *n)
{
    uint8_t *data = NULL, *rgb = NULL;
    size_t len = 0, found = 0;
    struct vg_face_box boxes[VG_DETECT_MAX_FACES];
    struct vg_image img = {0};
    *n = 0;
    vg_status st = read_image(path, &data, &len);
    if (st == VG_OK && (st = vg_image_decode_rgb(data, len, IMAGE_MAX_PIXELS, &rgb, &img.width,
                                                 &img.height)) != VG_OK)
        st = vg_errf(st, "%s: %s", path, vg_err_detail());
    img.rgb = rgb;
    if (st == VG_OK)
        st = vg_face_finder_run(x->finder, &img, NULL, 0, boxes, VG_DETECT_MAX_FACES, &found);
    for (size_t i = 0; st == VG_OK && i < found && i < max; i++)
        if ((st = make_crop(x, rgb, img.width, img.height, &boxes[i], &crops[i])) == VG_OK)
            (*n)++;
    if (st == VG_OK)
        *n = found;
    free(data);
    free(rgb);
    return st;
}

static vg_status one_face(struct faces_ctx *x, const char *path, struct crop *out)
{
    struct crop crops[2];
    size_t n = 0;
    vg_status st = find_faces(x, path, crops, 2, &n);
    if (st != VG_OK)
        return st;
    for (size_t i = 1; i < n && i < 2; i++)
        crop_free(&crops[i]);
    if (n == 0)
        return vg_errf(VG_ERR_INVALID, "%s: no face found (a frontal face, at least 20 pixels)",
                       path);
    if (n > 1) {
        crop_free(&crops[0]);
        return vg_errf(VG_ERR_INVALID, "%s: %zu faces: use a photo of one person, or crop it",
                       path, n);
    }
    *out = crops[0];
    return VG_OK;
}

static struct vg_face_image as_image(const struct crop *c)
{
    struct vg_face_image i = {.jpeg = c->jpeg, .jpeg_len = c->jpeg_len, .grey = c->grey,
                              .width = c->width, .height = c->height};
    return i;
}

/* Face ids of one person (for profile stores keyed by face). */
static vg_status person_faces(struct faces_ctx *x, const char *person, char ids[][VG_FACE_ID_MAX],
                              const char **ptrs, size_t max, size_t *n)
{
    struct vg_face_entry *all = NULL;
    size_t total = 0;
    *n = 0;
    if (!x->m->ops->list) {
        snprintf(ids[0], VG_FACE_ID_MAX, "%s", person);
        ptrs[0] = ids[0];
        *n = 1;
        return VG_OK;
    }
    vg_status st = x->m->ops->list(x->m->state, &all, &total);
    for (size_t i = 0; st == VG_OK && i < total && *n < max; i++)
        if (!strcmp(all[i].person_id, person)) {
            snprintf(ids[*n], VG_FACE_ID_MAX, "%s", all[i].face_id[0] ? all[i].face_id : person);
            ptrs[*n] = ids[*n];
            (*n)++;
        }
    free(all);
    return st;
}

static void tell_replicas(struct faces_ctx *x, const char *person)
{
    char subject[128];
    vg_subject(subject, sizeof(subject), x->c->cfg.prefix, "control", "faces");
    if (ctl_connect(x->c) == VG_OK &&
        vg_bus_publish_raw(x->c->bus, subject, person, strlen(person)) == VG_OK &&
        natsConnection_FlushTimeout(vg_bus_nats(x->c->bus), 2000) == NATS_OK)
        return;
    fprintf(stderr, "vigilctl faces: could not tell facematch to reload (%s); running replicas "
                    "see the change when they restart\n", vg_err_detail());
}

static int cmd_add(struct faces_ctx *x, const char *person, char **images, int n_images,
                   char **fields, int n_fields)
{
    struct crop crops[VG_FACE_MAX_IMAGES];
    struct vg_face_image imgs[VG_FACE_MAX_IMAGES];
    struct vg_profile p = {0};
    char ids[VG_FACE_MAX_IMAGES][VG_FACE_ID_MAX];
    const char *idp[VG_FACE_MAX_IMAGES];
    size_t n_ids = 0;
    int n = 0, rc = 1;
    vg_status st = VG_OK;

    for (int i = 0; st == VG_OK && i < n_fields; i++) {
        char *eq = strchr(fields[i], '=');
        if (!eq || eq == fields[i])
            st = vg_errf(VG_ERR_INVALID, "--profile %s: expected key=value", fields[i]);
        else {
            *eq = '\0';
            st = vg_profile_set(&p, fields[i], eq + 1);
            *eq = '=';
        }
    }
    if (st == VG_OK && !vg_profile_get(&p, "display_name"))
        st = vg_profile_set(&p, "display_name", person);
    for (; st == VG_OK && n < n_images; n++) {
        if ((st = one_face(x, images[n], &crops[n])) != VG_OK)
            break;
        imgs[n] = as_image(&crops[n]);
    }
    if (st != VG_OK)
        goto out;
    /* All images in one call: some matchers replace a person's faces on
     * every enrolment. */
    if ((st = x->m->ops->enrol(x->m->state, person, imgs, (size_t)n)) != VG_OK)
        goto out;
    if (x->profiles && ((st = person_faces(x, person, ids, idp, VG_FACE_MAX_IMAGES, &n_ids)) !=
                            VG_OK ||
                        (st = x->profiles->ops->put(x->profiles->state, person, idp, n_ids, &p)) !=
                            VG_OK)) {
        fprintf(stderr, "vigilctl faces add: %s enrolled, but the profile was not stored: %s\n",
                person, vg_err_detail());
        rc = 1;
        tell_replicas(x, person);
        goto done;
    }
    tell_replicas(x, person);
    printf("{\"person\":\"%s\",\"images\":%d,\"faces\":%zu,\"matcher\":\"%s\",\"profile_fields\":%zu}\n",
           person, n, n_ids, x->m->ops->name, p.n);
    rc = 0;
    goto done;
out:
    fail("add");
done:
    for (int i = 0; i < n && i < VG_FACE_MAX_IMAGES; i++)
        crop_free(&crops[i]);
    return rc;
}

static int cmd_list(struct faces_ctx *x)
{
    struct vg_face_entry *all = NULL;
    size_t n = 0;
    if (!x->m->ops->list) {
        fprintf(stderr, "vigilctl faces list: matcher %s keeps no library\n", x->m->ops->name);
        return 1;
    }
    if (x->m->ops->list(x->m->state, &all, &n) != VG_OK)
        return fail("list");
    /* One line per person with the number of faces. */
    for (size_t i = 0; i < n; i++) {
        int seen = 0, count = 0;
        for (size_t k = 0; k < i && !seen; k++)
            seen = !strcmp(all[k].person_id, all[i].person_id);
        if (seen)
            continue;
        for (size_t k = i; k < n; k++)
            count += !strcmp(all[k].person_id, all[i].person_id);
        printf("%s\t%d face%s\n", all[i].person_id, count, count == 1 ? "" : "s");
    }
    free(all);
    return 0;
}

static int cmd_remove(struct faces_ctx *x, const char *person)
{
    char ids[VG_FACE_MAX_IMAGES * 4][VG_FACE_ID_MAX];
    const char *idp[VG_FACE_MAX_IMAGES * 4];
    size_t n_ids = 0;
    if (!x->m->ops->remove) {
        fprintf(stderr, "vigilctl faces remove: matcher %s keeps no library\n", x->m->ops->name);
        return 1;
    }
    vg_status st = person_faces(x, person, ids, idp, VG_FACE_MAX_IMAGES * 4, &n_ids);
    if (st == VG_OK)
        st = x->m->ops->remove(x->m->state, person);
    if (st == VG_ERR_NOT_FOUND) {
        fprintf(stderr, "vigilctl faces remove: nobody called %s is enrolled\n", person);
        return 1;
    }
    if (st != VG_OK)
        return fail("remove");
    if (x->profiles && x->profiles->ops->remove(x->profiles->state, person, idp, n_ids) != VG_OK)
        fprintf(stderr, "vigilctl faces remove: %s removed, but not the profile: %s\n", person,
                vg_err_detail());
    tell_replicas(x, person);
    printf("{\"removed\":\"%s\",\"faces\":%zu}\n", person, n_ids);
    return 0;
}

static void print_profile(const struct vg_profile *p)
{
    json_t *o = json_object();
    for (size_t i = 0; o && i < p->n; i++)
        json_object_set_new(o, p->key[i], json_string(p->value[i]));
    char *text = o ? json_dumps(o, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
    printf("%s\n", text ? text : "{}");
    free(text);
    json_decref(o);
}

static int cmd_profile(struct faces_ctx *x, const char *person)
{
    char ids[VG_FACE_MAX_IMAGES][VG_FACE_ID_MAX];
    const char *idp[VG_FACE_MAX_IMAGES];
    size_t n_ids = 0;
    struct vg_profile p;
    if (!x->profiles)
        return fail("profile");
    vg_status st = person_faces(x, person, ids, idp, VG_FACE_MAX_IMAGES, &n_ids);
    if (st == VG_OK)
        st = x->profiles->ops->get(x->profiles->state, person, n_ids ? idp[0] : person, &p);
    if (st == VG_ERR_NOT_FOUND) {
        fprintf(stderr, "vigilctl faces profile: no profile for %s\n", person);
        return 1;
    }
    if (st != VG_OK)
        return fail("profile");
    print_profile(&p);
    return 0;
}

static int cmd_test(struct faces_ctx *x, const char *path)
{
    struct crop crops[MAX_FACES_IN_TEST];
    size_t n = 0;
    if (find_faces(x, path, crops, MAX_FACES_IN_TEST, &n) != VG_OK)
        return fail("test");
    if (n == 0)
        printf("%s: no face found\n", path);
    int rc = 0;
    for (size_t i = 0; i < n && i < MAX_FACES_IN_TEST; i++) {
        struct vg_face_image img = as_image(&crops[i]);
        struct vg_face_match m = {0};
        if (x->m->ops->match(x->m->state, &img, &m) != VG_OK) {
            fail("test");
            rc = 1;
        } else if (m.matched) {
            printf("face %zu at %.2f,%.2f: %s (similarity %.2f)\n", i + 1, (double)crops[i].box.x,
                   (double)crops[i].box.y, m.person_id, (double)m.similarity);
        } else {
            printf("face %zu at %.2f,%.2f: unknown (best similarity %.2f)\n", i + 1,
                   (double)crops[i].box.x, (double)crops[i].box.y, (double)m.similarity);
        }
        crop_free(&crops[i]);
    }
    return rc;
}

static vg_status open_ctx(struct faces_ctx *x, struct ctl *c)
{
    memset(x, 0, sizeof(*x));
    x->c = c;
    vg_status st = vg_redis_create(&x->redis, c->cfg.redis_url, 2000);
    struct vg_face_env env = {.cfg = &c->cfg, .redis = x->redis};
    if (st == VG_OK)
        st = vg_face_matcher_open(&x->m, &env);
    if (st == VG_OK && !x->m->ops->enrol) {
        st = vg_errf(VG_ERR_CONFIG, "facematch.matcher is %s: set it to local, rekognition or "
                     "deepstack to enrol faces", x->m->ops->name);
    }
    if (st == VG_OK)
        st = vg_profiles_open(&x->profiles, &env);
    if (st == VG_OK)
        st = vg_face_finder_create(&x->finder, NULL);
    if (st == VG_OK)
        st = vg_jpeg_create(&x->jpeg);
    return st;
}

static void close_ctx(struct faces_ctx *x)
{
    vg_jpeg_destroy(x->jpeg);
    vg_face_finder_destroy(x->finder);
    vg_profiles_close(x->profiles);
    vg_face_matcher_close(x->m);
    vg_redis_destroy(x->redis);
}

vg_status ctl_face_crop_photo(struct ctl *c, const char *path, uint8_t **jpeg, size_t *len)
{
    struct faces_ctx x = {.c = c};
    struct crop one;
    vg_status st = vg_face_finder_create(&x.finder, NULL);
    if (st == VG_OK)
        st = vg_jpeg_create(&x.jpeg);
    if (st == VG_OK && (st = one_face(&x, path, &one)) == VG_OK) {
        *jpeg = one.jpeg;
        *len = one.jpeg_len;
        one.jpeg = NULL;
        crop_free(&one);
    }
    vg_jpeg_destroy(x.jpeg);
    vg_face_finder_destroy(x.finder);
    return st;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: vigilctl faces add NAME --image FILE [--image FILE ...] [--profile key=value ...]\n"
            "       vigilctl faces list | remove NAME | profile NAME | test IMAGE\n");
    return 2;
}

/* Names become Rekognition ExternalImageIds, Redis keys and DeepStack userids. */
static int name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n >= VG_FACE_ID_MAX || !strcmp(s, "unknown"))
        return 0;
    for (; *s; s++)
        if (!(*s >= 'a' && *s <= 'z') && !(*s >= 'A' && *s <= 'Z') && !(*s >= '0' && *s <= '9') &&
            !strchr("_.-:", *s))
            return 0;
    return 1;
}

int ctl_faces_is_aws_form(int argc, char **argv)
{
    if (argc < 2)
        return 0;
    const char *sub = argv[1];
    if (!strcmp(sub, "index") || !strcmp(sub, "create-collection") ||
        !strcmp(sub, "create-table"))
        return 1;
    if (strcmp(sub, "list") && strcmp(sub, "profile"))
        return 0;
    for (int i = 2; i < argc; i++)
        if (!strncmp(argv[i], "--collection", 12) || !strncmp(argv[i], "--table", 7))
            return 1;
    /* "faces profile <36-char FaceId>" of the Rekognition form. */
    return !strcmp(sub, "profile") && argc > 2 && strlen(argv[2]) == 36 &&
           argv[2][8] == '-' && argv[2][13] == '-';
}

int ctl_cmd_faces(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"image", required_argument, NULL, 'i'},
        {"profile", required_argument, NULL, 'p'},
        {NULL, 0, NULL, 0},
    };
    char *images[VG_FACE_MAX_IMAGES], *fields[VG_PROFILE_MAX_FIELDS];
    int n_images = 0, n_fields = 0, ch;
    if (argc < 2)
        return usage();
    const char *sub = argv[1];
    /* The subcommand plays argv[0]; optind 0 makes glibc start afresh. */
    int sargc = argc - 1;
    char **sargv = argv + 1;
    optind = 0;
    while ((ch = getopt_long(sargc, sargv, "i:p:", opts, NULL)) != -1) {
        if (ch == 'i' && n_images < VG_FACE_MAX_IMAGES)
            images[n_images++] = optarg;
        else if (ch == 'p' && n_fields < VG_PROFILE_MAX_FIELDS)
            fields[n_fields++] = optarg;
        else {
            fprintf(stderr, "vigilctl faces: at most %d --image and %d --profile\n",
                    VG_FACE_MAX_IMAGES, VG_PROFILE_MAX_FIELDS);
            return 2;
        }
    }
    const char *arg = optind < sargc ? sargv[optind] : NULL;
    int needs_arg = strcmp(sub, "list") != 0;
    if ((needs_arg && !arg) || (!strcmp(sub, "add") && n_images == 0))
        return usage();
    if (needs_arg && strcmp(sub, "test") && !name_ok(arg)) {
        fprintf(stderr, "vigilctl faces: \"%s\": a name is 1 to %d letters, digits and _ . - : "
                        "(and not \"unknown\")\n", arg, VG_FACE_ID_MAX - 1);
        return 2;
    }
    struct faces_ctx x;
    int rc = 1;
    if (open_ctx(&x, c) != VG_OK)
        rc = fail(sub);
    else if (!strcmp(sub, "add"))
        rc = cmd_add(&x, arg, images, n_images, fields, n_fields);
    else if (!strcmp(sub, "list"))
        rc = cmd_list(&x);
    else if (!strcmp(sub, "remove"))
        rc = cmd_remove(&x, arg);
    else if (!strcmp(sub, "profile"))
        rc = cmd_profile(&x, arg);
    else if (!strcmp(sub, "test"))
        rc = cmd_test(&x, arg);
    else
        rc = usage();
    close_ctx(&x);
    return rc;
}
