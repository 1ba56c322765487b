#include "slots.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct slot {
    uint8_t *data;
    size_t len;
    int64_t received_us;
    int busy;               /* a worker is analysing this camera */
};

struct disp_slots {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int n, next, closed;
    struct slot *slot;
};

vg_status disp_slots_create(struct disp_slots **out, int n_cameras)
{
    struct disp_slots *s = calloc(1, sizeof(*s));
    pthread_condattr_t attr;
    if (!s || !(s->slot = calloc((size_t)(n_cameras > 0 ? n_cameras : 1), sizeof(*s->slot)))) {
        free(s);
        return vg_errf(VG_ERR_NOMEM, "slots: out of memory");
    }
    s->n = n_cameras;
    pthread_mutex_init(&s->lock, NULL);
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cond, &attr);
    pthread_condattr_destroy(&attr);
    *out = s;
    return VG_OK;
}

void disp_slots_destroy(struct disp_slots *s)
{
    if (!s)
        return;
    for (int i = 0; i < s->n; i++)
        free(s->slot[i].data);
    pthread_cond_destroy(&s->cond);
    pthread_mutex_destroy(&s->lock);
    free(s->slot);
    free(s);
}

int disp_slots_put(struct disp_slots *s, int camera, const void *data, size_t len,
                   int64_t received_us)
{
    uint8_t *copy = malloc(len ? len : 1);
    uint8_t *old;
    if (!copy)
        return 1;   /* dropped: counted by the caller like a superseded frame */
    memcpy(copy, data, len);
    pthread_mutex_lock(&s->lock);
    struct slot *sl = &s->slot[camera];
    old = sl->data;
    sl->data = copy;
    sl->len = len;
    sl->received_us = received_us;
    pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
    free(old);
    return old != NULL;
}

static int find_ready(struct disp_slots *s)
{
    for (int k = 0; k < s->n; k++) {
        int i = (s->next + k) % s->n;
        if (s->slot[i].data && !s->slot[i].busy) {
            s->next = (i + 1) % s->n;
            return i;
        }
    }
    return -1;
}

vg_status disp_slots_take(struct disp_slots *s, int timeout_ms, struct disp_frame *f)
{
    struct timespec until;
    vg_status st = VG_ERR_TIMEOUT;
    int i;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += timeout_ms / 1000;
    until.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&s->lock);
    while (!s->closed && (i = find_ready(s)) < 0)
        if (pthread_cond_timedwait(&s->cond, &s->lock, &until) == ETIMEDOUT)
            goto out;
    if (s->closed) {
        st = VG_ERR_STOPPED;
        goto out;
    }
    struct slot *sl = &s->slot[i];
    f->camera = i;
    f->data = sl->data;
    f->len = sl->len;
    f->received_us = sl->received_us;
    sl->data = NULL;
    sl->busy = 1;
    st = VG_OK;
out:
    pthread_mutex_unlock(&s->lock);
    return st;
}

void disp_slots_done(struct disp_slots *s, int camera)
{
    pthread_mutex_lock(&s->lock);
    s->slot[camera].busy = 0;
    if (s->slot[camera].data)   /* a newer frame came while we worked */
        pthread_cond_signal(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

void disp_slots_close(struct disp_slots *s)
{
    pthread_mutex_lock(&s->lock);
    s->closed = 1;
    pthread_cond_broadcast(&s->cond);
    pthread_mutex_unlock(&s->lock);
}

int disp_slots_pending(struct disp_slots *s)
{
    int n = 0;
    pthread_mutex_lock(&s->lock);
    for (int i = 0; i < s->n; i++)
        n += s->slot[i].data != NULL;
    pthread_mutex_unlock(&s->lock);
    return n;
}
