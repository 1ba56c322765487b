#!/usr/bin/env python3
"""Faces end to end on the local stack: real nats-server -js, redis-server,
vigil-facematch with the `local` matcher, vigil-dedupe, vigil-notifier (file
outbox and a signing-checking webhook), and vigilctl for enrolment.

Images (real faces from Debian packages, installed by scripts/face-testdata,
never committed): frames of KPhotoAlbum's demo webcam clip (kphotoalbum,
/usr/share/kphotoalbum/demo/movie.avi, one man, Jesper K. Pedersen, looking
at the camera) and, for a stranger, messi5.jpg from opencv-doc.

- `vigilctl faces add jesper` from three frames, with a profile;
- a held-out frame published as a face crop (`vigilctl face door F --crop`)
  yields one alert at both sinks with the display name and the profile;
- a second crop of him inside the person window is suppressed;
- a stranger's face yields the unknown-person alert only because
  dedupe.unknown_faces is on;
- `vigilctl faces remove jesper`: facematch reloads (control subject) and
  his next crop is unknown;
- bad enrolment input gets a clear message: no face, not an image;
- the same flow with the `deepstack` matcher against tests/fakes/
  fake_deepstack.py (CodeProject.AI's face API): one greeting with the
  name and profile at both sinks.
"""
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Webhook, check, read_jsonl, run, wait_for  # noqa: E402

DATA = os.environ.get("VIGIL_FACE_DATA", "/var/cache/vigil-testdata/faces")
MOVIE = os.path.join(DATA, "kphotoalbum", "movie")
STRANGER = "/usr/share/doc/opencv-doc/examples/data/messi5.jpg"
NOFACE = "/usr/share/doc/opencv-doc/examples/data/baboon.jpg"
CROWD = "/usr/share/doc/opencv-doc/opencv4/html/2.jpg"   # a collage of several faces
SECRET = "faces-secret"


def config(stack, hook, matcher="local", matchers=""):
    return f"""
cameras:
  - {{ id: door, url: /dev/null }}
facematch:
  matcher: {matcher}
{matchers}dedupe:
  window_s: 5
  person_window_s: 3600
  unknown_faces: true
  health: {{ enabled: false }}
notifier:
  ack_wait_s: 3
  sinks:
    - {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }}
    - {{ name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/a", secret: {SECRET},
         timeout_ms: 1500, retries: 0 }}
"""


def frame(n):
    return os.path.join(MOVIE, f"{n:02d}.jpg")


def ctl(stack, *args):
    p = stack.vigilctl(*args, timeout=60)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def alerts(stack):
    return read_jsonl(stack.path("outbox.jsonl"))


def publish_face(stack, image):
    rc, out, err = ctl(stack, "face", "door", image, "--crop")
    check(rc == 0, f"vigilctl face door {os.path.basename(image)} --crop: {err.strip()}")


def body(stack, args, hook):
    for f in (frame(5), frame(50), STRANGER):
        if not os.path.exists(f):
            raise AssertionError(f"{f} is missing: run scripts/face-testdata (Debian packages "
                                 "kphotoalbum, opencv-doc)")
    stack.write_config(config(stack, hook))
    stack.start_nats()
    stack.start_redis()
    for svc in ("facematch", "dedupe", "notifier"):
        stack.start_service(svc)

    rc, out, err = ctl(stack, "faces", "add", "jesper", "--image", frame(5), "--image",
                       frame(15), "--image", frame(25), "--profile", "display_name=Jesper",
                       "--profile", "song=Last Christmas")
    check(rc == 0 and '"faces":3' in out, f"vigilctl faces add jesper: {out}{err}")
    wait_for(lambda: stack.metric("facematch", "vigil_facematch_reloads_total") >= 1, 10,
             "facematch reloading its library")
    rc, out, _ = ctl(stack, "faces", "list")
    check(rc == 0 and out.startswith("jesper\t3 faces"), f"vigilctl faces list: {out}")
    rc, out, _ = ctl(stack, "faces", "test", frame(50))
    check(rc == 0 and "jesper" in out, f"vigilctl faces test a held-out frame: {out.strip()}")

    publish_face(stack, frame(50))
    wait_for(lambda: len(alerts(stack)) >= 1 and len(hook.ids()) >= 1, 15,
             "the greeting at both sinks")
    a = alerts(stack)[0]
    print(f"# alert: {a}", flush=True)
    check(a.get("person_id") == "jesper" and a.get("display_name") == "Jesper",
          "the alert names him")
    check(a.get("profile", {}).get("song") == "Last Christmas", "the alert carries his profile")
    check(hook.bodies[0].get("display_name") == "Jesper", "the webhook got the same alert")

    publish_face(stack, frame(60))
    time.sleep(3)
    check(len(alerts(stack)) == 1, "a second sighting inside the person window is suppressed")

    publish_face(stack, STRANGER)
    wait_for(lambda: len(alerts(stack)) >= 2, 15, "the unknown-person alert")
    u = alerts(stack)[1]
    print(f"# unknown: {u}", flush=True)
    check(u.get("person_id") in ("unknown", None, "") and u.get("display_name") != "Jesper",
          "a stranger is unknown, not the nearest name")

    rc, out, err = ctl(stack, "faces", "remove", "jesper")
    check(rc == 0, f"vigilctl faces remove jesper: {err}")
    wait_for(lambda: stack.metric("facematch", "vigil_facematch_reloads_total") >= 2, 10,
             "facematch reloading after the removal")
    before = stack.metric("facematch", "vigil_facematch_unknown_total")
    publish_face(stack, frame(40))
    wait_for(lambda: stack.metric("facematch", "vigil_facematch_unknown_total") > before, 10,
             "his face, now unknown")

    rc, _, err = ctl(stack, "faces", "add", "bob", "--image", NOFACE)
    check(rc != 0 and "no face found" in err, f"a photo without a face: {err.strip()}")
    rc, _, err = ctl(stack, "faces", "add", "bob", "--image", "/etc/hostname")
    check(rc != 0 and "not a JPEG or PNG" in err, f"not an image: {err.strip()}")
    rc, _, err = ctl(stack, "faces", "add", "bob", "--image", CROWD)
    check(rc != 0 and "faces: use a photo of one person" in err, f"several faces: {err.strip()}")
    big = stack.path("huge.jpg")
    with open(big, "wb") as f:
        f.write(b"\xff\xd8\xff\xe0" + b"\0" * (21 << 20))
    rc, _, err = ctl(stack, "faces", "add", "bob", "--image", big)
    check(rc != 0 and "larger than 20 MB" in err, f"an oversized file: {err.strip()}")
    deepstack_flow(stack, hook, args)
    check(hook.bad_signatures == 0, "webhook signatures verify")


def deepstack_flow(stack, hook, args):
    """facematch restarted with the deepstack matcher on CodeProject.AI's fake."""
    port_file = stack.path("deepstack.port")
    stack.start("fake_deepstack", ["python3", os.path.join(args.src, "tests", "fakes",
                                                           "fake_deepstack.py"),
                                   "--mode", "codeproject", "--port-file", port_file])
    wait_for(lambda: os.path.exists(port_file) and open(port_file).read().strip(), 10,
             "fake_deepstack")
    url = f"http://127.0.0.1:{int(open(port_file).read())}"
    stack.write_config(config(stack, hook, "deepstack",
                              f"matchers:\n  deepstack: {{ url: \"{url}\" }}\n"))
    stack.procs["facematch"].stop()
    stack.start_service("facematch")
    rc, out, err = ctl(stack, "faces", "add", "ana", "--image", frame(30), "--profile",
                       "display_name=Ana", "--profile", "song=Jingle Bells")
    check(rc == 0, f"vigilctl faces add ana with deepstack: {out}{err}")
    n = len(alerts(stack))
    # The fake knows a face by its bytes: the same photo, cropped the same way.
    publish_face(stack, frame(30))
    wait_for(lambda: len(alerts(stack)) > n, 15, "the deepstack greeting")
    a = alerts(stack)[-1]
    print(f"# deepstack alert: {a}", flush=True)
    check(a.get("person_id") == "ana" and a.get("display_name") == "Ana" and
          a.get("profile", {}).get("song") == "Jingle Bells", "deepstack: name and profile")
    wait_for(lambda: any(b.get("person_id") == "ana" for b in hook.bodies), 10,
             "the deepstack greeting at the webhook")


def main():
    hook = Webhook(SECRET)
    return run(lambda stack, args: body(stack, args, hook),
               dump=("facematch", "dedupe", "notifier"), cleanup=hook.close)


if __name__ == "__main__":
    sys.exit(main())
