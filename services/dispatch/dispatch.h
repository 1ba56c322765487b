#ifndef DISPATCH_H
#define DISPATCH_H

#include "svc.h"

extern const struct vg_service dispatch_service;

#endif
