/* vigil configuration: defaults, then one YAML file, then environment variables.
 * Every value is validated before any connection is made; errors name the
 * file:line or the environment variable. See docs/configuration.md. */
#ifndef VG_CONFIG_H
#define VG_CONFIG_H

#include <stddef.h>

#include "status.h"

#define VG_MAX_CAMERAS 64
#define VG_MAX_WATCH 16
#define VG_MAX_SINKS 8
#define VG_ID_MAX 64
#define VG_URL_MAX 1024

struct vg_watch {
    char label[32];
    double min_confidence; /* 0..1 */
};

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
    int reconnect_max_s;        /* longest backoff between reconnects */
    int n_watch;
    struct vg_watch watch[VG_MAX_WATCH];
};

struct vg_sink_cfg {
    char name[32];
    char type[16];              /* "file" | "webhook" */
    char path[VG_URL_MAX];      /* file */
    char url[VG_URL_MAX];       /* webhook */
    char secret[256];           /* webhook HMAC-SHA256 key; never logged */
    int timeout_ms;
    int retries;
    int backoff_ms;             /* first retry delay; doubles, with full jitter */
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
    char log_level[8];
    char nats_url[VG_URL_MAX];
    char redis_url[VG_URL_MAX]; /* may carry a password: masked in logs */
    char http_addr[64];         /* "host:port", "" = per-service default, "off" */
    int max_payload;            /* largest protobuf message accepted, bytes */

    int n_cameras;
    struct vg_camera_cfg cameras[VG_MAX_CAMERAS];

    struct vg_aws_cfg aws;
    struct {
        char collection[128];   /* Rekognition collection of known faces */
        char profile_table[128];/* DynamoDB table of profiles, keyed by FaceId */
    } faces;
    struct {
        char detector[32];      /* "motion" */
        char snapshot_dir[VG_URL_MAX]; /* "" = do not store snapshots */
        int workers;            /* reserved: frames are handled on the NATS thread */
    } dispatch;
    struct {
        char matcher[32];       /* "none" */
    } facematch;
    struct {
        int window_s;
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

/* Copy url into out with any password replaced by "***". */
void vg_cfg_mask_url(char *out, size_t cap, const char *url);

#endif
