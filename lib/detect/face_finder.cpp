// The face finder of face_finder.h over OpenCV's CascadeClassifier. C++ only
// because OpenCV 4 has no C API: a plain C interface, no exception crosses it.
#include <cstdio>
#include <new>

#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

extern "C" {
#include "detect/face_finder.h"
}

struct vg_face_finder {
    cv::CascadeClassifier cascade;
    cv::Mat grey;
};

// Faces smaller than this (pixels) are noise at detect resolution.
static const int MIN_FACE_PX = 20;

extern "C" vg_status vg_face_finder_create(struct vg_face_finder **out, const char *cascade)
{
    const char *path = cascade ? cascade : VG_FACE_CASCADE_DEFAULT;
    vg_face_finder *f = nullptr;
    try {
        f = new vg_face_finder();
        if (!f->cascade.load(path)) {
            delete f;
            return vg_errf(VG_ERR_CONFIG, "face cascade %s: missing or not an OpenCV cascade "
                           "(Debian package opencv-data)", path);
        }
    } catch (const std::exception &e) {
        delete f;
        return vg_errf(VG_ERR_CONFIG, "face cascade %s: %s", path, e.what());
    }
    *out = f;
    return VG_OK;
}

extern "C" void vg_face_finder_destroy(struct vg_face_finder *f) { delete f; }

static cv::Rect pixel_rect(const struct vg_box &b, int w, int h)
{
    cv::Rect r((int)(b.x * (float)w), (int)(b.y * (float)h), (int)(b.w * (float)w + 0.5f),
               (int)(b.h * (float)h + 0.5f));
    return r & cv::Rect(0, 0, w, h);
}

extern "C" vg_status vg_face_finder_run(struct vg_face_finder *f, const struct vg_image *img,
                                        const struct vg_box *boxes, size_t n,
                                        struct vg_face_box *faces, size_t max, size_t *found)
{
    size_t k = 0;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return vg_errf(VG_ERR_INVALID, "face finder: no image");
    try {
        cv::Mat rgb(img->height, img->width, CV_8UC3, const_cast<uint8_t *>(img->rgb));
        cv::cvtColor(rgb, f->grey, cv::COLOR_RGB2GRAY);
        const struct vg_box whole = {0, 0, 1, 1};
        for (size_t i = 0; i < (n ? n : 1) && k < max; i++) {
            cv::Rect r = pixel_rect(n ? boxes[i] : whole, img->width, img->height);
            if (r.width < MIN_FACE_PX || r.height < MIN_FACE_PX)
                continue;
            cv::Mat roi = f->grey(r);
            std::vector<cv::Rect> hits;
            std::vector<int> levels;
            std::vector<double> weights;
            f->cascade.detectMultiScale(roi, hits, levels, weights, 1.1, 4, 0,
                                        cv::Size(MIN_FACE_PX, MIN_FACE_PX), cv::Size(), true);
            for (size_t j = 0; j < hits.size() && k < max; j++) {
                const cv::Rect &h = hits[j];
                struct vg_face_box *fb = &faces[k++];
                fb->box.x = (float)(r.x + h.x) / (float)img->width;
                fb->box.y = (float)(r.y + h.y) / (float)img->height;
                fb->box.w = (float)h.width / (float)img->width;
                fb->box.h = (float)h.height / (float)img->height;
                // Cascade weights are unbounded margins: squash to 0..1.
                double wgt = j < weights.size() ? weights[j] : 1.0;
                fb->confidence = (float)(wgt / (1.0 + (wgt < 0 ? -wgt : wgt)) * 0.5 + 0.5);
            }
        }
    } catch (const std::exception &e) {
        return vg_errf(VG_ERR_MEDIA, "face finder: %s", e.what());
    }
    *found = k;
    return VG_OK;
}
