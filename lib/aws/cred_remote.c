/* The sources that fetch temporary credentials over HTTP: STS
 * AssumeRoleWithWebIdentity, the ECS/EKS container endpoint and EC2 IMDSv2. */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "aws/cred_internal.h"
#include "aws/xml.h"
#include "timeutil.h"

#define MAX_TOKEN_FILE (64 * 1024)
#define CONTAINER_HOST "http://169.254.170.2"

static char *trim_all(char *s)
{
    while (*s == ' ' || *s == '\t' || *s == '\r' || *s == '\n')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r' || s[n - 1] == '\n'))
        s[--n] = '\0';
    return s;
}

/* A token file's trimmed contents in *buf (free with vg_cred_free_secret(*buf, *len)). */
static const char *read_token(const char *path, const char *what, char **buf, size_t *len,
                              char *why, size_t cap)
{
    if (vg_cred_read_file(path, MAX_TOKEN_FILE, buf, len) != 0) {
        snprintf(why, cap, "%s %s: %s", what, path,
                 errno == EFBIG ? "larger than 64 KiB" : strerror(errno));
        return NULL;
    }
    const char *t = trim_all(*buf);
    if (!*t)
        snprintf(why, cap, "%s %s is empty", what, path);
    return *t ? t : NULL;
}

/* ---- container and IMDS answers: JSON ---------------------------------- */

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int parse_expiration(const char *s, int64_t *out, char *why, size_t cap)
{
    *out = 0;
    if (!*s)
        return 1;
    if ((*out = vg_cred_parse_time(s)) > 0)
        return 1;
    snprintf(why, cap, "bad Expiration \"%.40s\"", s);
    return 0;
}

static int creds_from_json(const char *body, const char *source, struct vg_aws_creds *out,
                           char *why, size_t cap)
{
    json_error_t err;
    json_t *o = json_loads(body, 0, &err);
    int64_t exp;
    int ok = 0;

    if (!json_is_object(o)) {
        snprintf(why, cap, "answer is not a JSON object");
    } else if (json_object_get(o, "Code") && strcmp(jstr(o, "Code"), "Success") != 0) {
        snprintf(why, cap, "Code %.40s: %.60s", jstr(o, "Code"), jstr(o, "Message"));
    } else if (parse_expiration(jstr(o, "Expiration"), &exp, why, cap)) {
        ok = vg_cred_fill(out, source, jstr(o, "AccessKeyId"), jstr(o, "SecretAccessKey"),
                          jstr(o, "Token"), exp, why, cap);
    }
    json_decref(o);
    return ok;
}

/* "HTTP 401" plus the code and message of a JSON error body, if any. */
static void http_why(const struct cred_http_resp *resp, const char *what, char *why, size_t cap)
{
    json_t *o = json_loads(resp->body, 0, NULL);
    const char *code = jstr(o, json_object_get(o, "code") ? "code" : "Code");
    const char *msg = jstr(o, json_object_get(o, "message") ? "message" : "Message");
    if (*code || *msg)
        snprintf(why, cap, "%s%sHTTP %ld: %.40s %.60s", what, *what ? ": " : "", resp->status,
                 code, msg);
    else
        snprintf(why, cap, "%s%sHTTP %ld", what, *what ? ": " : "", resp->status);
    json_decref(o);
}

/* ---- web identity ------------------------------------------------------ */

/* application/x-www-form-urlencoded value: RFC 3986 unreserved kept. */
static size_t form_encode(const char *in, char *out)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (const unsigned char *p = (const unsigned char *)in; *p; p++) {
        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '_' || *p == '.' || *p == '~') {
            out[n++] = (char)*p;
        } else {
            out[n++] = '%';
            out[n++] = hex[*p >> 4];
            out[n++] = hex[*p & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static char *sts_body(const char *arn, const char *session, const char *token, size_t *cap)
{
    static const char *const names[] = {"Action=AssumeRoleWithWebIdentity&Version=2011-06-15"
                                        "&RoleArn=", "&RoleSessionName=", "&WebIdentityToken="};
    const char *vals[] = {arn, session, token};
    size_t n = 0;
    *cap = 1;
    for (int i = 0; i < 3; i++)
        *cap += strlen(names[i]) + 3 * strlen(vals[i]);
    char *b = malloc(*cap);
    if (!b)
        return NULL;
    for (int i = 0; i < 3; i++) {
        memcpy(b + n, names[i], strlen(names[i]));
        n += strlen(names[i]);
        n += form_encode(vals[i], b + n);
    }
    return b;
}

static void sts_url(const struct cred_ctx *c, char *out, size_t cap)
{
    const char *e = vg_cred_env("AWS_ENDPOINT_URL_STS");
    if (!e)
        e = vg_cred_env("AWS_ENDPOINT_URL");
    if (e) {
        const char *path = strchr(strstr(e, "://") ? strstr(e, "://") + 3 : e, '/');
        snprintf(out, cap, "%s%s", e, path ? "" : "/");
    } else {
        snprintf(out, cap, "https://sts.%s.amazonaws.com%s/", c->region,
                 strncmp(c->region, "cn-", 3) == 0 ? ".cn" : "");
    }
}

static int sts_answer(const struct cred_http_resp *resp, struct vg_aws_creds *out, char *why,
                      size_t cap)
{
    char id[128], secret[128], expiration[64], code[64] = "", msg[96] = "";
    char *token = NULL;
    int ok = 0;

    if (resp->status != 200) {
        vg_xml_text(resp->body, "Code", code, sizeof(code), NULL);
        vg_xml_text(resp->body, "Message", msg, sizeof(msg), NULL);
        snprintf(why, cap, "STS %s%s%s (HTTP %ld)", code[0] ? code : "error", msg[0] ? ": " : "",
                 msg, resp->status);
        return 0;
    }
    if (!(token = malloc(sizeof(out->session_token)))) {
        snprintf(why, cap, "out of memory");
        return 0;
    }
    int64_t exp = 0;
    if (!vg_xml_text(resp->body, "AccessKeyId", id, sizeof(id), NULL) ||
        !vg_xml_text(resp->body, "SecretAccessKey", secret, sizeof(secret), NULL) ||
        !vg_xml_text(resp->body, "SessionToken", token, sizeof(out->session_token), NULL) ||
        !vg_xml_text(resp->body, "Expiration", expiration, sizeof(expiration), NULL))
        snprintf(why, cap, "STS answer without complete Credentials");
    else if (parse_expiration(expiration, &exp, why, cap))
        ok = vg_cred_fill(out, "web-identity", id, secret, token, exp, why, cap);
    explicit_bzero(secret, sizeof(secret));
    vg_cred_free_secret(token, sizeof(out->session_token));
    return ok;
}

int vg_cred_src_web_identity(const struct cred_ctx *c, struct vg_aws_creds *out, char *why,
                             size_t cap)
{
    const char *file = vg_cred_env("AWS_WEB_IDENTITY_TOKEN_FILE");
    const char *arn = vg_cred_env("AWS_ROLE_ARN"), *session = vg_cred_env("AWS_ROLE_SESSION_NAME");
    char *buf = NULL, *body = NULL, name[64], url[512];
    size_t len = 0, body_cap = 0;
    struct cred_http_resp resp = {0};
    int ok = 0;

    if (!file || !arn) {
        snprintf(why, cap, "%s", !file && !arn ? "not configured"
                                 : file ? "AWS_ROLE_ARN not set"
                                        : "AWS_WEB_IDENTITY_TOKEN_FILE not set");
        return 0;
    }
    const char *token = read_token(file, "token file", &buf, &len, why, cap);
    if (!token)
        goto out;
    if (!session) {
        snprintf(name, sizeof(name), "vigil-%ld-%lld", (long)getpid(),
                 (long long)(vg_now_us() / 1000000));
        session = name;
    }
    if (!(body = sts_body(arn, session, token, &body_cap))) {
        snprintf(why, cap, "out of memory");
        goto out;
    }
    sts_url(c, url, sizeof(url));
    const char *hdrs[] = {"Content-Type: application/x-www-form-urlencoded; charset=utf-8"};
    struct cred_http_req req = {"POST", url, hdrs, 1, body, c->timeout_ms, 0};
    if (vg_cred_http(&req, &resp, why, cap) == 0)
        ok = sts_answer(&resp, out, why, cap);
out:
    vg_cred_http_cleanup(&resp);
    vg_cred_free_secret(body, body_cap);
    vg_cred_free_secret(buf, len);
    return ok;
}

/* ---- container --------------------------------------------------------- */

static int allowed_addr(const struct sockaddr *sa)
{
    static const unsigned char ecs6[16] = {0xfd, 0, 0x0e, 0xc2, [15] = 0x23};
    if (sa->sa_family == AF_INET) {
        uint32_t a = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
        return (a >> 24) == 127 || a == 0xA9FEAA02u || a == 0xA9FEAA17u;
    }
    if (sa->sa_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || memcmp(a->s6_addr, ecs6, 16) == 0;
    }
    return 0;
}

/* Every address the host resolves to must be loopback or an ECS/EKS one. */
static int allowed_host(const char *host)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    int ok = 1;
    if (getaddrinfo(host, NULL, &hints, &res) != 0 || !res)
        return 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next)
        ok &= allowed_addr(ai->ai_addr);
    freeaddrinfo(res);
    return ok;
}

/* A FULL_URI may be https anywhere, http only to the allowed hosts. */
static int full_uri_ok(const char *uri, char *why, size_t cap)
{
    char host[256];
    if (strncasecmp(uri, "https://", 8) == 0)
        return 1;
    if (strncasecmp(uri, "http://", 7) != 0) {
        snprintf(why, cap, "AWS_CONTAINER_CREDENTIALS_FULL_URI is not http(s)");
        return 0;
    }
    const char *h = uri + 7;
    size_t n = strcspn(h, "/?#");
    const char *at = memchr(h, '@', n);
    if (!at && *h == '[')
        n = strcspn(++h, "]");
    else if (!at)
        n = strcspn(h, ":/?#");
    if (at || n == 0 || n >= sizeof(host)) {
        snprintf(why, cap, "bad host in AWS_CONTAINER_CREDENTIALS_FULL_URI");
        return 0;
    }
    memcpy(host, h, n);
    host[n] = '\0';
    if (allowed_host(host))
        return 1;
    snprintf(why, cap, "http host %.60s is not loopback or an ECS/EKS address", host);
    return 0;
}

/* "Authorization: <token>" in a heap buffer, or NULL with why set when the
 * token cannot be read or would break the header. *ok reports success. */
static char *container_auth(size_t *auth_len, int *ok, char *why, size_t cap)
{
    const char *file = vg_cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE");
    const char *tok = vg_cred_env("AWS_CONTAINER_AUTHORIZATION_TOKEN");
    char *buf = NULL, *hdr = NULL;
    size_t len = 0;

    *ok = 0;
    if (file && !(tok = read_token(file, "token file", &buf, &len, why, cap)))
        goto out;
    *ok = 1;
    if (!tok)
        goto out;
    if (strpbrk(tok, "\r\n")) {
        snprintf(why, cap, "authorization token contains a line break");
        *ok = 0;
        goto out;
    }
    *auth_len = strlen(tok) + sizeof("Authorization: ");
    if (!(hdr = malloc(*auth_len))) {
        snprintf(why, cap, "out of memory");
        *ok = 0;
        goto out;
    }
    snprintf(hdr, *auth_len, "Authorization: %s", tok);
out:
    vg_cred_free_secret(buf, len);
    return hdr;
}

int vg_cred_src_container(const struct cred_ctx *c, struct vg_aws_creds *out, char *why,
                          size_t cap)
{
    const char *rel = vg_cred_env("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    const char *full = vg_cred_env("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    char url[1024], *auth = NULL;
    size_t auth_len = 0;
    struct cred_http_resp resp = {0};
    int ok = 0, auth_ok;

    if (!rel && !full) {
        snprintf(why, cap, "not configured");
        return 0;
    }
    if (rel)
        snprintf(url, sizeof(url), "%s%s%s", CONTAINER_HOST, *rel == '/' ? "" : "/", rel);
    else if (!full_uri_ok(full, why, cap))
        return 0;
    else
        snprintf(url, sizeof(url), "%s", full);
    auth = container_auth(&auth_len, &auth_ok, why, cap);
    if (!auth_ok)
        return 0;
    const char *hdrs[] = {"Accept: application/json", auth};
    struct cred_http_req req = {"GET", url, hdrs, auth ? 2 : 1, NULL, c->timeout_ms, 1};
    if (vg_cred_http(&req, &resp, why, cap) == 0) {
        if (resp.status == 200)
            ok = creds_from_json(resp.body, "container", out, why, cap);
        else
            http_why(&resp, "", why, cap);
    }
    vg_cred_http_cleanup(&resp);
    vg_cred_free_secret(auth, auth_len);
    return ok;
}

/* ---- EC2 instance metadata, IMDSv2 only -------------------------------- */

static void imds_base(char *out, size_t cap)
{
    const char *e = vg_cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    const char *mode = vg_cred_env("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE");
    if (!e)
        e = mode && strcasecmp(mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                   : "http://169.254.169.254";
    snprintf(out, cap, "%s", e);
    size_t n = strlen(out);
    while (n && out[n - 1] == '/')
        out[--n] = '\0';
}

/* One IMDS exchange; 1 with a 200 answer in resp, else 0 with why "<step>: ...". */
static int imds_call(const char *method, const char *url, const char *hdr, const char *step,
                     struct cred_http_resp *resp, char *why, size_t cap)
{
    char err[CRED_WHY_CAP];
    const char *hdrs[] = {hdr};
    struct cred_http_req req = {method, url, hdrs, 1, NULL, CRED_IMDS_TIMEOUT_MS, 1};
    if (vg_cred_http(&req, resp, err, sizeof(err)) != 0) {
        snprintf(why, cap, "%s: %s", step, err);
        return 0;
    }
    if (resp->status == 200 && resp->len > 0)
        return 1;
    snprintf(why, cap, "%s: HTTP %ld", step, resp->status);
    vg_cred_http_cleanup(resp);
    return 0;
}

/* The first role name listed, if it is a plausible IAM role name. */
static int imds_role(const char *list, char *out, size_t cap)
{
    size_t n = strcspn(list, "\r\n");
    if (n == 0 || n >= cap)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+=,.@_-",
                    list[i]))
            return 0;
    memcpy(out, list, n);
    out[n] = '\0';
    return 1;
}

int vg_cred_src_imds(const struct cred_ctx *c, struct vg_aws_creds *out, char *why, size_t cap)
{
    const char *dis = vg_cred_env("AWS_EC2_METADATA_DISABLED");
    char base[512], url[768], role[130], hdr[512];
    struct cred_http_resp resp = {0};
    int ok = 0;

    if (dis && strcasecmp(dis, "true") == 0) {
        snprintf(why, cap, "disabled by AWS_EC2_METADATA_DISABLED");
        return 0;
    }
    imds_base(base, sizeof(base));
    snprintf(url, sizeof(url), "%s/latest/api/token", base);
    if (!imds_call("PUT", url, "X-aws-ec2-metadata-token-ttl-seconds: 21600", "token", &resp,
                   why, cap))
        return 0;
    int fits = snprintf(hdr, sizeof(hdr), "X-aws-ec2-metadata-token: %s",
                        trim_all(resp.body)) < (int)sizeof(hdr);
    vg_cred_http_cleanup(&resp);
    if (!fits) {
        snprintf(why, cap, "token: longer than %zu bytes", sizeof(hdr) - 27);
        goto out;
    }
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/", base);
    if (!imds_call("GET", url, hdr, "role", &resp, why, cap))
        goto out;
    int role_ok = imds_role(resp.body, role, sizeof(role));
    vg_cred_http_cleanup(&resp);
    if (!role_ok) {
        snprintf(why, cap, "role: no valid instance profile role name");
        goto out;
    }
    snprintf(url, sizeof(url), "%s/latest/meta-data/iam/security-credentials/%s", base, role);
    if (imds_call("GET", url, hdr, "credentials", &resp, why, cap))
        ok = creds_from_json(resp.body, "imds", out, why, cap);
    vg_cred_http_cleanup(&resp);
out:
    explicit_bzero(hdr, sizeof(hdr));
    return ok;
}
