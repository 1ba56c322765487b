// Backend "opencv": the local default detector, no account and no download.
//
//  * people: OpenCV's HOG people detector with its built-in Dalal-Triggs
//    coefficients (getDefaultPeopleDetector). HOG finds people at least 128
//    px tall in the image it is given, so small crops are scaled up (a
//    crop is at least CROP_MIN_H px tall after scaling, and padded to at
//    least the 64x128 window plus a border), and the whole frame is scaled
//    down to max_width to bound the cost.
//    Confidence: HOG reports each hit's SVM margin w (0 at the decision
//    boundary, true hits typically 0.7 .. 5). It is squashed to 0..1 as
//    1 - exp(-w): w = ln 2 ~ 0.69 gives 0.5, w = 2 gives 0.86, w = 3 gives
//    0.95; hits below hog_min_confidence (0.5) are dropped. False hits are
//    kept out by grouping rather than by the threshold: only windows scoring
//    hog_hit_threshold (0.3) count, and a group needs more than hog_group (2)
//    of them; with the pyramid step hog_scale 1.1 person-like clutter (a
//    dotted stick figure in ffmpeg's testsrc2) forms no group, while at 1.05
//    it did, at 0.80.
//  * faces: when the request wants faces, the frontal-face Haar cascade
//    (Debian's opencv-data) in the upper half of every person found, or in
//    the analysed areas when no person was: labels "face" and res->faces.
//  * pets: the cat-face cascade: labels "cat face" (parent "cat"), pet.
//  * model: a user-supplied network through OpenCV's dnn module:
//      - ONNX YOLOv5-style, output [1, N, 5 + classes] (cx, cy, w, h in input
//        pixels, objectness, class scores); YOLOv8-style [1, 4 + classes, N]
//        (no objectness) is recognised by its shape. Letterboxed input (the
//        way these models are trained), RGB, 1/255.
//      - Darknet YOLOv3/v4(-tiny) .cfg + .weights: OpenCV's yolo layer rows
//        [cx, cy, w, h normalised, objectness, class probabilities (already
//        multiplied by the objectness)]. Plain resize, RGB, 1/255.
//      - Caffe MobileNet-SSD .prototxt + .caffemodel, output [1, 1, N, 7]
//        (image id, class, confidence, x1, y1, x2, y2 normalised). Plain
//        resize to 300x300, BGR, (x - 127.5) / 127.5; VOC class names with
//        "background" first unless a classes file is given.
//    Detections below min_confidence are dropped, then cv::dnn::NMSBoxes per
//    class with the nms IoU threshold.
//
// Regions: the chain hands the merged motion regions to later stages. With
// regions: auto the detectors run on crops around them when their cost
// (scaled pixels) is below CROPS_SHARE of the whole frame's, else on the
// whole frame; "whole" and "crops" force one. A DNN runs once on the whole
// frame unless regions is "crops" (each crop costs a full forward pass).
//
// Class names to categories (case-insensitive; kept raw name beside it):
//   person                                              -> person
//   cat, dog, bird, horse, sheep, cow (COCO and VOC)    -> pet
//   car, truck, bus, motorcycle, motorbike (VOC),
//   bicycle, train, boat, airplane, aeroplane (VOC)     -> vehicle
//   backpack, handbag, suitcase, and package, parcel,
//   box (names custom models use)                       -> package
//   everything else (chair, bear, "traffic light"...)   -> other
// The HOG hits are raw "person"; the cascades give "face" (face) and
// "cat face" (pet).
//
// C++ only because OpenCV 4 has no C API: every entry point catches every
// exception and turns it into vg_errf(). One state per worker thread; the
// only shared thing is OpenCV's process-wide thread count (set once).
#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <new>
#include <string>
#include <vector>

#include <strings.h>
#include <sys/stat.h>

#include <opencv2/core.hpp>
#include <opencv2/dnn.hpp>
#include <opencv2/imgproc.hpp>
#include <opencv2/objdetect.hpp>

extern "C" {
#include "detect/detector.h"
#include "timeutil.h"
}

namespace {

constexpr int PATH_CAP = 1024;
constexpr int CROP_MIN_H = 192;       // a person ~2/3 of a padded region is then >= 128 px
constexpr double CROP_MAX_UP = 4.0;   // beyond this, upscaling invents no detail
constexpr int HOG_BORDER = 16;        // context around a crop so edge people are found
constexpr double CROPS_SHARE = 0.6;   // auto: crops when cheaper than this share
constexpr int MIN_AREA_PX = 8;        // regions smaller than this (pixels) are skipped
constexpr int FACE_MIN_PX = 20;
constexpr int FACE_AREA_W = 192;      // person boxes are scaled to this width for faces
constexpr double FACE_MAX_SHARE = 0.5; // a face is at most half a person box wide
constexpr size_t MAX_CLASSES = 10000;
constexpr long long MAX_PIXELS = 8192LL * 8192;
constexpr int SSD_COLS = 7;

enum { FW_AUTO, FW_ONNX, FW_DARKNET, FW_CAFFE };
enum { REG_AUTO, REG_WHOLE, REG_CROPS };

const char *const framework_values[] = {"auto", "onnx", "darknet", "caffe", nullptr};
const char *const regions_values[] = {"auto", "whole", "crops", nullptr};

struct ocv_settings {
    int people;
    double hog_min_confidence;
    double hog_hit_threshold;
    double hog_scale;
    int hog_stride;
    int hog_group;
    int max_width;
    int regions;
    int faces;
    char face_cascade[PATH_CAP];
    int pets;
    char pet_cascade[PATH_CAP];
    char model[PATH_CAP];
    char config[PATH_CAP];
    int framework;
    char classes[PATH_CAP];
    int input_width;
    int input_height;
    double min_confidence;
    double nms;
    int threads;
};

#define S ocv_settings
const struct vg_opt opencv_opts[] = {
    VG_OPT_BOOL_("people", S, people, "true",
                 "HOG people detector (OpenCV's built-in coefficients): labels \"person\""),
    VG_OPT_DBL_("hog_min_confidence", S, hog_min_confidence, 0, 1, "0.5",
                "drop HOG hits below this; confidence = 1 - exp(-SVM score), 0.5 = a score "
                "of 0.69"),
    VG_OPT_DBL_("hog_hit_threshold", S, hog_hit_threshold, -1, 3, "0.3",
                "SVM score a HOG window needs before grouping: weak, isolated windows (the "
                "usual false positives) then form no group"),
    VG_OPT_DBL_("hog_scale", S, hog_scale, 1.01, 2, "1.1",
                "HOG pyramid step: 1.05 finds a few more people at ~1.6x the cost, 1.2 fewer "
                "at ~0.6x"),
    VG_OPT_INT_("hog_stride", S, hog_stride, 8, 64, "8",
                "HOG window step in pixels, a multiple of 8: 16 is ~4x faster, misses more"),
    VG_OPT_INT_("hog_group", S, hog_group, 0, 10, "2",
                "HOG hits grouped: clusters of this many or fewer overlapping windows dropped"),
    VG_OPT_INT_("max_width", S, max_width, 0, 8192, "800",
                "whole frames wider than this are scaled down before HOG and the cascades "
                "(0: never); people shorter than 128 px after scaling are missed"),
    VG_OPT_ENUM_("regions", S, regions, regions_values, "auto",
                 "auto: run on crops around the motion regions when cheaper than 60% of the "
                 "whole frame; whole; crops"),
    VG_OPT_BOOL_("faces", S, faces, "true",
                 "when dispatch wants faces: frontal-face cascade in the upper half of each "
                 "person (else the analysed areas): labels \"face\" and face boxes"),
    VG_OPT_STR_("face_cascade", S, face_cascade,
                "/usr/share/opencv4/haarcascades/haarcascade_frontalface_default.xml", nullptr, 0,
                "face cascade XML (Debian package opencv-data)"),
    VG_OPT_BOOL_("pets", S, pets, "false",
                 "cat-face cascade: labels \"cat face\" (category pet; frontal cat faces only)"),
    VG_OPT_STR_("pet_cascade", S, pet_cascade,
                "/usr/share/opencv4/haarcascades/haarcascade_frontalcatface.xml", nullptr, 0,
                "pet cascade XML (or lbpcascades/lbpcascade_frontalcatface.xml, faster)"),
    VG_OPT_STR_("model", S, model, "", nullptr, 0,
                "DNN model: .onnx (YOLOv5/v8), .weights (Darknet YOLO), .caffemodel (SSD); "
                "\"\" = none"),
    VG_OPT_STR_("config", S, config, "", nullptr, 0,
                "the model's network file: Darknet .cfg or Caffe .prototxt"),
    VG_OPT_ENUM_("framework", S, framework, framework_values, "auto",
                 "auto (from the model's extension), onnx, darknet, caffe"),
    VG_OPT_STR_("classes", S, classes, "", nullptr, 0,
                "class names, one per line (\"\": COCO's 80, VOC's for Caffe SSD)"),
    VG_OPT_INT_("input_width", S, input_width, 0, 4096, "0",
                "network input width (0: 640 ONNX, 416 Darknet, 300 Caffe)"),
    VG_OPT_INT_("input_height", S, input_height, 0, 4096, "0",
                "network input height (0: as input_width's default)"),
    VG_OPT_DBL_("min_confidence", S, min_confidence, 0, 1, "0.5",
                "drop DNN detections below this"),
    VG_OPT_DBL_("nms", S, nms, 0, 1, "0.45",
                "IoU above which overlapping boxes of one class are merged"),
    VG_OPT_INT_("threads", S, threads, 0, 64, "0",
                "OpenCV's own threads per call, process-wide, set once (0: OpenCV's default; "
                "dispatch already runs one detector per worker)"),
    VG_OPT_END,
};
#undef S

// ---- class names and categories -------------------------------------------

struct class_category {
    const char *name;
    enum vg_category cat;
};

const class_category class_categories[] = {
    {"person", VG_CAT_PERSON},
    {"cat", VG_CAT_PET},           {"dog", VG_CAT_PET},         {"bird", VG_CAT_PET},
    {"horse", VG_CAT_PET},         {"sheep", VG_CAT_PET},       {"cow", VG_CAT_PET},
    {"car", VG_CAT_VEHICLE},       {"truck", VG_CAT_VEHICLE},   {"bus", VG_CAT_VEHICLE},
    {"motorcycle", VG_CAT_VEHICLE}, {"motorbike", VG_CAT_VEHICLE},
    {"bicycle", VG_CAT_VEHICLE},   {"train", VG_CAT_VEHICLE},   {"boat", VG_CAT_VEHICLE},
    {"airplane", VG_CAT_VEHICLE},  {"aeroplane", VG_CAT_VEHICLE},
    {"backpack", VG_CAT_PACKAGE},  {"handbag", VG_CAT_PACKAGE}, {"suitcase", VG_CAT_PACKAGE},
    {"package", VG_CAT_PACKAGE},   {"parcel", VG_CAT_PACKAGE},  {"box", VG_CAT_PACKAGE},
};

enum vg_category category_of(const std::string &name)
{
    for (const auto &c : class_categories)
        if (!strcasecmp(c.name, name.c_str()))
            return c.cat;
    return VG_CAT_OTHER;
}

const char *const coco_names[] = {
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat",
    "traffic light", "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat",
    "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe", "backpack",
    "umbrella", "handbag", "tie", "suitcase", "frisbee", "skis", "snowboard", "sports ball",
    "kite", "baseball bat", "baseball glove", "skateboard", "surfboard", "tennis racket",
    "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair",
    "couch", "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse",
    "remote", "keyboard", "cell phone", "microwave", "oven", "toaster", "sink",
    "refrigerator", "book", "clock", "vase", "scissors", "teddy bear", "hair drier",
    "toothbrush", nullptr};

const char *const voc_names[] = {
    "background", "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat",
    "chair", "cow", "diningtable", "dog", "horse", "motorbike", "person", "pottedplant",
    "sheep", "sofa", "train", "tvmonitor", nullptr};

// ---- state ------------------------------------------------------------------

struct hit {
    cv::Rect2f box;          // pixels of the whole image
    float conf;
    enum vg_category cat;
    std::string raw;
};

// One part of the image to analyse, the scale to analyse it at and, for
// cascades, the largest object as a share of its width (0: any).
struct area {
    cv::Rect r;
    double scale;
    double max_share = 0;
};

struct ocv_state {
    const ocv_settings *s = nullptr;
    cv::HOGDescriptor hog;
    cv::CascadeClassifier face, pet;
    cv::dnn::Net net;
    int fw = FW_AUTO;
    cv::Size input;
    std::vector<std::string> names, outs;
    cv::Mat scaled, padded, grey, canvas, blob;   // scratch, reused per frame
};

bool past(const vg_detect_req *req)
{
    return req->deadline_us && vg_now_us() > req->deadline_us;
}

vg_status timeout(const char *step)
{
    return vg_errf(VG_ERR_TIMEOUT, "opencv: past the deadline before %s", step);
}

// ---- settings check -----------------------------------------------------------

vg_status readable(const char *what, const char *path)
{
    struct stat sb;
    FILE *f = fopen(path, "rb");
    if (!f)
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.%s %s: %s", what, path, strerror(errno));
    int bad = fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode) || sb.st_size == 0;
    fclose(f);
    if (bad)
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.%s %s: not a regular file or empty",
                       what, path);
    return VG_OK;
}

bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcasecmp(s + n - m, suffix);
}

int resolve_framework(const ocv_settings *s)
{
    if (s->framework != FW_AUTO)
        return s->framework;
    if (ends_with(s->model, ".onnx"))
        return FW_ONNX;
    if (ends_with(s->model, ".weights"))
        return FW_DARKNET;
    if (ends_with(s->model, ".caffemodel"))
        return FW_CAFFE;
    return FW_AUTO;
}

vg_status check_model(const ocv_settings *s)
{
    vg_status st;
    int fw = resolve_framework(s);
    if (fw == FW_AUTO)
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.model %s: cannot tell the framework from "
                       "the extension (.onnx, .weights, .caffemodel): set framework", s->model);
    if ((st = readable("model", s->model)) != VG_OK)
        return st;
    if (fw != FW_ONNX && !s->config[0])
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.model %s: a %s model needs config (%s)",
                       s->model, fw == FW_DARKNET ? "Darknet" : "Caffe",
                       fw == FW_DARKNET ? ".cfg" : ".prototxt");
    if (fw != FW_ONNX && (st = readable("config", s->config)) != VG_OK)
        return st;
    return VG_OK;
}

vg_status check_settings(const ocv_settings *s)
{
    vg_status st;
    if (s->hog_stride % 8)
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.hog_stride = %d must be a multiple of 8 "
                       "(the HOG block stride)", s->hog_stride);
    if (s->faces && (st = readable("face_cascade", s->face_cascade)) != VG_OK)
        return st;
    if (s->pets && (st = readable("pet_cascade", s->pet_cascade)) != VG_OK)
        return st;
    if (s->model[0] && (st = check_model(s)) != VG_OK)
        return st;
    if (s->classes[0] && (st = readable("classes", s->classes)) != VG_OK)
        return st;
    if (!s->people && !s->faces && !s->pets && !s->model[0])
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv: people, faces and pets are off and no "
                       "model is set: nothing to detect");
    return VG_OK;
}

// ---- init ---------------------------------------------------------------------

vg_status load_cascade(cv::CascadeClassifier &c, const char *what, const char *path)
{
    try {
        if (c.load(path) && !c.empty())
            return VG_OK;
    } catch (const cv::Exception &e) {
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.%s %s: not an OpenCV cascade: %s", what,
                       path, e.err.c_str());
    }
    return vg_errf(VG_ERR_CONFIG, "detectors.opencv.%s %s: not an OpenCV cascade", what, path);
}

vg_status load_classes(ocv_state *st)
{
    const ocv_settings *s = st->s;
    if (!s->classes[0]) {
        for (const char *const *n = st->fw == FW_CAFFE ? voc_names : coco_names; *n; n++)
            st->names.emplace_back(*n);
        return VG_OK;
    }
    FILE *f = fopen(s->classes, "rb");
    if (!f)
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.classes %s: %s", s->classes,
                       strerror(errno));
    char line[256];
    bool bad = false;
    while (!bad && fgets(line, sizeof(line), f)) {
        size_t n = strlen(line);
        // A NUL inside, an overlong line or too many: not a names file.
        bad = (n == sizeof(line) - 1 && line[n - 1] != '\n') || st->names.size() >= MAX_CLASSES;
        while (n && (line[n - 1] == '\n' || line[n - 1] == '\r' || line[n - 1] == ' '))
            line[--n] = '\0';
        for (size_t i = 0; i < n && !bad; i++)
            bad = (unsigned char)line[i] < 0x20 && line[i] != '\t';
        st->names.emplace_back(line);
    }
    bad = bad || ferror(f);
    fclose(f);
    while (!st->names.empty() && st->names.back().empty())
        st->names.pop_back();
    if (bad || st->names.empty())
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.classes %s: not a class names file (one "
                       "name per line, at most %zu)", s->classes, MAX_CLASSES);
    return VG_OK;
}

// OpenCV's Darknet reader does not notice a short weights file (it leaves the
// rest of the tensors unset): count the parameters the network holds.
vg_status check_darknet_size(ocv_state *st)
{
    struct stat sb;
    size_t floats = 0;
    for (const std::string &name : st->net.getLayerNames()) {
        cv::Ptr<cv::dnn::Layer> l = st->net.getLayer(name);
        if (l->type == "Region")
            continue;   // anchors come from the .cfg
        for (const cv::Mat &b : l->blobs)
            floats += b.total();
    }
    if (stat(st->s->model, &sb) != 0 || (size_t)sb.st_size < 16 + floats * sizeof(float))
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.model %s: truncated: the network in %s "
                       "needs %zu weights", st->s->model, st->s->config, floats);
    return VG_OK;
}

cv::Size default_input(int fw)
{
    return fw == FW_ONNX ? cv::Size(640, 640) : fw == FW_CAFFE ? cv::Size(300, 300)
                                                               : cv::Size(416, 416);
}

vg_status decode_dnn(ocv_state *st, const std::vector<cv::Mat> &outs, const cv::Rect &r,
                     std::vector<hit> &cands, const cv::Vec4d &lb);
cv::Vec4d prepare_blob(ocv_state *st, const cv::Mat &roi);

vg_status load_net(ocv_state *st)
{
    const ocv_settings *s = st->s;
    try {
        if (st->fw == FW_ONNX)
            st->net = cv::dnn::readNetFromONNX(s->model);
        else if (st->fw == FW_DARKNET)
            st->net = cv::dnn::readNetFromDarknet(s->config, s->model);
        else
            st->net = cv::dnn::readNetFromCaffe(s->config, s->model);
    } catch (const cv::Exception &e) {
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.model %s: cannot be read: %s", s->model,
                       e.err.c_str());
    }
    if (st->net.empty())
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.model %s: no network in it", s->model);
    vg_status rc = st->fw == FW_DARKNET ? check_darknet_size(st) : VG_OK;
    if (rc != VG_OK)
        return rc;
    st->net.setPreferableBackend(cv::dnn::DNN_BACKEND_OPENCV);
    st->net.setPreferableTarget(cv::dnn::DNN_TARGET_CPU);
    st->outs = st->net.getUnconnectedOutLayersNames();
    // One run on a grey image now: a network whose output vigil cannot read
    // fails at start, not on the first frame.
    try {
        std::vector<cv::Mat> outs;
        std::vector<hit> cands;
        cv::Mat probe(st->input, CV_8UC3, cv::Scalar(114, 114, 114));
        cv::Vec4d lb = prepare_blob(st, probe);
        st->net.setInput(st->blob);
        st->net.forward(outs, st->outs);
        rc = decode_dnn(st, outs, cv::Rect(0, 0, probe.cols, probe.rows), cands, lb);
    } catch (const cv::Exception &e) {
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv.model %s: does not run: %s", s->model,
                       e.err.c_str());
    }
    if (rc != VG_OK)
        return vg_errf(rc, "detectors.opencv.model %s: %s", s->model, vg_err_detail());
    return VG_OK;
}

std::once_flag threads_once;

vg_status init_state(ocv_state *st)
{
    const ocv_settings *s = st->s;
    vg_status rc = VG_OK;
    // Engines are created before their worker starts, the first one before
    // any: set the process-wide value once, while nothing runs OpenCV.
    if (s->threads > 0)
        std::call_once(threads_once, [n = s->threads] { cv::setNumThreads(n); });
    if (s->people)
        st->hog.setSVMDetector(cv::HOGDescriptor::getDefaultPeopleDetector());
    if (s->faces && (rc = load_cascade(st->face, "face_cascade", s->face_cascade)) != VG_OK)
        return rc;
    if (s->pets && (rc = load_cascade(st->pet, "pet_cascade", s->pet_cascade)) != VG_OK)
        return rc;
    if (!s->model[0])
        return VG_OK;
    st->fw = resolve_framework(s);
    cv::Size def = default_input(st->fw);
    st->input = cv::Size(s->input_width ? s->input_width : def.width,
                         s->input_height ? s->input_height
                                         : (s->input_width ? s->input_width : def.height));
    if ((rc = load_classes(st)) != VG_OK)
        return rc;
    return load_net(st);
}

// ---- areas: whole frame or crops ------------------------------------------------

double whole_scale(const ocv_settings *s, int w)
{
    return s->max_width > 0 && w > s->max_width ? (double)s->max_width / w : 1.0;
}

float unit(float v) { return std::isfinite(v) ? std::clamp(v, 0.0f, 1.0f) : 0.0f; }

cv::Rect to_pixels(const struct vg_box &b, int w, int h)
{
    int x0 = (int)std::floor(unit(b.x) * (float)w), y0 = (int)std::floor(unit(b.y) * (float)h);
    int x1 = (int)std::ceil(unit(b.x + b.w) * (float)w);
    int y1 = (int)std::ceil(unit(b.y + b.h) * (float)h);
    return cv::Rect(x0, y0, x1 - x0, y1 - y0) & cv::Rect(0, 0, w, h);
}

double scaled_cost(const area &a)
{
    double w = a.r.width * a.scale + 2 * HOG_BORDER, h = a.r.height * a.scale + 2 * HOG_BORDER;
    return w * h;
}

// The parts of the image the pixel detectors look at.
std::vector<area> plan_areas(const ocv_settings *s, const vg_detect_req *req)
{
    int w = req->img->width, h = req->img->height;
    area whole = {cv::Rect(0, 0, w, h), whole_scale(s, w)};
    std::vector<area> crops;
    if (s->regions == REG_WHOLE || !req->regions || req->n_regions == 0)
        return {whole};
    double cost = 0;
    for (size_t i = 0; i < req->n_regions; i++) {
        cv::Rect r = to_pixels(req->regions[i], w, h);
        if (r.width < MIN_AREA_PX || r.height < MIN_AREA_PX)
            continue;
        double sc = std::min(std::max(whole.scale, (double)CROP_MIN_H / r.height), CROP_MAX_UP);
        crops.push_back({r, sc});
        cost += scaled_cost(crops.back());
    }
    /* Regions all too small to look at: the whole frame rather than nothing. */
    if (crops.empty() || (s->regions == REG_AUTO && cost >= CROPS_SHARE * scaled_cost(whole)))
        return {whole};
    return crops;
}

// ---- HOG people -----------------------------------------------------------------

// Scale roi by sc into st->scaled, then pad it to at least min_size plus a
// border (replicated edges: no invented edges HOG could take for a person).
// Returns the padding's left/top offset.
cv::Point scale_and_pad(ocv_state *st, const cv::Mat &roi, double sc, cv::Size min_size,
                        int border)
{
    cv::Size sz(std::max(1, (int)std::lround(roi.cols * sc)),
                std::max(1, (int)std::lround(roi.rows * sc)));
    cv::resize(roi, st->scaled, sz, 0, 0, sc < 1 ? cv::INTER_AREA : cv::INTER_LINEAR);
    int px = std::max(border, (min_size.width - sz.width + 1) / 2 + border);
    int py = std::max(border, (min_size.height - sz.height + 1) / 2 + border);
    cv::copyMakeBorder(st->scaled, st->padded, py, py, px, px, cv::BORDER_REPLICATE);
    return cv::Point(px, py);
}

// A rect in the padded, scaled image back to whole-image pixels, inside a.
cv::Rect2f unscale(const cv::Rect2f &p, cv::Point pad, const area &a)
{
    cv::Rect2f r((float)(a.r.x + (p.x - pad.x) / a.scale), (float)(a.r.y + (p.y - pad.y) / a.scale),
                 (float)(p.width / a.scale), (float)(p.height / a.scale));
    return r & cv::Rect2f((float)a.r.x, (float)a.r.y, (float)a.r.width, (float)a.r.height);
}

void hog_area(ocv_state *st, const cv::Mat &rgb, const area &a, std::vector<hit> &hits)
{
    const ocv_settings *s = st->s;
    cv::Point pad = scale_and_pad(st, rgb(a.r), a.scale, st->hog.winSize, HOG_BORDER);
    std::vector<cv::Rect> found;
    std::vector<double> weights;
    st->hog.detectMultiScale(st->padded, found, weights, s->hog_hit_threshold,
                             cv::Size(s->hog_stride, s->hog_stride), cv::Size(), s->hog_scale,
                             s->hog_group);
    for (size_t i = 0; i < found.size() && i < weights.size(); i++) {
        float conf = (float)(1.0 - std::exp(-std::max(0.0, weights[i])));
        cv::Rect2f box = unscale(cv::Rect2f(found[i]), pad, a);
        if (conf >= s->hog_min_confidence && box.area() > 0)
            hits.push_back({box, conf, VG_CAT_PERSON, "person"});
    }
}

// Keep the best of overlapping boxes of one raw name.
void nms_by_name(std::vector<hit> &hits, float nms)
{
    std::vector<hit> kept;
    std::vector<bool> done(hits.size(), false);
    for (size_t i = 0; i < hits.size(); i++) {
        if (done[i])
            continue;
        std::vector<cv::Rect2d> boxes;
        std::vector<float> scores;
        std::vector<size_t> which;
        std::vector<int> keep;
        for (size_t j = i; j < hits.size(); j++)
            if (!done[j] && hits[j].raw == hits[i].raw) {
                boxes.emplace_back(hits[j].box);
                scores.push_back(hits[j].conf);
                which.push_back(j);
                done[j] = true;
            }
        cv::dnn::NMSBoxes(boxes, scores, 0.0f, nms, keep);
        for (int k : keep)
            kept.push_back(hits[which[(size_t)k]]);
    }
    hits.swap(kept);
}

// ---- cascades --------------------------------------------------------------------

float cascade_confidence(double w)
{
    // Boosted-cascade sums are unbounded margins: w / (1 + |w|) to -1..1, then 0..1.
    return (float)(0.5 + 0.5 * w / (1.0 + std::fabs(w)));
}

void cascade_area(ocv_state *st, cv::CascadeClassifier &c, const cv::Mat &rgb, const area &a,
                  enum vg_category cat, const char *raw, std::vector<hit> &hits)
{
    cv::Point pad = scale_and_pad(st, rgb(a.r), a.scale, cv::Size(FACE_MIN_PX, FACE_MIN_PX), 0);
    cv::cvtColor(st->padded, st->grey, cv::COLOR_RGB2GRAY);
    std::vector<cv::Rect> found;
    std::vector<int> levels;
    std::vector<double> weights;
    int max_px = a.max_share > 0 ? (int)(a.r.width * a.scale * a.max_share) : 0;
    if (max_px && max_px < FACE_MIN_PX)
        return;
    c.detectMultiScale(st->grey, found, levels, weights, 1.1, 4, 0,
                       cv::Size(FACE_MIN_PX, FACE_MIN_PX), cv::Size(max_px, max_px), true);
    for (size_t i = 0; i < found.size(); i++) {
        float conf = cascade_confidence(i < weights.size() ? weights[i] : 1.0);
        cv::Rect2f box = unscale(cv::Rect2f(found[i]), pad, a);
        if (box.area() > 0)
            hits.push_back({box, conf, cat, raw});
    }
}

// Faces are looked for in the upper half of each person (scaled so a face is
// big enough for the cascade), or in the analysed areas when no person was
// found (a face close to a doorbell camera is no whole person for HOG).
std::vector<area> face_areas(const std::vector<hit> &hits, const std::vector<area> &areas,
                             cv::Size img)
{
    std::vector<area> out;
    for (const hit &h : hits) {
        if (h.cat != VG_CAT_PERSON)
            continue;
        cv::Rect r = cv::Rect(cv::Rect2f(h.box.x, h.box.y, h.box.width, h.box.height / 2)) &
                     cv::Rect(0, 0, img.width, img.height);
        if (r.width < MIN_AREA_PX || r.height < MIN_AREA_PX)
            continue;
        double sc = std::min(std::max(1.0, (double)FACE_AREA_W / r.width), CROP_MAX_UP);
        out.push_back({r, sc, FACE_MAX_SHARE});
    }
    return out.empty() ? areas : out;
}

// ---- DNN ----------------------------------------------------------------------

// Fill st->blob from roi; returns the letterbox (scale x, scale y, dx, dy)
// mapping input pixels back to roi pixels: roi = (in - d) / scale.
cv::Vec4d prepare_blob(ocv_state *st, const cv::Mat &roi)
{
    cv::Size in = st->input;
    if (st->fw == FW_CAFFE) {
        cv::dnn::blobFromImage(roi, 1.0 / 127.5, in, cv::Scalar(127.5, 127.5, 127.5), true,
                               false, CV_32F).copyTo(st->blob);
        return cv::Vec4d((double)in.width / roi.cols, (double)in.height / roi.rows, 0, 0);
    }
    if (st->fw == FW_DARKNET) {
        cv::dnn::blobFromImage(roi, 1.0 / 255, in, cv::Scalar(), false, false, CV_32F)
            .copyTo(st->blob);
        return cv::Vec4d((double)in.width / roi.cols, (double)in.height / roi.rows, 0, 0);
    }
    double sc = std::min((double)in.width / roi.cols, (double)in.height / roi.rows);
    cv::Size sz(std::max(1, (int)std::lround(roi.cols * sc)),
                std::max(1, (int)std::lround(roi.rows * sc)));
    int dx = (in.width - sz.width) / 2, dy = (in.height - sz.height) / 2;
    st->canvas.create(in, CV_8UC3);
    st->canvas.setTo(cv::Scalar(114, 114, 114));
    cv::resize(roi, st->canvas(cv::Rect(dx, dy, sz.width, sz.height)), sz);
    cv::dnn::blobFromImage(st->canvas, 1.0 / 255, cv::Size(), cv::Scalar(), false, false, CV_32F)
        .copyTo(st->blob);
    return cv::Vec4d(sc, sc, dx, dy);
}

std::string class_name(const ocv_state *st, int id)
{
    if (id >= 0 && (size_t)id < st->names.size())
        return st->names[(size_t)id];
    return "class" + std::to_string(id);
}

// Best class of scores[0..n) times obj.
void best_class(const float *scores, int n, float obj, int *id, float *conf)
{
    *id = 0;
    for (int k = 1; k < n; k++)
        if (scores[k] > scores[*id])
            *id = k;
    *conf = n > 0 ? scores[*id] * obj : 0;
}

void add_cand(const ocv_state *st, std::vector<hit> &cands, int id, float conf, cv::Rect2f box,
              const cv::Rect &r)
{
    box = box & cv::Rect2f(0, 0, (float)r.width, (float)r.height);
    if (conf < st->s->min_confidence || box.area() <= 0)
        return;
    std::string name = class_name(st, id);
    box.x += (float)r.x, box.y += (float)r.y;
    cands.push_back({box, conf, category_of(name), name});
}

// Rows [cx, cy, w, h, (obj,) scores...]; obj_times: the scores are still to
// be multiplied by obj (YOLOv5; OpenCV's yolo layer has done it already);
// normalised: box values are 0..1 of the input, else input pixels. lb maps
// input pixels to roi pixels.
void decode_rows(const ocv_state *st, const float *rows, int n, int cols, bool has_obj,
                 bool obj_times, bool normalised, const cv::Vec4d &lb, const cv::Rect &r,
                 std::vector<hit> &cands)
{
    int first = has_obj ? 5 : 4;
    for (int i = 0; i < n; i++) {
        const float *p = rows + (size_t)i * (size_t)cols;
        int id;
        float conf;
        best_class(p + first, cols - first, obj_times ? p[4] : 1.0f, &id, &conf);
        if (conf < st->s->min_confidence)
            continue;
        double fx = normalised ? st->input.width : 1, fy = normalised ? st->input.height : 1;
        double cx = p[0] * fx, cy = p[1] * fy, w = p[2] * fx, h = p[3] * fy;
        cv::Rect2f box((float)((cx - w / 2 - lb[2]) / lb[0]), (float)((cy - h / 2 - lb[3]) / lb[1]),
                       (float)(w / lb[0]), (float)(h / lb[1]));
        add_cand(st, cands, id, conf, box, r);
    }
}

vg_status decode_ssd(const ocv_state *st, const cv::Mat &out, const cv::Rect &r,
                     std::vector<hit> &cands)
{
    if (out.dims != 4 || out.size[3] != SSD_COLS)
        return vg_errf(VG_ERR_CONFIG, "Caffe output is not SSD's [1, 1, N, 7]");
    const float *p = out.ptr<float>();
    for (int i = 0; i < out.size[2]; i++, p += SSD_COLS) {
        cv::Rect2f box(p[3] * (float)r.width, p[4] * (float)r.height,
                       (p[5] - p[3]) * (float)r.width, (p[6] - p[4]) * (float)r.height);
        if (p[1] >= 1 || st->s->classes[0])   // class 0 is VOC's background
            add_cand(st, cands, (int)p[1], p[2], box, r);
    }
    return VG_OK;
}

vg_status decode_onnx(const ocv_state *st, const cv::Mat &out, const cv::Rect &r,
                      const cv::Vec4d &lb, std::vector<hit> &cands)
{
    if (out.dims != 3 || out.size[0] != 1)
        return vg_errf(VG_ERR_CONFIG, "ONNX output is not YOLO's [1, N, 5 + classes] or "
                       "[1, 4 + classes, N]");
    int a = out.size[1], b = out.size[2], nc = (int)st->names.size();
    // YOLOv5: [1, N, 5 + C], many rows; YOLOv8: [1, 4 + C, N], no objectness.
    // The YOLOv5 shape wins a tie (a YOLOv5 head whose N happens to be 4 + C).
    bool v8 = b != 5 + nc && (a == 4 + nc || a < b);
    if ((v8 ? a : b) < (v8 ? 5 : 6))
        return vg_errf(VG_ERR_CONFIG, "ONNX output [1, %d, %d] has no class scores", a, b);
    cv::Mat rows(a, b, CV_32F, const_cast<float *>(out.ptr<float>()));
    if (v8)
        rows = rows.t();
    decode_rows(st, rows.ptr<float>(), rows.rows, rows.cols, !v8, !v8, false, lb, r, cands);
    return VG_OK;
}

vg_status decode_dnn(ocv_state *st, const std::vector<cv::Mat> &outs, const cv::Rect &r,
                     std::vector<hit> &cands, const cv::Vec4d &lb)
{
    for (const cv::Mat &out : outs) {
        if (out.type() != CV_32F)
            return vg_errf(VG_ERR_CONFIG, "network output is not float32");
        vg_status rc = VG_OK;
        if (st->fw == FW_CAFFE)
            rc = decode_ssd(st, out, r, cands);
        else if (st->fw == FW_ONNX)
            rc = decode_onnx(st, out, r, lb, cands);
        else if (out.dims != 2 || out.cols < 6)
            rc = vg_errf(VG_ERR_CONFIG, "Darknet output is not yolo/region rows");
        else
            decode_rows(st, out.ptr<float>(), out.rows, out.cols, true, false, true, lb, r, cands);
        if (rc != VG_OK)
            return rc;
    }
    return VG_OK;
}

vg_status dnn_area(ocv_state *st, const cv::Mat &rgb, const cv::Rect &r, std::vector<hit> &hits)
{
    std::vector<cv::Mat> outs;
    cv::Vec4d lb = prepare_blob(st, rgb(r));
    st->net.setInput(st->blob);
    st->net.forward(outs, st->outs);
    return decode_dnn(st, outs, r, hits, lb);
}

// ---- detect ---------------------------------------------------------------------

struct vg_box normalise(const cv::Rect2f &b, int w, int h)
{
    return {b.x / (float)w, b.y / (float)h, b.width / (float)w, b.height / (float)h};
}

void emit(const std::vector<hit> &hits, const vg_detect_req *req, struct vg_detect_res *res)
{
    int w = req->img->width, h = req->img->height;
    for (const hit &x : hits) {
        struct vg_box b = normalise(x.box, w, h);
        struct vg_label *l = vg_detect_res_add(res, x.raw.c_str(), x.cat, x.conf, &b);
        if (l && x.cat == VG_CAT_PET && x.raw == "cat face") {
            snprintf(l->parents[0], sizeof(l->parents[0]), "cat");
            l->n_parents = 1;
        }
        if (x.cat == VG_CAT_FACE && req->want_faces && res->n_faces < VG_DETECT_MAX_FACES)
            res->faces[res->n_faces++] = {b, x.conf};
    }
}

vg_status run_people(ocv_state *st, const cv::Mat &rgb, const std::vector<area> &areas,
                     const vg_detect_req *req, std::vector<hit> &hits)
{
    const ocv_settings *s = st->s;
    for (size_t i = 0; s->people && i < areas.size(); i++) {
        if (past(req))
            return timeout("a HOG area");
        hog_area(st, rgb, areas[i], hits);
    }
    if (st->net.empty())
        return VG_OK;
    std::vector<area> whole = {{cv::Rect(0, 0, rgb.cols, rgb.rows), 1.0}};
    const std::vector<area> &dnn = s->regions == REG_CROPS && req->n_regions ? areas : whole;
    for (const area &a : dnn) {
        if (past(req))
            return timeout("the model");
        vg_status rc = dnn_area(st, rgb, a.r, hits);
        if (rc != VG_OK)
            return rc;
    }
    return VG_OK;
}

// The cascades add to what the people detector found: past the deadline
// they stop, and the people found so far stand. *faces_done: every face area
// was searched (so dispatch need not search again).
vg_status run_cascades(ocv_state *st, const cv::Mat &rgb, const std::vector<area> &areas,
                       const vg_detect_req *req, std::vector<hit> &hits, int *faces_done)
{
    const ocv_settings *s = st->s;
    std::vector<hit> found;
    *faces_done = 0;
    // Faces only when dispatch wants them (a face matcher, dispatch.faces).
    if (s->faces && req->want_faces) {
        *faces_done = 1;
        for (const area &a : face_areas(hits, areas, rgb.size())) {
            if (past(req)) {
                *faces_done = 0;
                break;
            }
            cascade_area(st, st->face, rgb, a, VG_CAT_FACE, "face", found);
        }
    }
    for (size_t i = 0; s->pets && i < areas.size() && !past(req); i++)
        cascade_area(st, st->pet, rgb, areas[i], VG_CAT_PET, "cat face", found);
    hits.insert(hits.end(), found.begin(), found.end());
    return VG_OK;
}

vg_status detect_frame(ocv_state *st, const vg_detect_req *req, struct vg_detect_res *res)
{
    const struct vg_image *img = req->img;
    if (!img || !img->rgb || img->width <= 0 || img->height <= 0)
        return vg_errf(VG_ERR_INVALID, "opencv: no decoded image (rgb, width, height)");
    if ((long long)img->width * img->height > MAX_PIXELS)
        return vg_errf(VG_ERR_TOO_LARGE, "opencv: image %dx%d is larger than %lld pixels",
                       img->width, img->height, MAX_PIXELS);
    if (past(req))
        return timeout("the first step");
    cv::Mat rgb(img->height, img->width, CV_8UC3, const_cast<uint8_t *>(img->rgb));
    std::vector<area> areas = plan_areas(st->s, req);
    std::vector<hit> hits;
    int faces_done = 0;
    vg_status rc = run_people(st, rgb, areas, req, hits);
    if (rc == VG_OK) {
        nms_by_name(hits, (float)st->s->nms);
        rc = run_cascades(st, rgb, areas, req, hits, &faces_done);
    }
    if (rc != VG_OK)
        return rc;
    nms_by_name(hits, (float)st->s->nms);
    std::stable_sort(hits.begin(), hits.end(),
                     [](const hit &x, const hit &y) { return x.conf > y.conf; });
    emit(hits, req, res);
    res->faces_searched = faces_done;
    return VG_OK;
}

// ---- the C boundary -----------------------------------------------------------------

vg_status opencv_check(const void *settings)
{
    try {
        return check_settings(static_cast<const ocv_settings *>(settings));
    } catch (const std::exception &e) {
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv: %s", e.what());
    } catch (...) {
        return vg_errf(VG_ERR_CONFIG, "detectors.opencv: unexpected error");
    }
}

vg_status opencv_init(void **state, const void *settings, const struct vg_config *cfg)
{
    ocv_state *st = nullptr;
    vg_status rc;
    try {
        st = new ocv_state();
        st->s = static_cast<const ocv_settings *>(settings);
        rc = init_state(st);
    } catch (const cv::Exception &e) {
        rc = vg_errf(VG_ERR_CONFIG, "detectors.opencv: %s", e.err.c_str());
    } catch (const std::bad_alloc &) {
        rc = VG_ERR_NOMEM;
    } catch (const std::exception &e) {
        rc = vg_errf(VG_ERR_CONFIG, "detectors.opencv: %s", e.what());
    } catch (...) {
        rc = vg_errf(VG_ERR_CONFIG, "detectors.opencv: unexpected error");
    }
    if (rc != VG_OK) {
        delete st;
        return rc;
    }
    *state = st;
    return VG_OK;
}

vg_status opencv_detect(void *state, const struct vg_detect_req *req, struct vg_detect_res *res)
{
    try {
        return detect_frame(static_cast<ocv_state *>(state), req, res);
    } catch (const cv::Exception &e) {
        return vg_errf(VG_ERR_MEDIA, "opencv: %s", e.err.c_str());
    } catch (const std::bad_alloc &) {
        return vg_errf(VG_ERR_NOMEM, "opencv: out of memory");
    } catch (const std::exception &e) {
        return vg_errf(VG_ERR_MEDIA, "opencv: %s", e.what());
    } catch (...) {
        return vg_errf(VG_ERR_MEDIA, "opencv: unexpected error");
    }
}

void opencv_cleanup(void *state)
{
    try {
        delete static_cast<ocv_state *>(state);
    } catch (...) {
        // Destructors do not throw; nothing may cross into C regardless.
    }
}

}  // namespace

extern "C" const struct vg_detector_backend vg_detector_opencv = {
    .name = "opencv",
    .summary = "local: HOG people, Haar face/cat-face cascades, an ONNX/Darknet/Caffe model",
    .caps = VG_DETECT_LOCAL | VG_DETECT_PIXELS | VG_DETECT_FACES,
    .opts = opencv_opts,
    .opts_size = sizeof(ocv_settings),
    .check = opencv_check,
    .init = opencv_init,
    .detect = opencv_detect,
    .cleanup = opencv_cleanup,
};
