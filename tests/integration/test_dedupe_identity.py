#!/usr/bin/env python3
"""Identity alerts in dedupe, with real nats-server, redis-server,
vigil-dedupe and vigil-notifier (file sink). Detections (with `faces`, the
number of face crops dispatch published for the frame) and FaceMatches are
published by hand with the same Header.trace_id; the alerts stream is read
back directly.

- A known face with its frame's person label: one alert, camera + person,
  with display_name, face_id, the profile and the person window; no
  separate person label alert. The file sink shows name and profile.
- The same person again within person_window_s (the label window over):
  suppressed, and the person label of that frame with it.
- The identity arriving before its detection combines the same way.
- An unknown face while unknown_faces is off: the plain label alert, as
  soon as every face of the frame is answered (a rejected identity answers
  too); no identity at all: the label alert after identity_wait_ms.
- A detection with faces = 0: the label alert at once, no wait.
- unknown_faces on: one unknown-person alert that stands for the label; a
  second stranger inside the person window gets the plain person alert.
- Two replicas, detection and identity of a frame on different ones: still
  one alert per frame (the identity alert's label window is in Redis).
- A label held when dedupe is told to stop is alerted before it exits.
"""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, read_jsonl, run, wait_for  # noqa: E402
from pbframe import detection, face_match  # noqa: E402
from rawio import NatsPub, alert, redis_cmd, stream_messages  # noqa: E402

WINDOW_S = 3
PERSON_WINDOW_S = 3600
WAIT_MS = 1500
REPLICA_FRAMES = 12
CAMERAS = ("porch", "yard", "gate", "door", "garage", "side", "back", "lane",
           *(f"r{i}" for i in range(REPLICA_FRAMES)))
PROFILE = {"song": "Last Christmas", "Bio": "Neighbour from no. 4"}


def config(stack, unknown_faces):
    cams = "".join(f"  - {{ id: {c}, url: /dev/null }}\n" for c in CAMERAS)
    return f"""
log_level: debug
cameras:
{cams}dedupe:
  window_s: {WINDOW_S}
  person_window_s: {PERSON_WINDOW_S}
  identity_wait_ms: {WAIT_MS}
  unknown_faces: {"true" if unknown_faces else "false"}
  health: {{ enabled: false }}
notifier:
  ack_wait_s: 3
  sinks:
    - {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }}
"""


class Bus:
    def __init__(self, stack):
        self.stack = stack
        self.nc = NatsPub(stack.nats_port)

    def det(self, camera, trace, faces, labels=(("person", 0.91),)):
        """Publish a detection; returns the wall-clock time it left, µs."""
        t = int(time.time() * 1e6)
        self.nc.pub(f"vigil.detections.{camera}",
                    detection(camera, list(labels), trace_id=trace, faces=faces,
                              snapshot_ref=f"fs:frames/snap/{trace}.jpg"))
        self.nc.flush()
        return t

    def face(self, camera, trace, person=None, name="", index=0):
        known = person is not None
        self.nc.pub(f"vigil.identities.{camera}",
                    face_match(camera, trace, known, person_id=person or "",
                               display_name=name, similarity=0.93 if known else 0.2,
                               profile=PROFILE if known else None,
                               face_id=f"face-{person}" if known else "", index=index,
                               snapshot_ref=f"fs:frames/faces/{trace}-{index}.jpg"))
        self.nc.flush()


def alerts(stack):
    return [alert(data) for _, data in stream_messages(stack.nats_port)]


def new_alerts(stack, before, n, timeout=10):
    """Wait for n alerts after the first `before`; then make sure no more
    come within the identity wait (plus a margin)."""
    wait_for(lambda: len(alerts(stack)) >= before + n, timeout, f"{n} new alert(s)",
             interval=0.05)
    time.sleep(WAIT_MS / 1000 + 0.7)
    return alerts(stack)[before:]


def trace():
    return uuid.uuid4().hex


def known_face(stack, bus):
    before = len(alerts(stack))
    t = trace()
    bus.det("porch", t, faces=1)
    bus.face("porch", t, "alice", "Alice")
    new = new_alerts(stack, before, 1)
    check(len(new) == 1, f"a known face and its person label: one alert ({len(new)})")
    a = new[0]
    check(a["key"] == "vigil:dd:porch:person:alice" and a["label"] == "person",
          f"keyed camera + person, label person ({a['key']}, {a['label']})")
    check(a["person_id"] == "alice" and a["display_name"] == "Alice" and
          a["face_id"] == "face-alice", "with person_id, display_name and face_id")
    check(a["profile"] == PROFILE, f"and the profile ({a['profile']})")
    check(a["window_s"] == PERSON_WINDOW_S, f"in the person window ({a['window_s']} s)")
    check(a["snapshot_ref"] == f"fs:frames/faces/{t}-0.jpg" and a["trace_id"] == t,
          "with the face crop's snapshot and the frame's trace id")
    owner = redis_cmd(stack.redis_port, "GET", "vigil:dd:porch:label:person")
    check(owner == a["alert_id"], "the identity alert holds the camera's person label window")
    m = stack.metric("dedupe", "vigil_dedupe_person_combined_total")
    check(m == 1, f"counted as one combined sighting ({m:.0f})")
    wait_for(lambda: any(r.get("alert_id") == a["alert_id"]
                         for r in read_jsonl(stack.path("outbox.jsonl"))), 20,
             "the alert in the file sink")
    row = [r for r in read_jsonl(stack.path("outbox.jsonl")) if r["alert_id"] == a["alert_id"]][0]
    check(row["display_name"] == "Alice" and row["profile"] == PROFILE and
          row["face_id"] == "face-alice", "the file sink shows display_name, face_id, profile")


def same_person_again(stack, bus):
    wait_for(lambda: redis_cmd(stack.redis_port, "EXISTS", "vigil:dd:porch:label:person") == 0,
             WINDOW_S + 5, "the person label window to close")
    before = len(alerts(stack))
    t = trace()
    bus.det("porch", t, faces=1)
    bus.face("porch", t, "alice", "Alice")
    time.sleep(WAIT_MS / 1000 + 1.0)
    check(len(alerts(stack)) == before,
          "the same person within person_window_s: no alert, not even the person label")
    check(redis_cmd(stack.redis_port, "EXISTS", "vigil:dd:porch:label:person") == 1,
          "and the label window is open again, so the visit's next frames stay quiet")


def identity_first(stack, bus):
    before = len(alerts(stack))
    t = trace()
    bus.face("garage", t, "bob", "Bob")
    time.sleep(0.2)
    bus.det("garage", t, faces=1)
    new = new_alerts(stack, before, 1)
    check(len(new) == 1 and new[0]["key"] == "vigil:dd:garage:person:bob",
          f"the identity before its detection: one alert, Bob's ({[a['key'] for a in new]})")


def unknown_face_off(stack, bus):
    before = len(alerts(stack))
    t = trace()
    t0 = bus.det("yard", t, faces=1)
    time.sleep(0.1)
    bus.face("yard", t)
    new = new_alerts(stack, before, 1)
    check(len(new) == 1 and new[0]["key"] == "vigil:dd:yard:label:person",
          f"an unknown face, unknown_faces off: the plain label alert ({len(new)})")
    lat = (new[0]["publish_ts_us"] - t0) / 1e6
    check(lat < WAIT_MS / 1000, f"as soon as every face was answered ({lat:.2f} s)")
    check(new[0]["person_id"] == "" and new[0]["window_s"] == WINDOW_S,
          "with no person and the label window")


def rejected_identity(stack, bus):
    before = len(alerts(stack))
    bad = stack.metric("dedupe", "vigil_dedupe_bad_confidence_total")
    t = trace()
    t0 = bus.det("lane", t, faces=1)
    bus.nc.pub("vigil.identities.lane", face_match("lane", t, True, person_id="eve",
                                                   similarity=float("nan")))
    bus.nc.flush()
    new = new_alerts(stack, before, 1)
    check(stack.metric("dedupe", "vigil_dedupe_bad_confidence_total") == bad + 1,
          "an identity with a NaN similarity is rejected")
    lat = (new[0]["publish_ts_us"] - t0) / 1e6
    check(len(new) == 1 and new[0]["key"] == "vigil:dd:lane:label:person" and
          lat < WAIT_MS / 1000, f"but still answers its face: the label alert at once ({lat:.2f} s)")


def no_identity(stack, bus):
    before = len(alerts(stack))
    t0 = bus.det("gate", trace(), faces=1)
    new = new_alerts(stack, before, 1)
    check(len(new) == 1 and new[0]["key"] == "vigil:dd:gate:label:person",
          "faces announced but no identity came: the plain label alert")
    lat = (new[0]["publish_ts_us"] - t0) / 1e6
    check(WAIT_MS / 1000 - 0.05 <= lat < WAIT_MS / 1000 + 0.6,
          f"after identity_wait_ms ({lat:.2f} s for {WAIT_MS} ms)")


def no_faces(stack, bus):
    before = len(alerts(stack))
    held_before = stack.metric("dedupe", "vigil_dedupe_person_held_total")
    t0 = bus.det("door", trace(), faces=0, labels=(("person", 0.9), ("pet", 0.8)))
    wait_for(lambda: len(alerts(stack)) >= before + 2, 5, "the label alerts")
    new = alerts(stack)[before:]
    lat = max(a["publish_ts_us"] - t0 for a in new) / 1e6
    check(sorted(a["label"] for a in new) == ["person", "pet"],
          "faces = 0: the label alerts as before")
    check(lat < 0.5, f"at once, no wait ({lat * 1000:.0f} ms)")
    held = stack.metric("dedupe", "vigil_dedupe_person_held_total") - held_before
    check(held == 0, f"and nothing was held ({held:.0f})")


def unknown_face_on(stack, bus):
    before = len(alerts(stack))
    t = trace()
    bus.det("side", t, faces=1)
    bus.face("side", t)
    new = new_alerts(stack, before, 1)
    check(len(new) == 1, f"unknown_faces on: one alert for the unknown face and label "
          f"({[a['key'] for a in new]})")
    a = new[0]
    check(a["key"] == "vigil:dd:side:person:unknown" and a["label"] == "person" and
          a["person_id"] == "" and a["display_name"] == "" and not a["profile"],
          "keyed camera + unknown, label person, no name or profile")
    check(a["window_s"] == PERSON_WINDOW_S, "in the person window")

    wait_for(lambda: redis_cmd(stack.redis_port, "EXISTS", "vigil:dd:side:label:person") == 0,
             WINDOW_S + 5, "the person label window to close")
    before = len(alerts(stack))
    t = trace()
    bus.det("side", t, faces=1)
    bus.face("side", t)
    new = new_alerts(stack, before, 1)
    check(len(new) == 1 and new[0]["key"] == "vigil:dd:side:label:person",
          "another stranger inside the person window: the plain person alert, not silence")


def two_replicas(stack, bus):
    """Detections and identities share queue group "dedupe": with two
    replicas about half of these frames have their detection on one and
    their identity on the other. The identity alert opens the person label
    window in Redis, so the other replica's held label, decided after its
    wait, is suppressed: still one alert per frame."""
    names = ("dedupe2", "dedupe3")
    stack.start_service("dedupe", name="dedupe3")
    before = len(alerts(stack))
    waited = lambda: sum(stack.metric(n, 'vigil_dedupe_person_alone_total{why="waited"}')  # noqa: E731
                         for n in names)
    waited_before = waited()
    for i in range(REPLICA_FRAMES):
        t = trace()
        bus.det(f"r{i}", t, faces=1)
        bus.face(f"r{i}", t, f"p{i}", f"Person {i}")
    new = new_alerts(stack, before, REPLICA_FRAMES)
    keys = sorted(a["key"] for a in new)
    check(keys == sorted(f"vigil:dd:r{i}:person:p{i}" for i in range(REPLICA_FRAMES)),
          f"two replicas: one identity alert per frame, no label alert ({len(new)} alerts)")
    split = waited() - waited_before
    print(f"# {split:.0f} of {REPLICA_FRAMES} frames had detection and identity on different "
          "replicas (label held out its wait, then suppressed by the window in Redis)",
          flush=True)
    check(stack.procs["dedupe3"].stop() == 0, "the second replica drains and exits 0")


def stop_while_holding(stack, bus):
    before = len(alerts(stack))
    bus.det("back", trace(), faces=1)
    time.sleep(0.2)
    check(stack.procs["dedupe2"].stop() == 0, "dedupe drains and exits 0 with a label held")
    new = alerts(stack)[before:]
    check(len(new) == 1 and new[0]["key"] == "vigil:dd:back:label:person",
          "and the held label was alerted before it exited")


def body(stack, args):
    stack.write_config(config(stack, unknown_faces=False))
    stack.start_nats()
    stack.start_redis()
    stack.start_service("dedupe")
    stack.start_service("notifier")
    bus = Bus(stack)
    check(True, "nats-server, redis-server, dedupe and notifier are up")
    known_face(stack, bus)
    same_person_again(stack, bus)
    identity_first(stack, bus)
    unknown_face_off(stack, bus)
    rejected_identity(stack, bus)
    no_identity(stack, bus)
    no_faces(stack, bus)
    check(stack.procs["dedupe"].stop() == 0, "dedupe drains and exits 0")

    stack.write_config(config(stack, unknown_faces=True))
    stack.start_service("dedupe", name="dedupe2")
    unknown_face_on(stack, bus)
    two_replicas(stack, bus)
    stop_while_holding(stack, bus)


if __name__ == "__main__":
    sys.exit(run(body, dump=("dedupe", "notifier", "nats")))
