// JPEG/PNG to RGB with OpenCV's imdecode. C++ only because OpenCV 4 has no C
// API: a plain C interface, no exception crosses it.
#include <cstdlib>
#include <cstring>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

extern "C" {
#include "detect/imdecode.h"
}

extern "C" const char *vg_image_kind(const void *data, size_t len)
{
    const unsigned char *p = static_cast<const unsigned char *>(data);
    if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
        return "jpeg";
    if (len >= 8 && !std::memcmp(p, "\x89PNG\r\n\x1a\n", 8))
        return "png";
    return nullptr;
}

extern "C" vg_status vg_image_decode_rgb(const void *data, size_t len, size_t max_pixels,
                                         uint8_t **rgb, int *width, int *height)
{
    const char *kind = vg_image_kind(data, len);
    if (!kind)
        return vg_errf(VG_ERR_DECODE, "not a JPEG or PNG image");
    try {
        cv::Mat in(1, static_cast<int>(len), CV_8UC1, const_cast<void *>(data));
        // The caller caps the file size; OpenCV caps the pixels it will
        // allocate (CV_IO_MAX_IMAGE_PIXELS), and we cap what we keep.
        cv::Mat img = cv::imdecode(in, cv::IMREAD_COLOR);
        if (img.empty())
            return vg_errf(VG_ERR_DECODE, "corrupt or unsupported %s image", kind);
        if (static_cast<size_t>(img.cols) * static_cast<size_t>(img.rows) > max_pixels)
            return vg_errf(VG_ERR_TOO_LARGE, "%dx%d image is larger than %zu pixels", img.cols,
                           img.rows, max_pixels);
        cv::Mat out;
        cv::cvtColor(img, out, cv::COLOR_BGR2RGB);
        size_t bytes = out.total() * 3;
        uint8_t *buf = static_cast<uint8_t *>(std::malloc(bytes));
        if (!buf)
            return vg_errf(VG_ERR_NOMEM, "%zu bytes", bytes);
        for (int y = 0; y < out.rows; y++)
            std::memcpy(buf + static_cast<size_t>(y) * out.cols * 3, out.ptr(y),
                        static_cast<size_t>(out.cols) * 3);
        *rgb = buf;
        *width = out.cols;
        *height = out.rows;
        return VG_OK;
    } catch (const std::exception &e) {
        return vg_errf(VG_ERR_DECODE, "%s image: %s", kind, e.what());
    }
}
