"""Test harness: real servers and vigil services on loopback ports chosen here.

Every process is started by the test and stopped by PID; nothing is assumed to
be running beforehand. Used by the test_*.py drivers in this directory.
"""
import hashlib
import hmac
import http.server
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
import urllib.request

DEMO_VIDEO = "/usr/share/doc/opencv-doc/examples/data/vtest.avi"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port):
    with socket.socket() as s:
        s.settimeout(0.2)
        return s.connect_ex(("127.0.0.1", port)) == 0


def wait_for(pred, timeout, what, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print(f"ok - {msg}", flush=True)


class Proc:
    def __init__(self, name, argv, env, log_dir):
        self.name = name
        self.log_path = os.path.join(log_dir, f"{name}.log")
        self.log = open(self.log_path, "ab")
        self.p = subprocess.Popen(argv, env=env, stdout=self.log, stderr=subprocess.STDOUT)

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=20):
        if self.p.poll() is None:
            self.p.send_signal(sig)
            try:
                self.p.wait(timeout)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
                raise AssertionError(f"{self.name} ignored {sig!r} for {timeout}s")
        self.log.close()
        return self.p.returncode

    def text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode(errors="replace")


class Tail:
    """`vigilctl tail SUBJECT` writing JSON lines to a file."""

    def __init__(self, vigilctl, subject, path, env, args=()):
        self.out = open(path, "wb")
        self.p = subprocess.Popen([vigilctl, "tail", *args, subject], env=env, stdout=self.out,
                                  stderr=subprocess.PIPE)
        line = self.p.stderr.readline()
        if not line.startswith(b"vigilctl: tailing"):
            raise AssertionError(f"vigilctl tail {subject}: {line!r}")

    def alive(self):
        return self.p.poll() is None

    def stop(self, sig=signal.SIGTERM, timeout=10):
        self.p.send_signal(sig)
        self.p.wait(timeout)
        self.out.close()
        return self.p.returncode


def peer_gone(conn):
    """True when the other end of a connection has closed it."""
    conn.setblocking(False)
    try:
        return conn.recv(1, socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        conn.setblocking(True)


class Webhook:
    """An HTTP receiver for the webhook sink. Verifies X-Vigil-Signature
    (HMAC-SHA256 of "<X-Vigil-Timestamp>.<body>", timestamp within 5 min).
    Behaviour is set on the object while it runs: `fail_first` answers 500 to
    that many requests; `status` (e.g. 400) answers every request with it;
    `retry_after` adds that header to 429/503 answers; `delay_s` replies that
    much later. `requests` lists every request (alert id, X-Vigil-Delivery,
    time); `bodies` only the alerts it answered 2xx to and whose answer
    reached the sender. `down()` / `up()` stop and restart listening on the
    same port (connection refused in between)."""

    def __init__(self, secret, fail_first=0):
        self.secret = secret.encode()
        self.bodies = []
        self.requests = []
        self.bad_signatures = 0
        self.fail_left = fail_first
        self.status = 0
        self.retry_after = None
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.port = 0
        self.server = None
        self.up()

    def _handler(hook):
        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                ts = self.headers.get("X-Vigil-Timestamp", "")
                sig = self.headers.get("X-Vigil-Signature", "")
                want = "sha256=" + hmac.new(hook.secret, ts.encode() + b"." + body,
                                            hashlib.sha256).hexdigest()
                fresh = ts.isdigit() and abs(time.time() - int(ts)) < 300
                alert = json.loads(body)
                with hook.lock:
                    hook.requests.append((alert["alert_id"],
                                          self.headers.get("X-Vigil-Delivery", ""), time.time()))
                    if hook.fail_left > 0:
                        hook.fail_left -= 1
                        code = 500
                    else:
                        code = hook.status or 200
                    delay = hook.delay_s
                    retry_after = hook.retry_after
                gone = False
                if delay:
                    time.sleep(delay)
                    gone = peer_gone(self.connection)
                try:
                    self.send_response(code)
                    if retry_after is not None and code in (429, 503):
                        self.send_header("Retry-After", str(retry_after))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                except OSError:
                    gone = True
                # An answer the sender never read (it was killed meanwhile)
                # is no delivery: the sender cannot know it succeeded.
                if 200 <= code < 300 and not gone:
                    with hook.lock:
                        if not (hmac.compare_digest(sig, want) and fresh):
                            hook.bad_signatures += 1
                        hook.bodies.append(alert)

            def log_message(self, *args):
                pass
        return Handler

    def up(self):
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), self._handler())
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def down(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def ids(self):
        with self.lock:
            return [b["alert_id"] for b in self.bodies]

    def request_ids(self):
        with self.lock:
            return [r[0] for r in self.requests]

    def close(self):
        self.down()


class Stack:
    """nats-server -js, redis-server and vigil services for one test."""

    def __init__(self, bin_dir):
        self.bin = bin_dir
        self.dir = tempfile.mkdtemp(prefix="vigil-it-")
        self.logs = os.path.join(self.dir, "logs")
        os.makedirs(self.logs)
        self.procs = {}
        self.http = {}
        self.nats_port = free_port()
        self.redis_port = free_port()
        self.env = dict(os.environ)
        self.env["VIGIL_NATS_URL"] = f"nats://127.0.0.1:{self.nats_port}"
        self.env["VIGIL_REDIS_URL"] = f"redis://127.0.0.1:{self.redis_port}"
        self.env["VIGIL_CONFIG"] = os.path.join(self.dir, "vigil.yaml")
        # Capture records by default: into the test's own directory.
        self.env["VIGIL_RECORDING_DIR"] = os.path.join(self.dir, "recordings")

    def path(self, name):
        return os.path.join(self.dir, name)

    def write_config(self, text):
        with open(self.env["VIGIL_CONFIG"], "w") as f:
            f.write(text)

    def start(self, name, argv, env=None):
        self.procs[name] = Proc(name, argv, env or self.env, self.logs)
        return self.procs[name]

    def start_port_file(self, name, argv, timeout=15):
        """Start a fake that picks its own port (argv + --port 0 --port-file
        F) and return the port once it has written F."""
        port_file = self.path(f"{name}.port")
        self.start(name, argv + ["--port", "0", "--port-file", port_file])
        wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), timeout,
                 name)
        with open(port_file) as f:
            return int(f.read())

    def start_nats(self, monitor=False):
        """monitor: also serve the monitoring endpoints (self.nats_http)."""
        extra = []
        if monitor:
            self.nats_http = getattr(self, "nats_http", None) or free_port()
            extra = ["-m", str(self.nats_http)]
        self.start("nats", ["nats-server", "-js", "-a", "127.0.0.1", "-p", str(self.nats_port),
                            "-sd", self.path("jetstream"), *extra])
        wait_for(lambda: port_open(self.nats_port), 10, "nats-server")

    def jsz(self):
        """JetStream's own view: streams and consumers with their settings."""
        url = f"http://127.0.0.1:{self.nats_http}/jsz?consumers=true&config=true"
        with urllib.request.urlopen(url, timeout=3) as r:
            return json.loads(r.read())

    def start_redis(self):
        self.start("redis", ["redis-server", "--port", str(self.redis_port), "--bind",
                             "127.0.0.1", "--save", "", "--appendonly", "no",
                             "--dir", self.dir])
        wait_for(lambda: port_open(self.redis_port), 10, "redis-server")

    def start_service(self, svc, *args, name=None, wait_ready=True):
        name = name or svc
        port = self.http.get(name) or free_port()
        self.http[name] = port
        env = dict(self.env, VIGIL_HTTP_ADDR=f"127.0.0.1:{port}")
        p = self.start(name, [os.path.join(self.bin, f"vigil-{svc}"), *args], env)
        if wait_ready:
            wait_for(lambda: self.ready(name) or not p.alive(), 20, f"{name} /readyz")
            if not p.alive():
                raise AssertionError(f"{name} exited early:\n{p.text()}")
        return p

    def ready(self, name):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.http[name]}/readyz",
                                        timeout=1) as r:
                return r.status == 200
        except OSError:
            return False

    def metrics(self, name):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http[name]}/metrics",
                                    timeout=3) as r:
            out = {}
            for line in r.read().decode().splitlines():
                if line and not line.startswith("#"):
                    key, _, value = line.rpartition(" ")
                    out[key] = float(value)
            return out

    def metric(self, name, key):
        """A value by its full key; a bare family name sums every label set."""
        m = self.metrics(name)
        if "{" in key:
            return m.get(key, 0.0)
        return sum(v for k, v in m.items() if k == key or k.startswith(key + "{"))

    def vigilctl(self, *args, **kw):
        return subprocess.run([os.path.join(self.bin, "vigilctl"), *args], env=self.env,
                              capture_output=True, timeout=kw.get("timeout", 30))

    def publish_alert(self, camera, payload):
        """An Alert (protobuf bytes) on vigil.alerts.<camera>, as dedupe
        publishes it."""
        subject = f"vigil.alerts.{camera}"
        p = subprocess.run([os.path.join(self.bin, "vigilctl"), "pub", subject, "-"],
                           input=payload, env=self.env, capture_output=True, timeout=10)
        if p.returncode != 0:
            raise AssertionError(f"vigilctl pub {subject}: {p.stderr.decode()}")

    def tail(self, name, subject, *args):
        """Record every message on subject as JSON lines in <dir>/<name>.jsonl."""
        path = self.path(f"{name}.jsonl")
        self.procs[name] = Tail(os.path.join(self.bin, "vigilctl"), subject, path, self.env,
                                args)
        return path

    def stop_all(self):
        for name in reversed(list(self.procs)):
            try:
                self.procs[name].stop()
            except Exception:  # noqa: BLE001 - best effort during teardown
                pass


def run(body, dump=(), cleanup=None):
    """The life of a test driver: --bin/--src, a Stack, body(stack, args);
    afterwards every process stopped, on failure the tails of the logs of the
    processes named in dump, and the closing 'N passed, N failed' line.
    Returns the exit status."""
    import argparse
    import sys
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", required=True)
    ap.add_argument("--src", required=True)
    args = ap.parse_args()
    stack = Stack(args.bin)
    ok = False
    try:
        body(stack, args)
        ok = True
    finally:
        stack.stop_all()
        if cleanup:
            cleanup()
        if not ok:
            for name, p in stack.procs.items():
                if any(name.startswith(d) for d in dump) and hasattr(p, "text"):
                    print(f"---- {name} log (tail) ----\n{p.text()[-4000:]}", file=sys.stderr)
            print(f"logs kept in {stack.dir}", file=sys.stderr)
        else:
            # Only a failure's logs are worth the disk (JetStream stores, snapshots).
            shutil.rmtree(stack.dir, ignore_errors=True)
        print("1 passed, 0 failed" if ok else "0 passed, 1 failed")
    return 0 if ok else 1


def read_jsonl(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def rec_dir(stack, *parts):
    """recording.dir: the harness points every service at <stack>/recordings
    (VIGIL_RECORDING_DIR wins over the file); tests use the same."""
    base = stack.env.get("VIGIL_RECORDING_DIR") or stack.path("recordings")
    return os.path.join(base, *parts)


def recording_yaml(stack, segment_s):
    """The recording: section of a test's config: off unless a camera says
    record: true, into rec_dir, small budgets."""
    return f"""recording:
  enabled: false
  dir: {rec_dir(stack)}
  segment_s: {segment_s}
  max_age_h: 1
  max_mb: 200
"""


def read_index(cam_dir):
    """A camera's recording index (docs/recording.md), a dict a segment."""
    path = os.path.join(cam_dir, "index")
    if not os.path.exists(path):
        return []
    rows = []
    with open(path) as f:
        for line in f:
            start, dur, size, name, codec, wh = line.split()
            w, h = wh.split("x")
            rows.append({"start_ms": int(start), "duration_ms": int(dur), "bytes": int(size),
                         "file": name, "codec": codec, "width": int(w), "height": int(h)})
    return rows
