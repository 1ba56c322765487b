/* The camera's stream uploaded to Kinesis Video Streams (PutMedia), the way
 * the KVS producer SDK of seeds 000/001/003 does it, without re-encoding:
 * the demuxer's packets are remuxed by FFmpeg's matroska muxer (live mode,
 * one cluster per GOP, timecodes in wall-clock ms since the epoch for
 * x-amzn-fragment-timecode-type ABSOLUTE) into a custom AVIOContext whose
 * output is cut into the MKV header and whole clusters for the uploader
 * (lib/aws/kvs_putmedia.h). H.264 and H.265 only (what KVS plays back);
 * another codec is logged once and not uploaded.
 *
 * Enabled for a camera with a kvs_stream while the top-level `kvs:` section's
 * `upload` is true (the default). Keys of `kvs:`: upload, queue_mb,
 * reconnect_max_s (docs/kvs.md).
 *
 * Every function takes NULL (upload off) as a no-op, so the capture loop
 * calls them unconditionally. They never block on the network. */
#ifndef CAP_KVS_UPLOAD_H
#define CAP_KVS_UPLOAD_H

#include <libavcodec/packet.h>
#include <libavformat/avformat.h>

#include "aws/kvs_putmedia.h"
#include "config.h"
#include "status.h"

struct cap_kvs;

/* *out is NULL (and VG_OK) when cam has no kvs_stream or kvs.upload is
 * false. VG_ERR_CONFIG for bad `kvs:` keys. */
vg_status cap_kvs_create(struct cap_kvs **out, const struct vg_config *cfg,
                         const struct vg_camera_cfg *cam);
void cap_kvs_destroy(struct cap_kvs *k);

/* A source (re)opened with st its video stream: a new MKV stream (fresh
 * header) starts at its first keyframe, its clock anchored to now. */
void cap_kvs_source_opened(struct cap_kvs *k, const AVStream *st);
/* One demuxed packet (packets of other streams are ignored). */
void cap_kvs_packet(struct cap_kvs *k, const AVStream *st, const AVPacket *pkt);
/* The source ended or failed: its last cluster is queued. */
void cap_kvs_source_closed(struct cap_kvs *k);

/* The uploader's figures (zeros for NULL). */
void cap_kvs_stats(struct cap_kvs *k, struct vg_kvs_put_stats *out);

#endif
