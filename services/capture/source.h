/* A video source opened with FFmpeg: a file, rtsp://, http:// (MJPEG or any
 * stream FFmpeg can probe), a v4l2 device (/dev/videoN) or another network
 * URL. Yields decoded frames with their position in ms. Every blocking call
 * is bounded: a stop request or a stalled network source interrupts it. */
#ifndef CAP_SOURCE_H
#define CAP_SOURCE_H

#include <stdint.h>

#include <libavcodec/packet.h>
#include <libavformat/avformat.h>
#include <libavutil/frame.h>

#include "status.h"

enum cap_source_kind {
    CAP_SOURCE_FILE,
    CAP_SOURCE_RTSP,
    CAP_SOURCE_HTTP,
    CAP_SOURCE_V4L2,
    CAP_SOURCE_NET,     /* any other scheme FFmpeg knows (rtmp://, udp://, srt://...) */
};

/* Returns non-zero when the caller wants blocking calls abandoned. */
typedef int (*cap_stop_fn)(void *ctx);
/* Sees every packet of the video stream st, in demux order, before it is
 * decoded (rolling recording, upload). The packet is the source's: take a
 * reference (av_packet_ref) to keep it; must not block. */
typedef void (*cap_packet_fn)(void *ctx, const AVStream *st, const AVPacket *pkt);

struct cap_source_opts {
    const char *camera;     /* for logs */
    int open_timeout_ms;    /* network: connect + probe; 0 = default */
    int read_timeout_ms;    /* network: one packet; 0 = default */
    cap_stop_fn stop;       /* may be NULL */
    void *stop_ctx;
    /* Ask the decoder to skip every frame but keyframes (AVDISCARD_NONKEY):
     * their packets are read but not decoded, the cheapest way to watch a
     * camera. H.264/H.265 cameras send a keyframe every 1-10 s (their GOP). */
    int keyframes_only;
    cap_packet_fn on_packet;    /* may be NULL */
    void *packet_ctx;
};

struct cap_source;

enum cap_source_kind cap_source_kind_of(const char *url);
const char *cap_source_kind_name(enum cap_source_kind kind);
/* Files end; everything else is live and is reconnected when it ends. */
int cap_source_is_live(enum cap_source_kind kind);

/* Route FFmpeg's own log lines into vigil's JSON log, tagged with camera
 * (once per process, before any source is opened). */
void cap_source_log_setup(const char *camera);

/* Open url and its decoder. Errors: VG_ERR_NOT_FOUND (no such file),
 * VG_ERR_IO, VG_ERR_TIMEOUT, VG_ERR_UNAVAILABLE (connection refused),
 * VG_ERR_STOPPED, VG_ERR_MEDIA (no video stream, no decoder, bad data);
 * the detail names the masked URL and FFmpeg's reason. */
vg_status cap_source_open(struct cap_source **out, const char *url,
                          const struct cap_source_opts *opts);
void cap_source_destroy(struct cap_source *s);

/* Next decoded frame, owned by the source and valid until the next call.
 * *pts_ms is the frame's position (files: from the start). Packets that fail
 * to decode are counted (cap_source_decode_errors) and skipped.
 * VG_ERR_EOF at the end of the source. */
vg_status cap_source_read(struct cap_source *s, const AVFrame **frame, int64_t *pts_ms);

/* Non-zero for a keyframe (or an intra-coded picture). */
int cap_frame_is_key(const AVFrame *f);

/* Seek back to the start (files). */
vg_status cap_source_rewind(struct cap_source *s);

/* The video stream being decoded: its codec parameters and time base, for
 * packet consumers (valid until cap_source_destroy). */
const AVStream *cap_source_stream(const struct cap_source *s);
/* Non-zero when the source's timestamps are not usable and frames are timed
 * by their arrival (MJPEG over HTTP). */
int cap_source_wallclock(const struct cap_source *s);

uint64_t cap_source_decode_errors(const struct cap_source *s);
/* "msmpeg4v3 768x576 10.00 fps" */
const char *cap_source_describe(const struct cap_source *s);

#endif
