/* What the clip assembler's files share (assemble*.c); not an API. */
#ifndef VG_CLIP_ASSEMBLE_INT_H
#define VG_CLIP_ASSEMBLE_INT_H

#include <limits.h>
#include <stddef.h>
#include <stdint.h>

#include <libavcodec/avcodec.h>

#include "status.h"

/* One segment of a camera's recording. */
struct clip_seg {
    int64_t start_us;           /* wall clock of its first packet (from the file name) */
    int64_t end_us;             /* index: start + duration; open: the next start, or
                                 * INT64_MAX for the newest */
    int indexed;                /* 0: the open segment (or one left by a crash) */
    char path[PATH_MAX];
};

/* Every segment of dir, oldest first (*out malloc'ed; *n may be 0). Index
 * lines whose file is gone (retention) are skipped. */
vg_status clip_segments_list(const char *dir, struct clip_seg **out, size_t *n);

/* The MP4 being written: packets copied, or decoded and re-encoded to
 * H.264 for codecs browsers do not play in MP4. */
struct clip_out;

/* par: the recording's video stream; fps: its frame rate (0/0: unknown). */
vg_status clip_out_open(struct clip_out **out, const char *path, const AVCodecParameters *par,
                        AVRational fps);
/* pkt's pts/dts/duration in µs from the clip's start (dts made monotonic
 * here). pkt is left unchanged. */
vg_status clip_out_write(struct clip_out *o, const AVPacket *pkt);
/* Drain the encoder, write the trailer (faststart moves the moov first). */
vg_status clip_out_finish(struct clip_out *o);
void clip_out_free(struct clip_out *o);
int clip_out_transcoded(const struct clip_out *o);
const char *clip_out_codec(const struct clip_out *o);
void clip_out_size(const struct clip_out *o, int *width, int *height);

/* "2023-11-14T22:13:20.123Z" */
void clip_format_time(int64_t us, char *out, size_t cap);

#endif
