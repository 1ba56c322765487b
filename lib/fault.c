#include "fault.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

int vg_fault_armed(const char *point)
{
    /* Read on every call: the points sit on rare paths (an alert, not a
     * sighting), and a test may set the variable after start-up. */
    const char *list = getenv("VIGIL_FAULT");
    size_t n = strlen(point);
    if (!list || !n)
        return 0;
    for (const char *p = list; *p;) {
        size_t len = strcspn(p, ",");
        if (len == n && !strncmp(p, point, n))
            return 1;
        p += len + (p[len] == ',');
    }
    return 0;
}

void vg_fault_point(const char *point)
{
    if (!vg_fault_armed(point))
        return;
    VG_ERROR("fault.injected", NULL, "VIGIL_FAULT=%s: killing this process (test hook)", point);
    raise(SIGKILL);
}
