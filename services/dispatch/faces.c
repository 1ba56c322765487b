/* Faces out: for person labels, the backend's face boxes (or the frontal-face
 * cascade on each person's box, unless the deciding stage was a local one that
 * already ran it), each cropped with a margin (seed 002 pads 25 px) and
 * published as a FaceCrop for facematch. */
#include <stdlib.h>

#include "disp.h"
#include "image/draw.h"
#include "log.h"

#define CROP_QUALITY 90

static size_t person_boxes(const struct vg_chain_out *out, struct vg_box *boxes, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < out->res.n && n < max; i++)
        if (out->res.labels[i].category == VG_CAT_PERSON && out->res.labels[i].box.w > 0)
            boxes[n++] = out->res.labels[i].box;
    return n;
}

static int inside_any(const struct vg_box *face, const struct vg_box *boxes, size_t n)
{
    float cx = face->x + face->w / 2, cy = face->y + face->h / 2;
    for (size_t i = 0; i < n; i++)
        if (cx >= boxes[i].x && cx <= boxes[i].x + boxes[i].w && cy >= boxes[i].y &&
            cy <= boxes[i].y + boxes[i].h)
            return 1;
    return 0;
}

/* 1 when the crop was published. */
static int publish_one(struct disp_worker *w, const Vigil__V1__Frame *f,
                       const struct vg_image *img, const struct vg_face_box *fb, uint32_t index,
                       const char *snapshot_url)
{
    struct disp *d = w->d;
    int ok = 0;
    const char *cam = f->header->camera_id;
    uint8_t *crop = NULL, *jpeg = NULL;
    size_t len = 0;
    char subject[256];
    struct vg_rect r = vg_rect_from_box(fb->box.x, fb->box.y, fb->box.w, fb->box.h,
                                        d->cfg->dispatch.face_margin_px, img->width,
                                        img->height);
    if (vg_rgb_crop(img->rgb, img->width, img->height, r, &crop) != VG_OK ||
        vg_jpeg_encode_rgb(w->jpeg, crop, r.w, r.h, CROP_QUALITY, &jpeg, &len) != VG_OK) {
        VG_WARN("face.crop_failed", cam, "%s", vg_err_detail());
        goto out;
    }
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__FaceCrop fc = VIGIL__V1__FACE_CROP__INIT;
    Vigil__V1__Box box = VIGIL__V1__BOX__INIT;
    vg_header_follow(&hdr, f->header);
    box.x = fb->box.x, box.y = fb->box.y, box.w = fb->box.w, box.h = fb->box.h;
    fc.header = &hdr;
    fc.frame_seq = f->seq;
    fc.index = index;
    fc.box = &box;
    fc.confidence = fb->confidence;
    fc.jpeg.data = jpeg;
    fc.jpeg.len = len;
    fc.snapshot_ref = (char *)snapshot_url;
    vg_subject(subject, sizeof(subject), d->cfg->prefix, "faces", cam);
    if (vg_bus_publish(vg_svc_bus(d->svc), subject, &fc.base) != VG_OK) {
        vg_counter_inc(d->publish_failed);
        VG_WARN("face.publish_failed", cam, "%s", vg_err_detail());
        goto out;
    }
    vg_counter_inc(d->faces_published);
    ok = 1;
out:
    free(crop);
    free(jpeg);
    return ok;
}

uint32_t disp_publish_faces(struct disp_worker *w, const Vigil__V1__Frame *f,
                            const struct vg_image *img, const struct vg_chain_out *out,
                            const char *snapshot_url)
{
    struct vg_box people[VG_DETECT_MAX_LABELS];
    struct vg_face_box found[VG_DETECT_MAX_FACES];
    const struct vg_face_box *faces = found;
    size_t n_people = person_boxes(out, people, VG_DETECT_MAX_LABELS), n = 0;
    size_t max = (size_t)w->d->cfg->dispatch.max_faces;
    if (n_people == 0 || max == 0)
        return 0;
    if (out->res.n_faces > 0) {
        faces = out->res.faces;     /* the backend found them itself */
        n = out->res.n_faces;
    } else if (!out->faces_searched && w->faces && vg_face_finder_run(w->faces, img, people, n_people, found,
                                              VG_DETECT_MAX_FACES, &n) != VG_OK) {
        VG_WARN("face.find_failed", f->header->camera_id, "%s", vg_err_detail());
        return 0;
    }
    uint32_t index = 0;
    for (size_t i = 0; i < n && index < max; i++)
        if (inside_any(&faces[i].box, people, n_people) &&
            publish_one(w, f, img, &faces[i], index, snapshot_url))
            index++;
    return index;
}
