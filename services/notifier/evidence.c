#include "evidence.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clip/clip.h"
#include "log.h"
#include "metrics.h"
#include "sink/sink.h"
#include "store/snapshot_store.h"

struct ntf_evidence {
    const struct vg_config *cfg;
    struct vg_snap_store *snaps;
    struct vg_clip_provider *clips;
    struct vg_counter *snap_failed, *clip_failed;
};

/* The console's links (fs snapshots, local clips) are only as reachable as
 * console.public_url: the default opens on this machine and nowhere else,
 * which is right for the demo and a surprise on a phone. Say so once. */
static void warn_local_links(const struct ntf_evidence *e)
{
    int via_console = (e->snaps && !strcmp(vg_snap_store_type(e->snaps), "fs")) ||
                      (e->clips && !strcmp(vg_clip_type(e->clips), "local"));
    if (via_console && vg_sink_url_is_loopback(e->cfg->console.public_url))
        VG_WARN("links.local_only", NULL, "snapshot and clip links start with %s, which opens "
                "only on this machine: set console.public_url (env VIGIL_CONSOLE_URL) to the "
                "address readers use", e->cfg->console.public_url);
}

vg_status ntf_evidence_open(struct ntf_evidence **out, const struct vg_config *cfg)
{
    struct ntf_evidence *e = calloc(1, sizeof(*e));
    if (!e)
        return vg_errf(VG_ERR_NOMEM, "evidence: out of memory");
    e->cfg = cfg;
    vg_status st = vg_snap_store_configured(cfg) ? vg_snap_store_open(&e->snaps, cfg) : VG_OK;
    if (st == VG_OK)
        st = vg_clip_open(&e->clips, cfg);
    if (st != VG_OK) {
        ntf_evidence_close(e);
        return st;
    }
    e->snap_failed = vg_counter_get_labeled(
        "vigil_notifier_links_failed_total", "kind=\"snapshot\"",
        "Alerts delivered without a snapshot or clip link that they should have had");
    e->clip_failed = vg_counter_get_labeled(
        "vigil_notifier_links_failed_total", "kind=\"clip\"",
        "Alerts delivered without a snapshot or clip link that they should have had");
    warn_local_links(e);
    *out = e;
    return VG_OK;
}

void ntf_evidence_close(struct ntf_evidence *e)
{
    if (!e)
        return;
    vg_snap_store_close(e->snaps);
    vg_clip_close(e->clips);
    free(e);
}

static const char *camera_of(const Vigil__V1__Alert *a)
{
    return a->header && a->header->camera_id ? a->header->camera_id : "";
}

static void snapshot_link(struct ntf_evidence *e, const Vigil__V1__Alert *a, char *out,
                          size_t cap)
{
    if (a->snapshot_ref && a->snapshot_ref[0]) {
        if (!e->snaps || vg_snap_link(e->snaps, a->snapshot_ref, out, cap) != VG_OK) {
            out[0] = '\0';
            vg_counter_inc(e->snap_failed);
            VG_WARN("snapshot.link_failed", camera_of(a), "alert %s: %s", a->alert_id,
                    e->snaps ? vg_err_detail() : "no snapshot store configured (store.snapshots)");
        }
        return;
    }
    /* An alert from outside vigil may carry its own link; a file:// URL is
     * a path on some server, never a link for a reader. */
    if (vg_sink_is_http_url(a->snapshot_url))
        snprintf(out, cap, "%s", a->snapshot_url);
}

static void clip_link(struct ntf_evidence *e, const Vigil__V1__Alert *a, char *out, size_t cap)
{
    if (vg_sink_is_http_url(a->clip_url)) {
        snprintf(out, cap, "%s", a->clip_url);
        return;
    }
    const struct vg_camera_cfg *cam = vg_cfg_camera(e->cfg, camera_of(a));
    int64_t at = a->header ? a->header->capture_ts_us : 0;
    if (!cam || at <= 0 || !vg_clip_covers(e->clips, cam))
        return;     /* the camera has no clips (does not record, no stream): no error */
    if (vg_clip_link(e->clips, cam, at, out, cap) == VG_OK)
        return;
    out[0] = '\0';     /* a stream KVS does not know, KVS down: counted */
    vg_counter_inc(e->clip_failed);
    VG_WARN("clip.link_failed", cam->id, "alert %s: %s", a->alert_id, vg_err_detail());
}

void ntf_evidence_links(struct ntf_evidence *e, const Vigil__V1__Alert *a, struct ntf_links *l)
{
    l->snapshot[0] = l->clip[0] = '\0';
    snapshot_link(e, a, l->snapshot, sizeof(l->snapshot));
    clip_link(e, a, l->clip, sizeof(l->clip));
}

static int is_jpeg(const uint8_t *b, size_t n)
{
    return n >= 3 && b[0] == 0xFF && b[1] == 0xD8 && b[2] == 0xFF;
}

/* The file a legacy file:// snapshot names, when it lies inside
 * dispatch.snapshot_dir: an alert is data from the bus, and its URL must not
 * make a sink mail or post any file this process can read (secrets included). */
static int inside_dir(const char *path, const char *dir, char *real, size_t cap)
{
    char base[PATH_MAX];
    if (!dir || !dir[0] || cap < PATH_MAX || !realpath(dir, base) || !realpath(path, real))
        return 0;
    size_t n = strlen(base);
    return strncmp(real, base, n) == 0 && real[n] == '/';
}

static uint8_t *read_legacy(const char *url, const char *dir, size_t *len)
{
    char real[PATH_MAX];
    if (!url || strncmp(url, "file://", 7) != 0 || !inside_dir(url + 7, dir, real, sizeof(real)))
        return NULL;
    int fd = open(real, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
    FILE *f = fd >= 0 ? fdopen(fd, "rb") : NULL;
    if (!f) {
        if (fd >= 0)
            close(fd);
        return NULL;
    }
    uint8_t *buf = malloc(NTF_SNAPSHOT_MAX);
    size_t n = buf ? fread(buf, 1, NTF_SNAPSHOT_MAX, f) : 0;
    int too_big = fgetc(f) != EOF;
    fclose(f);
    if (!buf || too_big || !is_jpeg(buf, n)) {
        free(buf);
        return NULL;
    }
    *len = n;
    return buf;
}

uint8_t *ntf_evidence_snapshot(struct ntf_evidence *e, const Vigil__V1__Alert *a, size_t *len)
{
    uint8_t *data = NULL;
    *len = 0;
    if (!a->snapshot_ref || !a->snapshot_ref[0])
        return read_legacy(a->snapshot_url, e->cfg->dispatch.snapshot_dir, len);
    if (!e->snaps)
        return NULL;    /* counted by the link that could not be made */
    if (vg_snap_get(e->snaps, a->snapshot_ref, NTF_SNAPSHOT_MAX, &data, len) != VG_OK) {
        VG_WARN("snapshot.read_failed", camera_of(a), "alert %s: %s", a->alert_id,
                vg_err_detail());
        vg_counter_inc(e->snap_failed);
        return NULL;
    }
    if (!is_jpeg(data, *len)) {     /* only JPEGs are attached as images */
        free(data);
        *len = 0;
        return NULL;
    }
    return data;
}
