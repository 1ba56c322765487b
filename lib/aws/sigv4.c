/* SigV4 per the AWS General Reference "Create a signed AWS API request":
 * canonical request -> string to sign -> HMAC chain -> signature. */
#include "aws/sigv4.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/sha.h>

#define ALGORITHM "AWS4-HMAC-SHA256"
#define MAX_QUERY_PARAMS 64

struct hdr {
    char name[64];
    const char *value;
};

void vg_sha256_hex(const void *data, size_t len, char out[65])
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256(data, len, md);
    for (int i = 0; i < SHA256_DIGEST_LENGTH; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

void vg_amz_date(int64_t now_us, char out[17])
{
    time_t t = (time_t)(now_us / 1000000);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

size_t vg_uri_encode(const char *in, size_t len, int keep_slash, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' ||
            (keep_slash && c == '/')) {
            if (n + 1 >= cap)
                return (size_t)-1;
            out[n++] = (char)c;
        } else {
            if (n + 3 >= cap)
                return (size_t)-1;
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    if (n >= cap)
        return (size_t)-1;
    out[n] = '\0';
    return n;
}

static void hmac(const void *key, size_t klen, const char *msg, unsigned char out[32])
{
    unsigned int olen = 32;
    HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, strlen(msg), out, &olen);
}

static int cmp_hdr(const void *a, const void *b)
{
    return strcmp(((const struct hdr *)a)->name, ((const struct hdr *)b)->name);
}

/* Query pairs sort by name, then by value: "list=x" before "list-type=2"
 * although '-' < '=' as bytes. */
static int cmp_pair(const void *a, const void *b)
{
    const char *x = *(char *const *)a, *y = *(char *const *)b;
    size_t xn = strcspn(x, "="), yn = strcspn(y, "=");
    int c = strncmp(x, y, xn < yn ? xn : yn);
    if (c == 0 && xn != yn)
        return xn < yn ? -1 : 1;
    if (c != 0)
        return c;
    return strcmp(x + xn, y + yn);
}

/* Header value as signed: leading/trailing space trimmed, runs collapsed. */
static void put_trimmed(FILE *f, const char *v)
{
    while (*v == ' ' || *v == '\t')
        v++;
    int space = 0;
    for (; *v; v++) {
        if (*v == ' ' || *v == '\t') {
            space = 1;
            continue;
        }
        if (space)
            fputc(' ', f);
        space = 0;
        fputc(*v, f);
    }
}

/* "a=1&b=2" sorted by name then value (byte order, which for the already
 * encoded pairs is what SigV4 asks). */
static vg_status put_query(FILE *f, const char *query)
{
    char *copy = NULL, *pairs[MAX_QUERY_PARAMS], *save = NULL;
    size_t n = 0;
    if (!query || !*query)
        return VG_OK;
    if (!(copy = strdup(query)))
        return VG_ERR_NOMEM;
    for (char *p = strtok_r(copy, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
        if (n == MAX_QUERY_PARAMS) {
            free(copy);
            return vg_errf(VG_ERR_TOO_LARGE, "sigv4: more than %d query parameters",
                           MAX_QUERY_PARAMS);
        }
        pairs[n++] = p;
    }
    qsort(pairs, n, sizeof(pairs[0]), cmp_pair);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s%s", i ? "&" : "", pairs[i], strchr(pairs[i], '=') ? "" : "=");
    free(copy);
    return VG_OK;
}

/* Lower-cased, sorted headers into h (VG_SIGV4_MAX_HEADERS + 1 entries);
 * x-amz-date added when the caller has none. */
static vg_status collect_headers(const struct vg_sigv4_request *r, struct hdr *h, size_t *n)
{
    size_t k = 0;
    int has_date = 0;
    if (r->n_headers > VG_SIGV4_MAX_HEADERS)
        return vg_errf(VG_ERR_TOO_LARGE, "sigv4: too many headers");
    for (size_t i = 0; i < r->n_headers; i++) {
        size_t len = strlen(r->headers[i].name);
        if (len >= sizeof(h[k].name))
            return vg_errf(VG_ERR_INVALID, "sigv4: header name too long");
        for (size_t c = 0; c <= len; c++)
            h[k].name[c] = (char)tolower((unsigned char)r->headers[i].name[c]);
        h[k].value = r->headers[i].value;
        has_date |= !strcmp(h[k].name, "x-amz-date");
        k++;
    }
    if (!has_date) { /* h has room for one more than the caller's maximum */
        strcpy(h[k].name, "x-amz-date");
        h[k++].value = r->amz_date;
    }
    qsort(h, k, sizeof(*h), cmp_hdr);
    *n = k;
    return VG_OK;
}

/* The canonical URI: S3 signs the path as sent, every other service signs
 * it URI-encoded once more. */
static vg_status put_path(FILE *f, const struct vg_sigv4_request *r)
{
    const char *path = r->path && *r->path ? r->path : "/";
    if (!strcmp(r->service, "s3")) {
        fputs(path, f);
        return VG_OK;
    }
    size_t cap = strlen(path) * 3 + 1;
    char *enc = malloc(cap);
    if (!enc)
        return VG_ERR_NOMEM;
    vg_uri_encode(path, strlen(path), 1, enc, cap);
    fputs(enc, f);
    free(enc);
    return VG_OK;
}

static void signed_header_list(const struct hdr *h, size_t n, char *out, size_t cap)
{
    size_t len = 0;
    out[0] = '\0';
    for (size_t i = 0; i < n && len < cap; i++)
        len += (size_t)snprintf(out + len, cap - len, "%s%s", i ? ";" : "", h[i].name);
}

/* hex SHA-256 of the canonical request. */
static vg_status canonical_hash(const struct vg_sigv4_request *r, const char *query,
                                const struct hdr *h, size_t n, const char *signed_list,
                                const char *payload_hash, char out[65])
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f)
        return VG_ERR_NOMEM;
    fprintf(f, "%s\n", r->method);
    vg_status st = put_path(f, r);
    fputc('\n', f);
    if (st == VG_OK)
        st = put_query(f, query);
    fputc('\n', f);
    for (size_t i = 0; i < n; i++) {
        fprintf(f, "%s:", h[i].name);
        put_trimmed(f, h[i].value);
        fputc('\n', f);
    }
    fprintf(f, "\n%s\n%s", signed_list, payload_hash);
    fclose(f);
    if (st == VG_OK)
        vg_sha256_hex(buf, len, out);
    free(buf);
    return st;
}

/* Hex signature of the string to sign built from the canonical hash. */
static void signature(const struct vg_sigv4_request *r, const struct vg_aws_creds *c,
                      const char *scope, const char *creq_hash, char out[65])
{
    char sts[512], date[9];
    unsigned char k[32], ksecret[160];
    snprintf(date, sizeof(date), "%.8s", r->amz_date);
    snprintf(sts, sizeof(sts), ALGORITHM "\n%s\n%s\n%s", r->amz_date, scope, creq_hash);
    int klen = snprintf((char *)ksecret, sizeof(ksecret), "AWS4%s", c->secret_access_key);
    hmac(ksecret, (size_t)klen, date, k);
    hmac(k, 32, r->region, k);
    hmac(k, 32, r->service, k);
    hmac(k, 32, "aws4_request", k);
    hmac(k, 32, sts, k);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", k[i]);
    OPENSSL_cleanse(ksecret, sizeof(ksecret));
}

static void make_scope(const struct vg_sigv4_request *r, char *out, size_t cap)
{
    snprintf(out, cap, "%.8s/%s/%s/aws4_request", r->amz_date, r->region, r->service);
}

vg_status vg_sigv4_authorization(const struct vg_sigv4_request *r, const struct vg_aws_creds *c,
                                 char *out, size_t cap)
{
    struct hdr h[VG_SIGV4_MAX_HEADERS + 1];
    size_t n = 0;
    char payload[65], creq[65], sig[65], scope[160], list[1024];
    vg_status st = collect_headers(r, h, &n);
    if (st != VG_OK)
        return st;
    if (r->payload_sha256)
        snprintf(payload, sizeof(payload), "%s", r->payload_sha256);
    else
        vg_sha256_hex(r->body ? (const void *)r->body : "", r->body_len, payload);
    signed_header_list(h, n, list, sizeof(list));
    if ((st = canonical_hash(r, r->query, h, n, list, payload, creq)) != VG_OK)
        return st;
    make_scope(r, scope, sizeof(scope));
    signature(r, c, scope, creq, sig);
    int len = snprintf(out, cap, ALGORITHM " Credential=%s/%s, SignedHeaders=%s, Signature=%s",
                       c->access_key_id, scope, list, sig);
    if (len < 0 || (size_t)len >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "sigv4: authorization header too long");
    return VG_OK;
}

vg_status vg_sigv4_presign(const struct vg_sigv4_request *r, const struct vg_aws_creds *c,
                           const char *scheme, int expires_s, char *out, size_t cap)
{
    struct vg_sigv4_header host = {"host", NULL};
    struct hdr h[1];
    char scope[160], cred[400], enc_cred[1200], creq[65], sig[65];
    char *token = NULL, *query = NULL;
    size_t qlen = 0;
    vg_status st = VG_OK;

    for (size_t i = 0; i < r->n_headers; i++)
        if (!strcasecmp(r->headers[i].name, "host"))
            host.value = r->headers[i].value;
    if (!host.value)
        return vg_errf(VG_ERR_INVALID, "presign: no host header");
    if (expires_s < 1 || expires_s > 604800)
        return vg_errf(VG_ERR_INVALID, "presign: expiry %d s outside 1..604800", expires_s);
    make_scope(r, scope, sizeof(scope));
    snprintf(cred, sizeof(cred), "%s/%s", c->access_key_id, scope);
    vg_uri_encode(cred, strlen(cred), 0, enc_cred, sizeof(enc_cred));
    FILE *f = open_memstream(&query, &qlen);
    if (!f)
        return VG_ERR_NOMEM;
    fprintf(f, "X-Amz-Algorithm=" ALGORITHM "&X-Amz-Credential=%s&X-Amz-Date=%s"
               "&X-Amz-Expires=%d&X-Amz-SignedHeaders=host", enc_cred, r->amz_date, expires_s);
    if (c->session_token[0]) {
        size_t tcap = strlen(c->session_token) * 3 + 1;
        if ((token = malloc(tcap)))
            vg_uri_encode(c->session_token, strlen(c->session_token), 0, token, tcap);
        fprintf(f, "&X-Amz-Security-Token=%s", token ? token : "");
    }
    if (r->query && *r->query)
        fprintf(f, "&%s", r->query);
    fclose(f);
    if (!query || (c->session_token[0] && !token)) {
        st = VG_ERR_NOMEM;
        goto out;
    }
    strcpy(h[0].name, "host");
    h[0].value = host.value;
    if ((st = canonical_hash(r, query, h, 1, "host", "UNSIGNED-PAYLOAD", creq)) != VG_OK)
        goto out;
    signature(r, c, scope, creq, sig);
    int len = snprintf(out, cap, "%s://%s%s?%s&X-Amz-Signature=%s", scheme, host.value,
                       r->path && *r->path ? r->path : "/", query, sig);
    if (len < 0 || (size_t)len >= cap)
        st = vg_errf(VG_ERR_TOO_LARGE, "presign: URL longer than %zu", cap);
out:
    free(token);
    free(query);
    return st;
}
