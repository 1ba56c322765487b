/* What the sink unit tests share: a configuration parsed from text into
 * cfg, the error a bad one must fail with, and how a key's value prints. */
#ifndef VG_TEST_SINK_FIXTURE_H
#define VG_TEST_SINK_FIXTURE_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <string.h>

#include "config.h"
#include "opts.h"
#include "sink/sink.h"

/* The configuration the last sink_parse() loaded. */
static struct vg_config cfg;

/* text as a whole configuration file "test.yaml". */
static inline vg_status sink_parse(const char *text)
{
    return vg_cfg_parse(&cfg, "test.yaml", text, strlen(text));
}

/* text must fail to load with an error that contains want and, when secret
 * is not NULL, does not contain secret. */
static inline void sink_assert_error(const char *text, const char *want, const char *secret)
{
    assert_int_equal(sink_parse(text), VG_ERR_CONFIG);
    if (!strstr(vg_err_detail(), want))
        fail_msg("error \"%s\" does not contain \"%s\"", vg_err_detail(), want);
    if (secret && strstr(vg_err_detail(), secret))
        fail_msg("error \"%s\" quotes a secret", vg_err_detail());
}

/* The sink's key as the configuration dump shows it ("key=value", a secret
 * "key=***"); the test fails when the type has no such key. */
static inline void sink_opt_format(const struct vg_sink_cfg *s, const char *key, char *out,
                                   size_t cap)
{
    for (const struct vg_opt *o = s->ops->opts; o->key; o++)
        if (!strcmp(o->key, key)) {
            vg_opts_format(o, s->settings, out, cap);
            return;
        }
    fail_msg("sink type %s has no key %s", s->ops->name, key);
}

#endif
