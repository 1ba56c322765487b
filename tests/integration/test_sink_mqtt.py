#!/usr/bin/env python3
"""The mqtt sink against Debian's real mosquitto broker (password file, ACL,
a TLS listener with a certificate made here by openssl, persistence), with
real nats-server, redis-server and vigil-notifier; alerts injected into the
alerts stream as dedupe would, with a real JPEG as file:// snapshot.

- Frigate-shaped topics: <prefix>/events ("new", then "update" for an
  escalation, same id), <prefix>/<camera>/<label> "1", the snapshot bytes on
  <prefix>/<camera>/<label>/snapshot, <prefix>/available "online";
- Home Assistant discovery configs (binary_sensor, camera) retained, for
  configured cameras at connect and for a new camera/label on its first
  alert; the state topic gets "ON";
- retained: availability, discovery, snapshot; not retained: events, count;
- mqtts with the test CA and MQTT 5 at qos 2;
- a wrong password (CONNACK 5), a user the ACL does not let publish
  (MQTT 5 PUBACK 0x87) and a broker certificate we do not trust: RETRY with a long delay, nothing dead-lettered, the
  password never in the logs;
- broker SIGKILLed and restarted: the alert sent meanwhile arrives, once;
- the notifier SIGKILLed: the broker publishes the will "offline"; a clean
  SIGTERM publishes "offline" itself.
"""
import getpass
import json
import os
import signal
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbframe  # noqa: E402
from harness import check, free_port, port_open, run, wait_for  # noqa: E402
from mqtt_sub import RefusedError, Subscriber  # noqa: E402

JPEG = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
PASSWORD = "s3cret-Broker-pw"
WRONG = "wr0ng-Broker-pw"
SUB_PW = "sub-pw"
READER_PW = "reader-pw"


# ---- the broker ----

def make_certs(stack):
    d = stack.path("tls")
    os.makedirs(d)

    def ossl(*args):
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=d)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt",
         "-days", "2", "-subj", "/CN=vigil test CA")
    ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
         "-subj", "/CN=localhost")
    with open(os.path.join(d, "san.ext"), "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    ossl("x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "san.ext")
    return d


def broker_config(stack, port, tls_port, tls):
    pw = stack.path("passwd")
    users = [("vigil", PASSWORD), ("sub", SUB_PW), ("reader", READER_PW)]
    for i, (user, secret) in enumerate(users):
        subprocess.run(["mosquitto_passwd", "-b", *([] if i else ["-c"]), pw, user, secret],
                       check=True, capture_output=True)
    acl = stack.path("acl")
    with open(acl, "w") as f:
        f.write("user vigil\ntopic readwrite #\n\nuser sub\ntopic read #\n\n"
                "user reader\ntopic read #\n")
    os.makedirs(stack.path("mosq-db"), exist_ok=True)
    conf = stack.path("mosquitto.conf")
    with open(conf, "w") as f:
        f.write(f"""user {getpass.getuser()}
per_listener_settings false
allow_anonymous false
password_file {pw}
acl_file {acl}
persistence true
persistence_location {stack.path("mosq-db")}/
autosave_interval 1
log_dest stdout
log_type error
log_type warning
log_type notice
listener {port} 127.0.0.1
listener {tls_port} 127.0.0.1
cafile {tls}/ca.crt
certfile {tls}/server.crt
keyfile {tls}/server.key
""")
    return conf


def start_broker(stack, conf, port, tls_port):
    stack.start("mosquitto", ["mosquitto", "-c", conf])
    wait_for(lambda: port_open(port) and port_open(tls_port), 10, "mosquitto")


# ---- alerts ----

def alert(camera, aid, confidence=0.87, **fields):
    """pbframe's Alert; fields: label, person_id, display_name, profile, zones, ..."""
    return pbframe.alert(camera, aid, confidence=confidence, **fields)


def events(sub, prefix="vigil"):
    return [json.loads(p) for p in sub.payloads(f"{prefix}/events")]


def event_for(sub, aid, prefix="vigil"):
    return [e for e in events(sub, prefix) if e["after"]["alert_id"] == aid]


def config(stack, port, tls_port, tls):
    return f"""
cameras:
  - {{ id: door, url: {stack.path("unused.avi")} }}
  - {{ id: yard, url: {stack.path("unused.avi")} }}
dispatch:
  snapshot_dir: {os.path.dirname(JPEG)}
notifier:
  ack_wait_s: 10
  sinks:
    - {{ name: mq, type: mqtt, url: "mqtt://127.0.0.1:{port}", username: vigil,
         ha_discovery: true, ha_off_delay_s: 45, timeout_ms: 2000, retries: 0,
         redeliver_min_s: 1, redeliver_max_s: 2 }}
    - {{ name: mqs, type: mqtt, url: "mqtts://localhost:{tls_port}", username: vigil,
         ca_file: {tls}/ca.crt, topic_prefix: vtls, protocol: "5", qos: 2, snapshot: false,
         timeout_ms: 2000, retries: 0, redeliver_min_s: 1, redeliver_max_s: 2 }}
    - {{ name: bad, type: mqtt, url: "mqtt://127.0.0.1:{port}", username: vigil,
         password: {WRONG}, topic_prefix: bad, timeout_ms: 2000, retries: 0 }}
    - {{ name: untrusted, type: mqtt, url: "mqtts://localhost:{tls_port}", username: vigil,
         topic_prefix: untrusted, timeout_ms: 2000, retries: 0 }}
    - {{ name: acl, type: mqtt, url: "mqtt://127.0.0.1:{port}", username: reader,
         password: {READER_PW}, topic_prefix: acl, protocol: "5", timeout_ms: 2000,
         retries: 0 }}
"""


def metric(stack, family, sink):
    return stack.metric("notifier", f'{family}{{sink="{sink}"}}')


# ---- the cases ----

def first_alert(stack, live, jpeg):
    aid = "a" + uuid.uuid4().hex[:16]
    stack.publish_alert("door", alert("door", aid, display_name="Alice", person_id="p-alice",
                                 profile={"role": "family"}, zones=["porch", "drive"],
                                 incident_id=aid, snapshot_url="file://" + JPEG,
                                 clip_url="http://console.local/clips/door/1"))
    wait_for(lambda: event_for(live, aid), 10, "the event on vigil/events")
    [e] = event_for(live, aid)
    a = e["after"]
    check(e["type"] == "new" and e["before"] == a, "type new, before equals after")
    check(a["id"] == aid and a["camera"] == "door" and a["label"] == "person" and
          a["sub_label"] == "Alice", f"id, camera, label, sub_label: {a}")
    check(abs(a["top_score"] - 0.87) < 1e-6 and abs(a["score"] - 0.87) < 1e-6,
          "top_score and score are the confidence")
    check(abs(a["start_time"] - time.time()) < 30 and isinstance(a["start_time"], float),
          f"start_time in epoch seconds ({a['start_time']})")
    check(a["current_zones"] == ["porch", "drive"] and a["entered_zones"] == ["porch", "drive"],
          "current_zones and entered_zones are the alert's zones")
    check(a["has_snapshot"] is True and a["has_clip"] is True and a["end_time"] is None and
          a["false_positive"] is False, "has_snapshot, has_clip, end_time null")
    check(a["alert_id"] == aid and a["incident_id"] == aid and a["escalation"] is None and
          a["person_id"] == "p-alice" and a["profile"] == {"role": "family"} and
          a["snapshot_url"] in (None, "") and  # a server path is never shown
          a["clip_url"] == "http://console.local/clips/door/1", "vigil's own fields")
    check(e["title"] == "Alice at door" and "Alice" in e["text"], f"title/text: {e['title']!r}")
    wait_for(lambda: live.payloads("vigil/door/person/snapshot"), 5, "the snapshot")
    check(live.payloads("vigil/door/person/snapshot")[-1] == jpeg,
          f"vigil/door/person/snapshot is the JPEG ({len(jpeg)} bytes)")
    check(live.payloads("vigil/door/person") == [b"1"], "vigil/door/person says 1")
    check(live.payloads("vigil/door/person/state") == [b"ON"], "the HA state topic says ON")
    wait_for(lambda: event_for(live, aid, "vtls"), 10, "the event over mqtts")
    check(event_for(live, aid, "vtls")[0]["after"]["id"] == aid,
          "mqtts (test CA, MQTT 5, qos 2) delivers the same event")
    check(not live.got("vtls/door/person/snapshot"), "snapshot: false sends no picture")
    return aid


def escalation(stack, live, first):
    aid = "e" + uuid.uuid4().hex[:16]
    stack.publish_alert("door", alert("door", aid, display_name="Alice", person_id="p-alice",
                                 incident_id=first, escalation="face_recognised"))
    wait_for(lambda: event_for(live, aid), 10, "the escalation's event")
    [e] = event_for(live, aid)
    check(e["type"] == "update" and e["after"]["id"] == first and e["before"]["id"] == first,
          "an escalation is an update with the incident's id")
    check(e["before"]["sub_label"] is None and e["after"]["sub_label"] == "Alice" and
          e["after"]["escalation"] == "face_recognised", "before: unknown; after: Alice")


def discovery(stack, live, port, jpeg):
    aid = "v" + uuid.uuid4().hex[:16]
    stack.publish_alert("yard", alert("yard", aid, label="vehicle", confidence=0.6,
                                 snapshot_url="file://" + JPEG))
    wait_for(lambda: event_for(live, aid), 10, "the yard event")
    fresh = Subscriber(port, "it-fresh", ["vigil/#", "homeassistant/#"], "sub", SUB_PW)
    time.sleep(1.0)
    fresh.close()
    retained = {m[0]: m[1] for m in fresh.got() if m[2]}
    print(f"# retained: {sorted(retained)}", flush=True)
    check(retained.get("vigil/available") == b"online", "vigil/available online, retained")
    bs = json.loads(retained["homeassistant/binary_sensor/vigil_door/person/config"])
    check(bs == {"name": "person", "unique_id": "vigil_door_person_occupancy",
                 "state_topic": "vigil/door/person/state", "availability_topic":
                 "vigil/available", "payload_on": "ON", "payload_off": "OFF",
                 "device_class": "occupancy", "off_delay": 45,
                 "device": {"identifiers": ["vigil_door"], "name": "door",
                            "manufacturer": "vigil", "model": "camera"}},
          f"binary_sensor config of a configured camera: {bs}")
    cam = json.loads(retained["homeassistant/camera/vigil_door/person_snapshot/config"])
    check(cam["topic"] == "vigil/door/person/snapshot" and
          cam["unique_id"] == "vigil_door_person_snapshot" and
          cam["device"]["identifiers"] == ["vigil_door"], f"camera entity config: {cam}")
    check("homeassistant/binary_sensor/vigil_yard/person/config" in retained,
          "every configured camera gets its person sensor at connect")
    v = json.loads(retained.get("homeassistant/binary_sensor/vigil_yard/vehicle/config", "{}"))
    check(v.get("state_topic") == "vigil/yard/vehicle/state",
          "a new camera/label pair is announced on its first alert")
    check(retained.get("vigil/door/person/snapshot") == jpeg and
          retained.get("vigil/yard/vehicle/snapshot") == jpeg, "snapshots retained")
    check(not any(t.endswith("/events") or t in ("vigil/door/person", "vigil/yard/vehicle")
                  for t in retained), "events and counts are not retained")


def refused(stack, live):
    wait_for(lambda: metric(stack, "vigil_notifier_retry_later_total", "bad") >= 1 and
             metric(stack, "vigil_notifier_retry_later_total", "acl") >= 1 and
             metric(stack, "vigil_notifier_retry_later_total", "untrusted") >= 1, 10,
             "the refused sinks handing alerts back")
    time.sleep(1)
    for sink in ("bad", "acl", "untrusted"):
        check(metric(stack, "vigil_notifier_dead_letters_total", sink) == 0 and
              metric(stack, "vigil_notifier_delivered_total", sink) == 0,
              f"{sink}: nothing delivered, nothing dead-lettered")
    log = stack.procs["notifier"].text()
    bad = [json.loads(x) for x in log.splitlines()
           if x.startswith("{") and '"alert.retry_later"' in x and "sink bad" in x]
    check(bad and "not authorised" in bad[0]["msg"] and "next delivery in 60.0 s" in bad[0]["msg"],
          f"wrong password: CONNACK 5, retried in 60 s: {bad[0]['msg'] if bad else log[-2000:]}")
    acl = [x for x in log.splitlines() if '"alert.retry_later"' in x and "sink acl" in x]
    check(acl and "Not authorized" in acl[0] and "(reason 135)" in acl[0],
          f"publish refused by the ACL (MQTT 5 PUBACK 0x87): {acl[:1]}")
    tls = [x for x in log.splitlines() if '"alert.retry_later"' in x and "sink untrusted" in x]
    check(tls and "certificate verify failed" in tls[0] and "in 60.0 s" in tls[0],
          f"a certificate the system does not trust: retried in 60 s: {tls[:1]}")
    check(PASSWORD not in log and WRONG not in log and READER_PW not in log,
          "no password in the notifier's log")
    check(not live.got("acl/events") and not live.got("bad/events") and
          not live.got("untrusted/events"),
          "the broker passed nothing of theirs on")


def broker_restart(stack, live, conf, port, tls_port):
    time.sleep(1.5)                 # the subscriber's session autosaved
    stack.procs["mosquitto"].stop(signal.SIGKILL)
    wait_for(lambda: '"sink mq: mqtt://' in stack.procs["notifier"].text(), 5,
             "the notifier noticing")
    retries0 = metric(stack, "vigil_notifier_retry_later_total", "mq")
    aid = "r" + uuid.uuid4().hex[:16]
    stack.publish_alert("door", alert("door", aid))
    wait_for(lambda: metric(stack, "vigil_notifier_retry_later_total", "mq") > retries0, 10,
             "the alert handed back while the broker is down")
    online0 = len(live.payloads("vigil/available"))
    start_broker(stack, conf, port, tls_port)
    t0 = time.time()
    wait_for(lambda: event_for(live, aid), 20, "the alert once the broker is back")
    print(f"# broker back: the alert arrived {time.time() - t0:.1f}s later", flush=True)
    time.sleep(2)
    check(len(event_for(live, aid)) == 1, "the alert sent during the outage arrives once")
    check(live.payloads("vigil/available")[online0:].count(b"online") >= 1,
          "online again after the reconnect")


def will_and_goodbye(stack, live):
    n = len(live.payloads("vigil/available"))
    stack.procs["notifier"].stop(signal.SIGKILL)
    wait_for(lambda: b"offline" in live.payloads("vigil/available")[n:], 5,
             "the will after SIGKILL")
    check(True, "SIGKILL: the broker published the will \"offline\"")
    stack.start_service("notifier")
    wait_for(lambda: live.payloads("vigil/available")[-1:] == [b"online"], 10, "online again")
    n = len(live.payloads("vigil/available"))
    rc = stack.procs["notifier"].stop(signal.SIGTERM)
    check(rc == 0, f"SIGTERM: notifier exits 0 ({rc})")
    wait_for(lambda: b"offline" in live.payloads("vigil/available")[n:], 5, "goodbye offline")
    check(True, "SIGTERM: the notifier published \"offline\" before disconnecting")


def body(stack, args):
    with open(JPEG, "rb") as f:
        jpeg = f.read()
    port, tls_port = free_port(), free_port()
    tls = make_certs(stack)
    conf = broker_config(stack, port, tls_port, tls)
    start_broker(stack, conf, port, tls_port)
    try:
        Subscriber(port, "it-nobody", ["#"], "sub", "not-it").close()
        check(False, "the broker refuses a wrong password")
    except RefusedError:
        check(True, "the broker refuses a wrong password")
    live = Subscriber(port, "it-live", ["vigil/#", "vtls/#", "homeassistant/#", "bad/#",
                                        "acl/#", "untrusted/#"], "sub", SUB_PW, clean=False, reconnect=True)
    wait_for(live.subscribed.is_set, 5, "SUBACK")
    stack.start_nats()
    stack.start_redis()
    stack.write_config(config(stack, port, tls_port, tls))
    stack.env["VIGIL_SINK_MQ_PASSWORD"] = PASSWORD
    stack.env["VIGIL_SINK_MQS_PASSWORD"] = PASSWORD
    stack.env["VIGIL_SINK_UNTRUSTED_PASSWORD"] = PASSWORD
    stack.start_service("notifier")
    try:
        first = first_alert(stack, live, jpeg)
        escalation(stack, live, first)
        discovery(stack, live, port, jpeg)
        refused(stack, live)
        broker_restart(stack, live, conf, port, tls_port)
        will_and_goodbye(stack, live)
    finally:
        live.close()


if __name__ == "__main__":
    sys.exit(run(body, dump=("notifier", "mosquitto")))
