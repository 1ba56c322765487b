/* The telegram sink's own logic: texts are counted as Telegram counts them
 * after entity parsing and cut cleanly (never inside an escape or a tag,
 * with "…", what the cut left open closed again), its keys bind and are
 * checked with errors that never quote the token, and a failed request's
 * error does not carry the token either. Requests to the Bot API are tested
 * against the fake in tests/integration/test_sink_telegram.py. */
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
#include "sink_fixture.h"

size_t vg_telegram_length(const char *text, int mode);
char *vg_telegram_fit(const char *text, int mode, size_t limit);

enum { HTML = 0, MD2 = 1, NONE = 2 };
#define ELLIPSIS "\xe2\x80\xa6"
#define TOKEN "123456:SECRET-token_xyz"

static void assert_fit(const char *text, int mode, size_t limit, const char *want)
{
    char *got = vg_telegram_fit(text, mode, limit);
    assert_non_null(got);
    if (strcmp(got, want))
        fail_msg("fit(\"%s\", %d, %zu) = \"%s\", want \"%s\"", text, mode, limit, got, want);
    assert_true(vg_telegram_length(got, mode) <= limit);
    free(got);
}

static void test_length_after_entity_parsing(void **state)
{
    assert_int_equal(vg_telegram_length("<b>Tom &amp; Jerry</b>", HTML), 11);
    assert_int_equal(vg_telegram_length("&lt;&#39;&#x1F384;&quot;", HTML), 5);  /* 🎄: 2 */
    assert_int_equal(vg_telegram_length("<a href=\"https://x/?a=1&amp;b\">clip</a>", HTML), 4);
    assert_int_equal(vg_telegram_length("*Dr\\. O\\-Neil* \\(v2\\)", MD2), 15);
    assert_int_equal(vg_telegram_length("[clip](https://x/a\\)b) ok", MD2), 7);
    assert_int_equal(vg_telegram_length("`a*b_c` __u__ ||s|| ~x~", MD2), 5 + 1 + 1 + 1 + 1 + 1 + 1);
    assert_int_equal(vg_telegram_length("é🎄 <b>", NONE), 1 + 2 + 1 + 3);
}

static void test_short_text_unchanged(void **state)
{
    assert_fit("<b>Tom &amp; Jerry</b> at door", HTML, 19, "<b>Tom &amp; Jerry</b> at door");
    assert_fit("*x*", MD2, 1, "*x*");
    assert_fit("", HTML, 10, "");
}

static void test_html_cut_never_inside_entity_or_tag(void **state)
{
    /* "Tom & Jerry" is 11 characters; 6 fit: "Tom &" + "…". */
    assert_fit("<b>Tom &amp; Jerry</b>", HTML, 6, "<b>Tom &amp;" ELLIPSIS "</b>");
    assert_fit("<b>Tom &amp; Jerry</b>", HTML, 5, "<b>Tom " ELLIPSIS "</b>");
    assert_fit("ab<i><a href=\"u\">cdef</a></i>", HTML, 4, "ab<i><a href=\"u\">c" ELLIPSIS
               "</a></i>");
    assert_fit("abc<b>def</b>", HTML, 4, "abc<b>" ELLIPSIS "</b>");
    assert_fit("abcdef", HTML, 1, ELLIPSIS);
}

static void test_cut_at_code_point_boundaries(void **state)
{
    /* é is 2 bytes, 1 character; 🎄 4 bytes, 2 UTF-16 units. */
    assert_fit("éééé", NONE, 3, "éé" ELLIPSIS);
    assert_fit("a🎄b", NONE, 3, "a" ELLIPSIS);
    assert_fit("a🎄bc", NONE, 4, "a🎄" ELLIPSIS);
    assert_fit("ab\xff", NONE, 5, "ab\xef\xbf\xbd");   /* not UTF-8: U+FFFD */
    assert_fit("a\xe2\x80", NONE, 5, "a\xef\xbf\xbd\xef\xbf\xbd");
}

static void test_markdown_v2_cut(void **state)
{
    assert_fit("*Dr\\. O\\-Neil*", MD2, 4, "*Dr\\." ELLIPSIS "*");
    assert_fit("a \\(b\\) c", MD2, 3, "a " ELLIPSIS);
    /* A link cannot be closed before its URL: the cut drops it. */
    assert_fit("see [the clip](https://x/c) now", MD2, 8, "see " ELLIPSIS);
    assert_fit("a ![👍](tg://emoji?id=1) b", MD2, 3, "a " ELLIPSIS);
    assert_fit("`code*_` tail", MD2, 3, "`co" ELLIPSIS "`");
    assert_fit("```\npre\n``` tail", MD2, 4, "```\npr" ELLIPSIS "```");
    /* Italic inside underline: "_" + "__" would read as "__" + "_". */
    assert_fit("__u _it long_ x__", MD2, 4, "__u _i" ELLIPSIS "_**__");
    assert_fit("||spoil|| and more", MD2, 3, "||sp" ELLIPSIS "||");
}

static void test_long_caption_fits_1024(void **state)
{
    char src[8192] = "<b>";
    for (int i = 0; i < 900; i++)
        strcat(src, i % 3 ? "&amp;" : "é🎄");
    strcat(src, "</b>");
    char *got = vg_telegram_fit(src, HTML, 1024);
    assert_non_null(got);
    assert_in_range(vg_telegram_length(got, HTML), 1023, 1024);
    size_t n = strlen(got);
    assert_true(n > 4 + 3 && !strcmp(got + n - 7, ELLIPSIS "</b>"));
    free(got);
}

static void test_keys_bind(void **state)
{
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: tg, type: telegram, token: '" TOKEN "',\n"
                                "       chat_ids: ' 1001, -100200300 ,@vigil_home',\n"
                                "       parse_mode: markdownv2, disable_notification: true}\n"),
                     VG_OK);
    const struct vg_sink_cfg *s = &cfg.notifier.sinks[0];
    assert_string_equal(s->ops->name, "telegram");
    assert_int_equal(s->incidents, VG_SINK_INCIDENTS_ESCALATE);
    assert_true(s->ops->caps & VG_SINK_CAP_SNAPSHOT);
    assert_int_equal(s->ops->text_escape(s->settings), VG_TPL_MARKDOWN_V2);
    assert_non_null(strstr(s->ops->default_text, "<b>{who}</b>"));
    char line[256];
    sink_opt_format(s, "token", line, sizeof(line));
    assert_string_equal(line, "token=***");
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: tg, type: telegram, token: '" TOKEN "', "
                                "chat_ids: '1'}\n"),
                     VG_OK);
    assert_int_equal(s->ops->text_escape(s->settings), VG_TPL_HTML);
}

static void test_token_from_env(void **state)
{
    setenv("VIGIL_SINK_FAMILY_TG_TOKEN", TOKEN, 1);
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: family-tg, type: telegram, chat_ids: '@a_chan'}\n"),
                     VG_OK);
    unsetenv("VIGIL_SINK_FAMILY_TG_TOKEN");
    sink_assert_error("notifier:\n  sinks:\n"
                      "    - {name: family-tg, type: telegram, chat_ids: '1'}\n",
                      "test.yaml:3: sink family-tg: a telegram sink needs a token", "SECRET");
}

static void test_config_errors(void **state)
{
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: 'SECRET',"
                      " chat_ids: '1'}\n", "the token is not a bot token", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: '1:SECRET/x',"
                      " chat_ids: '1'}\n", "the token is not a bot token", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: '" TOKEN "'}\n",
                      "a telegram sink needs chat_ids", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: '" TOKEN "',"
                      " chat_ids: '12,bob'}\n", "chat_ids: \"bob\" is neither a numeric chat id",
                      "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: '" TOKEN "',"
                      " chat_ids: '12, 12'}\n", "chat_ids: 12 is listed twice", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: '" TOKEN "',"
                      " chat_ids: '1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17'}\n",
                      "more than 16 chats", "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: '" TOKEN "',"
                      " chat_ids: '1', parse_mode: markdown}\n",
                      "not one of: HTML, MarkdownV2, none",
                      "SECRET");
    sink_assert_error("notifier:\n  sinks:\n    - {name: t, type: telegram, token: '" TOKEN "',"
                      " chat_ids: '1', api_base: 'ftp://x'}\n", "api_base must be an http(s) URL",
                      "SECRET");
}

/* Nothing listens on port 1: a transient failure naming the server, never
 * the URL with the token in it. */
static void test_network_error_hides_token(void **state)
{
    assert_int_equal(sink_parse("notifier:\n  sinks:\n"
                                "    - {name: tg, type: telegram, token: '" TOKEN "',\n"
                                "       chat_ids: '7',\n"
                                "       api_base: 'http://127.0.0.1:1/', timeout_ms: 2000}\n"),
                     VG_OK);
    struct vg_sink *s = NULL;
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[0], &cfg), VG_OK);
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    a.alert_id = "a1";
    struct vg_sink_alert v = {.alert = &a, .title = "person at door", .text = "<b>person</b>",
                              .html = "", .json = "{}", .json_len = 2, .snapshot_url = "",
                              .clip_url = "", .count = 1};
    struct vg_sink_result r;
    vg_sink_deliver(s, &v, &r);
    assert_int_equal(r.verdict, VG_SINK_RETRY);
    if (!strstr(r.error, "chat 7: sendMessage: POST http://127.0.0.1:1:") ||
        strstr(r.error, "SECRET") || strstr(r.error, "/bot"))
        fail_msg("error: %s", r.error);
    vg_sink_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_length_after_entity_parsing),
        cmocka_unit_test(test_short_text_unchanged),
        cmocka_unit_test(test_html_cut_never_inside_entity_or_tag),
        cmocka_unit_test(test_cut_at_code_point_boundaries),
        cmocka_unit_test(test_markdown_v2_cut),
        cmocka_unit_test(test_long_caption_fits_1024),
        cmocka_unit_test(test_keys_bind),
        cmocka_unit_test(test_token_from_env),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_network_error_hides_token),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
