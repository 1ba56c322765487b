/* The AWS store backends against the emulators behind the SigV4-checking
 * proxy: the s3 snapshot store against s3rver (put/get in seed 004's layout,
 * a pre-signed link fetched with libcurl and refused once expired, the link's
 * lifetime cut to the signing credentials', AccessDenied from the shipped
 * dispatch policy enforced by the proxy) and the dynamodb metadata store
 * against dynalite (ranges, limits, kinds, newest first across pages, the
 * TTL attribute, the frame fetcher with pre-signed links, AccessDenied). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <ftw.h>
#include <jansson.h>

#include "aws/client.h"
#include "aws/dynamodb.h"
#include "aws/s3.h"
#include "config.h"
#include "emulators.h"
#include "fake_aws_ctl.h"
#include "fixture.h"
#include "http_get.h"
#include "store/meta_store.h"
#include "store/snapshot_store.h"
#include "timeutil.h"

#define BUCKET "vigil-snaps"
#define TABLE "vigil-metadata-test"
#define TS_US 1700000000123456LL    /* 2023-11-14 22:13:20 UTC */

static struct {
    pid_t s3rver, s3proxy, s3deny, dynalite, ddbproxy, ddbdeny, fake;
    int s3_port, s3deny_port, ddb_port, ddbdeny_port, fake_port;
    char dir[64], cfg_path[64];
    struct vg_config cfg;
    struct vg_aws *aws;
    int64_t now;
} g;

/* ---- setup ------------------------------------------------------------- */

/* The proxy of emulators.h with the IAM policy of deploy/aws/policies/<svc>
 * enforced (tests/fakes/sigv4_proxy.py --policy). */
static pid_t policy_proxy_start(const char *service, int upstream_port, const char *upstream_key,
                                const char *policy, int *port)
{
    char file[1024];
    snprintf(file, sizeof(file), "%s/deploy/aws/policies/%s.json", emulator_src_dir(), policy);
    char *extra[] = {"--policy", file, "--policy-var", "Partition=aws",
                     "--policy-var", "Region=" FIXTURE_AWS_REGION,
                     "--policy-var", "AccountId=123456789012",
                     "--policy-var", "BucketName=" BUCKET, "--policy-var", "MetadataTable=" TABLE,
                     "--policy-var", "ProfilesTable=vigil-profiles",
                     "--policy-var", "Collection=vigil-faces", "--policy-var", "TopicName=t",
                     "--policy-var", "StreamPrefix=vigil-", "--policy-var", "AlertStream=a",
                     NULL};
    return fixture_sigv4_proxy_start_with(service, upstream_port, upstream_key, extra, port);
}

static void endpoints(int s3_port, int ddb_port)
{
    char url[64];
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", s3_port);
    setenv("AWS_ENDPOINT_URL_S3", url, 1);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ddb_port);
    setenv("AWS_ENDPOINT_URL_DYNAMODB", url, 1);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int teardown(void **state)
{
    (void)state;
    vg_aws_destroy(g.aws);
    fixture_stop(g.s3deny);
    fixture_stop(g.s3proxy);
    fixture_stop(g.s3rver);
    fixture_stop(g.ddbdeny);
    fixture_stop(g.ddbproxy);
    fixture_stop(g.dynalite);
    fixture_stop(g.fake);
    if (g.dir[0])
        nftw(g.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (g.cfg_path[0])
        unlink(g.cfg_path);
    memset(&g, 0, sizeof(g));
    return 0;
}

static int start_all(void)
{
    int s3 = fixture_free_port(), ddb = fixture_free_port();
    snprintf(g.dir, sizeof(g.dir), "/tmp/vigil-storeaws-XXXXXX");
    if (!mkdtemp(g.dir) || (g.s3rver = fixture_s3rver_start(s3, g.dir)) <= 0 ||
        (g.dynalite = fixture_dynalite_start(ddb)) <= 0)
        return -1;
    g.s3proxy = fixture_sigv4_proxy_start("s3", s3, "S3RVER", &g.s3_port);
    g.ddbproxy = fixture_sigv4_proxy_start("dynamodb", ddb, NULL, &g.ddb_port);
    g.s3deny = policy_proxy_start("s3", s3, "S3RVER", "dispatch", &g.s3deny_port);
    g.ddbdeny = policy_proxy_start("dynamodb", ddb, NULL, "console", &g.ddbdeny_port);
    if (g.s3proxy <= 0 || g.ddbproxy <= 0 || g.s3deny <= 0 || g.ddbdeny <= 0)
        return -1;
    fixture_aws_test_env();
    endpoints(g.s3_port, g.ddb_port);
    if (vg_aws_create(&g.aws, &(struct vg_aws_opts){.timeout_ms = 10000}) != VG_OK)
        return -1;
    return vg_s3_create_bucket(g.aws, BUCKET) == VG_OK ? 0 : -1;
}

static int setup(void **state)
{
    g.now = vg_now_us();
    if (start_all() == 0)
        return 0;
    teardown(state);
    return -1;
}

static vg_status load(const char *store_yaml)
{
    if (g.cfg_path[0])
        unlink(g.cfg_path);
    snprintf(g.cfg_path, sizeof(g.cfg_path), "/tmp/vigil-storeaws-cfg-XXXXXX");
    int fd = mkstemp(g.cfg_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, store_yaml, strlen(store_yaml)), (ssize_t)strlen(store_yaml));
    close(fd);
    return vg_cfg_load(&g.cfg, g.cfg_path);
}

static struct vg_snap_store *open_s3(const char *extra)
{
    char yaml[1024];
    struct vg_snap_store *s = NULL;
    snprintf(yaml, sizeof(yaml), "store:\n  snapshots:\n    type: s3\n    bucket: " BUCKET "\n%s",
             extra ? extra : "");
    assert_int_equal(load(yaml), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &g.cfg), VG_OK);
    assert_string_equal(vg_snap_store_type(s), "s3");
    return s;
}

static long query_int(const char *url, const char *name)
{
    char key[64];
    snprintf(key, sizeof(key), "%s=", name);
    const char *p = strstr(url, key);
    return p ? atol(p + strlen(key)) : -1;
}

/* ---- snapshots on S3 ------------------------------------------------------ */

static const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0,
                               's', 'n', 'a', 'p', 0xff, 0xd9};

static void s3_put_get_link_expiry(void **state)
{
    (void)state;
    struct vg_snap_store *s = open_s3("    presign_expiry_s: 2\n");
    char ref[VG_SNAP_REF_MAX], url[4096];
    uint8_t *data = NULL;
    size_t len = 0;
    struct vg_s3_object_info info;
    struct buf b = {0};

    assert_int_equal(vg_snap_put(s, "porch", TS_US, "4bf92f3577b34da6", jpeg, sizeof(jpeg), ref,
                                 sizeof(ref)), VG_OK);
    assert_string_equal(ref, "s3://" BUCKET "/frames/porch/2023/11/14/22/4bf92f3577b34da6.jpg");
    assert_int_equal(vg_s3_head_object(g.aws, BUCKET, "frames/porch/2023/11/14/22/"
                                       "4bf92f3577b34da6.jpg", &info), VG_OK);
    assert_string_equal(info.content_type, "image/jpeg");
    assert_int_equal(vg_snap_get(s, ref, 1 << 20, &data, &len), VG_OK);
    assert_int_equal(len, sizeof(jpeg));
    assert_memory_equal(data, jpeg, len);
    free(data);
    assert_int_equal(vg_snap_get(s, ref, 4, &data, &len), VG_ERR_TOO_LARGE);
    assert_int_equal(vg_snap_get(s, "s3://" BUCKET "/frames/porch/2023/11/14/22/none.jpg",
                                 1 << 20, &data, &len), VG_ERR_NOT_FOUND);

    /* The link: pre-signed, 2 s as configured, opens with a plain GET... */
    assert_int_equal(vg_snap_link(s, ref, url, sizeof(url)), VG_OK);
    assert_int_equal(query_int(url, "X-Amz-Expires"), 2);
    assert_non_null(strstr(url, "X-Amz-Signature="));
    assert_int_equal(http_get(url, &b), 200);
    assert_int_equal(b.len, sizeof(jpeg));
    assert_memory_equal(b.data, jpeg, b.len);
    free(b.data);
    /* ...and not after it expired: the proxy enforces X-Amz-Expires as S3 does. */
    vg_sleep_us(3100000);
    memset(&b, 0, sizeof(b));
    assert_int_equal(http_get(url, &b), 403);
    assert_non_null(strstr(b.data, "<Code>AccessDenied</Code>"));
    assert_non_null(strstr(b.data, "Request has expired"));
    free(b.data);

    /* Refs of another store or that escape this one. */
    const char *bad[] = {"s3://other-bucket/frames/porch/2023/11/14/22/x.jpg",
                         "s3://" BUCKET "/frames/../secret.jpg", "s3://" BUCKET "/secret.jpg",
                         "s3://" BUCKET "//frames/porch/x.jpg", "fs:frames/porch/x.jpg",
                         "s3://" BUCKET, "https://" BUCKET ".s3.amazonaws.com/frames/x.jpg"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vg_snap_get(s, bad[i], 1 << 20, &data, &len), VG_ERR_INVALID);
        assert_int_equal(vg_snap_link(s, bad[i], url, sizeof(url)), VG_ERR_INVALID);
    }
    size_t removed = 7;
    assert_int_equal(vg_snap_prune(s, &removed), VG_OK);    /* the lifecycle rule's job */
    assert_int_equal(removed, 0);
    vg_snap_store_close(s);
}

/* A prefix, the default expiry (seed 004's 1800 s) and SSE-KMS with a key. */
static void s3_prefix_kms_default_expiry(void **state)
{
    (void)state;
    struct vg_snap_store *s =
        open_s3("    prefix: site-a/\n    sse: aws:kms\n    kms_key_id: alias/vigil\n");
    char ref[VG_SNAP_REF_MAX], url[4096];
    struct buf b = {0};
    assert_int_equal(vg_snap_put(s, "yard", TS_US, "t2", jpeg, sizeof(jpeg), ref, sizeof(ref)),
                     VG_OK);
    assert_string_equal(ref, "s3://" BUCKET "/site-a/frames/yard/2023/11/14/22/t2.jpg");
    assert_int_equal(vg_snap_link(s, ref, url, sizeof(url)), VG_OK);
    assert_int_equal(query_int(url, "X-Amz-Expires"), 1800);
    assert_int_equal(http_get(url, &b), 200);
    assert_int_equal(b.len, sizeof(jpeg));
    free(b.data);
    /* Our prefix only. */
    uint8_t *data = NULL;
    size_t len = 0;
    assert_int_equal(vg_snap_get(s, "s3://" BUCKET "/frames/yard/2023/11/14/22/t2.jpg", 1 << 20,
                                 &data, &len), VG_ERR_INVALID);
    vg_snap_store_close(s);
    /* A KMS key without aws:kms is a configuration error. */
    struct vg_snap_store *bad = NULL;
    assert_int_equal(load("store:\n  snapshots: {type: s3, bucket: " BUCKET ", kms_key_id: k}\n"),
                     VG_OK);
    assert_int_equal(vg_snap_store_open(&bad, &g.cfg), VG_ERR_CONFIG);
}

/* The shipped dispatch policy (PutObject on frames/ only), enforced by the
 * proxy: a store with a prefix the policy was not widened for is refused,
 * and the error names the bucket, the key and AWS's code. */
static void s3_access_denied(void **state)
{
    (void)state;
    char ref[VG_SNAP_REF_MAX];
    uint8_t *data = NULL;
    size_t len = 0;
    endpoints(g.s3deny_port, g.ddb_port);
    struct vg_snap_store *s = open_s3("    prefix: site-a/\n");
    vg_status st = vg_snap_put(s, "porch", TS_US, "t3", jpeg, sizeof(jpeg), ref, sizeof(ref));
    assert_int_equal(st, VG_ERR_AUTH);
    const char *d = vg_err_detail();
    assert_non_null(strstr(d, "s3://" BUCKET "/site-a/frames/porch/2023/11/14/22/t3.jpg"));
    assert_non_null(strstr(d, "access denied (AccessDenied)"));
    assert_non_null(strstr(d, "s3:PutObject"));
    assert_string_equal(ref, "");
    vg_snap_store_close(s);

    /* Without the prefix the same policy lets dispatch write, not read. */
    s = open_s3(NULL);
    assert_int_equal(vg_snap_put(s, "porch", TS_US, "t4", jpeg, sizeof(jpeg), ref, sizeof(ref)),
                     VG_OK);
    assert_int_equal(vg_snap_get(s, ref, 1 << 20, &data, &len), VG_ERR_AUTH);
    assert_string_equal(vg_aws_last_error_code(), "AccessDenied");
    vg_snap_store_close(s);
    endpoints(g.s3_port, g.ddb_port);
}

/* Temporary credentials (the container endpoint of the AWS fake, 15 minutes
 * left): the link lives no longer than they do, whatever presign_expiry_s. */
static void s3_link_clamped_to_credentials(void **state)
{
    (void)state;
    char url[64], ref[VG_SNAP_REF_MAX], link[4096];
    g.fake = fixture_fake_aws_start(&g.fake_port);
    assert_true(g.fake_port > 0);
    fake_ctl_init(g.fake_port);
    fake_do("POST", "/_fake/config", "{\"credential_ttl\": 900}");
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/container-credentials/vigil", g.fake_port);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", url, 1);
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", "test-container-token", 1);
    struct vg_snap_store *s = open_s3("    presign_expiry_s: 3600\n");
    snprintf(ref, sizeof(ref), "s3://" BUCKET "/frames/porch/2023/11/14/22/4bf92f3577b34da6.jpg");
    assert_int_equal(vg_snap_link(s, ref, link, sizeof(link)), VG_OK);
    long expires = query_int(link, "X-Amz-Expires");
    assert_true(expires > 850 && expires <= 900);
    assert_non_null(strstr(link, "X-Amz-Security-Token="));
    assert_non_null(strstr(link, "X-Amz-Credential=ASIA"));
    vg_snap_store_close(s);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    unsetenv("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    fixture_aws_test_env();
    endpoints(g.s3_port, g.ddb_port);
}

/* ---- metadata in DynamoDB ------------------------------------------------ */

static struct vg_meta_store *open_ddb(const char *extra)
{
    char yaml[1024];
    struct vg_meta_store *m = NULL;
    snprintf(yaml, sizeof(yaml),
             "store:\n  metadata:\n    type: dynamodb\n    table: " TABLE "\n"
             "    create_table: true\n%s", extra ? extra : "");
    assert_int_equal(load(yaml), VG_OK);
    assert_int_equal(vg_meta_store_open(&m, &g.cfg, NULL), VG_OK);
    assert_string_equal(vg_meta_store_type(m), "dynamodb");
    return m;
}

static void put_frame(struct vg_meta_store *m, const char *cam, int64_t ts, const char *trace,
                      const char *ref)
{
    char json[512];
    snprintf(json, sizeof(json),
             "{\"camera\":\"%s\",\"capture_ts_us\":%lld,\"trace_id\":\"%s\",\"labels\":"
             "[{\"label\":\"car\",\"confidence\":0.8,\"box\":{\"x\":0.1,\"y\":0.1,\"w\":0.5,"
             "\"h\":0.5}}],\"snapshot_ref\":\"%s\"}", cam, (long long)ts, trace, ref ? ref : "");
    assert_int_equal(vg_meta_put(m, VG_META_FRAME, cam, ts, trace, json), VG_OK);
}

static void ddb_ranges_limits_kinds(void **state)
{
    (void)state;
    struct vg_meta_store *m = open_ddb("    ttl_h: 48\n");
    struct vg_meta_result res;
    int64_t t0 = g.now - 2 * 3600LL * 1000000;
    char id[32];
    /* Five alerts first (oldest), then 150 frames: a kinds query for alerts
     * reads past more than one page of frames. */
    for (int i = 0; i < 5; i++) {
        snprintf(id, sizeof(id), "alert-%d", i);
        assert_int_equal(vg_meta_put(m, VG_META_ALERT, "gate", t0 + i, id, "{\"a\":1}"), VG_OK);
    }
    for (int i = 0; i < 150; i++) {
        snprintf(id, sizeof(id), "f%03d", i);
        put_frame(m, "gate", t0 + 1000000 + (int64_t)i * 1000, id, NULL);
    }
    put_frame(m, "porch", t0 + 5000000, "porch-frame", NULL);

    struct vg_meta_query q = {.camera = "gate", .limit = 10};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 10);
    assert_string_equal(res.r[0].id, "f149");
    assert_string_equal(res.r[9].id, "f140");
    assert_int_equal(res.r[0].ts_us, t0 + 1000000 + 149 * 1000);
    for (size_t i = 1; i < res.n; i++)
        assert_true(res.r[i - 1].ts_us > res.r[i].ts_us);
    vg_meta_result_free(&res);

    q = (struct vg_meta_query){.camera = "gate", .kinds = VG_META_ALERT};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 5);
    assert_string_equal(res.r[0].id, "alert-4");
    assert_string_equal(res.r[4].id, "alert-0");
    assert_int_equal(res.r[0].kind, VG_META_ALERT);
    assert_string_equal(res.r[0].json, "{\"a\":1}");
    vg_meta_result_free(&res);

    /* A closed range: both ends included. */
    q = (struct vg_meta_query){.camera = "gate", .from_us = t0 + 1000000 + 20 * 1000,
                               .to_us = t0 + 1000000 + 29 * 1000, .kinds = VG_META_FRAME};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 10);
    assert_string_equal(res.r[0].id, "f029");
    assert_string_equal(res.r[9].id, "f020");
    vg_meta_result_free(&res);

    /* Beyond the horizon (24 h by default), other cameras: nothing. */
    q = (struct vg_meta_query){.camera = "gate", .to_us = g.now - 30 * 3600LL * 1000000};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 0);
    q = (struct vg_meta_query){.camera = "porch"};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    assert_int_equal(res.n, 1);
    vg_meta_result_free(&res);

    /* The TTL attribute: now + ttl_h, in epoch seconds. */
    char sk[96];
    json_t *item = NULL, *key = json_object();
    snprintf(sk, sizeof(sk), "%016lld#frame#f000", (long long)(t0 + 1000000));
    assert_int_equal(vg_ddb_set_s(key, "camera", "gate"), VG_OK);
    assert_int_equal(vg_ddb_set_s(key, "sk", sk), VG_OK);
    assert_int_equal(vg_ddb_get_item(g.aws, TABLE, key, 1, &item), VG_OK);
    int64_t expires = 0;
    assert_int_equal(vg_ddb_get_n(item, "expires_at", &expires), VG_OK);
    int64_t want = vg_now_us() / 1000000 + 48 * 3600;
    assert_true(expires > want - 120 && expires <= want);
    assert_string_equal(vg_ddb_get_s(item, "kind"), "frame");
    assert_non_null(strstr(vg_ddb_get_s(item, "body"), "\"trace_id\":\"f000\""));
    json_decref(item);
    json_decref(key);
    vg_meta_store_close(m);
}

static void ddb_frame_fetcher_with_s3_links(void **state)
{
    (void)state;
    char yaml[512], ref[VG_SNAP_REF_MAX], *text = NULL;
    snprintf(yaml, sizeof(yaml),
             "store:\n  snapshots: {type: s3, bucket: " BUCKET "}\n"
             "  metadata: {type: dynamodb, table: " TABLE ", create_table: true}\n");
    assert_int_equal(load(yaml), VG_OK);
    struct vg_snap_store *snaps = NULL;
    struct vg_meta_store *m = NULL;
    assert_int_equal(vg_snap_store_open(&snaps, &g.cfg), VG_OK);
    assert_int_equal(vg_meta_store_open(&m, &g.cfg, NULL), VG_OK);
    int64_t t = g.now - 60LL * 1000000;
    assert_int_equal(vg_snap_put(snaps, "drive", t, "trace-x", jpeg, sizeof(jpeg), ref,
                                 sizeof(ref)), VG_OK);
    put_frame(m, "drive", t, "trace-x", ref);
    assert_int_equal(vg_meta_put(m, VG_META_IDENTITY, "drive", t, "trace-x-0",
                                 "{\"trace_id\":\"trace-x\",\"person_id\":\"alice\","
                                 "\"display_name\":\"Alice\",\"similarity\":0.97}"), VG_OK);
    struct vg_meta_query q = {.camera = "drive"};
    assert_int_equal(vg_frames_fetch(m, snaps, &q, &text), VG_OK);
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    json_t *f = json_array_get(json_object_get(doc, "frames"), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "frames")), 1);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(f, "identities"), 0), "display_name")),
                        "Alice");
    const char *link = json_string_value(json_object_get(f, "snapshot_url"));
    assert_non_null(link);
    struct buf b = {0};
    assert_int_equal(http_get(link, &b), 200);      /* the link opens the image */
    assert_int_equal(b.len, sizeof(jpeg));
    free(b.data);
    json_decref(doc);
    free(text);
    vg_meta_store_close(m);
    vg_snap_store_close(snaps);
}

/* The console's policy (Query only) enforced by the proxy: a put is refused
 * with DynamoDB's AccessDeniedException, a query is allowed. */
static void ddb_access_denied(void **state)
{
    (void)state;
    struct vg_meta_store *m = open_ddb(NULL);      /* creates the table, unrestricted */
    vg_meta_store_close(m);
    endpoints(g.s3_port, g.ddbdeny_port);
    assert_int_equal(load("store:\n  metadata: {type: dynamodb, table: " TABLE "}\n"), VG_OK);
    assert_int_equal(vg_meta_store_open(&m, &g.cfg, NULL), VG_OK);
    vg_status st = vg_meta_put(m, VG_META_FRAME, "gate", g.now, "denied", "{}");
    assert_int_equal(st, VG_ERR_AUTH);
    assert_non_null(strstr(vg_err_detail(), "AccessDeniedException"));
    assert_non_null(strstr(vg_err_detail(), "dynamodb:PutItem"));
    struct vg_meta_result res;
    struct vg_meta_query q = {.camera = "gate", .limit = 1};
    assert_int_equal(vg_meta_query(m, &q, &res), VG_OK);
    vg_meta_result_free(&res);
    vg_meta_store_close(m);
    endpoints(g.s3_port, g.ddb_port);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(s3_put_get_link_expiry),
        cmocka_unit_test(s3_prefix_kms_default_expiry),
        cmocka_unit_test(s3_access_denied),
        cmocka_unit_test(s3_link_clamped_to_credentials),
        cmocka_unit_test(ddb_ranges_limits_kinds),
        cmocka_unit_test(ddb_frame_fetcher_with_s3_links),
        cmocka_unit_test(ddb_access_denied),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
