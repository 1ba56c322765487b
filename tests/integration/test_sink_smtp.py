#!/usr/bin/env python3
"""The smtp sink against real SMTP servers (aiosmtpd, tests/fakes/smtp_server.py,
run with Debian's /usr/bin/python3), with real nats-server, redis-server and
vigil-notifier; alerts injected into the alerts stream as dedupe would.

Three servers with a self-signed certificate made here by openssl:
  mail    STARTTLS required, AUTH (alice) required, refuses nobody@, defers
          later@ twice at the end of DATA and grey@ once at RCPT
  secure  TLS from the first byte (smtps://), AUTH LOGIN only
  plain   no TLS, stopped and started again for the outage

Checked: the message as Python's email package reads it (From, To, Subject
as an RFC 2047 encoded-word, Date, Message-ID from the alert id,
multipart/related > alternative (plain + html) + the inline JPEG, byte for
byte, whose Content-ID the html's cid: names; CRLF everywhere, HTML
special characters of display_name escaped in the html part, links only
when they are web links, no broken <img> without a snapshot); the envelope
(several recipients, one refused and logged, STARTTLS, AUTH user, EHLO
name); a wrong password and a refused sole recipient are dead letters (not
retried); 451 at DATA and at RCPT are retried and delivered once, with the
same Message-ID; a server that is down is retried and gets the alert once
when it is back; an unverifiable certificate is never sent to.
"""
import email
import email.policy
import email.utils
import json
import os
import shutil
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbframe  # noqa: E402
from harness import check, free_port, port_open, read_jsonl, run, wait_for  # noqa: E402

CAM = "door"
SYSTEM_PYTHON = "/usr/bin/python3"     # where Debian's python3-aiosmtpd is
JPEG = "/usr/share/doc/opencv-doc/examples/data/HappyFish.jpg"
FROM = "vigil@example.test"
DISPLAY = 'Zoë & <Tom> "T"'
# A template of the user's own, with what quoted-printable must take care of:
# a line starting with "From " and one with ".", trailing spaces, a long line.
GREY_TITLE = "{who} at {camera}: a rather long subject that must be folded, {alert_id}"
GREY_TEXT = ("From the {camera} camera:\\n.{who} is here  \\n" + "y" * 90 +
             "\\n= {alert_id} \\u00e9\\n" + "z" * 75 + ".end")


class Server:
    """One tests/fakes/smtp_server.py process and its store directory."""

    def __init__(self, stack, name, *args):
        self.stack, self.name = stack, name
        self.port = free_port()
        self.store = stack.path(f"smtp-{name}")
        self.argv = [SYSTEM_PYTHON, os.path.join(FAKES, "smtp_server.py"), "--port",
                     str(self.port), "--store", self.store, *args]
        self.up()

    def up(self):
        p = self.stack.start(f"smtp-{self.name}", self.argv)
        wait_for(lambda: port_open(self.port) or not p.alive(), 10, f"smtp server {self.name}")
        if not p.alive():
            raise AssertionError(f"smtp server {self.name} exited:\n{p.text()}")

    def down(self):
        self.stack.procs[f"smtp-{self.name}"].stop()

    def messages(self):
        """[(meta, raw bytes, parsed message)] in arrival order."""
        out = []
        if not os.path.isdir(self.store):
            return out
        for f in sorted(os.listdir(self.store)):
            if f.endswith(".json"):
                with open(os.path.join(self.store, f)) as fh:
                    meta = json.load(fh)
                with open(os.path.join(self.store, f[:-5] + ".eml"), "rb") as fh:
                    raw = fh.read()
                out.append((meta, raw,
                            email.message_from_bytes(raw, policy=email.policy.default)))
        return out

    def to(self, rcpt):
        return [m for m in self.messages() if rcpt in m[0]["rcpt_tos"]]

    def events(self):
        return read_jsonl(os.path.join(self.store, "events.jsonl"))


FAKES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes")


def make_cert(stack):
    cert, key = stack.path("cert.pem"), stack.path("key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", key,
                    "-out", cert, "-days", "1", "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                   check=True, capture_output=True, timeout=60)
    return cert, key


def config(stack, mail, secure, plain, cert):
    common = "timeout_ms: 5000, redeliver_min_s: 1, redeliver_max_s: 2"
    m = f"smtp://127.0.0.1:{mail.port}"
    return f"""
cameras:
  - {{ id: {CAM}, url: {stack.path("unused.avi")} }}
recording:
  enabled: false   # these alerts come without a clip unless they carry one
dispatch:
  snapshot_dir: {stack.dir}
notifier:
  sinks:
    - {{ name: mail, type: smtp, url: "{m}", from: {FROM}, from_name: Vigil Test,
         to: "ann@example.test, bob@example.test,nobody@example.test",
         username: alice, ca_file: {cert}, helo: vigil-test.example, {common} }}
    - {{ name: badpass, type: smtp, url: "{m}", from: {FROM}, to: eve@example.test,
         username: alice, password: wrong, ca_file: {cert}, retries: 2, {common} }}
    - {{ name: nouser, type: smtp, url: "{m}", from: {FROM}, to: nobody@example.test,
         username: alice, password: s3cret, ca_file: {cert}, retries: 2, {common} }}
    - {{ name: later, type: smtp, url: "{m}", from: {FROM}, to: later@example.test,
         username: alice, password: s3cret, ca_file: {cert}, retries: 0, {common} }}
    - {{ name: grey, type: smtp, url: "{m}", from: {FROM}, to: grey@example.test,
         username: alice, password: s3cret, ca_file: {cert}, retries: 0, {common},
         title: "{GREY_TITLE}", text: "{GREY_TEXT}" }}
    - {{ name: noca, type: smtp, url: "{m}", from: {FROM}, to: dave@example.test,
         username: alice, password: s3cret, retries: 0, {common} }}
    - {{ name: secure, type: smtp, url: "smtps://localhost:{secure.port}", from: {FROM},
         to: sam@example.test, username: alice, password: s3cret,
         insecure_skip_verify: true, {common} }}
    - {{ name: plain, type: smtp, url: "smtp://127.0.0.1:{plain.port}", from: {FROM},
         to: pat@example.test, starttls: "off", retries: 0, {common} }}
"""


def publish(stack, aid, **fields):
    """fields: display_name, snapshot_url, person_id (pbframe.alert)."""
    stack.publish_alert(CAM, pbframe.alert(CAM, aid, **fields))


def alert_ids(msgs):
    return [m[2]["X-Vigil-Alert-Id"] for m in msgs]


def parts(msg):
    return [(p.get_content_type(), p) for p in msg.walk()]


def check_wire_format(raw, what):
    lines = raw.split(b"\r\n")
    check(b"\n" not in raw.replace(b"\r\n", b"") and b"\r" not in raw.replace(b"\r\n", b""),
          f"{what}: every line ends in CRLF")
    check(max(len(x) for x in lines) <= 78, f"{what}: no line over 78 characters")
    check(all(b < 0x80 for b in raw),
          f"{what}: 7-bit clean (headers encoded, bodies quoted-printable/base64)")


def check_main_message(mail, aid, jpeg, capture_floor):
    [(meta, raw, msg)] = [m for m in mail.to("ann@example.test")
                          if m[2]["X-Vigil-Alert-Id"] == aid]
    check(meta["rcpt_tos"] == ["ann@example.test", "bob@example.test"],
          f"envelope: the two accepted recipients ({meta['rcpt_tos']})")
    check(meta["mail_from"] == FROM, "envelope sender")
    check(meta["tls"] and meta["auth_user"] == "alice",
          "sent over STARTTLS (the server requires it), authenticated as alice")
    check(meta["ehlo"] == "vigil-test.example", f"EHLO name from helo ({meta['ehlo']})")
    check_wire_format(raw, "alert with snapshot")
    check(msg["From"].addresses[0].addr_spec == FROM and
          msg["From"].addresses[0].display_name == "Vigil Test", f"From: {msg['From']}")
    check([a.addr_spec for a in msg["To"].addresses] ==
          ["ann@example.test", "bob@example.test", "nobody@example.test"], f"To: {msg['To']}")
    check(msg["Subject"] == f"{DISPLAY} at {CAM}", f"Subject decoded: {msg['Subject']}")
    check(b"Subject: =?UTF-8?B?" in raw, "Subject as an RFC 2047 encoded-word (non-ASCII)")
    date = email.utils.parsedate_to_datetime(msg["Date"]).timestamp()
    check(capture_floor - 1 <= date <= time.time() + 1, f"Date: {msg['Date']} (capture time)")
    check(msg["Message-ID"] == f"<vigil.{aid}@example.test>",
          f"Message-ID from the alert id: {msg['Message-ID']}")
    check(msg["MIME-Version"] == "1.0" and msg["Auto-Submitted"] == "auto-generated",
          "MIME-Version, Auto-Submitted")
    types = [t for t, _ in parts(msg)]
    check(types == ["multipart/related", "multipart/alternative", "text/plain", "text/html",
                    "image/jpeg"], f"multipart/related > alternative (plain + html) + jpeg: "
          f"{types}")
    p = dict(parts(msg))
    img = p["image/jpeg"]
    check(img.get_content() == jpeg, f"the inline image is the snapshot, byte for byte "
          f"({len(jpeg)} bytes)")
    check(img["Content-Transfer-Encoding"] == "base64" and
          img.get_content_disposition() == "inline", "image: base64, inline")
    cid = img["Content-ID"].strip("<>")
    html = p["text/html"].get_content()
    check(f'src="cid:{cid}"' in html and cid == "snapshot@vigil",
          f"the html shows it by its Content-ID (cid:{cid})")
    check("Zoë &amp; &lt;Tom&gt; &quot;T&quot;" in html and "<Tom>" not in html,
          "display_name HTML-escaped in the html part")
    text = p["text/plain"].get_content()
    check(DISPLAY in text and "confidence 90%" in text and CAM in text,
          f"text/plain: {text.strip()!r}")
    check(all(p[t]["Content-Transfer-Encoding"] == "quoted-printable" and
              p[t].get_content_charset() == "utf-8" for t in ("text/plain", "text/html")),
          "text parts: UTF-8, quoted-printable")
    check("Snapshot:" not in text and "href" not in html,
          "a file:// snapshot is attached, not linked")


def check_without_snapshot(mail, aid):
    [(meta, raw, msg)] = [m for m in mail.to("ann@example.test")
                          if m[2]["X-Vigil-Alert-Id"] == aid]
    check_wire_format(raw, "alert without snapshot")
    types = [t for t, _ in parts(msg)]
    check(types == ["multipart/alternative", "text/plain", "text/html"],
          f"no snapshot: multipart/alternative only ({types})")
    p = dict(parts(msg))
    html, text = p["text/html"].get_content(), p["text/plain"].get_content()
    check("cid:" not in html and "<img" not in html, "no broken <img> without a snapshot")
    url = "https://example.test/snap/x.jpg?a=1&b=2"
    check(f"Snapshot: {url}" in text, "text/plain links the web snapshot")
    check('href="https://example.test/snap/x.jpg?a=1&amp;b=2"' in html,
          "html links it, escaped")
    check(msg["Subject"] == f"person at {CAM}" and b"Subject: person at door\r\n" in raw,
          "an ASCII subject goes as it is")


def dlq(stack):
    r = stack.vigilctl("dlq", "list", "--json")
    return [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]


def check_dead_letters(stack, mail, ids):
    wait_for(lambda: sum(1 for x in dlq(stack) if x["sink"] in ("badpass", "nouser")) >= 4, 15,
             "the dead letters of badpass and nouser")
    rows = dlq(stack)
    bad = [x for x in rows if x["sink"] == "badpass"]
    nou = [x for x in rows if x["sink"] == "nouser"]
    print(f"# badpass: {bad[0]['error']}\n# nouser: {nou[0]['error']}", flush=True)
    check(sorted(x["alert_id"] for x in bad) == sorted(ids) and
          all("535" in x["error"] and "check username and password" in x["error"] for x in bad),
          "a wrong password: dead letters with the 535 and a clear hint")
    check("wrong" not in json.dumps(bad) and "s3cret" not in json.dumps(rows),
          "no password in any dead letter")
    fails = [e for e in mail.events() if e["event"] == "auth" and not e["ok"]]
    check(len(fails) == len(ids), f"AUTH failures not retried ({len(fails)} for {len(ids)} "
          f"alerts, retries: 2)")
    check(sorted(x["alert_id"] for x in nou) == sorted(ids) and
          all("550" in x["error"] and "nobody@example.test" in x["error"] for x in nou),
          "a refused sole recipient (550): dead letters naming it")
    check(not mail.to("eve@example.test"), "nothing stored for the wrong password")


def check_deferred(stack, mail, ids):
    wait_for(lambda: sorted(alert_ids(mail.to("later@example.test"))) == sorted(ids) and
             sorted(alert_ids(mail.to("grey@example.test"))) == sorted(ids), 20,
             "451 at DATA and at RCPT retried and delivered")
    deferred = [e for e in mail.events() if e["event"] == "reply" and e["command"] == "DATA"]
    check(len(deferred) == 2, f"two deliveries deferred at the end of DATA ({len(deferred)})")
    stored = {m[2]["X-Vigil-Alert-Id"]: m[2]["Message-ID"] for m in mail.to("later@example.test")}
    check(all(stored[e["alert_id"]] == e["message_id"] for e in deferred),
          "a redelivery carries the same Message-ID")
    greyed = [e for e in mail.events() if e["event"] == "reply" and
              e["address"] == "grey@example.test"]
    check(len(greyed) == 1 and greyed[0]["reply"].startswith("451"), "one 451 at RCPT")


def check_own_templates(mail, aid):
    [(meta, raw, msg)] = [m for m in mail.to("grey@example.test")
                          if m[2]["X-Vigil-Alert-Id"] == aid]
    check_wire_format(raw, "the user's templates")
    want = f"person at {CAM}: a rather long subject that must be folded, {aid}"
    check(msg["Subject"] == want and b"?=\r\n =?UTF-8?B?" in raw,
          f"a long subject: folded encoded-words that decode to it ({msg['Subject']!r})")
    text = dict(parts(msg))["text/plain"].get_content().replace("\r\n", "\n")
    want = (f"From the {CAM} camera:\n.person is here  \n{'y' * 90}\n= {aid} \u00e9\n"
            f"{'z' * 75}.end\n")
    check(text == want, f"text/plain exactly the template (From, '.', spaces, long lines): "
          f"{text!r}")
    check(b"\r\n=46rom the" in raw and b"\r\n=2Eperson is here =20\r\n" in raw and
          b"z=\r\n=2Eend" in raw, "'From ' and '.' at a line start (also after a soft break) "
          "and a trailing space are encoded")
    check("Snapshot:" not in text, "the user's text template gets no links added")


def check_partial(stack):
    log = stack.procs["notifier"].text()
    lines = [x for x in log.splitlines() if "sink.recipients_refused" in x]
    check(lines and "nobody@example.test" in lines[0] and "2 of 3" in lines[0],
          "a recipient refused among accepted ones is logged (sink.recipients_refused)")


def check_secure(secure, ids):
    wait_for(lambda: sorted(alert_ids(secure.messages())) == sorted(ids), 10, "smtps messages")
    check(all(m[0]["tls"] and m[0]["auth_user"] == "alice" for m in secure.messages()),
          "smtps://: TLS from the start (insecure_skip_verify, no ca_file), authenticated")
    mechs = {e["mechanism"] for e in secure.events() if e["event"] == "auth" and e["ok"]}
    check(mechs == {"LOGIN"}, f"AUTH LOGIN when it is all the server offers ({mechs})")


def deliveries(stack, alert_id, sink, outcomes):
    """Delivery outcomes the notifier published (vigilctl tail)."""
    rows = [x.get("data", x) for x in read_jsonl(stack.path("deliveries.jsonl"))]
    return [d for d in rows if d.get("alert_id") == alert_id and d.get("sink") == sink and
            d.get("outcome") in outcomes]


def outage(stack, plain, mail):
    plain.down()
    aid = f"out{uuid.uuid4().hex[:12]}"
    publish(stack, aid)
    wait_for(lambda: len(deliveries(stack, aid, "plain", ("RETRYING", 4))) >= 2, 15,
             "the plain sink retrying while its server is down")
    plain.up()
    wait_for(lambda: aid in alert_ids(plain.messages()), 15, "the alert after the outage")
    time.sleep(2)
    check(alert_ids(plain.messages()).count(aid) == 1 and
          len(deliveries(stack, aid, "plain", ("DELIVERED", 1))) == 1,
          "server down then up: retried, then delivered once")
    check(not plain.messages()[-1][0]["tls"], "starttls: off sends without TLS")
    wait_for(lambda: aid in alert_ids(mail.to("ann@example.test")), 10, "mail meanwhile")


def check_noca(stack, mail, ids):
    wait_for(lambda: all(deliveries(stack, i, "noca", ("RETRYING", 4)) for i in ids), 10,
             "noca's failures")
    errors = [d.get("error", "") for i in ids for d in deliveries(stack, i, "noca",
                                                                  ("RETRYING", 4))]
    check(all("certificate" in e for e in errors), "a self-signed server without ca_file is "
          f"refused and retried ({errors[0]!r})")
    check(not mail.to("dave@example.test"), "nothing sent to it")


def body(stack, args):
    cert, key = make_cert(stack)
    rules = stack.path("rules.json")
    with open(rules, "w") as f:
        json.dump({"refuse": {"nobody@example.test": [550, "5.1.1 <nobody@example.test>: "
                                                       "no such user"]},
                   "defer": {"later@example.test": {"count": 2, "code": 451, "stage": "data"},
                             "grey@example.test": {"count": 1, "code": 451, "stage": "rcpt",
                                                   "text": "4.7.1 greylisted"}}}, f)
    mail = Server(stack, "mail", "--cert", cert, "--key", key, "--require-starttls", "--user",
                  "alice", "--password", "s3cret", "--auth-required", "--rules", rules)
    secure = Server(stack, "secure", "--cert", cert, "--key", key, "--implicit-tls", "--user",
                    "alice", "--password", "s3cret", "--auth-required", "--mechanisms", "LOGIN")
    plain = Server(stack, "plain")
    stack.write_config(config(stack, mail, secure, plain, cert))
    stack.env["VIGIL_SINK_MAIL_PASSWORD"] = "s3cret"    # the secret from the environment
    stack.start_nats()
    stack.start_redis()
    stack.tail("deliveries", "vigil.deliveries.>")
    stack.start_service("notifier")

    snap = stack.path("snap.jpg")
    shutil.copy(JPEG, snap)
    with open(snap, "rb") as f:
        jpeg = f.read()
    a1, a2 = f"a{uuid.uuid4().hex[:12]}", f"b{uuid.uuid4().hex[:12]}"
    t0 = time.time()
    publish(stack, a1, display_name=DISPLAY, person_id="p1", snapshot_url=f"file://{snap}")
    publish(stack, a2, snapshot_url="https://example.test/snap/x.jpg?a=1&b=2")
    wait_for(lambda: sorted(alert_ids(mail.to("ann@example.test"))) == sorted([a1, a2]), 15,
             "both alerts at the mail server")
    check_main_message(mail, a1, jpeg, t0)
    check_without_snapshot(mail, a2)
    check_partial(stack)
    check_dead_letters(stack, mail, [a1, a2])
    check_deferred(stack, mail, [a1, a2])
    check_own_templates(mail, a2)
    check_secure(secure, [a1, a2])
    check_noca(stack, mail, [a1, a2])
    outage(stack, plain, mail)
    time.sleep(1)
    for rcpt in ("ann@example.test", "later@example.test", "grey@example.test"):
        ids = alert_ids(mail.to(rcpt))
        check(len(ids) == len(set(ids)), f"{rcpt}: every alert once")


def main():
    if not os.path.exists(SYSTEM_PYTHON) or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import aiosmtpd"], capture_output=True).returncode != 0:
        print("aiosmtpd missing: apt-get install python3-aiosmtpd (scripts/deps)",
              file=sys.stderr)
        return 1
    return run(body, dump=("notifier", "smtp-"))


if __name__ == "__main__":
    sys.exit(main())
