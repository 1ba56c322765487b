/* The recording's index file and its retention pass (format: record.h). */
#ifndef CAP_RECORD_INDEX_H
#define CAP_RECORD_INDEX_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define CAP_REC_INDEX "index"
#define CAP_REC_INDEX_TMP "index.tmp"

struct cap_rec_segment {
    int64_t start_ms;
    int64_t duration_ms;
    int64_t bytes;
    char file[40];          /* "<start_ms>.mkv" */
    char codec[32];
    int width, height;
};

/* The index line of seg, '\n' included; the length, or -1 if cap is short. */
int cap_rec_index_line(char *buf, size_t cap, const struct cap_rec_segment *seg);
/* Parse one line (with or without its '\n'); 0 on success, -1 if malformed. */
int cap_rec_index_parse(const char *line, struct cap_rec_segment *seg);

/* Append seg's line to <cam_dir>/index with one write(). VG_ERR_IO with
 * errno left set on failure. */
vg_status cap_rec_index_append(const char *cam_dir, const struct cap_rec_segment *seg);

struct cap_rec_retention {
    int64_t now_ms;         /* wall clock */
    int max_age_h;          /* 0 = no age limit */
    int max_mb;             /* 0 = no size cap */
    const char *keep;       /* a file never deleted (the newest segment), may be NULL */
};

/* Delete the camera's segments that ended more than max_age_h ago, then the
 * oldest until its .mkv files add up to max_mb at most; drop their lines (and
 * lines of files that no longer exist) from the index by writing index.tmp
 * and renaming it. Files not in the index age by their modification time. */
vg_status cap_rec_retention(const char *cam_dir, const struct cap_rec_retention *rt,
                            int *removed, int64_t *removed_bytes);

#endif
