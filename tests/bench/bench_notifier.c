/* bench.notifier: alerts per second vigil-notifier delivers, per sink, from a
 * JetStream backlog published before it starts: a webhook (an HTTP endpoint
 * in this process that answers 200 at once, keep-alive) and a file outbox
 * (open, write, fsync, close per alert). Four runs: both sinks with
 * notifier.batch 10 (the default) and 100, then each sink alone. Next to
 * them, in the same run: raw NATS publish/subscribe of the same bytes, and
 * the floors of the steps the notifier takes per alert, each alone (a
 * JetStream fetch and AckSync, the Redis claim and done mark, a libcurl POST,
 * an fsync'ed append). Real nats-server -js and redis-server on loopback
 * ports. Prints figures; never fails on time (only when something is broken:
 * a server does not start, a count does not add up, nothing moves for 30 s).
 * Usage: bench_notifier <path of vigil-notifier> [alerts per run, 5000] */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#include <nats/nats.h>

#include "bus.h"
#include "config.h"
#include "fixture.h"
#include "redis.h"
#include "timeutil.h"

#define CAMERA "bench"
#define SUBJECT "vigil.alerts." CAMERA
#define ROUNDS 3
#define STALL_US (30LL * 1000000)      /* no progress this long: broken, not slow */
#define FSYNC_FLOOR_MAX 1000

static int nats_port, redis_port, http_port;
static pid_t nats_pid, redis_pid, ntf_pid;
static char dir[] = "/tmp/vigil-bench-ntf-XXXXXX";

static void hook_stop(void);

static void cleanup(void)
{
    fixture_stop(ntf_pid);
    ntf_pid = 0;
    hook_stop();
    fixture_stop(redis_pid);
    fixture_stop(nats_pid);
}

static void die(const char *what)
{
    fprintf(stderr, "bench.notifier: %s (logs in %s)\n", what, dir);
    cleanup();
    exit(1);
}

static pid_t spawn(char *const argv[], const char *log)
{
    pid_t pid = fork();
    if (pid == 0) {
        /* Gone with the benchmark, even when a test timeout kills it. */
        prctl(PR_SET_PDEATHSIG, SIGTERM);
        if (!freopen(log, "w", stderr) || !freopen("/dev/null", "w", stdout))
            _exit(126);
        execvp(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* ---- the webhook: one thread, poll() over a few keep-alive connections ---- */

#define HOOK_CONNS 8
#define HOOK_BUF 16384

struct hook_conn {
    int fd;
    size_t n;
    char buf[HOOK_BUF + 1];
};

static struct {
    int fd, port, running;
    pthread_t thread;
    atomic_int stop;
    atomic_llong requests, unsigned_requests, connections, first_us, last_us;
    struct hook_conn conns[HOOK_CONNS];
} hook;

static int write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static void hook_record(int is_signed)
{
    int64_t now = vg_mono_us();
    if (atomic_load(&hook.requests) == 0)
        atomic_store(&hook.first_us, now);
    atomic_store(&hook.last_us, now);
    if (!is_signed)
        atomic_fetch_add(&hook.unsigned_requests, 1);
    atomic_fetch_add(&hook.requests, 1);
}

/* Answers every complete request in the buffer; -1 to hang up. */
static int hook_serve(struct hook_conn *c)
{
    static const char ok[] = "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n";
    for (;;) {
        c->buf[c->n] = '\0';
        char *end = strstr(c->buf, "\r\n\r\n");
        if (!end)
            return c->n < HOOK_BUF ? 0 : -1;
        *end = '\0';
        const char *cl = strcasestr(c->buf, "\r\ncontent-length:");
        int is_signed = strcasestr(c->buf, "\r\nx-vigil-signature: sha256=") != NULL;
        *end = '\r';
        size_t total = (size_t)(end + 4 - c->buf) + (cl ? strtoul(cl + 17, NULL, 10) : 0);
        if (total > HOOK_BUF)
            return -1;
        if (c->n < total)
            return 0;
        hook_record(is_signed);
        if (write_all(c->fd, ok, sizeof(ok) - 1) != 0)
            return -1;
        memmove(c->buf, c->buf + total, c->n - total);
        c->n -= total;
    }
}

static void hook_close(struct hook_conn *c)
{
    close(c->fd);
    c->fd = -1;
    c->n = 0;
}

static void hook_accept(void)
{
    int one = 1, fd = accept(hook.fd, NULL, NULL);
    if (fd < 0)
        return;
    for (int i = 0; i < HOOK_CONNS; i++)
        if (hook.conns[i].fd < 0) {
            setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
            hook.conns[i].fd = fd;
            atomic_fetch_add(&hook.connections, 1);
            return;
        }
    close(fd);
}

static void hook_read(struct hook_conn *c)
{
    ssize_t r = read(c->fd, c->buf + c->n, HOOK_BUF - c->n);
    if (r < 0 && errno == EINTR)
        return;
    if (r <= 0) {
        hook_close(c);
        return;
    }
    c->n += (size_t)r;
    if (hook_serve(c) != 0)
        hook_close(c);
}

static void *hook_main(void *arg)
{
    struct pollfd p[HOOK_CONNS + 1];
    (void)arg;
    while (!atomic_load(&hook.stop)) {
        p[0] = (struct pollfd){.fd = hook.fd, .events = POLLIN};
        for (int i = 0; i < HOOK_CONNS; i++)
            p[i + 1] = (struct pollfd){.fd = hook.conns[i].fd, .events = POLLIN};
        if (poll(p, HOOK_CONNS + 1, 100) <= 0)
            continue;
        for (int i = 0; i < HOOK_CONNS; i++)
            if (p[i + 1].revents && hook.conns[i].fd >= 0)
                hook_read(&hook.conns[i]);
        if (p[0].revents & POLLIN)
            hook_accept();
    }
    return NULL;
}

static void hook_start(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int one = 1;
    for (int i = 0; i < HOOK_CONNS; i++)
        hook.conns[i].fd = -1;
    hook.fd = socket(AF_INET, SOCK_STREAM, 0);
    if (hook.fd < 0 || setsockopt(hook.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        bind(hook.fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(hook.fd, 16) != 0 ||
        getsockname(hook.fd, (struct sockaddr *)&sa, &len) != 0)
        die("webhook: cannot listen");
    hook.port = ntohs(sa.sin_port);
    if (pthread_create(&hook.thread, NULL, hook_main, NULL) != 0)
        die("webhook: thread");
    hook.running = 1;
}

static void hook_stop(void)
{
    if (!hook.running)
        return;
    atomic_store(&hook.stop, 1);
    pthread_join(hook.thread, NULL);
    hook.running = 0;
    for (int i = 0; i < HOOK_CONNS; i++)
        if (hook.conns[i].fd >= 0)
            hook_close(&hook.conns[i]);
    close(hook.fd);
}

/* Only while no request is on its way. */
static void hook_reset(void)
{
    atomic_store(&hook.requests, 0);
    atomic_store(&hook.unsigned_requests, 0);
    atomic_store(&hook.connections, 0);
    atomic_store(&hook.first_us, 0);
    atomic_store(&hook.last_us, 0);
}

/* ---- the notifier's HTTP endpoint and /proc ---- */

/* GET path from the notifier's HTTP endpoint into buf; bytes read or -1. */
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
    if (write_all(fd, req, (size_t)len) != 0) {
        close(fd);
        return -1;
    }
    for (ssize_t r; (size_t)n + 1 < cap && (r = read(fd, buf + n, cap - 1 - (size_t)n)) > 0;)
        n += (int)r;
    buf[n] = '\0';
    close(fd);
    return n;
}

/* A sample of the notifier's counter `name` for sink (-1 when unreachable). */
static double sink_metric(const char *name, const char *sink)
{
    static char buf[1 << 18];
    char key[160];
    snprintf(key, sizeof(key), "%s{sink=\"%s\"} ", name, sink);
    if (http_get("/metrics", buf, sizeof(buf)) < 0)
        return -1;
    for (char *p = buf; (p = strstr(p, key)); p += strlen(key))
        if (p == buf || p[-1] == '\n')
            return atof(p + strlen(key));
    return 0;
}

/* User plus system CPU seconds of pid so far. */
static double cpu_s(pid_t pid)
{
    char path[64], line[1024];
    unsigned long long ut = 0, st = 0;
    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *p = fgets(line, sizeof(line), f) ? strrchr(line, ')') : NULL;
    fclose(f);
    if (!p || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Peak resident set of pid in kB (VmHWM). */
static long peak_rss_kb(pid_t pid)
{
    char path[64], line[256];
    long kb = 0;
    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "r");
    while (f && fgets(line, sizeof(line), f))
        if (sscanf(line, "VmHWM: %ld", &kb) == 1)
            break;
    if (f)
        fclose(f);
    return kb;
}

/* ---- servers, configuration ---- */

static void start_servers(void)
{
    char port[16], sd[256], log[256], env[128];
    nats_port = fixture_free_port();
    redis_port = fixture_free_port();
    http_port = fixture_free_port();
    snprintf(port, sizeof(port), "%d", nats_port);
    snprintf(sd, sizeof(sd), "%s/js", dir);
    char *nats_argv[] = {"nats-server", "-js", "-a", "127.0.0.1", "-p", port, "-sd", sd, NULL};
    snprintf(log, sizeof(log), "%s/nats.log", dir);
    nats_pid = spawn(nats_argv, log);
    for (int i = 0; i < 500 && !fixture_port_open(nats_port); i++)
        vg_sleep_us(10000);
    redis_pid = fixture_redis_start(redis_port);
    if (!fixture_port_open(nats_port) || !fixture_port_open(redis_port))
        die("nats-server or redis-server did not start");
    snprintf(env, sizeof(env), "nats://127.0.0.1:%d", nats_port);
    setenv("VIGIL_NATS_URL", env, 1);
    snprintf(env, sizeof(env), "redis://127.0.0.1:%d", redis_port);
    setenv("VIGIL_REDIS_URL", env, 1);
    snprintf(env, sizeof(env), "127.0.0.1:%d", http_port);
    setenv("VIGIL_HTTP_ADDR", env, 1);
}

static void outbox_path(char *out, size_t cap, int run)
{
    snprintf(out, cap, "%s/outbox-%d.jsonl", dir, run);
}

enum { SINK_FILE = 1, SINK_HOOK = 2 };

/* The run's configuration; VIGIL_CONFIG points at it. */
static void write_config(int run, int batch, int sinks)
{
    char cfg[256], outbox[256];
    snprintf(cfg, sizeof(cfg), "%s/vigil-%d.yaml", dir, run);
    outbox_path(outbox, sizeof(outbox), run);
    FILE *f = fopen(cfg, "w");
    if (!f)
        die("cannot write the config");
    fprintf(f, "log_level: warn\ncameras:\n  - id: " CAMERA "\n    url: /dev/null\n"
               "notifier:\n  ack_wait_s: 30\n  batch: %d\n  sinks:\n", batch);
    if (sinks & SINK_FILE)
        fprintf(f, "    - { name: outbox, type: file, path: %s }\n", outbox);
    if (sinks & SINK_HOOK)
        fprintf(f, "    - { name: hook, type: webhook, url: \"http://127.0.0.1:%d/alerts\",\n"
                   "        secret: bench-secret, timeout_ms: 5000 }\n", hook.port);
    fclose(f);
    setenv("VIGIL_CONFIG", cfg, 1);
}

/* The alerts stream as the notifier makes it, so the backlog can be
 * published before the notifier runs. */
static void ensure_stream(char *name, size_t cap)
{
    struct vg_config *cfg = calloc(1, sizeof(*cfg));
    struct vg_bus *bus = NULL;
    if (!cfg || vg_cfg_load(cfg, getenv("VIGIL_CONFIG")) != VG_OK)
        die(cfg ? vg_err_detail() : "out of memory");
    if (vg_bus_connect(&bus, cfg, "bench-notifier", 5000) != VG_OK ||
        vg_bus_ensure_stream(bus, "alerts", (int64_t)cfg->notifier.stream_max_age_h * 3600,
                             vg_alerts_dup_window_s(cfg), name, cap) != VG_OK)
        die(vg_err_detail());
    vg_bus_destroy(bus);
    free(cfg);
}

/* A clean slate for the next run: no alerts, no consumers (the notifier
 * makes its own at start, and they deliver the whole stream). */
static void reset_stream(natsConnection *nc, const char *stream)
{
    static const char *const durables[] = {"notifier-outbox", "notifier-hook"};
    jsCtx *js = NULL;
    jsErrCode jerr = 0;
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK)
        die("jetstream context");
    for (size_t i = 0; i < sizeof(durables) / sizeof(durables[0]); i++)
        js_DeleteConsumer(js, stream, durables[i], NULL, &jerr);
    if (js_PurgeStream(js, stream, NULL, &jerr) != NATS_OK)
        die("purge the alerts stream");
    jsCtx_Destroy(js);
}

/* ---- messages ---- */

/* One packed Alert on camera CAMERA; id is its alert_id. */
static uint8_t *alert(size_t *len, const char *id)
{
    Vigil__V1__Header h = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Alert a = VIGIL__V1__ALERT__INIT;
    Vigil__V1__Box box = VIGIL__V1__BOX__INIT;
    char snap[160];
    snprintf(snap, sizeof(snap), "file:///var/lib/vigil/snapshots/" CAMERA "/%s.jpg", id);
    vg_header_fill(&h, CAMERA, vg_now_us(), NULL);
    box.x = 0.25f, box.y = 0.125f, box.w = 0.2f, box.h = 0.5f;
    a.header = &h;
    a.alert_id = (char *)id;
    a.key = CAMERA "/label/person";
    a.label = "person";
    a.confidence = 0.9f;
    a.box = &box;
    a.snapshot_url = snap;
    a.window_s = 30;
    a.frame_seq = 1;
    uint8_t *buf = NULL;
    if (vg_pb_pack(&a.base, 1 << 20, &buf, len) != VG_OK)
        die("pack");
    return buf;
}

static void alert_id(char out[33], int run, int i)
{
    snprintf(out, 33, "%02x%08x", run, i);
}

static atomic_int publish_errors;

static void on_pub_error(jsCtx *js, jsPubAckErr *pae, void *closure)
{
    (void)js;
    (void)closure;
    if (atomic_fetch_add(&publish_errors, 1) == 0)
        fprintf(stderr, "bench.notifier: jetstream publish: %s (%d)\n",
                pae->ErrText ? pae->ErrText : natsStatus_GetText(pae->Err), (int)pae->ErrCode);
}

/* The run's backlog: n alerts with unique ids, stored in JetStream before the
 * notifier runs. Returns the publish rate. */
static double publish_backlog(natsConnection *nc, int run, int n)
{
    jsCtx *js = NULL;
    jsOptions o;
    jsPubOptions po;
    jsOptions_Init(&o);
    o.PublishAsync.MaxPending = 1024;
    o.PublishAsync.StallWait = 10000;
    o.PublishAsync.ErrHandler = on_pub_error;
    if (natsConnection_JetStream(&js, nc, &o) != NATS_OK)
        die("jetstream context");
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++) {
        char id[33];
        size_t len = 0;
        alert_id(id, run, i);
        uint8_t *buf = alert(&len, id);
        jsPubOptions_Init(&po);
        po.MsgId = id;
        if (js_PublishAsync(js, SUBJECT, buf, (int)len, &po) != NATS_OK)
            die("jetstream publish");
        free(buf);
    }
    jsPubOptions_Init(&po);
    po.MaxWait = 60000;
    if (js_PublishAsyncComplete(js, &po) != NATS_OK || atomic_load(&publish_errors) > 0)
        die("jetstream publish did not complete");
    double rate = n / ((double)(vg_mono_us() - t0) / 1e6);
    jsCtx_Destroy(js);
    return rate;
}

/* ---- raw NATS, for the ratio ---- */

static atomic_llong raw_received;

static void on_raw(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    atomic_fetch_add(&raw_received, 1);
    natsMsg_Destroy(msg);
}

static double run_raw(natsConnection *nc, const uint8_t *buf, size_t len, int n)
{
    natsSubscription *sub = NULL;
    if (natsConnection_Subscribe(&sub, nc, "bench.raw", on_raw, NULL) != NATS_OK)
        die("subscribe");
    natsSubscription_SetPendingLimits(sub, -1, -1);
    natsConnection_Flush(nc);
    atomic_store(&raw_received, 0);
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++)
        if (natsConnection_Publish(nc, "bench.raw", buf, (int)len) != NATS_OK)
            die("publish");
    natsConnection_FlushTimeout(nc, 10000);
    while (atomic_load(&raw_received) < n && vg_mono_us() - t0 < 60000000)
        vg_sleep_us(1000);
    double s = (double)(vg_mono_us() - t0) / 1e6;
    natsSubscription_Destroy(sub);
    return (double)atomic_load(&raw_received) / s;
}

/* ---- floors: the notifier's per-alert steps alone, one at a time ---- */

enum ack_mode { ACK_SYNC, ACK_ASYNC, ACK_NONE };

/* Fetch n messages of the backlog in tens on a consumer of our own and ack
 * each, waiting for the server's answer (AckSync, as the notifier does) or
 * not, or not at all (a consumer without acks); messages per second. */
static double floor_jetstream(natsConnection *nc, const char *stream, int n, enum ack_mode mode)
{
    jsCtx *js = NULL;
    jsConsumerConfig cc;
    jsSubOptions so;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    int got = 0;
    jsConsumerConfig_Init(&cc);
    cc.Durable = "bench-floor";
    cc.AckPolicy = mode == ACK_NONE ? js_AckNone : js_AckExplicit;
    cc.AckWait = 30LL * 1000000000;
    cc.FilterSubject = "vigil.alerts.>";
    jsSubOptions_Init(&so);
    so.Stream = stream;
    so.Consumer = cc.Durable;
    if (natsConnection_JetStream(&js, nc, NULL) != NATS_OK ||
        js_AddConsumer(NULL, js, stream, &cc, NULL, &jerr) != NATS_OK ||
        js_PullSubscribe(&sub, js, cc.FilterSubject, cc.Durable, NULL, &so, &jerr) != NATS_OK)
        die("floor consumer");
    int64_t t0 = vg_mono_us();
    while (got < n) {
        natsMsgList list = {0};
        if (natsSubscription_Fetch(&list, sub, n - got < 10 ? n - got : 10, 5000, &jerr) !=
            NATS_OK)
            die("floor fetch");
        for (int i = 0; i < list.Count; i++, got++)
            if ((mode == ACK_SYNC    ? natsMsg_AckSync(list.Msgs[i], NULL, &jerr)
                 : mode == ACK_ASYNC ? natsMsg_Ack(list.Msgs[i], NULL)
                                     : NATS_OK) != NATS_OK)
                die("floor ack");
        natsMsgList_Destroy(&list);
    }
    if (natsConnection_FlushTimeout(nc, 10000) != NATS_OK)
        die("floor flush");
    double rate = got / ((double)(vg_mono_us() - t0) / 1e6);
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    js_DeleteConsumer(js, stream, cc.Durable, NULL, &jerr);
    jsCtx_Destroy(js);
    return rate;
}

/* The same as floor_jetstream without acks, on a connection that writes
 * every protocol line at once (SendAsap) instead of leaving it to the
 * client's flusher thread. */
static double floor_fetch_asap(const char *stream, int n)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    char url[64];
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", nats_port);
    if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, url) != NATS_OK ||
        natsOptions_SetSendAsap(o, true) != NATS_OK || natsConnection_Connect(&nc, o) != NATS_OK)
        die("connect with SendAsap");
    double rate = floor_jetstream(nc, stream, n, ACK_NONE);
    natsConnection_Destroy(nc);
    natsOptions_Destroy(o);
    return rate;
}

/* One client-server round trip (PING/PONG). */
static double floor_ping(natsConnection *nc, int n)
{
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++)
        if (natsConnection_FlushTimeout(nc, 5000) != NATS_OK)
            die("floor ping");
    return n / ((double)(vg_mono_us() - t0) / 1e6);
}

/* A claim and a done mark shaped like the notifier's (a lease set NX with a
 * TTL; a done key set and the lease dropped); pairs per second. */
static double floor_redis(int n)
{
    static const char claim[] =
        "if redis.call('EXISTS', KEYS[1]) == 1 then return -1 end "
        "if redis.call('SET', KEYS[2], ARGV[1], 'NX', 'PX', ARGV[2]) then return 0 end "
        "return 1";
    static const char done[] =
        "redis.call('SET', KEYS[1], '1', 'EX', ARGV[2]) "
        "if redis.call('GET', KEYS[2]) == ARGV[1] then redis.call('DEL', KEYS[2]) end "
        "return 1";
    struct vg_redis *r = NULL;
    if (vg_redis_create(&r, getenv("VIGIL_REDIS_URL"), 2000) != VG_OK ||
        vg_redis_connect(r) != VG_OK)
        die("redis connect");
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++) {
        char d[64], l[64];
        redisReply *rep = NULL;
        snprintf(d, sizeof(d), "bench:floor:%d", i);
        snprintf(l, sizeof(l), "bench:floor:%d:lease", i);
        if (vg_redis_cmd(r, &rep, "EVAL %s 2 %s %s %s %d", claim, d, l, "bench", 60000) != VG_OK)
            die(vg_err_detail());
        freeReplyObject(rep);
        if (vg_redis_cmd(r, &rep, "EVAL %s 2 %s %s %s %d", done, d, l, "bench", 86400) != VG_OK)
            die(vg_err_detail());
        freeReplyObject(rep);
    }
    double rate = n / ((double)(vg_mono_us() - t0) / 1e6);
    vg_redis_destroy(r);
    return rate;
}

/* POSTs of body to the in-process webhook on one reused libcurl handle. */
static double floor_http(const char *body, int n)
{
    char url[64];
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    CURL *c = curl_easy_init();
    if (!c || !h)
        die("curl");
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/floor", hook.port);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 5000L);
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++)
        if (curl_easy_perform(c) != CURLE_OK)
            die("floor POST");
    double rate = n / ((double)(vg_mono_us() - t0) / 1e6);
    curl_easy_cleanup(c);
    curl_slist_free_all(h);
    return rate;
}

/* What the file sink does per alert: open, append a line, fsync, close. */
static double floor_fsync(const char *line, int n)
{
    char path[256];
    size_t len = strlen(line);
    snprintf(path, sizeof(path), "%s/floor.jsonl", dir);
    int64_t t0 = vg_mono_us();
    for (int i = 0; i < n; i++) {
        int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
        if (fd < 0 || write_all(fd, line, len) != 0 || fsync(fd) != 0 || close(fd) != 0)
            die("floor fsync");
    }
    return n / ((double)(vg_mono_us() - t0) / 1e6);
}

enum { F_ACKSYNC, F_ACK, F_FETCH, F_FETCH_ASAP, F_PING, F_REDIS, F_HTTP, F_FSYNC, F_COUNT };

static const char *const floor_names[F_COUNT] = {
    "JetStream fetch(10)+AckSync", "JetStream fetch(10)+Ack",   "JetStream fetch(10), no ack",
    "  the same, SendAsap",        "NATS round trip (PING)",    "Redis claim+done (2 EVAL)",
    "HTTP POST (libcurl)",         "open+write+fsync+close",
};

static void measure_floors(double f[F_COUNT], natsConnection *nc, const char *stream, int n,
                           int fsync_n)
{
    f[F_ACKSYNC] = floor_jetstream(nc, stream, n, ACK_SYNC);
    f[F_ACK] = floor_jetstream(nc, stream, n, ACK_ASYNC);
    f[F_FETCH] = floor_jetstream(nc, stream, n, ACK_NONE);
    f[F_FETCH_ASAP] = floor_fetch_asap(stream, n);
    f[F_PING] = floor_ping(nc, n);
    f[F_REDIS] = floor_redis(n);
    f[F_HTTP] = floor_http("{\"alert_id\":\"00ffffffff\",\"camera\":\"" CAMERA "\","
                           "\"label\":\"person\",\"confidence\":0.9}", n);
    f[F_FSYNC] = floor_fsync("{\"alert_id\":\"00ffffffff\",\"camera\":\"" CAMERA "\","
                             "\"label\":\"person\",\"confidence\":0.9}\n", fsync_n);
}

/* ---- one notifier run ---- */

struct sink_run {
    double first_s, done_s;             /* after the notifier was started */
    double delivered, failures, retries, duplicates;
};

struct run {
    int batch, sinks;
    double publish_rate, ready_s, wall_s;
    double cpu_notifier, cpu_nats, cpu_redis;
    long rss_kb;
    long long connections, unsigned_requests;
    struct sink_run hook, file;
};

/* Lines in the outbox so far; reads only what was appended since last time. */
struct outbox {
    int fd;
    off_t off;
    long long lines;
};

static long long outbox_lines(struct outbox *o, const char *path)
{
    char buf[65536];
    ssize_t r;
    if (o->fd < 0)
        o->fd = open(path, O_RDONLY | O_CLOEXEC);
    while (o->fd >= 0 && (r = pread(o->fd, buf, sizeof(buf), o->off)) > 0) {
        o->off += r;
        for (ssize_t i = 0; i < r; i++)
            o->lines += buf[i] == '\n';
    }
    return o->lines;
}

static void start_notifier(const char *bin, int run)
{
    char log[256], buf[512];
    char *argv[] = {(char *)bin, "--config", getenv("VIGIL_CONFIG"), NULL};
    snprintf(log, sizeof(log), "%s/notifier-%d.log", dir, run);
    ntf_pid = spawn(argv, log);
    for (int i = 0; i < 3000; i++) {
        if (http_get("/readyz", buf, sizeof(buf)) > 0 && strstr(buf, " 200 "))
            return;
        if (waitpid(ntf_pid, NULL, WNOHANG) == ntf_pid) {
            ntf_pid = 0;
            die("vigil-notifier exited at start (see its log; is the path right?)");
        }
        vg_sleep_us(10000);
    }
    die("vigil-notifier did not get ready (see its log)");
}

/* Until each sink of the run has n alerts; dies only when nothing moves for
 * STALL_US. */
static void watch(struct run *r, int run, int n, int64_t t0)
{
    char path[256];
    struct outbox o = {.fd = -1};
    long long seen = -1, lines = 0, reqs = 0;
    int64_t moved = vg_mono_us(), file_first = 0, file_done = 0;
    int want_file = r->sinks & SINK_FILE, want_hook = r->sinks & SINK_HOOK;
    outbox_path(path, sizeof(path), run);
    while ((want_file && !file_done) || (want_hook && reqs < n)) {
        int64_t now = vg_mono_us();
        lines = want_file ? outbox_lines(&o, path) : 0;
        reqs = atomic_load(&hook.requests);
        if (lines > 0 && !file_first)
            file_first = now;
        if (lines >= n && !file_done)
            file_done = now;
        if (lines + reqs != seen)
            seen = lines + reqs, moved = now;
        if (now - moved > STALL_US)
            die("no progress for 30 s");
        vg_sleep_us(2000);
    }
    if (o.fd >= 0)
        close(o.fd);
    if (want_file)
        r->file = (struct sink_run){(double)(file_first - t0) / 1e6,
                                    (double)(file_done - t0) / 1e6, 0, 0, 0, 0};
    if (want_hook)
        r->hook = (struct sink_run){(double)(atomic_load(&hook.first_us) - t0) / 1e6,
                                    (double)(atomic_load(&hook.last_us) - t0) / 1e6, 0, 0, 0, 0};
}

/* The notifier's own account, once its last acks are in. */
static void settle(struct sink_run *s, const char *sink, int n)
{
    int64_t t0 = vg_mono_us();
    while ((s->delivered = sink_metric("vigil_notifier_delivered_total", sink)) < n &&
           vg_mono_us() - t0 < STALL_US)
        vg_sleep_us(5000);
    if (s->delivered != n) {
        fprintf(stderr, "bench.notifier: sink %s: delivered_total %.0f for %d alerts\n", sink,
                s->delivered, n);
        die("the notifier's delivered counter does not match what the sinks received");
    }
    s->failures = sink_metric("vigil_notifier_sink_failures_total", sink);
    s->retries = sink_metric("vigil_notifier_retry_later_total", sink);
    s->duplicates = sink_metric("vigil_notifier_duplicates_total", sink);
}

static void run_notifier(struct run *r, const char *bin, int run, int n)
{
    hook_reset();
    double nats0 = cpu_s(nats_pid), redis0 = cpu_s(redis_pid);
    int64_t t0 = vg_mono_us();
    start_notifier(bin, run);
    r->ready_s = (double)(vg_mono_us() - t0) / 1e6;
    watch(r, run, n, t0);
    r->wall_s = (double)(vg_mono_us() - t0) / 1e6;
    r->cpu_notifier = cpu_s(ntf_pid);
    r->cpu_nats = cpu_s(nats_pid) - nats0;
    r->cpu_redis = cpu_s(redis_pid) - redis0;
    if (r->sinks & SINK_HOOK)
        settle(&r->hook, "hook", n);
    if (r->sinks & SINK_FILE)
        settle(&r->file, "outbox", n);
    r->rss_kb = peak_rss_kb(ntf_pid);
    r->connections = atomic_load(&hook.connections);
    r->unsigned_requests = atomic_load(&hook.unsigned_requests);
    if (atomic_load(&hook.requests) != ((r->sinks & SINK_HOOK) ? n : 0))
        die("the webhook got a different number of requests than alerts");
    fixture_stop(ntf_pid);
    ntf_pid = 0;
}

/* ---- report ---- */

/* From the first alert to the last: n - 1 intervals. */
static double rate(const struct sink_run *s, int n)
{
    return n > 1 && s->done_s > s->first_s ? (n - 1) / (s->done_s - s->first_s) : 0;
}

static double median3(const double v[3])
{
    double a = v[0], b = v[1], c = v[2];
    return a > b ? (b > c ? b : (a > c ? c : a)) : (a > c ? a : (b > c ? c : b));
}

static void print_sink(const char *what, const struct sink_run *s, int n, double raw)
{
    printf("    %-12s: %6.0f alerts/s  %5.0f us each  ratio to raw %.4f  (first %.3f s after "
           "start, last %.2f s; failures %.0f, retried %.0f, duplicates %.0f)\n",
           what, rate(s, n), 1e6 / rate(s, n), rate(s, n) / raw, s->first_s, s->done_s,
           s->failures, s->retries, s->duplicates);
}

static void print_run(const struct run *r, int n, double raw)
{
    int k = (r->sinks & SINK_FILE ? 1 : 0) + (r->sinks & SINK_HOOK ? 1 : 0);
    printf("  sinks %s, notifier.batch %d (backlog published at %.0f msg/s; ready %.2f s "
           "after start):\n", k == 2 ? "webhook + file" : r->sinks & SINK_HOOK ? "webhook alone"
           : "file alone", r->batch, r->publish_rate, r->ready_s);
    if (r->sinks & SINK_HOOK)
        print_sink("webhook", &r->hook, n, raw);
    if (r->sinks & SINK_FILE)
        print_sink("file, fsync", &r->file, n, raw);
    printf("    CPU s       : notifier %.2f, nats-server %.2f, redis-server %.2f in %.2f s "
           "wall; %.0f us notifier CPU per alert and sink\n", r->cpu_notifier, r->cpu_nats,
           r->cpu_redis, r->wall_s, r->cpu_notifier * 1e6 / (k * (double)n));
    printf("    peak RSS    : %ld kB (VmHWM)", r->rss_kb);
    if (r->sinks & SINK_HOOK)
        printf("; webhook connections %lld, unsigned requests %lld", r->connections,
               r->unsigned_requests);
    printf("\n");
}

static void print_floors(const double f[F_COUNT], int n, int fsync_n)
{
    printf("  floors, one step at a time in this process (%d each, %d fsyncs):\n", n, fsync_n);
    for (int i = 0; i < F_COUNT; i++)
        printf("    %-28s: %8.0f /s  %5.0f us each\n", floor_names[i], f[i], 1e6 / f[i]);
    printf("    %-28s: %8.0f /s  %5.0f us each\n", "AckSync + 2 EVAL + POST",
           1.0 / (1.0 / f[F_ACKSYNC] + 1.0 / f[F_REDIS] + 1.0 / f[F_HTTP]),
           1e6 / f[F_ACKSYNC] + 1e6 / f[F_REDIS] + 1e6 / f[F_HTTP]);
}

#define N_RUNS 4

int main(int argc, char **argv)
{
    if (argc < 2)
        die("usage: bench_notifier <vigil-notifier> [alerts per run]");
    int n = argc > 2 ? atoi(argv[2]) : 5000;
    int floor_n = n < 5000 ? n : 5000, fsync_n = n < FSYNC_FLOOR_MAX ? n : FSYNC_FLOOR_MAX;
    char url[64], stream[64];
    if (n <= 0 || !mkdtemp(dir))
        die("bad count, or mkdtemp");
    signal(SIGPIPE, SIG_IGN);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    vg_set_producer("bench");
    start_servers();
    hook_start();
    natsConnection *nc = NULL;
    snprintf(url, sizeof(url), "nats://127.0.0.1:%d", nats_port);
    if (natsConnection_ConnectTo(&nc, url) != NATS_OK)
        die("connect to nats-server");
    struct run runs[N_RUNS] = {{.batch = 10, .sinks = SINK_FILE | SINK_HOOK},
                               {.batch = 100, .sinks = SINK_FILE | SINK_HOOK},
                               {.batch = 10, .sinks = SINK_HOOK},
                               {.batch = 10, .sinks = SINK_FILE}};
    write_config(1, runs[0].batch, runs[0].sinks);
    ensure_stream(stream, sizeof(stream));

    size_t len = 0;
    uint8_t *sample = alert(&len, "00ffffffff");
    double raws[ROUNDS], floors[F_COUNT];
    /* Raw rounds between the notifier runs; the median is the reference. */
    for (int i = 0; i < N_RUNS; i++) {
        if (i < ROUNDS)
            raws[i] = run_raw(nc, sample, len, n * 20);
        reset_stream(nc, stream);
        write_config(i + 1, runs[i].batch, runs[i].sinks);
        runs[i].publish_rate = publish_backlog(nc, i + 1, n);
        if (i == 0)
            measure_floors(floors, nc, stream, floor_n, fsync_n);
        run_notifier(&runs[i], argv[1], i + 1, n);
    }
    double raw = median3(raws);
    printf("bench.notifier: %d alerts of %zu bytes per run, published to JetStream before "
           "the notifier starts; webhook: HTTP 200 at once from this process, keep-alive, "
           "signed; file: fsync per alert; log_level warn; logs in %s\n", n, len, dir);
    printf("  raw NATS publish/subscribe  : %8.0f msg/s (median of %.0f, %.0f, %.0f)\n", raw,
           raws[0], raws[1], raws[2]);
    print_floors(floors, floor_n, fsync_n);
    for (int i = 0; i < N_RUNS; i++)
        print_run(&runs[i], n, raw);
    printf("notifier: webhook %.0f alerts/s, file %.0f alerts/s (fsync per alert), raw NATS "
           "%.0f msg/s, ratio webhook/raw %.4f (both sinks, batch 10); batch 100: webhook "
           "%.0f, file %.0f; alone: webhook %.0f, file %.0f\n", rate(&runs[0].hook, n),
           rate(&runs[0].file, n), raw, rate(&runs[0].hook, n) / raw, rate(&runs[1].hook, n),
           rate(&runs[1].file, n), rate(&runs[2].hook, n), rate(&runs[3].file, n));
    free(sample);
    natsConnection_Destroy(nc);
    cleanup();
    curl_global_cleanup();
    return 0;
}
