/* Photos as people have them (JPEG or PNG, any size up to a limit) into RGB,
 * for enrolment: OpenCV's imdecode behind a plain C interface. */
#ifndef VG_DETECT_IMDECODE_H
#define VG_DETECT_IMDECODE_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* "jpeg", "png", or NULL when data is neither (by its signature). */
const char *vg_image_kind(const void *data, size_t len);

/* Decode a JPEG or PNG into packed RGB24 (*rgb malloc'ed). VG_ERR_DECODE for
 * anything else or a corrupt image, VG_ERR_TOO_LARGE above max_pixels. */
vg_status vg_image_decode_rgb(const void *data, size_t len, size_t max_pixels, uint8_t **rgb,
                              int *width, int *height);

#endif
