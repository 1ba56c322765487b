#!/usr/bin/env python3
"""The local clip as a reader's browser plays it: Debian's Chromium, headless,
opens a page with a <video> of each clip link and reports back what it saw.

Real parts: nats-server, redis-server, vigil-console serving clips from a
recording made here with the ffmpeg CLI in the layout capture writes (an
H.264 camera, copied into the clip, and an MJPEG camera, transcoded to
H.264), and /usr/bin/chromium (scripts/deps installs it).

For each clip the page checks, in the browser's own decoder:
- it can play video/mp4 with H.264 (canPlayType);
- the metadata arrive: the clip's duration (the requested length plus at
  most one keyframe interval of pre-roll) and the camera's size;
- playback starts (muted autoplay) and the clock runs past 1 s, so frames
  decode;
- a seek to near the end lands there, which needs byte ranges (the console
  answers the browser's Range requests with 206: counted in its metrics).
"""
import http.server
import json
import os
import shutil
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, free_port, run, wait_for  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SEG_S, N_SEG, FPS = 10, 4, 10
W, H = 320, 240
PRE_S, DUR_S = 5, 12

PAGE = """<!doctype html><meta charset="utf-8"><title>clips</title>
<script>
const clips = %s;
function post(results) {
  fetch("/result", {method: "POST", body: JSON.stringify(results)});
}
function one(url) {
  console.log("vigil: clip " + url);
  return new Promise((done) => {
    const v = document.createElement("video");
    const r = {url, can_play: v.canPlayType('video/mp4; codecs="avc1.42E01E"')};
    let played = false;
    const finish = (why) => { r.end = why; v.pause(); v.removeAttribute("src"); v.load();
                              done(r); };
    const timer = setTimeout(() => finish("timeout"), 30000);
    v.muted = true;
    v.preload = "auto";
    v.onerror = () => { clearTimeout(timer);
                        r.error = v.error ? v.error.code + " " + v.error.message : "?";
                        finish("error"); };
    v.onloadedmetadata = () => {
      console.log("vigil: metadata " + v.duration);
      r.duration = v.duration; r.width = v.videoWidth; r.height = v.videoHeight;
      v.play().catch((e) => { r.play_error = String(e); });
    };
    v.ontimeupdate = () => {
      if (!played && v.currentTime > 1.0) {
        played = true;
        r.played_to = v.currentTime;
        v.currentTime = Math.max(0, v.duration - 1.5);
      }
    };
    v.onseeked = () => {
      if (played) { clearTimeout(timer); r.seeked_to = v.currentTime; finish("seeked"); }
    };
    document.body.appendChild(v);
    v.src = url;
  });
}
window.onload = async () => {
  const results = [];
  for (const c of clips) {
    try { results.push(await one(c)); }
    catch (e) { results.push({url: c, end: "exception", error: String(e)}); }
  }
  post(results);
};
</script><body></body>
"""


def make_recording(cam_dir, t0_ms, codec):
    """N_SEG segments of SEG_S from t0_ms, a keyframe every second, all in
    the index but the newest (the one capture would still be writing)."""
    os.makedirs(cam_dir)
    enc = (["-c:v", "libx264", "-preset", "ultrafast", "-g", str(FPS), "-keyint_min", str(FPS),
            "-sc_threshold", "0", "-pix_fmt", "yuv420p"] if codec == "h264"
           else ["-c:v", "mjpeg", "-q:v", "5", "-pix_fmt", "yuvj420p"])
    lines = []
    for i in range(N_SEG):
        start = t0_ms + i * SEG_S * 1000
        name = f"{start}.mkv"
        path = os.path.join(cam_dir, name)
        subprocess.run(["ffmpeg", "-v", "error", "-y", "-f", "lavfi", "-i",
                        f"testsrc2=s={W}x{H}:r={FPS}:d={SEG_S}", *enc, "-f", "matroska", path],
                       check=True, timeout=120)
        if i < N_SEG - 1:
            lines.append(f"{start} {SEG_S * 1000} {os.path.getsize(path)} {name} {codec} "
                         f"{W}x{H}\n")
    with open(os.path.join(cam_dir, "index"), "w") as f:
        f.writelines(lines)


class PageServer:
    """Serves the page and takes the one POST of its results."""

    def __init__(self, clips):
        self.page = (PAGE % json.dumps(clips)).encode()
        self.results = None
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_GET(self):
                self.send_response(200)
                self.send_header("Content-Type", "text/html; charset=utf-8")
                self.send_header("Content-Length", str(len(outer.page)))
                self.end_headers()
                self.wfile.write(outer.page)

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                outer.results = json.loads(self.rfile.read(n))
                self.send_response(204)
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()


def chromium_argv(stack, url):
    # Without the background-networking switches Chromium keeps trying hosts
    # this closed network refuses; a fresh profile each run.
    return [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
            "--no-first-run", "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--mute-audio", "--enable-logging=stderr", "--v=0", "--autoplay-policy=no-user-gesture-required",
            f"--user-data-dir={stack.path('chromium-profile')}", url]


def body(stack, args):
    if not os.access(CHROMIUM, os.X_OK):
        raise AssertionError(f"{CHROMIUM} is missing: Debian's chromium package, installed by "
                             "scripts/deps")
    stack.start_nats()
    stack.start_redis()
    port = free_port()
    rec = stack.env["VIGIL_RECORDING_DIR"]
    t0_ms = (int(time.time()) - 120) * 1000
    make_recording(os.path.join(rec, "porch"), t0_ms, "h264")
    make_recording(os.path.join(rec, "hall"), t0_ms, "mjpeg")
    stack.write_config(f"""
cameras:
  - {{ id: porch, url: none.avi }}
  - {{ id: hall, url: none.avi }}
console:
  addr: 127.0.0.1:{port}
  public_url: http://127.0.0.1:{port}
store:
  snapshots: {{ type: fs, dir: {stack.path("snapshots")} }}
  metadata: {{ type: redis }}
clips:
  type: local
log_level: info
""")
    stack.start_service("console")
    # Detection 13.5 s in: the clip starts at the keyframe at 8 s (T - pre).
    t = t0_ms + 13500
    clips = [f"http://127.0.0.1:{port}/api/clips/{cam}.mp4?t={t}&pre={PRE_S}&dur={DUR_S}"
             for cam in ("porch", "hall")]
    page = PageServer(clips)
    try:
        chrome = stack.start("chromium", chromium_argv(stack, f"http://127.0.0.1:{page.port}/"))
        wait_for(lambda: page.results is not None or not chrome.alive(), 120,
                 "the page's results")
        check(page.results is not None, f"Chromium ran the page ({chrome.p.args[0]})")
    finally:
        page.close()
        if "chromium" in stack.procs:
            stack.procs["chromium"].stop()
        shutil.rmtree(stack.path("chromium-profile"), ignore_errors=True)
    for cam, r in zip(("porch", "hall"), page.results):
        what = f"{cam} ({'copied H.264' if cam == 'porch' else 'MJPEG transcoded to H.264'})"
        print(f"# {cam}: {json.dumps(r)}", flush=True)
        check(r["can_play"] in ("probably", "maybe"),
              f"{what}: Chromium plays video/mp4 H.264 (canPlayType {r['can_play']!r})")
        check(r.get("end") == "seeked" and "error" not in r,
              f"{what}: loaded, played and seeked without a media error "
              f"(end {r.get('end')}, error {r.get('error')})")
        check(DUR_S - 0.2 <= r["duration"] <= DUR_S + 1.2 and
              (r["width"], r["height"]) == (W, H),
              f"{what}: duration {r['duration']:.2f} s for {DUR_S} s asked, {r['width']}x"
              f"{r['height']}")
        check(r["played_to"] > 1.0 and "play_error" not in r,
              f"{what}: playback ran to {r['played_to']:.2f} s (frames decoded)")
        check(abs(r["seeked_to"] - (r["duration"] - 1.5)) < 0.6,
              f"{what}: a seek to {r['duration'] - 1.5:.2f} s landed at {r['seeked_to']:.2f} s")
    ranges = stack.metric("console", 'vigil_console_requests_total{route="clips",code="206"}')
    check(ranges >= 1, f"the browser fetched the clips by byte ranges: {ranges:.0f} answers 206")


if __name__ == "__main__":
    sys.exit(run(body, dump=("console", "chromium")))
