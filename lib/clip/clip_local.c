/* The local clip provider: a link to the console, which assembles the clip
 * from the camera's rolling recording when it is opened (assemble.h). The
 * link carries the detection time, the pre-roll and the length, so it stays
 * valid (and the same) however late it is opened, until retention deletes
 * the segments. No keys of its own. */
#include "clip/clip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct local {
    char base[VG_URL_MAX];      /* console.public_url without a trailing '/' */
    int recording_enabled;
};

static vg_status local_init(void **state, const void *settings, const struct vg_config *cfg)
{
    const char *u = cfg->console.public_url;
    if (strncmp(u, "http://", 7) && strncmp(u, "https://", 8))
        return vg_errf(VG_ERR_CONFIG, "console.public_url \"%.64s\" must start with http:// "
                       "or https://", u);
    struct local *l = calloc(1, sizeof(*l));
    if (!l)
        return VG_ERR_NOMEM;
    snprintf(l->base, sizeof(l->base), "%s", u);
    for (size_t n = strlen(l->base); n > 0 && l->base[n - 1] == '/'; n--)
        l->base[n - 1] = '\0';
    l->recording_enabled = cfg->recording.enabled;
    *state = l;
    return VG_OK;
}

/* Camera ids are already restricted by the config; escape the rest anyway
 * so a link never breaks on an unusual id. */
static size_t escape(const char *in, char *out, size_t cap)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = 0;
    for (; *in; in++) {
        unsigned char c = (unsigned char)*in;
        int plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '-' || c == '_' || c == '.' || c == '~';
        if (n + (plain ? 1 : 3) >= cap)
            return cap;
        if (plain) {
            out[n++] = (char)c;
        } else {
            out[n++] = '%';
            out[n++] = hex[c >> 4];
            out[n++] = hex[c & 15];
        }
    }
    out[n] = '\0';
    return n;
}

static int local_covers(void *state, const struct vg_camera_cfg *cam)
{
    const struct local *l = state;
    return cam->record > 0 || (cam->record < 0 && l->recording_enabled);
}

static vg_status local_link(void *state, const struct vg_clip_common *c,
                            const struct vg_camera_cfg *cam, int64_t detect_us, char *url,
                            size_t cap)
{
    struct local *l = state;
    char id[3 * VG_ID_MAX + 1];
    if (!local_covers(l, cam))
        return vg_errf(VG_ERR_NOT_FOUND, "camera %s does not record (%s is false)", cam->id,
                       cam->record == 0 ? "its record key" : "recording.enabled");
    if (escape(cam->id, id, sizeof(id)) >= sizeof(id))
        return vg_errf(VG_ERR_INVALID, "camera id too long for a clip link");
    int n = snprintf(url, cap, "%s/api/clips/%s.mp4?t=%lld&pre=%d&dur=%d", l->base, id,
                     (long long)(detect_us / 1000), c->pre_roll_s, c->length_s);
    if (n < 0 || (size_t)n >= cap)
        return vg_errf(VG_ERR_TOO_LARGE, "clip link of %d bytes; room for %zu", n, cap - 1);
    return VG_OK;
}

static void local_cleanup(void *state)
{
    free(state);
}

const struct vg_clip_ops vg_clip_local = {
    .name = "local",
    .init = local_init,
    .link = local_link,
    .covers = local_covers,
    .cleanup = local_cleanup,
};
