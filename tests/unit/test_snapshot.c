/* The fs snapshot store: files land where the URL says, unsafe ids are
 * refused, pruning removes by age and then the oldest until under the cap. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "snapshot.h"

static char dir[64];

static int setup(void **state)
{
    snprintf(dir, sizeof(dir), "/tmp/vigil-snap-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void store(const char *trace, size_t bytes, int age_s, char *path, size_t cap)
{
    char url[1024];
    uint8_t *data = calloc(1, bytes);
    int64_t now = (int64_t)time(NULL);
    assert_int_equal(disp_snapshot_store(dir, "door", now * 1000000, trace, data, bytes, url,
                                         sizeof(url)),
                     VG_OK);
    free(data);
    assert_memory_equal(url, "file://", 7);
    snprintf(path, cap, "%s", url + 7);
    struct timeval tv[2] = {{now - age_s, 0}, {now - age_s, 0}};
    assert_int_equal(utimes(path, tv), 0);
}

static int exists(const char *p) { return access(p, F_OK) == 0; }

static void prune_by_age_then_size(void **state)
{
    char old[1024], mid[1024], young[1024], newest[1024];
    size_t removed = 99;
    store("aaaa", 1000, 10 * 3600, old, sizeof(old));
    store("bbbb", 1000, 3 * 3600, mid, sizeof(mid));
    store("cccc", 1000, 2 * 3600, young, sizeof(young));
    store("dddd", 1000, 60, newest, sizeof(newest));
    /* Age: older than 5 h goes. */
    assert_int_equal(disp_snapshot_prune(dir, 5 * 3600, 0, &removed), VG_OK);
    assert_int_equal(removed, 1);
    assert_false(exists(old));
    assert_true(exists(mid));
    /* Size: 3000 bytes kept at most 2000: the oldest of the rest goes. */
    assert_int_equal(disp_snapshot_prune(dir, 0, 2000, &removed), VG_OK);
    assert_int_equal(removed, 1);
    assert_false(exists(mid));
    assert_true(exists(young) && exists(newest));
    /* Nothing to do, and a missing directory is not an error. */
    assert_int_equal(disp_snapshot_prune(dir, 5 * 3600, 1 << 20, &removed), VG_OK);
    assert_int_equal(removed, 0);
    assert_int_equal(disp_snapshot_prune("/tmp/vigil-no-such-dir", 1, 1, &removed), VG_OK);
}

static void unsafe_ids_refused(void **state)
{
    char url[256];
    assert_int_equal(disp_snapshot_store(dir, "door", 0, "../../etc/x", (const uint8_t *)"x", 1,
                                         url, sizeof(url)),
                     VG_ERR_INVALID);
    assert_int_equal(disp_snapshot_store(dir, "a/b", 0, "abcd", (const uint8_t *)"x", 1, url,
                                         sizeof(url)),
                     VG_ERR_INVALID);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(prune_by_age_then_size, setup, teardown),
        cmocka_unit_test_setup_teardown(unsafe_ids_refused, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
