/* vigilctl tail: any vigil subject as one JSON object per line. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "ctl.h"
#include "pbjson.h"
#include "timeutil.h"

static void print_msg(natsMsg *msg)
{
    const char *subject = natsMsg_GetSubject(msg);
    const char *data = natsMsg_GetData(msg);
    size_t len = (size_t)natsMsg_GetDataLength(msg);
    const ProtobufCMessageDescriptor *d = ctl_descriptor_for_subject(subject);
    json_t *out = json_pack("{s:s}", "subject", subject);
    ProtobufCMessage *m = NULL;
    if (d && vg_pb_unpack(d, data, len, 64u << 20, &m) == VG_OK) {
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
        {NULL, 0, NULL, 0},
    };
    long count = 0;
    double timeout_s = 0;
    int ch;
    char subject[256];
    natsSubscription *sub = NULL;
    while ((ch = getopt_long(argc, argv, "n:t:", opts, NULL)) != -1) {
        if (ch == 'n')
            count = atol(optarg);
        else if (ch == 't')
            timeout_s = atof(optarg);
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
        print_msg(msg);
        natsMsg_Destroy(msg);
        seen++;
    }
    natsSubscription_Unsubscribe(sub);
    natsSubscription_Destroy(sub);
    return 0;
}
