/* vigil configuration: defaults, then one YAML file, then environment variables.
 * Every value is validated before any connection is made; errors name the
 * file:line or the environment variable. See docs/configuration.md. */
#ifndef VG_CONFIG_H
#define VG_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "status.h"

#define VG_MAX_CAMERAS 64
#define VG_MAX_WATCH 16
#define VG_MAX_SINKS 16
#define VG_ID_MAX 64
#define VG_URL_MAX 1024
#define VG_MAX_CHAIN 4          /* detector stages per camera */
#define VG_MAX_ZONES 8
#define VG_MAX_MASKS 8
#define VG_MAX_FILTERS 8
#define VG_MAX_POLY 32          /* points per polygon */
#define VG_NAME_MAX 32

/* A polygon in normalised image coordinates (0..1 from the top-left). */
struct vg_polygon {
    int n;
    float x[VG_MAX_POLY], y[VG_MAX_POLY];
};

struct vg_zone {
    char name[VG_NAME_MAX];
    struct vg_polygon poly;
};

struct vg_watch {
    char label[VG_NAME_MAX];    /* canonical category ("person") or raw name ("Human") */
    double min_confidence;      /* 0..1 */
    uint32_t zones;             /* bit i: must be in zone i; 0 = anywhere */
};

/* Per-label filters applied to every stage's labels ("*" = every label). */
struct vg_filter {
    char label[VG_NAME_MAX];
    double min_confidence;      /* 0..1 */
    double min_area, max_area;  /* box area as a fraction of the image */
};

enum vg_sample_mode { VG_SAMPLE_FPS, VG_SAMPLE_EVERY_N, VG_SAMPLE_KEYFRAMES };

struct vg_camera_cfg {
    char id[VG_ID_MAX];
    char url[VG_URL_MAX];       /* file path, rtsp://, http:// (MJPEG), v4l2 device */
    double fps;                 /* frames sampled per second of source time */
    double speed;               /* files: 1 = real time, 4 = 4x, 0 = as fast as possible */
    int loop;                   /* files: start again at the end */
    int detect_width;           /* JPEG published at most this wide */
    int jpeg_quality;
    int motion_width;           /* grey image width used for motion */
    int motion_threshold;       /* per-pixel difference, 1..255 */
    double motion_min_area;     /* minimum box area, fraction of the image */
    double motion_alpha;        /* background learning rate, 0..1 */
    double motion_max_area;     /* changed share above which a frame is "not motion" */
    int n_motion_masks;         /* capture ignores change inside these */
    struct vg_polygon motion_masks[VG_MAX_MASKS];
    int reconnect_max_s;        /* longest backoff between reconnects */
    int sample_mode;            /* enum vg_sample_mode */
    int every_n;                /* VG_SAMPLE_EVERY_N: 1 of every N decoded frames */
    double keepalive_s;         /* publish a frame without motion this often; 0 = never */
    int publish_all;            /* publish every sampled frame, motion or not */
    int n_detectors;            /* 0: dispatch.detectors */
    char detectors[VG_MAX_CHAIN][VG_NAME_MAX];
    int n_zones;
    struct vg_zone zones[VG_MAX_ZONES];
    int n_object_masks;         /* a label whose box bottom-centre is inside is dropped */
    struct vg_polygon object_masks[VG_MAX_MASKS];
    int n_filters;
    struct vg_filter filters[VG_MAX_FILTERS];
    int n_watch;
    struct vg_watch watch[VG_MAX_WATCH];
    double label_watch_min_conf;    /* seed 004, percent: for label_watch_list entries */
    int record;                 /* rolling recording: -1 = recording.enabled, 0 off, 1 on */
    char kvs_stream[256];       /* Kinesis Video stream: upload (kvs.upload) and clip links;
                                 * "" = none */
};

/* Room for one sink type's own settings (its struct, bound by its option
 * table; lib/sink/sink.h). Inline so a configuration stays a plain value. */
#define VG_SINK_SETTINGS_MAX 4096

struct vg_sink_ops;

struct vg_sink_cfg {
    char name[32];
    char type[16];              /* a registered sink type: "file", "webhook", ... */
    int line;                   /* where it is configured (0: not from a file) */
    int timeout_ms;             /* one attempt (0: the type's default) */
    int retries;                /* quick retries inside one delivery */
    int backoff_ms;             /* first quick-retry delay; doubles, with full jitter */
    int redeliver_min_s;        /* then JetStream redelivers after this, doubling, */
    int redeliver_max_s;        /* up to this (Retry-After may ask for longer) */
    int incidents;              /* enum vg_sink_incidents, resolved (never DEFAULT) */
    char rate_limit[32];        /* "10/h": at most 10 alerts an hour; "" = none */
    int rate_count;             /* parsed rate_limit: rate_count per rate_per_s */
    int rate_per_s;
    char title[256];            /* templates (sink/template.h); "" = the type's default */
    char text[1024];
    char html[2048];
    int title_line, text_line, html_line;   /* where they are configured */
    const struct vg_sink_ops *ops;
    unsigned char settings[VG_SINK_SETTINGS_MAX] __attribute__((aligned(16)));
};

#define VG_MAX_RATE_LIMITS 16

struct vg_rate_limit_cfg {
    char api[64];               /* "rekognition.DetectLabels" */
    double per_second;
    double burst;
};

struct vg_aws_cfg {
    char region[32];            /* "" = AWS_REGION, AWS_DEFAULT_REGION, profile, us-east-1 */
    char profile[64];           /* "" = AWS_PROFILE or "default" */
    char access_key_id[128];    /* explicit keys: prefer the environment or roles */
    char secret_access_key[128];/* never logged */
    int connect_timeout_ms;
    int timeout_ms;
    int max_attempts;
    int n_rate_limits;
    struct vg_rate_limit_cfg rate_limits[VG_MAX_RATE_LIMITS];
};

struct vg_config {
    char source[VG_URL_MAX];    /* file it was loaded from, "" for defaults only */
    char prefix[32];
    char timezone[64];          /* IANA name for {time} and schedules; "" = the system's */
    char log_level[8];
    char nats_url[VG_URL_MAX];
    char redis_url[VG_URL_MAX]; /* may carry a password: masked in logs */
    char http_addr[64];         /* "host:port", "" = per-service default, "off" */
    int max_payload;            /* largest protobuf message accepted, bytes */

    int n_cameras;
    struct vg_camera_cfg cameras[VG_MAX_CAMERAS];

    struct vg_aws_cfg aws;
    struct {
        char addr[64];          /* "host:port" the console's API listens on */
        char public_url[VG_URL_MAX]; /* how readers reach it: links in alerts start here */
    } console;
    struct {
        int enabled;            /* cameras record unless their `record` says otherwise */
        char dir[VG_URL_MAX];   /* <dir>/<camera>/<start_ms>.mkv + index */
        int segment_s;          /* a new segment at the first keyframe after this long */
        int max_age_h;          /* segments older than this are deleted; 0 = no age limit */
        int max_mb;             /* per camera: oldest deleted above this; 0 = no cap */
    } recording;
    struct {
        char collection[128];   /* Rekognition collection of known faces */
        char profile_table[128];/* DynamoDB table of profiles, keyed by FaceId */
    } faces;
    struct {
        int n_detectors;        /* the default chain of cameras without their own */
        char detectors[VG_MAX_CHAIN][VG_NAME_MAX];
        char snapshot_dir[VG_URL_MAX]; /* "" = do not store snapshots */
        int snapshot_boxes;     /* draw the labels' boxes on stored snapshots */
        int snapshot_max_age_h; /* prune snapshots older than this; 0 = keep */
        int snapshot_max_mb;    /* prune oldest first above this total; 0 = no cap */
        int workers;            /* detector threads */
        int max_frame_age_ms;   /* older frames are dropped, not analysed */
        int detect_timeout_ms;  /* deadline of one detector stage */
        int remote_interval_ms; /* a remote stage is asked about a camera at most this often */
        int faces;              /* enum vg_faces_mode */
        int face_margin_px;     /* around each face crop (seed 002: 25) */
        int max_faces;          /* face crops per frame */
    } dispatch;
    struct {
        char matcher[32];       /* a registered face matcher; "none" */
        int profiles;           /* enum vg_profile_store */
        /* Quality gates before a paid matcher (remote APIs). */
        int min_face_px;        /* crops narrower or lower than this are skipped */
        double min_sharpness;   /* variance of the Laplacian of the grey crop */
        double min_confidence;  /* the face detector's confidence of the crop */
    } facematch;
    struct {
        int window_s;
        int max_labels;         /* labels considered per detection; the rest are dropped */
        int person_window_s;    /* one alert per camera + known person (or unknown) */
        int unknown_faces;      /* unmatched faces alert as camera + "unknown" */
        int identity_wait_ms;   /* a person label with faces waits this long for them */
        int incident_gap_s;     /* an incident ends after this long without a sighting; 0: none */
        struct {
            int enabled;        /* camera_offline / camera_online alerts from CameraStatus */
            int offline_after_s;/* down (not ONLINE, no frame progress, no status) this long */
            int online_after_s; /* up this long after an offline alert */
        } health;
    } dedupe;
    struct {
        int ack_wait_s;
        int max_deliver;
        int batch;
        int idempotency_ttl_s;
        int stream_max_age_h;
        int n_sinks;
        struct vg_sink_cfg sinks[VG_MAX_SINKS];
    } notifier;
};

enum vg_faces_mode { VG_FACES_AUTO, VG_FACES_ON, VG_FACES_OFF };
enum vg_profile_store { VG_PROFILES_REDIS, VG_PROFILES_DYNAMODB };

/* Fill cfg with built-in defaults. */
void vg_cfg_defaults(struct vg_config *cfg);

/* Load path (NULL: defaults only), then apply environment overrides, then
 * validate. On failure the detail (vg_err_detail) names file:line or variable. */
vg_status vg_cfg_load(struct vg_config *cfg, const char *path);

/* Parse YAML text as if it were the file `name` (used by load and by tests). */
vg_status vg_cfg_parse(struct vg_config *cfg, const char *name, const char *text, size_t len);
vg_status vg_cfg_apply_env(struct vg_config *cfg);
vg_status vg_cfg_validate(const struct vg_config *cfg);

const struct vg_camera_cfg *vg_cfg_camera(const struct vg_config *cfg, const char *id);

/* Re-read cfg->source and hand back the YAML node at the top-level key
 * (NULL in *out when the file has none or there is no file). Backends bind
 * their own keys from it (opts.h). Free *root with vg_yaml_free. */
struct vg_ynode;
vg_status vg_cfg_section(const struct vg_config *cfg, const char *key, struct vg_ynode **root,
                         const struct vg_ynode **out);

/* The detector chain of a camera (its own, else dispatch.detectors): the
 * number of stages, *names pointing at their names. */
int vg_cfg_chain(const struct vg_config *cfg, const struct vg_camera_cfg *cam,
                 const char (**names)[VG_NAME_MAX]);

/* Parse "x,y x,y ..." (or "x1,y1,x2,y2,...") into p; coordinates 0..1. */
vg_status vg_polygon_parse(struct vg_polygon *p, const char *text);

/* 1 when (x, y) lies inside p (even-odd rule). */
int vg_polygon_contains(const struct vg_polygon *p, float x, float y);

/* Copy url into out with any password replaced by "***". */
void vg_cfg_mask_url(char *out, size_t cap, const char *url);

#endif
