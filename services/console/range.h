/* The Range request header (RFC 9110 14.2), the single-range subset the
 * console serves: "bytes=a-b", "bytes=a-", "bytes=-n". */
#ifndef CON_RANGE_H
#define CON_RANGE_H

#include <stdint.h>

enum con_range {
    CON_RANGE_NONE,             /* no header, another unit, several ranges or a malformed
                                 * one: serve the whole file (RFC: a server may ignore it) */
    CON_RANGE_OK,               /* serve [*off, *off + *len) with 206 */
    CON_RANGE_UNSATISFIABLE,    /* 416 with Content-Range: bytes * / size */
};

enum con_range con_range_parse(const char *header, uint64_t size, uint64_t *off, uint64_t *len);

#endif
