/* Matcher "local": LBPH face recognition in-process (lib/face/lbph.h), no
 * account and no download. Every enrolled face is one sample (its LBPH
 * feature and its person); a crop matches the nearest sample by chi-square
 * distance, and is "unknown" when even that one is farther than threshold.
 *
 * Which part of a crop is the face ("aligned" here means box-normalised):
 * dispatch and vigilctl both crop the frontal-face cascade's square box
 * grown by margin_px on every side (dispatch.face_margin_px) and clipped to
 * the picture. The face is taken back as the crop's centred square of side
 * max(width, height) - 2 * margin (where the crop was clipped, its centre
 * stands in for the lost side), resampled to size x size. No rotation to
 * the eyes: faces must be upright and frontal, as the cascade finds them.
 *
 * Keys, under matchers.local:
 *   threshold         0.5    chi-square distance (mean per cell, 0..2) at or
 *                     below which the nearest sample is a match; tuned on
 *                     the test set of tests/unit/test_face_local.c for size
 *                     100 and grid 8 (distances grow with finer cells:
 *                     re-tune when changing either).
 *   size              100    the face is resampled to size x size (32..256).
 *   grid              8      grid x grid cell histograms (2..16).
 *   margin_px         -1     the crops' margin; -1: dispatch.face_margin_px.
 *   model_file        ""     keep the model in this file instead of Redis
 *                     (setups without Redis; one host). VIGIL_MATCHER_LOCAL_MODEL_FILE.
 *   max_people        1000   bounds of the model; an enrolment past them
 *   max_samples       8192   fails with VG_ERR_TOO_LARGE and changes nothing.
 *   max_model_mb      64     a stored model larger than this is refused
 *                     (VG_ERR_TOO_LARGE) before it is read.
 *   check_interval_s  30     how often a match looks at the stored model's
 *                     generation (8 bytes) and reloads when another replica
 *                     or vigilctl changed it: a safety net under the control
 *                     subject's reload (0: only reload()).
 *
 * similarity = 2^(-distance / threshold): 1 for identical features, 0.5 at
 * the threshold (so a match always has similarity >= 0.5), falling towards 0.
 *
 * The model lives in Redis under "<prefix>:faces:local:model" (or in
 * model_file), one binary string that every replica loads; its layout is
 * below (model_parse). enrol and remove read the stored model, change it and
 * write it back with one SET, guarded by its generation (a Lua
 * compare-and-set: a concurrent change by another process makes us re-read
 * and retry, never lose it). A stored model that cannot be parsed is a
 * VG_ERR_DECODE with the reason and counted in
 * vigil_face_local_model_corrupt_total; the model already in memory stays
 * in use, and enrol/remove refuse to overwrite it (delete the key first).
 *
 * The feature's size and grid are stored in the model and win over the
 * settings (every sample must be comparable): to change them, delete the
 * model and enrol again.
 *
 * Thread-safe: matches share a read lock; loads, enrolments and removals
 * take the write lock. */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "face/lbph.h"
#include "face/matcher.h"
#include "image/jpeg.h"
#include "log.h"
#include "metrics.h"
#include "redis.h"
#include "timeutil.h"

#define MAGIC "VGLB"
#define FORMAT_VERSION 1
#define HEADER_BYTES 32
#define GEN_OFFSET 8                /* the generation's 8 bytes, read with GETRANGE */
#define MIN_FACE_PX 20              /* the cascade's smallest face */
#define CROP_MAX_PIXELS ((size_t)4096 * 4096)
#define RETRY_US (5 * 1000000LL)    /* a failed load is tried again at most this often */
#define CAS_ATTEMPTS 12
#define UNKNOWN "unknown"

struct lo_settings {
    double threshold;
    int size, grid, margin_px;
    char model_file[VG_URL_MAX];
    int max_people, max_samples, max_model_mb, check_interval_s;
};

static const struct vg_opt lo_opts[] = {
    VG_OPT_DBL_("threshold", struct lo_settings, threshold, 0.001, 2, "0.5",
                "chi-square distance (0..2) at or below which the nearest face matches"),
    VG_OPT_INT_("size", struct lo_settings, size, VG_LBPH_SIZE_MIN, VG_LBPH_SIZE_MAX, "100",
                "faces are resampled to size x size pixels"),
    VG_OPT_INT_("grid", struct lo_settings, grid, VG_LBPH_GRID_MIN, VG_LBPH_GRID_MAX, "8",
                "grid x grid cell histograms per face"),
    VG_OPT_INT_("margin_px", struct lo_settings, margin_px, -1, 1000, "-1",
                "margin around the face in the crops; -1: dispatch.face_margin_px"),
    VG_OPT_STR_("model_file", struct lo_settings, model_file, "",
                "VIGIL_MATCHER_LOCAL_MODEL_FILE", 0,
                "keep the model in this file instead of Redis"),
    VG_OPT_INT_("max_people", struct lo_settings, max_people, 1, 100000, "1000",
                "people the model may hold"),
    VG_OPT_INT_("max_samples", struct lo_settings, max_samples, 1, 1000000, "8192",
                "enrolled faces the model may hold"),
    VG_OPT_INT_("max_model_mb", struct lo_settings, max_model_mb, 1, 512, "64",
                "largest stored model read, MiB"),
    VG_OPT_INT_("check_interval_s", struct lo_settings, check_interval_s, 0, 86400, "30",
                "how often a match checks the stored model's generation; 0: never"),
    VG_OPT_END,
};

/* The model: people, and samples each with its owner and feature. */
struct model {
    struct vg_lbph_params p;
    size_t dim;
    uint64_t gen;                   /* 0: never stored */
    size_t n_people, n_samples;
    char (*people)[VG_FACE_ID_MAX];
    uint32_t *owner;                /* index into people, per sample */
    uint32_t *id;                   /* CRC-32 of the counts: the face id */
    uint16_t *counts;               /* n_samples * dim, as stored */
    float *feat;                    /* n_samples * dim, normalised for matching */
};

struct lo_state {
    const struct lo_settings *s;
    struct vg_redis *redis;
    char key[VG_URL_MAX];           /* Redis key, or the file path */
    char where[VG_URL_MAX + 16];    /* for messages: "redis key K" or "file F" */
    int margin;
    pthread_rwlock_t lock;
    pthread_mutex_t check;          /* one thread at a time looks at the generation */
    struct model *model;            /* NULL: not loaded yet (a load failed) */
    vg_status load_st;              /* why not, for matches until it loads */
    char load_err[512];
    int64_t last_check_us, last_try_us;
    struct vg_counter *corrupt, *loads, *too_small, *samples;
};

/* ---- bytes ------------------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8); }
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get64(const uint8_t *p) { return get32(p) | (uint64_t)get32(p + 4) << 32; }


static uint32_t crc_table[256];

static void crc_fill(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = c & 1 ? 0xedb88320u ^ (c >> 1) : c >> 1;
        crc_table[i] = c;
    }
}

/* CRC-32 (the zlib/PNG polynomial) of len bytes, continuing from crc (0 to start). */
static uint32_t crc32_add(uint32_t crc, const uint8_t *p, size_t len)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    uint32_t c = crc ^ 0xffffffffu;
    pthread_once(&once, crc_fill);
    for (size_t i = 0; i < len; i++)
        c = crc_table[(c ^ p[i]) & 0xff] ^ (c >> 8);
    return c ^ 0xffffffffu;
}

/* A sample's face id: the CRC-32 of its counts as stored (little-endian). */
static uint32_t counts_id(const uint16_t *c, size_t dim)
{
    uint32_t crc = 0;
    for (size_t k = 0; k < dim; k++) {
        uint8_t b[2];
        put16(b, c[k]);
        crc = crc32_add(crc, b, 2);
    }
    return crc;
}

/* ---- the model in memory --------------------------------------------------------------- */

static void model_free(struct model *m)
{
    if (!m)
        return;
    free(m->people);
    free(m->owner);
    free(m->id);
    free(m->counts);
    free(m->feat);
    free(m);
}

static struct model *model_new(struct vg_lbph_params p, size_t people, size_t samples)
{
    struct model *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->p = p;
    m->dim = vg_lbph_dim(&p);
    m->people = calloc(people ? people : 1, sizeof(*m->people));
    m->owner = calloc(samples ? samples : 1, sizeof(*m->owner));
    m->id = calloc(samples ? samples : 1, sizeof(*m->id));
    m->counts = calloc(samples ? samples * m->dim : 1, sizeof(*m->counts));
    m->feat = calloc(samples ? samples * m->dim : 1, sizeof(*m->feat));
    if (!m->people || !m->owner || !m->id || !m->counts || !m->feat) {
        model_free(m);
        return NULL;
    }
    return m;
}

static long person_index(const struct model *m, const char *person)
{
    for (size_t i = 0; i < m->n_people; i++)
        if (!strcmp(m->people[i], person))
            return (long)i;
    return -1;
}

/* Copy sample i of src to slot j of dst with owner o. */
static void sample_copy(struct model *dst, size_t j, const struct model *src, size_t i,
                        uint32_t o)
{
    dst->owner[j] = o;
    dst->id[j] = src->id[i];
    memcpy(dst->counts + j * dst->dim, src->counts + i * src->dim, dst->dim * sizeof(uint16_t));
    memcpy(dst->feat + j * dst->dim, src->feat + i * src->dim, dst->dim * sizeof(float));
}

/* old without person's samples, plus add's samples (add NULL: none) as that
 * person's; NULL when out of memory. */
static struct model *model_replace(const struct model *old, const char *person,
                                   const struct model *add)
{
    long drop = person_index(old, person);
    size_t n_add = add ? add->n_samples : 0, kept = 0;
    for (size_t i = 0; i < old->n_samples; i++)
        kept += (long)old->owner[i] != drop;
    size_t people = old->n_people - (drop >= 0) + (n_add > 0);
    struct model *m = model_new(old->p, people, kept + n_add);
    uint32_t *map = calloc(old->n_people ? old->n_people : 1, sizeof(*map));
    if (!m || !map) {
        model_free(m);
        free(map);
        return NULL;
    }
    for (size_t i = 0; i < old->n_people; i++)
        if ((long)i != drop) {
            memcpy(m->people[m->n_people], old->people[i], VG_FACE_ID_MAX);
            map[i] = (uint32_t)m->n_people++;
        }
    for (size_t i = 0; i < old->n_samples; i++)
        if ((long)old->owner[i] != drop)
            sample_copy(m, m->n_samples++, old, i, map[old->owner[i]]);
    if (n_add) {
        snprintf(m->people[m->n_people], VG_FACE_ID_MAX, "%s", person);
        for (size_t i = 0; i < n_add; i++)
            sample_copy(m, m->n_samples++, add, i, (uint32_t)m->n_people);
        m->n_people++;
    }
    m->gen = old->gen;
    free(map);
    return m;
}

/* ---- the stored form --------------------------------------------------------------------
 *
 * Little-endian, HEADER_BYTES of header then the body:
 *   0  "VGLB"   4  u16 format version (1)   6  u16 header bytes (32)
 *   8  u64 generation (+1 on every write; 0 is never stored)
 *   16 u16 size   18 u8 grid   19 u8 bins (59)   20 u32 people   24 u32 samples
 *   28 u32 CRC-32 of the body
 *   body: people x (u8 length 1..63, the name's bytes), then
 *         samples x (u32 person index, grid * grid * 59 u16 counts)
 * and nothing after it. Every count is checked (each cell's counts sum to
 * its pixel count), so a damaged model is refused, never half used. */

static size_t model_bytes(const struct model *m)
{
    size_t n = HEADER_BYTES;
    for (size_t i = 0; i < m->n_people; i++)
        n += 1 + strlen(m->people[i]);
    return n + m->n_samples * (4 + m->dim * 2);
}

static uint8_t *model_serialise(const struct model *m, uint64_t gen, size_t *len)
{
    size_t n = model_bytes(m);
    uint8_t *b = malloc(n), *p;
    if (!b)
        return NULL;
    memcpy(b, MAGIC, 4);
    put16(b + 4, FORMAT_VERSION);
    put16(b + 6, HEADER_BYTES);
    put64(b + GEN_OFFSET, gen);
    put16(b + 16, (uint16_t)m->p.size);
    b[18] = (uint8_t)m->p.grid;
    b[19] = VG_LBPH_BINS;
    put32(b + 20, (uint32_t)m->n_people);
    put32(b + 24, (uint32_t)m->n_samples);
    p = b + HEADER_BYTES;
    for (size_t i = 0; i < m->n_people; i++) {
        size_t l = strlen(m->people[i]);
        *p++ = (uint8_t)l;
        memcpy(p, m->people[i], l);
        p += l;
    }
    for (size_t i = 0; i < m->n_samples; i++) {
        put32(p, m->owner[i]);
        p += 4;
        for (size_t k = 0; k < m->dim; k++, p += 2)
            put16(p, m->counts[i * m->dim + k]);
    }
    put32(b + 28, crc32_add(0, b + HEADER_BYTES, n - HEADER_BYTES));
    *len = n;
    return b;
}

/* 1..63 bytes, no control characters, not the word for nobody. */
static int name_ok(const char *s, size_t n)
{
    if (n == 0 || n >= VG_FACE_ID_MAX || (n == strlen(UNKNOWN) && !strncasecmp(s, UNKNOWN, n)))
        return 0;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    return 1;
}

#define CORRUPT(...) vg_errf(VG_ERR_DECODE, __VA_ARGS__)

static vg_status parse_header(const struct lo_settings *s, const uint8_t *b, size_t len,
                              struct vg_lbph_params *p, size_t *people, size_t *samples)
{
    if (len < HEADER_BYTES || memcmp(b, MAGIC, 4))
        return CORRUPT("%zu bytes without the \"%s\" header: not a local face model", len,
                       MAGIC);
    if (get16(b + 4) != FORMAT_VERSION)
        return CORRUPT("format version %u; this vigil reads version %d", get16(b + 4),
                       FORMAT_VERSION);
    p->size = get16(b + 16);
    p->grid = b[18];
    *people = get32(b + 20);
    *samples = get32(b + 24);
    if (get16(b + 6) != HEADER_BYTES || b[19] != VG_LBPH_BINS || !vg_lbph_params_ok(p))
        return CORRUPT("header (size %d, grid %d, %u bins) out of range", p->size, p->grid,
                       b[19]);
    if (*people > (size_t)s->max_people || *samples > (size_t)s->max_samples)
        return CORRUPT("%zu people and %zu faces: more than max_people %d or max_samples %d",
                       *people, *samples, s->max_people, s->max_samples);
    if (get32(b + 28) != crc32_add(0, b + HEADER_BYTES, len - HEADER_BYTES))
        return CORRUPT("checksum mismatch: truncated or damaged");
    return VG_OK;
}

static vg_status parse_people(struct model *m, size_t people, const uint8_t *b, size_t len,
                              size_t *at)
{
    for (size_t i = 0; i < people; i++) {
        size_t l = *at < len ? b[*at] : 0;
        if (*at + 1 + l > len || !name_ok((const char *)b + *at + 1, l))
            return CORRUPT("person %zu: no valid name at byte %zu", i, *at);
        memcpy(m->people[i], b + *at + 1, l);
        m->people[i][l] = '\0';
        if (person_index(m, m->people[i]) >= 0)
            return CORRUPT("person \"%s\" is there twice", m->people[i]);
        m->n_people++;
        *at += 1 + l;
    }
    return VG_OK;
}

static vg_status parse_samples(struct model *m, size_t samples, const uint8_t *b, size_t len,
                               size_t at)
{
    size_t rec = 4 + m->dim * 2;
    if ((len - at) / rec != samples || (len - at) % rec)
        return CORRUPT("%zu bytes of faces, but %zu faces of %zu bytes", len - at, samples, rec);
    for (size_t i = 0; i < samples; i++, at += rec) {
        uint32_t o = get32(b + at);
        uint16_t *c = m->counts + i * m->dim;
        for (size_t k = 0; k < m->dim; k++)
            c[k] = get16(b + at + 4 + 2 * k);
        if (o >= m->n_people)
            return CORRUPT("face %zu belongs to person %" PRIu32 " of %zu", i, o, m->n_people);
        if (vg_lbph_normalise(&m->p, c, m->feat + i * m->dim) != 0)
            return CORRUPT("face %zu: its histograms do not add up", i);
        m->owner[i] = o;
        m->id[i] = counts_id(c, m->dim);
        m->n_samples++;
    }
    return VG_OK;
}

static vg_status model_parse(const struct lo_settings *s, const uint8_t *b, size_t len,
                             struct model **out)
{
    struct vg_lbph_params p;
    size_t people = 0, samples = 0, at = HEADER_BYTES;
    struct model *m = NULL;
    vg_status st = parse_header(s, b, len, &p, &people, &samples);
    if (st == VG_OK && !(m = model_new(p, people, samples)))
        st = vg_errf(VG_ERR_NOMEM, "no memory for %zu faces", samples);
    if (st == VG_OK && (st = parse_people(m, people, b, len, &at)) == VG_OK)
        st = parse_samples(m, samples, b, len, at);
    if (st != VG_OK) {
        model_free(m);
        return st;
    }
    m->gen = get64(b + GEN_OFFSET);
    *out = m;
    return VG_OK;
}

/* ---- where the model is kept --------------------------------------------------------- */

static size_t max_bytes(const struct lo_settings *s) { return (size_t)s->max_model_mb << 20; }

static vg_status redis_read(struct lo_state *d, uint8_t **blob, size_t *len)
{
    redisReply *r = NULL;
    vg_status st = vg_redis_cmd(d->redis, &r, "STRLEN %s", d->key);
    long long n = st == VG_OK && r->type == REDIS_REPLY_INTEGER ? r->integer : -1;
    freeReplyObject(r);
    r = NULL;
    if (st != VG_OK)
        return st;
    if (n < 0)
        return vg_errf(VG_ERR_REDIS, "STRLEN: not an integer reply");
    if ((unsigned long long)n > max_bytes(d->s))
        return vg_errf(VG_ERR_TOO_LARGE, "%lld bytes, more than max_model_mb %d", n,
                       d->s->max_model_mb);
    if (n == 0) {   /* no key, or an empty string (which is no model) */
        st = vg_redis_cmd(d->redis, &r, "EXISTS %s", d->key);
        int there = st == VG_OK && r->type == REDIS_REPLY_INTEGER && r->integer > 0;
        freeReplyObject(r);
        return st != VG_OK ? st : there ? CORRUPT("an empty string: not a model") : VG_OK;
    }
    if ((st = vg_redis_cmd(d->redis, &r, "GET %s", d->key)) != VG_OK)
        return st;
    if (r->type == REDIS_REPLY_STRING && r->len > 0 && r->len <= max_bytes(d->s) &&
        (*blob = malloc(r->len))) {
        memcpy(*blob, r->str, r->len);
        *len = r->len;
    } else if (r->type == REDIS_REPLY_STRING && r->len > 0) {
        st = r->len > max_bytes(d->s) ? vg_errf(VG_ERR_TOO_LARGE, "%zu bytes", r->len)
                                      : vg_errf(VG_ERR_NOMEM, "no memory for the model");
    }
    freeReplyObject(r);
    return st;
}

static vg_status file_read(struct lo_state *d, uint8_t **blob, size_t *len)
{
    struct stat sb;
    uint8_t *b = NULL;
    int fd = open(d->key, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? VG_OK : vg_errf(VG_ERR_IO, "open: %s", strerror(errno));
    vg_status st = VG_OK;
    if (fstat(fd, &sb) != 0)
        st = vg_errf(VG_ERR_IO, "stat: %s", strerror(errno));
    else if ((unsigned long long)sb.st_size > max_bytes(d->s))
        st = vg_errf(VG_ERR_TOO_LARGE, "%lld bytes, more than max_model_mb %d",
                     (long long)sb.st_size, d->s->max_model_mb);
    else if (sb.st_size == 0)
        st = CORRUPT("an empty file: not a model");
    else if (!(b = malloc((size_t)sb.st_size)))
        st = vg_errf(VG_ERR_NOMEM, "no memory for the model");
    size_t got = 0;
    while (st == VG_OK && got < (size_t)sb.st_size) {
        ssize_t r = read(fd, b + got, (size_t)sb.st_size - got);
        if (r <= 0)
            st = vg_errf(VG_ERR_IO, "read: %s", r < 0 ? strerror(errno) : "file shrank");
        else
            got += (size_t)r;
    }
    close(fd);
    if (st != VG_OK) {
        free(b);
        return st;
    }
    *blob = b;
    *len = got;
    return VG_OK;
}

/* The stored model, parsed; none stored: an empty one of the settings' params. */
static vg_status store_load(struct lo_state *d, struct model **out)
{
    uint8_t *blob = NULL;
    size_t len = 0;
    struct model *m = NULL;
    struct vg_lbph_params p = {d->s->size, d->s->grid};
    vg_status st = d->redis && !d->s->model_file[0] ? redis_read(d, &blob, &len)
                                                    : file_read(d, &blob, &len);
    if (st == VG_OK && blob)
        st = model_parse(d->s, blob, len, &m);
    else if (st == VG_OK && !(m = model_new(p, 0, 0)))
        st = vg_errf(VG_ERR_NOMEM, "no memory for the model");
    free(blob);
    if (st == VG_OK)
        *out = m;
    if (st == VG_ERR_DECODE || st == VG_ERR_TOO_LARGE)
        vg_counter_inc(d->corrupt);
    if (st != VG_OK)
        return vg_errf(st, "local face model (%s): %s", d->where, vg_err_detail());
    return VG_OK;
}

/* Write blob if the stored generation is still gen (0: none stored);
 * *conflict when another writer came first. */
static const char cas_script[] =
    "local cur = redis.call('GETRANGE', KEYS[1], 8, 15) "
    "if cur ~= ARGV[1] then return 0 end "
    "redis.call('SET', KEYS[1], ARGV[2]) return 1";

static vg_status redis_write(struct lo_state *d, const uint8_t *blob, size_t len, uint64_t gen,
                             int *conflict)
{
    redisReply *r = NULL;
    uint8_t expect[8];
    put64(expect, gen);
    vg_status st = vg_redis_cmd(d->redis, &r, "EVAL %s 1 %s %b %b", cas_script, d->key,
                                expect, (size_t)(gen ? 8 : 0), blob, len);
    if (st == VG_OK && r->type != REDIS_REPLY_INTEGER)
        st = vg_errf(VG_ERR_REDIS, "compare-and-set: not an integer reply");
    if (st == VG_OK)
        *conflict = r->integer == 0;
    freeReplyObject(r);
    return st;
}

/* A new file in place of the old in one rename; the caller holds the lock. */
static vg_status file_write(struct lo_state *d, const uint8_t *blob, size_t len)
{
    char tmp[VG_URL_MAX + 32];
    snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", d->key, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return vg_errf(VG_ERR_IO, "%s: %s", tmp, strerror(errno));
    size_t put = 0;
    while (put < len) {
        ssize_t w = write(fd, blob + put, len - put);
        if (w <= 0)
            break;
        put += (size_t)w;
    }
    int ok = put == len && fsync(fd) == 0;
    ok = close(fd) == 0 && ok && rename(tmp, d->key) == 0;
    if (!ok) {
        vg_status st = vg_errf(VG_ERR_IO, "%s: %s", tmp, strerror(errno));
        unlink(tmp);
        return st;
    }
    return VG_OK;
}

static vg_status store_write(struct lo_state *d, const uint8_t *blob, size_t len, uint64_t gen,
                             int *conflict)
{
    *conflict = 0;
    vg_status st = d->redis && !d->s->model_file[0] ? redis_write(d, blob, len, gen, conflict)
                                                    : file_write(d, blob, len);
    return st == VG_OK ? VG_OK
                       : vg_errf(st, "local face model (%s): %s", d->where, vg_err_detail());
}

/* A file model's read-change-write runs under an flock of "<file>.lock";
 * Redis needs none (compare-and-set). -1: nothing to unlock. */
static vg_status store_lock(struct lo_state *d, int *fd)
{
    char path[VG_URL_MAX + 8];
    *fd = -1;
    if (d->redis && !d->s->model_file[0])
        return VG_OK;
    snprintf(path, sizeof(path), "%s.lock", d->key);
    if ((*fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644)) < 0)
        return vg_errf(VG_ERR_IO, "local face model: %s: %s", path, strerror(errno));
    if (flock(*fd, LOCK_EX) != 0) {
        close(*fd);
        *fd = -1;
        return vg_errf(VG_ERR_IO, "local face model: lock %s: %s", path, strerror(errno));
    }
    return VG_OK;
}

static void store_unlock(int fd)
{
    if (fd >= 0)
        close(fd);  /* releases the flock */
}

/* The stored generation without reading the model (0: none stored). */
static vg_status store_gen(struct lo_state *d, uint64_t *gen)
{
    uint8_t b[8] = {0};
    size_t n = 0;
    if (d->redis && !d->s->model_file[0]) {
        redisReply *r = NULL;
        vg_status st = vg_redis_cmd(d->redis, &r, "GETRANGE %s %d %d", d->key, GEN_OFFSET,
                                    GEN_OFFSET + 7);
        if (st == VG_OK && r->type == REDIS_REPLY_STRING && r->len == 8)
            memcpy(b, r->str, (n = 8));
        freeReplyObject(r);
        if (st != VG_OK)
            return st;
    } else {
        int fd = open(d->key, O_RDONLY | O_CLOEXEC);
        if (fd >= 0 && pread(fd, b, 8, GEN_OFFSET) == 8)
            n = 8;
        if (fd >= 0)
            close(fd);
    }
    *gen = n == 8 ? get64(b) : 0;
    return VG_OK;
}

/* ---- loading -------------------------------------------------------------------------- */

static void install(struct lo_state *d, struct model *m)
{
    pthread_rwlock_wrlock(&d->lock);
    struct model *old = d->model;
    d->model = m;
    pthread_rwlock_unlock(&d->lock);
    model_free(old);
    vg_gauge_set(d->samples, (int64_t)m->n_samples);
}

/* Read the stored model now; on failure the one in memory stays. The
 * caller holds d->check. */
static vg_status reload_now(struct lo_state *d)
{
    struct model *m = NULL;
    d->last_try_us = vg_mono_us();
    vg_status st = store_load(d, &m);
    if (st != VG_OK) {
        VG_ERROR("face.model_failed", NULL, "%s", vg_err_detail());
        pthread_rwlock_wrlock(&d->lock);
        d->load_st = st;
        snprintf(d->load_err, sizeof(d->load_err), "%s", vg_err_detail());
        pthread_rwlock_unlock(&d->lock);
        return st;
    }
    d->last_check_us = d->last_try_us;
    if (m->p.size != d->s->size || m->p.grid != d->s->grid)
        VG_WARN("face.model_params", NULL, "local face model (%s) was trained with size %d "
                "grid %d, not the configured %d and %d: it keeps its own (delete it and enrol "
                "again to change them)", d->where, m->p.size, m->p.grid, d->s->size,
                d->s->grid);
    vg_counter_inc(d->loads);
    VG_INFO("face.model_loaded", NULL, "local: %zu people, %zu faces, generation %" PRIu64
            " (%s)", m->n_people, m->n_samples, m->gen, d->where);
    install(d, m);
    return VG_OK;
}

/* Before a match: a model that failed to load is tried again (at most every
 * RETRY_US), and every check_interval_s the stored generation is compared
 * with ours. Whoever holds d->check does it; the others go on. */
static void refresh(struct lo_state *d)
{
    if (pthread_mutex_trylock(&d->check) != 0)
        return;
    int64_t now = vg_mono_us();
    pthread_rwlock_rdlock(&d->lock);
    uint64_t have = d->model ? d->model->gen : 0;
    int loaded = d->model != NULL;
    pthread_rwlock_unlock(&d->lock);
    uint64_t gen = 0;
    if (!loaded && now - d->last_try_us >= RETRY_US) {
        reload_now(d);
    } else if (loaded && d->s->check_interval_s > 0 &&
               now - d->last_check_us >= (int64_t)d->s->check_interval_s * 1000000) {
        d->last_check_us = now;
        if (store_gen(d, &gen) != VG_OK)
            VG_WARN("face.model_check_failed", NULL, "local: %s", vg_err_detail());
        else if (gen != have)
            reload_now(d);
    }
    pthread_mutex_unlock(&d->check);
}

/* ---- faces ------------------------------------------------------------------------------- */

/* The face inside a crop: see the top of this file. */
static struct vg_lbph_rect face_rect(int w, int h, int margin)
{
    int big = w > h ? w : h, small = w < h ? w : h;
    float side = (float)(big - 2 * margin);
    if (side < MIN_FACE_PX)
        side = (float)small;    /* no room for the margin: a tight crop */
    return (struct vg_lbph_rect){((float)w - side) / 2, ((float)h - side) / 2, side, side};
}

/* counts[dim of p] of one crop; VG_ERR_INVALID for a face too small. */
static vg_status crop_features(const struct lo_state *d, const struct vg_lbph_params *p,
                               const struct vg_face_image *img, uint16_t *counts)
{
    uint8_t *own = NULL;
    const uint8_t *grey = img->grey;
    int w = img->width, h = img->height;
    vg_status st = VG_OK;
    if (!grey && (!img->jpeg || img->jpeg_len == 0))
        return vg_errf(VG_ERR_INVALID, "local: no image (neither grey pixels nor a JPEG)");
    if (!grey && (st = vg_jpeg_decode_grey(NULL, img->jpeg, img->jpeg_len, CROP_MAX_PIXELS,
                                           &own, &w, &h)) != VG_OK)
        return vg_errf(st, "local: face crop: %s", vg_err_detail());
    grey = grey ? grey : own;
    struct vg_lbph_rect r = face_rect(w, h, d->margin);
    if (w <= 0 || h <= 0 || r.w < MIN_FACE_PX)
        st = vg_errf(VG_ERR_INVALID, "local: a %dx%d crop holds a face of about %.0f px; "
                     "at least %d px are needed", w, h, r.w, MIN_FACE_PX);
    else
        st = vg_lbph_features(p, grey, w, h, r, counts);
    free(own);
    return st;
}

/* ---- the ops --------------------------------------------------------------------------- */

static vg_status lo_match(void *state, const struct vg_face_image *img,
                          struct vg_face_match *out)
{
    struct lo_state *d = state;
    struct vg_face_match m = {0};
    uint16_t *counts = NULL;
    float *feat = NULL;
    vg_status st = VG_OK;
    if (!img || (!img->grey && (!img->jpeg || img->jpeg_len == 0)))
        return vg_errf(VG_ERR_INVALID, "local: no image (neither grey pixels nor a JPEG)");
    refresh(d);
    pthread_rwlock_rdlock(&d->lock);
    const struct model *md = d->model;
    if (!md) {      /* the last attempt's reason; the next comes within RETRY_US */
        st = vg_errf(d->load_st, "%s", d->load_err);
        goto out;
    }
    if (md->n_samples == 0)
        goto out;
    counts = malloc(md->dim * sizeof(*counts));
    feat = malloc(md->dim * sizeof(*feat));
    if (!counts || !feat) {
        st = vg_errf(VG_ERR_NOMEM, "local: no memory for a face");
        goto out;
    }
    if ((st = crop_features(d, &md->p, img, counts)) == VG_ERR_INVALID) {
        vg_counter_inc(d->too_small);   /* a face too small to tell: unknown */
        st = VG_OK;
        goto out;
    }
    if (st != VG_OK || vg_lbph_normalise(&md->p, counts, feat) != 0)
        goto out;
    float best = INFINITY;
    size_t bi = 0;
    for (size_t i = 0; i < md->n_samples; i++) {
        float dist = vg_lbph_chi2(&md->p, feat, md->feat + i * md->dim, best);
        if (dist < best)
            best = dist, bi = i;
    }
    m.similarity = (float)exp2(-(double)best / d->s->threshold);
    if (best <= d->s->threshold) {
        m.matched = 1;
        snprintf(m.person_id, sizeof(m.person_id), "%s", md->people[md->owner[bi]]);
        snprintf(m.face_id, sizeof(m.face_id), "lbph-%08" PRIx32, md->id[bi]);
    }
out:
    pthread_rwlock_unlock(&d->lock);
    free(counts);
    free(feat);
    if (st == VG_OK)
        *out = m;
    return st;
}

static vg_status check_person(const char *person)
{
    if (!person || !name_ok(person, strlen(person)))
        return vg_errf(VG_ERR_INVALID, "local: person name \"%.64s\" is not allowed: 1..%d "
                       "characters without control characters, and not \"%s\"",
                       person ? person : "", VG_FACE_ID_MAX - 1, UNKNOWN);
    return VG_OK;
}

/* The features of imgs as a model of their own (params p). */
static vg_status features_model(const struct lo_state *d, struct vg_lbph_params p,
                                const struct vg_face_image *imgs, size_t n, struct model **out)
{
    struct model *m = model_new(p, 1, n);
    if (!m)
        return vg_errf(VG_ERR_NOMEM, "local: no memory for %zu faces", n);
    for (size_t i = 0; i < n; i++) {
        uint16_t *c = m->counts + i * m->dim;
        vg_status st = crop_features(d, &p, &imgs[i], c);
        if (st == VG_OK && vg_lbph_normalise(&p, c, m->feat + i * m->dim) != 0)
            st = vg_errf(VG_ERR_INVALID, "local: image %zu gave no histograms", i + 1);
        if (st != VG_OK) {
            model_free(m);
            return vg_errf(st, "image %zu of %zu: %s", i + 1, n, vg_err_detail());
        }
        m->id[i] = counts_id(c, m->dim);
        m->n_samples++;
    }
    *out = m;
    return VG_OK;
}

static vg_status check_bounds(const struct lo_state *d, const struct model *m, size_t *bytes)
{
    *bytes = model_bytes(m);
    if (m->n_people > (size_t)d->s->max_people)
        return vg_errf(VG_ERR_TOO_LARGE, "local: %zu people would be more than max_people %d",
                       m->n_people, d->s->max_people);
    if (m->n_samples > (size_t)d->s->max_samples)
        return vg_errf(VG_ERR_TOO_LARGE, "local: %zu faces would be more than max_samples %d",
                       m->n_samples, d->s->max_samples);
    if (*bytes > max_bytes(d->s))
        return vg_errf(VG_ERR_TOO_LARGE, "local: a model of %zu bytes would be more than "
                       "max_model_mb %d", *bytes, d->s->max_model_mb);
    return VG_OK;
}

/* One read-change-write of the stored model: person's faces become imgs
 * (n 0: the person is removed). *conflict when another writer came first. */
static vg_status change_once(struct lo_state *d, const char *person,
                             const struct vg_face_image *imgs, size_t n, int *conflict)
{
    struct model *cur = NULL, *add = NULL, *next = NULL;
    uint8_t *blob = NULL;
    size_t len = 0;
    int lock = -1;
    vg_status st = store_lock(d, &lock);
    if (st == VG_OK)
        st = store_load(d, &cur);
    if (st == VG_OK && n == 0 && person_index(cur, person) < 0)
        st = vg_errf(VG_ERR_NOT_FOUND, "local: nobody called \"%s\" is enrolled", person);
    if (st == VG_OK && n > 0)
        st = features_model(d, cur->p, imgs, n, &add);
    if (st == VG_OK && !(next = model_replace(cur, person, add)))
        st = vg_errf(VG_ERR_NOMEM, "local: no memory for the model");
    if (st == VG_OK)
        st = check_bounds(d, next, &len);
    if (st == VG_OK && !(blob = model_serialise(next, cur->gen + 1, &len)))
        st = vg_errf(VG_ERR_NOMEM, "local: no memory for the model");
    if (st == VG_OK)
        st = store_write(d, blob, len, cur->gen, conflict);
    store_unlock(lock);
    if (st == VG_OK && !*conflict) {
        next->gen = cur->gen + 1;
        install(d, next);
        next = NULL;
    }
    model_free(cur);
    model_free(add);
    model_free(next);
    free(blob);
    return st;
}

/* A per-thread pseudo-random number for retry jitter. */
static unsigned jitter(void)
{
    static _Thread_local unsigned seed;
    if (!seed)
        seed = (unsigned)vg_mono_us() ^ ((unsigned)getpid() << 16) ^ (unsigned)(uintptr_t)&seed;
    return (unsigned)rand_r(&seed);
}

static vg_status change(struct lo_state *d, const char *person, const struct vg_face_image *imgs,
                        size_t n)
{
    for (int attempt = 0; attempt < CAS_ATTEMPTS; attempt++) {
        int conflict = 0;
        vg_status st = change_once(d, person, imgs, n, &conflict);
        if (st != VG_OK || !conflict)
            return st;
        /* Jittered and growing: two writers that collided must not retry
         * in lock-step and collide again. */
        int64_t ceiling_us = 1000LL << (attempt < 7 ? attempt : 7);
        vg_sleep_us(1000 + (int64_t)(jitter() % (unsigned)ceiling_us));
    }
    return vg_errf(VG_ERR_UNAVAILABLE, "local face model (%s) changed under us %d times in a "
                   "row: try again", d->where, CAS_ATTEMPTS);
}

static vg_status lo_enrol(void *state, const char *person, const struct vg_face_image *imgs,
                          size_t n)
{
    vg_status st = check_person(person);
    if (st == VG_OK && (n == 0 || n > VG_FACE_MAX_IMAGES || !imgs))
        st = vg_errf(VG_ERR_INVALID, "local: %zu images; enrol from 1..%d", n,
                     VG_FACE_MAX_IMAGES);
    return st == VG_OK ? change(state, person, imgs, n) : st;
}

static vg_status lo_remove(void *state, const char *person)
{
    vg_status st = check_person(person);
    return st == VG_OK ? change(state, person, NULL, 0) : st;
}

static vg_status lo_reload(void *state)
{
    struct lo_state *d = state;
    pthread_mutex_lock(&d->check);
    vg_status st = reload_now(d);
    pthread_mutex_unlock(&d->check);
    return st;
}

static vg_status lo_list(void *state, struct vg_face_entry **out, size_t *n)
{
    struct lo_state *d = state;
    struct vg_face_entry *e = NULL;
    pthread_rwlock_rdlock(&d->lock);
    int loaded = d->model != NULL;
    pthread_rwlock_unlock(&d->lock);
    vg_status st = loaded ? VG_OK : lo_reload(d);
    if (st != VG_OK)
        return st;
    pthread_rwlock_rdlock(&d->lock);
    const struct model *m = d->model;
    if (!(e = calloc(m->n_samples ? m->n_samples : 1, sizeof(*e))))
        st = vg_errf(VG_ERR_NOMEM, "local: no memory for the list");
    for (size_t i = 0; st == VG_OK && i < m->n_samples; i++) {
        snprintf(e[i].person_id, sizeof(e[i].person_id), "%s", m->people[m->owner[i]]);
        snprintf(e[i].face_id, sizeof(e[i].face_id), "lbph-%08" PRIx32, m->id[i]);
    }
    size_t count = m->n_samples;
    pthread_rwlock_unlock(&d->lock);
    if (st != VG_OK)
        return st;
    *out = e;
    *n = count;
    return VG_OK;
}

static vg_status lo_check(const void *settings, const char *where)
{
    const struct lo_settings *s = settings;
    struct vg_lbph_params p = {s->size, s->grid};
    double full = HEADER_BYTES + (double)s->max_people * VG_FACE_ID_MAX +
                  (double)s->max_samples * (4 + 2.0 * (double)vg_lbph_dim(&p));
    if (s->model_file[0] && s->model_file[0] != '/')
        return vg_errf(VG_ERR_CONFIG, "%s.model_file \"%.64s\" must be an absolute path",
                       where, s->model_file);
    if (full > (double)max_bytes(s))
        return vg_errf(VG_ERR_CONFIG, "%s: max_people %d and max_samples %d of size %d grid "
                       "%d need up to %.0f MiB, more than max_model_mb %d: raise it or lower "
                       "them", where, s->max_people, s->max_samples, s->size, s->grid,
                       ceil(full / (1 << 20)), s->max_model_mb);
    return VG_OK;
}

static void lo_cleanup(void *state)
{
    struct lo_state *d = state;
    if (!d)
        return;
    model_free(d->model);
    pthread_rwlock_destroy(&d->lock);
    pthread_mutex_destroy(&d->check);
    free(d);
}

static vg_status lo_init(void **state, const void *settings, const struct vg_face_env *env)
{
    const struct lo_settings *s = settings;
    if (!env->redis && !s->model_file[0])
        return vg_errf(VG_ERR_CONFIG, "local keeps its model in Redis (%s:faces:local:model) "
                       "and there is no Redis connection: set redis_url (VIGIL_REDIS_URL) or "
                       "matchers.local.model_file", env->cfg->prefix);
    struct lo_state *d = calloc(1, sizeof(*d));
    if (!d)
        return vg_errf(VG_ERR_NOMEM, "no memory for the local matcher");
    if (pthread_rwlock_init(&d->lock, NULL) != 0 || pthread_mutex_init(&d->check, NULL) != 0) {
        free(d);
        return vg_errf(VG_ERR_NOMEM, "local matcher: no locks");
    }
    d->s = s;
    d->redis = s->model_file[0] ? NULL : env->redis;
    if (d->redis) {
        snprintf(d->key, sizeof(d->key), "%s:faces:local:model", env->cfg->prefix);
        snprintf(d->where, sizeof(d->where), "redis key %s", d->key);
    } else {
        snprintf(d->key, sizeof(d->key), "%s", s->model_file);
        snprintf(d->where, sizeof(d->where), "file %s", d->key);
    }
    d->margin = s->margin_px >= 0 ? s->margin_px : env->cfg->dispatch.face_margin_px;
    d->corrupt = vg_counter_get("vigil_face_local_model_corrupt_total",
                                "Stored local face models refused as damaged or too large");
    d->loads = vg_counter_get("vigil_face_local_model_loads_total",
                              "Local face models loaded");
    d->too_small = vg_counter_get("vigil_face_local_too_small_total",
                                  "Face crops too small for the local matcher (unknown)");
    d->samples = vg_gauge_get("vigil_face_local_samples", "Faces in the local model in use");
    lo_reload(d);   /* a failure is logged and tried again: see refresh() */
    *state = d;
    return VG_OK;
}

const struct vg_face_matcher_ops vg_face_local = {
    .name = "local",
    .caps = VG_FACE_CAP_GREY,
    .opts = lo_opts,
    .settings_size = sizeof(struct lo_settings),
    .check = lo_check,
    .init = lo_init,
    .match = lo_match,
    .enrol = lo_enrol,
    .list = lo_list,
    .remove = lo_remove,
    .reload = lo_reload,
    .cleanup = lo_cleanup,
};
