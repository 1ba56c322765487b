#!/usr/bin/env python3
"""bench.recording: what the rolling recording costs per camera, next to the
same capture without it, in the same run.

20 s of 720p video made here with the ffmpeg CLI at a camera-like bitrate
(H.264 ~4 Mbit/s; MJPEG, recorded as its JPEGs) is played by vigil-capture at
--speed (default 2, so 10 s each) against a real nats-server, once with
`record: false` and once with `record: true`, sampling at the default 5 fps.
Prints CPU (user+sys from wait4's rusage) and CPU per second of video, the
bytes the recording wrote per second of video and per day, and the ratio of
the CPU with recording to without. Reports only; never fails on time.
"""
import argparse
import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "integration"))
from harness import Stack  # noqa: E402

SECONDS = 20


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=600)


def make_clips(stack):
    # Moving noise over a test pattern: it does not compress away, as a real
    # scene does not.
    src = ["-f", "lavfi", "-i", "testsrc2=s=1280x720:r=25", "-t", str(SECONDS),
           "-vf", "noise=alls=12:allf=t"]
    clips = {"h264": stack.path("h264.mp4"), "mjpeg": stack.path("mjpeg.avi")}
    ffmpeg(*src, "-c:v", "libx264", "-preset", "veryfast", "-b:v", "4M", "-maxrate", "4M",
           "-bufsize", "8M", "-g", "25", "-pix_fmt", "yuv420p", clips["h264"])
    ffmpeg(*src, "-c:v", "mjpeg", "-q:v", "8", "-pix_fmt", "yuvj420p", clips["mjpeg"])
    return clips


def run_capture(stack, cid):
    """CPU seconds (user, sys) and wall time of one capture run to the end of its file."""
    env = dict(stack.env, VIGIL_HTTP_ADDR="off")
    t0 = time.monotonic()
    p = subprocess.Popen([os.path.join(stack.bin, "vigil-capture"), "--camera", cid], env=env,
                         stdout=subprocess.DEVNULL, stderr=open(stack.path(f"{cid}.log"), "wb"))
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.monotonic() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"bench.recording: capture {cid} failed; see {stack.path(cid + '.log')}")
    return ru.ru_utime, ru.ru_stime, wall


def rec_bytes(rec_dir, cid):
    d = os.path.join(rec_dir, cid)
    if not os.path.isdir(d):
        return 0, 0
    files = [f for f in os.listdir(d) if f.endswith(".mkv")]
    return sum(os.path.getsize(os.path.join(d, f)) for f in files), len(files)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--speed", default="2")
    args = ap.parse_args()
    for tool in ("ffmpeg", "nats-server"):
        if subprocess.run(["sh", "-c", f"command -v {tool}"], capture_output=True).returncode:
            raise SystemExit(f"bench.recording: {tool} not installed")
    stack = Stack(args.bin)
    rec_dir = stack.env.get("VIGIL_RECORDING_DIR") or stack.path("recordings")
    stack.env["VIGIL_RECORDING_DIR"] = rec_dir
    try:
        clips = make_clips(stack)
        cams = ""
        for codec, path in clips.items():
            for rec in (False, True):
                cams += (f"  - id: {codec}-{'rec' if rec else 'norec'}\n    url: {path}\n"
                         f"    speed: {args.speed}\n    record: {'true' if rec else 'false'}\n")
        stack.write_config(f"log_level: warn\nrecording:\n  dir: {rec_dir}\n  segment_s: 10\n"
                           f"cameras:\n{cams}")
        stack.start_nats()
        print(f"bench.recording: {SECONDS} s of 1280x720 25 fps at speed {args.speed}, "
              "sampling 5 fps, same file with and without recording")
        for codec, path in clips.items():
            src_bytes = os.path.getsize(path)
            res = {}
            for mode in ("norec", "rec"):
                res[mode] = run_capture(stack, f"{codec}-{mode}")
            nbytes, nseg = rec_bytes(rec_dir, f"{codec}-rec")
            cpu = {m: u + s for m, (u, s, _) in res.items()}
            for mode in ("norec", "rec"):
                u, s, wall = res[mode]
                print(f"  {codec:5} record {'on ' if mode == 'rec' else 'off'}: "
                      f"cpu {u + s:6.2f} s (user {u:.2f} sys {s:.2f}) = "
                      f"{100 * (u + s) / SECONDS:5.1f}% of a core per camera, wall {wall:.1f} s")
            extra = cpu["rec"] - cpu["norec"]
            print(f"  {codec:5} recording: +{extra:.2f} s cpu "
                  f"(+{100 * extra / SECONDS:.2f}% of a core), "
                  f"ratio {cpu['rec'] / cpu['norec']:.3f}")
            print(f"  {codec:5} disk {nbytes / SECONDS / 1e6:.3f} MB/s of video "
                  f"({nbytes * 8 / SECONDS / 1e6:.2f} Mbit/s; "
                  f"source {src_bytes * 8 / SECONDS / 1e6:.2f} Mbit/s), "
                  f"{nbytes / SECONDS * 86400 / 1e9:.1f} GB a day, {nseg} segments")
    finally:
        stack.stop_all()
        shutil.rmtree(stack.dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
