#!/usr/bin/env python3
"""dedupe killed at its worst moments, with real nats-server, redis-server
and vigil-dedupe replicas; the alerts stream is read back directly.

- SIGKILL right after the window opened, before the publish (test hook
  VIGIL_FAULT=dedupe.after_window): two restarted replicas store the alert
  exactly once, with the id the window holds; one of them recovers it, not
  both; a later sighting in the window is still suppressed.
- SIGKILL right after JetStream stored the alert, before its pending record
  was cleared (VIGIL_FAULT=dedupe.after_publish): the sweep's copy collapses
  in JetStream, the stream keeps one.
- JetStream away for longer than the publisher's retries: the alert stays
  pending and so does its window (the next sighting is suppressed, not a
  second alert); once JetStream is back the sweep stores it, once.
"""
import os
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, port_open, run, wait_for  # noqa: E402
from pbframe import detection  # noqa: E402
from rawio import NatsPub, alert, redis_cmd, stream_count, stream_messages  # noqa: E402

CONFIG = """
log_level: debug
cameras:
  - { id: porch, url: /dev/null }
  - { id: yard, url: /dev/null }
  - { id: gate, url: /dev/null }
dedupe:
  window_s: 120
"""


def start_dedupe(stack, name, fault=None):
    if fault:
        stack.env["VIGIL_FAULT"] = fault
    try:
        return stack.start_service("dedupe", name=name)
    finally:
        stack.env.pop("VIGIL_FAULT", None)


def sight(stack, camera, label="person"):
    nc = NatsPub(stack.nats_port)
    nc.pub(f"vigil.detections.{camera}", detection(camera, [(label, 0.9)]))
    nc.flush()
    nc.close()


def total(stack, names, metric):
    return sum(stack.metric(n, metric) for n in names)


def messages(stack):
    return [(msg_id, alert(data)) for msg_id, data in stream_messages(stack.nats_port)]


def pending(stack):
    return redis_cmd(stack.redis_port, "ZCARD", "vigil:dd:pending")


def killed_by_the_hook(stack, p, what):
    wait_for(lambda: not p.alive(), 20, f"dedupe to die {what}")
    check(p.p.returncode == -signal.SIGKILL, f"the test hook killed dedupe {what} "
          f"(exit {p.p.returncode})")
    check("fault.injected" in p.text(), "and said so in its log")


def crash_after_window(stack):
    p = start_dedupe(stack, "dd-crash", "dedupe.after_window")
    sight(stack, "porch")
    killed_by_the_hook(stack, p, "between the window and the publish")
    window_id = redis_cmd(stack.redis_port, "GET", "vigil:dd:porch:label:person")
    check(window_id and len(window_id) == 32, f"the window is open in Redis ({window_id})")
    check(stream_count(stack.nats_port) == 0, "the alert is not in the stream yet")
    check(redis_cmd(stack.redis_port, "EXISTS", f"vigil:dd:pending:{window_id}") == 1,
          "its pending record is in Redis")

    names = ("dd-a", "dd-b")
    for n in names:
        start_dedupe(stack, n)
    wait_for(lambda: stream_count(stack.nats_port) >= 1, 30, "the recovered alert",
             interval=0.2)
    wait_for(lambda: pending(stack) == 0, 10, "the pending record cleared")
    msgs = messages(stack)
    check(len(msgs) == 1, f"the alert is stored exactly once ({len(msgs)})")
    msg_id, a = msgs[0]
    check(msg_id == window_id and a["alert_id"] == window_id,
          "with the alert id its window holds, as Nats-Msg-Id too")
    check(a["camera"] == "porch" and a["label"] == "person" and not a["fail_open"],
          "and the sighting's camera and label")
    recovered = total(stack, names, "vigil_dedupe_alerts_recovered_total")
    check(recovered == 1, f"one replica recovered it, not both ({recovered:.0f})")
    check(any("alert.recovered" in stack.procs[n].text() for n in names), "logged alert.recovered")

    sight(stack, "porch")
    wait_for(lambda: total(stack, names, "vigil_dedupe_sightings_total") >= 1, 10,
             "the next sighting")
    check(total(stack, names, "vigil_dedupe_suppressed_total") == 1,
          "a later sighting in the window is suppressed")
    check(stream_count(stack.nats_port) == 1, "and raises no second alert")
    for n in names:
        check(stack.procs[n].stop() == 0, f"{n} drains and exits 0")


def crash_after_publish(stack):
    p = start_dedupe(stack, "dd-crash2", "dedupe.after_publish")
    sight(stack, "yard")
    killed_by_the_hook(stack, p, "between the publish and clearing its record")
    check(stream_count(stack.nats_port) == 2, "the alert was stored before the crash")
    check(pending(stack) == 1, "its pending record was left behind")
    start_dedupe(stack, "dd-c")
    wait_for(lambda: stack.metric("dd-c", "vigil_dedupe_alerts_recovered_total") >= 1, 30,
             "the sweep to republish it")
    wait_for(lambda: pending(stack) == 0, 10, "the pending record cleared")
    ids = [m for m, _ in messages(stack)]
    check(len(ids) == 2 and len(set(ids)) == 2,
          "JetStream collapsed the republished copy: still one alert per sighting")


def start_nats(stack, jetstream):
    stack.start("nats", ["nats-server", *(["-js"] if jetstream else []), "-a", "127.0.0.1",
                         "-p", str(stack.nats_port), "-sd", stack.path("jetstream")])
    wait_for(lambda: port_open(stack.nats_port), 10, "nats-server")


def jetstream_away(stack):
    m = lambda k: stack.metric("dd-c", k)  # noqa: E731
    stack.procs["nats"].stop()
    start_nats(stack, jetstream=False)
    sightings = m("vigil_dedupe_sightings_total")

    def sighted():
        sight(stack, "gate")
        return m("vigil_dedupe_sightings_total") > sightings

    # dedupe reconnects on its own; until then a sighting is not delivered.
    wait_for(sighted, 30, "dedupe back on NATS (without JetStream)", interval=1)
    wait_for(lambda: m("vigil_dedupe_publish_failed_total") >= 1, 30,
             "the publish to give up")
    check(pending(stack) == 1, "the refused alert stays pending")
    suppressed = m("vigil_dedupe_suppressed_total")
    sight(stack, "gate")
    wait_for(lambda: m("vigil_dedupe_suppressed_total") > suppressed, 10, "the next sighting")
    check(m("vigil_dedupe_windows_released_total") == 0,
          "the window stayed: the next sighting is suppressed, not a second alert")

    stack.procs["nats"].stop()
    start_nats(stack, jetstream=True)
    wait_for(lambda: stream_count(stack.nats_port) >= 3, 60, "the alert once JetStream is back",
             interval=0.5)
    wait_for(lambda: pending(stack) == 0, 10, "the pending record cleared")
    msgs = messages(stack)
    gate = [a for _, a in msgs if a["camera"] == "gate"]
    check(len(msgs) == 3 and len(gate) == 1, f"stored once ({len(gate)} for gate)")
    check(m("vigil_dedupe_alerts_recovered_total") == 2, "by the recovery sweep")


def body(stack, args):
    stack.write_config(CONFIG)
    stack.start_nats()
    stack.start_redis()
    crash_after_window(stack)
    crash_after_publish(stack)
    jetstream_away(stack)
    check(stack.procs["dd-c"].stop() == 0, "dd-c drains and exits 0")


if __name__ == "__main__":
    sys.exit(run(body, dump=("dd", "nats")))
