/* The evidence an alert points at, resolved when it is delivered: the
 * snapshot's link and bytes (the snapshot store seam) and the clip's link
 * (the clip provider seam). Links expire (pre-signed S3 GETs, KVS sessions)
 * and must never name this server's paths, so alerts carry store references
 * and each delivery asks for fresh links. */
#ifndef NTF_EVIDENCE_H
#define NTF_EVIDENCE_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

#define NTF_LINK_MAX 4096
#define NTF_SNAPSHOT_MAX (8u << 20)

struct ntf_evidence;

/* Open the snapshot store and the clip provider of cfg. */
vg_status ntf_evidence_open(struct ntf_evidence **out, const struct vg_config *cfg);
void ntf_evidence_close(struct ntf_evidence *e);

struct ntf_links {
    char snapshot[NTF_LINK_MAX];    /* "" = none */
    char clip[NTF_LINK_MAX];        /* "" = none */
};

/* Links for a, thread-safe. A link that cannot be made (no snapshot, a
 * camera that does not record, KVS down) is left empty and counted: the
 * alert still goes out. */
void ntf_evidence_links(struct ntf_evidence *e, const Vigil__V1__Alert *a, struct ntf_links *l);

/* The snapshot's JPEG bytes for sinks that attach it (malloc'ed, at most
 * NTF_SNAPSHOT_MAX), or NULL when there is none or it cannot be read. */
uint8_t *ntf_evidence_snapshot(struct ntf_evidence *e, const Vigil__V1__Alert *a, size_t *len);

#endif
