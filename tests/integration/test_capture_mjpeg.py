#!/usr/bin/env python3
"""vigil-capture on an HTTP MJPEG camera (FFmpeg's mpjpeg demuxer) against a
real nats-server -js.

The camera is tests/fakes/mjpeg_server.py: `GET /video` as
multipart/x-mixed-replace, one JPEG part per frame at 10 fps, looping over
50 JPEGs extracted here from vtest.avi (640x360) with the ffmpeg CLI. One
capture process watches and records it (segments of 3 s) for the whole test:

- sampling: capture decodes every frame the camera sends (frames_read grows
  as fast as the camera's frames_sent), samples 5 of the 10 a second, and
  publishes them (publish_all) on NATS as 640x360 JPEG Frames whose
  media_pts_ms, timed by arrival (MJPEG has no timestamps), advance 200 ms a
  frame and keep pace with the wall clock; CameraStatus says ONLINE;
- recording: every segment is indexed (codec mjpeg, 640x360, bytes as the
  file), ffprobe reads it as mjpeg, every packet is a keyframe and
  byte-identical (SHA-256) to one of the served JPEGs, in the camera's order
  (no re-encode, nothing lost or repeated); segments last 3 s +- 25 %, the
  index agrees with the file's duration and packet count, and each starts
  on the wall clock where the previous one ended; no recording errors;
- the camera going away: the server is stopped; capture notices the end of
  the stream, closes and indexes the open segment, counts reconnects
  (vigil_capture_reconnects_total, source.reconnecting / source.open_failed
  in the log, RECONNECTING with the error in CameraStatus, source_up 0,
  /readyz not ready) and keeps retrying without crashing; the server comes
  back on the same port: capture reconnects, frames are read and published
  again and the recording resumes in new segments that start after the
  outage;
- the camera hanging: its stream goes silent without being closed (a camera
  that lost its Wi-Fi) and it refuses connects for 12 s; capture notices
  after its 10 s read timeout, reports a timeout (not an end of stream),
  closes and indexes the segment, and reconnects when the camera answers;
- capture stops on SIGTERM with exit 0, no recording or decode errors.

Checks made with expect() let the test carry on: it fails at the end and
lists each one that did not hold.
"""
import hashlib
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (DEMO_VIDEO, check, read_index, read_jsonl, rec_dir,  # noqa: E402
                     recording_yaml, run, wait_for)

N_FRAMES = 50
CAMERA_FPS = 10
SAMPLE_FPS = 5
SEGMENT_S = 3
SEGMENT_TOL = 0.25          # arrival-timed segments: +-25 %
OUTAGE_S = 3
STALL_S = 12
READ_TIMEOUT_S = 10         # services/capture/source.c READ_TIMEOUT_MS
CAM = "mjpeg"


# Checks of behaviour the product gets wrong today are not fatal at once:
# the test goes on (everything after still checked) and fails at the end.
EXPECTED_FAILURES = []


def expect(cond, msg):
    if cond:
        check(True, msg)
    else:
        print(f"not ok - {msg}", flush=True)
        EXPECTED_FAILURES.append(msg)


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=120)


def make_frames(stack):
    """50 JPEGs of people walking, 640x360; {sha256: frame number}."""
    d = stack.path("frames")
    os.makedirs(d)
    ffmpeg("-i", DEMO_VIDEO, "-frames:v", str(N_FRAMES), "-vf", "scale=640:360", "-q:v", "5",
           os.path.join(d, "%03d.jpg"))
    names = sorted(os.listdir(d))
    hashes = {}
    for i, n in enumerate(names):
        with open(os.path.join(d, n), "rb") as f:
            hashes[hashlib.sha256(f.read()).hexdigest()] = i
    if len(names) != N_FRAMES or len(hashes) != N_FRAMES:
        raise AssertionError(f"ffmpeg made {len(names)} frames, {len(hashes)} distinct")
    return d, hashes


def config(stack, port):
    return recording_yaml(stack, SEGMENT_S) + f"""cameras:
  - id: {CAM}
    url: http://127.0.0.1:{port}/video
    fps: {SAMPLE_FPS}
    publish_all: true
    record: true
    reconnect_max_s: 1
"""


class Camera:
    """The fake camera process: started, stopped, started again on its port."""

    def __init__(self, stack, args, frames_dir):
        self.stack = stack
        self.argv = [sys.executable, os.path.join(args.src, "tests/fakes/mjpeg_server.py"),
                     "--frames", frames_dir, "--fps", str(CAMERA_FPS)]
        self.runs = 0
        self.port = stack.start_port_file("mjpeg", self.argv)
        self.name = "mjpeg"

    def stats(self):
        url = f"http://127.0.0.1:{self.port}/_fake/stats"
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())

    def stop(self):
        return self.stack.procs[self.name].stop()

    def restart(self):
        self.runs += 1
        self.name = f"mjpeg-{self.runs}"
        port_file = self.stack.path(f"{self.name}.port")
        self.stack.start(self.name, self.argv + ["--port", str(self.port),
                                                 "--port-file", port_file])
        wait_for(lambda: os.path.exists(port_file), 15, f"{self.name} listening")


def frames_of(path):
    return [m["data"] for m in read_jsonl(path) if m.get("subject", "").endswith(f".frames.{CAM}")]


def statuses_of(path):
    return [m["data"] for m in read_jsonl(path) if m.get("subject", "").endswith(f".status.{CAM}")]


def log_events(proc, event):
    out = []
    for line in proc.text().splitlines():
        if line.startswith("{"):
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            if rec.get("event") == event:
                out.append(rec)
    return out


def probe_json(path, *args):
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", *args, "-of", "json",
                        path], capture_output=True, text=True, check=True, timeout=60)
    return json.loads(r.stdout)


def packets_of(path):
    """Every video packet as stored: (sha256, keyframe) in order."""
    pk = probe_json(path, "-show_packets", "-show_data_hash", "sha256",
                    "-show_entries", "packet=flags,data_hash")["packets"]
    return [(p["data_hash"].split(":", 1)[1].lower(), "K" in p["flags"]) for p in pk]


# ---- a: sampling and publishing ---------------------------------------------------------------

def check_sampling(stack, cam, tail, status):
    wait_for(lambda: stack.metric("capture", "vigil_capture_frames_read_total") >= CAMERA_FPS, 20,
             "capture reading the MJPEG camera")
    t0, r0, s0 = time.monotonic(), stack.metric("capture", "vigil_capture_frames_read_total"), \
        cam.stats()["frames_sent"]
    time.sleep(4)
    t1, r1, s1 = time.monotonic(), stack.metric("capture", "vigil_capture_frames_read_total"), \
        cam.stats()["frames_sent"]
    rate = (r1 - r0) / (t1 - t0)
    check(abs(rate - CAMERA_FPS) <= 0.25 * CAMERA_FPS and abs((r1 - r0) - (s1 - s0)) <= 5,
          f"vigil_capture_frames_read_total grows with the camera: {r1 - r0:.0f} frames decoded "
          f"while it sent {s1 - s0} ({rate:.1f} fps)")
    m = stack.metrics("capture")
    check(m.get("vigil_capture_source_up") == 1 and
          m.get("vigil_capture_decode_errors_total", 0) == 0 and
          m.get("vigil_capture_reconnects_total", 0) == 0,
          "source_up 1, no decode errors, no reconnects")
    opened = log_events(stack.procs["capture"], "source.opened")
    url = f"http://127.0.0.1:{cam.port}/video"
    check(len(opened) == 1 and opened[0]["msg"].startswith(f"http {url}") and
          "mjpeg 640x360 no timestamps, timed by arrival" in opened[0]["msg"],
          f"source.opened: {opened[0]['msg'] if opened else None}")

    wait_for(lambda: len(frames_of(tail)) >= 15, 20, "15 frames on NATS")
    got = frames_of(tail)
    check(all(int(f["width"]) == 640 and int(f["height"]) == 360 and int(f["jpeg_size"]) > 5000
              for f in got), f"{len(got)} Frames on vigil.frames.{CAM}, each a 640x360 JPEG")
    seqs = [int(f["seq"]) for f in got]
    pts = [int(f["media_pts_ms"]) for f in got]
    steps = [b - a for a, b in zip(pts, pts[1:])]
    mean = (pts[-1] - pts[0]) / (len(pts) - 1)
    check(seqs == list(range(seqs[0], seqs[0] + len(seqs))) and all(s > 0 for s in steps) and
          abs(mean - 1000 / SAMPLE_FPS) <= 30 and
          sum(abs(s - 1000 / SAMPLE_FPS) <= 60 for s in steps) >= 2 / 3 * len(steps),
          f"sampled at {SAMPLE_FPS} fps by arrival time: media_pts_ms {pts[:4]}..., "
          f"{mean:.0f} ms apart on average")
    # The media clock is the wall clock: frames published over a span of
    # real time cover the same span of media time.
    a, n_a, ta = pts[-1], len(got), time.monotonic()
    wait_for(lambda: len(frames_of(tail)) >= n_a + 10, 15, "10 more frames")
    later = frames_of(tail)
    tb = time.monotonic()
    b = int(later[-1]["media_pts_ms"])
    # (FFmpeg's invented 25 fps timestamps would make it 0.4 times as fast.)
    check(abs((b - a) - (tb - ta) * 1000) <= max(600, 0.2 * (tb - ta) * 1000),
          f"media time keeps pace with the wall clock ({b - a} ms of video in "
          f"{(tb - ta) * 1000:.0f} ms)")
    st = statuses_of(status)
    check(st and st[-1]["state"] == "ONLINE" and
          st[-1]["source"] == f"http://127.0.0.1:{cam.port}/video",
          f"CameraStatus ONLINE from {st[-1]['source'] if st else None}")


# ---- c: the camera going away ---------------------------------------------------------------

def not_ready(stack):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{stack.http['capture']}/readyz",
                                    timeout=1) as r:
            return r.status != 200
    except urllib.error.HTTPError:
        return True


def check_outage(stack, cam, tail, status):
    cap = stack.procs["capture"]
    mid_segment(stack)
    rows_before = len(read_index(rec_dir(stack, CAM)))
    check(cam.stop() == 0, "camera server stopped (SIGTERM: streams closed, port closed)")
    down_ms = int(time.time() * 1000)
    wait_for(lambda: stack.metric("capture", "vigil_capture_reconnects_total") >= 1, 15,
             "capture noticing the camera is gone")
    wait_for(lambda: stack.metric("capture", "vigil_capture_source_up") == 0 and not_ready(stack),
             10, "source_up 0")
    check(cap.alive(), "capture noticed the end of the stream and is still running")
    wait_for(lambda: len(read_index(rec_dir(stack, CAM))) > rows_before and
             stack.metric("capture", "vigil_capture_recording_up") == 0, 10,
             "the open segment closed")
    check(True, "the open segment is closed and indexed, recording_up 0")
    # Refused connects while it is away: each a reconnect, 1 s apart.
    wait_for(lambda: stack.metric("capture", "vigil_capture_reconnects_total") >= 2, 15,
             "a second reconnect")
    wait_for(lambda: any("Connection refused" in e["msg"]
                         for e in log_events(cap, "source.open_failed")), 10, "open_failed")
    rec = log_events(cap, "source.reconnecting")
    check(len(rec) >= 2 and all(e["level"] == "warn" and e.get("camera") == CAM for e in rec) and
          "the camera closed the stream; retrying in 1 s" in rec[0]["msg"],
          f"logged: source.reconnecting \"{rec[0]['msg']}\", then source.open_failed "
          "\"... Connection refused\"")
    wait_for(lambda: any(s["state"] == "RECONNECTING" for s in statuses_of(status)), 10,
             "RECONNECTING status")
    st = [s for s in statuses_of(status) if s["state"] == "RECONNECTING"]
    check(all(s["error"] for s in st), f"CameraStatus RECONNECTING with the error: "
          f"\"{st[0]['error']}\"")
    remaining = OUTAGE_S - (time.time() * 1000 - down_ms) / 1000
    if remaining > 0:
        time.sleep(remaining)
    n_frames = len(frames_of(tail))
    reconnects = stack.metric("capture", "vigil_capture_reconnects_total")
    read0 = stack.metric("capture", "vigil_capture_frames_read_total")
    cam.restart()
    up_ms = int(time.time() * 1000)
    wait_for(lambda: stack.metric("capture", "vigil_capture_source_up") == 1 and
             stack.ready("capture"), 20, "capture reconnecting to the camera")
    wait_for(lambda: stack.metric("capture", "vigil_capture_frames_read_total") >= read0 + 20, 15,
             "frames read again")
    check(cap.alive() and len(log_events(cap, "source.opened")) == 2,
          f"camera back on port {cam.port}: capture reconnected after "
          f"{reconnects:.0f} reconnects ({(up_ms - down_ms) / 1000:.1f} s away) and reads again")
    wait_for(lambda: len(frames_of(tail)) >= n_frames + 5, 15, "frames published again")
    st = statuses_of(status)
    last_rec = max(i for i, s in enumerate(st) if s["state"] == "RECONNECTING")
    check(any(s["state"] == "ONLINE" for s in st[last_rec:]), "CameraStatus ONLINE again")
    return down_ms, up_ms


def check_stall(stack, cam, tail):
    """The camera hangs: its stream goes silent without being closed (a
    camera that lost its Wi-Fi), and it stops answering connects for a while."""
    cap = stack.procs["capture"]
    mid_segment(stack)
    rows_before = len(read_index(rec_dir(stack, CAM)))
    reconnects = stack.metric("capture", "vigil_capture_reconnects_total")
    n_events = len(log_events(cap, "source.reconnecting"))
    req = urllib.request.Request(f"http://127.0.0.1:{cam.port}/_fake/down", method="POST",
                                 data=json.dumps({"seconds": STALL_S, "mode": "stall"}).encode())
    with urllib.request.urlopen(req, timeout=5) as r:
        r.read()
    t0 = time.monotonic()
    down_ms = int(time.time() * 1000)
    wait_for(lambda: stack.metric("capture", "vigil_capture_reconnects_total") > reconnects,
             READ_TIMEOUT_S + 10, "capture noticing the silent camera")
    noticed = time.monotonic() - t0
    ev = log_events(cap, "source.reconnecting")[n_events:]
    check(cap.alive() and READ_TIMEOUT_S - 2 <= noticed <= READ_TIMEOUT_S + 2.5,
          f"a silent stream is noticed after the {READ_TIMEOUT_S} s read timeout "
          f"({noticed:.1f} s)")
    # The stream did not end: it went silent and the read deadline expired.
    # The log and CameraStatus should say so, not "end of stream".
    expect(ev and ("no response within" in ev[0]["msg"] or "timed out" in ev[0]["msg"].lower()),
           f"source.reconnecting reports a timeout: \"{ev[0]['msg'] if ev else None}\"")
    wait_for(lambda: len(read_index(rec_dir(stack, CAM))) > rows_before and
             stack.metric("capture", "vigil_capture_recording_up") == 0, 10,
             "the open segment closed")
    check(True, "the segment open when the camera went silent is closed and indexed")
    read0 = stack.metric("capture", "vigil_capture_frames_read_total")
    wait_for(lambda: stack.metric("capture", "vigil_capture_source_up") == 1 and
             stack.metric("capture", "vigil_capture_frames_read_total") >= read0 + 20,
             STALL_S + 20, "capture back on the camera")
    up_ms = down_ms + STALL_S * 1000     # when the camera listened again
    check(cam.stats()["downs"] == 1 and len(log_events(cap, "source.opened")) == 3,
          f"the camera answers again after {STALL_S} s: capture reconnected and reads again")
    return down_ms, up_ms


# ---- b: the recording ------------------------------------------------------------------------

def check_segments(stack, hashes, outages, frames_read):
    """outages: [(down_ms, up_ms)] on the wall clock; the segments of each
    connection are checked as a run."""
    cam_dir = rec_dir(stack, CAM)
    rows = read_index(cam_dir)
    files = sorted(f for f in os.listdir(cam_dir) if f.endswith(".mkv"))
    check(len(rows) >= 2 * (len(outages) + 1) and [r["file"] for r in rows] == files,
          f"{len(rows)} segments, every .mkv in the index, in order")
    runs = []
    bounds = [(None, None)] + list(outages) + [(None, None)]
    for (_, up), (down, _) in zip(bounds, bounds[1:]):
        runs.append([r for r in rows if (up is None or r["start_ms"] >= up - 500) and
                     (down is None or r["start_ms"] < down)])
    check(sum(len(r) for r in runs) == len(rows) and all(len(r) >= 2 for r in runs),
          f"segments per connection: {[len(r) for r in runs]}; none across an outage")
    for (down, up), prev, nxt in zip(outages, runs, runs[1:]):
        end = prev[-1]["start_ms"] + prev[-1]["duration_ms"]
        check(end <= down + 1000 and nxt[0]["start_ms"] >= end + (up - down) / 2,
              f"the outage shows in the index: the segment before ends "
              f"{end - down:+d} ms from it, the next starts {nxt[0]['start_ms'] - up:+d} ms from "
              "the camera's return")
    lo, hi = SEGMENT_S * 1000 * (1 - SEGMENT_TOL), SEGMENT_S * 1000 * (1 + SEGMENT_TOL)
    total = 0
    for run_rows in runs:
        for i, r in enumerate(run_rows):
            path = os.path.join(cam_dir, r["file"])
            last = i == len(run_rows) - 1    # cut short by the outage or the stop
            pk = packets_of(path)
            total += len(pk)
            idx = [hashes.get(h) for h, _ in pk]
            steps = [(b - a) % N_FRAMES for a, b in zip(idx, idx[1:])
                     if a is not None and b is not None]
            s = probe_json(path, "-show_entries", "stream=codec_name,width,height:format=duration")
            stream = s["streams"][0]
            fmt_ms = float(s["format"].get("duration", "nan")) * 1000
            check(r["codec"] == "mjpeg" and (r["width"], r["height"]) == (640, 360) and
                  stream["codec_name"] == "mjpeg" and
                  (stream["width"], stream["height"]) == (640, 360) and
                  r["bytes"] == os.path.getsize(path) and int(r["file"][:-4]) >= r["start_ms"],
                  f"{r['file']}: indexed mjpeg 640x360, {r['bytes']} bytes, ffprobe agrees")
            check(pk and all(k for _, k in pk) and None not in idx,
                  f"{r['file']}: all {len(pk)} packets are keyframes, each byte-identical to a "
                  "served JPEG (kept as they are)")
            check(all(st != 0 for st in steps) and sum(st == 1 for st in steps) >= 0.9 * len(steps),
                  f"{r['file']}: the camera's frames in its order, none repeated "
                  f"({sum(st != 1 for st in steps)} skips)")
            dur_ok = lo <= r["duration_ms"] <= hi if not last else 0 < r["duration_ms"] <= hi
            check(dur_ok and abs(fmt_ms - r["duration_ms"]) <= 1000 / CAMERA_FPS + 50 and
                  abs(len(pk) - r["duration_ms"] * CAMERA_FPS / 1000) <=
                  max(2, 0.25 * r["duration_ms"] * CAMERA_FPS / 1000),
                  f"{r['file']}: {r['duration_ms']} ms (file {fmt_ms:.0f} ms), {len(pk)} frames"
                  + ("" if not last else ", the last before the camera went or capture stopped"))
            if i > 0:
                p = run_rows[i - 1]
                gap = r["start_ms"] - p["start_ms"] - p["duration_ms"]
                check(abs(gap) <= 500, f"{r['file']}: starts where the previous segment ends "
                      f"on the wall clock ({gap:+d} ms)")
    check(abs(total - frames_read) <= 4,
          f"the segments hold every frame capture read ({total} packets, {frames_read:.0f} read)")


def open_segment_age_ms(stack):
    """How long ago the segment being written (the newest .mkv not in the
    index) got its first packet; -1 when none is open."""
    cam_dir = rec_dir(stack, CAM)
    indexed = {r["file"] for r in read_index(cam_dir)}
    open_ = [f for f in os.listdir(cam_dir) if f.endswith(".mkv") and f not in indexed]
    if not open_:
        return -1
    return time.time() * 1000 - max(int(f[:-4]) for f in open_)


def mid_segment(stack):
    """Wait until the open segment is 1-2 s old: a segment cut short (the
    camera goes, capture stops) then holds about 10-20 frames, never one."""
    wait_for(lambda: 1000 <= open_segment_age_ms(stack) <= 2000, SEGMENT_S * 3,
             "the open segment 1-2 s old")


def body(stack, args):
    frames_dir, hashes = make_frames(stack)
    cam = Camera(stack, args, frames_dir)
    stack.write_config(config(stack, cam.port))
    stack.start_nats()
    tail = stack.tail("frames", "frames")
    status = stack.tail("status", "status")
    check(True, f"nats-server -js up; fake MJPEG camera on port {cam.port} "
          f"({N_FRAMES} JPEGs at {CAMERA_FPS} fps)")
    cap = stack.start_service("capture", "--camera", CAM, name="capture")
    check(True, "capture ready (the HTTP MJPEG source is open)")

    check_sampling(stack, cam, tail, status)
    wait_for(lambda: len(read_index(rec_dir(stack, CAM))) >= 2, 20, "two segments indexed")
    outages = [check_outage(stack, cam, tail, status)]
    n = len(read_index(rec_dir(stack, CAM)))
    wait_for(lambda: len(read_index(rec_dir(stack, CAM))) >= n + 1, 20,
             "a segment recorded after the reconnect")
    outages.append(check_stall(stack, cam, tail))
    n = len(read_index(rec_dir(stack, CAM)))
    wait_for(lambda: len(read_index(rec_dir(stack, CAM))) >= n + 1, 20,
             "a segment recorded after the second reconnect")
    m = stack.metrics("capture")
    errors = sum(v for k, v in m.items() if k.startswith("vigil_capture_recording_errors_total"))
    check(errors == 0 and m.get("vigil_capture_recording_up") == 1 and
          m.get("vigil_capture_recording_segments_total", 0) >= 3,
          f"recording again: recording_up 1, {m.get('vigil_capture_recording_segments_total'):.0f}"
          " segments, no vigil_capture_recording_errors_total")
    mid_segment(stack)
    check(cap.stop() == 0, "capture stops on SIGTERM with exit 0, closing the open segment")
    log = cap.text()
    check("recording.failed" not in log and "recording.overrun" not in log and
          "frame.decode_error" not in log, "no recording.failed, overrun or decode errors logged")
    summary = [line for line in log.splitlines() if '"event":"capture.stopped"' in line]
    read = float(summary[-1].split("frames_read=")[1].split()[0]) if summary else -1
    check_segments(stack, hashes, outages, read)
    if EXPECTED_FAILURES:
        raise AssertionError(f"{len(EXPECTED_FAILURES)} checks failed: "
                             + "; ".join(EXPECTED_FAILURES))


def main():
    return run(body, dump=("capture", "mjpeg"))


if __name__ == "__main__":
    sys.exit(main())
