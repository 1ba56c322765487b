/* AWS emulators for integration tests: s3rver (S3) and dynalite (DynamoDB)
 * from tests/emulators/node_modules (scripts/deps installs them), each
 * behind tests/fakes/sigv4_proxy.py, which checks every request's SigV4
 * signature with the test credentials of fixture.h. All on loopback ports
 * picked here; stop each process with fixture_stop(pid). */
#ifndef VG_TEST_EMULATORS_H
#define VG_TEST_EMULATORS_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "fixture.h"
#include "timeutil.h"

#define EMULATOR_START_TIMEOUT_US (30 * 1000000LL)

static inline const char *emulator_src_dir(void)
{
    const char *src = getenv("VIGIL_SOURCE_DIR");
    return src && *src ? src : ".";
}

/* Wait until port accepts connections; -1 (child reaped) when the child
 * exits first or the timeout passes. Prints how long it took. */
static inline pid_t emulator_wait_port(pid_t pid, int port, const char *what)
{
    int64_t start = vg_mono_us();
    if (pid <= 0)
        return -1;
    while (!fixture_port_open(port)) {
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid) {
            fprintf(stderr, "emulators: %s exited (status %d) before listening\n", what,
                    status);
            return -1;
        }
        if (vg_mono_us() - start > EMULATOR_START_TIMEOUT_US) {
            fprintf(stderr, "emulators: %s not listening on %d after 30 s\n", what, port);
            fixture_stop(pid);
            return -1;
        }
        vg_sleep_us(10000);
    }
    fprintf(stderr, "emulators: %s listening on 127.0.0.1:%d after %lld ms\n", what, port,
            (long long)((vg_mono_us() - start) / 1000));
    return pid;
}

static inline pid_t emulator_spawn(char *const argv[])
{
    if (argv[1] && argv[1][0] == '/' && access(argv[1], R_OK) != 0) {
        fprintf(stderr, "emulators: %s: %s (run scripts/deps)\n", argv[1], strerror(errno));
        return -1;
    }
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen("/dev/null", "w", stdout))
            _exit(126);
        execvp(argv[0], argv);
        fprintf(stderr, "emulators: exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    return pid;
}

/* s3rver on port, storing objects under dir (which it creates). */
static inline pid_t fixture_s3rver_start(int port, const char *dir)
{
    char bin[1024], portstr[16];
    snprintf(bin, sizeof(bin), "%s/tests/emulators/node_modules/.bin/s3rver",
             emulator_src_dir());
    snprintf(portstr, sizeof(portstr), "%d", port);
    char *argv[] = {"node", bin, "--address", "127.0.0.1", "--port", portstr,
                    "--directory", (char *)dir, "--silent", NULL};
    return emulator_wait_port(emulator_spawn(argv), port, "s3rver");
}

/* dynalite on port, in memory. */
static inline pid_t fixture_dynalite_start(int port)
{
    char bin[1024], portstr[16];
    snprintf(bin, sizeof(bin), "%s/tests/emulators/node_modules/.bin/dynalite",
             emulator_src_dir());
    snprintf(portstr, sizeof(portstr), "%d", port);
    char *argv[] = {"node", bin, "--host", "127.0.0.1", "--port", portstr, NULL};
    return emulator_wait_port(emulator_spawn(argv), port, "dynalite");
}

/* The SigV4-checking proxy for service ("s3" or "dynamodb") in front of
 * 127.0.0.1:upstream_port; *port gets its own port. upstream_key: the access
 * key the emulator knows, swapped in after verification (s3rver knows only
 * its built-in "S3RVER"); NULL forwards the credential as it came. extra:
 * more of sigv4_proxy.py's arguments (e.g. --policy), NULL-terminated, or
 * NULL. */
static inline pid_t fixture_sigv4_proxy_start_with(const char *service, int upstream_port,
                                                   const char *upstream_key,
                                                   char *const *extra, int *port)
{
    char script[1024], upstream[64], port_file[] = "/tmp/vigil-sigv4-proxy-XXXXXX";
    int fd = mkstemp(port_file);
    if (fd < 0)
        abort();
    close(fd);
    snprintf(script, sizeof(script), "%s/tests/fakes/sigv4_proxy.py", emulator_src_dir());
    snprintf(upstream, sizeof(upstream), "http://127.0.0.1:%d", upstream_port);
    char *argv[64] = {"python3", script, "--service", (char *)service, "--upstream", upstream,
                      "--port", "0", "--port-file", port_file,
                      "--access-key", FIXTURE_AWS_KEY, "--secret-key", FIXTURE_AWS_SECRET,
                      "--region", FIXTURE_AWS_REGION};
    size_t n = 0;
    while (argv[n])
        n++;
    if (upstream_key) {
        argv[n++] = "--upstream-access-key";
        argv[n++] = (char *)upstream_key;
    }
    for (size_t i = 0; extra && extra[i] && n + 1 < sizeof(argv) / sizeof(argv[0]); i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    pid_t pid = emulator_spawn(argv);
    *port = pid > 0 ? fixture_read_port_file(port_file, EMULATOR_START_TIMEOUT_US) : 0;
    unlink(port_file);
    if (*port == 0) {
        fixture_stop(pid);
        return -1;
    }
    return emulator_wait_port(pid, *port, "sigv4 proxy");
}

static inline pid_t fixture_sigv4_proxy_start(const char *service, int upstream_port,
                                              const char *upstream_key, int *port)
{
    return fixture_sigv4_proxy_start_with(service, upstream_port, upstream_key, NULL, port);
}


#endif
