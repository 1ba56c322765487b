#!/usr/bin/env python3
"""dedupe when its neighbours fail, with real nats-server, redis-server,
vigil-dedupe and vigil-notifier (file sink).

- Bounded work: detections of a camera not in the configuration, labels
  with a confidence outside 0..1 and labels beyond the per-detection limit
  are counted and dropped, never alerted.
- NATS stopped for a few seconds during a sighting: the alert arrives (once)
  after it returns.
- Redis down: one alert per key per window, not one per sighting.
- The alerts stream deleted under a running dedupe: it is re-created and
  the alert stored, not waited for.
"""
import os
import json
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, read_jsonl, run, wait_for  # noqa: E402
from pbframe import _bytes, _key, _uint, header  # noqa: E402

WINDOW_S = 30


def label(name, confidence):
    return _bytes(1, name) + _key(2, 5) + struct.pack("<f", confidence)


def detection(camera, labels, seq=1):
    out = _bytes(1, header(camera)) + _uint(2, seq) + _bytes(3, "test")
    for name, conf in labels:
        out += _bytes(4, label(name, conf))
    return out


def pub(stack, camera, labels):
    r = subprocess.run([os.path.join(stack.bin, "vigilctl"), "pub",
                        f"vigil.detections.{camera}", "-"], env=stack.env,
                       input=detection(camera, labels), capture_output=True, timeout=30)
    if r.returncode != 0:
        check(False, f"vigilctl pub a detection of {camera}: {r.stderr.decode()}")


def config(stack):
    return f"""
cameras:
  - id: porch
    url: /dev/null
  - id: yard
    url: /dev/null
dedupe:
  window_s: {WINDOW_S}
notifier:
  ack_wait_s: 3
  sinks:
    - {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }}
"""


def check_bounded_input(stack):
    m = lambda k: stack.metric("dedupe", k)  # noqa: E731
    pub(stack, "ghost", [("person", 0.9)])
    wait_for(lambda: m("vigil_dedupe_unknown_camera_total") >= 1, 10, "unknown camera counted")
    pub(stack, "yard", [("person", float("nan")), ("pet", 1.5), ("vehicle", -0.1)])
    wait_for(lambda: m("vigil_dedupe_bad_confidence_total") >= 3, 10, "bad confidences counted")
    pub(stack, "yard", [(f"thing{i}", 0.5) for i in range(40)])
    wait_for(lambda: m("vigil_dedupe_labels_dropped_total") >= 8, 10, "labels over the limit")
    wait_for(lambda: m("vigil_dedupe_sightings_total") >= 32, 10, "the first 32 labels")
    check(m("vigil_dedupe_sightings_total") == 32,
          "only the first 32 labels were considered; ghost and bad confidences never were")
    check(m("vigil_dedupe_alerts_total") == 32, "one alert per label considered")
    wait_for(lambda: len(read_jsonl(stack.path("outbox.jsonl"))) >= 32, 20,
             "the 32 alerts delivered")


def check_nats_outage(stack):
    outbox = stack.path("outbox.jsonl")
    before = len(read_jsonl(outbox))
    alerts_before = stack.metric("dedupe", "vigil_dedupe_alerts_total")
    # Hold dedupe inside its Redis call so NATS can go away between the
    # sighting and the alert's publish.
    stack.procs["redis"].p.send_signal(signal.SIGSTOP)
    try:
        pub(stack, "porch", [("person", 0.9)])
        time.sleep(0.3)
        stack.procs["nats"].stop()
        t_down = time.monotonic()
        time.sleep(3)
        stack.start_nats()
        print(f"# nats-server was down {time.monotonic() - t_down:.1f}s", flush=True)
    finally:
        stack.procs["redis"].p.send_signal(signal.SIGCONT)
    wait_for(lambda: len(read_jsonl(outbox)) > before, 40,
             "the alert raised while NATS was down", interval=0.2)
    time.sleep(2)  # a duplicate would arrive now
    new = read_jsonl(outbox)[before:]
    check(len(new) == 1, f"the alert arrived once after NATS returned ({len(new)})")
    check(stack.metric("dedupe", "vigil_dedupe_alerts_total") == alerts_before + 1,
          "dedupe counted it stored")
    check(stack.metric("dedupe", "vigil_dedupe_windows_released_total") == 0,
          "no window was given up")


def check_redis_outage(stack):
    outbox = stack.path("outbox.jsonl")
    before = len(read_jsonl(outbox))
    fo = stack.metric("dedupe", "vigil_dedupe_fail_open_total")
    stack.procs["redis"].stop()
    for i in range(30):
        pub(stack, "yard", [("person", 0.8)])
        time.sleep(0.05)
    wait_for(lambda: stack.metric("dedupe", "vigil_dedupe_fail_open_total") > fo, 10,
             "a fail-open alert")
    time.sleep(1)
    new = read_jsonl(outbox)[before:]
    # 30 sightings within ~2 s: one window, or two if a boundary fell inside.
    check(1 <= len(new) <= 2, f"Redis down: one alert per window, not per sighting "
          f"({len(new)} for 30 sightings)")
    check(stack.metric("dedupe", "vigil_dedupe_fail_open_total") - fo == len(new),
          "and they are the fail-open ones")
    stack.start_redis()


def js_api(stack, subject, payload=b""):
    """One JetStream API request over a bare NATS connection; the JSON reply."""
    s = socket.create_connection(("127.0.0.1", stack.nats_port), timeout=5)
    f = s.makefile("rb")
    f.readline()  # INFO
    inbox = "_INBOX.dedupe-test"
    s.sendall(b'CONNECT {"verbose":false,"pedantic":false}\r\n' +
              f"SUB {inbox} 1\r\nPUB {subject} {inbox} {len(payload)}\r\n".encode() +
              payload + b"\r\n")
    while True:
        line = f.readline()
        if line.startswith(b"PING"):
            s.sendall(b"PONG\r\n")
        elif line.startswith(b"MSG"):
            data = f.read(int(line.split()[-1]) + 2)
            s.close()
            return json.loads(data[:-2])
        elif not line:
            raise AssertionError(f"no reply to {subject}")


def check_stream_gone(stack):
    stack.procs["notifier"].stop()
    r = js_api(stack, "$JS.API.STREAM.DELETE.VIGIL_ALERTS")
    check(r.get("success") is True, f"the alerts stream deleted ({r})")
    alerts = stack.metric("dedupe", "vigil_dedupe_alerts_total")
    pub(stack, "porch", [("vehicle", 0.7)])
    wait_for(lambda: stack.metric("dedupe", "vigil_dedupe_alerts_total") > alerts, 20,
             "the alert after the stream was deleted")
    check(stack.metric("dedupe", "vigil_dedupe_stream_ensured_total") >= 1,
          "dedupe re-created the stream")
    info = js_api(stack, "$JS.API.STREAM.INFO.VIGIL_ALERTS")
    check(info.get("state", {}).get("messages") == 1, "and the alert is stored in it")
    check(info["config"]["duplicate_window"] >= WINDOW_S * 10**9,
          "its duplicate window covers a dedupe window")


def body(stack, args):
    stack.write_config(config(stack))
    stack.start_nats()
    stack.start_redis()
    stack.start_service("notifier")
    stack.start_service("dedupe")
    check(True, "nats-server, redis-server, notifier and dedupe are up")
    check_bounded_input(stack)
    check_nats_outage(stack)
    check_redis_outage(stack)
    check_stream_gone(stack)
    for svc in ("dedupe",):
        check(stack.procs[svc].stop() == 0, f"{svc} drains and exits 0 on SIGTERM")


if __name__ == "__main__":
    sys.exit(run(body, dump=("dedupe", "notifier", "nats")))
