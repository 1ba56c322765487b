#ifndef FACEMATCH_H
#define FACEMATCH_H

#include "svc.h"

extern const struct vg_service facematch_service;

#endif
