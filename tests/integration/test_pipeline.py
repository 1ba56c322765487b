#!/usr/bin/env python3
"""End to end on a real video with real servers.

nats-server (JetStream) and redis-server on free loopback ports, the five
services on vtest.avi, alerts to a file outbox and a local webhook. Checks
what a user would notice: alerts arrive in both sinks, exactly once each;
repeated sightings are suppressed; a SIGKILLed notifier loses nothing and
sends nothing twice; alerts still flow while Redis is down; malformed
messages and a missing video are reported, not crashed on. While Redis is
down dedupe falls back to windows in its own memory: at most one alert per
key per window (never one per sighting), marked fail_open.
"""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import DEMO_VIDEO, Webhook, check, read_jsonl, run, wait_for  # noqa: E402

SECRET = "it-secret"
WINDOW_S = 2


def config(stack, hook):
    return f"""
cameras:
  - id: demo
    url: {DEMO_VIDEO}
    fps: 5
    speed: 4
    motion: {{ threshold: 25, min_area: 0.004 }}
    watch:
      - {{ label: motion, min_confidence: 0.2 }}
  - id: missing
    url: {stack.path("no-such-video.avi")}
dispatch:
  detectors: [motion]     # this test is about delivery: every motion alerts
  snapshot_dir: {stack.path("snapshots")}
dedupe:
  window_s: {WINDOW_S}
notifier:
  ack_wait_s: 3
  sinks:
    - {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }}
    - {{ name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/alerts",
         secret: {SECRET}, timeout_ms: 1500, retries: 1, backoff_ms: 50, redeliver_min_s: 1 }}
"""


def check_bad_input(stack):
    before = stack.metric("dispatch", "vigil_dispatch_malformed_total")
    r = stack.vigilctl("pub", "vigil.frames.demo", "this is not a protobuf frame")
    check(r.returncode == 0, "vigilctl pub a malformed frame")
    wait_for(lambda: stack.metric("dispatch", "vigil_dispatch_malformed_total") > before, 10,
             "the malformed counter")
    check(stack.procs["dispatch"].alive() and stack.ready("dispatch"),
          "dispatch counted the malformed frame and is still ready")
    check("message.malformed" in stack.procs["dispatch"].text(), "dispatch logged it")

    t0 = time.monotonic()
    p = stack.start_service("capture", "--camera", "missing", name="capture-missing",
                            wait_ready=False)
    p.p.wait(30)
    log = p.text()
    check(p.p.returncode not in (0, None), f"missing video exits non-zero ({p.p.returncode})")
    check("No such file or directory" in log and "no-such-video.avi" in log,
          "missing video gives a clear error naming the file")
    check(time.monotonic() - t0 < 30, "and does so promptly")


def check_face_path(stack):
    ids = stack.tail("identities", "identities")
    r = stack.vigilctl("face", "demo", os.path.join(os.path.dirname(DEMO_VIDEO), "lena.jpg")
                       if os.path.exists(os.path.join(os.path.dirname(DEMO_VIDEO), "lena.jpg"))
                       else os.path.join(os.path.dirname(DEMO_VIDEO), "HappyFish.jpg"))
    check(r.returncode == 0, "vigilctl face publishes a FaceCrop")
    trace = r.stdout.decode().strip()
    wait_for(lambda: any(m["data"]["header"]["trace_id"] == trace for m in read_jsonl(ids)), 10,
             "the FaceMatch")
    m = [m for m in read_jsonl(ids) if m["data"]["header"]["trace_id"] == trace][0]
    check(m["data"]["matched"] is False and m["data"]["matcher"] == "none",
          "facematch answers the crop: not matched (matcher none)")


def run_capture_with_faults(stack):
    outbox = stack.path("outbox.jsonl")
    cap = stack.start_service("capture", "--camera", "demo", wait_ready=False)
    t0 = time.monotonic()

    # SIGKILL the notifier mid-run, just after a delivery, then bring it back.
    wait_for(lambda: len(read_jsonl(outbox)) >= 2, 60, "the first deliveries")
    time.sleep(0.3)
    stack.procs["notifier"].stop(signal.SIGKILL)
    killed_at = time.monotonic()
    print(f"# notifier killed {killed_at - t0:.1f}s into the clip", flush=True)
    time.sleep(2.5)
    stack.start_service("notifier")

    # Stop Redis for a while: dedupe falls back to local windows, then recovers.
    time.sleep(4)
    fail_open_before = stack.metric("dedupe", "vigil_dedupe_fail_open_total")
    stack.procs["redis"].stop()
    time.sleep(3)
    stack.start_redis()
    redis_back = time.monotonic()
    suppressed_at_restart = stack.metric("dedupe", "vigil_dedupe_suppressed_total")

    rc = cap.p.wait(300)
    print(f"# capture finished after {time.monotonic() - t0:.1f}s", flush=True)
    check(rc == 0, "capture exits 0 at the end of the clip")
    check("source.eof" in cap.text(), "capture logged the end of the source")
    return fail_open_before, suppressed_at_restart, redis_back


def check_deliveries(stack, hook, fail_open_before, suppressed_at_restart):
    alerts_path = stack.path("alerts.jsonl")
    outbox = stack.path("outbox.jsonl")
    time.sleep(1)  # the last frames are still in flight

    def settled():
        alert_ids = {a["data"]["alert_id"] for a in read_jsonl(alerts_path)}
        return (alert_ids and {o["alert_id"] for o in read_jsonl(outbox)} >= alert_ids
                and set(hook.ids()) >= alert_ids)

    wait_for(settled, 60, "every alert in the outbox and at the webhook", interval=0.5)
    alerts = [a["data"] for a in read_jsonl(alerts_path)]
    alert_ids = [a["alert_id"] for a in alerts]
    out_ids = [o["alert_id"] for o in read_jsonl(outbox)]
    hook_ids = hook.ids()
    print(f"# alerts {len(alerts)}, outbox {len(out_ids)}, webhook {len(hook_ids)}", flush=True)
    check(len(alerts) >= 5, f"alerts were raised ({len(alerts)})")
    check(len(set(alert_ids)) == len(alert_ids), "alert ids are unique")
    check(sorted(out_ids) == sorted(alert_ids), "file outbox: every alert exactly once")
    check(sorted(hook_ids) == sorted(alert_ids), "webhook: every alert exactly once")
    check(hook.bad_signatures == 0, "webhook signatures verify (HMAC-SHA256)")
    a = alerts[0]
    check(a["label"] == "motion" and a["header"]["camera_id"] == "demo" and
          len(a["header"]["trace_id"]) == 32, "alerts carry label, camera and trace id")
    snap = a["snapshot_ref"]
    check(snap.startswith("fs:frames/demo/") and
          os.path.getsize(os.path.join(stack.path("snapshots"), snap[3:])) > 1000,
          f"alerts carry the reference of a stored snapshot JPEG ({snap})")
    check(not a.get("snapshot_url"), "and no server path")

    suppressed = stack.metric("dedupe", "vigil_dedupe_suppressed_total")
    check(suppressed > 0, f"repeated sightings were suppressed ({suppressed:.0f})")
    fail_open = stack.metric("dedupe", "vigil_dedupe_fail_open_total")
    check(fail_open > fail_open_before, f"alerts went through while Redis was down "
          f"({fail_open - fail_open_before:.0f} fail-open)")
    check(any(x["fail_open"] for x in alerts), "fail-open alerts are marked")
    window_us = WINDOW_S * 1000000
    per_window = {}
    for x in alerts:
        if x["fail_open"]:
            k = (x["key"], int(x["header"]["capture_ts_us"]) // window_us)
            per_window[k] = per_window.get(k, 0) + 1
    check(per_window and max(per_window.values()) == 1,
          f"while Redis was down: at most one alert per key per window ({per_window})")
    sightings = stack.metric("dedupe", "vigil_dedupe_sightings_total")
    redis_calls = stack.metric("dedupe", "vigil_dedupe_redis_window_calls_total")
    check(0 < redis_calls < sightings,
          f"suppressed sightings answered from memory ({redis_calls:.0f} Redis calls for "
          f"{sightings:.0f} sightings)")
    check(suppressed > suppressed_at_restart, "dedupe suppresses again once Redis is back")
    check(stack.metric("notifier", "vigil_notifier_dead_letters_total") == 0,
          "no dead letters")


def body(stack, args, hook):
    stack.write_config(config(stack, hook))
    stack.start_nats()
    stack.start_redis()
    stack.tail("alerts", "alerts")
    for svc in ("notifier", "dedupe", "facematch", "dispatch"):
        stack.start_service(svc)
    check(True, "nats-server, redis-server and four services are up and ready")
    check_bad_input(stack)
    check_face_path(stack)
    fo, sup, _ = run_capture_with_faults(stack)
    check_deliveries(stack, hook, fo, sup)
    for svc in ("dispatch", "facematch", "dedupe", "notifier"):
        rc = stack.procs[svc].stop()
        check(rc == 0, f"{svc} drains and exits 0 on SIGTERM")


def main():
    hook = Webhook(SECRET, fail_first=2)  # the first two POSTs fail: retries kick in
    return run(lambda stack, args: body(stack, args, hook),
               dump=("capture", "notifier", "dedupe", "dispatch"), cleanup=hook.close)


if __name__ == "__main__":
    sys.exit(main())
