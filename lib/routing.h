/* Routing and arming: which sinks an alert goes to (the top-level
 * "routing" section). Rules choose sinks by camera, label, known or unknown
 * person, person id, zone, arm mode and schedule; quiet hours silence a
 * rule for part of the day. A sink no rule names gets every alert, as if
 * there were no routing. Schedules are wall-clock times in the configured
 * time zone (tz.h), so they follow DST: "22:00" is 22:00 on both sides of
 * the change.
 *
 *   routing:
 *     mode: home                    # when nobody has armed yet
 *     modes: [night]                # named modes besides off, home, away
 *     rules:
 *       - name: intruder
 *         modes: [away, night]      # none: every mode
 *         labels: [person]
 *         persons: unknown          # any (default) | known | unknown
 *         sinks: [sms, telegram]
 *       - name: greet
 *         person_ids: [jesper]
 *         cameras: [front_door]
 *         days: [mon, tue, wed, thu, fri]
 *         from: "07:00"
 *         to: "19:00"
 *         quiet_hours: { from: "12:00", to: "13:00" }
 *         sinks: [telegram]
 *
 * Pure: no I/O; the notifier and vigilctl share it. */
#ifndef VG_ROUTING_H
#define VG_ROUTING_H

#include <stdint.h>

#include "config.h"
#include "status.h"
#include "vigil/v1/vigil.pb-c.h"

#define VG_ROUTE_MAX_RULES 32
#define VG_ROUTE_MAX_MODES 16
#define VG_ROUTE_MAX_ITEMS 16       /* cameras, labels, ... of one rule */
#define VG_ROUTE_MODE_MAX 32        /* bytes of a mode name */
#define VG_ROUTE_NOTE_MAX 256

enum vg_route_persons { VG_ROUTE_ANY = 0, VG_ROUTE_KNOWN, VG_ROUTE_UNKNOWN };

/* A daily time span on some weekdays; from > to spans midnight and belongs
 * to the day it starts on. */
struct vg_route_span {
    int set;                        /* 0: always */
    unsigned days;                  /* bit 0 = Sunday .. bit 6 = Saturday; 0x7f every day */
    int from_min, to_min;           /* minutes after local midnight */
};

struct vg_route_list {
    int n;
    char item[VG_ROUTE_MAX_ITEMS][VG_ID_MAX];
};

struct vg_route_rule {
    char name[VG_ID_MAX];
    int line;
    unsigned modes;                 /* bit per mode index; 0: every mode */
    struct vg_route_list cameras, labels, person_ids, zones;   /* n == 0: any */
    int persons;                    /* enum vg_route_persons */
    struct vg_route_span when;      /* when the rule applies */
    struct vg_route_span quiet;     /* within when: it does not send */
    uint32_t sinks;                 /* bit per notifier.sinks index */
};

struct vg_routing {
    int n_modes;
    char modes[VG_ROUTE_MAX_MODES][VG_ROUTE_MODE_MAX];  /* off, home, away, then the user's */
    int default_mode;               /* routing.mode, default home */
    int n_rules;
    struct vg_route_rule rules[VG_ROUTE_MAX_RULES];
    uint32_t routed;                /* sinks some rule names */
};

/* Read cfg's "routing" section (none: modes off/home/away, no rules). Sink
 * names refer to cfg->notifier.sinks; errors name file:line. */
vg_status vg_routing_load(struct vg_routing *r, const struct vg_config *cfg);

/* The index of mode name; -1 when it is not a mode. */
int vg_routing_mode(const struct vg_routing *r, const char *name);

/* "off, home, away, night" into out. */
void vg_routing_mode_names(const struct vg_routing *r, char *out, size_t cap);

struct vg_route_verdict {
    int send;
    const char *reason;             /* not sent: "arm_mode", "rule", "quiet_hours" */
    char note[VG_ROUTE_NOTE_MAX];   /* not sent: the sentence that says why */
    char rule[VG_ID_MAX];           /* sent: the first rule that sent it ("" unrouted) */
};

/* Should alert a (captured at its header's time, else at now_us) go to the
 * sink at index sink in arm mode `mode`? */
void vg_route(const struct vg_routing *r, int sink, const char *sink_name, int mode,
              const Vigil__V1__Alert *a, int64_t now_us, struct vg_route_verdict *v);

/* 1 when the span holds at local time tm (tz.h). */
struct tm;
int vg_route_span_holds(const struct vg_route_span *s, const struct tm *tm);

#endif
