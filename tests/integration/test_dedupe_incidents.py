#!/usr/bin/env python3
"""Camera incidents in dedupe, with real nats-server -js, redis-server and
vigil-dedupe. Detections and FaceMatches are published by hand; incidents
are read with `vigilctl tail vigil.incidents.>` (JSON lines), alerts from
the stream.

- A person alert opens an incident: incident_id = its alert id, no
  escalation, incident_count 1, zones from its label; an open Incident.
- 20 suppressed sightings in 2 s: count 21, in a few Incident messages
  (at most one a second), not 20.
- A package on the same camera: an alert of the same incident, escalation
  new_category; a known face: face_recognised; the same face again later
  (its person window over, still inside the incident): no escalation.
- Another camera has its own incident.
- After incident_gap_s without sightings: exactly one closed message each,
  with the final count.
- Two replicas sharing the sightings: one incident, the right count, one
  closed message.
- A replica killed after the join (VIGIL_FAULT=dedupe.after_incident): the
  recovery sweep stores the alert with its incident fields.
- Redis down: the fail-open alert carries no incident.
"""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, read_jsonl, run, wait_for  # noqa: E402
from pbframe import _bytes, _float, _uint, face_match, header  # noqa: E402
from rawio import NatsPub, alert, pb_fields, stream_messages  # noqa: E402

GAP_S = 2
SETTLE_S = 1.5          # DD_INCIDENT_SETTLE_MS
CAMERAS = ("porch", "yard", "lane", "crash", "gate")


def config():
    cams = "".join(f"  - {{ id: {c}, url: /dev/null }}\n" for c in CAMERAS)
    return f"""
log_level: debug
cameras:
{cams}dedupe:
  window_s: 60
  person_window_s: 3
  identity_wait_ms: 0
  incident_gap_s: {GAP_S}
  health: {{ enabled: false }}
"""


def detection(camera, labels, zones=()):
    """A Detection whose labels carry zones (pbframe's has none)."""
    out = _bytes(1, header(camera, trace_id=uuid.uuid4().hex)) + _uint(2, 1) + _bytes(3, "test")
    for name, conf in labels:
        lab = _bytes(1, name) + _float(2, conf)
        for z in zones:
            lab += _bytes(5, z)
        out += _bytes(4, lab)
    return out + _bytes(14, f"fs:frames/snap/{camera}-{uuid.uuid4().hex[:6]}.jpg")


def full_alert(data):
    """rawio's Alert fields and the incident ones (16..19)."""
    a = alert(data)
    f = pb_fields(data)
    a["zones"] = [z.decode() for z in f.get(16, [])]
    a["incident_id"] = f.get(17, [b""])[0].decode()
    a["escalation"] = f.get(18, [b""])[0].decode()
    a["incident_count"] = f.get(19, [0])[0]
    return a


class Scene:
    def __init__(self, stack):
        self.stack = stack
        self.nc = NatsPub(stack.nats_port)
        self.tail = stack.tail("incidents", "vigil.incidents.>")

    def bus(self):
        """rawio's NatsPub stops reading after 5 s without traffic (its
        socket timeout ends the reader thread), so its flush would then
        wait 5 s each time: a new connection after a quiet spell."""
        if not self.nc.reader.is_alive():
            self.nc.close()
            self.nc = NatsPub(self.stack.nats_port)
        return self.nc

    def det(self, camera, label="person", conf=0.8, zones=()):
        self.bus().pub(f"vigil.detections.{camera}", detection(camera, [(label, conf)], zones))
        self.nc.flush()

    def face(self, camera, person, name):
        self.bus().pub(f"vigil.identities.{camera}",
                    face_match(camera, uuid.uuid4().hex, True, person_id=person,
                               display_name=name, similarity=0.93, face_id=f"face-{person}"))
        self.nc.flush()

    def alerts(self, camera=None):
        out = [full_alert(d) for _, d in stream_messages(self.stack.nats_port)]
        return [a for a in out if camera is None or a["camera"] == camera]

    def new_alert(self, camera, before):
        wait_for(lambda: len(self.alerts(camera)) > before, 10, f"an alert of {camera}")
        new = self.alerts(camera)[before:]
        check(len(new) == 1, f"{camera}: one new alert ({len(new)})")
        return new[0]

    def incidents(self, incident_id=None):
        rows = [r["data"] for r in read_jsonl(self.tail)]
        return [r for r in rows if incident_id is None or r["incident_id"] == incident_id]

    def wait_incident(self, incident_id, pred, what, timeout=10):
        wait_for(lambda: any(pred(m) for m in self.incidents(incident_id)), timeout, what)
        return [m for m in self.incidents(incident_id) if pred(m)][-1]


def opened(sc):
    a = sc.new_alert("porch", 0)
    check(a["incident_id"] == a["alert_id"] and a["escalation"] == "" and
          a["incident_count"] == 1,
          f"the first alert opens the incident ({a['incident_id']}, '{a['escalation']}', "
          f"{a['incident_count']})")
    check(a["zones"] == ["drive", "door"], f"and carries its label's zones ({a['zones']})")
    m = sc.wait_incident(a["alert_id"], lambda m: m["open"], "the open Incident")
    check(m["count"] == 1 and m["alerts"] == 1 and m["labels"] == ["person"] and
          m["header"]["camera_id"] == "porch" and m["best_label"] == "person",
          f"an open Incident on vigil.incidents.porch: count 1, labels {m['labels']}")
    return a["alert_id"]


def suppressed(sc, inc):
    before = len(sc.incidents(inc))
    for i in range(20):
        sc.det("porch", conf=0.95 if i == 9 else 0.8)
        time.sleep(0.1)
    m = sc.wait_incident(inc, lambda m: m["count"] == 21, "count 21", timeout=5)
    time.sleep(1.3)
    msgs = sc.incidents(inc)[before:]
    check(len(sc.alerts("porch")) == 1, "20 more sightings in 2 s: suppressed, no alert")
    check(max(x["count"] for x in msgs) == 21 and m["alerts"] == 1,
          f"the incident counts them: 21 sightings, 1 alert ({[x['count'] for x in msgs]})")
    check(len(msgs) <= 4, f"in {len(msgs)} Incident messages (at most one a second), not 20")
    check(abs(m["best_confidence"] - 0.95) < 1e-4 and m["best_snapshot_ref"].startswith(
        "fs:frames/snap/porch-"), "the best snapshot is the most confident sighting's "
        f"({m['best_confidence']:.2f}, {m['best_snapshot_ref']})")


def escalations(sc, inc):
    a = sc.new_alert("porch", 1)
    check(a["label"] == "package" and a["incident_id"] == inc and
          a["escalation"] == "new_category" and a["incident_count"] == 22,
          f"a package: same incident, escalation new_category, count 22 "
          f"({a['incident_id']}, '{a['escalation']}', {a['incident_count']})")
    m = sc.wait_incident(inc, lambda m: m["alerts"] == 2, "the joined Incident")
    check(m["labels"] == ["person", "package"] and m["escalation"] == "new_category",
          f"the Incident lists both categories and the escalation ({m['labels']})")

    sc.face("porch", "alice", "Alice")
    a = sc.new_alert("porch", 2)
    check(a["person_id"] == "alice" and a["incident_id"] == inc and
          a["escalation"] == "face_recognised" and a["incident_count"] == 23,
          f"a known face: escalation face_recognised ('{a['escalation']}', "
          f"{a['incident_count']})")
    m = sc.wait_incident(inc, lambda m: m["alerts"] == 3, "the escalated Incident")
    check(m["person_ids"] == ["alice"] and m["display_names"] == ["Alice"],
          f"the Incident names the person ({m['person_ids']}, {m['display_names']})")

    # Sightings keep the incident (2 s gap) going past the person window (3 s).
    for _ in range(7):
        time.sleep(0.5)
        sc.det("porch")
    sc.face("porch", "alice", "Alice")
    a = sc.new_alert("porch", 3)
    check(a["incident_id"] == inc and a["escalation"] == "",
          f"the same face again in the same incident: no escalation ('{a['escalation']}')")
    # 1 + 20 suppressed + package + Alice + 7 suppressed + Alice again.
    return 31


def other_camera(sc, inc):
    sc.det("yard", label="vehicle")
    a = sc.new_alert("yard", 0)
    check(a["incident_id"] == a["alert_id"] and a["incident_id"] != inc and
          a["escalation"] == "" and a["incident_count"] == 1,
          "another camera has its own incident")
    return a["incident_id"]


def closes(sc, incs):
    for inc, count in incs:
        m = sc.wait_incident(inc, lambda m: not m["open"], f"{inc} closed",
                             timeout=GAP_S + SETTLE_S + 5)
        check(m["count"] == count, f"closed once the gap passed, with count {count} "
              f"({m['count']})")
    time.sleep(GAP_S)
    for inc, _ in incs:
        n = sum(1 for m in sc.incidents(inc) if not m["open"])
        check(n == 1, f"exactly one closed message for {inc} ({n})")
    m = sc.stack.metric("dedupe", "vigil_dedupe_incidents_closed_total")
    check(m == len(incs), f"vigil_dedupe_incidents_closed_total {m:.0f}")


def two_replicas(sc):
    stack = sc.stack
    stack.start_service("dedupe", name="dedupe2")
    names = ("dedupe", "dedupe2")
    opened_before = sum(stack.metric(n, "vigil_dedupe_incidents_opened_total") for n in names)
    sc.det("lane")
    a = sc.new_alert("lane", 0)
    inc = a["incident_id"]
    sc.wait_incident(inc, lambda m: m["open"], "lane's incident")
    sup = [stack.metric(n, "vigil_dedupe_suppressed_total") for n in names]
    for _ in range(30):
        sc.det("lane")
        time.sleep(0.03)
    m = sc.wait_incident(inc, lambda m: not m["open"], "lane's incident closed",
                         timeout=GAP_S + SETTLE_S + 6)
    sup = [stack.metric(n, "vigil_dedupe_suppressed_total") - s for n, s in zip(names, sup)]
    print(f"# suppressed per replica: {sup}", flush=True)
    check(all(s > 0 for s in sup), "both replicas took sightings")
    check(m["count"] == 31, f"two replicas: one incident with count 31 ({m['count']})")
    time.sleep(1.0)
    ids = {x["incident_id"] for x in sc.incidents() if x["header"]["camera_id"] == "lane"}
    closed = sum(1 for x in sc.incidents(inc) if not x["open"])
    opened = sum(stack.metric(n, "vigil_dedupe_incidents_opened_total") for n in names)
    check(ids == {inc} and closed == 1 and opened - opened_before == 1,
          f"one incident id ({len(ids)}), one closed message ({closed}), opened once")
    check(stack.procs["dedupe2"].stop() == 0, "the second replica drains and exits 0")


def crash_after_join(sc):
    stack = sc.stack
    check(stack.procs["dedupe"].stop() == 0, "dedupe drains and exits 0")
    stack.env["VIGIL_FAULT"] = "dedupe.after_incident"
    try:
        p = stack.start_service("dedupe", name="doomed")
    finally:
        stack.env.pop("VIGIL_FAULT", None)
    sc.det("crash")
    wait_for(lambda: not p.alive(), 10, "the replica to die at the test hook")
    check(sc.alerts("crash") == [], "killed after the join: nothing published yet")
    stack.start_service("dedupe", name="dedupe3")
    a = sc.new_alert("crash", 0)       # the sweep, after the 5 s grace
    check(a["incident_id"] == a["alert_id"] and a["incident_count"] == 1,
          f"the recovery sweep stores it as joined (incident {a['incident_id']})")


def redis_down(sc):
    sc.stack.procs["redis"].stop()
    sc.det("gate")
    a = sc.new_alert("gate", 0)
    check(a["fail_open"] and a["incident_id"] == "" and a["escalation"] == "" and
          a["incident_count"] == 0, "Redis down: the fail-open alert has no incident")


def body(stack, args):
    stack.write_config(config())
    stack.start_nats()
    stack.start_redis()
    stack.start_service("dedupe")
    sc = Scene(stack)
    check(True, "nats-server, redis-server and dedupe are up")
    sc.det("porch", zones=("drive", "door"))
    inc = opened(sc)
    suppressed(sc, inc)
    sc.det("porch", label="package", conf=0.7)
    count = escalations(sc, inc)
    yard = other_camera(sc, inc)
    closes(sc, [(inc, count), (yard, 1)])
    two_replicas(sc)
    crash_after_join(sc)
    redis_down(sc)
    rows = read_jsonl(sc.tail)
    check(rows and all(r.get("type") == "vigil.v1.Incident" and
                       r["subject"] == f"vigil.incidents.{r['data']['header']['camera_id']}"
                       for r in rows),
          f"vigilctl tail decoded all {len(rows)} Incidents on vigil.incidents.<camera>")


if __name__ == "__main__":
    sys.exit(run(body, dump=("dedupe", "doomed", "nats")))
