/* Test fixtures: real servers on loopback ports the test picks itself. */
#ifndef VG_TEST_FIXTURE_H
#define VG_TEST_FIXTURE_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "redis.h"
#include "timeutil.h"

/* A port the kernel just had free on 127.0.0.1. */
static inline int fixture_free_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &len) != 0)
        abort();
    close(fd);
    return ntohs(sa.sin_port);
}

static inline int fixture_port_open(int port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    int ok = fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* Start redis-server on port; returns its pid once it accepts connections. */
static inline pid_t fixture_redis_start(int port)
{
    char portstr[16];
    snprintf(portstr, sizeof(portstr), "%d", port);
    pid_t pid = fork();
    if (pid == 0) {
        freopen("/dev/null", "w", stdout);
        execlp("redis-server", "redis-server", "--port", portstr, "--bind", "127.0.0.1",
               "--save", "", "--appendonly", "no", (char *)NULL);
        _exit(127);
    }
    for (int i = 0; i < 500 && !fixture_port_open(port); i++)
        vg_sleep_us(10000);
    return pid;
}

static inline void fixture_stop(pid_t pid)
{
    if (pid <= 0)
        return;
    kill(pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* A redis-server of the test's own on a free port, and a client connected
 * to it. */
struct fixture_redis {
    int port;
    pid_t redis;
    struct vg_redis *r;
};

static inline int fixture_redis_up(struct fixture_redis *fx)
{
    char url[64];
    fx->port = fixture_free_port();
    fx->redis = fixture_redis_start(fx->port);
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", fx->port);
    if (vg_redis_create(&fx->r, url, 500) != VG_OK || vg_redis_connect(fx->r) != VG_OK)
        return -1;
    return 0;
}

static inline void fixture_redis_down(struct fixture_redis *fx)
{
    vg_redis_destroy(fx->r);
    fx->r = NULL;
    fixture_stop(fx->redis);
}

/* A whole file (test images); NULL if it cannot be read or is empty. */
static inline void *fixture_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    rewind(f);
    void *buf = n > 0 ? malloc((size_t)n) : NULL;
    if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
        free(buf);
        buf = NULL;
    }
    fclose(f);
    *len = buf ? (size_t)n : 0;
    return buf;
}

#endif

#ifndef VG_TEST_FIXTURE_AWS
#define VG_TEST_FIXTURE_AWS
#include <string.h>

/* Credentials the AWS fake accepts (tests/fakes/fake_aws.py). */
#define FIXTURE_AWS_KEY "AKIDVIGILTEST"
#define FIXTURE_AWS_SECRET "vigil/test/secret+key"
#define FIXTURE_AWS_REGION "us-east-1"

/* The port a server wrote to path once listening; 0 if none within timeout_us. */
static inline int fixture_read_port_file(const char *path, int64_t timeout_us)
{
    int port = 0;
    int64_t start = vg_mono_us();
    while (port == 0 && vg_mono_us() - start < timeout_us) {
        FILE *f = fopen(path, "r");
        if (f) {
            if (fscanf(f, "%d", &port) != 1)
                port = 0;
            fclose(f);
        }
        if (port == 0)
            vg_sleep_us(10000);
    }
    return port;
}

/* The test credentials and region, and no way to real AWS credentials or
 * endpoints: no IMDS, no profile files, no AWS_ENDPOINT_URL. */
static inline void fixture_aws_test_env(void)
{
    setenv("AWS_ACCESS_KEY_ID", FIXTURE_AWS_KEY, 1);
    setenv("AWS_SECRET_ACCESS_KEY", FIXTURE_AWS_SECRET, 1);
    unsetenv("AWS_SESSION_TOKEN");
    unsetenv("AWS_PROFILE");
    unsetenv("AWS_ENDPOINT_URL");
    setenv("AWS_REGION", FIXTURE_AWS_REGION, 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent", 1);
}

/* Start tests/fakes/<script> (python3) on a port it picks, with args
 * (NULL-terminated; NULL for none) after --port 0 --port-file; *port gets the
 * port it wrote, 0 if none within 10 s. */
static inline pid_t fixture_fake_start(const char *script, const char *const *args, int *port)
{
    char path[1024], port_file[] = "/tmp/vigil-fake-XXXXXX";
    const char *src = getenv("VIGIL_SOURCE_DIR");
    const char *argv[32] = {"python3", path, "--port", "0", "--port-file", port_file};
    size_t n = 6;
    for (; args && *args; args++) {
        if (n + 1 >= sizeof(argv) / sizeof(argv[0]))
            abort();
        argv[n++] = *args;
    }
    int fd = mkstemp(port_file);
    if (fd < 0)
        abort();
    close(fd);
    snprintf(path, sizeof(path), "%s/tests/fakes/%s", src ? src : ".", script);
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stderr))
            _exit(126);
        execvp("python3", (char *const *)argv);
        _exit(127);
    }
    *port = fixture_read_port_file(port_file, 10LL * 1000000);
    unlink(port_file);
    return pid;
}

/* Start the AWS fake on a free port; *port gets it. Points the AWS client
 * at it (AWS_ENDPOINT_URL) with the test credentials, and keeps the tests
 * away from any real AWS: no IMDS, no profile files. */
static inline pid_t fixture_fake_aws_start(int *port)
{
    const char *args[] = {"--access-key", FIXTURE_AWS_KEY, "--secret-key", FIXTURE_AWS_SECRET,
                          "--region", FIXTURE_AWS_REGION, NULL};
    pid_t pid = fixture_fake_start("fake_aws.py", args, port);
    char url[64];
    fixture_aws_test_env();
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", *port);
    setenv("AWS_ENDPOINT_URL", url, 1);
    return pid;
}
#endif
