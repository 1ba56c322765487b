/* AWS credentials: every source of the chain in order, the shared files, the
 * HTTP sources against an in-process fake (STS, container endpoint, IMDSv2),
 * caching, refresh before expiry, concurrent callers and the error that names
 * every source. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "aws/credentials.h"
#include "log.h"
#include "status.h"
#include "timeutil.h"

extern char **environ;

#define IMDS_TOKEN "imds-token-0123456789"
#define ROLE_ARN "arn:aws:iam::123456789012:role/vigil"

/* ---- the fake: one thread, one request per connection ------------------ */

static struct {
    int fd, port;
    pthread_t thread;
    atomic_int token_puts, role_lists, imds_creds, v1_refused, container_calls, sts_calls;
    atomic_int serial;          /* numbers the key ids handed out */
    atomic_int expires_in_s;    /* lifetime of the credentials handed out */
    atomic_int time_format;     /* 0 Z, 1 fraction, 2 +00:00, 3 +02:00 */
    atomic_int fail;            /* credential fetches answer 500 */
    atomic_int delay_ms;        /* before answering a credential fetch */
    atomic_int imds_v1_only;    /* token PUT answers 404 */
    atomic_int sts_anonymous, sts_session_default;
} F;

static int header(const char *req, const char *name, char *out, size_t cap)
{
    char key[96];
    snprintf(key, sizeof(key), "\r\n%s:", name);
    const char *p = strcasestr(req, key);
    if (!p)
        return 0;
    p += strlen(key);
    while (*p == ' ')
        p++;
    size_t n = strcspn(p, "\r\n");
    snprintf(out, cap, "%.*s", (int)n, p);
    return 1;
}

static int read_request(int fd, char *buf, size_t cap, char **body)
{
    size_t n = 0, hlen;
    char *end = NULL, cl[32];
    while (!end) {
        ssize_t k = n + 1 < cap ? recv(fd, buf + n, cap - 1 - n, 0) : -1;
        if (k <= 0)
            return -1;
        n += (size_t)k;
        buf[n] = '\0';
        end = strstr(buf, "\r\n\r\n");
    }
    hlen = (size_t)(end + 4 - buf);
    size_t want = hlen + (header(buf, "Content-Length", cl, sizeof(cl)) ? (size_t)atol(cl) : 0);
    while (n < want && n + 1 < cap) {
        ssize_t k = recv(fd, buf + n, cap - 1 - n, 0);
        if (k <= 0)
            return -1;
        n += (size_t)k;
    }
    buf[n] = '\0';
    *body = buf + hlen;
    return 0;
}

static void respond(int fd, int status, const char *type, const char *body)
{
    char head[256];
    int n = snprintf(head, sizeof(head),
                     "HTTP/1.1 %d X\r\nContent-Type: %s\r\nContent-Length: %zu\r\n"
                     "Connection: close\r\n\r\n", status, type, strlen(body));
    if (send(fd, head, (size_t)n, MSG_NOSIGNAL) < 0 ||
        send(fd, body, strlen(body), MSG_NOSIGNAL) < 0)
        return;
}

static void expiration(char *out, size_t cap)
{
    static const char *const fmts[] = {"%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S.250Z",
                                       "%Y-%m-%dT%H:%M:%S+00:00", "%Y-%m-%dT%H:%M:%S+02:00"};
    int f = F.time_format;
    time_t t = time(NULL) + F.expires_in_s + (f == 3 ? 7200 : 0);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, cap, fmts[f], &tm);
}

/* Answers a credential fetch; the caller counted it. */
static void send_creds(int fd, int xml)
{
    char exp[64], body[1024];
    int n = ++F.serial;
    if (F.delay_ms)
        vg_sleep_us(F.delay_ms * 1000LL);
    if (F.fail) {
        respond(fd, 500, "text/plain", "boom");
        return;
    }
    expiration(exp, sizeof(exp));
    if (xml)
        snprintf(body, sizeof(body),
                 "<AssumeRoleWithWebIdentityResponse><AssumeRoleWithWebIdentityResult>"
                 "<Credentials><AccessKeyId>ASIAFAKE%04d</AccessKeyId>"
                 "<SecretAccessKey>fake-secret-%d&amp;x</SecretAccessKey>"
                 "<SessionToken>fake-token-%d</SessionToken><Expiration>%s</Expiration>"
                 "</Credentials></AssumeRoleWithWebIdentityResult>"
                 "</AssumeRoleWithWebIdentityResponse>", n, n, n, exp);
    else
        snprintf(body, sizeof(body),
                 "{\"Code\":\"Success\",\"Type\":\"AWS-HMAC\",\"AccessKeyId\":\"ASIAFAKE%04d\","
                 "\"SecretAccessKey\":\"fake-secret-%d\",\"Token\":\"fake-token-%d\","
                 "\"Expiration\":\"%s\"}", n, n, n, exp);
    respond(fd, 200, xml ? "text/xml" : "application/json", body);
}

static void serve_imds(int fd, const char *m, const char *path, const char *req)
{
    char v[128];
    int has_token = header(req, "X-aws-ec2-metadata-token", v, sizeof(v)) &&
                    strcmp(v, IMDS_TOKEN) == 0;
    if (strcmp(m, "PUT") == 0 && strcmp(path, "/latest/api/token") == 0) {
        F.token_puts++;
        if (F.imds_v1_only)
            respond(fd, 404, "text/plain", "not found");
        else if (header(req, "X-aws-ec2-metadata-token-ttl-seconds", v, sizeof(v)) &&
                 strcmp(v, "21600") == 0)
            respond(fd, 200, "text/plain", IMDS_TOKEN);
        else
            respond(fd, 400, "text/plain", "missing ttl");
        return;
    }
    if (!has_token) {
        F.v1_refused++;
        respond(fd, 401, "text/plain", "IMDSv1 refused");
    } else if (strcmp(path, "/latest/meta-data/iam/security-credentials/") == 0) {
        F.role_lists++;
        respond(fd, 200, "text/plain", "vigil-node\n");
    } else if (strcmp(path, "/latest/meta-data/iam/security-credentials/vigil-node") == 0) {
        F.imds_creds++;
        send_creds(fd, 0);
    } else {
        respond(fd, 404, "text/plain", "not found");
    }
}

static void serve_container(int fd, const char *req)
{
    char v[128];
    F.container_calls++;
    if (!header(req, "Authorization", v, sizeof(v)) || strcmp(v, "test-container-token") != 0)
        respond(fd, 401, "application/json",
                "{\"code\":\"AccessDenied\",\"message\":\"bad authorization token\"}");
    else
        send_creds(fd, 0);
}

static void serve_sts(int fd, const char *req, const char *body)
{
    char v[64];
    F.sts_calls++;
    F.sts_anonymous = !header(req, "Authorization", v, sizeof(v));
    F.sts_session_default = strstr(body, "&RoleSessionName=vigil-") != NULL;
    if (strstr(body, "Action=AssumeRoleWithWebIdentity&Version=2011-06-15") &&
        strstr(body, "RoleArn=arn%3Aaws%3Aiam%3A%3A123456789012%3Arole%2Fvigil&") &&
        strstr(body, "WebIdentityToken=test-web-identity-token"))
        send_creds(fd, 1);
    else
        respond(fd, 400, "text/xml",
                "<ErrorResponse><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code>"
                "<Message>token rejected</Message></Error></ErrorResponse>");
}

static void serve(int fd)
{
    char req[16384], m[8], path[256], *body;
    if (read_request(fd, req, sizeof(req), &body) != 0 ||
        sscanf(req, "%7s %255s", m, path) != 2)
        return;
    if (strncmp(path, "/latest/", 8) == 0)
        serve_imds(fd, m, path, req);
    else if (strcmp(m, "GET") == 0 && strcmp(path, "/container/creds") == 0)
        serve_container(fd, req);
    else if (strcmp(m, "POST") == 0 && strcmp(path, "/") == 0)
        serve_sts(fd, req, body);
    else
        respond(fd, 404, "text/plain", "not found");
}

static void *fake_main(void *arg)
{
    for (;;) {
        int c = accept(F.fd, NULL, NULL);
        if (c < 0)
            return NULL;    /* shutdown() of the listening socket */
        serve(c);
        close(c);
    }
}

static int fake_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    F.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (F.fd < 0 || bind(F.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        listen(F.fd, 16) != 0 || getsockname(F.fd, (struct sockaddr *)&sa, &len) != 0)
        return -1;
    F.port = ntohs(sa.sin_port);
    return pthread_create(&F.thread, NULL, fake_main, NULL);
}

static void fake_stop(void)
{
    shutdown(F.fd, SHUT_RDWR);
    pthread_join(F.thread, NULL);
    close(F.fd);
}

static void fake_reset(void)
{
    F.token_puts = F.role_lists = F.imds_creds = F.v1_refused = 0;
    F.container_calls = F.sts_calls = F.serial = 0;
    F.expires_in_s = 3600;
    F.time_format = F.fail = F.delay_ms = F.imds_v1_only = 0;
    F.sts_anonymous = F.sts_session_default = 0;
}

/* ---- environment and files -------------------------------------------- */

static char home[64];

static void clear_aws_env(void)
{
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "AWS_", 4) != 0)
                continue;
            char name[256];
            snprintf(name, sizeof(name), "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
            again = 1;
            break;
        }
    }
    static const char *const proxies[] = {"http_proxy", "https_proxy", "all_proxy",
                                          "HTTPS_PROXY", "ALL_PROXY"};
    for (size_t i = 0; i < sizeof(proxies) / sizeof(proxies[0]); i++)
        unsetenv(proxies[i]);
}

/* home/rel with the parent directory created; returns the path. */
static const char *write_file(const char *rel, const char *text)
{
    static char path[256];
    snprintf(path, sizeof(path), "%s/%s", home, rel);
    char *slash = strrchr(path, '/');
    *slash = '\0';
    mkdir(path, 0700);
    *slash = '/';
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static void url(const char *var, const char *path)
{
    char u[128];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d%s", F.port, path);
    setenv(var, u, 1);
}

static int setup(void **state)
{
    clear_aws_env();
    snprintf(home, sizeof(home), "/tmp/vigil-creds-XXXXXX");
    assert_non_null(mkdtemp(home));
    setenv("HOME", home, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    fake_reset();
    return 0;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int teardown(void **state)
{
    nftw(home, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
    clear_aws_env();
    return 0;
}

/* ---- helpers ----------------------------------------------------------- */

static struct vg_aws_cred_provider *provider(const struct vg_aws_cred_opts *o)
{
    struct vg_aws_cred_provider *p = NULL;
    assert_int_equal(vg_aws_creds_create(&p, o), VG_OK);
    return p;
}

static struct vg_aws_creds get_ok(struct vg_aws_cred_provider *p)
{
    struct vg_aws_creds c;
    vg_status st = vg_aws_creds_get(p, &c);
    if (st != VG_OK)
        fail_msg("get: %s: %s", vg_status_str(st), vg_err_detail());
    return c;
}

/* The chain fails with VG_ERR_AUTH and a detail holding every expected piece. */
static void expect_auth_error(const struct vg_aws_cred_opts *o, const char *const *want)
{
    struct vg_aws_cred_provider *p = provider(o);
    struct vg_aws_creds c;
    assert_int_equal(vg_aws_creds_get(p, &c), VG_ERR_AUTH);
    for (; *want; want++)
        if (!strstr(vg_err_detail(), *want))
            fail_msg("detail \"%s\" lacks \"%s\"", vg_err_detail(), *want);
    vg_aws_creds_destroy(p);
}

static void use_container(const char *token)
{
    url("AWS_CONTAINER_CREDENTIALS_FULL_URI", "/container/creds");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN", token, 1);
}

/* ---- 1. explicit keys -------------------------------------------------- */

static void test_explicit_keys_win(void **state)
{
    struct vg_aws_cred_opts o = {.access_key_id = "AKIACONFIG", .secret_access_key = "s3cret",
                                 .session_token = "tok"};
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    struct vg_aws_cred_provider *p = provider(&o);
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.source, "config");
    assert_string_equal(c.access_key_id, "AKIACONFIG");
    assert_string_equal(c.secret_access_key, "s3cret");
    assert_string_equal(c.session_token, "tok");
    assert_int_equal(c.expires_us, 0);
    vg_aws_creds_destroy(p);
}

static void test_explicit_keys_incomplete(void **state)
{
    struct vg_aws_cred_opts o = {.access_key_id = "AKIACONFIG"};
    const char *want[] = {"config (secret access key missing)", NULL};
    expect_auth_error(&o, want);
}

/* ---- 2. environment ---------------------------------------------------- */

static void test_env_keys(void **state)
{
    write_file(".aws/credentials", "[default]\naws_access_key_id = AKIAFILE\n"
                                   "aws_secret_access_key = filesecret\n");
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    struct vg_aws_cred_provider *p = provider(NULL);
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.source, "env");
    assert_string_equal(c.access_key_id, "AKIAENV");
    assert_string_equal(c.secret_access_key, "envsecret");
    assert_string_equal(c.session_token, "");
    vg_aws_creds_destroy(p);

    setenv("AWS_SESSION_TOKEN", "envtoken", 1);
    p = provider(NULL);
    c = get_ok(p);
    assert_string_equal(c.session_token, "envtoken");
    vg_aws_creds_destroy(p);
}

static void test_env_keys_incomplete(void **state)
{
    setenv("AWS_ACCESS_KEY_ID", "AKIAENV", 1);
    const char *want[] = {"env (AWS_SECRET_ACCESS_KEY not set)", NULL};
    expect_auth_error(NULL, want);
}

/* ---- 3. shared files --------------------------------------------------- */

static void test_profile_default_credentials_file(void **state)
{
    write_file(".aws/credentials",
               "# comment\n; another\n[other]\naws_access_key_id = AKIAOTHER\n"
               "aws_secret_access_key = othersecret\n\n"
               "  [ default ]  # trailing comment\n"
               "aws_access_key_id=AKIADEFAULT\n"
               "\taws_secret_access_key =  def/secret+x  ; key rotated monthly\r\n"
               "aws_session_token = deftoken\n");
    struct vg_aws_cred_provider *p = provider(NULL);
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.source, "profile");
    assert_string_equal(c.access_key_id, "AKIADEFAULT");
    assert_string_equal(c.secret_access_key, "def/secret+x");
    assert_string_equal(c.session_token, "deftoken");
    assert_int_equal(c.expires_us, 0);
    vg_aws_creds_destroy(p);
}

static void test_profile_from_config_file(void **state)
{
    /* In config a named profile is [profile other]; [other] is not it. */
    write_file(".aws/config", "[default]\nregion = eu-west-1\n"
                              "[other]\naws_access_key_id = AKIAWRONG\n"
                              "aws_secret_access_key = wrong\n"
                              "[profile other]\nregion = eu-central-1\n"
                              "s3 =\n  max_concurrent_requests = 10\n"
                              "aws_access_key_id = AKIACONFIGOTHER\n"
                              "aws_secret_access_key = cfgsecret\n");
    setenv("AWS_PROFILE", "other", 1);
    struct vg_aws_cred_provider *p = provider(NULL);
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.source, "profile");
    assert_string_equal(c.access_key_id, "AKIACONFIGOTHER");
    assert_string_equal(c.secret_access_key, "cfgsecret");
    vg_aws_creds_destroy(p);

    char region[32];
    assert_int_equal(vg_aws_profile_region(NULL, region, sizeof(region)), VG_OK);
    assert_string_equal(region, "eu-central-1");
    assert_int_equal(vg_aws_profile_region("default", region, sizeof(region)), VG_OK);
    assert_string_equal(region, "eu-west-1");
    assert_int_equal(vg_aws_profile_region("nope", region, sizeof(region)), VG_ERR_NOT_FOUND);
}

static void test_profile_files_from_env(void **state)
{
    char cred[256], cfg[256];
    snprintf(cred, sizeof(cred), "%s", write_file("elsewhere/creds",
             "[team]\naws_access_key_id = AKIATEAM\naws_secret_access_key = teamsecret\n"));
    snprintf(cfg, sizeof(cfg), "%s", write_file("elsewhere/cfg", "[profile cfgonly]\n"
             "aws_access_key_id = AKIACFGONLY\naws_secret_access_key = cfgonlysecret\n"));
    write_file(".aws/credentials", "[team]\naws_access_key_id = AKIAHOME\n"
                                   "aws_secret_access_key = homesecret\n");
    setenv("AWS_SHARED_CREDENTIALS_FILE", cred, 1);
    setenv("AWS_CONFIG_FILE", cfg, 1);
    setenv("AWS_PROFILE", "cfgonly", 1);

    struct vg_aws_cred_opts o = {.profile = "team"};    /* opts beat AWS_PROFILE */
    struct vg_aws_cred_provider *p = provider(&o);
    assert_string_equal(get_ok(p).access_key_id, "AKIATEAM");
    vg_aws_creds_destroy(p);

    p = provider(NULL);
    assert_string_equal(get_ok(p).access_key_id, "AKIACFGONLY");
    vg_aws_creds_destroy(p);
}

static void test_profile_credentials_file_wins(void **state)
{
    write_file(".aws/config", "[profile both]\naws_access_key_id = AKIACFG\n"
                              "aws_secret_access_key = cfgsecret\n");
    write_file(".aws/credentials", "[both]\naws_access_key_id = AKIACRED\n"
                                   "aws_secret_access_key = credsecret\n");
    struct vg_aws_cred_opts o = {.profile = "both"};
    struct vg_aws_cred_provider *p = provider(&o);
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.access_key_id, "AKIACRED");
    assert_string_equal(c.secret_access_key, "credsecret");
    vg_aws_creds_destroy(p);
}

static void test_profile_missing_or_incomplete(void **state)
{
    write_file(".aws/credentials", "[half]\naws_access_key_id = AKIAHALF\n");
    setenv("AWS_PROFILE", "nope", 1);
    const char *want[] = {"profile \"nope\" (not in ", NULL};
    expect_auth_error(NULL, want);

    setenv("AWS_PROFILE", "half", 1);
    const char *want2[] = {"profile \"half\" (aws_secret_access_key missing)", NULL};
    expect_auth_error(NULL, want2);
}

/* ---- 4. web identity --------------------------------------------------- */

static void use_web_identity(const char *token)
{
    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", write_file("token", token), 1);
    setenv("AWS_ROLE_ARN", ROLE_ARN, 1);
    url("AWS_ENDPOINT_URL_STS", "");
}

static void test_web_identity(void **state)
{
    use_web_identity("test-web-identity-token\n");
    struct vg_aws_cred_provider *p = provider(NULL);
    int64_t before = vg_now_us();
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.source, "web-identity");
    assert_string_equal(c.access_key_id, "ASIAFAKE0001");
    assert_string_equal(c.secret_access_key, "fake-secret-1&x");
    assert_string_equal(c.session_token, "fake-token-1");
    assert_true(c.expires_us > before + 3590LL * 1000000 && c.expires_us < before + 3610LL * 1000000);
    assert_int_equal(F.sts_calls, 1);
    assert_true(F.sts_anonymous);
    assert_true(F.sts_session_default);
    vg_aws_creds_destroy(p);
}

static void test_web_identity_failures(void **state)
{
    use_web_identity("someone-elses-token");
    const char *want[] = {"web identity (STS InvalidIdentityToken: token rejected (HTTP 400))",
                          NULL};
    expect_auth_error(NULL, want);

    setenv("AWS_WEB_IDENTITY_TOKEN_FILE", "/nonexistent/token", 1);
    const char *want2[] = {"web identity (token file /nonexistent/token: No such file", NULL};
    expect_auth_error(NULL, want2);

    unsetenv("AWS_ROLE_ARN");
    const char *want3[] = {"web identity (AWS_ROLE_ARN not set)", NULL};
    expect_auth_error(NULL, want3);
}

/* ---- 5. container ------------------------------------------------------ */

static void test_container(void **state)
{
    use_container("test-container-token");
    struct vg_aws_cred_provider *p = provider(NULL);
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.source, "container");
    assert_string_equal(c.access_key_id, "ASIAFAKE0001");
    assert_string_equal(c.session_token, "fake-token-1");
    assert_int_equal(F.container_calls, 1);
    vg_aws_creds_destroy(p);
}

static void test_container_token_file(void **state)
{
    /* EKS Pod Identity: the file wins over the variable. */
    use_container("wrong-token");
    setenv("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
           write_file("eks-token", "test-container-token\n"), 1);
    struct vg_aws_cred_provider *p = provider(NULL);
    assert_string_equal(get_ok(p).source, "container");
    vg_aws_creds_destroy(p);
}

static void test_container_wrong_token(void **state)
{
    use_container("wrong-token");
    const char *want[] = {"container (HTTP 401: AccessDenied bad authorization token)", NULL};
    expect_auth_error(NULL, want);
    assert_int_equal(F.container_calls, 1);
}

static void test_container_host_refused(void **state)
{
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.1.2.3/creds", 1);
    const char *want[] = {"container (http host 10.1.2.3 is not loopback", NULL};
    expect_auth_error(NULL, want);
}

/* ---- 6. IMDSv2 --------------------------------------------------------- */

static void use_imds(void)
{
    unsetenv("AWS_EC2_METADATA_DISABLED");
    url("AWS_EC2_METADATA_SERVICE_ENDPOINT", "/");
}

static void test_imds_v2(void **state)
{
    use_imds();
    struct vg_aws_cred_provider *p = provider(NULL);
    struct vg_aws_creds c = get_ok(p);
    assert_string_equal(c.source, "imds");
    assert_string_equal(c.access_key_id, "ASIAFAKE0001");
    assert_string_equal(c.secret_access_key, "fake-secret-1");
    assert_int_equal(F.token_puts, 1);
    assert_int_equal(F.role_lists, 1);
    assert_int_equal(F.imds_creds, 1);
    assert_int_equal(F.v1_refused, 0);
    vg_aws_creds_destroy(p);
}

static void test_imds_no_v1_fallback(void **state)
{
    use_imds();
    F.imds_v1_only = 1;
    const char *want[] = {"imds (token: HTTP 404)", NULL};
    expect_auth_error(NULL, want);
    assert_int_equal(F.token_puts, 1);
    assert_int_equal(F.v1_refused + F.role_lists + F.imds_creds, 0);
}

static void test_imds_disabled(void **state)
{
    use_imds();
    setenv("AWS_EC2_METADATA_DISABLED", "TRUE", 1);
    const char *want[] = {"imds (disabled by AWS_EC2_METADATA_DISABLED)", NULL};
    expect_auth_error(NULL, want);
    assert_int_equal(F.token_puts, 0);
}

static void test_imds_unreachable_is_quick(void **state)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);   /* a bound port nobody listens on */
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    char u[64];
    snprintf(u, sizeof(u), "http://127.0.0.1:%d", ntohs(sa.sin_port));
    unsetenv("AWS_EC2_METADATA_DISABLED");
    setenv("AWS_EC2_METADATA_SERVICE_ENDPOINT", u, 1);
    int64_t t0 = vg_mono_us();
    const char *want[] = {"imds (token: ", NULL};
    expect_auth_error(NULL, want);
    assert_true(vg_mono_us() - t0 < 3000000);
    close(fd);
}

/* ---- the chain as a whole ---------------------------------------------- */

static void test_no_source_names_every_one(void **state)
{
    const char *want[] = {"no AWS credentials: tried config (not set), env (not set), "
                          "profile \"default\" (no ",
                          "web identity (not configured), container (not configured), "
                          "imds (disabled by AWS_EC2_METADATA_DISABLED)",
                          NULL};
    expect_auth_error(NULL, want);
}

static void test_expiration_formats(void **state)
{
    use_container("test-container-token");
    for (int f = 0; f < 4; f++) {
        F.time_format = f;
        struct vg_aws_cred_provider *p = provider(NULL);
        int64_t want = ((int64_t)time(NULL) + 3600) * 1000000 + (f == 1 ? 250000 : 0);
        struct vg_aws_creds c = get_ok(p);
        if (c.expires_us < want - 2000000 || c.expires_us > want + 2000000)
            fail_msg("format %d: expires %lld, want ~%lld", f, (long long)c.expires_us,
                     (long long)want);
        vg_aws_creds_destroy(p);
    }
}

/* ---- cache and refresh ------------------------------------------------- */

static void test_cache_one_fetch(void **state)
{
    use_container("test-container-token");
    struct vg_aws_cred_provider *p = provider(NULL);
    struct vg_aws_creds a = get_ok(p), b = get_ok(p);
    assert_string_equal(a.access_key_id, b.access_key_id);
    assert_int_equal(F.container_calls, 1);

    vg_aws_creds_invalidate(p);     /* after an ExpiredToken answer */
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0002");
    assert_int_equal(F.container_calls, 2);
    vg_aws_creds_destroy(p);
}

static void test_refresh_before_expiry(void **state)
{
    use_container("test-container-token");
    F.expires_in_s = 120;   /* inside the 5-minute margin: refetched on every get */
    struct vg_aws_cred_provider *p = provider(NULL);
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0001");
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0002");
    assert_int_equal(F.container_calls, 2);
    F.expires_in_s = 3600;
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0003");
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0003");
    assert_int_equal(F.container_calls, 3);
    vg_aws_creds_destroy(p);
}

/* Run fn with stderr going to a file; returns what was written (static). */
static const char *capture_stderr(void (*fn)(void *), void *arg)
{
    static char out[8192];
    char path[96];
    snprintf(path, sizeof(path), "%s/stderr.log", home);
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600), saved = dup(2);
    assert_true(fd >= 0 && saved >= 0);
    dup2(fd, 2);
    fn(arg);
    dup2(saved, 2);
    close(saved);
    ssize_t n = pread(fd, out, sizeof(out) - 1, 0);
    out[n > 0 ? n : 0] = '\0';
    close(fd);
    return out;
}

static void failing_refresh(void *arg)
{
    struct vg_aws_cred_provider *p = arg;
    F.expires_in_s = 120;
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0001");
    F.fail = 1;
    /* The refresh fails; the cached copy is still valid for 2 minutes. */
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0001");
    assert_int_equal(F.container_calls, 2);
    /* And the next get does not hammer the endpoint again right away. */
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0001");
    assert_int_equal(F.container_calls, 2);
}

static void test_refresh_failure_keeps_valid_copy(void **state)
{
    use_container("test-container-token");
    vg_log_setup("test", VG_LOG_DEBUG);
    struct vg_aws_cred_provider *p = provider(NULL);
    const char *log = capture_stderr(failing_refresh, p);
    vg_log_setup("test", VG_LOG_INFO);
    vg_aws_creds_destroy(p);
    assert_non_null(strstr(log, "\"event\":\"aws.credentials_loaded\""));
    assert_non_null(strstr(log, "\"event\":\"aws.credentials_refresh_failed\""));
    assert_non_null(strstr(log, "key ...0001"));
    assert_null(strstr(log, "fake-secret"));
    assert_null(strstr(log, "fake-token"));
    assert_null(strstr(log, "test-container-token"));
    assert_null(strstr(log, "ASIAFAKE0001"));
}

struct getter {
    struct vg_aws_cred_provider *p;
    pthread_barrier_t *start;
    vg_status st;
    struct vg_aws_creds c;
};

static void *getter_main(void *arg)
{
    struct getter *g = arg;
    pthread_barrier_wait(g->start);
    g->st = vg_aws_creds_get(g->p, &g->c);
    return NULL;
}

static void test_concurrent_gets_one_refresh(void **state)
{
    use_container("test-container-token");
    F.expires_in_s = 120;
    struct vg_aws_cred_provider *p = provider(NULL);
    assert_string_equal(get_ok(p).access_key_id, "ASIAFAKE0001");
    F.expires_in_s = 3600;
    F.delay_ms = 300;   /* the refresh is slow: the others arrive while it runs */

    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 4);
    struct getter g[4];
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        g[i] = (struct getter){.p = p, .start = &start};
        assert_int_equal(pthread_create(&t[i], NULL, getter_main, &g[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(g[i].st, VG_OK);
        assert_string_equal(g[i].c.access_key_id, "ASIAFAKE0002");
        assert_string_equal(g[i].c.secret_access_key, "fake-secret-2");
    }
    assert_int_equal(F.container_calls, 2);
    pthread_barrier_destroy(&start);
    vg_aws_creds_destroy(p);
}

static int group_setup(void **state) { return fake_start(); }
static int group_teardown(void **state)
{
    fake_stop();
    return 0;
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_explicit_keys_win),
        T(test_explicit_keys_incomplete),
        T(test_env_keys),
        T(test_env_keys_incomplete),
        T(test_profile_default_credentials_file),
        T(test_profile_from_config_file),
        T(test_profile_files_from_env),
        T(test_profile_credentials_file_wins),
        T(test_profile_missing_or_incomplete),
        T(test_web_identity),
        T(test_web_identity_failures),
        T(test_container),
        T(test_container_token_file),
        T(test_container_wrong_token),
        T(test_container_host_refused),
        T(test_imds_v2),
        T(test_imds_no_v1_fallback),
        T(test_imds_disabled),
        T(test_imds_unreachable_is_quick),
        T(test_no_source_names_every_one),
        T(test_expiration_formats),
        T(test_cache_one_fetch),
        T(test_refresh_before_expiry),
        T(test_refresh_failure_keeps_valid_copy),
        T(test_concurrent_gets_one_refresh),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
