#!/usr/bin/env python3
"""vigil-capture on real video against a real nats-server -js: what it sends.

Clips: vtest.avi (people walking), and clips made here with ffmpeg: a still
grey scene, the same scene with the lights switching on half-way, vtest
re-encoded with a keyframe every 25 frames. Every published Frame is recorded
with `vigilctl tail`; capture's own end-of-file summary and CameraStatus must
agree with what arrived. Checks:

- encode on motion: a still clip publishes the first frame and one keep-alive
  every keepalive_s of video, nothing else; publish_all publishes every
  sampled frame; vtest publishes its frames with motion;
- motion masks: vtest under a mask covering the picture publishes no motion;
- global change: the lights switching on is not motion (with max_area 1 it is);
- sample: keyframes decodes and publishes exactly the keyframes ffprobe finds
  (same count, same positions); every_n publishes 1 of every N frames;
- a looping still clip publishes the scene again after each loop, and the
  skipped frames show in /metrics by reason.
"""
import json
import math
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEMO_VIDEO, check, read_jsonl, run, wait_for  # noqa: E402

FPS = 5
STILL_S = 30
KEEPALIVE_S = 5
FLASH_S = 8
EVERY_N = 30


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=300)


def video_codec():
    """H.264 like most cameras when this FFmpeg can encode it, else MPEG-4 part 2."""
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                         text=True).stdout
    return ["-c:v", "libx264", "-preset", "veryfast"] if " libx264 " in out else \
        ["-c:v", "mpeg4", "-q:v", "4"]


def make_clips(stack):
    codec = video_codec()
    clips = {"still": stack.path("still.mp4"), "flash": stack.path("flash.mp4"),
             "short": stack.path("short.mp4"), "gop25": stack.path("gop25.mp4")}
    grey = "color=gray:s=640x480:r=25"
    ffmpeg("-f", "lavfi", "-i", grey, "-t", str(STILL_S), *codec, "-pix_fmt", "yuv420p",
           clips["still"])
    ffmpeg("-f", "lavfi", "-i", grey, "-t", "3", *codec, "-pix_fmt", "yuv420p", clips["short"])
    # The lights come on half-way: every pixel brighter from then on.
    ffmpeg("-f", "lavfi", "-i", grey, "-t", str(FLASH_S), "-vf",
           f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='gte(t,{FLASH_S / 2})'",
           *codec, "-pix_fmt", "yuv420p", clips["flash"])
    ffmpeg("-i", DEMO_VIDEO, "-t", "30", "-an", *codec, "-g", "25", "-keyint_min", "25",
           "-sc_threshold", "0", "-pix_fmt", "yuv420p", clips["gop25"])
    return clips


def probe_frames(path):
    """(number of frames, [keyframe positions in ms from the stream start])."""
    def run(*extra):
        r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v", *extra,
                            "-of", "json", path], capture_output=True, text=True, check=True)
        return json.loads(r.stdout)
    start = float(run("-show_entries", "stream=start_time")["streams"][0].get("start_time", 0))
    n = int(run("-count_frames", "-show_entries",
                "stream=nb_read_frames")["streams"][0]["nb_read_frames"])
    keys = run("-skip_frame", "nokey", "-show_frames", "-show_entries",
               "frame=best_effort_timestamp_time")["frames"]
    return n, [round((float(f["best_effort_timestamp_time"]) - start) * 1000) for f in keys]


def config(stack, clips):
    whole = '"0,0 1,0 1,1 0,1"'
    cams = [
        ("still", clips["still"], [f"keepalive_s: {KEEPALIVE_S}"]),
        ("still-all", clips["still"], ["publish_all: true"]),
        ("vtest", DEMO_VIDEO, []),
        ("vtest-masked", DEMO_VIDEO, [f"motion: {{ masks: [{whole}] }}"]),
        ("flash", clips["flash"], ["keepalive_s: 0"]),
        ("flash-nomax", clips["flash"], ["keepalive_s: 0", "motion: { max_area: 1 }"]),
        ("keyframes", clips["gop25"], ["sample: keyframes", "publish_all: true"]),
        ("every-n", DEMO_VIDEO, ["sample: every_n", f"every_n: {EVERY_N}", "publish_all: true"]),
        ("loop", clips["short"], ["speed: 3", "loop: true", "keepalive_s: 0"]),
    ]
    text = "cameras:\n"
    for cid, url, extra in cams:
        if not any(x.startswith("speed:") for x in extra):
            extra = ["speed: 0", *extra]       # files as fast as they decode
        text += f"  - id: {cid}\n    url: {url}\n    fps: {FPS}\n"
        text += "".join(f"    {x}\n" for x in extra)
    return text


def run_camera(stack, cid):
    """Run capture on one file camera to its end; returns its source.eof counters."""
    p = stack.start_service("capture", "--camera", cid, name=f"capture-{cid}", wait_ready=False)
    rc = p.p.wait(120)
    log = p.text()
    check(rc == 0, f"{cid}: capture exits 0 at the end of the file")
    eof = [json.loads(line) for line in log.splitlines()
           if line.startswith("{") and '"event":"source.eof"' in line]
    if not eof:
        raise AssertionError(f"{cid}: no source.eof in the log:\n{log[-3000:]}")
    return {k: float(v) for k, v in re.findall(r"(\w+)=([\d.]+)", eof[-1]["msg"])}, log


def frames_of(path, cid):
    return [m["data"] for m in read_jsonl(path)
            if m.get("subject", "").endswith(f".frames.{cid}")]


def statuses_of(path, cid):
    return [m["data"] for m in read_jsonl(path)
            if m.get("subject", "").endswith(f".status.{cid}")]


def arrived(stack, tail, cid, n):
    """Wait for n frames of camera cid, then a little more for any extra."""
    wait_for(lambda: len(frames_of(tail, cid)) >= n, 15, f"{n} frames of {cid}")
    time.sleep(0.3)
    return frames_of(tail, cid)


def check_accounting(cid, s):
    check(s["frames_sampled"] == s["frames_published"] + s["frames_skipped"] +
          s["frames_dropped"], f"{cid}: every sampled frame is published, skipped or dropped "
          f"({s['frames_sampled']:.0f} = {s['frames_published']:.0f} + "
          f"{s['frames_skipped']:.0f} + {s['frames_dropped']:.0f})")


def check_still(stack, tail, status):
    s, _ = run_camera(stack, "still")
    check_accounting("still", s)
    last_ms = (STILL_S * 25 - 1) * 40
    want = last_ms // (KEEPALIVE_S * 1000) + 1
    got = arrived(stack, tail, "still", want)
    check(s["frames_read"] == STILL_S * 25 and s["frames_sampled"] == STILL_S * FPS,
          f"still: all {STILL_S * 25} frames decoded, {STILL_S * FPS} sampled at {FPS} fps")
    check(s["frames_published"] == want and len(got) == want,
          f"still: the first frame + a keep-alive every {KEEPALIVE_S} s = {want} published "
          f"(summary {s['frames_published']:.0f}, arrived {len(got)})")
    pts = [int(f["media_pts_ms"]) for f in got]
    check(pts == [i * KEEPALIVE_S * 1000 for i in range(want)],
          f"still: published at {pts} ms of video")
    check(all(f["jpeg_size"] > 1000 and f["width"] == 640 for f in got),
          "still: each published frame carries a 640-wide JPEG")
    final = statuses_of(status, "still")[-1]
    check(final["state"] == "OFFLINE" and int(final["frames_read"]) == STILL_S * 25 and
          int(final["frames_published"]) == want,
          f"still: the last CameraStatus says {final['frames_read']} read, "
          f"{final['frames_published']} published")

    s, _ = run_camera(stack, "still-all")
    got = arrived(stack, tail, "still-all", STILL_S * FPS)
    check(s["frames_published"] == STILL_S * FPS and len(got) == STILL_S * FPS,
          f"still, publish_all: every sampled frame published ({len(got)})")


def check_vtest(stack, tail):
    s, _ = run_camera(stack, "vtest")
    check_accounting("vtest", s)
    got = arrived(stack, tail, "vtest", int(s["frames_published"]))
    with_motion = [f for f in got if f.get("motion")]
    check(len(got) == s["frames_published"] and s["frames_published"] >= 0.9 *
          s["frames_sampled"], f"vtest: people walk through every scene: "
          f"{len(got)} of {s['frames_sampled']:.0f} sampled frames published")
    # Without motion: only the scene and keep-alives (10 s apart, 10 fps video).
    check(len(got) - len(with_motion) <= 1 + s["frames_read"] / 10 / 10,
          f"vtest: published frames carry motion boxes ({len(with_motion)} of {len(got)})")

    s, _ = run_camera(stack, "vtest-masked")
    check_accounting("vtest-masked", s)
    want = int((s["frames_read"] - 1) * 100 // 10000) + 1  # 10 fps; a keep-alive every 10 s
    got = arrived(stack, tail, "vtest-masked", want)
    check(len(got) == want == s["frames_published"],
          f"vtest under a mask over the whole picture: only the scene and keep-alives "
          f"({len(got)}, want {want})")
    check(not any(f.get("motion") for f in got) and all(f["motion_score"] == 0 for f in got),
          "vtest, masked: no motion boxes and a zero score")


def check_flash(stack, tail):
    s, log = run_camera(stack, "flash")
    check_accounting("flash", s)
    got = arrived(stack, tail, "flash", 1)
    check(s["global_changes"] == 1 and "motion.global_change" in log,
          "flash: the lights switching on is one global change, logged")
    check(len(got) == 1 and s["frames_published"] == 1 and got[0]["media_pts_ms"] == 0,
          "flash: only the first frame is published (no motion, no keep-alive)")

    # Without the rule the switch is motion, and stays motion for as long as
    # the background takes to learn the new brightness (~30 frames at alpha 0.05).
    s, _ = run_camera(stack, "flash-nomax")
    got = arrived(stack, tail, "flash-nomax", 2)
    check(s["global_changes"] == 0 and len(got) > 10 and got[1]["motion"] and
          got[1]["media_pts_ms"] == FLASH_S / 2 * 1000,
          f"flash with motion.max_area 1: the switch at {FLASH_S / 2:g} s is reported as "
          f"motion, {len(got) - 1} frames of it")


def check_keyframes(stack, tail, clips):
    n, keys = probe_frames(clips["gop25"])
    s, log = run_camera(stack, "keyframes")
    got = arrived(stack, tail, "keyframes", len(keys))
    print(f"# gop25: {n} frames, {len(keys)} keyframes (ffprobe -skip_frame nokey)", flush=True)
    check("keyframes only" in log, "keyframes: the source says it decodes keyframes only")
    check(s["frames_read"] == len(keys),
          f"keyframes: only the {len(keys)} keyframes are decoded "
          f"(of {n} frames; {s['frames_read']:.0f} decoded)")
    check(len(got) == len(keys) == s["frames_published"],
          f"keyframes: {len(got)} published, as many as ffprobe's keyframes")
    pts = [int(f["media_pts_ms"]) for f in got]
    check(all(abs(a - b) <= 1 for a, b in zip(pts, keys)),
          "keyframes: published at the keyframes' positions")

    s, _ = run_camera(stack, "every-n")
    want = math.ceil(s["frames_read"] / EVERY_N)
    got = arrived(stack, tail, "every-n", want)
    check(len(got) == want == s["frames_published"] == s["frames_sampled"],
          f"every_n {EVERY_N}: {len(got)} of {s['frames_read']:.0f} frames published")
    pts = [int(f["media_pts_ms"]) for f in got]
    check(pts == [i * EVERY_N * 100 for i in range(want)],
          "every_n: frames 0, N, 2N, ... (10 fps: every 3 s)")


def check_loop_metrics(stack, tail):
    p = stack.start_service("capture", "--camera", "loop", name="capture-loop")
    skipped = 'vigil_capture_frames_skipped_total{reason="no_motion"}'
    # 3 s at speed 3: a loop a second; each loop's first frame is the scene.
    wait_for(lambda: stack.metric("capture-loop", "vigil_capture_frames_published_total") >= 3,
             20, "three loops")
    m = stack.metrics("capture-loop")
    check(m.get(skipped, 0) > 0 and
          m.get('vigil_capture_frames_skipped_total{reason="global_change"}', -1) == 0,
          f"loop: /metrics counts skipped frames by reason ({m.get(skipped, 0):.0f} no_motion)")
    check(m["vigil_capture_frames_sampled_total"] >= m[skipped] +
          m["vigil_capture_frames_published_total"], "loop: sampled >= published + skipped")
    check(p.stop() == 0, "loop: capture stops on SIGTERM with exit 0")
    got = frames_of(tail, "loop")
    check(len(got) >= 3 and all(f["media_pts_ms"] == 0 for f in got),
          f"loop: only each loop's first frame is published ({len(got)})")


def body(stack, args):
    clips = make_clips(stack)
    stack.write_config(config(stack, clips))
    stack.start_nats()
    tail = stack.tail("frames", "frames")
    status = stack.tail("status", "status")
    check(True, "nats-server -js up, frames and status tailed")
    check_still(stack, tail, status)
    check_vtest(stack, tail)
    check_flash(stack, tail)
    check_keyframes(stack, tail, clips)
    check_loop_metrics(stack, tail)


def main():
    return run(body, dump=("capture",))


if __name__ == "__main__":
    sys.exit(main())
