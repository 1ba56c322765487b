#!/usr/bin/python3
"""Write a tiny YOLOv5-shaped ONNX model whose output is fixed by construction.

    make_tiny_onnx.py OUT.onnx

Input "images" [1, 3, 320, 320]; output "output0" [1, 4, 85] (80 COCO
classes): GlobalAveragePool -> a 1x1 Conv with zero weights (its output is
its bias, whatever the image) -> Reshape. The rows are in input pixels, the
way YOLOv5 exports them; tests/unit/test_detect_opencv.c
(onnx_output_decoded) expects exactly these values.

Uses onnx.helper only (Debian 12: python3-onnx), so call it with
/usr/bin/python3 where python3 on PATH is another build.
"""
import sys

import onnx
from onnx import TensorProto, helper

SIZE = 320
CLASSES = 80
CAT, DOG, CAR = 15, 16, 2   # COCO indices

# cx, cy, w, h (input pixels), objectness, {class: score}
ROWS = [
    # the dog: conf 0.9 * 0.95 = 0.855; cat is its second-best class
    (140, 160, 120, 90, 0.9, {DOG: 0.95, CAT: 0.6}),
    # the same dog, 6 and 3 px off (IoU 0.85): conf 0.72, NMS drops it
    (146, 163, 120, 90, 0.8, {DOG: 0.9}),
    # a car with a high class score but objectness 0.3: conf 0.27 < 0.5
    (60, 120, 40, 30, 0.3, {CAR: 0.9}),
    # a car reaching 10 px into the bottom letterbox padding: conf 0.7
    (280, 227.5, 80, 65, 0.8, {CAR: 0.875}),
]


def row_values(row):
    cx, cy, w, h, obj, scores = row
    out = [float(cx), float(cy), float(w), float(h), float(obj)]
    out += [float(scores.get(k, 0.0)) for k in range(CLASSES)]
    return out


def build():
    cols = 5 + CLASSES
    n = len(ROWS) * cols
    bias = [v for row in ROWS for v in row_values(row)]
    inits = [
        helper.make_tensor("w", TensorProto.FLOAT, [n, 3, 1, 1], [0.0] * (n * 3)),
        helper.make_tensor("b", TensorProto.FLOAT, [n], bias),
        helper.make_tensor("shape", TensorProto.INT64, [3], [1, len(ROWS), cols]),
    ]
    nodes = [
        helper.make_node("GlobalAveragePool", ["images"], ["pooled"]),
        helper.make_node("Conv", ["pooled", "w", "b"], ["flat"], kernel_shape=[1, 1]),
        helper.make_node("Reshape", ["flat", "shape"], ["output0"]),
    ]
    graph = helper.make_graph(
        nodes, "tiny_yolov5",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, [1, 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("output0", TensorProto.FLOAT, [1, len(ROWS), cols])],
        inits)
    model = helper.make_model(graph, producer_name="vigil-tests",
                              opset_imports=[helper.make_opsetid("", 11)])
    model.ir_version = 6
    onnx.checker.check_model(model)
    return model


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_tiny_onnx.py OUT.onnx")
    onnx.save(build(), sys.argv[1])


if __name__ == "__main__":
    main()
