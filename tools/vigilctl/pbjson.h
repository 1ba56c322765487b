/* Any protobuf-c message to JSON, by reflection over its descriptor. */
#ifndef VIGILCTL_PBJSON_H
#define VIGILCTL_PBJSON_H

#include <jansson.h>
#include <protobuf-c/protobuf-c.h>

/* Bytes fields become "<name>_size" (their length) so frames stay readable. */
/* Also emit bytes fields as "<name>_base64" (tail --bytes). */
void ctl_pb_json_with_bytes(int on);
json_t *ctl_pb_to_json(const ProtobufCMessage *m);

/* Message descriptor for a vigil subject ("<prefix>.<kind>.<camera>"), or NULL. */
const ProtobufCMessageDescriptor *ctl_descriptor_for_subject(const char *subject);

#endif
