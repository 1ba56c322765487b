/* vigilctl flood: publish random bytes on a subject, for tests that check
 * the services survive (and log boundedly through) a storm of bad input.
 * Bounded: at most FLOOD_MAX_COUNT messages of at most FLOOD_MAX_SIZE
 * bytes, and only to a NATS server on loopback unless --remote is given. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "ctl.h"
#include "timeutil.h"

#define FLOOD_MAX_COUNT 10000000L
#define FLOOD_MAX_SIZE (1L << 20)
#define FLOOD_POOL_EXTRA 65536

/* Is every server of the NATS URL list on loopback? */
static int loopback_only(const char *urls)
{
    const char *p = urls;
    while (p && *p) {
        const char *host = strstr(p, "://");
        if (!host)
            return 0;
        host += 3;
        const char *end = host + strcspn(host, ",/");
        const char *at = NULL;
        for (const char *q = host; q < end; q++)
            if (*q == '@')
                at = q;
        if (at)
            host = at + 1;
        size_t n = (size_t)(end - host);
        int ok = (n >= 9 && !strncmp(host, "127.0.0.1", 9)) ||
                 (n >= 9 && !strncmp(host, "localhost", 9)) ||
                 (n >= 5 && !strncmp(host, "[::1]", 5));
        if (!ok)
            return 0;
        p = strchr(end, ',');
        if (p)
            p++;
    }
    return 1;
}

static int parse_long(const char *what, const char *s, long lo, long hi, long *out)
{
    char *end = NULL;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) {
        fprintf(stderr, "vigilctl flood: %s must be %ld..%ld, not \"%s\"\n", what, lo, hi, s);
        return -1;
    }
    *out = v;
    return 0;
}

/* Random lengths in [size/2, size] (never 0: an empty payload is a valid
 * protobuf message), taken at random offsets of one random pool. */
static int flood(struct ctl *c, const char *subject, long count, long size, long rate)
{
    size_t pool_len = (size_t)size + FLOOD_POOL_EXTRA;
    uint8_t *pool = malloc(pool_len);
    uint32_t *rnd = malloc(sizeof(uint32_t) * 4096);
    int rc = 1;
    if (!pool || !rnd || RAND_bytes(pool, (int)pool_len) != 1) {
        fprintf(stderr, "vigilctl flood: cannot make random data\n");
        goto out;
    }
    int64_t t0 = vg_mono_us();
    long sent = 0, min_len = size / 2 > 0 ? size / 2 : 1;
    uint64_t bytes = 0;
    for (; sent < count && !ctl_interrupted(); sent++) {
        if (sent % 2048 == 0 && RAND_bytes((uint8_t *)rnd, sizeof(uint32_t) * 4096) != 1)
            goto out;
        uint32_t r1 = rnd[(sent % 2048) * 2], r2 = rnd[(sent % 2048) * 2 + 1];
        size_t len = (size_t)(min_len + (long)(r1 % (uint32_t)(size - min_len + 1)));
        size_t off = r2 % FLOOD_POOL_EXTRA;
        if (vg_bus_publish_raw(c->bus, subject, pool + off, len) != VG_OK) {
            fprintf(stderr, "vigilctl flood: after %ld messages: %s\n", sent, vg_err_detail());
            goto out;
        }
        bytes += len;
        if (rate > 0) {
            int64_t due = t0 + (int64_t)((double)(sent + 1) * 1e6 / (double)rate);
            int64_t now = vg_mono_us();
            if (due > now)
                vg_sleep_us(due - now);
        }
    }
    if (natsConnection_FlushTimeout(vg_bus_nats(c->bus), 30000) != NATS_OK) {
        fprintf(stderr, "vigilctl flood: flush failed after %ld messages\n", sent);
        goto out;
    }
    double secs = (double)(vg_mono_us() - t0) / 1e6;
    printf("{\"subject\":\"%s\",\"published\":%ld,\"bytes\":%llu,\"seconds\":%.3f}\n", subject,
           sent, (unsigned long long)bytes, secs);
    rc = 0;
out:
    free(rnd);
    free(pool);
    return rc;
}

int ctl_cmd_flood(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"size", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},
        {"remote", no_argument, NULL, 'R'},
        {NULL, 0, NULL, 0},
    };
    long count = 1000, size = 256, rate = 0;
    int ch, remote = 0;
    char subject[256];
    while ((ch = getopt_long(argc, argv, "n:s:r:", opts, NULL)) != -1) {
        if ((ch == 'n' && parse_long("--count", optarg, 1, FLOOD_MAX_COUNT, &count)) ||
            (ch == 's' && parse_long("--size", optarg, 1, FLOOD_MAX_SIZE, &size)) ||
            (ch == 'r' && parse_long("--rate", optarg, 0, 100000000L, &rate)))
            return 2;
        if (ch == 'R')
            remote = 1;
        else if (ch == '?')
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "usage: vigilctl flood SUBJECT [--count N] [--size BYTES] [--rate R]"
                        " [--remote]\n");
        return 2;
    }
    snprintf(subject, sizeof(subject), "%s", argv[optind]);
    if (!remote && !loopback_only(c->cfg.nats_url)) {
        fprintf(stderr, "vigilctl flood: the NATS server is not on loopback; "
                        "add --remote if you mean it\n");
        return 2;
    }
    if (ctl_connect(c) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        return 1;
    }
    if ((size_t)size > vg_bus_max_payload(c->bus))
        size = (long)vg_bus_max_payload(c->bus);
    return flood(c, subject, count, size, rate);
}
