/* Faces inside boxes (people found by a detector that reports no faces):
 * OpenCV's frontal-face cascade from Debian's opencv-data, run on each box's
 * part of the image. One per thread. */
#ifndef VG_DETECT_FACE_FINDER_H
#define VG_DETECT_FACE_FINDER_H

#include <stddef.h>

#include "detect/detector.h"
#include "status.h"

#define VG_FACE_CASCADE_DEFAULT "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml"

struct vg_face_finder;

/* cascade: an OpenCV cascade XML (NULL: VG_FACE_CASCADE_DEFAULT). A missing
 * or unreadable file fails here with the path in the detail. */
vg_status vg_face_finder_create(struct vg_face_finder **out, const char *cascade);
void vg_face_finder_destroy(struct vg_face_finder *f);

/* Faces inside boxes[0..n) (n 0: the whole image) into faces[0..max),
 * normalised to the whole image; *found gets the count. */
vg_status vg_face_finder_run(struct vg_face_finder *f, const struct vg_image *img,
                             const struct vg_box *boxes, size_t n, struct vg_face_box *faces,
                             size_t max, size_t *found);

#endif
