/* The join of a frame's person label with its faces' identities. A
 * Detection with faces > 0 tells dedupe that face crops of the same frame
 * (the same camera and Header.trace_id) went to facematch; its person label
 * sighting is held here for up to wait_us so that an identity alert of the
 * same moment can stand for it (one notification, not two). Identities may
 * arrive before or after their detection; an entry is made by whichever
 * comes first.
 *
 * An identity that may raise an alert claims the entry first (the held
 * sighting then cannot time out under it), decides, and settles: stood
 * means it raised an alert, and the held sighting comes back to be dropped
 * (DD_JOIN_COVER). When every face of the frame is answered and none stood,
 * or the wait is over, the held sighting comes back to be handled alone
 * (DD_JOIN_ALONE): from a settle or answer, or from dd_join_expire, which
 * the service's loop calls a few times a second.
 *
 * The table is bounded (max entries, a linear scan: entries live for about
 * wait_us, so a handful per camera); when it is full the sighting is handled
 * at once (DD_JOIN_FULL). Held sightings are opaque to the table and freed
 * with free_held when it is destroyed. Thread-safe. */
#ifndef DD_JOIN_H
#define DD_JOIN_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

/* Longer trace ids are not joined: the sighting is handled at once. */
#define DD_JOIN_TRACE_MAX 64

enum dd_join_verdict {
    DD_JOIN_HELD = 0,   /* the table holds the sighting now */
    DD_JOIN_COVER,      /* an identity alert of the frame stands for it: drop it */
    DD_JOIN_ALONE,      /* handle it now, on its own */
    DD_JOIN_FULL,       /* the table is full (or closed): handle it now */
};

struct dd_join_stats {
    uint64_t full;      /* sightings and identities not joined: the table was full */
    size_t entries;     /* frames in the table */
    size_t held;        /* of which hold a sighting */
};

struct dd_join;

vg_status dd_join_create(struct dd_join **out, int max_entries, int64_t wait_us,
                         void (*free_held)(void *));
void dd_join_destroy(struct dd_join *j);

/* A person sighting of (camera, trace) whose detection announced faces
 * crops. DD_JOIN_HELD takes *held (and clears it); on any other verdict the
 * caller keeps it. now: monotonic µs. */
enum dd_join_verdict dd_join_detection(struct dd_join *j, const char *camera, const char *trace,
                                       uint32_t faces, void **held, int64_t now);

/* An identity of (camera, trace) that may raise an alert is about to be
 * decided. 1: claimed (settle it); 0: not joined (no trace, table full). */
int dd_join_claim(struct dd_join *j, const char *camera, const char *trace, int64_t now);

/* The claimed identity was decided; stood: it raised an alert. Returns the
 * held sighting the caller now owns, or NULL; *v says what to do with it
 * (DD_JOIN_COVER: drop it, DD_JOIN_ALONE: handle it now). */
void *dd_join_settle(struct dd_join *j, const char *camera, const char *trace, int stood,
                     int64_t now, enum dd_join_verdict *v);

/* An identity that raises no alert (an unknown face while those do not
 * alert): claim and settle in one. Returns a held sighting to handle alone,
 * or NULL. */
void *dd_join_answer(struct dd_join *j, const char *camera, const char *trace, int64_t now);

/* Take up to max held sightings whose wait is over (into out, the caller
 * owns them) and forget expired frames. Returns how many were taken. */
size_t dd_join_expire(struct dd_join *j, int64_t now, void **out, size_t max);

/* Stop holding: later detections get DD_JOIN_FULL, identities are not
 * joined. Returns up to max held sightings, as dd_join_expire (call until
 * it returns fewer than max). */
size_t dd_join_close(struct dd_join *j, void **out, size_t max);

void dd_join_get_stats(struct dd_join *j, struct dd_join_stats *out);

#endif
