/* The shared config and credentials files: a small INI reader, the profile
 * source of the chain and the profile's region. */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "aws/cred_internal.h"
#include "aws/credentials.h"
#include "status.h"

#define MAX_SHARED_FILE (1024 * 1024)

/* One key wanted from the profile's section; val holds the last value seen. */
struct ini_key {
    const char *name;
    char *val;
    size_t cap;
    int set;
    int too_long;
};

/* What reading the two files found, for the reason text. */
struct prof_read {
    char cred_path[PATH_MAX];
    char cfg_path[PATH_MAX];
    int files_found;
    int section_found;
    char err[CRED_WHY_CAP];     /* a file that exists but could not be read */
};

int vg_cred_read_file(const char *path, size_t max, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t n = 0;
    int rc = -1;

    if (!f)
        return -1;
    if (!(buf = malloc(max + 1)))
        goto out;
    n = fread(buf, 1, max + 1, f);
    if (ferror(f))
        goto out;
    if (n > max) {
        errno = EFBIG;
        goto out;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    buf = NULL;
    rc = 0;
out:
    if (buf)
        vg_cred_free_secret(buf, max + 1);
    fclose(f);
    return rc;
}

void vg_cred_free_secret(char *buf, size_t len)
{
    if (!buf)
        return;
    explicit_bzero(buf, len);
    free(buf);
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

/* "[default]" and "[profile name]" in config, "[name]" in credentials. */
static int section_matches(char *line, int config_style, const char *profile)
{
    char *end = strchr(line, ']');
    if (!end)
        return 0;
    char *rest = trim(end + 1);
    if (*rest && *rest != '#' && *rest != ';')
        return 0;
    *end = '\0';
    char *name = trim(line + 1);
    if (!config_style)
        return strcmp(name, profile) == 0;
    if (strcmp(name, "default") == 0)
        return strcmp(profile, "default") == 0;
    if (strncmp(name, "profile", 7) != 0 || (name[7] != ' ' && name[7] != '\t'))
        return 0;
    return strcmp(trim(name + 7), profile) == 0;
}

/* A comment starts at # or ; preceded by whitespace. */
static void strip_comment(char *v)
{
    for (char *q = v; *q; q++) {
        if ((*q == '#' || *q == ';') && q > v && (q[-1] == ' ' || q[-1] == '\t')) {
            *q = '\0';
            return;
        }
    }
}

static void set_key(struct ini_key *keys, size_t n, const char *name, const char *val)
{
    for (size_t i = 0; i < n; i++) {
        if (strcasecmp(keys[i].name, name) != 0)
            continue;
        size_t len = strlen(val);
        keys[i].set = 1;
        keys[i].too_long = len >= keys[i].cap;
        if (!keys[i].too_long)
            memcpy(keys[i].val, val, len + 1);
        return;
    }
}

/* Apply one file's lines for profile to keys; returns whether the section exists. */
static int parse_ini(char *text, int config_style, const char *profile, struct ini_key *keys,
                     size_t n)
{
    int in_profile = 0, found = 0, in_sub = 0;
    for (char *line = text, *next; line; line = next) {
        next = strchr(line, '\n');
        if (next)
            *next++ = '\0';
        int indented = *line == ' ' || *line == '\t';
        char *s = trim(line);
        if (!*s || *s == '#' || *s == ';')
            continue;
        if (*s == '[') {
            in_profile = section_matches(s, config_style, profile);
            found |= in_profile;
            in_sub = 0;
            continue;
        }
        if (indented && in_sub)
            continue;   /* nested sub-property ("s3 =" then indented lines) */
        char *eq = strchr(s, '=');
        if (!eq || !in_profile)
            continue;
        *eq = '\0';
        char *val = eq + 1;
        strip_comment(val);
        val = trim(val);
        in_sub = !*val;
        set_key(keys, n, trim(s), val);
    }
    return found;
}

static void file_path(char *out, size_t cap, const char *env, const char *rel)
{
    const char *p = vg_cred_env(env), *home = vg_cred_env("HOME");
    out[0] = '\0';
    if (p && strncmp(p, "~/", 2) == 0 && home)
        snprintf(out, cap, "%s/%s", home, p + 2);
    else if (p)
        snprintf(out, cap, "%s", p);
    else if (home)
        snprintf(out, cap, "%s/%s", home, rel);
}

static void read_one(const char *path, int config_style, const char *profile,
                     struct ini_key *keys, size_t n, struct prof_read *r)
{
    char *text = NULL;
    size_t len = 0;
    if (!*path)
        return;
    if (vg_cred_read_file(path, MAX_SHARED_FILE, &text, &len) != 0) {
        if (errno != ENOENT && !r->err[0])
            snprintf(r->err, sizeof(r->err), "read %s: %s", path,
                     errno == EFBIG ? "larger than 1 MiB" : strerror(errno));
        return;
    }
    r->files_found++;
    r->section_found |= parse_ini(text, config_style, profile, keys, n);
    vg_cred_free_secret(text, len);
}

/* Config first, then credentials, whose keys win. */
static void read_profile(const char *profile, struct ini_key *keys, size_t n,
                         struct prof_read *r)
{
    memset(r, 0, sizeof(*r));
    file_path(r->cfg_path, sizeof(r->cfg_path), "AWS_CONFIG_FILE", ".aws/config");
    file_path(r->cred_path, sizeof(r->cred_path), "AWS_SHARED_CREDENTIALS_FILE",
              ".aws/credentials");
    read_one(r->cfg_path, 1, profile, keys, n, r);
    read_one(r->cred_path, 0, profile, keys, n, r);
}

/* Why a profile gave no keys. */
static void profile_why(const struct prof_read *r, const struct ini_key *keys, size_t n,
                        char *why, size_t cap)
{
    if (r->err[0]) {
        snprintf(why, cap, "%s", r->err);
    } else if (!r->files_found) {
        snprintf(why, cap, "no %s or %s", r->cred_path[0] ? r->cred_path : "credentials file",
                 r->cfg_path[0] ? r->cfg_path : "config file");
    } else if (!r->section_found) {
        snprintf(why, cap, "not in %s or %s", r->cred_path, r->cfg_path);
    } else {
        for (size_t i = 3; i < n; i++) {
            if (keys[i].set) {
                snprintf(why, cap, "no keys; uses %s, which vigil does not support",
                         keys[i].name);
                return;
            }
        }
        snprintf(why, cap, "no aws_access_key_id");
    }
}

int vg_cred_src_profile(const struct cred_ctx *c, struct vg_aws_creds *out, char *why, size_t cap)
{
    char unused[8];
    struct ini_key keys[] = {
        {"aws_access_key_id", out->access_key_id, sizeof(out->access_key_id), 0, 0},
        {"aws_secret_access_key", out->secret_access_key, sizeof(out->secret_access_key), 0, 0},
        {"aws_session_token", out->session_token, sizeof(out->session_token), 0, 0},
        {"role_arn", unused, sizeof(unused), 0, 0},
        {"credential_process", unused, sizeof(unused), 0, 0},
        {"sso_session", unused, sizeof(unused), 0, 0},
        {"sso_start_url", unused, sizeof(unused), 0, 0},
    };
    size_t n = sizeof(keys) / sizeof(keys[0]);
    struct prof_read r;

    read_profile(c->profile, keys, n, &r);
    for (size_t i = 0; i < 3; i++) {
        if (keys[i].too_long) {
            snprintf(why, cap, "%s longer than %zu bytes", keys[i].name, keys[i].cap - 1);
            return 0;
        }
    }
    if (!keys[0].set && !keys[1].set) {
        profile_why(&r, keys, n, why, cap);
        return 0;
    }
    if (!keys[0].set || !keys[1].set || !*out->access_key_id || !*out->secret_access_key) {
        snprintf(why, cap, "%s missing",
                 keys[0].set && *out->access_key_id ? "aws_secret_access_key"
                                                    : "aws_access_key_id");
        return 0;
    }
    out->expires_us = 0;
    snprintf(out->source, sizeof(out->source), "profile");
    return 1;
}

/* The profile's region, from the config file only, as the header says. */
vg_status vg_aws_profile_region(const char *profile, char *out, size_t cap)
{
    char region[64];
    struct ini_key key = {"region", region, sizeof(region), 0, 0};
    struct prof_read r;

    if (!profile || !*profile)
        profile = vg_cred_env("AWS_PROFILE");
    if (!profile)
        profile = "default";
    memset(&r, 0, sizeof(r));
    file_path(r.cfg_path, sizeof(r.cfg_path), "AWS_CONFIG_FILE", ".aws/config");
    read_one(r.cfg_path, 1, profile, &key, 1, &r);
    if (!key.set || key.too_long || !region[0])
        return vg_errf(key.too_long ? VG_ERR_CONFIG : VG_ERR_NOT_FOUND,
                       "profile \"%s\": %s", profile,
                       key.too_long ? "region longer than 63 bytes" : "no region");
    if (strlen(region) >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "profile \"%s\": region does not fit", profile);
    memcpy(out, region, strlen(region) + 1);
    return VG_OK;
}
