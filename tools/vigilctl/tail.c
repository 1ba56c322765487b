/* vigilctl tail: any vigil subject as one JSON object per line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "ctl.h"
#include "pbjson.h"
#include "timeutil.h"

/* One readable line for the messages a person watches: alerts, deliveries,
 * incidents and camera status. Returns 0 when m is of another type. */
static int print_brief(const ProtobufCMessage *m)
{
    char ts[16] = "";
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(ts, sizeof(ts), "%H:%M:%S", &tm);
    if (m->descriptor == &vigil__v1__alert__descriptor) {
        const Vigil__V1__Alert *a = (const Vigil__V1__Alert *)m;
        printf("%s ALERT    %-10s %-8s conf %.2f  %s%s%s%s\n", ts, a->header->camera_id,
               a->label, a->confidence, a->alert_id, a->fail_open ? "  (fail-open)" : "",
               a->snapshot_ref[0] ? "  " : "", a->snapshot_ref);
    } else if (m->descriptor == &vigil__v1__delivery__descriptor) {
        const Vigil__V1__Delivery *d = (const Vigil__V1__Delivery *)m;
        const ProtobufCEnumValue *o =
            protobuf_c_enum_descriptor_get_value(&vigil__v1__delivery__outcome__descriptor,
                                                 d->outcome);
        if (d->outcome == VIGIL__V1__DELIVERY__OUTCOME__SKIPPED)
            printf("%s DELIVERY %-10s %-8s %s -> %s (%s: %s)\n", ts, d->header->camera_id,
                   "SKIPPED", d->alert_id, d->sink, d->reason, d->note);
        else
            printf("%s DELIVERY %-10s %-8s %s -> %s (%u attempts, %.0f ms)%s%s\n", ts,
                   d->header->camera_id, o ? o->name : "?", d->alert_id, d->sink, d->attempts,
                   (double)d->latency_us / 1000, d->error[0] ? "  " : "", d->error);
    } else if (m->descriptor == &vigil__v1__incident__descriptor) {
        const Vigil__V1__Incident *in = (const Vigil__V1__Incident *)m;
        printf("%s INCIDENT %-10s %-8s %s  %llu sightings, %u alerts%s%s\n", ts,
               in->header->camera_id, in->open ? "open" : "closed", in->incident_id,
               (unsigned long long)in->count, in->alerts, in->escalation[0] ? "  " : "",
               in->escalation);
    } else if (m->descriptor == &vigil__v1__camera_status__descriptor) {
        const Vigil__V1__CameraStatus *c = (const Vigil__V1__CameraStatus *)m;
        const ProtobufCEnumValue *st = protobuf_c_enum_descriptor_get_value(
            &vigil__v1__camera_status__state__descriptor, c->state);
        printf("%s CAMERA   %-10s %-8s frames %llu/%llu  %s\n", ts, c->header->camera_id,
               st ? st->name : "?", (unsigned long long)c->frames_published,
               (unsigned long long)c->frames_read, c->error);
    } else {
        return 0;
    }
    fflush(stdout);
    return 1;
}

static void print_msg(natsMsg *msg, int brief)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const ProtobufCMessageDescriptor *d = ctl_descriptor_for_subject(subject);
    json_t *out = json_pack("{s:s}", "subject", subject);
    ProtobufCMessage *m = NULL;
    if (d && vg_pb_unpack(d, data, len, 64u << 20, &m) == VG_OK) {
        if (brief && print_brief(m)) {
            protobuf_c_message_free_unpacked(m, NULL);
            json_decref(out);
            return;
        }
        json_object_set_new(out, "type", json_string(d->name));
        json_object_set_new(out, "data", ctl_pb_to_json(m));
        protobuf_c_message_free_unpacked(m, NULL);
    } else {
        json_object_set_new(out, "size", json_integer((json_int_t)len));
        json_object_set_new(out, "error",
                            json_string(d ? "not a valid message" : "not a vigil subject"));
    }
    char *line = json_dumps(out, JSON_COMPACT);
    if (line) {
        printf("%s\n", line);
        fflush(stdout);
        free(line);
    }
    json_decref(out);
}

int ctl_cmd_tail(struct ctl *c, int argc, char **argv)
{
    static const struct option opts[] = {
        {"count", required_argument, NULL, 'n'},
        {"timeout", required_argument, NULL, 't'},
        {"brief", no_argument, NULL, 'b'},
        {"bytes", no_argument, NULL, 'B'},
        {NULL, 0, NULL, 0},
    };
    long count = 0;
    double timeout_s = 0;
    int ch, brief = 0;
    char subject[256];
    natsSubscription *sub = NULL;
    while ((ch = getopt_long(argc, argv, "n:t:bB", opts, NULL)) != -1) {
        if (ch == 'n')
            count = atol(optarg);
        else if (ch == 't')
            timeout_s = atof(optarg);
        else if (ch == 'b')
            brief = 1;
        else if (ch == 'B')
            ctl_pb_json_with_bytes(1);
        else
            return 2;
    }
    if (optind >= argc) {
        fprintf(stderr, "vigilctl tail: which subject? e.g. alerts, vigil.frames.demo\n");
        return 2;
    }
    ctl_expand_subject(c, argv[optind], subject, sizeof(subject));
    if (ctl_connect(c) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        return 1;
    }
    if (natsConnection_SubscribeSync(&sub, vg_bus_nats(c->bus), subject) != NATS_OK) {
        fprintf(stderr, "vigilctl: subscribe %s failed\n", subject);
        return 1;
    }
    natsConnection_Flush(vg_bus_nats(c->bus));
    fprintf(stderr, "vigilctl: tailing %s\n", subject);
    int64_t deadline = timeout_s > 0 ? vg_mono_us() + (int64_t)(timeout_s * 1e6) : 0;
    long seen = 0;
    while (!ctl_interrupted() && (count == 0 || seen < count) &&
           (!deadline || vg_mono_us() < deadline)) {
        natsMsg *msg = NULL;
        if (natsSubscription_NextMsg(&msg, sub, 200) != NATS_OK)
            continue;
        print_msg(msg, brief);
        natsMsg_Destroy(msg);
        seen++;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return 0;
}
