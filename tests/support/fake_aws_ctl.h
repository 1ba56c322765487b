/* The AWS fake's control API (tests/fakes/fake_aws.py; "Control API" in
 * tests/fakes/README.md) for cmocka tests. Start the fake with
 * fixture_fake_aws_start() (fixture.h), then call fake_ctl_init() once with
 * its port. One fake per test program: the port is file-scope state. */
#ifndef VG_TEST_FAKE_AWS_CTL_H
#define VG_TEST_FAKE_AWS_CTL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "aws/client.h"
#include "fixture.h"

static int fake_ctl_port;

static inline void fake_ctl_init(int port)
{
    fake_ctl_port = port;
}

static inline size_t fake_ctl_on_data(char *p, size_t size, size_t n, void *ctx)
{
    return fwrite(p, size, n, ctx);
}

/* method path [body] against http://127.0.0.1:<port>; the JSON answer. */
static inline json_t *fake(const char *method, const char *path, const char *body)
{
    char url[1024], *out = NULL;
    int n = snprintf(url, sizeof(url), "http://127.0.0.1:%d%s", fake_ctl_port, path);
    assert_true(n > 0 && (size_t)n < sizeof(url));
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, fake_ctl_on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, f);
    CURLcode rc = curl_easy_perform(c);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    fclose(f);
    assert_int_equal(rc, CURLE_OK);
    json_t *j = json_loadb(out, len, 0, NULL);
    free(out);
    assert_non_null(j);
    return j;
}

static inline void fake_do(const char *method, const char *path, const char *body)
{
    json_decref(fake(method, path, body));
}

/* Back to the fake's start state; its request log is emptied. */
static inline void fake_reset(void)
{
    fake_do("POST", "/_fake/reset", NULL);
}

/* How many requests the fake logged since the last fake_reset() whose key
 * matches value (GET /_fake/requests?<key>=<value>: the AWS fake's "api", a
 * glob such as "rekognition.*"; fake_deepstack.py's "endpoint"). The fakes
 * log a request before answering it, so every request of a call that has
 * returned is counted. */
static inline size_t fake_count_by(const char *key, const char *value)
{
    char path[256];
    snprintf(path, sizeof(path), "/_fake/requests?%s=%s", key, value);
    json_t *j = fake("GET", path, NULL);
    size_t n = json_array_size(j);
    json_decref(j);
    return n;
}

/* The AWS fake's requests for api (a glob: "rekognition.*"). */
static inline size_t fake_count(const char *api)
{
    return fake_count_by("api", api);
}

/* The fake and one AWS client pointed at it, for a test program's group
 * setup and teardown. */
struct fake_env {
    pid_t pid;
    int port;
    struct vg_aws *aws;
};

static inline int fake_env_start(struct fake_env *e)
{
    e->pid = fixture_fake_aws_start(&e->port);
    if (e->port == 0)
        return -1;
    fake_ctl_init(e->port);
    return vg_aws_create(&e->aws, &(struct vg_aws_opts){0}) == VG_OK ? 0 : -1;
}

static inline void fake_env_stop(struct fake_env *e)
{
    vg_aws_destroy(e->aws);
    fixture_stop(e->pid);
}

#endif
