/* Sink templates (lib/sink/template.c) and the seam's new keys: every
 * field, the time in the configured zone, escaping for HTML, Telegram's
 * MarkdownV2 and one-line subjects, literal braces, an unknown field as a
 * configuration error naming file and line, rate_limit parsing and the
 * incidents default of a sink type. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "sink/sink.h"
#include "sink/template.h"
#include "sink_fixture.h"
#include "tz.h"

struct fixture {
    Vigil__V1__Alert a;
    Vigil__V1__Header h;
    Vigil__V1__Alert__ProfileEntry song, *profile[1];
    char *zones[2];
};

static const Vigil__V1__Alert *make(struct fixture *f, const char *name)
{
    vigil__v1__alert__init(&f->a);
    vigil__v1__header__init(&f->h);
    vigil__v1__alert__profile_entry__init(&f->song);
    f->h.camera_id = "front_door";
    f->h.capture_ts_us = 1790000000LL * 1000000;     /* 2026-09-21 14:13:20 UTC */
    f->a.header = &f->h;
    f->a.alert_id = "al1";
    f->a.label = "person";
    f->a.confidence = 0.873f;
    f->a.display_name = (char *)name;
    f->a.person_id = "jesper";
    f->song.key = "song";
    f->song.value = "Rock & Roll <live>";
    f->profile[0] = &f->song;
    f->a.profile = f->profile;
    f->a.n_profile = 1;
    f->zones[0] = "porch";
    f->zones[1] = "steps";
    f->a.zones = f->zones;
    f->a.n_zones = 2;
    f->a.incident_id = "inc1";
    f->a.escalation = "face_recognised";
    return &f->a;
}

static char *render(const char *src, const Vigil__V1__Alert *a, enum vg_tpl_escape esc)
{
    struct vg_tpl_ctx c = {a, "https://vigil.example/s/1.jpg", "", 3};
    char *out = NULL;
    assert_int_equal(vg_tpl_render(src, &c, esc, &out), VG_OK);
    return out;
}

static void expect(const char *src, const Vigil__V1__Alert *a, enum vg_tpl_escape esc,
                   const char *want)
{
    char *got = render(src, a, esc);
    assert_string_equal(got, want);
    free(got);
}

static void fields(void **state)
{
    (void)state;
    struct fixture f;
    const Vigil__V1__Alert *a = make(&f, "Jesper");
    assert_int_equal(vg_tz_set("Europe/Berlin"), VG_OK);
    expect("{who} at {camera}: {label} {confidence}", a, VG_TPL_PLAIN,
           "Jesper at front_door: person 87%");
    expect("{time} / {date}", a, VG_TPL_PLAIN, "2026-09-21 16:13:20 CEST / 2026-09-21");
    expect("{display_name} is here — their song: {profile.song}", a, VG_TPL_PLAIN,
           "Jesper is here — their song: Rock & Roll <live>");
    expect("{zones}|{count}|{snapshot_url}|{clip_url}|{person_id}", a, VG_TPL_PLAIN,
           "porch, steps|3|https://vigil.example/s/1.jpg||jesper");
    expect("{alert_id} {incident_id} {escalation} {profile.none}.", a, VG_TPL_PLAIN,
           "al1 inc1 face_recognised .");
    expect("{{literal}} }}", a, VG_TPL_PLAIN, "{literal} }");
    /* {who} falls back to the label for strangers. */
    expect("{who}", make(&f, ""), VG_TPL_PLAIN, "person");
    assert_int_equal(vg_tz_set("UTC"), VG_OK);
    expect("{time}", make(&f, ""), VG_TPL_PLAIN, "2026-09-21 14:13:20 UTC");
}

static void escaping(void **state)
{
    (void)state;
    struct fixture f;
    const Vigil__V1__Alert *a = make(&f, "<Tom & \"Jerry\">");
    /* The template's own markup stays; values are escaped. */
    expect("<b>{who}</b> {profile.song}", a, VG_TPL_HTML,
           "<b>&lt;Tom &amp; &quot;Jerry&quot;&gt;</b> Rock &amp; Roll &lt;live&gt;");
    a = make(&f, "J_o*h[n](x)~`>#+-=|{}.!\\");
    expect("*{who}*", a, VG_TPL_MARKDOWN_V2,
           "*J\\_o\\*h\\[n\\]\\(x\\)\\~\\`\\>\\#\\+\\-\\=\\|\\{\\}\\.\\!\\\\*");
    a = make(&f, "two\nlines\r");
    expect("{who} at {camera}", a, VG_TPL_ONE_LINE, "two lines  at front_door");
}

static void bad_templates(void **state)
{
    (void)state;
    assert_int_equal(vg_tpl_check("{who} {profile.x} {{", "f:1", "text"), VG_OK);
    assert_int_equal(vg_tpl_check("{nope}", "f:1: sink s", "text"), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "f:1: sink s: text template: unknown field {nope} "
                                            "(known: camera, label, who"));
    assert_int_equal(vg_tpl_check("a { b", "w", "title"), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "'{' at column 3 opens no {field}"));
    assert_int_equal(vg_tpl_check("a } b", "w", "title"), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "a lone '}' at column 3"));
    assert_int_equal(vg_tpl_check("{profile.}", "w", "html"), VG_ERR_CONFIG);
}

static void sink_keys(void **state)
{
    (void)state;
    assert_int_equal(sink_parse("notifier:\n"
                                "  sinks:\n"
                                "    - name: out\n"
                                "      type: file\n"
                                "      path: /tmp/x.jsonl\n"
                                "      rate_limit: 10/h\n"
                                "      title: \"{who} at {camera}\"\n"
                                "      incidents: first\n"),
                     VG_OK);
    const struct vg_sink_cfg *s = &cfg.notifier.sinks[0];
    assert_int_equal(s->rate_count, 10);
    assert_int_equal(s->rate_per_s, 3600);
    assert_int_equal(s->incidents, VG_SINK_INCIDENTS_FIRST);
    assert_int_equal(s->title_line, 7);
    assert_int_equal(sink_parse("notifier:\n  sinks:\n    - { name: o, type: file, path: /tmp/x, "
                                "rate_limit: 2/30s }\n"), VG_OK);
    assert_int_equal(cfg.notifier.sinks[0].rate_count, 2);
    assert_int_equal(cfg.notifier.sinks[0].rate_per_s, 30);
    /* A machine sink's default: every alert of an incident. */
    assert_int_equal(cfg.notifier.sinks[0].incidents, VG_SINK_INCIDENTS_ALL);

    sink_assert_error("notifier:\n"
                      "  sinks:\n"
                      "    - name: out\n"
                      "      type: file\n"
                      "      path: /tmp/x.jsonl\n"
                      "      text: \"{who} at {camra}\"\n",
                      "test.yaml:6: sink out: text template: unknown field {camra}", NULL);
    sink_assert_error("notifier:\n  sinks:\n    - { name: o, type: file, path: /tmp/x,\n"
                      "        rate_limit: lots }\n",
                      "test.yaml:4: sink o: rate_limit \"lots\" is not N/period", NULL);
    assert_int_equal(sink_parse("notifier:\n  sinks:\n    - { name: o, type: file, path: /tmp/x, "
                                "rate_limit: 10/fortnight }\n"), VG_ERR_CONFIG);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(fields),
        cmocka_unit_test(escaping),
        cmocka_unit_test(bad_templates),
        cmocka_unit_test(sink_keys),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
