#!/usr/bin/env python3
"""The telegram sink against real parts: nats-server -js, redis-server and
vigil-notifier with four telegram sinks pointed at tests/fakes/fake_telegram.py
(which parses the captions' entities and counts their length as Telegram
does), alerts injected into the alerts stream as dedupe would.

- an alert with a snapshot reaches both chats of a sink as sendPhoto with the
  exact JPEG bytes, the chat id, parse_mode HTML and a caption in which the
  name "<Tom & Jerry>" is escaped, with the clip link;
- the same alert in MarkdownV2, with the sink's own default text and with
  seed 003's greeting ("{display_name} is here — their song: {profile.song}"),
  reserved characters in the name and the song accepted;
- a 429 with parameters.retry_after 3: the chat gets it after 3 s, not before,
  and a chat that already had it in the failed attempt is not sent it again;
- an unknown chat is dead-lettered (vigilctl dlq list shows it, naming the
  chat), while the sink's other chat gets the alert once;
- no snapshot: sendMessage (link preview off), the text reads fine without a
  clip link;
- a caption longer than 1024 characters is cut with "…" and accepted;
- a photo Telegram refuses (too large) falls back to sendMessage; a file that
  is not a JPEG is never attached;
- the token never shows in the notifier's log.
"""
import base64
import hashlib
import json
import os
import re
import sys
import time
import urllib.request
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbframe  # noqa: E402
from harness import check, run, wait_for  # noqa: E402

TOKEN = "7654321:AAFake-Token_ForTests0123456789abcdef"
PHOTO = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
CHATS = ["1001", "@vigil_family", "2002", "4004", "3003"]
CAMS = ["front", "md", "ra", "ra2", "nosnap", "long", "big", "notjpeg", "outside"]
TIME = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"
GREETING = "{display_name} is here — their song: {profile.song}"


class Fake:
    def __init__(self, stack, src):
        self.port = stack.start_port_file("telegram", [
            sys.executable, os.path.join(src, "tests/fakes/fake_telegram.py"), "--token", TOKEN,
            "--chats", ",".join(CHATS)], timeout=10)
        self.base = f"http://127.0.0.1:{self.port}"

    def call(self, method, path, obj=None):
        data = json.dumps(obj).encode() if obj is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def requests(self, chat=None, needle=None, photos=False):
        """Requests to a chat whose caption or text holds needle, oldest first."""
        q = "?photos=1" if photos else ""
        reqs = self.call("GET", "/_fake/requests" + q)["requests"]
        return [r for r in reqs if (chat is None or r.get("chat_id") == chat) and
                (needle is None or needle in (r.get("caption") or r.get("text") or ""))]

    def accepted(self, chat, needle, photos=False):
        return [r for r in self.requests(chat, needle, photos) if r["status"] == 200]


def config(stack, fake):
    cams = "\n".join(f"  - {{ id: {c}, url: {stack.path('unused.avi')} }}" for c in CAMS)
    common = (f'api_base: "{fake.base}/", timeout_ms: 4000, retries: 0, redeliver_min_s: 1, '
              f'redeliver_max_s: 4')
    return f"""
timezone: UTC
cameras:
{cams}
recording:
  enabled: false   # these alerts come without a clip unless they carry one
dispatch:
  snapshot_dir: {stack.dir}
notifier:
  sinks:
    # token from VIGIL_SINK_TG_TOKEN_FILE
    - {{ name: tg, type: telegram, chat_ids: "1001, @vigil_family", {common} }}
    - {{ name: greet, type: telegram, token: "{TOKEN}", chat_ids: "2002",
         parse_mode: MarkdownV2, disable_notification: true, {common},
         text: "{GREETING}" }}
    - {{ name: mdv2, type: telegram, token: "{TOKEN}", chat_ids: "4004",
         parse_mode: markdownv2, {common} }}
    # token from VIGIL_SINK_BAD_TOKEN; chat 999 does not exist
    - {{ name: bad, type: telegram, chat_ids: "3003,999", {common} }}
"""


def alert(cam, aid, display_name="", snapshot="", clip="", profile=None):
    """pbframe's Alert, with the fields a face alert carries when display_name
    is given."""
    return pbframe.alert(cam, aid, person_id="p-" + aid if display_name else "",
                         display_name=display_name,
                         snapshot_url="file://" + snapshot if snapshot else "", clip_url=clip,
                         profile=profile)


def publish(stack, cam, **kw):
    aid = "tg" + uuid.uuid4().hex[:16]
    stack.publish_alert(cam, alert(cam, aid, **kw))
    return aid


def utf16_len(s):
    return sum(2 if ord(c) > 0xFFFF else 1 for c in s)


def photo_two_chats(stack, fake, jpeg):
    clip = "https://clips.example/v?cam=front&t=1"
    publish(stack, "front", display_name="<Tom & Jerry>", snapshot=jpeg, clip=clip)
    at = " at front\n"
    wait_for(lambda: all(fake.accepted(c, at) for c in ("1001", "@vigil_family")), 10,
             "sendPhoto to both chats of sink tg")
    with open(jpeg, "rb") as f:
        data = f.read()
    for chat in ("1001", "@vigil_family"):
        [r] = fake.accepted(chat, at, photos=True)
        check(r["method"] == "sendPhoto" and r["chat_id"] == chat, f"{chat}: sendPhoto")
        p = r["photo"]
        check(base64.b64decode(p["b64"]) == data and p["sha256"] == hashlib.sha256(data).hexdigest()
              and p["content_type"] == "image/jpeg",
              f"{chat}: the snapshot's exact {len(data)} bytes as image/jpeg ({p['filename']})")
        check(r["parse_mode"] == "HTML", f"{chat}: parse_mode HTML")
        want = (r"<b>&lt;Tom &amp; Jerry&gt;</b> at front\n" + TIME +
                r" · confidence 90%\nhttps://clips\.example/v\?cam=front&amp;t=1")
        check(re.fullmatch(want, r["caption"]) is not None,
              f"{chat}: the caption, name escaped: {r['caption']!r}")
        check(r["parsed_text"].startswith("<Tom & Jerry> at front\n") and
              r["parsed_text"].endswith(clip), f"{chat}: as Telegram shows it: "
              f"{r['parsed_text']!r}")
        check(r["disable_notification"] is None, f"{chat}: not silent")
    [md] = fake.accepted("4004", at)
    check(md["parse_mode"] == "MarkdownV2" and
          re.fullmatch(r"\*<Tom & Jerry\\>\* at front\n" + TIME.replace("-", r"\\-") +
                       r" · confidence 90%\n" + re.escape(clip.replace(".", "\\.")
                                                          .replace("=", "\\=")),
                       md["caption"]) is not None,
          f"MarkdownV2 with the sink's own default text: {md['caption']!r}")


def greeting_markdown_v2(stack, fake, jpeg):
    name = "Dr. O'Neil (v2.0) - #1 [x]_*~`>|{}=+!\\"
    song = "Rockin' Around the Christmas Tree (Brenda Lee, 1958)"
    publish(stack, "md", display_name=name, snapshot=jpeg, profile={"song": song})
    wait_for(lambda: fake.accepted("2002", "Brenda") and fake.accepted("4004", " at md\n"), 10,
             "the greeting and the default text in MarkdownV2")
    [g] = fake.accepted("2002", "Brenda")
    check(g["parse_mode"] == "MarkdownV2" and g["method"] == "sendPhoto" and
          g["parsed_text"] == f"{name} is here — their song: {song}",
          f"seed 003's greeting, reserved characters escaped: {g['caption']!r}")
    check(g["disable_notification"] == "true", "disable_notification: true is sent")
    [d] = fake.accepted("4004", " at md\n")
    check(d["parsed_text"].startswith(f"{name} at md\n"),
          f"the MarkdownV2 default text with that name: {d['parsed_text']!r}")


def retry_after(stack, fake, jpeg):
    fake.call("POST", "/_fake/fail", {"method": "*", "chat_id": "1001", "status": 429,
                                      "retry_after": 3, "count": 1})
    publish(stack, "ra", snapshot=jpeg)
    at = " at ra\n"
    wait_for(lambda: fake.accepted("1001", at), 15, "the delivery after the 429")
    wait_for(lambda: fake.accepted("@vigil_family", at), 5, "the second chat")
    reqs = fake.requests("1001", at)
    check([r["status"] for r in reqs] == [429, 200], f"429, then accepted: "
          f"{[r['status'] for r in reqs]}")
    gap = reqs[1]["time"] - reqs[0]["time"]
    print(f"# retry_after 3: accepted {gap:.2f}s after the 429", flush=True)
    check(gap >= 2.9, f"retry_after honoured ({gap:.2f}s >= 3s; redeliver_min_s is 1)")
    fam = fake.requests("@vigil_family", at)
    check(len(fam) == 1 and fam[0]["time"] >= reqs[1]["time"] - 0.5,
          "the other chat waited too (the bot was told to wait), and got it once")


def no_resend_to_done_chat(stack, fake, jpeg):
    fake.call("POST", "/_fake/fail", {"method": "*", "chat_id": "@vigil_family", "status": 429,
                                      "retry_after": 1, "count": 1})
    publish(stack, "ra2", snapshot=jpeg)
    at = " at ra2\n"
    wait_for(lambda: fake.accepted("@vigil_family", at), 15, "the second chat after its 429")
    time.sleep(0.5)
    fam = [r["status"] for r in fake.requests("@vigil_family", at)]
    first = fake.requests("1001", at)
    check(fam == [429, 200], f"second chat: 429, then accepted ({fam})")
    check(len(first) == 1 and first[0]["status"] == 200,
          f"the chat that had it is not sent it again ({len(first)} request(s))")


def dead_letters(stack):
    r = stack.vigilctl("dlq", "list", "--json")
    return r.stdout.decode().count('"sink":"bad"') + r.stdout.decode().count('"sink": "bad"')


def dead_letter(stack, fake):
    """Every alert went to sink bad too: each one is dead-lettered for chat
    999 once chat 3003 has it."""
    wait_for(lambda: dead_letters(stack) >= len(CAMS), 15, f"{len(CAMS)} dead letters")
    r = stack.vigilctl("dlq", "list", "--json")
    rows = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
    mine = [x for x in rows if x["sink"] == "bad"]
    check(r.returncode == 0 and mine and all(
        "chat 999: sendPhoto: HTTP 400: Bad Request: chat not found (1 of 2 chats have it)"
        in x["error"] or "chat 999: sendMessage: HTTP 400: Bad Request: chat not found"
        in x["error"] for x in mine), f"vigilctl dlq list: {mine[:1]}")
    check(all(x["sink"] == "bad" for x in rows), "only the sink with the bad chat dead-letters")
    aids = {x["alert_id"] for x in mine}
    n999 = len(fake.requests("999"))
    check(n999 == len(aids), f"a 400 is not retried ({n999} requests, {len(aids)} alerts)")
    n3003 = len(fake.accepted("3003", None))
    check(n3003 == len(aids), f"the sink's good chat got each alert once ({n3003})")


def no_snapshot(stack, fake):
    publish(stack, "nosnap")
    wait_for(lambda: fake.accepted("1001", " at nosnap"), 10, "sendMessage")
    [r] = fake.accepted("1001", " at nosnap")
    check(r["method"] == "sendMessage" and r["photo"] is None and r["parse_mode"] == "HTML"
          and r["link_preview_disabled"], "no snapshot: sendMessage, link preview off")
    check(re.fullmatch(r"<b>person</b> at nosnap\n" + TIME + r" · confidence 90%", r["text"])
          is not None, f"no clip link: the text just ends ({r['text']!r})")


def long_caption(stack, fake, jpeg):
    name = "Tim & Struppi 🎄 é " * 100
    publish(stack, "long", display_name=name, snapshot=jpeg)
    wait_for(lambda: fake.accepted("1001", "at long") or fake.requests("1001", "Tim &amp;"), 10,
             "the long caption")
    wait_for(lambda: fake.accepted("2002", "Tim & Struppi"), 10, "the long greeting")
    reqs = fake.requests("1001", "Tim &amp; Struppi")
    check(len(reqs) == 1 and reqs[0]["status"] == 200 and reqs[0]["method"] == "sendPhoto",
          f"accepted at once: {[(r['status'], r.get('description')) for r in reqs]}")
    shown = reqs[0]["parsed_text"]
    check(1020 <= utf16_len(shown) <= 1024 and shown.endswith("…") and
          reqs[0]["caption"].endswith("…</b>") and reqs[0]["caption"].startswith("<b>Tim &amp; Struppi 🎄"),
          f"cut to {utf16_len(shown)} characters as Telegram counts them, with …, bold closed")
    [g] = fake.accepted("2002", "Tim & Struppi")
    check(utf16_len(g["parsed_text"]) <= 1024 and g["parsed_text"].endswith("…"),
          "the MarkdownV2 greeting cut too, and accepted")


def photo_refused(stack, fake, jpeg):
    fake.call("POST", "/_fake/config", {"max_photo_bytes": 1000})
    publish(stack, "big", snapshot=jpeg)
    wait_for(lambda: fake.accepted("1001", " at big") and fake.accepted("@vigil_family", " at big"),
             10, "the text after the photo was refused")
    fake.call("POST", "/_fake/config", {"max_photo_bytes": 10 * 1024 * 1024})
    first = [(r["method"], r["status"]) for r in fake.requests("1001", " at big")]
    fam = [(r["method"], r["status"]) for r in fake.requests("@vigil_family", " at big")]
    check(first == [("sendPhoto", 400), ("sendMessage", 200)],
          f"photo too large (PHOTO_INVALID_DIMENSIONS): sendMessage instead ({first})")
    check(fam == [("sendMessage", 200)], f"the next chat gets the text at once ({fam})")
    bogus = stack.path("bogus.jpg")
    with open(bogus, "wb") as f:
        f.write(b"GIF89a this is no jpeg" * 10)
    publish(stack, "notjpeg", snapshot=bogus)
    wait_for(lambda: fake.accepted("1001", " at notjpeg"), 10, "the text for a bogus image")
    got = [(r["method"], r["status"], r.get("description")) for r in
           fake.requests("1001", " at notjpeg")]
    # The notifier attaches only JPEGs (render.c), so this one is never sent.
    check(got == [("sendMessage", 200, None)], f"not a JPEG: not attached, sendMessage ({got})")
    # A JPEG outside dispatch.snapshot_dir is not read either: an alert from
    # the bus must not make the notifier post a file of its choosing.
    publish(stack, "outside", snapshot="/usr/share/doc/opencv-doc/examples/data/messi5.jpg")
    wait_for(lambda: fake.accepted("1001", " at outside"), 10, "the text for an outside file")
    got = [r["method"] for r in fake.requests("1001", " at outside")]
    check(got == ["sendMessage"], f"a file outside snapshot_dir is not attached ({got})")


def body(stack, args):
    fake = Fake(stack, args.src)
    token_file = stack.path("tg.token")
    with open(token_file, "w") as f:
        f.write(TOKEN + "\n")
    stack.env["VIGIL_SINK_TG_TOKEN_FILE"] = token_file
    stack.env["VIGIL_SINK_BAD_TOKEN"] = TOKEN
    jpeg = stack.path("snapshot.jpg")
    with open(PHOTO, "rb") as src, open(jpeg, "wb") as dst:
        dst.write(src.read())
    stack.write_config(config(stack, fake))
    stack.start_nats()
    stack.start_redis()
    stack.start_service("notifier")
    for step in (photo_two_chats, greeting_markdown_v2, retry_after, no_resend_to_done_chat,
                 no_snapshot, long_caption, photo_refused):
        t0 = time.time()
        step(stack, fake) if step is no_snapshot else step(stack, fake, jpeg)
        print(f"ok {step.__name__} ({time.time() - t0:.1f}s)", flush=True)
    dead_letter(stack, fake)
    log = stack.procs["notifier"].text()
    check(TOKEN not in log and TOKEN.split(":")[1] not in log and "sink.failed" in log,
          "the notifier logged failures, never the token")


if __name__ == "__main__":
    sys.exit(run(body, dump=("notifier", "telegram")))
