/* bench.dedupe: sightings per second one vigil-dedupe replica handles on a
 * busy scene (one camera, the same label, many detections, so nearly all
 * are suppressed), next to raw NATS publish/subscribe of the same messages
 * in the same run. Real nats-server -js and redis-server on loopback ports.
 * Prints both rates, their ratio and how many Redis calls the run cost.
 * Prints figures; never fails on time.
 * Usage: bench_dedupe <path of vigil-dedupe> [messages] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bus.h"
#include "fixture.h"
#include "timeutil.h"

#define CAMERA "bench"

static int nats_port, redis_port, http_port;
static pid_t nats_pid, redis_pid, dedupe_pid;

static void cleanup(void)
{
    fixture_stop(dedupe_pid);
    fixture_stop(redis_pid);
    fixture_stop(nats_pid);
}

static void die(const char *what)
{
    fprintf(stderr, "bench.dedupe: %s\n", what);
    cleanup();
    exit(1);
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        if (!freopen(log, "w", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* GET path from the service's HTTP endpoint into buf; bytes read or -1. */
static int http_get(const char *path, char *buf, size_t cap)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)http_port),
                             .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    char req[128];
    int fd = socket(AF_INET, SOCK_STREAM, 0), n = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        if (fd >= 0)
            close(fd);
        return -1;
    }
    int len = snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    if (write(fd, req, (size_t)len) != len) {
        close(fd);
        return -1;
    }
    for (ssize_t r; (size_t)n + 1 < cap && (r = read(fd, buf + n, cap - 1 - (size_t)n)) > 0;)
        n += (int)r;
    buf[n] = '\0';
    close(fd);
    return n;
}

static double metric(const char *name)
{
    static char buf[1 << 18];
    if (http_get("/metrics", buf, sizeof(buf)) < 0)
        return -1;
    for (char *p = buf; (p = strstr(p, name)); p += strlen(name))
        if ((p == buf || p[-1] == '\n') && p[strlen(name)] == ' ')
            return atof(p + strlen(name) + 1);
    return 0;
}

static void start_servers(const char *dedupe_bin, const char *dir)
{
    char port[16], sd[256], cfg[256], env[512];
    nats_port = fixture_free_port();
    redis_port = fixture_free_port();
    http_port = fixture_free_port();
    snprintf(port, sizeof(port), "%d", nats_port);
    snprintf(sd, sizeof(sd), "%s/js", dir);
    char *nats_argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", sd, NULL};
    snprintf(env, sizeof(env), "%s/nats.log", dir);
    nats_pid = spawn(nats_argv, env);
    for (int i = 0; i < 500 && !fixture_port_open(nats_port); i++)
        vg_sleep_us(10000);
    redis_pid = fixture_redis_start(redis_port);

    snprintf(cfg, sizeof(cfg), "%s/vigil.yaml", dir);
    FILE *f = fopen(cfg, "w");
    if (!f)
        die("cannot write the config");
    fprintf(f, "log_level: warn\ncameras:\n  - id: " CAMERA "\n    url: /dev/null\n"
               "dedupe:\n  window_s: 30\n");
    fclose(f);
    setenv("VIGIL_CONFIG", cfg, 1);
    snprintf(env, sizeof(env), "nats://127.0.0.1:%d", nats_port);
    setenv("VIGIL_NATS_URL", env, 1);
    snprintf(env, sizeof(env), "redis://127.0.0.1:%d", redis_port);
    setenv("VIGIL_REDIS_URL", env, 1);
    snprintf(env, sizeof(env), "127.0.0.1:%d", http_port);
    setenv("VIGIL_HTTP_ADDR", env, 1);
    char *dd_argv[] = {(char *)dedupe_bin, NULL};
    snprintf(env, sizeof(env), "%s/dedupe.log", dir);
    dedupe_pid = spawn(dd_argv, env);
    char buf[512];
    for (int i = 0; i < 2000; i++) {
        if (http_get("/readyz", buf, sizeof(buf)) > 0 && strstr(buf, " 200 "))
            return;
        vg_sleep_us(10000);
    }
    die("vigil-dedupe did not get ready (see its log)");
}

/* One packed Detection: camera CAMERA, one "person" label. */
static uint8_t *detection(size_t *len, uint64_t seq)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Label l = VIGIL__V1__LABEL__INIT, *labels[1] = {&l};
    Vigil__V1__Detection d = VIGIL__V1__DETECTION__INIT;
    vg_header_fill(&h, CAMERA, vg_now_us(), NULL);
    l.name = "person";
    l.raw_name = "person";
    l.confidence = 0.9f;
    d.header = &h;
    d.frame_seq = seq;
    d.detector = "bench";
    d.labels = labels;
    d.n_labels = 1;
    uint8_t *buf = NULL;
    if (vg_pb_pack(&d.base, 1 << 20, &buf, len) != VG_OK)
        die("pack");
    return buf;
}

#define ROUNDS 3

static double median3(const double v[3])
{
    double a = v[0], b = v[1], c = v[2];
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

static volatile int64_t raw_received;

static void on_raw(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    __atomic_add_fetch(&raw_received, 1, __ATOMIC_RELAXED);
    natsMsg_Destroy(msg);
}

static void publish_n(natsConnection *nc, const char *subject, const uint8_t *buf, size_t len,
                      int n)
{
    for (int i = 0; i < n; i++)
        if (natsConnection_Publish(nc, subject, buf, (int)len) != NATS_OK)
            die("publish");
    natsConnection_FlushTimeout(nc, 10000);
}

static double run_raw(natsConnection *nc, const uint8_t *buf, size_t len, int n)
{
    natsSubscription *sub = NULL;
    if (natsConnection_Subscribe(&sub, nc, "bench.raw", on_raw, NULL) != NATS_OK)
        die("subscribe");
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(nc);
    raw_received = 0;
    int64_t t0 = vg_mono_us();
    publish_n(nc, "bench.raw", buf, len, n);
    while (__atomic_load_n(&raw_received, __ATOMIC_RELAXED) < n && vg_mono_us() - t0 < 60000000)
        vg_sleep_us(1000);
    double s = (double)(vg_mono_us() - t0) / 1e6;
    natsSubscription_Destroy(sub);
    return raw_received / s;
}

static double run_dedupe(natsConnection *nc, const uint8_t *buf, size_t len, int n)
{
    double before = metric("vigil_dedupe_sightings_total"), seen = before;
    int64_t t0 = vg_mono_us();
    publish_n(nc, "vigil.detections." CAMERA, buf, len, n);
    while ((seen = metric("vigil_dedupe_sightings_total")) < before + n &&
           vg_mono_us() - t0 < 120000000)
        vg_sleep_us(2000);
    double s = (double)(vg_mono_us() - t0) / 1e6;
    return (seen - before) / s;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: bench_dedupe <vigil-dedupe> [messages]");
    int n = argc > 2 ? atoi(argv[2]) : 50000;
    char dir[] = "/tmp/vigil-bench-dd-XXXXXX", url[64];
    if (!mkdtemp(dir))
        die("mkdtemp");
    start_servers(argv[1], dir);
    natsConnection *nc = NULL;
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", nats_port);
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
        die("connect to nats-server");
    size_t len = 0;
    uint8_t *buf = detection(&len, 1);
    run_dedupe(nc, buf, len, 1000); /* warm up: the window opens */
    /* Rounds alternate so both see the same machine; the median is reported. */
    double raws[ROUNDS], dds[ROUNDS];
    for (int i = 0; i < ROUNDS; i++) {
        raws[i] = run_raw(nc, buf, len, n);
        dds[i] = run_dedupe(nc, buf, len, n);
    }
    double raw = median3(raws), dd = median3(dds);
    double calls = metric("vigil_dedupe_redis_window_calls_total");
    double sightings = metric("vigil_dedupe_sightings_total");
    double alerts = metric("vigil_dedupe_alerts_total");
    printf("bench.dedupe: %d detections of %zu bytes per round, one camera, one label, "
           "window 30 s\n", n, len);
    printf("  rounds (raw, dedupe)       : %.0f/%.0f  %.0f/%.0f  %.0f/%.0f\n", raws[0], dds[0],
           raws[1], dds[1], raws[2], dds[2]);
    printf("  raw NATS publish/subscribe : %10.0f msg/s (median)\n", raw);
    printf("  vigil-dedupe (one replica) : %10.0f sightings/s (median)\n", dd);
    printf("  ratio dedupe / raw         : %10.2f\n", raw > 0 ? dd / raw : 0);
    printf("  redis window calls         : %10.0f for %.0f sightings (%.0f alerts)\n", calls,
           sightings, alerts);
    free(buf);
    natsConnection_Destroy(nc);
    cleanup();
    return 0;
}
