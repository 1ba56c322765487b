/* The fs snapshot store on the real filesystem, in a temp dir: the key
 * layout, put/get/link, refs that try to escape the store, the legacy
 * dispatch.snapshot_* fallback, and retention with a tiny budget. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <errno.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <ftw.h>

#include "config.h"
#include "store/snapshot_store.h"

/* 2023-11-14 22:13:20.123456 UTC */
#define TS_US 1700000000123456LL

static struct vg_config cfg;
static char cfg_path[64], dir[64];

static vg_status load(const char *yaml)
{
    if (cfg_path[0])
        unlink(cfg_path);
    snprintf(cfg_path, sizeof(cfg_path), "/tmp/vigil-snapfs-cfg-XXXXXX");
    int fd = mkstemp(cfg_path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, yaml, strlen(yaml)), (ssize_t)strlen(yaml));
    close(fd);
    return vg_cfg_load(&cfg, cfg_path);
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb, (void)flag, (void)ftw;
    return remove(path);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/vigil-snapfs-XXXXXX");
    return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
    (void)state;
    nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    if (cfg_path[0])
        unlink(cfg_path);
    cfg_path[0] = '\0';
    return 0;
}

static struct vg_snap_store *open_fs(const char *extra)
{
    char yaml[1024];
    struct vg_snap_store *s = NULL;
    snprintf(yaml, sizeof(yaml),
             "console: {public_url: \"https://vigil.example:8443/\"}\n"
             "store:\n  snapshots:\n    type: fs\n    dir: %s\n%s", dir, extra ? extra : "");
    assert_int_equal(load(yaml), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_OK);
    assert_string_equal(vg_snap_store_type(s), "fs");
    return s;
}

static void put_get_link(void **state)
{
    (void)state;
    struct vg_snap_store *s = open_fs(NULL);
    char ref[VG_SNAP_REF_MAX], url[2048], path[256];
    const uint8_t jpeg[] = {0xff, 0xd8, 0xff, 0xe0, 'v', 'i', 'g', 'i', 'l', 0xff, 0xd9};
    uint8_t *data = NULL;
    size_t len = 0;
    struct stat sb;

    assert_int_equal(vg_snap_put(s, "porch", TS_US, "4bf92f3577b34da6", jpeg, sizeof(jpeg), ref,
                                 sizeof(ref)), VG_OK);
    assert_string_equal(ref, "fs:frames/porch/2023/11/14/22/4bf92f3577b34da6.jpg");
    snprintf(path, sizeof(path), "%s/frames/porch/2023/11/14/22/4bf92f3577b34da6.jpg", dir);
    assert_int_equal(stat(path, &sb), 0);
    assert_int_equal(sb.st_size, (off_t)sizeof(jpeg));

    assert_int_equal(vg_snap_get(s, ref, 1 << 20, &data, &len), VG_OK);
    assert_int_equal(len, sizeof(jpeg));
    assert_memory_equal(data, jpeg, len);
    free(data);
    assert_int_equal(vg_snap_get(s, ref, sizeof(jpeg) - 1, &data, &len), VG_ERR_TOO_LARGE);

    /* The console's link, not a path of the server's disk. */
    assert_int_equal(vg_snap_link(s, ref, url, sizeof(url)), VG_OK);
    assert_string_equal(url, "https://vigil.example:8443/api/snapshots/frames/porch/2023/11/14/"
                             "22/4bf92f3577b34da6.jpg");
    assert_int_equal(vg_snap_link(s, ref, url, 20), VG_ERR_TOO_LARGE);

    /* The console's path back to the ref. */
    assert_int_equal(vg_snap_ref_of_key("frames/porch/2023/11/14/22/4bf92f3577b34da6.jpg", path,
                                        sizeof(path)), VG_OK);
    assert_string_equal(path, ref);

    /* Pruned meanwhile: not found. */
    assert_int_equal(vg_snap_get(s, "fs:frames/porch/2023/11/14/22/gone.jpg", 1 << 20, &data,
                                 &len), VG_ERR_NOT_FOUND);
    vg_snap_store_close(s);
}

static void bad_refs_are_refused(void **state)
{
    (void)state;
    struct vg_snap_store *s = open_fs(NULL);
    char url[2048], outside[128];
    uint8_t *data = NULL;
    size_t len = 0;
    /* A real file just outside the store, for the refs that aim at it. */
    snprintf(outside, sizeof(outside), "%s/secret.jpg", dir);
    FILE *f = fopen(outside, "w");
    assert_non_null(f);
    fputs("secret", f);
    fclose(f);
    const char *bad[] = {
        "fs:../secret.jpg", "fs:frames/../secret.jpg", "fs:frames/porch/../../secret.jpg",
        "fs:/etc/passwd", "fs:frames//porch/x.jpg", "fs:frames/porch/x.jpg/",
        "fs:frames/./x.jpg", "fs:frames/po\\rch/x.jpg", "fs:frames/porch/x .jpg", "fs:",
        "fs:secret.jpg", "file:///etc/passwd", "s3://vigil-frames/frames/porch/x.jpg",
        "/etc/passwd", "", "FS:frames/porch/x.jpg", "fs:frames/porch/%2e%2e/x.jpg",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vg_snap_get(s, bad[i], 1 << 20, &data, &len), VG_ERR_INVALID);
        assert_int_equal(vg_snap_link(s, bad[i], url, sizeof(url)), VG_ERR_INVALID);
    }
    assert_int_equal(vg_snap_get(s, NULL, 1 << 20, &data, &len), VG_ERR_INVALID);

    /* A link planted inside the tree is not followed out of it. */
    char planted[256];
    snprintf(planted, sizeof(planted), "%s/frames", dir);
    assert_true(mkdir(planted, 0755) == 0 || errno == EEXIST);
    snprintf(planted, sizeof(planted), "%s/frames/porch", dir);
    assert_true(mkdir(planted, 0755) == 0 || errno == EEXIST);
    snprintf(planted, sizeof(planted), "%s/frames/porch/link.jpg", dir);
    assert_int_equal(symlink(outside, planted), 0);
    assert_int_not_equal(vg_snap_get(s, "fs:frames/porch/link.jpg", 1 << 20, &data, &len),
                         VG_OK);
    vg_snap_store_close(s);
}

static void unsafe_names_are_refused(void **state)
{
    (void)state;
    struct vg_snap_store *s = open_fs(NULL);
    char ref[VG_SNAP_REF_MAX];
    const uint8_t b[] = {1, 2, 3};
    const char *bad[] = {"..", "../x", "a/b", ".hidden", "a\\b", "", "a b", "x..y"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(vg_snap_put(s, bad[i], TS_US, "t1", b, 3, ref, sizeof(ref)),
                         VG_ERR_INVALID);
        assert_int_equal(vg_snap_put(s, "porch", TS_US, bad[i], b, 3, ref, sizeof(ref)),
                         VG_ERR_INVALID);
    }
    assert_int_equal(vg_snap_put(s, "porch", TS_US, "t1", b, 0, ref, sizeof(ref)),
                     VG_ERR_INVALID);
    assert_int_equal(vg_snap_put(s, "porch", TS_US, "t1", b, 3, ref, 10), VG_ERR_TOO_LARGE);
    vg_snap_store_close(s);
}

/* No store section: fs in dispatch.snapshot_dir with its age and size. */
static void legacy_dispatch_keys(void **state)
{
    (void)state;
    char yaml[512], ref[VG_SNAP_REF_MAX], path[256];
    struct vg_snap_store *s = NULL;
    struct stat sb;
    snprintf(yaml, sizeof(yaml), "dispatch: {snapshot_dir: %s, snapshot_max_mb: 1}\n", dir);
    assert_int_equal(load(yaml), VG_OK);
    assert_true(vg_snap_store_configured(&cfg));
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_OK);
    assert_string_equal(vg_snap_store_type(s), "fs");
    assert_int_equal(vg_snap_put(s, "yard", TS_US, "abc", (const uint8_t *)"x", 1, ref,
                                 sizeof(ref)), VG_OK);
    snprintf(path, sizeof(path), "%s/frames/yard/2023/11/14/22/abc.jpg", dir);
    assert_int_equal(stat(path, &sb), 0);
    vg_snap_store_close(s);

    /* Neither: no snapshots, and open says why. */
    assert_int_equal(load("console: {addr: 127.0.0.1:8080}\n"), VG_OK);
    assert_false(vg_snap_store_configured(&cfg));
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "snapshot_dir"));
}

static void config_errors(void **state)
{
    (void)state;
    struct vg_snap_store *s = NULL;
    assert_int_equal(load("store:\n  snapshots: {type: ftp}\n"), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "known: fs, s3"));
    assert_int_equal(load("store:\n  snapshots: {type: fs, dir: /tmp, max_age: 3}\n"), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "max_age"));
    assert_int_equal(load("store:\n  snapshots: {type: s3}\n"), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_ERR_CONFIG);
    assert_non_null(strstr(vg_err_detail(), "bucket"));
    assert_int_equal(load("store:\n  snapshots: {type: s3, bucket: b-1, presign_expiry_s: "
                          "604801}\n"), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_ERR_CONFIG);
    assert_int_equal(load("store:\n  pictures: {type: fs}\n"), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_ERR_CONFIG);
}

/* A directory that cannot be created (a file is in the way): a clear error. */
static void unwritable_dir(void **state)
{
    (void)state;
    char yaml[512], blocker[128], ref[VG_SNAP_REF_MAX];
    struct vg_snap_store *s = NULL;
    snprintf(blocker, sizeof(blocker), "%s/blocker", dir);
    FILE *f = fopen(blocker, "w");
    assert_non_null(f);
    fclose(f);
    snprintf(yaml, sizeof(yaml), "store:\n  snapshots: {dir: %s}\n", blocker);
    assert_int_equal(load(yaml), VG_OK);
    assert_int_equal(vg_snap_store_open(&s, &cfg), VG_OK);
    assert_int_equal(vg_snap_put(s, "porch", TS_US, "t1", (const uint8_t *)"x", 1, ref,
                                 sizeof(ref)), VG_ERR_IO);
    assert_non_null(strstr(vg_err_detail(), "mkdir"));
    vg_snap_store_close(s);
}

static void set_mtime(const char *ref, int64_t secs_ago)
{
    char path[512];
    struct timeval tv[2];
    snprintf(path, sizeof(path), "%s/%s", dir, ref + 3);
    tv[0].tv_sec = tv[1].tv_sec = time(NULL) - secs_ago;
    tv[0].tv_usec = tv[1].tv_usec = 0;
    assert_int_equal(utimes(path, tv), 0);
}

/* Budget 1 MB and 2 h: ten 200 kB snapshots an hour apart plus one of last
 * week; the week-old and the oldest go until the rest fit. */
static void prune_tiny_budget(void **state)
{
    (void)state;
    struct vg_snap_store *s = open_fs("    max_mb: 1\n    max_age_h: 48\n");
    enum { N = 10, SIZE = 200 * 1024 };
    static uint8_t big[SIZE];
    char refs[N + 1][VG_SNAP_REF_MAX], trace[32];
    size_t removed = 99;
    uint8_t *data = NULL;
    size_t len = 0;
    memset(big, 0x5a, sizeof(big));
    for (int i = 0; i <= N; i++) {
        snprintf(trace, sizeof(trace), "t%02d", i);
        /* i = 0: a week old; then one per hour, i = N the newest. */
        int64_t ago = i == 0 ? 7 * 86400 : (int64_t)(N - i) * 3600;
        assert_int_equal(vg_snap_put(s, i % 2 ? "porch" : "yard", TS_US - ago * 1000000, trace,
                                     big, i == 0 ? 10 : SIZE, refs[i], sizeof(refs[i])),
                         VG_OK);
        set_mtime(refs[i], ago);
    }
    assert_int_equal(vg_snap_prune(s, &removed), VG_OK);
    /* 10 x 200 kB = 2000 kB: the week-old one by age, then the oldest five
     * until 5 x 200 kB = 1000 kB <= 1024 kB. */
    assert_int_equal(removed, 6);
    for (int i = 0; i <= N; i++) {
        vg_status st = vg_snap_get(s, refs[i], 1 << 20, &data, &len);
        assert_int_equal(st, i <= 5 ? VG_ERR_NOT_FOUND : VG_OK);
        if (st == VG_OK)
            free(data);
    }
    /* A second pass: nothing more to do; the emptied hour folders went. */
    assert_int_equal(vg_snap_prune(s, &removed), VG_OK);
    assert_int_equal(removed, 0);
    char week[16384];
    snprintf(week, sizeof(week), "%s/%s", dir, refs[0] + 3);
    *strrchr(week, '/') = '\0';
    struct stat sb;
    assert_int_not_equal(stat(week, &sb), 0);
    vg_snap_store_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(put_get_link, setup, teardown),
        cmocka_unit_test_setup_teardown(bad_refs_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(unsafe_names_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(legacy_dispatch_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(config_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(unwritable_dir, setup, teardown),
        cmocka_unit_test_setup_teardown(prune_tiny_budget, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
