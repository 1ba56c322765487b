/* Kinesis Video Streams: HLS playback URLs of a stream (live, or a clip of
 * recorded video). Two calls: GetDataEndpoint on the control plane
 * (kinesisvideo.<region>.amazonaws.com, AWS_ENDPOINT_URL_KINESIS_VIDEO), then
 * GetHLSStreamingSessionURL on the stream's data endpoint (or on
 * AWS_ENDPOINT_URL_KINESIS_VIDEO_ARCHIVED_MEDIA when set). The option
 * combinations the service refuses are refused locally with VG_ERR_INVALID.
 * All functions are thread-safe and write their outputs only on VG_OK. */
#ifndef VG_AWS_KVS_H
#define VG_AWS_KVS_H

#include <stddef.h>
#include <stdint.h>

#include "aws/client.h"
#include "status.h"

#define VG_KVS_ENDPOINT_MAX 512
#define VG_KVS_URL_MAX 4096
#define VG_KVS_MIN_EXPIRES 300
#define VG_KVS_MAX_EXPIRES 43200
#define VG_KVS_MAX_FRAGMENTS 5000
#define VG_KVS_MAX_RANGE_US (24LL * 3600 * 1000000) /* end - start */
#define VG_KVS_ENDPOINT_TTL_S 300   /* vg_kvs_clip_url's data endpoint cache */

enum vg_kvs_playback {
    VG_KVS_LIVE,                /* from the live edge; no timestamps */
    VG_KVS_LIVE_REPLAY,         /* from start_us on, following the live edge unless end_us */
    VG_KVS_ON_DEMAND,           /* start_us .. end_us, at most 24 h */
};

enum vg_kvs_selector {
    VG_KVS_SERVER_TIMESTAMP,    /* when KVS received the fragment (the AWS default) */
    VG_KVS_PRODUCER_TIMESTAMP,  /* the camera's clock */
};

struct vg_kvs_hls_opts {
    const char *stream_name;    /* 1..256 of [a-zA-Z0-9_.-] */
    enum vg_kvs_playback mode;
    enum vg_kvs_selector selector;
    int64_t start_us;           /* wall clock µs; 0 = none. Sent in seconds, ms precision */
    int64_t end_us;             /* 0 = none */
    int expires_s;              /* 0: 300; else 300..43200 */
    int max_fragments;          /* 0: the service's default; else 1..5000 */
};

/* "https://..." data endpoint of stream for api_name, one of the APIName
 * values ("GET_HLS_STREAMING_SESSION_URL", "GET_MEDIA", "PUT_MEDIA", ...).
 * VG_ERR_NOT_FOUND for an unknown stream; VG_ERR_TOO_LARGE when it does not
 * fit in cap. */
vg_status vg_kvs_get_data_endpoint(struct vg_aws *a, const char *stream_name,
                                   const char *api_name, char *endpoint, size_t cap);

/* An HLS session URL (a playlist URL that carries its own credentials,
 * valid for o->expires_s) from GetHLSStreamingSessionURL at endpoint, the
 * data endpoint for GET_HLS_STREAMING_SESSION_URL. */
vg_status vg_kvs_get_hls_url(struct vg_aws *a, const char *endpoint,
                             const struct vg_kvs_hls_opts *o, char *url, size_t cap);

/* Both calls, with SERVER_TIMESTAMP fragments, for the clip of stream from
 * start_us to end_us (end_us 0: none, for LIVE_REPLAY; both 0 for LIVE).
 * The data endpoint is cached per (control-plane endpoint, region, stream)
 * for VG_KVS_ENDPOINT_TTL_S seconds in a process-wide table guarded by a
 * mutex, and dropped when a call to it fails, so alert bursts cost one
 * GetDataEndpoint per stream every few minutes. */
vg_status vg_kvs_clip_url(struct vg_aws *a, const char *stream, int64_t start_us,
                          int64_t end_us, int expires_s, enum vg_kvs_playback mode,
                          char *url, size_t cap);

/* As vg_kvs_clip_url with every option of o (the fragment selector,
 * max_fragments), through the same data endpoint cache. The clip links of
 * lib/clip/clip_kvs.c use PRODUCER_TIMESTAMP: the camera's clock, which the
 * detection time is also taken from. */
vg_status vg_kvs_clip_url_opts(struct vg_aws *a, const struct vg_kvs_hls_opts *o, char *url,
                               size_t cap);

#endif
