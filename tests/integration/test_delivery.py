#!/usr/bin/env python3
"""The delivery guarantees, each against real parts: nats-server -js,
redis-server, vigil-notifier (one or two replicas) with a file sink and a
webhook sink, alerts injected into the alerts stream as dedupe would.

- upgrading from the single consumer of vigil <= 0.6 loses and repeats
  nothing;
- the shipped consumers never drop a message on their own (no max_deliver);
- a webhook that is down for 60 s receives every alert once when it is back,
  and the file sink is not held up meanwhile;
- a webhook that hangs does not delay the file sink;
- Retry-After of a 429 is honoured;
- SIGKILL of the notifier during a slow webhook reply: the alert is delivered
  again (X-Vigil-Delivery 2) and accepted once;
- two replicas deliver every alert once, and one that stalls past its ack
  wait keeps the other from sending the same alert in parallel (the lease);
- a permanent 400 is dead-lettered, listed by `vigilctl dlq list`, and
  `vigilctl dlq replay --sink hook` delivers it once the receiver is fixed,
  to that sink only;
- garbage and hostile-but-valid alerts are counted, dead-lettered once and
  delivered nowhere;
- a sink added later receives new alerts, not the stream's history.
"""
import json
import os
import signal
import subprocess
import sys
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import pbframe  # noqa: E402
import rawio  # noqa: E402
from harness import Webhook, check, read_jsonl, run, wait_for  # noqa: E402

CAM = "door"
SECRET = "delivery-secret"
ACK_WAIT_S = 3


def config(stack, hook):
    return f"""
cameras:
  - {{ id: {CAM}, url: {stack.path("unused.avi")} }}
notifier:
  ack_wait_s: {ACK_WAIT_S}
  sinks:
    - {{ name: outbox, type: file, path: {stack.path("outbox.jsonl")} }}
    - {{ name: hook, type: webhook, url: "http://127.0.0.1:{hook.port}/alerts",
         secret: {SECRET}, timeout_ms: 1500, retries: 0, redeliver_min_s: 1,
         redeliver_max_s: 4 }}
"""


def publish(stack, n=1, prefix="a"):
    ids = []
    for _ in range(n):
        aid = f"{prefix}{uuid.uuid4().hex[:16]}"
        p = subprocess.run([os.path.join(stack.bin, "vigilctl"), "pub", f"vigil.alerts.{CAM}",
                            "-"], input=pbframe.alert(CAM, aid), env=stack.env,
                           capture_output=True, timeout=10)
        if p.returncode != 0:
            raise AssertionError(f"vigilctl pub alert {aid}: {p.stderr.decode()}")
        ids.append(aid)
    return ids


def outbox_ids(stack):
    return [a["alert_id"] for a in read_jsonl(stack.path("outbox.jsonl"))]


def counter(stack, name, family, sink="hook"):
    return stack.metric(name, f'{family}{{sink="{sink}"}}')


def once_each(got, want, what):
    missing = [i for i in want if got.count(i) == 0]
    twice = [i for i in want if got.count(i) > 1]
    check(not missing and not twice, f"{what}: every alert exactly once "
          f"(missing {len(missing)}, repeated {len(twice)})")


def upgrade_from_one_consumer(stack, hook):
    """An installation of vigil <= 0.6: the stream holds 5 alerts and its one
    consumer "notifier" has handled the first 3. The per-sink consumers
    start after those 3, and the old consumer is removed."""
    r = rawio.js_api(stack.nats_port, "$JS.API.STREAM.CREATE.VIGIL_ALERTS", json.dumps({
        "name": "VIGIL_ALERTS", "subjects": ["vigil.alerts.>"], "storage": "file",
        "duplicate_window": 600 * 10**9}).encode())
    check("error" not in r, f"an old installation's stream: {r.get('error')}")
    ids = publish(stack, 5, "old")
    wait_for(lambda: rawio.stream_count(stack.nats_port) == 5, 5, "5 alerts stored")
    r = rawio.js_api(stack.nats_port, "$JS.API.CONSUMER.DURABLE.CREATE.VIGIL_ALERTS.notifier",
                     json.dumps({"stream_name": "VIGIL_ALERTS", "config": {
                         "durable_name": "notifier", "ack_policy": "explicit",
                         "deliver_policy": "by_start_sequence", "opt_start_seq": 4,
                         "filter_subject": "vigil.alerts.>"}}).encode())
    check("error" not in r, f"the old consumer, 3 alerts acknowledged: {r.get('error')}")
    stack.start_service("notifier")
    wait_for(lambda: all(i in hook.ids() for i in ids[3:]) and
             all(i in outbox_ids(stack) for i in ids[3:]), 10, "the 2 unhandled alerts")
    time.sleep(1)
    check(not any(i in hook.request_ids() or i in outbox_ids(stack) for i in ids[:3]),
          "the 3 handled by the old consumer are not sent again")
    r = rawio.js_api(stack.nats_port, "$JS.API.CONSUMER.INFO.VIGIL_ALERTS.notifier")
    check(r.get("error", {}).get("code") == 404, "the old consumer is gone")


def consumers_never_drop(stack):
    cons = []
    for acc in stack.jsz().get("account_details", []):
        for s in acc.get("stream_detail", []):
            if s["name"] == "VIGIL_ALERTS":
                cons = s.get("consumer_detail", [])
    names = sorted(c["name"] for c in cons)
    check(names == ["notifier-hook", "notifier-outbox"], f"one durable consumer per sink: {names}")
    for c in cons:
        md = c["config"].get("max_deliver", -1)
        check(md in (-1, 0), f"{c['name']}: no delivery limit (max_deliver {md})")


def webhook_down_60s(stack, hook):
    dead0 = counter(stack, "notifier", "vigil_notifier_dead_letters_total")
    retries0 = counter(stack, "notifier", "vigil_notifier_retry_later_total")
    hook.down()
    t0 = time.time()
    ids = publish(stack, 4, "down")
    wait_for(lambda: all(i in outbox_ids(stack) for i in ids), 5, "the outbox meanwhile")
    print(f"# outbox had all {len(ids)} alerts {time.time() - t0:.1f}s into the outage",
          flush=True)
    time.sleep(30)
    ids += publish(stack, 2, "down")
    time.sleep(max(0, 60 - (time.time() - t0)))
    retries = counter(stack, "notifier", "vigil_notifier_retry_later_total") - retries0
    check(retries >= len(ids), f"transient failures handed back to JetStream ({retries:.0f})")
    check(counter(stack, "notifier", "vigil_notifier_dead_letters_total") == dead0,
          "nothing dead-lettered while the webhook was down")
    hook.up()
    wait_for(lambda: all(i in hook.ids() for i in ids), 20, "every alert after the outage")
    print(f"# webhook back after {time.time() - t0:.0f}s down; all {len(ids)} alerts arrived",
          flush=True)
    time.sleep(2)
    once_each(hook.ids(), ids, "webhook after 60 s down")
    once_each(outbox_ids(stack), ids, "outbox during the outage")


def hanging_webhook(stack, hook):
    hook.delay_s = 5.0              # longer than the sink's timeout_ms
    t0 = time.time()
    ids = publish(stack, 3, "hang")
    wait_for(lambda: all(i in outbox_ids(stack) for i in ids), 3,
             "the outbox while the webhook hangs")
    print(f"# outbox had all alerts {time.time() - t0:.2f}s after publishing, webhook hanging",
          flush=True)
    hook.delay_s = 0
    wait_for(lambda: all(i in hook.ids() for i in ids), 30, "the webhook once it answers")
    once_each(hook.ids(), ids, "webhook after hanging")


def retry_after(stack, hook):
    hook.status, hook.retry_after = 429, 3
    [aid] = publish(stack, 1, "ra")
    wait_for(lambda: aid in hook.request_ids(), 5, "the first request")
    hook.status, hook.retry_after = 0, None
    wait_for(lambda: aid in hook.ids(), 15, "the retried request")
    times = [t for i, _, t in hook.requests if i == aid]
    gap = times[1] - times[0]
    print(f"# Retry-After 3: second request {gap:.2f}s after the first", flush=True)
    check(gap >= 2.8, f"Retry-After honoured ({gap:.2f}s >= 3s; redeliver_min_s is 1)")


def kill_during_slow_reply(stack, hook):
    hook.delay_s = 1.2
    [aid] = publish(stack, 1, "kill")
    wait_for(lambda: aid in hook.request_ids(), 5, "the slow request")
    time.sleep(0.3)
    stack.procs["notifier"].stop(signal.SIGKILL)
    hook.delay_s = 0
    stack.start_service("notifier")
    wait_for(lambda: aid in hook.ids(), 30, "the redelivery after SIGKILL")
    time.sleep(1)
    reqs = [(i, d) for i, d, _ in hook.requests if i == aid]
    print(f"# SIGKILL mid-reply: requests {reqs}", flush=True)
    # The dead replica's lease defers the first redelivery (twice the ack
    # wait from its claim), so the second request may be delivery 3.
    check(len(reqs) == 2 and int(reqs[1][1]) >= 2,
          "redelivered after SIGKILL (a second request, X-Vigil-Delivery >= 2)")
    check(hook.ids().count(aid) == 1, "accepted once")
    check(outbox_ids(stack).count(aid) == 1, "outbox once")


def two_replicas(stack, hook):
    stack.start_service("notifier", name="notifier2")
    ids = publish(stack, 30, "rep")
    wait_for(lambda: all(i in hook.ids() for i in ids) and
             all(i in outbox_ids(stack) for i in ids), 30, "30 alerts through two replicas")
    time.sleep(1)
    once_each(hook.request_ids(), ids, "webhook requests, two replicas")
    once_each(outbox_ids(stack), ids, "outbox, two replicas")
    a = counter(stack, "notifier", "vigil_notifier_delivered_total")
    b = counter(stack, "notifier2", "vigil_notifier_delivered_total")
    print(f"# webhook deliveries by replica: {a:.0f} and {b:.0f}", flush=True)


def stalled_replica(stack, hook):
    """notifier2 is stopped; notifier takes the alert, then freezes past its
    ack wait: the server redelivers to notifier2, which must not send it
    while the frozen replica may still be sending (the lease). When the
    frozen one wakes, its attempt has timed out; it releases the lease and
    the alert goes out again: at least once, never two at a time."""
    stack.procs["notifier2"].stop()
    hook.delay_s = 1.0
    [aid] = publish(stack, 1, "stall")
    wait_for(lambda: aid in hook.request_ids(), 5, "the first replica's request")
    stack.procs["notifier"].p.send_signal(signal.SIGSTOP)
    stack.start_service("notifier", name="notifier2")
    wait_for(lambda: counter(stack, "notifier2", "vigil_notifier_claimed_elsewhere_total") > 0,
             ACK_WAIT_S * 3, "the redelivery to the second replica, deferred by the lease")
    time.sleep(1)
    woke = time.time()
    stack.procs["notifier"].p.send_signal(signal.SIGCONT)
    hook.delay_s = 0
    wait_for(lambda: hook.request_ids().count(aid) >= 2 or aid in hook.ids(), 15,
             "the alert after the frozen replica woke")
    time.sleep(ACK_WAIT_S * 2 + 2)
    times = [t for i, _, t in hook.requests if i == aid]
    print(f"# stalled replica: {len(times)} request(s), the later ones "
          f"{[round(t - woke, 2) for t in times[1:]]}s after it woke", flush=True)
    check(len(times) <= 2 and all(t >= woke for t in times[1:]),
          "no second request while the frozen replica held the alert")
    stack.procs["notifier2"].stop()


def dead_letter_and_replay(stack, hook):
    hook.status = 400
    [aid] = publish(stack, 1, "perm")
    wait_for(lambda: counter(stack, "notifier", "vigil_notifier_dead_letters_total") >= 1, 10,
             "the 400 dead-lettered")
    check(hook.request_ids().count(aid) == 1, "a 400 is not retried")
    wait_for(lambda: aid in outbox_ids(stack), 5, "the outbox has it anyway")
    r = stack.vigilctl("dlq", "list", "--json")
    rows = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
    mine = [x for x in rows if x["alert_id"] == aid]
    check(r.returncode == 0 and len(mine) == 1 and mine[0]["sink"] == "hook" and
          "HTTP 400" in mine[0]["error"], f"vigilctl dlq list shows it: {rows}")
    hook.status = 0
    r = stack.vigilctl("dlq", "replay", "--sink", "hook")
    print("# " + r.stdout.decode().strip().replace("\n", "\n# "), flush=True)
    check(r.returncode == 0 and b"1 replayed" in r.stdout, "vigilctl dlq replay --sink hook")
    wait_for(lambda: aid in hook.ids(), 10, "the replayed alert at the webhook")
    wait_for(lambda: counter(stack, "notifier", "vigil_notifier_replays_skipped_total",
                             "outbox") >= 1, 5, "the outbox's consumer skipping the replay")
    time.sleep(1)
    check(hook.ids().count(aid) == 1, "replayed once")
    check(outbox_ids(stack).count(aid) == 1, "the replay went to the webhook only")
    r = stack.vigilctl("dlq", "list", "--json")
    check(aid not in r.stdout.decode(), "the dead letter is gone after the replay")


def malformed_alerts(stack, hook):
    """Garbage and a hostile-but-valid Alert (an id that would inject a
    header) on the alerts stream: counted by each sink's consumer,
    dead-lettered once for all of them, delivered nowhere."""
    m0 = stack.metric("notifier", "vigil_notifier_malformed_total")
    n_out, n_hook = len(outbox_ids(stack)), len(hook.requests)
    for payload in (b"\x00garbage\xff" * 7, pbframe.alert(CAM, "evil\r\nX-Injected: 1")):
        p = subprocess.run([os.path.join(stack.bin, "vigilctl"), "pub", f"vigil.alerts.{CAM}",
                            "-"], input=payload, env=stack.env, capture_output=True, timeout=10)
        check(p.returncode == 0, "vigilctl pub a malformed alert")
    wait_for(lambda: stack.metric("notifier", "vigil_notifier_malformed_total") >= m0 + 4, 10,
             "both consumers counting both messages")
    time.sleep(1)
    r = stack.vigilctl("dlq", "list", "--json")
    rows = [json.loads(x) for x in r.stdout.decode().splitlines() if x.strip()]
    check(sum(1 for x in rows if x["sink"] == "") == 2, "one dead letter per malformed message")
    check(len(outbox_ids(stack)) == n_out and len(hook.requests) == n_hook,
          "nothing delivered from them")


def sink_added_later(stack, hook):
    """A sink added to a running installation gets new alerts, not the
    stream's history."""
    before = len(outbox_ids(stack))
    text = config(stack, hook) + (f'    - {{ name: late, type: file, '
                                  f'path: {stack.path("late.jsonl")} }}\n')
    stack.write_config(text)
    stack.procs["notifier"].stop()
    stack.start_service("notifier")
    [aid] = publish(stack, 1, "late")
    wait_for(lambda: read_jsonl(stack.path("late.jsonl")), 10, "the new sink's first alert")
    time.sleep(1)
    late = [a["alert_id"] for a in read_jsonl(stack.path("late.jsonl"))]
    print(f"# the sink added later got {late} ({before} alerts were in the stream before)",
          flush=True)
    check(late == [aid], "a sink added later starts with new alerts")


def body(stack, args, hook):
    stack.write_config(config(stack, hook))
    stack.start_nats(monitor=True)
    stack.start_redis()
    upgrade_from_one_consumer(stack, hook)
    consumers_never_drop(stack)
    for step in (hanging_webhook, retry_after, kill_during_slow_reply, two_replicas,
                 stalled_replica, malformed_alerts, dead_letter_and_replay, webhook_down_60s,
                 sink_added_later):
        t0 = time.time()
        step(stack, hook)
        print(f"ok {step.__name__} ({time.time() - t0:.1f}s)", flush=True)
    check(hook.bad_signatures == 0, "every webhook signature (with its timestamp) verifies")


def main():
    hook = Webhook(SECRET)
    return run(lambda stack, args: body(stack, args, hook), dump=("notifier",),
               cleanup=hook.close)


if __name__ == "__main__":
    sys.exit(main())
