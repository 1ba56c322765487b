#!/usr/bin/env python3
"""vigil-console's API against real parts: nats-server, redis-server (the
redis metadata store), an fs snapshot store on disk, and a recording made
by hand with the ffmpeg CLI in the layout capture writes (H.264 Matroska
segments <start_ms>.mkv and an index of the closed ones).

Each segment i is 10 s of 10 fps video whose chroma (U) names the segment
and whose luma grows 20 per second, so the first decoded frame of a clip
says where in the recording the clip starts.

- snapshots: 200 with the JPEG's bytes and caching headers, 304 on its
  ETag, 404 for a missing key, 400 for keys that escape the store.
- clips: 200 video/mp4 that ffprobe reads, copied (H.264, no re-encode),
  starting at the keyframe at or before T - pre, as long as asked; Range
  206 and 416, HEAD; parallel requests for one clip assemble it once; a
  time with no recording and a time not recorded yet: 404 with a clear
  message (Retry-After for the latter); bad parameters 400.
- frames/events/cameras: the frame fetcher's JSON newest first with the
  limit and snapshot links through console.public_url; 400/404 on bad
  parameters.
"""
import concurrent.futures
import http.client
import json
import os
import subprocess
import sys
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, free_port, run, wait_for  # noqa: E402

JPEG = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
SEG_S = 10
N_SEG = 6
FPS = 10
W, H = 160, 120


def seg_u(i):
    return 60 + 25 * i


def make_segment(path, i):
    """10 s, keyframe every second, Y = 16 + 20 * t, U names the segment."""
    src = (f"color=c=black:s={W}x{H}:r={FPS}:d={SEG_S},format=yuv420p,"
           f"geq=lum='16+20*T':cb={seg_u(i)}:cr=128")
    subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i", src, "-c:v", "libx264",
                    "-preset", "ultrafast", "-g", str(FPS), "-keyint_min", str(FPS),
                    "-sc_threshold", "0", "-pix_fmt", "yuv420p", "-f", "matroska", path],
                   check=True, timeout=60)


def make_recording(cam_dir, t0_ms):
    """N_SEG segments from t0_ms; all but the newest in the index (the newest
    is the open one, as while capture records)."""
    os.makedirs(cam_dir)
    lines = []
    for i in range(N_SEG):
        start = t0_ms + i * SEG_S * 1000
        name = f"{start}.mkv"
        path = os.path.join(cam_dir, name)
        make_segment(path, i)
        if i < N_SEG - 1:
            lines.append(f"{start} {SEG_S * 1000} {os.path.getsize(path)} {name} h264 {W}x{H}\n")
    with open(os.path.join(cam_dir, "index"), "w") as f:
        f.writelines(lines)


def get(port, path, method="GET", headers=None):
    """(status, headers, body) without following redirects or normalising
    the path (so "../" reaches the server as sent)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        c.request(method, path, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def err(body):
    return json.loads(body).get("error", "")


def probe(path):
    out = subprocess.run(["ffprobe", "-v", "error", "-show_entries",
                          "format=format_name,duration:stream=codec_name,width,height",
                          "-of", "json", path], capture_output=True, check=True, timeout=30)
    return json.loads(out.stdout)


def first_frame_yu(path):
    """Mean Y and U of the clip's first decoded frame."""
    raw = subprocess.run(["ffmpeg", "-v", "error", "-i", path, "-frames:v", "1", "-f",
                          "rawvideo", "-pix_fmt", "yuv420p", "-"], capture_output=True,
                         check=True, timeout=30).stdout
    y, u = raw[:W * H], raw[W * H:W * H + W * H // 4]
    return sum(y) / len(y), sum(u) / len(u)


def redis_cmd(stack, *args):
    out = subprocess.run(["redis-cli", "-p", str(stack.redis_port), *args], capture_output=True,
                         check=True, timeout=10)
    return out.stdout.decode().strip()


def snapshots(stack, port, key):
    st, hd, body = get(port, "/api/snapshots/" + key)
    with open(JPEG, "rb") as f:
        want = f.read()
    check(st == 200 and body == want, "snapshot: 200 with the stored JPEG's bytes")
    check(hd.get("content-type") == "image/jpeg" and "private" in hd.get("cache-control", "")
          and "max-age" in hd.get("cache-control", ""), "snapshot: image/jpeg, private cache")
    st, _, _ = get(port, "/api/snapshots/" + key, headers={"If-None-Match": hd["etag"]})
    check(st == 304, "snapshot: 304 for its ETag")
    st, hd, _ = get(port, "/api/snapshots/" + key, method="HEAD")
    check(st == 200 and int(hd["content-length"]) == len(want), "snapshot: HEAD")
    st, _, body = get(port, "/api/snapshots?ref=fs:" + key)
    check(st == 200 and body == want, "snapshot: ?ref=fs:<key> as well")
    st, _, body = get(port, "/api/snapshots/" + key.replace(".jpg", "x.jpg"))
    check(st == 404 and "not found" in err(body), f"snapshot: missing key 404 ({err(body)})")
    for bad in ["frames/../../vigil.yaml", "frames/%2e%2e/%2e%2e/vigil.yaml",
                "frames/porch//x.jpg", "/etc/passwd", "other/x.jpg"]:
        st, _, body = get(port, "/api/snapshots/" + bad)
        check(st == 400 and err(body), f"snapshot: {bad} refused with 400 ({err(body)[:60]})")


def clips(stack, port, t0_ms):
    base = "/api/clips/porch.mp4"
    # T - pre = segment 1 + 8.5 s: the clip starts at its keyframe at 8 s.
    t = t0_ms + 23500
    pre, dur = 5, 20
    t_start = time.monotonic()
    st, hd, body = get(port, f"{base}?t={t}&pre={pre}&dur={dur}")
    took = time.monotonic() - t_start
    check(st == 200 and hd.get("content-type") == "video/mp4", f"clip: 200 video/mp4 "
          f"({len(body)} bytes, assembled in {took * 1000:.0f} ms)")
    check(hd.get("accept-ranges") == "bytes", "clip: Accept-Ranges: bytes")
    path = stack.path("clip.mp4")
    with open(path, "wb") as f:
        f.write(body)
    info = probe(path)
    s = info["streams"][0]
    check("mp4" in info["format"]["format_name"] and s["codec_name"] == "h264"
          and (s["width"], s["height"]) == (W, H), f"clip: ffprobe reads an H.264 MP4 {W}x{H}")
    d = float(info["format"]["duration"])
    check(dur - 0.3 <= d <= dur + 1.2, f"clip: plays {d:.2f} s for dur={dur} (from the "
          "keyframe at or before T - pre)")
    y, u = first_frame_yu(path)
    check(abs(u - seg_u(1)) < 4 and abs(y - (16 + 20 * 8)) < 12,
          f"clip: starts in segment 1 at 8 s, the keyframe before T - pre (Y {y:.0f}, "
          f"U {u:.0f})")
    # Segment 1's encoder settings survive: copied, not re-encoded.
    size = len(body)

    st, hd, part = get(port, f"{base}?t={t}&pre={pre}&dur={dur}", headers={"Range": "bytes=0-99"})
    check(st == 206 and part == body[:100] and hd.get("content-range") == f"bytes 0-99/{size}",
          "clip: Range bytes=0-99 -> 206 with its Content-Range")
    st, hd, part = get(port, f"{base}?t={t}&pre={pre}&dur={dur}", headers={"Range": "bytes=-50"})
    check(st == 206 and part == body[-50:], "clip: suffix range bytes=-50")
    st, hd, _ = get(port, f"{base}?t={t}&pre={pre}&dur={dur}",
                    headers={"Range": f"bytes={size}-"})
    check(st == 416 and hd.get("content-range") == f"bytes */{size}",
          "clip: a range past the end -> 416 bytes */size")
    st, hd, part = get(port, f"{base}?t={t}&pre={pre}&dur={dur}", method="HEAD")
    check(st == 200 and int(hd["content-length"]) == size and not part, "clip: HEAD")
    cached = os.path.join(stack.env["VIGIL_RECORDING_DIR"], ".clips",
                          f"porch-{t}-{pre}-{dur}.mp4")
    check(os.path.exists(cached), "clip: kept in <recording.dir>/.clips")

    # Across the open (unindexed) segment: it ends at the next start, or now.
    st, _, body = get(port, f"{base}?t={t0_ms + 54000}&pre=5&dur=10")
    with open(path, "wb") as f:
        f.write(body)
    check(st == 200 and abs(first_frame_yu(path)[1] - seg_u(4)) < 4,
          "clip: across into the open segment")

    # Four at once for a new clip: assembled once, the others wait for it.
    t2 = t0_ms + 31000
    url = f"{base}?t={t2}&pre=2&dur=15"
    hits = stack.metric("console", "vigil_console_clip_cache_hits_total")
    with concurrent.futures.ThreadPoolExecutor(4) as ex:
        res = list(ex.map(lambda _: get(port, url), range(4)))
    check(all(r[0] == 200 for r in res) and len({r[2] for r in res}) == 1,
          "clip: four parallel requests get the same clip")
    log = stack.procs["console"].text()
    assembled = sum(1 for line in log.splitlines()
                    if '"clip.assembled"' in line and "porch" in line)
    check(stack.metric("console", "vigil_console_clip_cache_hits_total") - hits == 3,
          f"clip: assembled once for the four ({assembled} assemblies logged in all)")
    check("(transcoded)" not in log, "clip: H.264 copied, never transcoded")

    # A time with no recording, and one not recorded yet.
    st, _, body = get(port, f"{base}?t={t0_ms - 3600 * 1000}&pre=5&dur=30")
    check(st == 404 and err(body).startswith("no recording of porch between "),
          f"clip: no recording -> 404 \"{err(body)}\"")
    now_ms = int(time.time() * 1000)
    st, hd, body = get(port, f"{base}?t={now_ms + 30000}&pre=5&dur=30")
    check(st == 404 and "not recorded yet" in err(body) and int(hd.get("retry-after", 0)) >= 50,
          f"clip: in the future -> 404 + Retry-After {hd.get('retry-after')} \"{err(body)}\"")
    st, _, body = get(port, f"/api/clips/garage.mp4?t={t}")
    check(st == 404 and "not configured" in err(body), "clip: unknown camera -> 404")
    for q in ["", f"t={t}&pre=61", f"t={t}&dur=0", f"t={t}&dur=601", "t=abc", f"t={t}&pre=-1",
              "t=1700000000"]:
        st, _, body = get(port, f"{base}?{q}")
        check(st == 400, f"clip: ?{q} -> 400 ({err(body)})")
    st, _, body = get(port, f"/api/clips/..%2fporch.mp4?t={t}")
    check(st == 400, "clip: a camera id with a path in it -> 400")


def records(stack, port, t0_ms, key):
    base_us = t0_ms * 1000
    for i in range(3):
        frame = {"camera": "porch", "capture_ts_us": base_us + i * 1000000,
                 "trace_id": f"tr{i}", "labels": [{"label": "person", "raw": "person",
                                                   "confidence": 90 + i,
                                                   "box": {"x": 1, "y": 2, "w": 3, "h": 4}}],
                 "zones": [], "snapshot_ref": f"fs:{key}", "detector": "motion"}
        redis_cmd(stack, "ZADD", "vigil:meta:porch", str(base_us + i * 1000000),
                  f"frame|tr{i}|{json.dumps(frame)}")
    ident = {"trace_id": "tr2", "person_id": "p1", "display_name": "Ann", "similarity": 97.5}
    redis_cmd(stack, "ZADD", "vigil:meta:porch", str(base_us + 2000000),
              f"identity|tr2-p1|{json.dumps(ident)}")
    alert = {"alert_id": "al1", "camera": "porch", "labels": ["person"]}
    redis_cmd(stack, "ZADD", "vigil:meta:porch", str(base_us + 2500000),
              f"alert|al1|{json.dumps(alert)}")
    frm, to = t0_ms - 1000, t0_ms + 60000
    st, hd, body = get(port, f"/api/frames?camera=porch&from={frm}&to={to}&limit=2")
    doc = json.loads(body)
    ids = [f["trace_id"] for f in doc["frames"]]
    check(st == 200 and hd.get("content-type") == "application/json" and ids == ["tr2", "tr1"],
          f"frames: newest first with limit 2 ({ids})")
    f0 = doc["frames"][0]
    check(f0.get("snapshot_url", "").startswith(stack.public_url + "/api/snapshots/frames/"),
          "frames: the snapshot ref becomes a console link")
    check([i["display_name"] for i in f0.get("identities", [])] == ["Ann"],
          "frames: the frame's identity merged in")
    st, _, img = get(port, f0["snapshot_url"][len(stack.public_url):])
    check(st == 200 and img[:2] == b"\xff\xd8", "frames: its snapshot link opens the JPEG")
    st, _, body = get(port, "/api/frames?camera=porch&horizon_hrs=1")
    check(st == 200 and len(json.loads(body)["frames"]) == 3, "frames: horizon_hrs=1")
    st, _, body = get(port, f"/api/events?camera=porch&from={frm}&to={to}")
    ev = json.loads(body)["events"]
    check(st == 200 and [(e["kind"], e["id"]) for e in ev] == [("alert", "al1")]
          and ev[0]["body"]["alert_id"] == "al1", "events: the alert, with its body")
    st, _, body = get(port, f"/api/events?camera=porch&from={frm}&to={to}&kinds=frame,alert")
    check(st == 200 and len(json.loads(body)["events"]) == 4, "events: kinds=frame,alert")
    for q in ["", "camera=porch&limit=0", "camera=porch&limit=1001", "camera=porch&from=abc",
              "camera=porch&from=5&to=4", "camera=porch&horizon_hrs=0",
              "camera=porch&from=1&horizon_hrs=2"]:
        st, _, body = get(port, f"/api/frames?{q}")
        check(st == 400, f"frames: ?{q} -> 400 ({err(body)})")
    st, _, body = get(port, "/api/events?camera=porch&kinds=bogus")
    check(st == 400, f"events: kinds=bogus -> 400 ({err(body)})")
    st, _, body = get(port, "/api/frames?camera=garage")
    check(st == 404, "frames: unknown camera -> 404")
    st, _, body = get(port, "/api/cameras")
    cams = json.loads(body)["cameras"]
    check(st == 200 and cams == [{"id": "porch", "record": True, "kvs_stream": None},
                                 {"id": "yard", "record": False, "kvs_stream": "yard-kvs"}],
          "cameras: ids, record and kvs_stream")


def prune(stack, port):
    """The cache at start-up: a clip unused for 2 h and a crashed assembly's
    .tmp go, a fresh clip stays."""
    cache = os.path.join(stack.env["VIGIL_RECORDING_DIR"], ".clips")
    clips_now = sorted(n for n in os.listdir(cache) if n.endswith(".mp4"))
    old, kept = clips_now[0], clips_now[1]
    tmp = os.path.join(cache, "porch-1-2-3.mp4.tmp")
    open(tmp, "wb").close()
    past = time.time() - 7200
    os.utime(os.path.join(cache, old), (past, past))
    os.utime(tmp, (past, past))
    stack.procs["console"].stop()
    stack.start_service("console")
    wait_for(lambda: get(port, "/api/cameras")[0] == 200, 10, "the console's API again")
    left = os.listdir(cache)
    check(old not in left and kept in left and not os.path.exists(tmp),
          f"cache: pruned by age at start-up ({old} gone, {kept} kept)")


def body(stack, args):
    stack.start_nats()
    stack.start_redis()
    port = free_port()
    stack.public_url = f"http://127.0.0.1:{port}"
    snap_dir = stack.path("snapshots")
    rec_dir = stack.env["VIGIL_RECORDING_DIR"]
    os.makedirs(rec_dir)
    t0_ms = (int(time.time()) - 120) * 1000
    make_recording(os.path.join(rec_dir, "porch"), t0_ms)
    tm = time.gmtime(t0_ms // 1000)
    key = time.strftime("frames/porch/%Y/%m/%d/%H/", tm) + "tr2.jpg"
    os.makedirs(os.path.dirname(os.path.join(snap_dir, key)))
    with open(JPEG, "rb") as f, open(os.path.join(snap_dir, key), "wb") as g:
        g.write(f.read())
    stack.write_config(f"""
cameras:
  - {{ id: porch, url: none.avi }}
  - {{ id: yard, url: none.avi, record: false, kvs_stream: yard-kvs }}
console:
  addr: 127.0.0.1:{port}
  public_url: {stack.public_url}
store:
  snapshots: {{ type: fs, dir: {snap_dir} }}
  metadata: {{ type: redis }}
clips:
  type: local
  pre_roll_s: 5
  length_s: 30
log_level: info
""")
    stack.start_service("console")
    wait_for(lambda: get(port, "/api/cameras")[0] == 200, 10, "the console's API")
    st, _, b = get(port, "/nope")
    check(st == 404 and err(b), "unknown endpoint -> 404 JSON")
    st, _, b = get(port, "/api/cameras", method="POST")
    check(st == 405, "POST -> 405")
    snapshots(stack, port, key)
    clips(stack, port, t0_ms)
    records(stack, port, t0_ms, key)
    m = stack.metrics("console")
    check(m.get('vigil_console_requests_total{route="clips",code="206"}', 0) >= 2
          and m.get('vigil_console_requests_total{route="snapshots",code="400"}', 0) >= 5,
          "metrics: vigil_console_requests_total{route,code}")
    prune(stack, port)
    check(stack.procs["console"].stop() == 0, "console stops cleanly on SIGTERM")


if __name__ == "__main__":
    sys.exit(run(body, dump=("console",)))
