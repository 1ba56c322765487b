/* vigilctl COMMAND ...: tail subjects as JSON, publish test messages,
 * check the configuration. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clip/clip.h"
#include "ctl.h"
#include "detect/chain.h"
#include "log.h"
#include "routing.h"
#include "store/snapshot_store.h"

static volatile sig_atomic_t interrupted;

static void on_signal(int sig) { interrupted = 1; }
int ctl_interrupted(void) { return interrupted != 0; }

static void usage(FILE *f)
{
    fprintf(f,
            "usage: vigilctl [--config FILE] COMMAND [ARGS]\n"
            "commands:\n"
            "  tail SUBJECT [--count N] [--timeout S] [--brief] [--bytes]\n"
            "        print messages on SUBJECT (\"alerts\" = <prefix>.alerts.>) as JSON lines,\n"
            "        or with --brief one readable line per alert or delivery\n"
            "  pub SUBJECT [DATA|-]\n"
            "        publish raw bytes (from DATA or stdin) on SUBJECT\n"
            "  flood SUBJECT [--count N] [--size BYTES] [--rate R] [--remote]\n"
            "        publish N random payloads of size/2..size bytes (at R per second;\n"
            "        0: at once) on SUBJECT, to test bad-input handling; loopback only\n"
            "  face CAMERA JPEG [--crop]\n"
            "        publish JPEG as a FaceCrop of CAMERA (tests face matching); --crop:\n"
            "        a photo of one person, cropped to the face as dispatch does\n"
            "  summary HOST:PORT...\n"
            "        scrape the services' /metrics and print counts and stage latencies\n"
            "  dlq list [--sink S] [--seq N] [--json]\n"
            "        the notifier's dead letters: sequence, time, sink, camera, alert, error\n"
            "  dlq replay [--sink S] [--seq N]\n"
            "        deliver dead letters again (to the sink that gave up only), then\n"
            "        remove them from the dead-letter queue\n"
            "  arm [MODE]\n"
            "        show the arm mode, or set it (off, home, away, or one named in\n"
            "        routing.modes); notifiers switch at once, routing rules follow it\n"
            "  cameras\n"
            "        print the configured camera ids, one per line\n"
            "  aws whoami\n"
            "        the AWS account, identity, region and credential source in use\n"
            "  faces add NAME --image FILE [--image FILE ...] [--profile key=value ...]\n"
            "        enrol NAME with the configured matcher (facematch.matcher) from photos\n"
            "        showing one face each (JPEG or PNG), and store the profile\n"
            "        (facematch.profiles); facematch replicas reload at once\n"
            "  faces list | remove NAME | profile NAME | test IMAGE\n"
            "        the people enrolled; forget one; show a profile; who is in a photo\n"
            "  Rekognition-only forms, kept for scripts:\n"
            "  faces create-collection [NAME]\n"
            "  faces create-table [NAME]   (the profiles table, keyed by FaceId)\n"
            "  faces index --image FILE --external-id NAME [--profile key=value ...]\n"
            "              [--collection C] [--table T]\n"
            "        index the face (Rekognition IndexFaces) and store its profile in\n"
            "        DynamoDB keyed by FaceId (defaults: faces.collection, faces.profile_table)\n"
            "  faces list [--collection C]\n"
            "  faces profile FACE_ID [--table T]\n"
            "  check-config\n"
            "        validate the configuration and print where it came from\n"
            "environment: VIGIL_CONFIG VIGIL_NATS_URL VIGIL_PREFIX\n");
}

vg_status ctl_connect(struct ctl *c)
{
    return vg_bus_connect(&c->bus, &c->cfg, "vigilctl", 5000);
}

void ctl_expand_subject(const struct ctl *c, const char *arg, char *out, size_t cap)
{
    if (strchr(arg, '.'))
        snprintf(out, cap, "%s", arg);
    else
        vg_subject(out, cap, c->cfg.prefix, arg, ">");
}

/* Everything the services check at start, the detectors' own keys included. */
static int check_config(struct ctl *c, const char *config)
{
    struct vg_detect_settings *s = NULL;
    if (vg_detect_settings_load(&s, &c->cfg) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        return 2;
    }
    vg_detect_settings_destroy(s);
    struct vg_routing *rt = calloc(1, sizeof(*rt));
    vg_status rs = rt ? vg_routing_load(rt, &c->cfg) : VG_ERR_NOMEM;
    free(rt);
    if (rs != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        return 2;
    }
    /* The evidence seams bind and check their sections when opened (no
     * network: links and objects are only made later). */
    struct vg_clip_provider *clips = NULL;
    struct vg_snap_store *snaps = NULL;
    if (vg_clip_open(&clips, &c->cfg) != VG_OK ||
        (vg_snap_store_configured(&c->cfg) && vg_snap_store_open(&snaps, &c->cfg) != VG_OK)) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        vg_clip_close(clips);
        return 2;
    }
    vg_clip_close(clips);
    vg_snap_store_close(snaps);
    printf("%s: ok (%d cameras, %d sinks)\n", config ? config : "defaults", c->cfg.n_cameras,
           c->cfg.notifier.n_sinks);
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config = getenv("VIGIL_CONFIG");
    int ch, rc = 2;
    /* "+": stop at the command so its own options are left for it. */
    while ((ch = getopt_long(argc, argv, "+c:h", opts, NULL)) != -1) {
        if (ch == 'c')
            config = optarg;
        else {
            usage(ch == 'h' ? stdout : stderr);
            return ch == 'h' ? 0 : 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }
    struct ctl *c = calloc(1, sizeof(*c));
    if (!c)
        return 1;
    vg_log_setup("vigilctl", VG_LOG_WARN);
    vg_set_producer("vigilctl");
    if (vg_cfg_load(&c->cfg, config) != VG_OK) {
        fprintf(stderr, "vigilctl: configuration error: %s\n", vg_err_detail());
        goto out;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    const char *cmd = argv[optind];
    int cargc = argc - optind;
    char **cargv = argv + optind;
    optind = 0; /* commands parse their own options: 0 makes glibc start afresh */
    if (!strcmp(cmd, "tail"))
        rc = ctl_cmd_tail(c, cargc, cargv);
    else if (!strcmp(cmd, "pub"))
        rc = ctl_cmd_pub(c, cargc, cargv);
    else if (!strcmp(cmd, "flood"))
        rc = ctl_cmd_flood(c, cargc, cargv);
    else if (!strcmp(cmd, "face"))
        rc = ctl_cmd_face(c, cargc, cargv);
    else if (!strcmp(cmd, "faces") && !ctl_faces_is_aws_form(cargc, cargv))
        rc = ctl_cmd_faces(c, cargc, cargv);
    else if (!strcmp(cmd, "aws") || !strcmp(cmd, "faces"))
        rc = ctl_cmd_aws(c, cargc, cargv);
    else if (!strcmp(cmd, "arm"))
        rc = ctl_cmd_arm(c, cargc, cargv);
    else if (!strcmp(cmd, "dlq"))
        rc = ctl_cmd_dlq(c, cargc, cargv);
    else if (!strcmp(cmd, "summary"))
        rc = ctl_cmd_summary(c, cargc, cargv);
    else if (!strcmp(cmd, "cameras")) {
        for (int i = 0; i < c->cfg.n_cameras; i++)
            printf("%s\n", c->cfg.cameras[i].id);
        rc = 0;
    } else if (!strcmp(cmd, "check-config")) {
        rc = check_config(c, config);
    } else {
        fprintf(stderr, "vigilctl: unknown command \"%s\"\n", cmd);
        usage(stderr);
    }
out:
    vg_bus_destroy(c->bus);
    free(c);
    return rc;
}
