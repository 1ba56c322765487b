#!/usr/bin/env python3
"""The sns and iot sinks end to end: nats-server -js, redis-server and
vigil-notifier with an SNS topic sink, an SNS SMS sink and an IoT sink,
against the SigV4-checking AWS fake (tests/fakes/fake_aws.py).

- an alert (snapshot, clip link, a known person) reaches the topic with its
  TopicArn, a Subject cut below 100 characters, the Message, the String
  attributes camera/label/person_id/kind; the SMS with its text cut to 1600
  characters, the links kept and SMSType; IoT with the alert JSON on
  vigil/<camera>/alerts with qos=1; every request signed (the fake verifies),
  the SMS sink through its own endpoint key;
- throttling beyond the client's own retries is retried through JetStream
  and delivered once;
- InvalidParameter, AuthorizationError (SNS), ForbiddenException (IoT) and an
  unknown topic (NotFound) are dead-lettered with AWS's code and message;
- bad configurations are refused at load, naming the problem.
"""
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbframe  # noqa: E402
from harness import check, run, wait_for  # noqa: E402

CAM = "front-door"
KEY, SECRET = "AKIDVIGILSINK", "sink/secret+key"
TOPIC = "arn:aws:sns:us-east-1:123456789012:vigil-alerts"
MISSING_TOPIC = "arn:aws:sns:eu-west-1:999999999999:nope"
PHONE = "+14155550199"
SUBJECT_TAIL = "ü" * 110               # makes the title far longer than 99 characters


class Fake:
    def __init__(self, port):
        self.port = port

    def call(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(f"http://127.0.0.1:{self.port}{path}", data=data,
                                     method=method, headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read() or b"null")

    def sns(self):
        return self.call("GET", "/_fake/sns")

    def iot(self):
        return self.call("GET", "/_fake/iot")

    def requests(self, api):
        return self.call("GET", f"/_fake/requests?api={api}")

    def fail(self, api, count, status, code=None, message=None):
        self.call("POST", "/_fake/fail", {"api": api, "count": count, "status": status,
                                          "code": code, "message": message})


def start_fake(stack, src):
    return Fake(stack.start_port_file("fake_aws", [
        "python3", os.path.join(src, "tests", "fakes", "fake_aws.py"), "--access-key", KEY,
        "--secret-key", SECRET]))


def aws_env(stack, fake):
    env = {k: v for k, v in stack.env.items() if not k.startswith("AWS_")}
    env.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{fake.port}", AWS_ACCESS_KEY_ID=KEY,
               AWS_SECRET_ACCESS_KEY=SECRET, AWS_REGION="us-east-1",
               AWS_EC2_METADATA_DISABLED="true", AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
               AWS_CONFIG_FILE="/nonexistent")
    return env


def config(stack, fake, extra=""):
    common = "retries: 0, redeliver_min_s: 1, redeliver_max_s: 2, incidents: all"
    return f"""
cameras:
  - {{ id: {CAM}, url: {stack.path("unused.avi")} }}
notifier:
  sinks:
    - {{ name: mail, type: sns, topic_arn: "{TOPIC}", {common},
         title: "{{label}} at {{camera}} {SUBJECT_TAIL}",
         text: "Person detected, check em out at: {{clip_url}} [{{alert_id}}]" }}
    - {{ name: sms, type: sns, phone_number: "{PHONE}", {common},
         endpoint: "http://localhost:{fake.port}/", text: "{{display_name}}" }}
    - {{ name: iot, type: iot, {common} }}
{extra}"""


def alert(aid, person_id="p-42", display_name="Jesper", snapshot_url="", clip_url=""):
    """A face alert as dedupe publishes it."""
    return pbframe.alert(CAM, aid, confidence=0.93, key=f"vigil:dd:{CAM}:person:{person_id}",
                         person_id=person_id, display_name=display_name,
                         snapshot_url=snapshot_url, clip_url=clip_url)


def new_id(prefix):
    return f"{prefix}{uuid.uuid4().hex[:12]}"


def sns_for(fake, aid, topic=None):
    """The SNS messages of one alert: the topic ones carry the id in the text,
    SMS ones in the display name."""
    return [m for m in fake.sns() if aid in m["Message"] and
            (topic is None or m.get("TopicArn") == topic or m.get("PhoneNumber") == topic)]


def iot_for(fake, aid):
    return [m for m in fake.iot() if json.loads(m["payload"]).get("alert_id") == aid]


def dead_letters(stack):
    r = stack.vigilctl("dlq", "list", "--json")
    return [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]


def counter(stack, family, sink):
    return stack.metric("notifier", f'{family}{{sink="{sink}"}}')


# ---- steps ----------------------------------------------------------------------------


def delivered_everywhere(stack, fake):
    aid = new_id("ok")
    jpeg = stack.path("snap.jpg")
    with open(jpeg, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0fake-jpeg\xff\xd9")
    snap = f"http://127.0.0.1:8080/api/snapshots/{aid}.jpg"
    clip = f"https://vigil.example/clips/{CAM}?t=1700000000&a={aid}"
    long_name = "é" * 1700 + aid        # the SMS template is {display_name}
    stack.publish_alert(CAM, alert(aid, display_name=long_name, snapshot_url=snap, clip_url=clip))
    wait_for(lambda: sns_for(fake, aid, TOPIC) and iot_for(fake, aid) and
             [m for m in fake.sns() if m.get("PhoneNumber") == PHONE and clip in m["Message"]],
             15, "the alert at the topic, the phone and IoT")

    [m] = sns_for(fake, aid, TOPIC)
    want_subject = f"person at {CAM} {SUBJECT_TAIL}"[:98] + "…"
    check(m["TopicArn"] == TOPIC and m["PhoneNumber"] is None, "published to the topic ARN")
    check(m["Subject"] == want_subject and len(m["Subject"]) == 99,
          f"Subject cut to 99 characters at a character boundary, ending in '…' "
          f"({len(m['Subject'])})")
    check(m["Message"] == f"Person detected, check em out at: {clip} [{aid}]\nSnapshot: {snap}",
          f"Message: the seed-000 template filled in, the snapshot link appended: "
          f"{m['Message'][-120:]!r}")
    attrs = {k: (v["DataType"], v["StringValue"]) for k, v in m["MessageAttributes"].items()}
    check(attrs == {"camera": ("String", CAM), "label": ("String", "person"),
                    "person_id": ("String", "p-42"), "kind": ("String", "alert")},
          f"String message attributes for filter policies: {attrs}")

    sms = [x for x in fake.sns() if x.get("PhoneNumber") == PHONE and clip in x["Message"]]
    check(len(sms) == 1, "one SMS")
    text = sms[0]["Message"]
    links = f"\nClip: {clip}\nSnapshot: {snap}"
    check(len(text) == 1600 and text.endswith("..." + links) and
          text.startswith("é" * 1000),
          f"SMS cut to 1600 characters with '...', the links kept ({len(text)} characters)")
    check(sms[0]["Subject"] is None and sms[0]["TopicArn"] is None, "an SMS has no subject")
    check({k: v["StringValue"] for k, v in sms[0]["MessageAttributes"].items()} ==
          {"AWS.SNS.SMS.SMSType": "Transactional"}, "SMS: SMSType Transactional only")

    [i] = iot_for(fake, aid)
    body = json.loads(i["payload"])
    check(i["topic"] == f"vigil/{CAM}/alerts" and i["qos"] == 1 and i["query"] == "qos=1",
          f"IoT topic vigil/<camera>/alerts with qos=1: {i['topic']} {i['query']}")
    check(body["camera"] == CAM and body["person_id"] == "p-42" and body["clip_url"] == clip and
          body["snapshot_url"] == snap, "IoT payload: the alert JSON")

    reqs = fake.requests("sns.Publish") + fake.requests("iotdata.Publish")
    check(reqs and all(r["signed_ok"] for r in reqs),
          f"all {len(reqs)} requests carry a valid SigV4 signature (the fake recomputed it)")
    hosts = {r["headers"].get("Host") for r in fake.requests("sns.Publish")}
    check(hosts == {f"127.0.0.1:{fake.port}", f"localhost:{fake.port}"},
          f"the sms sink's endpoint key is used, the topic sink AWS_ENDPOINT_URL: {hosts}")


def throttled_then_delivered(stack, fake):
    """More Throttled answers than the client's 3 attempts per delivery: the
    first delivery of both SNS sinks fails (6 requests), JetStream
    redelivers, the fake stops throttling, each gets the alert once."""
    r0 = {s: counter(stack, "vigil_notifier_retry_later_total", s) for s in ("mail", "sms", "iot")}
    fake.fail("sns.Publish", 7, 429)
    fake.fail("iotdata.Publish", 3, 429)
    aid = new_id("thr")
    stack.publish_alert(CAM, alert(aid, display_name=aid))
    wait_for(lambda: len(sns_for(fake, aid)) >= 2 and iot_for(fake, aid), 20,
             "the throttled alert delivered")
    time.sleep(1.5)
    got = sns_for(fake, aid)
    check(len(got) == 2 and {m.get("TopicArn") or m.get("PhoneNumber") for m in got} ==
          {TOPIC, PHONE} and len(iot_for(fake, aid)) == 1, "delivered once to each sink")
    throttled = [r for r in fake.requests("*.Publish") if r["status"] == 429]
    check(len(throttled) == 10, f"the fake throttled 10 requests ({len(throttled)})")
    for s in ("mail", "sms", "iot"):
        d = counter(stack, "vigil_notifier_retry_later_total", s) - r0[s]
        check(d >= 1, f"{s}: handed back to JetStream after the client's retries ({d:.0f})")


def permanent_errors(stack, fake):
    """One request per SNS sink (a 400/403 is not retried), so the two faults
    meet one request of each; IoT refuses the policy."""
    fake.fail("sns.Publish", 2, 400, "InvalidParameter", "Invalid parameter: Message")
    fake.fail("iotdata.Publish", 1, 403, "ForbiddenException", "Not authorized to publish")
    aid = new_id("bad")
    stack.publish_alert(CAM, alert(aid, display_name=aid))
    wait_for(lambda: len([d for d in dead_letters(stack) if d["alert_id"] == aid]) == 3, 15,
             "three dead letters")
    rows = {d["sink"]: d["error"] for d in dead_letters(stack) if d["alert_id"] == aid}
    check("InvalidParameter: Invalid parameter: Message" in rows["mail"] and
          "topic vigil-alerts" in rows["mail"], f"InvalidParameter dead-lettered: {rows['mail']}")
    check("InvalidParameter" in rows["sms"] and "+14*******99" in rows["sms"] and
          PHONE not in rows["sms"], f"SMS: dead-lettered, the number masked: {rows['sms']}")
    check("ForbiddenException: Not authorized to publish" in rows["iot"] and
          f"vigil/{CAM}/alerts" in rows["iot"], f"IoT 403 dead-lettered: {rows['iot']}")
    check(not sns_for(fake, aid) and not iot_for(fake, aid), "nothing was published")
    n = len([r for r in fake.requests("*.Publish")
             if r["status"] in (400, 403) and r["error_code"] != "Throttled"])
    check(n == 3, f"each sink asked once, no retry of a permanent error ({n})")

    fake.fail("sns.Publish", 2, 403, "AuthorizationError",
              "User is not authorized to perform: SNS:Publish")
    aid = new_id("auth")
    stack.publish_alert(CAM, alert(aid, display_name=aid))
    wait_for(lambda: len([d for d in dead_letters(stack) if d["alert_id"] == aid]) == 2, 15,
             "AuthorizationError dead-lettered")
    rows = {d["sink"]: d["error"] for d in dead_letters(stack) if d["alert_id"] == aid}
    check(all("AuthorizationError: User is not authorized" in e for e in rows.values()),
          f"AuthorizationError with AWS's message: {rows}")


def unknown_topic(stack, fake):
    stack.procs["notifier"].stop()
    stack.write_config(config(stack, fake, f"""    - {{ name: nowhere, type: sns, retries: 0,
         topic_arn: "{MISSING_TOPIC}" }}
"""))
    stack.start_service("notifier")
    aid = new_id("nf")
    stack.publish_alert(CAM, alert(aid, display_name=aid))
    wait_for(lambda: any(d["alert_id"] == aid and d["sink"] == "nowhere"
                         for d in dead_letters(stack)), 15, "the unknown topic dead-lettered")
    [row] = [d for d in dead_letters(stack) if d["alert_id"] == aid]
    check("NotFound: Topic does not exist" in row["error"] and "HTTP 404" in row["error"],
          f"unknown topic: {row['error']}")
    wait_for(lambda: len(sns_for(fake, aid)) == 2, 10, "the other sinks unaffected")


def refused_at_load(stack, fake):
    cases = [
        ('{ name: x, type: sns, topic_arn: "%s", phone_number: "%s" }' % (TOPIC, PHONE),
         "exactly one of topic_arn"),
        ("{ name: x, type: sns }", "exactly one of topic_arn"),
        ('{ name: x, type: sns, phone_number: "+1 415 555 0123" }', "not E.164"),
        ('{ name: x, type: sns, phone_number: "4155550123" }', "not E.164"),
        ('{ name: x, type: sns, topic_arn: "vigil-alerts" }', "is not the ARN"),
        ('{ name: x, type: sns, topic_arn: "%s.fifo" }' % TOPIC, "FIFO"),
        ('{ name: x, type: sns, topic_arn: "%s", endpoint: "http://h/path" }' % TOPIC,
         "without a path"),
        ('{ name: x, type: iot, topic: "vigil/{camera}/#" }', "wildcards"),
        ('{ name: x, type: iot, topic: "vigil/{zone}" }', "only {camera} and {label}"),
        ('{ name: x, type: iot, topic: "$SYS/x" }', "reserved"),
        ('{ name: x, type: iot, topic: "a/b/c/d/e/f/g/{camera}/i" }', "at most 8"),
        ('{ name: x, type: iot, qos: 2 }', "out of range"),
    ]
    env = aws_env(stack, fake)
    path = stack.path("bad.yaml")
    for sink, want in cases:
        with open(path, "w") as f:
            f.write(f"cameras: [{{ id: {CAM}, url: x }}]\nnotifier:\n  sinks:\n    - {sink}\n")
        p = subprocess.run([os.path.join(stack.bin, "vigil-notifier"), "--check-config",
                            "--config", path], env=env, capture_output=True, timeout=10)
        out = (p.stdout + p.stderr).decode()
        check(p.returncode != 0 and want in out and PHONE not in out,
              f"refused: {sink} -> {out.strip().splitlines()[-1][-150:]}")
    with open(path, "w") as f:
        f.write(f"cameras: [{{ id: {CAM}, url: x }}]\nnotifier:\n  sinks:\n"
                f"    - {{ name: x, type: iot }}\n")
    no_endpoint = {k: v for k, v in env.items() if not k.startswith("AWS_ENDPOINT_URL")}
    p = subprocess.run([os.path.join(stack.bin, "vigil-notifier"), "--check-config", "--config",
                        path], env=no_endpoint, capture_output=True, timeout=10)
    out = (p.stdout + p.stderr).decode()
    check(p.returncode != 0 and "AWS_ENDPOINT_URL_IOT_DATA_PLANE" in out and "endpoint" in out,
          f"iot without an endpoint: {out.strip()[-200:]}")
    p = subprocess.run([os.path.join(stack.bin, "vigil-notifier"), "--check-config", "--config",
                        path], env=env, capture_output=True, timeout=10)
    check(p.returncode == 0, "iot with AWS_ENDPOINT_URL set: accepted")

    # A long camera id pushes the topic past 256 bytes: refused at start.
    long_cam = "c" * 63
    with open(path, "w") as f:
        f.write(f"cameras: [{{ id: {long_cam}, url: x }}]\nnotifier:\n  sinks:\n"
                f"    - {{ name: x, type: iot, topic: \"vigil/{'t' * 190}/{{camera}}\" }}\n")
    p = subprocess.run([os.path.join(stack.bin, "vigil-notifier"), "--config", path],
                       env=dict(env, VIGIL_HTTP_ADDR="off"), capture_output=True, timeout=20)
    out = (p.stdout + p.stderr).decode()
    check(p.returncode != 0 and "with camera" in out and long_cam in out and "256 bytes" in out
          and "Sanitizer" not in out,
          f"a topic too long for a configured camera, refused at start: {out.strip()[-240:]}")


def body(stack, args):
    fake = start_fake(stack, args.src)
    fake.call("POST", "/_fake/topics", {"arn": TOPIC})
    stack.env = aws_env(stack, fake)
    stack.write_config(config(stack, fake))
    stack.start_nats()
    stack.start_redis()
    refused_at_load(stack, fake)
    stack.start_service("notifier")
    for step in (delivered_everywhere, throttled_then_delivered, permanent_errors,
                 unknown_topic):
        t0 = time.time()
        step(stack, fake)
        print(f"ok {step.__name__} ({time.time() - t0:.1f}s)", flush=True)
    reqs = fake.requests("sns.Publish") + fake.requests("iotdata.Publish")
    check(all(r["signed_ok"] for r in reqs) and not any(r["auth_error"] for r in reqs),
          f"every one of the {len(reqs)} SNS and IoT requests was signed correctly")


if __name__ == "__main__":
    sys.exit(run(body, dump=("notifier", "fake_aws")))
