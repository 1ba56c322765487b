#!/usr/bin/python3
"""A real RTSP server for the tests: GStreamer's RTSP server library (Debian's
python3-gi + gir1.2-gst-rtsp-server-1.0), serving a pre-encoded MP4 (H.264 or
H.265, made with the ffmpeg CLI) as rtsp://127.0.0.1:<port>/cam, at
its own frame rate, without re-encoding it (qtdemux ! h26Xparse ! rtph26Xpay).
Run with /usr/bin/python3.

    rtsp_server.py --file X.mp4 [--codec h264|h265] [--port 0] [--port-file F]

Prints the port on stdout (and writes it to --port-file) once listening.
"""
import argparse
import os
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402


class FileFactory(GstRtspServer.RTSPMediaFactory):
    """One pipeline shared by every client, played in real time from the
    file (make it longer than the test needs: at its end the stream ends, as
    a camera that goes away)."""

    def __init__(self, path, codec):
        super().__init__()
        parse = "h265parse" if codec == "h265" else "h264parse"
        pay = "rtph265pay" if codec == "h265" else "rtph264pay"
        # config-interval -1: parameter sets with every keyframe, as cameras send them.
        self.launch = (f"( filesrc location=\"{path}\" ! qtdemux ! {parse} ! "
                       f"{pay} name=pay0 pt=96 config-interval=-1 )")
        self.set_shared(True)

    def do_create_element(self, url):
        return Gst.parse_launch(self.launch)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--file", required=True)
    ap.add_argument("--codec", default="h264", choices=["h264", "h265"])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--port-file")
    args = ap.parse_args()
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = FileFactory(args.file, args.codec)
    server.get_mount_points().add_factory("/cam", factory)
    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print("rtsp_server: cannot listen", file=sys.stderr)
        return 1
    port = server.get_bound_port()
    print(port, flush=True)
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write(str(port))
        os.rename(args.port_file + ".tmp", args.port_file)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGTERM, loop.quit)
    GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, signal.SIGINT, loop.quit)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
