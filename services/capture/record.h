/* Rolling recording: every packet of the camera's video stream, as the
 * demuxer delivers it (never decoded, never re-encoded), remuxed into
 * Matroska segments on disk, with an index of their start times and a
 * retention pass by age and size. Written by a thread of its own: the capture
 * loop only queues references to its packets, so a slow or full disk can
 * never block decoding, motion or publishing (the queue overflows instead,
 * counted, and the recording resumes at the next keyframe).
 *
 * Layout, per camera, under recording.dir:
 *
 *   <dir>/<camera>/<start_ms>.mkv   one segment: Matroska, one video track,
 *                                   the source's codec as it arrives (h264,
 *                                   hevc, mjpeg, mpeg4...); starts with a
 *                                   keyframe; timestamps start at 0 and
 *                                   increase; clusters of at most 1 s, each
 *                                   flushed to the file when complete, so the
 *                                   open (still growing) segment is readable
 *                                   up to about a second ago.
 *   <dir>/<camera>/index            one line per CLOSED segment, oldest first:
 *
 *     <start_ms> <duration_ms> <bytes> <file> <codec> <width>x<height>\n
 *
 *     start_ms     wall clock (ms since the Unix epoch, UTC) of the
 *                  segment's first frame. Files: when its packet arrived.
 *                  Cameras: packets arrive late by a varying delay (a burst
 *                  after the stream is probed, network jitter), so the
 *                  estimate is the arrival minus media time of the segment's
 *                  least-delayed packet; never after the file's name nor
 *                  before the previous line's start_ms
 *     duration_ms  media time the segment covers, from its first packet to
 *                  the end of its last one (ms)
 *     bytes        size of the file once closed
 *     file         the file name, relative to the camera's directory:
 *                  "<ms>.mkv", ms the arrival of its first packet (so names
 *                  sort in recording order; may be a little after start_ms)
 *     codec        FFmpeg's codec name ("h264", "hevc", "mjpeg")
 *     width/height picture size of every frame in the segment
 *
 *   e.g. "1718000000000 10040 1523311 1718000000000.mkv h264 1280x720"
 *
 *   Fields are separated by one space; no field contains a space. Lines are
 *   appended with one write() on an O_APPEND descriptor, so a reader never
 *   sees half a line of a closed segment; the retention pass rewrites the
 *   file through index.tmp + rename(), so a reader sees the old or the new
 *   index, never a mix. The segment being written is the newest .mkv not in
 *   the index; after a crash, older .mkv files may be missing from it too
 *   (readable up to where they stopped, aged out by their modification time).
 *
 * Segments: a new one at the first keyframe after recording.segment_s of
 * media time; at every (re)open of the source (cap_recorder_start); when the
 * codec parameters change (new in-band SPS/PPS/VPS on an H.264/H.265
 * keyframe, AV_PKT_DATA_NEW_EXTRADATA side data, or a new picture size
 * reported by cap_recorder_frame_size), so that every segment is playable on
 * its own with one set of parameters; after a timestamp jump of more than
 * 10 s or backwards (timestamps are rebased to stay monotonic instead).
 *
 * Retention, after every closed segment: segments that ended more than
 * recording.max_age_h ago are deleted, then the oldest until the camera's
 * files add up to at most recording.max_mb (the segment just closed is always
 * kept); their index lines go with them.
 *
 * Errors (directory not writable, disk full, muxer refusing the stream): a
 * "recording.failed" warning at most once a minute, with the path and the
 * reason, vigil_capture_recording_errors_total{reason=...} and
 * vigil_capture_recording_up 0; the recorder retries at a keyframe 1 s later,
 * doubling up to segment_s while it keeps failing. */
#ifndef CAP_RECORD_H
#define CAP_RECORD_H

#include <libavcodec/packet.h>
#include <libavformat/avformat.h>

#include "status.h"

struct cap_recorder_cfg {
    const char *camera;     /* directory name under dir, and for logs */
    const char *dir;        /* recording.dir */
    int segment_s;          /* > 0 */
    int max_age_h;          /* 0 = no age limit */
    int max_mb;             /* per camera; 0 = no size cap */
};

struct cap_recorder;

/* Starts the writer thread; no file is touched until the first keyframe. */
vg_status cap_recorder_create(struct cap_recorder **out, const struct cap_recorder_cfg *cfg);
/* Writes what is queued, closes the open segment (indexed), ends the thread. */
void cap_recorder_destroy(struct cap_recorder *r);

/* A source was (re)opened, or a file looped: closes the open segment; the
 * next one starts at the next keyframe of this stream, whose parameters and
 * time base are copied here. live: a camera (its segments are dated by the
 * least-delayed packet, see the index); wallclock: the source has no usable
 * timestamps (MJPEG over HTTP): packets are timed by their arrival. */
vg_status cap_recorder_start(struct cap_recorder *r, const AVStream *st, int live,
                             int wallclock);
/* The source was closed: the open segment is closed and indexed. */
void cap_recorder_stop(struct cap_recorder *r);
/* One packet of the stream given to cap_recorder_start, in demux order.
 * Takes a reference, never blocks; a full queue drops packets (counted) up
 * to the next keyframe. */
void cap_recorder_packet(struct cap_recorder *r, const AVPacket *pkt);
/* The decoder's picture size: a change starts a new segment at the next
 * keyframe (for streams whose demuxer does not announce it). */
void cap_recorder_frame_size(struct cap_recorder *r, int width, int height);

/* Block until everything queued so far has been written (tests, benchmarks). */
void cap_recorder_sync(struct cap_recorder *r);

#endif
