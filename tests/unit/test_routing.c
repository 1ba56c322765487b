/* Routing and arming (lib/routing.c): rules by camera, label, known and
 * unknown people, person id and zone; arm modes; schedules and quiet hours
 * in the configured time zone, across both DST changes; the reason and the
 * sentence of every "not sent"; configuration errors with file:line. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "routing.h"
#include "tz.h"

static struct vg_config cfg;
static struct vg_routing rt;
static char path[64];

static const char SINKS[] =
    "cameras:\n"
    "  - { id: front_door, url: /dev/null }\n"
    "  - { id: garden, url: /dev/null }\n"
    "notifier:\n"
    "  sinks:\n"
    "    - { name: sms, type: file, path: /tmp/sms.jsonl }\n"
    "    - { name: telegram, type: file, path: /tmp/tg.jsonl }\n"
    "    - { name: audit, type: file, path: /tmp/audit.jsonl }\n";

/* Load SINKS + text as a file (routing is read from the file, as the
 * services do). */
static vg_status load(const char *text)
{
    snprintf(path, sizeof(path), "/tmp/vigil-routing-XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *f = fdopen(fd, "w");
    fputs(SINKS, f);
    fputs(text, f);
    fclose(f);
    vg_status st = vg_cfg_load(&cfg, path);
    if (st == VG_OK)
        st = vg_routing_load(&rt, &cfg);
    unlink(path);
    return st;
}

static void assert_load_error(const char *text, const char *want)
{
    assert_int_not_equal(load(text), VG_OK);
    if (!strstr(vg_err_detail(), want))
        fail_msg("error \"%s\" does not contain \"%s\"", vg_err_detail(), want);
}

/* An alert captured at local time "YYYY-MM-DD HH:MM" of the current zone. */
static int64_t local_us(const char *when)
{
    struct tm tm;
    memset(&tm, 0, sizeof(tm));
    assert_non_null(strptime(when, "%Y-%m-%d %H:%M", &tm));
    tm.tm_isdst = -1;
    return (int64_t)mktime(&tm) * 1000000;
}

struct alert {
    Vigil__V1__Alert a;
    Vigil__V1__Header h;
    char *zones[2];
};

static Vigil__V1__Alert *alert(struct alert *x, const char *camera, const char *label,
                               const char *person, const char *zone, const char *when)
{
    vigil__v1__alert__init(&x->a);
    vigil__v1__header__init(&x->h);
    x->h.camera_id = (char *)camera;
    x->h.capture_ts_us = when ? local_us(when) : 0;
    x->a.header = &x->h;
    x->a.alert_id = "a1";
    x->a.label = (char *)label;
    x->a.person_id = (char *)(person ? person : "");
    if (zone) {
        x->zones[0] = (char *)zone;
        x->a.zones = x->zones;
        x->a.n_zones = 1;
    }
    return &x->a;
}

static int sink_index(const char *name)
{
    for (int i = 0; i < cfg.notifier.n_sinks; i++)
        if (!strcmp(cfg.notifier.sinks[i].name, name))
            return i;
    fail_msg("no sink %s", name);
    return -1;
}

static void route(const char *sink, const char *mode, const Vigil__V1__Alert *a,
                  struct vg_route_verdict *v)
{
    int m = vg_routing_mode(&rt, mode);
    assert_true(m >= 0);
    vg_route(&rt, sink_index(sink), sink, m, a, 0, v);
}

static void expect_skip(const char *sink, const char *mode, const Vigil__V1__Alert *a,
                        const char *reason, const char *note_part)
{
    struct vg_route_verdict v;
    route(sink, mode, a, &v);
    assert_false(v.send);
    assert_string_equal(v.reason, reason);
    if (!strstr(v.note, note_part))
        fail_msg("note \"%s\" does not contain \"%s\"", v.note, note_part);
}

static void expect_send(const char *sink, const char *mode, const Vigil__V1__Alert *a)
{
    struct vg_route_verdict v;
    route(sink, mode, a, &v);
    if (!v.send)
        fail_msg("%s in %s not sent: %s (%s)", sink, mode, v.note, v.reason);
}

static const char AWAY_HOME[] =
    "timezone: Europe/Berlin\n"
    "routing:\n"
    "  mode: home\n"
    "  modes: [night]\n"
    "  rules:\n"
    "    - name: intruder\n"
    "      modes: [away, night]\n"
    "      labels: [person]\n"
    "      persons: unknown\n"
    "      sinks: [sms, telegram]\n"
    "    - name: doorbell\n"
    "      cameras: [front_door]\n"
    "      labels: [person]\n"
    "      sinks: [telegram]\n";

static void no_routing_sends_everything(void **state)
{
    (void)state;
    struct alert x;
    assert_int_equal(load(""), VG_OK);
    assert_int_equal(rt.n_rules, 0);
    assert_int_equal(rt.n_modes, 3);
    assert_string_equal(rt.modes[rt.default_mode], "home");
    expect_send("sms", "off", alert(&x, "garden", "pet", NULL, NULL, NULL));
}

static void arm_modes_choose_rules(void **state)
{
    (void)state;
    struct alert x;
    assert_int_equal(load(AWAY_HOME), VG_OK);
    assert_int_equal(rt.n_modes, 4);
    Vigil__V1__Alert *a = alert(&x, "front_door", "person", NULL, NULL, NULL);
    /* away: both sinks; home: the doorbell rule only. */
    expect_send("sms", "away", a);
    expect_send("telegram", "away", a);
    expect_skip("sms", "home", a, "arm_mode", "arm mode is home; intruder sends to sms only in "
                "away, night");
    expect_send("telegram", "home", a);
    expect_send("sms", "night", a);
    /* A sink no rule names gets everything. */
    expect_send("audit", "off", a);
}

static void filters_say_why(void **state)
{
    (void)state;
    struct alert x;
    assert_int_equal(load(AWAY_HOME), VG_OK);
    expect_skip("sms", "away", alert(&x, "garden", "pet", NULL, NULL, NULL), "rule",
                "intruder: label pet is not one of person");
    expect_skip("sms", "away", alert(&x, "garden", "person", "jesper", NULL, NULL), "rule",
                "it wants unknown people, this is jesper");
    /* The doorbell rule got further (mode matched) than intruder for a
     * known person at the door in home mode: its reason is the one. */
    expect_skip("telegram", "home", alert(&x, "garden", "person", NULL, NULL, NULL), "rule",
                "doorbell: camera garden is not one of front_door");
}

static void person_ids_and_zones(void **state)
{
    (void)state;
    struct alert x;
    assert_int_equal(load("routing:\n"
                          "  rules:\n"
                          "    - { name: greet, person_ids: [jesper, ana], sinks: [telegram] }\n"
                          "    - { name: porch, zones: [porch], persons: known, sinks: [sms] }\n"),
                     VG_OK);
    expect_send("telegram", "off", alert(&x, "garden", "person", "ana", NULL, NULL));
    expect_skip("telegram", "off", alert(&x, "garden", "person", "bob", NULL, NULL), "rule",
                "person bob is not one of jesper, ana");
    expect_skip("telegram", "off", alert(&x, "garden", "person", NULL, NULL, NULL), "rule",
                "person (unknown) is not one of jesper, ana");
    expect_send("sms", "off", alert(&x, "garden", "person", "bob", "porch", NULL));
    expect_skip("sms", "off", alert(&x, "garden", "person", "bob", "lawn", NULL), "rule",
                "no zone of it is among porch");
}

static const char QUIET[] =
    "timezone: Europe/Berlin\n"
    "routing:\n"
    "  rules:\n"
    "    - name: night-watch\n"
    "      days: [fri, sat]\n"
    "      from: \"22:00\"\n"
    "      to: \"06:00\"\n"
    "      sinks: [sms]\n"
    "    - name: daytime\n"
    "      days: weekdays\n"
    "      from: \"07:00\"\n"
    "      to: \"19:00\"\n"
    "      quiet_hours: { from: \"12:00\", to: \"13:00\" }\n"
    "      sinks: [telegram]\n";

static void schedules_and_quiet_hours(void **state)
{
    (void)state;
    struct alert x;
    assert_int_equal(load(QUIET), VG_OK);
    /* 2026-12-04 is a Friday. Over midnight belongs to the day it starts. */
    expect_send("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-04 23:30"));
    expect_send("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-05 05:59"));
    expect_send("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-06 03:00"));
    expect_skip("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-07 03:00"),
                "rule", "night-watch applies fri,sat 22:00-06:00; it was mon 03:00");
    expect_skip("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-04 21:59"),
                "rule", "it was fri 21:59");
    expect_send("telegram", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-04 11:59"));
    expect_skip("telegram", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-04 12:30"),
                "quiet_hours", "daytime: quiet hours 12:00-13:00 (it was 12:30)");
    expect_send("telegram", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-04 13:00"));
    expect_skip("telegram", "off", alert(&x, "garden", "person", NULL, NULL, "2026-12-05 12:00"),
                "rule", "it was sat 12:00");
}

/* Wall-clock schedules hold on both sides of a DST change: 22:00 is 22:00
 * in CET and in CEST, and the short and long nights are handled. */
static void schedules_across_dst(void **state)
{
    (void)state;
    struct alert x;
    assert_int_equal(load("timezone: Europe/Berlin\n"
                          "routing:\n"
                          "  rules:\n"
                          "    - { name: night, from: \"22:00\", to: \"06:00\", sinks: [sms] }\n"),
                     VG_OK);
    /* Spring forward: Sunday 2026-03-29, 02:00 CET -> 03:00 CEST. */
    int64_t before = local_us("2026-03-29 01:30"), after = local_us("2026-03-29 03:30");
    assert_int_equal(after - before, 3600LL * 1000000);    /* one real hour apart */
    expect_send("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-03-29 05:59"));
    expect_skip("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-03-29 06:00"),
                "rule", "it was sun 06:00");
    /* 22:00 the day after the change is CEST, still the start. */
    expect_send("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-03-29 22:00"));
    /* Fall back: Sunday 2026-10-25, 03:00 CEST -> 02:00 CET; 02:30 occurs
     * twice, both inside the night; 06:00 CET ends it. */
    struct tm tm;
    int64_t t = local_us("2026-10-25 01:59") + 90LL * 60 * 1000000;   /* 90 real minutes later */
    vg_tz_local(t, &tm);
    assert_int_equal(tm.tm_hour, 2);                        /* 02:29 the second time (CET) */
    x.h.capture_ts_us = t;
    expect_send("sms", "off", &x.a);
    expect_skip("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-10-25 06:01"),
                "rule", "it was sun 06:01");
    /* And in New York, whose change is on other dates. */
    assert_int_equal(load("timezone: America/New_York\n"
                          "routing:\n"
                          "  rules:\n"
                          "    - { name: evening, from: \"18:00\", to: \"23:00\", sinks: [sms] }\n"),
                     VG_OK);
    expect_send("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-03-08 18:00"));
    expect_skip("sms", "off", alert(&x, "garden", "person", NULL, NULL, "2026-03-08 17:59"),
                "rule", "evening applies 18:00-23:00");
}

static void config_errors_name_the_line(void **state)
{
    (void)state;
    assert_load_error("routing:\n  rules:\n    - { sinks: [pager] }\n",
                      ":11: routing: sink \"pager\" is not in notifier.sinks");
    assert_load_error("routing:\n  rules:\n    - { modes: [vacation], sinks: [sms] }\n",
                      "unknown mode \"vacation\" (modes: off, home, away; name your own");
    assert_load_error("routing:\n  rules:\n    - { cameras: [attic], sinks: [sms] }\n",
                      "camera \"attic\" is not configured");
    assert_load_error("routing:\n  rules:\n    - { from: \"25:00\", sinks: [sms] }\n",
                      "a time is \"HH:MM\"");
    assert_load_error("routing:\n  rules:\n    - { days: [someday], sinks: [sms] }\n",
                      "\"someday\" is not a day");
    assert_load_error("routing:\n  rules:\n    - { labels: [person] }\n", "sends to no sink");
    assert_load_error("routing:\n  rules:\n    - { label: [person], sinks: [sms] }\n",
                      ":11: routing: a rule has no key \"label\"");
    assert_load_error("routing:\n  mode: party\n", "routing.mode must be one of off, home, away");
    assert_load_error("routing:\n  modes: [\"Bad Mode\"]\n", "must be 1..31 of a-z");
    assert_load_error("timezone: Mars/Olympus\n", "timezone \"Mars/Olympus\" is not in the");
    assert_int_equal(load("timezone: UTC\n"), VG_OK);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(no_routing_sends_everything),
        cmocka_unit_test(arm_modes_choose_rules),
        cmocka_unit_test(filters_say_why),
        cmocka_unit_test(person_ids_and_zones),
        cmocka_unit_test(schedules_and_quiet_hours),
        cmocka_unit_test(schedules_across_dst),
        cmocka_unit_test(config_errors_name_the_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
