/* Camera incidents against a real redis-server: the first alert opens one,
 * later alerts join it with the escalation rules (a new known person, else a
 * new category), a join is done once per alert, a flush adds a replica's
 * suppressed sightings (count, latest, best snapshot), the gap ends it and
 * only one caller closes it; and the service's side: sightings added up in
 * memory and flushed at most once a second, kept while Redis is away; and
 * the alert's pending record rewritten with its incident fields. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "bus.h"
#include "fixture.h"
#include "incident.h"
#include "pending.h"
#include "window.h"

#define PREFIX "ti"
#define GAP_MS 300

static struct fixture_redis fx;

static int setup(void **state)
{
    (void)state;
    return fixture_redis_up(&fx);
}

static int teardown(void **state)
{
    (void)state;
    fixture_redis_down(&fx);
    return 0;
}

static void assert_vg_ok(vg_status st)
{
    if (st != VG_OK)
        fail_msg("%s: %s", vg_status_str(st), vg_err_detail());
}

/* Join an alert of camera cam; the caller cleans j up. */
static void join(const char *cam, const char *id, const char *label, const char *person,
                 float conf, int64_t ts, struct dd_incident_join *j)
{
    char snap[64];
    snprintf(snap, sizeof(snap), "file:///%s.jpg", id);
    struct dd_incident_alert a = {
        .alert_id = id,
        .label = label,
        .person_id = person,
        .display_name = person ? (person[0] == 'a' ? "Alice" : "Bob") : "",
        .trace_id = "trace-of-" PREFIX,
        .snapshot_url = snap,
        .ts_us = ts,
        .confidence = conf,
    };
    assert_vg_ok(dd_incident_join_alert(fx.r, PREFIX, cam, &a, GAP_MS, j));
}

static int has(char *const *list, size_t n, const char *s)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}

static void first_alert_opens(void **state)
{
    (void)state;
    struct dd_incident_join j;
    join("open", "a1", "person", NULL, 0.8f, 1000, &j);
    assert_int_equal(j.kind, DD_INCIDENT_OPENED);
    assert_string_equal(j.escalation, "");
    assert_int_equal(j.count, 1);
    assert_string_equal(j.now.id, "a1");
    assert_true(j.now.open);
    assert_int_equal(j.now.alerts, 1);
    assert_int_equal(j.now.count, 1);
    assert_int_equal(j.now.opened_ts_us, 1000);
    assert_int_equal(j.now.last_seen_ts_us, 1000);
    assert_int_equal(j.now.n_labels, 1);
    assert_string_equal(j.now.labels[0], "person");
    assert_int_equal(j.now.n_persons, 0);
    assert_string_equal(j.now.best_snapshot_url, "file:///a1.jpg");
    assert_string_equal(j.ended.id, "");
    dd_incident_join_cleanup(&j);
}

static void later_alerts_join_and_escalate(void **state)
{
    (void)state;
    struct dd_incident_join j;
    join("esc", "b1", "person", NULL, 0.7f, 1000, &j);
    dd_incident_join_cleanup(&j);

    /* The same category again: joins, no escalation. */
    join("esc", "b2", "person", NULL, 0.6f, 2000, &j);
    assert_int_equal(j.kind, DD_INCIDENT_JOINED);
    assert_string_equal(j.escalation, "");
    assert_int_equal(j.count, 2);
    assert_string_equal(j.now.id, "b1");
    dd_incident_join_cleanup(&j);

    /* A category the incident has not seen. */
    join("esc", "b3", "package", NULL, 0.9f, 3000, &j);
    assert_string_equal(j.escalation, DD_ESCALATION_CATEGORY);
    assert_string_equal(j.now.escalation, DD_ESCALATION_CATEGORY);
    assert_int_equal(j.now.n_labels, 2);
    assert_string_equal(j.now.labels[1], "package");
    /* The most confident alert so far is the best snapshot. */
    assert_string_equal(j.now.best_snapshot_url, "file:///b3.jpg");
    assert_string_equal(j.now.best_label, "package");
    dd_incident_join_cleanup(&j);

    /* A known person is recognised (the label person is not new). */
    join("esc", "b4", "person", "alice", 0.5f, 4000, &j);
    assert_string_equal(j.escalation, DD_ESCALATION_FACE);
    assert_int_equal(j.now.n_persons, 1);
    assert_string_equal(j.now.person_ids[0], "alice");
    assert_string_equal(j.now.display_names[0], "Alice");
    dd_incident_join_cleanup(&j);

    /* The same person again: nothing new. */
    join("esc", "b5", "person", "alice", 0.5f, 5000, &j);
    assert_string_equal(j.escalation, "");
    /* The incident keeps its latest escalation. */
    assert_string_equal(j.now.escalation, DD_ESCALATION_FACE);
    dd_incident_join_cleanup(&j);

    /* A new person with a new category: the face is the escalation, the
     * category is listed too. */
    join("esc", "b6", "pet", "bob", 0.5f, 6000, &j);
    assert_string_equal(j.escalation, DD_ESCALATION_FACE);
    assert_true(has(j.now.labels, j.now.n_labels, "pet"));
    assert_true(has(j.now.person_ids, j.now.n_persons, "bob"));
    dd_incident_join_cleanup(&j);

    join("esc", "b7", "pet", NULL, 0.5f, 500, &j);
    assert_string_equal(j.escalation, "");
    assert_int_equal(j.count, 7);
    assert_int_equal(j.now.alerts, 7);
    assert_int_equal(j.now.n_labels, 3);
    assert_int_equal(j.now.n_persons, 2);
    /* An older capture time does not move the latest back. */
    assert_int_equal(j.now.last_seen_ts_us, 6000);
    assert_int_equal(j.now.opened_ts_us, 1000);
    dd_incident_join_cleanup(&j);
}

static void an_alert_joins_once(void **state)
{
    (void)state;
    struct dd_incident_join j;
    join("idem", "c1", "person", NULL, 0.7f, 1000, &j);
    dd_incident_join_cleanup(&j);
    join("idem", "c2", "vehicle", NULL, 0.7f, 2000, &j);
    assert_string_equal(j.escalation, DD_ESCALATION_CATEGORY);
    dd_incident_join_cleanup(&j);

    /* A retry (or a second replica) with the same alert: the answer of
     * the first join, and nothing counted twice. */
    for (int i = 0; i < 2; i++) {
        join("idem", "c2", "vehicle", NULL, 0.7f, 2000, &j);
        assert_int_equal(j.kind, DD_INCIDENT_ALREADY);
        assert_string_equal(j.escalation, DD_ESCALATION_CATEGORY);
        assert_int_equal(j.count, 2);
        assert_string_equal(j.now.id, "c1");
        assert_int_equal(j.now.count, 2);
        assert_int_equal(j.now.alerts, 2);
        dd_incident_join_cleanup(&j);
    }
    join("idem", "c1", "person", NULL, 0.7f, 1000, &j);
    assert_int_equal(j.kind, DD_INCIDENT_ALREADY);
    assert_int_equal(j.count, 1);
    dd_incident_join_cleanup(&j);
}

static void flush(const char *cam, uint64_t n, int64_t ts, float best, const char *snap,
                  struct dd_incident_answer *ans)
{
    struct dd_incident_batch b = {
        .count = n,
        .first_age_ms = 50,
        .last_age_ms = 0,
        .last_ts_us = ts,
        .trace_id = "flushed-trace",
        .best_confidence = best,
        .best_snapshot_url = snap,
        .best_label = "person",
    };
    assert_vg_ok(dd_incident_flush(fx.r, PREFIX, cam, &b, GAP_MS, ans));
}

static void flush_adds_sightings(void **state)
{
    (void)state;
    struct dd_incident_join j;
    struct dd_incident_answer ans;
    join("fl", "d1", "person", NULL, 0.6f, 1000, &j);
    dd_incident_join_cleanup(&j);

    flush("fl", 5, 1500, 0.9f, "file:///better.jpg", &ans);
    assert_int_equal(ans.code, 1);
    assert_int_equal(ans.st.count, 6);
    assert_int_equal(ans.st.alerts, 1);
    assert_int_equal(ans.st.last_seen_ts_us, 1500);
    assert_string_equal(ans.st.trace_id, "flushed-trace");
    assert_string_equal(ans.st.best_snapshot_url, "file:///better.jpg");
    assert_float_equal(ans.st.best_confidence, 0.9f, 1e-5);
    dd_incident_answer_cleanup(&ans);

    /* Less confident, older: counted, but neither best nor latest. */
    flush("fl", 3, 1200, 0.7f, "file:///worse.jpg", &ans);
    assert_int_equal(ans.st.count, 9);
    assert_int_equal(ans.st.last_seen_ts_us, 1500);
    assert_string_equal(ans.st.best_snapshot_url, "file:///better.jpg");
    dd_incident_answer_cleanup(&ans);

    /* No best at all (every sighting without a usable confidence). */
    flush("fl", 1, 1600, -1.0f, "", &ans);
    assert_int_equal(ans.st.count, 10);
    assert_string_equal(ans.st.best_snapshot_url, "file:///better.jpg");
    dd_incident_answer_cleanup(&ans);

    /* An alert joining afterwards counts on top. */
    join("fl", "d2", "person", NULL, 0.5f, 1700, &j);
    assert_int_equal(j.count, 11);
    dd_incident_join_cleanup(&j);

    /* A camera without an incident takes nothing. */
    flush("fl-none", 4, 1500, 0.9f, "", &ans);
    assert_int_equal(ans.code, 0);
    dd_incident_answer_cleanup(&ans);
}

static long long hash_int(const char *cam, const char *field)
{
    redisReply *reply = NULL;
    assert_vg_ok(vg_redis_cmd(fx.r, &reply, "HGET " PREFIX ":dd:%s:incident %s", cam, field));
    long long v = reply->type == REDIS_REPLY_STRING ? atoll(reply->str) : -1;
    freeReplyObject(reply);
    return v;
}

static void closed_once_after_gap(void **state)
{
    (void)state;
    struct dd_incident_join j;
    struct dd_incident_answer ans;
    join("cl", "e1", "person", NULL, 0.6f, 1000, &j);
    dd_incident_join_cleanup(&j);

    assert_vg_ok(dd_incident_close(fx.r, PREFIX, "cl", GAP_MS, &ans));
    assert_int_equal(ans.code, 1);
    assert_true(ans.due_in_ms > GAP_MS && ans.due_in_ms <= GAP_MS + DD_INCIDENT_SETTLE_MS);
    int64_t wait_ms = ans.due_in_ms;
    dd_incident_answer_cleanup(&ans);

    vg_sleep_us((wait_ms + 50) * 1000);
    assert_vg_ok(dd_incident_close(fx.r, PREFIX, "cl", GAP_MS, &ans));
    assert_int_equal(ans.code, 2);
    assert_string_equal(ans.st.id, "e1");
    assert_false(ans.st.open);
    assert_int_equal(ans.st.count, 1);
    dd_incident_answer_cleanup(&ans);

    /* Only the first caller closes it; sightings do not reopen it. */
    assert_vg_ok(dd_incident_close(fx.r, PREFIX, "cl", GAP_MS, &ans));
    assert_int_equal(ans.code, 0);
    dd_incident_answer_cleanup(&ans);
    flush("cl", 2, 2000, 0.9f, "", &ans);
    assert_int_equal(ans.code, 0);
    dd_incident_answer_cleanup(&ans);
    assert_int_equal(hash_int("cl", "count"), 1);

    /* The next alert opens a new incident. */
    join("cl", "e2", "person", NULL, 0.6f, 3000, &j);
    assert_int_equal(j.kind, DD_INCIDENT_OPENED);
    assert_string_equal(j.now.id, "e2");
    assert_int_equal(j.count, 1);
    assert_string_equal(j.ended.id, "");
    dd_incident_join_cleanup(&j);

    /* Nothing left open on a camera that never had one. */
    assert_vg_ok(dd_incident_close(fx.r, PREFIX, "cl-none", GAP_MS, &ans));
    assert_int_equal(ans.code, 0);
    dd_incident_answer_cleanup(&ans);
}

static void gap_ends_the_incident(void **state)
{
    (void)state;
    struct dd_incident_join j;
    struct dd_incident_answer ans;
    join("gap", "f1", "person", NULL, 0.6f, 1000, &j);
    dd_incident_join_cleanup(&j);
    /* Sightings inside the gap keep it going... */
    vg_sleep_us(200000);
    flush("gap", 1, 1100, 0.1f, "", &ans);
    assert_int_equal(ans.code, 1);
    dd_incident_answer_cleanup(&ans);
    vg_sleep_us(200000);
    join("gap", "f2", "person", NULL, 0.6f, 1200, &j);
    assert_int_equal(j.kind, DD_INCIDENT_JOINED);
    dd_incident_join_cleanup(&j);

    /* ...sightings after it do not join it... */
    vg_sleep_us((GAP_MS + 100) * 1000);
    flush("gap", 1, 1300, 0.1f, "", &ans);
    assert_int_equal(ans.code, 0);
    dd_incident_answer_cleanup(&ans);

    /* ...and an alert after it, before anyone closed it, closes it (the
     * caller publishes that) and opens the next. */
    join("gap", "f3", "pet", NULL, 0.6f, 1400, &j);
    assert_int_equal(j.kind, DD_INCIDENT_OPENED);
    assert_string_equal(j.now.id, "f3");
    assert_string_equal(j.escalation, "");
    assert_int_equal(j.count, 1);
    assert_string_equal(j.ended.id, "f1");
    assert_false(j.ended.open);
    assert_int_equal(j.ended.count, 3);
    dd_incident_join_cleanup(&j);

    /* Sightings a replica held since before f3 opened are not f3's. */
    struct dd_incident_batch old = {.count = 2, .first_age_ms = 60000, .last_age_ms = 60000,
                                    .last_ts_us = 1, .trace_id = "", .best_confidence = -1};
    assert_vg_ok(dd_incident_flush(fx.r, PREFIX, "gap", &old, GAP_MS, &ans));
    assert_int_equal(ans.code, 0);
    dd_incident_answer_cleanup(&ans);
    assert_int_equal(hash_int("gap", "count"), 1);

    /* Both keys expire some time after the gap. */
    redisReply *reply = NULL;
    assert_vg_ok(vg_redis_cmd(fx.r, &reply, "PTTL " PREFIX ":dd:gap:incident:alerts"));
    assert_true(reply->integer > GAP_MS && reply->integer <= 2 * GAP_MS + 30000);
    freeReplyObject(reply);
}

/* The pending record of an alert that joined its incident is rewritten in
 * place (same TTL), and never brought back once cleared. */
static void pending_record_takes_the_joined_alert(void **state)
{
    (void)state;
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    struct dd_stash s;
    int opened = 0, replaced = -1;
    int64_t ttl = 0;
    h.camera_id = "pend";
    a.header = &h;
    a.alert_id = "g1";
    a.label = "person";
    assert_vg_ok(dd_stash_init(&s, PREFIX, "g1", &a.base, 4096, 60000));
    assert_vg_ok(dd_window_open_stash(fx.r, PREFIX ":w:pend", 30000, "g1", &s, &opened, &ttl));
    assert_int_equal(opened, 1);
    dd_stash_cleanup(&s);

    a.incident_id = "g1";
    a.escalation = DD_ESCALATION_CATEGORY;
    a.incident_count = 7;
    assert_vg_ok(dd_stash_init(&s, PREFIX, "g1", &a.base, 4096, 60000));
    assert_vg_ok(dd_pending_replace(fx.r, &s, &replaced));
    assert_int_equal(replaced, 1);
    redisReply *reply = NULL;
    assert_vg_ok(vg_redis_cmd(fx.r, &reply, "GET %s", s.key));
    Vigil__V1__Alert *back = vigil__v1__alert__unpack(NULL, reply->len, (uint8_t *)reply->str);
    freeReplyObject(reply);
    assert_non_null(back);
    assert_string_equal(back->incident_id, "g1");
    assert_string_equal(back->escalation, DD_ESCALATION_CATEGORY);
    assert_int_equal(back->incident_count, 7);
    protobuf_c_message_free_unpacked(&back->base, NULL);
    assert_vg_ok(vg_redis_cmd(fx.r, &reply, "PTTL %s", s.key));
    assert_true(reply->integer > 50000 && reply->integer <= 60000);
    freeReplyObject(reply);

    assert_vg_ok(dd_pending_clear(fx.r, PREFIX, "g1"));
    assert_vg_ok(dd_pending_replace(fx.r, &s, &replaced));
    assert_int_equal(replaced, 0);
    assert_vg_ok(vg_redis_cmd(fx.r, &reply, "EXISTS %s", s.key));
    assert_int_equal(reply->integer, 0);
    freeReplyObject(reply);
    dd_stash_cleanup(&s);
}

/* ---- the service's side ---------------------------------------------------- */

static struct vg_config cfg;
static int published;
static Vigil__V1__Incident *last_msg;

static vg_status capture(void *ctx, const char *camera, const Vigil__V1__Incident *m)
{
    (void)ctx;
    assert_string_equal(camera, m->header->camera_id);
    /* Encoded and decoded, as a consumer sees it. */
    uint8_t buf[8192];
    size_t len = protobuf_c_message_pack(&m->base, buf);
    assert_true(len < sizeof(buf));
    if (last_msg)
        protobuf_c_message_free_unpacked(&last_msg->base, NULL);
    last_msg = vigil__v1__incident__unpack(NULL, len, buf);
    assert_non_null(last_msg);
    published++;
    return VG_OK;
}

/* Each service test starts from an empty Redis: they share cameras. */
static void flushdb(void)
{
    redisReply *reply = NULL;
    assert_vg_ok(vg_redis_cmd(fx.r, &reply, "FLUSHDB"));
    freeReplyObject(reply);
}

static struct dd_incidents *service(int gap_s)
{
    struct dd_incidents *inc = NULL;
    vg_cfg_defaults(&cfg);
    snprintf(cfg.prefix, sizeof(cfg.prefix), PREFIX);
    cfg.n_cameras = 2;
    snprintf(cfg.cameras[0].id, sizeof(cfg.cameras[0].id), "svc1");
    snprintf(cfg.cameras[1].id, sizeof(cfg.cameras[1].id), "svc2");
    cfg.dedupe.incident_gap_s = gap_s;
    published = 0;
    assert_vg_ok(dd_incidents_create(&inc, &cfg, fx.r, capture, NULL));
    return inc;
}

static void alert_of(Vigil__V1__Alert *a, Vigil__V1__Header *h, const char *cam, char *id,
                     const char *label)
{
    vigil__v1__header__init(h);
    vigil__v1__alert__init(a);
    h->camera_id = (char *)cam;
    h->capture_ts_us = vg_now_us();
    h->trace_id = "0123456789abcdef0123456789abcdef";
    a->header = h;
    vg_new_id(id);
    a->alert_id = id;
    a->label = (char *)label;
    a->confidence = 0.8f;
    a->snapshot_ref = "file:///alert.jpg";
}

static void sighting(struct dd_incidents *inc, const char *cam, float conf, const char *snap,
                     int64_t now)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    h.camera_id = (char *)cam;
    h.capture_ts_us = vg_now_us();
    h.trace_id = "fedcba9876543210fedcba9876543210";
    dd_incidents_sighting(inc, &h, "person", conf, snap, now);
}

static void service_flushes_once_a_second(void **state)
{
    (void)state;
    flushdb();
    struct dd_incidents *inc = service(60);
    Vigil__V1__Alert a;
    Vigil__V1__Header h;
    char id[33];
    struct dd_incident_join j;
    alert_of(&a, &h, "svc1", id, "person");
    assert_vg_ok(dd_incidents_join(inc, &a, &j));
    assert_string_equal(a.incident_id, id);
    assert_int_equal(a.incident_count, 1);
    assert_string_equal(a.escalation, "");
    dd_incidents_joined(inc, "svc1", &j);
    assert_int_equal(published, 1);
    assert_true(last_msg->open);
    assert_string_equal(last_msg->incident_id, id);
    assert_int_equal(last_msg->count, 1);

    /* 20 suppressed sightings in 2 s, ticks every 100 ms: a flush at most
     * once a second, not one per sighting. (Real time: the scripts compare
     * the sightings' ages with Redis's clock.) */
    for (int i = 1; i <= 20; i++) {
        vg_sleep_us(100000);
        sighting(inc, "svc1", i == 7 ? 0.95f : 0.5f, i == 7 ? "file:///best.jpg" : "",
                 vg_mono_us());
        dd_incidents_tick(inc, vg_mono_us(), 0);
    }
    while (last_msg->count < 21 && published < 10) {
        vg_sleep_us(100000);
        dd_incidents_tick(inc, vg_mono_us(), 0);
    }
    assert_true(published >= 2 && published <= 4);
    assert_int_equal(last_msg->count, 21);
    assert_string_equal(last_msg->best_snapshot_ref, "file:///best.jpg");
    assert_float_equal(last_msg->best_confidence, 0.95f, 1e-5);
    assert_string_equal(last_msg->header->trace_id, "fedcba9876543210fedcba9876543210");
    int before = published;
    vg_sleep_us(1100000);
    dd_incidents_tick(inc, vg_mono_us(), 0);
    assert_int_equal(published, before);    /* nothing new, nothing sent */

    /* Another camera's incident is its own. */
    alert_of(&a, &h, "svc2", id, "vehicle");
    assert_vg_ok(dd_incidents_join(inc, &a, &j));
    assert_int_equal(a.incident_count, 1);
    assert_string_equal(a.escalation, "");
    dd_incidents_joined(inc, "svc2", &j);
    assert_string_equal(last_msg->header->camera_id, "svc2");

    /* A category new to svc1's incident escalates it. */
    alert_of(&a, &h, "svc1", id, "package");
    assert_vg_ok(dd_incidents_join(inc, &a, &j));
    assert_string_equal(a.escalation, DD_ESCALATION_CATEGORY);
    assert_int_equal(a.incident_count, 22);
    dd_incidents_joined(inc, "svc1", &j);
    assert_string_equal(last_msg->escalation, DD_ESCALATION_CATEGORY);
    assert_int_equal(last_msg->n_labels, 2);
    dd_incidents_destroy(inc);
}

static void service_keeps_sightings_while_redis_is_away(void **state)
{
    (void)state;
    flushdb();
    struct dd_incidents *inc = service(5);
    Vigil__V1__Alert a;
    Vigil__V1__Header h;
    char id[33];
    struct dd_incident_join j;
    alert_of(&a, &h, "svc2", id, "person");
    assert_vg_ok(dd_incidents_join(inc, &a, &j));
    assert_int_equal(j.kind, DD_INCIDENT_OPENED);
    dd_incidents_joined(inc, "svc2", &j);
    sighting(inc, "svc2", 0.5f, "", vg_mono_us());
    sighting(inc, "svc2", 0.5f, "", vg_mono_us());

    /* Redis stops answering (the client gives up after 500 ms): the
     * flush fails and its sightings go back to memory. */
    redisReply *reply = NULL;
    assert_vg_ok(vg_redis_cmd(fx.r, &reply, "CLIENT PAUSE 3000 ALL"));
    freeReplyObject(reply);
    vg_sleep_us(1050000);
    int before = published;
    dd_incidents_tick(inc, vg_mono_us(), 0);
    assert_int_equal(published, before);
    sighting(inc, "svc2", 0.5f, "", vg_mono_us());

    /* Back: everything reaches the incident, once. */
    int64_t deadline = vg_mono_us() + 8000000;
    while (published == before && vg_mono_us() < deadline) {
        vg_sleep_us(100000);
        dd_incidents_tick(inc, vg_mono_us(), 0);
    }
    assert_int_equal(published, before + 1);
    assert_string_equal(last_msg->incident_id, id);
    assert_int_equal(last_msg->count, 4);
    assert_true(last_msg->open);
    dd_incidents_destroy(inc);
}

static void service_adopts_incidents_left_open(void **state)
{
    (void)state;
    flushdb();
    struct dd_incident_join j;
    /* A replica that stopped left an open incident on svc1. */
    struct dd_incident_alert in = {.alert_id = "orphan", .label = "person", .ts_us = 5};
    assert_vg_ok(dd_incident_join_alert(fx.r, PREFIX, "svc1", &in, 1000, &j));
    dd_incident_join_cleanup(&j);

    struct dd_incidents *inc = service(1);
    int64_t deadline = vg_mono_us() + 5000000;
    while ((!published || last_msg->open) && vg_mono_us() < deadline) {
        dd_incidents_tick(inc, vg_mono_us(), 0);
        vg_sleep_us(100000);
    }
    assert_int_equal(published, 1);
    assert_string_equal(last_msg->incident_id, "orphan");
    assert_false(last_msg->open);

    /* Its own incidents close the same way, with one message. */
    Vigil__V1__Alert a;
    Vigil__V1__Header h;
    char id[33];
    alert_of(&a, &h, "svc2", id, "person");
    assert_vg_ok(dd_incidents_join(inc, &a, &j));
    dd_incidents_joined(inc, "svc2", &j);
    assert_int_equal(published, 2);
    deadline = vg_mono_us() + 5000000;
    while (last_msg->open && vg_mono_us() < deadline) {
        dd_incidents_tick(inc, vg_mono_us(), 0);
        vg_sleep_us(100000);
    }
    assert_int_equal(published, 3);
    assert_string_equal(last_msg->incident_id, id);
    assert_false(last_msg->open);
    for (int i = 0; i < 5; i++) {
        dd_incidents_tick(inc, vg_mono_us(), 0);
        vg_sleep_us(100000);
    }
    assert_int_equal(published, 3);
    dd_incidents_destroy(inc);
    protobuf_c_message_free_unpacked(&last_msg->base, NULL);
    last_msg = NULL;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(first_alert_opens),
        cmocka_unit_test(later_alerts_join_and_escalate),
        cmocka_unit_test(an_alert_joins_once),
        cmocka_unit_test(flush_adds_sightings),
        cmocka_unit_test(closed_once_after_gap),
        cmocka_unit_test(gap_ends_the_incident),
        cmocka_unit_test(pending_record_takes_the_joined_alert),
        cmocka_unit_test(service_flushes_once_a_second),
        cmocka_unit_test(service_keeps_sightings_while_redis_is_away),
        cmocka_unit_test(service_adopts_incidents_left_open),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
