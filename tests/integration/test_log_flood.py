#!/usr/bin/env python3
"""A storm of bad input: the services stay up, count it, and log boundedly.

nats-server, redis-server, dispatch, dedupe, facematch and notifier; then
`vigilctl flood` throws 200,000 random payloads at every subject they
consume. Checks: every service is still alive and ready; each message is
accounted for by a malformed counter (or, for dispatch, as superseded in
its latest-frame slot, or as a core-NATS slow-consumer drop counted in
vigil_bus_dropped_messages_total); no alert is raised or delivered; each
service's log stays under 200 KB, with "log.suppressed" lines naming the
event that was rate-limited; and the NATS credentials never appear.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import check, read_jsonl, run, wait_for  # noqa: E402

CAM = "floodcam"
LOG_LIMIT = 200 * 1024
# subject kind -> (messages, consuming service, counters that account for them)
FLOOD = {
    "frames": (60000, "dispatch", ["vigil_dispatch_malformed_total",
                                   'vigil_dispatch_frames_dropped_total{reason="superseded"}',
                                   'vigil_dispatch_frames_dropped_total{reason="stale"}']),
    "detections": (50000, "dedupe", ["vigil_dedupe_malformed_total"]),
    "identities": (30000, "dedupe", ["vigil_dedupe_malformed_total"]),
    "status": (20000, "dedupe", ["vigil_dedupe_malformed_total"]),
    "faces": (50000, "facematch", ["vigil_facematch_malformed_total"]),
    "alerts": (10000, "notifier", ["vigil_notifier_malformed_total"]),
}
SERVICES = ("notifier", "dedupe", "facematch", "dispatch")


def config(stack):
    return f"""
cameras:
  - id: {CAM}
    url: {stack.path("unused.avi")}
dispatch:
  detectors: [motion]
  snapshot_dir: {stack.path("snapshots")}
dedupe:
  window_s: 2
notifier:
  ack_wait_s: 3
  sinks:
    - {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }}
"""


def accounted(stack, svc):
    m = stack.metrics(svc)
    counters = {c for kind, (_, s, cs) in FLOOD.items() if s == svc for c in cs}
    # A family without labels in FLOOD sums its label sets (the notifier
    # counts per sink: {sink="outbox"}).
    def family(c):
        return sum(v for k, v in m.items() if k == c or ("{" not in c and k.startswith(c + "{")))
    return (sum(family(c) for c in counters) +
            m.get("vigil_bus_dropped_messages_total", 0.0)), m


def expected(svc):
    return sum(n for n, s, _ in FLOOD.values() if s == svc)


def log_size(stack, svc):
    return os.path.getsize(stack.procs[svc].log_path)


def body(stack, args):
    # Credentials in the URL: the no-auth server ignores them, the logs must not show them.
    stack.env["VIGIL_NATS_URL"] = f"nats://floodsecret@127.0.0.1:{stack.nats_port}"
    stack.write_config(config(stack))
    stack.start_nats()
    stack.start_redis()
    alerts = stack.tail("alerts", "alerts")
    for svc in SERVICES:
        stack.start_service(svc)
    check(True, "nats-server, redis-server and four services are up and ready")
    before = {svc: log_size(stack, svc) for svc in SERVICES}

    t0 = time.monotonic()
    for kind, (n, _, _) in FLOOD.items():
        r = stack.vigilctl("flood", f"vigil.{kind}.{CAM}", "--count", str(n), "--size", "256",
                           timeout=300)
        check(r.returncode == 0, f"vigilctl flood vigil.{kind}.{CAM}: {r.stdout.decode().strip()}"
              f"{r.stderr.decode().strip()}")
    total = sum(n for n, _, _ in FLOOD.values())
    print(f"# {total} messages published in {time.monotonic() - t0:.1f}s", flush=True)

    for svc in SERVICES:
        want = expected(svc)
        wait_for(lambda: accounted(stack, svc)[0] >= want, 240, f"{svc} to account for {want}",
                 interval=0.5)
    time.sleep(1)  # nothing more should arrive
    for svc in SERVICES:
        got, m = accounted(stack, svc)
        dropped = m.get("vigil_bus_dropped_messages_total", 0.0)
        print(f"# {svc}: accounted {got:.0f} of {expected(svc)} (slow-consumer drops "
              f"{dropped:.0f}), log lines suppressed {m.get('vigil_log_suppressed_total', 0):.0f}",
              flush=True)
        check(got == expected(svc), f"{svc} accounts for every message exactly "
              f"({got:.0f} == {expected(svc)})")
        check(stack.procs[svc].alive() and stack.ready(svc), f"{svc} is alive and ready")
        check(m.get("vigil_log_suppressed_total", 0) > 0, f"{svc} rate-limited its log lines")

    d = stack.metrics("dedupe")
    n = stack.metrics("notifier")
    health = sum(v for k, v in d.items() if k.startswith("vigil_dedupe_health_alerts_total"))
    check(d.get("vigil_dedupe_alerts_total", 0) == 0 and health == 0, "dedupe raised no alert")
    check(n.get("vigil_notifier_delivered_total", 0) == 0, "notifier delivered nothing")
    check(not read_jsonl(stack.path("outbox.jsonl")), "the outbox is empty")
    time.sleep(0.5)
    # Random bytes now and then parse as a protobuf Alert (all fields unset
    # but one); a real alert has a header. The tail is a core-NATS
    # subscriber itself and may lose a few of the flood.
    seen = read_jsonl(alerts)
    real = [a for a in seen if (a.get("data") or {}).get("header")]
    check(not real and 0 < len(seen) <= FLOOD["alerts"][0],
          f"the alerts subject carried no alert, only flooded payloads ({len(seen)} seen)")

    for svc in SERVICES:
        rc = stack.procs[svc].stop()
        check(rc == 0, f"{svc} drains and exits 0 on SIGTERM")
        size = log_size(stack, svc)
        text = stack.procs[svc].text()
        print(f"# {svc} log: {before[svc]} bytes before the flood, {size} after", flush=True)
        check(size < LOG_LIMIT, f"{svc} log stays bounded ({size} < {LOG_LIMIT} bytes)")
        lines = [json.loads(x) for x in text.splitlines() if x.startswith("{")]
        sup = [x for x in lines if x.get("event") == "log.suppressed"]
        check(sup and all(x.get("suppressed_event") and x.get("suppressed", 0) > 0 for x in sup),
              f"{svc} reports suppressed lines with the event name ({len(sup)} reports, "
              f"{sorted({x['suppressed_event'] for x in sup})})")
        check("floodsecret" not in text, f"{svc} log does not show the NATS token")
        check(any(x.get("event") == "nats.connected" and "***@127.0.0.1" in x.get("msg", "")
                  for x in lines), f"{svc} logs the masked NATS URL")


def main():
    return run(body, dump=SERVICES)


if __name__ == "__main__":
    sys.exit(main())
