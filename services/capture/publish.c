#include "publish.h"

#include "timeutil.h"

vg_status cap_publish_frame(struct vg_bus *bus, const char *subject,
                            const struct cap_frame_meta *meta, const struct cap_output *out)
{
    /* Everything on the stack: the message only borrows the JPEG and boxes. */
    Vigil__V1__Header header = VIGIL__V1__HEADER__INIT;
    Vigil__V1__Frame msg = VIGIL__V1__FRAME__INIT;
    Vigil__V1__Box boxes[VG_MOTION_MAX_BOXES];
    Vigil__V1__MotionBox mboxes[VG_MOTION_MAX_BOXES];
    Vigil__V1__MotionBox *mptrs[VG_MOTION_MAX_BOXES];
    const struct vg_motion_result *m = &out->motion;

    vg_header_fill(&header, meta->camera, meta->capture_ts_us, NULL);
    for (int i = 0; i < m->n_boxes; i++) {
        vigil__v1__box__init(&boxes[i]);
        boxes[i].x = m->boxes[i].x;
        boxes[i].y = m->boxes[i].y;
        boxes[i].w = m->boxes[i].w;
        boxes[i].h = m->boxes[i].h;
        vigil__v1__motion_box__init(&mboxes[i]);
        mboxes[i].box = &boxes[i];
        mboxes[i].fill = m->boxes[i].fill;
        mptrs[i] = &mboxes[i];
    }
    msg.header = &header;
    msg.seq = meta->seq;
    msg.width = (uint32_t)out->width;
    msg.height = (uint32_t)out->height;
    msg.jpeg.data = out->jpeg;
    msg.jpeg.len = out->jpeg_len;
    msg.motion_score = m->score;
    msg.n_motion = (size_t)m->n_boxes;
    msg.motion = m->n_boxes ? mptrs : NULL;
    msg.media_pts_ms = meta->pts_ms;
    return vg_bus_publish(bus, subject, &msg.base);
}

vg_status cap_publish_status(struct vg_bus *bus, const char *subject, const char *camera,
                             const struct cap_status_report *r)
{
    Vigil__V1__Header header = VIGIL__V1__HEADER__INIT;
    Vigil__V1__CameraStatus msg = VIGIL__V1__CAMERA_STATUS__INIT;

    vg_header_fill(&header, camera, vg_now_us(), NULL);
    msg.header = &header;
    msg.state = r->state;
    msg.source = (char *)r->source;
    msg.error = (char *)(r->error ? r->error : "");
    msg.frames_read = r->frames_read;
    msg.frames_published = r->frames_published;
    msg.fps = (float)r->fps;
    return vg_bus_publish(bus, subject, &msg.base);
}
