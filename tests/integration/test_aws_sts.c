/* STS GetCallerIdentity against the AWS fake: the identity of the test
 * credentials, and refused signatures and keys reported as VG_ERR_AUTH. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "aws/client.h"
#include "aws/rekognition.h"
#include "aws/sts.h"
#include "fake_aws_ctl.h"
#include "fixture.h"

static struct {
    struct fake_env f;
} g;

/* ---- fixtures ------------------------------------------------------------- */

static int group_setup(void **state)
{
    return fake_env_start(&g.f);
}

static int group_teardown(void **state)
{
    fake_env_stop(&g.f);
    return 0;
}

static int reset(void **state)
{
    fake_reset();
    return 0;
}

/* A client for which AWS_<var> is value (the provider reads the
 * environment at the first call); restore_env() puts the test's back. */
static struct vg_aws *client_with(const char *var, const char *value)
{
    struct vg_aws *a = NULL;
    setenv(var, value, 1);
    assert_int_equal(vg_aws_create(&a, &(struct vg_aws_opts){0}), VG_OK);
    return a;
}

static int restore_env(void **state)
{
    setenv("AWS_ACCESS_KEY_ID", FIXTURE_AWS_KEY, 1);
    setenv("AWS_SECRET_ACCESS_KEY", FIXTURE_AWS_SECRET, 1);
    return 0;
}

/* ---- tests ----------------------------------------------------------------- */

static void caller_identity(void **state)
{
    struct vg_sts_identity id;
    assert_int_equal(vg_sts_get_caller_identity(g.f.aws, &id), VG_OK);
    assert_string_equal(id.account, "123456789012");
    assert_string_equal(id.arn, "arn:aws:iam::123456789012:user/test");
    assert_true(!strncmp(id.user_id, "AIDA", 4) && strlen(id.user_id) > 4);
    assert_int_equal(fake_count("sts.GetCallerIdentity"), 1);
    json_t *r = fake("GET", "/_fake/requests?api=sts.GetCallerIdentity", NULL);
    assert_int_equal(json_array_size(r), 1);
    assert_true(json_is_true(json_object_get(json_array_get(r, 0), "signed_ok")));
    json_decref(r);
}

static void wrong_secret_is_auth_error(void **state)
{
    struct vg_sts_identity id;
    struct vg_rek_labels l;
    struct vg_aws *a = client_with("AWS_SECRET_ACCESS_KEY", "not-the-secret");
    memset(&id, 0x5a, sizeof(id));
    assert_int_equal(vg_sts_get_caller_identity(a, &id), VG_ERR_AUTH);
    assert_non_null(strstr(vg_err_detail(), "SignatureDoesNotMatch"));
    assert_int_equal((unsigned char)id.account[0], 0x5a); /* untouched */
    /* JSON protocols name it differently. */
    assert_int_equal(vg_rek_detect_labels(a, "\xff\xd8", 2, 50, 1, &l), VG_ERR_AUTH);
    assert_non_null(strstr(vg_err_detail(), "InvalidSignatureException"));
    vg_aws_destroy(a);
    /* Refused, not retried. */
    assert_int_equal(fake_count("sts.*"), 1);
}

static void unknown_key_is_auth_error(void **state)
{
    struct vg_sts_identity id;
    struct vg_aws *a = client_with("AWS_ACCESS_KEY_ID", "AKIDUNKNOWN");
    assert_int_equal(vg_sts_get_caller_identity(a, &id), VG_ERR_AUTH);
    assert_non_null(strstr(vg_err_detail(), "InvalidClientTokenId"));
    vg_aws_destroy(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(caller_identity, reset),
        cmocka_unit_test_setup_teardown(wrong_secret_is_auth_error, reset, restore_env),
        cmocka_unit_test_setup_teardown(unknown_key_is_auth_error, reset, restore_env),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
