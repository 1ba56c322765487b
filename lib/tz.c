#include "tz.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ZONEINFO "/usr/share/zoneinfo/"

vg_status vg_tz_set(const char *name)
{
    char path[256];
    if (!name || !*name)
        return VG_OK;
    /* A name, not a path: no "..", no leading '/'. */
    if (name[0] == '/' || strstr(name, "..") || strlen(name) > 128)
        return vg_errf(VG_ERR_CONFIG, "timezone \"%s\" is not an IANA zone name "
                       "(\"Europe/Berlin\", \"UTC\")", name);
    snprintf(path, sizeof(path), ZONEINFO "%s", name);
    if (strcmp(name, "UTC") != 0 && access(path, R_OK) != 0)
        return vg_errf(VG_ERR_CONFIG, "timezone \"%s\" is not in the system's tzdata (%s); "
                       "names look like \"Europe/Berlin\" or \"America/New_York\"", name, path);
    setenv("TZ", name, 1);
    tzset();
    return VG_OK;
}

void vg_tz_local(int64_t us, struct tm *out)
{
    time_t t = (time_t)(us / 1000000);
    if (!localtime_r(&t, out))
        memset(out, 0, sizeof(*out));
}

void vg_tz_format(int64_t us, const char *fmt, char *out, size_t cap)
{
    struct tm tm;
    if (cap == 0)
        return;
    vg_tz_local(us, &tm);
    if (strftime(out, cap, fmt, &tm) == 0)
        out[0] = '\0';
}
