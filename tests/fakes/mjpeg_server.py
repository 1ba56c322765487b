#!/usr/bin/env python3
"""A fake HTTP MJPEG camera, like the cheap IP cameras: `GET /video` answers
`multipart/x-mixed-replace; boundary=...` and sends one JPEG part per frame
(`Content-Type: image/jpeg`, `Content-Length`) at --fps, looping over the
JPEG files of --frames DIR (sorted by name), sent byte for byte as they are
on disk. Python 3 standard library only. See tests/fakes/README.md,
"mjpeg_server.py".

  python3 tests/fakes/mjpeg_server.py --frames DIR --port 0 --port-file F \\
      [--fps 10] [--boundary B] [--drop-after N --down-s S]

The camera runs on its own clock: frame number k is due at k / fps seconds
after start, every client gets the frame that is due (a client that falls
more than a frame behind skips frames rather than bursting, as a camera
does) and frame k is file k mod (number of files).

The camera can disappear and come back on the same port: it closes every
stream (or, mode "stall", keeps them open but silent, as a camera that lost
its Wi-Fi), stops listening (connection refused) and listens again S seconds
later. Either after --drop-after N frames sent in all (once), or on
`POST /_fake/down {"seconds": S, "mode": "close"|"stall"}` (answered before
it goes).

Control (JSON): `GET /_fake/health` {"ok", "port"}; `GET /_fake/stats`
{"up", "port", "fps", "frames", "connections" (GET /video requests so far),
"clients" (streaming now), "frames_sent", "downs"}. One line per stream
opened / closed and per outage on stderr. Stops on SIGTERM or SIGINT, exit 0.
"""
import argparse
import errno
import json
import os
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fakeserver  # noqa: E402


def log(msg):
    sys.stderr.write(f"mjpeg_server {time.strftime('%H:%M:%S')} {msg}\n")
    sys.stderr.flush()


class Camera:
    """The frames, the clock, the streams being served and the outages."""

    def __init__(self, args, frames):
        self.args = args
        self.frames = frames
        self.fps = args.fps
        self.epoch = time.monotonic()
        self.lock = threading.Lock()
        self.server = None
        self.port = args.port
        self.gone = threading.Event()   # this generation's streams must end (or go silent)
        self.generation = 0
        self.mode = "close"
        self.up_at = None               # monotonic: when to listen again, while down
        self.connections = 0
        self.clients = set()            # sockets streaming now
        self.frames_sent = 0
        self.downs = 0
        self.drop_left = args.drop_after
        self.stopping = threading.Event()

    # ---- listening ----------------------------------------------------------------

    def listen(self):
        """(Re)bind the port; after an outage the same port, retried briefly
        while the old socket's last connections close."""
        deadline = time.monotonic() + 10
        while True:
            try:
                server = Server(self.port, Handler, self)
                break
            except OSError as e:
                if e.errno != errno.EADDRINUSE or time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        with self.lock:
            self.server = server
            self.port = server.port
            self.up_at = None
        threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                         daemon=True).start()

    def down(self, seconds, mode="close"):
        """Stop listening and end (or silence) every stream, for `seconds`."""
        with self.lock:
            if self.server is None:
                return
            server, self.server = self.server, None
            gone, self.gone = self.gone, threading.Event()
            self.generation += 1
            self.mode = mode
            self.downs += 1
            self.up_at = time.monotonic() + seconds
            clients = list(self.clients)
        log(f"down for {seconds:g} s ({mode}): {len(clients)} streams")
        gone.set()
        if mode == "close":
            for sock in clients:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
        server.shutdown()
        server.server_close()

    def tick(self):
        """Main thread, every 50 ms: listen again when an outage is over."""
        with self.lock:
            due = self.up_at is not None and time.monotonic() >= self.up_at
        if due:
            self.listen()
            log(f"up again on 127.0.0.1:{self.port}")

    def stats(self):
        with self.lock:
            return {"up": self.server is not None, "port": self.port, "fps": self.fps,
                    "frames": len(self.frames), "connections": self.connections,
                    "clients": len(self.clients), "frames_sent": self.frames_sent,
                    "downs": self.downs}

    def close(self):
        with self.lock:
            server, self.server = self.server, None
            self.gone.set()
            clients = list(self.clients)
        for sock in clients:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if server:
            server.shutdown()
            server.server_close()

    # ---- streaming ----------------------------------------------------------------

    def due(self):
        """The number of the frame due now."""
        return int((time.monotonic() - self.epoch) * self.fps)

    def sent_one(self):
        """Count a frame; True when --drop-after says the camera goes now."""
        with self.lock:
            self.frames_sent += 1
            if self.drop_left is None:
                return False
            self.drop_left -= 1
            if self.drop_left > 0:
                return False
            self.drop_left = None
            return True

    def stream(self, handler):
        boundary = self.args.boundary.encode()
        sock = handler.connection
        with self.lock:
            gone = self.gone
            self.connections += 1
            self.clients.add(sock)
        peer = "%s:%d" % handler.client_address[:2]
        log(f"stream to {peer} opened")
        sent, why = 0, "client gone"
        try:
            handler.send_response(200)
            handler.send_header("Content-Type",
                                f"multipart/x-mixed-replace; boundary={self.args.boundary}")
            handler.send_header("Cache-Control", "no-cache, no-store")
            handler.send_header("Pragma", "no-cache")
            handler.send_header("Connection", "close")
            handler.end_headers()
            k = self.due()
            while True:
                wait = self.epoch + k / self.fps - time.monotonic()
                if wait > 0 and gone.wait(wait):
                    break
                if gone.is_set():
                    break
                if -wait > 1.0 / self.fps:      # fell behind: the current frame, no burst
                    k = self.due()
                jpeg = self.frames[k % len(self.frames)]
                handler.wfile.write(b"--" + boundary + b"\r\nContent-Type: image/jpeg\r\n" +
                                    b"Content-Length: %d\r\n\r\n" % len(jpeg) + jpeg + b"\r\n")
                sent += 1
                k += 1
                if self.sent_one():
                    threading.Thread(target=self.down, args=(self.args.down_s,),
                                     daemon=True).start()
            why = "camera down"
            if self.mode == "stall":            # silent until the camera is back
                why = "camera down (stalled)"
                while not self.stopping.is_set() and self.up_at is not None:
                    time.sleep(0.05)
        except OSError:
            pass
        finally:
            with self.lock:
                self.clients.discard(sock)
            handler.close_connection = True
            log(f"stream to {peer} closed after {sent} frames ({why})")


class Handler(fakeserver.Handler):
    protocol_version = "HTTP/1.0"   # as the cameras answer; the stream ends when the socket does

    def _handle(self):
        cam = self.server.state
        path = self.path.split("?", 1)[0]
        if self.command == "GET" and path == cam.args.path:
            cam.stream(self)
        elif self.command == "GET" and path == "/_fake/health":
            self._send_json(200, {"ok": True, "port": cam.port})
        elif self.command == "GET" and path == "/_fake/stats":
            self._send_json(200, cam.stats())
        elif self.command == "POST" and path == "/_fake/down":
            n = int(self.headers.get("Content-Length") or 0)
            try:
                body = json.loads(self.rfile.read(n) or b"{}")
                seconds = float(body.get("seconds", cam.args.down_s))
                mode = body.get("mode", "close")
                if mode not in ("close", "stall") or seconds < 0:
                    raise ValueError(mode)
            except (ValueError, AttributeError, TypeError) as e:
                self._send_json(400, {"error": f"bad request: {e}"})
                return
            self._send_json(200, {"down_s": seconds, "mode": mode})
            threading.Thread(target=cam.down, args=(seconds, mode), daemon=True).start()
        else:
            self._send_json(404, {"error": "not found"})


class Server(fakeserver.Server):
    block_on_close = False


def load_frames(directory):
    names = sorted(n for n in os.listdir(directory) if n.lower().endswith((".jpg", ".jpeg")))
    frames = []
    for n in names:
        with open(os.path.join(directory, n), "rb") as f:
            data = f.read()
        if not data.startswith(b"\xff\xd8"):
            raise SystemExit(f"mjpeg_server: {n} is not a JPEG")
        frames.append(data)
    if not frames:
        raise SystemExit(f"mjpeg_server: no .jpg files in {directory}")
    return frames


def main(argv=None):
    ap = argparse.ArgumentParser(description="Fake HTTP MJPEG camera (tests only).")
    ap.add_argument("--frames", required=True, help="directory of .jpg files, sent in name order")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0 = pick one)")
    ap.add_argument("--port-file", help="write the port here once listening")
    ap.add_argument("--path", default="/video")
    ap.add_argument("--boundary", default="vigilframe")
    ap.add_argument("--drop-after", type=int, default=None,
                    help="go down after this many frames sent in all (once)")
    ap.add_argument("--down-s", type=float, default=3.0, help="how long an outage lasts")
    args = ap.parse_args(argv)
    if args.fps <= 0:
        ap.error("--fps must be > 0")
    cam = Camera(args, load_frames(args.frames))
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    cam.listen()
    if args.port_file:
        fakeserver.write_port_file(args.port_file, cam.port)
    log(f"listening on 127.0.0.1:{cam.port}{args.path}: {len(cam.frames)} frames at "
        f"{args.fps:g} fps")
    while not stopping:
        cam.tick()
        time.sleep(0.05)
    cam.stopping.set()
    cam.close()
    log("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
