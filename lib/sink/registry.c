/* Every sink type, in one NULL-terminated list. Adding a sink is one file
 * with its ops table and one line here. */
#include "sink/sink.h"

#include <string.h>

#include "opts.h"

extern const struct vg_sink_ops vg_sink_file;
extern const struct vg_sink_ops vg_sink_webhook;
extern const struct vg_sink_ops vg_sink_sns;
extern const struct vg_sink_ops vg_sink_telegram;
extern const struct vg_sink_ops vg_sink_smtp;
extern const struct vg_sink_ops vg_sink_iot;
extern const struct vg_sink_ops vg_sink_kinesis;
extern const struct vg_sink_ops vg_sink_mqtt;

/* In the order of docs/sinks/ (and of "known: ..." in errors). */
const struct vg_sink_ops *const vg_sink_types[] = {
    &vg_sink_file,
    &vg_sink_webhook,
    &vg_sink_sns,
    &vg_sink_telegram,
    &vg_sink_smtp,
    &vg_sink_iot,
    &vg_sink_kinesis,
    &vg_sink_mqtt,
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
