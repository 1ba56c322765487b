#!/usr/bin/env python3
"""Rolling recording in vigil-capture, from a real RTSP server and from files.

The RTSP server is GStreamer's (tests/fakes/rtsp_server.py, Debian's
/usr/bin/python3 with python3-gi), streaming MP4s made here with the ffmpeg
CLI: H.264 High 640x360 and, when this FFmpeg has libx265, H.265. vigil-capture
records each for ~13 s into segments of 4 s; then:

- every segment is a Matroska file ffprobe reads: the source's codec, profile
  and size (copied, not re-encoded), its first frame a keyframe, ~4 s long
  (the last one shorter), 25 frames a second;
- the index has one line per segment whose fields agree with the file
  (name, bytes, codec, size, duration) and start times a segment apart on the
  wall clock (the first one too: dated by its least-delayed packet, not by the
  burst FFmpeg's probe read ahead);
- /metrics: vigil_capture_recording_up 1 while recording, segments and bytes
  counted, no errors;
- a file camera: its segments hold exactly the source's packets (framemd5 of
  the copied packets is the same list), cut at keyframes every 4 s;
- a camera with record unset while recording.enabled is false records nothing.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, read_index, rec_dir, recording_yaml, run, wait_for  # noqa: E402

SEGMENT_S = 4
RECORD_S = 13


def ffmpeg(*args):
    subprocess.run(["ffmpeg", "-hide_banner", "-loglevel", "error", "-nostdin", "-y", *args],
                   check=True, timeout=300)


def has_x265():
    out = subprocess.run(["ffmpeg", "-hide_banner", "-encoders"], capture_output=True,
                         text=True).stdout
    return " libx265 " in out


def make_clips(stack):
    src = "testsrc=s=640x360:r=25"
    common = ["-g", "25", "-keyint_min", "25", "-sc_threshold", "0", "-bf", "0",
              "-pix_fmt", "yuv420p"]
    clips = {"h264": stack.path("cam264.mp4"), "file": stack.path("file.mp4")}
    ffmpeg("-f", "lavfi", "-i", src, "-t", "40", "-c:v", "libx264", "-preset", "veryfast",
           "-profile:v", "high", *common, clips["h264"])
    ffmpeg("-f", "lavfi", "-i", src, "-t", "12", "-c:v", "libx264", "-preset", "veryfast",
           *common, clips["file"])
    if has_x265():
        clips["h265"] = stack.path("cam265.mp4")
        ffmpeg("-f", "lavfi", "-i", src, "-t", "40", "-c:v", "libx265", "-preset",
               "ultrafast", "-x265-params", "log-level=error", *common, "-tag:v", "hvc1",
               clips["h265"])
    return clips


def probe(path, *entries, extra=()):
    r = subprocess.run(["ffprobe", "-v", "error", "-select_streams", "v:0", *extra,
                        "-show_entries", ":".join(entries), "-of", "default=nw=1", path],
                       capture_output=True, text=True, check=True, timeout=60)
    out = {}
    for line in r.stdout.splitlines():
        k, _, v = line.partition("=")
        out.setdefault(k, v)
    return out


def stream_of(path):
    return probe(path, "stream=codec_name,profile,width,height")


def first_frame_key(path):
    return probe(path, "frame=key_frame", extra=["-read_intervals", "%+#1"]).get("key_frame")


def packet_hashes(path):
    """MD5 of every video packet, as stored (no decoding)."""
    r = subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-i", path, "-map", "0:v",
                        "-c", "copy", "-f", "framemd5", "-"], capture_output=True, text=True,
                       check=True, timeout=60)
    return [line.rsplit(",", 1)[1].strip() for line in r.stdout.splitlines()
            if line and not line.startswith("#")]


def config(stack, clips, ports):
    text = recording_yaml(stack, SEGMENT_S) + f"""cameras:
  - id: file
    url: {clips["file"]}
    speed: 0
    record: true
  - id: norec
    url: {clips["file"]}
    speed: 0
"""
    for codec, port in ports.items():
        text += f"""  - id: rtsp{codec[1:]}
    url: rtsp://127.0.0.1:{port}/cam
    record: true
"""
    return text


def check_segments(stack, cid, source, live):
    cam_dir = rec_dir(stack, cid)
    rows = read_index(cam_dir)
    src = stream_of(source)
    files = sorted(f for f in os.listdir(cam_dir) if f.endswith(".mkv"))
    check(len(rows) >= 3 and [r["file"] for r in rows] == files,
          f"{cid}: {len(rows)} segments, every .mkv in the index, in order")
    for i, r in enumerate(rows):
        path = os.path.join(cam_dir, r["file"])
        got = stream_of(path)
        last = i == len(rows) - 1
        dur_ok = (abs(r["duration_ms"] - SEGMENT_S * 1000) <= 100 if not last
                  else 0 < r["duration_ms"] <= SEGMENT_S * 1000 + 100)
        frames = int(probe(path, "stream=nb_read_frames", extra=["-count_frames"])
                     ["nb_read_frames"])
        fmt_dur = float(probe(path, "format=duration")["duration"])
        check(got == src and r["codec"] == src["codec_name"] and
              (r["width"], r["height"]) == (int(src["width"]), int(src["height"])),
              f"{cid} {r['file']}: {got['codec_name']} {got['profile']} "
              f"{got['width']}x{got['height']} as the source (copied)")
        check(first_frame_key(path) == "1" and dur_ok and
              abs(frames - r["duration_ms"] / 40) <= 1 and
              abs(fmt_dur * 1000 - r["duration_ms"]) <= 100 and
              r["bytes"] == os.path.getsize(path) and
              (int(r["file"][:-4]) >= r["start_ms"] if live
               else r["file"] == f"{r['start_ms']}.mkv"),
              f"{cid} {r['file']}: starts on a keyframe, {r['duration_ms']} ms, {frames} frames, "
              f"{r['bytes']} bytes as indexed")
        if live and i > 0:
            gap = r["start_ms"] - rows[i - 1]["start_ms"] - rows[i - 1]["duration_ms"]
            check(abs(gap) <= 500, f"{cid}: segment {i} starts where segment {i - 1} ends "
                  f"on the wall clock ({gap:+d} ms)")
    return rows


def check_live(stack, clips, cid, source):
    name = f"capture-{cid}"
    p = stack.start_service("capture", "--camera", cid, name=name)
    wait_for(lambda: stack.metric(name, "vigil_capture_recording_up") == 1, 20,
             f"{cid}: recording up")
    check(True, f"{cid}: vigil_capture_recording_up 1 once the RTSP source is open")
    time.sleep(RECORD_S)
    m = stack.metrics(name)
    check(m.get("vigil_capture_recording_segments_total", 0) >= 2 and
          m.get("vigil_capture_recording_bytes_total", 0) > 0 and
          sum(v for k, v in m.items() if k.startswith("vigil_capture_recording_errors_total"))
          == 0, f"{cid}: segments and bytes counted, no recording errors "
          f"({m.get('vigil_capture_recording_segments_total')} segments)")
    check(m.get("vigil_capture_frames_read_total", 0) > 0,
          f"{cid}: the live pipeline decodes as it records")
    check(p.stop() == 0, f"{cid}: capture stops on SIGTERM, closing the open segment")
    return check_segments(stack, cid, source, live=True)


def check_file(stack, clips):
    p = stack.start_service("capture", "--camera", "file", name="capture-file", wait_ready=False)
    check(p.p.wait(60) == 0, "file: capture records the file to its end and exits 0")
    rows = check_segments(stack, "file", clips["file"], live=False)
    check(len(rows) == 3, "file: 12 s in segments of 4 s: 3 segments")
    got = []
    for r in rows:
        got += packet_hashes(rec_dir(stack, "file", r["file"]))
    want = packet_hashes(clips["file"])
    check(got == want, f"file: the segments hold the source's {len(want)} packets, "
          "byte for byte (no re-encode)")
    p = stack.start_service("capture", "--camera", "norec", name="capture-norec",
                            wait_ready=False)
    check(p.p.wait(60) == 0 and not os.path.exists(rec_dir(stack, "norec")),
          "norec: record unset and recording.enabled false: nothing recorded")


def body(stack, args):
    clips = make_clips(stack)
    server = os.path.join(args.src, "tests/fakes/rtsp_server.py")
    ports = {}
    for codec in ("h264", "h265"):
        if codec in clips:
            ports[codec] = stack.start_port_file(
                f"rtsp-{codec}", ["/usr/bin/python3", server, "--file", clips[codec],
                                  "--codec", codec])
    stack.write_config(config(stack, clips, ports))
    stack.start_nats()
    check(True, f"nats-server and GStreamer RTSP servers up ({', '.join(ports)})")
    check_file(stack, clips)
    for codec in ports:
        check_live(stack, clips, f"rtsp{codec[1:]}", clips[codec])
    if "h265" not in ports:
        print("skip - H.265: this FFmpeg has no libx265", flush=True)


def main():
    return run(body, dump=("capture", "rtsp"))


if __name__ == "__main__":
    sys.exit(main())
