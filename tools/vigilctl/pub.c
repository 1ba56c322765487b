/* vigilctl pub / face: publish test messages. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"
#include "timeutil.h"

#define INPUT_MAX_BYTES (8u << 20)

static vg_status read_all(FILE *f, const char *what, uint8_t **out, size_t *len)
{
    uint8_t *buf = malloc(INPUT_MAX_BYTES + 1);
    if (!buf)
        return VG_ERR_NOMEM;
    size_t n = fread(buf, 1, INPUT_MAX_BYTES + 1, f);
    if (n > INPUT_MAX_BYTES) {
        free(buf);
        return vg_errf(VG_ERR_TOO_LARGE, "%s is larger than %u bytes", what, INPUT_MAX_BYTES);
    }
    *out = buf;
    *len = n;
    return VG_OK;
}

static int publish_flush(struct ctl *c, const char *subject, vg_status st)
{
    if (st == VG_OK && natsConnection_FlushTimeout(vg_bus_nats(c->bus), 5000) != NATS_OK)
        st = vg_errf(VG_ERR_NATS, "flush failed");
    if (st != VG_OK) {
        fprintf(stderr, "vigilctl: publish %s: %s\n", subject, vg_err_detail());
        return 1;
    }
    return 0;
}

int ctl_cmd_pub(struct ctl *c, int argc, char **argv)
{
    char subject[256];
    uint8_t *data = NULL;
    size_t len = 0;
    if (argc < 2) {
        fprintf(stderr, "usage: vigilctl pub SUBJECT [DATA|-]\n");
        return 2;
    }
    snprintf(subject, sizeof(subject), "%s", argv[1]);
    vg_status st = VG_OK;
    if (argc < 3 || !strcmp(argv[2], "-"))
        st = read_all(stdin, "stdin", &data, &len);
    if (st != VG_OK || (st = ctl_connect(c)) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        free(data);
        return 1;
    }
    if (data)
        st = vg_bus_publish_raw(c->bus, subject, data, len);
    else
        st = vg_bus_publish_raw(c->bus, subject, argv[2], strlen(argv[2]));
    free(data);
    return publish_flush(c, subject, st);
}

int ctl_cmd_face(struct ctl *c, int argc, char **argv)
{
    char subject[256];
    uint8_t *jpeg = NULL;
    size_t len = 0;
    int crop_it = argc >= 4 && !strcmp(argv[3], "--crop");
    vg_status st;
    if (argc < 3 || (argc >= 4 && !crop_it)) {
        fprintf(stderr, "usage: vigilctl face CAMERA JPEG [--crop]\n");
        return 2;
    }
    if (crop_it) {
        st = ctl_face_crop_photo(c, argv[2], &jpeg, &len);
    } else {
        FILE *f = fopen(argv[2], "rb");
        if (!f) {
            fprintf(stderr, "vigilctl: %s: %s\n", argv[2], strerror(errno));
            return 1;
        }
        st = read_all(f, argv[2], &jpeg, &len);
        fclose(f);
    }
    if (st != VG_OK || (st = ctl_connect(c)) != VG_OK) {
        fprintf(stderr, "vigilctl: %s\n", vg_err_detail());
        free(jpeg);
        return 1;
    }
    Vigil__V1__Header hdr = VIGIL__V1__HEADER__INIT;
    Vigil__V1__FaceCrop crop = VIGIL__V1__FACE_CROP__INIT;
    vg_header_fill(&hdr, argv[1], vg_now_us(), NULL);
    crop.header = &hdr;
    crop.jpeg.data = jpeg;
    crop.jpeg.len = len;
    crop.confidence = 1;
    vg_subject(subject, sizeof(subject), c->cfg.prefix, "faces", argv[1]);
    st = vg_bus_publish(c->bus, subject, &crop.base);
    free(jpeg);
    int rc = publish_flush(c, subject, st);
    if (rc == 0)
        printf("%s\n", hdr.trace_id);
    return rc;
}
