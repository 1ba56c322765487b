/* vigil-console: the HTTP API the links in alerts point at (snapshots of an
 * fs store, clips assembled from the rolling recording) and the frame
 * fetcher; the web UI builds on it later. */
#ifndef CON_CONSOLE_H
#define CON_CONSOLE_H

#include "svc.h"

extern const struct vg_service console_service;

#endif
