/* Just enough XML for AWS query and REST-XML answers: the text of the first
 * element with a given name, entities decoded. Not a general parser. */
#ifndef VG_AWS_XML_H
#define VG_AWS_XML_H

#include <stddef.h>

/* Text of the first <name>...</name> at or after *from in xml (NUL-terminated);
 * returns 1 and advances *from past it, 0 if absent or truncated to cap. */
int vg_xml_text(const char *xml, const char *name, char *out, size_t cap, const char **from);

#endif
