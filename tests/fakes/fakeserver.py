"""What the fakes share (fake_aws.py, fake_deepstack.py, fake_telegram.py): a
threaded HTTP server on 127.0.0.1 whose handlers reach the fake's state as
self.state and answer every method in one _handle(), a state that numbers
the requests it keeps, answers with a body,
multipart/form-data parsed into fields, the port file written once it
listens, and a main loop that stops on SIGTERM or SIGINT. Python 3 standard
library only.

A fake run as a script imports this with its own directory on sys.path:

  sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
  import fakeserver
"""
import email.parser
import email.policy
import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class State:
    """A fake's state under one lock: its arguments, the stop event (wakes
    delayed answers at shutdown) and the last 2000 requests, numbered. A
    subclass's reset() sets its own fields (seq, requests too) under the lock."""
    MAX_REQUESTS = 2000

    def __init__(self, args):
        self.args = args
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.port = 0
        self.seq = 0
        self.requests = []
        self.reset()

    def reset(self):
        with self.lock:
            self.seq = 0
            self.requests = []

    def record(self, rec):
        with self.lock:
            self.seq += 1
            rec["seq"] = self.seq
            self.requests.append(rec)
            del self.requests[:-self.MAX_REQUESTS]


class Handler(BaseHTTPRequestHandler):
    """A subclass defines _handle(), for every method below."""
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):   # the fakes log their own lines
        pass

    @property
    def state(self):
        return self.server.state

    def do_GET(self):
        self._handle()

    do_POST = do_PUT = do_DELETE = do_GET

    def _send(self, status, body, ctype="application/json"):
        """One answer: status, Content-Type and Length, body (bytes)."""
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _send_json(self, status, obj):
        self._send(status, json.dumps(obj, separators=(",", ":")).encode())


def parse_form(ctype, body):
    """A multipart/form-data body -> {name: {"data": bytes, "filename": str|None,
    "content_type": str}}; None for another content type or a body without
    parts."""
    if not ctype.lower().startswith("multipart/form-data"):
        return None
    head = f"Content-Type: {ctype}\r\nMIME-Version: 1.0\r\n\r\n".encode()
    msg = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
    if not msg.is_multipart():
        return None
    fields = {}
    for part in msg.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        fields[name] = {"data": part.get_payload(decode=True) or b"",
                        "filename": part.get_filename(),
                        "content_type": part.get_content_type()}
    return fields


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128    # listen backlog; socketserver's default of 5 drops bursts

    def __init__(self, port, handler, state):
        self.state = state
        super().__init__(("127.0.0.1", port), handler)

    @property
    def port(self):
        return self.server_address[1]


def write_port_file(path, port):
    """port in path, whole or not at all (a reader polls for it)."""
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(f"{port}\n")
    os.replace(tmp, path)


def serve(server, port_file=None, banner=None, on_stop=None):
    """Serve until SIGTERM or SIGINT: the port in port_file once listening,
    banner on stderr, then on_stop() (wake what waits), shutdown and close."""
    # The handler only sets a flag: it runs in this thread, and Event.set()
    # there deadlocks when the signal lands while stop.wait() holds the lock.
    stopping = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stopping.append(True))
    if port_file:
        write_port_file(port_file, server.port)
    if banner:
        sys.stderr.write(banner + "\n")
        sys.stderr.flush()
    t = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.2}, daemon=True)
    t.start()
    while not stopping:
        time.sleep(0.1)
    if on_stop:
        on_stop()
    server.shutdown()
    server.server_close()
