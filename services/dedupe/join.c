#include "join.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define KEY_MAX (VG_ID_MAX + DD_JOIN_TRACE_MAX + 2)

/* One frame: its held sighting (if the detection came and waits) and what
 * is known of its identities. */
struct entry {
    uint64_t hash;
    void *held;
    uint32_t expected;      /* faces the detection announced; 0: no detection yet */
    uint32_t answered;      /* identities settled */
    uint32_t claims;        /* identities being decided: the entry does not expire */
    int resolved;           /* an identity alert stands for the frame's person label */
    int64_t deadline;       /* monotonic µs */
    char key[KEY_MAX];
};

struct dd_join {
    pthread_mutex_t lock;
    int64_t wait_us;
    size_t max, n;
    struct entry *e;        /* n used, packed (removal moves the last one in) */
    void (*free_held)(void *);
    int closed;
    uint64_t full;
};

vg_status dd_join_create(struct dd_join **out, int max_entries, int64_t wait_us,
                         void (*free_held)(void *))
{
    if (max_entries <= 0 || wait_us < 0)
        return vg_errf(VG_ERR_INVALID, "dedupe join: %d entries, wait %lld us", max_entries,
                       (long long)wait_us);
    struct dd_join *j = calloc(1, sizeof(*j));
    if (!j)
        return VG_ERR_NOMEM;
    j->e = calloc((size_t)max_entries, sizeof(*j->e));
    if (!j->e) {
        free(j);
        return VG_ERR_NOMEM;
    }
    pthread_mutex_init(&j->lock, NULL);
    j->wait_us = wait_us;
    j->max = (size_t)max_entries;
    j->free_held = free_held;
    *out = j;
    return VG_OK;
}

void dd_join_destroy(struct dd_join *j)
{
    if (!j)
        return;
    for (size_t i = 0; i < j->n; i++)
        if (j->e[i].held && j->free_held)
            j->free_held(j->e[i].held);
    pthread_mutex_destroy(&j->lock);
    free(j->e);
    free(j);
}

/* "<camera>\n<trace>" and its hash; 0 when the frame cannot be joined. */
static int make_key(const char *camera, const char *trace, char key[KEY_MAX], uint64_t *hash)
{
    if (!camera || !trace || !trace[0] || strlen(trace) > DD_JOIN_TRACE_MAX ||
        strlen(camera) >= VG_ID_MAX)
        return 0;
    snprintf(key, KEY_MAX, "%s\n%s", camera, trace);
    uint64_t h = 1469598103934665603ULL;
    for (const char *s = key; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    *hash = h;
    return 1;
}

static struct entry *find(struct dd_join *j, const char *key, uint64_t hash)
{
    for (size_t i = 0; i < j->n; i++)
        if (j->e[i].hash == hash && !strcmp(j->e[i].key, key))
            return &j->e[i];
    return NULL;
}

static void drop(struct dd_join *j, struct entry *e)
{
    *e = j->e[--j->n];
}

/* A new entry, after forgetting expired frames that hold nothing; NULL
 * (counted) when the table is still full. */
static struct entry *insert(struct dd_join *j, const char *key, uint64_t hash, int64_t now)
{
    if (j->n == j->max)
        for (size_t i = 0; i < j->n;) {
            struct entry *e = &j->e[i];
            if (!e->held && !e->claims && now >= e->deadline)
                drop(j, e);
            else
                i++;
        }
    if (j->n == j->max) {
        j->full++;
        return NULL;
    }
    struct entry *e = &j->e[j->n++];
    memset(e, 0, sizeof(*e));
    e->hash = hash;
    e->deadline = now + j->wait_us;
    memcpy(e->key, key, strlen(key) + 1);
    return e;
}

/* The held sighting when nothing more can stand for it (every face
 * answered without an alert, or the wait is over), and the entry when it
 * has nothing left to do. Called with the lock held. */
static void *release_if_done(struct dd_join *j, struct entry *e, int64_t now)
{
    void *h = NULL;
    if (e->claims)
        return NULL;
    int all = e->expected && e->answered >= e->expected;
    if (e->held && !e->resolved && (all || now >= e->deadline)) {
        h = e->held;
        e->held = NULL;
    }
    if (!e->held && all)
        drop(j, e);
    return h;
}

enum dd_join_verdict dd_join_detection(struct dd_join *j, const char *camera, const char *trace,
                                       uint32_t faces, void **held, int64_t now)
{
    char key[KEY_MAX];
    uint64_t hash;
    enum dd_join_verdict v = DD_JOIN_HELD;
    if (!faces || !make_key(camera, trace, key, &hash))
        return DD_JOIN_ALONE;
    pthread_mutex_lock(&j->lock);
    struct entry *e = j->closed ? NULL : find(j, key, hash);
    if (j->closed) {
        v = DD_JOIN_FULL;
    } else if (e && e->resolved) {
        v = DD_JOIN_COVER;
    } else if (e && (e->held || e->expected)) {
        v = DD_JOIN_ALONE;      /* a second detection of one frame: not ours to join */
    } else if (e && !e->claims && e->answered >= faces) {
        drop(j, e);             /* every face answered already, none stood */
        v = DD_JOIN_ALONE;
    } else if (!e && !(e = insert(j, key, hash, now))) {
        v = DD_JOIN_FULL;
    } else {
        e->held = *held;
        *held = NULL;
        e->expected = faces;
        e->deadline = now + j->wait_us;
    }
    pthread_mutex_unlock(&j->lock);
    return v;
}

int dd_join_claim(struct dd_join *j, const char *camera, const char *trace, int64_t now)
{
    char key[KEY_MAX];
    uint64_t hash;
    if (!make_key(camera, trace, key, &hash))
        return 0;
    pthread_mutex_lock(&j->lock);
    struct entry *e = j->closed ? NULL : find(j, key, hash);
    if (!e && !j->closed)
        e = insert(j, key, hash, now);
    if (e)
        e->claims++;
    pthread_mutex_unlock(&j->lock);
    return e != NULL;
}

void *dd_join_settle(struct dd_join *j, const char *camera, const char *trace, int stood,
                     int64_t now, enum dd_join_verdict *v)
{
    char key[KEY_MAX];
    uint64_t hash;
    void *h = NULL;
    *v = DD_JOIN_ALONE;
    if (!make_key(camera, trace, key, &hash))
        return NULL;
    pthread_mutex_lock(&j->lock);
    struct entry *e = find(j, key, hash);     /* gone only if closed meanwhile */
    if (e) {
        e->claims--;
        e->answered++;
        if (stood) {
            e->resolved = 1;
            h = e->held;
            e->held = NULL;
            *v = DD_JOIN_COVER;
            if (!e->claims && e->expected && e->answered >= e->expected)
                drop(j, e);
        } else {
            h = release_if_done(j, e, now);
        }
    }
    pthread_mutex_unlock(&j->lock);
    return h;
}

void *dd_join_answer(struct dd_join *j, const char *camera, const char *trace, int64_t now)
{
    enum dd_join_verdict v;
    if (!dd_join_claim(j, camera, trace, now))
        return NULL;
    return dd_join_settle(j, camera, trace, 0, now, &v);
}

/* Take held sightings from entries that pass (all: every entry; else those
 * whose wait is over and no identity is being decided). */
static size_t take(struct dd_join *j, int64_t now, int all, void **out, size_t max)
{
    size_t k = 0;
    for (size_t i = 0; i < j->n;) {
        struct entry *e = &j->e[i];
        if (!all && (e->claims || now < e->deadline)) {
            i++;
            continue;
        }
        if (e->held) {
            if (k == max)
                break;
            out[k++] = e->held;
        }
        drop(j, e);
    }
    return k;
}

size_t dd_join_expire(struct dd_join *j, int64_t now, void **out, size_t max)
{
    pthread_mutex_lock(&j->lock);
    size_t k = j->n ? take(j, now, 0, out, max) : 0;
    pthread_mutex_unlock(&j->lock);
    return k;
}

size_t dd_join_close(struct dd_join *j, void **out, size_t max)
{
    pthread_mutex_lock(&j->lock);
    j->closed = 1;
    size_t k = take(j, 0, 1, out, max);
    pthread_mutex_unlock(&j->lock);
    return k;
}

void dd_join_get_stats(struct dd_join *j, struct dd_join_stats *out)
{
    pthread_mutex_lock(&j->lock);
    out->full = j->full;
    out->entries = j->n;
    out->held = 0;
    for (size_t i = 0; i < j->n; i++)
        out->held += j->e[i].held != NULL;
    pthread_mutex_unlock(&j->lock);
}
