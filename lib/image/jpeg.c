#include "image/jpeg.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include <turbojpeg.h>

struct vg_jpeg {
    tjhandle enc;
    tjhandle dec;
    unsigned char *scratch;     /* tjAlloc'ed, reused (and grown) by turbojpeg */
    unsigned long scratch_len;
};

vg_status vg_jpeg_create(struct vg_jpeg **out)
{
    struct vg_jpeg *j = calloc(1, sizeof(*j));
    if (!j)
        return vg_errf(VG_ERR_NOMEM, "jpeg: out of memory");
    *out = j;
    return VG_OK;
}

void vg_jpeg_destroy(struct vg_jpeg *j)
{
    if (!j)
        return;
    if (j->enc)
        tjDestroy(j->enc);
    if (j->dec)
        tjDestroy(j->dec);
    tjFree(j->scratch);
    free(j);
}

/* Handles are created on first use: a decode-only user never pays for an encoder. */
static vg_status need_handle(tjhandle *h, int encoder)
{
    if (*h)
        return VG_OK;
    *h = encoder ? tjInitCompress() : tjInitDecompress();
    if (!*h)
        return vg_errf(VG_ERR_NOMEM, "jpeg: cannot create turbojpeg handle: %s",
                       tjGetErrorStr2(NULL));
    return VG_OK;
}

static vg_status encode(struct vg_jpeg *j, const uint8_t *const planes[3], const int strides[3],
                        int width, int height, int quality, uint8_t **out, size_t *len)
{
    vg_status st = need_handle(&j->enc, 1);
    if (st != VG_OK)
        return st;
    const unsigned char *src[3] = {planes[0], planes[1], planes[2]};
    if (tjCompressFromYUVPlanes(j->enc, src, width, strides, height, TJSAMP_420, &j->scratch,
                                &j->scratch_len, quality, 0) != 0)
        return vg_errf(VG_ERR_MEDIA, "jpeg encode %dx%d: %s", width, height,
                       tjGetErrorStr2(j->enc));
    /* Copy out of the scratch buffer: callers get plain malloc'ed memory
     * and the scratch buffer keeps its size for the next frame. */
    uint8_t *buf = malloc(j->scratch_len);
    if (!buf)
        return vg_errf(VG_ERR_NOMEM, "jpeg: out of memory (%lu bytes)", j->scratch_len);
    memcpy(buf, j->scratch, j->scratch_len);
    *out = buf;
    *len = j->scratch_len;
    return VG_OK;
}

/* Callers may pass no handle: make a temporary one in *tmp (freed by them). */
static vg_status use_or_make(struct vg_jpeg **j, struct vg_jpeg **tmp)
{
    if (*j)
        return VG_OK;
    vg_status st = vg_jpeg_create(tmp);
    if (st == VG_OK)
        *j = *tmp;
    return st;
}

vg_status vg_jpeg_encode_yuv420(struct vg_jpeg *j, const uint8_t *const planes[3],
                                const int strides[3], int width, int height, int quality,
                                uint8_t **out, size_t *len)
{
    struct vg_jpeg *tmp = NULL;
    vg_status st = VG_ERR_INVALID;

    if (!planes || !planes[0] || !planes[1] || !planes[2] || !strides || !out || !len ||
        width <= 0 || height <= 0 || quality < 1 || quality > 100) {
        st = vg_errf(VG_ERR_INVALID, "jpeg encode: bad arguments (%dx%d, quality %d)", width,
                     height, quality);
        goto out;
    }
    if ((st = use_or_make(&j, &tmp)) != VG_OK)
        goto out;
    st = encode(j, planes, strides, width, height, quality, out, len);
out:
    vg_jpeg_destroy(tmp);
    return st;
}

vg_status vg_jpeg_encode_rgb(struct vg_jpeg *j, const uint8_t *rgb, int width, int height,
                             int quality, uint8_t **out, size_t *len)
{
    struct vg_jpeg *tmp = NULL;
    vg_status st = VG_ERR_INVALID;
    if (!rgb || !out || !len || width <= 0 || height <= 0 || quality < 1 || quality > 100) {
        st = vg_errf(VG_ERR_INVALID, "jpeg encode: bad arguments (%dx%d, quality %d)", width,
                     height, quality);
        goto out;
    }
    if ((st = use_or_make(&j, &tmp)) != VG_OK || (st = need_handle(&j->enc, 1)) != VG_OK)
        goto out;
    if (tjCompress2(j->enc, rgb, width, width * 3, height, TJPF_RGB, &j->scratch,
                    &j->scratch_len, TJSAMP_420, quality, 0) != 0) {
        st = vg_errf(VG_ERR_MEDIA, "jpeg encode %dx%d: %s", width, height,
                     tjGetErrorStr2(j->enc));
        goto out;
    }
    if (!(*out = malloc(j->scratch_len))) {
        st = vg_errf(VG_ERR_NOMEM, "jpeg: out of memory (%lu bytes)", j->scratch_len);
        goto out;
    }
    memcpy(*out, j->scratch, j->scratch_len);
    *len = j->scratch_len;
    st = VG_OK;
out:
    vg_jpeg_destroy(tmp);
    return st;
}

static vg_status read_dims(tjhandle h, const uint8_t *data, size_t len, int *width,
                           int *height)
{
    int w = 0, hh = 0, subsamp = 0, colorspace = 0;
    if (len > ULONG_MAX)
        return vg_errf(VG_ERR_TOO_LARGE, "jpeg: %zu bytes", len);
    if (tjDecompressHeader3(h, data, (unsigned long)len, &w, &hh, &subsamp, &colorspace) != 0)
        return vg_errf(VG_ERR_DECODE, "jpeg header: %s", tjGetErrorStr2(h));
    if (w <= 0 || hh <= 0)
        return vg_errf(VG_ERR_DECODE, "jpeg header: bad dimensions %dx%d", w, hh);
    *width = w;
    *height = hh;
    return VG_OK;
}

vg_status vg_jpeg_dims(struct vg_jpeg *j, const uint8_t *data, size_t len, int *width,
                       int *height)
{
    struct vg_jpeg *tmp = NULL;
    vg_status st = VG_ERR_INVALID;

    if (!data || len == 0) {
        st = vg_errf(VG_ERR_DECODE, "jpeg: empty input");
        goto out;
    }
    if ((st = use_or_make(&j, &tmp)) != VG_OK)
        goto out;
    st = need_handle(&j->dec, 0);
    if (st == VG_OK)
        st = read_dims(j->dec, data, len, width, height);
out:
    vg_jpeg_destroy(tmp);
    return st;
}

static vg_status decode(struct vg_jpeg *j, const uint8_t *data, size_t len, size_t max_pixels,
                        int pixel_format, uint8_t **pixels, int *width, int *height)
{
    uint8_t *buf = NULL;
    int w = 0, h = 0;
    const int channels = tjPixelSize[pixel_format];
    vg_status st = need_handle(&j->dec, 0);
    if (st != VG_OK)
        goto out;
    st = vg_jpeg_dims(j, data, len, &w, &h);
    if (st != VG_OK)
        goto out;
    if (max_pixels == 0)
        max_pixels = VG_JPEG_MAX_PIXELS_DEFAULT;
    if ((size_t)w * (size_t)h > max_pixels) {
        st = vg_errf(VG_ERR_TOO_LARGE, "jpeg: %dx%d is more than %zu pixels", w, h, max_pixels);
        goto out;
    }
    buf = malloc((size_t)w * (size_t)h * (size_t)channels);
    if (!buf) {
        st = vg_errf(VG_ERR_NOMEM, "jpeg: out of memory for %dx%d", w, h);
        goto out;
    }
    /* A warning (e.g. premature end of data) still yields an image; only a
     * fatal error is a decode failure. */
    if (tjDecompress2(j->dec, data, (unsigned long)len, buf, w, w * channels, h, pixel_format,
                      TJFLAG_FASTDCT) != 0 &&
        tjGetErrorCode(j->dec) != TJERR_WARNING) {
        st = vg_errf(VG_ERR_DECODE, "jpeg decode %dx%d: %s", w, h, tjGetErrorStr2(j->dec));
        goto out;
    }
    *pixels = buf;
    buf = NULL;
    *width = w;
    *height = h;
    st = VG_OK;
out:
    free(buf);
    return st;
}

static vg_status decode_as(struct vg_jpeg *j, const uint8_t *data, size_t len,
                           size_t max_pixels, int pixel_format, uint8_t **pixels, int *width,
                           int *height)
{
    struct vg_jpeg *tmp = NULL;
    vg_status st = VG_ERR_INVALID;

    if (!pixels || !width || !height) {
        st = vg_errf(VG_ERR_INVALID, "jpeg decode: bad arguments");
        goto out;
    }
    if ((st = use_or_make(&j, &tmp)) != VG_OK)
        goto out;
    st = decode(j, data, len, max_pixels, pixel_format, pixels, width, height);
out:
    vg_jpeg_destroy(tmp);
    return st;
}

vg_status vg_jpeg_decode_grey(struct vg_jpeg *j, const uint8_t *data, size_t len,
                              size_t max_pixels, uint8_t **pixels, int *width, int *height)
{
    return decode_as(j, data, len, max_pixels, TJPF_GRAY, pixels, width, height);
}

vg_status vg_jpeg_decode_rgb(struct vg_jpeg *j, const uint8_t *data, size_t len,
                             size_t max_pixels, uint8_t **pixels, int *width, int *height)
{
    return decode_as(j, data, len, max_pixels, TJPF_RGB, pixels, width, height);
}
