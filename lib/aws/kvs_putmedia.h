/* Kinesis Video Streams PutMedia: a long-running chunked upload of one MKV
 * stream to a Kinesis video stream, as the KVS producer SDK does it.
 *
 * The caller (the muxer side) hands over the stream's header (EBML header,
 * Segment start, Info, Tracks) once and then whole clusters (one cluster = one
 * KVS fragment, starting with a keyframe). They go into a bounded in-memory
 * queue; a dedicated thread runs the HTTP transfer:
 *
 *   GetDataEndpoint(APIName=PUT_MEDIA), or AWS_ENDPOINT_URL_KINESIS_VIDEO_MEDIA
 *   POST <endpoint>/putMedia, Transfer-Encoding: chunked, SigV4 (service
 *   "kinesisvideo") over the empty payload's hash, headers x-amzn-stream-name,
 *   x-amzn-fragment-timecode-type: ABSOLUTE, x-amzn-producer-start-timestamp,
 *   x-amzn-fragment-acknowledgment-required: 1.
 *
 * Every connection sends the header first, then clusters from a cluster
 * boundary on. The response body is a stream of JSON acknowledgements
 * (BUFFERING, RECEIVED, PERSISTED, ERROR, IDLE), parsed as they come and
 * counted. A connection that ends (the service's idle close, an ERROR ack, a
 * network error, an HTTP error) is opened again with backoff once there is
 * something to send. Nothing here blocks the caller: when the queue is full,
 * whole clusters are dropped (the oldest unsent first) and counted. */
#ifndef VG_AWS_KVS_PUTMEDIA_H
#define VG_AWS_KVS_PUTMEDIA_H

#include <stddef.h>
#include <stdint.h>

#include "aws/client.h"
#include "status.h"

#define VG_KVS_PUT_QUEUE_DEFAULT (8u << 20)
#define VG_KVS_MAX_FRAGMENT (50u << 20)     /* the service's fragment size limit */

enum vg_kvs_ack {
    VG_KVS_ACK_BUFFERING,
    VG_KVS_ACK_RECEIVED,
    VG_KVS_ACK_PERSISTED,
    VG_KVS_ACK_ERROR,
    VG_KVS_ACK_IDLE,
    VG_KVS_ACK__N
};

struct vg_kvs_put_opts {
    const char *stream_name;    /* 1..256 of [a-zA-Z0-9_.-] */
    const char *camera;         /* logs and metric labels; NULL: the stream name */
    size_t queue_bytes;         /* 0: VG_KVS_PUT_QUEUE_DEFAULT */
    int reconnect_min_ms;       /* first backoff; 0: 500 */
    int reconnect_max_s;        /* longest backoff; 0: 30 */
    int connect_timeout_ms;     /* 0: 5000 */
    int ack_timeout_s;          /* data sent but no ack for this long: reconnect; 0: 30 */
};

struct vg_kvs_put_stats {
    uint64_t connects;          /* PutMedia requests started */
    uint64_t sessions_ok;       /* answered 200 */
    uint64_t clusters_queued;
    uint64_t clusters_sent;     /* handed whole to the connection */
    uint64_t clusters_dropped;  /* queue full, too large, or of a replaced header */
    uint64_t bytes_sent;        /* header and clusters */
    uint64_t acks[VG_KVS_ACK__N];
    int last_error_id;          /* of the last ERROR ack; 0: none */
    int64_t last_persisted_tc;  /* FragmentTimecode of the last PERSISTED ack, ms */
    long last_http_status;      /* of the last PutMedia answer; 0: none yet */
    char last_error[512];       /* the last connection failure, "" if none */
    int connected;
    size_t queued_bytes;
};

struct vg_kvs_put;

/* Start the uploader thread (it connects once there is data). a must
 * outlive the uploader. */
vg_status vg_kvs_put_start(struct vg_kvs_put **out, struct vg_aws *a,
                           const struct vg_kvs_put_opts *o);
/* End the body of the open request, wait up to 2 s for its last
 * acknowledgements, stop the thread and free everything. NULL is a no-op. */
void vg_kvs_put_stop(struct vg_kvs_put *p);

/* The MKV header every connection starts with (copied). A new header (a new
 * source, new codec parameters) starts a new stream: the clusters queued
 * before it are still sent on the open connection, which then ends; the
 * next one starts with this header. */
vg_status vg_kvs_put_header(struct vg_kvs_put *p, const void *data, size_t len);

/* One whole cluster (copied), its Timecode in ms since the epoch. Never
 * blocks: VG_ERR_TOO_LARGE (and counted as dropped) when it alone does not
 * fit in the queue; older unsent clusters are dropped to make room.
 * VG_ERR_INVALID before the first header. */
vg_status vg_kvs_put_cluster(struct vg_kvs_put *p, const void *data, size_t len,
                             int64_t timecode_ms);

void vg_kvs_put_get_stats(struct vg_kvs_put *p, struct vg_kvs_put_stats *out);

/* "EBML parse error" for an ErrorId of an ERROR acknowledgement ("unknown
 * error" for one the documentation does not list). */
const char *vg_kvs_error_text(int error_id);
/* "BUFFERING", ... */
const char *vg_kvs_ack_name(enum vg_kvs_ack a);

#endif
