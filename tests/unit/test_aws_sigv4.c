/* SigV4 against AWS's published examples. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "aws/sigv4.h"

static struct vg_aws_creds example_creds(const char *secret)
{
    struct vg_aws_creds c;
    memset(&c, 0, sizeof(c));
    strcpy(c.access_key_id, "AKIDEXAMPLE");
    strcpy(c.secret_access_key, secret);
    return c;
}

/* aws-sig-v4-test-suite "get-vanilla". */
static void get_vanilla(void **state)
{
    struct vg_aws_creds c = example_creds("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    struct vg_sigv4_header h[] = {{"Host", "example.amazonaws.com"},
                                  {"X-Amz-Date", "20150830T123600Z"}};
    struct vg_sigv4_request r = {.method = "GET", .path = "/", .headers = h, .n_headers = 2,
                                 .region = "us-east-1", .service = "service",
                                 .amz_date = "20150830T123600Z"};
    char auth[512];
    assert_int_equal(vg_sigv4_authorization(&r, &c, auth, sizeof(auth)), VG_OK);
    assert_string_equal(auth,
                        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/service/"
                        "aws4_request, SignedHeaders=host;x-amz-date, Signature="
                        "5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31");
}

/* The IAM ListUsers example of the SigV4 documentation: query parameters
 * and a header whose value has inner spaces. */
static void iam_list_users(void **state)
{
    struct vg_aws_creds c = example_creds("wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY");
    struct vg_sigv4_header h[] = {
        {"Content-Type", "application/x-www-form-urlencoded; charset=utf-8"},
        {"Host", "iam.amazonaws.com"},
    };
    struct vg_sigv4_request r = {.method = "GET", .path = "/",
                                 .query = "Version=2010-05-08&Action=ListUsers", .headers = h,
                                 .n_headers = 2, .region = "us-east-1", .service = "iam",
                                 .amz_date = "20150830T123600Z"};
    char auth[512];
    assert_int_equal(vg_sigv4_authorization(&r, &c, auth, sizeof(auth)), VG_OK);
    assert_non_null(strstr(auth, "SignedHeaders=content-type;host;x-amz-date, Signature="
                                 "5d672d79c15b13162d9279b0855cfba6789a8edb4c82c400e06b5924a6f2b5d7"));
}

/* The S3 documentation's pre-signed URL example. */
static void s3_presigned_get(void **state)
{
    struct vg_aws_creds c = example_creds("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY");
    strcpy(c.access_key_id, "AKIAIOSFODNN7EXAMPLE");
    struct vg_sigv4_header h[] = {{"host", "examplebucket.s3.amazonaws.com"}};
    struct vg_sigv4_request r = {.method = "GET", .path = "/test.txt", .headers = h,
                                 .n_headers = 1, .region = "us-east-1", .service = "s3",
                                 .amz_date = "20130524T000000Z"};
    char url[2048];
    assert_int_equal(vg_sigv4_presign(&r, &c, "https", 86400, url, sizeof(url)), VG_OK);
    assert_string_equal(
        url, "https://examplebucket.s3.amazonaws.com/test.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256"
             "&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request"
             "&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host"
             "&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
    assert_int_equal(vg_sigv4_presign(&r, &c, "https", 0, url, sizeof(url)), VG_ERR_INVALID);
    assert_int_equal(vg_sigv4_presign(&r, &c, "https", 604801, url, sizeof(url)),
                     VG_ERR_INVALID);
}

static void session_token_is_in_presigned_query(void **state)
{
    struct vg_aws_creds c = example_creds("secret");
    strcpy(c.session_token, "tok/en+=");
    struct vg_sigv4_header h[] = {{"host", "b.s3.amazonaws.com"}};
    struct vg_sigv4_request r = {.method = "GET", .path = "/k", .headers = h, .n_headers = 1,
                                 .region = "eu-west-1", .service = "s3",
                                 .amz_date = "20240101T000000Z"};
    char url[2048];
    assert_int_equal(vg_sigv4_presign(&r, &c, "https", 60, url, sizeof(url)), VG_OK);
    assert_non_null(strstr(url, "&X-Amz-Security-Token=tok%2Fen%2B%3D"));
}

/* Query parameters sort by name, then value: "list" before "list-type"
 * although '-' sorts before '=' as a byte. The signature is the one the
 * independent verifier of tests/fakes/fake_aws.py computes. */
static void query_sorts_by_name_then_value(void **state)
{
    struct vg_aws_creds c = example_creds("secret");
    struct vg_sigv4_header h[] = {{"host", "example.amazonaws.com"}};
    struct vg_sigv4_request a = {.method = "GET", .path = "/", .query = "list-type=2&list=x",
                                 .headers = h, .n_headers = 1, .region = "us-east-1",
                                 .service = "s3", .amz_date = "20240101T000000Z"};
    struct vg_sigv4_request b = a;
    b.query = "list=x&list-type=2";
    char sa[512], sb[512];
    assert_int_equal(vg_sigv4_authorization(&a, &c, sa, sizeof(sa)), VG_OK);
    assert_int_equal(vg_sigv4_authorization(&b, &c, sb, sizeof(sb)), VG_OK);
    assert_string_equal(sa, sb);
    assert_non_null(strstr(sa, "Signature=3ef1862b46177b79d63c53ae79b5d404da477420a106dc1e14"
                               "3c4d9813410685"));
}

static void uri_encoding(void **state)
{
    char out[64];
    assert_int_equal(vg_uri_encode("a b/c~", 6, 1, out, sizeof(out)), 8);
    assert_string_equal(out, "a%20b/c~");
    vg_uri_encode("a b/c", 5, 0, out, sizeof(out));
    assert_string_equal(out, "a%20b%2Fc");
    assert_int_equal(vg_uri_encode("abc", 3, 0, out, 3), (size_t)-1);
    char date[17];
    vg_amz_date(1369353600LL * 1000000, date);
    assert_string_equal(date, "20130524T000000Z");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(get_vanilla),
        cmocka_unit_test(iam_list_users),
        cmocka_unit_test(s3_presigned_get),
        cmocka_unit_test(session_token_is_in_presigned_query),
        cmocka_unit_test(query_sorts_by_name_then_value),
        cmocka_unit_test(uri_encoding),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
