#!/usr/bin/env python3
"""The evidence of an alert, end to end on the local stack, as its reader
meets it: real nats-server and redis-server, vigil-capture recording an
H.264 camera (vtest.avi re-encoded by the ffmpeg CLI, a keyframe every
second) while sampling it, dispatch (motion) storing snapshots in the fs
store, dedupe, the notifier's file sink, and vigil-console.

- the alert the file sink wrote carries a snapshot link and a clip link,
  both on console.public_url, and no server path;
- the snapshot link opens the JPEG (200 image/jpeg);
- the clip link, once its end is recorded, opens an H.264 MP4 (copied,
  not re-encoded: same size and profile as the camera) that starts within
  one keyframe interval before the detection minus the pre-roll and plays
  for the requested length;
- the frame fetcher lists the alert's frame with its labels and snapshot
  link; the alert and its incident are in the events.
"""
import calendar
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEMO_VIDEO, check, free_port, read_jsonl, run, wait_for  # noqa: E402

PRE_S, LEN_S, SEG_S = 2, 6, 2


def make_camera(path):
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-i", DEMO_VIDEO, "-t", "40", "-c:v",
                    "libx264", "-preset", "ultrafast", "-profile:v", "high", "-g", "10",
                    "-keyint_min", "10", "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-an",
                    path], check=True, timeout=120)


def ffprobe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_streams", "-show_format", "-of",
                          "json", path], capture_output=True, check=True, timeout=30)
    return json.loads(out.stdout)


def ms_of(ts):
    """capture_ts: RFC 3339 with milliseconds, "2024-05-01T12:00:00.123Z"."""
    return calendar.timegm(time.strptime(ts[:19], "%Y-%m-%dT%H:%M:%S")) * 1000 + int(ts[20:23])


def first_segment_ms(rec_dir):
    """Start of the recording: the oldest segment's name (<start_ms>.mkv)."""
    try:
        names = [n for n in os.listdir(rec_dir) if n.endswith(".mkv")]
    except FileNotFoundError:
        return 1 << 62
    return min((int(n[:-4]) for n in names), default=1 << 62)


def fetch(url):
    try:
        with urllib.request.urlopen(url, timeout=60) as r:
            return r.status, r.headers.get("Content-Type", ""), r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers.get("Content-Type", ""), e.read()


def body(stack, args):
    camera = stack.path("porch.mp4")
    make_camera(camera)
    cam_info = ffprobe(camera)["streams"][0]
    port = free_port()
    public = f"http://127.0.0.1:{port}"
    stack.env["VIGIL_CONSOLE_ADDR"] = f"127.0.0.1:{port}"
    stack.env["VIGIL_CONSOLE_URL"] = public
    stack.start_nats()
    stack.start_redis()
    outbox = stack.path("outbox.jsonl")
    stack.write_config(f"""
cameras:
  - id: porch
    url: {camera}
    fps: 5
    speed: 1
    motion: {{ threshold: 25, min_area: 0.004 }}
    detectors: [motion]
    watch:
      - {{ label: motion, min_confidence: 0.2 }}
recording:
  segment_s: {SEG_S}
clips:
  pre_roll_s: {PRE_S}
  length_s: {LEN_S}
store:
  snapshots: {{ type: fs, dir: {stack.path("snapshots")} }}
dedupe:
  window_s: 3
notifier:
  sinks:
    - {{ name: outbox, type: file, path: {outbox} }}
""")
    for svc in ("console", "notifier", "dedupe", "dispatch"):
        stack.start_service(svc)
    stack.start_service("capture", "--camera", "porch", wait_ready=False)
    rec_dir = os.path.join(stack.env["VIGIL_RECORDING_DIR"], "porch")
    started_ms = int(time.time() * 1000)

    def later_alert():
        """The first alert seen PRE_S + 1 s after recording began, so its whole
        pre-roll (and the keyframe before it) is recorded."""
        for x in read_jsonl(outbox):
            if ms_of(x["capture_ts"]) - (PRE_S + 1) * 1000 >= first_segment_ms(rec_dir):
                return x
        return None
    wait_for(later_alert, 60, "an alert after the pre-roll's start was recorded")
    a = later_alert()
    print(f"# recording began {first_segment_ms(rec_dir) - started_ms} ms after capture",
          flush=True)
    snap, clip = a.get("snapshot_url") or "", a.get("clip_url") or ""
    print(f"# snapshot_url {snap}\n# clip_url {clip}", flush=True)
    check(snap.startswith(public + "/api/snapshots/frames/porch/") and
          a.get("snapshot_ref", "").startswith("fs:frames/porch/"),
          "the alert links its snapshot through the console (and keeps the store reference)")
    check("file://" not in json.dumps(a) and stack.dir not in snap + clip,
          "no server path in the alert")
    status, ctype, data = fetch(snap)
    check(status == 200 and ctype == "image/jpeg" and data[:3] == b"\xff\xd8\xff",
          f"the snapshot link opens the JPEG ({status} {ctype}, {len(data)} bytes)")

    ts = a["capture_ts"]
    detect_ms = ms_of(ts)
    check(clip.startswith(f"{public}/api/clips/porch.mp4?t={detect_ms}&pre={PRE_S}"
                          f"&dur={LEN_S}"), f"the clip link names the detection time ({ts})")
    # The clip's end must be recorded (and its segment written) first.
    end_s = detect_ms / 1000 - PRE_S + LEN_S
    time.sleep(max(0.0, end_s - time.time()) + SEG_S + 1)
    status, ctype, data = fetch(clip)
    check(status == 200 and ctype == "video/mp4",
          f"the clip link opens an MP4 ({status} {ctype}, {len(data)} bytes)"
          + ("" if status == 200 else f": {data[:200]!r}"))
    path = stack.path("clip.mp4")
    with open(path, "wb") as f:
        f.write(data)
    info = ffprobe(path)
    v = info["streams"][0]
    dur = float(info["format"]["duration"])
    check(v["codec_name"] == "h264" and v["width"] == cam_info["width"] and
          v["height"] == cam_info["height"] and v.get("profile") == cam_info.get("profile"),
          f"the clip is the camera's H.264, copied ({v['codec_name']} {v.get('profile')} "
          f"{v['width']}x{v['height']})")
    # Keyframes every 10 frames (1 s at vtest's 10 fps): the clip starts at
    # most one interval before T - pre, so it lasts LEN_S .. LEN_S + 1 s.
    check(LEN_S - 0.3 <= dur <= LEN_S + 1.3,
          f"it plays the requested {LEN_S} s from at most a keyframe interval before "
          f"T - {PRE_S} s ({dur:.2f} s)")
    index = open(os.path.join(rec_dir, "index")).read().split("\n")
    starts = [int(line.split()[0]) for line in index if line]
    t_start = detect_ms - PRE_S * 1000
    check(starts and starts[0] <= t_start,
          f"the recording covers the clip's start ({len(starts)} segments indexed)")

    q = f"{public}/api/frames?camera=porch&limit=5"
    status, _, data = fetch(q)
    frames = json.loads(data).get("frames", []) if status == 200 else []
    check(status == 200 and frames and frames[0]["labels"] and
          frames[0]["snapshot_url"].startswith(public + "/api/snapshots/"),
          f"the frame fetcher lists frames with labels and snapshot links ({len(frames)})")
    status, _, data = fetch(f"{public}/api/events?camera=porch")
    kinds = {e["kind"] for e in json.loads(data).get("events", [])} if status == 200 else set()
    check("alert" in kinds, f"the alert is in the console's events ({sorted(kinds)})")


if __name__ == "__main__":
    sys.exit(run(body, dump=("capture", "console", "notifier", "dispatch")))
