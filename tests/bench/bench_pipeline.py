#!/usr/bin/env python3
"""Pipeline benchmark: the five services on vtest.avi with real nats-server and
redis-server, capture reading as fast as it can. Prints end-to-end throughput
and every service's peak RSS (VmHWM). Reports only; never fails on time."""
import argparse
import os
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
from harness import DEMO_VIDEO, Stack, read_jsonl, wait_for  # noqa: E402

SERVICES = ("notifier", "dedupe", "facematch", "dispatch")


def peak_rss_kib(pid):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--fps", default="1000", help="sampling rate (1000 = every frame)")
    args = ap.parse_args()
    stack = Stack(args.bin)
    stack.write_config(f"""
log_level: warn
cameras:
  - id: demo
    url: {DEMO_VIDEO}
    fps: {args.fps}
    speed: 0
    watch: [ {{ label: motion, min_confidence: 0.2 }} ]
dispatch: {{ detectors: [motion], snapshot_dir: {stack.path("snapshots")} }}
dedupe: {{ window_s: 1 }}
notifier:
  sinks: [ {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }} ]
""")
    peaks = {}
    try:
        stack.start_nats()
        stack.start_redis()
        for svc in SERVICES:
            stack.start_service(svc)
        t0 = time.monotonic()
        cap = stack.start_service("capture", "--camera", "demo", wait_ready=False)
        # capture exits by itself: sample its peak while it runs.
        while cap.alive():
            v = peak_rss_kib(cap.p.pid)
            if v:
                peaks["capture"] = v
            time.sleep(0.05)
        wall = time.monotonic() - t0
        wait_for(lambda: stack.metric("dispatch", "vigil_dispatch_frames_total") > 0, 10,
                 "frames at dispatch")
        time.sleep(1.5)
        frames = stack.metric("dispatch", "vigil_dispatch_frames_total")
        for svc in SERVICES:
            peaks[svc] = peak_rss_kib(stack.procs[svc].p.pid)
        alerts = len(read_jsonl(stack.path("outbox.jsonl")))
        print(f"pipeline: {frames:.0f} frames through capture+dispatch in {wall:.2f} s "
              f"= {frames / wall:.1f} frames/s end to end (sampling fps {args.fps}), "
              f"{alerts} alerts delivered")
        for svc in ("capture",) + SERVICES:
            v = peaks.get(svc)
            print(f"peak RSS {svc:10s} {v / 1024:7.1f} MiB" if v else f"peak RSS {svc}: n/a")
    finally:
        stack.stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
