/* The kvs clip provider: a Kinesis Video Streams HLS session for the
 * camera's stream (cam->kvs_stream, uploaded by capture or by the KVS
 * producer SDK as in the seeds), from detection - pre_roll_s to + length_s,
 * selected by PRODUCER_TIMESTAMP (the camera's clock, which detections are
 * stamped with too; SERVER_TIMESTAMP would be off by the upload delay).
 *
 * GetDataEndpoint is cached per stream (vg_kvs_clip_url_opts), so a burst of
 * alerts costs one GetDataEndpoint and one GetHLSStreamingSessionURL each.
 * The session URL carries its own credentials and expires after expires_s:
 * a reader who opens the alert later than that gets an expired link, so
 * expires_s is a trade between exposure and convenience (docs/clips.md). */
#include "clip/clip.h"

#include <stdlib.h>

#include "aws/aws_config.h"
#include "aws/kvs.h"
#include "timeutil.h"

enum playback { PLAYBACK_AUTO, PLAYBACK_ON_DEMAND, PLAYBACK_LIVE_REPLAY };

static const char *const playbacks[] = {"auto", "on_demand", "live_replay", NULL};

struct kvs_settings {
    int expires_s;
    int playback;               /* enum playback */
};

static const struct vg_opt kvs_opts[] = {
    VG_OPT_INT_("expires_s", struct kvs_settings, expires_s, VG_KVS_MIN_EXPIRES,
                VG_KVS_MAX_EXPIRES, "3600", "how long the HLS session URL stays valid"),
    VG_OPT_ENUM_("playback", struct kvs_settings, playback, playbacks, "auto",
                 "auto: ON_DEMAND when the clip has ended at delivery, else LIVE_REPLAY"),
    VG_OPT_END,
};

struct kvs {
    struct kvs_settings s;
    struct vg_aws *aws;
};

static vg_status kvs_init(void **state, const void *settings, const struct vg_config *cfg)
{
    struct kvs *k = calloc(1, sizeof(*k));
    if (!k)
        return VG_ERR_NOMEM;
    k->s = *(const struct kvs_settings *)settings;
    vg_status st = vg_aws_from_config(&k->aws, cfg);
    if (st != VG_OK) {
        free(k);
        return st;
    }
    *state = k;
    return VG_OK;
}

static int kvs_covers(void *state, const struct vg_camera_cfg *cam)
{
    (void)state;
    return cam->kvs_stream[0] != '\0';
}

static vg_status kvs_link(void *state, const struct vg_clip_common *c,
                          const struct vg_camera_cfg *cam, int64_t detect_us, char *url,
                          size_t cap)
{
    struct kvs *k = state;
    if (!kvs_covers(k, cam))
        return vg_errf(VG_ERR_NOT_FOUND, "camera %s has no kvs_stream", cam->id);
    struct vg_kvs_hls_opts o = {
        .stream_name = cam->kvs_stream,
        .selector = VG_KVS_PRODUCER_TIMESTAMP,
        .start_us = detect_us - (int64_t)c->pre_roll_s * 1000000,
        .expires_s = k->s.expires_s,
    };
    o.end_us = o.start_us + (int64_t)c->length_s * 1000000;
    if (o.start_us <= 0)
        return vg_errf(VG_ERR_INVALID, "clip of %s: detection time %lld is before the epoch",
                       cam->id, (long long)detect_us);
    /* LIVE_REPLAY with an end follows the live edge until the clip's end
     * has been ingested; ON_DEMAND needs every fragment to exist already. */
    if (k->s.playback == PLAYBACK_ON_DEMAND ||
        (k->s.playback == PLAYBACK_AUTO && o.end_us <= vg_now_us()))
        o.mode = VG_KVS_ON_DEMAND;
    else
        o.mode = VG_KVS_LIVE_REPLAY;
    vg_status st = vg_kvs_clip_url_opts(k->aws, &o, url, cap);
    if (st != VG_OK)
        return vg_errf(st, "clip of %s (stream %s): %s", cam->id, cam->kvs_stream,
                       vg_err_detail());
    return VG_OK;
}

static void kvs_cleanup(void *state)
{
    struct kvs *k = state;
    if (!k)
        return;
    vg_aws_destroy(k->aws);
    free(k);
}

const struct vg_clip_ops vg_clip_kvs = {
    .name = "kvs",
    .opts = kvs_opts,
    .settings_size = sizeof(struct kvs_settings),
    .init = kvs_init,
    .link = kvs_link,
    .covers = kvs_covers,
    .cleanup = kvs_cleanup,
};
