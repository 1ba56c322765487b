#ifndef DEDUPE_H
#define DEDUPE_H

#include "svc.h"

extern const struct vg_service dedupe_service;

#endif
