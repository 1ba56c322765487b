/* Kinesis Data Streams PutRecord against kinesalite behind the SigV4-checking
 * proxy (tests/fakes/sigv4_proxy.py), and the kinesis sink on top of it.
 * Records are read back with GetShardIterator + GetRecords straight from
 * kinesalite and compared byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "aws/client.h"
#include "aws/kinesis.h"
#include "config.h"
#include "emulators.h"
#include "fixture.h"
#include "metrics.h"
#include "sink/sink.h"

#define STREAM "vigil-alerts"
#define SHARD "shardId-000000000000"
#define ACCOUNT "000000000000"  /* kinesalite's account id */

/* kinesalite has no --host: listen on loopback only, streams ACTIVE after
 * argv[3] ms. */
#define KINESALITE_JS                                                              \
    "require(process.argv[1])({createStreamMs: +process.argv[3]})"                 \
    ".listen(+process.argv[2], '127.0.0.1')"

static struct {
    pid_t kinesalite, proxy, dead_proxy;
    int kinesalite_port, proxy_port, dead_proxy_port, closed_port;
    char direct[64], via_proxy[64];
    struct vg_aws *aws;
} g;

static pid_t kinesalite_start(int port, int create_ms)
{
    char mod[1024], portstr[16], ms[16];
    snprintf(mod, sizeof(mod), "%s/tests/emulators/node_modules/kinesalite", emulator_src_dir());
    if (access(mod, R_OK) != 0) {
        fprintf(stderr, "emulators: %s: missing (run scripts/deps)\n", mod);
        return -1;
    }
    snprintf(portstr, sizeof(portstr), "%d", port);
    snprintf(ms, sizeof(ms), "%d", create_ms);
    char *argv[] = {"node", "-e", KINESALITE_JS, mod, portstr, ms, NULL};
    return emulator_wait_port(emulator_spawn(argv), port, "kinesalite");
}

static int start_all(void)
{
    g.kinesalite_port = fixture_free_port();
    if ((g.kinesalite = kinesalite_start(g.kinesalite_port, 50)) <= 0)
        return -1;
    if ((g.proxy = fixture_sigv4_proxy_start("kinesis", g.kinesalite_port, NULL,
                                             &g.proxy_port)) <= 0)
        return -1;
    /* A proxy whose upstream is gone answers 502: a 5xx for the client. */
    g.closed_port = fixture_free_port();
    if ((g.dead_proxy = fixture_sigv4_proxy_start("kinesis", g.closed_port, NULL,
                                                  &g.dead_proxy_port)) <= 0)
        return -1;
    fixture_aws_test_env();
    snprintf(g.direct, sizeof(g.direct), "http://127.0.0.1:%d", g.kinesalite_port);
    snprintf(g.via_proxy, sizeof(g.via_proxy), "http://127.0.0.1:%d", g.proxy_port);
    setenv("AWS_ENDPOINT_URL_KINESIS", g.via_proxy, 1);
    struct vg_aws_opts o = {.timeout_ms = 10000};
    return vg_aws_create(&g.aws, &o) == VG_OK ? 0 : -1;
}

static int teardown(void **state)
{
    vg_aws_destroy(g.aws);
    fixture_stop(g.dead_proxy);
    fixture_stop(g.proxy);
    fixture_stop(g.kinesalite);
    memset(&g, 0, sizeof(g));   /* cmocka may call it again after a failed setup */
    return 0;
}

static int setup(void **state)
{
    if (start_all() == 0)
        return 0;
    teardown(state);
    return -1;
}

/* ---- Kinesis calls the client does not offer (the test's own) ------------- */

static json_t *kcall(const char *endpoint, const char *op, json_t *body, vg_status *st)
{
    char target[96];
    json_t *answer = NULL;
    snprintf(target, sizeof(target), "Kinesis_20131202.%s", op);
    struct vg_aws_request r = {
        .api = op, .service = "kinesis", .endpoint = endpoint, .method = "POST", .path = "/",
        .content_type = "application/x-amz-json-1.1", .target = target,
    };
    *st = vg_aws_call_json(g.aws, &r, body, JSON_COMPACT, &answer);
    return answer;
}

/* CreateStream through the proxy (signed), then wait for ACTIVE. */
static void ensure_stream(const char *name)
{
    vg_status st;
    json_decref(kcall(g.via_proxy, "CreateStream",
                      json_pack("{s:s, s:i}", "StreamName", name, "ShardCount", 1), &st));
    if (st != VG_OK && strcmp(vg_aws_last_error_code(), "ResourceInUseException") != 0)
        fail_msg("CreateStream %s: %s", name, vg_err_detail());
    for (int i = 0; i < 200; i++) {
        json_t *d = kcall(g.via_proxy, "DescribeStreamSummary",
                          json_pack("{s:s}", "StreamName", name), &st);
        const char *status = json_string_value(
            json_object_get(json_object_get(d, "StreamDescriptionSummary"), "StreamStatus"));
        int active = st == VG_OK && status && !strcmp(status, "ACTIVE");
        json_decref(d);
        if (active)
            return;
        vg_sleep_us(20000);
    }
    fail_msg("stream %s not ACTIVE after 4 s", name);
}

static int ensure_default_stream(void **state)
{
    ensure_stream(STREAM);
    return 0;
}

/* Every record of the stream's one shard, oldest first, straight from
 * kinesalite (it checks that a signature is there, not that it holds). */
static json_t *records(const char *stream)
{
    vg_status st;
    json_t *all = json_array();
    json_t *it = kcall(g.direct, "GetShardIterator",
                       json_pack("{s:s, s:s, s:s}", "StreamName", stream, "ShardId", SHARD,
                                 "ShardIteratorType", "TRIM_HORIZON"), &st);
    assert_int_equal(st, VG_OK);
    char *iter = strdup(json_string_value(json_object_get(it, "ShardIterator")));
    json_decref(it);
    for (int page = 0; page < 50; page++) {
        json_t *r = kcall(g.direct, "GetRecords", json_pack("{s:s}", "ShardIterator", iter), &st);
        assert_int_equal(st, VG_OK);
        json_t *recs = json_object_get(r, "Records");
        size_t n = json_array_size(recs);
        json_array_extend(all, recs);
        free(iter);
        iter = strdup(json_string_value(json_object_get(r, "NextShardIterator")));
        json_decref(r);
        if (n == 0)
            break;
    }
    free(iter);
    return all;
}

static json_t *record_by_seq(json_t *all, const char *seq)
{
    size_t i;
    json_t *rec;
    json_array_foreach(all, i, rec)
        if (!strcmp(json_string_value(json_object_get(rec, "SequenceNumber")), seq))
            return rec;
    fail_msg("no record with sequence number %s among %zu", seq, json_array_size(all));
    return NULL;
}

/* Base64 of a record's Data back into bytes; *len gets their number. */
static unsigned char *decode(const json_t *rec, size_t *len)
{
    const char *b64 = json_string_value(json_object_get(rec, "Data"));
    assert_non_null(b64);
    size_t n = strlen(b64);
    unsigned char *out = malloc(n / 4 * 3 + 1);
    int got = EVP_DecodeBlock(out, (const unsigned char *)b64, (int)n);
    assert_true(got >= 0);
    while (n > 0 && b64[n - 1] == '=')  /* EVP_DecodeBlock counts padding as bytes */
        n--, got--;
    *len = (size_t)got;
    return out;
}

static void assert_record(json_t *all, const struct vg_kinesis_put *put, const void *data,
                          size_t len, const char *key)
{
    size_t got_len = 0;
    json_t *rec = record_by_seq(all, put->sequence_number);
    unsigned char *got = decode(rec, &got_len);
    assert_int_equal(got_len, len);
    assert_memory_equal(got, data, len);
    assert_string_equal(json_string_value(json_object_get(rec, "PartitionKey")), key);
    free(got);
}

static size_t count(const char *stream)
{
    json_t *all = records(stream);
    size_t n = json_array_size(all);
    json_decref(all);
    return n;
}

/* ---- the client ------------------------------------------------------------ */

static void put_record_reads_back(void **state)
{
    unsigned char bin[1000];
    for (size_t i = 0; i < sizeof(bin); i++)
        bin[i] = (unsigned char)(i * 7);    /* every byte value, NULs included */
    const char *json = "{\"alert_id\":\"a1\",\"camera\":\"porch\",\"label\":\"person\"}";
    const char *ukey = "\xc3\x9cnic\xc3\xb8" "de-\xf0\x9f\x8e\xa5";   /* "Ünicøde-🎥" */
    struct vg_kinesis_stream s = {.name = STREAM};
    struct vg_kinesis_put p1, p2, p3;
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, bin, sizeof(bin), "porch", &p1), VG_OK);
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, json, strlen(json), ukey, &p2), VG_OK);
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "", 0, "empty", &p3), VG_OK);
    assert_string_equal(p1.shard_id, SHARD);
    assert_true(strlen(p1.sequence_number) > 20);
    assert_string_not_equal(p1.sequence_number, p2.sequence_number);

    json_t *all = records(STREAM);
    assert_record(all, &p1, bin, sizeof(bin), "porch");
    assert_record(all, &p2, json, strlen(json), ukey);
    assert_record(all, &p3, "", 0, "empty");
    json_decref(all);
}

static void stream_arn_sends_its_name_too(void **state)
{
    const char *arn = "arn:aws:kinesis:us-east-1:" ACCOUNT ":stream/" STREAM;
    struct vg_kinesis_stream s = {.arn = arn};
    struct vg_kinesis_put p;
    char region[64], name[VG_KINESIS_NAME_MAX + 1];
    assert_int_equal(vg_kinesis_check_arn(arn, region, name, sizeof(name)), VG_OK);
    assert_string_equal(region, "us-east-1");
    assert_string_equal(name, STREAM);
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "by-arn", 6, "k", &p), VG_OK);
    json_t *all = records(STREAM);
    assert_record(all, &p, "by-arn", 6, "k");
    json_decref(all);
}

static void unknown_stream_is_not_found(void **state)
{
    struct vg_kinesis_stream s = {.name = "no-such-stream"};
    struct vg_kinesis_put p = {.shard_id = "untouched"};
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "x", 1, "k", &p), VG_ERR_NOT_FOUND);
    assert_string_equal(vg_aws_last_error_code(), "ResourceNotFoundException");
    assert_non_null(strstr(vg_err_detail(), "kinesis.PutRecord: ResourceNotFoundException: "
                                            "Stream no-such-stream under account"));
    assert_string_equal(p.shard_id, "untouched");   /* out written only on success */
}

static void wrong_secret_is_refused_by_the_proxy(void **state)
{
    struct vg_aws *bad = NULL;
    struct vg_aws_opts o = {.creds = {.access_key_id = FIXTURE_AWS_KEY,
                                      .secret_access_key = "not/the/secret"}};
    struct vg_kinesis_stream s = {.name = STREAM};
    size_t before = count(STREAM);
    assert_int_equal(vg_aws_create(&bad, &o), VG_OK);
    assert_int_equal(vg_kinesis_put_record(bad, &s, "forged", 6, "k", NULL), VG_ERR_AUTH);
    assert_string_equal(vg_aws_last_error_code(), "InvalidSignatureException");
    vg_aws_destroy(bad);
    assert_int_equal(count(STREAM), before);       /* nothing reached kinesalite */
}

/* The largest record goes through and back intact; one byte more is refused
 * before any request (the endpoint is a closed port: a request would fail
 * with VG_ERR_UNAVAILABLE, and the call counter would move). */
static void record_size_limit(void **state)
{
    const char *key = "porch";
    size_t max = VG_KINESIS_RECORD_MAX - strlen(key);
    unsigned char *big = malloc(max + 1);
    for (size_t i = 0; i <= max; i++)
        big[i] = (unsigned char)(i % 251);
    struct vg_kinesis_stream s = {.name = STREAM};
    struct vg_kinesis_put p;
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, big, max, key, &p), VG_OK);
    json_t *all = records(STREAM);
    assert_record(all, &p, big, max, key);
    json_decref(all);

    char closed[64];
    snprintf(closed, sizeof(closed), "http://127.0.0.1:%d", g.closed_port);
    struct vg_kinesis_stream nowhere = {.name = STREAM, .endpoint = closed};
    struct vg_counter *calls = vg_counter_get("vigil_aws_calls_total", "AWS API calls");
    uint64_t calls0 = vg_counter_value(calls);
    assert_int_equal(vg_kinesis_put_record(g.aws, &nowhere, big, max + 1, key, NULL),
                     VG_ERR_TOO_LARGE);
    assert_non_null(strstr(vg_err_detail(), "1048572 bytes of data and 5 of partition key"));
    assert_int_equal(vg_counter_value(calls), calls0);
    /* The same endpoint with a record that fits does send: the test above
     * proves something. */
    assert_int_equal(vg_kinesis_put_record(g.aws, &nowhere, "x", 1, key, NULL),
                     VG_ERR_UNAVAILABLE);
    free(big);
}

static void partition_keys_and_names_checked_locally(void **state)
{
    char key[1024] = "";
    struct vg_kinesis_stream s = {.name = STREAM};
    struct vg_kinesis_put p;
    struct vg_counter *calls = vg_counter_get("vigil_aws_calls_total", "AWS API calls");
    uint64_t calls0 = vg_counter_value(calls);
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "x", 1, "", NULL), VG_ERR_INVALID);
    memset(key, 'a', 257);
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "x", 1, key, NULL), VG_ERR_INVALID);
    assert_non_null(strstr(vg_err_detail(), "257 characters"));
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "x", 1, "bad\xff", NULL), VG_ERR_INVALID);
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "x", 1, "\xed\xa0\x80", NULL),
                     VG_ERR_INVALID);   /* a UTF-16 surrogate */
    /* 129 emoji are 258 UTF-16 units. */
    key[0] = '\0';
    for (int i = 0; i < 129; i++)
        strcat(key, "\xf0\x9f\x8e\xa5");
    assert_int_equal(vg_kinesis_key_chars(key), 258);
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "x", 1, key, NULL), VG_ERR_INVALID);
    struct vg_kinesis_stream both = {.name = STREAM, .arn = "arn:aws:kinesis:us-east-1:"
                                                            ACCOUNT ":stream/" STREAM};
    struct vg_kinesis_stream neither = {0}, bad_name = {.name = "has space"},
                             bad_arn = {.arn = "arn:aws:sqs:us-east-1:" ACCOUNT ":q"},
                             short_account = {.arn = "arn:aws:kinesis:us-east-1:123:stream/s"};
    assert_int_equal(vg_kinesis_put_record(g.aws, &both, "x", 1, "k", NULL), VG_ERR_INVALID);
    assert_int_equal(vg_kinesis_put_record(g.aws, &neither, "x", 1, "k", NULL), VG_ERR_INVALID);
    assert_int_equal(vg_kinesis_put_record(g.aws, &bad_name, "x", 1, "k", NULL),
                     VG_ERR_INVALID);
    assert_int_equal(vg_kinesis_put_record(g.aws, &bad_arn, "x", 1, "k", NULL), VG_ERR_INVALID);
    assert_int_equal(vg_kinesis_put_record(g.aws, &short_account, "x", 1, "k", NULL),
                     VG_ERR_INVALID);
    assert_int_equal(vg_counter_value(calls), calls0);

    /* At the limit, counted as Kinesis counts: 256 two-byte characters, and
     * 128 emoji (256 UTF-16 units); kinesalite takes both. */
    key[0] = '\0';
    for (int i = 0; i < 256; i++)
        strcat(key, "\xc3\xa9");
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "e", 1, key, &p), VG_OK);
    json_t *all = records(STREAM);
    assert_record(all, &p, "e", 1, key);
    json_decref(all);
    key[0] = '\0';
    for (int i = 0; i < 128; i++)
        strcat(key, "\xf0\x9f\x8e\xa5");
    assert_int_equal(vg_kinesis_put_record(g.aws, &s, "f", 1, key, &p), VG_OK);
    all = records(STREAM);
    assert_record(all, &p, "f", 1, key);
    json_decref(all);
}

/* ---- the sink ---------------------------------------------------------------- */

static struct vg_config cfg;

static vg_status parse_sinks(const char *sinks)
{
    char text[4096];
    snprintf(text, sizeof(text), "notifier:\n  sinks:\n%s", sinks);
    return vg_cfg_parse(&cfg, "test.yaml", text, strlen(text));
}

static void assert_config_error(const char *sinks, const char *want)
{
    assert_int_equal(parse_sinks(sinks), VG_ERR_CONFIG);
    if (!strstr(vg_err_detail(), want))
        fail_msg("error \"%s\" does not contain \"%s\"", vg_err_detail(), want);
}

/* Deliver one alert of camera "porch" (label "person") with sink i of cfg. */
static void deliver(int i, const char *json, struct vg_sink_result *r)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    h.camera_id = "porch";
    a.header = &h;
    a.alert_id = "a-sink";
    a.label = "person";
    struct vg_sink_alert v = {.alert = &a, .json = json, .json_len = strlen(json),
                              .title = "", .text = "", .html = "", .delivery = 1};
    struct vg_sink *s = NULL;
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[i], &cfg), VG_OK);
    vg_sink_deliver(s, &v, r);
    vg_sink_close(s);
}

static void sink_config_is_checked(void **state)
{
    assert_int_equal(parse_sinks("    - {name: k, type: kinesis, stream_name: s}\n"), VG_OK);
    const struct vg_sink_cfg *k = &cfg.notifier.sinks[0];
    assert_string_equal(k->ops->name, "kinesis");
    assert_int_equal(k->incidents, VG_SINK_INCIDENTS_ALL);     /* a machine channel */
    assert_int_equal(k->timeout_ms, 5000);
    assert_config_error("    - {name: k, type: kinesis}\n",
                        "test.yaml:3: sink k: a kinesis sink needs exactly one of stream_name "
                        "and stream_arn");
    assert_config_error("    - {name: k, type: kinesis, stream_name: s, stream_arn: "
                        "'arn:aws:kinesis:us-east-1:" ACCOUNT ":stream/s'}\n",
                        "needs exactly one of stream_name and stream_arn");
    assert_config_error("    - {name: k, type: kinesis, stream_name: 'a b'}\n",
                        "stream_name \"a b\" must be 1..128 letters");
    assert_config_error("    - {name: k, type: kinesis, stream_arn: 'arn:aws:s3:::b'}\n",
                        "stream_arn \"arn:aws:s3:::b\" is not a stream ARN");
    assert_config_error("    - {name: k, type: kinesis, stream_name: s, partition_key: "
                        "'{camera}-{who}'}\n",
                        "partition_key \"{camera}-{who}\": only {camera} and {label}");
    assert_config_error("    - {name: k, type: kinesis, stream_name: s, partition_key: ''}\n",
                        "partition_key is empty");
    assert_config_error("    - {name: k, type: kinesis, stream_name: s, endpoint: "
                        "'http://h:1/path'}\n",
                        "endpoint \"http://h:1/path\" must be http(s)://host[:port]");
    assert_int_equal(parse_sinks("    - {name: k, type: kinesis, stream_name: s, partition_key: "
                                 "'{{{label}}}', endpoint: 'http://h:1/'}\n"),
                     VG_OK);
}

static void sink_delivers_with_its_partition_key(void **state)
{
    char sinks[1024];
    const char *json = "{\"alert_id\":\"a-sink\",\"camera\":\"porch\",\"label\":\"person\"}";
    struct vg_sink_result r = {0};
    snprintf(sinks, sizeof(sinks),
             "    - {name: k, type: kinesis, stream_name: %s, endpoint: '%s/',\n"
             "       partition_key: '{label}@{camera}{{1}}'}\n", STREAM, g.via_proxy);
    assert_int_equal(parse_sinks(sinks), VG_OK);
    size_t before = count(STREAM);
    deliver(0, json, &r);
    assert_int_equal(r.verdict, VG_SINK_DELIVERED);
    json_t *all = records(STREAM);
    assert_int_equal(json_array_size(all), before + 1);
    json_t *rec = json_array_get(all, before);
    size_t len = 0;
    unsigned char *data = decode(rec, &len);
    assert_int_equal(len, strlen(json));
    assert_memory_equal(data, json, len);
    assert_string_equal(json_string_value(json_object_get(rec, "PartitionKey")),
                        "person@porch{1}");
    free(data);
    json_decref(all);
}

static void sink_long_key_is_cut(void **state)
{
    char sinks[2048], tpl[600] = "";
    struct vg_sink_result r = {0};
    for (int i = 0; i < 50; i++)
        strcat(tpl, "{camera}");            /* 50 x "porch": 250 characters, then more */
    strcat(tpl, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
    snprintf(sinks, sizeof(sinks),
             "    - {name: k, type: kinesis, stream_name: %s, partition_key: '%s'}\n", STREAM,
             tpl);
    assert_int_equal(parse_sinks(sinks), VG_OK);
    size_t before = count(STREAM);
    deliver(0, "{}", &r);
    assert_int_equal(r.verdict, VG_SINK_DELIVERED);
    json_t *all = records(STREAM);
    const char *key = json_string_value(json_object_get(json_array_get(all, before),
                                                        "PartitionKey"));
    assert_int_equal(vg_kinesis_key_chars(key), 256);
    assert_int_equal(strlen(key), 250 + 12);        /* six é of two bytes each */
    json_decref(all);
}

static void sink_classifies_failures(void **state)
{
    char sinks[2048];
    struct vg_sink_result r = {0};
    snprintf(sinks, sizeof(sinks),
             "    - {name: missing, type: kinesis, stream_name: no-such-stream}\n"
             "    - {name: down, type: kinesis, stream_name: %s, endpoint: "
             "'http://127.0.0.1:%d'}\n"
             "    - {name: bad-gateway, type: kinesis, stream_name: %s, endpoint: "
             "'http://127.0.0.1:%d'}\n"
             "    - {name: arn, type: kinesis, stream_arn: "
             "'arn:aws:kinesis:eu-west-1:" ACCOUNT ":stream/%s'}\n",
             STREAM, g.closed_port, STREAM, g.dead_proxy_port, STREAM);
    assert_int_equal(parse_sinks(sinks), VG_OK);

    deliver(0, "{}", &r);
    assert_int_equal(r.verdict, VG_SINK_PERMANENT);
    assert_non_null(strstr(r.error, "stream no-such-stream: kinesis.PutRecord: "
                                    "ResourceNotFoundException: Stream no-such-stream"));
    deliver(1, "{}", &r);
    assert_int_equal(r.verdict, VG_SINK_RETRY);
    deliver(2, "{}", &r);
    assert_int_equal(r.verdict, VG_SINK_RETRY);
    assert_non_null(strstr(r.error, "HTTP 502"));

    /* A stream in another region than the requests are signed for. */
    struct vg_sink *s = NULL;
    assert_int_equal(vg_sink_open(&s, &cfg.notifier.sinks[3], &cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "sink arn: stream_arn is in region eu-west-1, but "
                                            "AWS requests are signed for us-east-1"));
}

static void sink_wrong_secret_is_permanent(void **state)
{
    char text[2048];
    struct vg_sink_result r = {0};
    snprintf(text, sizeof(text),
             "aws: {access_key_id: %s, secret_access_key: not-the-secret}\n"
             "notifier:\n  sinks:\n    - {name: k, type: kinesis, stream_name: %s}\n",
             FIXTURE_AWS_KEY, STREAM);
    assert_int_equal(vg_cfg_parse(&cfg, "test.yaml", text, strlen(text)), VG_OK);
    deliver(0, "{}", &r);
    assert_int_equal(r.verdict, VG_SINK_PERMANENT);
    assert_non_null(strstr(r.error, "InvalidSignatureException"));
    assert_null(strstr(r.error, "not-the-secret"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(put_record_reads_back, ensure_default_stream),
        cmocka_unit_test_setup(stream_arn_sends_its_name_too, ensure_default_stream),
        cmocka_unit_test_setup(unknown_stream_is_not_found, ensure_default_stream),
        cmocka_unit_test_setup(wrong_secret_is_refused_by_the_proxy, ensure_default_stream),
        cmocka_unit_test_setup(record_size_limit, ensure_default_stream),
        cmocka_unit_test_setup(partition_keys_and_names_checked_locally, ensure_default_stream),
        cmocka_unit_test(sink_config_is_checked),
        cmocka_unit_test_setup(sink_delivers_with_its_partition_key, ensure_default_stream),
        cmocka_unit_test_setup(sink_long_key_is_cut, ensure_default_stream),
        cmocka_unit_test_setup(sink_classifies_failures, ensure_default_stream),
        cmocka_unit_test_setup(sink_wrong_secret_is_permanent, ensure_default_stream),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
