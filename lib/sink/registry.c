/* Every sink type, in one NULL-terminated list. Adding a sink is one file
 * with its ops table and one line here. */
#include "sink/sink.h"

#include <string.h>

#include "opts.h"

extern const struct vg_sink_ops vg_sink_file;
extern const struct vg_sink_ops vg_sink_webhook;

const struct vg_sink_ops *const vg_sink_types[] = {
    &vg_sink_file,
    &vg_sink_webhook,
    NULL,
};

const struct vg_sink_ops *vg_sink_find(const char *name)
{
    for (int i = 0; vg_sink_types[i]; i++)
        if (!strcmp(vg_sink_types[i]->name, name))
            return vg_sink_types[i];
    return NULL;
}

void vg_sink_type_names(char *out, size_t cap)
{
    const char *names[16];
    int n = 0;
    for (; vg_sink_types[n] && n < 15; n++)
        names[n] = vg_sink_types[n]->name;
    names[n] = NULL;
    vg_opts_join(names, out, cap);
}
