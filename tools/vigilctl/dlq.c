/* vigilctl dlq list|replay: the dead letters of the notifier, kept in the
 * stream <PREFIX>_DLQ with headers naming the sink that gave up and why.
 * Replay puts an alert back on <prefix>.alerts.<camera> with the header
 * Vigil-Only-Sink (the other sinks have it already and skip it) and a msg id
 * derived from the dead letter (replaying twice stores it once), then
 * deletes the dead letter. The alert id is unchanged, so a receiver that
 * de-duplicates on X-Vigil-Alert-Id is safe. */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ctl.h"

#define SINK_ALL NULL

struct dead_letter {
    uint64_t seq;
    int64_t stored_ns;
    const char *sink;           /* "" for a malformed message */
    const char *error;
    Vigil__V1__Alert *alert;    /* NULL when it does not decode */
};

struct dlq_args {
    const char *sink;
    uint64_t seq;               /* 0: all */
    int json;
};

static const char *header(natsMsg *m, const char *key)
{
    const char *v = NULL;
    return natsMsgHeader_Get(m, key, &v) == NATS_OK && v ? v : "";
}

static void format_time(int64_t ns, char out[32])
{
    time_t s = (time_t)(ns / 1000000000);
    struct tm tm;
    gmtime_r(&s, &tm);
    strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

/* Each dead letter in seq order; visit returns non-zero to stop. */
static int each(struct ctl *c, const char *stream,
                int (*visit)(struct ctl *c, natsMsg *m, struct dead_letter *d, void *ctx),
                void *ctx)
{
    jsStreamInfo *si = NULL;
    jsErrCode jerr = 0;
    natsStatus ns = js_GetStreamInfo(&si, vg_bus_js(c->bus), stream, NULL, &jerr);
    if (ns != NATS_OK) {
        fprintf(stderr, "vigilctl: stream %s: %s (jetstream error %d)\n", stream,
                ns == NATS_NOT_FOUND ? "not found (no dead letters yet)" : natsStatus_GetText(ns),
                (int)jerr);
        return ns == NATS_NOT_FOUND ? 0 : 1;
    }
    uint64_t first = si->State.FirstSeq, last = si->State.LastSeq;
    jsStreamInfo_Destroy(si);
    for (uint64_t seq = first; seq && seq <= last && !ctl_interrupted(); seq++) {
        natsMsg *m = NULL;
        if (js_GetMsg(&m, vg_bus_js(c->bus), stream, seq, NULL, &jerr) != NATS_OK)
            continue;           /* deleted (replayed) or aged out */
        ProtobufCMessage *pm = NULL;
        int len = natsMsg_GetDataLength(m);
        struct dead_letter d = {
            .seq = seq,
            .stored_ns = natsMsg_GetTime(m),
            .sink = header(m, "Vigil-Sink"),
            .error = header(m, "Vigil-Error"),
        };
        if (len > 0 && vg_pb_unpack(&vigil__v1__alert__descriptor, natsMsg_GetData(m),
                                    (size_t)len, (size_t)c->cfg.max_payload, &pm) == VG_OK) {
            d.alert = (Vigil__V1__Alert *)pm;
            if (!d.alert->header || !d.alert->header->camera_id || !d.alert->alert_id) {
                protobuf_c_message_free_unpacked(pm, NULL);
                d.alert = NULL;
            }
        }
        int stop = visit(c, m, &d, ctx);
        if (d.alert)
            protobuf_c_message_free_unpacked(&d.alert->base, NULL);
        natsMsg_Destroy(m);
        if (stop)
            return stop < 0 ? 1 : 0;
    }
    return 0;
}

static int wanted(const struct dlq_args *a, const struct dead_letter *d)
{
    return (!a->sink || !strcmp(a->sink, d->sink)) && (!a->seq || a->seq == d->seq);
}

/* Dead letters are untrusted: no control characters reach the terminal. */
static const char *printable(const char *s, char *out, size_t cap)
{
    size_t n = 0;
    for (; *s && n + 1 < cap; s++)
        out[n++] = ((unsigned char)*s < 0x20 || *s == 0x7f) ? '?' : *s;
    out[n] = '\0';
    return out;
}

static int print_one(struct ctl *c, natsMsg *m, struct dead_letter *d, void *ctx)
{
    char b1[64], b2[128], b3[64], b4[64], b5[512];
    const struct dlq_args *a = ctx;
    char when[32];
    (void)c;
    (void)m;
    if (!wanted(a, d))
        return 0;
    format_time(d->stored_ns, when);
    const char *cam = d->alert ? d->alert->header->camera_id : "?";
    const char *id = d->alert ? d->alert->alert_id : "?";
    const char *label = d->alert && d->alert->label ? d->alert->label : "?";
    if (a->json) {
        json_t *j = json_pack("{s:I,s:s,s:s,s:s,s:s,s:s,s:s}", "seq", (json_int_t)d->seq,
                              "stored", when, "sink", d->sink, "camera", cam, "alert_id", id,
                              "label", label, "error", d->error);
        char *text = j ? json_dumps(j, JSON_COMPACT) : NULL;
        if (text)
            printf("%s\n", text);
        free(text);
        json_decref(j);
    } else {
        printf("%-6" PRIu64 " %s  %-12s %-12s %-32s %-10s %s\n", d->seq, when,
               *d->sink ? printable(d->sink, b1, sizeof(b1)) : "(malformed)",
               printable(cam, b3, sizeof(b3)), printable(id, b2, sizeof(b2)),
               printable(label, b4, sizeof(b4)), printable(d->error, b5, sizeof(b5)));
    }
    return 0;
}

static int sink_configured(const struct ctl *c, const char *name)
{
    for (int i = 0; i < c->cfg.notifier.n_sinks; i++)
        if (!strcmp(c->cfg.notifier.sinks[i].name, name))
            return 1;
    return 0;
}

struct replay {
    const struct dlq_args *args;
    char stream[64];
    int replayed, skipped, failed;
};

static vg_status republish(struct ctl *c, natsMsg *dead, const struct dead_letter *d,
                           const struct replay *r)
{
    char subject[256], id[96];
    natsMsg *m = NULL;
    jsPubOptions po;
    jsErrCode jerr = 0;
    vg_subject(subject, sizeof(subject), c->cfg.prefix, "alerts", d->alert->header->camera_id);
    snprintf(id, sizeof(id), "replay-%s-%" PRIu64, r->stream, d->seq);
    jsPubOptions_Init(&po);
    po.MsgId = id;
    po.MaxWait = 5000;
    natsStatus ns = natsMsg_Create(&m, subject, NULL, natsMsg_GetData(dead),
                                   natsMsg_GetDataLength(dead));
    if (ns == NATS_OK)
        ns = natsMsgHeader_Set(m, "Vigil-Only-Sink", d->sink);
    if (ns == NATS_OK)
        ns = js_PublishMsg(NULL, vg_bus_js(c->bus), m, &po, &jerr);
    natsMsg_Destroy(m);
    if (ns != NATS_OK)
        return vg_errf(VG_ERR_NATS, "publish %s: %s (jetstream error %d)", subject,
                       natsStatus_GetText(ns), (int)jerr);
    /* Stored in the alerts stream: the dead letter has done its job. */
    if ((ns = js_DeleteMsg(vg_bus_js(c->bus), r->stream, d->seq, NULL, &jerr)) != NATS_OK)
        fprintf(stderr, "vigilctl: replayed seq %" PRIu64 " but could not delete it: %s\n",
                d->seq, natsStatus_GetText(ns));
    return VG_OK;
}

static int replay_one(struct ctl *c, natsMsg *m, struct dead_letter *d, void *ctx)
{
    struct replay *r = ctx;
    if (!wanted(r->args, d))
        return 0;
    if (!d->alert || !*d->sink) {
        printf("skipped seq %" PRIu64 ": not an alert any sink can take (%s)\n", d->seq,
               d->error);
        r->skipped++;
        return 0;
    }
    if (!sink_configured(c, d->sink)) {
        printf("skipped seq %" PRIu64 ": sink %s is not in the configuration\n", d->seq,
               d->sink);
        r->skipped++;
        return 0;
    }
    if (republish(c, m, d, r) != VG_OK) {
        fprintf(stderr, "vigilctl: seq %" PRIu64 ": %s\n", d->seq, vg_err_detail());
        r->failed++;
        return 0;
    }
    printf("replayed seq %" PRIu64 ": alert %s to sink %s\n", d->seq, d->alert->alert_id,
           d->sink);
    r->replayed++;
    return 0;
}

static int parse_args(int argc, char **argv, struct dlq_args *a)
{
    static const struct option opts[] = {
        {"sink", required_argument, NULL, 's'},
        {"seq", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {NULL, 0, NULL, 0},
    };
    int ch;
    memset(a, 0, sizeof(*a));
    a->sink = SINK_ALL;
    while ((ch = getopt_long(argc, argv, "s:n:j", opts, NULL)) != -1) {
        if (ch == 's')
            a->sink = optarg;
        else if (ch == 'n')
            a->seq = strtoull(optarg, NULL, 10);
        else if (ch == 'j')
            a->json = 1;
        else
            return -1;
    }
    return optind < argc ? -1 : 0;
}

int ctl_cmd_dlq(struct ctl *c, int argc, char **argv)
{
    struct dlq_args a;
    struct replay r = {.args = &a};
    if (argc < 2 || parse_args(argc - 1, argv + 1, &a) != 0) {
        fprintf(stderr, "usage: vigilctl dlq list [--sink S] [--seq N] [--json]\n"
                        "       vigilctl dlq replay [--sink S] [--seq N]\n");
        return 2;
    }
    if (ctl_connect(c) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        return 1;
    }
    vg_stream_name(r.stream, sizeof(r.stream), c->cfg.prefix, "dlq");
    if (!strcmp(argv[1], "list"))
        return each(c, r.stream, print_one, &a);
    if (strcmp(argv[1], "replay") != 0) {
        fprintf(stderr, "vigilctl: dlq: unknown subcommand \"%s\" (list, replay)\n", argv[1]);
        return 2;
    }
    int rc = each(c, r.stream, replay_one, &r);
    printf("%d replayed, %d skipped, %d failed\n", r.replayed, r.skipped, r.failed);
    return rc ? rc : (r.failed ? 1 : 0);
}
