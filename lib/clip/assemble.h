/* The local clip: a camera's rolling recording (services/capture/record.c:
 * <dir>/<start_ms>.mkv segments, each starting at a keyframe, and an
 * `index` of the closed ones) cut into one MP4 for [start_us, end_us).
 *
 * H.264 and H.265 are copied (no re-encode; H.265 tagged hvc1 for Safari),
 * from the last keyframe at or before start_us, with timestamps rebased to
 * 0 and kept monotonic across segments, into an MP4 with the moov atom
 * first (faststart) so browsers play it with range requests. Other codecs
 * (MJPEG, MPEG-4 part 2) are transcoded to H.264 (libx264 veryfast, else
 * FFmpeg's mpeg4) at request time: CPU cost in docs/clips.md. A clip stops
 * at the first resolution or codec change (info->end_us says where).
 *
 * The file is written to out_path + ".tmp" and renamed, so a reader never
 * sees half a clip. */
#ifndef VG_CLIP_ASSEMBLE_H
#define VG_CLIP_ASSEMBLE_H

#include <stdint.h>

#include "status.h"

#define VG_CLIP_MAX_RANGE_US (600LL * 1000000)  /* end_us - start_us */

struct vg_clip_info {
    int64_t start_us, end_us;       /* wall clock of the clip's first packet and its end */
    int transcoded;                 /* 1: re-encoded to H.264 (or mpeg4) */
    char codec[32];                 /* the clip's codec ("h264", "hevc", "mpeg4") */
    int width, height;
};

/* VG_ERR_NOT_FOUND "no recording of <camera> between <time> and <time>"
 * when no segment overlaps; VG_ERR_INVALID for an empty range or one longer
 * than VG_CLIP_MAX_RANGE_US; VG_ERR_IO for files that cannot be read or
 * written. info may be NULL. */
vg_status vg_clip_assemble(const char *camera_dir, int64_t start_us, int64_t end_us,
                           const char *out_path, struct vg_clip_info *info);

#endif
