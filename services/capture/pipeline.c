#include "pipeline.h"

#include <stdlib.h>

#include <libavutil/imgutils.h>
#include <libavutil/pixdesc.h>
#include <libswscale/swscale.h>

#include "image/jpeg.h"
#include "mask.h"

/* How a frame becomes the YUV 4:2:0 full-range planes JPEG wants. */
enum yuv_path {
    YUV_AS_IS,      /* already full-range 4:2:0 at detect size: encode the frame's planes */
    YUV_EXPAND,     /* limited-range 4:2:0 at detect size: stretch the range by table */
    YUV_SCALE,      /* anything else: swscale */
};

struct cap_pipeline {
    const struct vg_camera_cfg *cam;
    /* The source geometry everything below was built for. */
    int src_w, src_h, src_fmt, src_full_range;
    int mw, mh, dw, dh;
    int grey_from_luma;     /* scale plane 0 alone (it is 8-bit luma) */
    enum yuv_path path;
    struct SwsContext *to_grey, *to_yuv;
    uint8_t *grey[4];
    int grey_ls[4];
    uint8_t *yuv[4];
    int yuv_ls[4];
    struct vg_motion *motion;
    struct vg_jpeg *jpeg;
    uint8_t luma_lut[256], chroma_lut[256]; /* limited (16..235/240) -> full range */
};

void cap_scaled_size(int src_w, int src_h, int max_w, int *w, int *h)
{
    int ow = src_w < max_w ? src_w : max_w;
    ow &= ~1;
    if (ow < 2)
        ow = 2;
    int oh = (int)(((int64_t)src_h * ow + src_w / 2) / src_w) & ~1;
    *w = ow;
    *h = oh < 2 ? 2 : oh;
}

static uint8_t clamp255(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

static void build_luts(struct cap_pipeline *p)
{
    for (int i = 0; i < 256; i++) {
        p->luma_lut[i] = clamp255(((i - 16) * 255 * 2 + 219) / (219 * 2));
        p->chroma_lut[i] = clamp255(128 + ((i - 128) * 255 * 2 + (i >= 128 ? 224 : -224)) /
                                              (224 * 2));
    }
}

static void free_geometry(struct cap_pipeline *p)
{
    sws_freeContext(p->to_grey);
    sws_freeContext(p->to_yuv);
    p->to_grey = p->to_yuv = NULL;
    av_freep(&p->grey[0]);
    av_freep(&p->yuv[0]);
    vg_motion_destroy(p->motion);
    p->motion = NULL;
    p->src_w = p->src_h = 0;
}

vg_status cap_pipeline_create(struct cap_pipeline **out, const struct vg_camera_cfg *cam)
{
    struct cap_pipeline *p = calloc(1, sizeof(*p));
    vg_status st = VG_ERR_NOMEM;
    if (!p) {
        st = vg_errf(VG_ERR_NOMEM, "pipeline: out of memory");
        goto out;
    }
    p->cam = cam;
    build_luts(p);
    st = vg_jpeg_create(&p->jpeg);
    if (st != VG_OK)
        goto out;
    *out = p;
    p = NULL;
out:
    cap_pipeline_destroy(p);
    return st;
}

void cap_pipeline_destroy(struct cap_pipeline *p)
{
    if (!p)
        return;
    free_geometry(p);
    vg_jpeg_destroy(p->jpeg);
    free(p);
}

void cap_pipeline_reset_motion(struct cap_pipeline *p) { vg_motion_reset(p->motion); }

/* ---- geometry: built for the first frame, rebuilt when the source changes -- */

static int full_range(const AVFrame *f)
{
    return f->color_range == AVCOL_RANGE_JPEG || f->format == AV_PIX_FMT_YUVJ420P ||
           f->format == AV_PIX_FMT_YUVJ422P || f->format == AV_PIX_FMT_YUVJ444P;
}

/* Plane 0 holds 8-bit luma (or grey) one byte per pixel: YUV planar, NV12... */
static int has_luma_plane(int fmt)
{
    const AVPixFmtDescriptor *d = av_pix_fmt_desc_get(fmt);
    return d && !(d->flags & (AV_PIX_FMT_FLAG_RGB | AV_PIX_FMT_FLAG_PAL)) &&
           d->comp[0].plane == 0 && d->comp[0].step == 1 && d->comp[0].depth == 8 &&
           d->comp[0].offset == 0 && d->comp[0].shift == 0;
}

/* A scaler whose destination is full range (JPEG and the grey motion image
 * both want 0..255); the source range is the frame's. */
static struct SwsContext *make_scaler(const AVFrame *f, int src_fmt, int w, int h, int dst_fmt,
                                      int flags)
{
    struct SwsContext *ctx = sws_getContext(f->width, f->height, src_fmt, w, h, dst_fmt, flags,
                                            NULL, NULL, NULL);
    if (!ctx)
        return NULL;
    int *inv, *table, src_range, dst_range, brightness, contrast, saturation;
    if (sws_getColorspaceDetails(ctx, &inv, &src_range, &table, &dst_range, &brightness,
                                 &contrast, &saturation) >= 0)
        sws_setColorspaceDetails(ctx, inv, src_fmt == AV_PIX_FMT_GRAY8 || full_range(f), table,
                                 1, brightness, contrast, saturation);
    return ctx;
}

static enum yuv_path choose_yuv_path(const struct cap_pipeline *p, const AVFrame *f)
{
    if (p->dw != f->width || p->dh != f->height)
        return YUV_SCALE;
    if (f->format == AV_PIX_FMT_YUVJ420P || (f->format == AV_PIX_FMT_YUV420P && full_range(f)))
        return YUV_AS_IS;
    return f->format == AV_PIX_FMT_YUV420P ? YUV_EXPAND : YUV_SCALE;
}

static vg_status build_scalers(struct cap_pipeline *p, const AVFrame *f)
{
    const char *name = av_get_pix_fmt_name(f->format);
    /* Luma alone is all motion needs: scaling one plane is ~3x cheaper.
     * Area averaging also averages away sensor noise. */
    p->grey_from_luma = has_luma_plane(f->format);
    p->to_grey = make_scaler(f, p->grey_from_luma ? AV_PIX_FMT_GRAY8 : f->format, p->mw, p->mh,
                             AV_PIX_FMT_GRAY8, SWS_AREA);
    if (p->path == YUV_SCALE)
        p->to_yuv = make_scaler(f, f->format, p->dw, p->dh, AV_PIX_FMT_YUVJ420P, SWS_BICUBIC);
    if (!p->to_grey || (p->path == YUV_SCALE && !p->to_yuv))
        return vg_errf(VG_ERR_MEDIA, "no scaler from %s %dx%d", name ? name : "?", f->width,
                       f->height);
    return VG_OK;
}

/* The masks are normalised, so they fit any motion size; rasterised here,
 * once per geometry. */
static vg_status apply_masks(struct cap_pipeline *p)
{
    const struct vg_camera_cfg *cam = p->cam;
    if (cam->n_motion_masks <= 0)
        return VG_OK;
    uint8_t *mask = malloc((size_t)p->mw * (size_t)p->mh);
    if (!mask)
        return vg_errf(VG_ERR_NOMEM, "pipeline: out of memory for the motion mask");
    cap_mask_rasterise(cam->motion_masks, cam->n_motion_masks, p->mw, p->mh, mask);
    vg_status st = vg_motion_set_mask(p->motion, mask, p->mw);
    free(mask);
    return st;
}

static vg_status make_motion(struct cap_pipeline *p, const AVFrame *f)
{
    const struct vg_camera_cfg *cam = p->cam;
    vg_status st = vg_motion_create(&p->motion, p->mw, p->mh, cam->motion_threshold,
                                    cam->motion_min_area, cam->motion_alpha);
    if (st == VG_OK && cam->motion_max_area > 0)
        st = vg_motion_set_max_area(p->motion, cam->motion_max_area);
    if (st == VG_OK)
        st = apply_masks(p);
    if (st != VG_OK) {
        char why[512]; /* vg_errf writes the detail it would read */
        snprintf(why, sizeof(why), "%s", vg_err_detail());
        return vg_errf(st, "frame %dx%d: %s", f->width, f->height, why);
    }
    return VG_OK;
}

static vg_status build_geometry(struct cap_pipeline *p, const AVFrame *f)
{
    const struct vg_camera_cfg *cam = p->cam;
    cap_scaled_size(f->width, f->height, cam->motion_width, &p->mw, &p->mh);
    cap_scaled_size(f->width, f->height, cam->detect_width, &p->dw, &p->dh);
    vg_status st = make_motion(p, f);
    if (st != VG_OK)
        return st;
    p->path = choose_yuv_path(p, f);
    st = build_scalers(p, f);
    if (st != VG_OK)
        return st;
    if (av_image_alloc(p->grey, p->grey_ls, p->mw, p->mh, AV_PIX_FMT_GRAY8, 32) < 0 ||
        (p->path != YUV_AS_IS &&
         av_image_alloc(p->yuv, p->yuv_ls, p->dw, p->dh, AV_PIX_FMT_YUVJ420P, 32) < 0))
        return vg_errf(VG_ERR_NOMEM, "pipeline: out of memory for %dx%d", p->dw, p->dh);
    p->src_w = f->width;
    p->src_h = f->height;
    p->src_fmt = f->format;
    p->src_full_range = full_range(f);
    return VG_OK;
}

static vg_status ensure_geometry(struct cap_pipeline *p, const AVFrame *f)
{
    if (p->src_w == f->width && p->src_h == f->height && p->src_fmt == f->format &&
        p->src_full_range == full_range(f))
        return VG_OK;
    if (f->width < VG_MOTION_MIN_DIM || f->height < VG_MOTION_MIN_DIM)
        return vg_errf(VG_ERR_MEDIA, "frame %dx%d is too small", f->width, f->height);
    free_geometry(p);
    vg_status st = build_geometry(p, f);
    if (st != VG_OK)
        free_geometry(p);
    return st;
}

/* ---- per frame ------------------------------------------------------------ */

static vg_status scale(struct SwsContext *ctx, const uint8_t *const src[], const int src_ls[],
                       int src_h, uint8_t *const dst[4], const int dst_ls[4])
{
    if (sws_scale(ctx, src, src_ls, 0, src_h, dst, dst_ls) <= 0)
        return vg_errf(VG_ERR_MEDIA, "scaling a frame of height %d failed", src_h);
    return VG_OK;
}

static vg_status make_grey(struct cap_pipeline *p, const AVFrame *f)
{
    const uint8_t *const *src = (const uint8_t *const *)f->data;
    return scale(p->to_grey, src, f->linesize, f->height, p->grey, p->grey_ls);
}

static void expand_plane(const uint8_t *src, int sls, uint8_t *dst, int dls, int w, int h,
                         const uint8_t lut[256])
{
    for (int y = 0; y < h; y++) {
        const uint8_t *s = src + (size_t)y * (size_t)sls;
        uint8_t *d = dst + (size_t)y * (size_t)dls;
        for (int x = 0; x < w; x++)
            d[x] = lut[s[x]];
    }
}

/* planes/strides: the full-range 4:2:0 image to encode. */
static vg_status make_yuv(struct cap_pipeline *p, const AVFrame *f, const uint8_t *planes[3],
                          int strides[3])
{
    const uint8_t *const *src = (const uint8_t *const *)f->data;
    uint8_t *const *from = f->data;
    const int *from_ls = f->linesize;
    if (p->path == YUV_EXPAND) {
        expand_plane(f->data[0], f->linesize[0], p->yuv[0], p->yuv_ls[0], p->dw, p->dh,
                     p->luma_lut);
        for (int i = 1; i < 3; i++)
            expand_plane(f->data[i], f->linesize[i], p->yuv[i], p->yuv_ls[i], p->dw / 2,
                         p->dh / 2, p->chroma_lut);
    } else if (p->path == YUV_SCALE) {
        vg_status st = scale(p->to_yuv, src, f->linesize, f->height, p->yuv, p->yuv_ls);
        if (st != VG_OK)
            return st;
    }
    if (p->path != YUV_AS_IS) {
        from = p->yuv;
        from_ls = p->yuv_ls;
    }
    for (int i = 0; i < 3; i++) {
        planes[i] = from[i];
        strides[i] = from_ls[i];
    }
    return VG_OK;
}

vg_status cap_pipeline_motion(struct cap_pipeline *p, const AVFrame *frame,
                              struct vg_motion_result *motion)
{
    vg_status st = ensure_geometry(p, frame);
    if (st == VG_OK)
        st = make_grey(p, frame);
    if (st == VG_OK)
        st = vg_motion_feed(p->motion, p->grey[0], p->grey_ls[0], motion);
    return st;
}

vg_status cap_pipeline_encode(struct cap_pipeline *p, const AVFrame *frame,
                              struct cap_output *out)
{
    const uint8_t *planes[3];
    int strides[3];
    uint8_t *jpeg = NULL;
    size_t len = 0;
    /* A no-op after cap_pipeline_motion on this frame; it keeps a caller
     * that skipped motion from encoding with another frame's geometry. */
    vg_status st = ensure_geometry(p, frame);
    if (st == VG_OK)
        st = make_yuv(p, frame, planes, strides);
    if (st == VG_OK)
        st = vg_jpeg_encode_yuv420(p->jpeg, planes, strides, p->dw, p->dh,
                                   p->cam->jpeg_quality, &jpeg, &len);
    if (st != VG_OK)
        return st;
    out->jpeg = jpeg;
    out->jpeg_len = len;
    out->width = p->dw;
    out->height = p->dh;
    return VG_OK;
}
