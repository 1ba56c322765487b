/* vigil-capture: one camera in, sampled frames with motion and a JPEG out. */
#ifndef CAP_CAPTURE_H
#define CAP_CAPTURE_H

#include "svc.h"

extern const struct vg_service capture_service;

#endif
