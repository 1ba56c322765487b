/* The smtp sink's configuration: every value is checked when the file is
 * loaded (addresses that could split a header or an SMTP command, URLs
 * carrying credentials, a password that would cross the network in clear),
 * the password comes from the environment and is never printed, and a
 * server that is not there is a transient failure, and a rate-limit summary
 * is a plain-text mail (a minimal SMTP responder on loopback records it).
 * The alert messages are checked against a real SMTP server:
 * tests/integration/test_sink_smtp.py. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include "config.h"
#include "fixture.h"
#include "sink/sink.h"
#include "sink_fixture.h"

/* A configuration of one smtp sink "m" with these keys. */
static const char *sink_text(const char *keys)
{
    static char text[4096];
    snprintf(text, sizeof(text), "notifier:\n  sinks:\n    - {name: m, type: smtp, %s}\n", keys);
    return text;
}

static vg_status parse_sink(const char *keys) { return sink_parse(sink_text(keys)); }

#define OK_KEYS "url: 'smtp://mail.example.com:587', from: vigil@example.com, " \
                "to: 'me@example.com'"

static void assert_refused(const char *keys, const char *want)
{
    sink_assert_error(sink_text(keys), want, NULL);
}

static void test_defaults(void **state)
{
    (void)state;
    assert_int_equal(parse_sink(OK_KEYS), VG_OK);
    const struct vg_sink_cfg *s = &cfg.notifier.sinks[0];
    assert_string_equal(s->ops->name, "smtp");
    assert_int_equal(s->timeout_ms, 15000);
    assert_int_equal(s->incidents, VG_SINK_INCIDENTS_ESCALATE);   /* people's inboxes */
    assert_true(s->ops->caps & VG_SINK_CAP_SNAPSHOT);
    assert_non_null(strstr(s->ops->default_html, "cid:snapshot@vigil"));
}

static void test_urls(void **state)
{
    (void)state;
    assert_refused("url: 'http://mail.example.com', from: a@example.com, to: b@example.com",
                   "test.yaml:3: sink m: an smtp sink needs a url smtp://host:port");
    assert_refused("url: 'smtp://u:pw@mail.example.com', from: a@example.com, "
                   "to: b@example.com", "put the credentials in username and password");
    assert_refused("url: 'smtp://mail.example.com:587/x', from: a@example.com, "
                   "to: b@example.com", "no path or query");
    assert_refused("url: 'smtp://mail.example.com:99999', from: a@example.com, "
                   "to: b@example.com", "bad port");
    assert_refused("url: 'smtp://:25', from: a@example.com, to: b@example.com", "has no host");
    assert_int_equal(parse_sink("url: 'smtps://[::1]:465', from: a@example.com, "
                                "to: b@example.com"), VG_OK);
}

static void test_addresses(void **state)
{
    (void)state;
    assert_refused("url: 'smtp://h:25', from: vigil, to: b@example.com",
                   "from \"vigil\" is not an address");
    assert_refused("url: 'smtp://h:25', from: \"a@example.com\\r\\nBcc: x@evil.test\", "
                   "to: b@example.com", "is not an address");
    assert_refused("url: 'smtp://h:25', from: a@example.com, to: ''",
                   "needs at least one address in to");
    assert_refused("url: 'smtp://h:25', from: a@example.com, to: 'b@example.com, carol'",
                   "to: \"carol\" is not an address");
    assert_refused("url: 'smtp://h:25', from: a@example.com, to: 'b@example.com,,c@x.test'",
                   "to: \"\" is not an address");
    assert_refused("url: 'smtp://h:25', from: a@example.com, to: 'x>@example.com'",
                   "is not an address");
    assert_refused("url: 'smtp://h:25', from: a@example.com, to: 'a..b@example.com'",
                   "is not an address");
    assert_refused("url: 'smtp://h:25', from: a@example.com, to: 'b@-example.com'",
                   "is not an address");
    char keys[1200];
    size_t n = (size_t)snprintf(keys, sizeof(keys), "url: 'smtp://h:25', from: a@example.com, "
                                "to: '");
    for (int i = 0; i < 17; i++)
        n += (size_t)snprintf(keys + n, sizeof(keys) - n, "%su%d@example.com", i ? "," : "", i);
    snprintf(keys + n, sizeof(keys) - n, "'");
    assert_refused(keys, "to: 17 addresses, at most 16");
    assert_int_equal(parse_sink("url: 'smtp://h:25', from: a@example.com, "
                                "to: ' b.c+tag@example.com , d@[192.0.2.1]'"), VG_OK);
}

static void test_credentials_and_tls(void **state)
{
    (void)state;
    assert_refused(OK_KEYS ", username: u", "AUTH needs both username and password");
    assert_refused("url: 'smtp://mail.example.com:25', from: a@example.com, to: b@example.com, "
                   "username: u, password: p, starttls: opportunistic",
                   "a password would cross the network unencrypted");
    assert_int_equal(parse_sink("url: 'smtp://127.0.0.1:25', from: a@example.com, "
                                "to: b@example.com, username: u, password: p, starttls: 'off'"),
                     VG_OK);
    assert_refused(OK_KEYS ", starttls: sometimes", "starttls");
    assert_refused(OK_KEYS ", ca_file: /nonexistent/ca.pem", "ca_file /nonexistent/ca.pem "
                   "cannot be read");
    assert_refused(OK_KEYS ", helo: 'bad name'", "helo \"bad name\" is not a host name");
    assert_refused(OK_KEYS ", from_name: \"a\\nb\"", "from_name has a control character");
}

static void test_password_from_env_is_masked(void **state)
{
    (void)state;
    char line[128];
    setenv("VIGIL_SINK_M_PASSWORD", "env-secret", 1);
    vg_status st = parse_sink(OK_KEYS ", username: u");
    unsetenv("VIGIL_SINK_M_PASSWORD");
    assert_int_equal(st, VG_OK);
    sink_opt_format(&cfg.notifier.sinks[0], "password", line, sizeof(line));
    assert_string_equal(line, "password=***");
}

/* Nothing listens on the port: a transient failure that names the server. */
static void test_refused_connection_is_transient(void **state)
{
    (void)state;
    char keys[256];
    int port = fixture_free_port();     /* nobody listens there */
    snprintf(keys, sizeof(keys), "url: 'smtp://127.0.0.1:%d', from: a@example.com, "
             "to: b@example.com, timeout_ms: 2000", port);
    assert_int_equal(parse_sink(keys), VG_OK);
    struct vg_sink *s = NULL;
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[0], &cfg), VG_OK);
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    a.alert_id = "id1";
    struct vg_sink_alert v = {.alert = &a, .title = "t", .text = "x", .html = "",
                              .json = "{}", .json_len = 2, .snapshot_url = "",
                              .clip_url = ""};
    struct vg_sink_result r;
    vg_sink_deliver(s, &v, &r);
    vg_sink_close(s);
    assert_int_equal(r.verdict, VG_SINK_RETRY);
    char want[64];
    snprintf(want, sizeof(want), "smtp://127.0.0.1:%d", port);
    if (!strstr(r.error, want))
        fail_msg("error \"%s\" does not name %s", r.error, want);
}

/* Just enough SMTP for one transaction: the conversation, with every
 * reply "250" but for DATA (354) and mail_reply for MAIL FROM. */
struct responder {
    int listen_fd, port;
    const char *mail_reply;
    char data[8192];
    size_t n;
};

static int read_line(int fd, char *buf, size_t cap)
{
    size_t n = 0;
    while (n + 1 < cap && read(fd, buf + n, 1) == 1)
        if (buf[n++] == '\n')
            break;
    buf[n] = '\0';
    return (int)n;
}

static void say(int fd, const char *s)
{
    assert_true(write(fd, s, strlen(s)) == (ssize_t)strlen(s));
}

static void *respond(void *ud)
{
    struct responder *r = ud;
    char line[1024];
    int fd = accept(r->listen_fd, NULL, NULL);
    say(fd, "220 test\r\n");
    while (read_line(fd, line, sizeof(line)) > 0) {
        if (!strncmp(line, "EHLO", 4))
            say(fd, "250-test\r\n250 SIZE 1000000\r\n");
        else if (!strncmp(line, "MAIL", 4))
            say(fd, r->mail_reply);
        else if (!strncmp(line, "DATA", 4)) {
            say(fd, "354 go on\r\n");
            while (read_line(fd, line, sizeof(line)) > 0 && strcmp(line, ".\r\n"))
                for (size_t i = 0; line[i] && r->n + 1 < sizeof(r->data); i++)
                    r->data[r->n++] = line[i];
            say(fd, "250 queued\r\n");
        } else if (!strncmp(line, "QUIT", 4)) {
            say(fd, "221 bye\r\n");
            break;
        } else
            say(fd, "250 ok\r\n");
    }
    close(fd);
    return NULL;
}

static void deliver_to_responder(struct responder *r, const struct vg_sink_alert *v,
                                 struct vg_sink_result *res)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    char keys[256];
    pthread_t t;
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(listen(r->listen_fd, 1), 0);
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&sa, &len), 0);
    snprintf(keys, sizeof(keys), "url: 'smtp://127.0.0.1:%d', starttls: 'off', "
             "from: a@example.com, to: 'b@example.com', timeout_ms: 5000", ntohs(sa.sin_port));
    assert_int_equal(parse_sink(keys), VG_OK);
    assert_int_equal(pthread_create(&t, NULL, respond, r), 0);
    struct vg_sink *s = NULL;
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[0], &cfg), VG_OK);
    vg_sink_deliver(s, v, res);
    vg_sink_close(s);       /* sends QUIT on the kept connection */
    pthread_join(t, NULL);
    close(r->listen_fd);
    r->data[r->n] = '\0';
}

static void test_summary_is_plain_text(void **state)
{
    (void)state;
    static struct responder r = {.mail_reply = "250 ok\r\n"};
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    a.alert_id = "";
    a.label = "summary";
    struct vg_sink_alert v = {.alert = &a, .kind = VG_SINK_KIND_SUMMARY,
                              .title = "3 alerts held back", .text = "3 alerts held back.",
                              .html = "<p>ignored</p>", .json = "{}", .json_len = 2,
                              .snapshot_url = "", .clip_url = "",
                              .now_us = 1796190218000000LL};
    struct vg_sink_result res;
    deliver_to_responder(&r, &v, &res);
    assert_int_equal(res.verdict, VG_SINK_DELIVERED);
    const char *want[] = {"Subject: 3 alerts held back\r\n",
                          "Message-ID: <vigil.summary.1796190218@example.com>\r\n",
                          "Date: Wed, 02 Dec 2026 ", "MIME-Version: 1.0\r\n",
                          "Content-Type: text/plain; charset=UTF-8\r\n",
                          "\r\n\r\n3 alerts held back.\r\n"};
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); i++)
        if (!strstr(r.data, want[i]))
            fail_msg("no \"%s\" in the message:\n%s", want[i], r.data);
    assert_null(strstr(r.data, "multipart"));
    assert_null(strstr(r.data, "ignored"));
}

/* 552 to MAIL FROM (the SIZE the server takes): permanent, quoted. */
static void test_5xx_is_permanent(void **state)
{
    (void)state;
    static struct responder r = {.mail_reply = "552 5.3.4 message too big\r\n"};
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    a.alert_id = "id2";
    struct vg_sink_alert v = {.alert = &a, .title = "t", .text = "x", .html = "",
                              .json = "{}", .json_len = 2, .snapshot_url = "",
                              .clip_url = ""};
    struct vg_sink_result res;
    deliver_to_responder(&r, &v, &res);
    assert_int_equal(res.verdict, VG_SINK_PERMANENT);
    if (!strstr(res.error, "MAIL FROM: 552 5.3.4 message too big"))
        fail_msg("error \"%s\"", res.error);
}

int main(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_credentials_and_tls),
        cmocka_unit_test(test_password_from_env_is_masked),
        cmocka_unit_test(test_refused_connection_is_transient),
        cmocka_unit_test(test_summary_is_plain_text),
        cmocka_unit_test(test_5xx_is_permanent),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    curl_global_cleanup();
    return rc;
}
