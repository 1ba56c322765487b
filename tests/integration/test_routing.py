#!/usr/bin/env python3
"""Routing, arming, rate limits and the incidents policy, end to end: real
nats-server -js, redis-server, vigil-notifier, vigilctl, a file sink and a
webhook. Every alert a sink does not get is a SKIPPED delivery that says why.

- armed `away`, a person alert reaches two sinks (file and webhook); armed
  `home`, one; the webhook's delivery says "arm_mode" and why;
- the arm mode is in /metrics, survives a notifier restart (Redis), and an
  unknown mode is refused by vigilctl with the list of modes;
- quiet hours: the skipped delivery says "quiet_hours";
- a rate limit of 2 per 6 s sends 2 of 5 alerts, says "rate_limit" for the
  other 3, and one summary of the 3 follows once a slot frees;
- incidents: a `first` sink gets only an incident's first alert, an
  `escalate` sink the first and exactly one escalation.
"""
import os
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbframe  # noqa: E402
from harness import Webhook, check, read_jsonl, run, wait_for  # noqa: E402

SECRET = "routing-secret"


def config(stack, hook):
    files = {n: stack.path(f"{n}.jsonl") for n in ("outbox", "quiet", "sms", "first", "phone")}
    return f"""
timezone: UTC
cameras:
  - {{ id: door, url: /dev/null }}
  - {{ id: yard, url: /dev/null }}
  - {{ id: porch, url: /dev/null }}
routing:
  mode: home
  modes: [night]
  rules:
    - {{ name: away-all, modes: [away], cameras: [door], labels: [person],
         sinks: [outbox, hook] }}
    - {{ name: home-log, modes: [home], cameras: [door], labels: [person], sinks: [outbox] }}
    - {{ name: hush, cameras: [door], sinks: [quiet],
         quiet_hours: {{ from: "00:00", to: "00:00" }} }}
    - {{ name: yard-sms, cameras: [yard], sinks: [sms] }}
    - {{ name: porch, cameras: [porch], sinks: [first, phone] }}
notifier:
  ack_wait_s: 5
  sinks:
    - {{ name: outbox, type: file, path: {files["outbox"]} }}
    - {{ name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/a", secret: {SECRET},
         timeout_ms: 1500, retries: 0 }}
    - {{ name: quiet, type: file, path: {files["quiet"]} }}
    - {{ name: sms, type: file, path: {files["sms"]}, rate_limit: 2/6s }}
    - {{ name: first, type: file, path: {files["first"]}, incidents: first }}
    - {{ name: phone, type: file, path: {files["phone"]}, incidents: escalate }}
""", files


def publish(stack, camera, **kw):
    aid = kw.pop("alert_id", None) or "r" + uuid.uuid4().hex[:16]
    # label, person_id, incident_id, escalation: the fields routing looks at
    stack.publish_alert(camera, pbframe.alert(camera, aid, window_s=0, **kw))
    return aid


def ids(path):
    return [a.get("alert_id") for a in read_jsonl(path)]


def deliveries(path, alert_id, sink):
    out = [x.get("data", x) for x in read_jsonl(path)]
    return [d for d in out if d.get("alert_id") == alert_id and d.get("sink") == sink]


def skipped(path, alert_id, sink):
    for d in deliveries(path, alert_id, sink):
        if d.get("outcome") in ("SKIPPED", 5):
            return d
    return None


def wait_skip(dpath, alert_id, sink, reason, note_part):
    wait_for(lambda: skipped(dpath, alert_id, sink), 10, f"{sink} skip of {alert_id}")
    d = skipped(dpath, alert_id, sink)
    check(d.get("reason") == reason, f"{sink} {alert_id}: reason {d.get('reason')!r}, "
                                     f"want {reason!r} ({d})")
    check(note_part in d.get("note", ""), f"{sink} {alert_id}: note {d.get('note')!r} lacks "
                                          f"{note_part!r}")


def arm(stack, mode, want_rc=0):
    p = stack.vigilctl("arm", mode)
    check(p.returncode == want_rc, f"vigilctl arm {mode}: rc {p.returncode}: "
                                   f"{p.stdout.decode()}{p.stderr.decode()}")
    return p


def mode_metric(stack, mode):
    return stack.metric("notifier", f'vigil_notifier_arm_mode{{mode="{mode}"}}')


def body(stack, args):
    hook = Webhook(SECRET)
    text, files = config(stack, hook)
    stack.write_config(text)
    stack.start_nats()
    stack.start_redis()
    stack.start_service("notifier")
    dpath = stack.tail("deliveries", "deliveries")
    check(mode_metric(stack, "home") == 1, "the configured default mode is home")

    # Away: two sinks. Home: one, and the webhook's delivery says why.
    arm(stack, "away")
    wait_for(lambda: mode_metric(stack, "away") == 1, 5, "arm mode away in /metrics")
    a1 = publish(stack, "door")
    wait_for(lambda: a1 in ids(files["outbox"]) and a1 in hook.ids(), 10, "away: both sinks")
    arm(stack, "home")
    wait_for(lambda: mode_metric(stack, "home") == 1, 5, "arm mode home in /metrics")
    a2 = publish(stack, "door")
    wait_for(lambda: a2 in ids(files["outbox"]), 10, "home: the file sink")
    wait_skip(dpath, a2, "hook", "arm_mode", "arm mode is home; away-all sends to hook only in away")
    check(a2 not in hook.ids(), "home: the webhook got nothing")
    print("ok: away sends to two sinks, home to one; the skip says arm_mode")

    # Quiet hours all day long on the quiet sink.
    wait_skip(dpath, a1, "quiet", "quiet_hours", "hush: quiet hours 00:00-00:00")
    check(not ids(files["quiet"]), "the quiet sink stayed quiet")
    print("ok: quiet hours")

    # The mode survives a restart; unknown modes are refused.
    p = arm(stack, "party", want_rc=2)
    check(b"modes: off, home, away, night" in p.stderr, f"arm party: {p.stderr!r}")
    shown = stack.vigilctl("arm").stdout.decode()
    check(shown.startswith("home (set by vigilctl@"), f"vigilctl arm shows {shown!r}")
    stack.procs["notifier"].stop()
    stack.start_service("notifier")
    check(mode_metric(stack, "home") == 1 and mode_metric(stack, "away") == 0,
          "the arm mode came back from Redis after a restart")
    print("ok: arm mode in Redis, shown by vigilctl arm, unknown mode refused")

    # Rate limit 2/6s: 2 of 5 go out, 3 are held back, one summary follows.
    t0 = time.time()
    yard = [publish(stack, "yard") for _ in range(5)]
    wait_for(lambda: all(skipped(dpath, a, "sms") or a in ids(files["sms"]) for a in yard), 10,
             "all five yard alerts decided")
    sent = [a for a in yard if a in ids(files["sms"])]
    check(len(sent) == 2, f"2 of 5 sent under 2/6s, got {len(sent)}")
    for a in yard:
        if a not in sent:
            wait_skip(dpath, a, "sms", "rate_limit", "rate limit 2/6s of sink sms")
    wait_for(lambda: any(x.get("kind") == "summary" for x in read_jsonl(files["sms"])), 15,
             "the summary")
    summary = [x for x in read_jsonl(files["sms"]) if x.get("kind") == "summary"]
    check(len(summary) == 1 and summary[0]["held_back"] == 3,
          f"one summary of 3 held back: {summary}")
    check(time.time() - t0 >= 5.5, "the summary waited for a free slot")
    check("held back 3 alerts" in summary[0]["text"], f"summary text {summary[0]['text']!r}")
    check(stack.metric("notifier", 'vigil_notifier_skipped_total{sink="sms",reason="rate_limit"}')
          == 3, "skipped counter by reason")
    time.sleep(3)
    check(len([x for x in read_jsonl(files["sms"]) if x.get("kind") == "summary"]) == 1,
          "exactly one summary")
    print("ok: rate limit 2/6s: 2 sent, 3 skipped with reasons, one summary of 3")

    # Incidents: first = the first alert only; escalate = first + one escalation.
    i1 = publish(stack, "porch")
    i1b = publish(stack, "porch", incident_id="")  # no incident: stands alone
    inc = "inc" + uuid.uuid4().hex[:8]
    j1 = publish(stack, "porch", alert_id=inc, incident_id=inc)
    j2 = publish(stack, "porch", incident_id=inc)
    j3 = publish(stack, "porch", label="package", incident_id=inc, escalation="new_category")
    j4 = publish(stack, "porch", person_id="jesper", incident_id=inc, escalation="face_recognised")
    wait_for(lambda: all(skipped(dpath, a, s) or a in ids(files[s])
                         for a in (i1, i1b, j1, j2, j3, j4) for s in ("first", "phone")), 10,
             "the porch alerts decided")
    check(ids(files["first"]) == [i1, i1b, j1], f"first: {ids(files['first'])}")
    check(ids(files["phone"]) == [i1, i1b, j1, j3], f"phone: {ids(files['phone'])}")
    wait_skip(dpath, j2, "first", "incident", f"part of incident {inc}")
    wait_skip(dpath, j3, "first", "incident", "takes only its first alert (incidents: first)")
    wait_skip(dpath, j2, "phone", "incident", "one escalation (incidents: escalate)")
    wait_skip(dpath, j4, "phone", "incident", "escalated to sink phone once already")
    print("ok: incidents: first gets the first alert, escalate one escalation more")
    hook.close()


if __name__ == "__main__":
    sys.exit(run(body, dump=("notifier",)))
