/* JPEG encode/decode over libturbojpeg. Decoders are bounded: an image whose
 * header announces more than max_pixels is refused before any pixel buffer
 * is allocated, so a hostile JPEG cannot make a service allocate gigabytes. */
#ifndef VG_IMAGE_JPEG_H
#define VG_IMAGE_JPEG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Default bound for max_pixels = 0: 8192 x 8192. */
#define VG_JPEG_MAX_PIXELS_DEFAULT ((size_t)8192 * 8192)

/* Reusable codec state (turbojpeg handles and a scratch output buffer), so a
 * per-frame caller allocates nothing but the result. Not thread-safe: one per
 * thread. Every function below also accepts j == NULL and then uses a
 * temporary state (slower, fine for occasional calls). */
struct vg_jpeg;

vg_status vg_jpeg_create(struct vg_jpeg **out);
void vg_jpeg_destroy(struct vg_jpeg *j);

/* Encode a YUV 4:2:0 image from three planes (Y full size, U and V at half
 * width and height, rounded up) with their strides in bytes. The samples are
 * taken as full-range (JFIF) YCbCr. quality 1..100.
 * On success *out is a malloc'ed JPEG (caller frees) of *len bytes. */
vg_status vg_jpeg_encode_yuv420(struct vg_jpeg *j, const uint8_t *const planes[3],
                                const int strides[3], int width, int height, int quality,
                                uint8_t **out, size_t *len);

/* Encode packed RGB24 (stride = width * 3), 4:2:0. *out is malloc'ed. */
vg_status vg_jpeg_encode_rgb(struct vg_jpeg *j, const uint8_t *rgb, int width, int height,
                             int quality, uint8_t **out, size_t *len);

/* Read only the dimensions from a JPEG header. */
vg_status vg_jpeg_dims(struct vg_jpeg *j, const uint8_t *data, size_t len, int *width,
                       int *height);

/* Decode to 8-bit grey (1 byte per pixel) or packed RGB (3 bytes per pixel),
 * rows packed without padding (stride = width * channels). On success
 * *pixels is malloc'ed (caller frees). VG_ERR_TOO_LARGE when the image has
 * more than max_pixels pixels (0: VG_JPEG_MAX_PIXELS_DEFAULT), VG_ERR_DECODE
 * when the data is not a JPEG. A JPEG with recoverable damage (e.g. truncated
 * scan data) decodes with the damaged part left grey, like browsers do. */
vg_status vg_jpeg_decode_grey(struct vg_jpeg *j, const uint8_t *data, size_t len,
                              size_t max_pixels, uint8_t **pixels, int *width, int *height);
vg_status vg_jpeg_decode_rgb(struct vg_jpeg *j, const uint8_t *data, size_t len,
                             size_t max_pixels, uint8_t **pixels, int *width, int *height);

#endif
