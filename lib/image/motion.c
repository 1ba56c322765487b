#include "image/motion.h"

#include <stdlib.h>
#include <string.h>

#define CELL_SHIFT 3
#define CELL (1 << CELL_SHIFT)      /* cells are CELL x CELL pixels */
/* A cell counts as changed when at least this many of its 64 pixels differ
 * from the background: isolated sensor-noise pixels and faint trails never
 * form a box. */
#define CELL_MIN_CHANGED 8
/* Changed cells up to this many cells apart (Chebyshev distance) join one
 * box, bridging the gaps that a person's background-coloured clothes leave
 * in the mask (2 cells = one empty cell between them). */
#define MERGE_RADIUS 2
/* A box whose pixels also changed since the previous frame is something
 * moving: its pixels are learnt this many times slower, so a walking person
 * (even in a plain coat, whose inside looks the same frame to frame) does not
 * bleed into the background and leave a trail joining them to their
 * neighbours. A box that stands still (a ghost of someone who was in the
 * first frame, a parked car) is learnt at the normal rate and fades. */
#define MOVING_SLOWDOWN 16

/* mask bits */
#define M_CHANGED 1                 /* differs from the background */
#define M_MOVED 2                   /* differs from the previous frame */

struct cell {
    uint16_t count;                 /* changed pixels */
    uint16_t moved;                 /* pixels that differ from the previous frame */
    uint16_t x0, y0, x1, y1;        /* bounding box of the changed pixels, inclusive */
};

struct comp {
    int x0, y0, x1, y1;
    int count;
    int moving;
    long area;                      /* bounding box area in pixels */
};

struct vg_motion {
    int w, h, gw, gh;
    int threshold;
    int alpha_q;                    /* learning rate in 1/256 */
    int alpha_moving_q;             /* the same inside moving boxes */
    double min_area;
    double max_area;                /* changed share of the watched pixels that is global */
    long n_watched;                 /* pixels outside the ignore mask */
    int have_bg;
    uint16_t *bg;                   /* background, 8.8 fixed point, w x h */
    uint8_t *prev;                  /* previous frame, w x h */
    uint8_t *watch;                 /* 1 where change counts, 0 under the ignore mask; w x h */
    uint8_t *mask;                  /* M_* bits, gw*CELL x h; padding stays 0 */
    struct cell *cells;             /* gw x gh */
    uint8_t *pending;               /* changed cell not yet in a component */
    int *comp_of;                   /* component of each cell, -1 for none */
    uint16_t *cell_alpha;           /* learning rate for changed pixels, per cell */
    int *stack;                     /* flood-fill work list, gw*gh */
    struct comp *comps;             /* gw*gh (worst case: every cell its own box) */
};

void vg_motion_destroy(struct vg_motion *m)
{
    if (!m)
        return;
    free(m->bg);
    free(m->prev);
    free(m->watch);
    free(m->mask);
    free(m->cells);
    free(m->pending);
    free(m->comp_of);
    free(m->cell_alpha);
    free(m->stack);
    free(m->comps);
    free(m);
}

static vg_status check_args(int width, int height, int threshold, double min_area,
                            double alpha)
{
    if (width < VG_MOTION_MIN_DIM || width > VG_MOTION_MAX_DIM || height < VG_MOTION_MIN_DIM ||
        height > VG_MOTION_MAX_DIM)
        return vg_errf(VG_ERR_INVALID, "motion: size %dx%d outside %d..%d", width, height,
                       VG_MOTION_MIN_DIM, VG_MOTION_MAX_DIM);
    if (threshold < 1 || threshold > 255)
        return vg_errf(VG_ERR_INVALID, "motion: threshold %d outside 1..255", threshold);
    if (!(min_area >= 0.0 && min_area <= 1.0))
        return vg_errf(VG_ERR_INVALID, "motion: min_area %g outside 0..1", min_area);
    if (!(alpha >= 0.0 && alpha <= 1.0))
        return vg_errf(VG_ERR_INVALID, "motion: alpha %g outside 0..1", alpha);
    return VG_OK;
}

static int allocate(struct vg_motion *m)
{
    size_t npix = (size_t)m->w * (size_t)m->h, ncells = (size_t)m->gw * (size_t)m->gh;
    m->bg = malloc(npix * sizeof(*m->bg));
    m->prev = malloc(npix);
    m->watch = malloc(npix);
    m->mask = calloc((size_t)m->gw * CELL * (size_t)m->h, 1);
    m->cells = malloc(ncells * sizeof(*m->cells));
    m->pending = malloc(ncells);
    m->comp_of = malloc(ncells * sizeof(*m->comp_of));
    m->cell_alpha = malloc(ncells * sizeof(*m->cell_alpha));
    m->stack = malloc(ncells * sizeof(*m->stack));
    m->comps = malloc(ncells * sizeof(*m->comps));
    return m->bg && m->prev && m->watch && m->mask && m->cells && m->pending && m->comp_of &&
           m->cell_alpha && m->stack && m->comps;
}

vg_status vg_motion_create(struct vg_motion **out, int width, int height, int threshold,
                           double min_area, double alpha)
{
    struct vg_motion *m = NULL;
    vg_status st = check_args(width, height, threshold, min_area, alpha);
    if (st != VG_OK)
        goto out;
    st = vg_errf(VG_ERR_NOMEM, "motion: out of memory for %dx%d", width, height);
    m = calloc(1, sizeof(*m));
    if (!m)
        goto out;
    m->w = width;
    m->h = height;
    m->gw = (width + CELL - 1) / CELL;
    m->gh = (height + CELL - 1) / CELL;
    m->threshold = threshold;
    m->alpha_q = (int)(alpha * 256.0 + 0.5);
    m->alpha_moving_q = (m->alpha_q + MOVING_SLOWDOWN - 1) / MOVING_SLOWDOWN;
    m->min_area = min_area;
    m->max_area = 1.0;
    if (!allocate(m))
        goto out;
    vg_motion_set_mask(m, NULL, 0);
    *out = m;
    m = NULL;
    st = VG_OK;
out:
    vg_motion_destroy(m);
    return st;
}

void vg_motion_reset(struct vg_motion *m)
{
    if (m)
        m->have_bg = 0;
}

vg_status vg_motion_set_mask(struct vg_motion *m, const uint8_t *mask, int stride)
{
    if (!m || (mask && stride < m->w))
        return vg_errf(VG_ERR_INVALID, "motion mask: bad arguments");
    long n = 0;
    for (int y = 0; y < m->h; y++) {
        uint8_t *wt = m->watch + (size_t)y * (size_t)m->w;
        const uint8_t *row = mask ? mask + (size_t)y * (size_t)stride : NULL;
        for (int x = 0; x < m->w; x++) {
            wt[x] = (uint8_t)(!row || !row[x]);
            n += wt[x];
        }
    }
    m->n_watched = n;
    return VG_OK;
}

vg_status vg_motion_set_max_area(struct vg_motion *m, double max_area)
{
    if (!m || !(max_area > 0.0 && max_area <= 1.0))
        return vg_errf(VG_ERR_INVALID, "motion: max_area %g outside (0, 1]", max_area);
    m->max_area = max_area;
    return VG_OK;
}

static void init_background(struct vg_motion *m, const uint8_t *grey, int stride)
{
    for (int y = 0; y < m->h; y++) {
        const uint8_t *row = grey + (size_t)y * (size_t)stride;
        uint16_t *b = m->bg + (size_t)y * (size_t)m->w;
        for (int x = 0; x < m->w; x++)
            b[x] = (uint16_t)(row[x] << 8);
        memcpy(m->prev + (size_t)y * (size_t)m->w, row, (size_t)m->w);
    }
    m->have_bg = 1;
}

/* Compare with the background and the previous frame into the mask, and
 * keep this frame as the next one's previous. Branch-free so the compiler
 * can vectorise it. Returns the number of changed pixels. */
static long diff(struct vg_motion *m, const uint8_t *grey, int stride)
{
    const int thr = m->threshold, mstride = m->gw * CELL;
    long changed = 0;
    for (int y = 0; y < m->h; y++) {
        const uint8_t *row = grey + (size_t)y * (size_t)stride;
        const uint16_t *b = m->bg + (size_t)y * (size_t)m->w;
        uint8_t *pv = m->prev + (size_t)y * (size_t)m->w;
        const uint8_t *wt = m->watch + (size_t)y * (size_t)m->w;
        uint8_t *mk = m->mask + (size_t)y * (size_t)mstride;
        int n = 0;
        for (int x = 0; x < m->w; x++) {
            int p = row[x], d = p - (b[x] >> 8), dp = p - pv[x], keep = wt[x];
            /* A masked pixel never changes: it is neither in a box nor in
             * the score, and is learnt at the normal rate. */
            int hit = ((d > thr) | (d < -thr)) & keep;
            int moved = ((dp > thr) | (dp < -thr)) & keep;
            mk[x] = (uint8_t)(hit | (moved << 1));
            pv[x] = (uint8_t)p;
            n += hit;
        }
        changed += n;
    }
    return changed;
}

/* Blend the frame into the background: changed pixels at their cell's
 * rate, everything else at the normal rate. uniform: no cell rates (no
 * pixel changed). */
static void learn(struct vg_motion *m, const uint8_t *grey, int stride, int uniform)
{
    const int a = m->alpha_q, mstride = m->gw * CELL;
    for (int y = 0; y < m->h; y++) {
        const uint8_t *row = grey + (size_t)y * (size_t)stride;
        const uint8_t *mk = m->mask + (size_t)y * (size_t)mstride;
        const uint16_t *ca = m->cell_alpha + (size_t)(y >> CELL_SHIFT) * (size_t)m->gw;
        uint16_t *b = m->bg + (size_t)y * (size_t)m->w;
        for (int x = 0; x < m->w; x++) {
            int v = b[x];
            int ae = (!uniform && (mk[x] & M_CHANGED)) ? ca[x >> CELL_SHIFT] : a;
            /* Division truncates toward zero: the background approaches the
             * frame without overshooting it. */
            b[x] = (uint16_t)(v + (((row[x] << 8) - v) * ae) / 256);
        }
    }
}

static void add_pixel(struct cell *c, int x, int y)
{
    if (c->count == 0) {
        c->x0 = c->x1 = (uint16_t)x;
        c->y0 = c->y1 = (uint16_t)y;
    } else {
        if (x < c->x0) c->x0 = (uint16_t)x;
        if (x > c->x1) c->x1 = (uint16_t)x;
        if (y > c->y1) c->y1 = (uint16_t)y;   /* rows arrive in order: y0 is set first */
    }
    c->count++;
}

/* Per-cell counts and bounding boxes. The mask is mostly zero, so eight
 * pixels are tested at once and empty runs skipped. */
static void fill_cells(struct vg_motion *m)
{
    const int mstride = m->gw * CELL;
    memset(m->cells, 0, (size_t)m->gw * (size_t)m->gh * sizeof(*m->cells));
    for (int y = 0; y < m->h; y++) {
        const uint8_t *mk = m->mask + (size_t)y * (size_t)mstride;
        struct cell *crow = m->cells + (size_t)(y >> CELL_SHIFT) * (size_t)m->gw;
        for (int cx = 0; cx < m->gw; cx++) {
            uint64_t word;
            memcpy(&word, mk + cx * CELL, sizeof(word));
            if (!word)
                continue;
            for (int i = 0; i < CELL; i++) {
                int v = mk[cx * CELL + i];
                if (v & M_CHANGED)
                    add_pixel(&crow[cx], cx * CELL + i, y);
                crow[cx].moved += (uint16_t)(v >> 1);
            }
        }
    }
}

static void comp_add_cell(struct comp *k, const struct cell *c)
{
    if (k->count == 0) {
        k->x0 = c->x0; k->y0 = c->y0; k->x1 = c->x1; k->y1 = c->y1;
    } else {
        if (c->x0 < k->x0) k->x0 = c->x0;
        if (c->y0 < k->y0) k->y0 = c->y0;
        if (c->x1 > k->x1) k->x1 = c->x1;
        if (c->y1 > k->y1) k->y1 = c->y1;
    }
    k->count += c->count;
    k->moving |= c->moved >= CELL_MIN_CHANGED;
}

/* Flood-fill the changed cells reachable from seed within MERGE_RADIUS. */
static void grow(struct vg_motion *m, int seed, int label)
{
    struct comp *k = &m->comps[label];
    int top = 0;
    memset(k, 0, sizeof(*k));
    m->pending[seed] = 0;
    m->stack[top++] = seed;
    while (top > 0) {
        int i = m->stack[--top], cx = i % m->gw, cy = i / m->gw;
        comp_add_cell(k, &m->cells[i]);
        m->comp_of[i] = label;
        for (int ny = cy - MERGE_RADIUS; ny <= cy + MERGE_RADIUS; ny++) {
            if (ny < 0 || ny >= m->gh)
                continue;
            for (int nx = cx - MERGE_RADIUS; nx <= cx + MERGE_RADIUS; nx++) {
                int j = ny * m->gw + nx;
                if (nx < 0 || nx >= m->gw || !m->pending[j])
                    continue;
                m->pending[j] = 0;
                m->stack[top++] = j;
            }
        }
    }
    k->area = (long)(k->x1 - k->x0 + 1) * (long)(k->y1 - k->y0 + 1);
}

/* Group changed cells into components and give every cell its learning
 * rate; returns the number of components. */
static int find_components(struct vg_motion *m)
{
    const int ncells = m->gw * m->gh;
    int n = 0;
    for (int i = 0; i < ncells; i++) {
        m->pending[i] = m->cells[i].count >= CELL_MIN_CHANGED;
        m->comp_of[i] = -1;
    }
    for (int i = 0; i < ncells; i++)
        if (m->pending[i])
            grow(m, i, n++);
    for (int i = 0; i < ncells; i++) {
        int k = m->comp_of[i];
        m->cell_alpha[i] = (uint16_t)(k >= 0 && m->comps[k].moving ? m->alpha_moving_q
                                                                   : m->alpha_q);
    }
    return n;
}

static int by_area_desc(const void *pa, const void *pb)
{
    const struct comp *a = pa, *b = pb;
    return (a->area < b->area) - (a->area > b->area);
}

static void emit_boxes(struct vg_motion *m, int ncomps, struct vg_motion_result *res)
{
    const double total = (double)m->w * (double)m->h;
    qsort(m->comps, (size_t)ncomps, sizeof(*m->comps), by_area_desc);
    for (int i = 0; i < ncomps && res->n_boxes < VG_MOTION_MAX_BOXES; i++) {
        const struct comp *k = &m->comps[i];
        if ((double)k->area / total < m->min_area)
            break;              /* sorted: every later box is smaller still */
        struct vg_motion_box *b = &res->boxes[res->n_boxes++];
        b->x = (float)k->x0 / (float)m->w;
        b->y = (float)k->y0 / (float)m->h;
        b->w = (float)(k->x1 - k->x0 + 1) / (float)m->w;
        b->h = (float)(k->y1 - k->y0 + 1) / (float)m->h;
        b->fill = (float)k->count / (float)k->area;
    }
}

vg_status vg_motion_feed(struct vg_motion *m, const uint8_t *grey, int stride,
                         struct vg_motion_result *res)
{
    if (!m || !grey || !res || stride < m->w)
        return vg_errf(VG_ERR_INVALID, "motion feed: bad arguments");
    res->score = 0.0f;
    res->n_boxes = 0;
    res->learning = !m->have_bg;
    res->global_change = 0;
    if (!m->have_bg) {
        init_background(m, grey, stride);
        return VG_OK;
    }
    long changed = diff(m, grey, stride);
    res->score = (float)((double)changed / ((double)m->w * (double)m->h));
    /* Most of the picture changing at once is the light or the camera, not
     * something moving in front of it: the old background is useless, this
     * frame is the new one. max_area 1 never fires (changed <= watched). */
    if ((double)changed > m->max_area * (double)m->n_watched) {
        init_background(m, grey, stride);
        res->global_change = 1;
        return VG_OK;
    }
    if (changed == 0) {
        learn(m, grey, stride, 1);
        return VG_OK;
    }
    fill_cells(m);
    int ncomps = find_components(m);
    learn(m, grey, stride, 0);
    emit_boxes(m, ncomps, res);     /* sorts comps: after learn, which uses their order */
    return VG_OK;
}
